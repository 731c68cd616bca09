"""The exact permutation null of a rank sum (Mann-Whitney / Wilcoxon rank-sum test, ties included).

    counts = rank_sum_counts(r2, kmax)                # r2: twice the midranks of N values (integers)
    p = rank_sum_pvalues(counts, k, dev2)             # two-sided p of |2 R - k (N + 1)| = dev2

Shuffling two group labels over N values (k in the group) makes the group's ranks a uniformly
random k-subset of the N ranks (midranks where values tie). The rank sum R of that subset has a
null distribution that depends only on the multiset of ranks, so it can be counted instead of
sampled: counts[j, t] = the number of j-subsets whose values sum to t, built one value w at a
time by counts[j, t] += counts[j - 1, t - w] (Mann & Whitney 1947 give the same recursion for
untied ranks). Twice a midrank is an integer, so the sums are integers and the two-sided event
|R - E R| >= |r_obs - E R| (E R = k (N + 1) / 2) is decided exactly, without a float tolerance.
p = #{k-subsets in that event} / C(N, k): the p that infinitely many label shuffles would give,
with no floor at 1 / (n_perm + 1). Its smallest value is 2 / C(N, k) without ties.

Because |R - E R| of a k-subset equals that of its complement (size N - k), only
k <= N / 2 needs counting: one table up to kmax = max min(k, N - k) serves every group size.
Counts are float64 (exact to 2^53; C(190, 95) ~ 9e55, the largest two-halves split within the
cost bound below, stays far from overflow).

Tied values are added as one run (m equal values: a j-subset takes j of them in C(m, j) ways).
Units with different ties need their own table; ``rank_sum_tables`` walks the tie patterns as a
trie of their runs, largest value first, and keeps the table at a fork for the rows that go on
from it, so ReLU-like units (zeros tied at the bottom, distinct above) cost one pass over the N
values plus one run per pattern instead of a pass per pattern. A pattern's last run (the zeros)
is added only for the rows that will be read (the group sizes), and row j only up to j x the
largest value (it is zero above); single values are added in place, largest j first.

Cost, counted as the DP does it (``_run_ops``): every element a slice addition or a binomial
multiplication writes is one operation, every numpy call in its loops ``CALL_OPS`` = 4000 (~2 us
of Python and numpy overhead against ~0.5 ns an element: the least-squares fit of walk times
over eight layers, untied to 60 quantised units, N = 64-512), each table allocated or copied one
a cell. That count equals the walk's instrumented operations exactly
(tests/findings/test_rank_sum.py); the time per operation is within ~2x across untied, ReLU-like
and quantised layers (``benchmarks/exact_null_cost.py``, docs/scaling.md). An untied table
(``rank_sum_ops``) costs about half of N x (kmax + 1) x (t_max + 1) elements, t_max = the sum of the
kmax largest values <= kmax (2 N - kmax + 1), because row j stops at j x the largest value; a run
of m tied values costs min(m, j) shifted additions in row j, each also a multiplication by
C(m, i). The former count (min(m, kmax) whole tables a run, no calls) was 1.3-1.5x too high for
quantised units at N = 256-626 and too low for small tables, whose calls weigh most (3x at N = 64).
``EXACT_MAX_OPS`` = 3.8e8 per untied table is the largest table the former bound (5e8 of
N x (kmax + 1) x (t_max + 1)) admitted (N = 190 in 2 styles), so every group layout that was
exact stays exact: balanced styles are exact up to N = 190 in 2 styles, 264 in 4, 324 in 6, 374 in
8 and 676 in 26 (at most 139 MB of tables). ``EXACT_MAX_MB`` = 256 MB of tables held at once
(``rank_sum_mb``). A layer's tie patterns together are bounded by ``EXACT_MAX_WALK_OPS`` = 6e9
(``rank_sum_walk_ops``): about 1.5 s on a quiet core, 3 s on a loaded one. A Magenta-sized layer (N =
256 in 6 styles, 480 units) then stays exact with up to ~40 quantised units (5.9e9); the former
count sent it to shuffles past ~21. Units tied in the middle (quantised activations) share little
and cost about a pass each. Callers fall back to Monte Carlo shuffles above the bounds
(``exact_is_cheap`` and the walk).
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np

__all__ = ["EXACT_MAX_OPS", "EXACT_MAX_MB", "EXACT_MAX_WALK_OPS", "CALL_OPS", "rank_sum_ops", "rank_sum_mb", "exact_is_cheap",
           "rank_sum_counts", "rank_sum_tables", "rank_sum_walk_ops", "rank_sum_pvalues"]

EXACT_MAX_OPS = 3.8e8  # operations of one untied table (``rank_sum_ops``): the largest the old 5e8 bound admitted
EXACT_MAX_MB = 256    # the tables ``rank_sum_tables`` holds at once
EXACT_MAX_WALK_OPS = 6e9   # operations of one layer's tie patterns (``rank_sum_walk_ops``): ~1.5 s on a quiet core
MAX_KEPT = 4          # tables kept at forks of the trie of tie patterns (``rank_sum_tables``)
CALL_OPS = 4000       # one numpy call in the DP's loops, in element operations (~2 us against ~0.5 ns an element)


def _kmax(n: int, sizes) -> int:
    sizes = np.asarray(sizes, dtype=np.int64).ravel()
    return int(np.minimum(sizes, n - sizes).max()) if len(sizes) else 0


def _run_ops(w, m, top: int, kmax: int, t_max: int, rows=None) -> np.ndarray:
    """Element operations of ``_add_run(c, w, m, top)`` (rows None: rows 1..kmax) or of
    ``_last_run(c, w, m, top, rows)``, for arrays of runs (w, m broadcast): exactly the slices
    those loops touch. Row j adds C(m, i) x row j - i shifted by i w for i = 1..L (``_last_run``
    also i = 0), L = min(m, j, (hi - 1) // w), hi = min(t_max, j top) + 1: L hi - w L (L + 1) / 2
    additions, the same count of multiplications less the terms with C(m, i) = 1 (i = 0, i = m),
    and ``CALL_OPS`` per numpy call (each add, each multiply)."""
    w = np.asarray(w, dtype=np.int64)[..., None]
    m = np.asarray(m, dtype=np.int64)[..., None]
    j = np.arange(1, kmax + 1, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    hi = np.minimum(t_max, j * top) + 1
    L = np.minimum(np.minimum(m, j), (hi - 1) // w)
    adds = L * hi - w * L * (L + 1) // 2
    last_plain = L == m                                  # the i = m term is not multiplied
    muls = adds - np.where(last_plain, hi - m * w, 0)
    calls = 2 * L - last_plain
    if rows is not None:                                 # the i = 0 term: row j copied in, no multiply
        adds, calls = adds + hi, calls + 1
    return (adds + muls + CALL_OPS * calls).sum(-1).astype(np.float64)


def rank_sum_ops(n: int, sizes) -> float:
    """Operations ``rank_sum_counts`` makes for N = n untied values and groups of the given sizes
    (one table, every row; ``_run_ops``, numpy calls included): about half of
    n x (kmax + 1) x (t_max + 1) elements, as row j stops at j x the largest value, plus the calls.
    A tie pattern's table can cost more (pairs of ties: a multiplication per addition); the layer's
    walk (``rank_sum_walk_ops``) counts the real patterns."""
    k = _kmax(n, sizes)
    t_max = k * (2 * n - k + 1)
    return float(_run_ops(np.arange(2, 2 * n + 1, 2), 1, 2 * n, k, t_max).sum()) + (k + 1) * (t_max + 1) + CALL_OPS


def rank_sum_mb(n: int, sizes) -> float:
    """MB of the float64 tables ``rank_sum_tables`` holds at once: ``MAX_KEPT`` kept at forks, the
    one being extended, its copy and the last run's: (MAX_KEPT + 3) x (kmax + 1) x (t_max + 1) x 8."""
    k = _kmax(n, sizes)
    return (MAX_KEPT + 3) * (k + 1) * (k * (2 * n - k + 1) + 1) * 8 / 2 ** 20


def exact_is_cheap(n: int, sizes, max_ops: float | None = None, max_mb: float | None = None) -> bool:
    """Whether the exact null for n values and these group sizes costs at most ``max_ops`` operations
    per untied table (``rank_sum_ops``; default ``EXACT_MAX_OPS``) and its tables at most ``max_mb`` MB
    (default ``EXACT_MAX_MB``)."""
    return (rank_sum_ops(n, sizes) <= (EXACT_MAX_OPS if max_ops is None else max_ops)
            and rank_sum_mb(n, sizes) <= (EXACT_MAX_MB if max_mb is None else max_mb))


def _values(r2: np.ndarray, kmax: int) -> np.ndarray:
    w = np.rint(np.asarray(r2, dtype=np.float64)).astype(np.int64).ravel()
    if len(w) == 0 or w.min() < 1 or not np.array_equal(w, np.asarray(r2, dtype=np.float64).ravel()):
        raise ValueError("rank_sum_counts expects twice the midranks: positive integers")
    if not 0 <= kmax <= len(w):
        raise ValueError(f"kmax must be in 0..{len(w)}, got {kmax}")
    return w


def _runs(w: np.ndarray) -> tuple[tuple[int, int], ...]:
    """The values as (value, multiplicity) runs, largest value first."""
    vals, mult = np.unique(w, return_counts=True)
    return tuple(zip(vals[::-1].tolist(), mult[::-1].tolist()))


def _add_run(c: np.ndarray, w: int, m: int, top: int, inplace: bool = False) -> np.ndarray:
    """The table after m more values equal to w: a j-subset takes j of them in C(m, j) ways. Every
    value is <= top, so row j is zero above j x top and is only added up to there. Rows are
    updated from the largest j down, each from rows below it not yet updated, so the table can
    be updated in place (``inplace``) instead of copied."""
    kmax, t_max = c.shape[0] - 1, c.shape[1] - 1
    if not inplace:
        c = c.copy()
    for j in range(kmax, 0, -1):
        hi = min(t_max, j * top) + 1
        for i in range(1, min(m, j) + 1):
            if i * w >= hi:
                break
            src = c[j - i, :hi - i * w]
            c[j, i * w:hi] += src if i == m or i == 0 else math.comb(m, i) * src
    return c


def _last_run(c: np.ndarray, w: int, m: int, top: int, rows) -> np.ndarray:
    """``_add_run(c, w, m, top)`` for the given rows only (the others left zero): a pattern's last
    run, whose table is read at its group sizes and never extended, costs min(m, j) + 1 vector
    additions per row j instead of about m x kmax / 2 whole tables."""
    t_max = c.shape[1] - 1
    out = np.zeros_like(c)
    for j in rows:
        hi = min(t_max, j * top) + 1
        for i in range(min(m, j) + 1):
            if i * w >= hi:
                break
            src = c[j - i, :hi - i * w]
            out[j, i * w:hi] += src if i == m or i == 0 else math.comb(m, i) * src
    return out


def _empty(kmax: int, t_max: int) -> np.ndarray:
    c = np.zeros((kmax + 1, t_max + 1))
    c[0, 0] = 1.0
    return c


def rank_sum_counts(r2: np.ndarray, kmax: int) -> np.ndarray:
    """counts [kmax + 1, t_max + 1]: counts[j, t] = number of j-subsets of the values r2 (twice the
    midranks: positive integers, any order) whose sum is t, for j = 0..kmax; t_max = the sum of
    the kmax largest values. Tied values are added as one run (binomial counts)."""
    w = _values(r2, kmax)
    c = _empty(kmax, int(np.sort(w)[len(w) - kmax:].sum()) if kmax else 0)
    top = int(w.max())
    for v, m in _runs(w):
        c = _add_run(c, v, m, top, inplace=True)
    return c


def _lcp(a, b) -> int:
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    return i


def _plan(runs: list) -> list[tuple[int, int, int]]:
    """The walk over the tie patterns' runs: (row, depth it starts from, depth at which its table is
    kept for the next row or -1), in walk order. Lexicographic order, so rows sharing a prefix are
    adjacent; at a fork the lower run first, so that ReLU-like rows (more zeros first) each
    continue from the previous row's path. At most ``MAX_KEPT`` tables are kept (the shallowest
    after the empty one is dropped first: a later row may then restart from a shallower table)."""
    order = sorted(range(len(runs)), key=lambda g: runs[g])
    stack, plan = [0], []
    for i, g in enumerate(order):
        shared = _lcp(runs[order[i - 1]], runs[g]) if i else 0
        keep = _lcp(runs[g], runs[order[i + 1]]) if i + 1 < len(order) else 0
        while stack[-1] > shared:                  # left the previous row's path below here
            stack.pop()
        d = stack[-1]
        push = keep if keep > d else -1
        if push >= 0:
            stack.append(push)
            if len(stack) > MAX_KEPT:
                del stack[1]
        plan.append((g, d, push))
    return plan


def rank_sum_walk_ops(patterns: np.ndarray, kmax: int, rows=None) -> float:
    """Element operations ``rank_sum_tables(patterns, kmax, rows)`` makes, from the patterns' runs
    alone, following its walk (``_plan``) step by step: every run it adds (``_run_ops``: the
    slices its loops touch, numpy calls at ``CALL_OPS``), every copy of a kept table and every
    table it allocates (one operation a cell). One pass over the N values for untied or
    ReLU-like rows, about a pass per row for rows tied in the middle (quantised values)."""
    patterns = np.asarray(patterns)
    if not len(patterns):
        return 0.0
    n = patterns.shape[1]
    runs = [_runs(_values(row, kmax)) for row in patterns]
    t_max = kmax * (2 * n - kmax + 1)
    cells = (kmax + 1) * (t_max + 1)
    top = max(r[0][0] for r in runs)
    rows = None if rows is None else sorted({int(j) for j in rows})
    added, last, tables = [], [], 1                       # runs added whole, last runs for rows, tables made
    for g, d, push in _plan(runs):
        cur, owned = runs[g], False
        for at in range(d, len(cur)):
            if at == push:
                owned = False
            if at == len(cur) - 1 and rows is not None:
                last.append(cur[at])
                tables += 1                               # _last_run's zeroed table
            else:
                tables += not owned                       # _add_run copies a kept table first
                added.append(cur[at])
                owned = True
    total = float(cells) * tables + CALL_OPS * tables
    for which, r in ((added, None), (last, rows)):
        if which:
            w, m = np.array(which).T
            total += float(_run_ops(w, m, top, kmax, t_max, r).sum())
    return total


def rank_sum_tables(patterns: np.ndarray, kmax: int, rows=None) -> Iterator[tuple[int, np.ndarray]]:
    """(row, counts) for every row of patterns [G, N] (each row twice the midranks of N values), in
    an order that shares work: the rows are walked as a trie of their runs, largest value first,
    and the table at a branching run is kept for the rows that continue from it (``_plan``).
    ReLU-like units (tied at the bottom, distinct above) then cost one pass over the N values plus
    a run per row, not a pass per row. Every table has the same width, t_max = kmax (2 N - kmax + 1).
    rows: the group sizes (<= kmax) that will be read; when given, each row's last run fills only
    those rows of its table (the others are zero), which is most of the work for ReLU-like zeros."""
    patterns = np.asarray(patterns)
    n = patterns.shape[1]
    runs = [_runs(_values(row, kmax)) for row in patterns]
    t_max = kmax * (2 * n - kmax + 1)
    top = max(r[0][0] for r in runs) if runs else 1      # the largest value of any row
    rows = None if rows is None else sorted({int(j) for j in rows})
    if rows is not None and not all(0 <= j <= kmax for j in rows):
        raise ValueError(f"rows must be group sizes in 0..kmax={kmax}, got {rows}")
    stack = [(0, _empty(kmax, t_max))]            # (runs added, table): kept prefixes, as in _plan
    for g, d, push in _plan(runs):
        cur = runs[g]
        while stack[-1][0] > d:
            stack.pop()
        c = stack[-1][1]
        owned = False                             # c is a kept table: copy before changing it
        for at in range(d, len(cur)):
            if at == push:
                stack.append((at, c))             # the next row continues from here
                owned = False
                if len(stack) > MAX_KEPT:
                    del stack[1]
            if at == len(cur) - 1 and rows is not None:
                c = _last_run(c, *cur[at], top, rows)
            else:
                c, owned = _add_run(c, *cur[at], top, inplace=owned), True
        yield g, c


def rank_sum_pvalues(counts: np.ndarray, k: int, dev2, n: int) -> np.ndarray:
    """Two-sided exact p-values P(|2 R - k (n + 1)| >= dev2) for a group of k of the n values, from
    ``rank_sum_counts`` of those values (kmax >= min(k, n - k)). dev2: observed |2 r - k (n + 1)|,
    integers (any shape); dev2 = 0 gives p = 1."""
    k = int(min(k, n - k))        # the complement has the same |R - E R|
    dev2 = np.rint(np.asarray(dev2, dtype=np.float64)).astype(np.int64)
    pmf = counts[k] / counts[k].sum()
    lower = np.cumsum(pmf)                       # P(T <= t): small tails summed from their small end
    upper = np.cumsum(pmf[::-1])[::-1]           # P(T >= t)
    centre = k * (n + 1)
    hi, lo = centre + dev2, centre - dev2
    p = (np.where(hi < len(pmf), upper[np.clip(hi, 0, len(pmf) - 1)], 0.0)
         + np.where(lo >= 0, lower[np.clip(lo, 0, len(pmf) - 1)], 0.0))
    return np.where(dev2 <= 0, 1.0, np.minimum(p, 1.0))
