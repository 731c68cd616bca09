"""What an adversarial survey of shared ONNX / TorchScript exports found (docs/models.md, "Foreign
exports"), each graph built in tests/subject/survey_onnx.py: a tf2onnx Clip(-1, 1) output, [3,H,W]
inputs and outputs, several outputs, float64, opset 22, onnxruntime's FusedConv, a 2x output, a
grayscale output, external data, a U-Net that needs multiples of 32, and the refusals (control
flow, a second image input, a torch.jit.optimize_for_inference archive). Each loaded subject equals
onnxruntime on the file, fed through the declared range, within ONNX_TOLERANCE (computed here);
each refusal is one line naming the cause and the way out.
"""
import numpy as np
import pytest
import torch

pytest.importorskip("onnx2torch", reason="ONNX subjects need onnx and onnx2torch (pip install onnx onnx2torch)")
ort = pytest.importorskip("onnxruntime", reason="the reference check needs onnxruntime")

from interp_gan.subject.geometry import to_size  # noqa: E402
from interp_gan.subject.loading import load_subject  # noqa: E402
from interp_gan.subject.onnx import ONNX_TOLERANCE  # noqa: E402
from tests.subject import survey_onnx as S  # noqa: E402

RANGES = {"[-1,1]": (-1.0, 1.0), "[0,1]": (0.0, 1.0), "[0,255]": (0.0, 255.0)}


