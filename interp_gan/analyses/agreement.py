"""Agreement across methods: do the units four methods point at for a style overlap more than chance?

    f = build_analysis("agreement", k=5).run(subject, data)     # after the other analyses in a pipeline
    f.tables["agreement"]        # method_a, method_b, style, layer, overlap, expected_by_chance, p_value, q_value,
                                 #   n_a, n_b, n_units, units_a, units_b
    f.tables["agreement_sets"]   # method, style, layer, units, source

It reads the Findings of the analyses that ran before it in the same pipeline run
(``data.extra["findings"]``, set by ``pipeline.run_analyses``) and runs nothing but one forward
pass per layer (to count its units). Per style and layer, each method names a set of units:

- ``style_units``: the ``k`` units with the highest AUROC for the style (ties by Cohen's d);
- ``ablation``: the selected set of the smallest k whose ablation is beyond random (q_random
  <= alpha) for the style, else the set whose size is closest to ``k``; both halves' sets
  (cross-fitted) joined. Ablation ranks units by the same AUROC (on half the images), so its
  agreement with ``style_units`` is partly by construction: it says whether the causally checked
  set is the selective one, not that two independent methods agree;
- ``directions``: the first ``k`` of the ``top_units`` (mean |change of activation|, at ``unit_layer``) of the
  discovered (not random) direction with the largest effect toward the style;
- ``attribution``: the ``k`` units with the highest importance for the style
  (``attribution_units``, the first unit method).

For each pair of methods with a set in the same layer: ``overlap`` = |A ∩ B|, ``expected_by_chance``
= |A| |B| / U (U units in the layer), ``p_value`` = (1 + #{random sets R of |B| units with
|A ∩ R| >= overlap}) / (1 + n_perm) (a one-sided permutation test over uniformly random unit sets
of the same size; its limit is the hypergeometric tail), ``q_value`` Benjamini-Hochberg within
its family: the ``independent`` pairs (every pair but style_units x ablation) form one family, the
style_units x ablation pair (agreement partly by construction) another. In one family the
near-certain by-construction overlaps are rejections that raise BH's threshold for the others (in
the demo a directions x style_units overlap at p = 0.009 got q = 0.043 beside four of them; over
the 20 independent tests alone its q is 0.18). Discrete overlaps make p conservative
(P(p <= a) <= a under the null).
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import torch

from interp_gan.analyses.base import Analysis, AnalysisData, register_analysis
from interp_gan.findings import Finding
from interp_gan.findings.stats import bh_qvalues

__all__ = ["Agreement", "overlap_pvalue", "method_sets", "family_qvalues", "COLUMNS", "BY_CONSTRUCTION"]

COLUMNS = ["method_a", "method_b", "style", "layer", "overlap", "expected_by_chance", "p_value", "q_value",
           "independent", "n_a", "n_b", "n_units", "units_a", "units_b"]
METHODS = ("style_units", "ablation", "directions", "attribution")
# pairs that agree partly by construction (ablation ranks units by style_units' AUROC): their own BH family
BY_CONSTRUCTION = {frozenset(("style_units", "ablation"))}


def family_qvalues(df: pd.DataFrame) -> np.ndarray:
    """BH q-values of ``df.p_value`` within each family (``df.independent`` True / False)."""
    q = np.full(len(df), np.nan)
    ind = df["independent"].astype(bool).to_numpy()
    for fam in (ind, ~ind):
        if fam.any():
            q[fam] = bh_qvalues(df.loc[fam, "p_value"].to_numpy(float))
    return q


def overlap_pvalue(a: set[int], b_size: int, n_units: int, observed: int, n_perm: int,
                   rng: np.random.Generator) -> float:
    """(1 + #{|a ∩ R| >= observed}) / (1 + n_perm), R uniform random ``b_size``-subsets of ``n_units``."""
    if b_size <= 0 or n_units <= 0:
        return float("nan")
    member = np.zeros(n_units, bool)
    member[[u for u in a if 0 <= u < n_units]] = True
    keys = rng.random((n_perm, n_units)).argsort(1)[:, :b_size]          # n_perm random b-subsets
    hits = member[keys].sum(1)
    return float((1 + (hits >= observed).sum()) / (1 + n_perm))


def _units(s) -> list[int]:
    return [int(u) for u in str(s).replace("/", ";").replace(" ", "").split(";") if u.strip().lstrip("-").isdigit()]


def method_sets(findings: dict, k: int, alpha: float = 0.05) -> pd.DataFrame:
    """Each method's unit set per (style, layer), read from the Findings' tables (module docstring)."""
    rows = []
    f = findings.get("style_units")
    if f is not None and not f.skipped and "style_units" in f.tables:
        d = f.tables["style_units"].dropna(subset=["auroc"])
        by = ["auroc", "cohens_d"] if "cohens_d" in d.columns else ["auroc"]
        for (style, layer), g in d.groupby(["style", "layer"], sort=False):
            top = g.sort_values(by, ascending=False, kind="stable").head(k)
            rows.append(dict(method="style_units", style=style, layer=layer, units=top.unit.astype(int).tolist(),
                             source=f"top {k} AUROC"))
    f = findings.get("ablation")
    if f is not None and not f.skipped and "ablation" in f.tables:
        d = f.tables["ablation"]
        d = d[d.baseline == "top"]
        for (style, layer), g in d.groupby(["style", "layer"], sort=False):
            qr = pd.to_numeric(g["q_random"], errors="coerce")
            ok = g[qr <= alpha]
            if len(ok):
                r, why = ok.sort_values("k", kind="stable").iloc[0], "smallest set beyond random"
            else:
                r, why = g.iloc[int(np.abs(g["k"].to_numpy(int) - k).argmin())], f"set closest to {k} (none beyond random)"
            u = sorted(set(_units(r.get("units_fold0", ""))) | set(_units(r.get("units_fold1", ""))) or
                       set(_units(r["units"])))
            rows.append(dict(method="ablation", style=style, layer=layer, units=u, source=f"{why}, k={int(r.k)}"))
    f = findings.get("directions")
    if f is not None and not f.skipped and "directions" in f.tables:
        d = f.tables["directions"]
        d = d[(d.method != "random") & d["style"].astype(str).ne("") & d["effect"].notna()]
        for (style, layer), g in d.groupby(["style", "unit_layer"], sort=False):
            r = g.sort_values("effect", ascending=False, kind="stable").iloc[0]
            rows.append(dict(method="directions", style=style, layer=layer, units=_units(r.top_units)[:k],
                             source=f"{r.method}:{int(r['index'])} (largest effect toward the style)"))
    f = findings.get("attribution")
    if f is not None and not f.skipped and "attribution_units" in f.tables and len(f.tables["attribution_units"]):
        d = f.tables["attribution_units"]
        if "method" in d.columns:
            d = d[d.method == d.method.iloc[0]]
        for (style, layer), g in d.groupby(["style", "layer"], sort=False):
            top = g.sort_values("importance", ascending=False, kind="stable").head(k)
            rows.append(dict(method="attribution", style=style, layer=layer, units=top.unit.astype(int).tolist(),
                             source=f"top {k} importance"))
    return pd.DataFrame(rows, columns=["method", "style", "layer", "units", "source"])


def _one_style(subject) -> str:
    from interp_gan.analyses.common import one_style_reason
    return one_style_reason(subject, "agreement", "compares the units each method names for a style")


def _layer_sizes(subject, data: AnalysisData, layers: list[str]) -> dict[str, int]:
    """Units (channels) of each layer, from one forward pass on one image."""
    from interp_gan.harvest.hooks import TraceDict
    z = None if data.z is None else data.z[:1]
    with torch.no_grad(), TraceDict(subject.generator, layers) as td:
        subject.generate(data.content[:1], data.style_ids[:1], z)
    out = {}
    for n in layers:
        o = td[n].output
        if o is not None:
            out[n] = int(o.shape[1])
    return out


@register_analysis("agreement", title="Agreement across methods", order=85, references=("benjamini1995fdr",),
                   fast=dict(k=2, n_perm=99, run_missing=True))
class Agreement(Analysis):
    """Overlap of the units style units, ablation, directions and attribution name per style
    (module docstring). k: units per method; n_perm: random unit sets per test; alpha: ablation's
    beyond-random level for choosing its set. run_missing: run style_units and directions here
    (with their small registered settings) when the pipeline has not run them (tests, a lone call)."""

    def __init__(self, *, k: int = 5, n_perm: int = 9999, alpha: float = 0.05, run_missing: bool = False,
                 seed: int = 0) -> None:
        self.k, self.n_perm, self.alpha, self.run_missing, self.seed = k, n_perm, alpha, run_missing, seed

    def estimate_cost(self, subject, data: AnalysisData, unit):
        """No generator pass of its own (it reads earlier findings), except the base analyses it
        runs itself (``run_missing``) when they are not among them."""
        from interp_gan.analyses.base import build_analysis, get_analysis
        from interp_gan.analyses.cost import Cost
        have = data.extra.get("findings") or {}
        if subject.num_styles < 2:
            return Cost(skip=_one_style(subject))
        cost = Cost(notes=["reads the earlier analyses' findings"])
        if self.run_missing:
            for m in ("style_units", "directions"):
                if m not in have:
                    cost = cost + build_analysis(m, **get_analysis(m).fast).estimate_cost(subject, data, unit)
        return cost

    def run(self, subject, data: AnalysisData) -> Finding:
        params = self.params()
        if self.k < 1 or self.n_perm < 1:
            raise ValueError(f"k and n_perm must be >= 1, got k={self.k}, n_perm={self.n_perm}")
        if subject.num_styles < 2:
            return Finding.skip(self.name, _one_style(subject), params)
        findings = dict(data.extra.get("findings") or {})
        if self.run_missing:
            from interp_gan.analyses.base import build_analysis, get_analysis
            for m in ("style_units", "directions"):
                if m not in findings:
                    findings[m] = build_analysis(m, **get_analysis(m).fast).run(subject, data)
        if not findings:
            return Finding.skip(self.name, "agreement reads the findings of the analyses run before it in the same "
                                           "pipeline (style_units, ablation, directions, attribution); none were "
                                           "given (data.extra['findings'])", params)
        sets = method_sets(findings, self.k, self.alpha)
        have = sorted(set(sets.method), key=METHODS.index)
        if len(have) < 2:
            return Finding.skip(self.name, f"needs unit sets from at least two of {', '.join(METHODS)}; got "
                                           f"{', '.join(have) or 'none'}", params)
        sizes = _layer_sizes(subject, data, sorted(set(sets.layer)))
        rng = np.random.default_rng(self.seed)
        rows, notes = [], []
        for (style, layer), g in sets.groupby(["style", "layer"], sort=False):
            n_units = sizes.get(layer)
            if n_units is None:
                notes.append(f"layer {layer!r} did not run; its sets are left out")
                continue
            by = {r.method: set(r.units) for r in g.itertuples()}
            for ma, mb in itertools.combinations([m for m in METHODS if m in by], 2):
                a, b = by[ma], by[mb]
                ov = len(a & b)
                rows.append(dict(method_a=ma, method_b=mb, style=style, layer=layer, overlap=ov,
                                 expected_by_chance=len(a) * len(b) / n_units,
                                 p_value=overlap_pvalue(a, len(b), n_units, ov, self.n_perm, rng), q_value=np.nan,
                                 independent=frozenset((ma, mb)) not in BY_CONSTRUCTION,
                                 n_a=len(a), n_b=len(b), n_units=n_units, units_a=";".join(map(str, sorted(a))),
                                 units_b=";".join(map(str, sorted(b)))))
        df = pd.DataFrame(rows, columns=COLUMNS)
        if len(df):
            df["q_value"] = family_qvalues(df)
        n_ind = int(df["independent"].astype(bool).sum()) if len(df) else 0
        missing = [m for m in METHODS if m not in have]
        notes.append(f"methods compared: {', '.join(have)}" + (f"; not available: {', '.join(missing)}" if missing
                                                              else ""))
        notes.append(f"p: one-sided permutation test over {self.n_perm} uniformly random unit sets of method_b's "
                     f"size in the layer, (1 + #{{overlap >= observed}}) / (1 + n_perm); q: BH within each family, "
                     f"{n_ind} independent pair tests and {len(df) - n_ind} style_units x ablation tests (a pair "
                     f"that agrees partly by construction; in one family its overlaps would lower the others' q)")
        if "ablation" in have and "style_units" in have:
            notes.append("ablation ranks units by the same AUROC as style_units (on half the images): their "
                         "agreement is partly by construction")
        sets = sets.assign(units=sets.units.map(lambda u: ";".join(map(str, u))))
        return Finding(self.name, params, tables={"agreement": df, "agreement_sets": sets}, notes=notes,
                       provenance={"seed": self.seed, "data_fingerprint": data.fingerprint})
