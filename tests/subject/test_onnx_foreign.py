"""Foreign ONNX exports (docs/models.md, "Foreign exports"): the ONNX Model Zoo's fast neural style
networks (opset 8 / 9 ``Upsample``, fixed [1,3,224,224], [0,255], unclipped output), torch.onnx
exports of a CycleGAN ResNet generator (opsets 11 and 17, dynamic axes on and off), float16 files
and uint8 NHWC image inputs. Each graph is built here (tests/subject/foreign_onnx.py); each
subject must equal onnxruntime on the file, fed through the declared range, within ONNX_TOLERANCE
(1e-3 in [-1,1] output units), computed here without the library's own check.
"""
import numpy as np
import pytest
import torch

pytest.importorskip("onnx2torch", reason="ONNX subjects need onnx and onnx2torch (pip install onnx onnx2torch)")
ort = pytest.importorskip("onnxruntime", reason="the reference check needs onnxruntime")

from interp_gan.harvest.hooks import default_layers  # noqa: E402
from interp_gan.subject.geometry import to_size  # noqa: E402
from interp_gan.subject.loading import load_subject  # noqa: E402
from interp_gan.subject.onnx import ONNX_TOLERANCE, onnx_max_abs_diff  # noqa: E402
from tests.subject.foreign_onnx import (cyclegan_export, johnson_export, johnson_zoo, nhwc_uint8,  # noqa: E402
                                        to_float16, upsample9)

RANGES = {"[-1,1]": (-1.0, 1.0), "[0,1]": (0.0, 1.0), "[0,255]": (0.0, 255.0)}


