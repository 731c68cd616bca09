"""Report section for the ``embedding`` Finding: one scatter per (space, method), coloured by style.

    fig = embedding_scatter(finding.tables["embedding"], space="style_code")
    section = embedding_section(finding, ctx)                # registered for "embedding"
"""
from __future__ import annotations


import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp_gan.reporting.claims import result_line
from interp_gan.reporting.numbers import sig
from interp_gan.reporting.sections import ReportContext, Section, Table, how_to_read, register_section

__all__ = ["embedding_scatter", "embedding_section"]

HOW_TO_READ = """
<p><b>How to read.</b> Each point is one style code (sampled from the mapping network) or one
generated image (summarised by the channel means of a layer), placed in 2-D by UMAP or PCA and
coloured by its target style. Tight, separate colour groups mean the space encodes the styles
distinctly. UMAP keeps neighbourhoods, not distances: the gaps between clusters and their sizes are
not to be read quantitatively; PCA is a linear projection whose axes are the two largest-variance
directions. The table gives leave-one-out kNN accuracy of the style labels in each map (and in the
original space) next to chance, and UMAP/PCA trustworthiness (1 = neighbours preserved). For a
model with a style encoder (StarGAN v2's reference-guided path), the reference-code map places
the encoder's codes of real style images; its <code>vs_mapping</code> row is the share of them
whose nearest mapping-network codes are of the image's own style (1 = the encoder and the mapping
network agree on where each style lives).</p>
"""

_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf"]


def embedding_scatter(emb: pd.DataFrame, space: str) -> go.Figure:
    """Side-by-side scatters (one per method) of one space, one trace per style."""
    sub = emb[emb["space"] == space]
    methods = list(dict.fromkeys(sub["method"]))
    fig = make_subplots(rows=1, cols=max(len(methods), 1), subplot_titles=[m.upper() for m in methods])
    styles = list(dict.fromkeys(sub.sort_values("style_id")["style"])) if "style_id" in sub else \
        list(dict.fromkeys(sub["style"]))
    for c, m in enumerate(methods, start=1):
        for k, s in enumerate(styles):
            pts = sub[(sub["method"] == m) & (sub["style"] == s)]
            fig.add_scatter(x=pts["x"], y=pts["y"], mode="markers", name=str(s), legendgroup=str(s),
                            showlegend=c == 1, marker=dict(size=6, color=_PALETTE[k % len(_PALETTE)], opacity=0.8),
                            customdata=pts["image"], hovertemplate=f"{s}<br>#%{{customdata}}<extra></extra>",
                            row=1, col=c)
    fig.update_layout(title=f"Embedding of the {space.replace('_', ' ')} space", height=420,
                      legend_title="style")
    return fig


def lead(q: pd.DataFrame | None, styles: list[str] | None = None) -> str:
    """One line: leave-one-out kNN accuracy of the style labels in each original space, against chance
    (no interval is computed, so it is a description, not a claim in the key findings). ``styles``: the
    styles plotted; with one there is nothing to separate and the line says so."""
    if styles is not None and len(styles) == 1:
        return (f'<p class="result">One style ({styles[0]}): the maps show how its images spread in each '
                "space; with no second style there is nothing to separate (the kNN accuracy below is 1 "
                "by construction, as is chance).</p>")
    if q is None or not len(q) or "knn_accuracy" not in q:
        return '<p class="result">Embeddings of the style spaces, coloured by style.</p>'
    orig = q[q["method"] == "original"] if "method" in q else q
    orig = orig if len(orig) else q
    parts = [f"{str(r.space).replace('_', ' ')} {sig(r.knn_accuracy)}" for r in orig.itertuples()]
    chance = sig(float(orig["chance"].iloc[0])) if "chance" in orig else "?"
    return (f'<p class="result">Style separability in {len(orig)} space(s): leave-one-out kNN accuracy '
            f"{', '.join(parts)} (chance {chance}).</p>")


@register_section("embedding")
def embedding_section(finding, ctx: ReportContext) -> Section:
    title = "Embeddings of style codes and activations"
    emb = finding.tables["embedding"]
    q = finding.tables.get("embedding_quality")
    blocks: list = [lead(q, list(dict.fromkeys(emb["style"].astype(str))) if len(emb) else None)]
    figures = {}
    for space in dict.fromkeys(emb["space"]):
        figures[f"embedding_{space}"] = embedding_scatter(emb, space)
        blocks.append(figures[f"embedding_{space}"])
    if q is not None and len(q):
        blocks.append(Table(q, caption="Style separability: leave-one-out kNN accuracy vs chance"))
    blocks.append(how_to_read(HOW_TO_READ))
    sec = Section(title, blocks, anchor="embedding", figures=figures)
    sec.references = ["choi2020starganv2"] if "reference_code" in set(emb["space"]) else []   # reference-guided codes
    return sec
