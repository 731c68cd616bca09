"""Sequential Monte Carlo p-values: draw random baselines only until the answer is plain.

    p, used = sequential_pvalue(observed, draws, h=10, n_max=199, n_min=19)   # one row, draws in order
    res = sequential_pvalues(observed, first, draw, h=10, n_max=199)          # many rows, extended lazily
    res.p, res.n_used, res.exceed, res.draws    # [rows], [rows], [rows], [rows, n_max] (NaN past n_used)
    expected_null_draws(h=10, n_min=19, n_max=199)   # mean draws a row with no effect costs (~42)
    suggest_n_max(m=9)                               # an n_max whose floor lets one of 9 rows pass BH: 199
    h_like_fixed(n_max=999)                          # 50: the h at which BH at 0.05 names what the fixed rule does

Besag & Clifford, "Sequential Monte Carlo p-values", Biometrika 78 (1991) 301-304: draw baselines
one at a time; stop as soon as ``h`` of them reach the observed value (p = h / l, l the draws so
far) or after ``n_max`` draws (p = (G + 1) / (n_max + 1), G the exceedances). A row with no effect
stops after about h / p draws; a row that beats everything pays all n_max and gets the floor
1 / (n_max + 1). A draw *reaches* the observed value when it is >= it (ties count against the row,
as in the fixed rule ``stats.permutation_pvalue``; a non-finite draw counts as reaching it too).

Here every row first takes a block of ``n_min`` draws (the random baselines an analysis draws for
all rows anyway). A row with G >= h exceedances in that block keeps the fixed rule's
p = (G + 1) / (n_min + 1); the others go on by Besag & Clifford's rule. With n_min < h this is their
rule exactly; with n_min = n_max it is the fixed rule exactly, so n_max = n_min switches the
sequential part off.

Validity: P(p <= a) <= a for every a when the observed value and the draws are exchangeable (the
null). Proof: with continuous values the observed value's rank among itself and the first m draws
is uniform, so G_m (the exceedances in m draws) is uniform on {0, ..., m} and P(G_m <= g) =
(g + 1) / (m + 1). Each outcome's p is the null probability of an outcome at least as extreme:
stopping at draw l > n_min means G_{l-1} <= h - 1, probability h / l; ending at n_max with G < h
means G_{n_max} <= G, probability (G + 1) / (n_max + 1); stopping after the block with G >= h means
G_{n_min} <= G, probability (G + 1) / (n_min + 1); and those three kinds of outcome order the same
way as their p (every end p < every stop p < every block p). Ties and non-finite draws only add
exceedances, which can only raise p (it is monotone in every exceedance), so then P(p <= a) <= a
still holds, conservatively. tests/statistics/test_sequential_p.py checks it by simulation,
continuous and with ties.

Choosing h: a row stops after about h / p draws, so a small h is cheap on rows with no effect
(``expected_null_draws``: with n_min 19 and n_max 199, h = 10 costs about 42 draws per null row;
the fixed rule 199) but reads a p near a threshold coarsely. With h >= alpha (n_max + 1) nothing is
lost at level alpha: p <= t for any t <= alpha happens exactly when the fixed rule on all n_max draws
gives p <= t (such a p needs fewer than h exceedances in n_max draws, so the row never stopped and
both rules read (G + 1) / (n_max + 1)), so BH at alpha names exactly the rows that spending n_max
draws on every row would (``h_like_fixed``; tests/statistics/test_sequential_p.py checks it). The
default h = 10 meets that for n_max up to 199 at alpha = 0.05; for a larger n_max, raise h (50 for
999: about 214 draws per null row after a block of 99, against 999).

The driver ``sequential_pvalues`` asks ``draw(rows, start, count)`` for the next ``count`` draws of
the rows not yet decided, ``batch`` draws at a time. Draws of a batch past a row's stopping point
are discarded (not counted, not stored), so the p is exactly the one-at-a-time p whatever the batch,
as long as draw j of row r does not depend on the batch (a seeded j-th baseline). ``batch`` > 1
only pays when a batch of draws costs less than that many single draws.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["sequential_pvalue", "sequential_pvalues", "SequentialP", "expected_null_draws", "suggest_n_max",
           "h_like_fixed", "coarse_h_note", "DEFAULT_H"]

DEFAULT_H = 10   # exceedances before a row stops: see docs/statistics.md "Sequential random baselines"


def _check(h: int, n_min: int, n_max: int) -> None:
    if h < 1 or n_min < 0 or n_max < max(1, n_min):
        raise ValueError(f"a sequential p needs h >= 1 and n_max >= n_min >= 0 (n_max >= 1), got h={h}, "
                         f"n_min={n_min}, n_max={n_max}; n_max = n_min gives the fixed rule")


def _reach(draws: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Exceedances: draw >= observed, or a non-finite draw (counted against the row)."""
    return (draws >= observed) | ~np.isfinite(draws)


def sequential_pvalue(observed: float, draws: np.ndarray, *, h: int = DEFAULT_H, n_max: int,
                      n_min: int = 0) -> tuple[float, int]:
    """(p, draws used) for one row from its baseline draws in order (at least up to its stopping
    point: all n_max if it never stops). NaN p and 0 used when ``observed`` is not finite."""
    _check(h, n_min, n_max)
    if not math.isfinite(observed):
        return float("nan"), 0
    e = _reach(np.asarray(draws, float)[:n_max], observed)
    if len(e) < n_min:
        raise ValueError(f"sequential_pvalue needs the first block of n_min = {n_min} draws, got {len(e)}")
    g_block = int(e[:n_min].sum())
    if g_block >= h or n_min == n_max:
        return (g_block + 1) / (n_min + 1), n_min
    cum = np.cumsum(e)
    hit = np.flatnonzero(cum >= h)                 # the h-th exceedance lies past the block
    if len(hit):
        l = int(hit[0]) + 1
        return h / l, l
    if len(e) < n_max:
        raise ValueError(f"sequential_pvalue: the row has not stopped after the {len(e)} draws given; "
                         f"pass all n_max = {n_max}")
    return (int(cum[-1]) + 1) / (n_max + 1), n_max


