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

from .images import IMAGE_EXTENSIONS, has_images, image_paths, list_images

__all__ = ["is_cyclegan", "style_subfolders", "resolve_folders", "images_in", "DATA_LAYOUT", "resolve_data_dir",
           "child_dir", "match_style", "select_styles"]

_EXTS = "/".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
STYLE_LAYOUT = "STYLE_DIR/<style_name>/*.png with at least one subfolder"
CYCLEGAN_LAYOUT = "ROOT/trainA/*.png (content) and ROOT/trainB/*.png (style 'B')"
DATA_LAYOUT = ("DIR/content/ (photos) with DIR/style/<style_name>/ (real images of each style), "
               "or DIR holding only photos, or DIR/trainA/ + DIR/trainB/ (CycleGAN)")


def child_dir(folder: str | os.PathLike, *names: str) -> Path | None:
    """The subfolder of ``folder`` named one of ``names``, in that order of preference: the exact name,
    else the only one that differs in case alone (``TrainA``, ``Content``); None if there is none."""
    p = Path(folder)
    for name in names:
        if (p / name).is_dir():
            return p / name
    try:
        subs = [q for q in p.iterdir() if q.is_dir() and not q.name.startswith(".")]
    except OSError:
        return None
    for name in names:
        hits = [q for q in subs if q.name.casefold() == name.casefold()]
        if len(hits) == 1:
            return hits[0]
    return None


def match_style(folder_name: str, style_names: list[str]) -> str | None:
    """The model style a style folder stands for: its own name, else the one style its name equals
    ignoring case (``Monet`` -> ``monet``); None if neither."""
    if folder_name in style_names:
        return folder_name
    hits = [n for n in style_names if n.casefold() == folder_name.casefold()]
    return hits[0] if len(hits) == 1 else None


def is_cyclegan(folder: str | os.PathLike) -> bool:
    """True if ``folder`` has both ``trainA/`` and ``trainB/`` subfolders (in any case)."""
    return child_dir(folder, "trainA") is not None and child_dir(folder, "trainB") is not None


def images_in(folder: str | os.PathLike, what: str, layout: str,
              left_out: dict[str, int] | None = None) -> list[str]:
    """Image files under ``folder`` (recursive, as sorted path strings: ``image_paths``, fast on a
    folder of 200k); ``ValueError`` naming ``layout`` if none. ``left_out`` (optional) gathers the
    counts of files that are not used (``folder_inventory``)."""
    p = Path(folder)
    if not p.is_dir():
        raise ValueError(f"{what} folder {str(p)!r} does not exist or is not a folder; "
                         f"expected {layout}")
    files, left = image_paths(p)
    if not files:
        other = ", ".join(f"{k} {v}" for k, v in sorted(left.items()))
        raise ValueError(f"{what} folder {str(p)!r} holds no images ({_EXTS}); got "
                         f"{sum(left.values())} other file(s){f' ({other})' if other else ''}; expected {layout}")
    if left_out is not None:
        for k, v in left.items():
            left_out[k] = left_out.get(k, 0) + v
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


def select_styles(available: dict[str, Path], styles: tuple[str, ...] | list[str] | None,
                  where: str = "") -> dict[str, Path]:
    """``{style_name: folder}`` of ``available`` kept to ``styles`` (in their order, repeats once), or all of
    ``available`` when ``styles`` is empty; ``ValueError`` naming the unknown styles and the valid names
    (``where``, when given, says which style set: "... in STYLE_DIR")."""
    if not styles:
        return available
    unknown = [s for s in styles if s not in available]
    if unknown:
        raise ValueError(f"unknown style(s) {unknown}{f' in {where}' if where else ''}; "
                         f"valid names: {sorted(available)}")
    return {s: available[s] for s in dict.fromkeys(styles)}


def resolve_folders(source: str | os.PathLike, content: str | os.PathLike = "",
                    styles: tuple[str, ...] | list[str] = ()) -> tuple[Path, dict[str, Path]]:
    """``(content_dir, {style_name: style_dir})`` for a style folder or a CycleGAN folder."""
    src = Path(source)
    if is_cyclegan(src):
        a, b = child_dir(src, "trainA"), child_dir(src, "trainB")
        if content and Path(content).resolve() != a.resolve():
            raise ValueError(f"{str(src)!r} has the CycleGAN layout, whose content is trainA/; "
                             f"got data.content={str(content)!r}: leave data.content empty")
        return a, select_styles({"B": b}, styles)
    half = [d for d in ("trainA", "trainB") if child_dir(src, d) is not None]
    if len(half) == 1:
        raise ValueError(f"{str(src)!r} has {half[0]}/ but not the other half; expected "
                         f"{CYCLEGAN_LAYOUT}, or {STYLE_LAYOUT}")
    subs = style_subfolders(src)
    if not content:
        raise ValueError(f"data.source {str(src)!r} is a style folder ({STYLE_LAYOUT}), so "
                         f"data.content must name a folder of content photos; got none")
    return Path(content), select_styles(subs, styles)


_CONTENT_NAMES = ("content", "contents", "photos")    # the content folder, in order of preference
_STYLE_NAMES = ("style", "styles")


