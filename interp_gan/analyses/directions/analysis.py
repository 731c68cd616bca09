"""Latent direction discovery in style space, evaluated with confidence intervals.

    f = build_analysis("directions", methods=("pca", "sefa", "svm", "random"), n_directions=4,
                       steps=(-3, -1.5, 0, 1.5, 3), n_images=16).run(subject, data)
    f.tables["directions"]            # method, space, index, style, effect, ci_low, ci_high, p_value, q_value, ...
    f.tables["direction_agreement"]   # method_a, index_a, method_b, index_b, cosine
    f.arrays["directions"]            # [rows, D] unit vectors, row i = table row i
    f.arrays["traversal_img0"]        # [rows, n_steps, h, w, 3] uint8 thumbnails

    # a model without a latent (CycleGAN, any nn.Module): edit a layer's channel activations
    build_analysis("directions", layer="model.12", methods=("pca", "random")).run(subject, data)

Spaces: ``style_code`` (the mapping network's output, edits applied through
``subject.stylize_code``), ``z`` (edit z, map, stylise) and ``activation`` (channel means of
``layer``; an edit adds the direction to every location via a hook, GANSpace's activation
variant). The methods live in ``directions_methods`` (GANSpace PCA, Härkönen et al. NeurIPS
2020; SeFa, Shen & Zhou CVPR 2021; InterFaceGAN linear SVM and its conditional variant, Shen
et al. CVPR 2020; a random-direction baseline) and ``directions_voynov`` ("voynov": Voynov &
Babenko ICML 2020, a direction matrix learned with a reconstructor; opt-in, as it trains:
about voynov_restarts x voynov_steps x voynov_batch_size x 4 generator forwards, on the first
evaluation images; of the restarts, the run with the lowest training loss is kept).

Each direction d is walked over ``steps`` in units of the sample std along d. Measured on the
evaluation images: which style the positive end moves toward (the style whose independent-
classifier probability rises most at the largest step), that probability change with a
bootstrap CI over images and a sign-flip permutation p-value (BH q-values over all rows) --
cross-fitted over two random halves of the images, so that choosing the style does not bias
the effect upward (``_effect``; Chernozhukov et al. 2018's sample splitting),
``p_random`` (share of random baseline directions with at least this effect), content
preservation (the lowest mean SSIM of any step's output to the unedited output), and the
units of ``unit_layer`` it moves most (mean |Δ activation|; ids as in dissection). For SeFa
the edit is also applied to one AdaIN affine at a time (table ``directions_layerwise``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from interp_gan.analyses.directions import methods as dm
from interp_gan.analyses.base import Analysis, AnalysisData, register_analysis
from interp_gan.analyses.directions.voynov import fit_voynov_babenko
from interp_gan.harvest.hooks import Trace, add_vector, get_module, run_until_stop, spatial_layers
from interp_gan.findings import Finding
from interp_gan.findings.stats import bh_qvalues, bootstrap_ci, permutation_pvalue

__all__ = ["Directions", "channel_means", "thumbnails"]

_METHODS = ("pca", "sefa", "svm", "svm_cond", "random", "voynov")
_SPACES = ("style_code", "z", "activation")


def thumbnails(images: Tensor, size: int = 64) -> np.ndarray:
    """[N,3,H,W] in [-1,1] -> uint8 [N,h,w,3] with h, w <= size (area downsampling)."""
    h, w = images.shape[-2:]
    if max(h, w) > size:
        images = F.interpolate(images.float(), size=(h * size // max(h, w), w * size // max(h, w)), mode="area")
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def channel_means(subject, layer: str, content: Tensor, style_ids: Tensor, z: Tensor | None,
                  batch_size: int = 16) -> np.ndarray:
    """Per-image channel means of ``layer``'s output while generating -> [N, C].

    The forward stops right after ``layer`` (the rest of the generator is not needed)."""
    out = []
    for i in range(0, len(content), batch_size):
        s = slice(i, i + batch_size)
        with Trace(subject.generator, layer, stop=True) as t:
            run_until_stop(subject.generate, content[s], style_ids[s], None if z is None else z[s])
        a = t.output
        out.append((a.mean(dim=(2, 3)) if a.dim() == 4 else a.flatten(1)).double().cpu().numpy())
    return np.concatenate(out)


@dataclass
class _Space:
    name: str
    samples: np.ndarray                      # [N, D]: PCA / SVM input and the step unit
    labels: np.ndarray | None                # [N] style of each sample, or None
    render: Callable[..., tuple[Tensor, Tensor | None]]  # (offset [D] | None, affine, retain) -> (images, act)
    render_codes: Callable[[Tensor], Tensor] | None = None  # voynov: codes [B, D] -> images [B,3,H,W], B fixed
    base: np.ndarray | None = None                           # voynov: base codes c (activation: offsets, 0)


def _retaining(G, retain: str | None, fn: Callable[[], Tensor]) -> tuple[Tensor, Tensor | None]:
    """Run fn() while retaining ``retain``'s output (registered last, so it sees any edit there)."""
    if retain is None:
        return fn(), None
    with Trace(G, retain) as t:
        img = fn()
    return img, t.output


