"""One number format for the whole report (HTML tables, claims, captions) and the paper exports.

    sig(0.123456)        -> "0.123"      three significant digits
    sig(-4.43e-05)       -> "-4.43e-05"  scientific below 1e-3 (never "-0.0000")
    sig(1234.5)          -> "1234"       no exponent for ordinary large numbers
    sig_beside(0.04996, 0.05) -> "0.04996"   never rounded onto (or across) the threshold of its verdict
    pct(0.0625)          -> "6.25%"
    ci(0.1, 0.3)         -> "[0.1, 0.3]"
    latex_num(-4.43e-05) -> "$-4.43\\times10^{-5}$"
"""
from __future__ import annotations

import math
from typing import Any

__all__ = ["sig", "sig_beside", "pct", "ci", "latex_num", "is_missing", "DIGITS", "ALPHA"]

ALPHA = 0.05   # the level every p / q column of a report table is compared with (``render.table_html``)

DIGITS = 3


def is_missing(x: Any) -> bool:
    try:
        return x is None or (isinstance(x, float) and math.isnan(x)) or bool(x != x)
    except (TypeError, ValueError):
        return False


def sig(x: Any, digits: int = DIGITS) -> str:
    """``digits`` significant digits; scientific for |x| < 1e-3 or >= 1e5; ints as they are."""
    if is_missing(x):
        return "–"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int) or (hasattr(x, "dtype") and getattr(x.dtype, "kind", "") in "iu"):
        return str(int(x))
    x = float(x)
    if x == 0:
        return "0"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    a = abs(x)
    if a < 1e-3 or a >= 1e5:
        return f"{x:.{digits - 1}e}"
    decimals = max(0, digits - 1 - math.floor(math.log10(a)))
    s = f"{x:.{decimals}f}"
    if float(s) == 0:                                   # rounding took it to zero: say how small
        return f"{x:.{digits - 1}e}"
    return s


def sig_beside(x: Any, threshold: Any, digits: int = DIGITS) -> str:
    """``sig(x)``, with as many more digits as it takes to keep x on its side of ``threshold``: a
    number printed beside a verdict that compares it with the threshold must not round onto it
    (q = 0.04996 under "q < 0.05" prints "0.04996", not "0.0500"; 0.50004 beside 0.5 "0.50004")."""
    s = sig(x, digits)
    if is_missing(x) or is_missing(threshold) or isinstance(x, bool):
        return s
    x, t = float(x), float(threshold)
    side = (x > t) - (x < t)
    for d in range(digits, 17):
        s = sig(x, d)
        try:
            v = float(s)
        except ValueError:                              # "∞"
            return s
        if (v > t) - (v < t) == side:
            return s
    return s


def pct(x: Any, digits: int = DIGITS) -> str:
    """A share in [0, 1] as a percentage with ``digits`` significant digits ("6.25%", "0%")."""
    if is_missing(x):
        return "–"
    return ("0" if float(x) == 0 else sig(100 * float(x), digits)) + "%"


def ci(lo: Any, hi: Any, fmt=sig) -> str:
    if is_missing(lo) or is_missing(hi):
        return ""
    return f"[{fmt(lo)}, {fmt(hi)}]"


def latex_num(x: Any, digits: int = DIGITS, threshold: Any = None) -> str:
    """``sig`` for LaTeX: the exponent as ``\\times10^{k}`` in math mode, a real minus sign
    (``threshold``: kept on its side of it, as ``sig_beside``)."""
    s = sig(x, digits) if threshold is None else sig_beside(x, threshold, digits)
    if s == "–":
        return "--"
    if s in ("∞", "-∞"):
        return "$" + s.replace("∞", "\\infty") + "$"
    if "e" in s and not s.isalpha():
        mant, exp = s.split("e")
        return f"${mant}\\times10^{{{int(exp)}}}$"
    return f"${s}$" if s.startswith("-") else s
