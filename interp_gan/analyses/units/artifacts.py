"""Artifact units: which units of a layer, when zero-ablated, make the images *more* realistic.

    f = build_analysis("artifact_units", layer="blocks.3.conv2", k=4, n_random=19).run(subject, data)
    f.tables["artifact_units"]   # layer, unit, rank, d_logit, ci_low, ci_high, d_kid, n
    f.tables["artifact_repair"]  # layer, units, baseline (top | random), k, measure, effect, ci_low, ci_high,
                                 # n_sets, p_random
    edit = repair_edit(subject, data, layer="blocks.3.conv2", k=4)     # ModelEdit; interp-gan repair CKPT --k 4

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
real" direction; the KID CI is a percentile bootstrap over generated and real images).
``repair_edit`` ranks on all images and returns the ``ModelEdit`` that ablates the top k.
A unit that raises D's logit need not be an artifact a person would see: look at the images.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from interp_gan.analyses.base import Analysis, AnalysisData, register_analysis
from interp_gan.analyses.common import fixed_z, seeded
from interp_gan.analyses.units.ablation import bootstrap_t_mean_ci, crossfit_folds, random_rank_pvalue
from interp_gan.findings import Finding
from interp_gan.harvest.hooks import Trace, ablate, default_unit_layer, get_module

__all__ = ["ArtifactUnits", "kid", "realism_logit", "classifier_features", "unit_scores", "repair_edit"]


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
    linears = [m for m in clf.modules() if isinstance(m, nn.Linear)]
    if not linears:
        return clf(images).float().flatten(1)
    got: list[Tensor] = []
    h = linears[-1].register_forward_hook(lambda m, i, o: got.append(i[0]))
    try:
        clf(images)
    finally:
        h.remove()
    return got[0].float().flatten(1)


def _kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def kid(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² between feature sets x [n,d] and y [m,d], cubic polynomial kernel (KID)."""
    n, m = len(x), len(y)
    kxx, kyy, kxy = _kernel(x, x), _kernel(y, y), _kernel(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())


def _kid_delta_ci(base: np.ndarray, edited: np.ndarray, real: np.ndarray, n_boot: int, seed: int
                  ) -> tuple[float, float, float]:
    """KID(edited, real) - KID(base, real) and its percentile bootstrap CI (generated images
    resampled in pairs, real images resampled independently)."""
    est = kid(edited, real) - kid(base, real)
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        i = rng.integers(0, len(base), len(base))
        j = rng.integers(0, len(real), len(real))
        reps.append(kid(edited[i], real[j]) - kid(base[i], real[j]))
    lo, hi = np.quantile(reps, [0.025, 0.975]) if reps else (np.nan, np.nan)
    return est, float(lo), float(hi)


@torch.no_grad()
def _pass(subject, data: AnalysisData, z: Tensor | None, sel: np.ndarray, seed: int, layer: str | None = None,
          units: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray | None, Tensor]:
    """Generate images ``sel`` (with ``units`` of ``layer`` zero-ablated) -> (logits [n], features
    [n,d] or None, images)."""
    D, clf = subject.discriminator, subject.classifier
    logits, feats, imgs = [], [], []
    for b, i in enumerate(range(0, len(sel), data.batch_size)):
        idx = torch.as_tensor(sel[i:i + data.batch_size])
        edit = Trace(subject.generator, layer, retain_output=False, edit=ablate(list(units), 0.0)) if units else None
        try:
            with seeded(seed + b):
                images = subject.generate(data.content[idx].to(subject.device), data.style_ids[idx].to(subject.device),
                                          None if z is None else z[idx])
        finally:
            if edit is not None:
                edit.close()
        logits.append(realism_logit(D, images, data.style_ids[idx].to(subject.device)).cpu().numpy())
        if clf is not None:
            feats.append(classifier_features(clf, images).cpu().numpy().astype(np.float64))
        imgs.append(images.cpu())
    return np.concatenate(logits), (np.concatenate(feats) if feats else None), torch.cat(imgs)


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
    base, _, _ = _pass(subject, data, z, sel, seed)
    units = range(_n_units(subject, layer, data, z)) if units is None else units
    return np.array([(_pass(subject, data, z, sel, seed, layer, [u])[0] - base).mean() for u in units])


def repair_edit(subject, data: AnalysisData, layer: str | None = None, k: int = 1, seed: int = 0):
    """The ``ModelEdit`` that zero-ablates the ``k`` units whose ablation most raises D's realism
    logit (ranked on all of ``data``)."""
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


# --- the analysis --------------------------------------------------------------------------------
@register_analysis(
    "artifact_units", title="Artifact units", order=45,
    references=("bau2019gandissect", "binkowski2018kid", "efron1993bootstrap"),
    fast=dict(layer="blocks.1.conv2", k=1, n_random=3, n_boot=20))
