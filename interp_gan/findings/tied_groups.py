"""Contrasts of independent group means when most values tie (most images unchanged by an edit).

    chance = flat_resample_chance(groups)              # P(a resample of some group has no spread)
    lo, hi = moderated_welch_bounds(groups, weights)   # Welch t with each variance half pooled

A bootstrap-t interval for sum_g w_g mean(g) (``findings.studentized``, resampling within each
group) fails when values tie heavily: a group whose values are all equal (no image changed) has
variance 0 in the sample and in every resample, so it adds nothing to the standard error although
its mean varies from sample to sample. With 80% zeros in each of 4 groups of 8 half the samples hold
such a group, and a nominal 95% interval covered 0.83 (tests/statistics/test_style_edits_stats.py).

``moderated_welch_bounds`` is the Welch t interval (Welch 1947; Satterthwaite 1946 degrees of
freedom) with each group's variance moderated toward the pooled within-group variance of all
groups, the shrinkage of Smyth's moderated t (Smyth, Stat. Appl. Genet. Mol. Biol. 3(1), art. 3,
2004): s~_g^2 = (s_g^2 + s_pool^2) / 2, i.e. prior weight d0 = n_g - 1, as much as the group's own.
All groups measure the same kind of change, so a group without spread borrows the others'. The
degrees of freedom stay each group's own n_g - 1 (no credit for the borrowing). It does not replace
the bootstrap-t: where one group's spread is much larger than the others' (a removal that moves its
target and little else) pooling shrinks that variance and the Welch interval alone covered 0.90;
the caller takes the union of the two intervals when ``flat_resample_chance`` is high, and the
bootstrap-t alone otherwise (then nothing changes; continuous data have chance ~ 0).

``flat_resample_chance`` is exact: a resample of a group of n values is flat when its n draws are
all one value v, chance sum_v (c_v / n)^n with c_v the count of v; groups resample independently.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["flat_resample_chance", "moderated_welch_bounds"]


def flat_resample_chance(groups: Sequence[np.ndarray]) -> float:
    """The chance that a within-group resample of at least one group has all values equal."""
    none_flat = 1.0
    for g in groups:
        g = np.asarray(g, dtype=np.float64).ravel()
        n = len(g)
        if n == 0:
            raise ValueError("flat_resample_chance expected non-empty groups; drop empty groups first")
        _, counts = np.unique(g, return_counts=True)
        none_flat *= 1.0 - float(np.sum((counts / n) ** n))
    return 1.0 - none_flat


def moderated_welch_bounds(groups: Sequence[np.ndarray], weights: Sequence[float],
                           level: float = 0.95) -> tuple[float, float]:
    """Welch t bounds of sum_g weights[g] mean(groups[g]) with each group variance averaged with the
    pooled within-group variance; Satterthwaite df on the groups' own n_g - 1. Every group needs
    2 or more values; [est, est] when no group has spread."""
    from scipy.stats import t as tdist
    gs = [np.asarray(g, dtype=np.float64).ravel() for g in groups]
    if len(gs) != len(weights) or any(len(g) < 2 for g in gs):
        raise ValueError("moderated_welch_bounds expected one weight per group and 2+ values in each group")
    w = np.asarray(weights, dtype=np.float64)
    ns = np.array([len(g) for g in gs], dtype=np.float64)
    nu = ns - 1
    est = float(sum(wg * g.mean() for wg, g in zip(w, gs)))
    var = np.array([g.var(ddof=1) for g in gs])
    pooled = float(np.sum(nu * var) / np.sum(nu))
    parts = w * w * (var + pooled) / 2 / ns
    total = float(parts.sum())
    if total == 0:
        return est, est
    df = total ** 2 / float(np.sum(parts ** 2 / nu))
    half = float(tdist.ppf((1 + level) / 2, df)) * np.sqrt(total)
    return est - half, est + half
