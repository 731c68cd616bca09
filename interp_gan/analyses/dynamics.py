"""Training dynamics: the same analyses at each kept training step, as curves (docs/dynamics.md).

    means, scores = collect_step(subject, data, layers=["blocks.3.conv2"], seed=0)   # one pass per step
    f = build_dynamics([StepRecord(step, findings, means, scores), ...], metrics_rows=rows)
    f.tables["dynamics"]            # step, measure, tracking, layer, unit, matched_unit, match_corr, concept,
                                    # style, method, value, ci_low, ci_high, n, excludes_chance
    f.tables["dynamics_emergence"]  # per tracked style unit and tracking: first_step, stable_step
    f.tables["dynamics_matches"]    # per step, layer and final-step unit: its best-correlated unit then

This module computes; it never plots (``reporting/section_dynamics.py`` draws the Finding) and it
never loads a checkpoint (``interp_gan/over_steps.py`` runs the pipeline on each snapshot and
hands the results here). Each step's findings come from the same pipeline, data and seeds, so a
change between steps is a change of the model.

What is measured at each step (``measure`` column):

- ``labelled_units``: dissection units labelled with each concept (all dissected layers together;
  the concept set is the union over steps, 0 where a step labels none). CI: Wilson's score
  interval of the labelled fraction (Newcombe 1998) times the number of units dissected.
- ``style_selectivity``: the AUROC of the final step's top style units (``top_k`` per style,
  ranked by AUROC then Cohen's d, as the style-units section ranks them) with its logit-DeLong CI
  from that step's ``style_units`` table; ``tracking`` = ``identity`` (the same layer and index)
  or ``match`` (the unit of the same layer whose activations correlate best with the final
  unit's at that step, ``matched_unit`` / ``match_corr``).
- ``direction_effect``: every row of that step's ``directions`` table (``method``, ``unit`` =
  direction index, ``style``, log-odds effect and CI). Directions are re-fitted at each step:
  index 0 at step t is step t's own first direction.
- ``classifier_accuracy``: the independent classifiers' accuracy on the step's generated images
  (the pipeline's fixed images and z, the final checkpoint's classifiers for every step, so one
  judge throughout); Wilson interval, ``excludes_chance`` = its low end above 1 / styles.
- ``train_eval``: the training run's own evaluation rows (``metrics.jsonl``, at ``eval_every``
  steps, ``method`` = metric); accuracies get a Wilson interval over the eval images.

Unit tracking by activations: on the same fixed images, the spatially pooled activation of every
unit at the final step is correlated (Pearson, over images, within each target style: the style
means removed, so a unit is not matched for the very style preference being followed) with every
unit of the same layer at each step; the best (highest correlation) is the unit's match (a unit may
move: channels of a layer are exchangeable during training, cf. Li et al., "Convergent learning",
ICLR 2016, who match units across networks by the correlation of their activations).

Emergence of a style unit (``dynamics_emergence``), chance = AUROC 0.5, on the side of the final
step (``ci_low > 0.5`` for a unit high for its style, ``ci_high < 0.5`` for one low for it):
``first_step`` = the first kept step at which the CI excludes chance; ``stable_step`` = the
first step from which it excludes chance at every later kept step up to the final one. Both are
NaN when the CI never excludes chance (``stable_step`` also when the final step does not). Each
step's CI is a 95% interval on its own, not corrected for the number of steps: with T steps a
unit that never becomes selective still has ``first_step`` set with probability up to
1 - 0.95^T, ``stable_step`` at most 0.05 (it needs the final step too);
``tests/statistics/test_dynamics_stats.py`` checks both on a planted null.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from interp_gan.analyses.base import AnalysisData
from interp_gan.analyses.common import fixed_z, seeded, unit_means
from interp_gan.findings import Finding
from interp_gan.findings.stats import wilson_interval
from interp_gan.harvest.hooks import TraceDict

__all__ = ["StepRecord", "collect_step", "match_units", "emergence", "build_dynamics", "DYNAMICS_COLUMNS",
           "SECTION"]

DYNAMICS_COLUMNS = ["step", "measure", "tracking", "layer", "unit", "matched_unit", "match_corr", "concept",
                    "style", "method", "value", "ci_low", "ci_high", "n", "excludes_chance"]
EMERGENCE_COLUMNS = ["layer", "unit", "style", "auroc_final", "ci_low_final", "ci_high_final", "side",
                     "tracking", "first_step", "stable_step", "unit_at_first", "min_match_corr"]
MATCH_COLUMNS = ["step", "layer", "unit", "matched_unit", "match_corr", "identity_corr"]
CHANCE_AUROC = 0.5
# how the report shows the Finding (not a registered analysis: it needs every step, not one subject)
SECTION = {"title": "Training dynamics", "order": 95, "references": ["bau2020units", "hanley1982auc"]}


@dataclass
class StepRecord:
    """One kept step: the pipeline's findings on it, unit means and classifier counts on the fixed images."""
    step: int
    findings: dict[str, Finding] = field(default_factory=dict)
    means: dict[str, np.ndarray] = field(default_factory=dict)          # layer -> [N, U]
    scores: dict[str, tuple[int, int]] = field(default_factory=dict)    # classifier -> (correct, images)


