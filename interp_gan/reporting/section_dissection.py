"""Report section for ``Dissection`` findings: IoU heatmaps, labelled units per concept, top units.

    section = dissection_section(finding, ReportContext())     # registered for "dissection"

Reads only the Finding (tables ``dissection_units`` / ``dissection_iou`` / ``dissection_top``,
arrays ``top_images`` [T,k,h,w,3] uint8 and ``top_maps`` [T,k,h,w]); never runs a model.
"""
from __future__ import annotations


import numpy as np
import plotly.graph_objects as go

from interp_gan.reporting.sections import ImageGrid, ReportContext, Section, Table, register_section

__all__ = ["dissection_section", "iou_heatmap", "labelled_bars", "overlay"]

HOW_TO_READ = (
    "<p><b>How to read this.</b> Each unit (channel) of a layer is thresholded at the top "
    "{q:.1%} of its activations over all generated images; the region above the threshold, "
    "upsampled to the image, is compared with each concept mask computed on the generated image "
    "(colour terms, dark/bright, edges, texture, target style). IoU is intersection over union "
    "summed over the data set (GAN Dissection, Bau et al. 2019). A unit is <i>labelled</i> with its "
    "best concept when IoU &gt; {t} and its Benjamini-Hochberg q-value &lt; {a} (permutation test: "
    "masks shuffled across images). The heatmaps show every unit x concept IoU; the bars count "
    "labelled units per concept; the image strips show each top unit's most-activating images "
    "with the region above its threshold kept bright and the rest dimmed.</p>")


def iou_heatmap(long, layer: str) -> go.Figure:
    """Units (rows, sorted by best concept then IoU) x concepts (columns) IoU heatmap for one layer."""
    d = long[long.layer == layer]
    table = d.pivot(index="unit", columns="concept", values="iou")
    concepts = list(dict.fromkeys(d.concept))          # keep the analysis' concept order
    table = table[concepts]
    best = table.to_numpy().argmax(1)
    order = np.lexsort((-table.to_numpy().max(1), best))
    table = table.iloc[order]
    fig = go.Figure(go.Heatmap(z=table.to_numpy(), x=concepts, y=[f"unit {u}" for u in table.index],
                               colorscale="Viridis", colorbar={"title": "IoU"}))
    fig.update_layout(title=f"{layer}: unit x concept IoU", height=min(900, 200 + 8 * len(table)),
                      yaxis={"showticklabels": len(table) <= 64, "autorange": "reversed"})
    return fig


def labelled_bars(units) -> go.Figure:
    """Stacked bars: per layer, how many units are labelled with each concept."""
    lab = units[units.labelled.astype(bool)]
    layers = list(dict.fromkeys(units.layer))
    fig = go.Figure()
    for concept in sorted(set(lab.concept)):
        counts = [int(((lab.layer == L) & (lab.concept == concept)).sum()) for L in layers]
        fig.add_trace(go.Bar(name=concept, x=layers, y=counts))
    fig.update_layout(barmode="stack", title="Labelled units per layer, by concept",
                      yaxis_title="units", xaxis_title="layer")
    return fig


def overlay(images: np.ndarray, maps: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 [k,h,w,3] images with the region where map > threshold bright and the rest dimmed."""
    on = np.nan_to_num(maps, nan=-np.inf) > threshold
    out = images.astype(np.float32) * (0.25 + 0.75 * on[..., None])
    return out.clip(0, 255).astype(np.uint8)


@register_section("dissection")
def dissection_section(finding, ctx: ReportContext) -> Section:
    title = "Channel dissection"
    units = finding.tables["dissection_units"]
    long = finding.tables["dissection_iou"]
    p = finding.params
    blocks: list = [HOW_TO_READ.format(q=1 - p.get("quantile", 0.99), t=p.get("iou_threshold", 0.04),
                                       a=p.get("alpha", 0.05))]
    n_lab = int(units.labelled.astype(bool).sum())
    blocks.append(f"<p>{n_lab} of {len(units)} units labelled at q &lt; {p.get('alpha', 0.05)}.</p>")
    figures = {}
    for layer in dict.fromkeys(units.layer):
        fig = iou_heatmap(long, layer)
        blocks.append(fig)
        figures[f"dissection_iou_{layer}"] = fig
    bars = labelled_bars(units)
    blocks.append(bars)
    figures["dissection_labelled"] = bars
    top = finding.tables.get("dissection_top")
    if top is not None and "top_images" in finding.arrays:
        imgs, maps = finding.arrays["top_images"], finding.arrays["top_maps"]
        tiles, captions = [], []
        for t, row in enumerate(top.itertuples()):
            thr = float(units.iloc[int(row.row)].threshold)
            tiles.append(overlay(imgs[t], maps[t], thr))
            captions += [f"{row.layer}:{row.unit} {row.concept} IoU {row.iou:.2f}"] + [""] * (imgs.shape[1] - 1)
        blocks.append(ImageGrid(np.concatenate(tiles), captions, ncols=imgs.shape[1],
                                title="Top units: most-activating images, region above threshold"))
        blocks.append(Table(top.drop(columns=["row"]), caption="Top units"))
    cols = [c for c in ["layer", "unit", "concept", "iou", "ci_low", "ci_high", "p_value", "q_value", "label"]
            if c in units.columns]
    blocks.append(Table(units.sort_values("iou", ascending=False)[cols], caption="Units by best-concept IoU"))
    return Section(title, blocks, anchor="dissection", figures=figures)
