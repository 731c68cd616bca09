"""One line for a file that holds a network trained beside a generator, not the generator.

CycleGAN and CUT save one file per network (``<epoch>_net_<name>.pth``): the generator
(``latest_net_G.pth``, CycleGAN's ``latest_net_G_A.pth``), the PatchGAN discriminator
(``latest_net_D.pth`` / ``latest_net_D_A.pth``) and, for CUT / FastCUT, the patch-sampling MLPs of
the contrastive loss (``latest_net_F.pth``: ``mlp_<i>.0`` and ``mlp_<i>.2`` Linear layers, one
pair per encoder layer the loss samples; an empty state dict with ``--netF sample``). Only the
generator is a subject; given one of the others, we name the generator's file beside it.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

__all__ = ["refuse_companion"]

_MLP = re.compile(r"mlp_\d+\.\d+\.(weight|bias)")
_FILE = re.compile(r"(?P<stem>.*)_net_(?P<net>[A-Za-z]+?)(?P<side>_[AB])?(?P<ext>\.[^.]+)$")


def _generator_file(path: Path) -> str:
    m = _FILE.fullmatch(path.name)
    if m and m["net"] != "G":
        return f"{m['stem']}_net_G{m['side'] or ''}{m['ext']}"
    return "its file (CUT: latest_net_G.pth, CycleGAN: latest_net_G_A.pth)"


def _patchgan(sd: dict) -> str | None:
    """'n kxk convs' when every conv weight has one kernel size (4, or 1 for the pixel variant) and
    the last ends in one channel: a PatchGAN's layout, which no generator of ours has."""
    weights = [v for k, v in sd.items() if k.endswith(".weight") and v.dim() == 4]
    kernels = {tuple(w.shape[2:]) for w in weights}
    if len(weights) < 2 or len(kernels) != 1 or next(iter(kernels)) not in ((4, 4), (1, 1)) or weights[-1].shape[0] != 1:
        return None
    k = weights[0].shape[-1]
    blur = any(name.endswith(".filt") for name in sd)
    return f"{len(weights)} {k}x{k} convs end in one output channel{' (with blur-pool layers)' if blur else ''}"


def refuse_companion(sd: dict, path: Path) -> None:
    """Raise a one-line ValueError when ``sd`` (a read state dict) is a netF, a netD or empty."""
    from interp_gan.models.resnet_generator import unwrap_state_dict

    flat = unwrap_state_dict(sd)
    gen = _generator_file(path)
    if not flat:
        raise ValueError(f"{path} holds no tensors, so it is not a generator (an empty state dict, as CUT's netF "
                         f"without MLPs, --netF sample, saves); load the generator, {gen}")
    if all(_MLP.fullmatch(k) for k in flat) and all(isinstance(v, torch.Tensor) and v.dim() <= 2 for v in flat.values()):
        mlps = sorted({k.split(".")[0] for k in flat}, key=lambda s: int(s.split("_")[1]))
        raise ValueError(f"{path} holds CUT's patch-sampling MLPs (netF: {', '.join(mlps)}), which only train its "
                         f"contrastive loss and are not a generator; load the generator, {gen}, saved beside it")
    what = _patchgan(flat)
    if what:
        raise ValueError(f"{path} is not a generator: its {what}, as a PatchGAN discriminator's (CycleGAN / CUT "
                         f"netD). A discriminator? pass the generator, {gen}, saved beside it; for another "
                         "architecture use --model file.py:factory")
