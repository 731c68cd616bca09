"""Helpers shared by the foreign-layout test modules: random values for a module's state dict, a
module with named children."""
from __future__ import annotations

import torch
from torch import nn


def randomise(m: nn.Module, seed: int) -> dict:
    """The module's state dict with random values (norms away from identity, running stats non-trivial)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in m.state_dict().items():
        if not v.is_floating_point():
            out[k] = v.clone()
        elif k.endswith("running_var"):
            out[k] = torch.rand(v.shape, generator=g) + 0.5
        elif v.dim() == 1 and k.endswith(("weight", "scale", "gamma")):
            out[k] = torch.rand(v.shape, generator=g) + 0.5
        else:
            fan = v[0].numel() if v.dim() > 1 else 1
            out[k] = torch.randn(v.shape, generator=g) / fan ** 0.5
    return out


def instance_norm(c, affine=False):
    return nn.InstanceNorm2d(c, affine=affine)


def named(names, make) -> nn.Module:
    m = nn.Module()
    for n in names:
        setattr(m, n, make())
    return m
