"""Embedded colour profiles: a wide-gamut image is converted to sRGB, an sRGB or untagged one is left alone.

The profiles are written here, byte by byte (an ICC v2 matrix / gamma profile from a colour space's
primaries, white point and gamma), and the expected sRGB values come from the same colour science
in numpy (primaries -> XYZ, Bradford adaptation to D50, sRGB's matrix and curve), not from LittleCMS.
"""
import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms

from interp_gan.config import DataConfig
from interp_gan.data import load_data
from interp_gan.data.images import decode_image

D50 = np.array([0.9642, 1.0, 0.8249])
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
# (primaries (x, y) of R, G, B; white (x, y); gamma)
ADOBE_RGB = (((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)), (0.3127, 0.3290), 563 / 256)
PROPHOTO = (((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001)), (0.3457, 0.3585), 1.8)
SRGB_PRIMARIES = (((0.64, 0.33), (0.30, 0.60), (0.15, 0.06)), (0.3127, 0.3290))


def _xyz(x, y):
    return np.array([x / y, 1.0, (1 - x - y) / y])


def _rgb_to_xyz_d50(primaries, white):
    """The matrix from linear RGB to XYZ, white adapted to D50 (Bradford), as an ICC profile stores it."""
    p = np.stack([_xyz(*xy) for xy in primaries], axis=1)
    w = _xyz(*white)
    m = p * np.linalg.solve(p, w)
    adapt = np.linalg.inv(BRADFORD) @ np.diag((BRADFORD @ D50) / (BRADFORD @ w)) @ BRADFORD
    return adapt @ m


def _s15(v):
    return struct.pack(">i", int(round(v * 65536)))


def _icc_profile(space, description: str) -> bytes:
    """An ICC v2 display profile: desc, wtpt, r/g/b XYZ colorants, one gamma curve for r/g/b TRC."""
    primaries, white, gamma = space
    m = _rgb_to_xyz_d50(primaries, white)
    text = description.encode() + b"\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(text)) + text + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
    xyz = lambda v: b"XYZ " + b"\0" * 4 + b"".join(_s15(c) for c in v)  # noqa: E731
    curv = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, int(round(gamma * 256))) + b"\0\0"
    tags = [(b"desc", desc), (b"wtpt", xyz(D50)), (b"rXYZ", xyz(m[:, 0])), (b"gXYZ", xyz(m[:, 1])),
            (b"bXYZ", xyz(m[:, 2])), (b"rTRC", curv), (b"gTRC", curv), (b"bTRC", curv)]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + b"\0" * 12 + b"acsp" + b"\0" * 24 + b"\0" * 4 + b"".join(_s15(c) for c in D50) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def _expected_srgb(rgb: np.ndarray, space) -> np.ndarray:
    """uint8 values in ``space`` -> sRGB uint8: decode the gamma, to XYZ (D50), to linear sRGB, clip, encode."""
    primaries, white, gamma = space
    lin = (rgb.astype(np.float64) / 255.0) ** gamma
    xyz = lin @ _rgb_to_xyz_d50(primaries, white).T
    s = np.clip(xyz @ np.linalg.inv(_rgb_to_xyz_d50(*SRGB_PRIMARIES)).T, 0, 1)
    enc = np.where(s <= 0.0031308, 12.92 * s, 1.055 * s ** (1 / 2.4) - 0.055)
    return np.rint(enc * 255).astype(np.int64)


def _grid() -> np.ndarray:
    """Every combination of 0, 64, 128, 192, 255 per channel: [5, 25, 3] uint8."""
    v = np.array([0, 64, 128, 192, 255], np.uint8)
    return np.stack(np.meshgrid(v, v, v, indexing="ij"), -1).reshape(5, 25, 3)


def _png(arr: np.ndarray, icc: bytes | None = None) -> bytes:
    b = io.BytesIO()
    Image.fromarray(arr).save(b, "PNG", **({"icc_profile": icc} if icc is not None else {}))
    return b.getvalue()