@torch.no_grad()
def collect_step(subject, data: AnalysisData, layers: Sequence[str], seed: int = 0,
                 classifiers: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, int]]]:
    """One pass over ``data`` (each batch seeded as ``style_units.harvest_unit_means`` seeds it):
    {layer: [N, U] spatially pooled activations} and {classifier: (correct, N)} where a classifier
    names the image's target style. ``classifiers`` default to the subject's own."""
    if classifiers is None:
        classifiers = {k: c for k, c in (("rgb", subject.classifier), ("texture", subject.texture_classifier))
                       if c is not None}
    subject.eval()
    z = fixed_z(subject, data, seed)
    parts: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    correct = {k: 0 for k in classifiers}
    for b, (sl, content, ids, _) in enumerate(data.batches()):
        zb = None if z is None else z[sl]
        with TraceDict(subject.generator, list(layers)) as td, seeded(seed + b):
            images = subject.generate(content, ids, zb)
        for n in layers:
            if td[n].output is not None:
                parts[n].append(unit_means(td[n].output, n).cpu())
        for k, clf in classifiers.items():
            dev = next(clf.parameters()).device
            pred = clf(images.float().to(dev)).argmax(1).cpu()
            correct[k] += int((pred == ids.cpu()).sum())
    means = {n: torch.cat(v).numpy().astype(np.float64) for n, v in parts.items() if v}
    return means, {k: (c, len(data)) for k, c in correct.items()}


