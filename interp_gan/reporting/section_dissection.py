"""Report section for ``Dissection`` findings: IoU heatmaps, labelled units per concept, top units.

    section = dissection_section(finding, ReportContext())     # registered for "dissection"

Reads only the Finding (tables ``<prefix>_units`` / ``_iou`` / ``_top`` / ``_control``, prefix ``dissection``
or ``discriminator_dissection``,
arrays ``top_images`` [T,k,h,w,3] uint8 and ``top_maps`` [T,k,h,w]); never runs a model.
"""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from interp_gan.reporting.sections import ImageGrid, ReportContext, Section, Table, register_section

__all__ = ["dissection_section", "iou_heatmap", "labelled_bars", "overlay", "headline", "control_table"]

HOW_TO_READ = (
    "<p><b>How to read this.</b> Each unit (channel) of a layer is thresholded at the top "
    "{q:.1%} of its activations over all generated images (values tied at the threshold: none at the "
    "unit's floor, all at its maximum, else a seeded random share, so a saturated unit keeps its region); "
    "the region, upsampled to the image, is compared with each concept mask computed on the generated image "
    "(colour terms, dark/bright, edges, texture, target style). IoU is intersection over union "
    "summed over the data set (GAN Dissection, Bau et al. 2019). Each unit's concept is chosen on one "
    "random half of the images and its IoU and 95% CI (Poisson bootstrap over images) are measured on the "
    "other half, so choosing the best of many concepts does not inflate them. Two permutation tests per "
    "unit x concept: <i>p_image</i> shuffles the masks across images of the same target style (does the "
    "unit fire on this image's concept more than on another image's?), <i>p_spatial</i> shifts each "
    "image's masks circularly within the image (does it fire <i>on</i> the concept, not just on images "
    "that contain it?); p = the larger of the two. A unit is <i>labelled</i> with its concept when its "
    "held-out IoU &gt; {t} and its Benjamini-Hochberg q-value (over all tests) &lt; {a}. A p-value is "
    "never below 1/(n_perm+1). The random-init control runs the same counting on the same architecture "
    "at random initialisation: a random generator's units also follow its output colours, so a labelled "
    "fraction means something only next to the control's. Not ruled out: a label says the unit's region "
    "and the concept co-locate beyond both nulls, not that the unit causes the concept (see ablation). "
    "The heatmaps show every unit x concept IoU (all images); the bars count "
    "labelled units per concept; the image strips show each top unit's most-activating images "
    "with its region kept bright and the rest dimmed.</p>")


def headline(units, control, alpha: float) -> str:
    """The section's claim with the random-init control next to it (reads the tables only)."""
    n, lab = len(units), int(units.labelled.astype(bool).sum())
    text = f"{lab} of {n} units ({lab / max(n, 1):.1%}) labelled at q &lt; {alpha}"
    if control is not None and len(control):
        tot = control[control.layer == "all"]
        if len(tot):
            t = tot.iloc[0]
            text += (f"; {int(t.labelled_control)} of {int(t.units)} ({t.frac_control:.1%}) at random "
                     f"initialisation (the same architecture, data and tests). Tests with q &lt; {alpha}: "
                     f"{t.tests_q05_trained:.1%} trained, {t.tests_q05_control:.1%} at random init")
    else:
        text += " (no random-init control was run: this fraction has no baseline)"
    return f"<p><b>{text}.</b></p>"


def control_table(control):
    """Per layer: units labelled trained vs random init, as percentages."""
    d = control.copy()
    for c in ("frac_trained", "frac_control", "tests_q05_trained", "tests_q05_control"):
        d[c] = (100 * d[c]).round(1)
    return d.rename(columns={"frac_trained": "% labelled trained", "frac_control": "% labelled random init",
                             "tests_q05_trained": "% tests q<alpha trained",
                             "tests_q05_control": "% tests q<alpha random init"})


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
    """uint8 [k,h,w,3] images with the region where map > threshold bright and the rest dimmed
    (pass the analysis' region shares ``top_masks`` and 0.5 to show the region it counted)."""
    on = np.nan_to_num(maps, nan=-np.inf) > threshold
    out = images.astype(np.float32) * (0.25 + 0.75 * on[..., None])
    return out.clip(0, 255).astype(np.uint8)


@register_section("dissection")
def dissection_section(finding, ctx: ReportContext) -> Section:
    """The channel dissection's section; also shows any analysis that writes the same tables (the
    discriminator dissection), under its own title, with its first note saying what was dissected."""
    title = finding.section.get("title") or "Channel dissection"
    tables = {kind: finding.tables.get(f"{finding.analysis}_{kind}") for kind in ("units", "iou", "control", "top")}
    units, long = tables["units"], tables["iou"]
    p = finding.params
    blocks: list = [HOW_TO_READ.format(q=1 - p.get("quantile", 0.99), t=p.get("iou_threshold", 0.04),
                                       a=p.get("alpha", 0.05))]
    control = tables.get("control")
    blocks.insert(0, headline(units, control, p.get("alpha", 0.05)))
    if finding.analysis != "dissection" and finding.notes:
        blocks.insert(1, f"<p>{html.escape(finding.notes[0])}</p>")
    if control is not None and len(control):
        blocks.append(Table(control_table(control), caption="Labelled units per layer: trained vs random "
                                                            "initialisation (the control)"))
    figures = {}
    for layer in dict.fromkeys(units.layer):
        fig = iou_heatmap(long, layer)
        blocks.append(fig)
        figures[f"{finding.analysis}_iou_{layer}"] = fig
    bars = labelled_bars(units)
    blocks.append(bars)
    figures[f"{finding.analysis}_labelled"] = bars
    top = tables.get("top")
    if top is not None and "top_images" in finding.arrays:
        imgs, maps = finding.arrays["top_images"], finding.arrays["top_maps"]
        masks = finding.arrays.get("top_masks")   # the tie-aware region the IoU counted (older findings: none)
        tiles, captions = [], []
        for t, row in enumerate(top.itertuples()):
            if masks is not None:
                tiles.append(overlay(imgs[t], masks[t], 0.5))
            else:
                tiles.append(overlay(imgs[t], maps[t], float(units.iloc[int(row.row)].threshold)))
            captions += [f"{row.layer}:{row.unit} {row.concept} IoU {row.iou:.2f}"] + [""] * (imgs.shape[1] - 1)
        blocks.append(ImageGrid(np.concatenate(tiles), captions, ncols=imgs.shape[1],
                                title="Top units: most-activating images, region above threshold"))
        blocks.append(Table(top.drop(columns=["row"]), caption="Top units"))
    cols = [c for c in ["layer", "unit", "concept", "iou", "ci_low", "ci_high", "p_image", "p_spatial", "p_value",
                        "q_value", "label", "iou_all"] if c in units.columns]
    blocks.append(Table(units.sort_values("iou", ascending=False)[cols],
                        caption="Units by held-out IoU of their concept (iou: estimation half, with its CI; "
                                "iou_all: all images)"))
    return Section(title, blocks, anchor=finding.analysis, figures=figures)


register_section("discriminator_dissection")(dissection_section)
