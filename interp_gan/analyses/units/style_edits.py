"""Style removal and style transfer edits: how much of a style do its units carry, and only that style?

    f = build_analysis("style_edits", layer="blocks.3.conv2", ks=(4, 16), n_random=19).run(subject, data)
    f.tables["style_removal"]    # style, k, classifier, measure, target_style, on_target, effect, ci_low,
                                 # ci_high, n, p_random, specificity, spec_ci_low, spec_ci_high, target_share,
                                 # verdict, units_fold0, units_fold1, edit, ...
    f.tables["style_transfer"]   # source_style, style, k, classifier, measure, target_style, effect, ci_low,
                                 # ci_high, n, p_random, verdict, edit, ...
    edit = style_removal_edit(subject, data, "impressionist", k=16)    # a ModelEdit (docs/edits.md)
    edit = style_transfer_edit(subject, data, "impressionist", k=16)   # per-unit inserts

**Removal.** For each style s the units of one layer are ranked by their selectivity for s (the
AUROC of the per-image mean activation for images generated toward s against the others, ties
at AUROC 1 broken by Cohen's d: the ranking of ``style_units`` and ``ablation``), and the top k
are set to 0 (``ModelEdit.ablate`` semantics) for k in ``ks``. The edit is then measured on the
images generated toward EVERY style t: the change of the t-images' own probability p(t) and
log-odds of t (log p_t - log(1 - p_t)), for both independent classifiers (the RGB style
classifier and the colour-blind texture classifier). The row with t = s is the on-target effect
(does s go away?); the rows t != s are the off-target effects (do the other styles survive?).

**Transfer** (s -> t). While generating images toward s, the top-k units of t are forced to t's
mean activation (per unit: the mean over images generated toward t and over positions;
``ModelEdit.insert`` with one value per unit). Measured on the s-images: the change of p(t) and
its log-odds (does t appear?) and of p(s) (does s give way?), both classifiers.

Cross-fitted (Chernozhukov et al., Econometrics J. 2018), as in ``ablation``: the images are
split in two halves, stratified by style and seeded (``crossfit_folds``); units (and t's mean
activations) are chosen on half A and measured on half B, and the other way round, so every
image is measured once with units chosen without it. Each image is generated twice, with and
without the edit, with the same content, z and random state: every effect is a mean paired
difference with a studentized (bootstrap-t) 95% CI over images (``bootstrap_t_mean_ci``, Efron &
Tibshirani 1993; its coverage is simulated in tests/statistics/test_ablation_stats.py).

**Baseline sets** (Morcos et al., ICLR 2018, compare against random ablations): ``n_random``
baseline sets of k units of the layer, edited the same way (removal: set to 0; transfer: set to
t's mean activation of those units), one set per half.
``baseline="shuffled"`` (the default): the construction of ``ablation``, through the same function
(``ablation.shuffled_selection``): each set re-runs the selection on the images relabelled at
random within each half, image perm[i] taking image i's part. Its units for a half are the top k
by the same ranking for the style on the other half under the relabelled styles (transfer: with
t's mean activations over the images relabelled t there), and it is measured on perm[i] wherever
the selected set is measured on image i, rendered toward the same style, each image paired with
its own unedited pass. A group of units as coherent as a selected one (units that rise and fall
together), chosen for no style, and exchangeable with the selected set when the images are
exchangeable within a half whatever their style label (``ablation``'s docstring says why; ranked
on permuted labels but measured on the style's own images, as before, it is not: the halves are
coupled, and on an independent-units null p_random was 0.07 at 0.05). ``baseline="random"``: k
units drawn uniformly from the layer, independently for the two halves, measured on the same
images as the selected set. Under a planted null whose units carry no style but are correlated
(tests/statistics/test_style_edits_stats.py, 400 data sets), P(p <= 0.05, 0.10, 0.25) was
0.0725 / 0.1175 / 0.265 for "shuffled" (0.0525 / 0.105 / 0.28 measured on the style's own
images), and 0.055 / 0.135 / 0.285 for "random" with independent halves (0.0775 / 0.135 / 0.30
with one random set for both halves): uniform random sets are less coherent than selected ones,
so their effects spread less and the selected set beats them too often.
``p_random`` = (1 + #{baseline sets with an effect at least as large in the expected direction}) /
(n_random + 1), one-sided: a drop for removal's on-target row and transfer's source row, a rise
for transfer's inserted style. With 19 sets its floor is 0.05. Baseline sets are measured on
target only (removal: the images in the s-images' part; transfer: likewise, rendered toward the
source style), so off-target rows have no p_random.

**Specificity** (removal, on the on-target rows): ``specificity`` = on-target effect minus the
mean of the off-target effects (the other styles' changes, each on its own images), so a
removal that lowers s more than it lowers the others has specificity < 0. Its 95% CI is a
stratified studentized bootstrap of that contrast of independent means (``contrast_ci``; images
are resampled within each style), widened by a moderated Welch t interval when most changes tie
(``findings.tied_groups``); coverage simulated in tests/statistics/test_style_edits_stats.py.
``target_share`` = |on-target| / (|on-target| + sum |off-target|): the share of the removal's
effect that falls on the target (a point estimate, no interval). Per on-target row,

- **specific**: all of (1) beyond random: q_random <= 0.05 (``q_random``: Benjamini-Hochberg over
  the on-target rows of the table; a per-row p_random <= 0.05 would call a few of 26 styles' rows
  beyond random by chance alone); (2) the on-target CI lies below 0;
  (3) the specificity CI lies below 0; (4) every off-target CI lies above the on-target CI
  (each other style's change is, with its interval, smaller than the target's);
- **beyond random, not specific**: (1) and (2) hold, (3) or (4) does not;
- **not beyond random**: (1) or (2) fails (with fewer than 19 random sets p_random cannot reach
  0.05, so nothing is beyond random: the notes say so).

Transfer rows: **transfers** when q_random <= 0.05 (BH over the inserted style's rows; the
source style's rows are a family of their own) and the CI lies
above 0 (the inserted style's rows), **source drops** when q_random <= 0.05 and the CI lies below 0
(the source style's rows), else **not beyond random**.

``edit`` (each row): the ``interp-gan edit`` arguments that write the edit, with units (and
values) chosen on ALL images, as ``style_removal_edit`` / ``style_transfer_edit`` and
``interp-gan edit CKPT --remove-style NAME --k K`` choose them; the measured, cross-fitted sets
are ``units_fold0`` / ``units_fold1`` (the sets chosen on half 1 and measured on half 0, and the
other way round; on a clear model they are the same units). Removal and insertion of units follow
Bau et al., "GAN Dissection" (ICLR 2019) and "Understanding the role of individual units in a
deep neural network" (PNAS 2020).

Cost (``estimate_cost``): one pass for the unit means, two unedited passes over all images (per
style and half, paired with the random sets' and the transfers' passes; and per half, paired with
the removal edits), then per style and k one edited pass over all images (per half: the edit is
the same for every style's images) plus ``n_random`` passes over the style's
images, and per transfer pair and k (1 + ``n_random``) passes over the source style's images;
shuffled sets add, per style and per pair, ``n_random`` unedited passes over their relabelled
images (one per set, shared by every k).
``budget_s``: over it, fewer random sets (down to 19), then fewer set sizes, then fewer styles
(an even sample, down to 2); the notes say so.
"""
from __future__ import annotations

