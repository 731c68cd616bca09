"""A state-dict generator whose image channels are not RGB -> RGB in and out, or one line at load.

    _generate, notes = rgb_forward(G, path)   # G(content) for a 3-channel generator, unchanged

Our content is RGB in [-1, 1]. A generator trained on grey images (CycleGAN / pix2pix ``--input_nc 1``)
is fed the luma of it (ITU-R BT.601 weights, the conversion PIL's ``convert("L")`` and torchvision's
``Grayscale`` apply when the reference loads such images); a grey output (``--output_nc 1``) is repeated
to RGB and a fourth output channel is dropped, as for ``--model`` factories. An input of 2 or 4+
channels (RGBA, RGB + mask or depth) cannot be made from a photo without knowing what it holds, nor an
output of 2 or 5+ read as an image (pix2pix's colorization writes Lab's a and b): refused at load.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["rgb_forward", "input_channels"]

_LUMA = (0.299, 0.587, 0.114)


def input_channels(G: nn.Module) -> int | None:
    """The input channels of the first conv the module registers (the one that reads the image)."""
    first = next((m for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))), None)
    return None if first is None else int(first.in_channels)


def _rgb(y: Tensor) -> Tensor:
    c = y.shape[1]
    if c == 3:
        return y
    if c == 1:
        return y.expand(-1, 3, -1, -1)
    if c == 4:
        return y[:, :3]
    raise ValueError(f"the generator returns {c} image channels ({list(y.shape)}); expected 3 (RGB), 1 (grey) or "
                     "4 (RGBA); for another output use --model file.py:factory")


def rgb_forward(G: nn.Module, path: str | Path = "the file"):
    """(``_generate`` for ``Subject``, model notes): RGB content in, RGB image out."""
    cin = input_channels(G)
    if cin not in (None, 1, 3):
        raise ValueError(f"{path}: the generator's first conv takes {cin} input channels; interp_gan feeds RGB "
                         "photos (3 channels; 1-channel generators get their luma). What the other channels hold "
                         "(alpha, a mask, depth) is not in the weights: load it with --model file.py:factory, "
                         "a module that builds its input from RGB")
    notes = []
    last = [m for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1:]
    if last and last[0].out_channels not in (1, 3, 4):
        cout = last[0].out_channels
        raise ValueError(f"{path}: the generator's output conv writes {cout} channels; interp_gan reads 3 (RGB), 1 "
                         "(grey) or 4 (RGBA) as an image" + (" (2 from 1 input channel: pix2pix's colorization, "
                         "the a and b of Lab from L?)" if cout == 2 and cin == 1 else "") + ". Load it with "
                         "--model file.py:factory, a module that returns RGB")
    if last and last[0].out_channels in (1, 4):
        notes.append(f"output: the generator returns {last[0].out_channels} channel(s); "
                     + ("the grey image is repeated to RGB" if last[0].out_channels == 1 else
                        "the first 3 are read as RGB, the 4th dropped"))
    if cin == 1:
        luma = torch.tensor(_LUMA).view(1, 3, 1, 1)
        notes.append("input: the generator takes 1 channel (grey); it is fed the luma of the RGB content "
                     "(0.299 R + 0.587 G + 0.114 B, as PIL's convert('L') loads a grey training image)")

        def gen(c, s, z=None):
            return _rgb(G((c * luma.to(c.device, c.dtype)).sum(1, keepdim=True)))
    else:
        def gen(c, s, z=None):
            return _rgb(G(c))
    return gen, notes
