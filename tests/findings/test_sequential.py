"""The sequential p's bookkeeping: batches give exactly the one-at-a-time p, n_max = n_min is the
fixed rule, Besag & Clifford's rule on a hand-worked sequence, and the suggested n_max."""
import numpy as np
import pytest

from interp_gan.findings.sequential import sequential_pvalue, sequential_pvalues, suggest_n_max
from interp_gan.findings.stats import permutation_pvalue


def _rows(seed: int, n: int = 300, n_max: int = 120):
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal(n) + rng.choice([0.0, 1.0, 3.0], n)        # null, middling and strong rows
    null = rng.standard_normal((n, n_max))
    null[rng.random(null.shape) < 0.01] = np.nan                        # a non-finite draw counts against
    return obs, null


def test_hand_worked_besag_clifford_sequence():
    """h = 2: exceedances at draws 1 and 3 -> stop at l = 3, p = 2/3; none in 5 -> (0 + 1) / 6."""
    assert sequential_pvalue(0.5, [0.9, 0.1, 0.7, 0.8], h=2, n_max=5) == (2 / 3, 3)
    assert sequential_pvalue(0.5, [0.1] * 5, h=2, n_max=5) == (1 / 6, 5)
    assert sequential_pvalue(0.5, [0.5, 0.1, 0.1, 0.1, 0.1], h=2, n_max=5) == (2 / 6, 5)    # a tie counts
    # a block of 3 with 2 exceedances (>= h): the fixed rule on the block, (2 + 1) / 4
    assert sequential_pvalue(0.5, [0.9, 0.7, 0.1], h=2, n_max=5, n_min=3) == (3 / 4, 3)
    assert np.isnan(sequential_pvalue(float("nan"), [0.1] * 5, h=2, n_max=5)[0])
    with pytest.raises(ValueError, match="not stopped"):
        sequential_pvalue(0.5, [0.1, 0.1], h=2, n_max=5)


@pytest.mark.parametrize("batch", [1, 7, 64])
@pytest.mark.parametrize("n_min", [0, 19])
def test_batches_give_exactly_the_one_at_a_time_p(batch, n_min):
    obs, null = _rows(batch + n_min)
    calls = []

    def draw(idx, start, count):
        calls.append((len(idx), start, count))
        return null[idx, start:start + count]

    res = sequential_pvalues(obs, null[:, :n_min], draw, h=5, n_max=120, batch=batch)
    one = [sequential_pvalue(o, d, h=5, n_max=120, n_min=n_min) for o, d in zip(obs, null)]
    assert np.array_equal(res.p, [p for p, _ in one])
    assert np.array_equal(res.n_used, [u for _, u in one])
    for r, u in enumerate(res.n_used):                  # stored: the draws used, in order; nothing past them
        assert np.array_equal(res.draws[r, :u], null[r, :u], equal_nan=True) and np.isnan(res.draws[r, u:]).all()
    sizes = [n for n, _, _ in calls]                    # only undecided rows are extended: fewer each round
    assert all(c <= batch for _, _, c in calls) and sizes == sorted(sizes, reverse=True) and sizes[-1] < len(obs)
    assert res.n_drawn == len(obs) * n_min + sum(n * c for n, _, c in calls) >= res.n_used.sum()


def test_n_max_equal_to_n_min_is_the_fixed_rule():
    obs, null = _rows(1, n_max=19)
    null = np.nan_to_num(null, nan=0.0)
    for h in (1, 3, 10, 50):
        res = sequential_pvalues(obs, null, lambda *a: pytest.fail("no draw past the block"), h=h, n_max=19)
        assert np.array_equal(res.p, permutation_pvalue(obs, null.T)) and (res.n_used == 19).all()


def test_suggested_n_max_lets_one_row_at_its_floor_pass_bh():
    for m, n_now in [(1, 0), (9, 19), (9, 199), (36, 0), (400, 99)]:
        n = suggest_n_max(m, n_now)
        assert n > n_now and 1 / (n + 1) <= 0.05 / m
        assert str(n + 1)[0] in "125" and set(str(n + 1)[1:]) == {"0"}
    assert suggest_n_max(9) == 199 and suggest_n_max(9, 199) == 499
