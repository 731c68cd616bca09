"""The exact rank-sum null (interp_gan/findings/rank_sum.py) against brute force and scipy."""
import itertools
import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu, rankdata

from interp_gan.findings.rank_sum import (exact_is_cheap, rank_sum_counts, rank_sum_mb, rank_sum_ops, rank_sum_pvalues,
                                         rank_sum_tables)


def _r2(x):
    return np.rint(2 * rankdata(x)).astype(np.int64)


def _enumerated(r2, k):
    """{sum: count} over all k-subsets, by listing them."""
    out = {}
    for c in itertools.combinations(range(len(r2)), k):
        t = int(r2[list(c)].sum())
        out[t] = out.get(t, 0) + 1
    return out


@pytest.mark.parametrize("values", [np.arange(10.0), [0, 0, 0, 1, 1, 2, 3, 3, 3, 3], [5.0] * 4 + [1, 2, 3, 4, 6, 7]])
def test_counts_equal_full_enumeration_with_and_without_ties(values):
    r2 = _r2(np.asarray(values, float))
    c = rank_sum_counts(r2[::-1], kmax=5)                 # order does not matter
    for k in range(6):
        ref = np.zeros(c.shape[1])
        for t, m in _enumerated(r2, k).items():
            ref[t] = m
        np.testing.assert_array_equal(c[k], ref)
        assert c[k].sum() == math.comb(10, k)


def test_two_sided_p_equals_scipy_exact_without_ties():
    rng = np.random.default_rng(0)
    for n1, n0 in ((3, 4), (5, 9), (8, 8), (12, 7), (4, 20)):
        n = n1 + n0
        for shift in (0.0, 1.0, 3.0):
            a, b = rng.normal(shift, 1, n1), rng.normal(0, 1, n0)
            r2 = _r2(np.r_[a, b])
            c = rank_sum_counts(r2, min(n1, n0))
            p = rank_sum_pvalues(c, n1, abs(r2[:n1].sum() - n1 * (n + 1)), n)
            ref = mannwhitneyu(a, b, method="exact").pvalue
            assert p == pytest.approx(ref, rel=1e-12, abs=0), (n1, n0, shift)


def test_two_sided_p_with_ties_equals_enumeration_also_for_the_larger_group():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 4, 10).astype(float)                # N = 10, heavy ties
    r2 = _r2(x)
    c = rank_sum_counts(r2, 4)
    for k in (2, 4, 6, 8):                                  # 6 and 8 read the complement's row
        dev = abs(r2[:k].sum() - k * 11)
        subsets = list(itertools.combinations(range(10), k))
        ref = np.mean([abs(r2[list(s)].sum() - k * 11) >= dev for s in subsets])
        assert rank_sum_pvalues(c, k, dev, 10) == pytest.approx(ref, rel=1e-12)
    assert rank_sum_pvalues(c, 4, 0, 10) == 1.0
    # every deviation at once, vectorised
    devs = np.arange(0, 40, 2)
    ps = rank_sum_pvalues(c, 4, devs, 10)
    assert (np.diff(ps) <= 1e-15).all() and ps[0] == 1.0


def test_bad_input_is_one_line():
    with pytest.raises(ValueError, match="twice the midranks"):
        rank_sum_counts(np.array([1.5, 2.0]), 1)
    with pytest.raises(ValueError, match="kmax"):
        rank_sum_counts(np.array([2, 4]), 3)


def test_cost_bound_covers_the_demo_multistyle26_and_magenta_sizes_but_not_two_large_halves():
    assert rank_sum_ops(64, [16] * 4) < 6e6 and exact_is_cheap(64, [16] * 4)   # the demo: numpy calls weigh most
    assert exact_is_cheap(256, [10] * 20 + [9] * 6)             # multistyle26: 256 images, 26 styles
    # the Magenta preset: 256 images in 6 styles of 42-43 (1.65e8 operations an untied table)
    assert 1e8 < rank_sum_ops(256, [43] * 4 + [42] * 2) < 2e8 and exact_is_cheap(256, [43] * 4 + [42] * 2)
    assert exact_is_cheap(256, [64] * 4) and exact_is_cheap(512, [20] * 26)
    # every layout the former bound (5e8 of N (kmax + 1) (t_max + 1)) admitted stays exact: its largest, two
    # halves of 95, is the new bound; two halves of 96 are above it, two of 128 (2.8 s, 37x the shuffles) far above
    assert exact_is_cheap(190, [95, 95]) and not exact_is_cheap(192, [96, 96])
    assert not exact_is_cheap(256, [128, 128])
    # memory alone: N = 512 in 4 styles would hold 0.8 GB of tables
    assert rank_sum_mb(512, [128] * 4) > 512 and not exact_is_cheap(512, [128] * 4, max_ops=float("inf"))
    assert rank_sum_ops(20, [15, 5]) == rank_sum_ops(20, [5, 15])   # the complement is counted


