"""Causal ablation: switch style units off (or force them on) and measure what changes.

    f = build_analysis("ablation", layer="blocks.3", ks=(1, 2, 4, 8), n_random=4).run(subject, data)
    f.tables["ablation"]   # layer, units, intervention, target, effect, ci_low, ci_high, n, k, baseline, style

For each target style the units of a layer are ranked by their selectivity for that style
(AUROC of the per-image mean activation, computed here on the same images, ties at AUROC 1
broken by Cohen's d; see ``style_units``), and the top k units are ablated together, for k in ``ks`` (cumulative:
the top 2 include the top 1). Each image is generated twice, with and without the edit, with
the same content, z and random state, so the effect is a paired difference, averaged over
images with a percentile bootstrap CI. The same is done for ``n_random`` random unit sets of
the same size drawn from the other units of the layer: an effect that a random set matches
is not specific to the style units. (Bau et al., "GAN Dissection", ICLR 2019, and
"Understanding the role of individual units in a deep neural network", PNAS 2020, ablate and
insert units; Morcos et al., ICLR 2018, compare against random ablations.)

Interventions: ``zero`` sets the units to 0; ``mean`` to their mean over all images and
positions; ``insert`` forces them to their ``quantile`` (0.99) value everywhere. zero / mean
are measured on images generated toward the target style (does the style go away?); insert
on images generated toward the other styles (does the style appear?).

What is measured, per image (targets):
- ``p(style=<s>)``: the independent RGB style classifier's softmax probability
  (``subject.classifier``), and ``p_texture(style=<s>)`` from ``subject.texture_classifier``;
- ``log_odds(style=<s>)`` / ``log_odds_texture(style=<s>)``: the same classifiers' log-odds of
  style s, log p_s - log(1 - p_s) = logit_s - logsumexp of the other logits. A confident
  classifier (p = 0.9999) hides an edit in p (it moves by 1e-4) but not in the log-odds;
- ``gram_distance(<s>)``: the Gram distance in ``subject.feature_net`` to the mean Gram of
  real images of style s (``data.style_images`` / ``data.style_labels``), as in the style
  loss of Gatys et al. (CVPR 2016); larger = further from the style;
- ``fraction(<concept>)``: the fraction of pixels in each concept mask (``concepts.py``).
A measure the subject or data cannot provide is left out with a note.
"""
from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Callable, Literal, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from interp_gan.analyses.base import Analysis, AnalysisData, register_analysis
from interp_gan.harvest.hooks import Edit, Trace, TraceDict, ablate, insert, resolve_layers, spatial_layers
from interp_gan.analyses.units.style_units import auroc_matrix, check_styles, cohens_d, fixed_z, seeded, unit_means
from interp_gan.findings import Finding
from interp_gan.findings.stats import MIN_SAMPLES_FOR_CI, bootstrap_ci

__all__ = ["Ablation", "default_ablation_layer", "style_measures"]

Measure = Callable[[Tensor], dict[str, np.ndarray]]   # images -> {kind: [n, K]}
COLUMNS = ["layer", "units", "intervention", "target", "effect", "ci_low", "ci_high", "n", "k", "baseline",
           "style", "measure", "n_sets"]


_LOG_ODDS = {"classifier": "log_odds", "texture_classifier": "log_odds_texture"}


def log_odds(logits: Tensor) -> Tensor:
    """[n, S] logits -> [n, S] log-odds log p_s - log(1 - p_s) of each class, computed stably as
    logit_s - logsumexp_{k != s} logit_k (no 1 - p rounding to 0 for a confident classifier)."""
    S = logits.shape[1]
    if S < 2:
        return torch.zeros_like(logits)
    others = logits[:, None, :].expand(-1, S, -1).masked_fill(torch.eye(S, dtype=torch.bool, device=logits.device),
                                                              float("-inf"))
    return logits - torch.logsumexp(others, dim=2)


