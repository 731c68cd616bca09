"""How a checkpoint's recorded edits read (``interp_gan.edits``); plain Python, no torch, so
that reports and ``inspect`` can say it without loading a model."""
from __future__ import annotations

__all__ = ["describe_edit", "describe_edits"]


def describe_edit(d: dict) -> str:
    """{'layer', 'units', 'kind', 'value'} -> 'ablate blocks.3.conv2 units 12,40'."""
    units = ",".join(str(int(u)) for u in d.get("units", []))
    kind, layer, value = d.get("kind", "ablate"), d.get("layer", "?"), float(d.get("value", 0.0))
    if kind == "ablate":
        return f"ablate {layer} units {units}" + (f" (= {value:g})" if value else "")
    if kind == "insert":
        return f"insert {layer} units {units} = {value:g}"
    return f"scale {layer} units {units} x {value:g}"


def describe_edits(meta: dict) -> str | None:
    """'edited from <sha256[:12]>: ablate blocks.3.conv2 units 12,40; ...', or None when unedited."""
    edits = meta.get("edits") or []
    if not edits:
        return None
    src = (meta.get("edited_from") or {}).get("sha256") or edits[0].get("source_sha256") or ""
    what = "; ".join(describe_edit(e) for e in edits)
    return f"edited from {src[:12]}: {what}" if src else f"edited: {what}"
