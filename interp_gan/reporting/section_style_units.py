"""Report section for ``StyleUnits`` findings: style x unit AUROC heatmap and top units per style.

    section = style_units_section(finding, ReportContext())     # registered for "style_units"
    fig = selectivity_heatmap(finding.tables["style_units"], max_units=60)

Reads only the Finding's ``style_units`` and ``style_units_control`` tables and notes; never
runs a model. The headline states the trained rate of q < 0.05 next to the random-init control.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from interp_gan.reporting.claims import (RATE_REFERENCES, Claim, draws_of, partial_control, rate_vs_control,
                                        result_line)
from interp_gan.reporting.numbers import pct, sig
from interp_gan.reporting.many_styles import MAX_STYLES_SHOWN, shown_note, shown_styles
from interp_gan.reporting.sections import ReportContext, Section, Table, how_to_read, register_section

__all__ = ["style_units_section", "selectivity_heatmap", "top_units", "headline", "claim", "control_percent"]

ALPHA = 0.05

HOW_TO_READ = (
    "<p><b>How to read this.</b> Every content image is generated toward one target style. For "
    "each unit (channel) the activation is averaged over space, and its AUROC asks: for an image "
    "generated toward this style and one generated toward another, how often is the unit higher "
    "on the first? 1 = always (the unit signals the style), 0.5 = no preference, 0 = always lower. "
    "The 95% CI is DeLong's interval on the logit scale (Newcombe's score interval when the "
    "groups do not overlap at all, so it never has zero width); p is the two-sided permutation p of "
    "shuffling the style labels, counted exactly over every labelling (a Mann-Whitney test; where that "
    "is too costly the notes say it was drawn from random shuffles and cannot go below 1/(number of "
    "shuffles + 1)); q is the "
    "Benjamini-Hochberg false discovery rate over all unit x style tests. A unit that is "
    "'significant' is selective on these images; the random-init control says how often the "
    "same architecture with untrained weights is selective too. AUROC stops at 1 once the two "
    "groups do not overlap; Cohen's d (the difference of the means over the pooled standard "
    "deviation) then says how far apart they "
    "are, and breaks the ties in the heatmap and the table. In the heatmap red = higher for the style, blue = lower; * marks "
    "q &lt; 0.05, ** q &lt; 0.01. Selectivity is a correlation: whether a unit <i>causes</i> "
    "the style is what the ablation section tests.</p>")


def _unit_labels(df: pd.DataFrame) -> pd.Series:
    return df["layer"].astype(str) + ":" + df["unit"].astype(int).astype(str)


def top_units(df: pd.DataFrame, per_style: int = 5) -> pd.DataFrame:
    """The ``per_style`` highest-AUROC units of each style; ties (AUROC saturates at 1 when the
    groups separate completely) broken by Cohen's d, then q."""
    by = [c for c in ["style", "auroc", "cohens_d", "q_value"] if c in df.columns]
    d = df.dropna(subset=["auroc"]).sort_values(by, ascending=[c in ("style", "q_value") for c in by])
    cols = [c for c in ["style", "layer", "unit", "auroc", "ci_low", "ci_high", "p_value", "q_value",
                        "mean_style", "mean_other", "cohens_d"] if c in d.columns]
    styles = list(dict.fromkeys(df["style"]))
    out = pd.concat([d[d["style"] == s].head(per_style) for s in styles], ignore_index=True)
    return out[cols]


def _tick(label: str, width: int = 22) -> str:
    """A layer:unit label of at most ``width`` characters, keeping its end (the unit and the op)."""
    return label if len(label) <= width else "…" + label[-(width - 1):]


