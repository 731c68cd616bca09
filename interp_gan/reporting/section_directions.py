"""Report section for the ``directions`` Finding: traversals, effect bars vs random, agreement.

    fig = effect_bars(finding.tables["directions"])          # effect ± 95% CI per direction
    fig = agreement_heatmap(finding)                         # |cos| between all directions
    section = directions_section(finding, ctx)               # registered for "directions"
"""
from __future__ import annotations


import numpy as np
import pandas as pd
import plotly.graph_objects as go

from interp_gan.reporting.sections import ImageGrid, ReportContext, Section, Table, register_section

__all__ = ["effect_bars", "agreement_heatmap", "layerwise_heatmap", "traversal_grid", "directions_section"]

HOW_TO_READ = """
<p><b>How to read.</b> Each row of the traversal grid walks one direction from its negative to its
positive end (columns are steps in units of the sample standard deviation along the direction;
the middle column is the unedited output). The bars give, for each direction, the change in the
independent style classifier's probability of the style its positive end moves toward most, at the
largest step, with a 95% bootstrap confidence interval over images. The effect is cross-fitted: the
images are split into two random halves and each half is measured at the style the other half
picked, so choosing the style does not inflate it (<code>style_agree</code>: both halves picked the
same style; when they did not, the direction has no consistent style). The grey box holds the
random unit directions (one point each): a discovered direction is only interesting when its bar
clearly exceeds them
(<code>p_random</code> in the table is the share of random directions with at least that effect).
<code>ssim_min</code> is the lowest similarity of any step's output to the unedited output (1 = content
untouched). The heatmap shows |cosine| between directions of different methods; PCA and SeFa
directions have no sign, so only the magnitude is compared.</p>
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
                    customdata=[[str(s), float(v)] for s, v in zip(sub["style"], sub["ssim_min"])],
                    hovertemplate="%{x}<br>toward %{customdata[0]}<br>Δp=%{y:.3f}<br>ssim_min=%{customdata[1]:.3f}"
                                  "<extra></extra>")
    rnd = df[df["method"] == "random"]
    if len(rnd):
        fig.add_box(y=rnd["effect"], x=[f"random ({len(rnd)})"] * len(rnd), name=f"random ({len(rnd)})",
                    marker_color=_COLOURS.get("random", "#999"), boxpoints="all", jitter=0.4, pointpos=0,
                    hovertemplate="random direction: Δp=%{y:.4f}<extra></extra>")
    fig.update_layout(title="Effect on the style classifier at the largest step (95% CI; random directions as a box)",
                      yaxis_title="Δ probability of the style moved toward", xaxis_tickangle=-45,
                      barmode="group", height=420, margin=dict(b=120))
    fig.add_hline(y=0, line_color="black", line_width=1)
    return fig


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
    """Rows = directions (the first ``per_method`` of each method), columns = steps."""
    arr = finding.arrays.get(f"traversal_img{image}")
    df = finding.tables["directions"]
    if arr is None or arr.ndim != 5 or len(arr) != len(df):
        return None
    keep = [i for i, k in enumerate(df["index"]) if k < per_method]
    steps = list(finding.params.get("steps", range(arr.shape[1])))
    labels = _labels(df)
    caps = [f"{labels[r]} · {s:+g}σ" for r in keep for s in steps]
    return ImageGrid(arr[keep].reshape(-1, *arr.shape[2:]), caps, ncols=arr.shape[1],
                     title=f"Traversals of image {image} (rows: directions; columns: steps)")


@register_section("directions")
def directions_section(finding, ctx: ReportContext) -> Section:
    title = "Latent directions"
    df = finding.tables["directions"]
    blocks: list = [HOW_TO_READ]
    figures = {}
    grid = traversal_grid(finding)
    if grid is not None and len(grid.images):
        blocks.append(grid)
    if len(df) and df["effect"].notna().any():
        figures["directions_effects"] = effect_bars(df)
        blocks.append(figures["directions_effects"])
    if len(df) > 1:
        figures["directions_agreement"] = agreement_heatmap(finding)
        blocks.append(figures["directions_agreement"])
    lw = finding.tables.get("directions_layerwise")
    if lw is not None and len(lw) and lw["effect"].notna().any():
        figures["directions_layerwise"] = layerwise_heatmap(lw)
        blocks.append(figures["directions_layerwise"])
    cols = [c for c in ("method", "space", "index", "label", "style", "style_agree", "effect", "ci_low",
                        "ci_high", "p_value", "q_value", "p_random", "ssim_min", "unit_layer", "top_units") if c in df.columns]
    blocks.append(Table(df[cols].round(4), caption="Directions: effect at the largest step with 95% bootstrap CI; "
                                                    "q-values by Benjamini-Hochberg over all rows"))
    sec = Section(title, blocks, anchor="directions", figures=figures)
    sec.references = ["voynov2020unsupervised"] if "method" in df.columns and (df["method"] == "voynov").any() else []
    return sec