def test_tables_shared_over_tie_patterns_equal_one_table_each():
    """rank_sum_tables walks the patterns as a trie (ReLU-like rows share everything above their zeros);
    each table must equal the pattern's own. 40 patterns: more forks than the tables it keeps."""
    from interp_gan.findings.rank_sum import MAX_KEPT
    rng = np.random.default_rng(2)
    rows = [_r2(np.r_[np.zeros(z), np.arange(1.0, 31 - z)]) for z in range(0, 25)]          # ReLU zeros
    rows += [_r2(rng.integers(0, 6, 30).astype(float)) for _ in range(15)]                # ties anywhere
    patterns = np.unique(np.sort(np.array(rows), axis=1), axis=0)
    assert len(patterns) > MAX_KEPT
    seen = set()
    for g, c in rank_sum_tables(patterns, 8):
        own = rank_sum_counts(patterns[g], 8)
        np.testing.assert_array_equal(c[:, :own.shape[1]], own)
        assert not c[:, own.shape[1]:].any()
        seen.add(g)
    assert seen == set(range(len(patterns)))


def _mixed_patterns(seed=2):
    rng = np.random.default_rng(seed)
    rows = [_r2(np.r_[np.zeros(z), np.arange(1.0, 31 - z)]) for z in range(0, 25)]          # ReLU zeros
    rows += [_r2(rng.integers(0, 6, 30).astype(float)) for _ in range(15)]                # ties anywhere
    return np.unique(np.sort(np.array(rows), axis=1), axis=0)


def test_tables_asked_for_some_rows_fill_those_rows_exactly_and_leave_the_rest_zero():
    """rows=: each pattern's last run (a ReLU unit's zeros) is added for the read group sizes only."""
    patterns = _mixed_patterns()
    full = dict(rank_sum_tables(patterns, 8))
    some = dict(rank_sum_tables(patterns, 8, rows=[3, 8]))
    assert set(some) == set(full) == set(range(len(patterns)))
    for g, c in some.items():
        np.testing.assert_array_equal(c[[3, 8]], full[g][[3, 8]])
        assert not c[[0, 1, 2, 4, 5, 6, 7]].any()
        n = patterns.shape[1]
        for k in (3, 8):                                      # the p-values read from them are the same
            devs = np.arange(0, 2 * k * n, 7)
            np.testing.assert_array_equal(rank_sum_pvalues(c, k, devs, n), rank_sum_pvalues(full[g], k, devs, n))
    with pytest.raises(ValueError, match="rows must be group sizes"):
        list(rank_sum_tables(patterns, 8, rows=[9]))


def test_tables_stay_within_the_stated_memory():
    """rank_sum_mb is what the exact path holds at once (tables kept at forks + working ones)."""
    import tracemalloc
    rng = np.random.default_rng(0)
    n, sizes = 128, [64, 64]
    patterns = [np.sort(_r2(rng.standard_normal(n)))]
    patterns += [np.sort(_r2(np.maximum(rng.standard_normal(n) + b, 0))) for b in np.linspace(-1, 1.5, 30)]
    patterns = np.unique(np.array(patterns), axis=0)
    tracemalloc.start()
    for _ in rank_sum_tables(patterns, 64, rows=[64]):
        pass
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    assert rank_sum_mb(n, sizes) * 0.5 < peak <= rank_sum_mb(n, sizes) * 1.05


