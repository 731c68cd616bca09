"""An image's embedded colour profile (ICC) -> sRGB pixels, the space the models were trained in.

    im, status = to_srgb(Image.open("adobe_rgb.jpg"))   # status: None, "converted" or "not applied"

A photo exported in Adobe RGB, Display P3 or ProPhoto stores other numbers for the same colour
than an sRGB one; read as they are, its greens and reds come out dull. An image tagged with such
a profile is converted with LittleCMS (Pillow's ``ImageCms``, relative colorimetric, colours
outside sRGB clipped). Left as they are: untagged images, images tagged sRGB (by the profile's
description), and images whose profile cannot be read or does not fit their pixels (a Lab or
CMYK profile on RGB pixels, a damaged profile): those are ``"not applied"``, for the caller to
count and say, never an error.
"""
from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image, ImageCms

__all__ = ["to_srgb"]

# image mode -> (the profile colour space it needs, the mode LittleCMS writes)
_MODES = {"RGB": ("RGB", "RGB"), "RGBA": ("RGB", "RGBA"), "L": ("GRAY", "RGB"), "CMYK": ("CMYK", "RGB")}


@lru_cache(maxsize=1)
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@lru_cache(maxsize=32)          # a folder's photos mostly share one or two profiles
def _transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """The transform from ``icc`` to sRGB for ``mode`` pixels; None when ``icc`` is sRGB itself.
    Raises when the profile cannot be read or does not fit ``mode``."""
    src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    if "srgb" in (ImageCms.getProfileDescription(src) or "").lower():
        return None
    space, out_mode = _MODES[mode]
    if src.profile.xcolor_space.strip() != space:
        raise ValueError(f"a {src.profile.xcolor_space.strip()} profile on {mode} pixels")
    return ImageCms.buildTransform(src, _srgb(), mode, out_mode,
                                   renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)


def to_srgb(im: Image.Image) -> tuple[Image.Image, str | None]:
    """``(image in sRGB, status)``: status is None (no profile, or sRGB already: ``im`` as is),
    ``"converted"``, or ``"not applied"`` (a profile that cannot be read or used: ``im`` as is)."""
    icc = im.info.get("icc_profile")
    if not icc or not isinstance(icc, bytes):
        return im, None
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")          # palette entries are colours in the profile's space too
    if im.mode not in _MODES:
        return im, "not applied"         # 16-bit / float grey, LA, ...: no 8-bit LittleCMS route
    try:
        tr = _transform(icc, im.mode)
        if tr is None:
            return im, None
        return ImageCms.applyTransform(im, tr), "converted"
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError, KeyError):
        return im, "not applied"
