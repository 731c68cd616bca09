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

Uncertainty: a percentile bootstrap CI that resamples images within each style (Efron &
Tibshirani 1993); a two-sided permutation p-value that shuffles the style labels
(|AUROC - 0.5| as the statistic; (1 + #{null >= obs}) / (1 + B), Phipson & Smyth 2010);
Benjamini-Hochberg q-values over all unit × style tests of the run.

Why it is fast: AUROC only depends on ranks. For a unit with no tied values the ranks are a
permutation of 1..N, so the permutation null of its rank sum is the same for every such unit;
it is drawn once (B × N work) and shared. Units with ties (e.g. a ReLU channel that is zero on
several images) share a null with the units whose sorted ranks are the same; constant units
get AUROC 0.5 and p = 1 without shuffling.

Sharded (docs/scaling.md): under an initialised process group (e.g. ``torchrun``) ``run`` is a
collective — call it on every rank. Each rank generates its own whole batches of images
(``shard_indices(N, block=batch_size)``, each batch seeded by its global index as in one
process), the per-image unit means are gathered on every rank in image order, and every rank
computes the same statistics from all N images: the result equals one process's.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata
from torch import Tensor, nn

from interp_gan.analyses.base import Analysis, AnalysisData, register_analysis
from interp_gan.harvest.distributed import all_gather_objects, fail_together, rank_and_world, shard_indices
from interp_gan.harvest.store import shard_batches
from interp_gan.harvest.hooks import TraceDict, resolve_layers, spatial_layers
from interp_gan.findings import Finding
from interp_gan.findings.stats import MIN_SAMPLES_FOR_CI, bh_qvalues, require_samples

__all__ = ["StyleUnits", "default_layers", "fixed_z", "seeded", "unit_means", "harvest_unit_means", "auroc_matrix",
           "auroc_pvalues", "cohens_d", "auroc_bootstrap_ci", "check_styles"]


# --- shared helpers (also used by ablation) ------------------------------------------------------

def default_layers(generator: nn.Module) -> list[str]:
    """The layers to look at when nobody named any.

    A StyleNet-like generator (a ``blocks`` ModuleList of style-modulated blocks): each block's
    output, where the style code has been injected, plus the decoder's conv layers. Any other
    model: every conv layer (``hooks.spatial_layers``).
    """
    blocks = getattr(generator, "blocks", None)
    if isinstance(blocks, nn.ModuleList) and len(blocks):
        names = [f"blocks.{i}" for i in range(len(blocks))]
        dec = getattr(generator, "decoder", None)
        if isinstance(dec, nn.Module):
            names += [f"decoder.{n}" for n in spatial_layers(dec)]
        return names
    return spatial_layers(generator)


def fixed_z(subject, data: AnalysisData, seed: int) -> Tensor | None:
    """data.z, or seeded z for a subject with a latent (so repeated passes see the same noise)."""
    if data.z is not None:
        return data.z
    return subject.sample_z(len(data), seed=seed) if subject.latent_dim else None


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the body under a fixed torch seed without disturbing the caller's RNG state."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def check_styles(subject, style_ids: Tensor, name: str, need: int = MIN_SAMPLES_FOR_CI
                 ) -> tuple[list[int] | None, str | None]:
    """(styles present in the data, None) or (None, reason to skip). Raises when a style has too few images."""
    if subject.num_styles < 2:
        return None, (f"the subject has one style ({', '.join(subject.style_names)}); {name} compares images "
                      f"generated toward different styles and needs a multi-style generator")
    counts = torch.bincount(style_ids.detach().cpu().long(), minlength=subject.num_styles)
    present = [s for s in range(subject.num_styles) if counts[s] > 0]
    if len(present) < 2:
        raise ValueError(f"data.style_ids target only style {[subject.style_names[s] for s in present]}; {name} "
                         f"needs images generated toward at least 2 styles (e.g. style_ids = arange(N) % num_styles)")
    for s in present:
        require_samples(int(counts[s]), f"images generated toward style {subject.style_names[s]!r} "
                                        f"(per style, for {name})", need)
    return present, None


def unit_means(x: Tensor, layer: str) -> Tensor:
    """Layer output -> [N, U] per-image unit activation (mean over space)."""
    if x.dim() == 4:
        return x.float().mean(dim=(2, 3))
    if x.dim() == 2:
        return x.float()
    raise ValueError(f"layer {layer!r} outputs shape {tuple(x.shape)}; expected [N,C,H,W] or [N,C]; "
                     f"name a conv layer instead")


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
    """Cohen's d [S, U]: (mean for y == s - mean for y != s) / pooled sd (the two groups' variances
    averaged). AUROC saturates at 1 once the groups separate; d still says by how much."""
    m_in, m_out, v_in, v_out = group_moments(x, y, n_styles)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (m_in - m_out) / np.sqrt(np.clip((v_in + v_out) / 2, 0, None))
    d[:, ~np.isfinite(np.asarray(x, dtype=np.float64)).all(0)] = np.nan
    return d


def auroc_pvalues(x: np.ndarray, y: np.ndarray, n_styles: int, n_perm: int = 2000, seed: int = 0,
                  max_elems: int = 4_000_000) -> np.ndarray:
    """Two-sided permutation p-values [S, U] for the AUROCs of ``auroc_matrix`` (NaN columns: NaN).

    Shuffling labels against a column's ranks only depends on the multiset of those ranks, so
    the null is computed once per distinct sorted-rank pattern (one pattern for all tie-free
    units) and shared by the units that have it.
    """
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
    rng = np.random.default_rng(seed)
    exceed = np.zeros_like(obs)
    chunk = max(1, min(n_perm, max_elems // (n_styles * r2.shape[1])))
    for start in range(0, n_perm, chunk):
        b = min(chunk, n_perm - start)
        yp = y[rng.permuted(np.tile(np.arange(n), (b, 1)), axis=1)]           # [b,N] shuffled labels
        oh = (yp[:, None, :] == np.arange(n_styles)[None, :, None]).astype(np.float64)  # [b,S,N]
        null = np.abs(np.matmul(oh, patterns.T) - centre2[None, :, None])       # [b,S,G]
        exceed += (null[:, :, gid] >= obs[None]).sum(0)
    p[:, ok] = (1 + exceed) / (1 + n_perm)
    return p


def auroc_bootstrap_ci(x: np.ndarray, y: np.ndarray, n_styles: int, n_boot: int = 500, level: float = 0.95,
                       seed: int = 0, chunk: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Percentile CI [S, U] ×2 of the AUROC, resampling images within each style (group sizes kept)."""
    x = np.asarray(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = np.empty((n_boot, len(x)), dtype=np.int64)
    for s in range(n_styles):
        members = np.flatnonzero(y == s)
        idx[:, members] = members[rng.integers(0, len(members), size=(n_boot, len(members)))]
    boots = np.concatenate([_auroc_stack(x[idx[i:i + chunk]], y, n_styles) for i in range(0, n_boot, chunk)])
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boots, alpha, axis=0), np.quantile(boots, 1 - alpha, axis=0)
    bad = ~np.isfinite(x).all(0)
    lo[:, bad], hi[:, bad] = np.nan, np.nan
    return lo, hi


def _auroc_stack(xb: np.ndarray, y: np.ndarray, n_styles: int) -> np.ndarray:
    """[b,N,U] resamples whose labels stay y -> [b,S,U] AUROCs."""
    n = xb.shape[1]
    npos = np.bincount(y, minlength=n_styles).astype(np.float64)[None, :, None]
    rs2 = np.matmul(_onehot(y, n_styles).T, _rank2(np.nan_to_num(xb)))      # [b,S,U]
    return (rs2 / 2 - npos * (npos + 1) / 2) / (npos * (n - npos))


# --- the analysis ------------------------------------------------------------------------------

@register_analysis(
    "style_units", title="Style-selective units", order=30,
    references=("bau2020units", "hanley1982auc", "efron1993bootstrap", "benjamini1995fdr"),
    fast=dict(layers=["blocks.1.conv2"], n_boot=20, n_perm=20))
class StyleUnits(Analysis):
    """Per-unit style selectivity (AUROC, bootstrap CI, permutation p, BH q) at the given layers.

    layers: names / globs (None = ``default_layers``: block outputs + decoder convs for a
    StyleNet, every conv layer otherwise). n_boot / n_perm: bootstrap resamples and label
    shuffles (the smallest possible p is 1 / (n_perm + 1)). min_per_style: the fewest images
    generated toward any one style.
    """
    sharded = True   # run() splits the images across torch.distributed ranks and gathers (module docstring)

    def __init__(self, *, layers: str | list[str] | None = None, n_boot: int = 500, n_perm: int = 2000,
                 seed: int = 0, min_per_style: int = MIN_SAMPLES_FOR_CI) -> None:
        self.layers, self.n_boot, self.n_perm, self.seed = layers, n_boot, n_perm, seed
        self.min_per_style = min_per_style

    def run(self, subject, data: AnalysisData) -> Finding:
        params = self.params()
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
        shard = shard_indices(len(data), block=data.batch_size)   # whole batches: the same seeds as one pass
        with fail_together("style_units: harvest"):
            means = harvest_unit_means(subject, data, layers, self.seed, shard)
        world = rank_and_world()[1]
        if world > 1:
            means = _gather_rows(means, layers, len(data))
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
        frames = []
        for li, (layer, x) in enumerate(means.items()):
            bad = ~np.isfinite(x)
            if bad.any():
                notes.append(f"{layer}: {int(bad.sum())} NaN/inf unit activations in {int(bad.any(0).sum())} units "
                             f"(of {x.shape[1]}); their AUROC is NaN and they are not tested")
            auc = auroc_matrix(x, y, n_s)
            p = auroc_pvalues(x, y, n_s, self.n_perm, self.seed + 7919 * li)
            lo, hi = auroc_bootstrap_ci(x, y, n_s, self.n_boot, seed=self.seed + 104729 + li)
            oh = _onehot(y, n_s)                                                   # [N,S]
            mean_in, mean_out, _, _ = group_moments(x, y, n_s)                     # [S,U] each
            d = cohens_d(x, y, n_s)
            units = np.arange(x.shape[1])
            frames.append(pd.DataFrame({
                "layer": layer, "unit": np.tile(units, n_s), "style": np.repeat(names, len(units)),
                "auroc": auc.ravel(), "ci_low": lo.ravel(), "ci_high": hi.ravel(), "p_value": p.ravel(),
                "mean_style": mean_in.ravel(), "mean_other": mean_out.ravel(), "cohens_d": d.ravel(),
                "n_style": np.repeat(oh.sum(0), len(units)).astype(int),
                "n_other": np.repeat((1 - oh).sum(0), len(units)).astype(int)}))
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=["layer", "unit", "style", "auroc", "ci_low", "ci_high", "p_value", "q_value"])
        df.insert(7, "q_value", bh_qvalues(df["p_value"].to_numpy(dtype=float)))
        m = int(np.isfinite(df["p_value"].to_numpy(dtype=float)).sum())
        if m and m / (self.n_perm + 1) > 0.05:
            notes.append(f"the smallest possible p is 1/(n_perm+1) = {1 / (self.n_perm + 1):.2g}; with {m} tests a "
                         f"lone discovery needs p < 0.05/{m}: raise n_perm above {20 * m}")
        return Finding(self.name, params, tables={"style_units": df}, notes=notes,
                       provenance={"seed": self.seed, "data_fingerprint": data.fingerprint})