import math
from typing import Literal, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from interp_gan.analyses.base import Analysis, AnalysisData, register_analysis
from interp_gan.analyses.common import check_styles, fixed_z, log_odds, seeded, style_gate_cost, thumbnails
from interp_gan.analyses.cost import Cost, UnitCosts, evenly, halve_to, size_to_budget, unit_costs_for
from interp_gan.analyses.units.ablation import (_measured_pass, bootstrap_t_mean_ci, crossfit_folds,
                                                random_rank_pvalue, roles_rng, select_units, shuffled_selection)
from interp_gan.analyses.units.style_units import auroc_matrix, cohens_d, harvest_unit_means
from interp_gan.findings import Finding
from interp_gan.findings.stats import MIN_SAMPLES_FOR_CI, bh_qvalues, floor_note
from interp_gan.findings.studentized import studentized_bounds
from interp_gan.findings.tied_groups import flat_resample_chance, moderated_welch_bounds
from interp_gan.harvest.hooks import ablate, default_unit_layer, get_module, insert

__all__ = ["StyleEdits", "contrast_ci", "removal_verdict", "transfer_verdict", "style_removal_edit",
           "style_transfer_edit", "select_units", "parse_pair"]

ALPHA = 0.05
TIED_FLAT_CHANCE = 0.05     # contrast_ci: above this chance of a flat group resample, widen (findings.tied_groups)
CLASSIFIERS = {"classifier": "rgb", "texture_classifier": "texture"}
MEASURES = ("log_odds", "p")
REMOVAL_COLUMNS = ["layer", "style", "k", "classifier", "measure", "target_style", "on_target", "effect", "ci_low",
                   "ci_high", "n", "p_random", "q_random", "n_sets", "random_mean", "random_low", "random_high", "specificity",
                   "spec_ci_low", "spec_ci_high", "target_share", "verdict", "units_fold0", "units_fold1", "edit"]
TRANSFER_COLUMNS = ["layer", "source_style", "style", "k", "classifier", "measure", "target_style", "effect",
                    "ci_low", "ci_high", "n", "direction", "p_random", "q_random", "n_sets", "random_mean", "random_low",
                    "random_high", "verdict", "units_fold0", "units_fold1", "edit"]


# --- statistics (pure numpy) -------------------------------------------------------------------

def contrast_ci(on: np.ndarray, offs: Sequence[np.ndarray], n_boot: int, seed: int,
                level: float = 0.95) -> tuple[float, float, float, int]:
    """(estimate, lo, hi, non-finite replicates) of mean(on) - mean_t mean(offs[t]) for independent
    groups: a studentized bootstrap (Efron & Tibshirani 1993, ch. 12.5) that resamples within each
    group, with the plug-in standard error sqrt(var_on / n_on + sum_t var_t / (n_t m^2)), m groups
    off target. Resamples without spread are kept and counted, with Student's t (Welch-Satterthwaite
    df) on a side they reach (``findings.studentized``); [est, est] when no group has spread.
    Heavy ties (more than ``TIED_FLAT_CHANCE`` chance that a resample of some group has no spread:
    most images unchanged) make a group without spread add nothing to the standard error; there the
    interval is the union with the moderated Welch t interval (``findings.tied_groups``).
    Coverage: tests/statistics/test_style_edits_stats.py."""
    on = np.asarray(on, dtype=np.float64)
    offs = [np.asarray(o, dtype=np.float64) for o in offs]
    m = len(offs)
    if m == 0 or len(on) < 2 or any(len(o) < 2 for o in offs):
        return float("nan"), float("nan"), float("nan"), 0
    groups, weights = [on] + offs, [1.0] + [-1.0 / m] * m

    def stat_se(means, variances, ns):
        est = sum(w * mu for w, mu in zip(weights, means))
        se = np.sqrt(sum(w * w * v / n for w, v, n in zip(weights, variances, ns)))
        return est, se

    ns = [len(g) for g in groups]
    est, se = stat_se([g.mean() for g in groups], [g.var(ddof=1) for g in groups], ns)
    if not np.isfinite(est) or not np.isfinite(se):
        return float("nan"), float("nan"), float("nan"), 0
    if se == 0:
        return float(est), float(est), float(est), 0
    rng = np.random.default_rng(seed)
    bm, bv = [], []
    for g in groups:
        b = g[rng.integers(0, len(g), size=(n_boot, len(g)))]
        bm.append(b.mean(1))
        bv.append(b.var(1, ddof=1))
    b_est, b_se = stat_se(bm, bv, ns)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (b_est - est) / b_se
    parts = [w * w * g.var(ddof=1) / len(g) for w, g in zip(weights, groups)]   # Welch-Satterthwaite df
    df = sum(parts) ** 2 / sum(p * p / (len(g) - 1) for p, g in zip(parts, groups))
    lo, hi, bad = studentized_bounds(est, se, t, df=df, level=level)
    if flat_resample_chance(groups) > TIED_FLAT_CHANCE:
        wlo, whi = moderated_welch_bounds(groups, weights, level=level)
        lo, hi = min(lo, wlo), max(hi, whi)
    return float(est), float(lo), float(hi), bad


