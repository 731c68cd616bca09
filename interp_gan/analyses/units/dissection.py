"""Channel dissection: which units fire on which concepts of the generated image.

    finding = Dissection(layers=["blocks.*.conv2"], quantile=0.99).run(subject, data)
    finding.tables["dissection_units"]   # layer, unit, concept, iou, ci_low, ci_high, p_value, q_value, label, ...
    finding.tables["dissection_iou"]     # layer, unit, concept, iou, p_value, q_value (long, for heatmaps)

GAN Dissection (Bau et al., ICLR 2019; Network Dissection, Bau et al., CVPR 2017): a unit's
region is where its activation, bilinearly upsampled to the image, exceeds the unit's
``quantile`` (top 1%) over the whole data set; its IoU with a concept mask is summed over the
data set, IoU = Σ|A∩M| / Σ|A∪M| (not an average of per-image IoUs); the unit's label is its
best concept when that IoU exceeds ``iou_threshold`` and the test below is significant.

How it runs (one forward pass; measured cost in ``benchmarks/dissection_cost.py``):
1. one forward per batch: a KLL quantile sketch and a top-k per unit are fed, and the unit maps
   (at their own, low resolution) plus the generated image (uint8) go to an
   ``ActivationStore`` (kept on the model's device up to ``memory_mb``, then a temporary
   directory: memory flat in N);
2. thresholds = the sketch's quantiles; then the store is read back in blocks of
   ``perm_block`` images, everything batched on the model's device (no host sync per image):
   concept masks are computed once per block on the generated images
   (``concepts.concept_masks`` + one image-level mask per target style); the unit maps of a
   chunk of images x units are upsampled at once (bilinear, channels-last), thresholded in
   place, and |A∩M| for all (image, unit, concept) is one batched matrix product with the
   block's masks; |A| and the area-pooled regions come from the same chunk. A region is
   activation > threshold (strict, so a ReLU unit that is 0 on >99% of pixels gets only its
   non-zero pixels); an (image, unit) pair whose low-res max is not above the threshold has no
   region (a bilinear map never exceeds its largest input). Counts are exact in float32.
Statistics:
- CI: Poisson bootstrap over images on the per-image count vectors (``IoUCounts``, ``n_boot``).
- p-value: permutation test of "the unit's region and the concept's mask fall on the same
  image more than on a random other image" — masks are shuffled across images *within blocks
  of perm_block images* (a restricted permutation, valid when images are exchangeable). For a
  block the cross overlaps X[j, l] = <A_j, M_l> of every pair are one matrix product, so each of
  the ``n_perm`` permutations is a sum of S gathered rows (one ``embedding_bag`` for all); the
  statistic is the summed overlap Σ_j X[j,π(j)] at ``test_res`` x ``test_res`` resolution
  (area-pooled A and M; the same statistic for the observed and the shuffled pairing, so the
  test is exact in the permutation sense). Because
  the totals Σ|A| and Σ|M| do not change under shuffling, this is the same test as one on the
  IoU at that resolution. p = (1 + #{null >= obs}) / (1 + n_perm) (Phipson & Smyth 2010), so
  the smallest p is 1/(1+n_perm): raise n_perm when there are many units × concepts.
  A unit that encodes a fixed spatial prior (e.g. "top of the image" = sky) is not significant
  under this null — it tests image-specific co-location. A randomly initialised generator is
  not a null for it: its units do drive its output colours image by image, and they get
  labelled (tests/analyses/test_dissection.py measures both this and the false-label rate
  under an exact null built from a random generator).
- q-values: Benjamini-Hochberg over all unit × concept tests of all layers.

Randomness is drawn per block, from generators seeded by (``seed``, the block's first image):
the block's permutations and its images' Poisson bootstrap weights. So the result does not
depend on which process handled which block.

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

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from interp_gan.analyses.base import Analysis, AnalysisData, register_analysis
from interp_gan.analyses.units.concepts import CONCEPT_NAMES, Segmenter, concept_masks, resolve_segmenter
from interp_gan.harvest.distributed import (all_gather_objects, all_merge, all_sum, fail_together, rank_and_world,
                                             shard_indices)
from interp_gan.harvest.store import ActivationStore, harvest
from interp_gan.harvest.hooks import resolve_layers, spatial_layers
from interp_gan.harvest.stats import IoUCounts, Quantile, TopK
from interp_gan.findings import Finding
from interp_gan.findings.stats import MIN_SAMPLES_FOR_CI, bh_qvalues, require_samples

__all__ = ["Dissection"]

_THUMB = 64          # thumbnails and overlay maps in the Finding are at most 64 x 64
_UNIT_CHUNK = 2 ** 24  # elements of upsampled maps held at once (and of a cross-overlap matrix)
_CPU_CHUNK = 2 ** 20   # on the CPU smaller chunks stay in cache between upsample, threshold and product


def _block_seed(seed: int, start: int, stream: int) -> int:
    """A seed for the block of images starting at ``start`` (stream 0: permutations, 1: bootstrap)."""
    return int(np.random.SeedSequence([seed % 2 ** 64, start, stream]).generate_state(1, np.uint64)[0])


def _to_uint8(images: Tensor) -> Tensor:
    """[N,3,H,W] in [-1,1] -> [N,3,H,W] uint8, on the images' device."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


