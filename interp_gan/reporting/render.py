"""Section blocks -> HTML fragments (figures, image grids as inline PNG/JPEG, tables).

    html = render_block(fig)                      # plotly go.Figure -> <div> (needs plotly.js on the page)
    html = render_block(ImageGrid(imgs, ncols=6)) # uint8 [N,H,W,3] -> <figure> of inline images
    html = render_block(Table(df, caption="Top units"))
    html = render_block("<p>already HTML</p>")    # str passes through unchanged

Figures never embed plotly.js (``include_plotlyjs=False``): the page loads it once from
``assets/plotly.min.js``. Images are inlined as base64 PNG (or JPEG where that is much
smaller), so the report is one folder that opens offline.
"""
from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from interp_gan.provenance_mark import current_model, mark_jpeg_bytes, save_kw_for
from interp_gan.reporting.numbers import ALPHA, sig, sig_beside
from interp_gan.reporting.sections import Cards, ImageGrid, Table
from interp_gan.util import to_uint8

__all__ = ["render_block", "figure_html", "image_grid_html", "table_html", "to_uint8_images",
           "format_value", "image_data_uri", "cards_html", "strip"]

_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True,
                  "toImageButtonOptions": {"format": "svg"}}


def _is_figure(obj: Any) -> bool:
    return hasattr(obj, "to_html") and hasattr(obj, "to_plotly_json")


def render_block(block: Any) -> str:
    if isinstance(block, str):
        return block
    if isinstance(block, ImageGrid):
        return image_grid_html(block)
    if isinstance(block, Table):
        return table_html(block)
    if isinstance(block, Cards):
        return cards_html(block)
    if _is_figure(block):
        return figure_html(block)
    raise TypeError(f"cannot render a {type(block).__name__} block; expected an HTML str, a plotly "
                    "go.Figure, an ImageGrid or a Table (interp_gan.reporting.sections)")


def figure_html(fig) -> str:
    div = fig.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False,
                      config=_PLOTLY_CONFIG, default_width="100%")
    return f'<div class="figure">{div}</div>'


# --- images -----------------------------------------------------------------------------------
def to_uint8_images(images: Any) -> np.ndarray:
    """An ImageGrid's images ([N,H,W,3] channels last, uint8 or float in [-1,1]) -> uint8 [N,H,W,3]."""
    try:
        return to_uint8(images, channels_last=True)
    except ValueError:
        raise ValueError(f"ImageGrid.images must be [N,H,W,3] (channels last), got shape {np.shape(images)}; "
                         "for a torch [N,3,H,W] batch pass x.permute(0, 2, 3, 1)") from None


try:
    from PIL import features as _features
    _HAS_WEBP = bool(_features.check("webp"))
except Exception:  # noqa: BLE001
    _HAS_WEBP = False


def image_data_uri(img: np.ndarray, jpeg_quality: int = 92, lossy: str = "webp", webp_quality: int = 85) -> str:
    """uint8 [H,W,3] -> a data URI: lossless PNG, or a lossy encoding when that is less than 2/3 of
    the smallest lossless encoding (PNG or lossless WebP), so flat synthetic images stay exact. Generated images and attribution maps are noisy, where PNG compresses badly.
    ``lossy="webp"`` (the page; every current browser shows it): WebP at ``webp_quality``, about 35%
    smaller than JPEG q92 on the demo's 64 px images; ``lossy="jpeg"`` (the paper figures, which
    go through kaleido's PDF writer): JPEG at ``jpeg_quality``."""
    if lossy == "webp" and not _HAS_WEBP:         # a Pillow built without libwebp: JPEG as before
        lossy = "jpeg"
    im = Image.fromarray(img)
    sha, of = current_model()          # every image carries the provenance mark (interp_gan.provenance_mark)
    png = io.BytesIO()
    im.save(png, format="PNG", optimize=True, **save_kw_for("PNG", sha, sha256_of=of))
    exact = ("png", png)
    lossy_buf = io.BytesIO()
    if lossy == "webp":
        lossless = io.BytesIO()
        webp_kw = save_kw_for("WEBP", sha, sha256_of=of)
        im.save(lossless, format="WEBP", lossless=True, method=6, **webp_kw)
        if lossless.tell() < png.tell():
            exact = ("webp", lossless)
        im.save(lossy_buf, format="WEBP", quality=webp_quality, method=6, **webp_kw)
    else:
        im.save(lossy_buf, format="JPEG", quality=jpeg_quality)
        lossy_buf = io.BytesIO(mark_jpeg_bytes(lossy_buf.getvalue(), sha, sha256_of=of))
        lossy_buf.seek(0, io.SEEK_END)
    fmt, buf = (lossy, lossy_buf) if lossy_buf.tell() < exact[1].tell() * 2 / 3 else exact
    return f"data:image/{fmt};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_grid_html(grid: ImageGrid) -> str:
    imgs = to_uint8_images(grid.images)
    if len(imgs) == 0:
        return '<p class="muted">(no images)</p>'
    h, w = imgs.shape[1:3]
    # Small images are upscaled without smoothing so each pixel stays visible (at least ~96 px).
    scale = max(1, math.ceil(96 / max(h, w))) if max(h, w) < 96 else 1
    if grid.px:
        scale = grid.px / max(h, w)
    cells = []
    for i, img in enumerate(imgs):
        cap = grid.captions[i] if i < len(grid.captions) else ""
        cap_html = f"<figcaption>{html.escape(str(cap))}</figcaption>" if cap else ""
        cells.append(f'<figure class="cell"><img src="{image_data_uri(img)}" width="{round(w * scale)}" '
                     f'height="{round(h * scale)}" alt="{html.escape(str(cap) or f"image {i}")}" '
                     f'class="{"pixelated" if scale > 1 else ""}">{cap_html}</figure>')
    title = f'<div class="grid-title">{html.escape(grid.title)}</div>' if grid.title else ""
    ncols = max(1, int(grid.ncols))
    return (f'<div class="imagegrid">{title}<div class="grid" '
            f'style="grid-template-columns: repeat({ncols}, max-content)">{"".join(cells)}</div></div>')


