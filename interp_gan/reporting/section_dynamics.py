"""Report section for the ``dynamics`` Finding (``interp-gan analyze runs/NAME --over-steps``, docs/dynamics.md).

    section = dynamics_section(finding, ReportContext())     # registered for "dynamics"

Reads only the Finding's tables (``dynamics``, ``dynamics_emergence``, ``dynamics_matches``, written
by ``analyses/dynamics.build_dynamics``); never runs a model. Curves against the training step with
95% CI bands: labelled units per concept, the final step's top style units followed by identity
and by activation match (one panel per style), each method's strongest direction at each step, the
classifiers' accuracy; then
the table of emergence steps.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from interp_gan.reporting.numbers import sig
from interp_gan.reporting.references import Reference, register_reference
from interp_gan.reporting.sections import ReportContext, Section, Table, how_to_read, register_section

__all__ = ["dynamics_section", "curve_figure", "headline"]

register_reference(Reference(
    "li2016convergent", "inproceedings",
    ("Li, Yixuan", "Yosinski, Jason", "Clune, Jeff", "Lipson, Hod", "Hopcroft, John"),
    "Convergent Learning: Do Different Neural Networks Learn the Same Representations?",
    "International Conference on Learning Representations (ICLR)", 2016))
register_reference(Reference(
    "newcombe1998proportion", "article", ("Newcombe, Robert G.",),
    "Two-Sided Confidence Intervals for the Single Proportion: Comparison of Seven Methods",
    "Statistics in Medicine", 1998, {"volume": "17", "number": "8", "pages": "857--872"}))

_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
            "#7f7f7f", "#bcbd22"]

HOW_TO_READ = (
    "<p><b>How to read this.</b> The run kept snapshots of its generator every <code>train.keep_every</code> "
    "steps (and at step 0 and the last step); the same pipeline ran on each with the same images, z and "
    "seeds, so a change along a curve is a change of the model. Bands are 95% intervals computed at each "
    "step on its own: labelled units, Wilson's interval of the labelled fraction times the units "
    "dissected; style selectivity, the AUROC's logit-DeLong interval (0.5 = chance, dotted); directions, "
    "the bootstrap interval of the log-odds effect; classifier accuracy, Wilson's interval (chance = "
    "1 / styles, dotted). The style units followed are the final step's most selective ones. "
    "<i>Identity</i> follows the same layer and channel index; <i>match</i> follows, at each step, the "
    "channel of the same layer whose pooled activations on the fixed images correlate best with the final "
    "unit's (a unit may move between channels while training). A unit <i>appears</i> at "
    "<b>first step</b>, the first kept step whose interval excludes chance on the final step's side, and is "
    "<b>stable from</b> the first step after which it never returns to chance. The intervals are not "
    "corrected for the number of steps: a unit that never becomes selective can reach a first step by "
    "chance at roughly 5% per step; stable-from needs every later step, so it is the stricter reading. "
    "Directions are fitted again at each step, so a direction's index names a different vector at "
    "each step.</p>")


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def _band(fig: go.Figure, x, lo, hi, colour: str, group: str, **where) -> None:
    x, lo, hi = list(x), list(lo), list(hi)
    fig.add_trace(go.Scatter(x=x + x[::-1], y=hi + lo[::-1], mode="lines", fill="toself", fillcolor=_rgba(colour, 0.12),
                             line=dict(width=0), hoverinfo="skip", showlegend=False, legendgroup=group), **where)


def curve_figure(df: pd.DataFrame, key: str, title: str, ytitle: str, chance: float | None = None,
                 dash_by: str | None = None, facet: str | None = None) -> go.Figure:
    """One line (with a CI band) per value of ``key`` against ``step``; ``dash_by``: a column whose
    second value draws dashed lines; ``facet``: one panel per value of this column (shared y axis)."""
    from plotly.subplots import make_subplots

    panels = list(dict.fromkeys(df[facet])) if facet else [None]
    fig = make_subplots(rows=1, cols=len(panels), shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=[str(p) for p in panels] if facet else None)
    dashes = list(dict.fromkeys(df[dash_by])) if dash_by else []
    for col, panel in enumerate(panels, start=1):
        dp = df[df[facet] == panel] if facet else df
        for i, g in enumerate(dict.fromkeys(dp[key])):
            colour = _COLOURS[i % len(_COLOURS)]
            sub = dp[dp[key] == g]
            parts = [(d, sub[sub[dash_by] == d]) for d in dashes] if dash_by else [("", sub)]
            for j, (d, s) in enumerate(parts):
                s = s.sort_values("step")
                if not len(s):
                    continue
                name = f"{g} ({d})" if d else str(g)
                if s["ci_low"].notna().any():
                    _band(fig, s["step"], s["ci_low"].fillna(s["value"]), s["ci_high"].fillna(s["value"]), colour,
                          name, row=1, col=col)
                custom = s["matched_unit"].astype("float").fillna(-1).to_numpy() if "matched_unit" in s else None
                fig.add_trace(go.Scatter(x=s["step"], y=s["value"], mode="lines+markers", name=name,
                                         legendgroup=name, line=dict(color=colour, dash="dash" if j else "solid"),
                                         customdata=custom,
                                         hovertemplate="step %{x}<br>%{y:.3g}" + (
                                             "<br>unit %{customdata:.0f}" if custom is not None else "")
                                         + "<extra>" + html.escape(name) + "</extra>"), row=1, col=col)
        if chance is not None:
            fig.add_hline(y=chance, line=dict(color="#888", dash="dot", width=1), row=1, col=col)
    fig.update_yaxes(title_text=ytitle, row=1, col=1)
    n_legend = sum(1 for t in fig.data if t.showlegend is not False)
    rows = -(-n_legend // 3)                       # a horizontal legend below: about 3 entries a row
    fig.update_layout(title=title + " — x: training step", height=340 + 24 * rows,
                      margin=dict(l=60, r=20, t=70, b=20 + 24 * rows), template="plotly_white",
                      legend=dict(font=dict(size=10), orientation="h", yanchor="top", y=-0.08, x=0))
    return fig


def headline(emergence: pd.DataFrame) -> str:
    """When the final step's style units appeared (by activation match, the reading that allows a unit to move)."""
    em = emergence[emergence["tracking"] == "match"] if len(emergence) else emergence
    if not len(em):
        return "No style units were followed (the pipeline has no style_units analysis)."
    n = len(em)
    first = em["first_step"].dropna()
    stable = em["stable_step"].dropna()
    if not len(first):
        return (f"None of the final step's {n} top style units had an AUROC interval excluding chance at any "
                f"kept step.")
    return (f"Of the final step's {n} top style units, {len(first)} had an AUROC interval excluding chance at "
            f"some kept step (first at step {int(first.min())}, median step {sig(float(first.median()))}); "
            f"{len(stable)} stayed selective through the last step, from step "
            f"{int(stable.min()) if len(stable) else '-'} (median {sig(float(stable.median())) if len(stable) else '-'}).")


