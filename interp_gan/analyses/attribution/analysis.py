"""Attributions through Captum for the classifier, the discriminator and the generator,
with sanity checks on by default.

    finding = build_analysis("attribution", methods=("ig", "occlusion"), n_images=4).run(subject, data)
    finding.tables["attribution_sanity"]     # method, randomized, spearman, ssim, passed, target
    finding.tables["attribution_units"]      # layer, unit, style, importance, rank

    res = attribute("ig", forward, x, target=y, baselines=b, n_steps=32, internal_batch_size=8)
    res.attributions, res.delta               # delta: IG's completeness gap (None for others)

Methods (Captum): ``ig`` IntegratedGradients (Sundararajan et al., ICML 2017), ``saliency``
(Simonyan et al. 2014), ``gradient_shap`` (Lundberg & Lee, NeurIPS 2017), ``occlusion``
(Zeiler & Fergus 2014), ``layer_gradcam`` (Selvaraju et al., ICCV 2017; upsampled to the
input), ``noise_tunnel_ig`` / ``noise_tunnel_saliency`` (SmoothGrad: Smilkov et al. 2017).
Unit importance: ``layer_conductance`` (Dhamdhere et al., ICLR 2019) and ``layer_gradcam``
over a generator layer. Sanity checks: Adebayo et al., NeurIPS 2018 (attribution_sanity.py).
Targets: attribution_targets.py.
"""
from __future__ import annotations

import time
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from captum.attr import (GradientShap, IntegratedGradients, LayerAttribution, LayerConductance,
                         LayerGradCam, NoiseTunnel, Occlusion, Saliency)
from scipy.stats import spearmanr
from torch import Tensor, nn

from interp_gan.analyses.attribution.sanity import (cascading_randomization, compare_maps,
                                                    label_randomized_copy, with_parameters)
from interp_gan.analyses.attribution.targets import Target, build_targets, TARGET_NAMES
from interp_gan.analyses.base import Analysis, AnalysisData, register_analysis
from interp_gan.harvest.hooks import get_module, spatial_layers
from interp_gan.findings import Finding

__all__ = ["Attribution", "AttributionResult", "attribute", "unit_importance", "unit_agreement",
           "PIXEL_METHODS", "UNIT_METHODS"]

PIXEL_METHODS = ("ig", "saliency", "gradient_shap", "occlusion", "layer_gradcam", "noise_tunnel_ig",
                 "noise_tunnel_saliency")
UNIT_METHODS = ("layer_conductance", "layer_gradcam")


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
                    internal_batch_size: int = 8) -> Tensor:
    """[N, C]: each unit's (channel's) attribution at ``layer``, summed over space."""
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
    return a.flatten(2).sum(-1) if a.dim() > 2 else a


def unit_agreement(attribution_units: pd.DataFrame, ablation: pd.DataFrame) -> pd.DataFrame:
    """Spearman between attribution unit importance and the ablation effect, per layer (and style
    where the ablation ``target`` names one). Single-unit ablation rows only; columns: layer,
    style, method, n_units, spearman, p_value."""
    cols = ["layer", "style", "method", "n_units", "spearman", "p_value"]
    if attribution_units is None or ablation is None or not len(attribution_units) or not len(ablation):
        return pd.DataFrame(columns=cols)
    ab = ablation.copy()
    ab["unit"] = pd.to_numeric(ab["units"].astype(str).str.strip("[]() "), errors="coerce")
    ab = ab.dropna(subset=["unit"])
    ab["unit"] = ab["unit"].astype(int)
    rows = []
    for (layer, method), au in attribution_units.groupby(["layer", "method"]):
        abl = ab[ab["layer"] == layer]
        styles = set(au["style"])
        by_style = "target" in abl and abl["target"].isin(styles).any()
        groups = abl.groupby("target") if by_style else [("all", abl)]
        for style, g in groups:
            if by_style and style not in styles:
                continue
            imp = au[au["style"] == style] if by_style else au.groupby("unit", as_index=False)["importance"].mean()
            eff = g.groupby("unit", as_index=False)["effect"].mean()
            m = imp.merge(eff, on="unit")
            if len(m) < 3:
                continue
            r = spearmanr(m["importance"], m["effect"])
            rows.append({"layer": layer, "style": style, "method": method, "n_units": len(m),
                         "spearman": float(r.statistic), "p_value": float(r.pvalue)})
    return pd.DataFrame(rows, columns=cols)