@register_analysis(
    "dissection", title="Channel dissection", order=20,
    references=("bau2017netdissect", "bau2019gandissect", "karnin2016kll", "efron1993bootstrap", "benjamini1995fdr"),
    fast=dict(layers=["blocks.*.conv2"], n_boot=20, n_perm=20))
class Dissection(Analysis):
    """GAN Dissection with bootstrap CIs, permutation p-values and BH q-values (module docstring)."""
    sharded = True   # run() splits the images across torch.distributed ranks and merges (module docstring)

    def __init__(self, *, layers: list[str] | None = None, quantile: float = 0.99, iou_threshold: float = 0.04,
                 alpha: float = 0.05, n_boot: int = 500, n_perm: int = 1000, perm_block: int = 32,
                 test_res: int = 16, top_k: int = 4, n_show: int = 8, memory_mb: float = 1024,
                 sketch_k: int = 1024, segmenter: Segmenter | str | None = None, seed: int = 0) -> None:
        self.layers, self.quantile, self.iou_threshold, self.alpha = layers, quantile, iou_threshold, alpha
        self.segmenter = segmenter
        self.n_boot, self.n_perm, self.perm_block, self.test_res = n_boot, n_perm, perm_block, test_res
        self.top_k, self.n_show, self.memory_mb, self.sketch_k, self.seed = top_k, n_show, memory_mb, sketch_k, seed

    # ----------------------------------------------------------------------------------------
    def run(self, subject, data: AnalysisData) -> Finding:
        if not 0.5 <= self.quantile < 1:
            raise ValueError(f"quantile must be in [0.5, 1), got {self.quantile}; GAN Dissection uses 0.99")
        if self.perm_block < 2:
            raise ValueError(f"perm_block must be >= 2 images (a permutation needs two), got {self.perm_block}")
        require_samples(len(data), "images", need=max(MIN_SAMPLES_FOR_CI, 2))
        G = subject.generator
        layers = resolve_layers(G, self.layers) if self.layers else spatial_layers(G)
        if not layers:
            return Finding.skip(self.name, "the generator has no conv layers and no layers were given; "
                                "pass layers=[...] (named_modules() names)", self.params())
        subject.eval()
        device = subject.device
        self._seg = resolve_segmenter(self.segmenter)   # adds "seg:<label>" concepts (concepts.py)

        # this rank's whole permutation blocks (all of them in one process)
        shard = shard_indices(len(data), block=self.perm_block)

        # -- pass 1: one forward per batch; sketch, top-k, and the store --------------------------
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
                thresholds = {n: stats[n]["q"].quantile(self.quantile).to(device) for n in layers}
                counts, t_obs, t_null, names = self._count(subject, data, store, layers, thresholds, device, shard)
            for name in layers:   # the same order on every rank (collectives)
                all_merge(counts[name])
                all_sum(t_obs[name])
                all_sum(t_null[name])
            finding = self._finding(subject, data, store, stats, layers, thresholds, counts, t_obs, t_null,
                                    names, skipped, shard)
        finally:
            store.close()
        return finding

    # -- pass 2: per-image counts, bootstrap and permutation statistics from the store --------
    def _block_masks(self, subject, images_u8: Tensor, style_ids: Tensor, device) -> tuple[Tensor, list[str]]:
        images = images_u8.to(device).float() / 127.5 - 1                  # [S,3,H,W], the stored uint8 image
        masks, names = concept_masks(images, segmenter=self._seg)
        if subject.num_styles > 1:   # image-level concept: the whole image is "style:s" when generated toward s
            style = (style_ids.to(device)[:, None] == torch.arange(subject.num_styles, device=device)[None])
            masks = torch.cat([masks, style[:, :, None, None].expand(-1, -1, *masks.shape[-2:])], dim=1)
            names = names + [f"style:{s}" for s in subject.style_names]
        return masks, names

    def _count(self, subject, data, store, layers, thresholds, device, shard: range):
        """Per block of ``perm_block`` images of this rank's ``shard``, all batched on ``device``
        (no host sync per image): upsample + threshold a chunk of (image, unit) maps at once,
        |A∩M| as one batched matrix product with the block's masks, and the permutation null as
        an ``embedding_bag`` over the rows of the block's cross-overlap matrix. Returns this
        rank's sums (empty ones for an empty shard: the caller merges them over ranks)."""
        # the concept names (and K) without an image of this rank: an empty shard has none
        names = (list(CONCEPT_NAMES) + ([f"seg:{x}" for x in self._seg.labels] if self._seg is not None else [])
                 + ([f"style:{x}" for x in subject.style_names] if subject.num_styles > 1 else []))
        K = len(names)
        counts = {n: IoUCounts(len(thresholds[n]), K, n_boot=self.n_boot, seed=self.seed) for n in layers}
        t_obs = {n: torch.zeros(K, len(thresholds[n]), device=device) for n in layers}                # [K, C]
        t_null = {n: torch.zeros(self.n_perm, K, len(thresholds[n]), device=device) for n in layers}  # [n_perm, K, C]
        chunk = _UNIT_CHUNK if torch.device(device).type != "cpu" else _CPU_CHUNK
        for start in range(shard.start, shard.stop, self.perm_block):
            stop = min(start + self.perm_block, shard.stop)
            images, acts = store.read(start, stop, layers, device)
            masks, names = self._block_masks(subject, images, data.style_ids[start:stop], device)
            S, K, H, W = masks.shape
            r = min(self.test_res, H, W)
            mf = masks.flatten(2).float()                                     # [S,K,P] 0/1
            area_m = mf.sum(2)                                                # [S,K]
            mt = mf.transpose(1, 2).contiguous()                              # [S,P,K]
            mp = F.adaptive_avg_pool2d(masks.float(), r).reshape(S * K, r * r)  # [(l,k), R]
            # drawn where they are used: a host-to-GPU copy per block would make the host wait
            gen = torch.Generator(device=device).manual_seed(_block_seed(self.seed, start, 0))
            perms = torch.argsort(torch.rand(self.n_perm, S, generator=gen, device=device), dim=1)  # [B,S]
            ar = torch.arange(S, device=device)
            pairs = ar[None, :] * S + perms                                   # rows (j, pi(j)) of X
            diag = ar * S + ar
            for name in layers:
                a = acts[name].float()                                        # [S,C,h,w]
                C = a.shape[1]
                thr = thresholds[name]
                # A bilinear map never exceeds the largest of its inputs: only (image, unit) pairs
                # whose low-res max is above the threshold can have a region; the others get an
                # infinite threshold (this also keeps interpolation rounding from creating one).
                live = torch.nan_to_num(a, nan=float("-inf")).flatten(2).amax(2) > thr[None]   # [S,C]
                thr_sc = torch.where(live, thr[None], torch.full_like(live, float("inf"), dtype=a.dtype))
                a = a.contiguous(memory_format=torch.channels_last)   # ~5x faster bilinear upsampling on the CPU
                inter = torch.empty(S, C, K, device=device)
                area_a = torch.empty(S, C, device=device)
                pooled = torch.empty(S, C, r * r, device=device)
                cu = min(C, max(1, chunk // (H * W)))            # units per chunk
                sj = max(1, chunk // (cu * H * W))               # images per chunk
                for j0 in range(0, S, sj):
                    js = slice(j0, min(j0 + sj, S))
                    for u0 in range(0, C, cu):
                        us = slice(u0, min(u0 + cu, C))
                        A = F.interpolate(a[js, us], size=(H, W), mode="bilinear", align_corners=False)
                        A = A.gt_(thr_sc[js, us, None, None])     # in place: 1. in the region, else 0. (NaN: 0.)
                        Ap = A.permute(0, 2, 3, 1).reshape(A.shape[0], H * W, A.shape[1])   # [s,P,c], a view
                        inter[js, us] = torch.bmm(Ap.transpose(1, 2), mt[js])               # [s,c,P] @ [s,P,K]
                        area_a[js, us] = Ap.sum(1)
                        pooled[js, us] = F.adaptive_avg_pool2d(A, r).flatten(2)
                # the block's own bootstrap weights (seeded by its start), merged into the layer's
                # replicate sums: integer counts x integer weights, exact in float64 in any order
                block = IoUCounts(C, K, n_boot=self.n_boot, seed=_block_seed(self.seed, start, 1))
                block.add(inter, area_a, area_m)
                counts[name].merge(block)
                # X[j, (l,k), c] = <A_{j,c}, M_{l,k}> at r x r; viewed as rows (j,l) x columns (k,c),
                # the observed statistic sums the rows (j,j), permutation b the rows (j, pi_b(j)).
                step = max(1, _UNIT_CHUNK // (S * S * K))
                for c0 in range(0, C, step):
                    cs = slice(c0, min(c0 + step, C))
                    X = torch.matmul(mp, pooled[:, cs].transpose(1, 2)).view(S * S, -1)   # [(j,l), (k,c)]
                    t_obs[name][:, cs] += X.index_select(0, diag).sum(0).view(K, -1)
                    t_null[name][:, :, cs] += F.embedding_bag(pairs, X, mode="sum").view(self.n_perm, K, -1)
        return counts, t_obs, t_null, names

    # -- tables, arrays, notes -----------------------------------------------------------------
    def _finding(self, subject, data, store, stats, layers, thresholds, counts, t_obs, t_null, names, skipped,
                 shard: range):
        long_rows, per_unit = [], []
        for name in layers:
            iou = counts[name].iou().cpu().numpy()                                  # [C,K]
            C, K = iou.shape
            best = iou.argmax(1)
            if self.n_boot:   # CIs of each unit's best concept only (the units table's)
                lo, hi = (t.cpu().numpy() for t in counts[name].ci(concepts=torch.from_numpy(best)))
            else:
                lo = hi = np.full(C, np.nan)
            obs = t_obs[name][None]                                                 # [1,K,C]
            p = ((1 + (t_null[name] >= obs * (1 - 1e-5)).sum(0)) / (1 + self.n_perm)).t().cpu().numpy()  # [C,K]
            thr = thresholds[name].cpu().numpy()
            unit, concept = np.meshgrid(np.arange(C), np.arange(K), indexing="ij")
            long_rows.append(pd.DataFrame({"layer": name, "unit": unit.ravel(), "concept": np.array(names)[concept.ravel()],
                                           "iou": iou.ravel(), "p_value": p.ravel()}))
            per_unit.append(pd.DataFrame({"layer": name, "unit": np.arange(C), "concept": np.array(names)[best],
                                          "iou": iou[np.arange(C), best], "ci_low": lo,
                                          "ci_high": hi, "p_value": p[np.arange(C), best],
                                          "threshold": thr, "_best": best}))
        long = pd.concat(long_rows, ignore_index=True)
        long["q_value"] = bh_qvalues(long["p_value"].to_numpy())
        units = pd.concat(per_unit, ignore_index=True)
        q_of = long.set_index(["layer", "unit", "concept"])["q_value"]
        units["q_value"] = q_of.loc[list(zip(units["layer"], units["unit"], units["concept"]))].to_numpy()
        units["labelled"] = (units["iou"] > self.iou_threshold) & (units["q_value"] < self.alpha)
        units["label"] = np.where(units["labelled"], units["concept"], "")
        units = units.drop(columns="_best")
        cols = ["layer", "unit", "concept", "iou", "ci_low", "ci_high", "p_value", "q_value", "label", "labelled",
                "threshold"]
        units = units[cols]

        top_idx = np.concatenate([stats[n]["top"].indices.cpu().numpy() for n in layers])   # [U,k] row-aligned
        top_val = np.concatenate([stats[n]["top"].values.cpu().numpy() for n in layers])
        arrays = {"topk_index": top_idx.astype(np.int64), "topk_value": top_val.astype(np.float32)}
        arrays.update(self._showcase(store, units, top_idx, shard))

        world = rank_and_world()[1]
        notes = []
        for n in layers:
            nan = int(stats[n]["q"].nan_count.sum()) if stats[n]["q"].nan_count is not None else 0
            if nan:
                notes.append(f"{n}: {nan} NaN activations were counted and left out of the statistics")
        notes += [f"skipped layer {k}: {v}" for k, v in skipped.items()]
        notes.append(f"{len(data)} images; p-values: {self.n_perm} within-block permutations "
                     f"(blocks of {self.perm_block} images, {self.test_res}px test resolution); "
                     f"CI: Poisson bootstrap, {self.n_boot} replicates; q: BH over {len(long)} tests")
        if store.spilled:
            notes.append(f"activation store spilled {store.spilled / 2**20:.0f} MiB to a temporary directory"
                         + (" (on this rank)" if world > 1 else ""))
        if world > 1:
            notes.append(f"sharded over {world} ranks (whole blocks of {self.perm_block} images each); thresholds "
                         f"from the merged quantile sketches, within the sketch's error of one pass")
        return Finding(analysis=self.name, params=self.params(),
                       tables={"dissection_units": units, "dissection_iou": long,
                               "dissection_top": self._top_table(units, top_idx)},
                       arrays=arrays, notes=notes,
                       provenance={"data_fingerprint": data.fingerprint, "seed": self.seed,
                                   **{k: v for k, v in subject.meta.items() if k in ("sha256", "checkpoint")}})

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

    def _showcase(self, store: ActivationStore, units: pd.DataFrame, top_idx: np.ndarray, shard: range
                  ) -> dict[str, np.ndarray]:
        """Thumbnails [T,k,h,w,3] uint8 and unit maps upsampled to them [T,k,h,w] for the report.

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
        thumbs, maps = [], []
        for r, idx in wanted.items():
            img = torch.from_numpy(np.stack([got[(r, i)][0] for i in idx])).permute(0, 3, 1, 2).float()  # [k,3,H,W]
            m = torch.from_numpy(np.stack([got[(r, i)][1] for i in idx]))[:, None]
            H, W = img.shape[-2:]
            size = (min(H, _THUMB), min(W, _THUMB))
            img = F.interpolate(img, size=size, mode="area") if size != (H, W) else img
            m = F.interpolate(m.float(), size=size, mode="bilinear", align_corners=False)
            pad = self.top_k - len(idx)   # fewer images than top_k: pad with blanks
            thumbs.append(F.pad(img, (0, 0, 0, 0, 0, 0, 0, pad)).round().clamp(0, 255).to(torch.uint8)
                          .permute(0, 2, 3, 1).numpy())
            maps.append(F.pad(m[:, 0], (0, 0, 0, 0, 0, pad), value=float("nan")).numpy().astype(np.float32))
        if not thumbs:
            return {}
        return {"top_images": np.stack(thumbs), "top_maps": np.stack(maps)}
