"""Style interpolation: walk from one style's code to another's and test the walk against random ones.

    f = build_analysis("style_interpolation", pairs=("lite00->lite03",), n_random=19).run(subject, data)
    f.tables["style_interpolation"]        # pair, source, target, classifier, measure, effect, ci_low,
                                           # ci_high, p_value, p_random, n_random, n_random_used, q_random,
                                           # beyond_random, random_max, random_any_max, length, n
    f.tables["style_interpolation_path"]   # pair, classifier, t, style (source | target), log_odds, p,
                                           # ci_low, ci_high

In a network whose styles are points of a code space -- the 26-d style-weight vector of a
conditional-instance-norm network (Dumoulin, Shlens & Kudlur, ICLR 2017, who show that convex
combinations of two styles' codes blend them), a StarGAN v2 / stylenet style code, a conditional
StyleGAN's class-mean w -- the natural axis between styles a and b is the straight line from a's
code to b's: d = mean_i(code_b(z_i) - code_a(z_i)). Each evaluation image is generated in style a
(code c_a) and again at c_a + t d for t in ``steps`` (t = 1 is style b's code, exactly when codes do
not depend on z). What is measured is fixed before anything is generated -- the independent
classifiers' log-odds of the *target* style b -- so no style is picked from the results and no
cross-fitting is needed.

- ``effect``: mean over images of the change in b's log-odds from t = 0 to t = 1, with a BCa
  bootstrap CI widened for small n (the interval of ``directions``, whose coverage
  tests/statistics/test_bootstrap.py checks) and a two-sided sign-flip p-value of mean = 0.
- Beyond random (Monte Carlo test): ``n_random`` random directions, uniform on the sphere and
  scaled to |d|, are walked from the same codes and measured the same way (b's log-odds change);
  p_random = (1 + #{random effects >= effect}) / (1 + n_random). Under the null "d raises b no more
  than a direction drawn at random would", d and the random directions are exchangeable and
  p_random is uniform (tests/statistics/test_interpolation_stats.py plants that null: codes drawn
  at random). ``q_random``: Benjamini-Hochberg over the pairs; ``beyond_random``: q_random <= 0.05
  and the CI above 0. With ``n_random_max`` > ``n_random`` the random walks are sequential
  (``findings/sequential.py``, Besag & Clifford 1991): a row that fewer than ``h`` of the first
  ``n_random`` walks match walks more random directions of the pair's seeded sequence, one at a
  time, until ``h`` do (p_random = h / n_random_used) or ``n_random_max`` were walked (floor
  1/(1 + n_random_max)); ``n_random_used`` says how many each p_random read. ``random_max``,
  ``random_mean`` and ``random_any_max`` describe the first ``n_random`` walks, which every row has.
- Context, not a verdict: ``random_any_max`` is the largest change any random direction makes to
  *any* style (picked on all images, so biased upward): how strong an edit of this length is in
  general. A walk to another style's code is a large edit; this column says whether a random edit
  of the same size changes some style as much.
- Specificity control: ``p_other`` = the same rank among walks of the same length from a toward
  up to ``n_other`` *other* styles' codes (seeded choice), measured on b. Leaving a lowers a's
  logit and so raises every other style's log-odds a little; p_other asks whether the walk to b
  raises b more than walking to any other style does.
- ``style_interpolation_path``: the mean log-odds and probability of a and b at every t (with a
  percentile CI), to show where along the path the style changes hands.

Pairs: ``pairs`` as "a->b" names, or ``n_pairs`` drawn with a seeded permutation of the styles
(never chosen by result). Cost: (1 + len(steps) + n_random + n_other) passes over ``n_images``
images per pair (with ``n_random_max``: up to n_random_max random walks, the worst case the
estimate prices). With ``budget_s`` the run is sized to fit it, in this order: sequential walks
(``n_random_max`` back to ``n_random``: off), random walks (down to 19, p_random's floor 0.05),
walks to other styles (down to 9), images (down to 16), pairs (down to 1); the notes and
``params["sized_to_budget"]`` say what ran.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from interp_gan.analyses.base import Analysis, AnalysisData, register_analysis
from interp_gan.analyses.cost import Cost, UnitCosts, halve_to, size_to_budget, unit_costs_for
from interp_gan.analyses.common import fixed_z, log_odds, seeded, thumbnails
from interp_gan.analyses.directions.methods import random_directions
from interp_gan.findings import Finding
from interp_gan.findings.sequential import (DEFAULT_H, coarse_h_note, expected_null_draws,
                                            sequential_pvalues)
from interp_gan.findings.stats import bh_qvalues, bootstrap_interval, floor_note, permutation_pvalue

__all__ = ["StyleInterpolation", "parse_pairs", "random_rank_pvalue_ge"]

_CLASSIFIERS = (("classifier", "classifier"), ("texture_classifier", "texture_classifier"))


def parse_pairs(pairs, names: list[str]) -> list[tuple[int, int]]:
    """'a->b' strings (or (a, b) index pairs) -> index pairs; one clear line for a name not in ``names``."""
    out = []
    for p in pairs:
        if isinstance(p, str):
            if "->" not in p:
                raise ValueError(f"a style pair is written 'source->target', got {p!r}")
            a, b = (s.strip() for s in p.split("->", 1))
            for s in (a, b):
                if s not in names:
                    raise ValueError(f"style {s!r} in pair {p!r} is not one of the subject's styles "
                                     f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''})")
            a, b = names.index(a), names.index(b)
        else:
            a, b = (int(x) for x in p)
        if a == b:
            raise ValueError(f"a pair needs two different styles, got {names[a]!r} twice")
        out.append((a, b))
    return out


def random_rank_pvalue_ge(effect: float, null: np.ndarray) -> float:
    """(1 + #{null >= effect}) / (1 + len(null)): one-sided Monte Carlo p (larger = stronger); the
    non-finite null draws are left out. NaN for a non-finite effect (no rank to take: it is left out of
    BH, as the sequential path and ``directions`` leave it), never the floor a NaN would otherwise get."""
    if not np.isfinite(effect):
        return float("nan")
    null = np.asarray(null, float)
    null = null[np.isfinite(null)]
    return float((1 + (null >= effect).sum()) / (1 + len(null)))


@register_analysis(
    "style_interpolation", title="Style interpolation", order=52,
    references=("dumoulin2017cin", "efron1987bca", "efron1993bootstrap"),
    fast=dict(n_pairs=1, n_random=3, n_images=8, steps=(0.5, 1.0), n_boot=50, n_perm=50))
class StyleInterpolation(Analysis):
    """Walk from style a's code to style b's; b's log-odds change vs random walks of the same length.

    pairs: "a->b" names (None: ``n_pairs`` seeded pairs); steps: fractions t of the walk (1 = b's
    code); n_images: evaluation images (generated in style a); n_random: random directions;
    n_random_max, h: sequential random walks past n_random, up to n_random_max, for the rows that
    fewer than h random walks match (None: n_random, off).
    """

    def __init__(self, *, pairs: tuple[str, ...] | None = None, n_pairs: int = 3,
                 steps: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0), n_images: int = 32, n_random: int = 19,
                 n_random_max: int | None = None, h: int = DEFAULT_H,
                 n_other: int = 19, n_boot: int = 2000, n_perm: int = 2000, n_grid_images: int = 2,
                 seed: int = 0, budget_s: float | None = None) -> None:
        if n_pairs < 1 or n_random < 1 or n_images < 2 or n_boot < 1 or n_perm < 1:
            raise ValueError("n_pairs, n_random, n_boot and n_perm must be >= 1 and n_images >= 2")
        if n_random_max is not None and n_random_max < n_random or h < 1:
            raise ValueError(f"n_random_max must be >= n_random ({n_random}) and h >= 1, got n_random_max="
                             f"{n_random_max}, h={h}; n_random_max = n_random (or none) turns the sequential walks off")
        steps = tuple(float(t) for t in steps)
        if not steps or 1.0 not in steps or any(t <= 0 for t in steps):
            raise ValueError(f"steps are fractions of the walk in (0, ...] and must include 1.0, got {steps}")
        self.pairs, self.n_pairs, self.steps = (tuple(pairs) if pairs else None), n_pairs, tuple(sorted(steps))
        self.n_images, self.n_random, self.n_boot, self.n_perm = n_images, n_random, n_boot, n_perm
        self.n_grid_images, self.seed, self.n_other = n_grid_images, seed, n_other
        self.n_random_max, self.h = n_random_max, h
        self.budget_s = budget_s   # seconds: over it, fewer random walks, other-style walks, images, pairs

    def _skip_reason(self, subject) -> str:
        if not subject.has_latent:
            return "the subject has no style code space to walk in (style_interpolation needs style_code)"
        if subject.num_styles < 2:
            return "interpolation needs at least two styles"
        if subject.classifier is None and subject.texture_classifier is None:
            why = subject.meta.get("classifiers_missing") if isinstance(subject.meta, dict) else None
            return "no independent style classifier to measure the target style" + (f" ({why})" if why else "")
        return ""

    def _pairs(self, subject) -> list[tuple[int, int]]:
        names = subject.style_names
        if self.pairs:
            return parse_pairs(self.pairs, names)
        perm = np.random.default_rng(self.seed + 11).permutation(len(names))
        k = min(self.n_pairs, len(names) // 2) or 1
        return [(int(perm[2 * i]), int(perm[(2 * i + 1) % len(names)])) for i in range(k)]

    _SIZES = ("n_random_max", "n_random", "n_other", "n_images", "n_pairs")

    def _n_max(self, n_random: int) -> int:
        """Random walks a row may take: n_random_max (None: n_random, the fixed rule)."""
        return n_random if self.n_random_max is None else max(n_random, int(self.n_random_max))

    def _off(self, sz: dict) -> dict:
        """Sizes with n_random_max cut back to the configured n_random read as off (it follows n_random)."""
        return {**sz, "n_random_max": sz["n_random"] if sz["n_random_max"] <= self.n_random
                else max(sz["n_random_max"], sz["n_random"])}

    def _cost(self, subject, data: AnalysisData, sizes: dict) -> Cost:
        n = min(sizes["n_images"], len(data))
        n_other = min(sizes["n_other"], subject.num_styles - 2)
        n_pairs = len(self._pairs(subject)) if self.pairs else min(sizes["n_pairs"], subject.num_styles // 2) or 1
        # the worst case: every pair walks all n_random_max random directions
        images = n_pairs * n * (1 + len(self.steps) + sizes["n_random_max"] + n_other)
        return Cost(forwards=images, classified=images)      # every image is judged by the classifiers

    def _sized(self, subject, data: AnalysisData, unit: UnitCosts) -> tuple[dict, list[str]]:
        """The configured sizes, cut to fit ``budget_s`` (none cut without one), and the notes."""
        sizes = {**{k: getattr(self, k) for k in self._SIZES}, "n_random_max": self._n_max(self.n_random)}
        if not self.budget_s:
            return sizes, []
        cuts = [("n_random_max", halve_to(self.n_random)),
                ("n_random", halve_to(min(19, self.n_random))), ("n_other", halve_to(min(9, self.n_other))),
                ("n_images", halve_to(min(16, self.n_images))), ("n_pairs", halve_to(1))]
        sized, notes = size_to_budget(sizes, lambda sz: self._cost(subject, data, self._off(sz)).seconds(unit),
                                      self.budget_s, cuts, what=self.name)
        return self._off(sized), notes

    def estimate_cost(self, subject, data: AnalysisData, unit):
        why = self._skip_reason(subject)
        if why:
            return Cost(skip=why)
        sizes, notes = self._sized(subject, data, unit)
        cost = self._cost(subject, data, sizes)
        cost.notes += notes
        if sizes["n_random_max"] > sizes["n_random"]:
            null = expected_null_draws(h=self.h, n_min=sizes["n_random"], n_max=sizes["n_random_max"])
            cost.notes.append(f"up to {sizes['n_random_max']} random walks per pair (sequential, priced as if every "
                              f"pair walked them all; a walk no better than random takes about {null:.0f})")
        return cost

    def run(self, subject, data: AnalysisData) -> Finding:
        why = self._skip_reason(subject)
        if why:
            return Finding.skip(self.name, why, self.params())
        if not self.budget_s:
            return self._run(subject, data, self.params(), [])
        sizes, sizing = self._sized(subject, data, unit_costs_for(subject, data))
        sized = copy.copy(self)            # the configured parameters stay in params; the notes say the cuts
        for k, v in sizes.items():
            setattr(sized, k, v)
        params = self.params()
        configured = {**{k: getattr(self, k) for k in self._SIZES}, "n_random_max": self._n_max(self.n_random)}
        if sizing:
            params["sized_to_budget"] = {k: v for k, v in sizes.items() if v != configured[k]
                                         and (k != "n_random_max" or configured[k] > self.n_random)}
        return sized._run(subject, data, params, sizing)

    def _run(self, subject, data: AnalysisData, params: dict, sizing: list[str]) -> Finding:
        pairs = self._pairs(subject)
        names, dev = subject.style_names, subject.device
        n = min(self.n_images, len(data))
        content = data.content[:n].to(dev)
        z = fixed_z(subject, data, self.seed)
        z = None if z is None else z[:n].to(dev)
        clfs = [(label, getattr(subject, attr)) for attr, label in _CLASSIFIERS if getattr(subject, attr) is not None]
        bs = max(1, data.batch_size)

        def scores(code: Tensor) -> dict[str, tuple[np.ndarray, np.ndarray]]:
            out: dict[str, list] = {label: [] for label, _ in clfs}
            with torch.no_grad(), seeded(self.seed):
                for i in range(0, n, bs):
                    img = subject.stylize_code(content[i:i + bs], code[i:i + bs])
                    for label, c in clfs:
                        lg = c(img).float()
                        out[label].append((log_odds(lg).double().cpu().numpy(), lg.softmax(1).double().cpu().numpy()))
            return {k: (np.concatenate([a for a, _ in v]), np.concatenate([p for _, p in v])) for k, v in out.items()}

        rows, path, notes, grids = [], [], list(sizing), {}
        R = self.n_random
        n_max, extra = self._n_max(R), 0
        for pi, (a, b) in enumerate(pairs):
            label = f"{names[a]}->{names[b]}"
            with torch.no_grad():
                ca = subject.style_code(torch.full((n,), a, device=dev), z)
                cb = subject.style_code(torch.full((n,), b, device=dev), z)
            d = (cb - ca).mean(0)
            length = float(d.norm())
            base = scores(ca)
            at = {t: scores(ca + t * d[None]) for t in self.steps}
            # one seeded sequence of random directions per pair: the first n_random every row walks, the
            # rest only rows that fewer than h of them match (sequential, n_random_max > n_random)
            rand = random_directions(n_max, d.numel(), self.seed + 13 + pi)
            walk = lambda r: scores(ca + torch.as_tensor(r * length, dtype=ca.dtype, device=dev)[None])  # noqa: E731
            rnd = [walk(r) for r in rand[:R]]
            others = [c for c in range(len(names)) if c not in (a, b)]
            others = sorted(np.random.default_rng(self.seed + 17 + pi).permutation(others)[: self.n_other].tolist())
            oth = []
            for c in others:
                with torch.no_grad():
                    dc = (subject.style_code(torch.full((n,), c, device=dev), z) - ca).mean(0)
                oth.append(scores(ca + (dc * (length / max(float(dc.norm()), 1e-12)))[None]))
            with torch.no_grad():
                g = min(self.n_grid_images, n)
                frames = [subject.stylize_code(content[:g], ca[:g] + t * d[None])
                          for t in (0.0,) + self.steps]
            grids[f"interpolation_img{pi}"] = np.stack([thumbnails(f) for f in frames], 1)   # [g, T, h, w, 3]
            gain = {lab: at[1.0][lab][0][:, b] - base[lab][0][:, b] for lab, _ in clfs}     # per image, t = 1
            first = np.array([[(r[lab][0][:, b] - base[lab][0][:, b]).mean() for r in rnd] for lab, _ in clfs])
            seq = None
            if n_max > R:
                later: dict[int, dict] = {}                    # walk j, shared by the classifiers' rows

                def draw(idx: np.ndarray, start: int, count: int) -> np.ndarray:
                    out = np.empty((len(idx), count))
                    for k in range(count):
                        if start + k not in later:
                            later[start + k] = walk(rand[start + k])
                        sc = later[start + k]
                        for i, r in enumerate(idx):
                            lab = clfs[r][0]
                            out[i, k] = (sc[lab][0][:, b] - base[lab][0][:, b]).mean()
                    return out
                # one walk at a time: each is its own pass, so a larger batch would only add discarded walks
                seq = sequential_pvalues(np.array([gain[lab].mean() for lab, _ in clfs]), first, draw, h=self.h,
                                         n_max=n_max, batch=1)
                extra += len(later)
            for row, (clf_label, _) in enumerate(clfs):
                lo0, p0 = base[clf_label]
                v = gain[clf_label]
                ci = bootstrap_interval(v, n_boot=self.n_boot, seed=self.seed + pi, method="bca", expand=True)
                signs = np.random.default_rng(self.seed + pi).choice([-1.0, 1.0], size=(self.n_perm, len(v)))
                p = permutation_pvalue(abs(v.mean()), np.abs((signs * v).mean(1)))
                null = first[row]
                any_null = np.array([(r[clf_label][0] - lo0).mean(0).max() for r in rnd])
                other_null = np.array([(o[clf_label][0][:, b] - lo0[:, b]).mean() for o in oth])
                rows.append(dict(pair=label, source=names[a], target=names[b], classifier=clf_label,
                                 measure=f"log_odds({names[b]})", effect=float(v.mean()), ci_low=ci.low,
                                 ci_high=ci.high, p_value=float(p),
                                 p_random=(random_rank_pvalue_ge(float(v.mean()), null) if seq is None
                                           else float(seq.p[row])),
                                 n_random=R,
                                 n_random_used=(int(np.isfinite(null).sum()) if np.isfinite(v.mean()) else 0)
                                 if seq is None else int(seq.n_used[row]),
                                 random_max=float(null.max()), random_mean=float(null.mean()),
                                 random_any_max=float(any_null.max()),
                                 p_other=random_rank_pvalue_ge(float(v.mean()), other_null) if len(oth) else np.nan,
                                 other_max=float(other_null.max()) if len(oth) else np.nan, n_other=len(oth),
                                 length=length, n=len(v)))
                for t in (0.0,) + self.steps:
                    lo, pr = (base if t == 0 else at[t])[clf_label]
                    for role, s in (("source", a), ("target", b)):
                        bi = bootstrap_interval(lo[:, s], n_boot=min(self.n_boot, 1000), seed=self.seed)
                        path.append(dict(pair=label, classifier=clf_label, t=t, role=role, style=names[s],
                                         log_odds=float(lo[:, s].mean()), ci_low=bi.low, ci_high=bi.high,
                                         p=float(pr[:, s].mean())))
        df = pd.DataFrame(rows)
        q = np.full(len(df), np.nan)
        for clf_label in df["classifier"].unique():
            m = (df["classifier"] == clf_label).to_numpy()
            q[m] = bh_qvalues(df.loc[m, "p_random"].to_numpy(float))
        df["q_random"] = q
        df["beyond_random"] = (df["q_random"] <= 0.05) & (df["ci_low"] > 0)
        notes.append(f"Each pair: {n} images generated in the source style, walked to the target style's code "
                     f"(t = 1) and along {R} random directions of the same length; effect = the change of the "
                     "target's log-odds at t = 1 (BCa 95% CI); p_random = (1 + #{random walks raising the target "
                     f"at least as much}}) / {R + 1}; beyond_random = BH q_random <= 0.05 (per classifier) and CI "
                     "above 0. random_any_max (context): the largest change any random walk made to any style. "
                     "p_other (specificity control): the same rank among walks of the same length from the source "
                     "toward up to n_other other styles' codes -- does walking to b raise b more than walking "
                     "anywhere else does (leaving the source alone lowers it and so raises every other style's "
                     "log-odds)?")
        if n_max > R and len(df):
            used = df["n_random_used"].to_numpy(int)
            notes.append(f"sequential random walks (Besag & Clifford 1991; n_random_max = {n_max}, h = {self.h}): a "
                         f"row that fewer than {self.h} of the first {R} random walks matched walked more, one at a "
                         f"time, until {self.h} did (p_random = {self.h} / n_random_used) or {n_max} had been "
                         f"walked (p_random = (1 + #) / {n_max + 1}); P(p_random <= a) <= a still holds "
                         f"(tests/statistics/test_sequential_p.py). n_random_used {used.min()} to {used.max()}; "
                         f"{extra} walks past the first {R} in all, where {n_max} for every pair would have taken "
                         f"{len(pairs) * (n_max - R)}. random_max, random_mean and random_any_max describe the "
                         f"first {R}")
            notes[-1] += coarse_h_note(self.h, n_max, "pairs", "random walks", "walks per pair")
        used = df["n_random_used"].to_numpy(float) if len(df) else R
        fl = floor_note(df["p_random"].to_numpy(float) if len(df) else np.zeros(0), used, what="p_random values",
                        param="n_random_max" if n_max > R else "n_random")
        if fl:
            notes.append(fl + ("" if n_max > R else "; or set n_random_max (sequential walks: only the pairs whose "
                               "walk beats the random ones walk more, far cheaper than raising n_random)"))
        return Finding(self.name, params=params,
                       tables={"style_interpolation": df, "style_interpolation_path": pd.DataFrame(path)},
                       arrays=grids, notes=notes)
