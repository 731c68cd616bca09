"""Replication: is each finding still there on other images, another seed and neighbouring thresholds?

    f = build_analysis("replication", analyses=("dissection", "style_units", "directions")).run(subject, data)
    f.tables["replication"]          # analysis, layer, unit, direction, label, condition, param, survives,
                                     #   value, q_value, fraction, replicates
    f.tables["replication_summary"]  # one row per finding: analysis, layer, unit, direction, label,
                                     #   conditions, survived, fraction, split_half, replicates
    f.tables["sensitivity"]          # analysis, quantity, condition, param, count, total, value

A *finding* is a labelled dissection unit (layer, unit, concept), a style unit at q < alpha
(layer, unit, style, with the sign of AUROC - 0.5) or a direction beyond random (method, index,
style). Each is re-estimated by re-running the analysis that made it (``build_analysis(name,
**params).run(subject, data_subset)``: the same code, changed parameters or images) under these
conditions (docs/statistics.md, "Replication"):

- ``split_half``: the images are split into two halves (seeded, balanced per target style,
  ``split_halves``). The analysis runs on half A and on half B. A finding survives when half A
  selects it again (labelled with the same concept / q < alpha with the same sign) and half B,
  which took no part in that selection, confirms the same (unit, concept) or (unit, style): its
  p-value on B, Benjamini-Hochberg-adjusted over the pairs A selected, is below alpha (and for
  dissection the IoU on B exceeds the IoU threshold). Directions: evaluated on images the
  original did not use (the other images first), found again (|cosine| >= ``min_cosine`` with a
  direction of the same method) and beyond random with the same style;
- ``seed``: the same images under ``seed + 1`` (dissection: data halves for the winner's curse,
  permutations, shifts, bootstrap; style units: label shuffles where its p is Monte Carlo);
  survives when selected again. Style units' exact p (the default within its cost bound) and
  DeLong CI use no seed: when the re-run gives the same AUROC and p for every test (a generator
  without noise of its own), the condition is left out of the fraction (noted), so it cannot
  count as a survival by construction, and ``split_half`` decides;
- ``quantile=0.98`` / ``quantile=0.995`` (dissection): re-run at the neighbouring activation
  quantiles; ``iou_threshold=0.03`` / ``0.05``: the original tables relabelled at the
  neighbouring IoU thresholds (no re-run needed);
- ``latent_sample`` (directions): ``seed + 1`` draws a different sample of latent codes (and
  different random baselines and halves): the direction is found again and beyond random.

``fraction`` = share of the conditions survived; ``replicates`` = it survived ``split_half``
(the only condition on independent images) and ``fraction >= min_fraction``. Re-runs skip the
random-init control (``control=False``): the control is a baseline for rates, not for a unit.

The findings to replicate come from the same pipeline run when an earlier analysis produced them
(``data.extra["findings"]``, set by ``pipeline.run_analyses``); otherwise the base analysis is run
here first with the parameters given (``dissection=dict(...)`` etc.) and its cost counted.
``sensitivity`` holds the headline numbers (labelled-unit rate, style units at q < 0.05,
directions beyond random) under every condition that re-ran on all images, and the dissection
rate on the quantile x IoU-threshold grid.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from interp_gan.analyses.base import Analysis, AnalysisData, build_analysis, register_analysis
from interp_gan.findings import Finding
from interp_gan.findings.stats import bh_qvalues

__all__ = ["Replication", "split_halves", "take", "COLUMNS", "SUMMARY_COLUMNS"]

COLUMNS = ["analysis", "layer", "unit", "direction", "label", "condition", "param", "survives", "value", "q_value",
           "fraction", "replicates"]
SUMMARY_COLUMNS = ["analysis", "layer", "unit", "direction", "label", "conditions", "survived", "fraction",
                   "split_half", "replicates"]
SENS_COLUMNS = ["analysis", "quantity", "condition", "param", "count", "total", "value"]
_SUPPORTED = ("dissection", "style_units", "directions")


def split_halves(style_ids, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two halves of the image indices (A, B), balanced per target style, seeded; sorted."""
    ids = np.asarray(style_ids.detach().cpu() if hasattr(style_ids, "detach") else style_ids)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) % 2 ** 32, 14]))
    a, b = [], []
    for s in np.unique(ids):
        idx = rng.permutation(np.flatnonzero(ids == s))
        a.append(idx[: len(idx) // 2])
        b.append(idx[len(idx) // 2:])
    return np.sort(np.concatenate(a)), np.sort(np.concatenate(b))


def take(data: AnalysisData, idx) -> AnalysisData:
    """The images ``idx`` of ``data`` (content, style ids and z; the real style images unchanged)."""
    i = torch.as_tensor(np.asarray(idx), dtype=torch.long, device=data.content.device)
    pick = lambda t: None if t is None else t[i.to(t.device)]  # noqa: E731
    return AnalysisData(pick(data.content), pick(data.style_ids), pick(data.z), data.style_images,
                        data.style_labels, data.fingerprint + f"[{len(i)} of {len(data)}]", data.batch_size,
                        {k: v for k, v in data.extra.items() if k != "findings"})



def _flag(col: pd.Series) -> pd.Series:
    """A verdict column as plain bools, a missing verdict (NaN / NA: no baseline) as False."""
    return col.astype("boolean").fillna(False).astype(bool)

@register_analysis(
    "replication", title="Replication", order=90, references=("benjamini1995fdr",),
    fast=dict(analyses=("style_units",), style_units=dict(layers=["blocks.1.conv2"], n_boot=20, n_perm=20,
                                                           control=False, min_per_style=4)))
class Replication(Analysis):
    """Re-estimate every finding on the other half of the images, a second seed and neighbouring
    thresholds (module docstring). analyses: which analyses' findings to replicate. dissection /
    style_units / directions: parameters of the base analysis when it is run here (ignored when the
    pipeline already ran it: its own parameters are used). quantiles / iou_thresholds: dissection's
    neighbouring values. min_fraction: share of conditions needed (with split_half) to replicate.
    min_cosine: |cosine| for a direction to count as found again."""

    def __init__(self, *, analyses: Sequence[str] = _SUPPORTED, dissection: dict | None = None,
                 style_units: dict | None = None, directions: dict | None = None,
                 quantiles: Sequence[float] = (0.98, 0.995), iou_thresholds: Sequence[float] = (0.03, 0.05),
                 alpha: float = 0.05, min_fraction: float = 0.75, min_cosine: float = 0.8, seed: int = 0) -> None:
        self.analyses, self.dissection, self.style_units, self.directions = tuple(analyses), dissection, \
            style_units, directions
        self.quantiles, self.iou_thresholds = tuple(quantiles), tuple(iou_thresholds)
        self.alpha, self.min_fraction, self.min_cosine, self.seed = alpha, min_fraction, min_cosine, seed

    # re-runs per analysis, in units of one run on all images: dissection = two halves (1) + seed
    # (1) + each neighbouring quantile (1 each); style units and directions = two halves + seed
    reads_plan = True   # its estimate depends on the other analyses' planned parameters (pipeline.plan_analyses)
    _RERUNS = {"dissection": lambda self: 2 + len(self.quantiles), "style_units": lambda self: 2,
               "directions": lambda self: 2}

    def reruns(self) -> dict[str, float]:
        """Re-runs of each analysis it replicates, in whole runs (the pipeline's budget weighs them)."""
        return {name: float(self._RERUNS[name](self)) for name in self.analyses if name in _SUPPORTED}

    def estimate_cost(self, subject, data: AnalysisData, unit):
        """The re-runs priced by the base analyses' own estimates (approximate: a half-data run is
        counted as half a run), plus the base run when the pipeline did not make it earlier."""
        from interp_gan.analyses.cost import Cost
        have = data.extra.get("findings") or {}
        # the pipeline's plan (``data.extra["planned"]``: each analysis' parameters after its budget
        # share): the base findings will have been made with those, and re-runs take a finding's params
        planned = data.extra.get("planned") or {}
        cost = Cost(notes=["re-runs priced by the base analyses' estimates"])
        for name in self.analyses:
            if name not in _SUPPORTED:
                continue
            params = planned[name] if name in planned else (getattr(self, name) or {})
            one = build_analysis(name, **params).estimate_cost(subject, data, unit)
            if one.skip:
                continue
            n = self._RERUNS[name](self) + (0 if name in have or name in planned else 1)
            cost = cost + Cost(one.forwards * n, one.grads * n, one.other_s * n,
                               classified=one.classified * n, grammed=one.grammed * n)
        return cost

    def run(self, subject, data: AnalysisData) -> Finding:
        params = self.params()
        bad = [a for a in self.analyses if a not in _SUPPORTED]
        if bad:
            raise ValueError(f"replication: unknown analyses {bad}; expected some of {list(_SUPPORTED)}")
        if not 0 < self.min_fraction <= 1:
            raise ValueError(f"min_fraction must be in (0, 1], got {self.min_fraction}")
        earlier = data.extra.get("findings") or {}
        rows, sens, notes, ran = [], [], [], []
        for name in self.analyses:
            base = earlier.get(name)
            if base is not None and base.skipped:
                notes.append(f"{name}: skipped in this run ({base.skipped}); nothing to replicate")
                continue
            if base is None:
                base = build_analysis(name, **(getattr(self, name) or {})).run(subject, data)
                ran.append(name)
                if base.skipped:
                    notes.append(f"{name}: skipped ({base.skipped}); nothing to replicate")
                    continue
            fn = {"dissection": self._dissection, "style_units": self._style_units,
                  "directions": self._directions}[name]
            try:
                r, s = fn(subject, data, base, notes)
            except ValueError as e:   # e.g. half the images leave too few per style for a CI: say so, go on
                notes.append(f"{name}: not replicated: {e}")
                continue
            rows += r
            sens += s
        if ran:
            notes.append(f"base analyses run here (not found earlier in the pipeline): {', '.join(ran)}")
        df = pd.DataFrame(rows, columns=COLUMNS)
        summary = self._summarise(df)
        if len(df):
            df = df.drop(columns=["fraction", "replicates"]).merge(
                summary[["analysis", "layer", "unit", "direction", "label", "fraction", "replicates"]],
                on=["analysis", "layer", "unit", "direction", "label"], how="left")[COLUMNS]
        n, k = len(summary), int(summary["replicates"].sum()) if len(summary) else 0
        notes.insert(0, f"{k} of {n} findings replicate: survived split_half (selected on one half of the images, "
                        f"confirmed on the other) and at least {self.min_fraction:.0%} of the conditions")
        return Finding(self.name, params, tables={"replication": df, "replication_summary": summary,
                                                  "sensitivity": pd.DataFrame(sens, columns=SENS_COLUMNS)},
                       notes=notes, provenance={"seed": self.seed, "data_fingerprint": data.fingerprint})

    # -- verdicts --------------------------------------------------------------------------------
    def _summarise(self, df: pd.DataFrame) -> pd.DataFrame:
        if not len(df):
            return pd.DataFrame(columns=SUMMARY_COLUMNS)
        key = ["analysis", "layer", "unit", "direction", "label"]
        g = df.groupby(key, sort=False, dropna=False)
        out = g.agg(conditions=("survives", "size"), survived=("survives", "sum")).reset_index()
        split = df[df.condition == "split_half"].set_index(key)["survives"]
        out["fraction"] = out["survived"] / out["conditions"]
        out["split_half"] = [bool(split.get(tuple(r), False)) for r in out[key].itertuples(index=False)]
        out["replicates"] = out["split_half"] & (out["fraction"] >= self.min_fraction - 1e-12)
        out["survived"] = out["survived"].astype(int)
        return out[SUMMARY_COLUMNS]

    def _run(self, name: str, base: Finding, data: AnalysisData, subject, **changes) -> Finding:
        # sized_to_budget records what a budget cut (a record, not a parameter); budget_s stays, so a
        # re-run is sized by the same rule
        p = {k: v for k, v in {**base.params, **changes}.items() if k != "sized_to_budget"}
        if "control" in p:
            p["control"] = False
        return build_analysis(name, **p).run(subject, data)

    # -- dissection ----------------------------------------------------------------------------
    def _dissection(self, subject, data, base, notes):
        units = base.tables["dissection_units"]
        alpha, thr0, q0 = base.params.get("alpha", 0.05), base.params.get("iou_threshold", 0.04), \
            base.params.get("quantile", 0.99)
        found = units[units.labelled.astype(bool)]
        seed = int(base.params.get("seed", 0))
        a, b = split_halves(data.style_ids, self.seed)
        fa, fb = (self._run("dissection", base, take(data, h), subject) for h in (a, b))
        runs = {"seed": self._run("dissection", base, data, subject, seed=seed + 1)}
        for q in self.quantiles:
            runs[f"quantile={q:g}"] = self._run("dissection", base, data, subject, quantile=q)
        ua, lb = fa.tables["dissection_units"], fb.tables["dissection_iou"]
        sel = ua[ua.labelled.astype(bool)][["layer", "unit", "concept"]]
        conf = sel.merge(lb[["layer", "unit", "concept", "iou", "p_value"]], on=["layer", "unit", "concept"],
                         how="left")
        conf["q"] = bh_qvalues(conf["p_value"].to_numpy(float)) if len(conf) else []
        conf_ok = {(r.layer, int(r.unit), r.concept): (bool(r.q < alpha and r.iou > thr0), r.iou, r.q)
                   for r in conf.itertuples()}
        idx = {c: r.set_index(["layer", "unit"]) for c, r in
               ((c, f.tables["dissection_units"]) for c, f in runs.items())}
        rows = []
        for r in found.itertuples():
            key = (r.layer, int(r.unit), r.concept)
            common = dict(analysis="dissection", layer=r.layer, unit=int(r.unit), direction="", label=r.concept)
            ok, v, q = conf_ok.get(key, (False, np.nan, np.nan))
            rows.append(dict(common, condition="split_half", param="selected on A, confirmed on B", survives=ok,
                             value=v, q_value=q))
            for c, t in idx.items():
                o = t.loc[(r.layer, int(r.unit))]
                rows.append(dict(common, condition=c, param=c if c != "seed" else f"seed={seed + 1}",
                                 survives=bool(o.labelled and o.concept == r.concept), value=float(o.iou),
                                 q_value=float(o.q_value)))
            for t in self.iou_thresholds:
                rows.append(dict(common, condition=f"iou_threshold={t:g}", param=f"iou_threshold={t:g}",
                                 survives=bool(r.iou > t and r.q_value < alpha), value=float(r.iou),
                                 q_value=float(r.q_value)))
        sens = []
        grid = {f"quantile={q0:g}": units, **{c: runs[c].tables["dissection_units"] for c in runs if c != "seed"}}
        for c, u in grid.items():
            for t in sorted({thr0, *self.iou_thresholds}):
                k = int(((u.iou > t) & (u.q_value < alpha)).sum())
                sens.append(dict(analysis="dissection", quantity="labelled-unit rate",
                                 condition="original" if c == f"quantile={q0:g}" and t == thr0 else "threshold",
                                 param=f"{c}, iou_threshold={t:g}", count=k, total=len(u), value=k / max(len(u), 1)))
        u = runs["seed"].tables["dissection_units"]
        sens.append(dict(analysis="dissection", quantity="labelled-unit rate", condition="seed",
                         param=f"seed={seed + 1}", count=int(u.labelled.sum()), total=len(u),
                         value=float(u.labelled.mean()) if len(u) else np.nan))
        return rows, sens

    # -- style units -----------------------------------------------------------------------------
    def _style_units(self, subject, data, base, notes):
        df = base.tables["style_units"]
        alpha = self.alpha
        found = df[df.q_value < alpha]
        seed = int(base.params.get("seed", 0))
        a, b = split_halves(data.style_ids, self.seed)
        fa, fb = (self._run("style_units", base, take(data, h), subject) for h in (a, b))
        fs = self._run("style_units", base, data, subject, seed=seed + 1)
        key = ["layer", "unit", "style"]
        ta, tb = fa.tables["style_units"], fb.tables["style_units"]
        sel = ta[ta.q_value < alpha][key + ["auroc"]].merge(tb[key + ["auroc", "p_value"]], on=key, how="left",
                                                            suffixes=("_a", "_b"))
        sel["q"] = bh_qvalues(sel["p_value"].to_numpy(float)) if len(sel) else []
        sign = lambda x: np.sign(np.asarray(x, float) - 0.5)  # noqa: E731
        conf = {(r.layer, int(r.unit), r.style): (r.q < alpha and sign(r.auroc_a) == sign(r.auroc_b), r.auroc_b, r.q)
                for r in sel.itertuples()}
        ts = fs.tables["style_units"].set_index(key)
        # exact p and DeLong CI use no seed: on a generator without noise of its own the seed re-run
        # repeats the same numbers, and counting it would be a survival by construction
        orig = df.set_index(key)[["auroc", "p_value"]].sort_index()
        same = orig.shape == ts[["auroc", "p_value"]].shape and np.array_equal(
            orig.to_numpy(float), ts[["auroc", "p_value"]].reindex(orig.index).to_numpy(float), equal_nan=True)
        if same and len(found):
            notes.append(f"style units: seed={seed + 1} gave the same AUROC and p for every test (exact null, a "
                         f"generator without noise of its own), so that condition is left out of each unit's "
                         f"fraction; split_half decides")
        rows = []
        for r in found.itertuples():
            k = (r.layer, int(r.unit), r.style)
            common = dict(analysis="style_units", layer=r.layer, unit=int(r.unit), direction="", label=r.style)
            ok, v, q = conf.get(k, (False, np.nan, np.nan))
            ok = bool(ok and sign(v) == sign(r.auroc))
            rows.append(dict(common, condition="split_half", param="selected on A, confirmed on B", survives=ok,
                             value=v, q_value=q))
            if same:
                continue
            o = ts.loc[k]
            rows.append(dict(common, condition="seed", param=f"seed={seed + 1}",
                             survives=bool(o.q_value < alpha and sign(o.auroc) == sign(r.auroc)),
                             value=float(o.auroc), q_value=float(o.q_value)))
        sens = []
        for c, t in (("original", df), ("seed", fs.tables["style_units"])):
            q = t.q_value.to_numpy(float)
            sens.append(dict(analysis="style_units", quantity="style units at q < 0.05", condition=c,
                             param="" if c == "original" else f"seed={seed + 1}", count=int((q < 0.05).sum()),
                             total=int(np.isfinite(q).sum()), value=float((q < 0.05).mean()) if len(q) else np.nan))
        return rows, sens

    # -- directions ------------------------------------------------------------------------------
    def _directions(self, subject, data, base, notes):
        df, dirs = base.tables["directions"], base.arrays.get("directions")
        if "beyond_random" not in df.columns or dirs is None:
            notes.append("directions: no random baseline (beyond_random) in the base finding; nothing to replicate")
            return [], []
        seed = int(base.params.get("seed", 0))
        n_eval = min(int(base.params.get("n_images", 16)), len(data))
        order = np.r_[np.arange(n_eval, len(data)), np.arange(n_eval)]
        if len(data) < 2 * n_eval:
            notes.append(f"directions: only {len(data)} images for {n_eval} evaluation images: the split_half "
                         f"evaluation shares {2 * n_eval - len(data)} images with the original")
        runs = {"split_half": self._run("directions", base, take(data, order), subject),
                "latent_sample": self._run("directions", base, data, subject, seed=seed + 1)}
        found = df[(df.method != "random") & _flag(df.beyond_random)]
        rows = []
        for i, r in found.iterrows():
            v = dirs[i]
            common = dict(analysis="directions", layer=str(r.space), unit=-1, direction=f"{r.method}:{int(r['index'])}",
                          label=str(r["style"]))
            for c, f in runs.items():
                t, d = f.tables["directions"], f.arrays["directions"]
                same = np.flatnonzero((t.method == r.method).to_numpy())
                ok, cos, q = False, np.nan, np.nan
                if len(same) and "beyond_random" in t.columns:
                    cs = d[same] @ v / (np.linalg.norm(d[same], axis=1) * np.linalg.norm(v) + 1e-12)
                    j = same[int(np.abs(cs).argmax())]
                    cos, m = float(cs[np.abs(cs).argmax()]), t.iloc[j]
                    q = float(m.q_random)
                    style_ok = m["style"] == r["style"] if cos > 0 else True    # the sign of an axis is arbitrary
                    beyond = bool(m.beyond_random) if pd.notna(m.beyond_random) else False
                    ok = bool(abs(cos) >= self.min_cosine and beyond and style_ok)
                rows.append(dict(common, condition=c, param=("the other images" if c == "split_half"
                                                             else f"seed={seed + 1}"),
                                 survives=ok, value=cos, q_value=q))
        sens = []
        for c, t in (("original", df), *((c, f.tables["directions"]) for c, f in runs.items())):
            cand = t[t.method != "random"]
            k = int(_flag(cand.beyond_random).sum()) if "beyond_random" in cand else 0
            sens.append(dict(analysis="directions", quantity="directions beyond random", condition=c,
                             param="" if c == "original" else ("the other images" if c == "split_half"
                                                               else f"seed={seed + 1}"),
                             count=k, total=len(cand), value=k / max(len(cand), 1)))
        return rows, sens
