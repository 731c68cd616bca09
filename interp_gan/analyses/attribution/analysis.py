"""Attributions through Captum for the classifier, the discriminator and the generator,
with sanity checks on by default.

    finding = build_analysis("attribution", methods=("ig", "occlusion"), n_images=4).run(subject, data)
    finding.tables["attribution_sanity"]     # method, randomized, spearman, ssim, passed, target, ...
                                             #   n_images, n_passed, ci_low, ci_high, verdict, input_corr
    finding.tables["attribution_units"]      # layer, unit, style, importance, rank, ablation_effect
    finding.tables["attribution_unit_agreement"]   # target, method, style, layer, n_units, spearman,
                                                   #   ci_low, ci_high, p_value

    res = attribute("ig", forward, x, target=y, baselines=b, n_steps=32, internal_batch_size=8)
    res.attributions, res.delta               # delta: IG's completeness gap (None for others)

Methods (Captum): ``ig`` IntegratedGradients (Sundararajan et al., ICML 2017), ``saliency``
(Simonyan et al. 2014), ``gradient_shap`` (Lundberg & Lee, NeurIPS 2017), ``occlusion``
(Zeiler & Fergus 2014), ``layer_gradcam`` (Selvaraju et al., ICCV 2017; upsampled to the
input), ``noise_tunnel_ig`` / ``noise_tunnel_saliency`` (SmoothGrad: Smilkov et al. 2017).
Unit importance: ``layer_conductance`` (Dhamdhere et al., ICLR 2019) and ``layer_gradcam``
over a generator layer. Sanity checks: Adebayo et al., NeurIPS 2018 (attribution_sanity.py).
Targets: attribution_targets.py.

Unit importance is checked against the causal effect of each unit (Bau et al., PNAS 2020;
Dhamdhere et al. 2019 validate conductance the same way): every ranked unit is zeroed alone
(``hooks.ablate``) and the drop in the scorer's log-odds of the image's target style,
log-odds(unedited) - log-odds(unit zeroed), is its effect (large = the unit supports the
style, the sign of "important"). ``attribution_unit_agreement`` holds Spearman's rho between
importance and effect over the units, per method and style, with a Fisher-z interval using the
Bonett & Wright (Psychometrika 2000) variance (1 + rho^2/2) / (n - 3) and the t-approximation
p-value against rho = 0. Units that are exactly zero on every image of the style (dead units:
zero importance and zero effect, a trivial agreement) are left out and counted.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from captum.attr import (GradientShap, IntegratedGradients, LayerAttribution, LayerConductance,
                         LayerGradCam, NoiseTunnel, Occlusion, Saliency)
from scipy.stats import norm, spearmanr
from torch import Tensor, nn

from interp_gan.analyses.common import log_odds, manual_seed, thumbnails
from interp_gan.analyses.attribution.finite import FINITE_BATCH, drop_non_finite
from interp_gan.analyses.attribution.sanity import (cascading_randomization, compare_maps,
                                                    data_randomized_copy, with_parameters)
from interp_gan.analyses.attribution.targets import (Target, available_targets, balanced_order, build_targets,
                                                    TARGET_NAMES)
from interp_gan.analyses.base import Analysis, AnalysisData, register_analysis
from interp_gan.analyses.cost import (Cost, UnitCosts, double_to, fmt_seconds, halve_to, size_to_budget,
                                      unit_costs_for)
from interp_gan.harvest.hooks import Trace, ablate, default_unit_layer, get_module
from interp_gan.harvest.layout import Layout, unit_layout
from interp_gan.findings import Finding
from interp_gan.reporting.numbers import sig_beside

__all__ = ["Attribution", "AttributionResult", "attribute", "unit_importance", "single_unit_effects",
           "spearman_interval", "PIXEL_METHODS", "UNIT_METHODS", "SANITY_COLUMNS", "AGREEMENT_COLUMNS"]

PIXEL_METHODS = ("ig", "saliency", "gradient_shap", "occlusion", "layer_gradcam", "noise_tunnel_ig",
                 "noise_tunnel_saliency")
UNIT_METHODS = ("layer_conductance", "layer_gradcam")
SANITY_COLUMNS = ["method", "randomized", "spearman", "ssim", "passed", "target", "source", "step", "threshold",
                  "n_images", "n_styles", "n_passed", "ci_low", "ci_high", "verdict", "input_corr_before",
                  "input_corr", "acc_real", "acc_shuffled", "label_images", "label_steps_run"]
AGREEMENT_COLUMNS = ["target", "method", "style", "layer", "n_units", "spearman", "ci_low", "ci_high", "p_value",
                     "n_inactive", "n_images", "scorer", "effect"]


_NT = 4   # samples of gradient SHAP and the noise tunnel (``attribute``'s nt_samples)


def _time_forward(fn: Callable, x: Tensor) -> tuple[float, float]:
    """Per-example seconds of fn(x) without gradient and of a forward+backward to x, each timed after
    one warm-up call of its own: a cold first backward (1.5x the warm one on the demo's classifier)
    was priced into every step of the shuffled-label training."""
    def fb():
        xi = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = fn(xi)
            torch.autograd.grad(out.float().sum(), xi)
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)

    def timed(call) -> float:
        call()                   # warm-up
        sync()
        t0 = time.perf_counter()
        call()
        sync()
        return time.perf_counter() - t0
    with torch.no_grad():
        t_f = timed(lambda: fn(x))
    return t_f / len(x), timed(fb) / len(x)


class AttributionResult(NamedTuple):
    attributions: Tensor        # same shape as the inputs
    delta: Tensor | None        # [N] IG completeness gap sum(attr) - (F(x) - F(baseline)); else None


def attribute(method: str, forward: Callable, inputs: Tensor, *, target=None, baselines: Tensor | None = None,
              extra: tuple = (), n_steps: int = 32, internal_batch_size: int = 8,
              cam_layer: nn.Module | None = None, occlusion_window: int | None = None,
              nt_samples: int = 4, seed: int = 0) -> AttributionResult:
    """One Captum method on ``forward`` at ``inputs``; memory is bounded by internal_batch_size
    (IG / conductance / noise tunnel) and perturbations_per_eval (occlusion)."""
    torch.manual_seed(seed)
    extra = tuple(extra) or None
    inputs = inputs.detach().requires_grad_(True)
    if baselines is None:
        baselines = torch.zeros_like(inputs)
    ibs = max(1, internal_batch_size)
    if method == "ig":
        a, d = IntegratedGradients(forward).attribute(
            inputs, baselines, target=target, additional_forward_args=extra, n_steps=n_steps,
            internal_batch_size=ibs, return_convergence_delta=True)
        return AttributionResult(a, d)
    if method == "saliency":
        return AttributionResult(Saliency(forward).attribute(inputs, target=target, abs=False,
                                                             additional_forward_args=extra), None)
    if method == "gradient_shap":
        return AttributionResult(GradientShap(forward).attribute(
            inputs, baselines, n_samples=nt_samples, stdevs=0.05, target=target,
            additional_forward_args=extra), None)
    if method == "occlusion":
        if inputs.dim() == 4:
            w = occlusion_window or max(2, inputs.shape[-1] // 16)
            window, strides = (inputs.shape[1], w, w), (inputs.shape[1], w, w)   # aligned patches
        else:
            window, strides = (1,), (1,)                                      # one code dimension
        return AttributionResult(Occlusion(forward).attribute(
            inputs, window, strides, baselines=baselines, target=target, additional_forward_args=extra,
            perturbations_per_eval=ibs), None)
    if method == "layer_gradcam":
        if cam_layer is None or inputs.dim() != 4:
            raise ValueError("layer_gradcam needs image inputs and a conv layer of the scored model")
        cam = LayerGradCam(forward, cam_layer).attribute(inputs, target=target, additional_forward_args=extra,
                                                         relu_attributions=True)
        up = LayerAttribution.interpolate(cam, tuple(inputs.shape[-2:]), interpolate_mode="bilinear")
        return AttributionResult(up.expand_as(inputs) / inputs.shape[1], None)
    if method in ("noise_tunnel_ig", "noise_tunnel_saliency"):
        base = IntegratedGradients(forward) if method == "noise_tunnel_ig" else Saliency(forward)
        kw = dict(baselines=baselines, n_steps=n_steps, internal_batch_size=ibs) if method == "noise_tunnel_ig" \
            else dict(abs=False)
        a = NoiseTunnel(base).attribute(inputs, nt_type="smoothgrad", nt_samples=nt_samples,
                                        nt_samples_batch_size=1, stdevs=0.1, target=target,
                                        additional_forward_args=extra, **kw)
        return AttributionResult(a, None)
    raise ValueError(f"unknown attribution method {method!r}; expected one of {list(PIXEL_METHODS)}")


def unit_importance(method: str, forward: Callable, inputs: Tensor, layer: nn.Module, *, target=None,
                    baselines: Tensor | None = None, extra: tuple = (), n_steps: int = 32,
                    internal_batch_size: int = 8, layout: Layout | None = None) -> Tensor:
    """[N, C]: each unit's (channel's) attribution at ``layer``, summed over space. ``layout``: how the
    layer's output reads as [N, C, H, W] (channels last, tokens: ``harvest/layout.py``)."""
    extra = tuple(extra) or None
    if method == "layer_conductance":
        a = LayerConductance(forward, layer).attribute(
            inputs, baselines, target=target, additional_forward_args=extra, n_steps=n_steps,
            internal_batch_size=max(1, internal_batch_size))
    elif method == "layer_gradcam":
        a = LayerGradCam(forward, layer).attribute(inputs, target=target, additional_forward_args=extra,
                                                   attr_dim_summation=False)
    else:
        raise ValueError(f"unknown unit method {method!r}; expected one of {list(UNIT_METHODS)}")
    if layout is not None and not layout.plain:
        a = layout.to_units(a)
    return a.flatten(2).sum(-1) if a.dim() > 2 else a