def removal_verdict(q_random: float, ci_high: float, spec_ci_high: float, off_ci_lows: Sequence[float]) -> str:
    """The removal verdict of one on-target row (see the module docstring) from its q_random (BH
    over the on-target rows): effects are changes, a removal lowers them, so "below 0" is the
    expected direction."""
    beyond = bool(q_random == q_random and q_random <= ALPHA and ci_high < 0)
    if not beyond:
        return "not beyond random"
    offs = np.asarray(off_ci_lows, dtype=np.float64)
    specific = bool(spec_ci_high == spec_ci_high and spec_ci_high < 0 and len(offs) and np.all(offs > ci_high))
    return "specific" if specific else "beyond random, not specific"


def transfer_verdict(q_random: float, ci_low: float, ci_high: float, direction: int) -> str:
    """'transfers' (the inserted style rises) / 'source drops' (the source style falls) when beyond
    random (q_random, BH over the rows of the same direction, at most 0.05) and the CI excludes 0 in the expected
    direction; else 'not beyond random'."""
    if not (q_random == q_random and q_random <= ALPHA):
        return "not beyond random"
    if direction > 0 and ci_low > 0:
        return "transfers"
    if direction < 0 and ci_high < 0:
        return "source drops"
    return "not beyond random"


def _verdicts_by_q(rem: pd.DataFrame, tra: pd.DataFrame) -> None:
    """q_random: Benjamini-Hochberg over the rows that ask one question (removal: the on-target
    rows; transfer: the inserted style's rows, and apart from them the source style's rows), and
    each verdict read from it, in place: with many styles a few rows reach the p_random floor by
    chance alone, and the per-row p would call them beyond random."""
    key = ["layer", "style", "k", "classifier", "measure"]
    rem["q_random"], tra["q_random"] = np.nan, np.nan
    families = [(rem, rem["on_target"])] + [(tra, tra["direction"] == d) for d in ("increase", "decrease")]
    for df, rows in families:
        has = rows & df["p_random"].notna()
        if has.any():
            df.loc[has, "q_random"] = bh_qvalues(df.loc[has, "p_random"].to_numpy(dtype=float))
    if len(rem):
        offs = rem[~rem["on_target"]].groupby(key, sort=False)["ci_low"].apply(list).to_dict()
        for i in rem.index[rem["on_target"]]:
            r = rem.loc[i]
            rem.at[i, "verdict"] = removal_verdict(r["q_random"], r["ci_high"], r["spec_ci_high"],
                                                   offs.get(tuple(r[c] for c in key), []))
    for i in tra.index:
        r = tra.loc[i]
        tra.at[i, "verdict"] = transfer_verdict(r["q_random"], r["ci_low"], r["ci_high"],
                                                1 if r["direction"] == "increase" else -1)


def _target_share(on: float, offs: Sequence[float]) -> float:
    tot = abs(on) + float(np.sum(np.abs(offs)))
    return float(abs(on) / tot) if tot > 0 else float("nan")


def parse_pair(text: str, names: Sequence[str]) -> tuple[int, int]:
    """'source->inserted' -> (source index, inserted index); one clear line on bad input."""
    if "->" not in text:
        raise ValueError(f"a transfer pair is 'SOURCE->STYLE' (generate SOURCE, insert STYLE's units), got {text!r}")
    a, b = (x.strip() for x in text.split("->", 1))
    unknown = [x for x in (a, b) if x not in names]
    if unknown:
        raise ValueError(f"transfer pair {text!r}: unknown style(s) {unknown}; the subject has {list(names)}")
    if a == b:
        raise ValueError(f"transfer pair {text!r}: the two styles must differ")
    return list(names).index(a), list(names).index(b)


# --- unit selection (also for notebooks and the CLI) ---------------------------------------------

def _layer_means(subject, data: AnalysisData, layer: str, seed: int) -> np.ndarray:
    means = harvest_unit_means(subject, data, [layer], seed)
    if layer not in means:
        raise ValueError(f"layer {layer!r} did not run while generating; name a layer on the forward path")
    return means[layer]


def _style_index(subject, style: str) -> int:
    if style not in subject.style_names:
        raise ValueError(f"unknown style {style!r}; the subject has {list(subject.style_names)}")
    return list(subject.style_names).index(style)


