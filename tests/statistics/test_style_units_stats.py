"""Statistics of the style-units analysis, by simulation at the demo's size (16 images per
style, 4 styles, one style against the other three).

- the AUROC CI (logit-DeLong, Newcombe's score interval at separation) covers the true AUROC
  within 3 points of 95%, also when the groups nearly separate (true AUROC 0.95-0.99);
- no CI has zero width for finite n (the old percentile bootstrap had zero width whenever the
  groups separated: 682 of 1280 demo rows);
- the Monte Carlo permutation p-values are uniform on a null model (Kolmogorov-Smirnov p > 0.01);
- the exact permutation p-values (the default, rank-sum DP) keep P(p <= a) <= a at a = 0.01, 0.05,
  0.1 on a null model with ties (ReLU zeros, rounded values), within binomial error of a for
  untied units, and reach below any Monte Carlo floor where the style separates.
"""
import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import kstest, norm

from interp_gan.analyses.units.style_units import auroc_bootstrap_ci, auroc_ci, auroc_matrix, auroc_pvalues
from interp_gan.findings.auroc import auroc_interval, newcombe_interval

N_PER, N_STYLES, REPS = 16, 4, 2000
Y = np.arange(N_PER * N_STYLES) % N_STYLES                    # demo layout: style 0 vs styles 1-3


def _simulate(true_auc: float, sds: tuple[float, float, float], rng) -> np.ndarray:
    """x [64, REPS]: style 0 ~ N(mu, 1), styles 1-3 ~ N((-0.5, 0, 0.5), sds); mu chosen so the
    one-vs-rest AUROC (the mean of P(X0 > Xk) over the three other styles) is true_auc."""
    others = np.array([-0.5, 0.0, 0.5])
    sd = np.asarray(sds)
    mu = brentq(lambda m: np.mean(norm.cdf((m - others) / np.sqrt(1 + sd ** 2))) - true_auc, -20, 40)
    x = np.empty((len(Y), REPS))
    x[Y == 0] = rng.normal(mu, 1.0, size=((Y == 0).sum(), REPS))
    for k in range(1, 4):
        x[Y == k] = rng.normal(others[k - 1], sd[k - 1], size=((Y == k).sum(), REPS))
    return x


@pytest.mark.parametrize("sds", [(1.0, 1.0, 1.0), (0.7, 1.0, 1.4)], ids=["equal_sd", "unequal_sd"])
def test_auroc_ci_covers_at_the_demo_size(sds):
    rng = np.random.default_rng(12345)
    out = {}
    for a in (0.5, 0.75, 0.9, 0.95, 0.97, 0.99):
        x = _simulate(a, sds, rng)
        lo, hi = auroc_ci(x, Y, N_STYLES)                         # the analysis' own function
        cov = float(np.mean((lo[0] <= a) & (a <= hi[0])))
        out[a] = cov
        assert (hi[0] - lo[0] > 0).all()
    print(sds, out)
    bad = {a: c for a, c in out.items() if abs(c - 0.95) > 0.03}
    assert not bad, f"coverage off by more than 3 points: {bad} (all: {out})"


def test_old_percentile_bootstrap_collapsed_and_undercovered_near_separation():
    """What the fix replaces: at true AUROC 0.99 the percentile bootstrap gives zero-width
    intervals for the replicates that separate, and covers well under 95%."""
    rng = np.random.default_rng(7)
    x = _simulate(0.99, (1.0, 1.0, 1.0), rng)[:, :300]
    lo, hi = auroc_bootstrap_ci(x, Y, N_STYLES, n_boot=200, seed=0)
    zero = np.mean(hi[0] == lo[0])
    cov = np.mean((lo[0] <= 0.99) & (0.99 <= hi[0]))
    assert zero > 0.05 and cov < 0.90, (zero, cov)
    lo, hi = auroc_ci(x, Y, N_STYLES)
    assert np.mean(hi[0] == lo[0]) == 0


def test_zero_width_is_impossible_for_finite_n():
    rng = np.random.default_rng(0)
    for m, n in ((2, 2), (3, 9), (16, 48), (200, 600)):
        pos = rng.normal(size=(m, 50)) + np.r_[np.full(25, 100.0), np.zeros(25)]   # 25 separated columns
        neg = rng.normal(size=(n, 50))
        pos[:, -1], neg[:, -1] = 1.0, 1.0                                          # a constant column
        lo, hi = auroc_interval(pos, neg)
        assert (hi - lo > 0).all() and (lo >= 0).all() and (hi <= 1).all(), (m, n)
        assert hi[0] == pytest.approx(1.0) and lo[0] < 1
    # the score interval at AUROC 1 and 0 is one-sided, and shrinks with n
    lo, hi = newcombe_interval(np.array([1.0, 0.0]), 16, 48)
    assert lo[0] < 1 and hi[0] == pytest.approx(1) and lo[1] == pytest.approx(0) and hi[1] > 0
    lo2, _ = newcombe_interval(np.array([1.0]), 160, 480)
    assert 1 - lo2[0] < 1 - lo[0]


def test_permutation_pvalues_are_uniform_under_the_null():
    """Null model: unit activations independent of the style (some units tied, ReLU-like)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(len(Y), 400))
    x[:, 300:] = np.maximum(np.round(x[:, 300:], 1), 0)      # ties and zeros take the per-pattern null
    p = auroc_pvalues(x, Y, N_STYLES, n_perm=999, seed=11, null="permutation")[0]
    ks = kstest(p, "uniform")
    print("KS p", ks.pvalue, "rate p<=0.05", np.mean(p <= 0.05))
    assert ks.pvalue > 0.01 and abs(np.mean(p <= 0.05) - 0.05) < 0.03
    assert np.isfinite(auroc_matrix(x, Y, N_STYLES)).all()


def test_exact_pvalues_are_valid_under_the_null_with_ties():
    """Null model: iid activations (independent of the style), 1200 units: 300 untied, 300 ReLU
    (about half the images exactly 0), 300 ReLU rounded to 0.5 (ties everywhere), 300 with 4 values.
    Every style against the rest (4 x 1200 p-values); a valid test has P(p <= a) <= a."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(len(Y), 1200))
    x[:, 300:600] = np.maximum(x[:, 300:600], 0)
    x[:, 600:900] = np.maximum(np.round(2 * x[:, 600:900]) / 2, 0)
    x[:, 900:] = rng.integers(0, 4, size=(len(Y), 300))
    p = auroc_pvalues(x, Y, N_STYLES)                                  # null="exact"
    rates = {}
    for a in (0.01, 0.05, 0.1):
        se = np.sqrt(a * (1 - a) / p.size)
        rates[a] = [float(np.mean(p[:, sl] <= a)) for sl in (slice(0, 300), slice(300, None), slice(None))]
        assert rates[a][2] <= a + 2.5 * se, (a, rates[a])              # all units together
        assert rates[a][1] <= a + 3 * np.sqrt(a * (1 - a) / p[:, 300:].size)   # the tied ones
        # untied: the exact test is exact up to the discreteness of 2 / C(64, 16) steps
        assert abs(rates[a][0] - a) <= 3 * np.sqrt(a * (1 - a) / p[:, :300].size), (a, rates[a])
    print("P(p <= a) untied / tied / all:", rates)
