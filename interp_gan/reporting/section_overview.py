"""Report section for the ``overview`` Finding: model card, training curves, samples, evaluation.

    sec = overview_section(finding, ctx)        # registered as the "overview" section
    fig = training_curves_figure(finding.tables["training_metrics"])
"""
from __future__ import annotations

import html
import json
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from interp_gan.reporting.claims import result_line
from interp_gan.reporting.numbers import pct, sig
from interp_gan.reporting.many_styles import shown_note, shown_styles
from interp_gan.reporting.sections import (FOLD_CLOSE, ImageGrid, ReportContext, Section, Table, fold_open,
                                           register_section)

__all__ = ["overview_section", "training_curves_figure", "model_card_table"]

_EVAL_KEYS = ("acc_rgb", "acc_texture", "lum_corr", "ssim", "feature_frechet")
_NOT_CURVES = ("time", "lr", "sec", "epoch", "it_s", "images_seen")


SAMPLES_WHERE = "every style's images are in findings/overview/arrays.npz (generated)"


def _is_eval(metric: str) -> bool:
    base = metric.split("/")[-1].removeprefix("eval_")
    return metric.startswith("eval") or base in _EVAL_KEYS


def _panels(metrics: list[str], peak: pd.Series) -> list[tuple[str, list[str]]]:
    gen = [m for m in metrics if not _is_eval(m) and (m.startswith("g_") or m == "loss_g")]
    disc = [m for m in metrics if not _is_eval(m) and (m.startswith("d_") or m in ("loss_d", "r1"))]
    other = [m for m in metrics if not _is_eval(m) and m not in gen and m not in disc]
    panels = [("Generator losses", gen), ("Discriminator losses", disc), ("Other training metrics", other),
              ("Evaluation (0–1 scores)", [m for m in metrics if _is_eval(m) and _is_score(m, peak[m])]),
              ("Evaluation (distances)", [m for m in metrics if _is_eval(m) and not _is_score(m, peak[m])])]
    return [p for p in panels if p[1]]


_DISTANCE_WORDS = ("frechet", "fid", "kid", "dist")


def _is_score(metric: str, peak: float) -> bool:
    """A 0-1 score (accuracy, correlation, SSIM), not a distance: a distance by its name is never one,
    whatever its size (the feature Fréchet distance of the demo peaks at 1.05, and sat among the
    0-1 scores while the rule was "peak <= 1.5")."""
    base = metric.split("/")[-1].lower()
    return not any(w in base for w in _DISTANCE_WORDS) and peak <= 1 + 1e-9


def training_curves_figure(df: pd.DataFrame) -> go.Figure | None:
    """Losses and evaluation numbers against the training step, one panel per kind (0-1 scores
    apart from distances such as the feature Fréchet distance); None if there is nothing to plot."""
    if df is None or df.empty:
        return None
    last = df["metric"].str.split("/").str[-1].str.lower()
    df = df[~last.str.contains("|".join(_NOT_CURVES)) & (last != "n")]
    metrics = list(dict.fromkeys(df["metric"]))
    panels = _panels(metrics, df.groupby("metric")["value"].apply(lambda v: float(v.abs().max())))
    if not panels:
        return None
    ncols = 2 if len(panels) == 4 else min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[t for t, _ in panels],
                        horizontal_spacing=0.07, vertical_spacing=0.18)
    palette = qualitative.Dark24       # one colour per metric across panels, so the legend is unambiguous
    k = 0
    for i, (_, group) in enumerate(panels):
        row, col = i // ncols + 1, i % ncols + 1
        for m in group:
            d = df[df["metric"] == m].sort_values("step")
            colour, k = palette[k % len(palette)], k + 1
            fig.add_trace(go.Scatter(x=d["step"], y=d["value"], name=m, line=dict(color=colour),
                                     mode="lines+markers" if len(d) < 30 else "lines"), row=row, col=col)
        fig.update_xaxes(title_text="step", row=row, col=col)
    fig.update_layout(height=320 * nrows + 80, margin=dict(l=50, r=20, t=70, b=40), template="plotly_white",
                      legend=dict(orientation="h", y=-0.12 if nrows > 1 else -0.22, font=dict(size=11)))
    return fig


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)


def model_card_table(card: dict[str, Any]) -> pd.DataFrame:
    """Key facts as (field, value) rows: checkpoint, data, recipe, styles."""
    rows: list[tuple[str, str]] = []
    add = lambda k, v: rows.append((k, _fmt(v))) if v not in (None, "", [], {}) else None  # noqa: E731
    add("checkpoint sha256", card.get("checkpoint_sha256"))
    add("checkpoint", card.get("checkpoint"))
    add("training step", card.get("step"))
    add("generator", f"{card.get('generator', '?')} ({card.get('generator_parameters', 0):,} parameters)")
    model = card.get("model_config") or {}
    add("model config", ", ".join(f"{k}={v}" for k, v in model.items()))
    data = card.get("data_config") or {}
    add("data source", data.get("source"))
    add("image size", data.get("image_size"))
    add("data fingerprint", card.get("data_fingerprint"))
    train = card.get("train_config") or {}
    for k in ("steps", "batch_size", "lr_g", "lr_d", "adv_loss", "w_adv", "w_cls", "w_style", "w_style_hp",
              "w_content", "w_r1", "ema", "seed"):
        add(k, train.get(k))
    feat = card.get("feature_net")
    if feat:
        add("style feature network", json.dumps(feat))
    names = card.get("style_names") or []
    add(f"styles ({len(names)})", names)
    return pd.DataFrame(rows, columns=["field", "value"])


