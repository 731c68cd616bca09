"""Report section for ``StyleEdits`` findings: what removing a style's units does to every style,
how specific that is, what transferring units does, and a before / after strip.

    section = style_edits_section(finding, ReportContext())      # registered for "style_edits"
    fig = removal_heatmap(finding.tables["style_removal"])       # removed style x measured style

Reads only the Finding's tables and arrays; never runs a model.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp_gan.reporting.claims import Claim, result_line
from interp_gan.reporting.numbers import ci as fmt_ci, sig, sig_beside
from interp_gan.reporting.many_styles import MAX_STYLES_SHOWN, shown_note, shown_styles
from interp_gan.reporting.sections import (FOLD_CLOSE, ImageGrid, ReportContext, Section, Table, fold_open,
                                           how_to_read, register_section)

__all__ = ["style_edits_section", "removal_heatmap", "specificity_table", "transfer_table", "claim"]

HOW_TO_READ = (
    "<p><b>How to read this.</b> <i>Removal</i>: for each style, the k units of the layer most selective for "
    "it (AUROC, as in style units and ablation) are set to 0, and every style's own images are measured "
    "again: the change in the log-odds log p/(1-p) of that style, by the independent RGB classifier and by "
    "the colour-blind texture classifier. A row of the heatmap is one removal; its diagonal cell is the "
    "on-target change (negative: the style was removed), the other cells the off-target changes (near 0: "
    "the other styles survive). Units are chosen on one half of the images and measured on the other, "
    "both ways (cross-fitting). Each image is generated with and without the edit from the same content, "
    "noise and random state; intervals (on hover and in the tables) are 95% studentized bootstrap CIs over "
    "images. "
    "<i>Beyond random</i>: p_random = (1 + baseline k-unit sets that lower the style at least as much) / "
    "(baseline sets + 1); with 19 sets its floor is 0.05; q_random is its Benjamini-Hochberg q over the "
    "rows that ask the same question (the styles' removals; the transfers' inserted styles; their source styles), so a few "
    "rows at the floor among many at chance are not called beyond random. By default a baseline set is the top k units by the "
    "same ranking for a random relabelling of the images' styles (as coherent a group of units as the selected "
    "one, chosen for no style; the notes say which baseline ran). <i>Specificity</i> = on-target change minus the "
    "mean off-target change, with a stratified studentized bootstrap CI; <i>target share</i> = |on-target| "
    "/ (|on-target| + sum of |off-target|). A removal is <b>specific</b> when it is beyond random "
    "(q_random &le; 0.05 and its CI below 0), its specificity CI is below 0, and every off-target CI lies "
    "above the on-target CI; <b>beyond random, not specific</b> when only the first holds. "
    "<i>Transfer</i> (source &rarr; style): while generating the source style, the style's top-k units are "
    "forced to the style's mean activation; <b>transfers</b> when the style's log-odds rise beyond random "
    "(q_random &le; 0.05, CI above 0). Random-unit baselines follow Morcos et al. (ICLR 2018); unit "
    "ablation and insertion in generators follow Bau et al. (ICLR 2019, PNAS 2020).</p>")


def _fmt(e, lo, hi) -> str:
    return f"{sig(e)} {fmt_ci(lo, hi)}".strip()


def _at_kmax(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return df[df["k"] == df.groupby(by)["k"].transform("max")]


def removal_heatmap(df: pd.DataFrame, measure: str = "log_odds") -> go.Figure:
    """Removed style (rows) x measured style (columns): the mean change at the largest k, one
    panel per classifier; hover shows the CI and n. More than ``MAX_STYLES_SHOWN`` styles: an even
    sample of rows and the same styles as columns, said in the title."""
    d = _at_kmax(df[df["measure"] == measure], ["style"])
    clfs = list(dict.fromkeys(d["classifier"]))
    all_rows, all_cols = list(dict.fromkeys(d["style"])), list(dict.fromkeys(d["target_style"]))
    rows = [all_rows[i] for i in shown_styles(len(all_rows))]    # many styles: an even sample, the same
    cols = all_cols if len(all_cols) <= MAX_STYLES_SHOWN else \
        ([c for c in all_cols if c in set(rows)] or [all_cols[i] for i in shown_styles(len(all_cols))])
    fig = make_subplots(rows=1, cols=max(1, len(clfs)), subplot_titles=[f"{c} classifier" for c in clfs],
                        horizontal_spacing=0.12)
    lim = float(np.nanmax(np.abs(d["effect"].to_numpy(dtype=float)))) if len(d) else 1.0
    for i, c in enumerate(clfs):
        part = d[d["classifier"] == c].set_index(["style", "target_style"])
        z = [[part.loc[(r, t), "effect"] if (r, t) in part.index else None for t in cols] for r in rows]
        cell = lambda r, t, col: part.loc[(r, t), col] if (r, t) in part.index else np.nan  # noqa: E731
        text = [[sig(cell(r, t, "effect")) if (r, t) in part.index else "" for t in cols] for r in rows]
        hover = [[fmt_ci(cell(r, t, "ci_low"), cell(r, t, "ci_high")) for t in cols] for r in rows]
        ks = [int(part.loc[r, "k"].iloc[0]) if r in part.index.get_level_values(0) else "" for r in rows]
        fig.add_trace(go.Heatmap(z=z, x=cols, y=[f"remove {r} (k={k})" for r, k in zip(rows, ks)], text=text,
                                 customdata=hover, texttemplate="%{text}", colorscale="RdBu", zmid=0, zmin=-lim,
                                 zmax=lim, showscale=i == 0, colorbar={"title": "change"},
                                 hovertemplate="%{y}<br>measured on %{x} images<br>change %{text} "
                                               "%{customdata}<extra></extra>"),
                      row=1, col=i + 1)
        if i:
            fig.update_yaxes(showticklabels=False, row=1, col=i + 1)
        fig.update_xaxes(title_text="measured style (its own images)", row=1, col=i + 1)
    what = "log-odds" if measure == "log_odds" else "probability"
    note = shown_note(min(len(rows), len(cols)), max(len(all_rows), len(all_cols)),
                      "every pair is in findings/style_removal.csv")
    fig.update_layout(title=f"Change in each style's {what} after removing a style's units"
                            + (f"<br><sub>{note}</sub>" if note else ""),
                      height=180 + 60 * len(rows))
    fig.update_yaxes(autorange="reversed")
    return fig


def specificity_table(df: pd.DataFrame, measure: str = "log_odds") -> pd.DataFrame:
    """One row per removed style, set size and classifier: the on-target change, the largest
    off-target change, the specificity and its CI, the random baseline and the verdict."""
    d = df[df["measure"] == measure]
    rows = []
    for (style, k, clf), g in d.groupby(["style", "k", "classifier"], sort=False):
        on = g[g["on_target"].astype(bool)]
        if not len(on):
            continue
        o = on.iloc[0]
        off = g[~g["on_target"].astype(bool)]
        worst = off.iloc[int(np.argmin(off["effect"].to_numpy()))] if len(off) else None
        rows.append({"style": style, "k": int(k), "classifier": clf,
                     "on-target change [95% CI]": _fmt(o.effect, o.ci_low, o.ci_high),
                     "largest off-target drop": (f"{worst.target_style}: {_fmt(worst.effect, worst.ci_low, worst.ci_high)}"
                                                 if worst is not None else ""),
                     "specificity [95% CI]": _fmt(o.specificity, o.spec_ci_low, o.spec_ci_high),
                     "target share": o.target_share, "baseline sets (mean)": o.random_mean,
                     "p_random": o.p_random, "q_random": getattr(o, "q_random", float("nan")),
                     "verdict": o.verdict, "n": int(o.n), "edit": o.edit})
    return pd.DataFrame(rows)


def transfer_table(df: pd.DataFrame, measure: str = "log_odds") -> pd.DataFrame:
    d = df[df["measure"] == measure]
    return pd.DataFrame([{"source -> style": f"{r.source_style} -> {r.style}", "k": int(r.k), "classifier": r.classifier,
                          "measured": f"{r.target_style} ({r.direction} expected)",
                          "change [95% CI]": _fmt(r.effect, r.ci_low, r.ci_high), "baseline sets (mean)": r.random_mean,
                          "p_random": r.p_random, "q_random": getattr(r, "q_random", float("nan")),
                          "verdict": r.verdict, "n": int(r.n)} for r in d.itertuples()])


def claim(df: pd.DataFrame) -> Claim | None:
    """At the largest k, in the RGB classifier's log-odds (texture when there is no RGB one): in how
    many styles is the removal specific? It survives when at least one is."""
    if not len(df):
        return None
    clf = "rgb" if (df["classifier"] == "rgb").any() else str(df["classifier"].iloc[0])
    d = _at_kmax(df[(df["measure"] == "log_odds") & (df["classifier"] == clf)], ["style"])
    on = d[d["on_target"].astype(bool)]
    if not len(on):
        return None
    layer, k = str(on["layer"].iloc[0]), int(on["k"].max())
    ok = on[on["verdict"] == "specific"]
    best = (ok if len(ok) else on).sort_values("effect").iloc[0]
    what = f"log-odds of the style ({clf} classifier)"
    if len(ok):
        text = (f"Removing a style's {k} most selective units of {layer} lowers the {what} beyond baseline unit sets and "
                f"more than the other styles' in {len(ok)} of {len(on)} styles")
    else:
        text = (f"No style removal by the {k} most selective units of {layer} was specific: none lowered the {what} "
                f"both beyond baseline unit sets and more than the other styles' (0 of {len(on)} styles)")
    fam = int((df["on_target"].astype(bool) & df["q_random"].notna()).sum()) if "q_random" in df else 0
    q = (f", q_random {sig_beside(best['q_random'], 0.05)} (BH over {fam} removal rows)"
         if "q_random" in best and pd.notna(best["q_random"]) else "")
    return Claim(text, effect=f"{best['style']}: {sig(best['effect'])}", ci=fmt_ci(best["ci_low"], best["ci_high"]),
                 baseline=f"baseline {k}-unit sets {sig(best['random_mean'])}; p_random {sig_beside(best['p_random'], 0.05)}{q}; "
                          f"specificity {sig(best['specificity'])} {fmt_ci(best['spec_ci_low'], best['spec_ci_high'])}",
                 verdict="specific" if len(ok) else "not specific", survives=bool(len(ok)),
                 rule="specific when q_random <= 0.05 (BH over the styles' removals) with the CI below 0, the specificity CI below 0, and every "
                      "off-target CI above the on-target CI")


def _strip(finding, kind: str, info: pd.DataFrame | None) -> ImageGrid | None:
    before, after = finding.arrays.get(f"strip_{kind}_before"), finding.arrays.get(f"strip_{kind}_after")
    if before is None or after is None or not len(before):
        return None
    row = info[info["kind"] == kind].iloc[0] if info is not None and (info["kind"] == kind).any() else None
    if row is None:
        title = kind
    elif kind == "removal":
        title = f"Removal of {row['style']} (k={row['k']}): {row['style']} images before (top) and after (bottom)"
    else:
        title = (f"Transfer {row['source_style']} -> {row['style']} (k={row['k']}): {row['source_style']} images "
                 f"before (top) and with {row['style']}'s units (bottom)")
    n = len(before)
    return ImageGrid(np.concatenate([before, after]), captions=["before"] * n + ["after"] * n, ncols=n, title=title,
                     row_labels=["before", "after"])


@register_section("style_edits")
def style_edits_section(finding, ctx: ReportContext) -> Section:
    title = "Style removal and transfer edits"
    rem, tra = finding.tables["style_removal"], finding.tables.get("style_transfer", pd.DataFrame())
    c = claim(rem)
    blocks: list = [result_line(c) if c else "<p>No removal was measured.</p>"]
    figures = {}
    grids = {}
    if len(rem):
        fig = removal_heatmap(rem)
        figures["style_edits_removal_heatmap"] = fig
        blocks.append(fig)
        spec = specificity_table(rem)
        n_spec = int((spec["verdict"] == "specific").sum())
        blocks.append(f"<p>{n_spec} of {len(spec)} removals (style x k x classifier, log-odds) are specific; "
                      f"{int((spec['verdict'] == 'beyond random, not specific').sum())} are beyond random but not "
                      f"specific.</p>")
        blocks.append(Table(spec, caption="Specificity of each removal (log-odds): on-target change, the largest "
                                          "off-target drop, specificity = on-target minus mean off-target change, "
                                          "and the verdict"))
    info = finding.tables.get("style_edits_strip")
    for kind in ("removal", "transfer"):
        g = _strip(finding, kind, info)
        if g is not None:
            blocks.append(g)
            grids[f"style_edits_{kind}_strip"] = g
    if len(tra):
        tt = transfer_table(tra)
        blocks.append(f"<p>Transfers beyond random: {int((tt['verdict'] == 'transfers').sum())} of "
                      f"{int(tt['measured'].str.contains('increase').sum())} (pair x k x classifier, log-odds).</p>")
        blocks.append(Table(tt, caption="Transfer: change in the inserted style's and the source style's log-odds "
                                        "on the source style's images"))
    if len(rem):
        blocks += [fold_open("Probabilities: the same removals in p(style)"),
                   Table(specificity_table(rem, "p"), caption="Specificity of each removal in probability"),
                   removal_heatmap(rem, "p"), FOLD_CLOSE]
    for n in finding.notes:
        if "floor" in n or "cannot reach" in n or "not finite" in n or "had no spread" in n or "budget" in n:
            blocks.append(f"<p><i>{html.escape(n)}</i></p>")
    blocks.append(how_to_read(HOW_TO_READ))
    sec = Section(title, blocks, anchor="style_edits", figures=figures, paper_grids=grids)
    sec.claims = [c] if c else []
    return sec
