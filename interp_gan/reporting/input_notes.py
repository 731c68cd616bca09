"""What the report says once, at its top, about its inputs: images skipped while loading the data,
other data notes (files left out, style folders not used, images upscaled) and how a
``--model file.py:factory`` module was read (eval mode, dtype, output form, range, size).

    input_notes_html({"skipped_images": {"truncated": 1}, "skipped_files": ["content/cut.png"],
                      "data_notes": ["2 file(s) left out (hidden 2)"], "model_notes": [...]})
"""
from __future__ import annotations

import html

__all__ = ["input_notes_html", "skipped_images_line"]


def skipped_images_line(meta: dict) -> str:
    """One line when the data loader skipped unreadable images (``meta["skipped_images"]``), else ""."""
    skipped = {k: v for k, v in dict((meta or {}).get("skipped_images") or {}).items() if v}
    if not skipped:
        return ""
    n = sum(int(v) for v in skipped.values())
    counts = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
    files = list((meta or {}).get("skipped_files") or [])[:5]
    names = f": {', '.join(files)}{' ...' if n > len(files) else ''}" if files else ""
    return f"{n} unreadable image(s) skipped while loading the data ({counts}){names}; the analyses ran on the others."


def input_notes_html(meta: dict) -> str:
    """The notes as a visible block ("" when there is nothing to say)."""
    meta = meta or {}
    items = []
    line = skipped_images_line(meta)
    if line:
        head, rest = line.split(" skipped ", 1)
        items.append(f"<li><strong>{html.escape(head)} skipped</strong> {html.escape(rest)}</li>")
    items += [f"<li>data: {html.escape(str(x))}</li>" for x in meta.get("data_notes") or []]
    items += [f"<li>model: {html.escape(str(x))}</li>" for x in meta.get("model_notes") or []]
    return f'<div class="skip input-notes"><ul>{"".join(items)}</ul></div>' if items else ""
