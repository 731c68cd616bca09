"""Report section for the ``style_interpolation`` Finding: the walks between two styles' codes.

    c = claim(finding.tables["style_interpolation"])     # the key-findings sentence, or None
    fig = path_figure(finding.tables["style_interpolation_path"])
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp_gan.reporting.baselines import at_own_floor, baseline_counts, count_words, more_baselines_hint
from interp_gan.reporting.claims import Claim, result_line
from interp_gan.reporting.numbers import ci as fmt_ci, sig, sig_beside
from interp_gan.reporting.sections import (FOLD_CLOSE, ImageGrid, ReportContext, Section, Table, fold_open,
                                           how_to_read, register_section)

__all__ = ["claim", "path_figure", "interpolation_section"]

HOW_TO_READ = """
<p><b>How to read.</b> Each row walks images generated in the source style along the straight line to
the target style's code (t = 0 source, t = 1 target) and reports the change of the target's log-odds
under each independent classifier (95% BCa CI). <i>p_random</i> ranks that change among random
directions walked the same length from the same codes, measured on the same target (the verdict,
BH over pairs); <i>p_other</i> ranks it among walks of the same length toward the other styles' codes
(does the walk to b make b more than walking anywhere else does?). <i>random_any_max</i> is context:
the largest change any random walk made to any style, picked after the fact. The curves show where
along the path the target takes over from the source.</p>
"""


def claim(df: pd.DataFrame) -> Claim | None:
    """How many pairs' walks raise the target beyond random walks (RGB classifier), strongest first."""
    if df is None or not len(df) or "q_random" not in df.columns:
        return None
    d = df[df["classifier"] == "classifier"] if (df["classifier"] == "classifier").any() else df
    ok = d[d["beyond_random"].astype(bool)]
    # walks above every random walk (p_random at its floor) that BH over the pairs keeps above 0.05; with
    # sequential walks each row read its own number (n_random_used), more than random_max describes
    has_used = "n_random_used" in d.columns
    used = baseline_counts(d)
    n_first = int(d["n_random"].iloc[0]) if "n_random" in d.columns else int(np.nanmin(used)) if has_used else 0
    seq = has_used and bool((used > n_first).any())          # some row walked past the first n_random
    above = at_own_floor(d["p_random"], used) if has_used else (d["effect"] > d["random_max"]).to_numpy()
    top = d[above & (d["q_random"] > 0.05).to_numpy()] if not len(ok) else d.iloc[:0]
    best = (ok if len(ok) else top if len(top) else d).sort_values("effect", ascending=False).iloc[0]
    # beyond random is q_random <= 0.05 (BH over the pairs) with the CI above 0, not "above every random
    # walk": with more than 19 random walks a walk below the largest one can pass, so the sentence
    # says what the rule says and the numbers show q beside p
    if len(ok):
        text = (f"{len(ok)} of {len(d)} walks between two styles' codes raise the target style more than random "
                f"walks of the same length; strongest: {best['pair']}")
    elif len(top):
        n_at = baseline_counts(top)
        hint = (more_baselines_hint(len(d), n_at, n_first, "pairs") if has_used else
                "set n_random_max (e.g. 199; sequential: only the pairs whose walk beats the random ones walk "
                "more) to resolve them")
        count = f" ({count_words(n_at)} of them)" if has_used else ""
        text = (f"Not resolved against random walks: {len(top)} of {len(d)} walks between two styles' codes raise "
                f"the target style more than every random walk of the same length{count}, but at this number of "
                f"random walks BH over the pairs keeps q_random above 0.05; {hint}")
    else:
        text = f"No walk between two styles' codes raises the target more than random walks ({len(d)} pairs)"
    other = (f"; p_other {sig(best['p_other'])} vs {int(best['n_other'])} walks to other styles"
             if "p_other" in best and pd.notna(best["p_other"]) else "")
    q = f", q_random {sig_beside(best['q_random'], 0.05)} (BH over {int(d['q_random'].notna().sum())} pairs)"
    return Claim(text, effect=f"Δ log-odds {sig(best['effect'])}", ci=fmt_ci(best["ci_low"], best["ci_high"]),
                 baseline=(f"random walks max {sig(best['random_max'])}"
                           + (f" (of the first {n_first})" if seq else "")
                           + f"; p_random {sig_beside(best['p_random'], 0.05)}"
                           + (f" ({int(best['n_random_used'])} random walks)" if seq else "") + f"{q}{other}"),
                 verdict="beyond random walks" if len(ok) else "not beyond random walks", survives=bool(len(ok)),
                 rule="beyond random when q_random (rank among random directions of the same length, measured "
                      "on the same target; BH over pairs) <= 0.05 and the CI is above 0")


