"""Report section for the ``directions`` Finding: traversals, effect bars vs random, agreement.

    fig = effect_bars(finding.tables["directions"])          # effect ± 95% CI per direction
    fig = agreement_heatmap(finding)                         # |cos| between all directions
    section = directions_section(finding, ctx)               # registered for "directions"
"""
from __future__ import annotations


import numpy as np
import pandas as pd
import plotly.graph_objects as go

from interp_gan.reporting.baselines import at_own_floor, baseline_counts, count_words, more_baselines_hint
from interp_gan.reporting.claims import Claim, result_line
from interp_gan.reporting.numbers import ci as fmt_ci, sig, sig_beside
from interp_gan.reporting.sections import (FOLD_CLOSE, ImageGrid, ReportContext, Section, Table, fold_open,
                                           how_to_read, register_section)

__all__ = ["claim", "headline", "effect_bars", "agreement_heatmap", "layerwise_heatmap", "traversal_grid", "directions_section"]

HOW_TO_READ = """
<p><b>How to read.</b> Each row of the traversal grid walks one direction from its negative to its
positive end (columns are steps in units of the sample standard deviation along the direction;
the middle column is the unedited output; random directions are walked at one reference length).
The bars give, for each direction, the change in the independent style classifier's
<b>log-odds</b>, log p/(1-p), of the style its positive end moves toward most, at the largest step
(<code>effect</code>; <code>effect_prob</code> in the table is the same change in probability, which
is what <code>effect</code> meant before), with a 95% BCa bootstrap confidence interval over images
(widened for small samples; it covers about 93% rather than 95% at 16 images in simulation, less
when the per-image changes are strongly skewed). The effect is cross-fitted: the images are split
into two random halves and each half is measured at the style the other half picked, so choosing
the style does not inflate it (<code>style_agree</code>: both halves picked the same style).</p>
<p><b>Beyond random</b> is the verdict: each direction is compared with random unit directions
walked the <i>same Euclidean step</i> (<code>step_length</code>) and measured the same way;
<code>p_random</code> = (1 + number of random directions with at least this effect) / (1 + number of
random directions), <code>q_random</code> its Benjamini-Hochberg adjustment over the discovered
directions, and <code>beyond_random</code> means q_random &le; 0.05. The black dash on each bar is the
95th percentile of its own random baselines; the grey box holds the random directions at the
reference length (one point each). With few random directions p_random cannot go below
1/(1 + n); the notes say when that floor binds. <code>p_value</code> / <code>q_value</code> only test
whether the edit changes the classifier at all (mean change 0): any edit of this size does, random
ones included, so they are not evidence that a direction is special. None of these rules out that
a direction moves the classifier without moving what a person sees, or that it is one of many
equally good directions. <code>ssim_min</code> is the lowest similarity of any step's output to the
unedited output (1 = content untouched). The heatmap shows |cosine| between directions of
different methods; PCA and SeFa directions have no sign, so only the magnitude is compared.</p>
"""

_COLOURS = {"pca": "#1f77b4", "sefa": "#ff7f0e", "svm": "#2ca02c", "svm_cond": "#9467bd", "random": "#9a9a9a"}


def _labels(df: pd.DataFrame) -> list[str]:
    return [f"{m} {i}" + (f" ({lab})" if m in ("svm", "svm_cond") else "")
            for m, i, lab in zip(df["method"], df["index"], df.get("label", df["index"]))]


def effect_bars(df: pd.DataFrame) -> go.Figure:
    """One bar per discovered direction (effect, CI as error bars, coloured by method); the random
    baseline directions as one box of their effects (each one a point)."""
    fig = go.Figure()
    labels = _labels(df)
    for m, sub in df.groupby("method", sort=False):
        if m == "random":
            continue
        idx = sub.index
        fig.add_bar(x=[labels[df.index.get_loc(i)] for i in idx], y=sub["effect"], name=m,
                    marker_color=_COLOURS.get(m, "#444"),
                    error_y=dict(type="data", symmetric=False, array=sub["ci_high"] - sub["effect"],
                                 arrayminus=sub["effect"] - sub["ci_low"]),
                    customdata=[[str(s), float(v), _num(sub, "p_random", k), _num(sub, "q_random", k)]
                                for k, (s, v) in enumerate(zip(sub["style"], sub["ssim_min"]))],
                    hovertemplate="%{x}<br>toward %{customdata[0]}<br>Δ log-odds=%{y:.3f}<br>p_random=%{customdata[2]:.3g}"
                                  " (q %{customdata[3]:.3g})<br>ssim_min=%{customdata[1]:.3f}<extra></extra>")
        if "random_p95" in sub.columns and sub["random_p95"].notna().any():
            fig.add_scatter(x=[labels[df.index.get_loc(i)] for i in idx], y=sub["random_p95"], mode="markers",
                            marker=dict(symbol="line-ew", size=22, color="black", line=dict(width=3)),
                            name=f"{m}: random at the same step (95th pct)", showlegend=False,
                            hovertemplate="95th percentile of random directions at this step length: "
                                          "%{y:.3f}<extra></extra>")
    rnd = df[df["method"] == "random"]
    if len(rnd):
        ref = rnd["step_length"].iloc[0] if "step_length" in rnd.columns else float("nan")
        name = f"random ({len(rnd)})"
        fig.add_box(y=rnd["effect"], x=[name] * len(rnd), name=name,
                    marker_color=_COLOURS.get("random", "#999"), boxpoints="all", jitter=0.4, pointpos=0,
                    hovertemplate=f"random direction at step length {ref:.3g}: Δ log-odds=%{{y:.4f}}<extra></extra>")
    fig.update_layout(title="Effect on the style classifier at the largest step (95% BCa CI; dash: random directions "
                            "at the same step, 95th pct; box: random directions)",
                      yaxis_title="Δ log-odds of the style moved toward", xaxis_tickangle=-45,
                      barmode="group", height=420, margin=dict(b=120))
    fig.add_hline(y=0, line_color="black", line_width=1)
    return fig


