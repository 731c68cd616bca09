"""PyTorch files that are not state dicts: TorchScript archives load through an in-memory ONNX
export (scripted and traced, one input or image + style vector, free or fixed size); a pickled
whole module is refused in one line naming its class and the ways in; a corrupt archive, an op the
exporter lacks and a TorchScript file given to convert are one line each. Models are built here."""
import warnings

import pytest
import torch
from torch import nn

from interp_gan.subject.loading import convert_checkpoint, load_subject
from interp_gan.subject.torch_files import pickled_module_class, torch_file_kind, traced_input_shapes
from interp_gan.util import sha256_file

warnings.filterwarnings("ignore", category=FutureWarning)   # torch.jit.* is deprecated in this torch


class Gen(nn.Module):
    """A tiny CycleGAN-like generator: reflect pad, conv, instance norm, ReLU, down, up, Tanh."""

    def __init__(self):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.enc = nn.Conv2d(3, 6, 3)
        self.norm = nn.InstanceNorm2d(6)
        self.down = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1)
        self.out = nn.Conv2d(6, 3, 1)

    def forward(self, x):
        h = torch.relu(self.norm(self.enc(self.pad(x))))
        return torch.tanh(self.out(torch.relu(self.up(torch.relu(self.down(h))))))


class Styled(nn.Module):
    """Image + style vector [N, D] -> image (a per-channel scale and shift from the vector)."""

    def __init__(self, d=4):
        super().__init__()
        self.enc = nn.Conv2d(3, 6, 3, padding=1)
        self.film = nn.Linear(d, 12)
        self.out = nn.Conv2d(6, 3, 3, padding=1)

    def forward(self, x, style):
        g, b = self.film(style).chunk(2, dim=1)
        h = torch.relu(self.enc(x) * (1 + g[:, :, None, None]) + b[:, :, None, None])
        return torch.sigmoid(self.out(h))