def path_figure(path: pd.DataFrame) -> go.Figure:
    """Mean log-odds of the source and the target along t, one panel per pair (RGB classifier)."""
    p = path[path["classifier"] == "classifier"] if (path["classifier"] == "classifier").any() else path
    pairs = list(dict.fromkeys(p["pair"]))
    fig = make_subplots(rows=1, cols=len(pairs), subplot_titles=pairs, shared_yaxes=True)
    colours = {"source": "#1f77b4", "target": "#d62728"}
    for c, pair in enumerate(pairs, start=1):
        for role in ("source", "target"):
            s = p[(p["pair"] == pair) & (p["role"] == role)].sort_values("t")
            col = colours[role]
            fig.add_scatter(x=np.r_[s["t"], s["t"][::-1]], y=np.r_[s["ci_high"], s["ci_low"][::-1]], fill="toself",
                            fillcolor=col, opacity=0.15, line=dict(width=0), hoverinfo="skip", showlegend=False,
                            row=1, col=c)
            fig.add_scatter(x=s["t"], y=s["log_odds"], mode="lines+markers", line=dict(color=col),
                            name=role, legendgroup=role, showlegend=c == 1,
                            hovertemplate=f"{role} %{{customdata}}<br>t=%{{x}}<br>log-odds %{{y:.3g}}<extra></extra>",
                            customdata=s["style"], row=1, col=c)
        fig.update_xaxes(title_text="t", row=1, col=c)
    fig.update_yaxes(title_text="log-odds (RGB classifier)", row=1, col=1)
    fig.update_layout(title="Walking from one style's code (t = 0) to another's (t = 1)", height=360)
    return fig


def _grid(finding, df: pd.DataFrame) -> ImageGrid | None:
    arrs = [finding.arrays[k] for k in sorted(finding.arrays) if k.startswith("interpolation_img")]
    if not arrs:
        return None
    path = finding.tables["style_interpolation_path"]
    ts = sorted(path["t"].unique())
    pairs = list(dict.fromkeys(df["pair"]))
    imgs, caps, rows = [], [], []
    for pair, a in zip(pairs, arrs):
        imgs.append(a[0])                                   # the first image, every t
        caps += [f"t={t:g}" for t in ts]
        rows.append(pair)
    return ImageGrid(np.concatenate(imgs), caps, ncols=len(ts), px=80, row_labels=rows,
                     col_labels=[f"t={t:g}" for t in ts])


@register_section("style_interpolation")
def interpolation_section(finding, ctx: ReportContext) -> Section:
    df = finding.tables["style_interpolation"]
    c = claim(df)
    blocks: list = [result_line(c) if c else ""]
    figures = {}
    grid = _grid(finding, df)
    if grid is not None:
        blocks.append(grid)
    path = finding.tables.get("style_interpolation_path")
    if path is not None and len(path):
        figures["interpolation_path"] = path_figure(path)
        blocks.append(figures["interpolation_path"])
    cols = [k for k in ("pair", "classifier", "effect", "ci_low", "ci_high", "p_random", "q_random", "beyond_random",
                        "random_max", "p_other", "other_max", "n_other", "random_any_max", "length", "n")
            if k in df.columns]
    if "n_random_used" in df.columns and "n_random" in df.columns and (df["n_random_used"] > df["n_random"]).any():
        cols.insert(cols.index("p_random") + 1, "n_random_used")     # sequential walks: each row's own count
    blocks += [fold_open(f"Table: {len(df)} walks"),
               Table(df[cols], caption="Style interpolation: effect = Δ log-odds of the target at t = 1 (95% BCa "
                                       "CI); p_random vs random directions of the same length (verdict: BH "
                                       "q_random <= 0.05 and CI above 0); p_other vs walks toward other styles"),
               FOLD_CLOSE, how_to_read(HOW_TO_READ)]
    sec = Section("Style interpolation", [b for b in blocks if b != ""], anchor="style_interpolation",
                  figures=figures)
    sec.claims = [c] if c else []
    if grid is not None:
        sec.paper_grids = {"interpolation_walks": grid}
    return sec
