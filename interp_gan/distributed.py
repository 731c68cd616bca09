"""Process groups and collectives for ``torchrun`` (docs/scaling.md): the one module that training,
harvest and the CLI share.

    torchrun --nproc_per_node=2 -m interp_gan.cli train training/demo.toml --out runs/ddp
    torchrun --nproc_per_node=2 -m interp_gan.cli analyze runs/ddp/checkpoint.safetensors ...

``init_from_env()`` reads the variables ``torchrun`` sets (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and, when the world has more than one
process, initialises the default process group: NCCL for CUDA (each rank on ``cuda:LOCAL_RANK``),
gloo otherwise. Run without ``torchrun`` it does nothing and reports one process, so the same
command runs single-process. ``is_main()`` is rank 0 (or no process group): the one rank that
writes files and prints. Every helper is a no-op for one process.

    main_only(lambda: make_run_dir(out))        # rank 0 does it; an error there is raised on every rank
    data = main_first(lambda: load_data(cfg))   # rank 0 fills the disk cache, then the others read it
    with fail_together("harvest"): ...          # a failure on one rank fails every rank, none waits
    all_gather_objects(obj); all_sum(tensor)    # collectives that are no-ops for one process

Gradient averaging lives in ``training/distributed.py``; merging streaming statistics across ranks
in ``harvest/distributed.py``.
"""
from __future__ import annotations

import builtins
import contextlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import torch
from torch import Tensor

__all__ = ["DistInfo", "init_from_env", "shutdown", "dist_ready", "rank_and_world", "rank", "world_size",
           "is_main", "barrier", "local_device", "main_only", "main_first", "all_gather_objects", "all_sum",
           "fail_together"]

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_ready() -> bool:
    """True when ``torch.distributed`` is available and a process group is initialised."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank_and_world(group: Any = None) -> tuple[int, int]:
    """(rank, world size) in ``group`` (default: the world); (0, 1) without a process group."""
    if not dist_ready():
        return 0, 1
    return torch.distributed.get_rank(group), torch.distributed.get_world_size(group)


def rank() -> int:
    return rank_and_world()[0]


def world_size() -> int:
    return rank_and_world()[1]


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if dist_ready() and world_size() > 1:
        torch.distributed.barrier()


def init_from_env(device: str | None = None) -> DistInfo:
    """Initialise the default process group from torchrun's environment (no-op for one process).

    device: "cuda" selects NCCL and ``cuda:LOCAL_RANK``; anything else gloo. Already initialised:
    returns the current group's ranks.
    """
    if dist_ready():
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
    if dist_ready():
        torch.distributed.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """``cuda`` -> ``cuda:<current device>`` (``cuda:LOCAL_RANK``, set by ``init_from_env``) under torchrun.

    One process keeps the device as given, so single-process runs are unchanged.
    """
    if device.type == "cuda" and device.index is None and world_size() > 1:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def all_gather_objects(obj: Any, group: Any = None) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` without a process
    group. A collective (every rank calls it, in the same order as the other ranks)."""
    _, world = rank_and_world(group)
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    torch.distributed.all_gather_object(out, obj, group=group)
    return out


def all_sum(t: Tensor, group: Any = None) -> Tensor:
    """Sum ``t`` over the ranks, in place (``all_reduce`` SUM; every rank ends with the same
    values); returns ``t``. A no-op without a process group. The tensor must be on a device the
    backend handles (CPU for gloo, this rank's GPU for NCCL: ``init_from_env`` picks the backend
    from the device the model runs on)."""
    _, world = rank_and_world(group)
    if world > 1:
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM, group=group)
    return t


@contextlib.contextmanager
def fail_together(what: str, group: Any = None) -> Iterator[None]:
    """Run a local step so that when it raises on one rank it raises on every rank (a collective:
    every rank must enter and leave the block; see the module docstring). Without a process
    group it only runs the block.

    The ranks also check that they are at the same step (``what``): a rank that skipped a
    collective elsewhere shows up here as an error, not as a silent mismatch.
    """
    _, world = rank_and_world(group)
    if world == 1:
        yield
        return
    error: Exception | None = None
    try:
        yield
    except Exception as e:   # KeyboardInterrupt and the like end the process (torchrun stops the rest)
        error = e
    said = None if error is None else f"{type(error).__name__}: {error}"
    statuses = all_gather_objects((what, said), group)
    steps = [s[0] for s in statuses]
    if len(set(steps)) != 1:
        raise RuntimeError(f"ranks are out of step: they are at {steps} (by rank); every rank must run the same "
                           f"collective steps in the same order")
    if error is not None:
        raise error
    failed = [(r, msg) for r, (_, msg) in enumerate(statuses) if msg is not None]
    if failed:
        ranks = ", ".join(str(r) for r, _ in failed)
        raise RuntimeError(f"{what} failed on rank{'s' if len(failed) > 1 else ''} {ranks}: {failed[0][1]}")


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
