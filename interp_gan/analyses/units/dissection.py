"""Channel dissection: which units fire on which concepts of the generated image.

    finding = Dissection(layers=["blocks.*.conv2"], quantile=0.99).run(subject, data)
    finding.tables["dissection_units"]    # layer, unit, concept, iou, ci_low, ci_high, p_value, q_value, label, ...
    finding.tables["dissection_iou"]      # layer, unit, concept, iou, p_value, q_value, p_image, p_spatial (long)
    finding.tables["dissection_control"]  # per layer: labelled units trained vs at random initialisation

GAN Dissection (Bau et al., ICLR 2019; Network Dissection, Bau et al., CVPR 2017): a unit's
region is where its activation, bilinearly upsampled to the image, is in the unit's top
``1 - quantile`` (top 1%) over the whole data set; its IoU with a concept mask is summed over
the data set, IoU = Σ|A∩M| / Σ|A∪M| (not an average of per-image IoUs); the unit's label is its
best concept when that IoU exceeds ``iou_threshold`` and the tests below are significant.

Region (tie-aware, ``ties="auto"``): t = the unit's ``quantile`` from the sketch; values above t
are in. Values *equal* to t (a tie: saturated ReLU6 / tanh / clamp units, quantised nets, a unit
equal to 1.5 on every red pixel) are handled by ``stats.tie_include_fraction``: none at the
unit's floor (a ReLU unit that is 0 on > 99% of pixels keeps only its non-zero pixels), all at
the unit's maximum (saturation: all equally strong), else a seeded random share that makes the
region hold exactly the top 1 - quantile of the mass. The random draw is a hash of (seed, global
image index, unit, pixel), so it does not depend on sharding or chunking; a tie is
|a - t| <= 1e-5 |t| after upsampling. The showcase masks are the same regions (``top_masks``).
``ties="strict"`` is the old ``a > t`` rule. ``stats.top_quantile_value`` exports the rule for
other analyses (the mean of a unit's top-quantile mass, ties weighted).

How it runs (one forward pass; measured cost in ``benchmarks/dissection_cost.py``):
1. one forward per batch: a KLL quantile sketch and a top-k per unit are fed, and the unit maps
   (at their own, low resolution) plus the generated image (uint8) go to an
   ``ActivationStore`` (kept on the model's device up to ``memory_mb``, then a temporary
   directory: memory flat in N);
2. thresholds from the sketch; then the store is read back in blocks of ``perm_block`` images,
   everything batched on the model's device: concept masks once per block on the generated
   images (``concepts.concept_masks`` + one image-level mask per target style); the unit maps of
   a chunk of images x units are upsampled at once, turned into regions, and |A∩M| for all
   (image, unit, concept) is one batched matrix product with the block's masks.

Statistics:
- IoU and CI (winner's curse, ``select="split"``): each block's images are split in two halves
  (seeded, balanced per style). The unit's concept is its best IoU on the *selection* half; the
  table's ``iou`` and its CI (Poisson bootstrap over images, ``n_boot``) are that concept's IoU on
  the other, *estimation* half, so the interval is not inflated by choosing the best of K
  concepts on the same data (Kriegeskorte et al., Nat. Neurosci. 2009, "double dipping").
  ``iou_all`` is that concept's IoU on all images (biased upwards when concepts are near-equal);
  the long table's ``iou`` is every pair's IoU on all images. ``select="none"``: the old
  same-data choice (the CI then ignores the selection; measured coverage 0.64 with 15 equally
  good concepts). Replicates with an empty union are counted in a note, not dropped silently.
- p-values, two nulls, both at ``test_res`` x ``test_res`` (area-pooled A and M), statistic the
  summed overlap Σ_j <A_j, M_j> (with the totals fixed, the same test as one on the IoU):
  * ``p_image``: masks permuted across images *within blocks of perm_block images and within the
    same target style* (stratified: a unit and a concept that both follow the style are not
    "co-located" by that alone). Image-level "style:*" concepts are permuted across all images of
    the block (the stratum is the concept itself).
  * ``p_spatial``: each image's concept masks circularly shifted by a random offset within the
    image (toroidal shift; Lotwick & Silverman, JRSS B 1982), unit regions fixed: a unit that fires
    on images containing red, but not *on* the red, is no better than a shifted mask. Computed for
    all shifts at once by FFT cross-correlation; NaN for image-level concepts (a shift leaves a
    whole-image mask unchanged).
  ``p_value`` = max(p_image, p_spatial) (with ``null="both"``: a label needs both; the max is a
  valid p-value for the union of the two nulls, an intersection-union test, Berger 1982).
  Each p = (1 + #{null >= obs}) / (1 + n_perm) (Phipson & Smyth 2010), so the smallest p is
  1/(1+n_perm): a note counts the tests at that floor. A unit that encodes a fixed spatial prior
  (e.g. "top of the image" = sky) is not significant under the image null.
- q-values: Benjamini-Hochberg over all unit x concept tests of all layers, on ``p_value``.
- Random-init control (``control=True``): the same counting on ``subject.random_init(seed)``
  (same architecture, PyTorch's default initialisation), the same data and layers, its own BH;
  ``dissection_control`` has, per layer, the units labelled trained vs control and the fraction
  of tests with q < alpha. A random generator's units do drive its output colours image by image,
  so the control labels some units: the trained model's fraction means something next to it.
  What the control could not re-draw (``Subject.random_init``) is a note ("random-init control
  keeps ..."), which the report prints beside the comparison.

Randomness is drawn per block, from generators seeded by (``seed``, the block's first image):
the block's permutations, shifts, halves and its images' Poisson bootstrap weights. So the
result does not depend on which process handled which block.

Cost (``estimate_cost``, docs/scaling.md): one generator pass per image and dissection (two
with the control), the sketch of every activation, each unit map upsampled and overlapped with
every concept, and the nulls' and bootstrap's draws. ``budget_s``: over it, an even sample of the
layers is dissected (first and last kept, at least 3), then the first images (balanced by style,
at least 64); a note names the layers and images.

Sharded (docs/scaling.md): under an initialised process group (e.g. ``torchrun``) ``run`` is a
collective — call it on every rank; each rank harvests and counts its own whole blocks of
``perm_block`` images (``shard_indices(N, block=perm_block)``), and every rank returns the same
merged Finding. The sketches, top-k and IoU counts are merged with ``all_merge``, the observed
and permuted overlap sums are summed over ranks, and the showcase images are gathered from
the rank that stored each one. Equal to one process up to: the thresholds, which come from the
merged quantile sketches (within the sketch's rank error of one pass, or exactly equal while
the sketch holds every value: ``sketch_k`` >= values per unit), and float rounding of the
overlap sums (absorbed by the tolerance of the p-value comparison). Given equal thresholds the
IoUs, bootstrap CIs (per-block seeds, integer counts summed exactly in float64) and p-values
equal one process's.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from interp_gan.analyses.base import Analysis, AnalysisData, register_analysis
from interp_gan.analyses.cost import Cost, UnitCosts, evenly, halve_to, size_to_budget, unit_costs_for
from interp_gan.analyses.units.concepts import CONCEPT_NAMES, Segmenter, concept_masks, resolve_segmenter
from interp_gan.distributed import all_gather_objects, all_sum, fail_together, rank_and_world
from interp_gan.harvest.distributed import all_merge, shard_indices
from interp_gan.harvest.store import ActivationStore, harvest
from interp_gan.harvest.hooks import resolve_layers, spatial_layers
from interp_gan.harvest.stats import IoUCounts, Quantile, TopK, tie_include_fraction
from interp_gan.findings import Finding
from interp_gan.harvest.nulls import (mask_spectrum, perm_pvalue, permutation_sums, selection_halves, shift_sums,
                                       stratified_permutations)
from interp_gan.findings.stats import MIN_SAMPLES_FOR_CI, bh_qvalues, floor_note, require_samples

__all__ = ["Dissection", "unit_regions", "hash_uniform"]

_THUMB = 64          # thumbnails and overlay maps in the Finding are at most 64 x 64
_UNIT_CHUNK = 2 ** 24  # elements of upsampled maps held at once (and of a cross-overlap matrix)
_CPU_CHUNK = 2 ** 20   # on the CPU smaller chunks stay in cache between upsample, threshold and product
_TIE_TOL = 1e-5        # |a - t| <= _TIE_TOL * |t| is a tie at t after bilinear upsampling (float rounding)


def _block_seed(seed: int, start: int, stream: int) -> int:
    """A seed for the block of images starting at ``start`` (stream 0: permutations, 1: bootstrap,
    2: spatial shifts, 3: selection halves, 4: unstratified permutations of image-level concepts)."""
    return int(np.random.SeedSequence([seed % 2 ** 64, start, stream]).generate_state(1, np.uint64)[0])


def _to_uint8(images: Tensor) -> Tensor:
    """[N,3,H,W] in [-1,1] -> [N,3,H,W] uint8, on the images' device."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


