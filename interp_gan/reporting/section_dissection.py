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

from interp_gan.findings.stats import wilson_interval
from interp_gan.reporting.claims import (RATE_REFERENCES, Claim, draws_of, partial_control, rate_vs_control,
                                        result_line)
from interp_gan.reporting.numbers import ci as fmt_ci, pct, sig, sig_beside
from interp_gan.reporting.sections import (FOLD_CLOSE, Card, Cards, ReportContext, Section, Table, fold_open,
                                           how_to_read, register_section)

__all__ = ["dissection_section", "iou_heatmap", "labelled_bars", "overlay", "headline", "claim", "control_table",
           "control_caption",
           "unit_cards"]

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


def claim(units, control, alpha: float, what: str = "units", draws=None) -> Claim:
    """The section's claim: the labelled rate beside the random-init control's (reads the tables only).
    With several control draws (``draws``, the ``*_control_draws`` table) it survives when the rate lies
    above the random networks' prediction bound; with one, when the interval of the difference lies
    above 0, worded "above its one control draw" (``claims.rate_vs_control``)."""
    n, lab = len(units), int(units.labelled.astype(bool).sum()) if len(units) else 0
    if not n:                          # no rate to state: not "0 of 0 (0%) labelled"
        return Claim(f"No {what} were dissected, so no labelled rate", effect="no units", verdict="not measured",
                     survives=False, rule="a labelled rate needs dissected units and its random-init control")
    tot = control[control.layer == "all"] if control is not None and len(control) else None
    if tot is None or not len(tot):
        lo, hi = wilson_interval(lab, n)
        return Claim(f"{lab} of {n} {what} ({pct(lab / max(n, 1))}) labelled at q < {alpha}; no random-init "
                     "control was run, so this rate has no baseline", effect=pct(lab / max(n, 1)),
                     ci=fmt_ci(lo, hi, pct), baseline="no control", verdict="no baseline", survives=False,
                     rule="a rate without its random-init control is not a finding")
    t = tot.iloc[0]
    kc, nc = int(t.labelled_control), int(t.units)
    if not nc:
        lo, hi = wilson_interval(lab, n)
        return Claim(f"{lab} of {n} {what} ({pct(lab / n)}) labelled at q < {alpha}; the random-init control "
                     "dissected no units, so this rate has no baseline", effect=pct(lab / n),
                     ci=fmt_ci(lo, hi, pct), baseline="no control units", verdict="no baseline", survives=False,
                     rule="a rate without its random-init control is not a finding")
    d = draws_of(draws, "labelled", "units")
    r = rate_vs_control(lab, n, kc, nc, d)
    ctl = (f"{len(d)} random-init draws ({', '.join(str(int(k)) for k, _ in d)} of {nc})" if d and len(d) >= 2
           else f"the random-init control ({kc} of {nc})")
    if r["survives"]:
        text = f"{lab} of {n} {what} labelled at q < {alpha} with a concept: more than {ctl}"
    else:
        text = f"No evidence that training made concept {what}: {lab} of {n} labelled at q < {alpha}, {ctl}"
    return Claim(text, effect=f"{pct(r['rate'])} labelled", ci=r["ci"], baseline=r["baseline"],
                 verdict=r["verdict"], survives=r["survives"], rule=r["rule"])


def control_table(control):
    """Per layer: units labelled trained vs random init, as percentages (formatted once, by the table's
    three significant digits, so they read as the claim's: 5.97, not 6.00 from a rounding before)."""
    d = control.copy()
    for c in ("frac_trained", "frac_control", "tests_q05_trained", "tests_q05_control"):
        d[c] = 100 * d[c]
    return d.rename(columns={"frac_trained": "% labelled trained", "frac_control": "% labelled random init",
                             "tests_q05_trained": "% tests q<alpha trained",
                             "tests_q05_control": "% tests q<alpha random init"})


