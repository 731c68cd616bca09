"""① Data: content photos + labelled style images, from folders or the embedded offline set.

    from interp_gan.config import DataConfig
    from interp_gan.data import load_data, random_crops

    data = load_data(DataConfig(styles=("lite01", "lite17")))   # embedded set, built on first use
    data.content.shape, data.style.shape       # [N, 3, 80, 80], [M, 3, 80, 80] in [-1, 1]
    data.style_names, data.style_labels        # ["lite01", "lite17"], [M] int64
    batch = random_crops(data.content, 64, n=8, generator=torch.Generator().manual_seed(0))

    load_data(DataConfig(source="styles/", content="photos/"))   # STYLE_DIR/<style>/*.png
    load_data(DataConfig(source="horse2zebra/"))                 # CycleGAN trainA/ trainB/
    load_data(cfg, sample=Sample(content=256, per_style=512, seed=0))   # an analysis: decode a seeded sample
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import DataConfig
from .embedded import DEMO_STYLES, EMBEDDED_STYLES, cache_dir, check_styles, ensure_embedded
from .folders import CYCLEGAN_LAYOUT, STYLE_LAYOUT, images_in, resolve_folders
from .images import BadImage, read_files, read_image, scan_images
from .sampling import Sample, seeded_order
from .transforms import centre_crop, random_crops, resize_square, to_tensor
from ..util import shown

__all__ = ["StyleData", "load_data", "Sample", "random_crops", "centre_crop", "cache_dir", "read_image",
           "scan_images", "BadImage", "EMBEDDED_STYLES", "DEMO_STYLES"]


@dataclass
class StyleData:
    """What training and analysis read: content photos and labelled style images."""
    content: torch.Tensor          # [N, 3, L, L] float32 in [-1, 1], L = cfg.load_size
    style: torch.Tensor            # [M, 3, L, L]
    style_labels: torch.Tensor     # [M] int64 in 0..S-1
    style_names: list[str]
    fingerprint: str               # sha256 over sorted (relative path, file sha256) + load_size
    skipped: dict[str, int] = field(default_factory=dict)   # reason -> count of bad images
    source: str = "embedded"       # "embedded" or the folder path
    skipped_files: list[str] = field(default_factory=list)   # the first few bad images (prefix/relative path)
    notes: list[str] = field(default_factory=list)   # what else to say once: files left out, images upscaled
    style_fingerprint: str = ""    # the same over the style images only (what the style classifiers see)


def _read(paths: list[Path], root: Path, prefix: str, size: int, frac: float, what: str,
          small: list[int], colour: dict[str, int], want: int | None = None):
    """-> ([tensor rows as arrays], [(relative path, sha256)], skipped, [bad files' prefix/relative path],
    files tried); ``paths`` are read in their order until ``want`` good ones (None: all);
    ``small[0]`` counts the images smaller than ``size`` (upscaled), ``colour`` the colour profiles, transparent
    images and animations met (``decode_image``)."""
    def resize(img):           # as each file is read: full-size photos are never all in memory
        if min(img.shape[:2]) < size:
            small[0] += 1
        return resize_square(img, size)
    try:
        scan = read_files(paths, frac, transform=resize, want=want)
    except ValueError as e:
        raise ValueError(f"{what} ({root}): {e}") from None
    for k, v in scan.colour.items():
        colour[k] = colour.get(k, 0) + v
    rel = lambda p: f"{prefix}/{Path(p).relative_to(root).as_posix()}"  # noqa: E731
    return ([img for _, img, _ in scan.good], [(rel(p), h) for p, _, h in scan.good], scan.skipped,
            [rel(p) for p in scan.bad], scan.tried)


def _fingerprint(hashes: list[tuple[str, str]], load_size: int) -> str:
    h = hashlib.sha256()
    for rel, digest in sorted(hashes):
        h.update(f"{rel}\0{digest}\n".encode("utf-8", "surrogateescape"))   # a file name that is not UTF-8: its bytes
    h.update(f"load_size={load_size}".encode())
    return h.hexdigest()


def load_data(cfg: DataConfig, cache: str | os.PathLike | None = None, sample: Sample | None = None) -> StyleData:
    """Load ``cfg``'s data set into memory at ``cfg.load_size``.

    ``cfg.source == "embedded"``: the embedded set (built into ``cache`` or ``cache_dir()`` on
    first use) with ``cfg.styles`` (empty = all of ``EMBEDDED_STYLES``). Otherwise
    ``cfg.source`` is a style folder (``STYLE_DIR/<style_name>/*.png``, content from
    ``cfg.content``) or a CycleGAN folder (``trainA/`` content, ``trainB/`` style "B").
    ``cfg.source == ""``: content only (from ``cfg.content``), an empty style set
    (``style`` [0, 3, L, L], ``style_names`` []), e.g. for analysing a third-party model.
    Unreadable images are skipped and counted in ``.skipped``; more than
    ``cfg.max_bad_fraction`` bad in any one folder raises ``ValueError``.

    ``sample`` (an analysis; training reads everything): only ``sample.content`` content photos,
    read in a seeded order of the sorted file list until that many good ones are in hand and
    returned in that order, and at most ``sample.per_style`` images per style (chosen the same
    way, kept in file order); ``max_bad_fraction`` then applies to the files tried, and the
    fingerprint covers exactly the files used. A note says what was sampled (``sampling.py``).
    """
    L, frac = cfg.load_size, cfg.max_bad_fraction
    if cfg.source == "embedded":
        names = check_styles(cfg.styles)
        root = ensure_embedded(names, cache)
        content_dir = root / "content"
        style_dirs = {n: root / "style" / n for n in names}
        layout, source = "the embedded layout (rebuild: delete the cache folder)", "embedded"
    elif not cfg.source:
        if not cfg.content:
            raise ValueError("data.source is empty (content only) but data.content names no folder; "
                             "set data.content, or data.source to 'embedded' or a style folder")
        content_dir, style_dirs = Path(cfg.content), {}
        layout, source = "CONTENT_DIR/**/*.png", str(cfg.content)
    else:
        content_dir, style_dirs = resolve_folders(cfg.source, cfg.content, cfg.styles)
        layout, source = f"{STYLE_LAYOUT}, or {CYCLEGAN_LAYOUT}", str(cfg.source)

    left: dict[str, int] = {}
    small, colour = [0], {}
    paths = images_in(content_dir, "content", layout, left)
    want = None
    if sample is not None:
        paths, want = seeded_order(paths, sample.seed), sample.content
    c_imgs, hashes, skipped, bad, tried = _read(paths, content_dir, "content", L, frac, "content folder",
                                                small, colour, want)
    notes = [f"content: {len(c_imgs):,} of {len(paths):,} photos used (seeded sample)"] if tried < len(paths) else []
    s_imgs, labels, capped, s_hashes = [], [], [], []
    for k, (name, d) in enumerate(style_dirs.items()):
        paths = images_in(d, f"style {name!r}", layout, left)
        want = sample.per_style if sample is not None and len(paths) > sample.per_style else None
        imgs, h, sk, b, tried = _read(seeded_order(paths, sample.seed) if want else paths, d, f"style/{name}",
                                      L, frac, f"style {name!r}", small, colour, want)
        if want:               # the sampled images in file order, as a whole folder is read
            order = sorted(range(len(imgs)), key=lambda i: h[i][0])
            imgs, h = [imgs[i] for i in order], [h[i] for i in order]
        if tried < len(paths):
            capped.append(f"{name} {len(imgs):,} of {len(paths):,}")
        s_imgs += imgs
        labels += [k] * len(imgs)
        s_hashes += h
        bad += b
        for r, n in sk.items():
            skipped[r] = skipped.get(r, 0) + n
    style = to_tensor(s_imgs) if s_imgs else torch.zeros(0, 3, L, L)
    if capped:
        notes.append(f"style images: {', '.join(capped[:8])}{' ...' if len(capped) > 8 else ''} used "
                     f"(seeded sample, at most {sample.per_style} per style)")
    if small[0]:
        notes.append(f"{small[0]} image(s) smaller than {L} px on their short side: upscaled")
    if colour.get("converted"):
        notes.append(f"{colour['converted']} image(s) with a colour profile (Adobe RGB, Display P3, ...) "
                     f"converted to sRGB")
    if colour.get("not applied"):
        notes.append(f"{colour['not applied']} image(s) with a colour profile that could not be read or used: "
                     f"pixels used as stored")
    if colour.get("transparency"):
        notes.append(f"{colour['transparency']} image(s) with transparent pixels: composited on white")
    if colour.get("first frame"):
        notes.append(f"{colour['first frame']} animated or multi-page image(s): the first frame used")
    if left:
        notes.append(f"{sum(left.values())} file(s) left out ({', '.join(f'{k} {v}' for k, v in sorted(left.items()))})")
    return StyleData(content=to_tensor(c_imgs), style=style,
                     style_labels=torch.tensor(labels, dtype=torch.int64),
                     style_names=list(style_dirs), fingerprint=_fingerprint(hashes + s_hashes, L),
                     skipped=skipped, source=source, skipped_files=[shown(b) for b in bad[:10]],
                     notes=[shown(n) for n in notes],
                     style_fingerprint=_fingerprint(s_hashes, L))
