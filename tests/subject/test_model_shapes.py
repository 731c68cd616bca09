"""Model inputs and outputs of shapes the project had not met: one non-square size, a fixed batch,
NHWC in [0, 255], side inputs other than a style vector, and ``Subject.from_module`` against
``--model``. Tiny networks built here (torch -> ONNX in tmp_path); each case works end to end or is
one line saying what to do."""
import textwrap

import pytest
import torch
from torch import nn

pytest.importorskip("onnx", reason="ONNX subjects need onnx and onnx2torch")
pytest.importorskip("onnxruntime", reason="the checks compare against onnxruntime")

from interp_gan.analyses.base import AnalysisData  # noqa: E402
from interp_gan.analyses.units.dissection import Dissection  # noqa: E402
from interp_gan.config import PipelineConfig  # noqa: E402
from interp_gan.harvest.hooks import TraceDict  # noqa: E402
from interp_gan.pipeline import _fit_image_size  # noqa: E402
from interp_gan.subject.loading import load_subject  # noqa: E402
from interp_gan.subject.onnx import onnx_max_abs_diff  # noqa: E402
from interp_gan.subject.protocol import Subject  # noqa: E402


class Net(nn.Module):
    """conv, stride-2 conv, upsample, conv; ``nhwc`` / ``u8`` (x / 255 in, Sigmoid * 255 out) / a
    side input ``e`` that scales the first layer; ``baked`` bakes the batch into a Reshape."""

    def __init__(self, nhwc=False, u8=False, baked=None, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.nhwc, self.u8, self.baked = nhwc, u8, baked
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.c = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x, e=None):
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        h = torch.relu(self.a(x / 255 if self.u8 else x))
        if e is not None:
            h = h * (1 + e.mean())
        if self.baked:   # per-image channel gains, reshaped with the batch written in (as a traced export does)
            h = h * torch.sigmoid(h.mean((2, 3))).reshape(self.baked, 8, 1, 1)
        h = nn.functional.interpolate(torch.relu(self.b(h)), scale_factor=2.0, mode="nearest")
        y = torch.sigmoid(self.c(h)) * 255 if self.u8 else torch.tanh(self.c(h))
        return y.permute(0, 2, 3, 1) if self.nhwc else y


def _export(net, path, shape, side=None, side_name="strength", dynamic=False):
    x = torch.rand(*shape) * (255 if net.u8 else 1)
    names = ["image"] + ([side_name] if side is not None else [])
    torch.onnx.export(net.eval(), (x,) if side is None else (x, side), str(path), input_names=names,
                      output_names=["out"], opset_version=17, dynamo=False,
                      dynamic_axes={"image": {0: "N"}, "out": {0: "N"}} if dynamic else None)
    return path


def _x(n, size=32, seed=1):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _gen(s, x):
    with torch.no_grad():
        return s.generate(x, torch.zeros(len(x), dtype=torch.long))


# --- 1. one non-square size ------------------------------------------------------------------------
@pytest.mark.parametrize("nhwc", [False, True])
def test_a_non_square_graph_runs_in_its_own_geometry_and_matches_onnxruntime(tmp_path, nhwc):
    p = _export(Net(nhwc=nhwc), tmp_path / "g.onnx", (1, 24, 32, 3) if nhwc else (1, 3, 24, 32))
    s = load_subject(p, device="cpu")
    assert _fit_image_size(s, PipelineConfig(image_size=128)).image_size == 32   # the longer side
    x = _x(3)
    with TraceDict(s.generator, ["a/Conv"]) as td:
        y = _gen(s, x)
    assert y.shape == (3, 3, 32, 32)
    assert tuple(td["a/Conv"].output.shape[-2:]) == (24, 32)                     # hooks see 24x32
    assert onnx_max_abs_diff(p, s, x) < 1e-4
    assert "24x32" in s.meta["model_notes"][0] and "24x32" in s.meta["input_contract"]["resized"]


