"""Paper exports: paste-ready LaTeX tables and figures, with a ``main.tex`` that compiles them.

    info = write_paper(report_dir / "paper", tables, figures, bibtex, captions=captions)
    tex = table_to_latex(df, caption="Top units", label="tab:units")

writes ``paper/``:

    preamble.tex          the packages the tables and figures need (booktabs, graphicx, amsmath)
    main.tex              a document that inputs preamble, figures.tex and every table (compiles as is)
    figures.tex           one figure environment per figure, caption generated from the finding
    <table>.tex           booktabs; 3 significant digits (scientific below 1e-3), CI folded into one
                          column, escaped for pdfLaTeX's default font encoding, wide tables resized
    <figure>.pdf/.svg     vector (text stays text); no title (the caption carries it), white background
    <figure>.png          the same at 300 dpi
    references.bib

Figures are exported at the width they are printed: 3.3 in (one column) or 6.8 in (two columns or
a full text width), with every font at least ``MIN_FONT_PT`` (8 pt) at that width. Image grids
(samples, unit strips, traversals) are figures too: the pictures as one embedded image, the row
and column labels as text. Static figures go through kaleido 1.x, which drives a local
Chrome/Chromium; without one the figures are skipped (``info["static_figures"]["skipped"]`` says
why) and figures.tex says so; the report itself never fails because of it.
"""
from __future__ import annotations

import math
import re
import shutil
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from interp_gan.reporting.numbers import ALPHA, latex_num

__all__ = ["table_to_latex", "export_figures", "write_paper", "find_chromium", "latex_escape", "paper_figure",
           "grid_figure", "PAPER_WIDTHS_IN", "MIN_FONT_PT", "PX_PER_IN"]

_P_COLUMNS = ("p_value", "q_value", "p", "q", "pvalue", "qvalue")
PAPER_WIDTHS_IN = {"narrow": 3.3, "wide": 6.8}
PX_PER_IN = 96            # kaleido lays a figure out in CSS px: 96 per inch, so 1 px = 0.75 pt
MIN_FONT_PT = 8.0
_FONT_PX = 11             # 8.25 pt at the printed size
PNG_DPI = 300


