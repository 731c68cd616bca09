"""2-D maps of style codes and of per-image activation summaries, coloured by style.

    f = build_analysis("embedding", spaces=("style_code", "activation"), layer="blocks.3").run(subject, data)
    f.tables["embedding"]           # space, method, x, y, style, style_id, image
    f.tables["embedding_quality"]   # space, method, knn_accuracy, chance, trustworthiness, n

Spaces: ``style_code`` (``n_samples`` mapping-network outputs, styles balanced),
``reference_code`` (the style encoder's codes of up to ``n_samples`` real style images: StarGAN
v2's reference-guided path; skipped with a note when the subject has no style encoder or the
data no style images) and ``activation`` (channel means of ``layer`` for each data image,
generated toward its style). When both code spaces are embedded, ``embedding_quality`` also has
a row (space ``reference_code``, method ``vs_mapping``) with the share of reference codes whose
k nearest mapping codes vote for the reference image's own style: whether the encoder puts a
style image where the mapping network puts that style (Choi et al. CVPR 2020 train both to
meet).
Methods: UMAP (McInnes, Healy & Melville 2018, umap-learn) and PCA. With fewer than
``min_umap`` points UMAP's neighbourhood graph is meaningless, so only PCA is run (a note says
so). The first UMAP fit in a process pays for numba's compilation (about 8 s measured on 2 CPU cores); a line
is printed before it. ``embedding_quality`` says how well each 2-D map keeps styles apart:
leave-one-out kNN accuracy (also in the original space, method ``original``) against the
majority-class rate, and sklearn's trustworthiness (Venna & Kaski 2001) of the neighbourhoods.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from interp_gan.analyses.cost import Cost, UnitCosts
from interp_gan.analyses.base import Analysis, AnalysisData, register_analysis
from interp_gan.analyses.common import channel_means
from interp_gan.harvest.hooks import default_unit_layer, get_module
from interp_gan.findings import Finding

__all__ = ["Embedding", "knn_accuracy", "cross_knn_accuracy", "embed_2d"]

_UMAP_COMPILED = False


def _knn_vote(x: np.ndarray, x_ref: np.ndarray, labels_ref: np.ndarray, k: int, self_match: bool) -> np.ndarray:
    """Majority label (ties to the lowest) of each row of x among its k nearest rows of x_ref;
    ``self_match``: x is x_ref and a point does not vote for itself (leave-one-out)."""
    d = ((x[:, None, :] - x_ref[None, :, :]) ** 2).sum(-1)
    if self_match:
        np.fill_diagonal(d, np.inf)
    nn_idx = np.argsort(d, axis=1)[:, :k]
    classes = np.unique(labels_ref)
    votes = (labels_ref[nn_idx][:, :, None] == classes[None, None, :]).sum(1)   # [n, n_classes]
    return classes[votes.argmax(1)]


def knn_accuracy(x: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out k-nearest-neighbour accuracy (majority vote, ties to the lowest label)."""
    x, labels = np.asarray(x, dtype=np.float64), np.asarray(labels)
    if len(x) < 2:
        return float("nan")
    return float((_knn_vote(x, x, labels, min(k, len(x) - 1), True) == labels).mean())


def cross_knn_accuracy(x_ref: np.ndarray, labels_ref: np.ndarray, x: np.ndarray, labels: np.ndarray,
                       k: int = 5) -> float:
    """Share of the points x whose k nearest points of x_ref (majority vote, ties to the lowest
    label) carry their own label: do two sets of codes put the same styles in the same places?"""
    x_ref, x = np.asarray(x_ref, dtype=np.float64), np.asarray(x, dtype=np.float64)
    if not len(x) or not len(x_ref):
        return float("nan")
    vote = _knn_vote(x, x_ref, np.asarray(labels_ref), min(k, len(x_ref)), False)
    return float((vote == np.asarray(labels)).mean())