def _num(df: pd.DataFrame, col: str, k: int) -> float:
    return float(df[col].iloc[k]) if col in df.columns and pd.notna(df[col].iloc[k]) else float("nan")


def claim(df: pd.DataFrame) -> Claim | None:
    """How many discovered directions move the classifier beyond random directions walked the same
    step (q_random <= 0.05), with the strongest one's effect; None without a random baseline."""
    cand = df[df["method"] != "random"] if "method" in df.columns else df.iloc[:0]
    if not len(cand) or "q_random" not in df.columns or cand["q_random"].isna().all():
        return None
    ok = cand[cand["q_random"] <= 0.05]
    n_r = int(df["n_random"].iloc[0]) if "n_random" in df.columns else int((df["method"] == "random").sum())
    best = (ok if len(ok) else cand).sort_values("effect", ascending=False).iloc[0]
    space = str(df["space"].iloc[0]).replace("_", " ") if "space" in df.columns else "latent"
    name = _labels(best.to_frame().T)[0]
    # each row's own count of random directions (sequential baselines: n_random_used; else n_random)
    used = baseline_counts(cand, n_r)
    hit = at_own_floor(cand["p_random"], used) if "p_random" in cand.columns else np.zeros(len(cand), bool)
    at_floor = cand[hit]
    said = count_words(used)
    walked = (f"{said} random directions walked the same step" if " to " not in said else
              f"random directions walked the same step ({said} per direction, sequential)")
    if len(ok):
        text = (f"{len(ok)} of {len(cand)} discovered {space} directions move the style classifier more than "
                f"{walked}; strongest: {name} toward {best['style']}")
    elif len(at_floor):    # beat every random direction, yet BH cannot pass: too few random directions to tell
        m = int(cand["q_random"].notna().sum())
        n_at = used[hit]
        fl = 1 / (1 + n_at.max())
        text = (f"Not resolved against random directions: {len(at_floor)} of {len(cand)} discovered {space} "
                f"directions move the style classifier more than all {count_words(n_at)} random directions walked "
                f"the same step, but p_random cannot go below 1/{int(n_at.max()) + 1} = {sig(fl)} with "
                f"{int(n_at.max())} of them, and BH over {m} directions needs more; "
                f"{more_baselines_hint(m, n_at, n_r, 'directions')}")
    else:
        text = (f"No evidence that any discovered {space} direction is special: none of {len(cand)} moves the "
                f"style classifier more than {walked}")
    p95 = best.get("random_p95", float("nan"))
    n_best = used[cand.index.get_loc(best.name)] if best.name in cand.index else n_r
    return Claim(text, effect=f"Δ log-odds {sig(best['effect'])}", ci=fmt_ci(best["ci_low"], best["ci_high"]),
                 baseline=(f"random at the same step, 95th pct {sig(p95)}"
                           + (f" (of the first {n_r})" if np.nanmax(used) > n_r else "")
                           + f"; p_random {sig_beside(best['p_random'], 0.05)} "
                           f"(floor {sig(1 / (1 + n_best))}"
                           + (f", {int(n_best)} random directions" if np.nanmax(used) > n_r else "")
                           + f"), q_random {sig_beside(best['q_random'], 0.05)} (BH over "
                           f"{int(cand['q_random'].notna().sum())} discovered directions)"),
                 verdict="beyond random directions" if len(ok) else "not beyond random directions",
                 survives=bool(len(ok)),
                 rule="beyond random directions when q_random (the rank among random unit directions walked the "
                      "same Euclidean step, BH over the discovered directions) is at most 0.05")


def headline(df: pd.DataFrame) -> str:
    """The section's opening line: its claim with the verdict ('' without a random baseline)."""
    c = claim(df)
    return result_line(c) if c else ""


