"""Images whose attribution cannot be finite, left out before any method runs, and counted.

A flat image (one grey value) through a network with instance or group normalisation has zero
variance at every norm: the gradient of 1 / sqrt(var + eps) is huge at each of them, and through a
dozen norms it overflows to inf (fast neural style, AnimeGANv2, CycleGAN, CUT). Such a map would
turn the stored float16 maps and the sanity checks' correlations into NaN; one gradient per image
finds them first.

    target, n_dropped = drop_non_finite(target)       # the Target without those images (None: none left)
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

__all__ = ["finite_rows", "drop_non_finite", "FINITE_BATCH"]

FINITE_BATCH = 16   # images per gradient call (the estimate prices the pass with it)


def finite_rows(t, batch: int = FINITE_BATCH) -> Tensor:
    """[N] bool: the target's score and its gradient at each input are finite."""
    ok = []
    n = len(t.inputs)
    for i in range(0, n, batch):
        sl = slice(i, i + batch)
        x = t.inputs[sl].detach().clone().requires_grad_(True)
        extra = tuple(e[sl] if isinstance(e, Tensor) and len(e) == n else e for e in t.extra)
        with torch.enable_grad():
            out = t.forward(x, *extra)
            if t.target is not None and out.dim() > 1:
                out = out.gather(1, t.target[sl].view(-1, 1).to(out.device))
            score = out.reshape(len(x), -1).sum(1)
            grad, = torch.autograd.grad(score.sum(), x, allow_unused=True)
        fine = torch.isfinite(score.detach())
        if grad is not None:
            fine &= torch.isfinite(grad).reshape(len(x), -1).all(1)
        ok.append(fine.cpu())
    return torch.cat(ok) if ok else torch.zeros(0, dtype=torch.bool)


def drop_non_finite(t) -> tuple[object | None, int]:
    """(the Target without the inputs whose attribution cannot be finite, how many were left out);
    None for the Target when none is left."""
    ok = finite_rows(t)
    bad = int((~ok).sum())
    if not bad:
        return t, 0
    if not ok.any():
        return None, bad
    n, keep = len(t.inputs), ok.to(t.inputs.device)

    def cut(v):
        return v[keep.to(v.device)] if isinstance(v, Tensor) and v.dim() and len(v) == n else v
    return dataclasses.replace(t, inputs=cut(t.inputs), baselines=cut(t.baselines), target=cut(t.target),
                               extra=tuple(cut(e) for e in t.extra), styles=cut(t.styles),
                               images=cut(t.images)), bad