def selectivity_heatmap(df: pd.DataFrame, max_units: int = 60, max_styles: int = MAX_STYLES_SHOWN) -> go.Figure:
    """Styles (rows; more than ``max_styles``: an even sample, said in the title) x the ``max_units``
    most selective units (columns, ranked over every style), coloured by AUROC.

    Units are ranked by max over styles of |AUROC - 0.5| (ties by max |Cohen's d|) and grouped
    by the style they prefer.
    """
    d = df.assign(key=_unit_labels(df))
    styles, keys = list(dict.fromkeys(df["style"])), list(dict.fromkeys(d["key"]))
    auc = d.pivot(index="style", columns="key", values="auroc").reindex(index=styles, columns=keys)
    q = d.pivot(index="style", columns="key", values="q_value").reindex(index=styles, columns=keys)
    a = auc.to_numpy(dtype=float)
    score = np.nan_to_num(np.abs(a - 0.5), nan=-1).max(0)
    tie = (np.nan_to_num(np.abs(d.pivot(index="style", columns="key", values="cohens_d")
                                .reindex(index=styles, columns=keys).to_numpy(dtype=float)), nan=0).max(0)
           if "cohens_d" in d.columns else np.zeros_like(score))
    keep = np.lexsort((-tie, -score))[:max_units]
    pref = np.nan_to_num(a[:, keep], nan=0.5).argmax(0)
    keep = keep[np.lexsort((-score[keep], pref))]
    a, qv, keys = a[:, keep], q.to_numpy(dtype=float)[:, keep], auc.columns[keep]
    rows = shown_styles(len(styles), max_styles)     # many styles: an even sample of rows (the CSV has all)
    a, qv, styles = a[rows], qv[rows], [styles[i] for i in rows]
    text = np.where(qv < 0.01, "**", np.where(qv < ALPHA, "*", ""))
    fig = go.Figure(go.Heatmap(
        z=a, x=list(keys), y=styles, text=text, texttemplate="%{text}", zmin=0, zmax=1, zmid=0.5,
        colorscale="RdBu", reversescale=True, colorbar={"title": "AUROC"}, customdata=qv,
        hovertemplate="%{x}<br>style %{y}<br>AUROC %{z:.3f}<br>q %{customdata:.3g}<extra></extra>"))
    shown = f"the {len(keys)} most selective of {auc.shape[1]} units" if auc.shape[1] > len(keys) else "all units"
    ticks = [_tick(str(k)) for k in keys]   # long ONNX names (".../Conv2D_prequant:27") end-truncated; hover has all
    rows_note = shown_note(len(rows), auc.shape[0], "the full table is in findings/style_units.csv")
    fig.update_layout(title=f"Style selectivity (AUROC), {shown} (* q < {ALPHA}, ** q < 0.01)"
                      + (f"<br><sub>{rows_note}</sub>" if rows_note else ""),
                      xaxis_title="layer:unit",
                      yaxis_title="target style", height=max(380, 230 + 44 * len(styles)),
                      margin={"b": 60 + 6 * max((len(t) for t in ticks), default=10)},   # the rotated labels
                      xaxis={"showticklabels": len(keys) <= 80, "tickangle": -60,
                             "tickvals": list(keys), "ticktext": ticks},
                      yaxis={"autorange": "reversed"})
    return fig


def claim(df: pd.DataFrame, ctl: pd.DataFrame | None, draws: pd.DataFrame | None = None) -> Claim:
    """The share of unit x style tests at q < 0.05 beside the random-init control's. Its interval and
    the difference's count units, not tests, as n (the tests of one unit share its activations)."""
    q = df["q_value"].to_numpy(dtype=float)
    q = q[np.isfinite(q)]
    if not len(q):                     # no rate to state: not "– of unit x style tests [0%, 100%]"
        return Claim("No unit x style test has a p-value (every unit constant or not finite), so no "
                     "selectivity rate", effect="no tests", verdict="not measured", survives=False,
                     rule="a rate needs tested units and its random-init control")
    t = float(np.mean(q < ALPHA))
    n_units = max(1, len(df.drop_duplicates(["layer", "unit"])))
    rate = f"{pct(t)} of unit x style tests"
    if ctl is None or not len(ctl) or not ctl["frac_q05_control"].notna().any():
        return Claim(f"{int(np.sum(q < ALPHA))} of {len(q)} unit x style tests reach q < {ALPHA}; no random-init "
                     "control was run, so this rate does not show that training made style units", effect=rate,
                     baseline="no control", verdict="no baseline", survives=False,
                     rule="a rate without its random-init control is not a finding")
    c = ctl.dropna(subset=["frac_q05_control"])
    w = c.get("tests_control", c["tests"]).astype(float)
    if not w.sum():
        return Claim(f"{int(np.sum(q < ALPHA))} of {len(q)} unit x style tests reach q < {ALPHA}; the random-init "
                     "control tested nothing, so this rate has no baseline", effect=rate, baseline="no control tests",
                     verdict="no baseline", survives=False, rule="a rate without its random-init control is not a finding")
    cr = float(np.average(c["frac_q05_control"], weights=w))
    # each draw's rate of tests at q < alpha, on n = units as the trained rate (a unit's tests are not independent)
    d = draws_of(draws, "rate", "units")
    d = [(rate_ * n_units, n_units) for rate_, _ in d] if d else None
    r = rate_vs_control(t * n_units, n_units, cr * n_units, n_units, d)
    rule = r["rule"].replace("treating units as independent", "n = units, not tests, as a unit's tests are not "
                                                               "independent")
    ctl_ = (f"{len(d)} random-init draws ({', '.join(pct(k / n_units) for k, _ in d)})" if d and len(d) >= 2
            else f"the random-init control ({pct(cr)})")
    if r["survives"]:
        text = f"Units are style-selective (q < {ALPHA}) in {pct(t)} of unit x style tests, more than {ctl_}"
    else:
        text = (f"No evidence that training made style-selective units: {pct(t)} of unit x style tests reach "
                f"q < {ALPHA}, {ctl_} (a random style embedding already makes units differ between styles)")
    # the rate's denominator is tests, its interval's is units: said beside it, not only on hover
    return Claim(text, effect=rate, ci=f"{r['ci']} (interval over {n_units} units)", baseline=r["baseline"],
                 verdict=r["verdict"], survives=r["survives"], rule=rule)