def agreement_heatmap(finding) -> go.Figure:
    """|cos| between every pair of directions (all methods), from the stored direction vectors."""
    df, dirs = finding.tables["directions"], np.asarray(finding.arrays.get("directions", np.zeros((0, 1))))
    if len(dirs) == len(df):   # the first 3 random directions stand for all of them
        keep = ((df["method"] != "random") | (df["index"] < 3)).to_numpy()
        df, dirs = df[keep], dirs[keep]
    labels = _labels(df)
    cos = np.abs(dirs @ dirs.T) if len(dirs) == len(df) and len(dirs) else np.zeros((0, 0))
    fig = go.Figure(go.Heatmap(z=cos, x=labels, y=labels, zmin=0, zmax=1, colorscale="Viridis",
                               colorbar=dict(title="|cos|"),
                               hovertemplate="%{y} vs %{x}: |cos| = %{z:.2f}<extra></extra>"))
    fig.update_layout(title="Agreement between directions (|cosine|)", height=480,
                      yaxis_autorange="reversed", xaxis_tickangle=-45)
    return fig


def layerwise_heatmap(lw: pd.DataFrame) -> go.Figure:
    """SeFa directions applied through one AdaIN affine at a time: effect per (direction, layer)."""
    piv = lw.pivot_table(index="index", columns="layer", values="effect", aggfunc="first")
    fig = go.Figure(go.Heatmap(z=piv.to_numpy(), x=list(piv.columns), y=[f"sefa {i}" for i in piv.index],
                               colorscale="RdBu", zmid=0, colorbar=dict(title="Δp"),
                               hovertemplate="%{y} at %{x}: Δp = %{z:.3f}<extra></extra>"))
    fig.update_layout(title="SeFa directions applied to one AdaIN layer at a time", height=320)
    return fig


def traversal_grid(finding, image: int = 0, per_method: int = 2) -> ImageGrid | None:
    """Rows = directions (the first ``per_method`` of each method, random ones last), columns = steps."""
    arr = finding.arrays.get(f"traversal_img{image}")
    df = finding.tables["directions"]
    if arr is None or arr.ndim != 5 or len(arr) != len(df):
        return None
    keep = [i for i, k in enumerate(df["index"]) if k < per_method]
    steps = list(finding.params.get("steps", range(arr.shape[1])))
    labels = _labels(df)
    eff = [f" Δ{sig(e)}" if e == e else "" for e in df["effect"]]
    caps = [f"{labels[r]}{eff[r]} · {s:+g}σ" if j == 0 else f"{s:+g}σ" for r in keep for j, s in enumerate(steps)]
    rows = [f"{labels[r]} → {df['style'].iloc[r]}" for r in keep]
    scored = any(e for e in eff)      # no classifier (a one-style model): no effect to show beside a row
    what = "with Δ log-odds at the largest step" if scored else "no Δ log-odds: no style classifier scored them"
    return ImageGrid(arr[keep].reshape(-1, *arr.shape[2:]), caps, ncols=arr.shape[1], px=80,
                     title=f"Traversals of image {image} (rows: directions, {what}; columns: steps)",
                     row_labels=rows, col_labels=[f"{s:+g}σ" for s in steps])


@register_section("directions")
def directions_section(finding, ctx: ReportContext) -> Section:
    title = "Latent directions"
    df = finding.tables["directions"]
    c = claim(df) if len(df) else None
    blocks: list = [result_line(c) if c else ""]
    figures = {}
    grid = traversal_grid(finding)
    if grid is not None and len(grid.images):
        blocks.append(grid)
    if len(df) and df["effect"].notna().any():
        figures["directions_effects"] = effect_bars(df)
        blocks.append(figures["directions_effects"])
    more = []
    if len(df) > 1:
        figures["directions_agreement"] = agreement_heatmap(finding)
        more.append(figures["directions_agreement"])
    lw = finding.tables.get("directions_layerwise")
    if lw is not None and len(lw) and lw["effect"].notna().any():
        figures["directions_layerwise"] = layerwise_heatmap(lw)
        more.append(figures["directions_layerwise"])
    if more:
        blocks += [fold_open("Agreement between methods" + (", per-layer effects" if len(more) > 1 else "")),
                   *more, FOLD_CLOSE]
    cols = [c_ for c_ in ("method", "space", "index", "label", "style", "style_agree", "effect", "ci_low",
                          "ci_high", "p_random", "q_random", "beyond_random", "n_random_used", "random_p95",
                          "step_length",
                          "effect_prob", "p_value", "q_value", "ssim_min", "unit_layer", "top_units")
            if c_ in df.columns]
    if "n_random_used" in cols and not (df["n_random_used"] > df.get("n_random", np.inf)).any():
        cols.remove("n_random_used")       # the fixed rule: every row read n_random (the random rows one less)
    blocks += [fold_open(f"Table: all {len(df)} directions"),
               Table(df[cols], caption="Directions: effect = Δ log-odds at the largest step with 95% BCa "
                                       "bootstrap CI; p_random against random directions walked the same "
                                       "step_length, q_random by Benjamini-Hochberg over the discovered "
                                       "directions (the verdict); p_value / q_value test only a change "
                                       "from 0, which any edit shows"), FOLD_CLOSE]
    blocks.append(how_to_read(HOW_TO_READ))
    sec = Section(title, [b for b in blocks if b != ""], anchor="directions", figures=figures)
    sec.claims = [c] if c else []
    if grid is not None and len(grid.images):
        sec.paper_grids = {"directions_traversals": grid}
    sec.references = ["voynov2020unsupervised"] if "method" in df.columns and (df["method"] == "voynov").any() else []
    return sec
