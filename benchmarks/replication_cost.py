"""Replication cost: Replication.run (given the base findings, as in a pipeline run) / the base
analyses it replicates (dissection and style units with their random-init controls, directions),
on the same images (goal <= 2.5).

    python benchmarks/replication_cost.py [--device cuda] [--size 64] [--n 32] [--threads 1] [--n-perm 200]

What replication re-runs: dissection on two halves (= one pass), at seed + 1 and at the two
neighbouring quantiles, without the control (the base has the trained pass + the control pass):
about 4 trained passes against 2; style units on two halves and at seed + 1 (2 against 2);
directions on the other images and at seed + 1 (2 against 1). The IoU-threshold conditions
re-label the base tables and cost nothing. Wall-clock and process CPU time are both printed
(ratios measured in one run; never timed assertions).

Measured (2 shared CPU cores, --threads 1 --n 32 --size 32 --n-perm 100 --n-boot 50; 516 findings):
base 72.2 s wall / 12.7 s CPU, replication 128.5 s wall / 24.4 s CPU: ratio 1.78 wall, 1.92 CPU.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _subject import LAYERS, arg_parser, build  # noqa: E402

from interp_gan.analyses.base import build_analysis  # noqa: E402
from interp_gan.analyses.replication import Replication  # noqa: E402


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = arg_parser(repeats=1)
    ap.add_argument("--n-perm", type=int, default=200)
    ap.add_argument("--n-boot", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    subject, data = build(a.n, a.size, a.device, a.batch)
    params = {"dissection": dict(layers=LAYERS, n_perm=a.n_perm, n_boot=a.n_boot, n_show=4),
              "style_units": dict(layers=LAYERS, n_perm=a.n_perm * 5, n_boot=a.n_boot),
              "directions": dict(methods=("pca", "random"), n_samples=64, n_directions=2, n_random=4,
                                 n_images=min(16, a.n // 2), n_boot=a.n_boot, n_perm=a.n_perm, layerwise=False)}
    base, per = {}, {}
    for name, p in params.items():
        torch.manual_seed(0)
        base[name], w, c = _timed(lambda: build_analysis(name, **p).run(subject, data))
        per[name] = {"wall_s": round(w, 2), "cpu_s": round(c, 2)}
    data.extra["findings"] = base
    rep, w_rep, c_rep = _timed(lambda: Replication().run(subject, data))
    w_base = sum(v["wall_s"] for v in per.values())
    c_base = sum(v["cpu_s"] for v in per.values())
    print(json.dumps({"n": a.n, "size": a.size, "device": a.device, "base": per,
                      "replication_wall_s": round(w_rep, 2), "replication_cpu_s": round(c_rep, 2),
                      "ratio_wall": round(w_rep / w_base, 2), "ratio_cpu": round(c_rep / max(c_base, 1e-9), 2),
                      "goal": "<= 2.5", "findings": len(rep.tables["replication_summary"])}, indent=1))


if __name__ == "__main__":
    main()
