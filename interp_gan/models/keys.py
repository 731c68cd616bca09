"""Small helpers the families that read a network from its state dict share (docs/models.md):

    sd = strip_shared_prefix(unwrap_state_dict(sd), "model.model.0.weight")   # "netG.model..." -> "model..."
    width = vote(sd, [("conv1.weight", 4, 0), ("norm1.weight", 1, 0)], default=64)
    raise ValueError(f"could not place {few(unplaced)}")                      # "a, b, c (and 4 more)"
    parts = key_problems(unplaced, missing, wrong)    # ["could not place a, b", "missing c", "wrong shape d [3] ..."]
"""
from __future__ import annotations

from collections import Counter

__all__ = ["few", "key_problems", "layout_problems", "strip_shared_prefix", "vote"]


def few(keys: list[str]) -> str:
    """Up to three keys for a one-line message, and how many more there are."""
    more = f" (and {len(keys) - 3} more)" if len(keys) > 3 else ""
    return ", ".join(keys[:3]) + more


def key_problems(unplaced: list[str], missing: list[str], wrong: list[str],
                 place: str = "could not place") -> list[str]:
    """The parts of a one-line "not the network its keys suggest" message, up to three keys each."""
    return ([f"{place} {few(unplaced)}"] if unplaced else []) + ([f"missing {few(missing)}"] if missing else []) + \
        ([f"wrong shape {few(wrong)}"] if wrong else [])


def layout_problems(sd: dict, expected: dict, place: str = "could not place") -> list[str]:
    """``key_problems`` of ``sd`` against ``expected`` ({key: shape}): keys it lacks, keys with no place,
    and keys of another shape."""
    wrong = [f"{k} {list(sd[k].shape)} (expected {list(expected[k])})" for k in expected
             if k in sd and tuple(getattr(sd[k], "shape", ())) != tuple(expected[k])]
    return key_problems([k for k in sd if k not in expected], [k for k in expected if k not in sd], wrong, place)


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
