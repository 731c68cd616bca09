"""What the report says once, at its top, about its inputs: images skipped while loading the data,
other data notes (files left out, style folders not used, images upscaled) and how a
``--model file.py:factory`` module was read (eval mode, dtype, output form, range, size); and,
before all of it, what was analysed: the model, its file and training step, the data, its size and
the styles (``analysed_line``).

    analysed_line({"model": {"name": "stylenet"}, "checkpoint_path": "runs/demo/checkpoint.safetensors",
                   "step": 1200, "pipeline": {"n_images": 64, "image_size": 64, "data": "embedded"}},
                  ["lite01", "lite03"])
    input_notes_html({"skipped_images": {"truncated": 1}, "skipped_files": ["content/cut.png"],
                      "data_notes": ["2 file(s) left out (hidden 2)"], "model_notes": [...]})
"""
from __future__ import annotations

import html

__all__ = ["input_notes_html", "skipped_images_line", "analysed_line"]


_MAX_STYLE_NAMES = 8      # more styles: the first ones, then "... (+n)"


def analysed_line(meta: dict, style_names: list | tuple = ()) -> str:
    """'Analysed: the stylenet generator in runs/demo/checkpoint.safetensors (training step 1200), on 64
    images at 64x64 px from the embedded data set, toward 4 styles: lite01, ...' from the report's
    meta; each part only where the meta holds it ("" when it holds none)."""
    meta = meta or {}
    model = meta.get("model")
    name = model.get("name") if isinstance(model, dict) else model if isinstance(model, str) else None
    path = meta.get("checkpoint_path") or meta.get("checkpoint") or (model.get("path") if isinstance(model, dict)
                                                                   else None)
    what = f"the {name} generator" if name else "the generator" if path else ""
    if path:
        what += f" in {path}"
    if what and meta.get("step") not in (None, ""):
        what += f" (training step {meta['step']})"
    cfg = next((meta[k] for k in ("pipeline", "config") if isinstance(meta.get(k), dict)), {})
    n, size, data = cfg.get("n_images"), cfg.get("image_size"), cfg.get("data") or meta.get("data_source")
    on = f"{n} images" if n else "images" if size or data else ""
    if size:
        on += f" at {size}x{size} px"
    if data:
        on += " from the embedded data set" if data == "embedded" else f" from {data}"
    names = [str(s) for s in style_names or meta.get("style_names") or []]
    styles = ""
    if names:
        shown = ", ".join(names[:_MAX_STYLE_NAMES]) + (f", ... (+{len(names) - _MAX_STYLE_NAMES})"
                                                       if len(names) > _MAX_STYLE_NAMES else "")
        styles = f"toward {len(names)} style{'s' if len(names) != 1 else ''}: {shown}"
    parts = [p for p in (what, f"on {on}" if on else "", styles) if p]
    return ("Analysed: " + ", ".join(parts) + ".") if parts else ""


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
