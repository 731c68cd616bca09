"""Report section for ``Ablation`` findings: effect-vs-k curves against random unit sets.

    section = ablation_section(finding, ReportContext())      # registered for "ablation"
    fig = ablation_curves(finding.tables["ablation"], layer="blocks.3", measure="classifier")

Reads only the Finding's ``ablation`` table; never runs a model.
"""
from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp_gan.reporting.sections import ReportContext, Section, Table, register_section

__all__ = ["ablation_section", "ablation_curves", "summary_table"]

MEASURES = {"log_odds": "change in log-odds of the target style, RGB classifier",
            "log_odds_texture": "change in log-odds of the target style, texture classifier",
            "gram": "change in Gram distance to the style"}
# the summary table also lists the probabilities themselves
SUMMARY_MEASURES = ["classifier", "log_odds", "texture_classifier", "log_odds_texture", "gram"]
COLORS = {"top": "#c0392b", "random": "#7f8c8d"}

HOW_TO_READ = (
    "<p><b>How to read this.</b> For each target style the units of a layer are ranked by how "
    "selective they are for the style (AUROC), and the top k are {verb} together (k = 1, 2, 4, "
    "...). Each image is generated with and without the edit from the same content, noise and "
    "random state; the effect is the mean of the paired differences, with a 95% bootstrap CI "
    "over images (band). The grey curve does the same with random unit sets of the same size "
    "(averaged over several sets): where the red curve leaves the grey band, the selected units "
    "carry the style beyond what any k units would. The k at which the red curve flattens says "
    "how many units carry the style. The curves show the classifiers' log-odds log p/(1-p) of "
    "the style rather than p: a classifier that is confident on the generated images (p = 0.9999) "
    "hides an edit in p, not in the log-odds (p itself is in the table). For p(style) and its "
    "log-odds a drop (negative) means the style was removed; "
    "for the Gram distance a rise means the image moved away from the style's texture statistics. "
    "Zero/mean ablation is measured on images generated toward the style; insertion on images "
    "generated toward the other styles (then a rise in p means the units add the style). "
    "Random-ablation baselines follow Morcos et al. (ICLR 2018); unit ablation and insertion in "
    "generators follow Bau et al. (ICLR 2019, PNAS 2020).</p>")

_VERB = {"zero": "set to zero", "mean": "set to their mean", "insert": "forced to a high value (inserted)"}


def _band(fig, d: pd.DataFrame, color: str, name: str, row: int, col: int, legend: bool) -> None:
    d = d.sort_values("k")
    k, lo, hi = d["k"].tolist(), d["ci_low"].tolist(), d["ci_high"].tolist()
    if len(k) > 1:
        fig.add_trace(go.Scatter(x=k + k[::-1], y=hi + lo[::-1], mode="lines", fill="toself", fillcolor=color,
                                 opacity=0.2, line={"width": 0}, hoverinfo="skip", showlegend=False,
                                 legendgroup=name),
                      row=row, col=col)
    err = None if len(k) > 1 else {"type": "data", "symmetric": False, "array": [hi[0] - d["effect"].iloc[0]],
                                   "arrayminus": [d["effect"].iloc[0] - lo[0]]}
    fig.add_trace(go.Scatter(x=k, y=d["effect"], mode="lines+markers", name=name, legendgroup=name,
                             showlegend=legend, line={"color": color}, error_y=err,
                             customdata=d[["units", "n"]].to_numpy(),
                             hovertemplate="k=%{x}<br>effect %{y:.3g}<br>units %{customdata[0]}"
                                           "<br>n=%{customdata[1]}<extra></extra>"), row=row, col=col)


