"""Sharded, multi-process harvests: every rank sees a shard, the mergeable stats are combined.

    # torchrun --nproc_per_node=2 my_harvest.py
    import torch.distributed as dist
    from interp_gan.harvest.distributed import all_merge, shard_indices
    from interp_gan.harvest.stats import Moments, TopK

    dist.init_process_group("gloo")         # "nccl" on GPUs: call torch.cuda.set_device(local_rank) first
    mine = shard_indices(len(dataset))      # this rank's contiguous range; all ranks cover 0..n-1 once
    m, top = Moments(channels=64), TopK(channels=64, k=8)
    for i in mine:
        acts = features(dataset[i])                         # [1, C, H, W]
        m.add(acts.permute(0, 2, 3, 1).reshape(-1, 64))
        top.add(acts.flatten(2).amax(2), index=[i])         # global image indices, not 0..shard
    all_merge(m); all_merge(top)            # collective: every rank must call it, in the same order
    # every rank now holds the same m and top as one process that saw the whole data set

Without an initialised process group (or with world size 1) ``all_merge`` returns the stat
unchanged and ``shard_indices(n)`` is ``range(n)``, so the same script runs single-process.

Why the result does not depend on timing: ``all_gather_object`` returns the ranks' states in
a list indexed by rank, whatever order they arrive in, and ``all_merge`` folds that list in
rank order (0, 1, 2, ...) on every rank. A merge is a deterministic function of its inputs (the
``Quantile`` sketch's compaction coin flips come from a generator seeded by ``seed + count``),
so every rank computes bit-identical results, run after run. For ``Moments``, ``TopK`` and
``IoUCounts`` counts the merge equals one pass over all the data (up to float rounding in the
Chan et al. update); ``Quantile`` is within the sketch's rank error of it (see ``stats.py``).

A collective runs only when every rank reaches it. ``interp_gan.distributed.fail_together`` keeps a failure on one
rank from leaving the others waiting in the next collective: a local step is run inside it, and
at its end the ranks exchange one status each, so when the step raised on any rank it raises
on all of them (the failing rank its own exception, the others a ``RuntimeError`` naming the
rank and the error):

    with fail_together("harvest"):          # local work: forward passes, counting, ...
        stats = my_local_harvest(mine)
    all_merge(stats)                        # reached by every rank, or by none

Tensors travel as CPU copies (so ``all_gather_object`` works on gloo and on NCCL without
unpickling one rank's ``cuda:1`` tensor on another rank) and are moved back to the device of
the local stat's tensors before merging.
"""
from __future__ import annotations

import copy
from typing import Any, TypeVar

import torch
from torch import Tensor

from interp_gan.distributed import dist_ready
from interp_gan.harvest.stats import Stat

__all__ = ["all_merge", "shard_indices"]

S = TypeVar("S", bound=Stat)


def _map_tensors(obj: Any, fn) -> Any:
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    return obj


def _device_of(state: Any) -> torch.device:
    """The device of the first tensor in a state dict (CPU when it holds none: an empty stat)."""
    found: list[torch.device] = []
    _map_tensors(state, lambda t: found.append(t.device) or t)
    return found[0] if found else torch.device("cpu")


def all_merge(stat: S, group: Any = None) -> S:
    """Merge ``stat`` across all ranks of ``group`` (default: the world); returns ``stat``, updated
    in place so that every rank holds the identical merged statistic.

    A collective call: every rank of the group must call it, with stats of the same type and
    shape, in the same order as the other ranks. A no-op when torch.distributed is not
    initialised or the group has one rank.
    """
    if not dist_ready():
        return stat
    dist = torch.distributed
    world = dist.get_world_size(group)
    if world == 1:
        return stat
    local = stat.state_dict()
    device = _device_of(local)
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, _map_tensors(local, lambda t: t.detach().cpu()), group=group)

    kinds = [s.get("kind", type(stat).__name__) if isinstance(s, dict) else type(s).__name__ for s in gathered]
    if len(set(kinds)) != 1:
        raise ValueError(f"all_merge got different statistic types per rank ({kinds}); expected every "
                         f"rank to pass the same kind of stat; call all_merge in the same order on all ranks")

    merged: Stat | None = None
    for state in gathered:                      # rank order: the same fold on every rank
        part = copy.deepcopy(stat).load_state_dict(_map_tensors(state, lambda t: t.to(device)))
        merged = part if merged is None else merged.merge(part)
    assert merged is not None
    stat.load_state_dict(merged.state_dict())
    return stat


def shard_indices(n: int, rank: int | None = None, world_size: int | None = None, block: int = 1) -> range:
    """This rank's contiguous share of ``range(n)``; the shards of ranks 0..world_size-1 are in
    order, sizes differ by at most one (one ``block``), and together cover every index exactly once.

    rank / world_size default to the initialised process group, else to 0 / 1 (all of range(n)).
    block: shards start and end on multiples of ``block`` (the last block of the data may be
    short), so that blocks of a computation (e.g. the dissection's permutation blocks) are the
    same blocks as in one process; with fewer blocks than ranks some shards are empty.
        shard_indices(10, rank=1, world_size=3)            # range(3, 6)
        shard_indices(100, rank=1, world_size=2, block=32) # range(64, 100): blocks 2 and 3
    """
    if rank is None or world_size is None:
        ready = dist_ready()
        rank = rank if rank is not None else (torch.distributed.get_rank() if ready else 0)
        world_size = world_size if world_size is not None else (torch.distributed.get_world_size() if ready else 1)
    if n < 0:
        raise ValueError(f"shard_indices needs n >= 0 items, got n={n}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"shard_indices needs 0 <= rank < world_size, got rank={rank}, world_size={world_size}; "
                         f"pass both or neither (then they come from torch.distributed)")
    if block < 1:
        raise ValueError(f"shard_indices needs block >= 1, got block={block}")
    blocks = -(-n // block)   # ceil: a short last block counts
    lo, hi = rank * blocks // world_size, (rank + 1) * blocks // world_size
    return range(min(lo * block, n), min(hi * block, n))
