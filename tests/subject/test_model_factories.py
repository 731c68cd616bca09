"""A user's own model (--model file.py:factory): each unusual module works with its reading said
once, or is refused in one line saying what is expected. Tiny modules, written into tmp_path."""
import textwrap

import pytest
import torch

from interp_gan.cli import main
from interp_gan.config import PipelineConfig
from interp_gan.pipeline import _fit_image_size
from tests.subject.factory_models import generate as _gen, images as _x, loader

MODELS = textwrap.dedent('''
    import torch
    from torch import nn

    def _conv(out=3):
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, out, 3, padding=1))

    class Seen(nn.Module):          # records the range of what it was given
        def __init__(self, body, squash=None):
            super().__init__()
            self.body, self.squash, self.seen = body, squash, None
        def forward(self, x):
            self.seen = (float(x.min()), float(x.max()))
            y = self.body(x)
            return self.squash(y) if self.squash is not None else y

    def sigmoid(): return Seen(_conv(), nn.Sigmoid())
    def tanh(): return Seen(_conv(), nn.Tanh())
    def unbounded():
        m = Seen(_conv())
        with torch.no_grad():
            m.body[2].bias += 3.0           # values well above 1: not an image range
        return m

    class Functional(nn.Module):    # sigmoid as a function: no module to read the range from
        def __init__(self): super().__init__(); self.c = _conv()
        def forward(self, x): return torch.sigmoid(self.c(x))
    def functional_sigmoid(): return Functional()
    def declared():
        m = Functional(); m.output_range = (-1, 1); return m

    class Resize(nn.Module):
        def __init__(self, f): super().__init__(); self.c, self.f = _conv(), f
        def forward(self, x): return torch.tanh(nn.functional.interpolate(self.c(x), scale_factor=self.f))
    def up2(): return Resize(2.0)
    def down2(): return Resize(0.5)
    def grey(): return nn.Sequential(_conv(1), nn.Tanh())
    def rgba(): return nn.Sequential(_conv(4), nn.Tanh())
    def two_channels(): return nn.Sequential(_conv(2), nn.Tanh())

    class Tup(nn.Module):
        def __init__(self): super().__init__(); self.c = _conv()
        def forward(self, x): y = torch.tanh(self.c(x)); return y.mean(), y
    def tuple_out(): return Tup()
    class Dict(nn.Module):
        def __init__(self, keys): super().__init__(); self.c, self.keys = _conv(), keys
        def forward(self, x): y = torch.tanh(self.c(x)); return {k: y for k in self.keys}
    def dict_out(): return Dict(["features", "image"])
    def dict_ambiguous(): return Dict(["a", "b"])
    class Scalar(nn.Module):
        def __init__(self): super().__init__(); self.c = _conv()
        def forward(self, x): return self.c(x).mean()
    def scalar_out(): return Scalar()
    class Bytes(nn.Module):
        def __init__(self): super().__init__(); self.c = _conv()
        def forward(self, x): return (torch.sigmoid(self.c(x / 255)) * 255).round().to(torch.uint8)
    def uint8_out(): return Bytes()

    def training_bn():
        torch.manual_seed(0)
        m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Dropout(0.5),
                          nn.Conv2d(4, 3, 3, padding=1), nn.Tanh())
        return m.train()
    def float64(): return nn.Sequential(_conv(), nn.Tanh()).double()
    def bfloat16(): return nn.Sequential(_conv(), nn.Tanh()).to(torch.bfloat16)

    class Flat(nn.Module):          # a Linear over the flattened image: one input size only
        def __init__(self, n):
            super().__init__(); torch.manual_seed(0); self.n = n; self.l = nn.Linear(3 * n * n, 3 * n * n)
        def forward(self, x): return torch.tanh(self.l(x.flatten(1))).view(-1, 3, self.n, self.n)
    def flat20(): return Flat(20)
    class FlatSigmoid(Flat):
        def __init__(self): super().__init__(20); self.s = nn.Sigmoid()
        def forward(self, x): return self.s(self.l(x.flatten(1))).view(-1, 3, self.n, self.n)
    def flat20_sigmoid(): return FlatSigmoid()
    def flat20_declared():
        m = Flat(20); m.fixed_size = (20, 20); return m

    def raises(): raise RuntimeError("weights.pth not found")
    not_callable = 42
    def needs_args(path, size): return _conv()
    def returns_none(): return None
    instance = nn.Sequential(_conv(), nn.Tanh())
''')


@pytest.fixture
def models(tmp_path):
    return loader(tmp_path, MODELS, "user_models.py")



