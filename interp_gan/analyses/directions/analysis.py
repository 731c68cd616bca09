"""Latent direction discovery in style space, evaluated with confidence intervals.

    f = build_analysis("directions", methods=("pca", "sefa", "svm", "random"), n_directions=4,
                       steps=(-3, -1.5, 0, 1.5, 3), n_images=16).run(subject, data)
    f.tables["directions"]            # method, space, index, style, effect (log-odds), ci_low, ci_high,
                                      # p_random, q_random, beyond_random, step_length, p_value, q_value, ...
    f.tables["direction_agreement"]   # method_a, index_a, method_b, index_b, cosine
    f.arrays["directions"]            # [rows, D] unit vectors, row i = table row i
    f.arrays["traversal_img0"]        # [rows, n_steps, h, w, 3] uint8 thumbnails
    f.arrays["random_null_effects"]   # [rows, n_random_max]: random effects at each row's step length, in the
                                      # order drawn, NaN past the row's n_random_used (n_random_max = n_random:
                                      # [rows, n_random], as before)

    # a model without a latent (CycleGAN, any nn.Module): edit a layer's channel activations
    build_analysis("directions", layer="model.12", methods=("pca", "random")).run(subject, data)

Spaces: ``style_code`` (the mapping network's output, edits applied through
``subject.stylize_code``), ``z`` (edit z, map, stylise) and ``activation`` (channel means of
``layer``; an edit adds the direction to every location via a hook, GANSpace's activation
variant). The methods live in ``directions_methods`` (GANSpace PCA, Härkönen et al. NeurIPS
2020; SeFa, Shen & Zhou CVPR 2021; InterFaceGAN linear SVM and its conditional variant, Shen
et al. CVPR 2020; a random-direction baseline) and ``directions_voynov`` ("voynov": Voynov &
Babenko ICML 2020, a direction matrix learned with a reconstructor; opt-in, as it trains:
about voynov_restarts x voynov_steps x voynov_batch_size x 4 generator forwards, on the first
evaluation images; of the restarts, the run with the lowest training loss is kept).

Each discovered direction d is walked over ``steps`` in units of the sample std along d; its
largest step has Euclidean length ``step_length``. Measured on the evaluation images with the
independent classifier: which style the positive end moves toward (the style whose log-odds
rise most at the largest step), that change in log-odds, log p/(1-p) (as ablation measures
it; ``effect_prob`` is the same change in probability), with a BCa bootstrap CI over images
(Efron 1987; widened for small n as Hesterberg 2015 proposes) -- cross-fitted over two random
halves of the images, so that choosing the style does not bias the effect upward
(``_effect``; Chernozhukov et al. 2018's sample splitting).

Beyond random (the headline test): the ``n_random`` random unit directions are walked the
*same Euclidean step* as the direction tested and measured the same way; ``p_random`` =
(1 + #{random effects >= this effect}) / (1 + n_random), a Monte Carlo test that is exact
when the direction is, for the style, no different from a random one (the random
directions and a null direction are then exchangeable). ``q_random``: BH over the discovered
directions; ``beyond_random``: q_random <= 0.05. Random rows are walked at one reference
length (the discovered directions' median step_length) and get p_random against the other
random rows (a calibration check). With ``n_random_max`` > ``n_random`` the baselines are
sequential (``findings/sequential.py``, Besag & Clifford 1991): every discovered direction takes
the first ``n_random`` as above; one that fewer than ``h`` of them match walks further random
directions (the same seeded sequence, one at a time) until ``h`` do (p_random = h / l, l the
directions walked) or ``n_random_max`` were walked (p_random = (1 + #) / (1 + n_random_max), which
can reach 1/(1 + n_random_max)); one that ``h`` or more match keeps the fixed rule's p.
``n_random_used`` says how many each p_random read; random rows are never extended. P(p_random <= a)
<= a still holds under the null. ``p_value`` / ``q_value`` (a sign-flip test of mean change
= 0) only say the edit moves the classifier at all -- any edit does, random ones included --
and are not verdicts. Also: content preservation (the lowest mean SSIM of any step's output
to the unedited output) and the units of ``unit_layer`` it moves most (mean |Δ activation|;
ids as in dissection). For SeFa the edit is also applied to one AdaIN affine at a time
(table ``directions_layerwise``, effect in log-odds).

Cost (``estimate_cost``, docs/scaling.md): the activation samples, every non-zero step of every
direction on the evaluation images, the random baselines at each direction's length and
Voynov's training; with ``n_random_max`` the estimate prices every discovered direction walking
all ``n_random_max`` (the worst case: "up to"). With ``budget_s`` the run is sized to fit it:
``n_random_max`` back towards ``n_random`` (reaching it turns the sequential part off), Voynov's
restarts and steps,
then ``n_random`` (down to 19 with a classifier; 4 without one, where the random walks give
only SSIM), ``n_images`` (16 with a classifier, else 2), ``n_directions`` (2), ``n_samples``
(64), and last Voynov is dropped; the notes and ``params["sized_to_budget"]`` say what ran.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from interp_gan.analyses.directions import methods as dm
from interp_gan.analyses.common import channel_means, log_odds, thumbnails
from interp_gan.analyses.base import Analysis, AnalysisData, register_analysis
from interp_gan.analyses.cost import Cost, UnitCosts, halve_to, size_to_budget, unit_costs_for
from interp_gan.analyses.directions.voynov import fit_voynov_babenko
from interp_gan.harvest.hooks import Trace, add_vector, default_unit_layer, get_module, spatial_layers, style_blocks
from interp_gan.findings import Finding
from interp_gan.findings.sequential import (DEFAULT_H, coarse_h_note, expected_null_draws,
                                            sequential_pvalues)
from interp_gan.findings.stats import bh_qvalues, bootstrap_interval, floor_note, permutation_pvalue

__all__ = ["Directions"]

_METHODS = ("pca", "sefa", "svm", "svm_cond", "random", "voynov")
_SPACES = ("style_code", "z", "activation")


@dataclass
class _Space:
    name: str
    samples: np.ndarray                      # [N, D]: PCA / SVM input and the step unit
    labels: np.ndarray | None                # [N] style of each sample, or None
    render: Callable[..., tuple[Tensor, Tensor | None]]  # (offset [D] | None, affine, retain) -> (images, act)
    render_codes: Callable[[Tensor], Tensor] | None = None  # voynov: codes [B, D] -> images [B,3,H,W], B fixed
    base: np.ndarray | None = None                           # voynov: base codes c (activation: offsets, 0)
    layer: str | None = None                                 # activation space: the layer it lives in


def _retaining(G, retain: str | None, fn: Callable[[], Tensor]) -> tuple[Tensor, Tensor | None]:
    """Run fn() while retaining ``retain``'s output (registered last, so it sees any edit there)."""
    if retain is None:
        return fn(), None
    with Trace(G, retain) as t:
        img = fn()
    return img, t.output


