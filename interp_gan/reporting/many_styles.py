"""Figures for models with many styles: which styles a picture shows, and the sentence that says so.

A model with 200 styles (a class-conditional StyleGAN, StarGAN's 40 attributes, a large
multi-style network) would give one row or column per style: 1,200 images in the sample grid,
a heatmap 9,000 px tall. A figure shows at most ``MAX_STYLES_SHOWN`` of them, an even sample with
the first and last kept (``util.evenly``, the rule the budgets use); the tables, CSVs and arrays
keep every style.
"""
from __future__ import annotations

from interp_gan.util import evenly

__all__ = ["MAX_STYLES_SHOWN", "shown_styles", "shown_note"]

MAX_STYLES_SHOWN = 26


def shown_styles(n: int, k: int = MAX_STYLES_SHOWN) -> list[int]:
    """Indices of the styles a figure shows: all ``n`` when ``n <= k``, else ``k`` evenly spaced,
    first and last included."""
    return evenly(range(n), k)


def shown_note(shown: int, n: int, where: str) -> str:
    """'26 of 200 styles shown (an even sample, first and last kept); <where>', or '' when all are."""
    if shown >= n:
        return ""
    return f"{shown} of {n} styles shown (an even sample, first and last kept); {where}"
