"""Read any image file as uint8 RGB, and skip (and count) the files that cannot be read.

    img = read_image("photo.png")                 # [H, W, 3] uint8, or raises BadImage
    imgs, skipped = scan_images(paths, max_bad_fraction=0.2)
    skipped                                       # {"truncated": 2, "not an image": 1}

Conversions done here because Pillow's ``convert("RGB")`` gets them wrong or loses data:
16-bit grayscale (``I;16``/``I;16B``) is scaled to 8 bits by 255/65535 (``convert`` clips it);
32-bit integer (``I``) by the smallest of 8, 16 or 32 bits that holds its maximum; 32-bit float
(``F``) by its range: [-1, 1] (when it has negatives down to -1 and nothing above 1), [0, 1],
[0, 255] or [0, 65535] (other negatives clipped; beyond 65535 divided by its maximum); an image
holding NaN or Inf is skipped ("non-finite pixels");
transparent images (RGBA, LA, palette with transparency) are composited on white (counted when
any pixel is less than opaque: ``decode_image``'s ``colour["transparency"]``);
an embedded colour profile (Adobe RGB, Display P3, ProPhoto, a CMYK or grey profile) is
converted to sRGB with LittleCMS (``colour.to_srgb``; a profile that cannot be read or used
leaves the pixels as stored, counted by the caller, never an error);
palette and CMYK images go through Pillow's own conversions; EXIF orientation is applied;
an animated GIF / WebP / multi-page TIFF is read as its first frame (counted: ``colour["first frame"]``);
a TIFF Pillow cannot open
(RGB float32) is read with tifffile under the same rules.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .colour import to_srgb

__all__ = ["BadImage", "IMAGE_EXTENSIONS", "decode_image", "read_image", "list_images", "folder_inventory",
           "scan_images", "scan_files", "read_files", "Scan", "image_paths", "has_images"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


class BadImage(ValueError):
    """An image file that cannot be used; ``.reason`` is a short tag for counting.

    Reasons: "empty file", "not an image", "truncated", "decompression bomb", "non-finite pixels",
    "broken link", "unreadable".
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _to_uint8(a: np.ndarray, full_scale: float) -> np.ndarray:
    if not np.isfinite(a).all():
        raise BadImage("non-finite pixels", f"{int((~np.isfinite(a)).sum())} NaN/Inf value(s)")
    return np.clip(np.rint(a * (255.0 / full_scale)), 0, 255).astype(np.uint8)


def _grey_to_rgb(a: np.ndarray, full_scale: float) -> np.ndarray:
    return np.repeat(_to_uint8(a, full_scale)[:, :, None], 3, axis=2)


def _full_scale(top: float) -> float:
    """The white level of a float or 32-bit integer image from its maximum: 1, 255, 65535, 2**32 - 1."""
    for level in (1.0, 255.0, 65535.0, 2.0 ** 32 - 1):
        if top <= level:
            return level
    return top


def _float_to_uint8(a: np.ndarray) -> np.ndarray:
    """Float values by their range: [-1, 1], [0, 1], [0, 255], [0, 65535] (see the module docstring)."""
    fin = a[np.isfinite(a)]
    top, low = (float(fin.max()), float(fin.min())) if fin.size else (0.0, 0.0)
    if -1.0 <= low < 0 and top <= 1.0:          # a normalised [-1, 1] array saved as is
        return _to_uint8((a + 1) / 2, 1.0)
    return _to_uint8(a, _full_scale(top) if top > 0 else 1.0)


