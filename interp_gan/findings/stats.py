"""Confidence intervals, permutation p-values and Benjamini-Hochberg q-values.

    lo, hi = bootstrap_ci(values, n_boot=1000, seed=0)                     # percentile CI of the mean
    lo, hi = bootstrap_ci(values, method="bca", expand=True)               # BCa, widened for small n
    lo, hi = bootstrap_ci(data, stat=lambda idx: f(idx), n=len(data))      # any statistic of a resample
    ci = bootstrap_interval(values, method="bca")    # BootstrapCI: low, high, n_nonfinite, method, ...
    p = permutation_pvalue(observed, null)           # (1 + #{null >= obs}) / (1 + B)
    q = bh_qvalues(p)                                # BH 1995 step-up, monotone
    note = floor_note(p, n_perm=1000)                # None, or a line: how many p sit at 1 / (1 + B)
    lo, hi = wilson_interval(22, 352)                # a rate's 95% score interval
    lo, hi = newcombe_difference(22, 352, 11, 352)   # 95% interval of the difference of two rates

Intervals. ``method="percentile"`` (the default, unchanged) is the percentile bootstrap of
Efron & Tibshirani (1993). ``method="bca"`` is the bias-corrected and accelerated interval
(Efron 1987, JASA 82:171-185): the percentile levels are shifted by the bias correction
z0 = Phi^-1(share of replicates below the estimate, ties counted half) and the acceleration
a = sum(d^3) / (6 (sum d^2)^1.5), d the jackknife deviations (leave-one-out estimate's mean
minus each leave-one-out estimate). Both under-cover the mean at small n (measured at n = 16,
95% nominal, 500 replicates, in tests/statistics/test_bootstrap.py: percentile 0.91 normal /
0.90 exponential; BCa 0.90 / 0.90) because the bootstrap distribution is as narrow as the plug-in
standard deviation and uses normal rather than t tails. ``expand=True`` widens the nominal
level as Hesterberg (2015, "What teachers should know about the bootstrap", Am. Stat. 69:371)
proposes for the "expanded percentile interval": alpha/2 is replaced by
Phi(-sqrt(n / (n - 1)) t_{alpha/2, n-1}); with BCa this gives 0.935 (normal) and 0.927
(exponential) at n = 16. Strongly skewed data (lognormal sigma = 1) still under-cover at
n = 16 with every variant (0.89 at best): no bootstrap interval fixes that sample size.

Non-finite replicates (a statistic that divides by zero on some resample) are dropped from
the quantiles and *counted*: ``bootstrap_interval`` returns the count, ``bootstrap_ci`` warns
(``NonFiniteBootstrapWarning``) with it. An interval from the finite replicates only is
conditional on the resample being usable; report the count beside it. (The studentized intervals
of ablation, style edits and artifacts do not drop theirs: ``findings.studentized`` keeps a
resample without spread as t* = +-inf.)

Permutation p-values use (1 + #{null >= obs}) / (1 + B) so they are never 0 (Phipson &
Smyth 2010); they cannot go below the floor 1 / (1 + B). ``floor_note`` says when many sit
there (the true p may be far smaller, and BH q-values inherit the floor) and suggests a B.
Benjamini & Hochberg (1995) for the false discovery rate.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["bootstrap_ci", "bootstrap_interval", "BootstrapCI", "NonFiniteBootstrapWarning", "bootstrap_indices",
           "permutation_pvalue", "bh_qvalues", "permutation_floor", "count_at_floor", "floor_note",
           "MIN_SAMPLES_FOR_CI", "require_samples", "wilson_interval", "newcombe_difference",
           "rate_beyond_draws"]

MIN_SAMPLES_FOR_CI = 8  # below this a bootstrap CI is meaningless
_METHODS = ("percentile", "bca")


class NonFiniteBootstrapWarning(RuntimeWarning):
    """Some bootstrap replicates were NaN or infinite and were left out of the interval."""


@dataclass(frozen=True)
class BootstrapCI:
    """A bootstrap interval and what went into it.

    ``low``/``high``: the interval (NaN when no replicate was finite); ``estimate``: the statistic
    on the full sample; ``n_boot``: replicates drawn; ``n_nonfinite``: replicates that were NaN
    or infinite and left out; ``method``: "percentile" or "bca"; ``levels``: the two quantile
    levels actually read (BCa and ``expand`` move them away from alpha/2, 1 - alpha/2);
    ``acceleration``/``bias``: BCa's a and z0 (NaN for the percentile method)."""
    low: float
    high: float
    estimate: float
    n_boot: int
    n_nonfinite: int
    method: str
    levels: tuple[float, float]
    acceleration: float = float("nan")
    bias: float = float("nan")

    def __iter__(self):          # lo, hi = bootstrap_interval(...) works like bootstrap_ci
        return iter((self.low, self.high))

    @property
    def nonfinite_share(self) -> float:
        return self.n_nonfinite / self.n_boot if self.n_boot else float("nan")