def find_chromium() -> str | None:
    """Path of a Chrome/Chromium executable on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


# --- LaTeX text ---------------------------------------------------------------------------------
_UNICODE = {"≤": "$\\le$", "≥": "$\\ge$", "±": "$\\pm$", "→": "$\\rightarrow$", "←": "$\\leftarrow$",
            "−": "$-$", "×": "$\\times$", "…": "\\ldots{}", "Δ": "$\\Delta$", "ρ": "$\\rho$", "σ": "$\\sigma$",
            "α": "$\\alpha$", "β": "$\\beta$", "μ": "$\\mu$", "χ": "$\\chi$", "∞": "$\\infty$", "≈": "$\\approx$",
            "·": "$\\cdot$", "–": "--", "—": "---", "é": "\\'e", "è": "\\`e", "ä": "\\\"a", "ö": "\\\"o",
            "ü": "\\\"u", "ß": "\\ss{}", "°": "$^\\circ$", "²": "$^2$", "’": "'", "“": "``", "”": "''",
            "✓": "yes", "✗": "no"}
_SPECIAL = {"\\": "\\textbackslash{}", "&": "\\&", "%": "\\%", "$": "\\$", "#": "\\#", "_": "\\_", "{": "\\{",
            "}": "\\}", "~": "\\textasciitilde{}", "^": "\\textasciicircum{}", "|": "\\textbar{}",
            "<": "\\textless{}", ">": "\\textgreater{}"}


def latex_escape(text: Any) -> str:
    """Plain text -> pdfLaTeX-safe text under the default (OT1) encoding: the ten specials, ``|``,
    ``<``, ``>`` (which OT1 prints as other glyphs), ``->`` and common unicode (≤ ± → Δ ...)."""
    s = str(text)
    out = []
    i = 0
    while i < len(s):
        two = s[i:i + 2]
        if two in ("->", "<-", "<=", ">="):
            out.append({"->": "$\\rightarrow$", "<-": "$\\leftarrow$", "<=": "$\\le$", ">=": "$\\ge$"}[two])
            i += 2
            continue
        ch = s[i]
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
        elif ch in _UNICODE:
            out.append(_UNICODE[ch])
        elif ord(ch) < 128:
            out.append(ch)
        else:
            out.append("?")                  # anything else pdfLaTeX cannot set without extra packages
        i += 1
    return "".join(out)


# --- tables -------------------------------------------------------------------------------------
def _missing(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):     # lists / arrays are not missing
        return False


def _cell(v: Any, column: str) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if _missing(v):
            return "--"
        if float(v).is_integer() and column.lower() in ("unit", "k", "n", "index", "step", "rank", "units"):
            return str(int(v))
        c = column.lower()
        return latex_num(v, threshold=ALPHA if c.startswith(("p_", "q_")) else None)   # p / q: never onto 0.05
    if v is None or _missing(v):
        return "--"
    return latex_escape(v)


def _header(c: str) -> str:
    return latex_escape(c)


# Columns a paper table keeps (the CSV keeps them all), and rows for tables that mix kinds of rows.
PAPER_COLUMNS: dict[str, list[str]] = {
    "dissection_units": ["layer", "unit", "concept", "iou", "ci_low", "ci_high", "q_value", "label"],
    "discriminator_dissection_units": ["layer", "unit", "concept", "iou", "ci_low", "ci_high", "q_value", "label"],
    "style_units": ["layer", "unit", "style", "auroc", "ci_low", "ci_high", "q_value", "cohens_d"],
    "ablation": ["layer", "style", "measure", "k", "effect", "ci_low", "ci_high", "random_effect", "p_random",
                 "q_random", "beyond_random", "n"],
    "directions": ["method", "label", "style", "effect", "ci_low", "ci_high", "random_p95", "p_random", "q_random",
                   "beyond_random", "ssim_min"],
    "attribution_sanity": ["target", "source", "method", "randomized", "spearman", "ci_low", "ci_high", "verdict"],
}


def _ablation_view(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The selected sets at the largest k in the classifier / Gram measures, with the random sets' mean."""
    if not {"baseline", "measure", "k", "style", "layer"} <= set(df.columns):
        return df, ""
    d = df[df["measure"] != "concepts"]
    d = d[d["k"] == d.groupby(["layer", "style"])["k"].transform("max")]
    top, rnd = d[d["baseline"] == "top"], d[d["baseline"] == "random"]
    rnd = rnd[["layer", "style", "measure", "k", "effect"]].rename(columns={"effect": "random_effect"})
    out = top.merge(rnd, on=["layer", "style", "measure", "k"], how="left")
    return out, f"selected units at the largest k, {len(out)} of {len(df)} rows (all k, random sets, concepts: CSV)"


PAPER_VIEWS = {"ablation": _ablation_view}


# How a long table is cut down for a paper: its most informative rows first (the CSV keeps all).
# name -> (sort columns, ascending flags, what the comment says); "abs:" sorts by magnitude.
PAPER_ORDER: dict[str, tuple[list[str], list[bool], str]] = {
    "dissection_units": (["q_value", "iou"], [True, False], "smallest q, then largest IoU"),
    "discriminator_dissection_units": (["q_value", "iou"], [True, False], "smallest q, then largest IoU"),
    "dissection_iou": (["q_value", "iou"], [True, False], "smallest q, then largest IoU"),
    "style_units": (["q_value", "abs:cohens_d"], [True, False], "smallest q, then largest |Cohen's d|"),
    "attribution_units": (["rank"], [True], "highest-ranked units"),
    "direction_agreement": (["abs:cosine"], [False], "largest |cosine|"),
}


def _most_informative(df: pd.DataFrame, name: str, max_rows: int) -> tuple[pd.DataFrame, str]:
    """The first ``max_rows`` rows in the ``PAPER_ORDER`` for ``name`` (or as they are)."""
    cols, asc, said = PAPER_ORDER.get(name, ([], [], ""))
    keys = {c: (df[c[4:]].abs() if c.startswith("abs:") else df[c]) for c in cols
            if c.removeprefix("abs:") in df.columns}
    if not keys or len(df) <= max_rows:
        return df.head(max_rows), "first"
    tmp = pd.DataFrame(keys, index=df.index)
    order = tmp.sort_values(list(keys), ascending=[a for c, a in zip(cols, asc) if c in keys],
                            kind="stable", na_position="last").index
    return df.loc[order].head(max_rows), f"{said}:"


