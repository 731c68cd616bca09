"""Small helpers the families that read a network from its state dict share (docs/models.md):

    sd = strip_shared_prefix(unwrap_state_dict(sd), "model.model.0.weight")   # "netG.model..." -> "model..."
    width = vote(sd, [("conv1.weight", 4, 0), ("norm1.weight", 1, 0)], default=64)
    raise ValueError(f"could not place {few(unplaced)}")                      # "a, b, c (and 4 more)"
"""
from __future__ import annotations

from collections import Counter

__all__ = ["few", "strip_shared_prefix", "vote"]


def few(keys: list[str]) -> str:
    """Up to three keys for a one-line message, and how many more there are."""
    more = f" (and {len(keys) - 3} more)" if len(keys) > 3 else ""
    return ", ".join(keys[:3]) + more


def strip_shared_prefix(sd: dict, root: str) -> dict:
    """``sd`` without the one leading prefix (``netG.``, ``G.``, ``transformer.``) that every key shares,
    found as what stands before ``root`` (the family's first key); unchanged when there is none."""
    if root in sd:
        return sd
    prefixes = {k[: -len(root)] for k in sd if k.endswith("." + root)}
    if prefixes:
        p = min(prefixes, key=len)
        if all(k.startswith(p) for k in sd):
            return {k[len(p):]: v for k, v in sd.items()}
    return sd


def vote(sd: dict, places: list[tuple[str, int, int]], default: int, scale: list[float] | None = None) -> int:
    """The size most of ``places`` (key, tensor dims, axis) agree on, each divided by its ``scale``:
    one corrupted tensor is then outvoted, and named by the shape check that follows."""
    seen = [int(sd[k].shape[a] / (scale[j] if scale else 1)) for j, (k, d, a) in enumerate(places)
            if k in sd and sd[k].dim() == d]
    return Counter(seen).most_common(1)[0][0] if seen else default
