"""Dissection cost: whole Dissection.run / plain forward over the same images (goal <= 2), and
peak memory at N and 4N images (should be flat: the activation store spills past --memory-mb).

Two ratios, timed alternately with the plain forward: the trained network's dissection alone
(``control=False``: what the peer's procedure does, and what the goal is set for) and the default
run with its random-init control, which dissects a second network of the same architecture on
the same images (about twice the work: the print also gives it per network dissected). Both use
the default nulls (image and spatial).

    python benchmarks/dissection_cost.py [--device cuda] [--size 128] [--n 16] [--memory-mb 16] [--threads 1]

Peer: netdissect's two-pass procedure with baukit's sketch, 3.0x on 2 CPU cores (measured on the 2-core CPU machine).
Wall-clock ratios swing with other processes on shared cores; the process CPU-time ratio
(both threads' CPU seconds) is printed too (on CUDA it counts only the host side). Two
threads on two shared cores slow down several-fold when another process takes one core (each
parallel region waits for its slower thread): ``--threads 1`` gives a steadier comparison. Memory: each size runs in a fresh subprocess; CPU reports peak RSS (ru_maxrss) minus the RSS
after building the model, CUDA reports torch.cuda.max_memory_allocated.
"""
from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _result import emit  # noqa: E402
from _subject import LAYERS, arg_parser, build, plain_forward  # noqa: E402

from interp_gan.analyses.units.dissection import Dissection  # noqa: E402


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dissect(a, n: int, control: bool = True) -> Dissection:
    return Dissection(layers=LAYERS, n_perm=a.n_perm, n_boot=a.n_boot, memory_mb=a.memory_mb, n_show=4,
                      control=control)


def memory_child(a) -> None:
    subject, data = build(a.n, a.size, a.device, a.batch)
    plain_forward(subject, data.subset(a.batch))
    base = _rss_mb()
    if a.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base_gpu = torch.cuda.memory_allocated() / 2**20
    f = _dissect(a, a.n).run(subject, data)
    out = {"n": a.n, "rss_peak_over_model_mb": _rss_mb() - base,
           "spilled": [x for x in f.notes if "spilled" in x]}
    if a.device.startswith("cuda"):
        out["gpu_peak_over_model_mb"] = torch.cuda.max_memory_allocated() / 2**20 - base_gpu
    print(json.dumps(out))


def main() -> None:
    ap = arg_parser(repeats=2)
    ap.add_argument("--n-perm", type=int, default=1000)
    ap.add_argument("--n-boot", type=int, default=500)
    ap.add_argument("--memory-mb", type=float, default=16)
    ap.add_argument("--memory-child", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.memory_child:
        return memory_child(a)

    subject, data = build(a.n, a.size, a.device, a.batch)
    plain_forward(subject, data.subset(a.batch))
    rows = {False: ([], []), True: ([], [])}        # control -> (wall ratios, CPU-time ratios)
    plains = []
    for _ in range(a.repeats):
        for control in (False, True):
            c0, t0 = time.process_time(), time.perf_counter()
            plain_forward(subject, data)
            c1, t1 = time.process_time(), time.perf_counter()
            _dissect(a, a.n, control).run(subject, data)
            if a.device.startswith("cuda"):
                torch.cuda.synchronize()
            c2, t2 = time.process_time(), time.perf_counter()
            plains.append(t1 - t0)
            rows[control][0].append((t2 - t1) / (t1 - t0))
            rows[control][1].append((c2 - c1) / max(c1 - c0, 1e-9))
    common = dict(device=a.device, size=a.size, n=a.n, batch=a.batch, units=640, n_perm=a.n_perm, n_boot=a.n_boot,
                  plain_s=round(statistics.median(plains), 4))
    for control in (False, True):
        wall, cpu = (statistics.median(v) for v in rows[control])
        what = "with its random-init control (2 networks)" if control else "trained network only"
        print(f"device={a.device} size={a.size} n={a.n} units=640 n_perm={a.n_perm} n_boot={a.n_boot} "
              f"plain={statistics.median(plains):.3f}s dissection/plain, {what} = {wall:.2f}"
              f"{f' ({wall / 2:.2f} per network)' if control else ''} (all: "
              f"{', '.join(f'{r:.2f}' for r in rows[control][0])}; goal <= 2 per network; peer 3.0 on 2 CPU cores, "
              f"one network); process CPU-time ratio {cpu:.2f} (less sensitive to other processes on the cores)")
        emit("dissection_cost", f"whole dissection / plain forward, {what}, {a.size} px", wall,
             "<= 4" if control else "<= 2", **common, all=[round(r, 3) for r in rows[control][0]],
             cpu_time_ratio=round(cpu, 3))
    if a.skip_memory:
        return
    for n in (a.n, 4 * a.n):
        cmd = [sys.executable, __file__, "--memory-child", "--device", a.device, "--size", str(a.size), "--n", str(n),
               "--batch", str(a.batch), "--n-perm", str(a.n_perm), "--n-boot", str(a.n_boot),
               "--memory-mb", str(a.memory_mb), "--threads", str(a.threads)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        print("memory:", res.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