def default_ablation_layer(generator: nn.Module) -> str:
    """The last style-modulated block of a StyleNet-like model, else the middle conv layer."""
    blocks = getattr(generator, "blocks", None)
    if isinstance(blocks, nn.ModuleList) and len(blocks):
        return f"blocks.{len(blocks) - 1}"
    convs = spatial_layers(generator)
    if not convs:
        raise LookupError(f"{type(generator).__name__} has no conv layer; name the layer to ablate (layer=...)")
    return convs[len(convs) // 2]


@torch.no_grad()
def style_measures(subject, data: AnalysisData, notes: list[str]) -> tuple[Measure, dict[str, list[str]]]:
    """The per-image measures this subject and data allow: (fn, {kind: column names}).

    Kinds: ``classifier`` / ``texture_classifier`` ([n, S] softmax), ``log_odds`` /
    ``log_odds_texture`` ([n, S] log-odds of each style), ``gram`` ([n, S] distance to
    each style's mean real Gram; NaN for styles without real images), ``concepts`` ([n, K]).
    """
    S, names = subject.num_styles, subject.style_names
    cols: dict[str, list[str]] = {}
    for kind in ("classifier", "texture_classifier"):
        if getattr(subject, kind) is not None:
            cols[kind] = list(names)
            cols[_LOG_ODDS[kind]] = list(names)
        else:
            notes.append(f"no subject.{kind}: its style probability is not measured")
    refs: list[Tensor] | None = None
    f = subject.feature_net
    if f is None or data.style_images is None or data.style_labels is None:
        why = ("no style feature network" + (f" ({subject.meta['feature_net_missing']})"
                                              if subject.meta.get("feature_net_missing") else "")
               if f is None else "no real style images")
        notes.append(f"{why}: the Gram style distance is not measured")
    else:
        sums: list[list[Tensor] | None] = [None] * S                         # per style, per scale [C,C]
        for i in range(0, len(data.style_images), data.batch_size):
            imgs, labels = data.style_images[i:i + data.batch_size], data.style_labels[i:i + data.batch_size]
            g = f.grams(imgs.to(subject.device))
            for s in range(S):
                m = (labels == s).to(subject.device)
                if m.any():
                    part = [gl[m].sum(0) for gl in g]
                    sums[s] = part if sums[s] is None else [a + b for a, b in zip(sums[s], part)]
        counts = torch.bincount(data.style_labels.cpu().long(), minlength=S)
        like = next((x for x in sums if x is not None), None)
        if like is None:
            notes.append("no real style image matches the subject's styles: the Gram distance is not measured")
        else:
            missing = [names[s] for s in range(S) if sums[s] is None]
            if missing:
                notes.append(f"no real images of {missing}: no Gram distance for those styles")
            refs = [torch.stack([sums[s][l] / int(counts[s]) if sums[s] is not None
                                 else torch.full_like(like[l], float("nan")) for s in range(S)])
                    for l in range(len(like))]                                  # per scale [S,C,C]
            cols["gram"] = list(names)
    concept_fn = None
    try:
        from interp_gan.analyses.units.concepts import concept_masks
        concept_fn = concept_masks
        with torch.no_grad():
            _, cnames = concept_masks(data.content[:1])
        cols["concepts"] = list(cnames)
    except ImportError:
        notes.append("interp_gan.analyses.units.concepts is not available: concept fractions are not measured")

    def measure(images: Tensor) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for kind in ("classifier", "texture_classifier"):
            if kind in cols:
                logits = getattr(subject, kind)(images).float()
                out[kind] = logits.softmax(1).cpu().numpy()
                out[_LOG_ODDS[kind]] = log_odds(logits).cpu().numpy()
        if refs is not None:
            g = f.grams(images)
            d = sum(((gl[:, None] - r[None]) ** 2).flatten(2).sum(2) for gl, r in zip(g, refs))  # [n,S]
            out["gram"] = d.float().cpu().numpy()
        if concept_fn is not None:
            masks, _ = concept_fn(images)
            out["concepts"] = masks.float().mean(dim=(2, 3)).cpu().numpy()
        return out

    return measure, cols


def _targets(cols: dict[str, list[str]], s: int, name: str) -> list[tuple[str, str, int]]:
    """(target label, measure kind, column) for target style s."""
    out = []
    if "classifier" in cols:
        out.append((f"p(style={name})", "classifier", s))
        out.append((f"log_odds(style={name})", "log_odds", s))
    if "texture_classifier" in cols:
        out.append((f"p_texture(style={name})", "texture_classifier", s))
        out.append((f"log_odds_texture(style={name})", "log_odds_texture", s))
    if "gram" in cols:
        out.append((f"gram_distance({name})", "gram", s))
    for j, c in enumerate(cols.get("concepts", [])):
        out.append((f"fraction({c})", "concepts", j))
    return out


@torch.no_grad()
def _unit_stats(subject, data: AnalysisData, z: Tensor | None, layers: list[str], quantile: float, seed: int,
                max_per_batch: int = 1024) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{layer: (per-image unit means [N,U], unit mean [U], unit quantile [U])} on unedited images."""
    per_image, total, count, samples = defaultdict(list), {}, {}, defaultdict(list)
    g = torch.Generator().manual_seed(seed)
    for b, (sl, content, ids, _) in enumerate(data.batches()):
        with TraceDict(subject.generator, layers) as td, seeded(seed + b):
            subject.generate(content, ids, None if z is None else z[sl])
        for n in layers:
            o = td[n].output
            if o is None:
                raise ValueError(f"layer {n!r} did not run while generating; name a layer on the forward path "
                                 f"(e.g. one of {', '.join(resolve_layers(subject.generator, '*')[:6])})")
            o = o.float()
            flat = o.transpose(0, 1).reshape(o.shape[1], -1).cpu()               # [U, n·H·W]
            per_image[n].append(unit_means(o, n).cpu())
            total[n] = total.get(n, 0) + flat.sum(1)
            count[n] = count.get(n, 0) + flat.shape[1]
            keep = torch.randperm(flat.shape[1], generator=g)[:max_per_batch]
            samples[n].append(flat[:, keep])
    return {n: (torch.cat(per_image[n]).double().numpy(), (total[n] / count[n]).double().numpy(),
                np.quantile(torch.cat(samples[n], 1).double().numpy(), quantile, axis=1)) for n in layers}


@torch.no_grad()
def _measured_pass(subject, data: AnalysisData, z: Tensor | None, sel: Tensor, measure: Measure, seed: int,
                   layer: str | None = None, edit: Edit | None = None) -> dict[str, np.ndarray]:
    """Generate the images ``sel`` (optionally with ``edit`` at ``layer``) and measure them.

    Batching and seeds depend only on ``sel``, so an edited pass is paired image by image with
    the unedited pass over the same ``sel``.
    """
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for b, i in enumerate(range(0, len(sel), data.batch_size)):
        idx = sel[i:i + data.batch_size]
        with contextlib.ExitStack() as stack:
            if edit is not None:
                stack.enter_context(Trace(subject.generator, layer, retain_output=False, edit=edit))
            stack.enter_context(seeded(seed + b))
            images = subject.generate(data.content[idx], data.style_ids[idx], None if z is None else z[idx])
        for kind, v in measure(images).items():
            parts[kind].append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


@register_analysis(
    "ablation", title="Causal ablation", order=40,
    references=("bau2019gandissect", "bau2020units", "morcos2018single", "efron1993bootstrap"),
    fast=dict(layer="blocks.1.conv2", ks=(1, 2), n_random=2, n_boot=20))
class Ablation(Analysis):
    """Ablate (or insert) the top-k style units per style against random unit sets of the same size.

    layer: one layer name or a list (None = ``default_ablation_layer``). units: an explicit
    list of unit indices to ablate (then k = len(units)); otherwise ``from_style_units`` ranks
    the units per style by AUROC. intervention: "zero" | "mean" | "insert" (``quantile`` sets
    the inserted value). ks: set sizes (cumulative top-k). n_random: random sets per k.
    styles: target style names (None = every style in the data).
    """

    def __init__(self, *, layer: str | list[str] | None = None, units: list[int] | None = None,
                 from_style_units: bool = True, intervention: Literal["zero", "mean", "insert"] = "zero",
                 quantile: float = 0.99, ks: Sequence[int] = (1, 2, 4, 8, 16), n_random: int = 4,
                 n_boot: int = 500, styles: list[str] | None = None, seed: int = 0,
                 min_per_style: int = MIN_SAMPLES_FOR_CI) -> None:
        self.layer, self.units, self.from_style_units = layer, units, from_style_units
        self.intervention, self.quantile, self.ks, self.n_random = intervention, quantile, ks, n_random
        self.n_boot, self.styles, self.seed, self.min_per_style = n_boot, styles, seed, min_per_style

    def _check(self, subject) -> None:
        if self.intervention not in ("zero", "mean", "insert"):
            raise ValueError(f"intervention must be 'zero', 'mean' or 'insert', got {self.intervention!r}")
        if self.units is None and not self.from_style_units:
            raise ValueError("give units=[...] to ablate, or from_style_units=True to rank units by selectivity")
        if not self.ks or any(int(k) < 1 for k in self.ks):
            raise ValueError(f"ks must be positive set sizes like (1, 2, 4, 8), got {self.ks!r}")
        if not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile}")
        unknown = [s for s in (self.styles or []) if s not in subject.style_names]
        if unknown:
            raise ValueError(f"unknown styles {unknown}; the subject has {subject.style_names}")

    def run(self, subject, data: AnalysisData) -> Finding:
        params = self.params()
        self._check(subject)
        present, reason = check_styles(subject, data.style_ids, self.name, self.min_per_style)
        if reason:
            return Finding.skip(self.name, reason, params)
        subject.eval()
        G = subject.generator
        layers = resolve_layers(G, self.layer) if self.layer is not None else [default_ablation_layer(G)]
        notes: list[str] = []
        measure, cols = style_measures(subject, data, notes)
        if not cols:
            return Finding.skip(self.name, "nothing to measure: the subject has no style classifier, no "
                                           "feature net with real style images, and no concept masks", params)
        z = fixed_z(subject, data, self.seed)
        stats = _unit_stats(subject, data, z, layers, self.quantile, self.seed)
        ids = data.style_ids.detach().cpu().numpy()
        lut = np.full(subject.num_styles, -1)
        lut[present] = np.arange(len(present))
        targets = [s for s in present if self.styles is None or subject.style_names[s] in self.styles]
        if self.styles is not None and len(targets) < len(set(self.styles)):
            missing = sorted(set(self.styles) - {subject.style_names[s] for s in targets})
            notes.append(f"no images were generated toward {missing}; those styles are not ablated")
        rng = np.random.default_rng(self.seed)
        rows, ranking = [], []
        for layer in layers:
            x, unit_mean, unit_q = stats[layer]
            n_units = x.shape[1]
            if self.units is not None:
                bad = [u for u in self.units if not 0 <= int(u) < n_units]
                if bad:
                    raise ValueError(f"units {bad} are out of range for layer {layer!r} with {n_units} units")
            auc = auroc_matrix(x, lut[ids], len(present))                         # [S_present, U]
            dd = cohens_d(x, lut[ids], len(present))                              # breaks AUROC ties at 1
            ks = [len(self.units)] if self.units is not None else sorted({min(int(k), n_units) for k in self.ks})
            for s in targets:
                name = subject.style_names[s]
                if self.units is not None:
                    order = np.asarray(self.units, dtype=int)
                else:
                    a = np.nan_to_num(auc[lut[s]], nan=-np.inf)
                    order = np.lexsort((-np.nan_to_num(dd[lut[s]], nan=-np.inf), -a))   # AUROC, then d
                    ranking += [dict(layer=layer, style=name, rank=r, unit=int(u), auroc=float(auc[lut[s], u]),
                                     cohens_d=float(dd[lut[s], u]))
                                for r, u in enumerate(order[:max(ks)])]
                mask = (ids == s) if self.intervention != "insert" else (ids != s)
                sel = torch.as_tensor(np.flatnonzero(mask), device=data.content.device)
                seed = self.seed + 1000 * s
                base = _measured_pass(subject, data, z, sel, measure, seed)
                for k in ks:
                    top = order[:k]
                    d_top = self._diff(subject, data, z, sel, measure, seed, layer, top, unit_mean, unit_q, base)
                    rows += self._rows(d_top, cols, s, name, layer, top, k, "top", 1, notes)
                    pool = np.setdiff1d(np.arange(n_units), top)
                    if len(pool) < k or self.n_random < 1:
                        notes.append(f"{layer}, {name}, k={k}: fewer than k other units; no random baseline")
                        continue
                    sets = [np.sort(rng.choice(pool, size=k, replace=False)) for _ in range(self.n_random)]
                    diffs = [self._diff(subject, data, z, sel, measure, seed, layer, r, unit_mean, unit_q, base)
                             for r in sets]
                    mean_diff = {kind: np.mean([d[kind] for d in diffs], axis=0) for kind in diffs[0]}
                    rows += self._rows(mean_diff, cols, s, name, layer, sets, k, "random", len(sets), notes)
        df = pd.DataFrame(rows, columns=COLUMNS)
        tables = {"ablation": df}
        if ranking:
            tables["ablation_ranking"] = pd.DataFrame(ranking)
        return Finding(self.name, params, tables=tables, notes=notes,
                       provenance={"seed": self.seed, "data_fingerprint": data.fingerprint})

    def _diff(self, subject, data, z, sel, measure, seed, layer, units, unit_mean, unit_q, base):
        units = [int(u) for u in units]
        if self.intervention == "zero":
            edit = ablate(units, 0.0)
        elif self.intervention == "mean":
            edit = ablate(units, torch.as_tensor(unit_mean[units], dtype=torch.float32))
        else:
            edit = insert(units, torch.as_tensor(unit_q[units], dtype=torch.float32))
        after = _measured_pass(subject, data, z, sel, measure, seed, layer, edit)
        return {kind: after[kind] - base[kind] for kind in base}

    def _rows(self, diff, cols, s, name, layer, units, k, baseline, n_sets, notes) -> list[dict]:
        label = "|".join(";".join(map(str, u)) for u in units) if baseline == "random" else ";".join(map(str, units))
        rows = []
        for j, (target, kind, col) in enumerate(_targets(cols, s, name)):
            v = diff[kind][:, col].astype(np.float64)
            if not np.isfinite(v).all():  # e.g. a style without real images has no Gram reference
                note = f"{target}: not finite on some images (no reference or NaN output); left out"
                if note not in notes:
                    notes.append(note)
                continue
            lo, hi = bootstrap_ci(v, n_boot=self.n_boot, seed=self.seed + 31 * j + 7 * k)
            rows.append(dict(layer=layer, units=label, intervention=self.intervention, target=target,
                             effect=float(v.mean()), ci_low=lo, ci_high=hi, n=len(v), k=k, baseline=baseline,
                             style=name, measure=kind, n_sets=n_sets))
        return rows
