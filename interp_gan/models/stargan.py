"""StarGAN v1's generator in the reference layout, so the authors' checkpoints load.

    G = StarGANGenerator.from_reference(torch.load("200000-G.ckpt", weights_only=True))
    c = torch.tensor([[0., 1., 0., 1., 1.]])                # [N, c_dim] domain labels
    out = G(content, c)                                       # content [N,3,H,W] in [-1,1] -> [N,3,H,W]

Choi, Choi, Kim, Ha, Kim & Choo, "StarGAN: Unified Generative Adversarial Networks for
Multi-Domain Image-to-Image Translation" (CVPR 2018). The domain label c [N, c_dim] is tiled
over the image and concatenated to the content as extra input channels. Module indices match
the reference ``Generator(conv_dim=64, c_dim=5, repeat_num=6)`` (``main.0.weight``,
``main.9.main.0.weight``, ...), which is what its ``200000-G.ckpt`` / ``{e}_{i}_G.pth`` files name.
CelebA models take a 0/1 attribute vector (hair colours one-hot in the first three dims, e.g.
black, blond, brown, male, young); RaFD models a one-hot expression. A model trained on both
data sets takes [CelebA attributes, RaFD one-hot, 2-dim data-set mask] (c_dim 5 + 8 + 2 = 15).

Instance statistics, always: the reference builds its InstanceNorms with
``track_running_stats=True``, so its checkpoints carry running_mean / running_var, but those
running averages are not what the model was trained with; in eval() mode they replace the
per-image statistics and the pretrained outputs come out wrong (yunjey/stargan issue #102,
"test pre-trained models, result is not right"; the fix reported there: do not call
``model.eval()``; the authors' current ``Solver.test`` restores the weights without it).
Here the norms are built with ``track_running_stats=False``, so the generator normalises
with each image's own statistics in train and eval mode alike; ``from_reference`` drops the
running-stat buffers and checks every other key strictly.
"""
from __future__ import annotations

import re

import torch
from torch import Tensor, nn

from interp_gan.models.registry import register_model

__all__ = ["StarGANGenerator", "infer_stargan_config", "is_stargan_state_dict"]

_RUNNING = ("running_mean", "running_var", "num_batches_tracked")
_BLOCK_KEY = re.compile(r"^main\.(\d+)\.main\.0\.weight$")


def _norm(dim: int) -> nn.InstanceNorm2d:
    # affine as in the reference; no running statistics on purpose (module docstring, issue #102)
    return nn.InstanceNorm2d(dim, affine=True, track_running_stats=False)


class ResidualBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, bias=False), _norm(dim), nn.ReLU(),
                                  nn.Conv2d(dim, dim, 3, 1, 1, bias=False), _norm(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.main(x)


@register_model("stargan_v1")
class StarGANGenerator(nn.Module):
    def __init__(self, conv_dim: int = 64, c_dim: int = 5, repeat_num: int = 6) -> None:
        super().__init__()
        self.conv_dim, self.c_dim, self.repeat_num = conv_dim, c_dim, repeat_num
        # the reference's ReLUs are in place; these are not, so a hook that keeps a norm's
        # output sees it as it was (no parameters differ)
        m: list[nn.Module] = [nn.Conv2d(3 + c_dim, conv_dim, 7, 1, 3, bias=False), _norm(conv_dim), nn.ReLU()]
        d = conv_dim
        for _ in range(2):                                      # main.3-5, main.6-8
            m += [nn.Conv2d(d, 2 * d, 4, 2, 1, bias=False), _norm(2 * d), nn.ReLU()]
            d *= 2
        m += [ResidualBlock(d) for _ in range(repeat_num)]      # main.9 ...
        for _ in range(2):
            m += [nn.ConvTranspose2d(d, d // 2, 4, 2, 1, bias=False), _norm(d // 2), nn.ReLU()]
            d //= 2
        m += [nn.Conv2d(d, 3, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*m)

    def forward(self, content: Tensor, c: Tensor) -> Tensor:
        """content [N,3,H,W] in [-1,1], c [N, c_dim] (continuous values allowed) -> [N,3,H,W]."""
        if content.dim() != 4 or content.shape[1] != 3:
            raise ValueError(f"content must be [N,3,H,W]; got {tuple(content.shape)}")
        if c.dim() != 2 or c.shape != (content.shape[0], self.c_dim):
            raise ValueError(f"domain label c must be [N, c_dim] = [{content.shape[0]}, {self.c_dim}]; "
                             f"got {tuple(c.shape)}")
        n, _, h, w = content.shape
        c = c.to(content.dtype)[:, :, None, None].expand(n, self.c_dim, h, w)   # [N, c_dim, H, W]
        return self.main(torch.cat([content, c], dim=1))

    @classmethod
    def from_reference(cls, state_dict: dict[str, Tensor]) -> "StarGANGenerator":
        """A generator holding a reference-layout state_dict: config inferred from the shapes,
        the InstanceNorm running-stat buffers dropped (issue #102), every other key strict."""
        G = cls(**infer_stargan_config(state_dict))
        norms = {n for n, mod in G.named_modules() if isinstance(mod, nn.InstanceNorm2d)}
        sd = {k: v for k, v in state_dict.items()
              if not (k.rsplit(".", 1)[-1] in _RUNNING and k.rsplit(".", 1)[0] in norms)}
        expected = G.state_dict()
        missing = sorted(set(expected) - set(sd))
        unexpected = sorted(set(sd) - set(expected))
        wrong = [f"{k} {tuple(sd[k].shape)} (expected {tuple(expected[k].shape)})"
                 for k in expected if k in sd and sd[k].shape != expected[k].shape]
        if missing or unexpected or wrong:
            cfg = f"conv_dim={G.conv_dim}, c_dim={G.c_dim}, repeat_num={G.repeat_num}"
            raise ValueError(f"state_dict does not match the StarGAN v1 generator layout ({cfg}): "
                             f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shapes {wrong[:5]}")
        G.load_state_dict(sd)
        return G


def is_stargan_state_dict(state_dict: dict) -> bool:
    """``main.0.weight`` a conv with more than 3 input channels, and residual ``main.<i>.main.0.weight`` keys."""
    w = state_dict.get("main.0.weight")
    return (getattr(w, "dim", lambda: 0)() == 4 and w.shape[1] > 3
            and any(_BLOCK_KEY.match(k) for k in state_dict))


def infer_stargan_config(state_dict: dict) -> dict:
    """(conv_dim, c_dim, repeat_num) from a reference-layout state_dict's keys and shapes."""
    if not is_stargan_state_dict(state_dict):
        raise ValueError("not a StarGAN v1 generator state_dict (expected 'main.0.weight' of shape "
                         "[conv_dim, 3 + c_dim, 7, 7] and residual blocks 'main.9.main.0.weight', ...)")
    w = state_dict["main.0.weight"]
    blocks = {int(m.group(1)) for k in state_dict if (m := _BLOCK_KEY.match(k))}
    return {"conv_dim": int(w.shape[0]), "c_dim": int(w.shape[1]) - 3, "repeat_num": len(blocks)}
