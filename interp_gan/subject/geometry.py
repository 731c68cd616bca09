"""A model that takes one non-square size (H, W): the square analysis images go in resized to it
and its output comes back at the square size, so hooks see the model's own geometry.

    x = to_model_size(content, (192, 256))     # [N,3,S,S] -> [N,3,192,256]
    y = to_size(model(x), content.shape[-2:])  # back to [N,3,S,S]
    note = resize_note((192, 256), 256)

Bilinear both ways, antialiased along an axis that shrinks. A unit's map keeps its place relative
to the image (the left half stays the left half), so dissection's square masks still line up with
it: each map is resized to the mask's H x W from its own H x W.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["to_size", "to_model_size", "resize_note", "analysis_size"]


def to_size(x: Tensor, hw) -> Tensor:
    """``x`` [N,C,h,w] resized to ``hw`` (unchanged when it is that size already)."""
    hw = (int(hw[0]), int(hw[1]))
    if tuple(x.shape[-2:]) == hw:
        return x
    shrink = x.shape[-2] > hw[0] or x.shape[-1] > hw[1]
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=shrink)


def to_model_size(content: Tensor, fixed_hw) -> Tensor:
    """Square content to a non-square model's (H, W); any other content unchanged."""
    if fixed_hw is None or fixed_hw[0] == fixed_hw[1]:
        return content
    return to_size(content, fixed_hw)


def analysis_size(fixed_hw) -> int:
    """The square image size that analyses of a (H, W) model run at: the longer side, so no axis is
    upsampled on the way in."""
    return int(max(fixed_hw))


def resize_note(fixed_hw, size: int | None = None) -> str:
    h, w = int(fixed_hw[0]), int(fixed_hw[1])
    s = size or analysis_size(fixed_hw)
    return (f"the model takes {h}x{w} images only: the square {s}x{s} analysis images are resized to {h}x{w} "
            f"on the way in (hooks see the model's own {h}x{w} geometry) and its output back to {s}x{s} "
            "(bilinear), so images and masks are square and a unit's map lines up with them")