def _tiff_array_to_rgb(data: bytes) -> np.ndarray | None:
    """A TIFF Pillow cannot open (RGB float32, ...) read with tifffile (installed with scikit-image):
    its first page as [H, W, 3] uint8, or None when it is no such TIFF."""
    if data[:4] not in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return None
    try:
        import tifffile
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages[0]
            if Image.MAX_IMAGE_PIXELS and page.imagewidth * page.imagelength > Image.MAX_IMAGE_PIXELS:
                raise BadImage("decompression bomb", f"{page.imagewidth}x{page.imagelength} pixels")
            a = np.asarray(page.asarray())
    except BadImage:
        raise
    except Exception:
        return None
    if a.ndim == 3 and a.shape[0] in (3, 4) and a.shape[2] not in (3, 4):
        a = a.transpose(1, 2, 0)                     # planar (channels first)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.dtype.kind not in "fui" or min(a.shape[:2]) < 1:
        return None
    if a.dtype.kind == "f":
        u = _float_to_uint8(a.astype(np.float64))
    else:
        bits = {1: 255.0, 2: 65535.0}.get(a.dtype.itemsize) or _full_scale(float(a.max()))
        u = _to_uint8(a.astype(np.float64), bits)
    if u.shape[2] == 4:                               # alpha on white
        al = u[:, :, 3:].astype(np.float64) / 255.0
        u = np.rint(u[:, :, :3] * al + 255.0 * (1 - al)).astype(np.uint8)
    return np.repeat(u, 3, axis=2) if u.shape[2] == 1 else u