def embed_2d(x: np.ndarray, method: str, n_neighbors: int = 15, n_epochs: int = 200, seed: int = 0) -> np.ndarray:
    """[N, D] -> [N, 2] by ``"pca"`` or ``"umap"`` (seeded; UMAP is then single-threaded)."""
    global _UMAP_COMPILED
    x = np.asarray(x, dtype=np.float64)
    if method == "pca":
        from sklearn.decomposition import PCA
        k = min(2, x.shape[1], len(x))
        y = PCA(n_components=k, random_state=seed).fit_transform(x)
        return np.pad(y, ((0, 0), (0, 2 - k)))
    if method == "umap":
        if not _UMAP_COMPILED:
            print("embedding: fitting UMAP; numba compiles it on first use in this process (about 8 s)", flush=True)
        import umap
        reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(x) - 1), n_epochs=n_epochs,
                            random_state=seed, n_jobs=1, init="spectral" if len(x) > 3 else "random")
        y = reducer.fit_transform(x)
        _UMAP_COMPILED = True
        return np.asarray(y, dtype=np.float64)
    raise ValueError(f"unknown embedding method {method!r}; expected 'umap' or 'pca'")


@register_analysis(
    "embedding", title="Embeddings", order=60, fast=dict(methods=("pca",)),
    references=("mcinnes2018umap", "venna2001trustworthiness"))
