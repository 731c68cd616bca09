"""Bad-image corpus: each file is converted correctly or skipped with the right reason."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from interp_gan.data.images import BadImage, decode_image, list_images, read_image, scan_images


def _png_bytes(im: Image.Image) -> bytes:
    b = io.BytesIO()
    im.save(b, "PNG")
    return b.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height pixels (no real pixel data behind it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)   # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _noise(h=48, w=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_rgb_png_roundtrips_exactly(tmp_path):
    a = _noise()
    (tmp_path / "x.png").write_bytes(_png_bytes(Image.fromarray(a)))
    out = read_image(tmp_path / "x.png")
    assert out.dtype == np.uint8 and out.shape == (48, 64, 3)
    np.testing.assert_array_equal(out, a)


def test_truncated_jpeg_is_caught_by_load(tmp_path):
    b = io.BytesIO()
    Image.fromarray(_noise(128, 128)).save(b, "JPEG", quality=95)
    data = b.getvalue()
    p = tmp_path / "half.jpg"
    p.write_bytes(data[: len(data) // 2])
    Image.open(p).verify()  # the trap: verify() passes a truncated JPEG
    with pytest.raises(BadImage) as e:
        read_image(p)
    assert e.value.reason == "truncated"


def test_empty_and_text_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("this is not a picture\n")
    with pytest.raises(BadImage) as e:
        read_image(tmp_path / "empty.png")
    assert e.value.reason == "empty file"
    with pytest.raises(BadImage) as e:
        read_image(tmp_path / "notes.png")
    assert e.value.reason == "not an image"
    assert isinstance(e.value, ValueError)


def test_decompression_bomb_with_default_limit():
    data = _bomb_png(20000, 20000)    # 400 M pixels declared in a < 100 byte file
    assert len(data) < 200 and Image.MAX_IMAGE_PIXELS < 20000 * 20000 / 2
    with pytest.raises(BadImage) as e:
        decode_image(data)
    assert e.value.reason == "decompression bomb"


def test_decompression_bomb_warning_counts_as_bad(monkeypatch):
    data = _png_bytes(Image.fromarray(_noise(40, 40)))   # 1600 px
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1000 < 1600 < 2000: Pillow only warns
    with pytest.raises(BadImage) as e:
        decode_image(data)
    assert e.value.reason == "decompression bomb"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    assert decode_image(data).shape == (40, 40, 3)


def test_16bit_png_keeps_its_grey_levels(tmp_path):
    ramp = np.linspace(0, 65535, 32 * 64).reshape(32, 64).astype(np.uint16)
    (tmp_path / "deep.png").write_bytes(_png_bytes(Image.fromarray(ramp)))
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    out = read_image(tmp_path / "deep.png")
    assert out.shape == (32, 64, 3)
    g = out[..., 0].ravel()
    assert len(np.unique(g)) > 200                        # convert("RGB") would leave a handful
    assert g.min() == 0 and g.max() == 255
    assert np.all(np.diff(g.astype(int)) >= 0)            # still a monotone ramp
    np.testing.assert_allclose(g, ramp.ravel() / 257.0, atol=0.5 + 1e-9)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_grayscale_becomes_three_equal_channels(tmp_path):
    g = np.arange(256, dtype=np.uint8).reshape(16, 16)
    (tmp_path / "g.png").write_bytes(_png_bytes(Image.fromarray(g, "L")))
    out = read_image(tmp_path / "g.png")
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], g)


def test_rgba_and_la_composite_on_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)     # opaque red stays red
    rgba[0, 1] = (0, 0, 255, 0)       # fully transparent -> white
    rgba[1, 0] = (0, 0, 0, 128)       # half-transparent black -> mid grey
    (tmp_path / "a.png").write_bytes(_png_bytes(Image.fromarray(rgba, "RGBA")))
    out = read_image(tmp_path / "a.png").astype(int)
    assert tuple(out[0, 0]) == (255, 0, 0)
    assert tuple(out[0, 1]) == (255, 255, 255)
    assert all(abs(v - 127) <= 1 for v in out[1, 0])
    la = Image.fromarray(np.array([[[0, 0], [0, 255]]], np.uint8), "LA")
    (tmp_path / "la.png").write_bytes(_png_bytes(la))
    out = read_image(tmp_path / "la.png")
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 1]) == (0, 0, 0)


def test_palette_image_with_transparency(tmp_path):
    p = Image.new("P", (2, 1))
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * (3 * 254))
    p.putpixel((0, 0), 0)
    p.putpixel((1, 0), 1)
    (tmp_path / "opaque.png").write_bytes(_png_bytes(p))
    assert tuple(read_image(tmp_path / "opaque.png")[0, 1]) == (10, 200, 30)
    b = io.BytesIO()
    p.save(b, "PNG", transparency=0)       # palette index 0 transparent
    out = decode_image(b.getvalue())
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 1]) == (10, 200, 30)


def test_cmyk_jpeg(tmp_path):
    im = Image.new("CMYK", (16, 16), (255, 0, 0, 0))   # pure cyan ink
    im.save(tmp_path / "c.jpg", "JPEG", quality=100)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    out = read_image(tmp_path / "c.jpg").astype(int)
    assert out.shape == (16, 16, 3)
    assert np.abs(out - np.array([0, 255, 255])).max() <= 3


def test_missing_file_is_not_a_bad_image(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "nope.png")


def _corpus(folder, n_good):
    for i in range(n_good):
        (folder / f"good{i}.png").write_bytes(_png_bytes(Image.fromarray(_noise(8, 8, seed=i))))
    b = io.BytesIO()
    Image.fromarray(_noise(64, 64)).save(b, "JPEG")
    (folder / "trunc.jpg").write_bytes(b.getvalue()[:300])
    (folder / "zero.png").write_bytes(b"")
    (folder / "text.png").write_text("hello")
    (folder / "bomb.png").write_bytes(_bomb_png(30000, 30000))
    (folder / "readme.txt").write_text("ignored: not an image extension")


def test_scan_skips_and_counts_by_reason(tmp_path):
    _corpus(tmp_path, n_good=8)
    paths = list_images(tmp_path)
    assert len(paths) == 12 and not any(p.suffix == ".txt" for p in paths)
    imgs, skipped = scan_images(paths, max_bad_fraction=0.5)
    assert len(imgs) == 8 and all(i.shape == (8, 8, 3) for i in imgs)
    assert skipped == {"truncated": 1, "empty file": 1, "not an image": 1, "decompression bomb": 1}


def test_scan_too_many_bad_is_one_clear_error(tmp_path):
    _corpus(tmp_path, n_good=8)            # 4 of 12 bad = 33%
    with pytest.raises(ValueError) as e:
        scan_images(list_images(tmp_path), max_bad_fraction=0.2)
    msg = str(e.value)
    assert "\n" not in msg
    assert "4 of 12" in msg and "max_bad_fraction" in msg and "truncated 1" in msg


def test_scan_nothing_readable_or_nothing_given(tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    with pytest.raises(ValueError, match="1 of 1"):
        scan_images([tmp_path / "zero.png"], max_bad_fraction=0.99)
    with pytest.raises(ValueError, match="no image files"):
        scan_images([], max_bad_fraction=0.5)