def _centre(x: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """x minus its column means, within each group when ``groups`` [N] is given."""
    if groups is None:
        return x - x.mean(0)
    out = np.empty_like(x)
    for g in np.unique(groups):
        m = groups == g
        out[m] = x[m] - x[m].mean(0)
    return out


def match_units(final: np.ndarray, other: np.ndarray, groups: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each unit (column) of ``final`` [N, U]: the column of ``other`` [N, V] whose values correlate
    best with it over the N images (Pearson), that correlation, and the correlation with the column
    of the same index (NaN where it has none). Constant columns correlate with nothing (NaN, no match = -1).
    ``groups`` [N] (each image's target style): correlate within groups (each group's means removed),
    so a match rests on how the units follow the content, not on the style preference being tracked."""
    a = np.asarray(final, dtype=np.float64)
    b = np.asarray(other, dtype=np.float64)
    g = None if groups is None else np.asarray(groups)
    za, zb = _centre(a, g), _centre(b, g)
    na, nb = np.linalg.norm(za, axis=0), np.linalg.norm(zb, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = (za.T @ zb) / np.outer(na, nb)                             # [U, V]
    c[~np.isfinite(c)] = np.nan
    c[na <= 1e-12 * max(1.0, float(np.abs(a).max(initial=0.0)))] = np.nan
    c[:, nb <= 1e-12 * max(1.0, float(np.abs(b).max(initial=0.0)))] = np.nan
    ok = np.isfinite(c).any(1)
    best = np.full(len(c), -1)
    best[ok] = np.nanargmax(np.where(np.isfinite(c[ok]), c[ok], -np.inf), axis=1)
    corr = np.where(ok, c[np.arange(len(c)), np.maximum(best, 0)], np.nan)
    ident = np.full(len(c), np.nan)
    k = min(c.shape)
    ident[:k] = c[np.arange(k), np.arange(k)]
    return best, corr, ident


def emergence(steps: Sequence[int], excludes: Sequence[bool]) -> tuple[float, float]:
    """(first_step, stable_step) of a run of per-step verdicts "the CI excludes chance" (module
    docstring): the first step where it holds, and the first from which it holds through the last
    step; NaN where there is none."""
    steps, ex = list(steps), [bool(x) for x in excludes]
    first = next((s for s, e in zip(steps, ex) if e), np.nan)
    stable = np.nan
    for i in range(len(ex) - 1, -1, -1):
        if not ex[i]:
            break
        stable = steps[i]
    return float(first), float(stable)


def _excludes(lo: float, hi: float, side: int, chance: float) -> bool:
    return bool(lo > chance) if side > 0 else bool(hi < chance)


def _top_style_units(df: pd.DataFrame, top_k: int) -> pd.DataFrame:
    by = [c for c in ["style", "auroc", "cohens_d", "q_value"] if c in df.columns]
    d = df.dropna(subset=["auroc"]).sort_values(by, ascending=[c in ("style", "q_value") for c in by])
    return pd.concat([d[d["style"] == s].head(top_k) for s in dict.fromkeys(df["style"])], ignore_index=True)


def _rows_labelled(rec: StepRecord, concepts: list[str]) -> list[dict]:
    f = rec.findings.get("dissection")
    if f is None or f.skipped or "dissection_units" not in f.tables:
        return []
    u = f.tables["dissection_units"]
    n = len(u)
    lab = u[u["labelled"].astype(bool)] if "labelled" in u.columns else u.iloc[:0]
    counts = lab["concept"].astype(str).value_counts()
    rows = []
    for c in concepts:
        k = int(counts.get(c, 0))
        lo, hi = wilson_interval(k, n)
        rows.append(dict(step=rec.step, measure="labelled_units", concept=c, value=float(k), ci_low=lo * n,
                         ci_high=hi * n, n=n, excludes_chance=np.nan))
    return rows


def _rows_directions(rec: StepRecord) -> list[dict]:
    f = rec.findings.get("directions")
    if f is None or f.skipped or "directions" not in f.tables:
        return []
    d = f.tables["directions"]
    return [dict(step=rec.step, measure="direction_effect", method=str(r["method"]), unit=int(r["index"]),
                 style=str(r["style"]), concept=str(r.get("space", "")), value=float(r["effect"]),
                 ci_low=float(r["ci_low"]), ci_high=float(r["ci_high"]),
                 excludes_chance=bool(r["ci_low"] > 0 or r["ci_high"] < 0)) for _, r in d.iterrows()]


def _rows_classifiers(rec: StepRecord, n_styles: int) -> list[dict]:
    rows = []
    for k, (c, n) in sorted(rec.scores.items()):
        lo, hi = wilson_interval(c, n)
        rows.append(dict(step=rec.step, measure="classifier_accuracy", method=k, value=c / n if n else np.nan,
                         ci_low=lo, ci_high=hi, n=n,
                         excludes_chance=bool(lo > 1 / n_styles) if n_styles else np.nan))
    return rows


def _rows_train_eval(metrics_rows: Sequence[dict], n_styles: int) -> list[dict]:
    rows = []
    for r in metrics_rows or []:
        ev = r.get("eval") if isinstance(r, dict) else None
        if not isinstance(ev, dict):
            continue
        n = int(ev.get("n", 0) or 0)
        for k, v in ev.items():
            if k == "n" or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            lo = hi = np.nan
            ex: Any = np.nan
            if k.startswith("acc_") and n:
                lo, hi = wilson_interval(int(round(v * n)), n)
                ex = bool(lo > 1 / n_styles) if n_styles else np.nan
            rows.append(dict(step=int(r.get("step", 0)), measure="train_eval", method=k, value=float(v),
                             ci_low=lo, ci_high=hi, n=n or np.nan, excludes_chance=ex))
    return rows


def build_dynamics(records: Sequence[StepRecord], *, top_k: int = 2, metrics_rows: Sequence[dict] = (),
                   n_styles: int | None = None, groups: np.ndarray | None = None,
                   provenance: dict | None = None) -> Finding:
    """The ``dynamics`` Finding from the kept steps (any order; the last step is the reference for
    unit tracking and for which style units are followed). ``groups``: each image's target style, for
    matching units within styles (``match_units``). See the module docstring."""
    params = {"top_k": top_k, "steps": sorted(int(r.step) for r in records)}
    recs = sorted(records, key=lambda r: r.step)
    if len(recs) < 2:
        return Finding.skip("dynamics", f"{len(recs)} kept step(s); training dynamics need at least 2 "
                                        f"(train with train.keep_every > 0)", params)
    final = recs[-1]
    steps = [r.step for r in recs]
    notes: list[str] = [f"{len(recs)} kept steps: {', '.join(map(str, steps))}; the last ({final.step}) is the "
                        f"reference for unit tracking"]
    if groups is not None:
        notes.append("units matched by the correlation of their pooled activations within each target style "
                     "(style means removed)")
    su_final = final.findings.get("style_units")
    if n_styles is None:
        n_styles = int(su_final.tables["style_units"]["style"].nunique()
                       if su_final is not None and not su_final.skipped else 0)
    params["n_styles"] = int(n_styles)
    rows: list[dict] = []

    # labelled units per concept (the union of concepts over steps)
    concepts: list[str] = []
    for r in recs:
        f = r.findings.get("dissection")
        if f is not None and not f.skipped and "dissection_units" in f.tables:
            u = f.tables["dissection_units"]
            if "labelled" in u.columns:
                concepts += [str(c) for c in u.loc[u["labelled"].astype(bool), "concept"]]
    concepts = sorted(set(concepts))
    for r in recs:
        rows += _rows_labelled(r, concepts)

    # unit matches: every unit of the final step, in every layer harvested at both steps
    match_rows, matched = [], {}
    for r in recs:
        for layer, x in final.means.items():
            if layer not in r.means:
                continue
            best, corr, ident = match_units(x, r.means[layer], groups)
            matched[r.step, layer] = (best, corr)
            match_rows += [dict(step=r.step, layer=layer, unit=u, matched_unit=int(best[u]), match_corr=corr[u],
                                identity_corr=ident[u]) for u in range(len(best))]
    matches = pd.DataFrame(match_rows, columns=MATCH_COLUMNS)

    # style selectivity of the final step's top style units, by identity and by match
    emerg: list[dict] = []
    if su_final is None or su_final.skipped or "style_units" not in su_final.tables:
        notes.append("no style_units finding at the final step: style units are not tracked")
    else:
        top = _top_style_units(su_final.tables["style_units"], top_k)
        tables = {r.step: (r.findings["style_units"].tables["style_units"].set_index(["layer", "unit", "style"])
                           if "style_units" in r.findings and not r.findings["style_units"].skipped else None)
                  for r in recs}
        for _, t in top.iterrows():
            layer, unit, style = str(t["layer"]), int(t["unit"]), str(t["style"])
            side = 1 if t["auroc"] >= CHANCE_AUROC else -1
            for tracking in ("identity", "match"):
                verdicts, corrs, at_first = [], [], np.nan
                for r in recs:
                    if tracking == "identity":
                        u, corr = unit, np.nan
                    elif (r.step, layer) in matched:
                        best, c = matched[r.step, layer]
                        u, corr = int(best[unit]), float(c[unit])
                    else:
                        u, corr = -1, np.nan
                    tab = tables.get(r.step)
                    key = (layer, u, style)
                    if tab is not None and u >= 0 and key in tab.index:
                        s = tab.loc[key]
                        auc, lo, hi = float(s["auroc"]), float(s["ci_low"]), float(s["ci_high"])
                        ex = _excludes(lo, hi, side, CHANCE_AUROC)
                    else:
                        auc = lo = hi = np.nan
                        ex = False
                    verdicts.append(ex)
                    corrs.append(corr)
                    if ex and not np.isfinite(at_first):
                        at_first = u
                    rows.append(dict(step=r.step, measure="style_selectivity", tracking=tracking, layer=layer,
                                     unit=unit, matched_unit=u, match_corr=corr, style=style, value=auc,
                                     ci_low=lo, ci_high=hi, excludes_chance=ex))
                first, stable = emergence(steps, verdicts)
                finite = [c for c in corrs if np.isfinite(c)]
                emerg.append(dict(layer=layer, unit=unit, style=style, auroc_final=float(t["auroc"]),
                                  ci_low_final=float(t["ci_low"]), ci_high_final=float(t["ci_high"]),
                                  side="high" if side > 0 else "low", tracking=tracking, first_step=first,
                                  stable_step=stable, unit_at_first=at_first,
                                  min_match_corr=min(finite) if finite else np.nan))
        notes.append(f"style units followed: the {top_k} highest-AUROC unit(s) of each style at step {final.step} "
                     f"({len(top)} in all), by identity and by activation match")

    for r in recs:
        rows += _rows_directions(r)
        rows += _rows_classifiers(r, n_styles or 0)
    rows += _rows_train_eval(metrics_rows, n_styles or 0)
    df = pd.DataFrame(rows, columns=DYNAMICS_COLUMNS)
    for c in ("tracking", "layer", "concept", "style", "method"):
        df[c] = df[c].fillna("").astype(str)
    for c in ("unit", "matched_unit", "n"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
    for c in ("match_corr", "value", "ci_low", "ci_high"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    df["excludes_chance"] = df["excludes_chance"].astype(object)
    missing = [f"{r.step}: {', '.join(sorted(k for k, f in r.findings.items() if f.skipped))}"
               for r in recs if any(f.skipped for f in r.findings.values())]
    if missing:
        notes.append("skipped or failed at some steps (their rows are missing): " + "; ".join(missing))
    notes.append("emergence: first_step = the first kept step at which the unit's 95% CI excludes AUROC 0.5 on "
                 "the final step's side; stable_step = the first step from which it does so at every later kept "
                 "step. Per-step intervals, not corrected for the number of steps (docs/dynamics.md)")
    return Finding("dynamics", params,
                   tables={"dynamics": df, "dynamics_emergence": pd.DataFrame(emerg, columns=EMERGENCE_COLUMNS),
                           "dynamics_matches": matches},
                   notes=notes, provenance=dict(provenance or {}), section=dict(SECTION))
