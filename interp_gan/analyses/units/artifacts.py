"""Artifact units: which units of a layer, when zero-ablated, make the images *more* realistic.

    f = build_analysis("artifact_units", layer="blocks.3.conv2", k=4, k_max=8, n_random=19).run(subject, data)
    f.tables["artifact_units"]    # layer, unit, rank, d_logit, ci_low, ci_high, d_kid, n
    f.tables["artifact_repair"]   # layer, units, baseline (top | random), k, measure, effect, ci_low, ci_high,
                                  # n_sets, p_random
    f.tables["artifact_tradeoff"] # layer, k, units, measure, effect, ci_low, ci_high, n, ci_low_simul
                                  # (top 1..k_max, cumulative; ci_low_simul: d_logit rows, the gate of repair's k)
    f.tables["artifact_choice"]   # layer, k_max, k (0 = none qualifies), units, reason, rule
    f.arrays["repair_before"], f.arrays["repair_after"]   # uint8 [S, n_show, h, w, 3]
    plan = plan_repair(subject, data, layer="blocks.3.conv2", k_max=8)   # interp-gan repair CKPT --k 8
    plan.k, plan.units, plan.edit(), plan.summary()

GAN Dissection (Bau et al., ICLR 2019, section 4.2) found units that cause visible artifacts and
removed them by ablation, scoring each unit by how much ablating it raises realism. Here each
unit u is zero-ablated alone (the hook semantics of ``harvest.hooks.ablate``, the same as the
ablation analysis and ``interp-gan edit``) and two measures are taken on the same images, with
the same content, z and seeds as the unedited pass:

- ``d_logit``: the change of the discriminator's realism logit (``subject.discriminator``:
  ``adv_logit(image, style)`` when it has one, else its first output averaged), a paired
  difference per image with a studentized bootstrap CI. Positive = D finds the images more real.
- ``d_kid``: the change of the Kernel Inception Distance (Binkowski et al., ICLR 2018; unbiased
  MMD² with the cubic polynomial kernel) between the generated images and the real style images,
  in the feature space of the *independent* RGB style classifier (``subject.classifier``, the
  input of its last linear layer), not of D (D was trained against G; the classifier was not).
  Negative = closer to the real images.

Cross-fitted: units are ranked by ``d_logit`` on one half of the images (stratified by style,
seeded); the top ``k`` units are then ablated together on the *other* half and their effect on
both measures is compared with ``n_random`` random sets of ``k`` units of the same layer
(p_random = (1 + #{random sets at least as good}) / (n_random + 1), one-sided in the "more
real" direction). The top set's d_logit interval is the trade-off curve's at the same k (the same
images and seed, so the two tables print one interval); its d_kid has no interval, as in the curve.

Trade-off curve (``artifact_tradeoff``): on the same held-out half, the top 1, top 2, ... top
``k_max`` units of the ranking are ablated together (cumulative) and each k gets, against the
unedited pass on the same images: realism (``d_logit``, ``d_kid``), style (``d_style_log_odds``:
the paired change of the classifier's log-odds of each image's target style, log p - log(1 - p);
``d_style_acc``: the change of its accuracy, descriptive, no interval) and content
(``d_lum_corr``: the paired change of the correlation of the 16x16 luminance of output and
content image, the ``lum_corr`` of training's evaluation). Paired changes carry the studentized
bootstrap CI (Efron & Tibshirani 1993); ``d_kid`` and ``d_style_acc`` are shown without one (the
percentile bootstrap of a KID difference resamples duplicate images
into the unbiased estimate and can put the estimate at the edge of its own interval; it has no
coverage check yet, so neither table prints it). A note counts the bootstrap resamples without
spread (each resampling once; ``findings/studentized.py``). Ranking on one half and measuring on the other keeps the
curve honest: the units were not chosen on the images that score them.

Repair's choice (``choose_k``, ``CHOICE_RULE``): the k with the largest ``d_logit`` among those
whose simultaneous ``d_logit`` lower bound (``ci_low_simul``, level 1 - 0.05 / k_max) lies above 0 and whose ``d_style_log_odds`` CI reaches 0 or above; none
qualifies -> k = 0 and no repair. ``plan_repair`` runs the ranking, the curve and the choice
(what ``interp-gan repair`` does); ``repair_edit`` ranks on all images for a fixed k, unchecked.
A unit that raises D's logit need not be an artifact a person would see: look at the images.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from interp_gan.analyses.base import Analysis, AnalysisData, register_analysis
from interp_gan.analyses.common import fixed_z, log_odds, seeded, thumbnails
from interp_gan.analyses.units.ablation import bootstrap_t_mean_ci, crossfit_folds, random_rank_pvalue
from interp_gan.data.transforms import lum_corr
from interp_gan.findings import Finding
from interp_gan.harvest.hooks import Trace, ablate, default_unit_layer, get_module

__all__ = ["ArtifactUnits", "kid", "realism_logit", "classifier_features", "unit_scores", "repair_edit", "plan_repair",
           "RepairPlan", "choose_k", "before_after", "grid_image", "CHOICE_RULE"]


# --- measures ------------------------------------------------------------------------------------
def realism_logit(D: nn.Module, images: Tensor, style_ids: Tensor) -> Tensor:
    """[N] realism logit of a discriminator: ``adv_logit`` when it has one, else its (first) output
    averaged over everything but the batch."""
    if hasattr(D, "adv_logit"):
        return D.adv_logit(images, style_ids).float()
    out = D(images)
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.float().flatten(1).mean(1)


def classifier_features(clf: nn.Module, images: Tensor) -> Tensor:
    """[N, d] features of a classifier: the input of its last ``nn.Linear`` (its penultimate layer)."""
    return _classify(clf, images)[0]


def _kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def kid(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² between feature sets x [n,d] and y [m,d], cubic polynomial kernel (KID)."""
    n, m = len(x), len(y)
    kxx, kyy, kxy = _kernel(x, x), _kernel(y, y), _kernel(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())