def test_a_non_square_factory_module_is_resized_in_and_out(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(textwrap.dedent('''
        import torch
        from torch import nn
        class Wide(nn.Module):
            fixed_size = (24, 40)
            def __init__(self):
                super().__init__(); torch.manual_seed(0); self.c = nn.Conv2d(3, 3, 3, padding=1)
            def forward(self, x):
                assert tuple(x.shape[-2:]) == (24, 40), x.shape
                return torch.tanh(self.c(x))
        def make(): return Wide()
    '''))
    s = load_subject(f"{f}:make", device="cpu")
    assert _fit_image_size(s, PipelineConfig(image_size=64)).image_size == 40
    y = _gen(s, _x(2, 40))
    assert y.shape == (2, 3, 40, 40)
    assert any("24x40" in n for n in s.meta["model_notes"])


class LeftRight(nn.Module):
    """One non-square size (16x32): unit 0 of ``detect`` fires on the left half of its map, unit 1 on
    the right half, a little noise on top; the output is the content."""
    fixed_size = (16, 32)

    def __init__(self):
        super().__init__()
        self.detect = nn.Identity()

    def forward(self, x):
        n, _, h, w = x.shape
        assert (h, w) == (16, 32), x.shape      # it sees its own size: the maps are 16x32, the masks 32x32
        left = (torch.arange(w) < w // 2).float().expand(h, w)
        maps = torch.stack([left, 1 - left], 0)[None] * (1 + 0.01 * x[:, :2])
        self.detect(maps)
        return torch.tanh(x)


class HalfSegmenter:
    labels = ["left", "right"]

    def __call__(self, images):
        n, _, h, w = images.shape
        return (torch.arange(w) >= w // 2).long().expand(n, h, w)


def test_dissection_masks_line_up_with_a_non_square_models_maps():
    s = Subject.from_module(LeftRight())
    data = AnalysisData(_x(16, 32), torch.zeros(16, dtype=torch.long), batch_size=8)
    f = Dissection(layers=["detect"], quantile=0.5, n_boot=20, n_perm=20, control=False, select="none",
                   segmenter=HalfSegmenter()).run(s, data)
    iou = f.tables["dissection_iou"]
    best = {u: iou[iou.unit == u].sort_values("iou").iloc[-1] for u in (0, 1)}
    assert best[0].concept == "seg:left" and best[1].concept == "seg:right"
    assert best[0].iou > 0.9 and best[1].iou > 0.9


# --- 2. a fixed batch --------------------------------------------------------------------------------
def test_fixed_batch_graphs_give_the_dynamic_graphs_numbers(tmp_path):
    dyn = load_subject(_export(Net(), tmp_path / "dyn.onnx", (1, 3, 32, 32), dynamic=True), device="cpu")
    b1 = load_subject(_export(Net(), tmp_path / "b1.onnx", (1, 3, 32, 32)), device="cpu")
    p4 = _export(Net(), tmp_path / "b4.onnx", (4, 3, 32, 32))
    b4 = load_subject(p4, device="cpu")
    baked = load_subject(_export(Net(baked=4), tmp_path / "baked.onnx", (4, 3, 32, 32)), device="cpu")
    ref = load_subject(_export(Net(baked=1), tmp_path / "ref.onnx", (1, 3, 32, 32), dynamic=True), device="cpu")
    assert b4.meta["input_contract"]["declared_batch"] == 4
    for n in (8, 5, 1):                                  # a full batch, an odd final batch, one image
        x = _x(n)
        torch.testing.assert_close(_gen(b1, x), _gen(dyn, x), atol=1e-5, rtol=0)
        torch.testing.assert_close(_gen(b4, x), _gen(dyn, x), atol=1e-5, rtol=0)
        torch.testing.assert_close(_gen(baked, x), _gen(ref, x), atol=1e-5, rtol=0)
    assert onnx_max_abs_diff(p4, b4, _x(3)) < 1e-4       # onnxruntime runs the file at its batch of 4


class Styled(nn.Module):
    """A style vector [N, 4] scales the first layer's channels, one gain per image (a per-image
    side input that keeps the batch)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net, self.g = Net(), nn.Linear(4, 8)

    def forward(self, x, s):
        h = torch.relu(self.net.a(x)) * (1 + self.g(s))[:, :, None, None]
        h = nn.functional.interpolate(torch.relu(self.net.b(h)), scale_factor=2.0, mode="nearest")
        return torch.tanh(self.net.c(h))


def test_a_fixed_batch_style_input_is_still_the_style_vector(tmp_path):
    def export(name, b, dynamic):
        p = tmp_path / name
        torch.onnx.export(Styled().eval(), (torch.rand(b, 3, 32, 32), torch.rand(b, 4)), str(p), opset_version=17,
                          input_names=["image", "style"], output_names=["out"], dynamo=False,
                          dynamic_axes={"image": {0: "N"}, "style": {0: "N"}, "out": {0: "N"}} if dynamic else None)
        return p
    p4 = export("b4.onnx", 4, False)
    b4, dyn = load_subject(p4, device="cpu"), load_subject(export("dyn.onnx", 1, True), device="cpu")
    assert b4.num_styles == 4 and b4.meta["input_contract"]["style_input"] == "style"
    x, ids = _x(5), torch.tensor([0, 1, 2, 3, 1])
    with torch.no_grad():
        torch.testing.assert_close(b4.generate(x, ids), dyn.generate(x, ids), atol=1e-5, rtol=0)
    assert onnx_max_abs_diff(p4, b4, x[:2], ids[:2]) < 1e-4


# --- 3. NHWC in [0, 255] ------------------------------------------------------------------------------
def test_nhwc_0_255_is_read_from_the_graph(tmp_path):
    p = _export(Net(nhwc=True, u8=True), tmp_path / "tf.onnx", (1, 32, 32, 3))
    s = load_subject(p, device="cpu")
    c = s.meta["input_contract"]
    assert (c["layout"], c["range"], c["output_range"]) == ("NHWC", "[0,255]", "[0,255]")
    assert {"layout", "range", "output_range"} <= set(c["inferred"]) and "output_clamped" not in c
    assert "/Div" in c["evidence"]["range"] and "Sigmoid" in c["evidence"]["output_range"]
    assert onnx_max_abs_diff(p, s, _x(2)) < 1e-4


# --- 4. side inputs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1,), (1, 1)])
def test_a_scalar_side_input_is_refused_naming_the_option_then_fed(tmp_path, shape):
    p = _export(Net(), tmp_path / "s.onnx", (1, 3, 32, 32), side=torch.ones(*shape))
    with pytest.raises(ValueError) as e:
        load_subject(p, device="cpu")
    assert "'strength'" in str(e.value) and "--onnx feed=strength:VALUE" in str(e.value) and "\n" not in str(e.value)
    s = load_subject(p, device="cpu", onnx_options={"feed": "strength:0.5"})
    assert s.num_styles == 1 and s.meta["input_contract"]["fed"][0]["value"] == 0.5
    x = _x(3)
    with torch.no_grad():
        torch.testing.assert_close(_gen(s, x), Net()(x, torch.full((1,), 0.5)), atol=1e-5, rtol=0)
    assert onnx_max_abs_diff(p, s, x) < 1e-4


def test_a_noise_vector_is_not_read_as_styles_unless_named(tmp_path):
    p = _export(Net(), tmp_path / "n.onnx", (1, 3, 32, 32), side=torch.zeros(1, 16), side_name="noise")
    with pytest.raises(ValueError, match=r"'noise' \[1, 16\] looks like noise.*--onnx feed=noise:0"):
        load_subject(p, device="cpu")
    s = load_subject(p, device="cpu", onnx_options={"feed": "noise:0"})
    assert s.num_styles == 1 and onnx_max_abs_diff(p, s, _x(2)) < 1e-4
    named = load_subject(p, device="cpu", onnx_options={"style_names": ",".join(f"s{i}" for i in range(16))})
    assert named.num_styles == 16


def test_feed_naming_no_input_is_one_line(tmp_path):
    p = _export(Net(), tmp_path / "s.onnx", (1, 3, 32, 32), side=torch.ones(1))
    with pytest.raises(ValueError, match="feed names \\['strenght'\\], which are not inputs"):
        load_subject(p, device="cpu", onnx_options={"feed": "strenght:1"})


# --- 5. Subject.from_module reads a module as --model does ---------------------------------------------
FACTORY = textwrap.dedent('''
    import torch
    from torch import nn
    class DictNet(nn.Module):
        def __init__(self):
            super().__init__(); torch.manual_seed(0)
            self.c1, self.bn, self.c2 = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 3, 3, padding=1)
            with torch.no_grad():
                self.bn.running_mean.fill_(0.3); self.bn.running_var.fill_(2.0)
        def forward(self, x):
            return {"features": self.c1(x), "image": torch.sigmoid(self.c2(torch.relu(self.bn(self.c1(x)))))}
    def make(): return DictNet().train()
''')


def test_from_module_gives_the_subject_that_model_gives(tmp_path, monkeypatch):
    f = tmp_path / "dict_net.py"
    f.write_text(FACTORY)
    via_cli = load_subject(f"{f}:make", device="cpu")
    monkeypatch.syspath_prepend(str(tmp_path))
    import dict_net
    via_api = Subject.from_module(dict_net.make(), meta={"note": 1})
    assert not via_api.generator.training and via_api.meta["note"] == 1
    x = _x(4)
    y = _gen(via_api, x)
    torch.testing.assert_close(y, _gen(via_cli, x), atol=0, rtol=0)
    with torch.no_grad():                 # eval mode, the dict's image, content in [0, 1], output mapped to [-1, 1]
        ref = via_api.generator((x + 1) / 2)["image"] * 2 - 1
    torch.testing.assert_close(y, ref)
    assert via_api.meta["model_notes"] == via_cli.meta["model_notes"]
    assert any("training mode" in n for n in via_api.meta["model_notes"])


# --- the CLI, end to end --------------------------------------------------------------------------------
@pytest.mark.slow   # end to end, about 10 s
def test_inspect_and_analyze_say_the_resize_and_the_fed_constant(tmp_path, capsys):
    from interp_gan.cli import main

    p = _export(Net(), tmp_path / "wide.onnx", (1, 3, 24, 32), side=torch.ones(1))
    assert main(["inspect", str(p), "--onnx", "feed=strength:0.5", "--sample", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    assert "resized to the 24x32 the graph declares" in out and "(1, 8, 24, 32)" in out      # a/Conv's own maps
    assert "fed: input 'strength' [1] gets 0.5" in out and "conversion: " in out and "MISMATCH" not in out
    rc = main(["analyze", str(p), "--onnx", "feed=strength:0.5", "--pipeline", "analyses/dissection.toml",
               "--set", "n_images=16", "--set", "analyses.dissection.n_boot=20", "--set", "analyses.dissection.n_perm=20",
               "--set", "analyses.dissection.control=false", "--out", str(tmp_path / "report")])
    err = "".join(capsys.readouterr())
    assert rc == 0, err
    assert "image_size 128 -> 32" in err and "fed the constant 0.5" in err
    html = (tmp_path / "report" / "index.html").read_text()
    assert "24x32" in html and "fed the constant 0.5" in html