def require_samples(n: int, what: str = "images", need: int = MIN_SAMPLES_FOR_CI) -> None:
    if n < need:
        raise ValueError(f"a confidence interval needs at least {need} {what}, got {n}; "
                         f"raise n_images (or the sample count) in the pipeline, or add images to a --data folder that "
                         f"holds fewer")


def bootstrap_indices(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """[n_boot, n] resample indices (with replacement), seeded."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def _phi(x: np.ndarray | float) -> np.ndarray | float:
    from scipy.stats import norm
    return norm.cdf(x)


def _phi_inv(p: np.ndarray | float) -> np.ndarray | float:
    from scipy.stats import norm
    return norm.ppf(p)


def _tail(level: float, n: int, expand: bool) -> float:
    """alpha/2, or Hesterberg's (2015) expanded alpha/2 = Phi(-sqrt(n/(n-1)) t_{alpha/2, n-1})."""
    alpha = (1 - level) / 2
    if not expand:
        return alpha
    from scipy.stats import t as tdist
    return float(_phi(-math.sqrt(n / (n - 1)) * tdist.ppf(1 - alpha, n - 1)))


def bootstrap_interval(values: np.ndarray | None = None, *, stat: Callable[[np.ndarray], float] | None = None,
                       n: int | None = None, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                       method: str = "percentile", expand: bool = False) -> BootstrapCI:
    """Bootstrap CI with its bookkeeping. Either ``values`` (CI of their mean, vectorised) or
    ``stat(idx)`` with the sample size ``n`` (``stat(np.arange(n))`` is the estimate; BCa's
    jackknife calls ``stat`` on the n leave-one-out index sets). See the module docstring for
    ``method`` and ``expand``; non-finite replicates are dropped and counted."""
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if values is not None:
        v = np.asarray(values, dtype=float).ravel()
        n = len(v)
        require_samples(n, "samples")
        boots = v[bootstrap_indices(n, n_boot, seed)].mean(axis=1)
        est = float(v.mean())
        jack = (lambda: (v.sum() - v) / (n - 1))
    else:
        if stat is None or n is None:
            raise ValueError("give values, or stat and n")
        require_samples(n, "samples")
        boots = np.array([stat(i) for i in bootstrap_indices(n, n_boot, seed)], dtype=float)
        est = float(stat(np.arange(n)))
        jack = (lambda: np.array([stat(np.delete(np.arange(n), i)) for i in range(n)], dtype=float))
    ok = np.isfinite(boots)
    n_bad = int((~ok).sum())
    boots = boots[ok]
    tail = _tail(level, n, expand)
    if len(boots) == 0:
        return BootstrapCI(float("nan"), float("nan"), est, n_boot, n_bad, method, (tail, 1 - tail))
    if method == "percentile":
        lv = (tail, 1 - tail)
        return BootstrapCI(float(np.quantile(boots, lv[0])), float(np.quantile(boots, lv[1])), est, n_boot, n_bad,
                           method, lv)
    # BCa (Efron 1987)
    share = (np.sum(boots < est) + 0.5 * np.sum(boots == est)) / len(boots)
    z0 = float(_phi_inv(np.clip(share, 0.5 / len(boots), 1 - 0.5 / len(boots))))
    j = jack()
    j = j[np.isfinite(j)]
    d = j.mean() - j if len(j) else np.zeros(0)
    den = 6.0 * float((d ** 2).sum()) ** 1.5
    a = float((d ** 3).sum() / den) if den > 0 else 0.0
    z = np.asarray(_phi_inv([tail, 1 - tail]))
    lv = _phi(z0 + (z0 + z) / (1 - a * (z0 + z)))
    lv = (float(lv[0]), float(lv[1]))
    return BootstrapCI(float(np.quantile(boots, lv[0])), float(np.quantile(boots, lv[1])), est, n_boot, n_bad,
                       method, lv, a, z0)


def bootstrap_ci(values: np.ndarray | None = None, *, stat: Callable[[np.ndarray], float] | None = None,
                 n: int | None = None, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                 method: str = "percentile", expand: bool = False) -> tuple[float, float]:
    """Bootstrap CI (lo, hi). Either ``values`` (CI of their mean, vectorised) or ``stat(idx)``.

    ``method="percentile"`` (default, Efron & Tibshirani 1993) or ``"bca"`` (Efron 1987);
    ``expand=True`` widens it for small n (Hesterberg 2015). Non-finite replicates are left out
    and a ``NonFiniteBootstrapWarning`` says how many; ``bootstrap_interval`` returns the count."""
    ci = bootstrap_interval(values, stat=stat, n=n, n_boot=n_boot, level=level, seed=seed, method=method,
                            expand=expand)
    if ci.n_nonfinite:
        warnings.warn(f"{ci.n_nonfinite} of {ci.n_boot} bootstrap replicates were not finite and were left out "
                      f"of the interval", NonFiniteBootstrapWarning, stacklevel=2)
    return ci.low, ci.high


def permutation_pvalue(observed: np.ndarray | float, null: np.ndarray) -> np.ndarray | float:
    """One-sided p = (1 + #{null >= observed}) / (1 + B); null has B rows (broadcast over the rest)."""
    null = np.asarray(null, dtype=float)
    obs = np.asarray(observed, dtype=float)
    p = (1 + (null >= obs[None]).sum(axis=0)) / (1 + null.shape[0])
    return float(p) if np.ndim(p) == 0 else p


def permutation_floor(n_perm: int) -> float:
    """The smallest p ``permutation_pvalue`` can return with n_perm null draws: 1 / (1 + n_perm)."""
    return 1.0 / (1 + n_perm)


def count_at_floor(p: np.ndarray, n_perm: int | np.ndarray) -> int:
    """How many finite p-values sit at the permutation floor 1 / (1 + n_perm); ``n_perm`` may be one
    count per p (sequential baselines: each row's own number of draws)."""
    return int(_at_floor(p, n_perm).sum())


def _at_floor(p: np.ndarray, n_perm: int | np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float).ravel()
    n = np.broadcast_to(np.asarray(n_perm, dtype=float).ravel() if np.ndim(n_perm) else float(n_perm), p.shape)
    with np.errstate(invalid="ignore"):
        return np.isfinite(p) & (p <= (1.0 / (1 + n)) * (1 + 1e-9))


PRACTICAL_PERMUTATIONS = 200_000   # above this a floor note suggests a smaller family of tests instead


def floor_note(p: np.ndarray, n_perm: int | np.ndarray, *, what: str = "p-values", param: str = "n_perm",
               min_share: float = 0.1, alpha: float = 0.05) -> str | None:
    """A note when at least ``min_share`` of the finite p-values sit at the floor 1 / (1 + n_perm),
    else None. Such p-values are censored: the data say only "p <= floor". The note gives the
    count and a number of permutations (``param``) that would put the floor ten times below
    BH's first threshold alpha / m (m = the number of finite p-values). ``n_perm`` may be one count
    per p (each row's own draws, as sequential baselines give); the note then names the floors of
    the rows that sit at theirs."""
    p = np.asarray(p, dtype=float).ravel()
    m = int(np.isfinite(p).sum())
    at = _at_floor(p, n_perm)
    k = int(at.sum())
    if m == 0 or k == 0 or k < min_share * m:
        return None
    counts = np.broadcast_to(np.asarray(n_perm).ravel() if np.ndim(n_perm) else n_perm, p.shape)[at].astype(int)
    lo, n_perm = int(counts.min()), int(counts.max())
    fl = permutation_floor(n_perm)
    suggest = max(10 * n_perm, math.ceil(10 * m / alpha))
    bh = (f"; with {m} tests BH needs p <= {alpha / m:.2g} for the first discovery, so the floor alone keeps "
          f"q >= {fl:.2g}" if fl > alpha / m else "")
    fix = (f"raise {param} (e.g. to {suggest}) to resolve them" if suggest <= PRACTICAL_PERMUTATIONS else
           f"resolving them takes about {suggest:,} {param}, so test fewer at once (fewer layers, units or "
           f"concepts: a smaller m) or raise {param} as far as time allows")
    where = (f"the permutation floor 1/({param}+1) = {fl:.3g} ({param} = {n_perm})" if lo == n_perm else
             f"their own floor 1/(draws+1), {permutation_floor(lo):.3g} to {fl:.3g} ({lo} to {n_perm} draws)")
    return (f"{k} of {m} {what} ({k / m:.0%}) sit at {where}: their true p may be much smaller{bh}; {fix}")


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
        # p * m / rank carries rounding error (three p = 0.05 give q = 0.05000000000000001): rounded to
        # 14 decimals so that a q exactly at a threshold compares as it should (q <= 0.05)
        ranked = np.round(np.minimum.accumulate(ranked[::-1])[::-1], 14)
        out = np.empty(m)
        out[order] = np.minimum(ranked, 1.0)
        q[ok] = out
    return q.reshape(p.shape)


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for the rate k / n (Newcombe 1998, method 3); (nan, nan) for n = 0."""
    if n <= 0:
        return float("nan"), float("nan")
    z = float(_phi_inv(0.5 + level / 2))
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, mid - half), min(1.0, mid + half)


def newcombe_difference(k1: int, n1: int, k2: int, n2: int, level: float = 0.95) -> tuple[float, float]:
    """Interval for k1/n1 - k2/n2 from the two Wilson intervals (Newcombe 1998, Stat. Med. 17:873,
    method 10; independent samples). The report uses it to set a trained model's rate beside its
    random-init control's."""
    l1, u1 = wilson_interval(k1, n1, level)
    l2, u2 = wilson_interval(k2, n2, level)
    if not all(map(math.isfinite, (l1, u1, l2, u2))):
        return float("nan"), float("nan")
    d = k1 / n1 - k2 / n2
    return (d - math.sqrt((k1 / n1 - l1) ** 2 + (u2 - k2 / n2) ** 2),
            d + math.sqrt((u1 - k1 / n1) ** 2 + (k2 / n2 - l2) ** 2))


def _anscombe(k: float, n: float) -> float:
    """asin(sqrt((k + 3/8) / (n + 3/4))): a binomial rate on the scale where its variance is ~1/(4n)."""
    return math.asin(math.sqrt((k + 3 / 8) / (n + 3 / 4)))


def rate_beyond_draws(k: float, n: float, draws: list[tuple[float, float]], level: float = 0.95) -> dict:
    """Is the rate k/n beyond the rates of K >= 2 random networks (``draws``: [(k_i, n_i)])?

    Under H0 the trained network is one more draw from the random networks' distribution, so the
    question is whether its rate lies above a one-sided prediction bound of that distribution. On
    Anscombe's variance-stabilised scale a = asin(sqrt((k + 3/8)/(n + 3/4))), with the draws' mean m
    and sd s (ddof 1; floored at the within-network binomial sd 1/(2 sqrt(n)), so equal draws do not
    give s = 0): t = (a - m) / (s sqrt(1 + 1/K)), p = P(T_{K-1} >= t), beyond when p < (1 - level)/2
    (the one side of a two-sided ``level`` interval, as the one-draw Newcombe rule). Unlike Newcombe's
    interval over units, this counts how much the rate varies *between* networks, which one draw cannot
    show (docs/statistics.md; tests/statistics/test_control_stats.py simulates it). Returns
    {"p", "bound" (the prediction bound on the rate scale), "mean" (the draws' mean rate), "low", "high"
    (the draws' range), "k": K, "survives"}."""
    from scipy import stats as st

    K = len(draws)
    if K < 2 or n <= 0 or any(ni <= 0 for _, ni in draws):
        raise ValueError(f"rate_beyond_draws needs at least 2 control draws with units, got {K}")
    a = np.array([_anscombe(ki, ni) for ki, ni in draws])
    n_ref = float(np.mean([ni for _, ni in draws]))
    s = max(float(a.std(ddof=1)), 1 / (2 * math.sqrt(min(n, n_ref))))
    se = s * math.sqrt(1 + 1 / K)
    t = (_anscombe(k, n) - float(a.mean())) / se
    p = float(st.t.sf(t, K - 1))
    top = min(math.pi / 2, float(a.mean()) + float(st.t.ppf(0.5 + level / 2, K - 1)) * se)
    bound = min(1.0, max(0.0, (math.sin(top) ** 2 * (n + 3 / 4) - 3 / 8) / n))
    rates = [ki / ni for ki, ni in draws]
    return {"p": p, "bound": bound, "mean": float(np.mean(rates)), "low": min(rates), "high": max(rates),
            "k": K, "survives": bool(p < (1 - level) / 2)}
