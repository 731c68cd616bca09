"""Style units: which channels tell the target styles apart (selectivity by AUROC).

    f = build_analysis("style_units", layers=["blocks.*"], n_boot=500, n_perm=2000).run(subject, data)
    f.tables["style_units"]      # layer, unit, style, auroc, ci_low, ci_high, p_value, q_value, ...

Every content image is generated toward one target style (``data.style_ids``, balanced). For
every unit (channel) and style the score is the AUROC of the unit's spatially averaged
activation for images generated toward that style against images generated toward the others:
1.0 = the unit is always higher for that style, 0.5 = it does not care, 0.0 = always lower.
Unit-level class selectivity follows Bau et al., "Understanding the role of individual units
in a deep neural network" (PNAS 2020) and Morcos et al., "On the importance of single
directions for generalization" (ICLR 2018); AUROC is the Mann-Whitney U statistic divided
by n1·n0 (Hanley & McNeil 1982).

Uncertainty: a 95% logit-DeLong CI of the AUROC (DeLong et al. 1988; Newcombe's 2006 score
interval where the groups separate completely, so no CI has zero width; the other styles are
treated as fixed strata; ``interp_gan.findings.auroc``). ``ci="bootstrap"`` gives the old
percentile bootstrap (resampling images within each style, Efron & Tibshirani 1993), which
collapses to zero width once the groups separate and under-covers at 16 images per style.
A two-sided permutation p-value that shuffles the style labels (|AUROC - 0.5| as the
statistic, i.e. |R - E R| of the style's rank sum R: a Mann-Whitney test). By default
(``null="exact"``) it is the exact permutation null, every labeling counted by dynamic
programming over (images, group size, rank sum) on twice the midranks (integers, so the
two-sided comparison is exact; ``findings.rank_sum``): no p sits at a Monte Carlo floor. Where
that counting would cost more than ``EXACT_MAX_OPS`` (3.8e8) operations an untied table (N = 256 in
2 styles, say; operations counted as the DP does them, ``rank_sum_walk_ops``) or hold more than
``EXACT_MAX_MB`` (256) MB of tables, or with ``null="permutation"`` (and in a layer whose tie
patterns together would cost more than ``EXACT_MAX_WALK_OPS``, 6e9, about 1.5 s on a quiet core:
units tied between their extremes, e.g. quantised, cost about a pass each), B = ``n_perm`` label
shuffles are drawn instead ((1 + #{null >= obs}) / (1 + B), Phipson & Smyth 2010, floor
1 / (1 + B)); the notes say which. Benjamini-Hochberg q-values over all unit × style tests of
the run. Cohen's d uses the pooled (n - 1)-weighted SD.

Random-init control (``control=True``, the default): the same statistics for the same layers
and images with the generator re-drawn at random initialisation (``Subject.random_init``),
summarised per layer in the ``style_units_control`` table (layer, units, tests,
frac_q05_trained, frac_q05_control, median_abs_d_trained, median_abs_d_control). A
randomly initialised style embedding already makes units differ between styles, so a
"significant" rate only means something next to this control. What the control could not
re-draw is a note ("random-init control keeps ..."), printed in the report beside the comparison.

Why it is fast: AUROC only depends on ranks. For a unit with no tied values the ranks are a
permutation of 1..N, so the permutation null of its rank sum is the same for every such unit;
it is counted (exact) or drawn (B × N work) once and shared. Units with ties (e.g. a ReLU channel that is zero on
several images) share a null with the units whose sorted ranks are the same; constant units
get AUROC 0.5 and p = 1 without shuffling.

Sharded (docs/scaling.md): under an initialised process group (e.g. ``torchrun``) ``run`` is a
collective — call it on every rank. Each rank generates its own whole batches of images
(``shard_indices(N, block=batch_size)``, each batch seeded by its global index as in one
process), the per-image unit means are gathered on every rank in image order, and every rank
computes the same statistics from all N images: the result equals one process's.
"""
from __future__ import annotations

import math
import warnings
from typing import Literal, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata
from torch import Tensor, nn

from interp_gan.analyses.cost import Cost, UnitCosts
from interp_gan.analyses.base import Analysis, AnalysisData, register_analysis
from interp_gan.analyses.common import check_styles, style_gate_cost, fixed_z, seeded, unit_means
from interp_gan.distributed import all_gather_objects, fail_together, rank_and_world
from interp_gan.harvest.distributed import shard_indices
from interp_gan.harvest.store import shard_batches
from interp_gan.harvest.hooks import TraceDict, default_layers, resolve_layers
from interp_gan.findings import Finding
from interp_gan.findings.auroc import auroc_interval
from interp_gan.findings.rank_sum import (EXACT_MAX_MB, EXACT_MAX_OPS, EXACT_MAX_WALK_OPS, exact_is_cheap, rank_sum_mb,
                                         rank_sum_ops, rank_sum_pvalues, rank_sum_tables, rank_sum_walk_ops)
