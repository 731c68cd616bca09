"""Independent simulation replicates over the machine's cores (at most 2 worker processes).

    ps = over_cores(one_rep, [(baseline, rep) for rep in range(400)])   # == [one_rep(*a) for a in args]

Each replicate is seeded by its arguments alone, so the results equal a serial loop's, in order.
The tiny models of these simulations run best on one thread each, and a serial loop would keep
the test's pytest worker busy for minutes (`make test` runs 2 workers; this spreads a long test
over the cores while the other worker's tests wait their turn). Workers are spawned (no forked torch state)
with one torch thread; ``fn`` must be a module-level function of an importable test module.
INTERP_GAN_TEST_WORKERS=1 runs the loop serially (to debug a replicate).
"""
from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Sequence


def _one_thread() -> None:
    import torch
    torch.set_num_threads(1)


def over_cores(fn: Callable[..., Any], args: Sequence[tuple], workers: int | None = None) -> list:
    if workers is None:
        workers = int(os.environ.get("INTERP_GAN_TEST_WORKERS", "0")) or min(2, len(os.sched_getaffinity(0)))
    if workers <= 1 or len(args) < 8:
        _one_thread()
        return [fn(*a) for a in args]
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_one_thread) as pool:
        return list(pool.map(fn, *zip(*args), chunksize=max(1, len(args) // (8 * workers))))
