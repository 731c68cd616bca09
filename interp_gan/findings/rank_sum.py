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

Cost: N x (kmax + 1) x (t_max + 1) additions per table, t_max = the sum of the kmax largest
values <= kmax (2 N - kmax + 1). ``EXACT_MAX_OPS`` = 5e8 and ``EXACT_MAX_MB`` = 256 MB of tables
held at once (``rank_sum_mb``) were set from the whole p-value computation of a 480-unit layer
(half untied, half ReLU-like; ``benchmarks/exact_null_cost.py``, one core, docs/scaling.md): 0.3-0.5
s, 2-4x the 0.13-0.16 s of 5000 Monte Carlo shuffles, at N = 256 in 4 or 6 styles; N = 256 in 2
styles (1.6e9) took 2.8 s (37x), N = 512 in 4 styles (7.6e9, 0.8 GB) 7.2 s (40x). A layer's tie
patterns together are bounded too (``EXACT_MAX_WALK_OPS`` = 4e9, ``rank_sum_walk_ops``). Callers fall
back to Monte Carlo shuffles above the bounds (``exact_is_cheap``); balanced styles stay under it up
to N = 190 in 2 styles, 256 in 4, 312 in 6, 352 in 8 and 624 in 26, where the tables need at most
~140 MB, so the memory bound only binds if ``max_ops`` is raised. Units tied in the middle
(quantised activations) share little and cost about a pass each.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np

__all__ = ["EXACT_MAX_OPS", "EXACT_MAX_MB", "EXACT_MAX_WALK_OPS", "rank_sum_ops", "rank_sum_mb", "exact_is_cheap",
           "rank_sum_counts", "rank_sum_tables", "rank_sum_walk_ops", "rank_sum_pvalues"]

EXACT_MAX_OPS = 5e8   # additions per table: <= 2 s for a 480-unit layer on one core (docs/scaling.md)
EXACT_MAX_MB = 256    # the tables ``rank_sum_tables`` holds at once
EXACT_MAX_WALK_OPS = 4e9   # additions for one layer's tie patterns (``rank_sum_walk_ops``): ~1-3 s
MAX_KEPT = 4          # tables kept at forks of the trie of tie patterns (``rank_sum_tables``)


def _kmax(n: int, sizes) -> int:
    sizes = np.asarray(sizes, dtype=np.int64).ravel()
    return int(np.minimum(sizes, n - sizes).max()) if len(sizes) else 0


def rank_sum_ops(n: int, sizes) -> float:
    """Additions ``rank_sum_counts`` makes for N = n values and groups of the given sizes (the
    worst case, untied ranks): n x (kmax + 1) x (kmax (2 n - kmax + 1) + 1)."""
    k = _kmax(n, sizes)
    return float(n) * (k + 1) * (k * (2 * n - k + 1) + 1)


def rank_sum_mb(n: int, sizes) -> float:
    """MB of the float64 tables ``rank_sum_tables`` holds at once: ``MAX_KEPT`` kept at forks, the
    one being extended, its copy and the last run's: (MAX_KEPT + 3) x (kmax + 1) x (t_max + 1) x 8."""
    k = _kmax(n, sizes)
    return (MAX_KEPT + 3) * (k + 1) * (k * (2 * n - k + 1) + 1) * 8 / 2 ** 20


def exact_is_cheap(n: int, sizes, max_ops: float | None = None, max_mb: float | None = None) -> bool:
    """Whether the exact null for n values and these group sizes costs at most ``max_ops`` additions
    per distinct set of ranks (default ``EXACT_MAX_OPS``) and its tables at most ``max_mb`` MB
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
    """Additions ``rank_sum_tables(patterns, kmax, rows)`` makes (at most; each run of m values
    counted as min(m, kmax) whole tables, each copy of a kept table as one), from the patterns'
    runs alone: one pass over the N values for untied or ReLU-like rows, about a pass per row
    for rows tied in the middle (quantised values)."""
    patterns = np.asarray(patterns)
    if not len(patterns):
        return 0.0
    n = patterns.shape[1]
    runs = [_runs(_values(row, kmax)) for row in patterns]
    cells = (kmax + 1) * (kmax * (2 * n - kmax + 1) + 1)
    rows = None if rows is None else sorted({int(j) for j in rows})
    total = 0.0
    for g, d, _ in _plan(runs):
        cur = runs[g]
        full = cur[d:-1] if rows is not None else cur[d:]
        total += cells * (1 + sum(min(m, kmax) for _, m in full))
        if rows is not None:
            m = cur[-1][1]
            total += cells / (kmax + 1) * sum(min(m, j) + 1 for j in rows)
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
