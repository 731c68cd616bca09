"""The generator's weights inside what training scripts save (docs/models.md, "Several networks in one
file"): wrapper dicts, optimizer states and numbers beside the weights, several networks under names or
key prefixes, moving-average copies, and the prefixes that ``DataParallel`` and ``torch.compile`` add.

    flat, taken, left = unwrap_choice({"netG_A": sdA, "netG_B": sdB, "optimizer_G": opt})
    # flat: sdA's {key: tensor}; taken: ["netG_A"]; left: ["netG_B"]
    flat = unwrap_state_dict({"state_dict": {"module.model.1.weight": w, ...}})   # {"model.1.weight": w, ...}
"""
from __future__ import annotations

import torch

__all__ = ["unwrap_choice", "unwrap_state_dict", "GEN_NAMES"]

# wrapper keys / network prefixes, most preferred first (a generator, then its A->B direction); "params":
# BasicSR's save_network ({"params": ..., "params_ema": ...}: the moving average is taken, as for G_ema)
GEN_NAMES = ("state_dict", "model", "model_state_dict", "netG_A", "netG", "G_A", "G_AB", "G_A2B", "netG_A2B", "G",
             "generator", "gen", "params", "netG_B", "G_B", "G_BA", "G_B2A", "netG_B2A")


def _is_net(v) -> bool:
    """A (nested) dict holding tensors: a network's weights, not an optimizer state or a bag of numbers."""
    if isinstance(v, torch.Tensor):
        return v.dim() > 0
    return isinstance(v, dict) and "param_groups" not in v and any(_is_net(x) for x in v.values())


def _with_ema(pick: str, names) -> str:
    """The moving-average copy saved beside a network (``G_ema`` next to ``G``), when there is one:
    what a generator's authors evaluate."""
    return next((e for e in (f"{pick}_ema", f"{pick}_EMA") if e in names), pick)


def unwrap_choice(sd: dict) -> tuple[dict, list[str], list[str]]:
    """(the generator's flat {key: tensor} dict, the entries taken on the way, the other networks left).

    ``{"state_dict": sd}``, ``{"netG_A": sd, "netD_A": ...}``, ``{"model": sd, "epoch": 3}``,
    ``{"model_state_dict": sd, "optimizer_state_dict": ...}`` and flat dicts with several networks under
    prefixes (``netG_A.``, ``netD_A.``) are reduced to the generator, its ``_ema`` copy when saved beside
    it; the one network among optimizer states and numbers is taken whatever its name; ``module.`` /
    ``_orig_mod.`` prefixes are stripped.
    """
    taken: list[str] = []
    left: list[str] = []
    for _ in range(3):  # nested wrappers, e.g. {"model": {"state_dict": ...}}
        subs = {k: v for k, v in sd.items() if isinstance(v, dict) and _is_net(v)}
        if not subs:
            break
        pick = next((n for n in GEN_NAMES if n in subs), None)
        if pick is None and len(subs) == 1:
            pick = next(iter(subs))
        if pick is None:
            break
        pick = _with_ema(pick, subs)
        taken.append(pick)
        left += [k for k in subs if k != pick]
        sd = subs[pick]
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    sd = {_strip(k): v for k, v in sd.items()}
    heads = {k.split(".", 1)[0] for k in sd}
    if len(heads) > 1:                      # several networks in one flat dict: keep the generator's
        pick = next((n for n in GEN_NAMES[3:] if n in heads), None)
        if pick is not None:
            pick = _with_ema(pick, heads)
            taken.append(pick)
            left += sorted(h for h in heads - {pick} if any(_is_net(v) for k, v in sd.items()
                                                            if k.startswith(h + ".")))
            sd = {k[len(pick) + 1:]: v for k, v in sd.items() if k.startswith(pick + ".")}
    return {_strip(k): v for k, v in sd.items()}, taken, left


def _strip(k: str) -> str:
    """``module.`` (DataParallel / DistributedDataParallel) and ``_orig_mod.`` (torch.compile), in either order."""
    for _ in range(2):
        k = k.removeprefix("module.").removeprefix("_orig_mod.")
    return k


def unwrap_state_dict(sd: dict) -> dict:
    """The generator's flat {key: tensor} dict from a possibly wrapped / multi-network dict (``unwrap_choice``)."""
    return unwrap_choice(sd)[0]