def _small(maps: Tensor, size: int) -> np.ndarray:
    """[N,C,H,W] -> |.| summed over channels, area-downsampled to at most size px: [N,h,w] float16."""
    a = maps.detach().float().abs().sum(1, keepdim=True)
    if max(a.shape[-2:]) > size:
        a = F.adaptive_avg_pool2d(a, (size * a.shape[-2] // max(a.shape[-2:]), size * a.shape[-1] // max(a.shape[-2:])))
    return a[:, 0].cpu().numpy().astype(np.float16)


def _uint8(images: Tensor, size: int) -> np.ndarray:
    x = images.detach().float()
    if max(x.shape[-2:]) > size:
        x = F.adaptive_avg_pool2d(x, (size * x.shape[-2] // max(x.shape[-2:]), size * x.shape[-1] // max(x.shape[-2:])))
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


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
    layer for the units target; default: the middle conv), unit_methods, sanity (on by
    default), sanity_threshold (a method passes when Spearman after full randomisation is
    below it), sanity_images, sanity_steps (most cascade steps), label_steps, map_size,
    occlusion_window (patch side in pixels, default image side / 16; occlusion costs one forward
    per patch, so doubling it quarters the cost), seed.
    """

    def __init__(self, *, methods=("ig", "saliency", "occlusion"),
                 targets=TARGET_NAMES + ("units",), n_images: int = 4, n_steps: int = 32,
                 internal_batch_size: int = 8, baseline: str = "blurred", region="center",
                 layer: str | None = None, unit_methods=("layer_conductance",), sanity: bool = True,
                 sanity_threshold: float = 0.5, sanity_images: int = 2, sanity_steps: int = 5,
                 label_steps: int = 30, map_size: int = 64, occlusion_window: int | None = None,
                 seed: int = 0) -> None:
        self.methods, self.targets, self.n_images, self.n_steps = tuple(methods), tuple(targets), n_images, n_steps
        self.internal_batch_size, self.baseline, self.region, self.layer = internal_batch_size, baseline, region, layer
        self.unit_methods, self.sanity, self.sanity_threshold = tuple(unit_methods), sanity, sanity_threshold
        self.sanity_images, self.sanity_steps, self.label_steps = sanity_images, sanity_steps, label_steps
        self.map_size, self.seed = map_size, seed
        self.occlusion_window = occlusion_window   # occlusion patch side in pixels (None: image side / 16)

    def _validate(self) -> None:
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
        if self.n_images < 1 or self.n_steps < 2:
            raise ValueError(f"need n_images >= 1 and n_steps >= 2; got {self.n_images}, {self.n_steps}")

    def _run_method(self, method: str, t: Target, sl: slice = slice(None), forward=None) -> AttributionResult:
        return attribute(method, forward or t.forward, t.inputs[sl], target=None if t.target is None else t.target[sl],
                         baselines=t.baselines[sl], extra=tuple(e[sl] if isinstance(e, Tensor) else e for e in t.extra),
                         n_steps=self.n_steps, internal_batch_size=self.internal_batch_size,
                         cam_layer=t.cam_layer, occlusion_window=self.occlusion_window, seed=self.seed)

    def run(self, subject, data: AnalysisData) -> Finding:
        self._validate()
        self._shuffled: dict[str, dict] = {}
        torch.manual_seed(self.seed)
        subject.eval()
        pixel_targets = tuple(t for t in self.targets if t != "units")
        want = set(pixel_targets) | ({"generator"} if "units" in self.targets else set())
        targets, skipped = build_targets(subject, data, [t for t in TARGET_NAMES if t in want],
                                         n_images=self.n_images, baseline=self.baseline, region=self.region,
                                         seed=self.seed)
        if not targets:
            return Finding.skip(self.name, "no attribution target available: " +
                                "; ".join(f"{n}: {why}" for n, why in skipped), self.params())
        arrays: dict[str, np.ndarray] = {}
        maps_rows, comp_rows, sanity_rows, unit_rows = [], [], [], []
        names = subject.style_names
        for t in (t for t in targets if t.name in pixel_targets):
            if t.images is not None:
                arrays[f"images__{t.key}"] = _uint8(t.images, self.map_size)
            if "mask" in t.meta:
                arrays["region_mask"] = t.meta["mask"].cpu().numpy().astype(np.float16)
            for method in self.methods:
                if method == "layer_gradcam" and (t.cam_layer is None or t.inputs.dim() != 4):
                    skipped.append((f"{t.key}/{method}", "no conv layer of a scored image model on this path"))
                    continue
                t0 = time.perf_counter()
                res = self._run_method(method, t)
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
                unit_rows = self._units(subject, gen)
        notes = [f"skipped {n}: {why}" for n, why in skipped]
        if sanity_rows:
            final = pd.DataFrame(sanity_rows)
            final = final[final["randomized"].isin(["all", "labels"])]
            for r in final.itertuples():
                notes.append(f"sanity {r.target}/{r.source}/{r.method} ({r.randomized}): spearman {r.spearman:.2f} "
                             f"-> {'PASS' if r.passed else 'FAIL'} (threshold {self.sanity_threshold})")
        tables = {
            "attribution_maps": pd.DataFrame(maps_rows, columns=["target", "source", "method", "image", "style",
                                                                 "style_id", "abs_sum", "seconds"]),
            "attribution_completeness": pd.DataFrame(comp_rows, columns=["target", "source", "method", "image", "delta",
                                                                         "abs_delta", "rel_delta", "n_steps"]),
            "attribution_sanity": pd.DataFrame(sanity_rows, columns=["method", "randomized", "spearman", "ssim",
                                                                     "passed", "target", "source", "step",
                                                                     "threshold"]),
            "attribution_units": pd.DataFrame(unit_rows, columns=["layer", "unit", "style", "importance", "rank",
                                                                  "method", "style_id", "n_images"]),
            "attribution_skipped": pd.DataFrame(skipped, columns=["target", "reason"]),
        }
        params = self.params()
        if self.region is not None and not isinstance(self.region, str):
            params["region"] = torch.as_tensor(self.region).tolist()     # a mask: store it as JSON
        return Finding(analysis=self.name, params=params, tables=tables, arrays=arrays, notes=notes,
                       provenance={"seed": self.seed, "data_fingerprint": data.fingerprint,
                                   **{k: subject.meta[k] for k in ("sha256",) if k in subject.meta}})

    def _sanity(self, t: Target, method: str, arrays: dict, data: AnalysisData) -> list[dict]:
        sl = slice(0, self.sanity_images)

        def explain(fwd):
            return self._run_method(method, t, sl, forward=fwd).attributions

        def probe():
            return t.forward(t.inputs[:1], *[e[:1] if isinstance(e, Tensor) else e for e in t.extra])

        steps = cascading_randomization(explain, t.forward, t.model, max_steps=self.sanity_steps,
                                        seed=self.seed, probe=probe)
        if t.source == "real" and t.name in ("classifier", "texture_classifier") and self.label_steps > 0:
            if t.name not in self._shuffled:      # one label-randomised copy per model, shared by methods
                dev = t.inputs.device
                m = label_randomized_copy(t.model, data.style_images.to(dev), data.style_labels.to(dev),
                                          steps=self.label_steps, seed=self.seed)
                self._shuffled[t.name] = {**dict(m.named_parameters()), **dict(m.named_buffers())}
            steps.append(("labels", explain(with_parameters(t.forward, t.model, self._shuffled[t.name])).detach()))
        rows = compare_maps(steps[0][1], steps, self.sanity_threshold)
        for r in rows:
            r.update(method=method, target=t.name, source=t.source, threshold=self.sanity_threshold)
        first = [m[:1] for _, m in steps]
        if first[0].dim() == 4:
            arrays[f"sanity__{t.key}__{method}"] = np.concatenate([_small(m, self.map_size) for m in first])
        return rows

    def _units(self, subject, t: Target) -> list[dict]:
        layer = self.layer or (lambda L: L[len(L) // 2])(spatial_layers(subject.generator))
        module = get_module(subject.generator, layer)
        rows = []
        for method in self.unit_methods:
            imp = unit_importance(method, t.forward, t.inputs, module, target=t.target, baselines=t.baselines,
                                  extra=t.extra, n_steps=self.n_steps,
                                  internal_batch_size=self.internal_batch_size).detach().float().cpu()
            for s in sorted(set(t.styles.tolist())):
                sel = (t.styles.cpu() == s)
                mean = imp[sel].mean(0)
                ranks = torch.empty_like(mean, dtype=torch.long)
                ranks[mean.argsort(descending=True)] = torch.arange(1, len(mean) + 1)
                rows += [{"layer": layer, "unit": u, "style": subject.style_names[s], "importance": float(mean[u]),
                          "rank": int(ranks[u]), "method": method, "style_id": s, "n_images": int(sel.sum())}
                         for u in range(len(mean))]
        return rows
