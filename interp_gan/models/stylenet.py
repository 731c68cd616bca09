"""The default multi-style generator ``stylenet`` (the seed's algorithm).

    G = StyleNet(num_styles=4)
    code = G.mapping(z, style_ids)          # [N, style_dim]   (StarGAN v2 mapping network)
    out = G(content, code)                  # [N, 3, H, W] in [-1, 1]
    out = G.generate(content, style_ids)    # both in one call (z ~ N(0, I))

Named parts: ``mapping`` (z, style) -> code, ``style_encoder`` (style image -> code,
optional), ``encoder`` (content image -> features), ``blocks`` (residual blocks modulated by
the code through AdaIN: Huang & Belongie 2017), ``decoder`` (features -> image). Each AdaIN
has an ``affine`` Linear(style_dim, 2C): these are the style-affine weights that SeFa
(Shen & Zhou 2021) factorises. Choi et al., StarGAN v2 (CVPR 2020) for the mapping network.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from interp_gan.models.latent import LatentGuided
from interp_gan.models.registry import register_model

__all__ = ["StyleNet", "AdaIN", "MappingNetwork", "StyleEncoder"]

# Reflect padding: zero padding taught the generator a dark frame along every border (seen
# in the demo's sample grids), which dissection then reports as "edge" units.
PAD = "reflect"


class AdaIN(nn.Module):
    """Instance-normalise x, then scale and shift per channel by an affine map of the code."""

    def __init__(self, channels: int, style_dim: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.affine = nn.Linear(style_dim, 2 * channels)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:  # x [N,C,H,W], code [N,D]
        gamma, beta = self.affine(code).chunk(2, dim=1)
        return (1 + gamma[:, :, None, None]) * self.norm(x) + beta[:, :, None, None]


class AdaINResBlock(nn.Module):
    def __init__(self, channels: int, style_dim: int) -> None:
        super().__init__()
        self.norm1 = AdaIN(channels, style_dim)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act1 = nn.LeakyReLU(0.2)
        self.norm2 = AdaIN(channels, style_dim)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act2 = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        h = self.conv1(self.act1(self.norm1(x, code)))
        h = self.conv2(self.act2(self.norm2(h, code)))
        return x + h


class MappingNetwork(nn.Module):
    """(z, style id) -> style code: shared MLP, one output head per style (StarGAN v2)."""

    def __init__(self, latent_dim: int, style_dim: int, num_styles: int, hidden: int = 128) -> None:
        super().__init__()
        self.shared = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(),
                                    nn.Linear(hidden, hidden), nn.ReLU())
        self.heads = nn.ModuleList([nn.Linear(hidden, style_dim) for _ in range(num_styles)])

    def forward(self, z: Tensor, style_ids: Tensor) -> Tensor:  # z [N,Z], ids [N] -> [N,D]
        h = self.shared(z)
        if self.training or torch.jit.is_tracing():
            # training: every head, as always (each gets a gradient, zero when unused, so Adam moves it;
            # the numbers, and so distributed training's agreement, are the ones it always had); a
            # trace must not bake in the styles of its example batch
            out = torch.stack([head(h) for head in self.heads], dim=1)  # [N,S,D]
            return out.gather(1, style_ids.long().view(-1, 1, 1).expand(-1, 1, out.shape[2])).squeeze(1)
        # analysis: each image through its own style's head only (read as weights: hooks on a head
        # do not fire); every head for every batch cost S head calls per pass, more than the whole
        # generator on a 200-style model
        used, where = torch.unique(style_ids, return_inverse=True)
        heads = [self.heads[int(s)] for s in used]
        w = torch.stack([head.weight for head in heads])[where]       # [N,D,H]
        b = torch.stack([head.bias for head in heads])[where]         # [N,D]
        return (w * h[:, None, :]).sum(-1) + b    # a per-row sum: the same bits whatever the batch


class StyleEncoder(nn.Module):
    """Style image -> style code (optional; StarGAN v2's reference-guided path)."""

    def __init__(self, style_dim: int, num_styles: int, ch: int = 32) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(3, ch, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * ch, 4 * ch, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleList([nn.Linear(4 * ch, style_dim) for _ in range(num_styles)])

    def forward(self, image: Tensor, style_ids: Tensor) -> Tensor:
        h = self.trunk(image)
        out = torch.stack([head(h) for head in self.heads], dim=1)
        return out[torch.arange(len(image), device=image.device), style_ids]


class Decoder(nn.Module):
    def __init__(self, ch: int, n_down: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = ch * 2 ** n_down
        for _ in range(n_down):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(c, c // 2, 3, padding=1, padding_mode=PAD), nn.InstanceNorm2d(c // 2, affine=True),
                       nn.LeakyReLU(0.2)]
            c //= 2
        layers += [nn.Conv2d(c, 3, 7, padding=3, padding_mode=PAD), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@register_model("stylenet")
class StyleNet(LatentGuided, nn.Module):
    """Content encoder -> AdaIN residual blocks (style code) -> decoder, plus the mapping net."""

    def __init__(self, num_styles: int, ch: int = 32, n_down: int = 2, n_blocks: int = 4,
                 style_dim: int = 64, latent_dim: int = 16, style_encoder: bool = False) -> None:
        super().__init__()
        if num_styles < 1:
            raise ValueError(f"num_styles must be >= 1, got {num_styles}")
        self.num_styles, self.style_dim, self.latent_dim = num_styles, style_dim, latent_dim
        enc: list[nn.Module] = [nn.Conv2d(3, ch, 7, padding=3), nn.InstanceNorm2d(ch, affine=True),
                                nn.LeakyReLU(0.2)]
        c = ch
        for _ in range(n_down):
            enc += [nn.Conv2d(c, 2 * c, 4, 2, 1), nn.InstanceNorm2d(2 * c, affine=True),
                    nn.LeakyReLU(0.2)]
            c *= 2
        self.encoder = nn.Sequential(*enc)
        self.blocks = nn.ModuleList([AdaINResBlock(c, style_dim) for _ in range(n_blocks)])
        self.decoder = Decoder(ch, n_down)
        self.mapping = MappingNetwork(latent_dim, style_dim, num_styles)
        self.style_encoder = StyleEncoder(style_dim, num_styles, ch) if style_encoder else None
        # generate() never runs the style encoder: the analyses' default layers leave it out
        self.off_path_modules = ("style_encoder",) if style_encoder else ()

    def forward(self, content: Tensor, code: Tensor) -> Tensor:
        """content [N,3,H,W] in [-1,1], code [N,style_dim] -> image [N,3,H,W] in [-1,1]."""
        if content.dim() != 4 or content.shape[1] != 3:
            raise ValueError(f"content must be [N,3,H,W], got {tuple(content.shape)}")
        if code.shape != (content.shape[0], self.style_dim):
            raise ValueError(f"code must be [{content.shape[0]},{self.style_dim}], got {tuple(code.shape)}")
        h = self.encoder(content)
        for block in self.blocks:
            h = block(h, code)
        return self.decoder(h)

    @property
    def style_affines(self) -> list[nn.Linear]:
        """Every AdaIN's Linear(style_dim, 2C), in forward order (for SeFa)."""
        return [m.affine for m in self.modules() if isinstance(m, AdaIN)]
