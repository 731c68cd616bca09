"""Report section for ``Attribution`` findings: sanity checks first, then heat overlays per
method and target, IG completeness, unit importance, agreement with single-unit ablation,
skipped targets.

    section = attribution_section(finding, ReportContext())     # registered for "attribution"

Reads only the Finding (tables ``attribution_sanity`` / ``_maps`` / ``_completeness`` /
``_units`` / ``_unit_agreement`` / ``_skipped``; arrays ``images__<target>__<source>`` uint8
[N,h,w,3], ``maps__<target>__<source>__<method>`` [N,h,w] |attribution|, ``sanity__...``
[steps,h,w]); never runs a model and imports no analysis code (the agreement with ablation is
computed by the analysis, which zeroes every ranked unit alone).
"""
from __future__ import annotations

import html


import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from interp_gan.reporting.claims import Claim, result_line
from interp_gan.reporting.numbers import ci as fmt_ci, sig, sig_beside
from interp_gan.reporting.sections import (FOLD_CLOSE, ImageGrid, ReportContext, Section, Table, fold_open,
                                           how_to_read, register_section)

__all__ = ["attribution_section", "heat_overlay", "heat_colors", "sanity_figure", "unit_bars", "sanity_matrix",
           "claims"]

# Papers of the attribution methods a run used (IG, SmoothGrad, Grad-CAM are cited for the section).
METHOD_REFERENCES = {"saliency": "simonyan2014saliency", "occlusion": "zeiler2014occlusion",
                     "gradient_shap": "lundberg2017shap", "layer_conductance": "dhamdhere2019conductance"}

HOW_TO_READ = (
    "<p><b>How to read this.</b> Each map says how much each input pixel (or style-code dimension) "
    "contributes to one scalar: an independent style classifier's logit for the image's style, the "
    "discriminator's style logit, or the target-style score of the generator's output. "
    "<b>Sanity check</b> (Adebayo et al. 2018): the explained model's layers are re-initialised from "
    "the output down, one group at a time, and the maps recomputed; a method that explains the "
    "model must change. Per image, rho is the Spearman rank correlation of |attribution| with the "
    "original map; a map changed when rho is below {t}. The verdict uses every image: <i>passed</i> when "
    "the 95% t-interval for the mean rho over the images lies below {t}, <i>failed</i> when it lies at "
    "or above {t}, <i>inconclusive</i> when it straddles {t}; the count says on how many images rho was "
    "below {t}. The interval treats the images as a sample of the data; it does not cover another "
    "randomisation seed. A method that fails shows the input, not the model, and its overlays below "
    "should not be read as explanations. <i>input corr</i> is the Spearman correlation of |attribution| "
    "with |x - baseline| (mean over images), on the original and on the fully randomised model: gradient "
    "x input methods such as Integrated Gradients multiply by (x - baseline), and a high value on both "
    "says that factor, not the weights, draws the map. <i>labels</i> (the data-randomisation test of "
    "Adebayo et al.): the classifier re-initialised and trained on the same real images with shuffled "
    "labels until its training accuracy reaches the real classifier's accuracy on those images (both "
    "shown); when it does not, the row says <i>not valid</i>. Integrated Gradients' completeness gap "
    "|sum(attr) - (F(x) - F(baseline))| is reported relative to |F(x) - F(baseline)|.</p>")

INPUT_FACTOR = 0.5   # input corr at or above this before and after randomisation: the map is |x - baseline|


COMPLETENESS_GAP = 0.1   # IG's sum off F(x) - F(baseline) by more than this share: the table says so


def completeness_table(comp: pd.DataFrame) -> Table:
    """IG completeness per (target, source); a gap above COMPLETENESS_GAP is said in the caption, with the fix."""
    summ = comp.groupby(["target", "source"], as_index=False).agg(
        mean_abs_delta=("abs_delta", "mean"), max_rel_delta=("rel_delta", "max"), n_steps=("n_steps", "first"))
    caption = "Integrated Gradients completeness (|delta|; relative to |F(x)-F(baseline)|)"
    worst = pd.to_numeric(summ["max_rel_delta"], errors="coerce").max()
    if worst == worst and worst > COMPLETENESS_GAP:
        steps = ", ".join(str(int(n)) for n in dict.fromkeys(summ["n_steps"]))
        caption += (f": the IG maps' sum misses F(x) - F(baseline) by up to {worst:.0%} of it at n_steps = {steps}, "
                    f"so they are coarse; raise analyses.attribution.n_steps until the gap is under "
                    f"{COMPLETENESS_GAP:.0%}")
    return Table(summ, caption=caption)


