"""Ablation's sequential baseline sets (``n_random_max``, ``h``) by simulation, in seconds.

The model is the independent-units null of test_ablation_stats.py: activations x [64, 32] carry no
style; ablating set S changes image i by -sum_{u in S} x_iu + noise. The selected set is the top 4
for style 0 ranked on other images (an independent ranking sample, so that the selected set is
exchangeable with the uniform baseline sets, ``baseline="random"``; the cross-fitted halves' small
coupling excess, 0.112 at 0.10 with the fixed rule too, is test_ablation_stats.py's subject, not
this file's). Each replicate ranks two measure
rows that share their sets, as the measures of one layer, style and k do in the analysis: the drop
itself (direction -1) and the absolute change of a second, independent readout (direction 0).
Sets past the first 19 come from ``later_set_rng`` and the p from ``sequential_random_p``, the
analysis's own functions.

- planted null: P(p_random <= a) <= a + 2 SE at a = 0.05, 0.1, 0.5 (n_random 19, n_random_max 99,
  h 10), and rows with no effect read far fewer than 99 sets;
- planted effect (the selected units remove 4 more per image, about 8 SD of a set's effect): p_random reaches 1/100, below the
  fixed rule's floor 1/20.
"""
import numpy as np

from interp_gan.analyses.units.ablation import later_set_rng, random_rank_pvalue, sequential_random_p
from interp_gan.analyses.units.style_units import auroc_matrix, cohens_d

R, N_MAX, H, K, U = 19, 99, 10, 4, 32


def _replicate(rep: int, planted: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sequential p [2], n_random_used [2], fixed p on the first 19 sets [2]) of one data set."""
    rng = np.random.default_rng([rep, 1])
    y = np.arange(64) % 4
    x = rng.normal(size=(64, U))
    x2 = rng.normal(size=(64, U))                      # the second readout: its own unit effects
    x_rank = rng.normal(size=(64, U))                  # the images the units are ranked on
    meas = y == 0
    noise, noise2 = rng.normal(0, 0.5, 64), rng.normal(0, 0.5, 64)
    top = np.lexsort((-cohens_d(x_rank, y, 4)[0], -auroc_matrix(x_rank, y, 4)[0]))[:K]
    per_image = -x[:, top].sum(1) - planted
    per_image2 = x2[:, top].sum(1) + planted

    def effects(units) -> np.ndarray:              # one set's effect on both readouts
        return np.array([(-x[:, units].sum(1) + noise)[meas].mean(), (x2[:, units].sum(1) + noise2)[meas].mean()])

    observed = np.array([(per_image + noise)[meas].mean(), (per_image2 + noise2)[meas].mean()])
    first = np.stack([effects(rng.choice(U, K, replace=False)) for _ in range(R)], 1)      # [2, R]
    later = lambda j: effects(later_set_rng(rep, "mix", 0, K, j).choice(U, K, replace=False))  # noqa: E731
    seq = sequential_random_p(observed, [-1, 0], first, later, h=H, n_max=N_MAX)
    fixed = np.array([random_rank_pvalue(observed[0], first[0], -1), random_rank_pvalue(observed[1], first[1], 0)])
    return seq.p, seq.n_used, fixed


def test_sequential_p_random_is_uniform_or_conservative_under_the_null():
    out = [_replicate(rep) for rep in range(1500)]
    p = np.concatenate([o[0] for o in out])
    used = np.concatenate([o[1] for o in out])
    for a in (0.05, 0.1, 0.5):
        rate = float(np.mean(p <= a + 1e-12))
        se = np.sqrt(a * (1 - a) / len(p))
        print(a, rate, "mean sets", used.mean())
        assert rate <= a + 2 * se, (a, rate)
        assert rate >= a - 4 * se, (a, rate)           # not degenerate (every p = 1)
    assert used.mean() < 0.5 * N_MAX and (used >= R).all() and (used <= N_MAX).all()


def test_a_planted_effect_goes_below_the_fixed_floor():
    out = [_replicate(rep, planted=4.0) for rep in range(40)]
    p = np.stack([o[0] for o in out])
    fixed = np.stack([o[2] for o in out])
    assert np.allclose(fixed, 1 / (R + 1))             # the fixed rule stops at its floor 0.05
    assert np.mean(p <= 1 / (N_MAX + 1) + 1e-12) >= 0.9, p
    assert (np.stack([o[1] for o in out])[p <= 0.011] == N_MAX).all()