def strip(images: np.ndarray, gap: int = 2, fill: int = 255) -> np.ndarray:
    """uint8 [k,H,W,3] -> one [H, k*W + (k-1)*gap, 3] picture (one inline image instead of k)."""
    imgs = to_uint8_images(images)
    k, h, w = imgs.shape[:3]
    out = np.full((h, k * w + (k - 1) * gap, 3), fill, np.uint8)
    for i, im in enumerate(imgs):
        out[:, i * (w + gap):i * (w + gap) + w] = im
    return out


def cards_html(block: Cards) -> str:
    """Unit cards: each an image strip (one inline picture) over its title, badge and numbers."""
    out = []
    for c in block.cards:
        pic = ""
        if c.images is not None and len(c.images):
            s = strip(c.images)
            scale = 80 / s.shape[0]                     # every card's strip 80 px high, pixels kept
            pic = (f'<img src="{image_data_uri(s)}" width="{round(s.shape[1] * scale)}" height="80" '
                   f'alt="{html.escape(c.title)}" class="{"pixelated" if scale > 1 else ""}">')
        badge = f' <span class="cbadge">{html.escape(c.badge)}</span>' if c.badge else ""
        lines = "".join(f"<div>{html.escape(x)}</div>" for x in c.lines)
        out.append(f'<div class="card">{pic}<div class="ctitle">{html.escape(c.title)}{badge}</div>'
                   f'<div class="clines">{lines}</div></div>')
    title = f'<div class="grid-title">{html.escape(block.title)}</div>' if block.title else ""
    return f'<div class="cards-wrap">{title}<div class="cards">{"".join(out)}</div></div>'


# --- tables -----------------------------------------------------------------------------------
# Integer columns that are identifiers or counters, not quantities: no thousands separator.
_ID_COLUMNS = {"step", "unit", "units", "index", "seed", "epoch", "id", "layer", "rank", "k", "style_id"}


def _is_pq(column: Any) -> bool:
    """A p- or q-value column (p_value, q_random, p_image, ...): printed never rounded onto 0.05."""
    c = str(column).lower()
    return c.startswith(("p_", "q_")) or c in ("p", "q")


def format_value(x: Any, grouping: bool = True, threshold: float | None = None) -> str:
    """Readable numbers: ints with thousands separators, floats as ``numbers.sig`` (3 significant
    digits, scientific below 1e-3): the one number format of the report. ``threshold``: a float is
    kept on its side of it (``numbers.sig_beside``)."""
    if x is None or x is pd.NA or x is pd.NaT or (isinstance(x, (float, np.floating)) and math.isnan(x)):
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}" if grouping else str(int(x))
    if isinstance(x, (float, np.floating)):
        return sig(float(x)) if threshold is None else sig_beside(float(x), threshold)
    if isinstance(x, (list, tuple, np.ndarray)):
        return "[" + ", ".join(format_value(v) for v in x) + "]"
    return str(x)


def table_html(table: Table) -> str:
    df = table.df
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"Table.df must be a pandas DataFrame, got {type(df).__name__}")
    n = len(df)
    shown = df.head(table.max_rows) if table.max_rows else df
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    numeric = [pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(shown[c])
               for c in shown.columns]
    grouping = [str(c).lower() not in _ID_COLUMNS and not str(c).lower().endswith("_id") for c in shown.columns]
    thresholds = [ALPHA if _is_pq(c) else None for c in shown.columns]
    rows = []
    for rec in shown.itertuples(index=False, name=None):
        tds = "".join(f'<td class="num">{html.escape(format_value(v, g, t))}</td>' if num
                      else f"<td>{html.escape(format_value(v, g, t))}</td>"
                      for v, num, g, t in zip(rec, numeric, grouping, thresholds))
        rows.append(f"<tr>{tds}</tr>")
    more = (f'<div class="muted">showing {len(shown):,} of {n:,} rows</div>' if len(shown) < n else "")
    cap = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    if n == 0:
        return f'<div class="table-wrap"><table>{cap}<thead><tr>{head}</tr></thead></table>' \
               f'<div class="muted">(no rows)</div></div>'
    return (f'<div class="table-wrap"><table>{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>{more}</div>')