def heat_colors(h: np.ndarray) -> np.ndarray:
    """[...] in [0,1] -> [..., 3] float in [0,1]: a black-red-yellow-white ("hot") ramp."""
    h = np.clip(h, 0, 1)[..., None]
    return np.clip(np.concatenate([3 * h, 3 * h - 1, 3 * h - 2], axis=-1), 0, 1)


def heat_overlay(images: np.ndarray, maps: np.ndarray, alpha: float = 0.75) -> np.ndarray:
    """uint8 [N,h,w,3] images with |attribution| maps [N,h,w] laid over them (each map scaled
    to its own 99th percentile; grey image underneath)."""
    maps = np.nan_to_num(np.abs(maps.astype(np.float32)))
    scale = np.maximum(np.percentile(maps.reshape(len(maps), -1), 99, axis=1), 1e-12)[:, None, None]
    h = np.clip(maps / scale, 0, 1)
    if images.shape[1:3] != h.shape[1:3]:          # nearest-neighbour resize of the map
        ri = np.arange(images.shape[1]) * h.shape[1] // images.shape[1]
        ci = np.arange(images.shape[2]) * h.shape[2] // images.shape[2]
        h = h[:, ri][:, :, ci]
    grey = images.astype(np.float32).mean(-1, keepdims=True) / 255
    a = alpha * h[..., None]
    return ((1 - a) * grey + a * heat_colors(h)).__mul__(255).clip(0, 255).astype(np.uint8)


def _maps_grid(m: np.ndarray) -> np.ndarray:
    """[K,h,w] maps -> uint8 [K,h,w,3] heat images, each scaled to its own 99th percentile
    (as Adebayo et al. 2018 show them): what must change under randomisation is the map's
    structure, which a shared scale would hide behind the drop in magnitude."""
    m = np.nan_to_num(np.abs(m.astype(np.float32)))
    scale = np.maximum(np.percentile(m.reshape(len(m), -1), 99, axis=1), 1e-12)[:, None, None]
    return (heat_colors(m / scale) * 255).astype(np.uint8)


