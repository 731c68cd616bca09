"""Image array <-> tensor transforms: square resize, [-1, 1] tensors, random and centre crops.

    x = to_tensor([resize_square(img, 80) for img in imgs])     # [N, 3, 80, 80] in [-1, 1]
    batch = random_crops(x, 64, n=8, generator=torch.Generator().manual_seed(0))
    val = centre_crop(x, 64)
    r = lum_corr(generated, content)                            # [N]: does the light/dark layout survive
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

__all__ = ["resize_square", "to_tensor", "random_crops", "centre_crop", "luminance", "lum_corr"]


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """[H, W, 3] uint8 -> [size, size, 3] uint8: scale the shorter side to ``size``, crop the centre."""
    h, w = img.shape[:2]
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    im = Image.fromarray(img)
    top, left = (nh - size) // 2, (nw - size) // 2
    if (nh, nw) == (h, w):
        return np.asarray(im.crop((left, top, left + size, top + size)))
    # Only the kept square is resampled (``box``: its place in the source), never the whole scaled
    # image: a 1 x 200000 strip would otherwise be scaled to 128 x 25.6 M pixels (14 GB).
    fx, fy = w / nw, h / nh
    box = (left * fx, top * fy, (left + size) * fx, (top + size) * fy)
    return np.asarray(im.resize((size, size), Image.LANCZOS if s < 1 else Image.BICUBIC, box=box))  # LANCZOS antialiases


def to_tensor(imgs: list[np.ndarray]) -> torch.Tensor:
    """List of equal-size [H, W, 3] uint8 -> [N, 3, H, W] float32 in [-1, 1]."""
    a = np.stack(imgs).astype(np.float32)                       # [N, H, W, 3]
    return torch.from_numpy(a).permute(0, 3, 1, 2).contiguous().div_(127.5).sub_(1.0)


def _check_images(images: torch.Tensor, size: int) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images [N, 3, H, W], got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError("got an empty image batch (N = 0)")
    if size < 1 or size > min(images.shape[2], images.shape[3]):
        raise ValueError(f"crop size {size} must be in 1..{min(images.shape[2:])} "
                         f"for images of size {tuple(images.shape[2:])}")


def random_crops(images: torch.Tensor, size: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` crops sampled with replacement: random image, random position, random horizontal flip.

    images [N, 3, H, W] -> [n, 3, size, size] on the images' device. All randomness comes from
    ``generator`` (a CPU ``torch.Generator``), so a seeded generator repeats the batch exactly.
    """
    _check_images(images, size)
    N, _, H, W = images.shape
    idx = torch.randint(N, (n,), generator=generator)
    y0 = torch.randint(H - size + 1, (n,), generator=generator)
    x0 = torch.randint(W - size + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    ar = torch.arange(size)
    rows = y0[:, None] + ar                                     # [n, size]
    cols = x0[:, None] + torch.where(flip[:, None], size - 1 - ar, ar)   # [n, size]
    dev = images.device
    idx, rows, cols = idx.to(dev), rows.to(dev), cols.to(dev)
    ch = torch.arange(3, device=dev)
    return images[idx[:, None, None, None], ch[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def centre_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """[N, 3, H, W] -> [N, 3, size, size], the centre square (top-left-biased by one pixel if odd)."""
    _check_images(images, size)
    H, W = images.shape[2:]
    top, left = (H - size) // 2, (W - size) // 2
    return images[:, :, top:top + size, left:left + size]


def luminance(image: torch.Tensor, size: int = 16) -> torch.Tensor:
    """[N,3,H,W] -> [N,1,size,size]: area-averaged luminance (the coarse layout of a picture)."""
    y = 0.299 * image[:, 0:1] + 0.587 * image[:, 1:2] + 0.114 * image[:, 2:3]
    return torch.nn.functional.adaptive_avg_pool2d(y, size)


def lum_corr(generated: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Per-image Pearson correlation of 16x16 luminance [N]: the content measure of training's
    evaluation (``training/evaluation.py``) and of the artifact units' trade-off curve."""
    a = luminance(generated).flatten(1).double()
    b = luminance(content).flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
