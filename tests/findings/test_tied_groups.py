"""findings.tied_groups: the exact chance of a flat resample, and the moderated Welch bounds."""
import itertools

import numpy as np
import pytest
from scipy.stats import t as tdist

from interp_gan.findings.tied_groups import flat_resample_chance, moderated_welch_bounds


def _enumerated_flat(g):
    n = len(g)
    draws = list(itertools.product(range(n), repeat=n))
    return sum(len({g[i] for i in d}) == 1 for d in draws) / len(draws)


@pytest.mark.parametrize("groups", [[[0.0, 0.0, 1.0]], [[0.0, 0.0, 0.0, 2.0], [1.0, 1.0, 3.0]],
                                    [[0.5, 0.5, 0.5], [1.0, 2.0, 3.0, 4.0]]])
def test_flat_resample_chance_is_the_enumerated_chance(groups):
    none = np.prod([1 - _enumerated_flat(g) for g in groups])
    assert flat_resample_chance([np.array(g) for g in groups]) == pytest.approx(1 - none)


def test_flat_resample_chance_is_negligible_without_ties_and_one_for_a_constant_group():
    rng = np.random.default_rng(0)
    assert flat_resample_chance([rng.normal(size=8), rng.normal(size=12)]) < 1e-5
    assert flat_resample_chance([rng.normal(size=8), np.zeros(8)]) == 1.0
    with pytest.raises(ValueError, match="non-empty"):
        flat_resample_chance([np.zeros(0)])


def test_moderated_welch_is_welch_when_the_variances_agree_and_half_pools_a_flat_group():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([5.0, 6.0, 7.0, 8.0])        # equal variances
    lo, hi = moderated_welch_bounds([a, b], [1.0, -1.0])
    se = np.sqrt(a.var(ddof=1) / 4 + b.var(ddof=1) / 4)
    half = tdist.ppf(0.975, 6) * se                                           # Welch df: 6 here
    assert (lo, hi) == pytest.approx((-4 - half, -4 + half))
    flat = np.zeros(5)                                                        # no spread: half the pool
    lo, hi = moderated_welch_bounds([flat, b], [1.0, -0.5])
    pooled = 3 * b.var(ddof=1) / (4 + 3)
    parts = np.array([pooled / 2 / 5, 0.25 * (b.var(ddof=1) + pooled) / 2 / 4])
    df = parts.sum() ** 2 / np.sum(parts ** 2 / np.array([4, 3]))
    half = tdist.ppf(0.975, df) * np.sqrt(parts.sum())
    assert (lo, hi) == pytest.approx((-3.25 - half, -3.25 + half))
    assert moderated_welch_bounds([np.ones(3), np.ones(4)], [1.0, -1.0]) == (0.0, 0.0)
    with pytest.raises(ValueError, match="2\\+ values"):
        moderated_welch_bounds([np.ones(1), b], [1.0, -1.0])