def _from_z(f) -> bool:
    """A generator that ignores its content input (a StyleGAN: images from z), per the overview finding."""
    return (f.provenance or {}).get("uses_content") is False


def _sample_grid(f, names: list[str]) -> ImageGrid | None:
    gen = f.arrays.get("generated")                    # [S,n,H,W,3]
    content = f.arrays.get("content")                  # [n,H,W,3]
    if gen is None or content is None:
        return None
    s, n = gen.shape[:2]
    keep = shown_styles(s)
    images = np.concatenate([content[None], gen[keep]], axis=0).reshape(-1, *gen.shape[2:])
    captions = [f"content {j + 1}" for j in range(n)]
    for i in keep:
        captions += [f"→ {_name(names, i)}"] * n
    title = ("Samples synthesised from seeded z, one row per style (top row: the data's content photos, "
             "not an input of this model)" if _from_z(f) else
             "Content (top row) and its stylisation toward each style (one row per style)")
    note = shown_note(len(keep), s, SAMPLES_WHERE)
    return ImageGrid(images, captions, ncols=n, px=96, title=f"{title}. {note}" if note else title)


def _real_grid(f, names: list[str]) -> ImageGrid | None:
    real = f.arrays.get("real_style")                  # [S,m,H,W,3], zero-padded
    if real is None:
        return None
    counts = f.arrays.get("real_style_count", np.full(len(real), real.shape[1]))
    keep = shown_styles(len(real))
    images, captions = [], []
    for s in keep:
        label = _name(names, s)
        for j in range(real.shape[1]):
            images.append(real[s, j])
            captions.append(label if j < counts[s] else "(none)")
    note = shown_note(len(keep), len(real), "every style's images are in findings/overview/arrays.npz (real_style)")
    return ImageGrid(np.stack(images), captions, ncols=real.shape[1], px=72,
                     title="Real style images (one row per style)" + (f". {note}" if note else ""))


def _name(names: list[str], i: int) -> str:
    return names[i] if i < len(names) else str(i)


def lead(f, names: list[str]) -> str:
    """The section's one-line result, from the evaluation table (the numbers carry no interval, so
    this is a description, not a claim in the key findings)."""
    ev = f.tables.get("evaluation")
    if ev is None or ev.empty:
        return ""
    val = dict(zip(ev["metric"], ev["value"]))
    n_styles = len(names) or len((f.arrays.get("generated") if f.arrays.get("generated") is not None else [])) or 0
    chance = f" (chance {pct(1 / n_styles)})" if n_styles else ""
    parts = []
    if "acc_texture" in val:
        parts.append(f"the colour-blind texture classifier recognises the target style in {pct(val['acc_texture'])} "
                     f"of generated images{chance}")
    if "acc_rgb" in val:
        parts.append(f"the RGB classifier in {pct(val['acc_rgb'])}")
    if "lum_corr" in val:
        parts.append(f"the content's luminance layout survives with correlation {sig(val['lum_corr'])}")
    if not parts:
        return ""
    text = "; ".join(parts)
    return html.escape(text[0].upper() + text[1:]) + "."


def teaser_grid(f, names: list[str], n: int = 2, max_styles: int = 4) -> ImageGrid | None:
    """Two content images and their stylisations, small: the picture beside the key findings. With
    more than ``max_styles`` styles an even sample of them (first and last kept), so the picture
    stays narrow beside the text; the overview section shows every style."""
    gen, content = f.arrays.get("generated"), f.arrays.get("content")
    if gen is None or content is None:
        return None
    n = min(n, gen.shape[1])
    S = gen.shape[0]
    styles = shown_styles(S, max_styles)
    images, caps = [], []
    for j in range(n):
        images.append(content[j])
        caps.append("content")
        for s in styles:
            images.append(gen[s, j])
            caps.append(names[s] if s < len(names) else str(s))
    title = "Content → each style" if len(styles) == S else \
        f"Content → {len(styles)} of {S} styles (all of them under Model overview)"
    if _from_z(f):
        title = "Samples from seeded z (the content beside them is not an input)"
    return ImageGrid(np.stack(images), caps, ncols=1 + len(styles), px=72, title=title)


