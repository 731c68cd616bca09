"""Report sections for the ``replication`` and ``agreement`` Findings.

    sec = replication_section(finding, ctx)   # replicated findings per analysis, the conditions, sensitivity
    sec = agreement_section(finding, ctx)     # overlap of the units each method names, per style
    fig = agreement_heatmap(finding.tables["agreement"])

Reads the Findings' tables only. The sensitivity table (headline numbers under neighbouring
parameters) is shown once per report, here.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from interp_gan.findings.stats import bh_qvalues, wilson_interval
from interp_gan.reporting.claims import Claim, result_line
from interp_gan.reporting.numbers import ci as fmt_ci, pct, sig
from interp_gan.reporting.sections import ReportContext, Section, Table, how_to_read, register_section

__all__ = ["replication_section", "agreement_section", "agreement_heatmap", "replication_claim", "agreement_claim"]

HOW_TO_READ_REPLICATION = (
    "<p><b>How to read this.</b> Every finding of the run (a labelled dissection unit, a style unit at "
    "q &lt; 0.05, a direction beyond random) is looked for again by re-running the analysis that made it: "
    "<i>split_half</i> selects it on one random half of the images and confirms it on the other half "
    "(BH over the pairs the first half selected); <i>seed</i> re-draws the permutations and data halves "
    "(style units' exact p draws none: there it repeats the same test, and split_half decides); "
    "<i>quantile</i> / <i>iou_threshold</i> move dissection's thresholds to their neighbours; "
    "<i>latent_sample</i> finds directions again from a different sample of latent codes. "
    "<i>fraction</i> is the share of conditions a finding survives; it <b>replicates</b> when it survives "
    "split_half (the only condition on independent images) and at least the stated share of the conditions. "
    "The sensitivity table gives the headline numbers under the same neighbouring settings.</p>")

HOW_TO_READ_AGREEMENT = (
    "<p><b>How to read this.</b> For each style, four methods each name a few units: the most "
    "style-selective units (AUROC), the set whose ablation removes the style, the units the strongest "
    "direction toward the style moves most, and the units attribution ranks most important. "
    "<i>overlap</i> counts the units two methods share; <i>expected</i> is the overlap of random sets of "
    "the same sizes; p is the share of random unit sets that overlap as much (permutation), q the BH "
    "false discovery rate within its family. Ablation ranks units by the same AUROC as the style-unit "
    "analysis, so that pair agrees partly by construction: it is its own BH family and the headline does "
    "not count it; the pairs with directions and attribution are the independent checks.</p>")


def replication_claim(summary: pd.DataFrame, min_fraction: float) -> Claim:
    n, k = len(summary), int(summary["replicates"].astype(bool).sum()) if len(summary) else 0
    per = [f"{a} {int(g.replicates.astype(bool).sum())}/{len(g)}" for a, g in summary.groupby("analysis", sort=False)] \
        if n else []
    if not n:
        return Claim("No finding to replicate in this run", effect="0 findings", verdict="nothing to replicate",
                     survives=False, rule="a finding replicates when it survives split_half and "
                                          f"{min_fraction:.0%} of the conditions")
    text = (f"{k} of {n} findings replicate on the other half of the images, another seed and neighbouring "
            f"thresholds" if k else f"None of {n} findings replicates on the other half of the images")
    lo, hi = wilson_interval(k, n)    # findings as the sample; they share images: too narrow, not too wide
    return Claim(text, effect=f"{pct(k / n)} replicate", ci=fmt_ci(lo, hi, pct), baseline="; ".join(per),
                 verdict="replicated" if k else "not replicated", survives=k > 0,
                 rule=f"a finding replicates when it survives split_half (selected on one half, confirmed on the "
                      f"other) and at least {min_fraction:.0%} of the conditions")


@register_section("replication")
def replication_section(finding, ctx: ReportContext) -> Section:
    rep, summ = finding.tables["replication"], finding.tables["replication_summary"]
    sens = finding.tables.get("sensitivity")
    c = replication_claim(summ, float(finding.params.get("min_fraction", 0.75)))
    blocks: list = [result_line(c)]
    figures = {}
    if len(rep):
        rate = rep.groupby(["analysis", "condition"], sort=False)["survives"].mean().reset_index()
        fig = go.Figure()
        for a, g in rate.groupby("analysis", sort=False):
            fig.add_bar(x=g["condition"], y=g["survives"], name=str(a))
        fig.update_layout(title="Share of findings surviving each condition", yaxis=dict(range=[0, 1],
                          title="share surviving"), barmode="group", height=360)
        figures["replication_conditions"] = fig
        blocks.append(fig)
        blocks.append(Table(summ.sort_values(["replicates", "fraction"], ascending=False),
                            caption="Findings: conditions survived and the verdict", max_rows=40))
    if sens is not None and len(sens):
        blocks.append("<h3>Sensitivity of the headline numbers</h3>")
        blocks.append(Table(sens, caption="Headline numbers under neighbouring parameter values", max_rows=40))
    blocks.append(how_to_read(HOW_TO_READ_REPLICATION))
    blocks += [f'<p class="note">{html.escape(n)}</p>' for n in finding.notes[1:]]
    return Section("Replication", blocks, anchor="replication", figures=figures, claims=[c])


LOG2_FLOOR = -2.0      # ratios below 1/4 (an overlap of 0 included) share the colour of 1/4


def agreement_heatmap(df: pd.DataFrame) -> go.Figure:
    """Method pairs (rows) x styles (columns): overlap / expected by chance, q in the hover, * q < 0.05.
    The colour is log2 of the ratio on a scale symmetric about 0, so chance (1) is white, below it blue,
    above it red: an overlap of 0 never looks like one at chance, and 25x chance does not squeeze the
    rest into one colour."""
    d = df.assign(pair=df["method_a"] + " × " + df["method_b"],
                  ratio=df["overlap"] / df["expected_by_chance"].where(df["expected_by_chance"] > 0))
    d = d.groupby(["pair", "style"], sort=False).agg(ratio=("ratio", "max"), q=("q_value", "min")).reset_index()
    pairs, styles = list(dict.fromkeys(d["pair"])), list(dict.fromkeys(d["style"]))
    ratio = d.pivot(index="pair", columns="style", values="ratio").reindex(index=pairs, columns=styles).to_numpy(float)
    q = d.pivot(index="pair", columns="style", values="q").reindex(index=pairs, columns=styles).to_numpy(float)
    text = np.where(q < 0.05, "*", "")
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log2(np.clip(ratio, 2.0 ** LOG2_FLOOR, None))
    top = float(np.nanmax(z)) if np.isfinite(z).any() else 1.0
    lim = max(-LOG2_FLOOR, top)
    bar = dict(title="overlap /<br>chance<br>(log scale)", tickvals=[LOG2_FLOOR, 0, lim],
               ticktext=[f"0 to 1/{2 ** -LOG2_FLOOR:g}", "1 = chance", sig(2.0 ** lim)])
    fig = go.Figure(go.Heatmap(z=z, x=styles, y=pairs, text=text, texttemplate="%{text}", zmin=-lim, zmax=lim,
                               colorscale="RdBu", reversescale=True, colorbar=bar,
                               customdata=np.dstack([ratio, q]),
                               hovertemplate="%{y}<br>%{x}: overlap %{customdata[0]:.3g}× chance, "
                                             "q = %{customdata[1]:.3g}<extra></extra>"))
    fig.update_layout(title="Agreement of methods on each style's units (* q < 0.05)", height=120 + 40 * len(pairs))
    return fig


_BY_CONSTRUCTION = {frozenset(("style_units", "ablation"))}   # as analyses.agreement (no torch import here)


def _independent_q(df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(independent, q): which rows are independent pairs, and their q within that family. A finding
    from before the families (no ``independent`` column) had one BH over the whole table: recomputed
    here over the independent rows from their p-values."""
    if "independent" in df.columns:
        return df["independent"].astype(bool), df["q_value"]
    ind = pd.Series([frozenset((a, b)) not in _BY_CONSTRUCTION for a, b in zip(df["method_a"], df["method_b"])],
                    index=df.index)
    if ind.all():                      # one family already: the saved q is the independent pairs' q
        return ind, df["q_value"]
    q = pd.Series(np.nan, index=df.index)
    if ind.any():
        q[ind] = bh_qvalues(df.loc[ind, "p_value"].to_numpy(float))
    return ind, q


