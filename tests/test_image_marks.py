"""Provenance marks (interp_gan.provenance_mark): images the package writes say, in XMP, that a
trained model made them (IPTC DigitalSourceType trainedAlgorithmicMedia) and which model; an
unmarked image is reported as such by `interp-gan inspect`."""
import base64
import io
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from PIL import Image

from interp_gan.cli import main
from interp_gan.findings import Finding
from interp_gan.provenance_mark import (TRAINED_ALGORITHMIC_MEDIA, marked_bytes, read_mark, save_marked_image)
from interp_gan.reporting import ImageGrid, ReportContext, Section, register_section, write_report
from interp_gan.reporting.exports import find_chromium

SHA = "fedcba9876543210" * 4
RNG = np.random.default_rng(0)
IMG = RNG.integers(0, 255, (20, 24, 3), dtype=np.uint8)


def _pillow_xmp(im: Image.Image) -> str:
    """The XMP packet as Pillow exposes it (PNG iTXt 'XML:com.adobe.xmp'; JPEG / WebP 'xmp')."""
    x = im.info.get("XML:com.adobe.xmp") or im.info.get("xmp") or ""
    return x.decode() if isinstance(x, bytes) else x


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_marked_file_reads_back_with_pillow(tmp_path, suffix):
    p = save_marked_image(IMG, tmp_path / f"a{suffix}", SHA)
    with Image.open(p) as im:
        xmp = _pillow_xmp(im)
        assert im.size == (24, 20)
        if suffix == ".png":
            assert np.array_equal(np.asarray(im), IMG)        # the mark does not touch the pixels
    assert f"<Iptc4xmpExt:DigitalSourceType>{TRAINED_ALGORITHMIC_MEDIA}<" in xmp
    mark = read_mark(p)
    assert mark["model_sha256"] == SHA and mark["tool"] == "interp_gan" and mark["created"]


def test_inspect_reads_a_mark_and_reports_an_unmarked_image(tmp_path, capsys):
    marked = save_marked_image(IMG, tmp_path / "m.png", SHA)
    plain = tmp_path / "plain.png"
    Image.fromarray(IMG).save(plain)
    assert main(["inspect", str(marked)]) == 0
    out = capsys.readouterr().out
    assert "marked as produced by a trained model" in out and SHA in out and TRAINED_ALGORITHMIC_MEDIA in out
    assert main(["inspect", str(plain)]) == 0
    out = capsys.readouterr().out
    assert "no provenance mark" in out and SHA not in out
    assert read_mark(plain) is None
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert main(["inspect", str(bad)]) == 2 and "could not be read" in capsys.readouterr().err


def test_inspect_of_any_image_type_and_of_an_empty_file_is_plain(tmp_path, capsys):
    """A .gif / .tif is an image too (no mark, said), not an 'unknown checkpoint type'; an empty or
    non-image file is one line without Pillow's object reprs."""
    for name in ("a.gif", "a.tif", "a.bmp"):
        Image.fromarray(IMG).save(tmp_path / name)
        assert main(["inspect", str(tmp_path / name)]) == 0, name
        assert "no provenance mark" in capsys.readouterr().out
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    for name, why in (("empty.png", "(an empty file)"), ("text.png", "(not an image format Pillow knows)")):
        assert main(["inspect", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert f"could not be read as an image {why}" in err and "<_io" not in err, err


def test_training_sample_grid_is_marked_with_the_generator_weights(tmp_path):
    import torch

    from interp_gan.models import StyleNet
    from interp_gan.training.samples import save_sample_grid, weights_sha256

    torch.manual_seed(0)
    G = StyleNet(2, ch=4, n_down=1, n_blocks=1, style_dim=8, latent_dim=4).eval()
    g = torch.Generator().manual_seed(0)

    class Data:
        style_names = ["a", "b"]
        content = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
        style = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
        style_labels = torch.tensor([0, 1, 0, 1])
    p = save_sample_grid(G, Data, tmp_path / "samples" / "step_000001.png", size=16, n_content=2)
    with Image.open(p) as im:
        assert TRAINED_ALGORITHMIC_MEDIA in _pillow_xmp(im)
    mark = read_mark(p)
    assert mark["model_sha256"] == weights_sha256(G) and "generator weights" in mark["model_sha256_of"]
    with torch.no_grad():
        G.blocks[0].conv1.weight.add_(1)
    assert weights_sha256(G) != mark["model_sha256"]         # the hash follows the weights


@register_section("_mark_units")
def _section(f, ctx):
    fig = go.Figure(go.Bar(x=[0, 1], y=[1, 2]))
    grid = ImageGrid(f.arrays["images"], captions=["a", "b"], ncols=2)
    sec = Section("Marked units", [grid, fig], figures={"bar": fig})
    sec.paper_grids = {"grid": grid}
    return sec


def _report(tmp_path, static):
    imgs = np.stack([IMG, RNG.integers(0, 255, (20, 24, 3), dtype=np.uint8)])
    f = Finding("_mark_units", tables={"t": pd.DataFrame({"x": [1]})}, arrays={"images": imgs})
    ctx = ReportContext(name="m", meta={"sha256": SHA}, style_names=["a"])
    return write_report(tmp_path / "r", [f], ctx, static_figures=static)


def test_report_inline_images_are_marked(tmp_path):
    out = _report(tmp_path, static=False)
    uris = re.findall(r'src="data:image/(\w+);base64,([^"]+)"', (out / "index.html").read_text())
    assert len(uris) >= 2
    for fmt, b64 in uris:
        mark = read_mark(base64.b64decode(b64))
        assert mark and mark["model_sha256"] == SHA, fmt


@pytest.mark.skipif(not find_chromium(), reason="paper figures need Chromium (kaleido)")
def test_report_paper_png_figures_are_marked(tmp_path):
    out = _report(tmp_path, static=True)
    pngs = sorted((out / "paper").rglob("*.png"))
    assert pngs, "no PNG figure was exported"
    for p in pngs:
        with Image.open(p) as im:
            assert TRAINED_ALGORITHMIC_MEDIA in _pillow_xmp(im), p.name
            assert round(im.info["dpi"][0]) == 300
        assert read_mark(p)["model_sha256"] == SHA


def test_marked_bytes_refuses_an_unknown_format():
    with pytest.raises(ValueError, match="cannot mark"):
        marked_bytes(IMG, "GIF", SHA)
    assert read_mark(marked_bytes(IMG, "JPEG", None))["model_sha256"] == "unknown"


def test_onnx_inspect_sample_is_marked_with_the_model_hash(tmp_path):
    import torch

    from interp_gan.subject.onnx_check import write_sample
    from interp_gan.subject.protocol import Subject

    subject = Subject.from_module(torch.nn.Conv2d(3, 3, 1), meta={"checkpoint_sha256": SHA})
    p, _ = write_sample(subject, tmp_path / "net.inspect.png", 16)
    with Image.open(p) as im:
        assert TRAINED_ALGORITHMIC_MEDIA in _pillow_xmp(im)
    assert read_mark(p)["model_sha256"] == SHA