def _classify(clf: nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
    """(features [N,d], logits [N,S]) of a classifier in one forward: the features are the input of
    its last ``nn.Linear`` (its output when it has none)."""
    linears = [m for m in clf.modules() if isinstance(m, nn.Linear)]
    got: list[Tensor] = []
    h = linears[-1].register_forward_hook(lambda m, i, o: got.append(i[0])) if linears else None
    try:
        logits = clf(images)
    finally:
        if h is not None:
            h.remove()
    logits = logits.float().flatten(1)
    return (got[0].float().flatten(1) if got else logits), logits


@torch.no_grad()
def _pass(subject, data: AnalysisData, z: Tensor | None, sel: np.ndarray, seed: int, layer: str | None = None,
          units: Sequence[int] | None = None) -> dict:
    """Generate images ``sel`` (with ``units`` of ``layer`` zero-ablated) -> per-image measures:
    ``logit`` [n] (D's realism logit), ``feat`` [n,d] (classifier features, or None), ``log_odds``
    [n] and ``correct`` [n] (the classifier's log-odds of, and hit on, the target style; or None),
    ``lum`` [n] (``lum_corr`` of output and content; None when the subject ignores its content)."""
    D, clf = subject.discriminator, subject.classifier
    out: dict[str, list] = {"logit": [], "feat": [], "log_odds": [], "correct": [], "lum": []}
    for b, i in enumerate(range(0, len(sel), data.batch_size)):
        idx = torch.as_tensor(sel[i:i + data.batch_size])
        content, ids = data.content[idx].to(subject.device), data.style_ids[idx].to(subject.device)
        edit = Trace(subject.generator, layer, retain_output=False, edit=ablate(list(units), 0.0)) if units else None
        try:
            with seeded(seed + b):
                images = subject.generate(content, ids, None if z is None else z[idx])
        finally:
            if edit is not None:
                edit.close()
        out["logit"].append(realism_logit(D, images, ids).cpu().numpy())
        if clf is not None:
            feats, logits = _classify(clf, images)
            out["feat"].append(feats.cpu().numpy().astype(np.float64))
            target = ids.long().view(-1, 1)
            out["log_odds"].append(log_odds(logits).gather(1, target)[:, 0].double().cpu().numpy())
            out["correct"].append((logits.argmax(1) == ids).double().cpu().numpy())
        if getattr(subject, "uses_content", True):
            out["lum"].append(lum_corr(images.float(), content.float()).cpu().numpy())
    return {k: (np.concatenate(v) if v else None) for k, v in out.items()}


@torch.no_grad()
def _judge_seconds(subject, data: AnalysisData) -> float:
    """Seconds per image to judge a generated image (D's logit, the classifier, ``lum_corr``), timed
    on one batch of content images standing in for generated ones (the second of two runs)."""
    import time

    b = min(len(data), data.batch_size)
    x, ids = data.content[:b].to(subject.device), data.style_ids[:b].to(subject.device)
    for _ in range(2):
        t0 = time.perf_counter()
        realism_logit(subject.discriminator, x, ids)
        if subject.classifier is not None:
            _classify(subject.classifier, x)
        lum_corr(x, x)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        dt = time.perf_counter() - t0
    return dt / b


def _n_units(subject, layer: str, data: AnalysisData, z) -> int:
    with torch.no_grad(), Trace(subject.generator, layer) as t:
        subject.generate(data.content[:1].to(subject.device), data.style_ids[:1].to(subject.device),
                         None if z is None else z[:1])
    return int(t.output.shape[1])


def unit_scores(subject, data: AnalysisData, layer: str, sel: np.ndarray | None = None, seed: int = 0,
                units: Sequence[int] | None = None) -> np.ndarray:
    """[U] mean paired change of D's realism logit when each unit is ablated alone (on images ``sel``)."""
    z = fixed_z(subject, data, seed)
    sel = np.arange(len(data.content)) if sel is None else sel
    base = _pass(subject, data, z, sel, seed)["logit"]
    units = range(_n_units(subject, layer, data, z)) if units is None else units
    return np.array([(_pass(subject, data, z, sel, seed, layer, [u])["logit"] - base).mean() for u in units])


def repair_edit(subject, data: AnalysisData, layer: str | None = None, k: int = 1, seed: int = 0):
    """The ``ModelEdit`` that zero-ablates the ``k`` units whose ablation most raises D's realism
    logit (ranked on all of ``data``; a fixed k with no check of what it costs: ``plan_repair``
    chooses k and checks the style cost on held-out images)."""
    from interp_gan.edits import ModelEdit

    if subject.discriminator is None:
        raise ValueError("repair needs a discriminator (the checkpoint has none): units are ranked by its realism logit")
    layer = layer or default_unit_layer(subject.generator)
    get_module(subject.generator, layer)
    scores = unit_scores(subject, data, layer, seed=seed)
    if not 1 <= k <= len(scores):
        raise ValueError(f"--k must be in 1..{len(scores)} (the units of {layer}); got {k}")
    top = [int(u) for u in np.argsort(-scores, kind="stable")[:k]]
    return ModelEdit.ablate(layer, top)


# --- the trade-off curve and repair's choice of k --------------------------------------------------
REALISM, STYLE, CONTENT = "d_logit", "d_style_log_odds", "d_lum_corr"
CHOICE_RULE = ("k = the one of 1..k_max with the largest d_logit effect among those whose simultaneous d_logit CI "
               "(level 1 - 0.05 / k_max, Bonferroni over the k_max sizes scanned) lies above 0 (a realism gain) "
               "and whose d_style_log_odds CI reaches 0 or above (no style cost beyond the CI); "
               "ties to the smaller k; none: k = 0, no repair")


def _paired(measure: str, v: np.ndarray, n_boot: int, seed: int, flat: list[int]) -> dict:
    """A paired row with its studentized CI; adds its resamples without spread to ``flat[0]``."""
    lo, hi, bad = bootstrap_t_mean_ci(v, n_boot, seed)
    flat[0] += bad
    return dict(measure=measure, effect=float(np.mean(v)), ci_low=lo, ci_high=hi, n=len(v))


def _curve_rows(k: int, units: Sequence[int], m: dict, base: dict, real: np.ndarray | None, n_boot: int,
                seed: int, k_max: int = 1) -> tuple[list[dict], int]:
    """(rows, resamples without spread) of one k: the ablated pass ``m`` against the unedited
    ``base`` (same images). The realism row also carries ``ci_low_simul``: its lower bound at level
    1 - 0.05 / k_max, the gate ``choose_k`` uses (k_max nested sets are scanned; one 95% interval
    each would propose a repair under the null about twice as often as 5%); it reads the same
    resamples as the row's 95% interval (same values and seed), so they are counted once."""
    v = m["logit"] - base["logit"]
    flat = [0]
    rows = [dict(_paired(REALISM, v, n_boot, seed, flat),
                 ci_low_simul=bootstrap_t_mean_ci(v, n_boot, seed, level=1 - 0.05 / max(1, k_max))[0])]
    if real is not None and m["feat"] is not None:   # no interval: see the module docstring
        rows.append(dict(measure="d_kid", effect=kid(m["feat"], real) - kid(base["feat"], real), ci_low=np.nan,
                         ci_high=np.nan, n=len(m["feat"])))
    if m["log_odds"] is not None:
        rows.append(_paired(STYLE, m["log_odds"] - base["log_odds"], n_boot, seed + 2, flat))
        rows.append(dict(measure="d_style_acc", effect=float(m["correct"].mean() - base["correct"].mean()),
                         ci_low=np.nan, ci_high=np.nan, n=len(m["correct"])))
    if m["lum"] is not None:
        rows.append(_paired(CONTENT, m["lum"] - base["lum"], n_boot, seed + 3, flat))
    us = ";".join(map(str, units))
    return [dict(k=k, units=us, **r) for r in rows], flat[0]


def choose_k(tradeoff: pd.DataFrame) -> tuple[int, str]:
    """(k, why) by ``CHOICE_RULE`` from an ``artifact_tradeoff`` table; k = 0: no k qualifies."""
    if tradeoff is None or not len(tradeoff):
        return 0, "no trade-off curve was measured"
    t = tradeoff.set_index(["measure", "k"])
    if STYLE not in t.index.get_level_values(0):
        return 0, "no independent style classifier: the style cost of an ablation cannot be checked"
    ks = sorted(int(k) for k in tradeoff.loc[tradeoff["measure"] == REALISM, "k"])
    gate = "ci_low_simul" if "ci_low_simul" in t.columns else "ci_low"
    ok = [k for k in ks if t.loc[(REALISM, k), gate] > 0 and t.loc[(STYLE, k), "ci_high"] >= 0]
    # name the bound the gate read: a k whose per-k 95% CI clears 0 while its simultaneous bound does
    # not is printed in the curve's table, and "no k raises realism beyond its CI" would contradict it
    its = ("with its simultaneous lower bound (ci_low_simul) above 0" if gate == "ci_low_simul"
           else "beyond its CI")
    if not ok:
        gain = [k for k in ks if t.loc[(REALISM, k), gate] > 0]
        if not gain:
            return 0, f"no k in 1..{max(ks)} raises D's realism logit {its}"
        return 0, (f"every k in 1..{max(ks)} that raises realism {its} ({', '.join(map(str, gain))}) also "
                   "lowers the target style's log-odds beyond its CI")
    best = max(ok, key=lambda k: (t.loc[(REALISM, k), "effect"], -k))
    return best, f"{len(ok)} of {len(ks)} k qualify; k = {best} has the largest realism gain among them"


def _fmt(row) -> str:
    ci = "" if not np.isfinite(row["ci_low"]) else f" [{row['ci_low']:+.3g}, {row['ci_high']:+.3g}]"
    return f"{row['effect']:+.3g}{ci}"


@dataclass
class RepairPlan:
    """What ``plan_repair`` found: the ranking, the trade-off curve, the chosen k and its units."""
    layer: str
    k_max: int
    k: int                              # 0: no k qualifies
    units: list[int]                    # the top k of the ranking (empty when k = 0)
    order: list[int]                    # all units, best first (ranked on the ranking half)
    reason: str
    units_table: pd.DataFrame
    tradeoff: pd.DataFrame
    n_rank: int
    n_test: int
    n_flat: int = 0                     # bootstrap resamples without spread (t = +-inf) in the two tables' CIs

    def edit(self):
        """The ``ModelEdit`` ablating the chosen units (None when k = 0)."""
        from interp_gan.edits import ModelEdit
        return ModelEdit.ablate(self.layer, self.units) if self.k else None

    def summary(self) -> str:
        """One or two lines: the chosen k and its numbers, or why none qualifies."""
        if not self.k:
            return f"repair: no k in 1..{self.k_max} qualifies ({self.reason}); nothing written"
        t = self.tradeoff[self.tradeoff["k"] == self.k].set_index("measure")
        parts = [f"{m} {_fmt(t.loc[m])}" for m in (REALISM, "d_kid", STYLE, "d_style_acc", CONTENT) if m in t.index]
        return (f"repair: k = {self.k} of 1..{self.k_max} ({self.layer} units {','.join(map(str, self.units))}; "
                f"{self.reason})\n  on {self.n_test} held-out images (95% CI): " + ", ".join(parts))


def _real_features(subject, data: AnalysisData) -> np.ndarray | None:
    if subject.classifier is None or data.style_images is None:
        return None
    with torch.no_grad():
        return np.concatenate([_classify(subject.classifier, data.style_images[i:i + data.batch_size]
                                         .to(subject.device))[0].cpu().numpy().astype(np.float64)
                               for i in range(0, len(data.style_images), data.batch_size)])


def curve_seed(seed: int, k: int) -> int:
    """The bootstrap seed of the trade-off curve's rows at set size k (``artifact_repair``'s top set too)."""
    return seed + 1000 + 10 * k


def _plan(subject, data: AnalysisData, layer: str, k_max: int, n_boot: int, seed: int):
    """Rank on one half, measure the cumulative top-k curve on the other -> (plan, state for the
    analysis: z, the held-out indices and unedited pass, the real features, the unit count)."""
    z = fixed_z(subject, data, seed)
    fold = crossfit_folds(data.style_ids.cpu().numpy(), seed)
    rank_sel, test_sel = np.flatnonzero(fold == 0), np.flatnonzero(fold == 1)
    if len(test_sel) < 2 or len(rank_sel) < 2:
        raise ValueError(f"too few images ({len(data.content)}) to split in two halves")
    n_units = _n_units(subject, layer, data, z)
    real = _real_features(subject, data)
    base = _pass(subject, data, z, rank_sel, seed)
    rows, n_flat = [], 0
    for u in range(n_units):
        m = _pass(subject, data, z, rank_sel, seed, layer, [u])
        v = m["logit"] - base["logit"]
        lo, hi, bad = bootstrap_t_mean_ci(v, n_boot, seed + u)
        n_flat += bad
        dk = kid(m["feat"], real) - kid(base["feat"], real) if real is not None and m["feat"] is not None else np.nan
        rows.append(dict(layer=layer, unit=u, d_logit=float(v.mean()), ci_low=lo, ci_high=hi, d_kid=dk, n=len(v)))
    units_df = pd.DataFrame(rows).sort_values(["d_logit", "unit"], ascending=[False, True], kind="stable")
    units_df.insert(2, "rank", np.arange(1, len(units_df) + 1))
    units_df = units_df.reset_index(drop=True)
    order = [int(u) for u in units_df["unit"]]
    k_max = min(k_max, n_units)
    tb = _pass(subject, data, z, test_sel, seed)
    curve = []
    for k in range(1, k_max + 1):
        m = _pass(subject, data, z, test_sel, seed, layer, order[:k])
        rows_k, bad = _curve_rows(k, order[:k], m, tb, real, n_boot, curve_seed(seed, k), k_max=k_max)
        curve += rows_k
        n_flat += bad
    # ci_low_simul (the d_logit rows) is the gate choose_k reads: without the column it would fall back
    # to the per-k 95% bound, which proposes a repair under the null about twice as often
    tradeoff = pd.DataFrame(curve, columns=["k", "units", "measure", "effect", "ci_low", "ci_high", "n",
                                            "ci_low_simul"])
    tradeoff.insert(0, "layer", layer)
    k, reason = choose_k(tradeoff)
    plan = RepairPlan(layer, k_max, k, order[:k], order, reason, units_df, tradeoff, len(rank_sel), len(test_sel),
                      n_flat)
    return plan, dict(z=z, test_sel=test_sel, base=tb, real=real, n_units=n_units)


AUTO_K_MAX = 8


def plan_repair(subject, data: AnalysisData, layer: str | None = None, k_max: int | None = None, n_boot: int = 200,
                seed: int = 0) -> RepairPlan:
    """Rank the units of ``layer`` by D's realism logit on one half of ``data`` (stratified by style,
    seeded), ablate the top 1..k_max cumulatively on the other half, and choose k by ``CHOICE_RULE``
    (k_max None: ``AUTO_K_MAX`` or the layer's unit count if smaller).

    plan = plan_repair(subject, data, layer="blocks.3.conv2", k_max=8)
    plan.k, plan.units, plan.tradeoff, plan.edit()        # edit(): None when no k qualifies
    """
    if subject.discriminator is None:
        raise ValueError("repair needs a discriminator (the checkpoint has none): units are ranked by its realism logit")
    layer = layer or default_unit_layer(subject.generator)
    get_module(subject.generator, layer)
    n_units = _n_units(subject, layer, data, fixed_z(subject, data, seed))
    k_max = min(AUTO_K_MAX, n_units) if k_max is None else k_max
    if not 1 <= k_max <= n_units:
        raise ValueError(f"--k must be in 1..{n_units} (the units of {layer}) or 'auto'; got {k_max}")
    return _plan(subject, data, layer, k_max, n_boot, seed)[0]


@torch.no_grad()
def before_after(subject, data: AnalysisData, layer: str, units: Sequence[int], n_show: int = 4,
                 seed: int = 0) -> tuple[Tensor, Tensor]:
    """The first ``n_show`` content images toward every style, unedited and with ``units`` of
    ``layer`` zero-ablated: same content, style, z and seed -> (before, after), each [S,n,3,H,W]."""
    z = fixed_z(subject, data, seed)
    n = min(n_show, len(data))
    content = data.content[:n].to(subject.device)
    before, after = [], []
    for s in range(subject.num_styles):
        ids = torch.full((n,), s, dtype=torch.long, device=subject.device)
        zz = None if z is None else z[:n]
        with seeded(seed + s):
            before.append(subject.generate(content, ids, zz).float().cpu())
        with seeded(seed + s), Trace(subject.generator, layer, retain_output=False, edit=ablate(list(units), 0.0)):
            after.append(subject.generate(content, ids, zz).float().cpu())
    return torch.stack(before), torch.stack(after)


def grid_image(before: np.ndarray, after: np.ndarray, pad: int = 2) -> np.ndarray:
    """uint8 [S,n,H,W,3] before / after -> one uint8 picture: a row per style, the n unedited images
    on the left, a gap, the n edited ones on the right (white background)."""
    S, n, H, W, _ = before.shape
    gap = max(pad, W // 4)
    out = np.full((S * (H + pad) + pad, 2 * n * (W + pad) + gap + pad, 3), 255, np.uint8)
    for s in range(S):
        y = pad + s * (H + pad)
        for j in range(n):
            x = pad + j * (W + pad)
            out[y:y + H, x:x + W] = before[s, j]
            x2 = pad + n * (W + pad) + gap + j * (W + pad)
            out[y:y + H, x2:x2 + W] = after[s, j]
    return out


# --- the analysis --------------------------------------------------------------------------------
@register_analysis(
    "artifact_units", title="Artifact units", order=45,
    references=("bau2019gandissect", "binkowski2018kid", "efron1993bootstrap"),
    fast=dict(layer="blocks.1.conv2", k=1, k_max=2, n_random=3, n_boot=20, n_show=1))
class ArtifactUnits(Analysis):
    """Rank units by how much ablating each raises realism; test the top k against random sets;
    measure the realism / style / content trade-off of the top 1..k_max and choose repair's k.

    layer: one layer (None = ``hooks.default_unit_layer``); k: units in the top-vs-random test;
    k_max: the longest prefix of the ranking on the trade-off curve; n_random: random k-sets for
    the baseline; n_boot: bootstrap resamples; n_show: content images per style in the before /
    after grid; seed.
    """

    def __init__(self, *, layer: str | None = None, k: int = 4, k_max: int = 8, n_random: int = 19,
                 n_boot: int = 200, n_show: int = 4, seed: int = 0) -> None:
        if k < 1 or k_max < 1 or n_random < 1 or n_boot < 1 or n_show < 1:
            raise ValueError("k, k_max, n_random, n_boot and n_show must be >= 1")
        self.layer, self.k, self.k_max, self.n_random, self.n_boot = layer, k, k_max, n_random, n_boot
        self.n_show, self.seed = n_show, seed

    def estimate_cost(self, subject, data: AnalysisData, unit):
        """One pass per unit (and a base pass) on the ranking half; on the other half a base pass,
        the top set, ``n_random`` random sets and the top 1..k_max; the before / after grid
        (n_show images toward every style, twice). Every generated image of the halves is also
        judged (D, the classifier, the content measure): that time is measured here on one batch."""
        from interp_gan.analyses.cost import Cost
        if subject.discriminator is None:
            return Cost(skip="this subject has no discriminator")
        layer = self.layer or default_unit_layer(subject.generator)
        n_units = getattr(get_module(subject.generator, layer), "out_channels", None) or 64
        half = len(data) / 2
        judged = half * (1 + n_units) + half * (2 + self.n_random + min(self.k_max, n_units))
        grid = 2 * subject.num_styles * min(self.n_show, len(data))
        return Cost(forwards=judged + grid, other_s=judged * _judge_seconds(subject, data))
    def run(self, subject, data: AnalysisData) -> Finding:
        if subject.discriminator is None:
            return Finding.skip(self.name, "this subject has no discriminator: realism is measured by its logit",
                                self.params())
        notes: list[str] = []
        layer = self.layer or default_unit_layer(subject.generator)
        if len(data.content) < 4:
            return Finding.skip(self.name, f"too few images ({len(data.content)}) to split in two halves", self.params())
        try:
            plan, st = _plan(subject, data, layer, self.k_max, self.n_boot, self.seed)
        except ValueError as e:
            if "too few images" in str(e):
                return Finding.skip(self.name, str(e), self.params())
            raise
        z, test_sel, tb, real, n_units = st["z"], st["test_sel"], st["base"], st["real"], st["n_units"]
        if real is None:
            notes.append("no independent classifier or no real style images: KID is not measured")
        if subject.classifier is None:
            notes.append("no independent classifier: the style cost is not measured, so repair chooses no k")
        if not getattr(subject, "uses_content", True):
            notes.append("the subject ignores its content input: content preservation is not measured")
        k = min(self.k, n_units)
        top = plan.order[:k]
        # the top-k set vs random k-sets, on the held-out half
        rng = np.random.default_rng(self.seed + 7)
        sets = [top] + [sorted(int(u) for u in rng.choice(n_units, size=k, replace=False)) for _ in range(self.n_random)]
        effects = []
        for s_ in sets:
            m = _pass(subject, data, z, test_sel, self.seed, layer, s_)
            effects.append((m["logit"] - tb["logit"], m["feat"]))
        rep = []
        d_top = effects[0][0]
        r_means = np.array([e[0].mean() for e in effects[1:]])
        # the top k's d_logit is the trade-off curve's row for this k (the same images and pass): the same
        # seed, so the two tables print one interval, not two that may disagree about 0 (and its resamples
        # without spread are the curve row's, counted in plan.n_flat, unless k is beyond the curve's k_max)
        lo, hi, bad = bootstrap_t_mean_ci(d_top, self.n_boot, curve_seed(self.seed, k))
        n_flat = plan.n_flat + (bad if k > plan.k_max else 0)
        common = dict(layer=layer, k=k, n=len(test_sel))
        rep.append(dict(common, units=";".join(map(str, top)), baseline="top", measure="d_logit",
                        effect=float(d_top.mean()), ci_low=lo, ci_high=hi, n_sets=1,
                        p_random=random_rank_pvalue(float(d_top.mean()), r_means, +1)))
        rep.append(dict(common, units="random", baseline="random", measure="d_logit", effect=float(r_means.mean()),
                        ci_low=float(np.quantile(r_means, 0.025)), ci_high=float(np.quantile(r_means, 0.975)),
                        n_sets=len(r_means), p_random=np.nan))
        if real is not None and tb["feat"] is not None:
            # no interval: the KID difference's percentile bootstrap has no coverage check (module docstring)
            k_top = kid(effects[0][1], real) - kid(tb["feat"], real)
            k_rand = np.array([kid(e[1], real) - kid(tb["feat"], real) for e in effects[1:]])
            rep.append(dict(common, units=";".join(map(str, top)), baseline="top", measure="d_kid", effect=k_top,
                            ci_low=np.nan, ci_high=np.nan, n_sets=1, p_random=random_rank_pvalue(k_top, k_rand, -1)))
            rep.append(dict(common, units="random", baseline="random", measure="d_kid", effect=float(k_rand.mean()),
                            ci_low=float(np.quantile(k_rand, 0.025)), ci_high=float(np.quantile(k_rand, 0.975)),
                            n_sets=len(k_rand), p_random=np.nan))
        # the before / after grid of the chosen k (the top 1 when none qualifies, to look at)
        shown = plan.units or plan.order[:1]
        before, after = before_after(subject, data, layer, shown, self.n_show, self.seed)
        S, n = before.shape[:2]
        arrays = {}
        for key, imgs in (("repair_before", before), ("repair_after", after)):
            t = thumbnails(imgs.flatten(0, 1))                        # [S*n,h,w,3] uint8, at most 64 px
            arrays[key] = t.reshape(S, n, *t.shape[1:])
        choice = pd.DataFrame([dict(layer=layer, k_max=plan.k_max, k=plan.k, units=";".join(map(str, plan.units)),
                                    shown_units=";".join(map(str, shown)), reason=plan.reason, rule=CHOICE_RULE,
                                    n_rank=plan.n_rank, n_test=plan.n_test)])
        notes.append(f"Units ranked by d_logit on {plan.n_rank} images; the top {k} ({', '.join(map(str, top))}) "
                     f"ablated together on the other {plan.n_test} images next to {self.n_random} random sets of "
                     f"{k} units (random rows: mean and 2.5-97.5% range over sets). d_logit > 0 and d_kid < 0 mean "
                     "more real. A unit D dislikes need not be an artifact a person sees: look at the images.")
        notes.append(f"Trade-off: the top 1..{plan.k_max} units (ranked on the first half) ablated cumulatively on "
                     f"the held-out {plan.n_test} images, so the curve is not fitted to the images it is measured on. "
                     + (f"Repair's choice: k = {plan.k} ({plan.reason}): interp-gan repair CHECKPOINT --layer {layer} "
                        f"--k {plan.k_max}." if plan.k else f"Repair's choice: none ({plan.reason})."))
        notes.append(f"{n_flat} bootstrap resamples had no spread (t = +-inf, kept as the extremes they are; "
                     f"where they reach an interval's tail that side is Student's t bound)" if n_flat
                     else "every bootstrap resample had spread")
        return Finding(self.name, params=self.params(),
                       tables={"artifact_units": plan.units_table, "artifact_repair": pd.DataFrame(rep),
                               "artifact_tradeoff": plan.tradeoff, "artifact_choice": choice},
                       arrays=arrays, notes=notes)