@dataclass(frozen=True)
class SequentialP:
    """``p`` [rows]; ``n_used``: draws each p reads; ``exceed``: how many of them reached the observed
    value; ``draws`` [rows, n_max]: those draws in order, NaN past ``n_used``; ``n_drawn``: draws
    made in all (including the ones discarded past a stopping point in a batch)."""
    p: np.ndarray
    n_used: np.ndarray
    exceed: np.ndarray
    draws: np.ndarray
    n_drawn: int


def sequential_pvalues(observed: np.ndarray, first: np.ndarray, draw: Callable[[np.ndarray, int, int], np.ndarray],
                       *, h: int = DEFAULT_H, n_max: int, batch: int = 1) -> SequentialP:
    """Sequential p for many rows: ``first`` [rows, n_min] is the block every row has; ``draw(rows,
    start, count)`` returns [len(rows), count] draws start .. start + count - 1 of those rows (indices
    into ``observed``). Only rows not yet decided are extended, ``batch`` draws at a time."""
    obs = np.asarray(observed, float).ravel()
    first = np.asarray(first, float).reshape(len(obs), -1)
    n_min = first.shape[1]
    _check(h, n_min, n_max)
    if batch < 1:
        raise ValueError(f"batch must be >= 1 draws per round, got {batch}")
    rows = len(obs)
    draws = np.full((rows, n_max), np.nan)
    draws[:, :n_min] = first
    ok = np.isfinite(obs)
    g = np.where(ok, _reach(first, obs[:, None]).sum(1), 0)
    used = np.where(ok, n_min, 0)
    p = np.full(rows, np.nan)
    block = ok & ((g >= h) | (n_min == n_max))
    p[block] = (g[block] + 1) / (n_min + 1)
    open_ = ok & ~block
    l, drawn = n_min, rows * n_min
    while open_.any() and l < n_max:
        c = min(batch, n_max - l)
        idx = np.flatnonzero(open_)
        new = np.asarray(draw(idx, l, c), float).reshape(len(idx), c)
        drawn += new.size
        cum = g[idx, None] + np.cumsum(_reach(new, obs[idx, None]), 1)
        hit = cum >= h
        stops = hit.any(1)
        k = np.where(stops, np.argmax(hit, 1) + 1, c)              # draws of this batch each row keeps
        keep = np.arange(c)[None] < k[:, None]
        draws[idx, l:l + c] = np.where(keep, new, np.nan)
        g[idx] = np.where(stops, h, cum[:, -1])
        used[idx] = l + k
        s = idx[stops]
        p[s] = h / used[s]
        open_[s] = False
        l += c
    p[open_] = (g[open_] + 1) / (n_max + 1)
    return SequentialP(p=p, n_used=used.astype(int), exceed=g.astype(int), draws=draws, n_drawn=int(drawn))


def expected_null_draws(*, h: int = DEFAULT_H, n_min: int, n_max: int) -> float:
    """Mean draws a row costs under the null (continuous values): n_min, plus each later draw l + 1
    with the probability that the row is still open after l draws, P(G_l < h) = min(1, h / (l + 1))."""
    _check(h, n_min, n_max)
    if n_min == n_max:
        return float(n_min)
    return n_min + sum(min(1.0, h / (l + 1)) for l in range(n_min, n_max))


def suggest_n_max(m: int, n_now: int = 0, alpha: float = 0.05) -> int:
    """The smallest of 99, 199, 499, 999, 1999, ... above ``n_now`` whose floor 1 / (n + 1) lets a row
    pass BH at ``alpha`` among ``m`` rows on its own (1 / (n + 1) <= alpha / m)."""
    need = math.ceil(max(1, m) / alpha)          # n + 1 draws' worth
    n1 = 100
    while n1 < need or n1 - 1 <= n_now:
        n1 = n1 * 5 // 2 if str(n1)[0] == "2" else n1 * 2     # 100, 200, 500, 1000, 2000, ...
    return n1 - 1


def h_like_fixed(n_max: int, alpha: float = 0.05) -> int:
    """The smallest h with h >= alpha (n_max + 1): then every p <= alpha is the fixed rule's p on all
    n_max draws, and BH at alpha names the same rows (module docstring)."""
    return max(1, math.ceil(alpha * (n_max + 1) - 1e-9))


def coarse_h_note(h: int, n_max: int, rows: str, draws: str, per_row: str) -> str:
    """"" when h >= ``h_like_fixed(n_max)``, else the clause a note appends: BH at 0.05 may name other
    ``rows`` (e.g. "directions") than ``n_max`` ``draws`` ("random directions") for every one would,
    and h_like_fixed makes them the same at more ``per_row`` ("draws per direction")."""
    fixed = h_like_fixed(n_max)
    if h >= fixed:
        return ""
    return (f"; h = {h} is below 0.05 x (n_random_max + 1) = {fixed}, so BH at 0.05 may name other {rows} than "
            f"{n_max} {draws} for every one would (h = {fixed} makes them the same, at more {per_row})")