def _to_rgb(im: Image.Image, colour: dict[str, int] | None = None) -> np.ndarray:
    """Any Pillow mode -> [H, W, 3] uint8; ``colour["transparency"]`` counts an image with a pixel less than opaque."""
    mode = im.mode
    if mode.startswith("I;16"):                      # 16-bit grey (PNG/TIFF/PGM)
        return _grey_to_rgb(np.asarray(im).astype(np.float64), 65535.0)
    if mode == "I":                                  # 32-bit integer: depth from its values
        a = np.asarray(im).astype(np.float64)
        return _grey_to_rgb(a, max(255.0, _full_scale(float(a.max()))) if a.size else 255.0)
    if mode == "F":
        return np.repeat(_float_to_uint8(np.asarray(im).astype(np.float64))[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "La", "RGBa", "PA", "P") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        if colour is not None and rgba.getextrema()[3][0] < 255:
            colour["transparency"] = colour.get("transparency", 0) + 1
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB"))  # L, 1, CMYK, YCbCr, RGB, ...


def decode_image(data: bytes, colour: dict[str, int] | None = None) -> np.ndarray:
    """Decode image bytes to [H, W, 3] uint8 RGB; raise ``BadImage(reason)`` if unusable.
    ``colour`` (optional) counts the colour profiles met, ``{"converted": n, "not applied": n}``, and what
    else changed the pixels: ``"transparency"`` (composited on white), ``"first frame"`` (of an animation)."""
    if len(data) == 0:
        raise BadImage("empty file")
    status, frames, seen = None, False, {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
            frames = getattr(im, "n_frames", 1) > 1
            if frames:
                im.seek(0)                   # an animation or a multi-page file: its first frame
            im.load()  # decodes every pixel; verify() would pass a truncated JPEG
            im = ImageOps.exif_transpose(im)     # keeps info["icc_profile"]; to_srgb's output has no EXIF
            im, status = to_srgb(im)
            arr = _to_rgb(im, seen)
        except BadImage:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise BadImage("decompression bomb", str(e)) from None
        except UnidentifiedImageError as e:
            arr = _tiff_array_to_rgb(data)           # an RGB float TIFF, which Pillow cannot open
            if arr is None:
                raise BadImage("not an image", str(e)) from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError) as e:
            text = str(e).lower()
            reason = "truncated" if ("truncated" in text or "end of file" in text) else "unreadable"
            raise BadImage(reason, str(e)) from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise BadImage("unreadable", f"decoded to shape {arr.shape}")
    if colour is not None:
        for key in [status] * bool(status) + ["first frame"] * frames + list(seen):
            colour[key] = colour.get(key, 0) + 1
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


def _walk(root: str, recursive: bool):
    """(folder, its real path, [os.DirEntry of the files in it]) under ``root``, top down, subfolders
    in name order, following links to folders, each real folder once; unreadable folders are
    passed over (as ``os.walk`` does). One ``scandir`` per folder: no ``stat`` per file."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        folder = todo.pop()
        real = os.path.realpath(folder)
        if real in seen:              # a link loop, or a second link to a folder already read
            continue
        seen.add(real)
        files, dirs = [], []
        try:
            with os.scandir(folder) as entries:
                for e in entries:
                    try:
                        is_dir = e.is_dir()          # follows a link, as os.walk(followlinks=True)
                    except OSError:
                        is_dir = False
                    (dirs if is_dir else files).append(e)
        except OSError:
            continue
        yield folder, real, files
        if recursive:                 # pushed in reverse: popped in name order
            todo += [os.path.join(folder, n) for n in sorted((d.name for d in dirs if not d.name.startswith(".")),
                                                             reverse=True)]


def _suffix(name: str) -> str:
    """``Path(name).suffix`` without building a Path."""
    i = name.rfind(".")
    return name[i:] if 0 < i < len(name) - 1 else ""


def folder_inventory(folder: str | os.PathLike, recursive: bool = True) -> tuple[list[Path], dict[str, int]]:
    """``(image files, {reason: count} of the files left out)`` under ``folder``.

    Images are found by extension (case-insensitive), in subfolders too (links to folders are
    followed, each real folder read once). Left out and counted: hidden files (``.DS_Store``,
    macOS ``._name`` copies) as "hidden", other extensions as "not an image type (.txt)", and a
    second name for a file already listed (a link to it) as "link to a file already listed". A
    broken link with an image extension stays in the list: reading it fails as "broken link".
    Sorted as ``sorted()`` sorts Paths. ``image_paths`` gives the same list as strings.
    """
    files, left = image_paths(folder, recursive)
    return [Path(q) for q in files], left


def image_paths(folder: str | os.PathLike, recursive: bool = True) -> tuple[list[str], dict[str, int]]:
    """``folder_inventory`` as path strings: 200k files list in about a second (one ``scandir`` per
    folder, no ``stat`` per file, no Path object per file), for a caller that reads a sample."""
    out: list[str] = []
    left: dict[str, int] = {}
    real_seen: set[str] = set()
    n_folders = 0
    for d, real_d, entries in _walk(str(Path(folder)), recursive):
        n_folders += 1
        files = [e.name for e in entries if not e.is_symlink()]
        links = [e.name for e in entries if e.is_symlink()]
        for name, is_link in [(n, False) for n in sorted(files)] + [(n, True) for n in sorted(links)]:
            suffix = _suffix(name).lower()                       # a file before links to it
            if name.startswith("."):
                why = "hidden"
            elif suffix not in IMAGE_EXTENSIONS:
                why = f"not an image type ({suffix or 'no extension'})"
            else:
                q = os.path.join(d, name)
                real = os.path.realpath(q) if is_link else q if real_d == d else os.path.join(real_d, name)
                if real in real_seen:
                    why = "link to a file already listed"
                else:
                    real_seen.add(real)
                    out.append(q)
                    continue
            left[why] = left.get(why, 0) + 1
    # Path order compares path components; within one folder that is the plain string order
    return sorted(out, key=lambda q: q.split(os.sep)) if n_folders > 1 else sorted(out), left


def has_images(folder: str | os.PathLike, recursive: bool = True) -> bool:
    """``bool(image_paths(folder)[0])``, stopping at the first image: a check, not a listing."""
    for _, _, entries in _walk(str(Path(folder)), recursive):
        if any(not e.name.startswith(".") and _suffix(e.name).lower() in IMAGE_EXTENSIONS for e in entries):
            return True
    return False


def list_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files (by extension, case-insensitive) under ``folder``, sorted; hidden files skipped
    (``folder_inventory`` also counts what it leaves out)."""
    return folder_inventory(folder, recursive)[0]


@dataclass
class Scan:
    """What ``read_files`` found: the good files as ``(path, image, sha256 of the file bytes)``, the
    bad ones met (in the order tried) and their count by reason, how many files were tried, and
    the colour profiles met (``decode_image``'s ``colour``)."""
    good: list[tuple[Path, np.ndarray, str]]
    skipped: dict[str, int]
    bad: list[Path]
    tried: int
    colour: dict[str, int] = field(default_factory=dict)


JUDGED = 100   # files the bad share is judged on, at least, when a sample meets a bad file


def read_files(paths: list[Path], max_bad_fraction: float,
               transform: Callable[[np.ndarray], np.ndarray] | None = None, want: int | None = None) -> Scan:
    """Read ``paths`` in the order given, skipping and counting bad files, until ``want`` good
    ones are in hand (None: all). ``transform`` (e.g. a resize) is applied to each image as it is
    read, so a folder of large photos never sits in memory at full size.

    ``max_bad_fraction`` applies to the files tried: more bad than that share of them (or no good
    file) raises a one-line ``ValueError``. With ``want``, once a bad file has been met the share
    is judged on at least ``JUDGED`` files (all, when fewer are listed): reading goes on past the
    ``want`` good ones to that many (the extra good ones are not kept), so a sample of 16 does not
    fail a folder with a few bad files by the luck of its draw; and reading stops once that many
    were tried with the share over the limit, so a folder of mostly broken files is not read to
    its end."""
    if not paths:
        raise ValueError("no image files given; expected at least one .png/.jpg/... file")
    good: list[tuple[Path, np.ndarray, str]] = []
    bad: list[Path] = []
    skipped: Counter[str] = Counter()
    colour: dict[str, int] = {}
    first_bad: tuple[Path, str] | None = None
    floor = min(len(paths), max(want or 0, JUDGED))
    for p in paths:
        tried = len(good) + len(bad)
        if want is not None and ((len(good) >= want and (not bad or tried >= floor))
                                 or (tried >= floor and len(bad) > max_bad_fraction * tried)):
            break
        p = Path(p)
        try:
            if p.is_symlink() and not p.exists():
                raise BadImage("broken link", f"{p} -> {os.readlink(p)}")
            data = p.read_bytes()
            converted = colour.get("converted", 0)
            img = decode_image(data, colour)
            digest = hashlib.sha256(data).hexdigest()
            if colour.get("converted", 0) > converted:   # its pixels are the sRGB conversion: caches
                digest += "+srgb"                        # keyed before conversion existed do not match
            good.append((p, transform(img) if transform else img, digest))
        except (BadImage, OSError) as e:
            reason = e.reason if isinstance(e, BadImage) else "unreadable"
            skipped[reason] += 1
            bad.append(p)
            first_bad = first_bad or (p, reason)
    tried = len(good) + len(bad)
    good = good if want is None else good[:want]
    if not good or len(bad) > max_bad_fraction * tried:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
        of = f"{tried} images" if tried == len(paths) else f"{tried} images tried (of {len(paths)} listed)"
        raise ValueError(
            f"{len(bad)} of {of} could not be read ({counts}; e.g. {first_bad[0]}: "
            f"{first_bad[1]}), more than max_bad_fraction={max_bad_fraction:g}; "
            f"remove or re-export the bad files, or raise data.max_bad_fraction (a training recipe) / "
            f"max_bad_fraction (an analysis pipeline: --set max_bad_fraction=0.5)")
    return Scan(good, dict(skipped), bad, tried, colour)


def scan_files(paths: list[Path], max_bad_fraction: float, transform: Callable[[np.ndarray], np.ndarray] | None = None
               ) -> tuple[list[tuple[Path, np.ndarray, str]], dict[str, int]]:
    """Like ``scan_images`` but keeps ``(path, image, sha256 of the file bytes)`` per good file
    (``read_files`` of all ``paths``)."""
    scan = read_files(paths, max_bad_fraction, transform)
    return scan.good, scan.skipped


def scan_images(paths: list[Path], max_bad_fraction: float = 0.2
                ) -> tuple[list[np.ndarray], dict[str, int]]:
    """Read ``paths``; skip and count bad files by reason.

    Raises one-line ``ValueError`` when more than ``max_bad_fraction`` of the files are bad or
    none is readable.

        imgs, skipped = scan_images(list_images("photos/"), max_bad_fraction=0.2)
    """
    good, skipped = scan_files(paths, max_bad_fraction)
    return [img for _, img, _ in good], skipped
