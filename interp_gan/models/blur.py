"""Anti-aliased resampling with fixed binomial filters, as CUT / FastCUT's generator uses it.

Park et al., "Contrastive Learning for Unpaired Image-to-Image Translation" (ECCV 2020), after
Zhang, "Making Convolutional Networks Shift-Invariant Again" (ICML 2019). Layout of the reference
(github.com/taesungp/contrastive-unpaired-translation, ``models/networks.py``), re-written here:

* ``BlurDown(c, f)``: reflection padding ((f-1)//2 before, f//2 after, on each axis), then one f x f
  filter per channel at stride 2 (``f = 1``: plain subsampling, the stored value unread, as in the
  reference). The filter is the normalised outer product of the binomial row (1 2 1 for f = 3, the
  reference's default).
* ``BlurUp(c, f)``: replication padding of 1, a stride-2 transposed convolution with one filter per
  channel (the binomial filter times 4, so a constant image stays constant) and padding
  1 + (f-1)//2, then the first row and column cropped off, and the last ones too for an even f
  (the reference's default f = 4: 1 3 3 1): exactly twice the input size.

Both keep their filter as a persistent buffer ``filt`` [c, 1, f, f] (so the reference's files
carry it and a strict load checks it) and name it in ``random_init_constants``: the random-init
control keeps it, as it is part of the architecture, not learned.
"""
from __future__ import annotations

from math import comb

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BlurDown", "BlurUp", "binomial_filter", "is_blur_filter"]

MAX_FILTER = 7    # the reference defines binomial filters of sizes 1 to 7


def binomial_filter(f: int, gain: float = 1.0) -> Tensor:
    """[f, f]: the outer product of the binomial row of length f, summing to ``gain``."""
    row = torch.tensor([float(comb(f - 1, i)) for i in range(f)])
    k = row[:, None] * row[None, :]
    return k * (gain / k.sum())


def is_blur_filter(t: Tensor) -> bool:
    """A depthwise filter bank as these layers store it: [c, 1, f, f], 1 <= f <= 7, floating point."""
    return (isinstance(t, Tensor) and t.dim() == 4 and t.is_floating_point() and t.shape[1] == 1
            and t.shape[2] == t.shape[3] and 1 <= t.shape[2] <= MAX_FILTER and t.shape[0] >= 1)


class _Blur(nn.Module):
    random_init_constants = ("filt",)     # fixed by the architecture (Subject.random_init keeps it)

    def __init__(self, channels: int, size: int, gain: float) -> None:
        super().__init__()
        if not 1 <= size <= MAX_FILTER:
            raise ValueError(f"blur filter size must be 1 to {MAX_FILTER}; got {size}")
        self.channels, self.size = channels, size
        self.register_buffer("filt", binomial_filter(size, gain)[None, None].repeat(channels, 1, 1, 1))

    def extra_repr(self) -> str:
        return f"{self.channels}, size={self.size}"


class BlurDown(_Blur):
    """Blur-pool: [N, c, H, W] -> [N, c, ceil(H/2), ceil(W/2)] (for f = 3)."""

    def __init__(self, channels: int, size: int = 3) -> None:
        super().__init__(channels, size, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        if self.size == 1:                   # the reference subsamples without reading the filter (1)
            return x[:, :, ::2, ::2]
        lo, hi = (self.size - 1) // 2, self.size // 2
        if lo or hi:
            x = F.pad(x, (lo, hi, lo, hi), mode="reflect")
        return F.conv2d(x, self.filt, stride=2, groups=x.shape[1])


class BlurUp(_Blur):
    """Fixed-filter x2 upsampling: [N, c, H, W] -> [N, c, 2H, 2W]."""

    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__(channels, size, 4.0)

    def forward(self, x: Tensor) -> Tensor:
        y = F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.filt, stride=2,
                               padding=1 + (self.size - 1) // 2, groups=x.shape[1])
        y = y[:, :, 1:, 1:]
        return y if self.size % 2 else y[:, :, :-1, :-1]
