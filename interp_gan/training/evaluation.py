"""Does the generator transfer style while keeping the content? Numbers from independent judges.

    metrics = evaluate(G, data, classifiers, feature_net, n=64, seed=0)
    metrics == {"acc_rgb": 0.9, "acc_texture": 0.7, "ssim": 0.4, "lum_corr": 0.7,
                "feature_frechet": 3.1, "n": 64}

- ``acc_rgb`` / ``acc_texture``: how often each independent classifier (trained only on real
  style images; never D's own head) names the target style of a generated image. Chance is
  1 / num_styles. The texture classifier is colour-blind, so palette alone does not score.
- ``ssim``: structural similarity (Wang et al. 2004, scikit-image) of generated vs content,
  on luminance in [-1, 1].
- ``lum_corr``: Pearson correlation of the 16x16 area-averaged luminance of generated vs
  content, per image, averaged: does the light/dark layout of the photo survive.
- ``feature_frechet``: Fréchet distance between Gaussian fits of spatially pooled features of
  the style feature network f (``RandomFeatureNet`` by default, or VGG-19 from a local file) of
  generated images and of real style crops of the same target styles. A "feature Fréchet
  distance": not FID (no Inception network), not comparable to FID.

Generation and crops use their own seeded generators; the global RNG is never touched.
"""
from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity
from torch import Tensor

from interp_gan.data.transforms import lum_corr, luminance
from interp_gan.training.sampling import centre_crop_batch, crop_batch, per_style_index, sample_style_indices

__all__ = ["evaluate", "frechet_distance", "pooled_features", "lum_corr", "ssim"]


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(Sa + Sb - 2 (Sa^1/2 Sb Sa^1/2)^1/2) for samples a [N,D], b [M,D]."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(sa)
    sqrt_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(sqrt_a @ sb @ sqrt_a)  # symmetric PSD: stable, no complex sqrtm
    tr = np.trace(sa) + np.trace(sb) - 2 * np.sqrt(np.clip(cross, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + tr)


@torch.no_grad()
def pooled_features(feature_net, images: Tensor) -> np.ndarray:
    """[N,3,H,W] -> [N, sum C_l]: spatial mean of every stage of the feature net."""
    return torch.cat([f.mean(dim=(2, 3)) for f in feature_net(images)], 1).double().cpu().numpy()


def ssim(generated: Tensor, content: Tensor) -> Tensor:
    """Per-image SSIM of luminance [N] (data range 2 for images in [-1, 1])."""
    ga = luminance(generated, generated.shape[-1])[:, 0].double().cpu().numpy()
    gb = luminance(content, content.shape[-1])[:, 0].double().cpu().numpy()
    return torch.tensor([structural_similarity(x, y, data_range=2.0) for x, y in zip(ga, gb)])


def _generate(G, content: Tensor, style_ids: Tensor, z_gen: torch.Generator) -> Tensor:
    if hasattr(G, "generate") and getattr(G, "latent_dim", 0):
        z = torch.randn(len(content), G.latent_dim, generator=z_gen).to(content.device)
        return G.generate(content, style_ids, z)
    if hasattr(G, "generate"):
        return G.generate(content, style_ids)
    return G(content, style_ids)


@torch.no_grad()
def evaluate(G, data, classifiers: dict, feature_net, n: int = 64, seed: int = 0,
             image_size: int | None = None, batch_size: int = 32) -> dict[str, float]:
    """Generate ``n`` images (content i mod N_content, target style i mod S) and score them.

    ``G`` is a StyleNet (or anything with ``generate(content, style_ids, z)``, or a callable
    ``G(content, style_ids)``); ``data`` a StyleData; ``classifiers`` maps 'rgb' / 'texture'
    to the independent classifiers (either may be missing: its accuracy is then absent).
    """
    if n < 2:
        raise ValueError(f"evaluate needs n >= 2 images, got {n}")
    num_styles = len(data.style_names)
    size = image_size or data.content.shape[-1]
    device = next(iter(G.parameters()), torch.empty(0)).device if hasattr(G, "parameters") else torch.device("cpu")
    was_training = getattr(G, "training", False)
    if hasattr(G, "eval"):
        G.eval()
    z_gen = torch.Generator().manual_seed(seed)
    crop_gen = torch.Generator().manual_seed(seed + 1)
    content_all = centre_crop_batch(data.content, size)
    ids = torch.arange(n) % num_styles
    cidx = torch.arange(n) % len(content_all)
    by_style = per_style_index(data.style_labels.long(), num_styles)
    real_idx = sample_style_indices(by_style, ids, crop_gen)
    fakes, contents = [], []
    for i in range(0, n, batch_size):
        c = content_all[cidx[i:i + batch_size]].to(device)
        fakes.append(_generate(G, c, ids[i:i + batch_size].to(device), z_gen).float().cpu())
        contents.append(c.cpu())
    fake, content = torch.cat(fakes), torch.cat(contents)
    if hasattr(G, "train"):
        G.train(was_training)
    out: dict[str, float] = {"n": n}
    for name, clf in classifiers.items():
        p = next(clf.parameters()).device
        pred = torch.cat([clf(fake[i:i + 128].to(p)).argmax(1).cpu() for i in range(0, n, 128)])
        out[f"acc_{name}"] = float((pred == ids).float().mean())
    out["ssim"] = float(ssim(fake, content).mean())
    out["lum_corr"] = float(lum_corr(fake, content).mean())
    if feature_net is not None:
        real = crop_batch(data.style, real_idx, size, crop_gen)
        fp = next(feature_net.parameters()).device
        out["feature_frechet"] = frechet_distance(pooled_features(feature_net, fake.to(fp)),
                                                  pooled_features(feature_net, real.to(fp)))
    return out