def control_caption(draws, analysis: str = "dissection") -> str:
    """The control table's caption; with several control draws it says that its random-init columns
    are the first draw's while the claim above pools every draw (so 11 of 352 there and 1.42% there agree)."""
    cap = "Labelled units per layer: trained vs random initialisation (the control)"
    d = draws_of(draws, "labelled", "units")
    if not d or len(d) < 2:
        return cap
    first = draws[draws["layer"] == "all"].sort_values("draw").iloc[0]
    seed = f", seed {int(first['seed'])}" if "seed" in draws.columns else ""
    return (f"{cap}: the random-init columns are the first of {len(d)} draws (draw {int(first['draw'])}{seed}); the "
            f"claim above pools all {len(d)}, each in {analysis}_control_draws.csv")


def _threshold_scale(zmax: float, threshold: float) -> list:
    """Greys below the labelling threshold, Viridis above it: the threshold is the colour break."""
    t = min(max(threshold / zmax, 0.0), 1.0) if zmax > 0 else 0.0
    vir = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]
    scale = [[0.0, "#f2f2f2"], [t, "#bdbdbd"]]
    scale += [[t + (1 - t) * i / (len(vir) - 1), c] for i, c in enumerate(vir)]
    return scale


def iou_heatmap(long, layer: str, zmax: float | None = None, threshold: float | None = None) -> go.Figure:
    """Units (rows, sorted by best concept then IoU, every unit ticked) x concepts (columns) IoU for
    one layer; ``zmax`` shares the colour range between layers, ``threshold`` is marked as the break
    from grey to colour and on the colour bar."""
    d = long[long.layer == layer]
    table = d.pivot(index="unit", columns="concept", values="iou")
    concepts = list(dict.fromkeys(d.concept))          # keep the analysis' concept order
    table = table[concepts]
    best = table.to_numpy().argmax(1)
    order = np.lexsort((-table.to_numpy().max(1), best))
    table = table.iloc[order]
    zmax = float(zmax if zmax is not None else np.nanmax(table.to_numpy()) if table.size else 1.0) or 1.0
    bar = {"title": "IoU"}
    heat = dict(colorscale="Viridis", zmin=0, zmax=zmax)
    if threshold is not None:
        heat["colorscale"] = _threshold_scale(zmax, threshold)
        bar.update(tickvals=[0, threshold, zmax], ticktext=["0", f"{sig(threshold)} threshold", sig(zmax)])
    fig = go.Figure(go.Heatmap(z=table.to_numpy().astype(np.float32), x=concepts, y=[str(u) for u in table.index],
                               colorbar=bar,
                               hovertemplate="unit %{y}, %{x}: IoU %{z:.3g}<extra></extra>", **heat))
    fig.update_layout(title=f"{layer}: unit x concept IoU (all images)", height=160 + 11 * len(table),
                      yaxis={"autorange": "reversed", "title": "unit", "type": "category", "dtick": 1,
                             "tickfont": {"size": 9}}, margin={"l": 60, "t": 50, "b": 40})
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


def _selectivity(ctx: ReportContext, layer: str, unit: int) -> str:
    """The unit's strongest style selectivity from the style-units finding, if it was measured."""
    su = (ctx.findings or {}).get("style_units")
    df = getattr(su, "tables", {}).get("style_units") if su is not None and not getattr(su, "skipped", None) else None
    if df is None or not len(df):
        return "selectivity: not measured"
    rows = df[(df["layer"] == layer) & (df["unit"] == unit)].dropna(subset=["auroc"])
    if not len(rows):
        return "selectivity: not measured at this layer"
    r = rows.loc[rows["auroc"].idxmax()]
    q = f", q {sig(r.q_value)}" if "q_value" in rows else ""
    return f"most selective for {r['style']}: AUROC {sig(r.auroc)} {fmt_ci(r.ci_low, r.ci_high)}{q}"


