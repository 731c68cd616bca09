"""Causal ablation: switch style units off (or force them on) and measure what changes.

    f = build_analysis("ablation", layer="blocks.3", ks=(1, 2, 4, 8), n_random=19).run(subject, data)
    f.tables["ablation"]   # layer, units, intervention, target, effect, ci_low, ci_high, n, k, baseline,
                           # style, measure, n_sets, p_random, q_random, beyond_random, p_zero, q_zero, ...

For each target style the units of a layer are ranked by their selectivity for that style
(AUROC of the per-image mean activation, ties at AUROC 1 broken by Cohen's d; see
``style_units``), and the top k units are ablated together, for k in ``ks`` (cumulative: the
top 2 include the top 1). Cross-fitted (``cross_fit=True``, Chernozhukov et al.,
Econometrics J. 2018): the images are split in two halves (stratified by style, seeded); the
units are ranked on one half and their effect measured on the other, and the other way round,
so every image is measured once with units chosen without it (ranking and measuring on the
same images rewards units whose activation happens to be high on exactly those images). Each
image is generated twice, with and without the edit, with the same content, z and random
state, so the effect is a paired difference, averaged over images with a studentized
(bootstrap-t) CI (Efron & Tibshirani 1993). The same is done for ``n_random`` (default 19)
baseline unit sets of the same size.

The baseline sets:

- ``baseline="shuffled"`` (the default): each baseline set re-runs the whole selection on the
  images relabelled within each cross-fitting half (``shuffled_selection``): a uniformly random
  permutation perm of the images of each half (``shuffled_roles``), image perm[i] taking image i's
  part. Its unit set for half f is the top k by the SAME ranking (AUROC, then Cohen's d) for the
  same style on the other half under the relabelled styles, and it is measured on perm[i] for each
  image i the selected set of half f is measured on, rendered toward the style image i is rendered
  toward (the target for zero / mean ablation and for ``n_measure``; an image's own style for
  insertion), each image paired with its own unedited pass. A baseline set is then as coherent a
  group of units as a selected one (units that rise and fall together), chosen for no style.
  Why it is exchangeable with the selected set: the selected set's effect is a fixed function T
  of the images (their unit activations and what an edit does to them, rendered toward a given
  style), the style labels and the halves; a baseline set's is T of the same images permuted
  within each half. Under the null "the images are exchangeable within a half whatever their
  style label" (their contents are drawn independently of the labels, and a unit's activation and
  an edit's effect do not depend on which style an image was labelled with) the permuted images
  have the same joint law as the originals, and the permutations are uniform draws from a group
  (the within-half permutations), so the selected set and the baseline sets are exchangeable and
  p_random is exact (``shuffled_roles``; a randomisation test). Ranking on relabelled labels but
  measuring on the style's own images (the construction before this one) is not: the two halves
  are coupled. The selected set of half 1 is ranked on half 0 with half 0's style images as the
  positives, and those are the very images the selected set of half 0 is measured on; when the
  two halves' sets share a unit, it was picked for being high on exactly the images it is measured
  on in half 0 (and the same the other way round), so the halves' effects are positively
  correlated and the selected set's effect spreads more than a baseline set's whose positives are
  other images. On a null with independent units whose effect is their activation (10000 data
  sets, tests/statistics/test_ablation_stats.py), P(p_random <= 0.05 / 0.10 / 0.25 / 0.50) was
  0.0706 / 0.1252 / 0.2621 / 0.4858 that way and 0.0491 / 0.0976 / 0.2423 / 0.4995 with the
  relabelled images (binomial SE 0.0022 / 0.0030 / 0.0043 / 0.0050). With explicit ``units``
  there is no ranking to repeat: the baseline is "random" (noted).
- ``baseline="random"``: k units drawn uniformly from ALL units of the layer, one set for both
  halves, measured on the selected set's images (a random set may contain selected units:
  excluding them makes p_random anti-conservative, 0.10 rejections at 0.05 on a null model with
  independent units). When the units of a layer are correlated this baseline is anti-conservative
  too: a ranking picks coherent groups whose joint ablation varies more than a uniform set's, so
  the selected set beats the random sets too often. On the correlated null of
  tests/statistics/test_ablation_stats.py (400 data sets) P(p_random <= 0.05 / 0.10 / 0.25) was
  0.0775 / 0.135 / 0.3025 with uniform sets (shuffled sets: docs/statistics.md).

Beyond random (Morcos et al., ICLR 2018, compare against random ablations): a one-sided rank
test of the selected set's effect among the baseline sets' effects,
p_random = (1 + #{baseline sets with an effect at least as large}) / (n_random + 1), "large"
in the expected direction (a drop of the style's probability / log-odds and a rise of the
Gram distance for zero / mean ablation, the reverse for insertion; |effect| for concept
fractions). It is exact under exchangeability of the selected set with the baseline sets; with 19
sets its floor is 0.05. q_random is its Benjamini-Hochberg q over all selected-set rows and
``beyond_random`` = q_random <= 0.05 (a row at the floor among many rows at chance is not
beyond random: 36 rows give about 2 at p <= 0.05 under no effect; raise n_random so that the
rows that matter can go below the floor). p_zero: a two-sided sign-flip permutation
test of the mean paired difference against 0 (exact, over all 2^n sign patterns, for n <= 20
paired values; else n_perm random flips), q_zero its BH q over the
selected-set rows. (Bau et al., "GAN Dissection", ICLR 2019, and "Understanding the role of
individual units in a deep neural network", PNAS 2020, ablate and insert units.)

Sequential baseline sets (``n_random_max`` > ``n_random``; off by default, and then every number is
the fixed rule's): every selected-set row is ranked among the first ``n_random`` sets as above; a
row with fewer than ``h`` sets at least as large goes on to further sets, one at a time, until ``h``
are (p_random = h / n_random_used) or ``n_random_max`` were measured (p_random = (1 + #) / (1 +
n_random_max), floor 1/(1 + n_random_max)); Besag & Clifford (1991), ``findings/sequential.py``. Set
j >= n_random of a layer, style and k is drawn from a generator seeded by (seed, layer, style, k, j)
alone (a shuffled set's relabelling by (seed, layer, style, j), ``roles_rng``, the same for every k,
as for the first n_random sets) and measured once for all of that group's measure rows still open,
so each row's p is its one-at-a-time p. ``n_random_used`` says how many sets each p_random read; the
baseline rows and random_sd / random_low / random_high describe the first ``n_random``.

Interventions: ``zero`` sets the units to 0; ``mean`` to their mean over all images and
positions; ``insert`` forces them to their top-``quantile`` (0.99) value everywhere, taken
tie-aware: the k-th largest sampled activation with k = ceil((1 - quantile) n), an observed
value (a unit that saturates at one value on its top 1% gets exactly that value, and
{activation >= value} holds at least the quantile's mass, ties included). zero / mean are
measured on images generated toward the target style (does the style go away?); insert on
images generated toward the other styles (does the style appear?). With many styles few images
are generated toward each (multistyle26: 256 / 26 = 10, 5 per half); ``n_measure`` renders a
fixed sample of content images toward the target instead (style-conditional subjects take any
style input), so every target is measured on the same n_measure images.

What is measured, per image (targets):
- ``p(style=<s>)``: the independent RGB style classifier's softmax probability
  (``subject.classifier``), and ``p_texture(style=<s>)`` from ``subject.texture_classifier``;
- ``log_odds(style=<s>)`` / ``log_odds_texture(style=<s>)``: the same classifiers' log-odds of
  style s, log p_s - log(1 - p_s) = logit_s - logsumexp of the other logits. A confident
  classifier (p = 0.9999) hides an edit in p (it moves by 1e-4) but not in the log-odds;
- ``gram_distance(<s>)``: the Gram distance in ``subject.feature_net`` to the mean Gram of
  real images of style s (``data.style_images`` / ``data.style_labels``), as in the style
  loss of Gatys et al. (CVPR 2016); larger = further from the style;
- ``fraction(<concept>)``: the fraction of pixels in each concept mask (``concepts.py``).
A measure the subject or data cannot provide is left out with a note.

Cost (``estimate_cost``): one pass for the unit statistics, then one pass over a style's images
per unit set (the selected one and ``n_random`` baseline ones -- with sequential sets
``n_random_max``, the worst case -- per set size, per target style;
a shuffled set also has its own unedited pass over its relabelled images, once per layer and target
style for every k, and one ranking on the unit means); every image is judged (style
classifiers, Grams, concept masks), and each pass, per half and batch, pays a call's fixed cost.
``budget_s``: over it, fewer sequential sets (``n_random_max`` back to ``n_random``: off), fewer
random sets (down to 19, so p_random can still reach 0.05), then an even sample of the set sizes
(at least 2); the notes say so.
"""
from __future__ import annotations