class Pinned(nn.Module):
    """A forward whose trace bakes the traced size in (int() of a shape)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        h = int(x.shape[2]) * 2
        return torch.tanh(nn.functional.interpolate(self.conv(x), size=(h, h))[:, :, ::2, ::2])


def _save(module, kind, path, example):
    torch.manual_seed(0)
    m = torch.jit.script(module) if kind == "scripted" else torch.jit.trace(module, example)
    m.save(str(path))
    return torch.jit.load(str(path))


def _gen(tmp_path, kind, name="g.pt"):
    torch.manual_seed(0)
    G = Gen().eval()
    return _save(G, kind, tmp_path / name, (torch.rand(1, 3, 32, 32) * 2 - 1,)), tmp_path / name


@pytest.mark.parametrize("kind", ["scripted", "traced"])
def test_a_torchscript_generator_loads_and_equals_the_module(tmp_path, kind):
    m, p = _gen(tmp_path, kind, f"g_{kind}.ptl")      # the suffix says nothing; the zip layout does
    assert torch_file_kind(p) == "torchscript"
    s = load_subject(p, device="cpu")
    x = torch.rand(3, 3, 48, 40) * 2 - 1                 # another size than the export's: H, W are free
    with torch.no_grad():
        d = float((s.generate(x, torch.zeros(3, dtype=torch.long)) - m(x)).abs().max())
    assert d < 1e-5, f"subject vs TorchScript module: max abs diff {d:.3g}"
    assert s.meta["input_contract"]["size"] == "free" and s.meta["input_contract"]["range"] == "[-1,1]"
    names = dict(s.generator.named_modules())
    assert {"enc/Conv", "down/Conv", "up/ConvTranspose", "out/Conv"} <= set(names), sorted(names)
    assert isinstance(names["enc/Conv"], nn.Conv2d)
    # provenance: the TorchScript file, not a temp file
    assert s.meta["checkpoint_sha256"] == sha256_file(p) and s.meta["checkpoint_path"] == str(p)
    assert s.meta["model"]["name"] == "torchscript" and s.meta["model"]["module"] == kind
    assert max(s.meta["torchscript"]["check"].values()) < 1e-5
    from interp_gan.subject.torchscript import torchscript_max_abs_diff   # the load-time check can fail
    torch.manual_seed(1)
    other = torch.jit.script(Gen().eval())
    assert torchscript_max_abs_diff(other, s, x[:1]) > 1e-2


def test_range_option_applies_and_output_is_mapped(tmp_path):
    """A [0,1] network (Sigmoid out) with a style vector, fed [0,1] by --onnx range=[0,1]: subject =
    the module on (x+1)/2 mapped back to [-1,1], style i = the one-hot vector e_i."""
    torch.manual_seed(0)
    m = _save(Styled().eval(), "traced", tmp_path / "styled.pt", (torch.rand(2, 3, 24, 24), torch.rand(2, 4)))
    s = load_subject(tmp_path / "styled.pt", device="cpu", onnx_options={"range": "[0,1]"})
    assert s.style_dim == 4 and len(s.style_names) == 4
    assert s.meta["input_contract"]["from_options"] == ["range"]
    x, ids = torch.rand(4, 3, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        ref = m((x + 1) / 2, torch.eye(4)[ids]) * 2 - 1
        d = float((s.generate(x, ids) - ref).abs().max())
    assert d < 1e-5, f"subject vs TorchScript module after range mapping: max abs diff {d:.3g}"


def test_style_first_argument_order_and_channels_last_layout(tmp_path):
    class StyleFirst(Styled):
        def forward(self, style, x):
            return super().forward(x, style)

    class ChannelsLast(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return torch.sigmoid(self.conv(x.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)

    torch.manual_seed(0)
    m = _save(StyleFirst().eval(), "traced", tmp_path / "sf.pt", (torch.rand(1, 4), torch.rand(1, 3, 16, 16)))
    s = load_subject(tmp_path / "sf.pt", device="cpu", onnx_options={"range": "[0,1]"})
    x, ids = torch.rand(2, 3, 24, 24) * 2 - 1, torch.tensor([3, 0])
    with torch.no_grad():
        d = float((s.generate(x, ids) - (m(torch.eye(4)[ids], (x + 1) / 2) * 2 - 1)).abs().max())
    assert s.meta["torchscript"]["image_index"] == 1 and d < 1e-5, f"style first: max abs diff {d:.3g}"
    m = _save(ChannelsLast().eval(), "scripted", tmp_path / "nhwc.pt", None)
    s = load_subject(tmp_path / "nhwc.pt", device="cpu", onnx_options={"layout": "NHWC"})
    with torch.no_grad():
        ref = m(((x + 1) / 2).permute(0, 2, 3, 1)).permute(0, 3, 1, 2) * 2 - 1
        d = float((s.generate(x, torch.zeros(2, dtype=torch.long)) - ref).abs().max())
    assert s.meta["input_contract"]["layout"] == "NHWC" and d < 1e-5, f"NHWC: max abs diff {d:.3g}"


def test_a_scripted_style_input_needs_its_length_from_style_names(tmp_path):
    torch.manual_seed(0)
    m = _save(Styled().eval(), "scripted", tmp_path / "styled.pt", None)
    with pytest.raises(ValueError, match=r"second tensor 'style'.*style_names=a,b,c.*--model file.py:factory") as e:
        load_subject(tmp_path / "styled.pt", device="cpu")
    assert "\n" not in str(e.value)
    s = load_subject(tmp_path / "styled.pt", device="cpu", onnx_options={"style_names": "a,b,c,d"})
    assert s.style_names == ["a", "b", "c", "d"]
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        d = float((s.generate(x, torch.tensor([3, 1])) - (m((x + 1) / 2, torch.eye(4)[[3, 1]]) * 2 - 1)).abs().max())
    assert d < 1e-5, f"max abs diff {d:.3g}"


def test_a_second_input_that_is_no_style_vector_is_one_line_saying_how_to_proceed(tmp_path):
    class Labelled(nn.Module):            # a class label (integer) as second input: not a style vector
        def __init__(self):
            super().__init__()
            self.emb, self.conv = nn.Embedding(3, 3), nn.Conv2d(3, 3, 1)

        def forward(self, x, label):
            return self.conv(x) * self.emb(label)[:, :, None, None]

    torch.jit.trace(Labelled(), (torch.rand(1, 3, 16, 16), torch.tensor([1]))).save(str(tmp_path / "lab.pt"))
    with pytest.raises(ValueError, match=r"lab.pt: the TorchScript module fails .* and a float style vector.*"
                                         r"export it to ONNX yourself.*--model file.py:factory") as e:
        load_subject(tmp_path / "lab.pt", device="cpu")
    assert "\n" not in str(e.value)


def test_a_trace_with_a_size_baked_in_runs_at_that_size_only(tmp_path):
    from interp_gan.config import PipelineConfig
    from interp_gan.pipeline import _fit_image_size

    torch.manual_seed(0)
    m = _save(Pinned().eval(), "traced", tmp_path / "pinned.pt", (torch.rand(1, 3, 40, 40),))
    assert traced_input_shapes(tmp_path / "pinned.pt") == [[1, 3, 40, 40]]
    s = load_subject(tmp_path / "pinned.pt", device="cpu")
    assert s.meta["input_contract"]["size"] == "fixed" and s.generator.fixed_size == (40, 40)
    assert _fit_image_size(s, PipelineConfig(image_size=64)).image_size == 40
    x = torch.rand(2, 3, 40, 40) * 2 - 1
    with torch.no_grad():
        d = float((s.generate(x, torch.zeros(2, dtype=torch.long)) - m(x)).abs().max())
    assert d < 1e-5, f"max abs diff {d:.3g}"
    with pytest.raises(ValueError, match="40x40 images only"):
        s.generate(torch.zeros(1, 3, 32, 32), torch.zeros(1, dtype=torch.long))


def test_a_free_export_that_differs_from_the_module_at_the_second_size_is_loaded_at_one_size(tmp_path, monkeypatch):
    """No exporter known to us writes such a graph, so the difference at 32 px is planted in the check."""
    import interp_gan.subject.torchscript as ts_mod

    real = ts_mod.torchscript_max_abs_diff
    monkeypatch.setattr(ts_mod, "torchscript_max_abs_diff",
                        lambda m, s, x, ids=None: 0.5 if x.shape[-1] == 32 else real(m, s, x, ids))
    _, p = _gen(tmp_path, "scripted")
    s = load_subject(p, device="cpu")
    ts = s.meta["torchscript"]
    assert ts["size"] == "fixed" and s.generator.fixed_size == (64, 64) and list(ts["check"]) == ["64x64"]
    assert ts["size_baked_in"].startswith("5.00e-01 from the module at 32x32: loaded at 64x64 only")
    assert s.meta["input_contract"]["size"] == "fixed"
    monkeypatch.setattr(ts_mod, "torchscript_max_abs_diff", lambda m, s, x, ids=None: 0.5)   # differs everywhere
    with pytest.raises(ValueError, match=r"g.pt: the ONNX export differs from the TorchScript module by 5.00e-01 "
                                         r"\(tolerance 0.001, \[-1,1\] units, at 64x64\)") as e:
        load_subject(p, device="cpu")
    assert "\n" not in str(e.value)


def test_a_traced_pix2pix_unet_loads_at_the_size_it_needs(tmp_path):
    """Batch norm in eval mode: the exporter shares equal constants through Identity nodes, which are
    made constants again; 6 levels need multiples of 64, so it fails at 32 px and runs at 64 only."""
    from interp_gan.models.unet_generator import UnetGenerator

    torch.manual_seed(0)
    G = UnetGenerator(num_downs=6, ngf=4).eval()
    torch.jit.trace(G, torch.rand(1, 3, 64, 64) * 2 - 1).save(str(tmp_path / "unet.pt"))
    s = load_subject(tmp_path / "unet.pt", device="cpu")
    ts = s.meta["torchscript"]
    assert ts["identities_inlined"] > 0 and ts["size"] == "fixed" and s.generator.fixed_size == (64, 64)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        d = float((s.generate(x, torch.zeros(2, dtype=torch.long)) - G(x)).abs().max())
    assert d < 1e-5, f"subject vs the U-Net: max abs diff {d:.3g}"


def test_a_pickled_whole_module_is_one_line_naming_its_class_and_the_ways_in(tmp_path):
    for name, kw in (("whole.pt", {}), ("legacy.pth", {"_use_new_zipfile_serialization": False}),
                     ("proto4.pt", {"pickle_protocol": 4})):
        p = tmp_path / name
        torch.save(Gen(), p, **kw)
        assert pickled_module_class(p) == f"{__name__}.Gen", name
        with pytest.raises(ValueError) as e:
            load_subject(p, device="cpu")
        msg = str(e.value)
        assert "\n" not in msg and f"pickled nn.Module of class {__name__}.Gen" in msg, msg
        assert "does not run pickled code" in msg and "--model yourfile.py:factory" in msg and "state_dict()" in msg
        assert "torch.jit.script" in msg, msg
    torch.save({"model": Gen(), "epoch": 3}, tmp_path / "wrapped.pt")   # a training script's dict
    with pytest.raises(ValueError, match=f"class {__name__}.Gen"):
        load_subject(tmp_path / "wrapped.pt", device="cpu")
    torch.save(Gen().state_dict(), tmp_path / "sd.pt")
    assert pickled_module_class(tmp_path / "sd.pt") is None


def test_corrupt_archives_and_files_are_one_line(tmp_path):
    _, p = _gen(tmp_path, "traced")
    data = p.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])                 # truncated: no central directory
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    import zipfile
    bad = tmp_path / "bad_member.pt"                        # a TorchScript layout whose code is garbage
    with zipfile.ZipFile(p) as zin, zipfile.ZipFile(bad, "w") as zout:
        for n in zin.namelist():
            zout.writestr(n, b"def forward(self, x ::: garbage" if n.endswith(".py") else zin.read(n))
    assert torch_file_kind(bad) == "torchscript"
    for f, what in ((cut, "is not a readable PyTorch file"), (junk, "is not a readable PyTorch file"),
                    (bad, "is not a loadable TorchScript archive")):
        with pytest.raises(ValueError) as e:
            load_subject(f, device="cpu")
        assert "\n" not in str(e.value) and f.name in str(e.value), str(e.value)
        assert what in str(e.value) and "corrupt" in str(e.value), str(e.value)
    import numpy as np
    torch.save({"weight": torch.zeros(2), "stats": np.zeros(2)}, tmp_path / "np.pth")   # not only tensors
    with pytest.raises(ValueError, match=r"holds pickled objects other than tensors \(the first: numpy") as e:
        load_subject(tmp_path / "np.pth", device="cpu")
    assert "\n" not in str(e.value)


def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path):
    torch.manual_seed(0)
    G = Gen().eval()
    with torch.no_grad():
        G.down.weight[0, 0, 0, 0] = float("nan")
    torch.jit.trace(G, torch.rand(1, 3, 32, 32)).save(str(tmp_path / "nan.pt"))
    with pytest.raises(ValueError, match=r"nan.pt: tensor 'down.weight' holds 1 NaN/Inf of 432 values"):
        load_subject(tmp_path / "nan.pt", device="cpu")


def test_an_op_the_exporter_lacks_is_one_line_naming_it(tmp_path):
    class FFT(nn.Module):
        def forward(self, x):
            return torch.fft.ifft2(torch.fft.fft2(x)).real

    torch.jit.script(FFT()).save(str(tmp_path / "fft.pt"))
    with pytest.raises(ValueError, match=r"aten::fft_fft2.*export it to ONNX yourself.*--model file.py:factory") as e:
        load_subject(tmp_path / "fft.pt", device="cpu")
    assert "\n" not in str(e.value)


def test_onnx_options_apply_to_torchscript_only_among_pytorch_files(tmp_path):
    _, p = _gen(tmp_path, "traced")
    s = load_subject(p, device="cpu", onnx_options={"range": "[0,1]", "size": "free"})
    assert s.meta["input_contract"]["range"] == "[0,1]"
    p.with_name(p.name + ".toml").write_text('range = "[0,255]"\n')     # the sidecar: g.pt.toml
    s = load_subject(p, device="cpu")
    assert s.meta["input_contract"]["range"] == "[0,255]" and s.meta["input_contract"]["from_sidecar"] == ["range"]
    torch.save(Gen().state_dict(), tmp_path / "sd.pth")
    with pytest.raises(ValueError, match="apply to .onnx files and TorchScript archives only"):
        load_subject(tmp_path / "sd.pth", device="cpu", onnx_options={"range": "[0,1]"})
    with pytest.raises(ValueError, match="TorchScript archive, not a state_dict"), \
            warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        convert_checkpoint(p, tmp_path / "out.safetensors")
    assert not [w for w in said if "TorchScript" in str(w.message)], "the one line only, not torch's warning too"


def test_inspect_prints_the_contract_and_the_check_against_the_module(tmp_path, capsys):
    from interp_gan.cli import main

    _, p = _gen(tmp_path, "scripted")
    assert main(["inspect", str(p), "--size", "32", "--sample", str(tmp_path / "s.png"),
                 "--onnx", "range=[-1,1]"]) == 0
    out = capsys.readouterr().out
    assert "TorchScript check" in out and ": ok" in out, out
    assert "input contract: layout NCHW, range [-1,1], output range [-1,1], size free" in out, out
    assert "enc/Conv" in out and (tmp_path / "s.png").is_file()
    torch.save(Gen(), tmp_path / "whole.pt")
    assert main(["inspect", str(tmp_path / "whole.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pickled nn.Module of class" in err, err


def test_a_dissection_runs_on_a_torchscript_subject(tmp_path):
    import interp_gan as ig

    _, p = _gen(tmp_path, "traced")
    s = load_subject(p, device="cpu")
    data = ig.analysis_data(s, ig.PipelineConfig(n_images=8, image_size=32, batch_size=8, device="cpu"))
    f = ig.build_analysis("dissection", layers=["enc/Conv", "up/ConvTranspose"], n_boot=10, n_perm=10,
                          control=False).run(s, data)
    assert not f.skipped, f.skipped
    units = f.tables["dissection_units"]
    assert set(units["layer"]) == {"enc/Conv", "up/ConvTranspose"} and len(units) == 6 + 6


@pytest.mark.slow   # end to end through the CLI (about 18 s on 2 shared cores)
def test_analyze_runs_the_dissection_pipeline_on_a_torchscript_file(tmp_path, capsys):
    import pandas as pd

    from interp_gan.cli import main

    _, p = _gen(tmp_path, "scripted")
    out = tmp_path / "report"
    rc = main(["analyze", str(p), "--onnx", "range=[-1,1]", "--pipeline", "analyses/dissection.toml",
               "--set", "n_images=16", "--set", "image_size=32", "--set", "analyses.dissection.n_boot=20",
               "--set", "analyses.dissection.n_perm=20", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    layers = set(pd.read_csv(out / "findings" / "dissection_units.csv")["layer"])
    assert layers == {"enc/Conv", "down/Conv", "up/ConvTranspose", "out/Conv"}, layers


def test_a_torch_export_archive_is_refused_naming_the_ways_in(tmp_path):
    ep = torch.export.export(Gen().eval(), (torch.rand(1, 3, 32, 32),))
    for name in ("g.pt2", "g.pt"):
        torch.export.save(ep, str(tmp_path / name))
        assert torch_file_kind(tmp_path / name) == "torch_export"
        with pytest.raises(ValueError, match=r"torch.export archive \(.pt2\).*TorchScript.*ONNX.*--model") as e:
            load_subject(tmp_path / name, device="cpu")
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"torch.export archive \(.pt2\), not a state_dict"):
        convert_checkpoint(tmp_path / "g.pt", tmp_path / "g.safetensors")


def test_a_grey_output_and_half_weights_load_as_onnx_files_do(tmp_path):
    """A TorchScript generator with one output channel (repeated into RGB, as for an ONNX graph) or with
    float16 / bfloat16 weights (analysed in float32, said) loads; both were refused before (a check
    'differing by inf', a dtype error)."""
    torch.manual_seed(0)
    grey = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 1), nn.Tanh()).eval()
    m = _save(grey, "traced", tmp_path / "grey.pt", (torch.rand(1, 3, 32, 32),))
    s = load_subject(tmp_path / "grey.pt", device="cpu")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        y = s.generate(x, torch.zeros(2, dtype=torch.long))
        assert y.shape == (2, 3, 32, 32) and float((y - m(x).expand(-1, 3, -1, -1)).abs().max()) < 1e-5
    assert max(s.meta["torchscript"]["check"].values()) < 1e-5
    for dtype in (torch.float16, torch.bfloat16):
        torch.manual_seed(0)
        G = Gen().eval()
        name = f"g_{str(dtype)[6:]}.pt"
        torch.jit.trace(G, (torch.rand(1, 3, 32, 32),)).to(dtype).save(str(tmp_path / name))
        s = load_subject(tmp_path / name, device="cpu")
        with torch.no_grad():
            ref = G.to(dtype).float()(x)          # the module's own weights, rounded to dtype, in float32
            assert float((s.generate(x, torch.zeros(2, dtype=torch.long)) - ref).abs().max()) < 1e-5
        note = f"weights in {str(dtype)[6:]}: cast to float32"
        assert s.meta["torchscript"]["widened"].startswith(note)
        assert any(n.startswith(note) for n in s.meta["model_notes"])
