"""Integrated Gradients overhead: IG time / (n_steps x one forward+backward), in one run.

    .venv/bin/python benchmarks/attribution_cost.py                 # 64 and 256 px, CPU (+ CUDA)
    .venv/bin/python benchmarks/attribution_cost.py --sizes 64 --devices cpu --repeats 5

Goal: <= 1.2 (Captum's IG should cost little beyond the n_steps gradient evaluations it
needs). IG runs with internal_batch_size = the batch size, so each of its chunks is one
forward+backward of the same shape as the reference; the reference is timed on the same
inputs, interleaved with the IG runs, median of --repeats (the machine is shared: compare
ratios from one run, not seconds across runs; on a CPU other processes share, --threads 1
steadies the ratio). IG also runs 2 plain forwards for its convergence delta. Targets: the independent style classifier
on an image, and the generator target classifier(G(content)) on a default-size StyleNet.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _result import emit  # noqa: E402

from interp_gan.analyses.attribution.analysis import attribute  # noqa: E402
from interp_gan.models.classifier import StyleClassifier  # noqa: E402
from interp_gan.models.stylenet import StyleNet  # noqa: E402


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def fwd_bwd(forward, x, target, extra) -> None:
    x = x.detach().requires_grad_(True)
    out = forward(x, *extra)
    torch.autograd.grad(out[torch.arange(len(x)), target].sum(), x)


def measure(forward, x, target, extra, n_steps: int, repeats: int, dev: torch.device) -> tuple[float, float]:
    ig_t, ref_t = [], []
    fwd_bwd(forward, x, target, extra)                 # warm-up (allocator, cudnn autotune)
    attribute("ig", forward, x, target=target, baselines=torch.full_like(x, -1.0), extra=extra,
              n_steps=n_steps, internal_batch_size=len(x))
    for _ in range(repeats):
        _sync(dev); t0 = time.perf_counter()
        for _ in range(n_steps):
            fwd_bwd(forward, x, target, extra)
        _sync(dev); ref_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        attribute("ig", forward, x, target=target, baselines=torch.full_like(x, -1.0), extra=extra,
                  n_steps=n_steps, internal_batch_size=len(x))
        _sync(dev); ig_t.append(time.perf_counter() - t0)
    return statistics.median(ig_t), statistics.median(ref_t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--n-steps", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, n_steps {args.n_steps}")
    print(f"{'device':6} {'px':>4} {'target':11} {'IG s':>8} {'n x fb s':>9} {'ratio':>6}")
    for name in args.devices:
        dev = torch.device(name)
        clf = StyleClassifier(4).to(dev).eval()
        G = StyleNet(4).to(dev).eval()
        for px in args.sizes:
            x = torch.rand(args.batch, 3, px, px, device=dev) * 2 - 1
            ids = torch.arange(args.batch, device=dev) % 4
            code = G.mapping(torch.randn(args.batch, G.latent_dim, device=dev), ids).detach()
            cases = {"classifier": (clf, ()),
                     "generator": (lambda c, k: clf(G(c, k)), (code,))}
            for tname, (fwd, extra) in cases.items():
                ig, ref = measure(fwd, x, ids, extra, args.n_steps, args.repeats, dev)
                print(f"{name:6} {px:4d} {tname:11} {ig:8.3f} {ref:9.3f} {ig / ref:6.2f}", flush=True)
                emit("attribution_cost", f"IG / (n_steps x forward+backward), {tname}, {px} px", ig / ref, "<= 1.2",
                     device=name, size=px, batch=args.batch, n_steps=args.n_steps, ig_s=round(ig, 4),
                     reference_s=round(ref, 4))


if __name__ == "__main__":
    main()