def agreement_claim(df: pd.DataFrame) -> Claim:
    """How many independent method x style overlaps exceed chance (q < 0.05, BH over the independent
    pairs). The style_units x ablation pair agrees partly by construction (ablation ranks by the same
    AUROC): it is counted apart and never makes the claim survive."""
    rule = ("two methods agree on a style when their overlap's permutation q is below 0.05, BH over the "
            "independent pairs; the style_units x ablation pair agrees partly by construction and is not counted")
    if not len(df):
        return Claim("No two methods named units in the same layer for the same style", effect="no pairs",
                     verdict="not compared", survives=False, rule=rule)
    ind, q = _independent_q(df)
    n, k = int(ind.sum()), int((ind & (q < 0.05)).sum())
    dep = df[~ind]
    aside = (f"; style_units x ablation, which agrees partly by construction: {int((dep['q_value'] < 0.05).sum())} "
             f"of {len(dep)}" if len(dep) else "")
    if not n:
        return Claim(f"Only the style_units x ablation pair was compared, and it agrees partly by construction "
                     f"({len(dep)} method x style overlaps): no independent agreement was tested",
                     effect="no independent pairs", verdict="not compared", survives=False, rule=rule)
    text = (f"{k} of {n} independent method x style overlaps exceed chance" if k else
            f"No evidence that independent methods agree on the units: none of {n} method x style overlaps "
            f"beyond chance") + aside
    return Claim(text, effect=f"{k}/{n} independent overlaps at q < 0.05",
                 baseline=f"chance: a median overlap of {sig(df.expected_by_chance[ind].median())} units "
                          f"(observed median {sig(df.overlap[ind].median())})",
                 verdict="beyond chance" if k else "at chance", survives=k > 0, rule=rule)


@register_section("agreement")
def agreement_section(finding, ctx: ReportContext) -> Section:
    df = finding.tables["agreement"]
    c = agreement_claim(df)
    blocks: list = [result_line(c)]
    figures = {}
    if len(df):
        figures["agreement"] = agreement_heatmap(df)
        blocks.append(figures["agreement"])
        blocks.append(Table(df, caption="Overlap of the units named by each pair of methods", max_rows=40))
    sets = finding.tables.get("agreement_sets")
    if sets is not None and len(sets):
        blocks.append(Table(sets, caption="The units each method names, per style and layer", max_rows=40))
    blocks.append(how_to_read(HOW_TO_READ_AGREEMENT))
    blocks += [f'<p class="note">{html.escape(n)}</p>' for n in finding.notes]
    return Section("Agreement across methods", blocks, anchor="agreement", figures=figures, claims=[c])
