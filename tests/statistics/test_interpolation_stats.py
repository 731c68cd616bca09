"""Style interpolation's p_random is uniform under a planted null (the target's code is the source's
plus an isotropic draw, so the walk is exchangeable with the random walks), and its
verdict stays rare there; the effect's interval is ``directions``' BCa, whose coverage
tests/statistics/test_bootstrap.py checks."""
import numpy as np
import pytest
import torch

from interp_gan.analyses.base import build_analysis
from tests.analyses.directions.test_interpolation import D, S, _data, _subject


@pytest.fixture(scope="module")
def planted_null():
    """(subject of seed, data): the planted null, built once for both tests. The source's code is fixed and
    every other style's is the source's plus an isotropic draw (seeded): the walk d = c_b - c_a is then a
    random direction independent of c_a (the exact null)."""
    W = torch.randn(3, D, generator=torch.Generator().manual_seed(99))

    def subject(seed):
        codes = torch.randn(S, D, generator=torch.Generator().manual_seed(seed))
        return _subject(torch.ones(1, D) * 0.3 + torch.cat([torch.zeros(1, D), codes[1:]]), W)

    return subject, _data(n=8)


@pytest.mark.slow
def test_p_random_is_uniform_when_the_style_codes_are_random(planted_null):
    subject, data = planted_null
    ps, verdicts = [], []
    for rep in range(300):
        f = build_analysis("style_interpolation", pairs=("s0->s1",), steps=(1.0,), n_random=19, n_images=8,
                           n_boot=50, n_perm=50, seed=rep).run(subject(1000 + rep), data)
        r = f.tables["style_interpolation"].iloc[0]
        ps.append(r.p_random)
        verdicts.append(bool(r.beyond_random))
        assert r.beyond_random == (r.q_random <= 0.05 and r.ci_low > 0)   # the verdict agrees with its numbers
    ps = np.array(ps)
    # p_random takes values k/20; under exchangeability P(p <= k/20) = k/20 exactly
    for level in (0.05, 0.25, 0.5):
        assert abs((ps <= level + 1e-12).mean() - level) < 3.5 * np.sqrt(level * (1 - level) / len(ps))
    assert np.mean(verdicts) <= 0.05 + 3.5 * np.sqrt(0.05 * 0.95 / len(ps))


def test_sequential_p_random_is_uniform_when_the_style_codes_are_random(planted_null):
    """The same exact null with sequential walks (n_random 19, n_random_max 99, h 10): the walks past
    the first 19 are drawn in the analysis, so this checks their order and bookkeeping, not only the
    pure rule (tests/statistics/test_sequential_p.py). 0.05 = 5/100, 0.25 = 10/40 and 0.5 = 10/20 are
    attainable levels: P(p <= level) must sit at the level. Null rows stop early: about 35 walks on
    average (expected_null_draws), not 99."""
    from interp_gan.findings.sequential import expected_null_draws
    subject, data = planted_null
    ps, used = [], []
    for rep in range(300):
        f = build_analysis("style_interpolation", pairs=("s0->s1",), steps=(1.0,), n_random=19, n_random_max=99,
                           n_images=8, n_boot=20, n_perm=20, n_other=0, seed=rep).run(subject(5000 + rep), data)
        r = f.tables["style_interpolation"].iloc[0]
        ps.append(r.p_random)
        used.append(r.n_random_used)
    ps, used = np.array(ps), np.array(used)
    for level in (0.05, 0.25, 0.5):
        assert abs((ps <= level + 1e-12).mean() - level) < 3.5 * np.sqrt(level * (1 - level) / len(ps)), level
    want = expected_null_draws(h=10, n_min=19, n_max=99)
    print(f"\nsequential interpolation null: mean walks {used.mean():.1f} (expected {want:.1f})")
    assert abs(used.mean() - want) < 4 * used.std() / np.sqrt(len(used))
