"""Seeded batch sampling for training: every random draw goes through one ``torch.Generator``.

    gen = torch.Generator().manual_seed(0)
    idx = sample_style_indices(style_labels, target_ids, gen)     # one real image per target style
    crops = crop_batch(images, idx, size=64, generator=gen)       # [B,3,64,64], random crop + flip

Keeping every draw on one explicit generator (never the global RNG) is what makes a resumed
run equal an uninterrupted one: its state is saved in ``trainer_state.pt``.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["crop_batch", "centre_crop_batch", "sample_style_indices", "per_style_index"]


def crop_batch(images: Tensor, idx: Tensor, size: int, generator: torch.Generator, flip: bool = True) -> Tensor:
    """Random ``size`` x ``size`` crops of ``images[idx]`` (and random horizontal flips)."""
    _, _, h, w = images.shape
    if size > h or size > w:
        raise ValueError(f"crop size {size} is larger than the images ({h}x{w}); lower image_size or raise load_size")
    n = len(idx)
    ys = torch.randint(0, h - size + 1, (n,), generator=generator)
    xs = torch.randint(0, w - size + 1, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    out = []
    for i, y, x, fl in zip(idx.tolist(), ys.tolist(), xs.tolist(), flips.tolist()):
        crop = images[i, :, y:y + size, x:x + size]
        out.append(crop.flip(-1) if fl else crop)
    return torch.stack(out)


def centre_crop_batch(images: Tensor, size: int) -> Tensor:
    _, _, h, w = images.shape
    y, x = (h - size) // 2, (w - size) // 2
    return images[:, :, y:y + size, x:x + size]


def per_style_index(style_labels: Tensor, num_styles: int) -> list[Tensor]:
    """Indices of the images of each style; raises if a style has none."""
    out = [torch.nonzero(style_labels == s).flatten() for s in range(num_styles)]
    empty = [s for s, ix in enumerate(out) if len(ix) == 0]
    if empty:
        raise ValueError(f"style id(s) {empty} have no images; every style needs at least one")
    return out


def sample_style_indices(by_style: list[Tensor], target_ids: Tensor, generator: torch.Generator) -> Tensor:
    """For each target style id, a uniformly drawn image index of that style."""
    u = torch.rand(len(target_ids), generator=generator)
    return torch.stack([by_style[s][int(v * len(by_style[s]))] for s, v in zip(target_ids.tolist(), u)])