import contextlib
import math
import zlib
from collections import defaultdict
from typing import Callable, Literal, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from interp_gan.analyses.base import Analysis, AnalysisData, register_analysis
from interp_gan.analyses.cost import Cost, UnitCosts, evenly, halve_to, size_to_budget, unit_costs_for
from interp_gan.harvest.hooks import Edit, Trace, TraceDict, ablate, default_unit_layer, insert, resolve_layers
from interp_gan.analyses.common import check_styles, style_gate_cost, fixed_z, log_odds, seeded, unit_means
from interp_gan.analyses.units.style_units import auroc_matrix, cohens_d
from interp_gan.findings.studentized import studentized_bounds
from interp_gan.findings import Finding
from interp_gan.findings.sequential import (DEFAULT_H, coarse_h_note, expected_null_draws,
                                            sequential_pvalues)
from interp_gan.findings.stats import MIN_SAMPLES_FOR_CI, bh_qvalues, floor_note

__all__ = ["Ablation", "style_measures", "insertion_value", "random_rank_pvalue", "select_units",
           "shuffled_roles", "role_labels", "roles_rng", "shuffled_selection",
           "signflip_pvalue", "bootstrap_t_mean_ci", "crossfit_folds", "expected_direction", "oriented",
           "later_set_rng", "sequential_random_p"]

Measure = Callable[[Tensor], dict[str, np.ndarray]]   # images -> {kind: [n, K]}
COLUMNS = ["layer", "units", "intervention", "target", "effect", "ci_low", "ci_high", "n", "k", "baseline",
           "style", "measure", "n_sets", "direction", "p_zero", "q_zero", "p_random", "q_random", "beyond_random",
           "random_sd", "random_low", "random_high", "units_fold0", "units_fold1", "baseline_sets", "n_random_used"]
ALPHA = 0.05


# --- statistics (pure numpy) -------------------------------------------------------------------

def insertion_value(samples: np.ndarray, quantile: float) -> np.ndarray:
    """Tie-aware top-quantile value of each row of samples [U, n]: the k-th largest value with
    k = ceil((1 - quantile) n), an observed value (no interpolation between a saturated value
    and the next lower one); {x >= value} holds at least k samples, ties included."""
    x = np.sort(np.asarray(samples, dtype=np.float64), axis=-1)
    n = x.shape[-1]
    k = min(n, max(1, int(np.ceil((1 - quantile) * n - 1e-9))))
    return x[..., n - k]


def crossfit_folds(y: np.ndarray, seed: int) -> np.ndarray:
    """Fold 0 / 1 for every image, half of each style in each (seeded)."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(y), dtype=int)
    for s in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == s))
        fold[idx[1::2]] = 1
    return fold


def select_units(x: np.ndarray, y: np.ndarray, n_styles: int, style: int, k: int) -> np.ndarray:
    """The k units of per-image means x [N, U] most selective for ``style`` (index into 0..n_styles-1
    of y): AUROC, ties broken by Cohen's d (the ranking ``ablation`` and ``style_edits`` use)."""
    hit = (np.asarray(y) == style).astype(int)    # style against the rest: row 1 of the 2-group matrices
    auc = np.nan_to_num(auroc_matrix(x, hit, 2)[1], nan=-np.inf)
    d = np.nan_to_num(cohens_d(x, hit, 2)[1], nan=-np.inf)
    return np.lexsort((-d, -auc))[:k]


