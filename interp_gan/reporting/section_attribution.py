"""Report section for ``Attribution`` findings: sanity checks first, then heat overlays per
method and target, IG completeness, unit importance, agreement with ablation, skipped targets.

    section = attribution_section(finding, ReportContext())     # registered for "attribution"

Reads only the Finding (tables ``attribution_sanity`` / ``_maps`` / ``_completeness`` /
``_units`` / ``_skipped``; arrays ``images__<target>__<source>`` uint8 [N,h,w,3],
``maps__<target>__<source>__<method>`` [N,h,w] |attribution|, ``sanity__...`` [steps,h,w]);
never runs a model. The ablation finding, when ``ctx.findings`` has one, is compared with the
unit importance through ``unit_agreement``.
"""
from __future__ import annotations


import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from interp_gan.analyses.attribution.analysis import unit_agreement
from interp_gan.reporting.sections import ImageGrid, ReportContext, Section, Table, register_section

__all__ = ["attribution_section", "heat_overlay", "heat_colors", "sanity_figure", "unit_bars"]

# Papers of the attribution methods a run used (IG, SmoothGrad, Grad-CAM are cited for the section).
METHOD_REFERENCES = {"saliency": "simonyan2014saliency", "occlusion": "zeiler2014occlusion",
                     "gradient_shap": "lundberg2017shap", "layer_conductance": "dhamdhere2019conductance"}

HOW_TO_READ = (
    "<p><b>How to read this.</b> Each map says how much each input pixel (or style-code dimension) "
    "contributes to one scalar: an independent style classifier's logit for the image's style, the "
    "discriminator's style logit, or the target-style score of the generator's output. "
    "<b>Sanity check</b> (Adebayo et al. 2018): the explained model's layers are re-initialised from "
    "the output down, one group at a time, and the maps recomputed; a method that explains the "
    "model must change (Spearman rank correlation of |attribution| with the original below "
    "{t}). A method whose maps survive full randomisation shows the input, not the model, and its "
    "overlays below should not be read as explanations. <i>labels</i>: the classifier re-trained on "
    "shuffled labels. Integrated Gradients' completeness gap |sum(attr) - (F(x) - F(baseline))| is "
    "reported relative to |F(x) - F(baseline)|.</p>")


def heat_colors(h: np.ndarray) -> np.ndarray:
    """[...] in [0,1] -> [..., 3] float in [0,1]: a black-red-yellow-white ("hot") ramp."""
    h = np.clip(h, 0, 1)[..., None]
    return np.clip(np.concatenate([3 * h, 3 * h - 1, 3 * h - 2], axis=-1), 0, 1)


def heat_overlay(images: np.ndarray, maps: np.ndarray, alpha: float = 0.75) -> np.ndarray:
    """uint8 [N,h,w,3] images with |attribution| maps [N,h,w] laid over them (each map scaled
    to its own 99th percentile; grey image underneath)."""
    maps = np.nan_to_num(np.abs(maps.astype(np.float32)))
    scale = np.maximum(np.percentile(maps.reshape(len(maps), -1), 99, axis=1), 1e-12)[:, None, None]
    h = np.clip(maps / scale, 0, 1)
    if images.shape[1:3] != h.shape[1:3]:          # nearest-neighbour resize of the map
        ri = np.arange(images.shape[1]) * h.shape[1] // images.shape[1]
        ci = np.arange(images.shape[2]) * h.shape[2] // images.shape[2]
        h = h[:, ri][:, :, ci]
    grey = images.astype(np.float32).mean(-1, keepdims=True) / 255
    a = alpha * h[..., None]
    return ((1 - a) * grey + a * heat_colors(h)).__mul__(255).clip(0, 255).astype(np.uint8)