def ablation_curves(df: pd.DataFrame, layer: str, measure: str, ncols: int = 4) -> go.Figure:
    """One panel per target style: effect vs k for the top units (red) and random units (grey)."""
    d = df[(df["layer"] == layer) & (df["measure"] == measure)]
    styles = list(dict.fromkeys(d["style"]))
    ncols = max(1, min(ncols, len(styles)))
    nrows = math.ceil(len(styles) / ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[str(s) for s in styles], shared_xaxes=True)
    for i, style in enumerate(styles):
        r, c = i // ncols + 1, i % ncols + 1
        for baseline in ("top", "random"):
            part = d[(d["style"] == style) & (d["baseline"] == baseline)]
            if len(part):
                label = "top-k selective units" if baseline == "top" else "random units (same k)"
                _band(fig, part, COLORS[baseline], label, r, c, legend=i == 0)
        fig.add_hline(y=0, line={"color": "black", "width": 1, "dash": "dot"}, row=r, col=c)
    ks = sorted(d["k"].unique().tolist())
    fig.update_xaxes(type="log", tickvals=ks, ticktext=[str(k) for k in ks], title_text="k (units)", row=nrows)
    fig.update_layout(title=f"{layer}: {MEASURES.get(measure, measure)}", height=160 + 240 * nrows,
                      legend={"orientation": "h", "x": 0, "y": 0.0, "yanchor": "bottom", "yref": "container"},
                      margin={"b": 110})
    return fig


def short_units(units: str, keep: int = 6) -> str:
    """"4;6;7;10;12;..." -> "4;6;7;10;12;14 … (+26)" so a table row stays one line (the CSV has all)."""
    parts = str(units).split(";")
    return units if len(parts) <= keep else ";".join(parts[:keep]) + f" … (+{len(parts) - keep})"


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per layer, style and target: the largest k's top-unit effect next to the random baseline's."""
    main = df[df["measure"].isin(SUMMARY_MEASURES)]
    kmax = main.groupby(["layer", "style"])["k"].transform("max")
    d = main[main["k"] == kmax]
    fmt = lambda r: f"{r.effect:+.3g} [{r.ci_low:+.3g}, {r.ci_high:+.3g}]"  # noqa: E731
    rows = []
    for (layer, style, target), g in d.groupby(["layer", "style", "target"], sort=False):
        top, rnd = g[g["baseline"] == "top"], g[g["baseline"] == "random"]
        if not len(top):
            continue
        t = top.iloc[0]
        r = rnd.iloc[0] if len(rnd) else None
        rows.append({"layer": layer, "style": style, "target": target, "k": int(t.k), "units": short_units(t.units),
                     "top effect [95% CI]": fmt(t), "random effect [95% CI]": fmt(r) if r is not None else "",
                     "beyond random": r is not None and bool(t.ci_high < r.ci_low or t.ci_low > r.ci_high),
                     "n": int(t.n)})
    return pd.DataFrame(rows)


@register_section("ablation")
def ablation_section(finding, ctx: ReportContext) -> Section:
    title = "Causal ablation of style units"
    df = finding.tables["ablation"]
    verb = _VERB.get(str(finding.params.get("intervention", "zero")), "edited")
    blocks: list = [HOW_TO_READ.format(verb=verb)]
    figures = {}
    for layer in dict.fromkeys(df["layer"]):
        for measure in MEASURES:
            if ((df["layer"] == layer) & (df["measure"] == measure)).any():
                fig = ablation_curves(df, layer, measure)
                blocks.append(fig)
                figures[f"ablation_{measure}_{layer}"] = fig
    if len(df):
        blocks.append(Table(summary_table(df), caption="Effect at the largest k: selected units vs random units"))
        conc = df[(df["measure"] == "concepts") & (df["baseline"] == "top")]
        conc = conc[(conc["ci_low"] > 0) | (conc["ci_high"] < 0)]
        if len(conc):
            conc = conc.reindex(conc["effect"].abs().sort_values(ascending=False).index)
            conc = conc.assign(units=conc["units"].map(short_units))
            blocks.append(Table(conc[["layer", "style", "k", "units", "target", "effect", "ci_low", "ci_high", "n"]],
                                caption="Concept pixel fractions that change (top units; CI excludes 0)"))
    else:
        blocks.append("<p>No ablation was measured.</p>")
    return Section(title, blocks, anchor="ablation", figures=figures)
