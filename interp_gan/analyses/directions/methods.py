"""Latent-direction discovery methods: pure functions on arrays and weights.

    dirs, var = pca_directions(codes, k=8)                 # GANSpace: [k, D] unit rows, variances [k]
    dirs = sefa_directions([affine_matrix(a) for a in G.style_affines], k=8)   # SeFa: [k, D]
    n = svm_direction(codes, labels == b)                  # InterFaceGAN: unit normal [D], + toward True
    n_c = condition_direction(n, [other_normal])           # conditional InterFaceGAN
    r = random_directions(k=8, dim=D, seed=0)              # the baseline: [k, D] unit rows
    s = ssim(images_a, images_b)                           # [N] SSIM per image pair, images in [-1, 1]

``affine_matrix`` (in ``directions.analysis``) is the matrix each affine applies: its ``weight``, or
``effective_weight()`` where the layer scales its stored weight at run time (StyleGAN2's
equalised learning rate: ``weight * lr_multiplier / sqrt(in)``, so a snapshot's stored weights are
not the map W -> S). Every method returns unit-norm directions as numpy float64 rows [K, D]. Signs are arbitrary
for PCA and SeFa (an eigenvector and its negative are the same direction); the analysis
orients nothing and reports which style each positive end moves toward.

References: Härkönen et al., "GANSpace: Discovering Interpretable GAN Controls", NeurIPS 2020
(PCA of sampled intermediate latents / activations); Shen & Zhou, "Closed-Form Factorization
of Latent Semantics in GANs", CVPR 2021 (SeFa: eigenvectors of AᵀA of the style affine
weights); Shen et al., "Interpreting the Latent Space of GANs for Semantic Face Editing",
CVPR 2020 (InterFaceGAN: linear-SVM boundary normals, conditional projection); Wang et al.,
"Image Quality Assessment: From Error Visibility to Structural Similarity", IEEE TIP 2004 (SSIM).
Voynov & Babenko (ICML 2020, learned direction matrix + reconstructor) lives in
``directions_voynov`` (it trains, so it is not a pure function of arrays).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch.nn.functional as F
from torch import Tensor

__all__ = ["pca_directions", "sefa_directions", "svm_direction", "condition_direction",
           "random_directions", "projection_std", "cosine_matrix", "ssim"]


def _unit_rows(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return m / np.linalg.norm(m, axis=1, keepdims=True).clip(1e-12)


def pca_directions(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """GANSpace PCA: the top-k principal axes of samples x [N, D] and their variances.

    Returns (directions [k, D] unit rows, variances [k]), largest variance first.

    Fewer samples than dimensions (N <= D) is allowed: the variances are then the eigenvalues of
    the Ledoit-Wolf shrunk covariance (Ledoit & Wolf 2004), which shrinks toward a scaled
    identity and so keeps the sample covariance's eigenvectors but stops small eigenvalues
    from collapsing to 0. Asking for more axes than the samples can span (k > N - 1) raises
    ``ValueError``: such axes would be arbitrary vectors orthogonal to the data.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"pca_directions expects samples [N, D], got shape {x.shape}")
    n, d = x.shape
    if k < 1 or k > d:
        raise ValueError(f"k must be in 1..{d} (the dimension), got {k}")
    if k > n - 1:
        raise ValueError(f"{n} samples span at most {max(n - 1, 0)} principal axes, got k={k}; "
                         f"sample more codes (n_samples) or ask for fewer directions (n_directions)")
    xc = x - x.mean(0, keepdims=True)
    # SVD of the centred data: right singular vectors are the covariance eigenvectors.
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    var = s ** 2 / max(n - 1, 1)
    if n <= d:
        from sklearn.covariance import ledoit_wolf
        _, shrink = ledoit_wolf(xc, assume_centered=True)
        mu = (s ** 2).sum() / n / d           # trace(S) / d for the (biased) sample covariance
        var = (1 - shrink) * s ** 2 / n + shrink * mu
    return _unit_rows(vt[:k]), var[:k]


