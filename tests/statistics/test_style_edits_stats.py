"""Statistics of the style_edits analysis, by simulation.

- the specificity CI (``contrast_ci``: on-target mean minus the mean of the off-target means, a
  stratified studentized bootstrap) covers within 3 points of 95% at 12 and 16 images per style,
  2 and 3 other styles, normal and skewed changes with unequal spreads;
- with heavy ties (80-90% of each style's changes exactly 0: most images unchanged) it covers
  at least 0.93 (was 0.83 at 4 groups of 8 with 80% zeros, 0.80 at 4 groups of 16 with 90%,
  before the union with the moderated Welch interval, ``findings.tied_groups``), and its median
  width is at most 1.3 times the bootstrap-t alone (measured 1.12 and 1.13);
- p_random of the on-target removal (default baseline: the selection re-run on images relabelled
  within each half and measured on them, ``ablation.shuffled_selection``) is
  calibrated on a planted null (the toy generator of tests/analyses/test_style_edits.py whose
  units carry no style): over 400 data sets and seeds, P(p_random <= j/20) <= j/20 + 2.5 SE for
  j = 1, 2, 5, 10 and not far below it (the rank test is exact under exchangeability,
  conservative by ties).
The effect CIs are ``bootstrap_t_mean_ci``, simulated in test_ablation_stats.py.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

from interp_gan.analyses.units.style_edits import StyleEdits, contrast_ci

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analyses"))
from test_style_edits import toy_data, toy_subject  # noqa: E402

from replicates import over_cores  # noqa: E402


def _draw(rng, shape, n, mean, sd):
    if shape == "normal":
        return rng.normal(mean, sd, n)
    return mean + sd * (rng.gamma(4.0, 0.5, n) - 2.0)          # gamma(4): skewness 1, mean 0 after shifting


@pytest.mark.parametrize("n,m,shape", [(12, 2, "normal"), (12, 2, "gamma4"), (16, 3, "normal"), (16, 3, "gamma4")])
def test_specificity_ci_covers(n, m, shape):
    rng = np.random.default_rng(100 * n + m + len(shape))
    means, sds = [-1.0] + [0.2 * j for j in range(m)], [1.0] + [0.5 + 0.5 * j for j in range(m)]
    truth = means[0] - np.mean(means[1:])
    reps, hits = 1000, 0
    for i in range(reps):
        on = _draw(rng, shape, n, means[0], sds[0])
        offs = [_draw(rng, shape, n, mu, sd) for mu, sd in zip(means[1:], sds[1:])]
        _, lo, hi, bad = contrast_ci(on, offs, 400, seed=i)
        hits += lo <= truth <= hi
        assert bad == 0
    cov = hits / reps
    assert 0.92 <= cov <= 0.98, cov


def _zero_inflated(rng, n, p_zero):
    return np.where(rng.random(n) < p_zero, 0.0, rng.normal(0.1, 0.05, n))


@pytest.mark.parametrize("p_zero,groups,n", [(0.8, 4, 8), (0.9, 4, 16)])
def test_specificity_ci_covers_heavy_ties(p_zero, groups, n, monkeypatch):
    """Every group has the same law, so the contrast is 0. 600 samples: the Monte Carlo SE of a
    0.95 coverage is 0.009; measured (2000 samples) 0.979 and 0.985, the bootstrap-t alone 0.83
    and 0.80. Samples where every value ties ([est, est]: no spread to bound) are not counted."""
    import interp_gan.analyses.units.style_edits as style_edits
    rng = np.random.default_rng(int(100 * p_zero) + groups + n)
    hits, used, ratios = 0, 0, []
    for i in range(600):
        on, *offs = [_zero_inflated(rng, n, p_zero) for _ in range(groups)]
        _, lo, hi, _ = contrast_ci(on, offs, 400, seed=i)
        if lo == hi:
            continue
        with monkeypatch.context() as m:                   # the bootstrap-t alone, for the width
            m.setattr(style_edits, "TIED_FLAT_CHANCE", 1.0)
            _, blo, bhi, _ = contrast_ci(on, offs, 400, seed=i)
        used += 1
        hits += lo <= 0.0 <= hi
        ratios.append((hi - lo) / (bhi - blo))
    cov, width = hits / used, float(np.median(ratios))
    assert used > 550 and cov >= 0.93, cov
    assert 1.0 <= width <= 1.3, width


def _null_p(baseline: str, rep: int) -> float:
    f = StyleEdits(layer="mix", styles=["checker"], transfer=False, ks=(3,), n_random=19, n_boot=20,
                   n_strip=0, baseline=baseline, seed=rep).run(toy_subject(planted=False), toy_data(seed=rep))
    df = f.tables["style_removal"]
    return float(df[df["on_target"] & (df["classifier"] == "rgb") & (df["measure"] == "log_odds")].iloc[0]["p_random"])


def _null_pvalues(baseline: str, reps: int) -> np.ndarray:
    import torch
    threads = torch.get_num_threads()
    try:                              # a tiny model: one thread per replicate, the replicates over the cores
        return np.asarray(over_cores(_null_p, [(baseline, rep) for rep in range(reps)]))
    finally:
        torch.set_num_threads(threads)


def test_p_random_is_calibrated_on_a_planted_null():
    """The default baseline (the selection re-run on images relabelled within each half, measured on
    the relabelled images). The null toy's units are correlated (all are convolutions of the same 3
    colour channels), so selected sets are coherent groups; this baseline's sets are too. Measured:
    0.0725 / 0.1175 / 0.265 / 0.495 at 0.05 / 0.1 / 0.25 / 0.5 (400 data sets; the same as
    ``ablation``'s on this design, the two share the construction and its seeds); with the sets
    measured on the style's own images (the construction before) 0.0525 / 0.105 / 0.28 / 0.5225.
    With uniform random sets ("random") it was 0.055 / 0.135 / 0.285 / 0.53 (independent halves) and
    0.0775 / 0.135 / 0.3025 / 0.5125 with one random set for both halves (ablation's design): not
    asserted here, said in docs/statistics.md."""
    ps = _null_pvalues("shuffled", 400)
    se = lambda a: np.sqrt(a * (1 - a) / len(ps))  # noqa: E731
    for j in (1, 2, 5, 10):
        a = j / 20
        rate = float(np.mean(ps <= a + 1e-12))
        assert rate <= a + 2.5 * se(a), (a, rate)
        assert rate >= a - 4 * se(a), (a, rate)          # not degenerate (e.g. every p = 1)