def _per_style_counts(per: pd.Series) -> str:
    """'style0 3, style1 0, ...'; more than ``MAX_STYLES_SHOWN`` styles: the ones with the most, and
    how many units the others hold in all (every style is in the CSV)."""
    items = lambda p: ", ".join(f"{html.escape(str(s))} {int(k)}" for s, k in p.items())  # noqa: E731
    if len(per) <= MAX_STYLES_SHOWN:
        return items(per)
    top = per.sort_values(ascending=False, kind="stable").head(MAX_STYLES_SHOWN)
    rest = per.drop(top.index)
    return (f"{items(top)} (the {len(top)} styles with the most; the other {len(rest)} hold {int(rest.sum())} in all, "
            f"at most {int(rest.max())} each; every style is in findings/style_units.csv)")


def control_percent(ctl: pd.DataFrame) -> pd.DataFrame:
    """The control table with its fractions as percentages, as the claim above states them (58.0% there,
    0.568 here read as two different quantities); the CSV keeps the fractions."""
    d = ctl.copy()
    names = {"frac_q05_trained": "% tests q<0.05 trained", "frac_q05_control": "% tests q<0.05 random init"}
    for c in names:
        if c in d:
            d[c] = 100 * d[c]
    return d.rename(columns=names)


@register_section("style_units")
def style_units_section(finding, ctx: ReportContext) -> Section:
    title = "Style units"
    df = finding.tables["style_units"]
    ctl = finding.tables.get("style_units_control")
    c = claim(df, ctl, finding.tables.get("style_units_control_draws")) if len(df) else None
    partial = partial_control(c, finding.notes) if ctl is not None and len(ctl) else ""
    blocks: list = [result_line(c) if c else "<p>No units were tested.</p>"] + ([partial] if partial else [])
    if len(df):
        sig_ = df[(df["q_value"] < ALPHA) & (df["auroc"] > 0.5)]
        per = sig_.groupby("style", sort=False).size().reindex(list(dict.fromkeys(df["style"])), fill_value=0)
        n_units = len(df.drop_duplicates(["layer", "unit"]))
        heat = selectivity_heatmap(df)
        blocks.append(heat)
        blocks.append(f"<p>{n_units} units in {df['layer'].nunique()} layer(s), {len(per)} styles. Units "
                      f"significantly higher for a style (q &lt; {ALPHA}): {_per_style_counts(per)}.</p>")
        blocks.append(Table(top_units(df), caption="Top selective units per style (highest AUROC, ties by Cohen's d)"))
        if ctl is not None and len(ctl):
            blocks.append(Table(control_percent(ctl),
                                caption="Random-init control per layer: % of unit x style tests with "
                                        "q < 0.05 and median |Cohen's d|, trained vs the same architecture at "
                                        "random initialisation (same images, same tests)"))
        for n in finding.notes:
            if "permutation floor" in n or "bootstrap replicate" in n or n.startswith("random-init control: no"):
                blocks.append(f"<p><i>{html.escape(n)}</i></p>")
    blocks.append(how_to_read(HOW_TO_READ))
    sec = Section(title, blocks, anchor="style_units", figures={"style_units_heatmap": heat} if len(df) else {})
    sec.claims = [c] if c else []
    sec.references = ["delong1988auc", "newcombe2006auc", *RATE_REFERENCES]   # the AUROC's CI; the claim's
    return sec
