"""Data-parallel training helpers for ``torchrun`` (process groups themselves: ``interp_gan/distributed.py``).

    average_gradients(D)                    # after loss_d.backward(), before opt_d.step()
    mean_across_ranks(torch.stack(losses))  # what gets logged
    check_in_sync(G, D, G_ema)              # every rank holds rank 0's weights, or every rank raises

Each is a no-op for one process, so single-process runs are unchanged.
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from interp_gan.distributed import world_size

__all__ = ["average_gradients", "mean_across_ranks", "check_in_sync"]


def average_gradients(module: nn.Module) -> None:
    """Replace every ``.grad`` of ``module`` by its mean over the ranks: one flat ``all_reduce``.

    Each rank's loss is a mean over its own equal share of the global batch, so the mean of the
    ranks' gradients is the gradient of the global batch mean: the optimizer then takes the
    single-process step on every rank. Parameters without a gradient are skipped; every rank
    runs the same graph, so the same ones are skipped everywhere (otherwise the buffer sizes
    differ and the collective fails).

    Why not ``DistributedDataParallel``: not because of R1. The DDP docs warn that it "doesn't
    work with torch.autograd.grad()", and its double-backward support is thin
    (pytorch/pytorch#63812, #63929). But R1 here calls ``autograd.grad`` only for the gradient
    with respect to the input, and adds the penalty to the same ``loss_d.backward()``. A check on
    torch 2.14 (gloo, 2 processes, a conv D run the way the loop runs it: three D forwards per
    backward, then a frozen-D forward for G) gave the full-batch gradients to 3e-8. DDP's hooks
    miss a backward whose loss is built from ``autograd.grad`` outputs alone (lazy R1 or
    path-length regularisation: rosinality/stylegan2-pytorch#187,
    NVlabs/stylegan2-ada-pytorch#118, which add ``logits * 0`` to fire them). The reasons are
    ours: DDP synchronises only through its wrapper's ``forward``, while the loop calls G through
    ``G.generate`` / ``G.mapping``; and a wrapper would rename the ``state_dict`` keys that
    checkpoints and resume read. StyleGAN3's ``training_loop.py`` does what this function does
    (StyleGAN2-ADA still wrapped its modules in DDP). DDP would overlap communication with the
    backward pass, which matters little here (gpu256: 19M + 11M parameters, one all_reduce each).
    """
    if world_size() == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)          # SUM
    flat /= world_size()
    for g, mean in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(mean.view(g.shape))             # copy_ keeps each grad's strides (channels_last)


def mean_across_ranks(values: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of ``values`` over the ranks (a copy; ``values`` itself for one rank)."""
    if world_size() == 1:
        return values
    out = values.detach().clone()
    torch.distributed.all_reduce(out)
    return out / world_size()


def check_in_sync(*modules: nn.Module) -> None:
    """Raise ``RuntimeError`` on every rank unless every rank holds rank 0's weights, bit for bit.

    Averaged gradients and identical optimizer states keep the replicas equal; a difference means
    a rank trained on something else (a bug, a BatchNorm's running statistics, mixed GPU models).
    StyleGAN3 runs the same check at every snapshot (``misc.check_ddp_consistency``). Costs one
    broadcast of the weights.
    """
    if world_size() == 1:
        return
    tensors = [t for m in modules for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()]
    dtype = functools.reduce(torch.promote_types, (t.dtype for t in tensors))   # exact: no narrowing
    mine = torch.cat([t.detach().reshape(-1).to(dtype) for t in tensors]).nan_to_num()
    ref = mine.clone()
    torch.distributed.broadcast(ref, src=0)
    differs = torch.tensor([float((mine != ref).sum())], device=mine.device)
    torch.distributed.all_reduce(differs)       # every rank learns whether any rank differs
    if differs.item():
        raise RuntimeError(f"the ranks' weights differ from rank 0's in {int(differs.item())} values; "
                           f"every rank must train the same replica (same seed, averaged gradients, "
                           f"no per-rank state such as BatchNorm statistics)")
