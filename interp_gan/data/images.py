"""Read any image file as uint8 RGB, and skip (and count) the files that cannot be read.

    img = read_image("photo.png")                 # [H, W, 3] uint8, or raises BadImage
    imgs, skipped = scan_images(paths, max_bad_fraction=0.2)
    skipped                                       # {"truncated": 2, "not an image": 1}

Conversions done here because Pillow's ``convert("RGB")`` gets them wrong or loses data:
16-bit grayscale (``I;16``/``I``) is scaled to 8 bits by 255/65535 (``convert`` clips it);
transparent images (RGBA, LA, palette with transparency) are composited on white;
palette and CMYK images go through Pillow's own conversions; EXIF orientation is applied.

``Image.load()`` decodes every pixel: ``Image.verify()`` passes a half-truncated JPEG.
Pillow's decompression-bomb guard stays on, and its warning counts as an error here: a
24 KB PNG can declare 200 M pixels.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["BadImage", "IMAGE_EXTENSIONS", "decode_image", "read_image", "list_images",
           "scan_images", "scan_files"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


class BadImage(ValueError):
    """An image file that cannot be used; ``.reason`` is a short tag for counting.

    Reasons: "empty file", "not an image", "truncated", "decompression bomb", "unreadable".
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _to_rgb(im: Image.Image) -> np.ndarray:
    """Any Pillow mode -> [H, W, 3] uint8."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        # 16-bit grey (PNG/TIFF). "I" is 32-bit int in Pillow but in practice holds 16-bit data.
        a = np.asarray(im).astype(np.float64)
        a = np.clip(np.rint(a * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
        return np.repeat(a[:, :, None], 3, axis=2)
    if mode == "F":
        a = np.asarray(im).astype(np.float64)
        scale = 255.0 if np.nanmax(a) <= 1.0 else 1.0  # [0,1] floats or 0..255 floats
        a = np.clip(np.rint(np.nan_to_num(a) * scale), 0, 255).astype(np.uint8)
        return np.repeat(a[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "La", "RGBa", "PA", "P") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB"))  # L, 1, CMYK, YCbCr, RGB, ...


def decode_image(data: bytes) -> np.ndarray:
    """Decode image bytes to [H, W, 3] uint8 RGB; raise ``BadImage(reason)`` if unusable."""
    if len(data) == 0:
        raise BadImage("empty file")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
            im.load()  # decodes every pixel; verify() would pass a truncated JPEG
            im = ImageOps.exif_transpose(im)
            arr = _to_rgb(im)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise BadImage("decompression bomb", str(e)) from None
        except UnidentifiedImageError as e:
            raise BadImage("not an image", str(e)) from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError) as e:
            text = str(e).lower()
            reason = "truncated" if ("truncated" in text or "end of file" in text) else "unreadable"
            raise BadImage(reason, str(e)) from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise BadImage("unreadable", f"decoded to shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as [H, W, 3] uint8 RGB; raise ``BadImage(reason)`` if unusable.

    A missing file raises ``FileNotFoundError`` (that is a wrong path, not a bad image).
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise BadImage("unreadable", str(e)) from None
    return decode_image(data)


def list_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files (by extension, case-insensitive) under ``folder``, sorted; hidden files skipped."""
    root = Path(folder)
    it = root.rglob("*") if recursive else root.glob("*")
    out = [p for p in it if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
           and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted(out)


def scan_files(paths: list[Path], max_bad_fraction: float
               ) -> tuple[list[tuple[Path, np.ndarray, str]], dict[str, int]]:
    """Like ``scan_images`` but keeps ``(path, image, sha256 of the file bytes)`` per good file."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no image files given; expected at least one .png/.jpg/... file")
    good: list[tuple[Path, np.ndarray, str]] = []
    skipped: Counter[str] = Counter()
    first_bad: tuple[Path, str] | None = None
    for p in paths:
        try:
            data = p.read_bytes()
            good.append((p, decode_image(data), hashlib.sha256(data).hexdigest()))
        except (BadImage, OSError) as e:
            reason = e.reason if isinstance(e, BadImage) else "unreadable"
            skipped[reason] += 1
            first_bad = first_bad or (p, reason)
    n_bad = sum(skipped.values())
    if not good or n_bad > max_bad_fraction * len(paths):
        counts = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
        raise ValueError(
            f"{n_bad} of {len(paths)} images could not be read ({counts}; e.g. {first_bad[0]}: "
            f"{first_bad[1]}), more than max_bad_fraction={max_bad_fraction:g}; "
            f"remove or re-export the bad files, or raise data.max_bad_fraction")
    return good, dict(skipped)


def scan_images(paths: list[Path], max_bad_fraction: float = 0.2
                ) -> tuple[list[np.ndarray], dict[str, int]]:
    """Read ``paths``; skip and count bad files by reason.

    Raises one-line ``ValueError`` when more than ``max_bad_fraction`` of the files are bad or
    none is readable.

        imgs, skipped = scan_images(list_images("photos/"), max_bad_fraction=0.2)
    """
    good, skipped = scan_files(paths, max_bad_fraction)
    return [img for _, img, _ in good], skipped