class ArtifactUnits(Analysis):
    """Rank units by how much ablating each raises realism; test the top k against random sets.

    layer: one layer (None = ``hooks.default_unit_layer``); k: units in the repair set;
    n_random: random k-sets for the baseline; n_boot: bootstrap resamples; seed.
    """

    def __init__(self, *, layer: str | None = None, k: int = 4, n_random: int = 19, n_boot: int = 200,
                 seed: int = 0) -> None:
        if k < 1 or n_random < 1 or n_boot < 1:
            raise ValueError("k, n_random and n_boot must be >= 1")
        self.layer, self.k, self.n_random, self.n_boot, self.seed = layer, k, n_random, n_boot, seed

    def estimate_cost(self, subject, data: AnalysisData, unit):
        """One pass per unit (and a base pass) on the ranking half; the top set, a base pass and
        ``n_random`` random sets on the other half."""
        from interp_gan.analyses.cost import Cost
        from interp_gan.harvest.hooks import get_module
        if subject.discriminator is None:
            return Cost(skip="this subject has no discriminator")
        layer = self.layer or default_unit_layer(subject.generator)
        n_units = getattr(get_module(subject.generator, layer), "out_channels", None) or 64
        half = len(data) / 2
        return Cost(forwards=half * (1 + n_units) + half * (2 + self.n_random))

    def run(self, subject, data: AnalysisData) -> Finding:
        if subject.discriminator is None:
            return Finding.skip(self.name, "this subject has no discriminator: realism is measured by its logit",
                                self.params())
        notes: list[str] = []
        layer = self.layer or default_unit_layer(subject.generator)
        z = fixed_z(subject, data, self.seed)
        fold = crossfit_folds(data.style_ids.cpu().numpy(), self.seed)
        rank_sel, test_sel = np.flatnonzero(fold == 0), np.flatnonzero(fold == 1)
        if len(test_sel) < 2 or len(rank_sel) < 2:
            return Finding.skip(self.name, f"too few images ({len(data.content)}) to split in two halves", self.params())
        n_units = _n_units(subject, layer, data, z)
        k = min(self.k, n_units)
        real = None
        if subject.classifier is None or data.style_images is None:
            notes.append("no independent classifier or no real style images: KID is not measured")
        else:
            with torch.no_grad():
                real = np.concatenate([classifier_features(subject.classifier,
                                                           data.style_images[i:i + data.batch_size].to(subject.device))
                                       .cpu().numpy().astype(np.float64)
                                       for i in range(0, len(data.style_images), data.batch_size)])
        # per unit, on the ranking half
        base_l, base_f, _ = _pass(subject, data, z, rank_sel, self.seed)
        rows = []
        for u in range(n_units):
            lg, ft, _ = _pass(subject, data, z, rank_sel, self.seed, layer, [u])
            v = lg - base_l
            lo, hi, _ = bootstrap_t_mean_ci(v, self.n_boot, self.seed + u)
            dk = kid(ft, real) - kid(base_f, real) if real is not None and ft is not None else np.nan
            rows.append(dict(layer=layer, unit=u, d_logit=float(v.mean()), ci_low=lo, ci_high=hi, d_kid=dk,
                             n=len(v)))
        units_df = pd.DataFrame(rows).sort_values(["d_logit", "unit"], ascending=[False, True], kind="stable")
        units_df.insert(2, "rank", np.arange(1, len(units_df) + 1))
        top = [int(u) for u in units_df["unit"][:k]]
        # the top-k set vs random k-sets, on the other half
        rng = np.random.default_rng(self.seed + 7)
        sets = [top] + [sorted(int(u) for u in rng.choice(n_units, size=k, replace=False)) for _ in range(self.n_random)]
        tb_l, tb_f, _ = _pass(subject, data, z, test_sel, self.seed)
        effects = []
        for s in sets:
            lg, ft, _ = _pass(subject, data, z, test_sel, self.seed, layer, s)
            effects.append((lg - tb_l, ft))
        rep = []
        d_top = effects[0][0]
        r_means = np.array([e[0].mean() for e in effects[1:]])
        lo, hi, _ = bootstrap_t_mean_ci(d_top, self.n_boot, self.seed + 1)
        common = dict(layer=layer, k=k, n=len(test_sel))
        rep.append(dict(common, units=";".join(map(str, top)), baseline="top", measure="d_logit",
                        effect=float(d_top.mean()), ci_low=lo, ci_high=hi, n_sets=1,
                        p_random=random_rank_pvalue(float(d_top.mean()), r_means, +1)))
        rep.append(dict(common, units="random", baseline="random", measure="d_logit", effect=float(r_means.mean()),
                        ci_low=float(np.quantile(r_means, 0.025)), ci_high=float(np.quantile(r_means, 0.975)),
                        n_sets=len(r_means), p_random=np.nan))
        if real is not None and tb_f is not None:
            k_top, klo, khi = _kid_delta_ci(tb_f, effects[0][1], real, self.n_boot, self.seed + 2)
            k_rand = np.array([kid(e[1], real) - kid(tb_f, real) for e in effects[1:]])
            rep.append(dict(common, units=";".join(map(str, top)), baseline="top", measure="d_kid", effect=k_top,
                            ci_low=klo, ci_high=khi, n_sets=1, p_random=random_rank_pvalue(k_top, k_rand, -1)))
            rep.append(dict(common, units="random", baseline="random", measure="d_kid", effect=float(k_rand.mean()),
                            ci_low=float(np.quantile(k_rand, 0.025)), ci_high=float(np.quantile(k_rand, 0.975)),
                            n_sets=len(k_rand), p_random=np.nan))
        notes.append(f"Units ranked by d_logit on {len(rank_sel)} images; the top {k} ({', '.join(map(str, top))}) "
                     f"ablated together on the other {len(test_sel)} images next to {self.n_random} random sets of "
                     f"{k} units (random rows: mean and 2.5-97.5% range over sets). d_logit > 0 and d_kid < 0 mean "
                     "more real. Repair: interp-gan repair CHECKPOINT --layer "
                     f"{layer} --k {k}. A unit D dislikes need not be an artifact a person sees: look at the images.")
        return Finding(self.name, params=self.params(),
                       tables={"artifact_units": units_df.reset_index(drop=True), "artifact_repair": pd.DataFrame(rep)},
                       notes=notes)
