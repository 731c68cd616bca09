"""How many random baselines each row's p_random read, in words a claim can use.

    used = baseline_counts(rows, n_random=19)      # per row: n_random_used, or n_random (older findings)
    count_words(used)                              # "19", or "19 to 199" (sequential baselines)
    at_floor = at_own_floor(rows["p_random"], used)    # p_random = 1 / (1 + that row's count)
    more_baselines_hint(m=9, used=used, n_random=19, what="directions")
        # "set n_random_max = 199 (sequential: only the directions that beat the random ones draw more) to resolve them"

With sequential baselines (``findings/sequential.py``) each row reads its own number of random
baselines, so "beat every random one" and "p_random at its floor" are per row: the floor of a row
is 1 / (1 + its n_random_used). The cheap way to resolve rows at their floor is ``n_random_max``
(only those rows draw more), not a larger ``n_random`` for every row.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from interp_gan.findings.sequential import suggest_n_max

__all__ = ["baseline_counts", "count_words", "at_own_floor", "more_baselines_hint"]


def baseline_counts(rows: pd.DataFrame, n_random: int | None = None) -> np.ndarray:
    """Each row's n_random_used; a finding from before it (or a row without one) reads ``n_random``."""
    fallback = np.nan if n_random is None else float(n_random)
    if "n_random_used" not in rows.columns:
        return np.full(len(rows), fallback)
    used = pd.to_numeric(rows["n_random_used"], errors="coerce").to_numpy(float)
    return np.where(np.isfinite(used), used, fallback)


def count_words(used: np.ndarray) -> str:
    """"19" when every row read 19 baselines, else "19 to 199"."""
    u = np.asarray(used, float)
    u = u[np.isfinite(u)]
    if not len(u):
        return "?"
    lo, hi = int(u.min()), int(u.max())
    return f"{lo}" if lo == hi else f"{lo} to {hi}"


def at_own_floor(p: pd.Series | np.ndarray, used: np.ndarray) -> np.ndarray:
    """p_random at its row's floor 1 / (1 + count): the row beat every baseline it read."""
    p = np.asarray(p, float)
    used = np.asarray(used, float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(p) & np.isfinite(used) & (p <= (1 / (1 + used)) * (1 + 1e-9))


def more_baselines_hint(m: int, used: np.ndarray, n_random: int, what: str) -> str:
    """What to run so that a row at its floor can pass BH among ``m`` rows: ``n_random_max`` (sequential,
    so only the rows that beat the baselines pay), to the smallest of 99, 199, 499, ... that lets one
    row at its floor pass alone, above the counts already read."""
    u = np.asarray(used, float)
    now = int(np.nanmax(u)) if np.isfinite(u).any() else int(n_random)
    verb = "raise" if now > n_random else "set"
    return (f"{verb} n_random_max = {suggest_n_max(m, now)} (sequential: only the {what} that beat the random ones "
            f"draw more; n_random = {n_random} stays for the rest) to resolve them")