def _check_k(k: int, n_units: int, layer: str) -> None:
    if not 1 <= int(k) <= n_units:
        raise ValueError(f"--k must be in 1..{n_units} (the units of {layer}); got {k}")


def _ranked_for_style(subject, data: AnalysisData, style: str, k: int, layer: str | None, seed: int, what: str):
    """What both edit builders share: the style's index, the layer, its per-image unit means, the
    style ids and the top ``k`` units for the style ranked on all of ``data``."""
    s = _style_index(subject, style)
    layer = layer or default_unit_layer(subject.generator)
    get_module(subject.generator, layer)
    present, reason = check_styles(subject, data.style_ids, what, 1)
    if reason:
        raise ValueError(reason)
    if s not in present:
        raise ValueError(f"no image of the data is generated toward {style!r}; its units cannot be ranked")
    x = _layer_means(subject, data, layer, seed)
    _check_k(k, x.shape[1], layer)
    ids = data.style_ids.detach().cpu().numpy()
    lut = np.full(subject.num_styles, -1)
    lut[present] = np.arange(len(present))
    units = select_units(x, lut[ids], len(present), int(lut[s]), int(k))
    return s, layer, x, ids, units


def style_removal_edit(subject, data: AnalysisData, style: str, k: int, layer: str | None = None, seed: int = 0):
    """The ``ModelEdit`` that zero-ablates the ``k`` units of ``layer`` most selective for ``style``,
    ranked on all of ``data`` (what ``interp-gan edit --remove-style`` writes)."""
    from interp_gan.edits import ModelEdit

    _, layer, _, _, units = _ranked_for_style(subject, data, style, k, layer, seed, "style removal")
    return ModelEdit.ablate(layer, [int(u) for u in units])


def style_transfer_edit(subject, data: AnalysisData, style: str, k: int, layer: str | None = None, seed: int = 0):
    """The ``ModelEdit`` that forces the ``k`` units most selective for ``style`` to ``style``'s mean
    activation (per unit, over all images generated toward it): one ``insert`` per unit."""
    from interp_gan.edits import ModelEdit

    s, layer, x, ids, units = _ranked_for_style(subject, data, style, k, layer, seed, "style transfer")
    means = x[ids == s].mean(0)
    e = ModelEdit()
    for u in units:
        e = e.insert(layer, [int(u)], float(np.float32(means[u])))
    return e


def _cli_ablate(layer: str, units: Sequence[int]) -> str:
    return f'--ablate "{layer}:{",".join(str(int(u)) for u in units)}"'


def _cli_insert(layer: str, units: Sequence[int], values: Sequence[float]) -> str:
    return " ".join(f'--insert "{layer}:{int(u)}={float(np.float32(v))!r}"' for u, v in zip(units, values))


def _join(units) -> str:
    return ";".join(str(int(u)) for u in units)


# --- the analysis --------------------------------------------------------------------------------

@register_analysis(
    "style_edits", title="Style removal and transfer edits", order=47,
    references=("bau2019gandissect", "bau2020units", "morcos2018single", "efron1993bootstrap"),
    fast=dict(layer="blocks.1.conv2", ks=(1,), n_random=2, n_boot=20, n_strip=2))
