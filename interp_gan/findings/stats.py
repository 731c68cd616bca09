"""Confidence intervals, permutation p-values and Benjamini-Hochberg q-values.

    lo, hi = bootstrap_ci(values, n_boot=1000, seed=0)                     # percentile CI of the mean
    lo, hi = bootstrap_ci(data, stat=lambda idx: f(idx), n=len(data))      # any statistic of a resample
    q = bh_qvalues(p)                                                      # BH 1995 step-up, monotone

Efron & Tibshirani (1993) for the percentile bootstrap; Benjamini & Hochberg (1995) for the
false discovery rate. Permutation p-values use (1 + #{null >= obs}) / (1 + B) so they are
never 0 (Phipson & Smyth 2010).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["bootstrap_ci", "bootstrap_indices", "permutation_pvalue", "bh_qvalues", "MIN_SAMPLES_FOR_CI",
           "require_samples"]

MIN_SAMPLES_FOR_CI = 8  # below this a bootstrap CI is meaningless


def require_samples(n: int, what: str = "images", need: int = MIN_SAMPLES_FOR_CI) -> None:
    if n < need:
        raise ValueError(f"a confidence interval needs at least {need} {what}, got {n}; "
                         f"raise n_images (or the sample count) in the pipeline")


def bootstrap_indices(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """[n_boot, n] resample indices (with replacement), seeded."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def bootstrap_ci(values: np.ndarray | None = None, *, stat: Callable[[np.ndarray], float] | None = None,
                 n: int | None = None, n_boot: int = 1000, level: float = 0.95, seed: int = 0
                 ) -> tuple[float, float]:
    """Percentile bootstrap CI. Either ``values`` (CI of their mean, vectorised) or ``stat(idx)``."""
    alpha = (1 - level) / 2
    if values is not None:
        v = np.asarray(values, dtype=float)
        require_samples(len(v), "samples")
        idx = bootstrap_indices(len(v), n_boot, seed)
        boots = v[idx].mean(axis=1)
    else:
        if stat is None or n is None:
            raise ValueError("give values, or stat and n")
        require_samples(n, "samples")
        boots = np.array([stat(i) for i in bootstrap_indices(n, n_boot, seed)])
    boots = boots[np.isfinite(boots)]
    if len(boots) == 0:
        return float("nan"), float("nan")
    return float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))


def permutation_pvalue(observed: np.ndarray | float, null: np.ndarray) -> np.ndarray | float:
    """One-sided p = (1 + #{null >= observed}) / (1 + B); null has B rows (broadcast over the rest)."""
    null = np.asarray(null, dtype=float)
    obs = np.asarray(observed, dtype=float)
    p = (1 + (null >= obs[None]).sum(axis=0)) / (1 + null.shape[0])
    return float(p) if np.ndim(p) == 0 else p


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), same shape as p; NaN stays NaN."""
    p = np.asarray(p, dtype=float)
    flat = p.ravel()
    ok = np.isfinite(flat)
    q = np.full_like(flat, np.nan)
    pv = flat[ok]
    m = len(pv)
    if m:
        order = np.argsort(pv)
        ranked = pv[order] * m / np.arange(1, m + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]
        out = np.empty(m)
        out[order] = np.minimum(ranked, 1.0)
        q[ok] = out
    return q.reshape(p.shape)