def _strongest_directions(d: pd.DataFrame) -> pd.DataFrame:
    """Per step and method, the direction (and style) with the largest effect: directions are fitted
    again at each step, so each step's own strongest one is followed (its index and style in the hover)."""
    if not len(d):
        return d
    d = d.dropna(subset=["value"])
    best = d.loc[d.groupby(["step", "method"], sort=False)["value"].idxmax()]
    return best.assign(series=best["method"])


@register_section("dynamics")
def dynamics_section(finding, ctx: ReportContext) -> Section:
    df = finding.tables["dynamics"]
    em = finding.tables.get("dynamics_emergence", pd.DataFrame())
    steps = sorted(df["step"].dropna().unique().tolist()) if len(df) else []
    blocks: list = [f'<p class="result"><b>{html.escape(headline(em))}</b></p>',
                    f"<p>Kept steps: {', '.join(str(int(s)) for s in finding.params.get('steps', steps))}.</p>"]
    figures: dict[str, go.Figure] = {}

    sel = df[df["measure"] == "style_selectivity"].copy()
    if len(sel):
        sel["series"] = sel["layer"] + ":" + sel["unit"].astype(str)
        figures["dynamics_selectivity"] = curve_figure(
            sel, "series", "Selectivity of the final step's top style units, one panel per style "
            "(solid: identity, dashed: match)", "AUROC", chance=0.5, dash_by="tracking", facet="style")
    lab = df[df["measure"] == "labelled_units"]
    if len(lab):
        figures["dynamics_labelled"] = curve_figure(lab, "concept", "Dissection: labelled units per concept",
                                                    "labelled units")
    dirs = _strongest_directions(df[df["measure"] == "direction_effect"])
    if len(dirs):
        figures["dynamics_directions"] = curve_figure(
            dirs, "series", "Directions: each method's strongest direction at each step (fitted at that step)",
            "effect (log-odds)", chance=0.0)
    clf = df[df["measure"] == "classifier_accuracy"]
    if len(clf):
        n_styles = int(finding.params.get("n_styles") or len(ctx.style_names))
        figures["dynamics_classifiers"] = curve_figure(
            clf, "method", "Independent classifiers: accuracy on the generated images", "accuracy",
            chance=1 / n_styles if n_styles else None)
    blocks += list(figures.values())
    if len(em):
        show = em.copy()
        for c in ("first_step", "stable_step", "unit_at_first"):
            show[c] = show[c].map(lambda v: "never" if pd.isna(v) else str(int(v)))
        blocks.append("<h3>Emergence steps</h3>")
        blocks.append(Table(show[["layer", "unit", "style", "tracking", "auroc_final", "ci_low_final", "ci_high_final",
                                  "first_step", "stable_step", "unit_at_first", "min_match_corr"]],
                            caption="per followed style unit: the first kept step whose AUROC interval excludes "
                                    "chance, and the first from which it stays so; unit_at_first is the channel "
                                    "at that step (for match), min_match_corr the weakest match over the steps"))
    tr = df[df["measure"] == "train_eval"]
    if len(tr):
        blocks.append(Table(tr[["step", "method", "value", "ci_low", "ci_high", "n"]].rename(columns={"method": "metric"}),
                            caption="the training run's own evaluation (metrics.jsonl, every eval_every steps)",
                            max_rows=40))
    blocks.append(how_to_read(HOW_TO_READ))
    if finding.notes:
        blocks.append("<ul class=\"notes\">" + "".join(f"<li>{html.escape(n)}</li>" for n in finding.notes) + "</ul>")
    return Section(finding.section.get("title") or "Training dynamics", blocks, anchor="dynamics", figures=figures,
                   references=["li2016convergent", "newcombe1998proportion"])