def sanity_figure(sanity: pd.DataFrame, cols: int = 3) -> go.Figure:
    """Spearman (original vs randomised map) by randomisation step: one panel per explained model
    and image source (each model has its own layers), one line per method, a colour per method."""
    panels = list(dict.fromkeys(zip(sanity.target, sanity.source)))
    rows = max(1, -(-len(panels) // cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"{t} ({s})" for t, s in panels],
                        vertical_spacing=0.5 / rows, horizontal_spacing=0.06)
    colours = dict(zip(dict.fromkeys(sanity.method), qualitative.D3))
    for i, (target, source) in enumerate(panels):
        r, c = i // cols + 1, i % cols + 1
        for method, g in sanity[(sanity.target == target) & (sanity.source == source)].groupby("method", sort=False):
            g = g.sort_values("step")
            fig.add_trace(go.Scatter(x=list(g.randomized), y=list(g.spearman), mode="lines+markers", name=method,
                                     legendgroup=method, showlegend=i == 0, line={"color": colours[method]},
                                     hovertemplate=f"{target} ({source}), {method}<br>randomised up to %{{x}}"
                                                   "<br>rho %{y:.2f}<extra></extra>"), row=r, col=c)
        if len(sanity):
            fig.add_hline(y=float(sanity.threshold.iloc[0]), line_dash="dash", line_color="grey", row=r, col=c)
    fig.update_yaxes(range=[-0.2, 1.05])
    fig.update_yaxes(title_text="Spearman rho", col=1)
    fig.update_xaxes(tickangle=-35, tickfont={"size": 9})
    fig.update_layout(title="Cascading randomisation: rank correlation of |attribution| with the original map "
                            "(layers randomised top down, then 'all', then 'labels'; dashed: pass threshold)",
                      title_font_size=13, height=120 + 300 * rows, legend_title_text="method")
    return fig


def unit_bars(units: pd.DataFrame, top: int = 10) -> go.Figure:
    """The top units per style by attribution importance (grouped bars)."""
    fig = go.Figure()
    for (method, style), g in units.groupby(["method", "style"], sort=False):
        g = g.sort_values("rank").head(top)
        fig.add_trace(go.Bar(name=f"{style} ({method})", x=[f"unit {u}" for u in g.unit], y=list(g.importance)))
    layer = ", ".join(dict.fromkeys(units.layer))
    fig.update_layout(barmode="group", title=f"Unit importance at {layer} (top {top} per style)",
                      yaxis_title="importance (attribution<br>summed over space)")   # one line was cut at 450 px
    return fig


def _ci_beside(lo, hi, threshold) -> str:
    """A sanity check's interval, its bounds never rounded onto the threshold its verdict compares
    them with (a bound of 0.4996 under "passed: below 0.5" prints 0.4996, not 0.500)."""
    return fmt_ci(lo, hi, lambda x: sig_beside(x, threshold))


def _verdicts(sanity: pd.DataFrame, as_text: bool = False) -> pd.DataFrame:
    """The rows after full randomisation and after label randomisation, with their numbers
    (``as_text``: the interval's bounds as printed, never rounded onto the threshold)."""
    final = sanity[sanity.randomized.isin(["all", "labels"])].copy()
    if "verdict" not in final:                         # a finding saved before verdicts had intervals
        final["verdict"] = np.where(final.passed.astype(bool), "passed", "failed")
    if "n_passed" in final:
        final["images_below"] = [f"{int(a)} of {int(b)}" for a, b in zip(final.n_passed, final.n_images)]
    if as_text and {"ci_low", "ci_high", "threshold"} <= set(final.columns):   # the bounds the verdict reads
        final["ci_low"], final["ci_high"] = ([sig_beside(x, t) for x, t in zip(final[c], final["threshold"])]
                                             for c in ("ci_low", "ci_high"))
    cols = ["target", "source", "method", "randomized", "spearman", "ci_low", "ci_high", "images_below",
            "n_styles", "input_corr_before", "input_corr", "acc_real", "acc_shuffled", "verdict"]
    return final[[c for c in cols if c in final]]


def _fmt(x, nd: int = 2) -> str:
    return "n/a" if x is None or not np.isfinite(float(x)) else f"{float(x):.{nd}f}"


def _input_factor_text(v: pd.DataFrame) -> list[str]:
    """The input factor of every method (mean |attribution| vs |x - baseline| rank correlation
    before -> after full randomisation), then one sentence per method that failed while its
    maps followed |x - baseline| before and after, with the numbers, and the plain gradient's result."""
    if "input_corr" not in v:
        return []
    full = v[v.randomized == "all"]
    if not len(full):
        return []
    per = full.groupby("method", sort=False)[["input_corr_before", "input_corr"]].mean()
    out = ["<p><b>Input factor</b> (Spearman of |attribution| with |x - baseline|, mean over the explained "
           "models, trained -> fully randomised): " +
           "; ".join(f"{m} {_fmt(r.input_corr_before)} -> {_fmt(r.input_corr)}" for m, r in per.iterrows()) +
           ". A method whose maps follow |x - baseline| on both shows the input, whatever the weights.</p>"]
    for method, g in full.groupby("method", sort=False):
        bad = g[(g.verdict == "failed") & (g.input_corr_before >= INPUT_FACTOR) & (g.input_corr >= INPUT_FACTOR)]
        if not len(bad):
            continue
        lo_b, hi_b = bad.input_corr_before.min(), bad.input_corr_before.max()
        lo_a, hi_a = bad.input_corr.min(), bad.input_corr.max()
        txt = (f"<p><b>Why {method} fails:</b> on {len(bad)} of {len(g)} explained models its |attribution| "
               f"rank-correlates {_fmt(lo_b)}-{_fmt(hi_b)} with |x - baseline| on the trained model and "
               f"{_fmt(lo_a)}-{_fmt(hi_a)} after full randomisation: the map is mostly the (x - baseline) "
               f"factor of its formula, which does not depend on the weights.")
        sal = full[full.method == "saliency"]
        if method != "saliency" and len(sal):
            n_ok = int((sal.verdict == "passed").sum())
            txt += (f" The plain gradient (saliency), which has no input factor, passed on {n_ok} of {len(sal)} "
                    f"(its |attribution| vs |x - baseline|: {_fmt(sal.input_corr_before.mean())} before, "
                    f"{_fmt(sal.input_corr.mean())} after).")
        out.append(txt + "</p>")
    return out


_STAGE_ORDER = {"all": 1000, "labels": 1001}


def sanity_matrix(sanity: pd.DataFrame) -> str:
    """One table for every sanity check: rows = explained model (and image source), columns = method x
    randomisation stage; each cell the mean rho with its 95% interval, coloured by its verdict."""
    d = sanity.copy()
    if "verdict" not in d:
        d["verdict"] = np.where(d.passed.astype(bool), "passed", "failed")
    stages = sorted(dict.fromkeys(d.randomized), key=lambda r: (_STAGE_ORDER.get(r, 0),
                                                              float(d[d.randomized == r].step.min())))
    methods = list(dict.fromkeys(d.method))
    rows = list(dict.fromkeys(zip(d.target, d.source)))
    key = {(r.target, r.source, r.method, r.randomized): r for r in d.itertuples()}
    head1 = "".join(f'<th colspan="{len(stages)}" style="text-align:center">{html.escape(m)}</th>' for m in methods)
    head2 = "".join(f"<th>{html.escape(str(st))}</th>" for _ in methods for st in stages)
    body = []
    for tgt, src in rows:
        cells = []
        for m in methods:
            for st in stages:
                r = key.get((tgt, src, m, st))
                if r is None:
                    cells.append('<td class="cell none">–</td>')
                    continue
                verdict = str(getattr(r, "verdict", "") or "none")
                ci = _ci_beside(getattr(r, "ci_low", None), getattr(r, "ci_high", None), getattr(r, "threshold", 0.5))
                mark = {"passed": "✓", "failed": "✗", "inconclusive": "?"}.get(verdict, "")
                cells.append(f'<td class="cell {verdict.replace(" ", "-")}" title="{html.escape(verdict)}">'
                             f"{mark} {sig(r.spearman)}<br><span class=\"ci\">{ci}</span></td>")
        body.append(f"<tr><th>{html.escape(str(tgt))} <span class=\"muted\">({html.escape(str(src))})</span></th>"
                    + "".join(cells) + "</tr>")
    thr = sig(float(d.threshold.iloc[0])) if "threshold" in d else "0.5"
    cap = (f"Sanity checks: mean Spearman rho of |attribution| with the original map [95% t-interval over images] "
           f"after the randomisation stage named in the column; ✓ passed (interval below {thr}), ✗ failed (at or "
           f"above), ? inconclusive (straddles {thr}); 'labels' = retrained on shuffled labels")
    return (f'<div class="table-wrap"><table class="matrix">'
            f'<thead><tr><th rowspan="2">explained model (images)</th>{head1}</tr><tr>{head2}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table><p class="muted">{html.escape(cap)}</p></div>')


def claims(sanity: pd.DataFrame) -> list[Claim]:
    """The method that passed the most sanity checks with none failed (a finding), and the method that
    failed the most (not one): counted over the full-randomisation and shuffled-label rows."""
    if not len(sanity):
        return []
    v = _verdicts(sanity)
    v = v[v.verdict.isin(["passed", "failed", "inconclusive"])]
    if not len(v):
        return []
    thr_f = float(sanity.threshold.iloc[0]) if "threshold" in sanity else 0.5
    thr = sig(thr_f)
    rule = (f"a method survives when none of its checks failed and at least half passed (a check passes when the "
            f"95% interval of the mean rho lies below {thr})")
    stats = {m: g for m, g in v.groupby("method", sort=False)}
    count = {m: {w: int((g.verdict == w).sum()) for w in ("passed", "failed", "inconclusive")} for m, g in stats.items()}

    def worst(g: pd.DataFrame) -> pd.Series:
        return g.sort_values("spearman", ascending=False).iloc[0]

    out: list[Claim] = []
    good = [m for m, c in count.items() if c["failed"] == 0 and c["passed"] >= len(stats[m]) / 2]
    if good:
        m = max(good, key=lambda m: (count[m]["passed"] / len(stats[m]), count[m]["passed"]))
        w, c = worst(stats[m]), count[m]
        extra = f" ({c['inconclusive']} inconclusive)" if c["inconclusive"] else ""
        out.append(Claim(f"{m} maps change when the explained model is randomised: passed {c['passed']} of "
                         f"{len(stats[m])} sanity checks{extra}, none failed",
                         effect=f"highest rho {sig(w.spearman)}", ci=_ci_beside(w.ci_low, w.ci_high, thr_f),
                         baseline=f"threshold {thr} ({w.target}, {w.randomized})", verdict="passes randomisation",
                         survives=True, rule=rule))
    bad = [m for m, c in count.items() if c["failed"] > 0]
    if bad:
        m = max(bad, key=lambda m: (count[m]["failed"], -count[m]["passed"]))
        w, c = worst(stats[m]), count[m]
        out.append(Claim(f"{m} maps are not shown to depend on the weights: failed {c['failed']} of "
                         f"{len(stats[m])} sanity checks ({c['passed']} passed, {c['inconclusive']} inconclusive)",
                         effect=f"highest rho {sig(w.spearman)}", ci=_ci_beside(w.ci_low, w.ci_high, thr_f),
                         baseline=f"threshold {thr} ({w.target}, {w.randomized})", verdict="fails randomisation",
                         survives=False, rule=rule, priority=0 if not good else 1))
    return out


def _sanity_strips(sanity: pd.DataFrame, arrays: dict) -> ImageGrid | None:
    """Every stored sanity strip in one grid: a row per model x source x method, a column per stage."""
    keys = [k for k in arrays if k.startswith("sanity__")]
    if not keys:
        return None
    first = keys[0].split("__")[1]          # one explained model as the picture; the matrix has them all
    keys = [k for k in keys if k.split("__")[1] == first]
    width = max(len(arrays[k]) for k in keys)
    tiles, caps = [], []
    for key in keys:
        _, target, source, method = key.split("__")
        rows = sanity[(sanity.target == target) & (sanity.source == source) & (sanity.method == method)]
        rows = rows.sort_values("step")
        labels = [f"{target} ({source}) {method}"] + [
            f"{r.randomized}: rho {sig(r.spearman)} {getattr(r, 'verdict', 'passed' if r.passed else 'failed')}"
            for r in rows.itertuples()]
        m = _maps_grid(arrays[key])
        for j in range(width):
            tiles.append(m[j] if j < len(m) else np.full_like(m[0], 255))
            caps.append(labels[j] if j < len(m) and j < len(labels) else "")
    return ImageGrid(np.stack(tiles), caps, ncols=width,
                     title=f"Maps as the explained model ({first}) is randomised (row: images, method; first "
                           "column the original map; the other models' maps are in the finding's sanity__ arrays)")


@register_section("attribution")
def attribution_section(finding, ctx: ReportContext) -> Section:
    title = "Attributions (Captum) with sanity checks"
    t = finding.tables
    p, arrays = finding.params, finding.arrays
    figures = {}
    sanity = t.get("attribution_sanity", pd.DataFrame())
    found = claims(sanity)
    blocks: list = [result_line(found[0]) if found else ""] + [result_line(c) for c in found[1:]]
    if len(sanity):
        v = _verdicts(sanity)
        counts = v.verdict.value_counts()
        parts = [f"{int(counts.get(w, 0))} {w}" for w in ("passed", "failed", "inconclusive", "not valid")
                 if counts.get(w, 0) or w in ("passed", "failed")]
        n_img = f" on {int(sanity.n_images.max())} images" if "n_images" in sanity else ""
        blocks.append(sanity_matrix(sanity))
        blocks.append(f"<p><b>Sanity checks{n_img}: {', '.join(parts)}.</b></p>")
        blocks += _input_factor_text(v)
        if "labels" not in set(sanity.randomized) and p.get("label_steps", 1) == 0:
            blocks.append("<p>The data-randomisation (shuffled labels) check was switched off (label_steps = 0); "
                          "only model-parameter randomisation was run.</p>")
        figures["attribution_sanity"] = fig = sanity_figure(sanity)
        strips = _sanity_strips(sanity, arrays)
        blocks += [fold_open("Sanity checks in detail: rho per randomisation step, the maps, the verdict table"),
                   fig] + ([strips] if strips is not None else []) + [
                   Table(_verdicts(sanity, as_text=True).reset_index(drop=True),
                         caption="Sanity-check verdicts after full randomisation ('all') and shuffled labels "
                                 "('labels'): mean rho with its 95% t-interval over images, images with rho "
                                 "below the threshold, input corr before / after, label-model accuracies"),
                   FOLD_CLOSE]
    elif not p.get("sanity", True):
        blocks.append("<p><b>Sanity checks were switched off</b> (sanity=False): the maps below are unchecked.</p>")

    maps = t.get("attribution_maps", pd.DataFrame())
    shown = 0
    for (target, source), g in (maps.groupby(["target", "source"], sort=False) if len(maps) else []):
        img_key = f"images__{target}__{source}"
        methods = list(dict.fromkeys(g.method))
        if source == "code":
            vecs = [arrays[f"maps__{target}__{source}__{m}"] for m in methods if f"maps__{target}__{source}__{m}" in arrays]
            fig = go.Figure([go.Bar(name=m, y=np.abs(v).mean(0).tolist()) for m, v in zip(methods, vecs)])
            fig.update_layout(title=f"{target}: mean |attribution| per style-code dimension",
                              xaxis_title="code dimension", yaxis_title="|attribution|", barmode="group")
            blocks.append(fig)
            continue
        if img_key not in arrays:
            continue
        imgs = arrays[img_key]
        tiles, caps = [], []
        first = g[g.method == methods[0]].sort_values("image")
        for i, r in enumerate(first.itertuples()):
            tiles.append(imgs[i])
            caps.append(f"image {i} ({r.style})" if r.style else f"image {i}")
            for m in methods:
                mk = f"maps__{target}__{source}__{m}"
                if mk in arrays:
                    tiles.append(heat_overlay(imgs[i:i + 1], arrays[mk][i:i + 1])[0])
                    caps.append(m)
        if shown == 1:
            blocks.append(fold_open("Overlays for the other explained models"))
        shown += 1
        blocks.append(ImageGrid(np.stack(tiles), caps, ncols=1 + len(methods),
                                title=f"{target} on {source} images: input, then one overlay per method"))
    if shown > 1:
        blocks.append(FOLD_CLOSE)

    comp = t.get("attribution_completeness", pd.DataFrame())
    if len(comp):
        blocks.append(completeness_table(comp))

    units = t.get("attribution_units", pd.DataFrame())
    agree_shown = False
    if len(units):
        figures["attribution_units"] = fig = unit_bars(units)
        blocks.append(fig)
        agree = t.get("attribution_unit_agreement")
        agree_shown = agree is not None and len(agree) > 0
        if agree_shown:
            blocks.append("<p><b>Does importance predict the causal effect?</b> Every ranked unit was zeroed "
                          "alone and the drop in the scorer's log-odds of the image's target style measured "
                          "(large = the unit supports the style). Spearman rho between importance and that "
                          "drop, per style, over the active units; 95% CI: Fisher z with the Bonett-Wright "
                          "variance, treating the units as a sample; p: against rho = 0 (t approximation). "
                          "A high rho says the ranking orders units as single-unit ablation does; it does not "
                          "say that units act alone (joint ablations can differ).</p>")
            cols = [c for c in ("method", "style", "layer", "n_units", "spearman", "ci_low", "ci_high", "p_value",
                                "n_inactive", "n_images", "scorer") if c in agree]
            blocks.append(Table(agree[cols].reset_index(drop=True),
                                caption="Agreement of attribution unit importance with the single-unit "
                                        "zero-ablation effect (log-odds drop)"))
        elif agree is not None:
            blocks.append("<p>No agreement with ablation: too few active units or a constant importance.</p>")

    skipped = t.get("attribution_skipped", pd.DataFrame())
    if len(skipped):
        blocks.append(Table(skipped.reset_index(drop=True), caption="Targets not computed, and why"))
    blocks.append(how_to_read(HOW_TO_READ.format(t=p.get("sanity_threshold", 0.5))))
    sec = Section(title, [b for b in blocks if b != ""], anchor="attribution", figures=figures)
    sec.claims = found
    used = list(finding.params.get("methods", ())) + list(finding.params.get("unit_methods", ()))
    sec.references = [METHOD_REFERENCES[m] for m in used if m in METHOD_REFERENCES]
    if agree_shown:                                  # the unit agreement's Fisher-z interval
        sec.references.append("bonett2000correlation")
    return sec
