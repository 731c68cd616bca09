"""Latent-guided generation, shared by the models with a mapping network (StyleNet, StarGAN v2).

    class MyGAN(LatentGuided, nn.Module): ...   # needs latent_dim, mapping(z, ids), forward(content, code)
    img = G.generate(content, style_ids)         # z ~ N(0, I) -> code = mapping(z, ids) -> G(content, code)
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["LatentGuided"]


class LatentGuided:
    latent_dim: int

    def sample_z(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        return torch.randn(n, self.latent_dim, generator=generator, device=device)

    def generate(self, content: Tensor, style_ids: Tensor, z: Tensor | None = None) -> Tensor:
        """content [N,3,H,W], style ids [N], z [N, latent_dim] (None: drawn unseeded) -> image."""
        if z is None:
            z = self.sample_z(len(content), device=content.device)
        return self(content, self.mapping(z, style_ids))
