"""Bootstrap-t intervals with many tied values (resamples without spread), checked by simulation.

Zero-inflated paired differences (most images unchanged by an edit) make many resamples flat:
t* = +-inf. Dropping them made a nominal 95% interval cover 0.64 at n = 8 with 80% zeros; kept
(with Student's t on a side they reach) it covers near nominal. Samples with no spread at all
get [mean, mean] and are left out of the coverage count.
"""
from __future__ import annotations

import numpy as np
import pytest

from interp_gan.analyses.units.ablation import bootstrap_t_mean_ci
from interp_gan.analyses.units.style_edits import contrast_ci
from interp_gan.findings.studentized import studentized_bounds


def _zero_inflated(rng, n, p_zero):
    return np.where(rng.random(n) < p_zero, 0.0, rng.normal(0.1, 0.05, n))


@pytest.mark.parametrize("n,p_zero", [(8, 0.8), (16, 0.8), (8, 0.5), (16, 0.9)])
def test_mean_ci_covers_zero_inflated_differences(n, p_zero):
    rng = np.random.default_rng(n * 10 + int(p_zero * 10))
    truth, hits, used, flat_seen = (1 - p_zero) * 0.1, 0, 0, 0
    for i in range(800):
        v = _zero_inflated(rng, n, p_zero)
        lo, hi, flat = bootstrap_t_mean_ci(v, 300, seed=i)
        if v.std() == 0:
            assert lo == hi == v.mean()                    # no spread: the zero-width limit
            continue
        used += 1
        flat_seen += flat > 0
        hits += lo <= truth <= hi
    cov = hits / used
    print(n, p_zero, used, cov)
    assert flat_seen > used / 4                             # the case this file is about
    assert cov >= 0.90, cov                                 # dropping flat resamples: 0.64 at (8, 0.8)


@pytest.mark.parametrize("p_zero,m,least", [(0.8, 1, 0.90), (0.5, 3, 0.92)])
def test_contrast_ci_covers_zero_inflated_groups(p_zero, m, least):
    # 80% zeros in each of 1 + 3 groups of 8 covered only 0.84 with the bootstrap-t alone (a group
    # without spread adds nothing to its SE); contrast_ci now widens there (findings.tied_groups),
    # simulated in test_style_edits_stats.py::test_specificity_ci_covers_heavy_ties.
    rng = np.random.default_rng(5)
    hits, used = 0, 0
    for i in range(600):
        on, offs = _zero_inflated(rng, 8, p_zero), [_zero_inflated(rng, 8, p_zero) for _ in range(m)]
        est, lo, hi, _ = contrast_ci(on, offs, 300, seed=i)
        if not np.isfinite(lo) or lo == hi:
            continue
        used += 1
        hits += lo <= 0.0 <= hi                             # every group has the same mean
    print(used, hits / used)
    assert used > 500 and hits / used >= least


def test_finite_replicates_give_numpys_quantiles():
    rng = np.random.default_rng(0)
    t = rng.normal(size=301)
    lo, hi, flat = studentized_bounds(1.0, 0.5, t, df=7)
    q_hi, q_lo = np.quantile(t, [0.975, 0.025])
    assert flat == 0 and lo == pytest.approx(1.0 - q_hi * 0.5) and hi == pytest.approx(1.0 - q_lo * 0.5)


def test_an_infinite_tail_falls_back_to_student_on_that_side_only():
    from scipy.stats import t as tdist
    t = np.r_[np.full(20, -np.inf), np.linspace(-2, 2, 280), np.nan]   # 20 of 301 flat below: past 2.5%
    lo, hi, flat = studentized_bounds(0.0, 1.0, t, df=7)
    assert flat == 21
    assert hi == pytest.approx(tdist.ppf(0.975, 7))        # the side the flat resamples reach
    assert np.isfinite(lo) and lo == pytest.approx(-np.quantile(np.sort(np.where(np.isnan(t), 0, t)), 0.975))
    assert studentized_bounds(0.5, 0.0, t, df=7)[:2] == (0.5, 0.5)
    assert np.isnan(studentized_bounds(np.nan, 1.0, t, df=7)[0])