class StyleEdits(Analysis):
    """Remove a style by ablating its top-k units (effect on every style, both classifiers,
    specificity) and transfer one style's units into another's images, each against random sets.

    layer: one layer (None = ``hooks.default_unit_layer``). ks: set sizes. n_random: random sets
    per k (>= 19 so that p_random can reach 0.05). n_boot: bootstrap resamples. styles: the styles
    removed (None = every style in the data). transfer: also run transfers; pairs: 'SOURCE->STYLE'
    strings (None = each removed style's images receive the next style's units, cyclically).
    baseline: "shuffled" (the selection re-run on images relabelled within each half, measured on
    the relabelled images; ``ablation.shuffled_selection``) or "random" (uniform k-sets).
    n_strip: images in the before / after strips. budget_s: see the module docstring.
    """

    def __init__(self, *, layer: str | None = None, ks: Sequence[int] = (4, 16), n_random: int = 19,
                 n_boot: int = 500, styles: list[str] | None = None, transfer: bool = True,
                 pairs: list[str] | None = None, baseline: Literal["random", "shuffled"] = "shuffled",
                 n_strip: int = 4, seed: int = 0,
                 min_per_style: int = MIN_SAMPLES_FOR_CI, budget_s: float | None = None) -> None:
        self.layer, self.ks, self.n_random, self.n_boot = layer, ks, n_random, n_boot
        self.styles, self.transfer, self.pairs, self.n_strip = styles, transfer, pairs, n_strip
        self.baseline = baseline
        self.seed, self.min_per_style, self.budget_s = seed, min_per_style, budget_s

    # -- cost ---------------------------------------------------------------------------------------
    def _plan(self, subject, data: AnalysisData, n_styles: int | None = None) -> tuple[list[int], list[tuple[int, int]]]:
        """(removed styles, transfer pairs) for this data; n_styles: an even sample of the styles."""
        counts = torch.bincount(data.style_ids.detach().cpu().long(), minlength=subject.num_styles)
        present = [s for s in range(subject.num_styles) if counts[s] > 0]
        targets = [s for s in present if self.styles is None or subject.style_names[s] in self.styles]
        if n_styles is not None:
            targets = evenly(targets, n_styles)
        pairs: list[tuple[int, int]] = []
        if self.transfer:
            if self.pairs is not None:
                pairs = [parse_pair(p, subject.style_names) for p in self.pairs]
                pairs = [(a, b) for a, b in pairs if a in present and b in present]
            elif len(present) > 1:
                pairs = [(s, present[(present.index(s) + 1) % len(present)]) for s in targets]
        return targets, pairs

    def _passes(self, subject, data: AnalysisData, n_units: int, n_random: int, ks: list[int],
                n_styles: int | None) -> Cost:
        counts = torch.bincount(data.style_ids.detach().cpu().long(), minlength=subject.num_styles)
        targets, pairs = self._plan(subject, data, n_styles)
        kk = sorted({min(int(k), n_units) for k in ks})
        sets = sum(n_random if k < n_units else 0 for k in kk)
        n = len(data)
        calls = lambda m: 2 * math.ceil(m / 2 / max(1, data.batch_size))   # noqa: E731  (a pass per half)
        images = 3.0 * n                                      # unit means + the unedited passes (per style, per half)
        passes = calls(n) + sum(calls(int(counts[t])) for t in range(subject.num_styles) if counts[t])
        # shuffled sets are measured on relabelled images: each has its own unedited pass (for every k)
        own = n_random if self.baseline == "shuffled" and sets else 0
        for s in targets:
            images += len(kk) * n + (sets + own) * int(counts[s])
            passes += len(kk) * calls(n) + (sets + own) * calls(int(counts[s]))
        for a, _ in pairs:
            images += (len(kk) + sets + own) * int(counts[a])
            passes += (len(kk) + sets + own) * calls(int(counts[a]))
        judged = images - n                                   # all but the unit means' pass
        images += 2 * self.n_strip * (1 + (1 if pairs else 0))
        return Cost(forwards=images, classified=judged, passes=passes)

    def _sized(self, subject, data, unit: UnitCosts, n_units: int) -> tuple[dict, list[str]]:
        ks = list(self.ks)
        n_styles = len(self._plan(subject, data)[0])

        def seconds(sz):
            return self._passes(subject, data, n_units, sz["n_random"], evenly(ks, sz["ks"]),
                                sz["styles"]).seconds(unit)
        return size_to_budget({"n_random": self.n_random, "ks": len(ks), "styles": n_styles}, seconds,
                              self.budget_s, [("n_random", halve_to(min(self.n_random, 19))),
                                              ("ks", halve_to(1)), ("styles", halve_to(min(n_styles, 2)))],
                              what=self.name)

    def estimate_cost(self, subject, data: AnalysisData, unit: UnitCosts) -> Cost:
        gate = style_gate_cost(subject, data, self.name, self.min_per_style)
        if gate is not None:
            return gate
        if subject.classifier is None and subject.texture_classifier is None:
            return Cost(skip="the subject has no style classifier: nothing measures a style")
        try:
            layer = self.layer or default_unit_layer(subject.generator)
            get_module(subject.generator, layer)
            self._check(subject)
        except (LookupError, ValueError) as e:
            return Cost(notes=[f"will fail: {e}"])
        n_units = unit.channels(layer) or 10 ** 9
        sizes, notes = self._sized(subject, data, unit, n_units)
        cost = self._passes(subject, data, n_units, sizes["n_random"], evenly(list(self.ks), sizes["ks"]),
                            sizes["styles"])
        cost.notes += notes
        return cost

    # -- run ------------------------------------------------------------------------------------------
    def _check(self, subject) -> None:
        if not self.ks or any(int(k) < 1 for k in self.ks):
            raise ValueError(f"ks must be positive set sizes like [4, 16], got {self.ks!r}")
        if self.n_random < 0 or self.n_boot < 1 or self.n_strip < 0:
            raise ValueError(f"n_random and n_strip must be >= 0 and n_boot >= 1, got n_random={self.n_random}, "
                             f"n_boot={self.n_boot}, n_strip={self.n_strip}")
        unknown = [s for s in (self.styles or []) if s not in subject.style_names]
        if unknown:
            raise ValueError(f"unknown styles {unknown}; the subject has {list(subject.style_names)}")
        for p in self.pairs or []:
            parse_pair(p, subject.style_names)
        if self.baseline not in ("random", "shuffled"):
            raise ValueError(f"baseline must be 'random' or 'shuffled', got {self.baseline!r}")

    def run(self, subject, data: AnalysisData) -> Finding:
        params = self.params()
        self._check(subject)
        present, reason = check_styles(subject, data.style_ids, self.name, self.min_per_style)
        if reason:
            return Finding.skip(self.name, reason, params)
        kinds = [k for k in CLASSIFIERS if getattr(subject, k) is not None]
        if not kinds:
            return Finding.skip(self.name, "the subject has no style classifier (RGB or texture): nothing measures "
                                           "a style", params)
        subject.eval()
        G = subject.generator
        layer = self.layer or default_unit_layer(G)
        get_module(G, layer)
        notes: list[str] = [f"{CLASSIFIERS[k]} classifier: subject.{k}" for k in kinds]
        missing = [CLASSIFIERS[k] for k in CLASSIFIERS if k not in kinds]
        if missing:
            notes.append(f"no {missing[0]} classifier: its rows are missing")
        x = _layer_means(subject, data, layer, self.seed)                   # [N, U], all images
        n_units = x.shape[1]
        n_random, ks = self.n_random, list(self.ks)
        n_styles = None
        if self.budget_s:
            sizes, sizing = self._sized(subject, data, unit_costs_for(subject, data), n_units)
            n_random, ks, n_styles = sizes["n_random"], evenly(ks, sizes["ks"]), sizes["styles"]
            notes += sizing
        targets, pairs = self._plan(subject, data, n_styles)
        if self.styles is not None and len(targets) < len(set(self.styles)) and n_styles is None:
            notes.append(f"no images were generated toward {sorted(set(self.styles) - {subject.style_names[s] for s in targets})}; "
                         f"those styles are not removed")
        ks = sorted({min(int(k), n_units) for k in ks})
        names = list(subject.style_names)
        ids = data.style_ids.detach().cpu().numpy()
        lut = np.full(subject.num_styles, -1)
        lut[present] = np.arange(len(present))
        y = lut[ids]
        fold = crossfit_folds(y, self.seed + 17)
        z = fixed_z(subject, data, self.seed)
        dev = data.content.device

        # selection on half A (= the other fold), per fold f that is measured
        orders = {f: {} for f in (0, 1)}        # f -> style -> unit order
        tmeans = {f: {} for f in (0, 1)}        # f -> style -> [U] mean activation on half A
        for f in (0, 1):
            a = fold != f
            auc, dd = auroc_matrix(x[a], y[a], len(present)), cohens_d(x[a], y[a], len(present))
            for s in present:
                orders[f][s] = np.lexsort((-np.nan_to_num(dd[lut[s]], nan=-np.inf),
                                           -np.nan_to_num(auc[lut[s]], nan=-np.inf)))
                tmeans[f][s] = x[a & (ids == s)].mean(0)
        order_all = {s: select_units(x, y, len(present), int(lut[s]), n_units) for s in present}
        mean_all = {s: x[ids == s].mean(0) for s in present}

        sels = {(t, f): torch.as_tensor(np.flatnonzero((ids == t) & (fold == f)), device=dev)
                for t in present for f in (0, 1)}
        measure = self._measure(subject, kinds)
        pass_seed = lambda t, f: self.seed + 1000 * t + 100 * f   # noqa: E731
        base = {(t, f): _measured_pass(subject, data, z, sels[t, f], measure, pass_seed(t, f))
                for t in present for f in (0, 1)}

        def diff(t: int, edits: dict) -> dict[str, np.ndarray]:
            """Paired changes on the t-images of both halves, fold f edited by edits[f]."""
            parts = []
            for f in (0, 1):
                if not len(sels[t, f]):
                    continue
                after = _measured_pass(subject, data, z, sels[t, f], measure, pass_seed(t, f), layer, edits[f])
                parts.append({kk: after[kk] - base[t, f][kk] for kk in after})
            return {kk: np.concatenate([p[kk] for p in parts]) for kk in parts[0]}

        # a removal edit is the same for every style's images: one pass per half over all of them
        # (paired with its own unedited pass), not one small pass per style and half
        fold_sel = {f: torch.as_tensor(np.flatnonzero((lut[ids] >= 0) & (fold == f)), device=dev) for f in (0, 1)}
        fold_ids = {f: ids[fold_sel[f].cpu().numpy()] for f in (0, 1)}
        fold_seed = lambda f: self.seed + 500_000 + f   # noqa: E731
        fold_base = {f: _measured_pass(subject, data, z, fold_sel[f], measure, fold_seed(f)) for f in (0, 1)
                     if len(fold_sel[f])}

        def diff_all(edits: dict) -> dict[int, dict[str, np.ndarray]]:
            """diff(t, edits) for every present style t, from one edited pass per half."""
            per_fold = {}
            for f in fold_base:
                after = _measured_pass(subject, data, z, fold_sel[f], measure, fold_seed(f), layer, edits[f])
                per_fold[f] = {kk: after[kk] - fold_base[f][kk] for kk in after}
            return {t: {kk: np.concatenate([d[kk][fold_ids[f] == t] for f, d in per_fold.items()])
                        for kk in next(iter(per_fold.values()))} for t in present}

        roles: dict[tuple[int, int], tuple] = {}
        role_base: dict[tuple[int, int, int, int], dict[str, np.ndarray]] = {}

        def role(b: int, j: int) -> tuple:
            """Shuffled set j for style b (every k; ``shuffled_selection``, as ``ablation``): the images
            relabelled within each half, per measured half f the unit order ranked on the other half and
            b's mean activations over the images relabelled b there."""
            if (b, j) not in roles:
                perm, lab, order = shuffled_selection(x, y, fold, [fold != f for f in (0, 1)], len(present),
                                                      int(lut[b]), roles_rng(self.seed, layer, b, j))
                roles[b, j] = (perm, order, {f: x[(fold != f) & (lab == lut[b])].mean(0) for f in (0, 1)})
            return roles[b, j]

        def diff_role(t: int, b: int, j: int, edits: dict) -> dict[str, np.ndarray]:
            """diff(t, edits) for shuffled set j of style b: measured on the images that take the
            t-images' part (perm), rendered toward t, each paired with its own unedited pass."""
            perm, parts = role(b, j)[0], []
            for f in (0, 1):
                if not len(sels[t, f]):
                    continue
                sel = torch.as_tensor(perm[sels[t, f].cpu().numpy()], device=dev)
                if (t, b, j, f) not in role_base:
                    role_base[t, b, j, f] = _measured_pass(subject, data, z, sel, measure, pass_seed(t, f), toward=t)
                after = _measured_pass(subject, data, z, sel, measure, pass_seed(t, f), layer, edits[f], toward=t)
                parts.append({kk: after[kk] - role_base[t, b, j, f][kk] for kk in after})
            return {kk: np.concatenate([p[kk] for p in parts]) for kk in parts[0]}

        rng = np.random.default_rng(self.seed)
        self._nonfinite = 0
        removal, transfer = [], []
        for s in targets:
            for k in ks:
                tops = {f: orders[f][s][:k] for f in (0, 1)}
                edits = {f: ablate([int(u) for u in tops[f]], 0.0) for f in (0, 1)}
                changes = diff_all(edits)
                rand = []
                if k < n_units and n_random > 0:
                    for j in range(n_random):
                        if self.baseline == "shuffled":
                            order = role(s, j)[1]
                            rand.append(diff_role(s, s, j, {f: ablate([int(u) for u in order[f][:k]], 0.0)
                                                            for f in (0, 1)}))
                            continue
                        r = self._random_sets(rng, n_units, k)
                        rand.append(diff(s, {f: ablate(r[f], 0.0) for f in (0, 1)}))
                removal += self._removal_rows(layer, s, k, names, present, kinds, changes, rand, tops,
                                              _cli_ablate(layer, order_all[s][:k]))
        for a, b in pairs:
            for k in ks:
                tops = {f: orders[f][b][:k] for f in (0, 1)}
                edits = {f: insert([int(u) for u in tops[f]],
                                   torch.as_tensor(tmeans[f][b][tops[f]], dtype=torch.float32)) for f in (0, 1)}
                change = diff(a, edits)
                rand = []
                if k < n_units and n_random > 0:
                    for j in range(n_random):
                        if self.baseline == "shuffled":
                            _, order, means = role(b, j)
                            r = {f: [int(u) for u in order[f][:k]] for f in (0, 1)}
                            rand.append(diff_role(a, b, j, {f: insert(r[f], torch.as_tensor(
                                means[f][r[f]], dtype=torch.float32)) for f in (0, 1)}))
                            continue
                        r = self._random_sets(rng, n_units, k)
                        rand.append(diff(a, {f: insert(r[f], torch.as_tensor(
                            tmeans[f][b][r[f]], dtype=torch.float32)) for f in (0, 1)}))
                units = order_all[b][:k]
                transfer += self._transfer_rows(layer, a, b, k, names, kinds, change, rand, tops,
                                                _cli_insert(layer, units, mean_all[b][units]))
        if n_random < 1 or all(k >= n_units for k in ks):
            notes.append("no random sets (n_random = 0 or k is the whole layer): nothing is beyond random")
        elif 1 / (n_random + 1) > ALPHA:
            notes.append(f"with n_random = {n_random} p_random cannot reach {ALPHA} (floor {1 / (n_random + 1):.2g}): "
                         f"nothing can be beyond random; raise n_random to 19 or more")
        rem = pd.DataFrame(removal, columns=REMOVAL_COLUMNS)
        rem["on_target"] = rem["on_target"].astype(bool)
        tra = pd.DataFrame(transfer, columns=TRANSFER_COLUMNS)
        _verdicts_by_q(rem, tra)
        on = rem[rem["on_target"]]
        if n_random > 0 and len(on):
            fl = floor_note(on["p_random"].to_numpy(dtype=float), n_random, what="on-target p_random values",
                            param="n_random", min_share=0.05)
            notes += [fl] if fl else []
        strip_tables, arrays = self._strips(subject, data, z, layer, targets, pairs, ks, orders, tmeans, sels, fold,
                                            pass_seed, names)
        notes += self._notes(n_random, pairs)
        tables = {"style_removal": rem, "style_transfer": tra}
        if strip_tables is not None:
            tables["style_edits_strip"] = strip_tables
        return Finding(self.name, params, tables=tables, arrays=arrays, notes=notes,
                       provenance={"seed": self.seed, "data_fingerprint": data.fingerprint})

    @staticmethod
    def _random_sets(rng, n_units: int, k: int) -> dict[int, list[int]]:
        """baseline="random": one set of k units drawn uniformly per half, drawn independently for the
        two halves (the selected sets are chosen independently on them)."""
        return {f: [int(u) for u in np.sort(rng.choice(n_units, size=k, replace=False))] for f in (0, 1)}

    @staticmethod
    def _measure(subject, kinds):
        @torch.no_grad()
        def measure(images: Tensor) -> dict[str, np.ndarray]:
            out = {}
            for kind in kinds:
                logits = getattr(subject, kind)(images).float()
                out[f"{kind}:p"] = logits.softmax(1).cpu().numpy()
                out[f"{kind}:log_odds"] = log_odds(logits).cpu().numpy()
            return out
        return measure

    def _ci(self, v: np.ndarray, seed: int) -> tuple[float, float]:
        lo, hi, bad = bootstrap_t_mean_ci(v, self.n_boot, seed)
        self._nonfinite += bad
        return lo, hi

    @staticmethod
    def _random(rand: list[dict], key: str, col: int, effect: float, direction: int) -> dict:
        if not rand:
            return dict(p_random=float("nan"), n_sets=0, random_mean=float("nan"), random_low=float("nan"),
                        random_high=float("nan"))
        eff = np.array([r[key][:, col].astype(np.float64).mean() for r in rand])
        return dict(p_random=random_rank_pvalue(effect, eff, direction), n_sets=len(eff),
                    random_mean=float(eff.mean()), random_low=float(np.quantile(eff, 0.025)),
                    random_high=float(np.quantile(eff, 0.975)))

    def _removal_rows(self, layer, s, k, names, present, kinds, changes, rand, tops, edit) -> list[dict]:
        rows = []
        for ci, kind in enumerate(kinds):
            for mi, m in enumerate(MEASURES):
                key = f"{kind}:{m}"
                vals = {t: changes[t][key][:, t].astype(np.float64) for t in present}   # each style on its images
                bs = self.seed + 7919 * s + 31 * k + 3 * (2 * ci + mi)
                cis = {t: self._ci(vals[t], bs + 101 * t) for t in present}
                offs = [t for t in present if t != s]
                spec, slo, shi, bad = contrast_ci(vals[s], [vals[t] for t in offs], self.n_boot, bs + 1)
                self._nonfinite += bad
                on_eff = float(vals[s].mean())
                rnd = self._random(rand, key, s, on_eff, -1)
                for t in present:
                    on = t == s
                    row = dict(layer=layer, style=names[s], k=int(k), classifier=CLASSIFIERS[kind], measure=m,
                               target_style=names[t], on_target=on, effect=float(vals[t].mean()), ci_low=cis[t][0],
                               ci_high=cis[t][1], n=len(vals[t]), units_fold0=_join(tops[0]),
                               units_fold1=_join(tops[1]), edit=edit)
                    if on:
                        row.update(rnd, specificity=spec, spec_ci_low=slo, spec_ci_high=shi,
                                   target_share=_target_share(on_eff, [vals[o].mean() for o in offs]),
                                   verdict="")   # read from q_random over all rows: _verdicts_by_q
                    else:
                        row.update(p_random=float("nan"), n_sets=0, random_mean=float("nan"),
                                   random_low=float("nan"), random_high=float("nan"), specificity=float("nan"),
                                   spec_ci_low=float("nan"), spec_ci_high=float("nan"), target_share=float("nan"),
                                   verdict="")
                    rows.append(row)
        return rows

    def _transfer_rows(self, layer, a, b, k, names, kinds, change, rand, tops, edit) -> list[dict]:
        rows = []
        for ci, kind in enumerate(kinds):
            for mi, m in enumerate(MEASURES):
                key = f"{kind}:{m}"
                for t, direction in ((b, 1), (a, -1)):
                    v = change[key][:, t].astype(np.float64)
                    lo, hi = self._ci(v, self.seed + 7919 * a + 613 * b + 31 * k + 3 * (2 * ci + mi) + (t == a))
                    eff = float(v.mean())
                    rnd = self._random(rand, key, t, eff, direction)
                    rows.append(dict(layer=layer, source_style=names[a], style=names[b], k=int(k),
                                     classifier=CLASSIFIERS[kind], measure=m, target_style=names[t], effect=eff,
                                     ci_low=lo, ci_high=hi, n=len(v),
                                     direction="increase" if direction > 0 else "decrease", **rnd,
                                     verdict="",   # read from q_random: _verdicts_by_q
                                     units_fold0=_join(tops[0]), units_fold1=_join(tops[1]), edit=edit))
        return rows

    @torch.no_grad()
    def _strips(self, subject, data, z, layer, targets, pairs, ks, orders, tmeans, sels, fold, pass_seed, names):
        """Before / after thumbnails of the first removed style's first images of half 0 (edited
        with the units chosen on half 1 at the largest k), and of the first transfer pair."""
        if self.n_strip < 1 or not targets:
            return None, {}
        k = max(ks)
        rows, arrays = [], {}
        jobs = [("removal", targets[0], targets[0], ablate([int(u) for u in orders[0][targets[0]][:k]], 0.0))]
        if pairs:
            a, b = pairs[0]
            top = orders[0][b][:k]
            jobs.append(("transfer", a, b, insert([int(u) for u in top],
                                                  torch.as_tensor(tmeans[0][b][top], dtype=torch.float32))))
        from interp_gan.harvest.hooks import Trace
        for kind, src, style, edit in jobs:
            idx = sels[src, 0][:self.n_strip]
            zz = None if z is None else z[idx]
            with seeded(pass_seed(src, 0)):
                before = subject.generate(data.content[idx], data.style_ids[idx], zz)
            with Trace(subject.generator, layer, retain_output=False, edit=edit), seeded(pass_seed(src, 0)):
                after = subject.generate(data.content[idx], data.style_ids[idx], zz)
            arrays[f"strip_{kind}_before"] = thumbnails(before)
            arrays[f"strip_{kind}_after"] = thumbnails(after)
            rows.append(dict(kind=kind, source_style=names[src], style=names[style], k=int(k), n=len(idx)))
        return pd.DataFrame(rows), arrays

    def _notes(self, n_random: int, pairs) -> list[str]:
        out = ["units cross-fitted: chosen on one half of the images (stratified by style) and measured on the "
               "other, both ways; units_fold0 / units_fold1 name the set measured on each half; `edit` is the "
               "interp-gan edit argument with units chosen on all images",
               f"effects: mean paired change over images (edited minus unedited, same content, z and seed) with a "
               f"studentized bootstrap 95% CI ({self.n_boot} resamples); removal rows: each style's own p / "
               f"log-odds on the images generated toward it",
               f"p_random: one-sided rank among {n_random} baseline {'sets' if n_random != 1 else 'set'} of the same "
               f"size, one per half (baseline = {self.baseline}: " +
               ("the top k units by the same ranking with the images relabelled at random within each half, measured "
                "on the images that take the measured images' part" if self.baseline == "shuffled"
                else "k units drawn uniformly from the layer") + "); on-target rows only (random_mean, random_low, "
               "random_high: the baseline sets' mean and 2.5-97.5% range)",
               "specificity = on-target change minus the mean off-target change (stratified studentized bootstrap "
               "CI, with heavy ties its union with a moderated Welch t interval); 'specific' = beyond the baseline sets (q_random <= 0.05: BH over the on-target rows; CI below 0), specificity CI below 0, and every "
               "off-target CI above the on-target CI"]
        if pairs:
            out.append("transfer: the inserted style's top-k units are set to that style's mean activation (per "
                       "unit, measured on the other half) while generating the source style")
        out.append(f"{self._nonfinite} bootstrap resamples had no spread (t = +-inf, kept as the extremes they are; "
                   f"where they reach an interval's tail that side is Student's t bound)" if self._nonfinite
                   else "every bootstrap resample had spread")
        return out