@register_analysis(
    "directions", title="Latent style directions", order=50,
    references=("shen2021sefa", "harkonen2020ganspace", "shen2020interfacegan", "efron1993bootstrap"),
    fast=dict(methods=("pca", "sefa", "random"), n_samples=64, n_directions=2, n_random=2, n_images=8,
              steps=(-2.0, 0.0, 2.0), n_boot=20))
class Directions(Analysis):
    def __init__(self, *, methods: tuple[str, ...] = ("pca", "sefa", "svm", "random"), space: str | None = None,
                 layer: str | None = None, unit_layer: str | None = None, n_samples: int = 256,
                 n_directions: int = 4, n_random: int = 19, n_random_max: int | None = None, h: int = DEFAULT_H,
                 steps: tuple[float, ...] = (-3, -1.5, 0, 1.5, 3), n_images: int = 16,
                 n_boot: int = 1000, n_perm: int = 1000, n_grid_images: int = 2, layerwise: bool = True,
                 voynov_steps: int = 300, voynov_batch_size: int = 8, voynov_lr: float = 0.1,
                 voynov_restarts: int = 3, seed: int = 0, budget_s: float | None = None) -> None:
        self.methods, self.space, self.layer, self.unit_layer = tuple(methods), space, layer, unit_layer
        self.n_samples, self.n_directions, self.steps, self.n_images = n_samples, n_directions, tuple(steps), n_images
        self.n_random = n_random   # random baselines, walked each row's step length: p_random >= 1/(1+n_random)
        # sequential baselines (findings/sequential.py): a discovered direction with fewer than h random
        # directions at least as strong among the first n_random draws more, up to n_random_max
        # (None = n_random: off, the fixed rule); p_random then reaches 1/(1+n_random_max)
        self.n_random_max, self.h = n_random_max, h
        self.n_boot, self.n_perm, self.n_grid_images = n_boot, n_perm, n_grid_images
        self.layerwise, self.seed = layerwise, seed
        self.voynov_steps, self.voynov_batch_size, self.voynov_lr = voynov_steps, voynov_batch_size, voynov_lr
        self.voynov_restarts = voynov_restarts   # independent runs; the lowest training loss is kept
        self.budget_s = budget_s   # seconds: over it, cut Voynov's runs, random baselines, images, ... (_SIZING)

    # --- cost (analyses/cost.py) ---------------------------------------------------------------------
    def _passes(self, subject, data: AnalysisData, unit: UnitCosts, sz: dict) -> Cost:
        """Generator passes for sizes ``sz``: the samples of an activation space (forwards stopped
        at the layer), the walks (every non-zero step of every direction, on n_images images;
        SeFa also per affine), the random baselines at each discovered direction's length (with a
        classifier), and Voynov & Babenko's training (restarts x steps x batch, a forward without
        and one with gradient each)."""
        G = subject.generator
        space = self.space or ("style_code" if subject.has_latent else "activation")
        n = min(sz["n_images"], len(data))
        k = sz["n_directions"]
        S = subject.num_styles
        fwd = 0.0
        if space == "activation":
            layer = self.layer or default_unit_layer(G)
            d = unit.channels(layer) or k
            fwd += min(sz["n_samples"], len(data)) * unit.fraction(layer)
        else:
            d = subject.style_dim or k
        pairs = S * (S - 1) // 2
        rows = {"pca": min(k, d), "random": sz["n_random"], "voynov": min(k, d) if sz["voynov"] else 0,
                "sefa": min(k, d) if space == "style_code" and getattr(G, "style_affines", None) else 0,
                "svm": min(k, pairs) if S > 1 else 0, "svm_cond": min(k, pairs) if S > 2 else 0}
        rows = {m: r for m, r in rows.items() if m in self.methods}
        steps = sum(1 for t in self.steps if t != 0)
        walks = n * (1 + steps * sum(rows.values()))
        judged = n * (1 + sum(rows.values()))                 # the unedited images and each walk's end
        if self.layerwise and rows.get("sefa"):
            walks += n * rows["sefa"] * len(_affine_names(G))
            judged += n * rows["sefa"] * len(_affine_names(G))
        has_clf = (subject.classifier or subject.texture_classifier) is not None
        if has_clf and "random" in rows:                      # the worst case: every direction draws n_random_max
            walks += n * sz["n_random_max"] * (sum(rows.values()) - rows["random"])
            judged += n * sz["n_random_max"] * (sum(rows.values()) - rows["random"])
        fwd += walks
        both = subject.classifier is not None and subject.texture_classifier is not None
        judged *= 0.5 if both else 1.0                        # one classifier judges (classify_s times both)
        grads = 0.0
        if rows.get("voynov"):
            runs = sz["voynov_restarts"] * sz["voynov_steps"] * self.voynov_batch_size
            fwd, grads = fwd + runs, runs
        return Cost(forwards=fwd, grads=grads, classified=judged if has_clf else 0.0)

    def _sized(self, subject, data: AnalysisData, unit: UnitCosts) -> tuple[dict, list[str]]:
        sizes = {"n_random_max": self._n_max(self.n_random), "voynov_restarts": self.voynov_restarts,
                 "voynov_steps": self.voynov_steps,
                 "n_random": self.n_random, "n_images": self.n_images, "n_directions": self.n_directions,
                 "n_samples": self.n_samples, "voynov": "voynov" in self.methods}
        drop = lambda v: False if v else None  # noqa: E731  (the last cut: Voynov not run)
        # with a classifier the random directions are p_random's null (>= 19: it can reach 0.05) and
        # the images carry each effect's CI (>= 16); without one neither statistic exists and the walks
        # give only content preservation (SSIM) and the thumbnails
        clf = (subject.classifier or subject.texture_classifier) is not None
        floor_random = 19 if clf else 4
        floor_images = 16 if clf else max(2, self.n_grid_images)
        # first the sequential baselines past n_random (only directions that beat the random ones would
        # draw them, but the estimate prices every direction drawing all n_random_max)
        cuts = [("n_random_max", halve_to(self.n_random)),
                ("voynov_restarts", halve_to(1)), ("voynov_steps", halve_to(min(self.voynov_steps, 100))),
                ("n_random", halve_to(min(self.n_random, floor_random))),
                ("n_images", halve_to(min(self.n_images, floor_images))),
                ("n_directions", halve_to(min(self.n_directions, 2))),
                ("n_samples", halve_to(min(self.n_samples, 64))), ("voynov", drop)]
        sized, notes = size_to_budget(sizes, lambda sz: self._passes(subject, data, unit, self._off(sz)).seconds(unit),
                                      self.budget_s, cuts, what=self.name)
        return self._off(sized), notes

    def _n_max(self, n_random: int) -> int:
        """Random baselines a discovered direction may draw: n_random_max (None: n_random, the fixed rule)."""
        return n_random if self.n_random_max is None else max(n_random, int(self.n_random_max))

    def _off(self, sz: dict) -> dict:
        """Sizes with n_random_max cut back to the configured n_random read as off (it follows n_random)."""
        return {**sz, "n_random_max": sz["n_random"] if sz["n_random_max"] <= self.n_random
                else max(sz["n_random_max"], sz["n_random"])}

    def estimate_cost(self, subject, data: AnalysisData, unit: UnitCosts) -> Cost:
        if self.space in ("style_code", "z") and not subject.has_latent:
            return Cost(skip=f"space={self.space!r} needs a latent style space")
        try:
            sizes, notes = self._sized(subject, data, unit)
        except LookupError as e:
            return Cost(notes=[f"will fail: {e}"])
        cost = self._passes(subject, data, unit, sizes)
        cost.notes += notes
        has_clf = (subject.classifier or subject.texture_classifier) is not None   # else no p_random to extend
        if sizes["n_random_max"] > sizes["n_random"] and "random" in self.methods and has_clf:
            null = expected_null_draws(h=self.h, n_min=sizes["n_random"], n_max=sizes["n_random_max"])
            cost.notes.append(f"up to {sizes['n_random_max']} random baselines per discovered direction (sequential, "
                              f"priced as if every one drew them all; one with no effect draws about {null:.0f})")
        return cost

    # --- input checks and the space -----------------------------------------------------------
    def _check(self) -> None:
        bad = [m for m in self.methods if m not in _METHODS]
        if bad:
            raise ValueError(f"unknown direction method(s) {bad}; expected some of {_METHODS}")
        if "random" in self.methods and self.n_random < 1:
            raise ValueError(f"n_random must be >= 1 random baseline directions, got {self.n_random} "
                             f"(19 lets p_random reach 0.05); or drop 'random' from methods")
        if self.n_random_max is not None and self.n_random_max < self.n_random or self.h < 1:
            raise ValueError(f"n_random_max must be >= n_random ({self.n_random}) and h >= 1, got n_random_max="
                             f"{self.n_random_max}, h={self.h}; n_random_max = n_random (or none) turns the "
                             "sequential baselines off")
        if self.space is not None and self.space not in _SPACES:
            raise ValueError(f"space must be one of {_SPACES} or None (auto), got {self.space!r}")
        if not any(s > 0 for s in self.steps) or 0 not in self.steps:
            raise ValueError(f"steps must include 0 and a positive step, got {self.steps}")

    def _space(self, subject, data: AnalysisData, content: Tensor, ids: Tensor, z: Tensor | None) -> _Space:
        G, dev = subject.generator, subject.device
        space = self.space or ("style_code" if subject.has_latent else "activation")
        if space == "activation":
            layer = self.layer or default_unit_layer(G)          # a model nobody configured: the default layer
            get_module(G, layer)                                 # LookupError with close matches
            n = min(self.n_samples, len(data))
            dz = None if not subject.has_latent else (data.z[:n] if data.z is not None
                                                       else subject.sample_z(n, self.seed + 2))
            samples = channel_means(subject, layer, data.content[:n].to(dev), data.style_ids[:n].to(dev),
                                    None if dz is None else dz.to(dev), data.batch_size)
            labels = data.style_ids[:n].cpu().numpy() if subject.num_styles > 1 else None

            def render(off, affine=None, retain=None):
                gen = lambda: subject.generate(content, ids, z)  # noqa: E731
                if off is None:
                    return _retaining(G, retain, gen)
                with Trace(G, layer, edit=add_vector(off.to(dev, torch.float32))):
                    return _retaining(G, retain, gen)
            cb, ib, zb = _vb_batch(self.voynov_batch_size, content, ids, z)

            def render_codes(off):                               # per-image channel offsets [B, C]
                shift = lambda x, _: x + off.view(*off.shape, *[1] * (x.dim() - 2))  # noqa: E731
                with Trace(G, layer, edit=shift):
                    return subject.generate(cb, ib, zb)
            return _Space("activation", samples, labels, render, render_codes, np.zeros((1, samples.shape[1])), layer)

        zs = subject.sample_z(self.n_samples, self.seed)
        sid = torch.arange(self.n_samples, device=dev) % subject.num_styles
        code0 = subject.style_code(ids, z)
        cb, ib, _ = _vb_batch(self.voynov_batch_size, content, ids, z)
        if space == "z":
            def render(off, affine=None, retain=None):
                zz = z if off is None else z + off.to(dev, z.dtype)
                return _retaining(G, retain, lambda: subject.stylize_code(content, subject.style_code(ids, zz)))
            return _Space("z", zs.double().cpu().numpy(), None, render,
                          lambda zz: subject.stylize_code(cb, subject.style_code(ib, zz)), zs.double().cpu().numpy())

        def render(off, affine=None, retain=None):
            if off is None:
                return _retaining(G, retain, lambda: subject.stylize_code(content, code0))
            off = off.to(dev, code0.dtype)
            if affine is None:
                return _retaining(G, retain, lambda: subject.stylize_code(content, code0 + off[None]))
            mod = get_module(G, affine)                        # affine(code + d) - affine(code) = W d
            with Trace(G, affine, edit=add_vector(affine_matrix(mod) @ off)):
                return _retaining(G, retain, lambda: subject.stylize_code(content, code0))
        codes = subject.style_code(sid, zs).double().cpu().numpy()
        return _Space("style_code", codes, sid.cpu().numpy() if subject.num_styles > 1 else None, render,
                      lambda c: subject.stylize_code(cb, c), codes)

    # --- the directions ----------------------------------------------------------------------------
    def _directions(self, subject, sp: _Space, notes: list[str]) -> list[tuple[str, int, str, np.ndarray]]:
        k, d = self.n_directions, sp.samples.shape[1]
        rows: list[tuple[str, int, str, np.ndarray]] = []
        names = subject.style_names
        for m in self.methods:
            if m == "pca":
                if len(sp.samples) <= d:
                    notes.append(f"pca: {len(sp.samples)} samples <= {d} dims; variances use Ledoit-Wolf shrinkage")
                dirs, _ = dm.pca_directions(sp.samples, min(k, d))
                rows += [(m, i, f"PC{i}", v) for i, v in enumerate(dirs)]
            elif m == "sefa":
                affines = getattr(subject.generator, "style_affines", None)
                if sp.name != "style_code" or not affines:
                    notes.append(f"sefa skipped: it factorises style-affine weights, which needs the style_code "
                                 f"space of a generator with style_affines (space is {sp.name})")
                    continue
                mats = [affine_matrix(a) for a in affines]
                if any(m.shape[1] != d for m in mats):
                    notes.append(f"sefa skipped: the style affines read {mats[0].shape[1]}-d codes but this style "
                                 f"code space is {d}-d (SeFa applies in the space the affines read, e.g. StyleGAN's "
                                 f"W, not {subject.meta.get('style_space', 'this space')!r})")
                    continue
                dirs = dm.sefa_directions(mats, min(k, d))
                rows += [(m, i, f"eig{i}", v) for i, v in enumerate(dirs)]
            elif m in ("svm", "svm_cond"):
                if sp.labels is None or len(np.unique(sp.labels)) < 2:
                    notes.append(f"{m} skipped: needs samples of at least two styles in the {sp.name} space")
                    continue
                styles = np.unique(sp.labels)
                pairs = [(a, b) for a in styles for b in styles if a < b]
                normal = {}
                for a, b in pairs:
                    sel = np.isin(sp.labels, [a, b])
                    normal[a, b] = dm.svm_direction(sp.samples[sel], sp.labels[sel] == b, seed=self.seed)
                normal.update({(b, a): -v for (a, b), v in list(normal.items())})
                i = 0
                for a, b in pairs:
                    v = normal[a, b]
                    if m == "svm_cond":
                        others = [normal[a, c] for c in styles if c not in (a, b)]
                        if not others:
                            continue
                        v = dm.condition_direction(v, others)
                    rows.append((m, i, f"{names[a]}->{names[b]}", v))
                    i += 1
                    if i >= k:
                        break
                if m == "svm_cond" and i == 0:
                    notes.append("svm_cond skipped: conditioning needs a third style to hold fixed")
            elif m == "random":
                dirs = dm.random_directions(self.n_random, d, self.seed + 1)
                rows += [(m, i, f"rand{i}", v) for i, v in enumerate(dirs)]
            elif m == "voynov":
                dirs = self._voynov(subject, sp, min(k, d), notes)
                rows += [(m, i, f"vb{i}", v) for i, v in enumerate(dirs)]
        return rows

    def _voynov(self, subject, sp: _Space, k: int, notes: list[str]) -> np.ndarray:
        """Voynov & Babenko directions in this space; shifts scaled by the samples' per-dim std."""
        scale = float(np.sqrt(sp.samples.var(0).mean())) or 1.0     # RMS per-dimension std of the space
        t0 = time.perf_counter()
        fit = fit_voynov_babenko(sp.render_codes, sp.samples.shape[1], k, base=sp.base,
                                 steps=self.voynov_steps, batch_size=self.voynov_batch_size,
                                 eps_range=(0.5 * scale, 3.0 * scale), lr=self.voynov_lr, seed=self.seed + 4,
                                 restarts=self.voynov_restarts, device=subject.device)
        losses = ", ".join(f"{v:.3g}" for v in fit.restart_losses)
        notes.append(f"voynov: {self.voynov_restarts} run(s) of {self.voynov_steps} steps x {self.voynov_batch_size} "
                     f"pairs in {sp.name} space (|shift| in [0.5, 3] x {scale:.3g}) took "
                     f"{time.perf_counter() - t0:.1f} s; training losses {losses}, kept run {fit.chosen}: "
                     f"reconstructor index accuracy {fit.accuracy:.2f} (chance {1 / k:.2f}), shift error "
                     f"{fit.shift_error:.3g} over the last quarter of training -- near chance means the "
                     "directions were not told apart")
        return fit.directions

    # --- evaluation ------------------------------------------------------------------------------------
    def _split(self, n: int) -> np.ndarray:
        """The cross-fitting halves: one seeded split shared by every direction (so the statistic
        of a discovered direction and of its random baselines is the same function of the edit)."""
        half = np.zeros(n, bool)
        half[np.random.default_rng(self.seed + 5).permutation(n)[: n // 2]] = True
        return half

    def _effect(self, x0: Tensor | np.ndarray | None, x1: Tensor | np.ndarray | None, names: list[str], seed: int,
                probs: tuple | None = None, ci: bool = True) -> dict:
        """Change in the classifier's log-odds (``x0`` unedited, ``x1`` edited, [n, S] per image)
        of the style the direction moves toward, free of selection bias.

        Picking the style with the largest mean increase and then measuring that increase on the
        same images overstates it (a null direction always "moves toward" something). So the
        images are split at random into two halves; each half's per-image change is read for
        the style the *other* half picked (cross-fitting), and the effect, its BCa bootstrap CI
        and the sign-flip p-value are computed on those n values. Under a direction with no effect
        their mean is 0 in expectation. ``style`` is the style picked on all images (the same
        one both halves picked when ``style_agree``; when they disagree there is no consistent
        style and the effect is read for two different ones). ``probs`` = (p0, p1) adds
        ``effect_prob``: the same cross-fitted change in probability instead of log-odds.
        ``ci=False`` gives the effect alone (random baselines).
        """
        if x0 is None:
            return dict(style="", style_agree=None, effect=np.nan, effect_prob=np.nan, ci_low=np.nan,
                        ci_high=np.nan, p_value=np.nan, boot_nonfinite=0)
        as_np = lambda t: (t.double().cpu().numpy() if isinstance(t, Tensor) else np.asarray(t, float))  # noqa: E731
        delta = as_np(x1) - as_np(x0)                                          # [n, S]
        n = len(delta)
        half = self._split(n)
        s_a, s_b = int(delta[half].mean(0).argmax()), int(delta[~half].mean(0).argmax())
        pick = np.where(half, s_b, s_a)                                       # each half at the other's pick
        v = delta[np.arange(n), pick]
        s = int(delta.mean(0).argmax())
        out = dict(style=names[s], style_agree=s_a == s_b, effect=float(v.mean()), effect_prob=np.nan)
        if probs is not None:
            dp = as_np(probs[1]) - as_np(probs[0])
            out["effect_prob"] = float(dp[np.arange(n), pick].mean())
        if not ci:
            return out
        if not np.isfinite(v).all():
            return dict(out, effect=np.nan, ci_low=np.nan, ci_high=np.nan, p_value=np.nan,
                        boot_nonfinite=int(self.n_boot))
        # BCa, widened for small n (Hesterberg 2015): 0.93-0.94 coverage at n = 16 where the
        # percentile interval gives 0.90-0.91 (tests/statistics/test_bootstrap.py)
        b = bootstrap_interval(v, n_boot=self.n_boot, seed=seed, method="bca", expand=True)
        # two-sided sign-flip permutation test of mean(v) = 0 (symmetric null): "the edit changes
        # the classifier at all" -- any edit of this size does, random ones included
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(self.n_perm, len(v)))
        p = permutation_pvalue(abs(v.mean()), np.abs((signs * v).mean(1)))
        return dict(out, ci_low=b.low, ci_high=b.high, p_value=float(p), boot_nonfinite=b.n_nonfinite)

    def run(self, subject, data: AnalysisData) -> Finding:
        self._check()
        params = self.params()
        if not self.budget_s or (self.space in ("style_code", "z") and not subject.has_latent):
            return self._run(subject, data, params, [])
        sizes, sizing = self._sized(subject, data, unit_costs_for(subject, data))
        sized = copy.copy(self)            # the configured parameters stay in params; the notes say the cuts
        for k, v in sizes.items():
            if k != "voynov":
                setattr(sized, k, v)
        if "voynov" in self.methods and not sizes["voynov"]:
            sized.methods = tuple(m for m in self.methods if m != "voynov")
            sizing.append("voynov skipped: its training does not fit budget_s even at 1 run of "
                          f"{sizes['voynov_steps']} steps (raise budget_s to run it)")
        configured = {**{k: getattr(self, k) for k in sizes if k != "voynov"}, "voynov": "voynov" in self.methods,
                      "n_random_max": self._n_max(self.n_random)}
        if sizing:
            params["sized_to_budget"] = {k: v for k, v in sizes.items() if v != configured[k]
                                         and (k != "n_random_max" or configured[k] > self.n_random)}
        return sized._run(subject, data, params, sizing)

    def _run(self, subject, data: AnalysisData, params: dict, sizing: list[str]) -> Finding:
        if self.space in ("style_code", "z") and not subject.has_latent:
            return Finding.skip(self.name, f"space={self.space!r} needs a latent style space; this subject has "
                                           f"none (pass space='activation' and layer=...)", params)
        if self.space == "z" and not subject.latent_dim:
            return Finding.skip(self.name, "space='z' needs a noise input z; this subject's style code has none "
                                           "(latent_dim 0, e.g. StarGAN's domain labels): use space='style_code'",
                                params)
        subject.eval()
        dev, G = subject.device, subject.generator
        ev = data.subset(min(self.n_images, len(data)))
        content, ids = ev.content.to(dev), ev.style_ids.to(dev)
        z = None
        if subject.has_latent:
            z = (ev.z if ev.z is not None else subject.sample_z(len(ev), self.seed + 3)).to(dev)
        clf = subject.classifier or subject.texture_classifier
        notes: list[str] = list(sizing)
        if clf is None:
            notes.append("no independent style classifier: style, effect and CI columns are empty")
        elif subject.classifier is None:
            notes.append("effects measured with the texture (colour-blind) classifier; no RGB classifier given")
        names = subject.style_names
        with torch.no_grad():
            sp = self._space(subject, data, content, ids, z)
            unit_layer = self.unit_layer or _default_unit_layer(G, sp.name, sp.layer)
            if sp.layer is not None and self.layer is None:
                notes.append(f"activation space of layer {sp.layer!r}, chosen by default (the subject has no latent "
                             "style space and no layer was given; pass layer=<name> to choose another)")
            rows = self._directions(subject, sp, notes)
            dirs = np.stack([r[3] for r in rows]) if rows else np.zeros((0, sp.samples.shape[1]))
            stds = dm.projection_std(sp.samples, dirs) if rows else np.zeros(0)
            tmax = max(self.steps)
            is_rand = np.array([r[0] == "random" for r in rows], bool)
            lengths, l_ref = _step_lengths(stds * tmax, is_rand)
            unit = lengths / tmax                                   # the step unit each row is walked in

            render = lambda off: sp.render(off, None, unit_layer)  # noqa: E731

            def score(img):                                         # (log-odds [n, S], probabilities [n, S])
                if clf is None:
                    return None, None
                logits = clf(img).float()
                return log_odds(logits), logits.softmax(1)
            base, act0 = render(None)
            lo0, p0 = score(base)
            table, grids, layerwise, effects = [], [], [], np.full(len(rows), np.nan)
            for r, ((m, i, label, v), sd, su) in enumerate(zip(rows, stds, unit)):
                vt = torch.as_tensor(v, dtype=torch.float32)
                ssims, frames = [], []
                for t in self.steps:
                    img, act = (base, act0) if t == 0 else render(vt * float(t * su))
                    ssims.append(float(dm.ssim(img, base).mean()))
                    frames.append(thumbnails(img[: self.n_grid_images]))
                    if t == tmax:
                        img_max, act_max = img, act
                grids.append(np.stack(frames, 1))                             # [g, n_steps, h, w, 3]
                lo1, p1 = score(img_max)
                eff = self._effect(lo0, lo1, names, self.seed + r, probs=(p0, p1))
                effects[r] = eff["effect"]
                dact = (act_max - act0).abs()
                dact = dact.mean(dim=(0, 2, 3)) if dact.dim() == 4 else dact.flatten(1).mean(0)
                top = torch.argsort(dact, descending=True)[:5].tolist()
                table.append(dict(method=m, space=sp.name, index=i, label=label, **eff, std=float(sd),
                                  step_length=float(lengths[r]), ssim_min=min(ssims), unit_layer=unit_layer,
                                  top_units=";".join(map(str, top)), n=len(content)))
                if m == "sefa" and self.layerwise:
                    for a in _affine_names(G):
                        img, _ = sp.render(vt * float(tmax * su), a)
                        lo1, p1 = score(img)
                        le = self._effect(lo0, lo1, names, self.seed + r, probs=(p0, p1))
                        layerwise.append(dict(method=m, space=sp.name, index=i, layer=a, **le,
                                              ssim=float(dm.ssim(img, base).mean())))
            # random baselines at each discovered direction's own Euclidean step length
            null = np.full((len(rows), int(is_rand.sum())), np.nan)
            if clf is not None and is_rand.any():
                rand_rows = np.flatnonzero(is_rand)
                for r in range(len(rows)):
                    if is_rand[r]:                                   # the other random rows, same length
                        null[r] = np.where(rand_rows == r, np.nan, effects[rand_rows])
                    elif np.isclose(lengths[r], l_ref, rtol=1e-9, atol=0):
                        null[r] = effects[rand_rows]
                    else:
                        for j, q in enumerate(rand_rows):
                            off = torch.as_tensor(rows[q][3], dtype=torch.float32) * float(lengths[r])
                            lo1, _ = score(sp.render(off, None, None)[0])
                            null[r, j] = self._effect(lo0, lo1, names, 0, ci=False)["effect"]
            # sequential baselines past the first n_random (Besag & Clifford 1991): only the discovered
            # directions that fewer than h random ones have matched so far walk more, one at a time
            R, cand_rows, seq = int(is_rand.sum()), np.flatnonzero(~is_rand), None
            n_max = self._n_max(R)
            if clf is not None and R and n_max > R and len(cand_rows):
                # draw j is the j-th of one seeded sequence of random directions; its first R are the random rows
                more = dm.random_directions(n_max, sp.samples.shape[1], self.seed + 1)

                def draw(idx: np.ndarray, start: int, count: int) -> np.ndarray:
                    out = np.empty((len(idx), count))
                    for a, i in enumerate(idx):
                        for b in range(count):
                            off = torch.as_tensor(more[start + b], dtype=torch.float32) * float(lengths[cand_rows[i]])
                            lo1, _ = score(sp.render(off, None, None)[0])
                            out[a, b] = self._effect(lo0, lo1, names, 0, ci=False)["effect"]
                    return out
                # one draw at a time: each draw is its own generator pass, so a larger batch would only add
                # draws past a direction's stopping point (discarded, never counted)
                seq = sequential_pvalues(effects[cand_rows], null[cand_rows], draw, h=self.h, n_max=n_max, batch=1)
        df = pd.DataFrame(table, columns=_COLUMNS)
        if len(df):
            df["q_value"] = bh_qvalues(df["p_value"].to_numpy(float))
            df["n_random"] = int(is_rand.sum())
            if is_rand.any() and clf is not None:
                ok = np.isfinite(null)
                df["p_random"] = [permutation_pvalue(e, nl[k]) if np.isfinite(e) and k.any() else np.nan
                                  for e, nl, k in zip(effects, null, ok)]
                df["n_random_used"] = ok.sum(1)                  # the baselines each p_random reads
                # describes the first n_random draws, which every row has (also with sequential baselines)
                df["random_p95"] = [np.quantile(nl[k], 0.95) if k.any() else np.nan for nl, k in zip(null, ok)]
                if seq is not None:
                    df.loc[cand_rows, "p_random"] = seq.p
                    df.loc[cand_rows, "n_random_used"] = seq.n_used
                    padded = np.full((len(rows), n_max), np.nan)
                    padded[:, :R] = null
                    padded[cand_rows] = seq.draws                  # NaN past each row's n_random_used
                    null = padded
                cand = ~is_rand
                q = np.full(len(df), np.nan)
                q[cand] = bh_qvalues(df.loc[cand, "p_random"].to_numpy(float))
                df["q_random"] = q
                df["beyond_random"] = pd.array([bool(x <= 0.05) if c and np.isfinite(x) else pd.NA
                                                for x, c in zip(q, cand)], dtype="boolean")
        arrays = {"directions": dirs.astype(np.float32), "random_null_effects": null.astype(np.float32)}
        for g in range(min(self.n_grid_images, len(content))):
            arrays[f"traversal_img{g}"] = np.stack([x[g] for x in grids]) if grids else np.zeros((0,), np.uint8)
        notes += self._notes(df, sp, tmax, l_ref, is_rand, len(content), clf is not None, seq, n_max)
        if "voynov" not in self.methods:
            notes.append("Voynov & Babenko (ICML 2020) not run: add 'voynov' to methods (it trains a reconstructor)")
        return Finding(self.name, params, tables={"directions": df,
                                                  "direction_agreement": _agreement(rows),
                                                  "directions_layerwise": pd.DataFrame(layerwise, columns=[
                                                      "method", "space", "index", "layer", "style", "style_agree",
                                                      "effect", "effect_prob",
                                                      "ci_low", "ci_high", "p_value", "boot_nonfinite", "ssim"])},
                       arrays=arrays, notes=notes,
                       # the analysis data's fingerprint, not the training data's from the checkpoint metadata:
                       # `interp-gan report` refuses a finding whose fingerprint is not its report's
                       provenance={**subject.meta, "seed": self.seed, "data_fingerprint": data.fingerprint})

    def _notes(self, df: pd.DataFrame, sp: _Space, tmax: float, l_ref: float, is_rand: np.ndarray, n: int,
               has_clf: bool, seq=None, n_max: int = 0) -> list[str]:
        notes = [f"steps {list(self.steps)} are in units of the sample std along each discovered direction "
                 f"({sp.name} space, {len(sp.samples)} samples; step_length = the Euclidean length of the step "
                 f"at {tmax:g}); random directions are walked at one reference length, the median step_length "
                 f"of the discovered directions ({l_ref:.3g})"]
        if not has_clf or not len(df):
            return notes
        notes.append(f"effect = change in the classifier's log-odds, log p/(1-p), of 'style' at step {tmax:g} "
                     f"(as ablation measures it; effect_prob is the same change in probability, the meaning "
                     f"'effect' had before), mean over {n} images, 95% BCa bootstrap CI (Efron 1987) widened for "
                     "small n (Hesterberg 2015): about 0.93 coverage at n = 16 in simulation, less for strongly "
                     "skewed changes; 'style' is the largest mean increase; the effect is cross-fitted (each "
                     "random half of the images is read at the style the other half picked), so picking the style "
                     "does not inflate it -- style_agree says whether both halves picked the same style")
        R = int(is_rand.sum())
        if R:
            cand = ~is_rand
            notes.append(f"p_random (the headline test) = (1 + #{{random directions with effect >= this one}}) / "
                         f"(1 + {R}): the {R} random unit directions are stepped the same Euclidean length as the "
                         "direction tested and measured the same way on the same images, so a long step earns "
                         "nothing by itself; q_random is BH over the discovered directions and beyond_random = "
                         f"q_random <= 0.05. Random rows get p_random against the {R - 1} other random directions "
                         f"(a calibration check: their p_random is uniform on 1/{R}, 2/{R}, ..., 1, so about one "
                         f"in {R} sits at its floor 1/{R} = {1 / R:.3g}; with 19 random directions none can reach "
                         "0.05). It does not rule "
                         "out that the direction is one of many equally good ones, nor that it moves the "
                         "classifier without moving the style a person would see")
            rows_p = df.loc[cand, "p_random"].to_numpy(float) if "p_random" in df else np.zeros(0)
            if seq is not None:
                used = seq.n_used[np.isfinite(seq.p)]
                fixed = int(cand.sum()) * (n_max - R)
                notes.append(f"sequential random baselines (Besag & Clifford 1991; n_random_max = {n_max}, h = "
                             f"{self.h}): every discovered direction was walked against the first {R} random "
                             f"directions; those with fewer than {self.h} at least as strong walked more, one at a "
                             f"time, until {self.h} were (p_random = {self.h} / n_random_used) or {n_max} had been "
                             f"walked (p_random = (1 + #{{at least as strong}}) / {n_max + 1}); one with {self.h} or "
                             f"more "
                             f"among the first {R} keeps the fixed rule's p. P(p_random <= a) <= a still holds "
                             f"(tests/statistics/test_sequential_p.py). n_random_used per direction: "
                             f"{int(used.min()) if len(used) else 0} to {int(used.max()) if len(used) else 0}; "
                             f"{seq.n_drawn - len(seq.p) * R} random walks past the first {R} in all, where "
                             f"{n_max} for every direction would have taken {fixed}. random_p95 describes the first "
                             f"{R}; random_null_effects holds each direction's draws in order, NaN past its "
                             "n_random_used")
                notes[-1] += coarse_h_note(self.h, n_max, "directions", "random directions", "draws per direction")
            used_p = df.loc[cand, "n_random_used"].to_numpy(float) if "n_random_used" in df else R
            note = floor_note(rows_p, used_p, what="p_random values of discovered directions",
                              param="n_random_max" if seq is not None else "n_random")
            floor_n = n_max if seq is not None else R
            if note:
                notes.append(note + ("" if seq is not None else
                                     "; or set n_random_max (sequential baselines: only the directions that beat "
                                     "the random ones walk more, so it costs far less than raising n_random)"))
            elif floor_n < 99:
                said = f"n_random_max = {n_max}" if seq is not None else f"n_random = {R}"
                notes.append(f"with {said}, p_random cannot go below 1/{floor_n + 1} = {1 / (floor_n + 1):.3g}: "
                             "set n_random_max (99 or more; sequential: only the directions that beat the random "
                             "ones walk more) or raise n_random to resolve smaller p-values")
            rq = df.loc[is_rand, "q_value"].to_numpy(float)
            notes.append(f"p_value / q_value test only whether the edit changes the classifier's log-odds at all on "
                         f"these images (two-sided sign-flip test of mean 0, BH over all rows): any edit of this size "
                         f"does, so it is not a finding for a direction -- {int((rq < 0.05).sum())} of {R} random "
                         "directions reach q_value < 0.05 here. Use p_random / q_random for verdicts")
        note = floor_note(df["p_value"].to_numpy(float), self.n_perm, what="sign-flip p_value values")
        if note:
            notes.append(note)
        bad = int(df["boot_nonfinite"].fillna(0).astype(int).gt(0).sum())
        if bad:
            notes.append(f"{bad} row(s) had non-finite bootstrap replicates or per-image changes (boot_nonfinite): "
                         "their intervals are left empty or use the finite replicates only")
        return notes


_COLUMNS = ["method", "space", "index", "label", "style", "style_agree", "effect", "ci_low", "ci_high",
            "p_value", "q_value", "p_random", "q_random", "beyond_random", "n_random", "n_random_used", "random_p95",
            "effect_prob",
            "std", "step_length", "ssim_min", "unit_layer", "top_units", "n", "boot_nonfinite"]





def _step_lengths(own: np.ndarray, is_rand: np.ndarray) -> tuple[np.ndarray, float]:
    """Euclidean length of each row's largest step, and the reference length of random rows.

    Discovered directions keep their own (``tmax`` x the sample std along them); random rows all
    take the median of the discovered directions' lengths (their own median when there are none),
    so that they are exchangeable with each other and serve as one another's baselines."""
    own = np.asarray(own, float)
    cand = own[~is_rand & np.isfinite(own) & (own > 0)]
    pool = cand if len(cand) else own[is_rand & np.isfinite(own) & (own > 0)]
    l_ref = float(np.median(pool)) if len(pool) else 1.0
    return np.where(is_rand, l_ref, own), l_ref


def _vb_batch(b: int, content: Tensor, ids: Tensor, z: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """The fixed content batch of Voynov-Babenko renders: the first b evaluation images, cycled."""
    idx = torch.arange(b, device=content.device) % len(content)
    return content[idx], ids[idx], None if z is None else z[idx]


def affine_matrix(mod) -> Tensor:
    """The matrix W a style affine applies (affine(x + d) - affine(x) = W d): ``effective_weight()``
    when the layer scales its stored weight at run time (StyleGAN's equalised learning rate,
    ``weight * lr / sqrt(in)``), else its ``weight`` (an nn.Linear)."""
    eff = getattr(mod, "effective_weight", None)
    return eff() if callable(eff) else mod.weight


def _affine_names(G) -> list[str]:
    ids = {id(a) for a in getattr(G, "style_affines", [])}
    return [n for n, m in G.named_modules() if id(m) in ids]


def _default_unit_layer(G, space: str, layer: str | None) -> str:
    """Last residual block of a stylenet (else the middle conv layer: the last one of most
    generators only writes RGB); in activation space the next block/conv after ``layer``."""
    if space != "activation" or layer is None:
        return default_unit_layer(G)
    names = [n for n, _ in G.named_modules()]
    cands = set(style_blocks(G)) | set(spatial_layers(G))
    after = [n for n in names[names.index(layer) + 1:] if n in cands and not n.startswith(layer + ".")]
    return after[0] if after else layer


def _agreement(rows: list) -> pd.DataFrame:
    """Signed cosine between every pair of directions from different methods."""
    out = []
    for a in range(len(rows)):
        for b in range(len(rows)):
            if rows[a][0] < rows[b][0]:
                out.append(dict(method_a=rows[a][0], index_a=rows[a][1], method_b=rows[b][0], index_b=rows[b][1],
                                cosine=float(rows[a][3] @ rows[b][3])))
    return pd.DataFrame(out, columns=["method_a", "index_a", "method_b", "index_b", "cosine"])