def _content(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images in [-1, 1] (a blurred field, so convs see structure, not only noise)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, max(size // 8, 2), max(size // 8, 2), generator=g)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x * 2 - 1).clamp(-1, 1)


def _onnxruntime(path, content: torch.Tensor, rng: str, out_rng: str, layout: str = "NCHW",
                 dtype=np.float32, clip: bool = False, raw: bool = False):
    """The file in onnxruntime, one image per call, on ``content`` ([-1,1]) mapped to ``rng``; the
    output mapped from ``out_rng`` to [-1,1] (``clip``: clipped there; ``raw``: unmapped)."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    lo, hi = RANGES[rng]
    olo, ohi = RANGES[out_rng]
    ys = []
    for i in range(len(content)):
        x = ((content[i:i + 1] + 1) / 2 * (hi - lo) + lo).numpy()
        x = x.transpose(0, 2, 3, 1) if layout == "NHWC" else x
        x = np.clip(np.round(x), 0, 255).astype(dtype) if dtype == np.uint8 else x.astype(dtype)
        y = sess.run(None, {name: x})[0].astype(np.float32)
        ys.append(y.transpose(0, 3, 1, 2) if layout == "NHWC" else y)
    y = torch.from_numpy(np.concatenate(ys))
    if raw:
        return y
    y = (y - olo) / (ohi - olo) * 2 - 1
    return y.clamp(-1, 1) if clip else y


def _generate(s, content):
    with torch.no_grad():
        return s.generate(content, torch.zeros(len(content), dtype=torch.long))


# --- the ONNX Model Zoo's fast neural style (Johnson et al. 2016) -------------------------------
ZOO = [("nodes", 8), ("nodes", 9), ("torch.onnx.export", 9)]


@pytest.mark.parametrize("how,opset", ZOO)
def test_zoo_fast_neural_style_matches_onnxruntime_clipped_in_0_255(tmp_path, how, opset):
    """Opset 8 / 9 ``Upsample`` (no onnx2torch converter) is upgraded to ``Resize`` (opset 13) and
    the result equals onnxruntime on the original file; fixed [1,3,224,224]; the output, unbounded
    in the graph, is clipped to [0,255] as the zoo's scripts clip it."""
    p = tmp_path / f"zoo{opset}.onnx"
    (johnson_zoo if how == "nodes" else johnson_export)(p, opset=opset, width=8)
    s = load_subject(p, device="cpu", onnx_options={"range": "[0,255]"})
    c, graph = s.meta["input_contract"], s.meta["graph"]
    assert (c["range"], c["output_range"], c["size"], c["declared_size"]) == ("[0,255]", "[0,255]", "fixed", [224, 224])
    assert c["from_options"] == ["range"] and "clipped to [0,255]" in c["output_clamped"]
    assert graph["opset_upgrade"]["from"] == opset and "Upsample" in graph["opset_upgrade"]["why"]
    assert graph.get("initializer_inputs_dropped", 0) == (62 if opset == 8 else 0)   # IR 3 lists weights as inputs
    layers = default_layers(s.generator)
    assert len(layers) == 16                  # 1 + 2 + 5 x 2 + 2 + 1 convs, named after their ONNX nodes
    if how == "nodes":
        assert layers[0] == "conv_2"
    x = _content(2, 224)
    ours = _generate(s, x)
    raw = _onnxruntime(p, x, "[0,255]", "[0,255]", raw=True)
    assert float(raw.min()) < 0 or float(raw.max()) > 255           # the network leaves [0,255]: clipping matters
    ref = (raw / 255 * 2 - 1).clamp(-1, 1)
    assert float((ours - ref).abs().max()) <= ONNX_TOLERANCE
    assert onnx_max_abs_diff(p, s, x) <= ONNX_TOLERANCE             # the library's own check agrees
    assert s.meta["input_contract"]["batched"].startswith("batch of 2 vs 2 single images")


def test_zoo_at_another_size_is_one_line_naming_both_ways_out(tmp_path):
    p = tmp_path / "zoo9.onnx"
    johnson_zoo(p, opset=9, width=4, n_res=1)
    s = load_subject(p, device="cpu", onnx_options={"range": "[0,255]"})
    with pytest.raises(ValueError, match=r"takes 224x224 images only; got 64x64 \(set image_size to 224: "
                                         r"--set image_size=224; .*--onnx size=free\)") as e:
        _generate(s, _content(1, 64))
    assert "\n" not in str(e.value)
    free = load_subject(p, device="cpu", onnx_options={"range": "[0,255]", "size": "free"})
    assert free.meta["input_contract"]["size"] == "free"
    assert onnx_max_abs_diff(p, free, _content(2, 64)) <= ONNX_TOLERANCE   # onnxruntime on the file made free


def test_opset9_nearest_upsample_at_a_fractional_scale_converts_and_linear_is_refused(tmp_path, capsys):
    """Upsample (nearest) takes source pixel floor(x / scale), as torch's nearest does, at any scale;
    linear Upsample interpolates in asymmetric coordinates, which the upgrade cannot keep (it was
    0.3 off): one line naming the node instead of a silently wrong network."""
    from interp_gan.cli import main

    p = tmp_path / "near.onnx"
    upsample9(p, "nearest", 1.5)
    s = load_subject(p, device="cpu")
    x = _content(2, 16)
    ours = _generate(s, x)   # the 24x24 output, resized back to the input's 16x16 (said in the contract)
    assert ours.shape == (2, 3, 16, 16) and "24x24 for a 16x16" in s.meta["input_contract"]["output_resized"]
    ref = to_size(_onnxruntime(p, x, "[0,1]", "[0,1]"), (16, 16))
    assert float((ours - ref).abs().max()) <= ONNX_TOLERANCE
    lin = tmp_path / "lin.onnx"
    upsample9(lin, "linear", 2.0)
    with pytest.raises(ValueError, match=r"node '/body/Upsample' \(Upsample, mode linear, opset 9\) cannot be "
                                         r"converted exactly"):
        load_subject(lin, device="cpu")
    assert main(["inspect", str(lin)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Upsample, mode linear" in err


# --- torch.onnx.export of a CycleGAN ResNet generator ------------------------------------------
@pytest.mark.parametrize("opset", [11, 17])
@pytest.mark.parametrize("dynamic", [True, False])
def test_cyclegan_export_matches_onnxruntime_and_the_torch_network(tmp_path, opset, dynamic):
    """Reflect Pad, InstanceNorm, ConvTranspose, Tanh; the input range is not in the graph and is
    taken to be the output's, [-1,1] (the Tanh), which is CycleGAN's."""
    p = tmp_path / f"cg{opset}.onnx"
    G = cyclegan_export(p, opset=opset, dynamic=dynamic, size=32)
    s = load_subject(p, device="cpu")
    c = s.meta["input_contract"]
    assert (c["range"], c["output_range"]) == ("[-1,1]", "[-1,1]")
    assert "range" in c["defaulted"] and "Tanh" in c["evidence"]["range"] and "output_clamped" not in c
    assert c["size"] == ("free" if dynamic else "fixed")
    assert default_layers(s.generator)[0] == "stem/conv/Conv"
    x = _content(3, 32)
    ours = _generate(s, x)
    assert float((ours - _onnxruntime(p, x, "[-1,1]", "[-1,1]")).abs().max()) <= ONNX_TOLERANCE
    with torch.no_grad():
        assert float((ours - G(x)).abs().max()) <= ONNX_TOLERANCE     # and the network that was exported
    if dynamic:   # any size
        y = _content(2, 48, seed=1)
        assert float((_generate(s, y) - _onnxruntime(p, y, "[-1,1]", "[-1,1]")).abs().max()) <= ONNX_TOLERANCE


@pytest.mark.parametrize("kind", ["cyclegan", "johnson"])
def test_dynamo_export_loads(tmp_path, kind):
    """torch.onnx.export(dynamo=True) writes opset 18+ (Pad, Resize at versions onnx2torch lacks:
    onnx_converters)."""
    pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")
    import logging
    import warnings

    from tests.subject.foreign_onnx import TransformerNet, cyclegan_net

    G, rng = (cyclegan_net(), "[-1,1]") if kind == "cyclegan" else (TransformerNet(4, 2).eval(), "[0,255]")
    p = tmp_path / "dynamo.onnx"
    lo, hi = RANGES[rng]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            torch.onnx.export(G, (torch.rand(1, 3, 32, 32) * (hi - lo) + lo,), str(p), dynamo=True)
        finally:
            logging.disable(logging.NOTSET)
    s = load_subject(p, device="cpu", onnx_options={"range": rng})
    x = _content(2, 32)
    assert float((_generate(s, x) - _onnxruntime(p, x, rng, rng, clip=kind == "johnson")).abs().max()) <= ONNX_TOLERANCE


@pytest.mark.parametrize("opset", [18, 20])
def test_opset_18_plus_pad_and_resize_convert(tmp_path, opset):
    """The forms the dynamo exporter writes at opset 18+ (Pad with a pads input, Resize nearest /
    asymmetric / floor), which onnx2torch 1.5 has no converter for at those opsets, built without
    the exporter; Pad's opset-18 axes input is refused in one line naming the node."""
    p = tmp_path / "z.onnx"
    johnson_zoo(p, opset=opset, width=4, n_res=2, size=32)
    s = load_subject(p, device="cpu", onnx_options={"range": "[0,255]"})
    assert "opset_upgrade" not in s.meta["graph"]
    x = _content(2, 32)
    ref = _onnxruntime(p, x, "[0,255]", "[0,255]", clip=True)
    assert float((_generate(s, x) - ref).abs().max()) <= ONNX_TOLERANCE
    johnson_zoo(p, opset=opset, width=4, n_res=1, size=32, pads_axes=True)
    with pytest.raises(ValueError, match=r"node 'pad_1' \(Pad\) cannot be converted to torch \(NotImplementedError: "
                                         r"Pad with the axes input \(opset 18\)") as e:
        load_subject(p, device="cpu", onnx_options={"range": "[0,255]"})
    assert "\n" not in str(e.value)


# --- float16 files -------------------------------------------------------------------------------
@pytest.mark.parametrize("io", [True, False])
def test_float16_files_are_widened_to_float32(tmp_path, io):
    """float16 weights (and float16 input / output, or Casts inside): converted in float32; equal
    to onnxruntime on the widened graph within 1e-3, and to the float16 file within its rounding."""
    src, p = tmp_path / "cg.onnx", tmp_path / "cg16.onnx"
    cyclegan_export(src, opset=17, dynamic=True, size=32)
    to_float16(src, p, io=io)
    s = load_subject(p, device="cpu")
    w = s.meta["graph"]["float16_widened"]
    assert w["tensors"] > 20 and (w["io"] == ["input", "output"] if io else w["casts"] == 1)
    assert all(b.dtype == torch.float32 for b in s.generator.state_dict().values() if b.is_floating_point())
    x = _content(2, 32)
    assert onnx_max_abs_diff(p, s, x, reference="folded") <= ONNX_TOLERANCE
    ref = _onnxruntime(p, x, "[-1,1]", "[-1,1]", dtype=np.float16 if io else np.float32)
    assert float((_generate(s, x) - ref).abs().max()) <= 1e-2      # float16 arithmetic in the file


def test_a_float16_zoo_network_loads(tmp_path):
    src, p = tmp_path / "zoo.onnx", tmp_path / "zoo16.onnx"
    johnson_zoo(src, opset=9, width=4, n_res=2)
    to_float16(src, p, io=True)
    s = load_subject(p, device="cpu", onnx_options={"range": "[0,255]"})
    assert "opset_upgrade" in s.meta["graph"] and "float16_widened" in s.meta["graph"]
    x = _content(1, 224)
    assert onnx_max_abs_diff(p, s, x, reference="folded") <= ONNX_TOLERANCE
    ref = _onnxruntime(p, x, "[0,255]", "[0,255]", dtype=np.float16, clip=True)
    assert float((_generate(s, x) - ref).abs().max()) <= 1e-2


def test_inspect_says_what_loading_did_to_a_float16_zoo_file(tmp_path, capsys):
    from interp_gan.cli import main

    src, p = tmp_path / "zoo.onnx", tmp_path / "zoo16.onnx"
    johnson_zoo(src, opset=8, width=4, n_res=1)
    to_float16(src, p, io=True)
    png = tmp_path / "sample.png"
    assert main(["inspect", str(p), "--onnx", "range=[0,255]", "--sample", str(png)]) == 0
    out = capsys.readouterr().out
    assert "conversion: " in out and "vs onnxruntime on the widened (float32) graph (tolerance 0.001): ok" in out
    assert "float16: max " in out and "float16 graph widened to float32: " in out
    assert "opset 8 upgraded to 13 for conversion" in out and "initializers listed as graph inputs" in out
    assert "output: the output is clipped to [0,255]" in out and "size fixed [224, 224]" in out and png.is_file()


# --- uint8 NHWC image inputs ----------------------------------------------------------------------
@pytest.mark.parametrize("transpose_first", [False, True])
def test_uint8_nhwc_input(tmp_path, transpose_first):
    """A uint8 [1,H,W,3] image: range [0,255] read from the type; on images of 256 levels the subject
    equals onnxruntime fed uint8. Read by a Cast: the input is simply float; read by anything else:
    a Cast back to uint8 is inserted (and said)."""
    p = tmp_path / "u8.onnx"
    nhwc_uint8(p, size=16, transpose_first=transpose_first)
    s = load_subject(p, device="cpu")
    c = s.meta["input_contract"]
    assert (c["layout"], c["range"], c["output_range"], c["image_dtype"]) == ("NHWC", "[0,255]", "[0,1]", "uint8")
    assert "uint8" in c["evidence"]["range"]
    how = s.meta["graph"]["image_input_widened"]
    assert ("Cast back to uint8" in how) == transpose_first
    x = ((_content(3, 16) + 1) / 2 * 255).round() / 255 * 2 - 1      # on the uint8 grid
    ref = _onnxruntime(p, x, "[0,255]", "[0,1]", layout="NHWC", dtype=np.uint8)
    assert float((_generate(s, x) - ref).abs().max()) <= ONNX_TOLERANCE
    assert onnx_max_abs_diff(p, s, _content(2, 16)) <= ONNX_TOLERANCE   # the library snaps to the grid itself


def test_an_int32_image_input_is_one_line(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Cast", ["img"], ["out"], to=TensorProto.FLOAT, name="cast")]
    graph = helper.make_graph(nodes, "i32", [helper.make_tensor_value_info("img", TensorProto.INT32, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])])
    p = tmp_path / "i32.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(p))
    with pytest.raises(ValueError, match=r"no float or uint8 input of rank 4 \(an image\); inputs are "
                                         r"\[\('img', 'int32', \[1, 3, 8, 8\]\)\]") as e:
        load_subject(p, device="cpu")
    assert "\n" not in str(e.value)


# --- the pipeline, end to end -------------------------------------------------------------------
@pytest.mark.slow   # end to end (test-fast leaves these out), about 10 s each
@pytest.mark.parametrize("kind", ["zoo", "cyclegan"])
def test_dissection_runs_end_to_end(tmp_path, kind, capsys):
    from interp_gan.cli import main

    p = tmp_path / f"{kind}.onnx"
    opts = []
    if kind == "zoo":
        johnson_zoo(p, opset=9, width=4, n_res=2)
        opts = ["--onnx", "range=[0,255]", "--onnx", "size=free"]
    else:
        cyclegan_export(p, opset=17, dynamic=False, size=32)
        opts = ["--onnx", "size=free"]
    out = tmp_path / "report"
    rc = main(["analyze", str(p), *opts, "--pipeline", "analyses/dissection.toml", "--set", "n_images=16",
               "--set", "image_size=32", "--set", "analyses.dissection.n_boot=20",
               "--set", "analyses.dissection.n_perm=20", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert (out / "index.html").is_file() and any((out / "findings").glob("dissection*.csv"))