def spearman_interval(x, y, level: float = 0.95) -> dict:
    """Spearman's rho of x and y with a Fisher-z interval and a p-value against rho = 0.

    Interval: tanh(atanh(rho) +- z_q * sqrt((1 + rho^2 / 2) / (n - 3))), the variance Bonett &
    Wright (Psychometrika 2000) give for Spearman's rho (Fieller et al. 1957 use 1.06 / (n - 3)).
    p: scipy's t-approximation (n - 2 df). NaN below 4 pairs or when either side is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)
    out = {"n": n, "spearman": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan}
    if n < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    r = spearmanr(x, y)
    rho = float(np.clip(r.statistic, -1.0, 1.0))
    z = np.arctanh(np.clip(rho, -1 + 1e-12, 1 - 1e-12))
    half = norm.ppf(0.5 + level / 2) * np.sqrt((1 + rho ** 2 / 2) / (n - 3))
    out.update(spearman=rho, ci_low=min(rho, float(np.tanh(z - half))), ci_high=max(rho, float(np.tanh(z + half))),
               p_value=float(r.pvalue))
    return out


@torch.no_grad()
def single_unit_effects(t: Target, generator: nn.Module, layer: str, units, *, seed: int = 0
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Zero each of ``units`` at ``layer`` alone and measure the drop in the scorer's log-odds of
    each example's target style: ([N, U] effects = log-odds unedited - log-odds with the unit
    zeroed, [N, U] max |activation| of each unit over space). ``t`` is the generator target
    (forward = scorer(G(content)) logits, target = the style index per example)."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    rows = torch.arange(len(t.inputs), device=t.inputs.device)

    def score(edit=None):
        with torch.random.fork_rng(devices=devices), Trace(generator, layer, edit=edit) as tr:
            manual_seed(seed)                             # the same noise in every pass (paired)
            logits = t.forward(t.inputs, *t.extra)
        return log_odds(logits.float())[rows, t.target].double().cpu().numpy(), tr.output

    base, act = score()
    if act is None:
        raise ValueError(f"layer {layer!r} did not run while generating; name a layer on the generator's forward path")
    units = [int(u) for u in units]
    eff = np.stack([base - score(ablate([u], 0.0))[0] for u in units], axis=1)
    peak = act.float().abs().reshape(*act.shape[:2], -1).amax(-1)[:, units].cpu().numpy()   # [N, C] too
    return eff, peak


def _small(maps: Tensor, size: int) -> np.ndarray:
    """[N,C,H,W] -> |.| summed over channels, area-downsampled to at most size px: [N,h,w] float16
    (float32 when a value is beyond float16's range: a [0, 255] network's maps can be, and a cast
    would turn them into inf)."""
    a = maps.detach().float().abs().sum(1, keepdim=True)
    if max(a.shape[-2:]) > size:
        a = F.adaptive_avg_pool2d(a, (size * a.shape[-2] // max(a.shape[-2:]), size * a.shape[-1] // max(a.shape[-2:])))
    a = a[:, 0].cpu().numpy()
    return a.astype(np.float16) if not a.size or a.max() <= np.finfo(np.float16).max else a


@register_analysis(
    "attribution", title="Attribution", order=70,
    references=("sundararajan2017ig", "smilkov2017smoothgrad", "selvaraju2017gradcam", "adebayo2018sanity",
                "kokhlikyan2020captum"),
    fast=dict(methods=("ig", "saliency"), n_images=2, n_steps=8, sanity=False))
class Attribution(Analysis):
    """Attribution maps, IG completeness, unit importance and Adebayo sanity checks.

    Params: methods (pixel methods, PIXEL_METHODS), targets (TARGET_NAMES plus "units"),
    n_images, n_steps (IG / conductance), internal_batch_size, baseline ("black" | "blurred" |
    "mean"), region (a [H,W] mask or a box name, for the region target), layer (a generator
    layer for the units target; default: the middle conv), unit_methods, unit_agreement (zero
    every ranked unit alone and correlate importance with the log-odds drop; on by default),
    sanity (on by default), sanity_threshold (the Spearman rho of a randomised map with the
    original below which the map changed), sanity_images (images of the sanity checks, taken
    across styles; the verdict needs the t-interval of the mean rho over them on one side of
    the threshold), sanity_steps (most cascade steps), label_steps (most training steps of the
    data-randomisation model; 0 switches that check off), label_images (real images it is
    trained on, across styles), map_size, occlusion_window (patch side in pixels, default image
    side / 16; occlusion costs one forward per patch, so doubling it quarters the cost),
    max_units (unit agreement on a seeded random sample of at most this many units of the layer;
    None: every unit), budget_s (seconds; see below), seed.

    budget_s: the run is sized to fit it from measured costs (the subject's forward and
    forward+backward per image, ``analyses/cost.py``; each image model's own, timed on a few
    images): while the estimate is over the budget it cuts, in this order and each down to a
    floor, sanity_steps (the cascade randomises fewer groups of layers; the fully randomised
    model, the one the verdict reads, is always compared), n_steps (>= 16; the completeness
    table shows each map's gap), occlusion_window (up to a 4 x 4 grid of patches), max_units
    (>= 32 units), sanity_images (>= 4: a wider interval, more "inconclusive" verdicts),
    n_images (>= 2) and label_steps (>= 200: the shuffled-label model may then not fit, and its
    verdict says "not valid"). Every cut is in the notes (and the report) and in
    ``params["sized_to_budget"]``; None (default) or 0: the sizes as configured.
    """

    def __init__(self, *, methods=("ig", "saliency", "occlusion"),
                 targets=TARGET_NAMES + ("units",), n_images: int = 4, n_steps: int = 32,
                 internal_batch_size: int = 8, baseline: str = "blurred", region="center",
                 layer: str | None = None, unit_methods=("layer_conductance",), unit_agreement: bool = True,
                 sanity: bool = True, sanity_threshold: float = 0.5, sanity_images: int = 8,
                 sanity_steps: int = 5, label_steps: int = 600, label_images: int = 64, map_size: int = 64,
                 occlusion_window: int | None = None, max_units: int | None = None, budget_s: float | None = None,
                 seed: int = 0) -> None:
        self.methods, self.targets, self.n_images, self.n_steps = tuple(methods), tuple(targets), n_images, n_steps
        self.internal_batch_size, self.baseline, self.region, self.layer = internal_batch_size, baseline, region, layer
        self.unit_methods, self.sanity, self.sanity_threshold = tuple(unit_methods), sanity, sanity_threshold
        self.sanity_images, self.sanity_steps, self.label_steps = sanity_images, sanity_steps, label_steps
        self.label_images, self.unit_agreement = label_images, unit_agreement
        self.map_size, self.seed = map_size, seed
        self.occlusion_window = occlusion_window   # occlusion patch side in pixels (None: image side / 16)
        self.max_units, self.budget_s = max_units, budget_s

    def check_params(self) -> None:
        bad = [m for m in self.methods if m not in PIXEL_METHODS]
        if bad:
            raise ValueError(f"unknown attribution methods {bad}; expected some of {list(PIXEL_METHODS)}")
        bad = [m for m in self.unit_methods if m not in UNIT_METHODS]
        if bad:
            raise ValueError(f"unknown unit methods {bad}; expected some of {list(UNIT_METHODS)}")
        bad = [t for t in self.targets if t not in TARGET_NAMES + ("units",)]
        if bad:
            raise ValueError(f"unknown attribution targets {bad}; expected some of {list(TARGET_NAMES) + ['units']}")
        if self.occlusion_window is not None and self.occlusion_window < 1:
            raise ValueError(f"occlusion_window must be a patch side in pixels >= 1 (or None), got {self.occlusion_window}")
        if self.max_units is not None and self.max_units < 4:
            raise ValueError(f"max_units must be >= 4 (a rank correlation over units) or None, got {self.max_units}")
        if self.n_images < 1 or self.n_steps < 2:
            raise ValueError(f"need n_images >= 1 and n_steps >= 2; got {self.n_images}, {self.n_steps}")
        if self.sanity and (self.sanity_images < 2 or self.label_steps < 0 or self.label_images < 2):
            raise ValueError(f"sanity checks need sanity_images >= 2 (an interval over images), label_steps >= 0 "
                             f"and label_images >= 2; got {self.sanity_images}, {self.label_steps}, {self.label_images}")

    def _run_method(self, method: str, t: Target, sl: slice = slice(None), forward=None) -> AttributionResult:
        return attribute(method, forward or t.forward, t.inputs[sl], target=None if t.target is None else t.target[sl],
                         baselines=t.baselines[sl], extra=tuple(e[sl] if isinstance(e, Tensor) else e for e in t.extra),
                         n_steps=self.n_steps, internal_batch_size=self.internal_batch_size,
                         cam_layer=t.cam_layer, occlusion_window=self.occlusion_window, seed=self.seed)

    def run(self, subject, data: AnalysisData) -> Finding:
        self.check_params()
        self._shuffled: dict[str, tuple[dict, dict]] = {}
        torch.manual_seed(self.seed)
        subject.eval()
        pixel_targets = tuple(t for t in self.targets if t != "units")
        want = set(pixel_targets) | ({"generator"} if "units" in self.targets else set())
        n_build = max(self.n_images, self.sanity_images if self.sanity else 0)
        targets, skipped = build_targets(subject, data, [t for t in TARGET_NAMES if t in want],
                                         n_images=n_build, baseline=self.baseline, region=self.region,
                                         seed=self.seed)
        if not targets:
            return Finding.skip(self.name, "no attribution target available: " +
                                "; ".join(f"{n}: {why}" for n, why in skipped), self.params())
        params = self.params()
        if not self.budget_s:
            return self._run(subject, data, targets, skipped, params, [])
        costs = [self._target_cost(t, subject, unit_costs_for(subject, data)) for t in targets]
        sizes, sizing = self._sized(subject, costs)
        sized = copy.copy(self)          # the configured parameters stay in params; the notes say the cuts
        for k, v in sizes.items():
            setattr(sized, k, v)
        if sizing:
            params["sized_to_budget"] = {k: v for k, v in sizes.items() if v != getattr(self, k)}
        return sized._run(subject, data, targets, skipped, params, sizing)

    def _run(self, subject, data: AnalysisData, targets: list[Target], skipped: list, params: dict,
             sizing: list[str]) -> Finding:
        pixel_targets = tuple(t for t in self.targets if t != "units")
        arrays: dict[str, np.ndarray] = {}
        maps_rows, comp_rows, sanity_rows, unit_rows, agree_rows = [], [], [], [], []
        targets, sizing = self._finite_only(targets, pixel_targets, skipped, sizing)
        names = subject.style_names
        main = slice(0, self.n_images)                  # the maps shown; the sanity checks may use more
        for t in (t for t in targets if t.name in pixel_targets):
            if t.images is not None:
                arrays[f"images__{t.key}"] = thumbnails(t.images[main], self.map_size)
            if "mask" in t.meta:
                arrays["region_mask"] = t.meta["mask"].cpu().numpy().astype(np.float16)
            for method in self.methods:
                if method == "layer_gradcam" and (t.cam_layer is None or t.inputs.dim() != 4):
                    skipped.append((f"{t.key}/{method}", "no conv layer of a scored image model on this path"))
                    continue
                t0 = time.perf_counter()
                res = self._run_method(method, t, main)
                secs = time.perf_counter() - t0
                a = res.attributions
                arrays[f"maps__{t.key}__{method}"] = (_small(a, self.map_size) if a.dim() == 4
                                                      else a.detach().float().cpu().numpy())
                for i in range(len(a)):
                    s = -1 if t.styles is None else int(t.styles[i])
                    maps_rows.append({"target": t.name, "source": t.source, "method": method, "image": i,
                                      "style": names[s] if s >= 0 else "", "style_id": s,
                                      "abs_sum": float(a[i].detach().abs().sum()), "seconds": secs / len(a)})
                if res.delta is not None:
                    total = a.flatten(1).sum(1).detach()
                    gap = (total - res.delta).abs().clamp_min(1e-12)   # |F(x) - F(baseline)|
                    for i, d in enumerate(res.delta.detach().float().cpu().tolist()):
                        comp_rows.append({"target": t.name, "source": t.source, "method": method, "image": i,
                                          "delta": d, "abs_delta": abs(d), "rel_delta": abs(d) / float(gap[i]),
                                          "n_steps": self.n_steps})
                if self.sanity and t.model is not None:
                    sanity_rows += self._sanity(t, method, arrays, data)
        if "units" in self.targets:
            gen = next((t for t in targets if t.name == "generator"), None)
            if gen is None:
                skipped.append(("units", "needs the generator target (a classifier or discriminator to score G)"))
            else:
                unit_rows, agree_rows, unit_notes = self._units(subject, gen)
                sizing = list(sizing) + unit_notes
        notes = list(sizing) + [f"skipped {n}: {why}" for n, why in skipped]
        notes += self._sanity_notes(sanity_rows) + self._agreement_notes(agree_rows)
        tables = {
            "attribution_maps": pd.DataFrame(maps_rows, columns=["target", "source", "method", "image", "style",
                                                                 "style_id", "abs_sum", "seconds"]),
            "attribution_completeness": pd.DataFrame(comp_rows, columns=["target", "source", "method", "image", "delta",
                                                                         "abs_delta", "rel_delta", "n_steps"]),
            "attribution_sanity": pd.DataFrame(sanity_rows, columns=SANITY_COLUMNS),
            "attribution_units": pd.DataFrame(unit_rows, columns=["layer", "unit", "style", "importance", "rank",
                                                                  "method", "style_id", "n_images",
                                                                  "ablation_effect", "active"]),
            "attribution_skipped": pd.DataFrame(skipped, columns=["target", "reason"]),
        }
        if "units" in self.targets and self.unit_agreement:
            tables["attribution_unit_agreement"] = pd.DataFrame(agree_rows, columns=AGREEMENT_COLUMNS)
        if self.region is not None and not isinstance(self.region, str):
            params["region"] = torch.as_tensor(self.region).tolist()     # a mask: store it as JSON
        return Finding(analysis=self.name, params=params, tables=tables, arrays=arrays, notes=notes,
                       provenance={"seed": self.seed, "data_fingerprint": data.fingerprint,
                                   **{k: subject.meta[k] for k in ("sha256",) if k in subject.meta}})

    @staticmethod
    def _finite_only(targets: list[Target], pixel_targets: tuple, skipped: list, sizing: list[str]
                     ) -> tuple[list[Target], list[str]]:
        """Leave out (and count) the images whose attribution cannot be finite (``finite.py``)."""
        kept, notes = [], list(sizing)
        for t in targets:
            if t.name not in pixel_targets:
                kept.append(t)
                continue
            n = len(t.inputs)
            t2, bad = drop_non_finite(t)
            why = ("the score's gradient is not finite there (a flat, one-value image through instance or group "
                   "norms, whose variance is 0, overflows it)")
            if t2 is None:
                skipped.append((t.key.replace("__", "/"), f"all {n} images left out: {why}"))
                continue
            if bad:
                notes.append(f"{t.key.replace('__', '/')}: {bad} of {n} image(s) left out, {why}")
            kept.append(t2)
        return kept, notes

    # --- cost (analyses/cost.py) ------------------------------------------------------------------
    def _method_seconds(self, method: str, c: dict, n_steps: int, window: int | None) -> float:
        """Seconds per example of one method on one target (Captum's passes: IG n_steps gradients
        and two forwards for its delta, occlusion one forward per patch and one unoccluded)."""
        t_f, t_fb, shape = c["t_f"], c["t_fb"], c["shape"]
        if len(shape) == 3:
            w = window or max(2, shape[-1] // 16)
            patches = math.ceil(shape[-2] / w) * math.ceil(shape[-1] / w)
        else:
            patches = int(shape[0]) if shape else 1
        if method == "layer_gradcam" and not c["cam"]:
            return 0.0
        return {"ig": n_steps * t_fb + 2 * t_f, "saliency": t_fb, "gradient_shap": _NT * t_fb,
                "occlusion": (patches + 1) * t_f, "layer_gradcam": t_fb, "noise_tunnel_ig": _NT * n_steps * t_fb,
                "noise_tunnel_saliency": _NT * t_fb}[method]

    def _calls(self, method: str, c: dict, k: int, n_steps: int, window: int | None) -> float:
        """Model calls of one method on k examples (each costs ``call_s`` beyond its images)."""
        ibs = max(1, self.internal_batch_size)
        if method == "ig":
            return math.ceil(k * n_steps / ibs) + 1
        if method == "occlusion":
            per = self._method_seconds("occlusion", {**c, "t_f": 1.0}, n_steps, window) - 1
            return math.ceil(per / ibs) + 1
        if method == "noise_tunnel_ig":
            return _NT * (math.ceil(k * n_steps / ibs) + 1)
        return _NT if method == "noise_tunnel_saliency" else 1

    def _explain_seconds(self, c: dict, k: int, sz: dict) -> float:
        """Seconds of every method of the analysis on k examples of target c."""
        if k <= 0:
            return 0.0
        return sum(k * self._method_seconds(m, c, sz["n_steps"], sz["occlusion_window"])
                   + c["call_s"] * self._calls(m, c, k, sz["n_steps"], sz["occlusion_window"]) for m in self.methods)

    def _label_seconds(self, c: dict, sz: dict) -> float:
        """The shuffled-label model's training at its worst case: every one of ``label_steps`` steps
        (a batch of up to 32 images forward and backward). It stops at the first check at which it fits
        its labels as well as the real model fits the real ones, which no count knows before (the demo's
        two classifiers: after 200 and 50 of 600): ``estimate_cost`` says "up to"."""
        return sz["label_steps"] * (min(32, self.label_images) * c["t_fb"] + 2 * c["call_s"])

    def _plan_seconds(self, costs: list[dict], sz: dict) -> float:
        """The whole run's seconds at sizes ``sz`` (maps, sanity cascade and shuffled-label model,
        unit importance and the unit-by-unit ablations), from each target's per-example costs."""
        pixel = set(self.targets) - {"units"}
        total, trained = 0.0, set()
        for c in costs:
            if c["name"] in pixel:
                # finite.py: one gradient per built image, in batches of FINITE_BATCH, before any method
                total += c["n"] * c["t_fb"] + c["call_s"] * math.ceil(c["n"] / FINITE_BATCH)
                total += self._explain_seconds(c, min(sz["n_images"], c["n"]), sz)
                if self.sanity and c["sanity"]:
                    explains = 1 + min(sz["sanity_steps"], c["layers"]) + (1 if c["labels"] else 0)
                    total += explains * self._explain_seconds(c, min(sz["sanity_images"], c["n"]), sz)
                    if c["labels"] and c["name"] not in trained:     # one shuffled-label model per classifier
                        trained.add(c["name"])
                        total += self._label_seconds(c, sz)
            if "units" in self.targets and c["name"] == "generator" and c["units"]:
                n = min(sz["n_images"], c["n"])
                for um in self.unit_methods:
                    total += n * (sz["n_steps"] * c["t_fb"] + 2 * c["t_f"] if um == "layer_conductance" else c["t_fb"])
                    total += c["call_s"] * (math.ceil(n * sz["n_steps"] / max(1, self.internal_batch_size)) + 1)
                if self.unit_agreement:
                    u = min(c["units"], sz["max_units"] or c["units"])
                    total += (1 + u + (1 if u < c["units"] else 0)) * (n * c["t_f"] + c["call_s"])
        return total

    def _target_cost(self, t: Target | dict, subject, unit: UnitCosts) -> dict:
        """Per-example seconds of a target's forward and forward+backward: the subject's measured
        ones for the targets that run the generator, else the image model timed on a few images."""
        get = (lambda k: t[k]) if isinstance(t, dict) else (lambda k: getattr(t, k))  # noqa: E731
        name, model = get("name"), get("model")
        on_g = model is subject.generator
        if isinstance(t, dict):
            n, fn = t["n"], t["fn"]
            x = None
            shape = (subject.style_dim,) if name == "generator_code" else (3, unit.image_size, unit.image_size)
        else:
            n, fn, x = len(t.inputs), t.forward, t.inputs
            shape = tuple(t.inputs.shape[1:])
        if on_g:
            t_f, t_fb = unit.forward_small_s or unit.forward_s, unit.grad_s   # at attribution's internal batch
            scorer = t.get("scorer") if isinstance(t, dict) else getattr(t.forward, "scorer", None)
            if scorer is not None and unit.image_size:     # G's image is then scored (a classifier or D)
                b = max(1, min(self.internal_batch_size, n, 8))
                s_f, s_fb = _time_forward(scorer, torch.rand(b, 3, unit.image_size, unit.image_size,
                                                             device=subject.device) * 2 - 1)
                t_f, t_fb = t_f + s_f, t_fb + s_fb
        else:
            b = max(1, min(self.internal_batch_size, n, 8))
            xs = x[:b] if x is not None else torch.rand(b, *shape, device=subject.device) * 2 - 1
            t_f, t_fb = _time_forward(fn, xs)
        layer = None
        if name == "generator" and "units" in self.targets:
            try:
                layer = self.layer or default_unit_layer(subject.generator)
            except LookupError:
                layer = None
        owners = sum(1 for _, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))) \
            if model is not None else 0
        return dict(name=name, n=n, t_f=t_f, t_fb=t_fb, shape=shape, sanity=model is not None, layers=max(1, owners),
                    on_g=on_g, call_s=unit.call_s,
                    labels=(get("source") == "real" and name in ("classifier", "texture_classifier")
                            and self.label_steps > 0),
                    cam=name in ("classifier", "texture_classifier", "discriminator", "generator"),
                    units=unit.channels(layer) if layer else 0)

    def _sized(self, subject, costs: list[dict]) -> tuple[dict, list[str]]:
        side = max((c["shape"][-1] for c in costs if len(c["shape"]) == 3), default=16)
        window = self.occlusion_window or max(2, side // 16)
        units = max((c["units"] for c in costs), default=0)
        sizes = {"sanity_steps": self.sanity_steps, "n_steps": self.n_steps, "occlusion_window": window,
                 "max_units": self.max_units or units or None, "sanity_images": self.sanity_images,
                 "n_images": self.n_images, "label_steps": self.label_steps}
        cuts = [("sanity_steps", halve_to(1)), ("n_steps", halve_to(min(self.n_steps, 16))),
                ("occlusion_window", double_to(max(window, side // 4))),
                ("max_units", halve_to(min(sizes["max_units"] or 32, 32))),
                ("sanity_images", halve_to(min(self.sanity_images, 4))), ("n_images", halve_to(min(self.n_images, 2))),
                ("label_steps", halve_to(min(self.label_steps, 200)))]
        sizes, notes = size_to_budget(sizes, lambda sz: self._plan_seconds(costs, sz), self.budget_s, cuts,
                                      what=self.name)
        if sizes["occlusion_window"] == window and self.occlusion_window is None:
            sizes["occlusion_window"] = None                       # unchanged: the default rule
        if sizes["max_units"] == (self.max_units or units or None):
            sizes["max_units"] = self.max_units
        return sizes, notes

    def estimate_cost(self, subject, data: AnalysisData, unit: UnitCosts) -> Cost:
        """The plan of ``_plan_seconds`` (in seconds; the generator's share also as images) for the
        targets this subject and data allow, at the sizes ``budget_s`` leaves."""
        want = set(self.targets) - {"units"} | ({"generator"} if "units" in self.targets else set())
        n_build = max(self.n_images, self.sanity_images if self.sanity else 0)
        found, skipped = available_targets(subject, data, [t for t in TARGET_NAMES if t in want], n_images=n_build,
                                           region=self.region)
        if not found:
            return Cost(skip="no attribution target available: " + "; ".join(f"{n}: {w}" for n, w in skipped))
        costs = [self._target_cost(f, subject, unit) for f in found]
        sizes, notes = self._sized(subject, costs)
        seconds = self._plan_seconds(costs, sizes)
        # the plan is linear in the per-example costs: price the generator's passes at 1 to count them
        only = lambda f, g: [dict(c, t_f=f if c["on_g"] else 0.0, t_fb=g if c["on_g"] else 0.0, call_s=0.0)  # noqa: E731
                             for c in costs]
        fwd, grads = self._plan_seconds(only(1.0, 0.0), sizes), self._plan_seconds(only(0.0, 1.0), sizes)
        labels = {c["name"]: c for c in costs if c["labels"] and c["name"] in self.targets} if self.sanity else {}
        if labels and sizes["label_steps"]:
            worst = sum(self._label_seconds(c, sizes) for c in labels.values())
            notes = [f"up to {sizes['label_steps']} shuffled-label steps per classifier ({fmt_seconds(worst)} of it "
                     f"if all run; it stops once it fits)"] + notes
        return Cost(forwards=fwd, grads=grads, other_s=max(0.0, seconds - fwd * unit.forward_s - grads * unit.grad_s),
                    notes=notes, calls=0)          # the calls' own cost is in the plan's seconds

    def _sanity_notes(self, rows: list[dict]) -> list[str]:
        notes = []
        for r in rows:
            if r["randomized"] not in ("all", "labels"):
                continue
            what = f"sanity {r['target']}/{r['source']}/{r['method']} ({r['randomized']})"
            if r["verdict"] == "not valid":
                notes.append(f"{what}: NOT VALID: the shuffled-label model reached training accuracy "
                             f"{r['acc_shuffled']:.2f} in {r['label_steps_run']} steps, below the real model's "
                             f"{r['acc_real']:.2f} on the same {r['label_images']} images (raise label_steps); "
                             f"mean rho {r['spearman']:.2f} is not read as a verdict")
                continue
            lo, hi = (sig_beside(r[c], r["threshold"]) for c in ("ci_low", "ci_high"))   # never rounded onto it
            notes.append(f"{what}: mean rho {r['spearman']:.2f} (95% t-interval over images "
                         f"{lo} to {hi}), below the threshold {r['threshold']} on "
                         f"{r['n_passed']} of {r['n_images']} images ({r['n_styles']} styles) -> {r['verdict'].upper()}"
                         + (f"; shuffled-label model trained to accuracy {r['acc_shuffled']:.2f} "
                            f"(real model {r['acc_real']:.2f}) on {r['label_images']} images"
                            if r["randomized"] == "labels" else ""))
            if r["randomized"] == "all" and np.isfinite(r["input_corr"]):
                notes.append(f"{what}: |attribution| vs |x - baseline| rank correlation {r['input_corr_before']:.2f} "
                             f"before and {r['input_corr']:.2f} after randomisation")
        return notes

    @staticmethod
    def _agreement_notes(rows: list[dict]) -> list[str]:
        return [f"unit agreement {r['method']} vs zero-ablation, {r['style']} at {r['layer']}: Spearman "
                f"{r['spearman']:.2f} (95% CI {r['ci_low']:.2f} to {r['ci_high']:.2f}, p {r['p_value']:.2g}) over "
                f"{r['n_units']} units ({r['n_inactive']} inactive left out), {r['n_images']} images"
                for r in rows if np.isfinite(r["spearman"])]

    def _sanity(self, t: Target, method: str, arrays: dict, data: AnalysisData) -> list[dict]:
        sl = slice(0, self.sanity_images)

        def explain(fwd):
            return self._run_method(method, t, sl, forward=fwd).attributions

        def probe():
            return t.forward(t.inputs[:1], *[e[:1] if isinstance(e, Tensor) else e for e in t.extra])

        steps = cascading_randomization(explain, t.forward, t.model, max_steps=self.sanity_steps,
                                        seed=self.seed, probe=probe)
        info = None
        if t.source == "real" and t.name in ("classifier", "texture_classifier") and self.label_steps > 0:
            if t.name not in self._shuffled:      # one label-randomised copy per model, shared by methods
                dev = t.inputs.device
                pick = balanced_order(data.style_labels)[:self.label_images].to(data.style_labels.device)
                m, info = data_randomized_copy(t.model, data.style_images[pick].to(dev),
                                               data.style_labels[pick].to(dev), max_steps=self.label_steps,
                                               seed=self.seed)
                self._shuffled[t.name] = ({**dict(m.named_parameters()), **dict(m.named_buffers())}, info)
            state, info = self._shuffled[t.name]
            steps.append(("labels", explain(with_parameters(t.forward, t.model, state)).detach()))
        rows = compare_maps(steps[0][1], steps, self.sanity_threshold, inputs=t.inputs[sl], baselines=t.baselines[sl])
        n_styles = len(set(t.styles[sl].tolist())) if t.styles is not None else 0
        for r in rows:
            r.update(method=method, target=t.name, source=t.source, threshold=self.sanity_threshold, n_styles=n_styles,
                     acc_real=np.nan, acc_shuffled=np.nan, label_images=0, label_steps_run=0)
            if r["randomized"] == "labels" and info is not None:
                r.update(acc_real=info["acc_real"], acc_shuffled=info["acc_shuffled"], label_images=info["n_images"],
                         label_steps_run=info["steps"])
                if not info["reached"]:
                    r.update(verdict="not valid", passed=False)
        first = [m[:1] for _, m in steps]
        if first[0].dim() == 4:
            arrays[f"sanity__{t.key}__{method}"] = np.concatenate([_small(m, self.map_size) for m in first])
        return rows

    def _units(self, subject, t: Target) -> tuple[list[dict], list[dict], list[str]]:
        layer = self.layer or default_unit_layer(subject.generator)
        module = get_module(subject.generator, layer)
        layout = unit_layout(subject.generator, layer)     # refuses a reused module or an unreadable output
        notes = []
        sl = slice(0, self.n_images)
        styles = t.styles[sl].cpu()
        rows, agree = [], []
        effects = peak = None
        for method in self.unit_methods:
            imp = unit_importance(method, t.forward, t.inputs[sl], module, target=t.target[sl],
                                  baselines=t.baselines[sl],
                                  extra=tuple(e[sl] if isinstance(e, Tensor) else e for e in t.extra),
                                  n_steps=self.n_steps,
                                  internal_batch_size=self.internal_batch_size, layout=layout).detach().float().cpu()
            if self.unit_agreement and effects is None:   # every ranked unit, zeroed alone (shared by methods)
                sub = Target(t.name, t.source, t.forward, t.inputs[sl], t.baselines[sl], t.target[sl],
                             tuple(e[sl] if isinstance(e, Tensor) else e for e in t.extra))
                C = imp.shape[1]
                picked = np.arange(C)
                if self.max_units is not None and self.max_units < C:   # a seeded random sample of the units
                    picked = np.sort(np.random.default_rng(self.seed).choice(C, self.max_units, replace=False))
                    notes.append(f"unit agreement at {layer}: {len(picked)} of {C} units, a seeded random sample "
                                 f"(max_units), were zeroed one by one; the Spearman rho is over those units")
                eff, pk = single_unit_effects(sub, subject.generator, layer, picked, seed=self.seed)
                effects = np.full((len(sub.inputs), C), np.nan)
                peak = np.full((len(sub.inputs), C), np.nan)
                effects[:, picked], peak[:, picked] = eff, pk
                if len(picked) < C:                              # every unit's activity (one unedited pass)
                    with torch.no_grad(), Trace(subject.generator, layer) as tr:
                        sub.forward(sub.inputs, *sub.extra)
                    peak = tr.output.float().abs().reshape(*tr.output.shape[:2], -1).amax(-1).cpu().numpy()
            for s in sorted(set(styles.tolist())):
                sel = (styles == s)
                mean = imp[sel].mean(0)
                ranks = torch.empty_like(mean, dtype=torch.long)
                ranks[mean.argsort(descending=True)] = torch.arange(1, len(mean) + 1)
                eff = effects[sel.numpy()].mean(0) if effects is not None else np.full(len(mean), np.nan)
                active = peak[sel.numpy()].max(0) > 0 if peak is not None else np.ones(len(mean), bool)
                ablated = np.isfinite(eff)                       # the units zeroed (all, or the sample)
                rows += [{"layer": layer, "unit": u, "style": subject.style_names[s], "importance": float(mean[u]),
                          "rank": int(ranks[u]), "method": method, "style_id": s, "n_images": int(sel.sum()),
                          "ablation_effect": float(eff[u]), "active": bool(active[u])}
                         for u in range(len(mean))]
                if effects is not None:
                    use = active & ablated
                    r = spearman_interval(mean.numpy()[use], eff[use])
                    agree.append({"target": t.name, "method": method, "style": subject.style_names[s], "layer": layer,
                                  "n_units": int(use.sum()), "spearman": r["spearman"], "ci_low": r["ci_low"],
                                  "ci_high": r["ci_high"], "p_value": r["p_value"],
                                  "n_inactive": int((~active & ablated).sum()), "n_images": int(sel.sum()),
                                  "scorer": t.meta.get("scorer", ""),
                                  "effect": "log-odds drop of the target style when the unit alone is zeroed"})
        return rows, agree, notes