def _latex_rows(df: pd.DataFrame) -> tuple[list[str], list[list[str]], list[str]]:
    """-> (headers, rows of cells, alignments), with ci_low / ci_high folded into one '95% CI' column."""
    cols = [str(c) for c in df.columns]
    fold = {"ci_low", "ci_high"} <= set(cols)
    headers, align, getters = [], [], []
    for c in cols:
        if fold and c == "ci_high":
            continue
        if fold and c == "ci_low":
            headers.append("95\\% CI")
            align.append("l")
            getters.append(lambda r: "--" if _missing(r["ci_low"]) or _missing(r["ci_high"])
                           else f"[{_cell(float(r['ci_low']), 'ci')}, {_cell(float(r['ci_high']), 'ci')}]")
            continue
        s = df[c]
        numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        longest = s.astype(str).str.len().max() if len(s) else 0
        headers.append(_header(c))
        align.append("r" if numeric else ("p{0.3\\linewidth}" if longest and longest > 40 else "l"))
        getters.append(lambda r, c=c: _cell(r[c], c))
    rows = [[g(r) for g in getters] for _, r in df.iterrows()]
    return headers, rows, align


def _visible_len(cell: str) -> int:
    """About how many characters a LaTeX cell prints (macros and $ do not count)."""
    s = re.sub(r"\\times10\^\{(-?\d+)\}", r"e\1", cell)
    s = re.sub(r"\\[a-zA-Z]+(\{\})?", "x", s)
    return len(s.replace("$", "").replace("{", "").replace("}", "").replace("\\", ""))