_M31 = 0x7FFFFFFF


def _mix(h: Tensor) -> Tensor:
    """A 31-bit integer hash round (int64 arithmetic that never overflows)."""
    h = h & _M31
    h = ((h ^ (h >> 16)) * 0x45D9F3B) & _M31
    h = ((h ^ (h >> 15)) * 0x2C1B3C6D & _M31)
    return h ^ (h >> 16)


def hash_uniform(seed: int, images: Tensor, units: Tensor, pixels: int) -> Tensor:
    """Uniform [0,1) numbers [len(images), len(units), pixels], a fixed function of (seed, global
    image index, unit, pixel): the same whatever the chunking, blocks or ranks."""
    dev = images.device
    s = int(np.random.SeedSequence([seed % 2 ** 64, 7]).generate_state(1, np.uint32)[0]) & _M31
    h = _mix(images.long()[:, None, None] + s)
    h = _mix(h + units.long().to(dev)[None, :, None] * 0x9E3779B)
    h = _mix(h + torch.arange(pixels, device=dev, dtype=torch.long)[None, None, :] * 0x6C8E9CF)
    return h.double().div_(2 ** 31).float()


def unit_regions(a_up: Tensor, thr: Tensor, include: Tensor, live: Tensor, images: Tensor, units: Tensor,
                 seed: int) -> Tensor:
    """Tie-aware regions [s,c,H,W] bool of upsampled unit maps a_up [s,c,H,W].

    thr [c]: each unit's quantile; include [c]: the share of values tied at thr that is in the
    region (``stats.tie_include_fraction``; 0 = the strict ``a > thr``); live [s,c]: pairs whose
    low-res map reaches the region at all (a bilinear map never exceeds its largest input);
    images [s] / units [c]: global indices for the seeded draw of a partial tie (``hash_uniform``)."""
    s, c, H, W = a_up.shape
    inf = torch.full_like(a_up[:, :, 0, 0], float("inf"))
    tie = include > 0
    tol = _TIE_TOL * thr.abs()
    hi = torch.where(tie, thr + tol, thr)
    region = a_up > torch.where(live, hi[None], inf)[..., None, None]
    if bool(tie.any()):
        lo = torch.where(live & tie[None], (thr - tol)[None], inf)
        tied = (a_up >= lo[..., None, None]) & ~region
        partial = tie & (include < 1)
        if bool(partial.any()):
            u = hash_uniform(seed, images, units, H * W).view(s, c, H, W)
            tied &= u < include.float()[None, :, None, None]
        region |= tied
    return region


