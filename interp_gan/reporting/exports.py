"""Paper exports: tables as LaTeX (booktabs), figures as SVG + PDF, the BibTeX file.

    info = write_paper(report_dir / "paper", findings, figures={"dissection_iou": fig},
                       bibtex=to_bibtex(keys), static_figures=True)
    # paper/<table>.tex, paper/<figure>.svg, paper/<figure>.pdf, paper/references.bib
    tex = table_to_latex(df, caption="Top units", label="tab:units")

Static figures go through kaleido 1.x, which drives a local Chrome/Chromium (Debian's
``chromium`` on PATH is found by itself). Without one, or if the export fails for any other
reason, the figures are skipped and ``info["static_figures"]["skipped"]`` says why; the
report itself never fails because of it.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

__all__ = ["table_to_latex", "export_figures", "write_paper", "find_chromium"]

_P_COLUMNS = ("p_value", "q_value", "p", "q", "pvalue", "qvalue")


def find_chromium() -> str | None:
    """Path of a Chrome/Chromium executable on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _decimals(values: pd.Series) -> int:
    """Decimals that give about three significant digits for the column's typical magnitude."""
    v = np.abs(pd.to_numeric(values, errors="coerce").to_numpy(dtype=float))
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) == 0:
        return 2
    return int(min(4, max(0, 2 - math.floor(math.log10(float(np.median(v)))))))


def _missing(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):     # lists / arrays are not missing
        return False


def _p_format(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "--"
    return f"{x:.1e}" if x < 1e-3 else f"{x:.3f}"


def _latex_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Round numbers per column and fold ci_low/ci_high into one 'CI' column '[lo, hi]'."""
    df = df.copy()
    fmt: dict[str, Any] = {}
    for c in df.columns:
        s = df[c]
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            # lists, dicts, None ... -> text, so the LaTeX escaping applies to them as well
            df[c] = s.map(lambda v: v if isinstance(v, str) else "--" if _missing(v) else str(v))
            continue
        if pd.api.types.is_integer_dtype(s):
            fmt[c] = "{:d}"
        elif str(c).lower() in _P_COLUMNS:
            fmt[c] = _p_format
        else:
            fmt[c] = "{:.%df}" % _decimals(s)
    if {"ci_low", "ci_high"} <= set(df.columns):
        d = max(_decimals(df["ci_low"]), _decimals(df["ci_high"]))
        ci = [("--" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{lo:.{d}f}, {hi:.{d}f}]")
              for lo, hi in zip(df["ci_low"].astype(float), df["ci_high"].astype(float))]
        pos = list(df.columns).index("ci_low")
        df = df.drop(columns=["ci_low", "ci_high"])
        df.insert(pos, "CI", ci)
        fmt.pop("ci_low", None), fmt.pop("ci_high", None)
    return df, fmt


def _align(s: pd.Series) -> str:
    """r for numbers, l for short text, a wrapping p-column for long text (e.g. descriptions)."""
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return "r"
    longest = s.astype(str).str.len().max() if len(s) else 0
    return "p{0.45\\linewidth}" if longest and longest > 40 else "l"


# How a long table is cut down for a paper: its most informative rows first (the CSV keeps all).
# name -> (sort columns, ascending flags, what the comment says); "abs:" sorts by magnitude.
PAPER_ORDER: dict[str, tuple[list[str], list[bool], str]] = {
    "dissection_units": (["q_value", "iou"], [True, False], "smallest q, then largest IoU"),
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


def table_to_latex(df: pd.DataFrame, caption: str = "", label: str = "", max_rows: int | None = 50,
                   name: str = "") -> str:
    """A booktabs LaTeX table (``\\toprule``/``\\midrule``/``\\bottomrule``; needs ``\\usepackage{booktabs}``).

    A table longer than ``max_rows`` keeps its most informative rows when ``name`` is in
    ``PAPER_ORDER`` (e.g. the smallest q-values), else its first rows; a comment says which."""
    n = len(df)
    shown, which = _most_informative(df, name, max_rows) if max_rows else (df, "first")
    frame, fmt = _latex_frame(shown)
    styler = (frame.style.format(fmt, escape="latex", na_rep="--")
              .format_index(escape="latex", axis=1).hide(axis="index"))
    align = "".join(_align(frame[c]) for c in frame.columns)
    tex = styler.to_latex(hrules=True, caption=caption or None, label=label or None,
                          position_float="centering", column_format=align or "l")
    if len(shown) < n:
        tex = f"% {which} {len(shown)} of {n} rows; the full table is in the CSV\n" + tex
    return tex


def export_figures(figures: dict[str, Any], out_dir: Path, formats: Iterable[str] = ("svg", "pdf"),
                   width: int = 900, height: int = 500) -> dict[str, Any]:
    """Write each figure as ``<name>.<fmt>`` with kaleido; returns {"written": [...]} or {"skipped": why}."""
    formats = list(formats)
    if not figures:
        return {"written": []}
    out_dir.mkdir(parents=True, exist_ok=True)
    figs, files = [], []
    for name, fig in figures.items():
        for f in formats:
            figs.append(fig)
            files.append(out_dir / f"{name}.{f}")
    try:
        import plotly.io as pio
        # One call = one Chromium session for all files (about 2 s in total instead of per file).
        pio.write_images(figs, files, width=width, height=height)
    except Exception as e:  # noqa: BLE001 - any failure here must only skip the static exports
        for p in files:
            p.unlink(missing_ok=True)
        hint = "" if find_chromium() else " (no chromium on PATH: apt-get install chromium)"
        return {"skipped": f"static figure export failed: {type(e).__name__}: {e}"[:500] + hint}
    return {"written": [p.name for p in files]}


def write_paper(paper_dir: Path, tables: dict[str, tuple[pd.DataFrame, str]], figures: dict[str, Any],
                bibtex: str, static_figures: bool = True) -> dict[str, Any]:
    """Write ``<table>.tex`` for each (df, caption), figures as SVG/PDF and ``references.bib``."""
    paper_dir = Path(paper_dir)
    paper_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (df, caption) in tables.items():
        (paper_dir / f"{name}.tex").write_text(table_to_latex(df, caption=caption, label=f"tab:{name}", name=name))
        written.append(f"{name}.tex")
    (paper_dir / "references.bib").write_text(bibtex)
    written.append("references.bib")
    if not static_figures:
        static = {"skipped": "static_figures=False"}
    else:
        static = export_figures(figures, paper_dir)
        written += static.get("written", [])
    return {"files": written, "static_figures": static}
