"""Style units' p-values: the exact rank-sum null against the Monte Carlo shuffles it replaces.

Times ``auroc_pvalues`` for one layer of U units (half untied, half ReLU-like: each unit's zeros
tie at the bottom, a different number per unit, so each is its own tie pattern) on N images in S
balanced styles: ``null="exact"`` with the cost bound lifted, and ``null="permutation"`` with
``n_perm`` shuffles. --middle-tied K makes K of the units quantised (6 levels: ties between their
extremes, about a DP pass each). Prints wall seconds (best of --repeats), the operations of one
untied table (``rank_sum_ops``) and of the layer's walk (``rank_sum_walk_ops``, what the DP does),
the tie patterns, the peak traced memory of one more exact run (numpy arrays, ``tracemalloc``)
against ``rank_sum_mb``, which null today's rule picks for this layer (``null_used``), and both
nulls' seconds as priced from this machine's ``rank_op_s`` / ``shuffle_s`` (``cost._null_costs``:
the layer's walk x rank_op_s; the shuffles as ``style_units.null_cost`` prices them for the estimate,
for untied units, so tie patterns' extra columns are not in it) against the measured ones.

    OMP_NUM_THREADS=1 python benchmarks/exact_null_cost.py --sizes 256:6,256:4,256:2,512:26,512:4
"""
from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _result import emit  # noqa: E402

import interp_gan.analyses.units.style_units as su  # noqa: E402
import interp_gan.findings.rank_sum as rs  # noqa: E402
from interp_gan.analyses.cost import _null_costs  # noqa: E402
from interp_gan.findings.rank_sum import rank_sum_mb, rank_sum_ops  # noqa: E402


def layer(n: int, units: int, seed: int = 0, middle_tied: int = 0) -> np.ndarray:
    """[n, units]: the first half untied Gaussians, the second half ReLU(g + b) with b spread so the
    units have 0 to ~90% zeros (ReLU-like ties, one pattern per zero count)."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((n, units))
    h = units // 2
    g[:, h:] = np.maximum(g[:, h:] + np.linspace(-1.3, 3.0, units - h)[None], 0.0)
    g[:, :middle_tied] = np.clip(np.round(g[:, :middle_tied] * 1.5), -3, 2)
    return g


def labels(n: int, styles: int) -> np.ndarray:
    return np.arange(n) % styles


def best(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="256:6,256:4,256:2,512:26,512:4")
    ap.add_argument("--units", type=int, default=480)
    ap.add_argument("--n-perm", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-mc", action="store_true")
    ap.add_argument("--no-memory", action="store_true", help="skip the traced run")
    ap.add_argument("--middle-tied", type=int, default=0)
    a = ap.parse_args()
    for spec in a.sizes.split(","):
        n, s = map(int, spec.split(":"))
        x, y = layer(n, a.units, middle_tied=a.middle_tied), labels(n, s)
        sizes = np.bincount(y, minlength=s)
        ops = rank_sum_ops(n, sizes)
        r2 = su._rank2(x)
        patterns = np.unique(np.sort(r2, axis=0).T, axis=0)
        g = len(patterns)
        k = np.minimum(sizes, n - sizes)
        walk = rs.rank_sum_walk_ops(patterns, int(k.max()), np.unique(k))
        picked = su.null_used(y, s, "exact", walk) == "exact"
        saved = su.EXACT_MAX_OPS, rs.EXACT_MAX_MB, su.EXACT_MAX_WALK_OPS
        su.EXACT_MAX_OPS = rs.EXACT_MAX_MB = su.EXACT_MAX_WALK_OPS = float("inf")   # the exact path, always
        try:
            t_ex = best(lambda: su.auroc_pvalues(x, y, s, null="exact"), a.repeats)
            peak = float("nan")
            if not a.no_memory:
                tracemalloc.start()
                su.auroc_pvalues(x, y, s, null="exact")
                peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
                tracemalloc.stop()
        finally:
            su.EXACT_MAX_OPS, rs.EXACT_MAX_MB, su.EXACT_MAX_WALK_OPS = saved
        t_mc = float("nan") if a.no_mc else best(
            lambda: su.auroc_pvalues(x, y, s, n_perm=a.n_perm, null="permutation"), a.repeats)
        price = _null_costs()
        est_ex = walk * price["rank_op_s"]
        est_mc = su.null_cost(y, s, a.units, "permutation", a.n_perm, price["rank_op_s"], price["shuffle_s"])[0]
        print(f"N={n} S={s} units={a.units} (middle-tied {a.middle_tied}) patterns={g} ops/table={ops:.2g} "
              f"walk={walk:.2g}: exact {t_ex:.2f} s ({t_ex / walk * 1e9:.2f} ns/op; priced {est_ex:.2f} s) (peak "
              f"{peak:.0f} MB, rank_sum_mb {rank_sum_mb(n, sizes):.0f}), Monte Carlo {a.n_perm} shuffles {t_mc:.2f} s "
              f"(priced as for untied units {est_mc:.2f} s), ratio {t_ex / t_mc:.2f}; rule picks {'exact' if picked else 'Monte Carlo'}",
              flush=True)
        emit("exact_null_cost", "exact_over_mc", t_ex / t_mc, n=n, styles=s, units=a.units, patterns=g,
             ops=ops, walk_ops=walk, middle_tied=a.middle_tied, exact_s=round(t_ex, 3), mc_s=round(t_mc, 3),
             exact_priced_s=round(est_ex, 3), mc_priced_s=round(est_mc, 3), peak_mb=round(peak, 1), n_perm=a.n_perm)


if __name__ == "__main__":
    main()
