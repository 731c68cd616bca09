"""Process groups for ``torchrun`` (docs/scaling.md): one helper that every command shares.

    torchrun --nproc_per_node=2 -m interp_gan.cli train training/demo.toml --out runs/ddp
    torchrun --nproc_per_node=2 -m interp_gan.cli analyze runs/ddp/checkpoint.safetensors ...

``init_from_env()`` reads the variables ``torchrun`` sets (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and, when the world has more than one
process, initialises the default process group: NCCL for CUDA (each rank on ``cuda:LOCAL_RANK``),
gloo otherwise. Run without ``torchrun`` it does nothing and reports one process, so the same
command runs single-process. ``is_main()`` is rank 0 (or no process group): the one rank that
writes files and prints.

Training helpers (every one is a no-op for one process, so single-process runs are unchanged):

    average_gradients(D)                  # after loss_d.backward(), before opt_d.step()
    mean_across_ranks(torch.stack(losses))  # what gets logged
    main_only(lambda: make_run_dir(out))  # rank 0 does it; an error there is raised on every rank
    data = main_first(lambda: load_data(cfg))   # rank 0 fills the disk cache, then the others read it
    check_in_sync(G, D, G_ema)            # every rank holds rank 0's weights, or every rank raises
"""
from __future__ import annotations

import builtins
import functools
import os
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch
from torch import nn

__all__ = ["DistInfo", "init_from_env", "is_main", "rank", "world_size", "barrier", "shutdown",
           "local_device", "average_gradients", "mean_across_ranks", "main_only", "main_first",
           "check_in_sync"]

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank() -> int:
    return torch.distributed.get_rank() if _ready() else 0


def world_size() -> int:
    return torch.distributed.get_world_size() if _ready() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if _ready() and world_size() > 1:
        torch.distributed.barrier()


def init_from_env(device: str | None = None) -> DistInfo:
    """Initialise the default process group from torchrun's environment (no-op for one process).

    device: "cuda" selects NCCL and ``cuda:LOCAL_RANK``; anything else gloo. Already initialised:
    returns the current group's ranks.
    """
    if _ready():
        return DistInfo(torch.distributed.get_rank(), torch.distributed.get_world_size(),
                        int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return DistInfo()
    if not torch.distributed.is_available():
        raise ValueError("WORLD_SIZE > 1 but this torch build has no torch.distributed; run one process")
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ValueError(f"WORLD_SIZE={world} but {', '.join(missing)} not set; launch with "
                         f"`torchrun --nproc_per_node={world} -m interp_gan.cli ...`")
    local = int(os.environ.get("LOCAL_RANK", 0))
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local)
    torch.distributed.init_process_group("nccl" if cuda else "gloo")
    return DistInfo(torch.distributed.get_rank(), torch.distributed.get_world_size(), local)


def shutdown() -> None:
    """Destroy the default process group if one is initialised (end of a torchrun command)."""
    if _ready():
        torch.distributed.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """``cuda`` -> ``cuda:<current device>`` (``cuda:LOCAL_RANK``, set by ``init_from_env``) under torchrun.

    One process keeps the device as given, so single-process runs are unchanged.
    """
    if device.type == "cuda" and device.index is None and world_size() > 1:
        return torch.device("cuda", torch.cuda.current_device())
    return device


# --- gradients and logged values --------------------------------------------------------------
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


# --- work that one rank does for all ------------------------------------------------------------
def _share_outcome(fn: Callable[[], T]) -> T | None:
    """Rank 0 calls ``fn``; the others wait. An exception on rank 0 is raised on every rank.

    The exception travels as (builtin type name, message): a ``FileExistsError`` on rank 0 is a
    ``FileExistsError`` with the same one-line message on every rank, so ``interp-gan train``
    prints it and exits 2 everywhere instead of leaving the other ranks waiting.
    """
    box: list = [None]
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except Exception as e:      # re-raised below, on every rank
            error, box[0] = e, (type(e).__name__, str(e))
    torch.distributed.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    if box[0] is not None:
        name, message = box[0]
        cls = getattr(builtins, name, None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            raise cls(message)
        raise RuntimeError(f"rank 0 failed with {name}: {message}")
    return result


def main_only(fn: Callable[[], T]) -> T | None:
    """Call ``fn`` on rank 0 only (returns ``None`` elsewhere); its exception is raised on every rank.

    For work that must happen once, race-free, before the others go on: checking and creating
    the run directory.
    """
    if world_size() == 1:
        return fn()
    return _share_outcome(fn)


def main_first(fn: Callable[[], T]) -> T:
    """Call ``fn`` on rank 0, then on the other ranks; returns its result on every rank.

    For work behind an on-disk cache (building the embedded data set, training the evaluation
    classifiers): rank 0 builds it once, the others then find it cached instead of all ranks
    building it at once. If rank 0 fails, every rank raises its error.
    """
    if world_size() == 1:
        return fn()
    result = _share_outcome(fn)
    return result if is_main() else fn()