def shuffled_roles(fold: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One "shuffled" baseline relabelling: perm [N], a uniformly random permutation of the images
    within each cross-fitting half (fold [N]). Image perm[i] plays image i's part: it takes image
    i's style label for the ranking (``role_labels``), and where the selected set is measured on
    image i, rendered toward some style, the baseline set is measured on image perm[i] rendered
    toward that same style. The baseline set is the whole selection procedure run on the relabelled
    images, so under "the images' activations and edit effects do not depend on their style label"
    (rows exchangeable within a half) it is exchangeable with the selected set (see the module
    docstring, "The baseline sets")."""
    fold = np.asarray(fold)
    perm = np.arange(len(fold))
    for f in np.unique(fold):
        idx = np.flatnonzero(fold == f)
        perm[idx] = rng.permutation(idx)
    return perm


def role_labels(y: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """The style labels after ``shuffled_roles``: image perm[i] gets y[i]."""
    y = np.asarray(y)
    lab = np.empty_like(y)
    lab[np.asarray(perm)] = y
    return lab


def shuffled_selection(x: np.ndarray, y: np.ndarray, fold: np.ndarray, rank_on: Sequence[np.ndarray], n_styles: int,
                       style: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """One "shuffled" baseline, the construction ``ablation`` and ``style_edits`` share: the images
    relabelled within each half of fold (``shuffled_roles``), and the selection re-run on them.
    Returns (perm, labels, orders): the relabelling, the relabelled style labels (``role_labels``),
    and for each mask of rank_on (the images a half's set is ranked on) every unit in the order of
    ``select_units`` for ``style`` under the relabelled labels (a set of size k is its first k). The
    caller measures set f on perm[i] for each image i the selected set of half f is measured on,
    rendered toward the style image i is rendered toward."""
    perm = shuffled_roles(fold, rng)
    lab = role_labels(y, perm)
    n_units = np.asarray(x).shape[1]
    return perm, lab, [select_units(x[r], lab[r], n_styles, style, n_units) for r in rank_on]


def roles_rng(seed: int, layer: str, style: int, j: int) -> np.random.Generator:
    """The generator of shuffled baseline set j's relabelling for one layer and target style: seeded
    by those alone, so set j is the same for every set size k (the baseline sets are cumulative in
    k as the selected ones are) and whatever else is drawn (sequential sets included)."""
    return np.random.default_rng([int(seed), 61, zlib.crc32(layer.encode()), int(style), int(j)])


def expected_direction(kind: str, intervention: str) -> int:
    """+1 / -1: the sign an effect has when the units carry the style; 0: either (|effect|)."""
    removes = intervention in ("zero", "mean")
    if kind in ("classifier", "texture_classifier", "log_odds", "log_odds_texture"):
        return -1 if removes else 1
    if kind == "gram":
        return 1 if removes else -1
    return 0


def random_rank_pvalue(selected: float, random_effects: np.ndarray, direction: int) -> float:
    """One-sided p = (1 + #{random >= selected}) / (R + 1) on direction * effect (|effect| for 0)."""
    r = np.asarray(random_effects, dtype=np.float64)
    if direction == 0:
        t, tr = abs(selected), np.abs(r)
    else:
        t, tr = direction * selected, direction * r
    return float((1 + np.sum(tr >= t)) / (len(r) + 1))


def oriented(effect, direction: int) -> np.ndarray:
    """The effect on the scale p_random ranks: direction * effect, |effect| for direction 0 (larger =
    more of what the units are expected to do)."""
    e = np.asarray(effect, dtype=np.float64)
    return np.abs(e) if direction == 0 else direction * e


def later_set_rng(seed: int, layer: str, style: int, k: int, j: int) -> np.random.Generator:
    """The generator of baseline set j (j >= n_random: a sequential set) of one row group (layer,
    target style, k): seeded by those alone, so set j is the same whatever else is drawn, in what
    order or in what batch, and a row's sequential p is its one-at-a-time p."""
    return np.random.default_rng([int(seed), 59, zlib.crc32(layer.encode()), int(style), int(k), int(j)])


def sequential_random_p(effects: np.ndarray, directions: Sequence[int], first: np.ndarray,
                        later: Callable[[int], np.ndarray], *, h: int, n_max: int):
    """Sequential p_random (``findings/sequential.py``, Besag & Clifford 1991) for rows that share
    their baseline sets (the measures of one layer, style and k): effects [rows], first [rows,
    n_random] the first sets' effects, ``later(j)`` [rows] the effects of set j >= n_random (drawn
    once, read by every row still open). Ranks ``oriented`` effects, as ``random_rank_pvalue`` does,
    so with n_max = n_random it is that p exactly. Returns ``SequentialP`` (draws oriented)."""
    d = np.asarray(directions, dtype=int)
    obs = np.array([oriented(e, di) for e, di in zip(np.asarray(effects, np.float64), d)])
    first = np.asarray(first, dtype=np.float64).reshape(len(obs), -1)
    first_o = np.stack([oriented(f, di) for f, di in zip(first, d)]) if len(obs) else first

    def draw(idx: np.ndarray, start: int, count: int) -> np.ndarray:
        out = np.empty((len(idx), count))
        for b in range(count):
            e = np.asarray(later(start + b), dtype=np.float64)
            out[:, b] = [oriented(e[i], d[i]) for i in idx]
        return out
    # one set at a time: each set is its own generator passes, so a larger batch only adds discarded sets
    return sequential_pvalues(obs, first_o, draw, h=h, n_max=n_max, batch=1)

SIGNFLIP_EXACT_MAX_N = 20   # up to 2^19 sign patterns (half, by symmetry): 7-17 ms, 4 MB


def _signflip_sums(v: np.ndarray) -> np.ndarray:
    """sum(s * v) for every sign pattern s with s[0] = +1 (the other half are their negations):
    [2^(n-1)], built by doubling, one value at a time."""
    sums = v[:1].copy() if len(v) else np.zeros(1)
    for x in v[1:]:
        sums = np.concatenate([sums + x, sums - x])
    return sums


def signflip_pvalue(v: np.ndarray, n_perm: int, seed: int) -> float:
    """Two-sided sign-flip permutation p of mean(v) = 0 for paired differences v (symmetric null).

    n <= ``SIGNFLIP_EXACT_MAX_N``: exact, #{s: |sum(s v)| >= |sum(v)|} / 2^n over all sign patterns
    (no floor; the smallest p is 2 / 2^n; sums within 1e-12 sum|v| of the observed count as ties,
    a margin far above their rounding error). Larger n: n_perm Monte Carlo flips, (1 + #) / (1 + n_perm).
    """
    v = np.asarray(v, dtype=np.float64)
    obs = abs(v.sum())
    if not np.isfinite(obs):
        return float("nan")
    if len(v) <= SIGNFLIP_EXACT_MAX_N:
        return float(np.mean(np.abs(_signflip_sums(v)) >= obs - 1e-12 * np.abs(v).sum()))
    rng = np.random.default_rng(seed)
    signs = rng.integers(0, 2, size=(n_perm, len(v))) * 2 - 1
    null = np.abs(signs @ v)
    return float((1 + np.sum(null >= obs * (1 - 1e-12))) / (n_perm + 1))


def bootstrap_t_mean_ci(v: np.ndarray, n_boot: int, seed: int, level: float = 0.95) -> tuple[float, float, int]:
    """Studentized (bootstrap-t) CI of the mean (Efron & Tibshirani 1993, ch. 12.5) and the number
    of resamples without spread (t = +-inf or 0 / 0: kept as the extremes they are, Student's t
    bound on a side they reach; ``findings.studentized``); [mean, mean] when the values all tie. The
    percentile and BCa intervals under-cover at n = 16 (0.91 measured); this one covers 0.94-0.95
    there, and near nominal with many tied values (tests/statistics/test_studentized.py)."""
    v = np.asarray(v, dtype=np.float64)
    n = len(v)
    est = v.mean()
    se = v.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
    if not np.isfinite(est) or not np.isfinite(se):
        return float("nan"), float("nan"), 0
    if se == 0:
        return float(est), float(est), 0
    rng = np.random.default_rng(seed)
    b = v[rng.integers(0, n, size=(n_boot, n))]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (b.mean(1) - est) / (b.std(1, ddof=1) / np.sqrt(n))
    return studentized_bounds(est, se, t, df=n - 1, level=level)


_LOG_ODDS = {"classifier": "log_odds", "texture_classifier": "log_odds_texture"}





@torch.no_grad()
def judged_by_measures(subject, data: AnalysisData, images: float) -> dict[str, float]:
    """``Cost`` counts for ``images`` generated images measured by ``style_measures``: each goes
    through the style classifiers, and through the feature net where real style images give
    Gram references."""
    grams = subject.feature_net is not None and data.style_images is not None and data.style_labels is not None
    return {"classified": images, "grammed": images if grams else 0.0, "concepts": images}


def style_measures(subject, data: AnalysisData, notes: list[str]) -> tuple[Measure, dict[str, list[str]]]:
    """The per-image measures this subject and data allow: (fn, {kind: column names}).

    Kinds: ``classifier`` / ``texture_classifier`` ([n, S] softmax), ``log_odds`` /
    ``log_odds_texture`` ([n, S] log-odds of each style), ``gram`` ([n, S] distance to
    each style's mean real Gram; NaN for styles without real images), ``concepts`` ([n, K]).
    """
    S, names = subject.num_styles, subject.style_names
    cols: dict[str, list[str]] = {}
    for kind in ("classifier", "texture_classifier"):
        if getattr(subject, kind) is not None:
            cols[kind] = list(names)
            cols[_LOG_ODDS[kind]] = list(names)
        else:
            notes.append(f"no subject.{kind}: its style probability is not measured")
    refs: list[Tensor] | None = None
    f = subject.feature_net
    if f is None or data.style_images is None or data.style_labels is None:
        why = ("no style feature network" + (f" ({subject.meta['feature_net_missing']})"
                                              if subject.meta.get("feature_net_missing") else "")
               if f is None else "no real style images")
        notes.append(f"{why}: the Gram style distance is not measured")
    else:
        sums: list[list[Tensor] | None] = [None] * S                         # per style, per scale [C,C]
        for i in range(0, len(data.style_images), data.batch_size):
            imgs, labels = data.style_images[i:i + data.batch_size], data.style_labels[i:i + data.batch_size]
            g = f.grams(imgs.to(subject.device))
            for s in range(S):
                m = (labels == s).to(subject.device)
                if m.any():
                    part = [gl[m].sum(0) for gl in g]
                    sums[s] = part if sums[s] is None else [a + b for a, b in zip(sums[s], part)]
        counts = torch.bincount(data.style_labels.cpu().long(), minlength=S)
        like = next((x for x in sums if x is not None), None)
        if like is None:
            notes.append("no real style image matches the subject's styles: the Gram distance is not measured")
        else:
            missing = [names[s] for s in range(S) if sums[s] is None]
            if missing:
                notes.append(f"no real images of {missing}: no Gram distance for those styles")
            refs = [torch.stack([sums[s][l] / int(counts[s]) if sums[s] is not None
                                 else torch.full_like(like[l], float("nan")) for s in range(S)])
                    for l in range(len(like))]                                  # per scale [S,C,C]
            cols["gram"] = list(names)
    concept_fn = None
    try:
        from interp_gan.analyses.units.concepts import concept_masks
        concept_fn = concept_masks
        with torch.no_grad():
            _, cnames = concept_masks(data.content[:1])
        cols["concepts"] = list(cnames)
    except ImportError:
        notes.append("interp_gan.analyses.units.concepts is not available: concept fractions are not measured")

    def measure(images: Tensor) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for kind in ("classifier", "texture_classifier"):
            if kind in cols:
                logits = getattr(subject, kind)(images).float()
                out[kind] = logits.softmax(1).cpu().numpy()
                out[_LOG_ODDS[kind]] = log_odds(logits).cpu().numpy()
        if refs is not None:
            g = f.grams(images)
            d = sum(((gl[:, None] - r[None]) ** 2).flatten(2).sum(2) for gl, r in zip(g, refs))  # [n,S]
            out["gram"] = d.float().cpu().numpy()
        if concept_fn is not None:
            masks, _ = concept_fn(images)
            out["concepts"] = masks.float().mean(dim=(2, 3)).cpu().numpy()
        return out

    return measure, cols


def _targets(cols: dict[str, list[str]], s: int, name: str) -> list[tuple[str, str, int]]:
    """(target label, measure kind, column) for target style s."""
    out = []
    if "classifier" in cols:
        out.append((f"p(style={name})", "classifier", s))
        out.append((f"log_odds(style={name})", "log_odds", s))
    if "texture_classifier" in cols:
        out.append((f"p_texture(style={name})", "texture_classifier", s))
        out.append((f"log_odds_texture(style={name})", "log_odds_texture", s))
    if "gram" in cols:
        out.append((f"gram_distance({name})", "gram", s))
    for j, c in enumerate(cols.get("concepts", [])):
        out.append((f"fraction({c})", "concepts", j))
    return out


@torch.no_grad()
def _unit_stats(subject, data: AnalysisData, z: Tensor | None, layers: list[str], quantile: float, seed: int,
                max_per_batch: int = 1024) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{layer: (per-image unit means [N,U], unit mean [U], unit top-quantile value [U])} on unedited
    images (``insertion_value``: tie-aware, an observed value)."""
    per_image, total, count, samples = defaultdict(list), {}, {}, defaultdict(list)
    g = torch.Generator().manual_seed(seed)
    for b, (sl, content, ids, _) in enumerate(data.batches()):
        with TraceDict(subject.generator, layers) as td, seeded(seed + b):
            subject.generate(content, ids, None if z is None else z[sl])
        for n in layers:
            o = td[n].output
            if o is None:
                raise ValueError(f"layer {n!r} did not run while generating; name a layer on the forward path "
                                 f"(e.g. one of {', '.join(resolve_layers(subject.generator, '*')[:6])})")
            o = o.float()
            flat = o.transpose(0, 1).reshape(o.shape[1], -1).cpu()               # [U, n·H·W]
            per_image[n].append(unit_means(o, n).cpu())
            total[n] = total.get(n, 0) + flat.sum(1)
            count[n] = count.get(n, 0) + flat.shape[1]
            keep = torch.randperm(flat.shape[1], generator=g)[:max_per_batch]
            samples[n].append(flat[:, keep])
    return {n: (torch.cat(per_image[n]).double().numpy(), (total[n] / count[n]).double().numpy(),
                insertion_value(torch.cat(samples[n], 1).double().numpy(), quantile)) for n in layers}


@torch.no_grad()
def _measured_pass(subject, data: AnalysisData, z: Tensor | None, sel: Tensor, measure: Measure, seed: int,
                   layer: str | None = None, edit: Edit | None = None,
                   toward: int | Tensor | None = None) -> dict[str, np.ndarray]:
    """Generate the images ``sel`` (optionally with ``edit`` at ``layer``) and measure them.

    toward: a style index to render every image toward (the subject's style input set to it), or
    a tensor of one style per image of ``sel``; None = each image's own style (``data.style_ids``). Batching and seeds depend only on ``sel``
    and ``toward``, so an edited pass is paired image by image with the unedited pass.
    """
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for b, i in enumerate(range(0, len(sel), data.batch_size)):
        idx = sel[i:i + data.batch_size]
        with contextlib.ExitStack() as stack:
            if edit is not None:
                stack.enter_context(Trace(subject.generator, layer, retain_output=False, edit=edit))
            stack.enter_context(seeded(seed + b))
            if toward is None:
                style = data.style_ids[idx]
            elif isinstance(toward, Tensor):
                style = toward[i:i + data.batch_size].to(data.style_ids.device, data.style_ids.dtype)
            else:
                style = torch.full_like(data.style_ids[idx], toward)
            images = subject.generate(data.content[idx], style, None if z is None else z[idx])
        for kind, v in measure(images).items():
            parts[kind].append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


@register_analysis(
    "ablation", title="Causal ablation", order=40,
    references=("bau2019gandissect", "bau2020units", "morcos2018single", "efron1993bootstrap"),
    fast=dict(layer="blocks.1.conv2", ks=(1, 2), n_random=2, n_boot=20))
class Ablation(Analysis):
    """Ablate (or insert) the top-k style units per style against random unit sets of the same size.

    layer: one layer name or a list (None = ``hooks.default_unit_layer``). units: an explicit
    list of unit indices to ablate (then k = len(units); no selection, no cross-fitting);
    otherwise ``from_style_units`` ranks the units per style by AUROC. intervention: "zero" |
    "mean" | "insert" (``quantile`` sets the inserted value). ks: set sizes (cumulative top-k).
    n_random: baseline sets per k (>= 19 so that p_random can reach 0.05). baseline: "shuffled"
    (the selection re-run on images relabelled within each half, measured on the relabelled
    images; module docstring) or "random" (uniform
    k-sets; always so for explicit units); the ``baseline_sets`` column and the notes say which
    ran. cross_fit: rank on
    one half of the images, measure on the other, and the other way round. n_boot: bootstrap-t
    bootstrap resamples; n_perm: sign flips for p_zero. styles: target style names (None =
    every style in the data). n_measure: None = measure zero / mean ablation on the images
    generated toward the target style (about N / n_styles: few when there are many styles) and
    insertion on the other styles' images; an integer = measure on that many content images (half
    from each cross-fitting half, seeded, the same images for every target), zero / mean rendered
    toward the target style (the subject's style input set to it), insertion in their own styles.
    n_random_max, h: sequential baseline sets past n_random, up to n_random_max, for the selected-set
    rows that fewer than h of the sets so far match (None: n_random, off; the numbers are then the
    fixed rule's exactly).
    """

    def __init__(self, *, layer: str | list[str] | None = None, units: list[int] | None = None,
                 from_style_units: bool = True, intervention: Literal["zero", "mean", "insert"] = "zero",
                 quantile: float = 0.99, ks: Sequence[int] = (1, 2, 4, 8, 16), n_random: int = 19,
                 n_boot: int = 500, n_perm: int = 2000, cross_fit: bool = True, styles: list[str] | None = None,
                 seed: int = 0, min_per_style: int = MIN_SAMPLES_FOR_CI, budget_s: float | None = None,
                 baseline: Literal["shuffled", "random"] = "shuffled", n_measure: int | None = None,
                 n_random_max: int | None = None, h: int = DEFAULT_H) -> None:
        self.layer, self.units, self.from_style_units = layer, units, from_style_units
        self.n_measure = n_measure
        self.baseline = baseline
        self.intervention, self.quantile, self.ks, self.n_random = intervention, quantile, ks, n_random
        self.n_boot, self.n_perm, self.cross_fit = n_boot, n_perm, cross_fit
        self.styles, self.seed, self.min_per_style = styles, seed, min_per_style
        self.budget_s = budget_s   # seconds: over it, fewer random sets (down to 19), then fewer set sizes
        # sequential baselines (findings/sequential.py): a selected set with fewer than h baseline sets at
        # least as large among the first n_random is ranked among more, up to n_random_max (None: off)
        self.n_random_max, self.h = n_random_max, h

    # -- cost (analyses/cost.py) ----------------------------------------------------------------
    def _targets(self, subject, data: AnalysisData) -> list[int]:
        counts = torch.bincount(data.style_ids.detach().cpu().long(), minlength=subject.num_styles)
        return [s for s in range(subject.num_styles) if counts[s] > 0
                and (self.styles is None or subject.style_names[s] in self.styles)]

    def _passes(self, subject, data: AnalysisData, unit: UnitCosts, layers: list[str], n_random: int,
                ks: list[int], n_styles: int | None = None) -> Cost:
        """One pass for the unit statistics, then per layer and target style: the unedited images
        and, per set size, the selected set and n_random random sets (each a pass over the style's
        images: N_s for zero / mean, N - N_s for insert); shuffled sets are measured on relabelled
        images, so each also has its own unedited pass (once per layer and style, for every k).
        n_styles: an even sample of the targets.
        With sequential sets pass n_random = n_random_max: the worst case, every row drawing all."""
        counts = torch.bincount(data.style_ids.detach().cpu().long(), minlength=subject.num_styles)
        styles = self._targets(subject, data)
        styles = evenly(styles, n_styles) if n_styles is not None else styles
        folds = 2 if self.units is None and self.cross_fit else 1
        images = passes = 0.0
        for layer in layers:
            n_units = unit.channels(layer) or 10 ** 9
            kk = [len(self.units)] if self.units is not None else sorted({min(int(k), n_units) for k in ks})
            sets = sum(1 + (n_random if k < n_units else 0) for k in kk)
            if self.units is None and self.baseline == "shuffled" and any(k < n_units for k in kk):
                sets += n_random        # each shuffled set's own unedited pass (its images), shared over k
            for s in styles:
                n_s = int(counts[s]) if self.intervention != "insert" else len(data) - int(counts[s])
                if self.n_measure is not None:
                    n_s = min(int(self.n_measure), len(data) if self.intervention != "insert" else n_s)
                images += n_s * (1 + sets)
                passes += (1 + sets) * folds * math.ceil(n_s / folds / max(1, data.batch_size))  # one per batch
        return Cost(forwards=len(data) + images, passes=passes, **judged_by_measures(subject, data, images))

    def _ks(self, n: int, unit: UnitCosts, layers: list[str]) -> list[int]:
        """The configured set sizes, or (a budget's cut to n of them) an even sample of those below
        the layer's unit count: a set of every unit has no random baseline to compare with."""
        ks = list(self.ks)
        if n >= len(ks):
            return ks
        units = min((unit.channels(layer) or 10 ** 9) for layer in layers)
        below = sorted({int(k) for k in ks if int(k) < units})
        return evenly(below if below else ks, n)

    def _n_max(self, n_random: int) -> int:
        """Baseline sets a selected set may be ranked among: n_random_max (None: n_random, the fixed rule)."""
        return n_random if self.n_random_max is None else max(n_random, int(self.n_random_max))

    def _off(self, sz: dict) -> dict:
        """Sizes with n_random_max cut back to the configured n_random read as off (it follows n_random)."""
        return {**sz, "n_random_max": sz["n_random"] if sz["n_random_max"] <= self.n_random
                else max(sz["n_random_max"], sz["n_random"])}

    def _sized(self, subject, data, unit, layers) -> tuple[dict, list[str]]:
        ks = list(self.ks)

        n_styles = len(self._targets(subject, data))

        def seconds(sz):
            sz = self._off(sz)
            return self._passes(subject, data, unit, layers, sz["n_random_max"], self._ks(sz["ks"], unit, layers),
                                sz["styles"]).seconds(unit)
        # first the sequential sets past n_random (priced as if every row drew them all), then n_random
        sized, notes = size_to_budget({"n_random_max": self._n_max(self.n_random), "n_random": self.n_random,
                                       "ks": len(ks), "styles": n_styles}, seconds, self.budget_s,
                                      [("n_random_max", halve_to(self.n_random)),
                                       ("n_random", halve_to(min(self.n_random, 19))), ("ks", halve_to(min(len(ks), 2))),
                                       ("styles", halve_to(min(n_styles, 4)))],
                                      what=self.name)
        return self._off(sized), notes

    def estimate_cost(self, subject, data: AnalysisData, unit: UnitCosts) -> Cost:
        gate = style_gate_cost(subject, data, self.name, self.min_per_style)
        if gate is not None:
            return gate
        G = subject.generator
        try:
            layers = resolve_layers(G, self.layer) if self.layer is not None else [default_unit_layer(G)]
        except LookupError as e:
            return Cost(notes=[f"will fail: {e}"])
        sizes, notes = self._sized(subject, data, unit, layers)
        cost = self._passes(subject, data, unit, layers, sizes["n_random_max"], self._ks(sizes["ks"], unit, layers),
                            sizes["styles"])
        cost.notes += notes
        if sizes["n_random_max"] > sizes["n_random"]:
            null = expected_null_draws(h=self.h, n_min=sizes["n_random"], n_max=sizes["n_random_max"])
            cost.notes.append(f"up to {sizes['n_random_max']} random baseline sets per selected set (sequential, "
                              f"priced as if every one drew them all; one no better than random draws about "
                              f"{null:.0f})")
        return cost

    def _check(self, subject) -> None:
        if self.intervention not in ("zero", "mean", "insert"):
            raise ValueError(f"intervention must be 'zero', 'mean' or 'insert', got {self.intervention!r}")
        if self.units is None and not self.from_style_units:
            raise ValueError("give units=[...] to ablate, or from_style_units=True to rank units by selectivity")
        if not self.ks or any(int(k) < 1 for k in self.ks):
            raise ValueError(f"ks must be positive set sizes like (1, 2, 4, 8), got {self.ks!r}")
        if not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile}")
        if self.n_random < 0 or self.n_boot < 1 or self.n_perm < 1:
            raise ValueError(f"n_random must be >= 0 and n_boot, n_perm >= 1, got n_random={self.n_random}, "
                             f"n_boot={self.n_boot}, n_perm={self.n_perm}")
        if self.n_measure is not None and int(self.n_measure) < 2 * MIN_SAMPLES_FOR_CI:
            raise ValueError(f"n_measure must be at least {2 * MIN_SAMPLES_FOR_CI} images (a CI on each half), "
                             f"got {self.n_measure}; or leave it out to measure the images generated toward each style")
        if self.n_random_max is not None and int(self.n_random_max) < self.n_random or self.h < 1:
            raise ValueError(f"n_random_max must be >= n_random ({self.n_random}) and h >= 1, got n_random_max="
                             f"{self.n_random_max}, h={self.h}; n_random_max = n_random (or none) turns the "
                             "sequential baseline sets off")
        if self.baseline not in ("shuffled", "random"):
            raise ValueError(f"baseline must be 'shuffled' or 'random', got {self.baseline!r}")
        unknown = [s for s in (self.styles or []) if s not in subject.style_names]
        if unknown:
            raise ValueError(f"unknown styles {unknown}; the subject has {subject.style_names}")

    def run(self, subject, data: AnalysisData) -> Finding:
        params = self.params()
        self._check(subject)
        present, reason = check_styles(subject, data.style_ids, self.name, self.min_per_style)
        if reason:
            return Finding.skip(self.name, reason, params)
        subject.eval()
        G = subject.generator
        layers = resolve_layers(G, self.layer) if self.layer is not None else [default_unit_layer(G)]
        notes: list[str] = []
        n_random, ks_param, n_targets = self.n_random, list(self.ks), None
        n_random_max = self._n_max(self.n_random)
        if self.budget_s:
            unit = unit_costs_for(subject, data)
            sizes, sizing = self._sized(subject, data, unit, layers)
            n_random, ks_param = sizes["n_random"], self._ks(sizes["ks"], unit, layers)
            n_random_max = sizes["n_random_max"]
            cut = {k: v for k, v in (("n_random", n_random), ("n_random_max", n_random_max))
                   if v != (self.n_random if k == "n_random" else self._n_max(self.n_random))}
            if sizing and cut and self.n_random_max is not None:
                params["sized_to_budget"] = cut
            if sizes["styles"] < len(self._targets(subject, data)):
                n_targets = sizes["styles"]
            notes += sizing + ([f"set sizes ablated (an even sample, to fit budget_s): {ks_param}"]
                               if len(ks_param) < len(self.ks) else [])
        measure, cols = style_measures(subject, data, notes)
        if not cols:
            return Finding.skip(self.name, "nothing to measure: the subject has no style classifier, no "
                                           "feature net with real style images, and no concept masks", params)
        z = fixed_z(subject, data, self.seed)
        stats = _unit_stats(subject, data, z, layers, self.quantile, self.seed)
        ids = data.style_ids.detach().cpu().numpy()
        lut = np.full(subject.num_styles, -1)
        lut[present] = np.arange(len(present))
        y = lut[ids]
        targets = [s for s in present if self.styles is None or subject.style_names[s] in self.styles]
        if self.styles is not None and len(targets) < len(set(self.styles)):
            missing = sorted(set(self.styles) - {subject.style_names[s] for s in targets})
            notes.append(f"no images were generated toward {missing}; those styles are not ablated")
        if n_targets is not None and n_targets < len(targets):
            targets = evenly(targets, n_targets)
            notes.append("target styles ablated (an even sample, to fit budget_s): "
                         + ", ".join(subject.style_names[s] for s in targets))
        crossfit = self.units is None and self.cross_fit
        fold = crossfit_folds(y, self.seed + 17) if crossfit else np.zeros(len(y), dtype=int)
        n_folds = 2 if crossfit else 1
        baseline = self.baseline if self.units is None else "random"
        if self.units is not None and self.baseline == "shuffled":
            notes.append("explicit units: no ranking to repeat on shuffled labels, so the baseline sets are "
                         "uniform random k-sets (baseline_sets = random)")
        rng = np.random.default_rng(self.seed)
        n_max = max(n_random, n_random_max)
        self._nonfinite, self._later_sets = 0, 0
        rows, ranking = [], []
        for layer in layers:
            x, unit_mean, unit_q = stats[layer]
            n_units = x.shape[1]
            if self.units is not None:
                bad = [u for u in self.units if not 0 <= int(u) < n_units]
                if bad:
                    raise ValueError(f"units {bad} are out of range for layer {layer!r} with {n_units} units")
            # rankings: on the other half of the images (cross-fitted), or on all images
            rank_on = [fold != f for f in range(n_folds)] if crossfit else [np.ones(len(y), bool)]
            auc = [auroc_matrix(x[r], y[r], len(present)) for r in rank_on]
            dd = [cohens_d(x[r], y[r], len(present)) for r in rank_on]
            ks = [len(self.units)] if self.units is not None else sorted({min(int(k), n_units) for k in ks_param})
            for s in targets:
                name = subject.style_names[s]
                orders = []
                for f in range(n_folds):
                    if self.units is not None:
                        orders.append(np.asarray(self.units, dtype=int))
                        continue
                    a = np.nan_to_num(auc[f][lut[s]], nan=-np.inf)
                    order = np.lexsort((-np.nan_to_num(dd[f][lut[s]], nan=-np.inf), -a))   # AUROC, then d
                    orders.append(order)
                    ranking += [dict(layer=layer, style=name, rank=r, unit=int(u), auroc=float(auc[f][lut[s], u]),
                                     cohens_d=float(dd[f][lut[s], u]), fold=f)
                                for r, u in enumerate(order[:max(ks)])]
                sels, toward = self._measured_images(ids, s, fold, n_folds, data.content.device)
                seed = self.seed + 1000 * s
                bases = [_measured_pass(subject, data, z, sel, measure, seed + 100 * f, toward=toward)
                         for f, sel in enumerate(sels)]

                def diff(sets_per_fold, where=None):
                    # where: (images per half, their unedited passes, the style each is rendered toward)
                    sl, bs, tw = (sels, bases, [toward] * n_folds) if where is None else where
                    parts = [self._diff(subject, data, z, sl[f], measure, seed + 100 * f, layer, u, unit_mean,
                                        unit_q, bs[f], tw[f]) for f, u in enumerate(sets_per_fold)]
                    return {kind: np.concatenate([p[kind] for p in parts]) for kind in parts[0]}

                roles: dict[int, tuple] = {}

                def role(j, layer=layer, s=s, x=x, rank_on=rank_on, sels=sels, toward=toward, seed=seed):
                    # shuffled set j of this layer and style (every k): the selection procedure on the
                    # images relabelled within each half (``shuffled_roles``): ranked on the other
                    # half with the relabelled styles, measured on the images that take the measured
                    # images' part, each rendered toward the style the measured image is rendered toward
                    if j not in roles:
                        perm, _, order_j = shuffled_selection(x, y, fold, rank_on, len(present), int(lut[s]),
                                                              roles_rng(self.seed, layer, s, j))
                        sl = [torch.as_tensor(perm[sel.cpu().numpy()], device=sel.device) for sel in sels]
                        tw = [data.style_ids[sel] if toward is None else torch.full_like(data.style_ids[sel], toward)
                              for sel in sels]
                        bs = [_measured_pass(subject, data, z, sl[f], measure, seed + 100 * f, toward=tw[f])
                              for f in range(n_folds)]
                        roles[j] = (order_j, (sl, bs, tw))
                    return roles[j]

                def shuffled_effect(j, k):
                    order_j, where = role(j)
                    return diff([o[:k] for o in order_j], where)

                for k in ks:
                    tops = [o[:k] for o in orders]
                    d_top = diff(tops)
                    # baseline sets, per set: one per half (sets[j][f] is measured on half f).
                    # "shuffled": the selection procedure re-run on images relabelled within each half
                    # (ranked on the other half's relabelled styles, measured on the images that take
                    # the measured images' part): exchangeable with the selected set under a null
                    # (module docstring), and as coherent a group as the selected one (on a null whose
                    # units are correlated, uniform sets are not, and p_random is anti-conservative).
                    # "random": uniform k-subsets of ALL units of the layer, the same set on both
                    # halves; excluding the selected units from the draws breaks exchangeability (0.10
                    # instead of 0.05 rejections on a null model), and excluding the other half's
                    # selection biases them outright
                    d_rand, sets = [], []
                    if k >= n_units or n_random < 1:
                        notes.append(f"{layer}, {name}, k={k}: k is the whole layer (or n_random = 0); no "
                                     f"baseline sets")
                    elif baseline == "shuffled":
                        sets = [[o[:k] for o in role(j)[0]] for j in range(n_random)]
                        d_rand = [shuffled_effect(j, k) for j in range(n_random)]
                    else:
                        sets = [[np.sort(rng.choice(n_units, size=k, replace=False))] * n_folds
                                for _ in range(n_random)]
                        d_rand = [diff(per_half) for per_half in sets]
                    new = self._rows(d_top, d_rand, cols, s, name, layer, tops, sets, k, notes, baseline)
                    if d_rand and n_max > n_random:
                        def later_effects(j, layer=layer, s=s, k=k, n_units=n_units, effect=shuffled_effect):
                            # set j >= n_random: seeded by the layer, style (k: uniform sets) and j alone
                            if baseline == "shuffled":
                                return effect(j, k)
                            g = later_set_rng(self.seed, layer, s, k, j)
                            return diff([np.sort(g.choice(n_units, size=k, replace=False))] * n_folds)
                        self._later_sets += self._extend(new, n_max, later_effects)
                    rows += new
        df = pd.DataFrame(rows, columns=COLUMNS)
        df["beyond_random"] = df["beyond_random"].astype("boolean")   # empty (<NA>) on the random sets' rows
        top = df["baseline"] == "top"
        df.loc[top, "q_random"] = bh_qvalues(df.loc[top, "p_random"].to_numpy(dtype=float))
        has_p = top & df["p_random"].notna()
        df.loc[has_p, "beyond_random"] = (df.loc[has_p, "q_random"] <= ALPHA).to_numpy()
        df.loc[top, "q_zero"] = bh_qvalues(df.loc[top, "p_zero"].to_numpy(dtype=float))
        self._notes(df, notes, crossfit, n_random, baseline, n_max)
        tables = {"ablation": df}
        if ranking:
            tables["ablation_ranking"] = pd.DataFrame(ranking)
        return Finding(self.name, params, tables=tables, notes=notes,
                       provenance={"seed": self.seed, "data_fingerprint": data.fingerprint})

    def _extend(self, rows: list[dict], n_max: int, later_effects: Callable[[int], dict[str, np.ndarray]]) -> int:
        """Sequential baselines past the first n_random for the selected-set rows of one layer, style
        and k (they share their sets: set j is measured once, for every row still open); sets each
        row's p_random and n_random_used. Returns the sets measured past the first n_random."""
        top = [r for r in rows if "_first" in r]
        if not top:
            return 0
        cache: dict[int, np.ndarray] = {}

        def later(j: int) -> np.ndarray:
            if j not in cache:
                d = later_effects(j)
                cache[j] = np.array([float(d[r["_kind"]][:, r["_col"]].astype(np.float64).mean()) for r in top])
            return cache[j]
        seq = sequential_random_p(np.array([r["effect"] for r in top]), [r["_dir"] for r in top],
                                  np.stack([r["_first"] for r in top]), later, h=self.h, n_max=n_max)
        for r, p, used in zip(top, seq.p, seq.n_used):
            r["p_random"], r["n_random_used"] = float(p), int(used)
        return len(cache)

    def _notes(self, df: pd.DataFrame, notes: list[str], crossfit: bool, n_random: int, baseline: str,
               n_max: int) -> None:
        notes.append("units " + ("cross-fitted: ranked on one half of the images (stratified by style) and measured "
                                 "on the other, both ways; units_fold0 / units_fold1 name the set used on each half"
                                 if crossfit else "not cross-fitted (explicit units, or cross_fit=False: ranked on "
                                                  "the same images they are measured on)"))
        what = ("the top k units by the same ranking with the images relabelled at random within each half, "
                "one set per half, measured on the images that take the measured images' part (as coherent a "
                "group as a selected set, chosen for no style, and exchangeable with it under no style effect)"
                if baseline == "shuffled"
                else "k units drawn uniformly from the layer, one set for both halves, on the same images")
        notes.append(f"beyond random: one-sided rank of the selected set's effect among {n_random} baseline "
                     f"sets of the same size (baseline = {baseline}: {what}; the rows with "
                     f"baseline 'random' are these sets), p_random = (1 + #baseline sets at least as large) / "
                     f"({n_random} + 1) (exact under exchangeability with the baseline sets); q_random: BH over the "
                     f"{int((df['baseline'] == 'top').sum())} selected-set rows; beyond_random = q_random <= {ALPHA} "
                     f"(it does not rule out that selective units are simply larger or more active units)")
        if self.n_measure is not None:
            notes.append(f"measured on {self.n_measure} content images (half per cross-fitting half, seeded, the same "
                         + ("for every target) rendered toward the target style" if self.intervention != "insert"
                            else "for every target) in their own styles, other than the target"))
        if 0 < n_random and 1 / (n_random + 1) > ALPHA:
            notes.append(f"with n_random = {n_random} p_random cannot reach {ALPHA} (floor "
                         f"{1 / (n_random + 1):.2g}): raise n_random to 19 or more")
        top = df["baseline"] == "top"
        seq = n_max > n_random and df.loc[top, "p_random"].notna().any()
        if seq:
            used = df.loc[top & df["p_random"].notna(), "n_random_used"].to_numpy(dtype=float)
            n_top = int((top & df["p_random"].notna()).sum())
            notes.append(f"sequential baseline sets (Besag & Clifford 1991; n_random_max = {n_max}, h = {self.h}): "
                         f"every selected set was ranked among the first {n_random} baseline sets; a row with fewer "
                         f"than {self.h} at least as large went on to further sets (the measures of one layer, style "
                         f"and k share them; set j seeded by layer, style, k and j alone), one at a time, until "
                         f"{self.h} were (p_random = {self.h} / n_random_used) or {n_max} had been measured "
                         f"(p_random = (1 + #) / {n_max + 1}); one with {self.h} or more among the first {n_random} "
                         f"keeps the fixed rule's p. P(p_random <= a) <= a still holds (tests/statistics/"
                         f"test_sequential_p.py, tests/statistics/test_ablation_sequential.py). n_random_used "
                         f"{int(used.min())} to {int(used.max())} over {n_top} rows; {self._later_sets} sets past "
                         f"the first {n_random} measured in all. The baseline rows (baseline 'random'), random_sd, "
                         f"random_low and random_high describe the first {n_random} sets")
            notes[-1] += coarse_h_note(self.h, n_max, "rows", "sets", "sets per row")
        used_all = df.loc[top, "n_random_used"].to_numpy(dtype=float)
        flips = np.where(df.loc[top, "n"] > SIGNFLIP_EXACT_MAX_N, self.n_perm, np.inf)  # exact p_zero: no floor
        for col, n, param, what in (("p_random", used_all, "n_random_max" if seq else "n_random",
                                     "selected-set p_random values"),
                                    ("p_zero", flips, "n_perm", "p_zero values")):
            fl = floor_note(df.loc[top, col].to_numpy(dtype=float), n, what=what, param=param, min_share=0.05) \
                if np.nanmax(np.r_[np.asarray(n, dtype=float).ravel(), 0]) > 0 else None
            notes += [fl] if fl else []
        notes.append(f"CI: studentized (bootstrap-t) interval of the mean paired difference over images ({self.n_boot} resamples); "
                     f"baseline rows: the same for the mean over sets, random_low / random_high the 2.5-97.5% range "
                     f"of the baseline sets' effects, random_sd their SD; p_zero: sign-flip test of mean = 0 "
                     f"(exact over all 2^n sign patterns where n <= {SIGNFLIP_EXACT_MAX_N} images, else {self.n_perm} "
                     f"random flips), q_zero its BH q over the selected-set rows")
        notes.append(f"{self._nonfinite} bootstrap resamples had no spread (t = +-inf, kept as the extremes they are; "
                     f"where they reach an interval's tail that side is Student's t bound)" if self._nonfinite
                     else "every bootstrap resample had spread")

    def _measured_images(self, ids: np.ndarray, s: int, fold: np.ndarray, n_folds: int,
                         device) -> tuple[list[Tensor], int | None]:
        """Per half, the images an edit for target style s is measured on, and the style they are
        rendered toward (None = their own). See ``n_measure`` in the class docstring."""
        removes = self.intervention != "insert"
        pool = np.ones(len(ids), bool) if (removes and self.n_measure is not None) else (
            (ids == s) if removes else (ids != s))
        sels = []
        for f in range(n_folds):
            idx = np.flatnonzero(pool & (fold == f))
            if self.n_measure is not None:
                per_half = int(self.n_measure) // n_folds + (f < int(self.n_measure) % n_folds)
                rng = np.random.default_rng([self.seed, 23, f] + ([] if removes else [s]))
                idx = np.sort(rng.permutation(idx)[:per_half])
            sels.append(torch.as_tensor(idx, device=device))
        return sels, (s if removes and self.n_measure is not None else None)

    def _diff(self, subject, data, z, sel, measure, seed, layer, units, unit_mean, unit_q, base, toward=None):
        units = [int(u) for u in units]
        if self.intervention == "zero":
            edit = ablate(units, 0.0)
        elif self.intervention == "mean":
            edit = ablate(units, torch.as_tensor(unit_mean[units], dtype=torch.float32))
        else:
            edit = insert(units, torch.as_tensor(unit_q[units], dtype=torch.float32))
        after = _measured_pass(subject, data, z, sel, measure, seed, layer, edit, toward=toward)
        return {kind: after[kind] - base[kind] for kind in base}

    def _rows(self, d_top, d_rand, cols, s, name, layer, tops, sets, k, notes, baseline) -> list[dict]:
        one = len(tops) == 1 or all(np.array_equal(tops[0], t) for t in tops)
        label = ";".join(map(str, tops[0])) if one else " / ".join(";".join(map(str, t)) for t in tops)
        folds = {"units_fold0": ";".join(map(str, tops[0])),
                 "units_fold1": ";".join(map(str, tops[1])) if len(tops) > 1 else ""}
        rlabel = "|".join(" / ".join(";".join(map(str, u)) for u in per_half)
                          if any(not np.array_equal(per_half[0], u) for u in per_half)
                          else ";".join(map(str, per_half[0])) for per_half in sets)
        rows = []
        for j, (target, kind, col) in enumerate(_targets(cols, s, name)):
            v = d_top[kind][:, col].astype(np.float64)
            rv = [d[kind][:, col].astype(np.float64) for d in d_rand]
            if not np.isfinite(v).all() or not all(np.isfinite(r).all() for r in rv):
                note = f"{target}: not finite on some images (no reference or NaN output); left out"
                if note not in notes:
                    notes.append(note)
                continue
            direction = expected_direction(kind, self.intervention)
            bs = self.seed + 31 * j + 7 * k
            lo, hi, bad = bootstrap_t_mean_ci(v, self.n_boot, bs)
            self._nonfinite += bad
            common = dict(layer=layer, intervention=self.intervention, target=target, n=len(v), k=k, style=name,
                          baseline_sets=baseline if rv else "",
                          measure=kind, direction={1: "increase", -1: "decrease", 0: "either"}[direction])
            row = dict(common, units=label, effect=float(v.mean()), ci_low=lo, ci_high=hi, baseline="top", n_sets=1,
                       p_zero=signflip_pvalue(v, self.n_perm, bs + 1), **folds)
            if rv:
                effects = np.array([r.mean() for r in rv])
                row.update(p_random=random_rank_pvalue(row["effect"], effects, direction), n_random_used=len(rv),
                           _kind=kind, _col=col, _dir=direction, _first=effects,   # for _extend (not columns)
                           random_sd=float(effects.std(ddof=1)) if len(effects) > 1 else np.nan,
                           random_low=float(np.quantile(effects, 0.025)),
                           random_high=float(np.quantile(effects, 0.975)))
                mean_r = np.mean(rv, axis=0)
                rlo, rhi, bad = bootstrap_t_mean_ci(mean_r, self.n_boot, bs + 2)
                self._nonfinite += bad
                rows.append(row)
                rows.append(dict(common, units=rlabel, effect=float(mean_r.mean()), ci_low=rlo, ci_high=rhi,
                                 baseline="random", n_sets=len(rv), p_zero=signflip_pvalue(mean_r, self.n_perm, bs + 3),
                                 random_sd=row["random_sd"], random_low=row["random_low"],
                                 random_high=row["random_high"]))
            else:
                rows.append(row)
        return rows
