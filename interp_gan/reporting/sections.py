"""Report sections: pure functions ``Finding -> Section``, registered by analysis name.

    @register_section("dissection")
    def dissection_section(finding: Finding, ctx: ReportContext) -> Section:
        return Section("Channel dissection", [
            "<p>What this shows ...</p>",                 # an HTML fragment (str)
            heatmap_figure(finding),                      # a plotly go.Figure
            ImageGrid(images, captions, ncols=8),         # uint8 [N,H,W,3] pictures
            Table(df, caption="Top units"),               # a DataFrame shown as a table
        ])

Adding a section to the report is one function. Figures are built here (plotly) from the
Finding's tables and arrays only; nothing in ``analyses/`` imports plotly.
"""
from __future__ import annotations

import functools
import html
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

__all__ = ["Section", "ImageGrid", "Card", "Cards", "Table", "ReportContext", "register_section", "get_section",
           "list_sections", "skipped_block", "how_to_read", "folded", "fold_open", "FOLD_CLOSE"]


@dataclass
class ImageGrid:
    images: np.ndarray            # [N,H,W,3] uint8 (or float in [-1,1], converted on render)
    captions: list[str] = field(default_factory=list)
    ncols: int = 8
    title: str = ""
    px: int = 0                   # shown size of the longer side in CSS px (0: at least ~96 px, pixels kept)
    row_labels: list[str] = field(default_factory=list)   # for the paper figure (rows of ncols images)
    col_labels: list[str] = field(default_factory=list)


@dataclass
class Card:
    """One unit (or direction) as a card: a strip of pictures, a title, a few lines of numbers."""
    images: np.ndarray            # [k,H,W,3] uint8, shown side by side
    title: str = ""
    lines: list[str] = field(default_factory=list)   # plain text, one per line
    badge: str = ""               # a short verdict ("labelled", "not labelled")


@dataclass
class Cards:
    cards: list[Card] = field(default_factory=list)
    title: str = ""


@dataclass
class Table:
    df: pd.DataFrame
    caption: str = ""
    max_rows: int = 30


@dataclass
class Section:
    title: str
    blocks: list[Any] = field(default_factory=list)   # str (HTML) | go.Figure | ImageGrid | Table
    anchor: str = ""
    figures: dict[str, Any] = field(default_factory=dict)  # name -> go.Figure exported as SVG/PDF
    references: list[str] = field(default_factory=list)    # keys of papers cited beyond SECTION_REFERENCES
    claims: list[Any] = field(default_factory=list)        # reporting.claims.Claim: the "Key findings" box
    teaser: Any = None                                     # a small block shown beside the key findings
    paper_grids: dict[str, Any] = field(default_factory=dict)  # name -> ImageGrid | Cards exported as a figure


@dataclass
class ReportContext:
    """What every section may read besides its Finding: the run's metadata and the other findings."""
    name: str = "report"
    meta: dict[str, Any] = field(default_factory=dict)       # checkpoint metadata, config, ...
    findings: dict[str, Any] = field(default_factory=dict)   # analysis name -> Finding
    style_names: list[str] = field(default_factory=list)


SectionFn = Callable[[Any, ReportContext], Section]
_SECTIONS: dict[str, SectionFn] = {}


def skipped_block(reason: str) -> str:
    """The one way a skipped analysis is shown: its reason."""
    return f'<p class="skip"><b>Skipped.</b> {html.escape(reason)}</p>'


def how_to_read(text: str) -> str:
    """A section's long explanation, folded: the page leads with results, the method is one click away."""
    return folded("How to read this", text, cls="howto")


def folded(summary: str, body: str, cls: str = "") -> str:
    """HTML ``<details>`` around ``body`` (an HTML fragment)."""
    return fold_open(summary, cls) + body + FOLD_CLOSE


def fold_open(summary: str, cls: str = "") -> str:
    """The opening of a ``<details>`` whose content is the blocks that follow, up to ``FOLD_CLOSE``."""
    c = f' class="{cls}"' if cls else ""
    return f"<details{c}><summary>{html.escape(summary)}</summary>"


FOLD_CLOSE = "</details>"


def register_section(analysis: str) -> Callable[[SectionFn], SectionFn]:
    """Register ``fn(finding, ctx) -> Section``; a skipped Finding never reaches ``fn`` (it gets
    a section stating the reason), so section functions only handle findings that ran."""
    def deco(fn: SectionFn) -> SectionFn:
        if analysis in _SECTIONS:
            raise ValueError(f"a report section for {analysis!r} is already registered")

        @functools.wraps(fn)
        def section(finding, ctx: ReportContext) -> Section:
            if finding.skipped:
                return Section(analysis.replace("_", " ").capitalize(), [skipped_block(finding.skipped)],
                               anchor=analysis)
            return fn(finding, ctx)

        _SECTIONS[analysis] = section
        return section
    return deco


def get_section(analysis: str) -> SectionFn | None:
    return _SECTIONS.get(analysis)


def list_sections() -> list[str]:
    return sorted(_SECTIONS)