def table_to_latex(df: pd.DataFrame, caption: str = "", label: str = "", max_rows: int | None = 40,
                   name: str = "") -> str:
    """A booktabs LaTeX table (``\\toprule``/``\\midrule``/``\\bottomrule``), paste-ready under pdfLaTeX.

    Numbers have three significant digits (``numbers.latex_num``: scientific below 1e-3, so a tiny
    effect never prints as -0.0000); text is escaped (``latex_escape``); ``ci_low``/``ci_high`` fold
    into one column. A table that would be wider than the text is wrapped in
    ``\\resizebox{\\linewidth}{!}{...}``. ``name`` picks the paper view of a known table
    (``PAPER_COLUMNS``, ``PAPER_VIEWS``) and, for a table longer than ``max_rows``, its most
    informative rows (``PAPER_ORDER``); a comment says which rows were kept."""
    notes = []
    if name in PAPER_VIEWS:
        df, said = PAPER_VIEWS[name](df)
        if said:
            notes.append(said)
    if name in PAPER_COLUMNS:
        keep = [c for c in PAPER_COLUMNS[name] if c in df.columns]
        if len(keep) >= 2:
            if len(keep) < len(df.columns):
                notes.append(f"columns: {len(keep)} of {len(df.columns)} (the CSV has all)")
            df = df[keep]
    n = len(df)
    shown, which = _most_informative(df, name, max_rows) if max_rows else (df, "first")
    headers, rows, align = _latex_rows(shown)
    widths = [max([_visible_len(h)] + [_visible_len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    wide = sum(min(w, 40) * 5.0 + 12 for w in widths) > 0.98 * PAPER_WIDTHS_IN["wide"] * 72   # \small: ~5 pt/char
    body = [" & ".join(headers) + " \\\\", "\\midrule"] + [" & ".join(r) + " \\\\" for r in rows]
    tabular = "\n".join([f"\\begin{{tabular}}{{{''.join(align) or 'l'}}}", "\\toprule", *body, "\\bottomrule",
                         "\\end{tabular}"])
    if wide:
        tabular = "\\resizebox{\\linewidth}{!}{%\n" + tabular + "%\n}"
    out = ["\\begin{table}[tbp]", "\\centering", "\\small"]
    if caption:
        out.append(f"\\caption{{{latex_escape(caption)}}}")
    if label:
        out.append(f"\\label{{{label}}}")
    out += [tabular, "\\end{table}", ""]
    tex = "\n".join(out)
    if len(shown) < n:
        tex = f"% {which} {len(shown)} of {n} rows; the full table is in the CSV\n" + tex
    for note in notes:
        tex = f"% {note}\n" + tex
    return tex


# --- figures ------------------------------------------------------------------------------------
def _clamp_fonts(obj: Any, min_px: float, key: str = "") -> Any:
    """Every ``size`` under a ``*font`` key raised to at least ``min_px`` (in a plotly JSON dict)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if key.endswith("font") and k == "size" and isinstance(v, (int, float)):
                out[k] = max(float(v), min_px)
            elif key.endswith("font") and k == "size" and isinstance(v, (list, tuple)):
                out[k] = [max(float(x), min_px) for x in v]
            else:
                out[k] = _clamp_fonts(v, min_px, k)
        return out
    if isinstance(obj, list):
        return [_clamp_fonts(v, min_px, key) for v in obj]
    return obj


def _is_wide(fig) -> bool:
    lay = fig.layout
    axes = [k for k in lay.to_plotly_json() if k.startswith("xaxis")]
    n_legend = sum(1 for t in fig.data if t.showlegend is not False and getattr(t, "name", None))
    many = any(getattr(t, "type", "") == "heatmap" and t.x is not None and len(t.x) > 12 for t in fig.data)
    # bars side by side: at one column (3.3 in) ten of them are 15 px wide, narrower than their own
    # markers (a 22 px dash for the random baseline) and their labels
    bars = {x for t in fig.data if getattr(t, "type", "") in ("bar", "box") and t.x is not None for x in t.x}
    return (len(axes) > 1 or n_legend > 4 or many or len(bars) > _MAX_NARROW_BARS
            or bool(lay.meta and "wide" in str(lay.meta)))


_MAX_NARROW_BARS = 6


def paper_figure(fig, width: str | None = None):
    """A copy of a report figure for print: no title (the caption carries it), white background,
    every font at least 11 px (8.25 pt at the printed size), laid out at 3.3 or 6.8 in.
    -> (figure, width in px, height in px)."""
    import plotly.graph_objects as go
    width = width or ("wide" if _is_wide(fig) else "narrow")
    w = round(PAPER_WIDTHS_IN[width] * PX_PER_IN)
    h_html = fig.layout.height or 450
    h = int(np.clip(h_html * (0.75 if width == "wide" else 0.62), 220, 8.5 * PX_PER_IN))
    spec = fig.to_plotly_json()
    lay = spec.setdefault("layout", {})
    lay.pop("title", None)
    lay["template"] = "plotly_white"
    lay["paper_bgcolor"] = lay["plot_bgcolor"] = "white"
    lay["font"] = {**lay.get("font", {}), "family": "Helvetica, Arial, sans-serif",
                   "size": max(_FONT_PX, (lay.get("font") or {}).get("size", 0) or 0), "color": "black"}
    m = lay.get("margin") or {}
    lay["margin"] = {"l": min(m.get("l", 60), 90), "r": min(m.get("r", 20), 30), "t": 30 if lay.get("annotations")
                     else 12, "b": min(m.get("b", 50), 110)}
    lay["width"], lay["height"] = w, h
    for tr in spec.get("data", []):        # text drawn in cells (heatmap stars) is auto-sized unless set
        if tr.get("texttemplate") or tr.get("text") is not None:
            tr["textfont"] = {**(tr.get("textfont") or {}), "size": max(_FONT_PX, (tr.get("textfont") or {})
                                                                       .get("size", 0) or 0)}
    out = go.Figure(_clamp_fonts(spec, _FONT_PX))
    for ax in [k for k in out.layout.to_plotly_json() if k.startswith(("xaxis", "yaxis"))]:
        a = out.layout[ax]
        if a.tickfont.size is None:
            a.tickfont.size = _FONT_PX
    _thin_category_ticks(out, w, h)
    _wrap_axis_titles(out, w, h)
    return out, w, h


def _wrap_axis_titles(fig, w: int, h: int) -> None:
    """Break an axis title that is longer than its axis onto two lines (a y title of 36 characters was
    cut at both ends beside a 190 px high plot)."""
    lay = fig.layout
    m = lay.margin
    for name in [k for k in lay.to_plotly_json() if k.startswith(("xaxis", "yaxis"))]:
        a = lay[name]
        text = a.title.text if a.title else None
        if not text or "<br>" in text or " " not in text:
            continue
        span = (w - (m.l or 0) - (m.r or 0)) if name.startswith("x") else (h - (m.t or 0) - (m.b or 0))
        span *= (a.domain[1] - a.domain[0]) if a.domain else 1.0
        font = (a.title.font.size if a.title.font and a.title.font.size else None) or lay.font.size or _FONT_PX
        if 0.55 * font * len(text) <= span:
            continue
        mid = len(text) / 2
        cut = min((i for i, c in enumerate(text) if c == " "), key=lambda i: abs(i - mid))
        a.title.text = text[:cut] + "<br>" + text[cut + 1:]


_TICK_GAP = 1.15          # labels need this many font sizes between their baselines not to overlap


def _thin_category_ticks(fig, w: int, h: int) -> None:
    """Label every k-th category where all of them would overlap at the printed size (60 heatmap
    columns in 6.8 in ran together into one black band); the HTML keeps every label and the hover."""
    lay = fig.layout
    m = lay.margin
    for name in [k for k in lay.to_plotly_json() if k.startswith(("xaxis", "yaxis"))]:
        a = lay[name]
        vals, text = a.tickvals, a.ticktext
        if vals is None:                          # a heatmap's categories, labelled by plotly one by one
            letter = name[0]
            ref = letter + name[5:]               # "xaxis2" -> "x2"
            cats = [t[letter] for t in fig.data if getattr(t, "type", "") == "heatmap"
                    and (getattr(t, f"{letter}axis", None) or letter) == ref and t[letter] is not None
                    and len(t[letter]) and isinstance(t[letter][0], str)]
            if not cats:
                continue
            vals = text = list(cats[0])
        vals, text = list(vals), list(text if text is not None else vals)
        if len(vals) < 2:
            continue
        span = (w - (m.l or 0) - (m.r or 0)) if name.startswith("x") else (h - (m.t or 0) - (m.b or 0))
        span *= (a.domain[1] - a.domain[0]) if a.domain else 1.0
        font = a.tickfont.size or _FONT_PX
        angle = 90 if name.startswith("y") or a.tickangle in (None, "auto") else abs(float(a.tickangle))
        if angle:        # rotated (plotly turns crowded automatic x labels upright): the line spacing
            need = _TICK_GAP * font / max(math.sin(math.radians(angle)), 0.2)
        else:            # horizontal labels side by side: their width
            need = font * 0.6 * max(len(str(t)) for t in text) + font
        k = math.ceil(need * len(vals) / max(span, 1.0))
        if k > 1:
            a.tickvals, a.ticktext = vals[::k], text[::k]


def grid_figure(grid, width: str | None = None):
    """An ``ImageGrid`` (with ``row_labels`` / ``col_labels``) or ``Cards`` as a print figure: the
    pictures as one embedded image (pixels kept), the labels as text. -> (figure, w px, h px)."""
    import plotly.graph_objects as go

    from interp_gan.reporting.render import image_data_uri, strip, to_uint8_images
    if hasattr(grid, "cards"):
        rows_img = [strip(c.images) for c in grid.cards]
        labels = [c.title.replace(" · ", " ") + (f" ({c.badge})" if c.badge else "") for c in grid.cards]
        cols = []
    else:
        imgs = to_uint8_images(grid.images)
        nc = max(1, int(grid.ncols))
        rows_img = [strip(imgs[i:i + nc]) for i in range(0, len(imgs), nc)]
        labels, cols = list(grid.row_labels), list(grid.col_labels)
    wmax = max(r.shape[1] for r in rows_img)
    gap = 3
    canvas = np.full((sum(r.shape[0] for r in rows_img) + gap * (len(rows_img) - 1), wmax, 3), 255, np.uint8)
    y, centres = 0, []
    for r in rows_img:
        canvas[y:y + r.shape[0], :r.shape[1]] = r
        centres.append(y + r.shape[0] / 2)
        y += r.shape[0] + gap
    up = max(1, int(math.ceil(600 / max(canvas.shape[:2]))))       # nearest-neighbour: crisp pixels in the PDF
    big = np.repeat(np.repeat(canvas, up, axis=0), up, axis=1)
    longest = max([len(x) for x in labels] or [0])
    width = width or ("wide" if (longest > 14 or canvas.shape[1] > 5 * canvas.shape[0] / max(len(rows_img), 1)
                                 or len(rows_img) > 6) else "narrow")
    w = round(PAPER_WIDTHS_IN[width] * PX_PER_IN)
    left = int(min(0.45 * w, 8 + 6.2 * longest)) if labels else 4
    top = 22 if cols else 4
    h = int(round((w - left - 4) * canvas.shape[0] / canvas.shape[1])) + top + 4
    fig = go.Figure(go.Image(source=image_data_uri(big, jpeg_quality=95, lossy="jpeg"), dx=1 / up, dy=1 / up, hoverinfo="skip"))
    fig.update_xaxes(visible=bool(cols), side="top", showgrid=False, zeroline=False, ticks="",
                     tickvals=[(j + 0.5) * rows_img[0].shape[1] / max(len(cols), 1) for j in range(len(cols))],
                     ticktext=cols, tickfont={"size": _FONT_PX}, range=[0, canvas.shape[1]])
    fig.update_yaxes(visible=bool(labels), showgrid=False, zeroline=False, ticks="", tickvals=centres,
                     ticktext=labels, tickfont={"size": _FONT_PX}, range=[canvas.shape[0], 0])
    fig.update_layout(width=w, height=h, margin={"l": left, "r": 4, "t": top, "b": 4}, paper_bgcolor="white",
                      plot_bgcolor="white", font={"size": _FONT_PX, "family": "Helvetica, Arial, sans-serif",
                                                  "color": "black"})
    return fig, w, h


def export_figures(figures: dict[str, Any], out_dir: Path, formats: Iterable[str] = ("svg", "pdf", "png"),
                   width: str | None = None) -> dict[str, Any]:
    """Write each figure (a plotly figure, or an image grid) as ``<name>.<fmt>`` at its printed size
    (PNG at 300 dpi); returns {"written": [...], "sizes": {name: [w_in, h_in]}} or {"skipped": why}."""
    formats = list(formats)
    if not figures:
        return {"written": [], "sizes": {}}
    out_dir.mkdir(parents=True, exist_ok=True)
    figs, files, scales, ws, hs, sizes = [], [], [], [], [], {}
    for name, fig in figures.items():
        pf, w, h = (grid_figure(fig, width) if hasattr(fig, "cards") or hasattr(fig, "images")
                    else paper_figure(fig, width))
        sizes[name] = [round(w / PX_PER_IN, 3), round(h / PX_PER_IN, 3)]
        for f in formats:
            figs.append(pf)
            files.append(out_dir / f"{name}.{f}")
            scales.append(PNG_DPI / PX_PER_IN if f == "png" else 1)
            ws.append(w)
            hs.append(h)
    try:
        import plotly.io as pio
        # One call = one Chromium session for all files (about 2 s in total instead of per file).
        pio.write_images(figs, files, scale=scales, width=ws, height=hs)
        _set_png_dpi([p for p in files if p.suffix == ".png"])
    except Exception as e:  # noqa: BLE001 - any failure here must only skip the static exports
        for p in files:
            p.unlink(missing_ok=True)
        hint = "" if find_chromium() else " (no chromium on PATH: apt-get install chromium)"
        return {"skipped": f"static figure export failed: {type(e).__name__}: {e}"[:500] + hint}
    return {"written": [p.name for p in files], "sizes": sizes}


def _set_png_dpi(paths: list[Path]) -> None:
    """Set 300 dpi and add the provenance mark (``interp_gan.provenance_mark``; the model hash
    comes from ``marking``, set by ``write_report``)."""
    from PIL import Image

    from interp_gan.provenance_mark import current_model, save_marked_image
    sha, of = current_model()
    for p in paths:
        with Image.open(p) as im:
            im.load()
            img = im.copy()
        save_marked_image(img, p, sha, format="PNG", sha256_of=of, dpi=(PNG_DPI, PNG_DPI))


# --- the paper folder ---------------------------------------------------------------------------
_GENERATED = {".tex", ".pdf", ".svg", ".png", ".bib", ".aux", ".log", ".out", ".bbl", ".blg"}

PREAMBLE = r"""% Packages the interp_gan tables and figures need (pdfLaTeX, default font encoding).
\usepackage{booktabs}   % \toprule \midrule \bottomrule
\usepackage{graphicx}   % \includegraphics, \resizebox
\usepackage{amsmath}    % \times in scientific numbers
"""

MAIN = r"""% Compiles as is: pdflatex main.tex (then bibtex main; pdflatex main twice for the references).
% The text width is 6.8 in, so every figure prints at the size it was exported at.
\documentclass[10pt]{article}
\usepackage[letterpaper,margin=0.85in]{geometry}
\input{preamble}
\extrafloats{200}
\begin{document}
\section*{@TITLE@}
\input{figures}
\clearpage
@TABLES@
\nocite{*}
\bibliographystyle{plain}
\bibliography{references}
\end{document}
"""


def _figures_tex(sizes: dict[str, list[float]], captions: dict[str, str], skipped: str = "") -> str:
    if skipped:
        return f"% No figures: {skipped}\n"
    out = ["% One figure per exported figure; each prints at its exported width (3.3 in: figure, 6.8 in: figure*).",
           "% The PNG next to each PDF is the same figure at 300 dpi."]
    for name, (w_in, _) in sizes.items():
        env = "figure*" if w_in > 4 else "figure"
        out += [f"\\begin{{{env}}}[tbp]", "\\centering", f"\\includegraphics{{{name}.pdf}}",
                f"\\caption{{{latex_escape(captions.get(name, name.replace('_', ' ')))}}}",
                f"\\label{{fig:{name}}}", f"\\end{{{env}}}", ""]
    return "\n".join(out)


def file_stem(name: str) -> str:
    """A figure or table name as a file stem (and a LaTeX label): every character but letters, digits,
    '_', '-' and '.' becomes '_' ("ablation_log_odds_res/3/0/Conv" -> "ablation_log_odds_res_3_0_Conv")."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(name)) or "_"


def write_paper(paper_dir: Path, tables: dict[str, tuple[pd.DataFrame, str]], figures: dict[str, Any],
                bibtex: str, static_figures: bool = True, captions: dict[str, str] | None = None,
                title: str = "interp_gan exports") -> dict[str, Any]:
    """Write ``<table>.tex`` for each (df, caption), figures (PDF, SVG, PNG), ``figures.tex``,
    ``preamble.tex``, ``main.tex`` and ``references.bib``."""
    paper_dir = Path(paper_dir)
    paper_dir.mkdir(parents=True, exist_ok=True)
    # names come from layer names, and an ONNX node's name holds '/' ("res/3/0/Conv"): one file name each
    tables = {file_stem(k): v for k, v in tables.items()}
    figures = {file_stem(k): v for k, v in figures.items()}
    captions = {file_stem(k): v for k, v in (captions or {}).items()}
    for old in paper_dir.iterdir():        # a re-render replaces the previous exports (no stale figures)
        if old.is_file() and old.suffix in _GENERATED:
            old.unlink()
    written = []
    for name, (df, caption) in tables.items():
        (paper_dir / f"{name}.tex").write_text(table_to_latex(df, caption=caption, label=f"tab:{name}", name=name))
        written.append(f"{name}.tex")
    (paper_dir / "references.bib").write_text(bibtex)
    written.append("references.bib")
    if not static_figures:
        static: dict[str, Any] = {"skipped": "static_figures=False"}
    else:
        static = export_figures(figures, paper_dir)
        written += static.get("written", [])
    (paper_dir / "figures.tex").write_text(_figures_tex(static.get("sizes", {}), captions or {},
                                                        static.get("skipped", "")))
    (paper_dir / "preamble.tex").write_text(PREAMBLE)
    tab_inputs = "\n".join(f"\\input{{{n}}}" + ("\n\\clearpage" if i % 4 == 3 else "")
                           for i, n in enumerate(tables))
    (paper_dir / "main.tex").write_text(MAIN.replace("@TITLE@", latex_escape(title)).replace("@TABLES@", tab_inputs))
    written += ["figures.tex", "preamble.tex", "main.tex"]
    return {"files": written, "static_figures": static}