def _live(a: Tensor, thr: Tensor, include: Tensor) -> Tensor:
    """[s,c]: the low-res maps a [s,c,h,w] that can have a region (NaN never counts)."""
    amax = torch.nan_to_num(a, nan=float("-inf")).flatten(2).amax(2)
    return (amax > thr[None]) | ((include > 0)[None] & (amax >= (thr - _TIE_TOL * thr.abs())[None]))


@register_analysis(
    "dissection", title="Channel dissection", order=20,
    references=("bau2017netdissect", "bau2019gandissect", "karnin2016kll", "efron1993bootstrap", "benjamini1995fdr"),
    fast=dict(layers=["blocks.*.conv2"], n_boot=20, n_perm=20))
class Dissection(Analysis):
    """GAN Dissection with held-out IoU CIs, two permutation nulls, BH q-values and a random-init
    control (module docstring)."""
    sharded = True   # run() splits the images across torch.distributed ranks and merges (module docstring)

    def __init__(self, *, layers: list[str] | None = None, quantile: float = 0.99, iou_threshold: float = 0.04,
                 alpha: float = 0.05, n_boot: int = 500, n_perm: int = 1000, perm_block: int = 32,
                 test_res: int = 16, top_k: int = 4, n_show: int = 8, memory_mb: float = 1024,
                 sketch_k: int = 1024, segmenter: Segmenter | str | None = None, ties: Literal["auto", "strict"] = "auto",
                 null: Literal["both", "image", "spatial"] = "both", select: Literal["split", "none"] = "split", control: bool = True, control_seed: int | None = None,
                 control_draws: int = 3, seed: int = 0, budget_s: float | None = None) -> None:
        self.layers, self.quantile, self.iou_threshold, self.alpha = layers, quantile, iou_threshold, alpha
        self.segmenter = segmenter
        self.n_boot, self.n_perm, self.perm_block, self.test_res = n_boot, n_perm, perm_block, test_res
        self.top_k, self.n_show, self.memory_mb, self.sketch_k, self.seed = top_k, n_show, memory_mb, sketch_k, seed
        self.ties, self.null, self.select, self.control, self.control_seed = ties, null, select, control, control_seed
        self.budget_s = budget_s   # seconds: over it, dissect an even sample of the layers, then fewer images
        if isinstance(control_draws, bool) or not isinstance(control_draws, int) or control_draws < 1:
            raise ValueError(f"control_draws must be an integer >= 1, got {control_draws!r}")
        self.control_draws = control_draws

    # -- cost (analyses/cost.py) ----------------------------------------------------------------
    def _layers(self, G) -> list[str]:
        return resolve_layers(G, self.layers) if self.layers else spatial_layers(G)

    def _seconds(self, subject, unit: UnitCosts, layers: list[str], n: int) -> Cost:
        """Generator passes plus the counting: the quantile sketch of every activation, each unit's
        map upsampled to the image and overlapped with every concept, and the permutation / shift
        nulls and bootstrap sums (per image x unit x concept x draw)."""
        passes = 1 + self.control_draws if self.control else 1
        C = sum(unit.channels(n_) for n_ in layers)
        values = sum(unit.channels(n_) * unit.pixels(n_) for n_ in layers)
        pix = unit.image_size ** 2
        K = len(CONCEPT_NAMES) + (subject.num_styles if subject.num_styles > 1 else 0)
        nulls = (self.null in ("both", "image")) + (self.null in ("both", "spatial"))
        per_pass = n * (values * unit.sketch_s + C * pix * unit.region_s + K * C * self.n_perm * nulls * unit.null_s)
        boot = n * K * C * self.n_boot * unit.null_s / 4          # a matrix product, cheaper than a gather
        return Cost(forwards=passes * n, other_s=passes * per_pass + boot)

    def estimate_cost(self, subject, data: AnalysisData, unit: UnitCosts) -> Cost:
        layers = self._layers(subject.generator)
        if not layers:
            return Cost(skip="the generator has no conv layers and no layers were given")
        sizes, notes = self._sized(subject, unit, layers, len(data))
        cost = self._seconds(subject, unit, evenly(layers, sizes["layers"]), sizes["n_images"])
        cost.notes += notes
        return cost

    def _sized(self, subject, unit: UnitCosts, layers: list[str], n: int) -> tuple[dict, list[str]]:
        """The layers (an even sample) and images that fit ``budget_s``: layers first (down to 3),
        then images (halved, down to 64): a dissected layer keeps all of its statistics."""
        def seconds(sz):
            return self._seconds(subject, unit, evenly(layers, sz["layers"]), sz["n_images"]).seconds(unit)
        return size_to_budget({"layers": len(layers), "n_images": n}, seconds, self.budget_s,
                              [("layers", halve_to(min(3, len(layers)))), ("n_images", halve_to(min(n, 64)))],
                              what=self.name)

    # ----------------------------------------------------------------------------------------
    def run(self, subject, data: AnalysisData) -> Finding:
        if not 0.5 <= self.quantile < 1:
            raise ValueError(f"quantile must be in [0.5, 1), got {self.quantile}; GAN Dissection uses 0.99")
        if self.perm_block < 2:
            raise ValueError(f"perm_block must be >= 2 images (a permutation needs two), got {self.perm_block}")
        for name, value, allowed in (("ties", self.ties, ("auto", "strict")),
                                     ("null", self.null, ("both", "image", "spatial")),
                                     ("select", self.select, ("split", "none"))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
        require_samples(len(data), "images", need=max(MIN_SAMPLES_FOR_CI, 2))
        G = subject.generator
        layers = self._layers(G)
        if not layers:
            return Finding.skip(self.name, "the generator has no conv layers and no layers were given; "
                                "pass layers=[...] (named_modules() names)", self.params())
        sizing: list[str] = []
        if self.budget_s:
            sizes, sizing = self._sized(subject, unit_costs_for(subject, data), layers, len(data))
            if sizes["layers"] < len(layers):
                layers = evenly(layers, sizes["layers"])
                sizing.append(f"layers dissected (an even sample, to fit budget_s): {', '.join(layers)}")
            if sizes["n_images"] < len(data):
                data = data.subset(sizes["n_images"])
                sizing.append(f"images dissected (to fit budget_s): the first {len(data)}")
        subject.eval()
        self._seg = resolve_segmenter(self.segmenter)   # adds "seg:<label>" concepts (concepts.py)
        # the split needs two halves big enough for a CI; fewer images: the same-data choice, said in a note
        self._split = self.select == "split" and len(data) >= 2 * MIN_SAMPLES_FOR_CI

        # this rank's whole permutation blocks (all of them in one process)
        shard = shard_indices(len(data), block=self.perm_block)
        out = self._pass(subject, data, layers, shard, full=True)
        if isinstance(out, Finding):
            return out
        ctrl, partial, draws = None, [], []
        if self.control:
            seed = self.seed if self.control_seed is None else self.control_seed
            for j in range(self.control_draws):        # draw j re-draws the weights with seed + j
                with subject.random_init(seed + j) as control:
                    c = self._pass(control, data, out["layers"], shard, full=False)
                    if j == 0:
                        partial = control.random_init_report.notes()   # what the control keeps trained, if anything
                if isinstance(c, Finding):   # no layer gave maps at random init
                    if j == 0:
                        partial = []
                        break
                    continue
                draws.append((j, seed + j, c))
            ctrl = draws[0][2] if draws else None
        finding = self._finding(subject, data, out, ctrl, draws)
        finding.notes[:0] = sizing
        finding.notes += partial
        return finding

    # -- one dissection of one subject (the trained one, or its random-init control) ------------
    def _pass(self, subject, data, layers, shard, full: bool):
        device = subject.device
        store = ActivationStore(self.memory_mb)
        skipped: dict[str, str] = {}
        try:
            stats = harvest(subject, data, layers,
                            lambda name, C: {"q": Quantile(C, k=self.sketch_k, seed=self.seed),
                                             "top": TopK(C, k=self.top_k), "store": store.view(name)},
                            on_output=lambda sl, img: store.add_images(sl.start, _to_uint8(img)),
                            skipped=skipped, shard=shard)     # merged over ranks when sharded
            layers = [n for n in layers if n in stats]
            if not layers:
                return Finding.skip(self.name, "no layer gave unit maps: " +
                                    "; ".join(f"{k}: {v}" for k, v in skipped.items()), self.params())
            with fail_together("dissection: counting"):
                regions = {n: self._region_params(stats[n], device) for n in layers}
                res = self._count(subject, data, store, layers, regions, device, shard, boot=full)
            for name in layers:   # the same order on every rank (collectives)
                for c in res["counts"][name]:
                    all_merge(c)
                for key in ("t_obs", "t_null", "t_free", "s_obs", "s_null", "s_tol"):
                    if res[key] is not None:
                        all_sum(res[key][name])
            out = self._tables(layers, regions, res)
            out.update(layers=layers, skipped=skipped, spilled=store.spilled, stats=stats)
            if full:
                units = out["units"]
                top_idx = np.concatenate([stats[n]["top"].indices.cpu().numpy() for n in layers])   # [U,k]
                top_val = np.concatenate([stats[n]["top"].values.cpu().numpy() for n in layers])
                arrays = {"topk_index": top_idx.astype(np.int64), "topk_value": top_val.astype(np.float32)}
                arrays.update(self._showcase(store, units, top_idx, shard, regions))
                out.update(arrays=arrays, top_idx=top_idx)
        finally:
            store.close()
        return out

    def _region_params(self, st: dict, device) -> dict[str, Tensor]:
        """Per unit: the quantile t, the share of values tied at t in the region, and the masses."""
        thr = st["q"].quantile(self.quantile)
        below, tied, above = st["q"].tie_masses(thr)
        at_max = thr.double() >= st["top"].values[:, 0].to(thr.device).double()   # exact max over the data
        include = tie_include_fraction(self.quantile, below, tied, above, at_max)
        if self.ties == "strict":
            include = torch.zeros_like(include)
        return {"thr": thr.to(device), "include": include.to(device), "tied": tied, "above": above}

    # -- pass 2: per-image counts, bootstrap and permutation statistics from the store --------
    def _block_masks(self, subject, images_u8: Tensor, style_ids: Tensor, device) -> tuple[Tensor, list[str]]:
        images = images_u8.to(device).float() / 127.5 - 1                  # [S,3,H,W], the stored uint8 image
        masks, names = concept_masks(images, segmenter=self._seg)
        if subject.num_styles > 1:   # image-level concept: the whole image is "style:s" when generated toward s
            style = (style_ids.to(device)[:, None] == torch.arange(subject.num_styles, device=device)[None])
            masks = torch.cat([masks, style[:, :, None, None].expand(-1, -1, *masks.shape[-2:])], dim=1)
            names = names + [f"style:{s}" for s in subject.style_names]
        return masks, names

    def _count(self, subject, data, store, layers, regions, device, shard: range, boot: bool):
        """Per block of ``perm_block`` images of this rank's ``shard``, all batched on ``device``
        (no host sync per image): upsample + region a chunk of (image, unit) maps at once, |A∩M|
        as one batched matrix product with the block's masks, the image null as an
        ``embedding_bag`` over the rows of the block's cross-overlap matrix, the spatial null as
        one over the rows of its per-image FFT cross-correlation. Returns this rank's sums (empty
        ones for an empty shard: the caller merges them over ranks)."""
        # the concept names (and K) without an image of this rank: an empty shard has none
        names = (list(CONCEPT_NAMES) + ([f"seg:{x}" for x in self._seg.labels] if self._seg is not None else [])
                 + ([f"style:{x}" for x in subject.style_names] if subject.num_styles > 1 else []))
        K = len(names)
        n_style = subject.num_styles if subject.num_styles > 1 else 0
        style_k = torch.arange(K - n_style, K, device=device)
        n_boot = self.n_boot if boot else 0
        do_img, do_sp = self.null in ("both", "image"), self.null in ("both", "spatial")
        C_of = {n: len(regions[n]["thr"]) for n in layers}
        # [selection half, estimation half] counts (one IoUCounts of all images when not split)
        counts = {n: ([IoUCounts(C_of[n], K, seed=self.seed)] if self._split else [])
                  + [IoUCounts(C_of[n], K, n_boot=n_boot, seed=self.seed)] for n in layers}
        z = lambda *shape: torch.zeros(*shape, device=device)  # noqa: E731
        t_obs = {n: z(K, C_of[n]) for n in layers} if do_img else None                  # [K, C]
        t_null = {n: z(self.n_perm, K, C_of[n]) for n in layers} if do_img else None    # [n_perm, K, C]
        t_free = {n: z(self.n_perm, n_style, C_of[n]) for n in layers} if do_img and n_style else None
        s_obs = {n: z(K, C_of[n]) for n in layers} if do_sp else None
        s_null = {n: z(self.n_perm, K, C_of[n]) for n in layers} if do_sp else None
        s_tol = {n: z(K, C_of[n]) for n in layers} if do_sp else None                   # FFT rounding scale
        chunk = _UNIT_CHUNK if torch.device(device).type != "cpu" else _CPU_CHUNK
        for start in range(shard.start, shard.stop, self.perm_block):
            stop = min(start + self.perm_block, shard.stop)
            images, acts = store.read(start, stop, layers, device)
            strata = data.style_ids[start:stop].to(device)
            masks, names = self._block_masks(subject, images, data.style_ids[start:stop], device)
            S, K, H, W = masks.shape
            r = min(self.test_res, H, W)
            R = r * r
            mf = masks.flatten(2).float()                                     # [S,K,P] 0/1
            area_m = mf.sum(2)                                                # [S,K]
            mt = mf.transpose(1, 2).contiguous()                              # [S,P,K]
            mpool = F.adaptive_avg_pool2d(masks.float(), r)                   # [S,K,r,r]
            img_idx = torch.arange(start, stop, device=device)
            if self._split:
                half = selection_halves(data.style_ids[start:stop],
                                        torch.Generator().manual_seed(_block_seed(self.seed, start, 3))).to(device)
            # drawn where they are used: a host-to-GPU copy per block would make the host wait
            if do_img:
                gen = torch.Generator(device=device).manual_seed(_block_seed(self.seed, start, 0))
                perms = stratified_permutations(torch.rand(self.n_perm, S, generator=gen, device=device), strata)
                if n_style:
                    gen4 = torch.Generator(device=device).manual_seed(_block_seed(self.seed, start, 4))
                    free = torch.argsort(torch.rand(self.n_perm, S, generator=gen4, device=device), dim=1)
                    mp_style = mpool.flatten(2).index_select(1, style_k)          # [S,n_style,R]
            kp = K - n_style     # pixel concepts: the image-level ones have their own image null and no spatial one
            if do_sp:
                gen2 = torch.Generator(device=device).manual_seed(_block_seed(self.seed, start, 2))
                shifts = torch.randint(0, R, (self.n_perm, S), generator=gen2, device=device)
                FM = mask_spectrum(mpool[:, :kp])                             # [S,kp,r,r//2+1]
            for name in layers:
                a = acts[name].float()                                        # [S,C,h,w]
                C = a.shape[1]
                rp = regions[name]
                live = _live(a, rp["thr"], rp["include"])                     # [S,C]
                a = a.contiguous(memory_format=torch.channels_last)   # ~5x faster bilinear upsampling on the CPU
                inter = torch.empty(S, C, K, device=device)
                area_a = torch.empty(S, C, device=device)
                pooled = torch.empty(S, C, R, device=device)
                cu = min(C, max(1, chunk // (H * W)))            # units per chunk
                sj = max(1, chunk // (cu * H * W))               # images per chunk
                for j0 in range(0, S, sj):
                    js = slice(j0, min(j0 + sj, S))
                    for u0 in range(0, C, cu):
                        us = slice(u0, min(u0 + cu, C))
                        A = F.interpolate(a[js, us], size=(H, W), mode="bilinear", align_corners=False)
                        A = unit_regions(A, rp["thr"][us], rp["include"][us], live[js, us], img_idx[js],
                                         torch.arange(u0, us.stop, device=device), self.seed).float()
                        Ap = A.permute(0, 2, 3, 1).reshape(A.shape[0], H * W, A.shape[1])   # [s,P,c], a view
                        inter[js, us] = torch.bmm(Ap.transpose(1, 2), mt[js])               # [s,c,P] @ [s,P,K]
                        area_a[js, us] = Ap.sum(1)
                        pooled[js, us] = F.adaptive_avg_pool2d(A, r).flatten(2)
                # the block's own bootstrap weights (seeded by its start), merged into the layer's
                # replicate sums: integer counts x integer weights, exact in float64 in any order
                est = IoUCounts(C, K, n_boot=n_boot, seed=_block_seed(self.seed, start, 1))
                if self._split:
                    sel = IoUCounts(C, K)
                    if bool(half.any()):
                        sel.add(inter[half], area_a[half], area_m[half])
                        counts[name][0].merge(sel)
                    if bool((~half).any()):
                        est.add(inter[~half], area_a[~half], area_m[~half])
                        counts[name][1].merge(est)
                else:
                    est.add(inter, area_a, area_m)
                    counts[name][0].merge(est)
                if do_img:   # permutation_sums: the cross overlaps of the block's images, rows gathered per permutation
                    step = max(1, _UNIT_CHUNK // (S * S * K))
                    for c0 in range(0, C, step):
                        cs = slice(c0, min(c0 + step, C))
                        obs, null = permutation_sums(pooled[:, cs], mpool.flatten(2)[:, :kp], perms)
                        t_obs[name][:kp, cs] += obs
                        t_null[name][:, :kp, cs] += null
                        if n_style:   # image-level concepts: permuted across all of the block's images
                            obs, null = permutation_sums(pooled[:, cs], mp_style, free)
                            t_obs[name][kp:, cs] += obs
                            t_free[name][:, :, cs] += null
                if do_sp:    # shift_sums: every shift of every image's masks by FFT, rows gathered per replicate
                    step = max(1, _UNIT_CHUNK // (S * R * kp * 3))
                    for c0 in range(0, C, step):
                        cs = slice(c0, min(c0 + step, C))
                        obs, null, scale = shift_sums(pooled[:, cs], mpool[:, :kp], shifts, r, m_fft=FM)
                        s_obs[name][:kp, cs] += obs
                        s_null[name][:, :kp, cs] += null
                        s_tol[name][:kp, cs] += scale
        return {"counts": counts, "t_obs": t_obs, "t_null": t_null, "t_free": t_free, "s_obs": s_obs, "s_null": s_null,
                "s_tol": s_tol, "names": names, "n_style": n_style}

    # -- tables --------------------------------------------------------------------------------
    def _tables(self, layers, regions, res) -> dict:
        names, n_style = res["names"], res["n_style"]
        long_rows, per_unit = [], []
        nonfinite = {"reps": 0, "units": 0, "no_ci": 0}
        for name in layers:
            cnt = res["counts"][name]
            if self._split:
                sel, est = cnt
                iou_all = IoUCounts._iou(sel.inter + est.inter, sel.area_u + est.area_u,
                                         sel.area_m + est.area_m).cpu().numpy()          # [C,K] every image
                iou_sel = sel.iou().cpu().numpy()
                iou_est = est.iou().cpu().numpy()
                best = iou_sel.argmax(1)
            else:
                est = cnt[0]
                iou_all = iou_sel = iou_est = est.iou().cpu().numpy()
                best = iou_all.argmax(1)
            C, K = iou_all.shape
            rows = np.arange(C)
            if est.n_boot and est.boot is not None:   # CIs of each unit's chosen concept only (the units table's)
                lo, hi, bad = (t.cpu().numpy() for t in est.ci(concepts=torch.from_numpy(best),
                                                               return_nonfinite=True))
                nonfinite["reps"] += int(bad.sum())
                nonfinite["units"] += int((bad > 0).sum())
                nonfinite["no_ci"] += int((bad >= est.n_boot).sum())
            else:
                lo = hi = np.full(C, np.nan)
            p_img = p_sp = None
            if res["t_obs"] is not None:
                obs = res["t_obs"][name][None]                                       # [1,K,C]
                null = res["t_null"][name]
                if n_style:   # image-level concepts: the unstratified permutations
                    null = torch.cat([null[:, :K - n_style], res["t_free"][name]], dim=1)
                p_img = perm_pvalue(null, obs[0], rtol=1e-5).t().cpu().numpy()                 # [C,K]
            if res["s_obs"] is not None:
                p_sp = perm_pvalue(res["s_null"][name], res["s_obs"][name],
                                   atol=1e-5 * res["s_tol"][name]).t().cpu().numpy()
                if n_style:
                    p_sp[:, K - n_style:] = np.nan       # a shift leaves a whole-image mask unchanged
            if p_img is not None and p_sp is not None:
                p = np.fmax(p_img, p_sp)
            else:
                p = p_img if p_img is not None else p_sp
            nan = np.full((C, K), np.nan)
            unit, concept = np.meshgrid(np.arange(C), np.arange(K), indexing="ij")
            long_rows.append(pd.DataFrame({"layer": name, "unit": unit.ravel(),
                                           "concept": np.array(names)[concept.ravel()], "iou": iou_all.ravel(),
                                           "p_value": p.ravel(),
                                           "p_image": (p_img if p_img is not None else nan).ravel(),
                                           "p_spatial": (p_sp if p_sp is not None else nan).ravel()}))
            rp = regions[name]
            per_unit.append(pd.DataFrame({
                "layer": name, "unit": rows, "concept": np.array(names)[best], "iou": iou_est[rows, best],
                "ci_low": lo, "ci_high": hi, "p_value": p[rows, best],
                "p_image": (p_img if p_img is not None else nan)[rows, best],
                "p_spatial": (p_sp if p_sp is not None else nan)[rows, best],
                "iou_all": iou_all[rows, best], "iou_select": iou_sel[rows, best],
                "threshold": rp["thr"].cpu().numpy(), "tie_mass": rp["tied"].cpu().numpy(),
                "tie_included": rp["include"].cpu().numpy()}))
        long = pd.concat(long_rows, ignore_index=True)
        long["q_value"] = bh_qvalues(long["p_value"].to_numpy())
        units = pd.concat(per_unit, ignore_index=True)
        q_of = long.set_index(["layer", "unit", "concept"])["q_value"]
        units["q_value"] = q_of.loc[list(zip(units["layer"], units["unit"], units["concept"]))].to_numpy()
        units["labelled"] = (units["iou"] > self.iou_threshold) & (units["q_value"] < self.alpha)
        units["label"] = np.where(units["labelled"], units["concept"], "")
        cols = ["layer", "unit", "concept", "iou", "ci_low", "ci_high", "p_value", "q_value", "label", "labelled",
                "p_image", "p_spatial", "iou_all", "iou_select", "threshold", "tie_mass", "tie_included"]
        return {"units": units[cols], "long": long, "nonfinite": nonfinite}

    # -- the Finding ---------------------------------------------------------------------------
    def _finding(self, subject, data, out, ctrl, draws=()) -> Finding:
        layers, units, long, stats = out["layers"], out["units"], out["long"], out["stats"]
        world = rank_and_world()[1]
        t = self.name        # "dissection"; a subclass' own name keeps its tables apart in a report
        tables = {f"{t}_units": units, f"{t}_iou": long, f"{t}_top": self._top_table(units, out["top_idx"])}
        notes = []
        for n in layers:
            nan = int(stats[n]["q"].nan_count.sum()) if stats[n]["q"].nan_count is not None else 0
            if nan:
                notes.append(f"{n}: {nan} NaN activations were counted and left out of the statistics")
        notes += [f"skipped layer {k}: {v}" for k, v in out["skipped"].items()]
        nulls = {"both": "p_value = max(p_image, p_spatial): a label needs both nulls",
                 "image": "p_value = p_image only (null='image')",
                 "spatial": "p_value = p_spatial only (null='spatial')"}[self.null]
        notes.append(f"{len(data)} images; p_image: {self.n_perm} permutations of the concept masks across images "
                     f"within blocks of {self.perm_block} images and within each target style ('style:*' concepts: "
                     f"across the block); p_spatial: {self.n_perm} random circular shifts of each image's concept "
                     f"masks within the image (NaN for image-level concepts); {nulls}; both at "
                     f"{self.test_res}px; q: BH over {len(long)} tests")
        if self._split:
            notes.append(f"winner's curse: each unit's concept is chosen on a random half of the images (per block, "
                         f"balanced per style) and its iou and CI (Poisson bootstrap, {self.n_boot} replicates) are "
                         f"measured on the other half; iou_all is the same concept's IoU on all images (biased "
                         f"upwards when concepts are close)")
        else:
            why = ("select='none'" if self.select == "none" else
                   f"only {len(data)} images (the split needs {2 * MIN_SAMPLES_FOR_CI})")
            notes.append(f"winner's curse not corrected ({why}): each unit's concept is its best on all images and "
                         f"its CI (Poisson bootstrap, {self.n_boot} replicates) is measured on the same images, so it "
                         f"is optimistic when several concepts are close")
        nf = out["nonfinite"]
        if nf["reps"]:
            notes.append(f"bootstrap: {nf['reps']} replicates of {nf['units']} units had an empty union (no IoU) and "
                         f"were left out of their CIs" + (f"; {nf['no_ci']} units have no CI at all (NaN)"
                                                          if nf["no_ci"] else ""))
        fl = floor_note(long["p_value"].to_numpy(float), self.n_perm, what="tests", min_share=0, alpha=self.alpha)
        notes += [fl] if fl else []
        tied = units[units.tie_mass > 0]
        if len(tied):
            inc = tied.tie_included
            notes.append(f"ties at the threshold: {len(tied)} units have values tied at their quantile "
                         f"({int((inc >= 1).sum())} at their maximum, all tied values in the region; "
                         f"{int((inc <= 0).sum())} at their floor, none; {int(((inc > 0) & (inc < 1)).sum())} "
                         f"split at random, seeded)" + (" (ties='strict': ties left out)" if self.ties == "strict"
                                                        else ""))
        if ctrl is not None:
            tables[f"{t}_control"] = c = self._control_table(layers, units, long, ctrl)
            tables[f"{t}_control_draws"] = self._draws_table(layers, draws)
            tot = c[c.layer == "all"].iloc[0]
            seed = self.seed if self.control_seed is None else self.control_seed
            if len(draws) > 1:
                notes.append(f"random-init control: {len(draws)} draws (seeds {seed}..{draws[-1][1]}); the verdict "
                             "compares the trained rate with the draws' spread (docs/statistics.md), the table "
                             "below shows draw 0")
            notes.append(f"random-init control (seed {seed}: the same architecture at PyTorch's default "
                         f"initialisation, the same inputs, layers, thresholds rule, nulls and a BH of its own): "
                         f"{tot.frac_trained:.1%} of units labelled trained, {tot.frac_control:.1%} at random init; "
                         f"tests at q < {self.alpha}: {tot.tests_q05_trained:.1%} trained, "
                         f"{tot.tests_q05_control:.1%} at random init")
        if out["spilled"]:
            notes.append(f"activation store spilled {out['spilled'] / 2**20:.0f} MiB to a temporary directory"
                         + (" (on this rank)" if world > 1 else ""))
        if world > 1:
            notes.append(f"sharded over {world} ranks (whole blocks of {self.perm_block} images each); thresholds "
                         f"from the merged quantile sketches, within the sketch's error of one pass")
        return Finding(analysis=self.name, params=self.params(), tables=tables, arrays=out["arrays"], notes=notes,
                       provenance={"data_fingerprint": data.fingerprint, "seed": self.seed,
                                   **{k: v for k, v in subject.meta.items() if k in ("sha256", "checkpoint")}})

    def _control_table(self, layers, units, long, ctrl) -> pd.DataFrame:
        cu, cl = ctrl["units"], ctrl["long"]
        rows = []
        for layer in list(layers) + ["all"]:
            sel = (lambda d: d) if layer == "all" else (lambda d, L=layer: d[d.layer == L])
            u, l, v, w = sel(units), sel(long), sel(cu), sel(cl)
            rows.append({"layer": layer, "units": len(u),
                         "labelled_trained": int(u.labelled.sum()), "labelled_control": int(v.labelled.sum()),
                         "frac_trained": float(u.labelled.mean()) if len(u) else np.nan,
                         "frac_control": float(v.labelled.mean()) if len(v) else np.nan,
                         "tests_q05_trained": float((l.q_value < self.alpha).mean()) if len(l) else np.nan,
                         "tests_q05_control": float((w.q_value < self.alpha).mean()) if len(w) else np.nan})
        return pd.DataFrame(rows)

    @staticmethod
    def _draws_table(layers, draws) -> pd.DataFrame:
        """One row per (layer, draw) and an "all" row per draw: units and units labelled in that draw."""
        rows = []
        for j, seed, c in draws:
            cu = c["units"]
            for layer in list(layers) + ["all"]:
                u = cu if layer == "all" else cu[cu.layer == layer]
                k = int(u.labelled.sum()) if len(u) else 0
                rows.append({"layer": layer, "draw": j, "seed": seed, "units": len(u), "labelled": k,
                             "rate": k / len(u) if len(u) else np.nan})
        return pd.DataFrame(rows, columns=["layer", "draw", "seed", "units", "labelled", "rate"])

    def _top_order(self, units: pd.DataFrame) -> np.ndarray:
        """Rows of the units to show: labelled ones first, then by IoU."""
        key = units["labelled"].astype(float).to_numpy() * 10 + units["iou"].to_numpy()
        return np.argsort(-key, kind="stable")[: self.n_show]

    def _top_table(self, units: pd.DataFrame, top_idx: np.ndarray) -> pd.DataFrame:
        rows = self._top_order(units)
        df = units.iloc[rows][["layer", "unit", "concept", "iou", "q_value", "label"]].reset_index(drop=True)
        df.insert(0, "rank", np.arange(1, len(df) + 1))
        df["row"] = rows
        df["images"] = [" ".join(map(str, top_idx[r][top_idx[r] >= 0])) for r in rows]
        return df

    def _showcase(self, store: ActivationStore, units: pd.DataFrame, top_idx: np.ndarray, shard: range,
                  regions: dict) -> dict[str, np.ndarray]:
        """Thumbnails [T,k,h,w,3] uint8, unit maps upsampled to them [T,k,h,w] and the unit's
        region (the same tie-aware region the IoU counted, at the image size, area-averaged to the
        thumbnail: the share of each thumbnail pixel in the region) [T,k,h,w] for the report.

        Each image (and unit map) comes from the rank that stored it: every rank takes the ones
        in its shard and the ranks swap them (a collective), so every rank builds the same arrays."""
        wanted = {int(r): [int(i) for i in top_idx[r] if i >= 0] for r in self._top_order(units)}
        mine: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        with fail_together("dissection: showcase"):
            for r, idx in wanted.items():
                own = [i for i in idx if i in shard]
                if own:
                    layer, unit = units["layer"].iloc[r], int(units["unit"].iloc[r])
                    for i, img, m in zip(own, store.take(own), store.take(own, layer, unit)):
                        mine[(r, i)] = (img, m)
        got: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        for part in all_gather_objects(mine):
            got.update(part)
        thumbs, maps, masks = [], [], []
        for r, idx in wanted.items():
            if not idx:
                continue
            img = torch.from_numpy(np.stack([got[(r, i)][0] for i in idx])).permute(0, 3, 1, 2).float()  # [k,3,H,W]
            m = torch.from_numpy(np.stack([got[(r, i)][1] for i in idx]))[:, None].float()               # [k,1,h,w]
            H, W = img.shape[-2:]
            layer, unit = units["layer"].iloc[r], int(units["unit"].iloc[r])
            rp = {k: v[unit:unit + 1].cpu() for k, v in regions[layer].items() if k in ("thr", "include")}
            live = _live(m, rp["thr"], rp["include"])
            up = F.interpolate(m.contiguous(memory_format=torch.channels_last), size=(H, W), mode="bilinear",
                               align_corners=False)
            reg = unit_regions(up, rp["thr"], rp["include"], live, torch.tensor(idx), torch.tensor([unit]),
                               self.seed).float()                                                  # [k,1,H,W]
            size = (min(H, _THUMB), min(W, _THUMB))
            img = F.interpolate(img, size=size, mode="area") if size != (H, W) else img
            reg = F.interpolate(reg, size=size, mode="area") if size != (H, W) else reg
            m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
            pad = self.top_k - len(idx)   # fewer images than top_k: pad with blanks
            thumbs.append(F.pad(img, (0, 0, 0, 0, 0, 0, 0, pad)).round().clamp(0, 255).to(torch.uint8)
                          .permute(0, 2, 3, 1).numpy())
            maps.append(F.pad(m[:, 0], (0, 0, 0, 0, 0, pad), value=float("nan")).numpy().astype(np.float32))
            masks.append(F.pad(reg[:, 0], (0, 0, 0, 0, 0, pad), value=float("nan")).numpy().astype(np.float32))
        if not thumbs:
            return {}
        return {"top_images": np.stack(thumbs), "top_maps": np.stack(maps), "top_masks": np.stack(masks)}