from interp_gan.findings.stats import MIN_SAMPLES_FOR_CI, bh_qvalues, floor_note

__all__ = ["StyleUnits", "harvest_unit_means", "auroc_matrix",
           "auroc_pvalues", "exact_null_used", "null_used", "null_cost", "cohens_d", "auroc_bootstrap_ci", "auroc_ci"]


# --- shared helpers (also used by ablation) ------------------------------------------------------

@torch.no_grad()
def harvest_unit_means(subject, data: AnalysisData, layers: Sequence[str], seed: int = 0,
                       shard: range | None = None) -> dict[str, np.ndarray]:
    """Generate every content image toward its target style; {layer: [N, U] mean activation}.

    Layers that never ran in the forward pass are left out of the result. shard: only these
    images (a contiguous range; rows in shard order); each batch is seeded by its global index,
    so a shard that starts on a multiple of ``data.batch_size`` gets the same rows as one pass.
    """
    z = fixed_z(subject, data, seed)
    parts: dict[str, list[Tensor]] = {n: [] for n in layers}
    for sl, content, ids, _ in shard_batches(data, shard):
        b = sl.start // data.batch_size                  # the batch's index in one pass over the data
        zb = None if z is None else z[sl]
        with TraceDict(subject.generator, list(layers)) as td, seeded(seed + b):
            subject.generate(content, ids, zb)
        for n in layers:
            if td[n].output is not None:
                parts[n].append(unit_means(td[n].output, n).cpu())
    return {n: torch.cat(v).numpy().astype(np.float64) for n, v in parts.items() if len(v)}


def _gather_rows(means: dict[str, np.ndarray], layers: Sequence[str], n: int) -> dict[str, np.ndarray]:
    """Every rank's rows {layer: [n_rank, U]} concatenated in rank order (= image order: the
    shards are contiguous and in order), on every rank. A collective."""
    parts = all_gather_objects(means)
    out = {}
    for layer in layers:
        rows = [p[layer] for p in parts if layer in p]
        if rows:
            out[layer] = np.concatenate(rows)
            if len(out[layer]) != n:
                raise RuntimeError(f"layer {layer!r} ran on some ranks only ({len(out[layer])} of {n} images); "
                                   f"expected the same forward path on every rank")
    return out


# --- the statistics (pure numpy) -------------------------------------------------------------

def _onehot(y: np.ndarray, n_styles: int) -> np.ndarray:
    return (y[:, None] == np.arange(n_styles)[None]).astype(np.float64)  # [N,S]


def _rank2(x: np.ndarray) -> np.ndarray:
    """Twice the mid-ranks along axis -2 (integers, so sums compare exactly)."""
    return np.rint(2 * rankdata(x, axis=-2, method="average"))