def unit_cards(finding, units, top, ctx: ReportContext) -> Cards | None:
    """One card per top unit: its most-activating images with the counted region bright, the label,
    the held-out IoU with its CI and q, and its style selectivity (from the style-units finding)."""
    if top is None or "top_images" not in finding.arrays:
        return None
    imgs, maps = finding.arrays["top_images"], finding.arrays["top_maps"]
    alpha = finding.params.get("alpha", 0.05)        # the q of the "labelled" badge: never rounded onto it
    masks = finding.arrays.get("top_masks")   # the tie-aware region the IoU counted (older findings: none)
    cards = []
    for t, row in enumerate(top.itertuples()):
        u = units.iloc[int(row.row)]
        pics = overlay(imgs[t], masks[t], 0.5) if masks is not None else overlay(imgs[t], maps[t], float(u.threshold))
        labelled = bool(u.get("labelled", False))
        lines = [f"IoU {sig(u.iou)} {fmt_ci(u.get('ci_low'), u.get('ci_high'))} (held-out half), "
                 f"q {sig_beside(u.q_value, alpha)}"]
        if finding.analysis == "dissection":
            lines.append(_selectivity(ctx, str(row.layer), int(row.unit)))
        cards.append(Card(pics, f"{row.layer} · unit {row.unit} · {row.concept}", lines,
                          badge="labelled" if labelled else "not labelled"))
    return Cards(cards, title="Top units: most-activating images, the counted region bright, the rest dimmed")


@register_section("dissection")
def dissection_section(finding, ctx: ReportContext) -> Section:
    """The channel dissection's section; also shows any analysis that writes the same tables (the
    discriminator dissection), under its own title, with its first note saying what was dissected.
    Order: the claim, the unit cards, the control; heatmaps, bars and tables folded below."""
    title = finding.section.get("title") or "Channel dissection"
    tables = {kind: finding.tables.get(f"{finding.analysis}_{kind}")
              for kind in ("units", "iou", "control", "top", "control_draws")}
    units, long = tables["units"], tables["iou"]
    p = finding.params
    alpha, thr = p.get("alpha", 0.05), p.get("iou_threshold", 0.04)
    control = tables.get("control")
    what = "discriminator units" if finding.analysis == "discriminator_dissection" else "generator units"
    c = claim(units, control, alpha, what, tables.get("control_draws"))
    partial = partial_control(c, finding.notes) if control is not None and len(control) else ""
    blocks: list = [result_line(c)] + ([partial] if partial else [])
    if finding.analysis != "dissection" and finding.notes:
        blocks.append(f"<p>{html.escape(finding.notes[0])}</p>")
    cards = unit_cards(finding, units, tables.get("top"), ctx)
    if cards is not None:
        blocks.append(cards)
    if control is not None and len(control):
        blocks.append(Table(control_table(control), caption=control_caption(tables.get("control_draws"),
                                                                            finding.analysis)))
    figures = {}
    bars = labelled_bars(units)
    figures[f"{finding.analysis}_labelled"] = bars
    zmax = float(long["iou"].max()) if long is not None and len(long) else 1.0
    heat = [iou_heatmap(long, layer, zmax=zmax, threshold=thr) for layer in dict.fromkeys(units.layer)] \
        if long is not None else []
    blocks.append(fold_open(f"IoU heatmaps: {len(heat)} layer(s), every unit x concept, shared colour range, "
                            f"labelling threshold {sig(thr)} marked; labelled units per concept"))
    blocks += heat + [bars, FOLD_CLOSE]
    blocks.append(how_to_read(HOW_TO_READ.format(q=1 - p.get("quantile", 0.99), t=thr, a=alpha)))
    cols = [c_ for c_ in ["layer", "unit", "concept", "iou", "ci_low", "ci_high", "p_image", "p_spatial", "p_value",
                          "q_value", "label", "iou_all"] if c_ in units.columns]
    blocks.append(fold_open("Tables: top units, all units by held-out IoU"))
    if tables.get("top") is not None:
        blocks.append(Table(tables["top"].drop(columns=["row"], errors="ignore"), caption="Top units"))
    blocks.append(Table(units.sort_values("iou", ascending=False)[cols],
                        caption="Units by held-out IoU of their concept (iou: estimation half, with its CI; "
                                "iou_all: all images)"))
    blocks.append(FOLD_CLOSE)
    sec = Section(title, blocks, anchor=finding.analysis, figures=figures)
    sec.claims = [c]
    sec.references = list(RATE_REFERENCES)        # the claim's interval and its control's bound
    if cards is not None:
        sec.paper_grids = {f"{finding.analysis}_units": cards}
    return sec


register_section("discriminator_dissection")(dissection_section)