@pytest.mark.parametrize("space,name", [(ADOBE_RGB, "Adobe RGB (1998) test"), (PROPHOTO, "ProPhoto RGB test")])
def test_a_wide_gamut_image_is_converted_to_srgb(space, name):
    grid = _grid()
    colour: dict[str, int] = {}
    got = decode_image(_png(grid, _icc_profile(space, name)), colour).astype(np.int64)
    want = _expected_srgb(grid, space)
    assert np.abs(got - want).max() <= 2, np.abs(got - want).max()
    assert np.abs(got - grid.astype(np.int64)).max() > 60       # the conversion changed the colours a lot
    assert colour == {"converted": 1}
    # the saturated green of the wide space lies outside sRGB: its sRGB value is clipped green
    green = np.zeros((2, 2, 3), np.uint8)
    green[..., 1] = 255
    out = decode_image(_png(green, _icc_profile(space, name)))[0, 0]
    assert tuple(out) == tuple(_expected_srgb(green, space)[0, 0]) and out[1] == 255 and out[0] <= 2


def test_untagged_and_srgb_tagged_images_are_unchanged():
    grid = _grid()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    colour: dict[str, int] = {}
    assert np.array_equal(decode_image(_png(grid), colour), grid)
    assert np.array_equal(decode_image(_png(grid, srgb), colour), grid)
    assert colour == {}


def test_a_profile_that_cannot_be_used_leaves_the_pixels_and_is_counted(tmp_path):
    grid = _grid()
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()   # a Lab profile on RGB pixels
    colour: dict[str, int] = {}
    for icc in (b"not an ICC profile at all", lab, _icc_profile(ADOBE_RGB, "cut")[:100]):
        assert np.array_equal(decode_image(_png(grid, icc), colour), grid)
    assert colour == {"not applied": 3}
    # in a folder: each said once at the top, never an error
    c = tmp_path / "photos"
    c.mkdir()
    (c / "adobe.png").write_bytes(_png(grid, _icc_profile(ADOBE_RGB, "Adobe RGB (1998) test")))
    (c / "broken.png").write_bytes(_png(grid, b"garbage"))
    (c / "plain.png").write_bytes(_png(grid))
    sd = load_data(DataConfig(source="", content=str(c), image_size=16, load_size=16))
    assert len(sd.content) == 3 and sd.skipped == {}
    assert "1 image(s) with a colour profile (Adobe RGB, Display P3, ...) converted to sRGB" in sd.notes
    assert "1 image(s) with a colour profile that could not be read or used: pixels used as stored" in sd.notes


def test_exif_orientation_and_the_profile_are_both_applied():
    arr = np.zeros((4, 8, 3), np.uint8)
    arr[:] = (128, 255, 128)
    exif = Image.Exif()
    exif[0x0112] = 6                                   # rotate 90 degrees clockwise when shown
    b = io.BytesIO()
    Image.fromarray(arr).save(b, "PNG", exif=exif.tobytes(), icc_profile=_icc_profile(ADOBE_RGB, "Adobe test"))
    out = decode_image(b.getvalue())
    assert out.shape == (8, 4, 3)
    assert np.abs(out[0, 0].astype(np.int64) - _expected_srgb(arr[:1, :1], ADOBE_RGB)[0, 0]).max() <= 2


def test_a_converted_image_is_fingerprinted_apart_from_its_bytes(tmp_path):
    """Caches keyed by the data fingerprint (the style classifiers) were built from the unconverted
    pixels of a tagged file: its converted pixels get another key, an untagged file keeps its own."""
    import hashlib
    from interp_gan.data.images import scan_files
    grid = _grid()
    tagged, plain = tmp_path / "tagged.png", tmp_path / "plain.png"
    tagged.write_bytes(_png(grid, _icc_profile(ADOBE_RGB, "Adobe RGB (1998) test")))
    plain.write_bytes(_png(grid))
    good, _ = scan_files([tagged, plain], 0.2)
    digests = {p.name: d for p, _, d in good}
    assert digests["tagged.png"] == hashlib.sha256(tagged.read_bytes()).hexdigest() + "+srgb"
    assert digests["plain.png"] == hashlib.sha256(plain.read_bytes()).hexdigest()
