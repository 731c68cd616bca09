"""The style loss's feature network f: a fixed, seeded, random multi-scale conv net.

    f = RandomFeatureNet(seed=1234)
    feats = f(image)                 # list of [N, C_l, H_l, W_l], one per scale
    grams = f.grams(image)           # list of [N, C_l, C_l]
    d = gram_distance(f.grams(a), f.grams(b))   # [N], the seed's ||G(f(s)) - G(f(g))||^2

No pretrained VGG offline (DESIGN.md §5): random conv features capture texture statistics
(Ustyuzhaninov, Brendel, Gatys & Bethge, "What does it take to generate natural textures?",
ICLR 2017). The net is rebuilt bit for bit from (seed, channels), which is all a checkpoint
stores. Parameters never train (requires_grad False).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from interp_gan.models.registry import register_model

__all__ = ["RandomFeatureNet", "gram", "gram_distance", "high_pass"]


def gram(f: Tensor) -> Tensor:
    """[N,C,H,W] -> [N,C,C] normalised by C·H·W."""
    n, c, h, w = f.shape
    x = f.reshape(n, c, h * w)
    return x @ x.transpose(1, 2) / (c * h * w)


def gram_distance(ga: list[Tensor], gb: list[Tensor]) -> Tensor:
    """Sum over scales of the squared Frobenius distance between Gram matrices, per image [N]."""
    return sum(((a - b) ** 2).flatten(1).sum(1) for a, b in zip(ga, gb))


def high_pass(image: Tensor, kernel: int = 5) -> Tensor:
    """image minus a box-blurred copy: keeps fine detail (strokes, texture), drops palette."""
    blur = nn.functional.avg_pool2d(nn.functional.pad(image, [kernel // 2] * 4, mode="reflect"),
                                    kernel, stride=1)
    return image - blur


@register_model("random_features")
class RandomFeatureNet(nn.Module):
    def __init__(self, seed: int = 1234, channels: tuple[int, ...] = (32, 64, 128, 128)) -> None:
        super().__init__()
        self.seed, self.channels = seed, tuple(channels)
        g = torch.Generator().manual_seed(seed)
        self.stages = nn.ModuleList()
        cin = 3
        for i, c in enumerate(self.channels):
            conv = nn.Conv2d(cin, c, 3, stride=1 if i == 0 else 2, padding=1)
            with torch.no_grad():  # He-style init from our own generator: identical on every machine
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * (2.0 / (cin * 9)) ** 0.5)
                conv.bias.zero_()
            self.stages.append(nn.Sequential(conv, nn.ReLU()))
            cin = c
        self.requires_grad_(False)

    def forward(self, image: Tensor) -> list[Tensor]:
        feats, x = [], image
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def grams(self, image: Tensor) -> list[Tensor]:
        return [gram(f) for f in self(image)]

    def spec(self) -> dict:
        return {"name": "random_features", "seed": self.seed, "channels": list(self.channels)}
