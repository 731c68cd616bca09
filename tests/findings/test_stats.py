"""findings/stats: Benjamini-Hochberg q-values against the step-up rule written out, and the
permutation p-value's definition."""
import numpy as np
import pytest

from interp_gan.findings.stats import bh_qvalues, permutation_floor, permutation_pvalue


def _bh_by_definition(p: np.ndarray) -> np.ndarray:
    """q_i = min over j with p_(j) >= p_i of m p_(j) / j (capped at 1), by loops."""
    m, q = len(p), np.empty(len(p))
    srt = sorted(p)
    for i, pi in enumerate(p):
        q[i] = min(1.0, min(m * srt[j] / (j + 1) for j in range(m) if srt[j] >= pi))
    return q


@pytest.mark.parametrize("seed", range(5))
def test_bh_matches_the_step_up_rule(seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(size=30), rng.uniform(0, 1e-3, size=5), [0.5, 0.5]])   # ties too
    np.testing.assert_allclose(bh_qvalues(p), _bh_by_definition(p), rtol=1e-12)


def test_bh_rejects_as_the_procedure_does_and_keeps_nan_and_shape():
    p = np.array([[0.001, 0.008, np.nan], [0.039, 0.041, 0.6]])
    q = bh_qvalues(p)
    assert q.shape == p.shape and np.isnan(q[0, 2])
    # BH at 0.05 over the 5 finite p: the largest k with p_(k) <= 0.05 k / 5 is k = 2 (0.008 <= 0.02)
    assert ((q <= 0.05) == np.array([[True, True, False], [False, False, False]])).all()
    assert (q[np.isfinite(q)] >= p[np.isfinite(p)]).all()


def test_permutation_p_counts_ties_and_never_reaches_zero():
    null = np.array([[0.1, 5.0], [0.3, 5.0], [0.2, 5.0], [0.9, 5.0]])
    p = permutation_pvalue(np.array([0.3, 9.0]), null)
    np.testing.assert_allclose(p, [(1 + 2) / 5, 1 / 5])          # 0.3 ties one draw and is beaten by one
    assert permutation_floor(4) == pytest.approx(1 / 5)


def test_wilson_and_newcombe_match_the_published_examples():
    from interp_gan.findings.stats import newcombe_difference, wilson_interval
    # Newcombe (1998), Stat. Med. 17:857 table II (81/263) and 17:873 table II (56/70 vs 48/80)
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert newcombe_difference(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert all(np.isnan(wilson_interval(0, 0)))


def test_bh_q_exactly_at_a_threshold_compares_as_equal():
    # three p-values at a permutation floor of 1/20: q = 0.05 * 3 / 3 must not come out as 0.05000000000000001
    from interp_gan.findings.stats import bh_qvalues
    assert (bh_qvalues(np.array([0.05, 0.05, 0.05])) <= 0.05).all()


def test_floor_counts_and_notes_read_each_rows_own_number_of_draws():
    """Sequential baselines: a row's floor is 1/(1 + its own draws). 0.05 after 199 draws is 10/200,
    not a floor; 0.05 after 19 draws is. One count for all would say 1 (199) or 3 (19)."""
    from interp_gan.findings.stats import count_at_floor, floor_note
    p, used = np.array([1 / 200, 1 / 20, 1 / 20]), np.array([199, 199, 19])
    assert count_at_floor(p, used) == 2 and count_at_floor(p, 199) == 1 and count_at_floor(p, 19) == 3
    note = floor_note(p, used, param="n_random_max")
    assert note.startswith("2 of 3") and "their own floor" in note and "19 to 199 draws" in note
    same = floor_note(p[:1], used[:1], param="n_random_max")               # one count: the usual wording
    assert same == floor_note(p[:1], 199, param="n_random_max") and "(n_random_max = 199)" in same