class Embedding(Analysis):
    def __init__(self, *, spaces: tuple[str, ...] = ("style_code", "reference_code", "activation"),
                 layer: str | None = None,
                 methods: tuple[str, ...] = ("umap", "pca"), n_samples: int = 256, n_neighbors: int = 15,
                 n_epochs: int = 200, min_umap: int = 15, k: int = 5, seed: int = 0) -> None:
        self.spaces, self.layer, self.methods = tuple(spaces), layer, tuple(methods)
        self.n_samples, self.n_neighbors, self.n_epochs, self.min_umap = n_samples, n_neighbors, n_epochs, min_umap
        self.k, self.seed = k, seed

    def estimate_cost(self, subject, data: AnalysisData, unit: UnitCosts) -> Cost:
        """The activation space's samples (forwards stopped at the layer) and a UMAP fit per space
        (about 2 s + 4 ms per point here, plus numba's first compile in a process)."""
        cost, spaces = Cost(), 0
        for space in self.spaces:
            if space == "style_code" and subject.has_latent:
                spaces += 1
            elif space == "reference_code" and subject.has_style_encoder and data.style_images is not None:
                spaces += 1
            elif space == "activation":
                try:
                    layer = self.layer or default_unit_layer(subject.generator)
                except LookupError:
                    continue
                cost.forwards += min(self.n_samples, len(data)) * unit.fraction(layer)
                spaces += 1
        if not spaces:
            return Cost(skip="no space to embed")
        if "umap" in self.methods:
            cost.other_s += spaces * (2.0 + 0.004 * min(self.n_samples, len(data))) + (0 if _UMAP_COMPILED else 15.0)
        return cost

    def _points(self, subject, data: AnalysisData, space: str, notes: list[str]):
        """-> (x [N, D], style ids [N], image ids [N]) or None when the subject cannot give them."""
        dev = subject.device
        if space == "style_code":
            if not subject.has_latent:
                notes.append("style_code space skipped: this subject has no latent style space")
                return None
            z = subject.sample_z(self.n_samples, self.seed)
            sid = torch.arange(self.n_samples, device=dev) % subject.num_styles
            x = subject.style_code(sid, z).double().cpu().numpy()
            return x, sid.cpu().numpy(), np.arange(self.n_samples)
        if space == "reference_code":
            if not subject.has_style_encoder:
                notes.append("reference_code space skipped: this subject has no style encoder")
                return None
            if data.style_images is None or not len(data.style_images):
                notes.append("reference_code space skipped: the data has no real style images (give --data a "
                             "folder with style/<style_name>/ subfolders)")
                return None
            n = len(data.style_images)
            g = torch.Generator().manual_seed(self.seed + 2)
            pick = torch.randperm(n, generator=g)[:min(self.n_samples, n)].sort().values
            sid = data.style_labels[pick].long()
            bs = data.batch_size
            x = torch.cat([subject.encode_style(data.style_images[pick[i:i + bs]].to(dev), sid[i:i + bs].to(dev))
                           for i in range(0, len(pick), bs)])
            return x.double().cpu().numpy(), sid.cpu().numpy(), pick.numpy()
        layer = self.layer
        if layer is None:
            try:      # the layer every unit analysis falls back to (directions walks the same one)
                layer = default_unit_layer(subject.generator)
            except LookupError:
                notes.append("activation space skipped: no layer given and the generator has no conv layers")
                return None
            notes.append(f"activation space: no layer given, used {layer!r} (pass layer= to choose)")
        get_module(subject.generator, layer)                          # LookupError with close matches
        n = min(self.n_samples, len(data))
        z = None
        if subject.has_latent:
            z = (data.z[:n] if data.z is not None else subject.sample_z(n, self.seed + 1)).to(dev)
        x = channel_means(subject, layer, data.content[:n].to(dev), data.style_ids[:n].to(dev), z, data.batch_size)
        return x, data.style_ids[:n].cpu().numpy(), np.arange(n)

    def run(self, subject, data: AnalysisData) -> Finding:
        bad = [s for s in self.spaces if s not in ("style_code", "reference_code", "activation")]
        bad += [m for m in self.methods if m not in ("umap", "pca")]
        if bad:
            raise ValueError(f"unknown embedding space/method {bad}; spaces: style_code, reference_code, "
                             f"activation; methods: umap, pca")
        from sklearn.manifold import trustworthiness
        params, notes, rows, quality = self.params(), [], [], []
        subject.eval()
        with torch.no_grad():
            points = {s: self._points(subject, data, s, notes) for s in self.spaces}
        points = {s: p for s, p in points.items() if p is not None}
        if not points:
            return Finding.skip(self.name, "; ".join(notes) or "no space to embed", params)
        for space, (x, sid, img) in points.items():
            methods = list(self.methods)
            if "umap" in methods and len(x) < self.min_umap:
                methods.remove("umap")
                notes.append(f"{space}: {len(x)} points < min_umap={self.min_umap}, so PCA only (UMAP needs a "
                             f"neighbourhood graph of at least {self.min_umap} points)")
            chance = float(np.bincount(sid).max() / len(sid))
            quality.append(dict(space=space, method="original", knn_accuracy=knn_accuracy(x, sid, self.k),
                                chance=chance, trustworthiness=np.nan, n=len(x)))
            for m in methods:
                y = embed_2d(x, m, self.n_neighbors, self.n_epochs, self.seed)
                tw = trustworthiness(x, y, n_neighbors=min(self.k, (len(x) - 1) // 2)) if len(x) > 3 else np.nan
                quality.append(dict(space=space, method=m, knn_accuracy=knn_accuracy(y, sid, self.k),
                                    chance=chance, trustworthiness=float(tw), n=len(x)))
                rows += [dict(space=space, method=m, x=float(a), y=float(b), style=subject.style_names[s],
                              style_id=int(s), image=int(i)) for (a, b), s, i in zip(y, sid, img)]
        if "style_code" in points and "reference_code" in points:
            (xm, sm, _), (xr, sr, _) = points["style_code"], points["reference_code"]
            quality.append(dict(space="reference_code", method="vs_mapping", knn_accuracy=cross_knn_accuracy(
                xm, sm, xr, sr, self.k), chance=float(np.bincount(sr).max() / len(sr)), trustworthiness=np.nan,
                n=len(xr)))
            notes.append(f"reference_code vs_mapping: share of reference codes whose {self.k} nearest mapping "
                         "codes (style_code space) vote for the reference image's own style")
        notes.append(f"knn_accuracy: leave-one-out {self.k}-NN accuracy of the style labels; chance = share of "
                     "the largest style")
        return Finding(self.name, params,
                       tables={"embedding": pd.DataFrame(rows, columns=["space", "method", "x", "y", "style",
                                                                       "style_id", "image"]),
                               "embedding_quality": pd.DataFrame(quality)},
                       # the analysis data's fingerprint last: a checkpoint's metadata carries the training
                       # data's, and `interp-gan report` refuses a finding whose fingerprint is not its report's
                       notes=notes, provenance={**subject.meta, "seed": self.seed,
                                                "data_fingerprint": data.fingerprint})