def _paper_samples(f, names: list[str]) -> ImageGrid | None:
    """Samples as a paper figure: rows = content then each style (at most ``MAX_STYLES_SHOWN``, an
    even sample, said in the caption), columns = content images."""
    gen, content = f.arrays.get("generated"), f.arrays.get("content")
    if gen is None or content is None:
        return None
    s, n = gen.shape[:2]
    keep = shown_styles(s)
    images = np.concatenate([content[None], gen[keep]], axis=0).reshape(-1, *gen.shape[2:])
    note = shown_note(len(keep), s, SAMPLES_WHERE)
    return ImageGrid(images, ncols=n, row_labels=["content"] + [_name(names, i) for i in keep],
                     title=("Samples synthesised from seeded z, one row per style (top row: content images, not "
                            "an input of this model)." if _from_z(f) else
                            "Content images (top row) and their stylisation toward each style (one row per style).")
                           + (f" {note[0].upper()}{note[1:]}." if note else ""))


@register_section("overview")
def overview_section(f, ctx: ReportContext) -> Section:
    card = dict(f.provenance.get("model_card") or {})
    names = list(ctx.style_names or card.get("style_names") or [])
    line = lead(f, names)
    blocks: list[Any] = [result_line(None, line) if line else
                         ("<p>Images the model synthesises from seeded z: it has no content input, so the content "
                          "photos shown beside them are the analysis data, not what they were made from.</p>"
                          if _from_z(f) else
                          "<p>Each content photo rendered in every style the model was trained on.</p>")]
    figures: dict[str, Any] = {}
    blocks.append("<h3>Samples</h3>")
    for grid in (_sample_grid(f, names), _real_grid(f, names)):
        if grid is not None:
            blocks.append(grid)

    ev = f.tables.get("evaluation")
    blocks.append("<h3>Evaluation</h3>")
    if ev is None or ev.empty:
        blocks.append('<p class="muted">No evaluation numbers were recorded with this checkpoint.</p>')
    else:
        blocks.append(Table(ev, caption="Last evaluation (see the description of each number)", max_rows=0))
        blocks.append("<p class=\"muted\">The classifiers are independent of the GAN's discriminator and "
                      "were trained on real style images only. The texture classifier is colour-blind, so a "
                      "palette shift alone does not raise its accuracy. The feature Fréchet distance uses the "
                      "style loss's feature network (see the model card), not Inception: it is not comparable "
                      "to published FIDs."
                      "</p>")

    blocks.append("<h3>Training curves</h3>")
    fig = training_curves_figure(f.tables.get("training_metrics"))
    if fig is None:
        blocks.append('<p class="muted">No training metrics were recorded with this checkpoint '
                      "(no <code>metrics.jsonl</code> next to it).</p>")
    else:
        blocks.append(fig)
        figures["training_curves"] = fig

    blocks.append("<h3>Model card</h3>")
    blocks.append(fold_open("Model card: checkpoint, data, training settings, parameters per part"))
    blocks.append(Table(model_card_table(card), max_rows=0))
    parts = f.tables.get("model_parts")
    if parts is not None and len(parts):
        blocks.append(Table(parts, caption="Parameters per named part", max_rows=0))
    blocks.append(FOLD_CLOSE)
    if card.get("architecture"):
        blocks.append(f"<details><summary>Generator architecture (PyTorch repr)</summary>"
                      f"<pre>{html.escape(card['architecture'])}</pre></details>")
    sec = Section("Model overview", blocks, anchor="overview", figures=figures)
    sec.teaser = teaser_grid(f, names)
    grid = _paper_samples(f, names)
    if grid is not None:
        sec.paper_grids = {"overview_samples": grid}
    prov = f.provenance or {}
    sec.references = model_references(prov.get("model_config") or (prov.get("model_card") or {}).get("model_config")
                                      or {})
    return sec


_MODEL_PAPERS = {"cyclegan": ["zhu2017cyclegan"], "resnet_generator": ["zhu2017cyclegan"],
                 "unet_generator": ["isola2017pix2pix"], "stargan_v1": ["choi2018stargan"],
                 "fast_neural_style": ["johnson2016perceptual"], "animegan_v2": ["chen2019animegan"],
                 "ugatit": ["kim2020ugatit"], "munit": ["huang2018munit"], "stargan_v2": ["choi2020starganv2"],
                 "stylegan2": ["karras2020stylegan2"], "stylegan3": ["karras2021stylegan3"],
                 "adain": ["huang2017adain"], "cartoongan": ["chen2018cartoongan"]}


def model_references(model_config: dict) -> list[str]:
    """The papers of the loaded model's family, for the overview's citations."""
    name = model_config.get("name")
    if name == "resnet_generator" and any("blur" in lay for lay in model_config.get("layers") or []):
        return ["zhu2017cyclegan", "park2020cut"]    # CUT / FastCUT: CycleGAN's generator, anti-aliased
    if name == "stargan_v2" and model_config.get("w_hpf"):     # its face masks come from a landmark network
        return ["choi2020starganv2", "bulat2017fan", "wang2019adaptivewing"]
    return list(_MODEL_PAPERS.get(name, []))
