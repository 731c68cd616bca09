"""The random-init control comparison ("beyond random init", ``claims.rate_vs_control``): Newcombe's
interval of the difference of two rates, treating units as independent Bernoulli draws.

On the textbook null it is calibrated: two binomial counts at the demo's size. On a planted null of
*networks* -- the trained and the control network drawn from one distribution, style-unit rates
computed by the analysis' own tests and BH -- it is not: the rate varies between networks more than
a binomial over units says (BH couples the tests; a low-rank style effect couples the units), and
the claim says "beyond random init" about 22% of the time with a rank-2 effect (0.5% with
independent unit effects; 9% and 31% with 199 Monte Carlo shuffles instead of the exact p-values),
against 2.5% nominal (one side of a 95% interval). One control draw cannot
show that spread. So with one draw the verdict is worded "above its one control draw", and the default
is 3 draws, whose spread the verdict reads (a prediction bound, ``findings.stats.rate_beyond_draws``):
calibrated on the same planted null, below."""
import numpy as np
import pytest
import pandas as pd

from interp_gan.analyses.units.style_units import auroc_pvalues
from interp_gan.findings.stats import bh_qvalues
from interp_gan.reporting.claims import rate_vs_control
from interp_gan.reporting.section_style_units import claim as style_units_claim


def test_rate_vs_control_is_calibrated_on_two_binomial_counts_at_the_demos_size():
    rng = np.random.default_rng(0)
    reps, n = 2000, 352
    null = [rate_vs_control(int(a), n, int(b), n)["survives"]
            for a, b in zip(rng.binomial(n, 0.04, reps), rng.binomial(n, 0.04, reps))]
    assert np.mean(null) <= 0.025 + 2 * np.sqrt(0.025 * 0.975 / reps), np.mean(null)
    cover = []
    for a, b in zip(rng.binomial(n, 0.06, reps), rng.binomial(n, 0.03, reps)):
        r = rate_vs_control(int(a), n, int(b), n)
        lo, hi = (float(x) for x in r["diff_ci"].removesuffix(" points").strip("[]").split(", "))
        cover.append(lo <= 3.0 <= hi)
    print("null 'beyond' rate", np.mean(null), "coverage", np.mean(cover))
    assert 0.93 <= np.mean(cover) <= 0.97


S, N_PER, U = 4, 16, 96
_Y = np.arange(S * N_PER) % S


def _network_q(rng, rank: int | None) -> np.ndarray:
    """q-values of one network's unit x style tests: a style effect per unit (independent, or rank
    ``rank``) plus image noise, tested and corrected as the analysis does."""
    if rank is None:
        eff = rng.normal(0, 0.5, (S, U))
    else:
        eff = rng.normal(0, 1, (S, rank)) @ rng.normal(0, 0.5 / np.sqrt(rank), (rank, U))
    x = eff[_Y] + rng.normal(size=(len(_Y), U))
    return bh_qvalues(auroc_pvalues(x, _Y, S, n_perm=199, seed=int(rng.integers(2**31))).ravel())


def _beyond_rate(rank: int | None, reps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        qt, qc = _network_q(rng, rank), _network_q(rng, rank)
        df = pd.DataFrame({"layer": "L", "unit": np.tile(np.arange(U), S), "style": np.repeat(np.arange(S), U),
                           "q_value": qt})
        ctl = pd.DataFrame({"layer": ["L"], "units": [U], "tests": [U * S],
                            "frac_q05_trained": [np.mean(qt < 0.05)], "frac_q05_control": [np.mean(qc < 0.05)]})
        hits += style_units_claim(df, ctl).survives
    return hits / reps


def test_beyond_random_init_is_anti_conservative_on_a_planted_null_of_networks():
    """One control draw (Newcombe over units), with the analysis' exact p-values: measured (400 pairs
    each) 0.005 with independent unit effects, 0.225 with a rank-2 effect, the numbers
    docs/statistics.md prints for the one-draw rule (with 199 Monte Carlo shuffles, 1000 pairs: 0.093
    and 0.313; the floor 1/200 then shaped which tests reached q < 0.05)."""
    ind, low_rank = _beyond_rate(None, 400, 1), _beyond_rate(2, 400, 2)
    print("false 'beyond random init': independent units", ind, "rank-2 effect", low_rank)
    assert ind <= 0.03, ind
    assert 0.15 <= low_rank <= 0.35, low_rank


def _network_q_scaled(rng, rank: int | None, scale: float) -> np.ndarray:
    """``_network_q`` with the style effects times ``scale`` (a trained network that really differs)."""
    if rank is None:
        eff = rng.normal(0, 0.5 * scale, (S, U))
    else:
        eff = rng.normal(0, 1, (S, rank)) @ rng.normal(0, 0.5 * scale / np.sqrt(rank), (rank, U))
    x = eff[_Y] + rng.normal(size=(len(_Y), U))
    return bh_qvalues(auroc_pvalues(x, _Y, S, n_perm=199, seed=int(rng.integers(2**31))).ravel())


def _beyond_rate_draws(rank: int | None, K: int, reps: int, seed: int, trained_scale: float = 1.0) -> float:
    """How often the style-units claim says "beyond random init" with K control draws, the trained
    network drawn with its effects times ``trained_scale`` (1 = the planted null of networks)."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        qt = _network_q_scaled(rng, rank, trained_scale)
        qcs = [_network_q(rng, rank) for _ in range(K)]
        df = pd.DataFrame({"layer": "L", "unit": np.tile(np.arange(U), S), "style": np.repeat(np.arange(S), U),
                           "q_value": qt})
        ctl = pd.DataFrame({"layer": ["L"], "units": [U], "tests": [U * S],
                            "frac_q05_trained": [np.mean(qt < 0.05)], "frac_q05_control": [np.mean(qcs[0] < 0.05)]})
        draws = pd.DataFrame([{"layer": "all", "draw": j, "seed": j, "units": U, "tests": U * S,
                               "rate": float(np.mean(q < 0.05))} for j, q in enumerate(qcs)])
        c = style_units_claim(df, ctl, draws)
        assert c.verdict in ("beyond random init", "not beyond random init")
        hits += c.survives
    return hits / reps


@pytest.mark.parametrize("K", [3, 5])
def test_several_control_draws_are_calibrated_on_the_planted_null_of_networks(K):
    """With K draws the trained rate is compared with the random networks' spread (a prediction bound,
    ``findings.stats.rate_beyond_draws``): the false 'beyond random init' rate is at most the nominal
    2.5% (+ 2 SE), with independent unit effects and with a rank-2 effect (where one draw gave ~30%)."""
    reps = 200
    for rank, seed in ((None, 10 + K), (2, 20 + K)):
        rate = _beyond_rate_draws(rank, K, reps, seed)
        print(f"K={K} rank={rank}: false 'beyond random init' {rate:.3f}")
        assert rate <= 0.025 + 2 * np.sqrt(0.025 * 0.975 / reps), (K, rank, rate)


def test_several_control_draws_find_a_network_that_really_differs():
    """Power: a trained network whose style effects are 2.5x a random one's is called beyond its 3
    draws most of the time."""
    rate = _beyond_rate_draws(None, 3, 60, 5, trained_scale=2.5)
    print("power at 2.5x effects, K=3:", rate)
    assert rate >= 0.6, rate