def _layout(d: Path) -> tuple[Path | None, Path | None, list[str]]:
    """(content folder, style folder, CycleGAN halves present) of ``d``, names matched as ``child_dir``."""
    half = [h for h in ("trainA", "trainB") if child_dir(d, h) is not None]
    return child_dir(d, *_CONTENT_NAMES), child_dir(d, *_STYLE_NAMES), half


def _nested(d: Path) -> Path | None:
    """The one visible subfolder of ``d`` that holds the layout itself, when ``d`` holds no image of its
    own and no other folder (a data set unpacked into a folder of its name): else None."""
    try:
        entries = [q for q in d.iterdir() if not q.name.startswith(".")]
    except OSError:
        return None
    subs = [q for q in entries if q.is_dir()]
    if len(subs) != 1 or list_images(d, recursive=False):
        return None
    content, style, half = _layout(subs[0])
    return subs[0] if (style is not None and content is not None) or len(half) == 2 else None


def resolve_data_dir(folder: str | os.PathLike, style_names: list[str],
                     other_styles: str = "") -> tuple[dict, list[str]]:
    """``--data DIR`` for an analysis of a model with ``style_names`` ->
    (``DataConfig`` keywords ``source``, ``content``, ``styles``; notes to say once). ``other_styles``
    (optional) ends the note on style folders that are none of ``style_names``: how they could become
    styles (a model whose styles are a style set's codes), ``{style_dir}`` in it replaced by the style folder.

    ``DIR/content/`` + ``DIR/style/<name>/``: the photos, and real images of the model's styles
    (folders of other names are not used, empty ones neither: each said in a note; a folder whose name
    differs from a style's in case alone stands for it); the CycleGAN ``trainA/`` + ``trainB/`` (style
    "B"); otherwise the images under ``DIR/content/`` (when there is one) or under DIR are the content
    photos. Folder names are matched in any case, ``styles/`` stands for ``style/`` and ``contents/`` or
    ``photos/`` for ``content/`` (said); a DIR whose only entry is a folder holding that layout is read
    there (said).
    A missing DIR, a file, or ``style/`` without ``content/`` is a ``ValueError`` naming the layout.
    """
    d = Path(folder)
    if not d.exists():
        raise ValueError(f"--data {str(d)!r}: no such folder; expected {DATA_LAYOUT}")
    if not d.is_dir():
        raise ValueError(f"--data {str(d)!r} is a file, not a folder; expected {DATA_LAYOUT}")
    notes = []
    content, style, half = _layout(d)
    if content is None and style is None and not half and (inner := _nested(d)) is not None:
        notes.append(f"{d.name}/ holds one folder, {inner.name}/, with the data layout: read from {inner}")
        d = inner
        content, style, half = _layout(d)
    if len(half) == 1:
        raise ValueError(f"--data {str(d)!r} has {half[0]}/ but not the other half; expected {DATA_LAYOUT}")
    named = [(q.name, want) for q, want in ((content, "content"), (style, "style")) if q is not None
             and q.name != want] if not half else [(q.name, w) for q, w in ((child_dir(d, "trainA"), "trainA"),
                                                                          (child_dir(d, "trainB"), "trainB"))
                                                       if q.name != w]
    if named:
        notes.append("read " + ", ".join(f"{got}/ as {want}/" for got, want in named))
    if half:
        content, subs = child_dir(d, "trainA"), {"B": child_dir(d, "trainB")}
    elif style is not None:
        if content is None:
            raise ValueError(f"--data {str(d)!r} has {style.name}/ but no content/ folder of photos; expected "
                             f"{DATA_LAYOUT}")
        subs = style_subfolders(style)
    else:
        photos = content if content is not None else d
        if not has_images(photos):                       # (not a second listing of 200k files)
            images_in(photos, "--data", DATA_LAYOUT)    # nothing usable: one line naming the layout
        return {"source": "", "content": str(photos), "styles": ()}, notes
    matched = {n: match_style(n, style_names) for n in subs}
    other = [n for n in subs if matched[n] is None]
    empty = [n for n in subs if matched[n] is not None and not has_images(subs[n])]
    use = tuple(n for n in subs if matched[n] is not None and n not in empty)
    cased = [f"{n} as {matched[n]}" for n in use if matched[n] != n]
    if cased:
        notes.append(f"style folder(s) read as the model's style of that name in another case: {', '.join(cased)}")
    if other:
        notes.append(f"style folder(s) {', '.join(other)} not used: not styles of this model "
                     f"({', '.join(style_names[:8])}{' ...' if len(style_names) > 8 else ''})"
                     f"{'; ' + other_styles.replace('{style_dir}', str(style)) if other_styles else ''}")
    if empty:
        notes.append(f"style folder(s) {', '.join(empty)} hold no images: no real images of those styles")
    if use and len(use) < len(style_names):
        lack = [n for n in style_names if n not in {matched[u] for u in use}]
        notes.append(f"no real images of style(s) {', '.join(lack[:8])}{' ...' if len(lack) > 8 else ''}")
    if not use:
        return {"source": "", "content": str(content), "styles": ()}, notes
    return {"source": str(d if half else style), "content": "" if half else str(content), "styles": use}, notes
