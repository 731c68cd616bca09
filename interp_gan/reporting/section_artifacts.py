"""Report section for ``artifact_units`` findings: the unit ranking, the realism / style / content
trade-off curve with repair's chosen k, and the before / after images of that k.

    section = artifacts_section(finding, ReportContext())      # registered for "artifact_units"
    fig = tradeoff_figure(finding.tables["artifact_tradeoff"], chosen_k=2)

Reads only the Finding's tables (``artifact_units``, ``artifact_repair``, ``artifact_tradeoff``,
``artifact_choice``) and arrays (``repair_before`` / ``repair_after``); never runs a model. A
finding saved before the trade-off curve existed shows the ranking and the top-vs-random test only.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp_gan.reporting.claims import Claim, result_line
from interp_gan.reporting.numbers import ci as fmt_ci, sig
from interp_gan.reporting.sections import (FOLD_CLOSE, ImageGrid, ReportContext, Section, Table, fold_open,
                                           how_to_read, register_section)

__all__ = ["artifacts_section", "tradeoff_figure", "before_after_grid", "claim"]

# the measures of the curve, in panel order: (title, what "better" is)
PANELS = {
    "d_logit": "Realism: change of D's logit (up = more real)",
    "d_kid": "Realism: change of KID to real style images (down = closer; no CI)",
    "d_style_log_odds": "Style: change of the target style's log-odds (independent classifier)",
    "d_style_acc": "Style: change of the classifier's accuracy (no CI)",
    "d_lum_corr": "Content: change of the luminance-layout correlation with the input",
}

HOW_TO_READ = (
    "<p><b>How to read this.</b> Every unit (output channel) of the layer is set to zero alone and the "
    "discriminator's realism logit is compared, image by image, with the unedited images (same content, "
    "style, z and random state): units whose removal makes D find the images more real rank first "
    "(GAN Dissection removes artifact units this way). The ranking is made on one half of the images. On the "
    "<i>other</i> half the top 1, 2, ... k_max units are removed together and each k is measured against "
    "the unedited images: realism (D's logit; KID in the independent classifier's feature space), style "
    "(the independent classifier's log-odds of each image's target style, and its accuracy) and content (the "
    "correlation of the coarse luminance of output and input photo, as in training's evaluation). Because the "
    "units were chosen on images the curve does not use, the curve is not flattered by the choice. Bands and "
    "bars are 95% studentized bootstrap intervals of the mean paired change; KID and accuracy are shown "
    "without one. <b>Repair's choice</b> (<code>interp-gan repair</code>): among the k whose realism gain has "
    "a simultaneous lower bound above 0 (ci_low_simul: level 1 - 0.05 / k_max, since k_max sizes are scanned; "
    "the band shows the per-k 95% interval, so a band clear of 0 need not qualify) and whose style change has an interval that reaches 0 or above, the one with the "
    "largest realism gain (dashed line); when none qualifies, no repair is proposed. The top-k vs random "
    "table asks whether the top k beat random sets of k units of the same layer (one-sided rank). D's dislike "
    "is not a person's: look at the before / after images.</p>")


def _band(fig, d: pd.DataFrame, row: int, color: str = "#c0392b") -> None:
    d = d.sort_values("k")
    k = d["k"].astype(int).tolist()
    has_ci = d["ci_low"].notna().all() and d["ci_high"].notna().all()
    if has_ci and len(k) > 1:
        fig.add_trace(go.Scatter(x=k + k[::-1], y=d["ci_high"].tolist() + d["ci_low"].tolist()[::-1], mode="lines",
                                 fill="toself", fillcolor=color, opacity=0.2, line={"width": 0}, hoverinfo="skip",
                                 showlegend=False), row=row, col=1)
    err = None
    if has_ci and len(k) == 1:
        err = {"type": "data", "symmetric": False, "array": [float(d["ci_high"].iloc[0] - d["effect"].iloc[0])],
               "arrayminus": [float(d["effect"].iloc[0] - d["ci_low"].iloc[0])]}
    fig.add_trace(go.Scatter(x=k, y=d["effect"], mode="lines+markers", line={"color": color}, error_y=err,
                             showlegend=False, customdata=d[["units", "n"]].to_numpy(),
                             hovertemplate="k=%{x}<br>change %{y:.3g}<br>units %{customdata[0]}"
                                           "<br>n=%{customdata[1]}<extra></extra>"), row=row, col=1)


def tradeoff_figure(t: pd.DataFrame, chosen_k: int = 0) -> go.Figure:
    """One panel per measure: the change against k (top-k units removed together), CI band, 0 dotted,
    the chosen k dashed."""
    measures = [m for m in PANELS if (t["measure"] == m).any()]
    fig = make_subplots(rows=len(measures), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[PANELS[m] for m in measures])
    for i, m in enumerate(measures, 1):
        _band(fig, t[t["measure"] == m], i)
        fig.add_hline(y=0, line={"color": "black", "width": 1, "dash": "dot"}, row=i, col=1)
        if chosen_k:
            fig.add_vline(x=chosen_k, line={"color": "#2c7fb8", "width": 2, "dash": "dash"}, row=i, col=1)
    ks = sorted(int(k) for k in t["k"].unique())
    fig.update_xaxes(tickvals=ks, title_text="k (top units of the ranking, removed together)", row=len(measures))
    layer = str(t["layer"].iloc[0]) if "layer" in t and len(t) else ""
    title = f"{layer}: trade-off of removing the top k units (held-out images)"
    if chosen_k:
        title += f"; repair's k = {chosen_k} (dashed)"
    fig.update_layout(title=title, height=140 + 190 * len(measures), margin={"t": 90})
    fig.update_annotations(font_size=12)
    return fig


def before_after_grid(f, names: list[str], chosen: pd.Series | None) -> ImageGrid | None:
    """Rows = styles; the n_show unedited images, then the same with the units removed."""
    b, a = f.arrays.get("repair_before"), f.arrays.get("repair_after")
    if b is None or a is None:
        return None
    S, n = b.shape[:2]
    images = np.concatenate([b, a], axis=1).reshape(-1, *b.shape[2:])            # [S*2n,h,w,3]
    units = str(chosen["shown_units"]) if chosen is not None else "?"
    after = f"after (units {units})"
    captions = []
    for s in range(S):
        label = names[s] if s < len(names) else str(s)
        captions += [f"{label}: before"] * n + [f"{label}: {after}"] * n
    k = int(chosen["k"]) if chosen is not None else 0
    title = (f"Before / after removing repair's {k} unit(s) ({units}): same content, style, z; one row per style"
             if k else f"Before / after removing the top unit ({units}) — shown to look at: no k qualified for "
                       "repair")
    return ImageGrid(images, captions, ncols=2 * n, px=80, title=title,
                     row_labels=[names[s] if s < len(names) else str(s) for s in range(S)],
                     col_labels=["before"] * n + ["after"] * n)


def claim(f) -> Claim | None:
    """Repair's choice as the section's claim: it survives when a k qualifies by the choice rule."""
    ch, t = f.tables.get("artifact_choice"), f.tables.get("artifact_tradeoff")
    if ch is None or not len(ch) or t is None or not len(t):
        return None
    c = ch.iloc[0]
    k, layer, n = int(c["k"]), str(c["layer"]), int(c["n_test"])
    rule = str(c["rule"])
    rep = f.tables.get("artifact_repair")
    base = ""
    if rep is not None and len(rep):
        top = rep[(rep["baseline"] == "top") & (rep["measure"] == "d_logit")]
        if len(top) and pd.notna(top["p_random"].iloc[0]):
            kk = int(top['k'].iloc[0])        # Claim.numbers prints "vs " before the baseline
            rnd = rep[(rep["baseline"] == "random") & (rep["measure"] == "d_logit")]
            if len(rnd):                      # both effects, so a p_random at its floor reads as "less harm"
                base = (f"random {kk}-unit sets {sig(rnd['effect'].iloc[0])} (the top {kk}: "
                        f"{sig(top['effect'].iloc[0])}, p_random {sig(top['p_random'].iloc[0])})")
            else:
                base = f"random {kk}-unit sets (the top {kk}'s p_random {sig(top['p_random'].iloc[0])})"
    if not k:
        # the number the verdict rests on: the k closest to qualifying, its change of D's logit and the
        # simultaneous lower bound the rule reads (an empty effect left the p_random alone beside "no k")
        lg = t[t["measure"] == "d_logit"]
        effect, ci = "", ""
        if len(lg):
            key = lg["ci_low_simul"] if "ci_low_simul" in lg and lg["ci_low_simul"].notna().any() else lg["effect"]
            b = lg.loc[key.idxmax()]
            effect, ci = f"D logit at k = {int(b['k'])}: {sig(b['effect'])}", fmt_ci(b["ci_low"], b["ci_high"])
            if "ci_low_simul" in b and pd.notna(b["ci_low_simul"]):
                ci += f", simultaneous lower bound {sig(b['ci_low_simul'])}"
        return Claim(f"No repair of {layer} qualifies: {c['reason']}", effect=effect, ci=ci, baseline=base,
                     verdict="no k qualifies", survives=False, rule=rule)
    row = t[(t["k"] == k) & (t["measure"] == "d_logit")].iloc[0]
    if "ci_low_simul" in row and pd.notna(row["ci_low_simul"]):     # the bound the choice read
        base = (base + f"; simultaneous lower bound {sig(row['ci_low_simul'])}").lstrip("; ")
    st = t[(t["k"] == k) & (t["measure"] == "d_style_log_odds")]
    style = ""
    if len(st):
        s0 = st.iloc[0]
        style = f"; target-style log-odds {sig(s0['effect'])} {fmt_ci(s0['ci_low'], s0['ci_high'])}"
    text = (f"Removing {k} unit(s) of {layer} ({str(c['units']).replace(';', ', ')}) makes D find held-out images "
            f"more real without a style cost beyond its interval")
    return Claim(text, effect=f"D logit {sig(row['effect'])}", ci=fmt_ci(row["ci_low"], row["ci_high"]),
                 baseline=(base + style).lstrip("; "), verdict="repair qualifies", survives=True,
                 rule=f"{rule}; measured on the {n} images the ranking did not use")


@register_section("artifact_units")
def artifacts_section(finding, ctx: ReportContext) -> Section:
    title = "Artifact units and repair"
    units = finding.tables.get("artifact_units")
    t = finding.tables.get("artifact_tradeoff")
    ch = finding.tables.get("artifact_choice")
    chosen = ch.iloc[0] if ch is not None and len(ch) else None
    c = claim(finding)
    blocks: list = [result_line(c) if c else "<p>The trade-off curve was not measured (a finding from before it "
                                              "existed): the ranking and the top-k vs random test follow.</p>"]
    figures = {}
    if t is not None and len(t):
        fig = tradeoff_figure(t, int(chosen["k"]) if chosen is not None else 0)
        blocks.append(fig)
        figures["artifact_tradeoff"] = fig
    grid = before_after_grid(finding, ctx.style_names, chosen)
    paper_grids = {}
    if grid is not None:
        blocks.append(grid)
        paper_grids["artifact_before_after"] = grid
    if units is not None and len(units):
        blocks.append(Table(units.head(10), caption=f"Unit ranking (top 10 of {len(units)}): change of D's realism "
                                                    "logit when the unit alone is removed, on the ranking half "
                                                    "(95% studentized bootstrap CI); d_kid without an interval",
                            max_rows=10))
    rep = finding.tables.get("artifact_repair")
    if rep is not None and len(rep):
        blocks += [fold_open("Table: the top k units vs random sets of k units (held-out half)"),
                   Table(rep, caption="Top-k units removed together vs random k-unit sets of the same layer; "
                                      "p_random: one-sided rank among the random sets (random rows: mean and "
                                      "2.5-97.5% range over sets)"), FOLD_CLOSE]
    if t is not None and len(t):
        blocks += [fold_open("Table: the trade-off curve"),
                   Table(t, caption="Each k: the top k units removed together on the held-out half, change against "
                                    "the unedited images (95% CI where shown)", max_rows=len(t)), FOLD_CLOSE]
    for n in finding.notes:
        if "bootstrap resamples had no spread" in n:     # the intervals' Student's t sides, as ablation says
            blocks.append(f"<p><i>{html.escape(n)}</i></p>")
    if chosen is not None:
        blocks.append(f"<p><i>Repair's choice: {html.escape(str(chosen['reason']))}. Rule: "
                      f"{html.escape(str(chosen['rule']))}.</i></p>")
    blocks.append(how_to_read(HOW_TO_READ))
    sec = Section(title, blocks, anchor="artifact_units", figures=figures, paper_grids=paper_grids)
    sec.claims = [c] if c else []
    return sec