def test_sigmoid_module_is_read_in_0_1_both_ways(models):
    s = models("sigmoid")
    x = _x()
    y = _gen(s, x)
    lo, hi = s.generator.seen
    assert lo >= 0 and hi <= 1                                      # content was given in [0, 1]
    with torch.no_grad():
        ref = torch.sigmoid(s.generator.body((x + 1) / 2)) * 2 - 1  # and its output mapped to [-1, 1]
    torch.testing.assert_close(y, ref)
    assert any("output range [0, 1] (its last layer is Sigmoid)" in n for n in s.meta["model_notes"])


def test_tanh_module_passes_unchanged(models):
    s = models("tanh")
    x = _x()
    with torch.no_grad():
        ref = torch.tanh(s.generator.body(x))
    torch.testing.assert_close(_gen(s, x), ref)
    assert s.generator.seen[0] < 0


def test_range_without_a_module_is_inferred_or_declared(models):
    s = models("functional_sigmoid")
    assert _gen(s, _x()).min() < -0.05                              # [0, 1] read as such
    assert any("inferred from a probe batch" in n and "[0, 1]" in n for n in s.meta["model_notes"])
    d = models("declared")
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(_gen(d, x), torch.sigmoid(d.generator.c(x)))
    assert any("declared by the module's output_range" in n for n in d.meta["model_notes"])


def test_unbounded_output_is_clamped_and_said(models):
    s = models("unbounded")
    y = _gen(s, _x())
    assert y.min() >= -1 and y.max() <= 1
    assert any("outside [-1, 1]: clamped" in n for n in s.meta["model_notes"])


@pytest.mark.parametrize("name", ["up2", "down2"])
def test_output_of_another_size_is_resized_to_the_input(models, name):
    s = models(name)
    assert _gen(s, _x(size=16)).shape == (2, 3, 16, 16)
    want = "128x128" if name == "up2" else "32x32"          # decided on the 64 px probe at load
    assert any(f"({want} for a 64x64 input): resized to the input's size" in n for n in s.meta["model_notes"])


def test_grey_and_rgba_outputs_become_rgb_other_channel_counts_are_refused(models):
    g = _gen(models("grey"), _x())
    assert g.shape == (2, 3, 16, 16) and torch.equal(g[:, 0], g[:, 2])
    s = models("rgba")
    with torch.no_grad():
        ref = torch.tanh(s.generator[0](_x()))[:, :3]
    torch.testing.assert_close(_gen(s, _x()), ref)
    with pytest.raises(ValueError, match=r"returns 2 channels .* expected 3 \(RGB\), 1 \(grey"):
        _gen(models("two_channels"), _x())


def test_tuple_and_dict_outputs(models):
    t = models("tuple_out")
    assert _gen(t, _x()).shape == (2, 3, 16, 16)
    assert "output: element 1 of a tuple of 2" in t.meta["model_notes"]
    d = models("dict_out")
    assert _gen(d, _x()).shape == (2, 3, 16, 16)
    assert any("the dict's 'image' entry" in n for n in d.meta["model_notes"])
    with pytest.raises(ValueError, match="returns a dict with keys a, b; expected one image"):
        _gen(models("dict_ambiguous"), _x())
    with pytest.raises(ValueError, match=r"returns a tensor of shape \[\] for a batch of 2; expected an image"):
        _gen(models("scalar_out"), _x())


def test_an_integer_image_is_read_as_0_255(models):
    s = models("uint8_out")
    x = _x()
    with torch.no_grad():
        ref = (torch.sigmoid(s.generator.c((x + 1) / 2)) * 255).round() / 127.5 - 1
    torch.testing.assert_close(_gen(s, x), ref)
    assert any("output range [0, 255] (an integer (uint8) image)" in n for n in s.meta["model_notes"])


def test_training_mode_is_switched_off_and_said(models):
    s = models("training_bn")
    assert not any(m.training for m in s.generator.modules())
    x = _x()
    torch.testing.assert_close(_gen(s, x), _gen(s, x))             # no dropout
    assert any("returned in training mode: analysed in eval mode (BatchNorm2d, Dropout" in n
               for n in s.meta["model_notes"])


@pytest.mark.parametrize("name, dtype", [("float64", "float64"), ("bfloat16", "bfloat16")])
def test_other_dtypes_are_analysed_in_float32(models, name, dtype):
    s = models(name)
    assert all(p.dtype == torch.float32 for p in s.generator.parameters())
    y = _gen(s, _x())
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    assert f"weights in {dtype}: analysed in float32" in s.meta["model_notes"]