def auroc_matrix(x: np.ndarray, y: np.ndarray, n_styles: int) -> np.ndarray:
    """AUROC [S, U] of each column of x [N, U] for y == s against y != s (ties count 1/2).

    y holds style indices 0..S-1. Columns with a NaN give NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    npos = np.bincount(y, minlength=n_styles).astype(np.float64)[:, None]   # [S,1]
    rs2 = _onehot(y, n_styles).T @ _rank2(x)                                 # [S,U]
    auc = (rs2 / 2 - npos * (npos + 1) / 2) / (npos * (n - npos))
    auc[:, ~np.isfinite(x).all(0)] = np.nan
    return auc


def group_moments(x: np.ndarray, y: np.ndarray, n_styles: int) -> tuple[np.ndarray, ...]:
    """Per style s and unit: mean and (population) variance of x for y == s and for y != s, each
    [S, U]; non-finite values count as 0 (their columns are marked NaN by the callers)."""
    oh = _onehot(y, n_styles)                                                   # [N,S]
    xs = np.where(np.isfinite(x), np.asarray(x, dtype=np.float64), 0.0)
    n_in, n_out = oh.sum(0)[:, None], (1 - oh).sum(0)[:, None]
    m_in, m_out = oh.T @ xs / n_in, (1 - oh).T @ xs / n_out
    v_in, v_out = oh.T @ xs ** 2 / n_in - m_in ** 2, (1 - oh).T @ xs ** 2 / n_out - m_out ** 2
    return m_in, m_out, v_in, v_out


def cohens_d(x: np.ndarray, y: np.ndarray, n_styles: int) -> np.ndarray:
    """Cohen's d [S, U] (Cohen 1988): (m1 - m0) / sqrt(((n1-1) s1^2 + (n0-1) s0^2) / (n1 + n0 - 2)),
    group 1 = images with y == s, group 0 = the others, s^2 the sample variances. AUROC
    saturates at 1 once the groups separate; d still says by how much."""
    m_in, m_out, v_in, v_out = group_moments(x, y, n_styles)
    oh = _onehot(y, n_styles)
    n_in, n_out = oh.sum(0)[:, None], (1 - oh).sum(0)[:, None]
    # (n - 1) s^2 = n * population variance
    pooled = (n_in * v_in + n_out * v_out) / (n_in + n_out - 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (m_in - m_out) / np.sqrt(np.clip(pooled, 0, None))
    d[:, ~np.isfinite(np.asarray(x, dtype=np.float64)).all(0)] = np.nan
    return d


def auroc_pvalues(x: np.ndarray, y: np.ndarray, n_styles: int, n_perm: int = 2000, seed: int = 0,
                  max_elems: int = 4_000_000, null: Literal["exact", "permutation"] = "exact",
                  info: dict | None = None) -> np.ndarray:
    """Two-sided permutation p-values [S, U] for the AUROCs of ``auroc_matrix`` (NaN columns: NaN).

    Shuffling labels against a column's ranks only depends on the multiset of those ranks, so
    the null is computed once per distinct sorted-rank pattern (one pattern for all tie-free
    units) and shared by the units that have it. null="exact": the exact permutation null of
    the rank sum (``findings.rank_sum``, no floor) when ``exact_null_used`` says it is cheap for
    these group sizes and the units' tie patterns cost at most ``EXACT_MAX_WALK_OPS`` operations
    together (``rank_sum_walk_ops``: units tied in the middle, e.g. quantised, cost about a pass
    each), else ``n_perm`` Monte Carlo shuffles; null="permutation": always Monte Carlo,
    p = (1 + #{null >= obs}) / (1 + n_perm). info: a dict that gets "null" (the one used) and,
    where the tie patterns were too costly, "patterns" and "walk_ops".
    """
    info = {} if info is None else info
    info["null"] = null
    if null not in ("exact", "permutation"):
        raise ValueError(f"null must be 'exact' or 'permutation', got {null!r}")
    x = np.asarray(x, dtype=np.float64)
    n, u = x.shape
    npos = np.bincount(y, minlength=n_styles).astype(np.float64)             # [S]
    centre2 = npos * (n + 1)                                                  # 2 × expected rank sum
    p = np.full((n_styles, u), np.nan)
    finite = np.isfinite(x).all(0)
    srt = np.sort(x, axis=0)
    constant = finite & (srt[0] == srt[-1])
    p[:, constant] = 1.0
    ok = finite & ~constant
    if not ok.any():
        return p
    r2 = _rank2(x[:, ok])                                                     # [N,U_ok]
    obs = np.abs(_onehot(y, n_styles).T @ r2 - centre2[:, None])              # [S,U_ok]
    patterns, gid = np.unique(np.sort(r2, axis=0).T, axis=0, return_inverse=True)  # [G,N], [U_ok]
    gid = gid.ravel()
    if null_used(y, n_styles, null) == "exact":
        kmax, rows = int(np.minimum(npos, n - npos).max()), np.unique(np.minimum(npos, n - npos)).astype(int)
        walk = rank_sum_walk_ops(patterns, kmax, rows)
        if null_used(y, n_styles, null, walk) == "exact":
            info["null"] = "exact"
            p[:, ok] = _exact_pvalues(patterns, gid, obs, npos.astype(np.int64), n)
            return p
        info.update(patterns=len(patterns), walk_ops=walk)
    info["null"] = "permutation"
    rng = np.random.default_rng(seed)
    exceed = np.zeros_like(obs)
    chunk = max(1, min(n_perm, max_elems // (n_styles * r2.shape[1])))
    for start in range(0, n_perm, chunk):
        b = min(chunk, n_perm - start)
        yp = y[rng.permuted(np.tile(np.arange(n), (b, 1)), axis=1)]           # [b,N] shuffled labels
        oh = (yp[:, None, :] == np.arange(n_styles)[None, :, None]).astype(np.float64)  # [b,S,N]
        null_ = np.abs(np.matmul(oh, patterns.T) - centre2[None, :, None])      # [b,S,G]
        exceed += (null_[:, :, gid] >= obs[None]).sum(0)
    p[:, ok] = (1 + exceed) / (1 + n_perm)
    return p


def exact_null_used(y: np.ndarray, n_styles: int, max_ops: float | None = None) -> bool:
    """Whether ``auroc_pvalues(null="exact")`` computes the exact null for these labels: the
    rank-sum counting costs at most ``max_ops`` (default ``EXACT_MAX_OPS``) operations per untied
    table and its tables at most ``EXACT_MAX_MB`` MB (``findings.rank_sum``); a layer's tie
    patterns are checked too (``null_used``)."""
    y = np.asarray(y)
    return exact_is_cheap(len(y), np.bincount(y, minlength=n_styles), EXACT_MAX_OPS if max_ops is None else max_ops)


def null_used(y: np.ndarray, n_styles: int, null: str = "exact", walk_ops: float | None = None) -> str:
    """The null ``auroc_pvalues`` uses for a layer: "exact" where null="exact", ``exact_null_used``
    and (when given) the layer's tie patterns cost at most ``EXACT_MAX_WALK_OPS`` operations
    (``rank_sum_walk_ops``), else "permutation". The one rule: the analysis asks it with the
    patterns it found, the estimate (``null_cost``) with the patterns it assumes."""
    if null != "exact" or not exact_null_used(y, n_styles):
        return "permutation"
    return "exact" if walk_ops is None or walk_ops <= EXACT_MAX_WALK_OPS else "permutation"


def null_cost(y: np.ndarray, n_styles: int, units: int, null: str, n_perm: int,
              rank_op_s: float, shuffle_s: float) -> tuple[float, str]:
    """(seconds, null) of one layer's p-values before its activations exist: the null ``null_used``
    picks for untied units (one tie pattern: every continuous activation mean), priced as
    ``rank_sum_walk_ops`` x ``rank_op_s`` (exact) or n_perm x styles x (N + units) x ``shuffle_s``
    (Monte Carlo: the shuffled labels' one-hot rows and the units' comparisons). Tied units cost more
    on the exact path (about a table each when tied in the middle), up to ``EXACT_MAX_WALK_OPS``."""
    y = np.asarray(y)
    n = len(y)
    npos = np.bincount(y, minlength=n_styles)
    k = np.minimum(npos, n - npos)
    walk = rank_sum_walk_ops(np.arange(2, 2 * n + 1, 2)[None], int(k.max()), np.unique(k)) if n > 1 else 0.0
    which = null_used(y, n_styles, null, walk)
    if which == "exact":
        return walk * rank_op_s, which
    return n_perm * n_styles * (n + units) * shuffle_s, which


def _exact_pvalues(patterns: np.ndarray, gid: np.ndarray, obs: np.ndarray, npos: np.ndarray, n: int) -> np.ndarray:
    """Exact two-sided p [S, U_ok]: one rank-sum count table per tie pattern, read for every style."""
    kmax = int(np.minimum(npos, n - npos).max())
    p = np.empty_like(obs)
    by_size = [(int(k), np.flatnonzero(npos == k)) for k in np.unique(npos)]     # styles of one size share a null
    for g, counts in rank_sum_tables(patterns, kmax, rows=[min(k, n - k) for k, _ in by_size]):
        cols = np.flatnonzero(gid == g)
        for k, styles in by_size:
            p[np.ix_(styles, cols)] = rank_sum_pvalues(counts, k, obs[np.ix_(styles, cols)], n)
    return p


def auroc_ci(x: np.ndarray, y: np.ndarray, n_styles: int, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Logit-DeLong CI [S, U] x 2 of each one-vs-rest AUROC (Newcombe's score interval at 0 / 1),
    the other styles as fixed strata; NaN columns give NaN. See ``interp_gan.findings.auroc``."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = np.full((n_styles, x.shape[1]), np.nan), np.full((n_styles, x.shape[1]), np.nan)
    for s in range(n_styles):
        rest = y != s
        lo[s], hi[s] = auroc_interval(x[y == s], x[rest], level, neg_strata=y[rest])
    return lo, hi


def auroc_bootstrap_ci(x: np.ndarray, y: np.ndarray, n_styles: int, n_boot: int = 500, level: float = 0.95,
                       seed: int = 0, chunk: int = 8, return_nonfinite: bool = False):
    """Percentile CI [S, U] ×2 of the AUROC, resampling images within each style (group sizes kept).

    Collapses to zero width when the groups separate (every resample then has AUROC 1) and
    under-covers at 16 images per style: ``auroc_ci`` is the default interval. Non-finite
    replicates are left out of the quantiles and counted: return_nonfinite=True returns
    (lo, hi, count) with count the number of non-finite replicate values in finite columns."""
    x = np.asarray(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = np.empty((n_boot, len(x)), dtype=np.int64)
    for s in range(n_styles):
        members = np.flatnonzero(y == s)
        idx[:, members] = members[rng.integers(0, len(members), size=(n_boot, len(members)))]
    boots = np.concatenate([_auroc_stack(x[idx[i:i + chunk]], y, n_styles) for i in range(0, n_boot, chunk)])
    alpha = (1 - level) / 2
    bad = ~np.isfinite(x).all(0)
    nonfinite = int((~np.isfinite(boots[:, :, ~bad])).sum())
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanquantile(boots, alpha, axis=0), np.nanquantile(boots, 1 - alpha, axis=0)
    lo[:, bad], hi[:, bad] = np.nan, np.nan
    return (lo, hi, nonfinite) if return_nonfinite else (lo, hi)


def _auroc_stack(xb: np.ndarray, y: np.ndarray, n_styles: int) -> np.ndarray:
    """[b,N,U] resamples whose labels stay y -> [b,S,U] AUROCs."""
    n = xb.shape[1]
    npos = np.bincount(y, minlength=n_styles).astype(np.float64)[None, :, None]
    rs2 = np.matmul(_onehot(y, n_styles).T, _rank2(np.nan_to_num(xb)))      # [b,S,U]
    return (rs2 / 2 - npos * (npos + 1) / 2) / (npos * (n - npos))


# --- the analysis ------------------------------------------------------------------------------

def _unit_tests(x: np.ndarray, y: np.ndarray, n_s: int, n_perm: int, seed: int,
                null: str = "exact") -> dict:
    """AUROC, permutation p and Cohen's d, each [S, U], for one layer's per-image unit means (the
    trained network and the random-init control both call this, so they get the same test), and
    under "null" the ``auroc_pvalues`` info (the null used; why not the exact one)."""
    info: dict = {}
    p = auroc_pvalues(x, y, n_s, n_perm, seed, null=null, info=info)
    return {"auroc": auroc_matrix(x, y, n_s), "p": p, "d": cohens_d(x, y, n_s), "null": info}


def _harvest(subject, data: AnalysisData, layers: Sequence[str], seed: int, what: str) -> dict[str, np.ndarray]:
    """harvest_unit_means over this rank's whole batches, gathered in image order when sharded."""
    shard = shard_indices(len(data), block=data.batch_size)   # whole batches: the same seeds as one pass
    with fail_together(f"style_units: {what}"):
        means = harvest_unit_means(subject, data, layers, seed, shard)
    if rank_and_world()[1] > 1:
        means = _gather_rows(means, layers, len(data))
    return means


def _params_digest(module: nn.Module) -> float:
    with torch.no_grad():
        return float(sum(p.detach().double().abs().sum() for p in module.parameters()))


@register_analysis(
    "style_units", title="Style-selective units", order=30,
    references=("bau2020units", "hanley1982auc", "efron1993bootstrap", "benjamini1995fdr"),
    fast=dict(layers=["blocks.1.conv2"], n_boot=20, n_perm=20))
class StyleUnits(Analysis):
    """Per-unit style selectivity (AUROC, CI, permutation p, BH q) at the given layers.

    layers: names / globs (None = ``hooks.default_layers``: block outputs + decoder convs for a
    StyleNet, every conv layer otherwise). ci: "delong" (logit-DeLong, Newcombe's score
    interval at AUROC 0 / 1; never zero width) or "bootstrap" (percentile, ``n_boot``
    resamples; collapses when the groups separate). null: "exact" (the default) counts every
    labeling of the rank sum (``findings.rank_sum``; no floor) where that costs at most
    ``EXACT_MAX_OPS`` operations an untied table, ``EXACT_MAX_MB`` of tables and, for a layer's
    tie patterns together, ``EXACT_MAX_WALK_OPS`` operations (``null_used``), else falls back to ``n_perm`` Monte
    Carlo label shuffles (the smallest possible p is then 1 / (n_perm + 1)); "permutation" always shuffles;
    the notes say which null was used. min_per_style: the fewest images generated toward any
    one style. control: also run the statistics at random initialisation (``control_seed``,
    default ``seed``) and tabulate both per layer (``style_units_control``).
    """
    sharded = True   # run() splits the images across torch.distributed ranks and gathers (module docstring)

    def __init__(self, *, layers: str | list[str] | None = None, n_boot: int = 500, n_perm: int = 2000,
                 seed: int = 0, min_per_style: int = MIN_SAMPLES_FOR_CI, ci: Literal["delong", "bootstrap"] = "delong",
                 control: bool = True, control_seed: int | None = None, control_draws: int = 3,
                 null: Literal["exact", "permutation"] = "exact") -> None:
        self.layers, self.n_boot, self.n_perm, self.seed, self.null = layers, n_boot, n_perm, seed, null
        self.min_per_style, self.ci, self.control, self.control_seed = min_per_style, ci, control, control_seed
        if isinstance(control_draws, bool) or not isinstance(control_draws, int) or control_draws < 1:
            raise ValueError(f"control_draws must be an integer >= 1, got {control_draws!r}")
        self.control_draws = control_draws

    def check_params(self) -> None:
        if self.null not in ("exact", "permutation"):
            raise ValueError(f"null must be 'exact' or 'permutation', got {self.null!r}")

    def estimate_cost(self, subject, data: AnalysisData, unit: UnitCosts) -> Cost:
        """One pass over the images (1 + control_draws with the control), and each layer's p-values
        in each of those passes, priced by ``null_cost`` with the null the run would pick for these
        labels (``null_used``; untied units assumed)."""
        gate = style_gate_cost(subject, data, self.name, self.min_per_style)
        if gate is not None:
            return gate
        draws = 1 + self.control_draws if self.control else 1
        present, _ = check_styles(subject, data.style_ids, self.name, self.min_per_style)
        lut = np.full(subject.num_styles, -1)
        lut[present] = np.arange(len(present))
        y = lut[data.style_ids.detach().cpu().numpy()]
        G = subject.generator
        try:
            layers = resolve_layers(G, self.layers) if self.layers is not None else default_layers(G)
        except LookupError:
            layers = []
        seconds, used = 0.0, []
        for layer in layers:
            if layer in unit.shapes:
                s, which = null_cost(y, len(present), unit.channels(layer), self.null, self.n_perm,
                                     unit.rank_op_s, unit.shuffle_s)
                seconds, used = seconds + s, used + [which]
        notes = [f"p-values: the {'exact' if 'exact' in used else 'Monte Carlo'} null, {seconds:.2g} s a pass over "
                 f"{len(used)} layers" + (" (untied units; tied ones cost more)" if "exact" in used else "")] if used else []
        return Cost(forwards=len(data) * draws, other_s=draws * seconds, notes=notes)

    def run(self, subject, data: AnalysisData) -> Finding:
        params = self.params()
        self.check_params()
        if self.ci not in ("delong", "bootstrap"):
            raise ValueError(f"ci must be 'delong' or 'bootstrap', got {self.ci!r}")
        present, reason = check_styles(subject, data.style_ids, self.name, self.min_per_style)
        if reason:
            return Finding.skip(self.name, reason, params)
        if self.n_boot < 1 or self.n_perm < 1:
            raise ValueError(f"n_boot and n_perm must be >= 1, got n_boot={self.n_boot}, n_perm={self.n_perm}")
        subject.eval()
        G = subject.generator
        layers = resolve_layers(G, self.layers) if self.layers is not None else default_layers(G)
        if not layers:
            return Finding.skip(self.name, f"{type(G).__name__} has no conv layers; name layers explicitly", params)
        means = _harvest(subject, data, layers, self.seed, "harvest")
        world = rank_and_world()[1]
        notes = [f"layer {n!r} never ran while generating; left out" for n in layers if n not in means]
        if world > 1:
            notes.append(f"sharded over {world} ranks (whole batches of {data.batch_size} images each); the "
                         f"per-image unit means were gathered, so the statistics use all {len(data)} images")
        # tested styles are re-indexed 0..S-1 in the order of `present`
        lut = np.full(subject.num_styles, -1)
        lut[present] = np.arange(len(present))
        y = lut[data.style_ids.detach().cpu().numpy()]
        names = [subject.style_names[s] for s in present]
        absent = [n for i, n in enumerate(subject.style_names) if i not in present]
        if absent:
            notes.append(f"no images were generated toward {absent}; those styles are not tested")
        n_s = len(present)
        frames, per_layer, nonfinite = [], {}, 0
        for li, (layer, x) in enumerate(means.items()):
            bad = ~np.isfinite(x)
            if bad.any():
                notes.append(f"{layer}: {int(bad.sum())} NaN/inf unit activations in {int(bad.any(0).sum())} units "
                             f"(of {x.shape[1]}); their AUROC is NaN and they are not tested")
            t = _unit_tests(x, y, n_s, self.n_perm, self.seed + 7919 * li, self.null)
            if self.ci == "delong":
                lo, hi = auroc_ci(x, y, n_s)
            else:
                lo, hi, nf = auroc_bootstrap_ci(x, y, n_s, self.n_boot, seed=self.seed + 104729 + li,
                                                return_nonfinite=True)
                nonfinite += nf
            oh = _onehot(y, n_s)                                                   # [N,S]
            mean_in, mean_out, _, _ = group_moments(x, y, n_s)                     # [S,U] each
            units = np.arange(x.shape[1])
            per_layer[layer] = t
            frames.append(pd.DataFrame({
                "layer": layer, "unit": np.tile(units, n_s), "style": np.repeat(names, len(units)),
                "auroc": t["auroc"].ravel(), "ci_low": lo.ravel(), "ci_high": hi.ravel(), "p_value": t["p"].ravel(),
                "mean_style": mean_in.ravel(), "mean_other": mean_out.ravel(), "cohens_d": t["d"].ravel(),
                "n_style": np.repeat(oh.sum(0), len(units)).astype(int),
                "n_other": np.repeat((1 - oh).sum(0), len(units)).astype(int)}))
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=["layer", "unit", "style", "auroc", "ci_low", "ci_high", "p_value", "q_value"])
        df.insert(7, "q_value", bh_qvalues(df["p_value"].to_numpy(dtype=float)))
        notes.append("CI: " + ("logit-DeLong 95% interval of the AUROC (Newcombe's score interval where the "
                               "groups separate completely; the other styles as fixed strata)"
                               if self.ci == "delong" else
                               f"percentile bootstrap over images within each style ({self.n_boot} resamples); it "
                               f"has zero width once the groups separate and under-covers at small n"))
        if self.ci == "bootstrap":
            notes.append(f"{nonfinite} bootstrap replicate values were not finite and were left out of the "
                         f"percentiles" if nonfinite else "every bootstrap replicate was finite")
        notes += self._null_notes(df["p_value"].to_numpy(dtype=float), y, n_s,
                                  {layer: t["null"] for layer, t in per_layer.items()})
        tables = {"style_units": df}
        if self.control and per_layer:
            tables["style_units_control"], tables["style_units_control_draws"] = self._control(
                subject, data, list(per_layer), per_layer, df, y, n_s, notes)
        return Finding(self.name, params, tables=tables, notes=notes,
                       provenance={"seed": self.seed, "data_fingerprint": data.fingerprint})

    def _null_notes(self, pv: np.ndarray, y: np.ndarray, n_s: int, used: dict | None = None) -> list[str]:
        """What the p-values' null is, and where a p cannot get small enough (Monte Carlo: the floor
        1/(n_perm+1); exact: 2/C(N, n) for the smallest group n, untied ranks). used: per layer,
        the ``auroc_pvalues`` info (which null, and why not the exact one)."""
        m, n = int(np.isfinite(pv).sum()), len(y)
        sizes = np.bincount(y, minlength=n_s)
        if self.null == "exact" and exact_null_used(y, n_s):
            out = [f"p: exact permutation null (rank-sum DP): all C(N, n) labelings of the {n} images counted, "
                   f"once per tie pattern (midranks); no label shuffles are drawn, so n_perm is not used"]
            k = int(np.minimum(sizes, n - sizes).min())
            smallest = 2 / math.comb(n, k) if k else 1.0     # the two extreme subsets, untied ranks
            if m and smallest > 0.05 / m:
                out.append(f"the smallest possible exact p is 2/C({n}, {k}) = {smallest:.2g}; with {m} tests a lone "
                           f"discovery needs p < 0.05/{m}: generate more images per style")
            mc = {layer: i for layer, i in (used or {}).items() if "walk_ops" in i}
            for layer, i in mc.items():
                out.append(f"{layer}: Monte Carlo null ({self.n_perm} label shuffles) instead: its {i['patterns']} tie "
                           f"patterns (units tied between their extremes, e.g. quantised values) would take "
                           f"{i['walk_ops']:.2g} operations, above {EXACT_MAX_WALK_OPS:.0e} per layer")
            fl = floor_note(pv, self.n_perm, what="unit x style tests", min_share=0.05) if mc else None
            return out + ([fl] if fl else [])
        out = [f"p: Monte Carlo permutation null ({self.n_perm} label shuffles, (1 + #) / (n_perm + 1))"
               + ("" if self.null == "permutation" else
                  f" because the exact null would take {rank_sum_ops(n, sizes):.2g} operations an untied table and "
                  f"{rank_sum_mb(n, sizes):.0f} MB of tables, above {EXACT_MAX_OPS:.0e} operations or "
                  f"{EXACT_MAX_MB:.0f} MB (interp_gan/findings/rank_sum.py)")]
        if m and m / (self.n_perm + 1) > 0.05:
            out.append(f"the smallest possible p is 1/(n_perm+1) = {1 / (self.n_perm + 1):.2g}; with {m} tests a "
                       f"lone discovery needs p < 0.05/{m}: raise n_perm above {20 * m}")
        fl = floor_note(pv, self.n_perm, what="unit x style tests", min_share=0.05)
        return out + ([fl] if fl else [])

    def _control(self, subject, data, layers, trained, df, y, n_s, notes) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The random-init control tables: draw 0's tests per layer (``style_units_control``) and, per
        draw (seed + j), the share of tests at q < 0.05 per layer and in all (``style_units_control_draws``)."""
        seed = self.seed if self.control_seed is None else self.control_seed
        before = _params_digest(subject.generator)
        draw_rows, first, fell_back = [], None, 0
        for j in range(self.control_draws):
            with subject.random_init(seed + j) as ctrl:
                changed = _params_digest(ctrl.generator) != before
                means = _harvest(ctrl, data, layers, self.seed, "random-init control")
                if j == 0:
                    partial = ctrl.random_init_report.notes()     # what the control keeps trained, if anything
            ctl_j = {layer: _unit_tests(means[layer], y, n_s, self.n_perm, self.seed + 7919 * li + 1 + 104729 * j,
                                        self.null)
                     for li, layer in enumerate(layers) if layer in means}
            q_j = bh_qvalues(np.concatenate([t["p"].ravel() for t in ctl_j.values()])) if ctl_j else np.array([])
            fell_back += sum("walk_ops" in t["null"] for t in ctl_j.values())
            if j == 0:
                first = (changed, ctl_j, q_j)
            at = 0
            for layer in layers:
                if layer not in ctl_j:
                    continue
                q = q_j[at:at + ctl_j[layer]["p"].size]
                at += ctl_j[layer]["p"].size
                draw_rows.append({"layer": layer, "draw": j, "seed": seed + j, "units": int(ctl_j[layer]["d"].shape[1]),
                                  "tests": int(np.isfinite(q).sum()), "rate": _frac(q)})
            fin = q_j[np.isfinite(q_j)]
            draw_rows.append({"layer": "all", "draw": j, "seed": seed + j,
                              "units": sum(int(t["d"].shape[1]) for t in ctl_j.values()), "tests": len(fin),
                              "rate": float(np.mean(fin < 0.05)) if len(fin) else np.nan})
        changed, ctl, q_ctl = first
        if not changed:
            notes.append("random-init control: no generator module has reset_parameters, so the control equals "
                         "the trained model and says nothing")
        if fell_back:
            notes.append(f"random-init control: {fell_back} layer draws had tie patterns too costly for the exact "
                         f"null (above {EXACT_MAX_WALK_OPS:.0e} operations) and used {self.n_perm} label shuffles")
        if self.control_draws > 1:
            notes.append(f"random-init control: {self.control_draws} draws (seeds {seed}..{seed + self.control_draws - 1}); "
                         "the verdict compares the trained rate with the draws' spread (docs/statistics.md), the "
                         "per-layer table shows draw 0")
        rows, at = [], 0
        for layer in layers:
            q_tr = df.loc[df["layer"] == layer, "q_value"].to_numpy(dtype=float)
            d_tr = trained[layer]["d"]
            row = dict(layer=layer, units=int(d_tr.shape[1]), tests=int(np.isfinite(q_tr).sum()),
                       frac_q05_trained=_frac(q_tr), frac_q05_control=np.nan,
                       median_abs_d_trained=_median_abs(d_tr), median_abs_d_control=np.nan)
            if layer in ctl:
                q = q_ctl[at:at + ctl[layer]["p"].size]
                at += ctl[layer]["p"].size
                row.update(frac_q05_control=_frac(q), median_abs_d_control=_median_abs(ctl[layer]["d"]),
                           tests_control=int(np.isfinite(q).sum()))
            rows.append(row)
        notes.append(f"random-init control: the same layers, images and tests with the generator re-drawn at "
                     f"random initialisation (seed {seed}; classifiers untouched); BH over the control's own tests")
        notes += partial
        return pd.DataFrame(rows), pd.DataFrame(draw_rows, columns=["layer", "draw", "seed", "units", "tests", "rate"])


def _frac(q: np.ndarray) -> float:
    q = np.asarray(q, dtype=float)
    q = q[np.isfinite(q)]
    return float(np.mean(q < 0.05)) if len(q) else float("nan")


def _median_abs(d: np.ndarray) -> float:
    d = np.abs(np.asarray(d, dtype=float))
    d = d[np.isfinite(d)]
    return float(np.median(d)) if len(d) else float("nan")
