"""Harvest overhead: forward with hooks + streaming statistics / plain forward (goal <= 1.3 on a
CPU, <= 1.15 on CUDA).

    python benchmarks/harvest_overhead.py [--device cuda] [--size 128] [--n 32] [--repeats 3]

StarGAN-v1-sized generator (StyleNet ch=64, 6 AdaIN blocks), 3 layers, 640 units; statistics
per unit: KLL quantile sketch, top-k images, mean/variance. Both are timed alternately in one
process and the median ratio is printed (other processes share the cores: compare ratios).
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _result import emit  # noqa: E402
from _subject import LAYERS, arg_parser, build, plain_forward  # noqa: E402

from interp_gan.harvest.store import harvest  # noqa: E402
from interp_gan.harvest.stats import Moments, Quantile, TopK  # noqa: E402


def main() -> None:
    ap = arg_parser(repeats=3)
    a = ap.parse_args()
    subject, data = build(a.n, a.size, a.device, a.batch)

    def with_stats():
        out = harvest(subject, data, LAYERS, lambda name, C: {"q": Quantile(C), "top": TopK(C, 8), "m": Moments(C)},
                      stop=True)
        for st in out.values():
            st["q"].quantile(0.99)
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()

    plain_forward(subject, data.subset(a.batch))   # warm-up
    with_stats()
    ratios, plains = [], []
    for _ in range(a.repeats):
        t0 = time.perf_counter(); plain_forward(subject, data); t1 = time.perf_counter()
        with_stats(); t2 = time.perf_counter()
        plains.append(t1 - t0)
        ratios.append((t2 - t1) / (t1 - t0))
    goal = "<= 1.15" if a.device.startswith("cuda") else "<= 1.3"
    print(f"device={a.device} size={a.size} n={a.n} units={640} plain={statistics.median(plains):.3f}s "
          f"harvest/plain={statistics.median(ratios):.2f} (all: {', '.join(f'{r:.2f}' for r in ratios)}; goal {goal})")
    emit("harvest_overhead", f"harvest with statistics / plain forward, {a.size} px", statistics.median(ratios), goal,
         device=a.device, size=a.size, n=a.n, batch=a.batch, units=640, plain_s=round(statistics.median(plains), 4),
         all=[round(r, 3) for r in ratios])


if __name__ == "__main__":
    main()