def test_a_fixed_size_module_says_what_to_declare_and_runs_when_declared(models):
    with pytest.raises(ValueError) as e:
        _gen(models("flat20"), _x(size=16))
    msg = str(e.value)
    assert "fails on a [2, 3, 16, 16] batch" in msg and "fixed_size = (H, W)" in msg and "\n" not in msg
    s = models("flat20_declared")
    cfg = _fit_image_size(s, PipelineConfig.from_dict({"name": "t", "image_size": 64}))
    assert cfg.image_size == 20
    from interp_gan.subject.factory import probe_module_subject
    notes = probe_module_subject(s, cfg.image_size)
    assert any("output range [-1, 1]" in n for n in notes)
    assert probe_module_subject(s, cfg.image_size) == notes        # decided once


def test_a_module_the_load_probe_cannot_run_is_decided_by_its_first_call(models):
    s = models("flat20_sigmoid")                                    # no fixed_size: the 64 px probe fails
    assert not any("output range" in n for n in s.meta["model_notes"])
    x = _x(size=20)
    with torch.no_grad():
        ref = torch.sigmoid(s.generator.l(((x + 1) / 2).flatten(1))).view(-1, 3, 20, 20) * 2 - 1
    torch.testing.assert_close(_gen(s, x), ref)                      # the first batch too, in [0, 1]
    assert any("output range [0, 1] (its last layer is Sigmoid)" in n for n in s.meta["model_notes"])


def test_the_first_call_runs_the_module_once(models):
    s = models("tanh")
    calls = []
    h = s.generator.body[0].register_forward_hook(lambda *a: calls.append(1))
    _gen(s, _x())
    h.remove()
    assert calls == [1]            # a trace around the first call sees one forward, not a probe and a forward


@pytest.mark.parametrize("name, expected", [
    ("raises", "the factory raised RuntimeError: weights.pth not found"),
    ("not_callable", "is not callable (a int object)"),
    ("needs_args", "takes required argument(s) path, size"),
    ("returns_none", "returned NoneType; expected an nn.Module or a Subject"),
    ("missing", "has no attribute 'missing'"),
])
def test_factory_errors_are_one_line(tmp_path, capsys, name, expected):
    (tmp_path / "user_models.py").write_text(MODELS)
    rc = main(["analyze", "--model", f"{tmp_path / 'user_models.py'}:{name}", "--pipeline", "analyses/dissection.toml",
               "--out", str(tmp_path / "rep")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err


def test_import_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "broken.py").write_text("def make(:\n    pass\n")
    for spec, expected in [(f"{tmp_path / 'broken.py'}:make", "importing"),
                           ("no_such_pkg_xyz.models:make", "cannot import no_such_pkg_xyz.models")]:
        rc = main(["analyze", "--model", spec, "--pipeline", "analyses/dissection.toml", "--out", str(tmp_path / "r")])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and expected in err[0], err


def test_a_module_object_is_taken_as_is(models):
    s = models("instance")
    assert _gen(s, _x()).shape == (2, 3, 16, 16)


def test_analyze_says_each_reading_once_in_the_log_and_the_report(tmp_path, capsys):
    import json

    import numpy as np
    from PIL import Image

    from interp_gan.pipeline import analyze

    (tmp_path / "user_models.py").write_text(MODELS)
    content = tmp_path / "photos"
    content.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(content / f"{i}.png")
    (content / "empty.png").write_bytes(b"")
    (content / "Thumbs.db").write_bytes(b"\0")
    cfg = PipelineConfig.from_dict({"name": "t", "n_images": 8, "image_size": 16, "batch_size": 8, "device": "cpu",
                                    "analyses": {"dissection": {"n_boot": 10, "n_perm": 10, "control": False}}})
    report, failed = analyze(f"{tmp_path / 'user_models.py'}:sigmoid", cfg, out_dir=tmp_path / "rep",
                             data=str(content), paper=False)
    out = capsys.readouterr().out
    assert failed == []
    for line in ["model: output range [0, 1] (its last layer is Sigmoid)", "skipped 1 unreadable image(s)",
                 "data: 1 file(s) left out (not an image type (.db) 1)"]:
        assert out.count(line) == 1, (line, out)
    page = (report / "index.html").read_text()
    header = page.split("<header>", 1)[1].split("</header>", 1)[0]     # no overview section: the header says it
    assert "model: output range [0, 1]" in header and "1 unreadable image(s) skipped" in header
    assert "data: 1 file(s) left out" in header
    meta = json.loads((report / "manifest.json").read_text())["meta"]
    assert meta["model_notes"] and meta["data_notes"]