def _content(n: int = 2, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 4, 4, generator=g)
    return (torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear") * 2 - 1).clamp(-1, 1)


def _ort(path, x: torch.Tensor, rng="[-1,1]", out_rng="[-1,1]", nhwc=False, unbatched=False, output=0,
         dtype=np.float32) -> torch.Tensor:
    """onnxruntime on the file, one image per run, [-1,1] NCHW in and out (a 1-channel output repeated)."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    lo, hi = RANGES[rng]
    olo, ohi = RANGES[out_rng]
    ys = []
    for i in range(len(x)):
        a = ((x[i:i + 1] + 1) / 2 * (hi - lo) + lo).numpy().astype(dtype)
        a = a.transpose(0, 2, 3, 1) if nhwc else a
        y = sess.run(None, {sess.get_inputs()[0].name: a[0] if unbatched else a})[output].astype(np.float32)
        y = y[None] if y.ndim == 3 else y
        y = y.transpose(0, 3, 1, 2) if nhwc else y
        ys.append(np.repeat(y, 3, axis=1) if y.shape[1] == 1 else y)
    return (torch.from_numpy(np.concatenate(ys)) - olo) / (ohi - olo) * 2 - 1


def _gen(s, x):
    with torch.no_grad():
        return s.generate(x, torch.zeros(len(x), dtype=torch.long))


def _one_line(capsys, *argv) -> str:
    from interp_gan.cli import main

    capsys.readouterr()   # what building the file printed (torch's deprecation warnings)
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_a_tf2onnx_clip_at_the_output_fixes_both_ranges(tmp_path):
    """AnimeGAN-style NHWC export ending in clip_by_value(y, -1, 1): output [-1, 1] read from the
    Clip (before: nothing read, [0, 1] defaulted for both sides, 2.0 off)."""
    p = tmp_path / "tf.onnx"
    S.tf_clip(p)
    s = load_subject(p, device="cpu")
    c = s.meta["input_contract"]
    assert (c["layout"], c["range"], c["output_range"]) == ("NHWC", "[-1,1]", "[-1,1]")
    assert "output_range" in c["inferred"] and "Clip(-1, 1)" in c["evidence"]["output_range"]
    x = _content()
    assert float((_gen(s, x) - _ort(p, x, nhwc=True)).abs().max()) <= ONNX_TOLERANCE


def test_an_output_twice_the_input_is_resized_back_and_its_tanh_read_through_the_resize(tmp_path):
    p = tmp_path / "up.onnx"
    S.plain(p, tail="Tanh+Resize2x")
    s = load_subject(p, device="cpu")
    c = s.meta["input_contract"]
    assert c["output_range"] == "[-1,1]" and "output_range" in c["inferred"]
    assert "64x64 for a 32x32 input" in c["output_resized"] and c["output_resized"] in s.meta["model_notes"]
    x = _content()
    y = _gen(s, x)
    assert y.shape == x.shape
    assert float((y - to_size(_ort(p, x), (16, 16))).abs().max()) <= ONNX_TOLERANCE


@pytest.mark.parametrize("inp,out", [(True, True), (False, True), (True, False)])
def test_an_unbatched_input_or_output_gets_a_batch_dim(tmp_path, inp, out):
    """[3, H, W] (exported on one image, the graph's own Unsqueeze / Squeeze of axis 0 bypassed): a
    batch is one forward, so hooks see every image."""
    p = tmp_path / "u.onnx"
    S.unbatched(p, inp, out)
    s = load_subject(p, device="cpu")
    assert s.meta["graph"]["batch_dims_added"] == {"inputs": ["input"] if inp else [],
                                                   "outputs": ["output"] if out else [],
                                                   "squeezes_bypassed": int(inp) + int(out)}
    assert "one image per call" not in s.meta["input_contract"]["batched"]   # its own Unsqueeze / Squeeze bypassed
    x = _content()
    y = _gen(s, x)
    assert y.shape == x.shape
    assert float((y - _ort(p, x, unbatched=inp)).abs().max()) <= ONNX_TOLERANCE


@pytest.mark.parametrize("mask_first", [False, True])
def test_of_several_outputs_the_image_is_kept_and_the_rest_dropped(tmp_path, mask_first):
    p = tmp_path / "two.onnx"
    S.two_outputs(p, mask_first)
    s = load_subject(p, device="cpu")
    assert s.meta["graph"]["outputs_dropped"] == {"kept": "output", "dropped": ["mask"]}
    assert "mask/Conv" not in dict(s.generator.named_modules())   # nothing only the mask needs
    x = _content()
    assert float((_gen(s, x) - _ort(p, x, output=int(mask_first))).abs().max()) <= ONNX_TOLERANCE


def test_a_float64_file_runs_in_float32(tmp_path):
    """onnxruntime has no float64 Conv on CPU; the reference is the same graph written in float32."""
    p, p32 = tmp_path / "f64.onnx", tmp_path / "f32.onnx"
    S.float64(p)
    S.plain(p32)
    s = load_subject(p, device="cpu")
    assert s.meta["graph"]["float16_widened"]["from"] == ["float64"]
    x = _content()
    assert float((_gen(s, x) - _ort(p32, x)).abs().max()) <= ONNX_TOLERANCE


def test_opset_22_converts_and_a_node_named_like_a_keyword_too(tmp_path):
    p = tmp_path / "o22.onnx"
    S.opset22(p)
    s = load_subject(p, device="cpu")
    assert s.meta["graph"]["node_names_renamed"] == 1
    x = _content()
    assert float((_gen(s, x) - _ort(p, x)).abs().max()) <= ONNX_TOLERANCE


def test_a_file_onnxruntime_optimised_loads_with_its_fused_convs_split(tmp_path):
    p = tmp_path / "opt.onnx"
    S.fused(p, tmp_path / "plain.onnx")
    import onnx

    assert [n.op_type for n in onnx.load(str(p)).graph.node] == ["FusedConv", "FusedConv"]
    s = load_subject(p, device="cpu")
    assert s.meta["graph"]["fused_convs_split"] == 2
    assert s.meta["input_contract"]["output_range"] == "[-1,1]"   # the fused Tanh, read after the split
    assert sum(isinstance(m, torch.nn.Conv2d) for m in s.generator.modules()) == 2
    x = _content()
    assert float((_gen(s, x) - _ort(p, x)).abs().max()) <= ONNX_TOLERANCE


def test_a_grayscale_output_is_repeated_into_rgb(tmp_path):
    p = tmp_path / "gray.onnx"
    S.plain(p, tail="gray")
    s = load_subject(p, device="cpu")
    assert "grayscale" in s.meta["input_contract"]["gray_output"]
    x = _content()
    y = _gen(s, x)
    assert y.shape == x.shape and torch.equal(y[:, 0], y[:, 2])
    assert float((y - _ort(p, x, "[0,1]", "[0,1]")).abs().max()) <= ONNX_TOLERANCE


def test_external_data_loads_and_its_absence_is_one_line_naming_the_file(tmp_path, capsys):
    p = tmp_path / "ext.onnx"
    S.plain(p, save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    s = load_subject(p, device="cpu")
    x = _content()
    assert float((_gen(s, x) - _ort(p, x)).abs().max()) <= ONNX_TOLERANCE
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "ext.onnx").write_bytes(p.read_bytes())
    err = _one_line(capsys, "inspect", str(moved / "ext.onnx"))
    assert "external data (ext.onnx.data" in err and "copy it next to ext.onnx" in err


def test_a_free_graph_that_fails_at_the_size_names_the_multiple_it_needs(tmp_path):
    p = tmp_path / "unet.onnx"
    S.unet32(p)
    s = load_subject(p, device="cpu")
    assert _gen(s, _content(1, 64)).shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"fails on 48x48 images and runs on 64x64: its height and width must be "
                                         r"multiples of 32 \(set image_size to one: --set image_size=64\)"):
        _gen(s, _content(1, 48))


def test_refusals_name_the_cause_and_the_way_out(tmp_path, capsys):
    p = tmp_path / "if.onnx"
    S.if_graph(p)
    err = _one_line(capsys, "inspect", str(p))
    assert "(If)" in err and "control flow" in err and "torch.jit.trace" in err and "static shape" not in err
    p = tmp_path / "adain.onnx"
    S.two_images(p)
    err = _one_line(capsys, "inspect", str(p))
    assert "input 'style'" in err and "second image" in err and "style_predictor" in err and "feed=" not in err


def test_an_optimize_for_inference_archive_is_named(tmp_path, capsys):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, 1, 1), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 3, 1, 1)).eval()
    p = tmp_path / "opt.pt"
    torch.jit.save(torch.jit.optimize_for_inference(torch.jit.script(net)), str(p))
    err = _one_line(capsys, "inspect", str(p))
    assert "torch.jit.optimize_for_inference" in err and "torch.jit.freeze" in err and "corrupt" not in err


def test_the_batching_check_compares_shapes_not_only_values():
    """A graph that gives [1, 2, 3, H, W] for a batch of 2 (torch's squeeze of a batch axis that is
    not 1 does nothing) broadcast against 2 single images to a difference of 0 and passed."""
    from interp_gan.subject.onnx_runner import OnnxRunner, check_batching

    runner = OnnxRunner(lambda x: x[None] if len(x) > 1 else x, "NCHW", "[-1,1]", "[-1,1]")
    batched, why = check_batching(runner, None, torch.device("cpu"))
    assert not batched and "batch of 2 gave shape [1, 2, 3, 32, 32]" in why
    assert _gen_runner(runner).shape == (2, 3, 8, 8)


def _gen_runner(runner):
    with torch.no_grad():
        return runner(_content(2, 8), None)


@pytest.mark.parametrize("scale,rng", [(255.0, "[0,255]"), (1.0, "[0,1]")])
def test_imagenet_mean_subtraction_says_the_input_range(tmp_path, scale, rng):
    """(x - mean) / std with the ImageNet means on [0, 255] used to be read as [0, 1] (defaulted)."""
    p = tmp_path / "vgg.onnx"
    S.imagenet(p, scale)
    s = load_subject(p, device="cpu")
    c = s.meta["input_contract"]
    assert c["range"] == rng and "range" in c["inferred"] and "ImageNet means" in c["evidence"]["range"]
    x = _content()
    assert float((_gen(s, x) - _ort(p, x, rng, "[0,1]")).abs().max()) <= ONNX_TOLERANCE
