"""Emergence steps (analyses/dynamics.py) by simulation at the demo's size: 16 images per style,
4 styles, 5 kept steps, the per-step logit-DeLong AUROC interval of the style-units analysis.

- planted null (no unit is ever selective; each unit's activations drift between steps with
  correlation 0.8 on the same images): the per-step rate at which the interval excludes 0.5 on the
  high side is near its nominal 2.5% (one side of a 95% interval); ``stable_step`` is set at most
  that often (it needs the final step); ``first_step`` more often, up to 1 - 0.975^5 (what
  docs/dynamics.md says: read first_step as "could be chance", stable_step as the stricter one);
- planted emergence (selective from step 3 of 5, AUROC 0.9): ``stable_step`` is exactly the planted
  step in most units and never before it more often than the null allows.
"""
import numpy as np
import pytest

from interp_gan.analyses.dynamics import emergence
from interp_gan.analyses.units.style_units import auroc_ci

N_PER, N_STYLES, T, UNITS = 16, 4, 5, 3000
Y = np.arange(N_PER * N_STYLES) % N_STYLES
STEPS = [0, 300, 600, 900, 1200]


def _runs(shift_from: int | None, shift: float, seed: int) -> np.ndarray:
    """[T, UNITS] verdicts "the style-0 AUROC interval lies above 0.5"."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(len(Y), UNITS))
    out = np.zeros((T, UNITS), dtype=bool)
    for t in range(T):
        if t:
            x = 0.8 * x + 0.6 * rng.normal(size=x.shape)       # the same images, a drifting unit
        xt = x + (shift * (Y == 0)[:, None] if shift_from is not None and t >= shift_from else 0)
        lo, _ = auroc_ci(xt, Y, N_STYLES)
        out[t] = lo[0] > 0.5
    return out


def _emergence(v: np.ndarray) -> np.ndarray:
    return np.array([emergence(STEPS, v[:, u]) for u in range(v.shape[1])])   # [UNITS, 2]


@pytest.mark.slow
def test_null_rates_of_first_and_stable_emergence():
    v = _runs(None, 0.0, seed=0)
    per_step = v.mean(1)
    assert ((per_step > 0.012) & (per_step < 0.040)).all(), per_step     # one side of a 95% interval: ~2.5%
    em = _emergence(v)
    first, stable = np.isfinite(em[:, 0]).mean(), np.isfinite(em[:, 1]).mean()
    assert stable <= per_step[-1] + 1e-12 and stable < 0.035
    bound = 1 - (1 - 0.025) ** T                                           # independent steps: 11.9%
    assert per_step.max() < first < bound + 0.02, (first, bound)
    assert first > 1.5 * stable                                             # the stricter reading is stricter


@pytest.mark.slow
def test_planted_emergence_step_is_found():
    # AUROC of N(1.8, 1) against N(0, 1): about 0.9 from step 3 (600) on
    v = _runs(2, 1.8, seed=1)
    em = _emergence(v)
    stable = em[:, 1]
    assert np.mean(stable == 600) > 0.8
    assert np.mean(stable < 600) < 0.045        # early: only a chance exclusion at step 300 that lasts (~2.5%)
    assert np.mean(np.isnan(stable)) < 0.2