def _maps_grid(m: np.ndarray) -> np.ndarray:
    """[K,h,w] maps -> uint8 [K,h,w,3] heat images, each scaled to its own 99th percentile
    (as Adebayo et al. 2018 show them): what must change under randomisation is the map's
    structure, which a shared scale would hide behind the drop in magnitude."""
    m = np.nan_to_num(np.abs(m.astype(np.float32)))
    scale = np.maximum(np.percentile(m.reshape(len(m), -1), 99, axis=1), 1e-12)[:, None, None]
    return (heat_colors(m / scale) * 255).astype(np.uint8)


def sanity_figure(sanity: pd.DataFrame, cols: int = 3) -> go.Figure:
    """Spearman (original vs randomised map) by randomisation step: one panel per explained model
    and image source (each model has its own layers), one line per method, a colour per method."""
    panels = list(dict.fromkeys(zip(sanity.target, sanity.source)))
    rows = max(1, -(-len(panels) // cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"{t} ({s})" for t, s in panels],
                        vertical_spacing=0.5 / rows, horizontal_spacing=0.06)
    colours = dict(zip(dict.fromkeys(sanity.method), qualitative.D3))
    for i, (target, source) in enumerate(panels):
        r, c = i // cols + 1, i % cols + 1
        for method, g in sanity[(sanity.target == target) & (sanity.source == source)].groupby("method", sort=False):
            g = g.sort_values("step")
            fig.add_trace(go.Scatter(x=list(g.randomized), y=list(g.spearman), mode="lines+markers", name=method,
                                     legendgroup=method, showlegend=i == 0, line={"color": colours[method]},
                                     hovertemplate=f"{target} ({source}), {method}<br>randomised up to %{{x}}"
                                                   "<br>rho %{y:.2f}<extra></extra>"), row=r, col=c)
        if len(sanity):
            fig.add_hline(y=float(sanity.threshold.iloc[0]), line_dash="dash", line_color="grey", row=r, col=c)
    fig.update_yaxes(range=[-0.2, 1.05])
    fig.update_yaxes(title_text="Spearman rho", col=1)
    fig.update_xaxes(tickangle=-35, tickfont={"size": 9})
    fig.update_layout(title="Cascading randomisation: rank correlation of |attribution| with the original map "
                            "(layers randomised top down, then 'all', then 'labels'; dashed: pass threshold)",
                      title_font_size=13, height=120 + 300 * rows, legend_title_text="method")
    return fig


def unit_bars(units: pd.DataFrame, top: int = 10) -> go.Figure:
    """The top units per style by attribution importance (grouped bars)."""
    fig = go.Figure()
    for (method, style), g in units.groupby(["method", "style"], sort=False):
        g = g.sort_values("rank").head(top)
        fig.add_trace(go.Bar(name=f"{style} ({method})", x=[f"unit {u}" for u in g.unit], y=list(g.importance)))
    layer = ", ".join(dict.fromkeys(units.layer))
    fig.update_layout(barmode="group", title=f"Unit importance at {layer} (top {top} per style)",
                      yaxis_title="importance (attribution summed over space)")
    return fig


def _verdicts(sanity: pd.DataFrame) -> pd.DataFrame:
    final = sanity[sanity.randomized.isin(["all", "labels"])].copy()
    final["verdict"] = np.where(final.passed.astype(bool), "PASS", "FAIL")
    return final[["target", "source", "method", "randomized", "spearman", "ssim", "verdict"]]


@register_section("attribution")
def attribution_section(finding, ctx: ReportContext) -> Section:
    title = "Attributions (Captum) with sanity checks"
    t = finding.tables
    p, arrays = finding.params, finding.arrays
    blocks: list = [HOW_TO_READ.format(t=p.get("sanity_threshold", 0.5))]
    figures = {}
    sanity = t.get("attribution_sanity", pd.DataFrame())
    if len(sanity):
        v = _verdicts(sanity)
        n_fail = int((v.verdict == "FAIL").sum())
        blocks.append(f"<p><b>Sanity checks: {len(v) - n_fail} passed, {n_fail} failed.</b></p>")
        figures["attribution_sanity"] = fig = sanity_figure(sanity)
        blocks += [fig, Table(v.reset_index(drop=True), caption="Sanity-check verdicts (after full randomisation)")]
        for key in (k for k in arrays if k.startswith("sanity__")):
            _, target, source, method = key.split("__")
            rows = sanity[(sanity.target == target) & (sanity.source == source) & (sanity.method == method)]
            rows = rows.sort_values("step")
            caps = ["original"] + [f"{r.randomized}: rho {r.spearman:.2f} {'PASS' if r.passed else 'FAIL'}"
                                   for r in rows.itertuples()]
            m = arrays[key]
            blocks.append(ImageGrid(_maps_grid(m), caps[:len(m)], ncols=len(m),
                                    title=f"{target} ({source}), {method}: maps as layers are randomised"))
    elif not p.get("sanity", True):
        blocks.append("<p><b>Sanity checks were switched off</b> (sanity=False): the maps below are unchecked.</p>")

    maps = t.get("attribution_maps", pd.DataFrame())
    for (target, source), g in (maps.groupby(["target", "source"], sort=False) if len(maps) else []):
        img_key = f"images__{target}__{source}"
        methods = list(dict.fromkeys(g.method))
        if source == "code":
            vecs = [arrays[f"maps__{target}__{source}__{m}"] for m in methods if f"maps__{target}__{source}__{m}" in arrays]
            fig = go.Figure([go.Bar(name=m, y=np.abs(v).mean(0).tolist()) for m, v in zip(methods, vecs)])
            fig.update_layout(title=f"{target}: mean |attribution| per style-code dimension",
                              xaxis_title="code dimension", yaxis_title="|attribution|", barmode="group")
            blocks.append(fig)
            continue
        if img_key not in arrays:
            continue
        imgs = arrays[img_key]
        tiles, caps = [], []
        first = g[g.method == methods[0]].sort_values("image")
        for i, r in enumerate(first.itertuples()):
            tiles.append(imgs[i])
            caps.append(f"image {i} ({r.style})" if r.style else f"image {i}")
            for m in methods:
                mk = f"maps__{target}__{source}__{m}"
                if mk in arrays:
                    tiles.append(heat_overlay(imgs[i:i + 1], arrays[mk][i:i + 1])[0])
                    caps.append(m)
        blocks.append(ImageGrid(np.stack(tiles), caps, ncols=1 + len(methods),
                                title=f"{target} on {source} images: input, then one overlay per method"))

    comp = t.get("attribution_completeness", pd.DataFrame())
    if len(comp):
        summ = comp.groupby(["target", "source"], as_index=False).agg(
            mean_abs_delta=("abs_delta", "mean"), max_rel_delta=("rel_delta", "max"), n_steps=("n_steps", "first"))
        blocks.append(Table(summ, caption="Integrated Gradients completeness (|delta|; relative to |F(x)-F(baseline)|)"))

    units = t.get("attribution_units", pd.DataFrame())
    if len(units):
        figures["attribution_units"] = fig = unit_bars(units)
        blocks.append(fig)
        ablation = ctx.findings.get("ablation")
        ab = getattr(ablation, "tables", {}).get("ablation") if ablation is not None else None
        if ab is not None and len(ab):
            agree = unit_agreement(units, ab)
            blocks.append(Table(agree, caption="Agreement of attribution unit importance with the ablation effect "
                                               "(Spearman over single-unit ablations)") if len(agree) else
                          "<p>No single-unit ablations on the attribution layer to compare with.</p>")

    skipped = t.get("attribution_skipped", pd.DataFrame())
    if len(skipped):
        blocks.append(Table(skipped.reset_index(drop=True), caption="Targets not computed, and why"))
    sec = Section(title, blocks, anchor="attribution", figures=figures)
    used = list(finding.params.get("methods", ())) + list(finding.params.get("unit_methods", ()))
    sec.references = [METHOD_REFERENCES[m] for m in used if m in METHOD_REFERENCES]
    return sec
