"""Find the image files of a folder data set and check its layout.

Two layouts are accepted (auto-detected):

    STYLE_DIR/<style_name>/**/*.png     one subfolder per style, name = style name;
                                        content comes from a separate CONTENT_DIR/**/*.png
    ROOT/trainA/*.png, ROOT/trainB/*.png   CycleGAN layout: trainA = content, trainB = style "B"
                                        (testA/ and testB/ are optional and not used for training)

    content_dir, style_dirs = resolve_folders("styles/", "photos/", styles=("monet",))
    style_dirs   # {"monet": Path("styles/monet")}

A wrong layout or an empty folder raises ``ValueError`` that says what layout was expected.
"""
from __future__ import annotations

import os
from pathlib import Path

from .images import IMAGE_EXTENSIONS, list_images

__all__ = ["is_cyclegan", "style_subfolders", "resolve_folders", "images_in"]

_EXTS = "/".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
STYLE_LAYOUT = "STYLE_DIR/<style_name>/*.png with at least one subfolder"
CYCLEGAN_LAYOUT = "ROOT/trainA/*.png (content) and ROOT/trainB/*.png (style 'B')"


def is_cyclegan(folder: str | os.PathLike) -> bool:
    """True if ``folder`` has both ``trainA/`` and ``trainB/`` subfolders."""
    p = Path(folder)
    return (p / "trainA").is_dir() and (p / "trainB").is_dir()


def images_in(folder: str | os.PathLike, what: str, layout: str) -> list[Path]:
    """Image files under ``folder`` (recursive); ``ValueError`` naming ``layout`` if none."""
    p = Path(folder)
    if not p.is_dir():
        raise ValueError(f"{what} folder {str(p)!r} does not exist or is not a folder; "
                         f"expected {layout}")
    files = list_images(p)
    if not files:
        n_other = sum(1 for q in p.rglob("*") if q.is_file())
        raise ValueError(f"{what} folder {str(p)!r} holds no images ({_EXTS}); got {n_other} other "
                         f"file(s); expected {layout}")
    return files


def style_subfolders(style_dir: str | os.PathLike) -> dict[str, Path]:
    """``{style_name: folder}`` for the visible subfolders of ``style_dir``, sorted by name."""
    p = Path(style_dir)
    if not p.is_dir():
        raise ValueError(f"style folder {str(p)!r} does not exist or is not a folder; expected "
                         f"{STYLE_LAYOUT}, or {CYCLEGAN_LAYOUT}")
    subs = {q.name: q for q in sorted(p.iterdir()) if q.is_dir() and not q.name.startswith(".")}
    if not subs:
        n_img = len(list_images(p, recursive=False))
        raise ValueError(f"expected {STYLE_LAYOUT} (or {CYCLEGAN_LAYOUT}); got {n_img} image "
                         f"file(s) directly in {str(p)!r} and no subfolders. Move each style's "
                         f"images into a subfolder named after the style")
    return subs


def _select(available: dict[str, Path], styles: tuple[str, ...] | list[str]) -> dict[str, Path]:
    if not styles:
        return available
    unknown = [s for s in styles if s not in available]
    if unknown:
        raise ValueError(f"unknown style(s) {unknown}; valid names: {sorted(available)}")
    return {s: available[s] for s in dict.fromkeys(styles)}


def resolve_folders(source: str | os.PathLike, content: str | os.PathLike = "",
                    styles: tuple[str, ...] | list[str] = ()) -> tuple[Path, dict[str, Path]]:
    """``(content_dir, {style_name: style_dir})`` for a style folder or a CycleGAN folder."""
    src = Path(source)
    if is_cyclegan(src):
        if content and Path(content).resolve() != (src / "trainA").resolve():
            raise ValueError(f"{str(src)!r} has the CycleGAN layout, whose content is trainA/; "
                             f"got data.content={str(content)!r}: leave data.content empty")
        return src / "trainA", _select({"B": src / "trainB"}, styles)
    half = [d for d in ("trainA", "trainB") if (src / d).is_dir()]
    if len(half) == 1:
        raise ValueError(f"{str(src)!r} has {half[0]}/ but not the other half; expected "
                         f"{CYCLEGAN_LAYOUT}, or {STYLE_LAYOUT}")
    subs = style_subfolders(src)
    if not content:
        raise ValueError(f"data.source {str(src)!r} is a style folder ({STYLE_LAYOUT}), so "
                         f"data.content must name a folder of content photos; got none")
    return Path(content), _select(subs, styles)