def _no_layer_error(subject) -> ValueError:
    names = spatial_layers(subject.generator)
    pick = names[len(names) // 2: len(names) // 2 + 4] or names[:4]
    return ValueError("this subject has no latent style space, so directions need an activation space: "
                      f"pass layer=<name> (got layer=None); spatial layers include {', '.join(pick) or 'none'}")


@register_analysis(
    "directions", title="Latent style directions", order=50,
    references=("shen2021sefa", "harkonen2020ganspace", "shen2020interfacegan", "efron1993bootstrap"),
    fast=dict(methods=("pca", "sefa", "random"), n_samples=64, n_directions=2, n_random=2, n_images=8,
              steps=(-2.0, 0.0, 2.0), n_boot=20))
class Directions(Analysis):
    def __init__(self, *, methods: tuple[str, ...] = ("pca", "sefa", "svm", "random"), space: str | None = None,
                 layer: str | None = None, unit_layer: str | None = None, n_samples: int = 256,
                 n_directions: int = 4, n_random: int = 19, steps: tuple[float, ...] = (-3, -1.5, 0, 1.5, 3),
                 n_images: int = 16,
                 n_boot: int = 1000, n_perm: int = 1000, n_grid_images: int = 2, layerwise: bool = True,
                 voynov_steps: int = 300, voynov_batch_size: int = 8, voynov_lr: float = 0.1,
                 voynov_restarts: int = 3, seed: int = 0) -> None:
        self.methods, self.space, self.layer, self.unit_layer = tuple(methods), space, layer, unit_layer
        self.n_samples, self.n_directions, self.steps, self.n_images = n_samples, n_directions, tuple(steps), n_images
        self.n_random = n_random   # random baseline directions: p_random can go down to 1 / (1 + n_random)
        self.n_boot, self.n_perm, self.n_grid_images = n_boot, n_perm, n_grid_images
        self.layerwise, self.seed = layerwise, seed
        self.voynov_steps, self.voynov_batch_size, self.voynov_lr = voynov_steps, voynov_batch_size, voynov_lr
        self.voynov_restarts = voynov_restarts   # independent runs; the lowest training loss is kept

    # --- input checks and the space -----------------------------------------------------------
    def _check(self) -> None:
        bad = [m for m in self.methods if m not in _METHODS]
        if bad:
            raise ValueError(f"unknown direction method(s) {bad}; expected some of {_METHODS}")
        if "random" in self.methods and self.n_random < 1:
            raise ValueError(f"n_random must be >= 1 random baseline directions, got {self.n_random} "
                             f"(19 lets p_random reach 0.05); or drop 'random' from methods")
        if self.space is not None and self.space not in _SPACES:
            raise ValueError(f"space must be one of {_SPACES} or None (auto), got {self.space!r}")
        if not any(s > 0 for s in self.steps) or 0 not in self.steps:
            raise ValueError(f"steps must include 0 and a positive step, got {self.steps}")

    def _space(self, subject, data: AnalysisData, content: Tensor, ids: Tensor, z: Tensor | None) -> _Space:
        G, dev = subject.generator, subject.device
        space = self.space or ("style_code" if subject.has_latent else "activation")
        if space == "activation":
            if self.layer is None:
                raise _no_layer_error(subject)
            get_module(G, self.layer)                            # LookupError with close matches
            n = min(self.n_samples, len(data))
            dz = None if not subject.has_latent else (data.z[:n] if data.z is not None
                                                       else subject.sample_z(n, self.seed + 2))
            samples = channel_means(subject, self.layer, data.content[:n].to(dev), data.style_ids[:n].to(dev),
                                    None if dz is None else dz.to(dev), data.batch_size)
            labels = data.style_ids[:n].cpu().numpy() if subject.num_styles > 1 else None

            def render(off, affine=None, retain=None):
                gen = lambda: subject.generate(content, ids, z)  # noqa: E731
                if off is None:
                    return _retaining(G, retain, gen)
                with Trace(G, self.layer, edit=add_vector(off.to(dev, torch.float32))):
                    return _retaining(G, retain, gen)
            cb, ib, zb = _vb_batch(self.voynov_batch_size, content, ids, z)

            def render_codes(off):                               # per-image channel offsets [B, C]
                shift = lambda x, _: x + off.view(*off.shape, *[1] * (x.dim() - 2))  # noqa: E731
                with Trace(G, self.layer, edit=shift):
                    return subject.generate(cb, ib, zb)
            return _Space("activation", samples, labels, render, render_codes, np.zeros((1, samples.shape[1])))

        zs = subject.sample_z(self.n_samples, self.seed)
        sid = torch.arange(self.n_samples, device=dev) % subject.num_styles
        code0 = subject.style_code(ids, z)
        cb, ib, _ = _vb_batch(self.voynov_batch_size, content, ids, z)
        if space == "z":
            def render(off, affine=None, retain=None):
                zz = z if off is None else z + off.to(dev, z.dtype)
                return _retaining(G, retain, lambda: subject.stylize_code(content, subject.style_code(ids, zz)))
            return _Space("z", zs.double().cpu().numpy(), None, render,
                          lambda zz: subject.stylize_code(cb, subject.style_code(ib, zz)), zs.double().cpu().numpy())

        def render(off, affine=None, retain=None):
            if off is None:
                return _retaining(G, retain, lambda: subject.stylize_code(content, code0))
            off = off.to(dev, code0.dtype)
            if affine is None:
                return _retaining(G, retain, lambda: subject.stylize_code(content, code0 + off[None]))
            mod = get_module(G, affine)                        # affine(code + d) - affine(code) = W d
            with Trace(G, affine, edit=add_vector(mod.weight @ off)):
                return _retaining(G, retain, lambda: subject.stylize_code(content, code0))
        codes = subject.style_code(sid, zs).double().cpu().numpy()
        return _Space("style_code", codes, sid.cpu().numpy() if subject.num_styles > 1 else None, render,
                      lambda c: subject.stylize_code(cb, c), codes)

    # --- the directions ----------------------------------------------------------------------------
    def _directions(self, subject, sp: _Space, notes: list[str]) -> list[tuple[str, int, str, np.ndarray]]:
        k, d = self.n_directions, sp.samples.shape[1]
        rows: list[tuple[str, int, str, np.ndarray]] = []
        names = subject.style_names
        for m in self.methods:
            if m == "pca":
                if len(sp.samples) <= d:
                    notes.append(f"pca: {len(sp.samples)} samples <= {d} dims; variances use Ledoit-Wolf shrinkage")
                dirs, _ = dm.pca_directions(sp.samples, min(k, d))
                rows += [(m, i, f"PC{i}", v) for i, v in enumerate(dirs)]
            elif m == "sefa":
                affines = getattr(subject.generator, "style_affines", None)
                if sp.name != "style_code" or not affines:
                    notes.append(f"sefa skipped: it factorises style-affine weights, which needs the style_code "
                                 f"space of a generator with style_affines (space is {sp.name})")
                    continue
                dirs = dm.sefa_directions([a.weight for a in affines], min(k, d))
                rows += [(m, i, f"eig{i}", v) for i, v in enumerate(dirs)]
            elif m in ("svm", "svm_cond"):
                if sp.labels is None or len(np.unique(sp.labels)) < 2:
                    notes.append(f"{m} skipped: needs samples of at least two styles in the {sp.name} space")
                    continue
                styles = np.unique(sp.labels)
                pairs = [(a, b) for a in styles for b in styles if a < b]
                normal = {}
                for a, b in pairs:
                    sel = np.isin(sp.labels, [a, b])
                    normal[a, b] = dm.svm_direction(sp.samples[sel], sp.labels[sel] == b, seed=self.seed)
                normal.update({(b, a): -v for (a, b), v in list(normal.items())})
                i = 0
                for a, b in pairs:
                    v = normal[a, b]
                    if m == "svm_cond":
                        others = [normal[a, c] for c in styles if c not in (a, b)]
                        if not others:
                            continue
                        v = dm.condition_direction(v, others)
                    rows.append((m, i, f"{names[a]}->{names[b]}", v))
                    i += 1
                    if i >= k:
                        break
                if m == "svm_cond" and i == 0:
                    notes.append("svm_cond skipped: conditioning needs a third style to hold fixed")
            elif m == "random":
                dirs = dm.random_directions(self.n_random, d, self.seed + 1)
                rows += [(m, i, f"rand{i}", v) for i, v in enumerate(dirs)]
            elif m == "voynov":
                dirs = self._voynov(subject, sp, min(k, d), notes)
                rows += [(m, i, f"vb{i}", v) for i, v in enumerate(dirs)]
        return rows

    def _voynov(self, subject, sp: _Space, k: int, notes: list[str]) -> np.ndarray:
        """Voynov & Babenko directions in this space; shifts scaled by the samples' per-dim std."""
        scale = float(np.sqrt(sp.samples.var(0).mean())) or 1.0     # RMS per-dimension std of the space
        t0 = time.perf_counter()
        fit = fit_voynov_babenko(sp.render_codes, sp.samples.shape[1], k, base=sp.base,
                                 steps=self.voynov_steps, batch_size=self.voynov_batch_size,
                                 eps_range=(0.5 * scale, 3.0 * scale), lr=self.voynov_lr, seed=self.seed + 4,
                                 restarts=self.voynov_restarts, device=subject.device)
        losses = ", ".join(f"{v:.3g}" for v in fit.restart_losses)
        notes.append(f"voynov: {self.voynov_restarts} run(s) of {self.voynov_steps} steps x {self.voynov_batch_size} "
                     f"pairs in {sp.name} space (|shift| in [0.5, 3] x {scale:.3g}) took "
                     f"{time.perf_counter() - t0:.1f} s; training losses {losses}, kept run {fit.chosen}: "
                     f"reconstructor index accuracy {fit.accuracy:.2f} (chance {1 / k:.2f}), shift error "
                     f"{fit.shift_error:.3g} over the last quarter of training -- near chance means the "
                     "directions were not told apart")
        return fit.directions

    # --- evaluation ------------------------------------------------------------------------------------
    def _effect(self, probs0: Tensor | None, probs: Tensor | None, names: list[str], seed: int) -> dict:
        """Change in p(style) for the style the direction moves toward, free of selection bias.

        Picking the style with the largest mean increase and then measuring that increase on the
        same images overstates it (a null direction always "moves toward" something). So the
        images are split at random into two halves; each half's per-image change is read for
        the style the *other* half picked (cross-fitting), and the effect, its bootstrap CI and
        the sign-flip p-value are computed on those n values. Under a direction with no effect
        their mean is 0 in expectation. ``style`` is the style picked on all images (the same
        one both halves picked when ``style_agree``; when they disagree there is no consistent
        style and the effect is read for two different ones).
        """
        if probs0 is None:
            return dict(style="", style_agree=None, effect=np.nan, ci_low=np.nan, ci_high=np.nan, p_value=np.nan)
        delta = (probs - probs0).double().cpu().numpy()                       # [n, S]
        n = len(delta)
        half = np.zeros(n, bool)
        half[np.random.default_rng(seed).permutation(n)[: n // 2]] = True
        s_a, s_b = int(delta[half].mean(0).argmax()), int(delta[~half].mean(0).argmax())
        v = np.where(half, delta[:, s_b], delta[:, s_a])                      # each half at the other's pick
        s = int(delta.mean(0).argmax())
        lo, hi = bootstrap_ci(v, n_boot=self.n_boot, seed=seed)
        # two-sided sign-flip permutation test of mean(v) = 0 (symmetric null)
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(self.n_perm, len(v)))
        p = permutation_pvalue(abs(v.mean()), np.abs((signs * v).mean(1)))
        return dict(style=names[s], style_agree=s_a == s_b, effect=float(v.mean()), ci_low=lo, ci_high=hi,
                    p_value=float(p))

    def run(self, subject, data: AnalysisData) -> Finding:
        self._check()
        params = self.params()
        if self.space in ("style_code", "z") and not subject.has_latent:
            return Finding.skip(self.name, f"space={self.space!r} needs a latent style space; this subject has "
                                           f"none (pass space='activation' and layer=...)", params)
        if self.space == "z" and not subject.latent_dim:
            return Finding.skip(self.name, "space='z' needs a noise input z; this subject's style code has none "
                                           "(latent_dim 0, e.g. StarGAN's domain labels): use space='style_code'",
                                params)
        subject.eval()
        dev, G = subject.device, subject.generator
        ev = data.subset(min(self.n_images, len(data)))
        content, ids = ev.content.to(dev), ev.style_ids.to(dev)
        z = None
        if subject.has_latent:
            z = (ev.z if ev.z is not None else subject.sample_z(len(ev), self.seed + 3)).to(dev)
        clf = subject.classifier or subject.texture_classifier
        notes: list[str] = []
        if clf is None:
            notes.append("no independent style classifier: style, effect and CI columns are empty")
        elif subject.classifier is None:
            notes.append("effects measured with the texture (colour-blind) classifier; no RGB classifier given")
        with torch.no_grad():
            sp = self._space(subject, data, content, ids, z)
            unit_layer = self.unit_layer or _default_unit_layer(G, sp.name, self.layer)
            rows = self._directions(subject, sp, notes)
            dirs = np.stack([r[3] for r in rows]) if rows else np.zeros((0, sp.samples.shape[1]))
            stds = dm.projection_std(sp.samples, dirs) if rows else np.zeros(0)
            tmax = max(self.steps)

            render = lambda off: sp.render(off, None, unit_layer)  # noqa: E731
            probs = (lambda img: None) if clf is None else (lambda img: clf(img).float().softmax(1))
            base, act0 = render(None)
            p0 = probs(base)
            table, grids, layerwise = [], [], []
            for r, ((m, i, label, v), sd) in enumerate(zip(rows, stds)):
                vt = torch.as_tensor(v, dtype=torch.float32)
                ssims, frames = [], []
                for t in self.steps:
                    img, act = (base, act0) if t == 0 else render(vt * float(t * sd))
                    ssims.append(float(dm.ssim(img, base).mean()))
                    frames.append(thumbnails(img[: self.n_grid_images]))
                    if t == tmax:
                        img_max, act_max = img, act
                grids.append(np.stack(frames, 1))                             # [g, n_steps, h, w, 3]
                eff = self._effect(p0, probs(img_max), subject.style_names, self.seed + r)
                dact = (act_max - act0).abs()
                dact = dact.mean(dim=(0, 2, 3)) if dact.dim() == 4 else dact.flatten(1).mean(0)
                top = torch.argsort(dact, descending=True)[:5].tolist()
                table.append(dict(method=m, space=sp.name, index=i, label=label, **eff, std=float(sd),
                                  ssim_min=min(ssims), unit_layer=unit_layer, top_units=";".join(map(str, top)),
                                  n=len(content)))
                if m == "sefa" and self.layerwise:
                    for a in _affine_names(G):
                        img, _ = sp.render(vt * float(tmax * sd), a)
                        le = self._effect(p0, probs(img), subject.style_names, self.seed + r)
                        layerwise.append(dict(method=m, space=sp.name, index=i, layer=a, **le,
                                              ssim=float(dm.ssim(img, base).mean())))
        df = pd.DataFrame(table, columns=["method", "space", "index", "label", "style", "style_agree", "effect",
                                          "ci_low", "ci_high",
                                          "p_value", "q_value", "p_random", "std", "ssim_min", "unit_layer",
                                          "top_units", "n"])
        if len(df):
            df["q_value"] = bh_qvalues(df["p_value"].to_numpy(float))
            rand = df.loc[df.method == "random", "effect"].to_numpy(float)
            if len(rand) and np.isfinite(rand).all():
                df["p_random"] = [permutation_pvalue(e, rand) if np.isfinite(e) else np.nan for e in df.effect]
        arrays = {"directions": dirs.astype(np.float32)}
        for g in range(min(self.n_grid_images, len(content))):
            arrays[f"traversal_img{g}"] = np.stack([x[g] for x in grids]) if grids else np.zeros((0,), np.uint8)
        notes.append(f"steps {list(self.steps)} are in units of the sample std along each direction "
                     f"({sp.name} space, {len(sp.samples)} samples); effect = change in the classifier's "
                     f"probability of 'style' at step {tmax}, mean over {len(content)} images, 95% bootstrap CI; "
                     "'style' is the largest mean increase; the effect is cross-fitted (each random half of the "
                     "images is read at the style the other half picked), so picking the style does not inflate it "
                     "-- style_agree says whether both halves picked the same style")
        if "voynov" not in self.methods:
            notes.append("Voynov & Babenko (ICML 2020) not run: add 'voynov' to methods (it trains a reconstructor)")
        return Finding(self.name, params, tables={"directions": df,
                                                  "direction_agreement": _agreement(rows),
                                                  "directions_layerwise": pd.DataFrame(layerwise, columns=[
                                                      "method", "space", "index", "layer", "style", "style_agree",
                                                      "effect",
                                                      "ci_low", "ci_high", "p_value", "ssim"])},
                       arrays=arrays, notes=notes,
                       provenance={"seed": self.seed, "data_fingerprint": data.fingerprint, **subject.meta})


def _vb_batch(b: int, content: Tensor, ids: Tensor, z: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """The fixed content batch of Voynov-Babenko renders: the first b evaluation images, cycled."""
    idx = torch.arange(b, device=content.device) % len(content)
    return content[idx], ids[idx], None if z is None else z[idx]


def _affine_names(G) -> list[str]:
    ids = {id(a) for a in getattr(G, "style_affines", [])}
    return [n for n, m in G.named_modules() if id(m) in ids]


def _default_unit_layer(G, space: str, layer: str | None) -> str:
    """Last residual block of a stylenet (else the middle conv layer: the last one of most
    generators only writes RGB); in activation space the next block/conv after ``layer``."""
    names = [n for n, _ in G.named_modules()]
    blocks = [n for n in names if n.count(".") == 1 and n.startswith("blocks.")]
    if space != "activation" or layer is None:
        convs = spatial_layers(G)
        return blocks[-1] if blocks else convs[len(convs) // 2]
    cands = set(blocks) | set(spatial_layers(G))
    after = [n for n in names[names.index(layer) + 1:] if n in cands and not n.startswith(layer + ".")]
    return after[0] if after else layer


def _agreement(rows: list) -> pd.DataFrame:
    """Signed cosine between every pair of directions from different methods."""
    out = []
    for a in range(len(rows)):
        for b in range(len(rows)):
            if rows[a][0] < rows[b][0]:
                out.append(dict(method_a=rows[a][0], index_a=rows[a][1], method_b=rows[b][0], index_b=rows[b][1],
                                cosine=float(rows[a][3] @ rows[b][3])))
    return pd.DataFrame(out, columns=["method_a", "index_a", "method_b", "index_b", "cosine"])