def sefa_directions(weights: Sequence[np.ndarray | Tensor] | np.ndarray | Tensor, k: int,
                    normalize_rows: bool = True) -> np.ndarray:
    """SeFa: the top-k eigenvectors of AᵀA, A = the style-affine weights stacked [sum(out), D].

    ``weights``: one [out, D] matrix or a list of them (one per AdaIN affine; concatenated along
    the output dimension, as SeFa concatenates all layers' weights). ``normalize_rows`` divides
    each output unit's weight row by its norm first, as the authors' code does (genforce/sefa),
    so layers with large weights do not dominate. Returns [k, D] unit rows, largest first.
    """
    if isinstance(weights, (np.ndarray, Tensor)):
        weights = [weights]
    mats = [np.asarray(w.detach().cpu().numpy() if isinstance(w, Tensor) else w, dtype=np.float64)
            for w in weights]
    if not mats:
        raise ValueError("sefa_directions needs at least one weight matrix, got none")
    dims = {m.shape[1] for m in mats if m.ndim == 2}
    if len(dims) != 1 or any(m.ndim != 2 for m in mats):
        raise ValueError(f"weights must be [out, D] matrices sharing D, got shapes {[m.shape for m in mats]}")
    a = np.concatenate(mats, axis=0)
    if k < 1 or k > a.shape[1]:
        raise ValueError(f"k must be in 1..{a.shape[1]}, got {k}")
    if normalize_rows:
        a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    evals, evecs = np.linalg.eigh(a.T @ a)            # ascending
    order = np.argsort(evals)[::-1][:k]
    return _unit_rows(evecs[:, order].T)


def svm_direction(x: np.ndarray, positive: np.ndarray, C: float = 1.0, seed: int = 0) -> np.ndarray:
    """InterFaceGAN: unit normal [D] of a linear SVM separating ``positive`` from the rest.

    x [N, D] samples; positive [N] bool. The normal points toward the positive group. The samples
    are centred (liblinear penalises the intercept) but not rescaled: per-feature scaling would
    tilt the max-margin normal away from the input space's geometry.
    """
    from sklearn.svm import LinearSVC

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(positive).astype(bool)
    if x.ndim != 2 or len(y) != len(x):
        raise ValueError(f"svm_direction expects x [N, D] and positive [N], got {x.shape} and {y.shape}")
    if y.all() or not y.any():
        raise ValueError(f"svm_direction needs samples of both groups, got {int(y.sum())} positive of {len(y)}")
    clf = LinearSVC(C=C, dual="auto", max_iter=20000, random_state=seed).fit(x - x.mean(0), y)
    w = clf.coef_[0]
    return w / max(np.linalg.norm(w), 1e-12)


def condition_direction(primary: np.ndarray, others: Sequence[np.ndarray]) -> np.ndarray:
    """Conditional InterFaceGAN: ``primary`` with the ``others`` boundary normals projected out.

    Moving along the result changes the primary attribute while (to first order) leaving the
    other boundaries' decision values unchanged. Gram-Schmidt over the others, then renormalise.
    """
    basis: list[np.ndarray] = []
    for o in others:
        v = np.asarray(o, dtype=np.float64).copy()
        for b in basis:
            v -= (v @ b) * b
        if np.linalg.norm(v) > 1e-8:
            basis.append(v / np.linalg.norm(v))
    d = np.asarray(primary, dtype=np.float64).copy()
    for b in basis:
        d -= (d @ b) * b
    nrm = np.linalg.norm(d)
    if nrm < 1e-8:
        raise ValueError("the primary direction lies in the span of the conditioning directions; nothing is left")
    return d / nrm


def random_directions(k: int, dim: int, seed: int = 0) -> np.ndarray:
    """k random unit vectors in R^dim (uniform on the sphere), seeded: the null baseline."""
    rng = np.random.default_rng(seed)
    return _unit_rows(rng.standard_normal((k, dim)))


def projection_std(x: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Std of samples x [N, D] projected on each unit direction [K, D] -> [K] (the step unit)."""
    proj = np.asarray(x, dtype=np.float64) @ np.asarray(directions, dtype=np.float64).T
    return proj.std(axis=0, ddof=1 if len(proj) > 1 else 0)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Signed cosine between the rows of a [K, D] and b [M, D] -> [K, M]."""
    return _unit_rows(a) @ _unit_rows(b).T


def ssim(a: Tensor, b: Tensor, data_range: float = 2.0, win: int = 7) -> Tensor:
    """Mean SSIM per image pair: a, b [N, 3, H, W] (in [-1, 1] by default) -> [N].

    Uniform ``win``x``win`` window, K1=0.01, K2=0.03 and the sample-covariance correction:
    the defaults of ``skimage.metrics.structural_similarity``; averaged over channels and
    valid window positions (Wang et al. 2004).
    """
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"ssim expects two [N,C,H,W] tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    win = min(win, a.shape[-1], a.shape[-2])
    win -= (win + 1) % 2                              # odd window
    a, b = a.double(), b.double()
    filt = lambda t: F.avg_pool2d(t, win, stride=1)  # noqa: E731 - uniform window, valid positions only
    cov = win ** 2 / (win ** 2 - 1)
    ux, uy = filt(a), filt(b)
    vx = cov * (filt(a * a) - ux * ux)
    vy = cov * (filt(b * b) - uy * uy)
    vxy = cov * (filt(a * b) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3)).float()