class _Counted(np.ndarray):
    """A table that counts what numpy does to it: every ufunc call (slice additions, the binomial
    multiplications) and the elements it writes, and every copy."""
    log = {"elements": 0, "calls": 0, "tables": 0}

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kw):
        plain = [np.asarray(x) if isinstance(x, _Counted) else x for x in inputs]
        if out is not None:
            kw["out"] = tuple(np.asarray(o) if isinstance(o, _Counted) else o for o in out)
        res = getattr(ufunc, method)(*plain, **kw)
        _Counted.log["elements"] += int(np.size(res))
        _Counted.log["calls"] += 1
        return out[0] if out is not None else np.asarray(res).view(_Counted)

    def copy(self, *a, **k):
        _Counted.log["tables"] += 1
        return np.asarray(self).copy().view(_Counted)


def _counted_operations(monkeypatch, run) -> float:
    """The operations ``run()`` makes on rank-sum tables, by the rule the counts state (an element
    written = 1, a numpy call = CALL_OPS, a table allocated or copied = its cells + a call)."""
    import interp_gan.findings.rank_sum as rs
    _Counted.log.update(elements=0, calls=0, tables=0)
    shape = []
    real_empty, real_last = rs._empty, rs._last_run

    def empty(kmax, t_max):
        _Counted.log["tables"] += 1
        shape.append((kmax + 1) * (t_max + 1))
        return real_empty(kmax, t_max).view(_Counted)

    def last(c, *a):
        _Counted.log["tables"] += 1                    # its np.zeros_like table
        return real_last(c, *a)
    monkeypatch.setattr(rs, "_empty", empty)
    monkeypatch.setattr(rs, "_last_run", last)
    run()
    monkeypatch.undo()
    log = _Counted.log
    return log["elements"] + rs.CALL_OPS * log["calls"] + (shape[0] + rs.CALL_OPS) * log["tables"]


def test_walk_and_table_ops_equal_what_the_dp_does_one_pass_for_relu_a_pass_each_for_middle_ties(monkeypatch):
    """rank_sum_walk_ops / rank_sum_ops price the DP from the runs alone; instrumented, the DP makes
    exactly that many operations (factor 1), with and without rows, for ReLU-like rows, rows tied in
    the middle (quantised), both, and one untied table. ReLU-like rows cost about one pass in all,
    middle-tied rows about a pass each, and a tied run less than the old min(m, kmax) whole tables."""
    import interp_gan.findings.rank_sum as rs
    rng = np.random.default_rng(5)
    n, kmax, rows = 40, 10, [7, 10]
    relu = np.unique([np.sort(_r2(np.maximum(rng.standard_normal(n) + b, 0))) for b in np.linspace(-1, 2, 25)], axis=0)
    middle = np.unique([np.sort(_r2(rng.integers(0, 8, n).astype(float))) for _ in range(25)], axis=0)
    for patterns in (relu, middle, np.r_[relu, middle]):
        for r in (rows, None):
            done = _counted_operations(monkeypatch, lambda: [c for _, c in rs.rank_sum_tables(patterns, kmax, rows=r)])
            assert rs.rank_sum_walk_ops(patterns, kmax, r) == done
    untied = np.arange(2, 2 * n + 1, 2)
    assert rank_sum_ops(n, [kmax]) == _counted_operations(monkeypatch, lambda: rs.rank_sum_counts(untied, kmax))
    one_pass = rank_sum_ops(n, [kmax])
    assert rs.rank_sum_walk_ops(relu, kmax, rows) < 4 * one_pass        # 18 patterns: 2.6 passes
    assert rs.rank_sum_walk_ops(middle, kmax, rows) > 0.5 * len(middle) * one_pass   # 25 patterns: 28 passes
    # a quantised pattern at the Magenta size: its count against the former count (min(m, kmax) tables a run)
    q = np.sort(_r2(np.clip(np.round(rng.standard_normal(256) * 1.5), -3, 2)))
    runs = rs._runs(q)
    cells = 44 * (43 * (2 * 256 - 43 + 1) + 1)
    former = cells * (1 + sum(min(m, 43) for _, m in runs))
    assert 1.2 < former / rs.rank_sum_walk_ops(q[None], 43) < 2    # 1.33
