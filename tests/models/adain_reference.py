"""pytorch-AdaIN's two files, rebuilt from the layout of naoto0804/pytorch-AdaIN ``net.py`` (the ``decoder``
and ``vgg`` Sequentials: same children, same order, so the same keys and shapes), with random weights
and any widths; and an independent functional forward written from the paper (Huang & Belongie, ICCV
2017) and the port's ``function.py`` / ``test.py`` semantics, with ``torch.nn.functional`` only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tests.models.foreign_layout_parts import randomise

PORT_VGG = (64, 128, 256, 512, 512)       # conv1_x, conv2_x, conv3_x, conv4_x, conv5_x
PORT_DECODER = (512, 256, 128, 64)        # relu4_1 in, then the three widths before RGB


def _pad():
    return nn.ReflectionPad2d((1, 1, 1, 1))


def port_decoder_module(widths=PORT_DECODER) -> nn.Sequential:
    """``net.decoder``: 29 children, convs at 1, 5, 8, 11, 14, 18, 21, 25, 28."""
    c4, d3, d2, d1 = widths
    m = [_pad(), nn.Conv2d(c4, d3, (3, 3)), nn.ReLU(), nn.UpsamplingNearest2d(scale_factor=2)]
    for _ in range(3):
        m += [_pad(), nn.Conv2d(d3, d3, (3, 3)), nn.ReLU()]
    m += [_pad(), nn.Conv2d(d3, d2, (3, 3)), nn.ReLU(), nn.UpsamplingNearest2d(scale_factor=2),
          _pad(), nn.Conv2d(d2, d2, (3, 3)), nn.ReLU(), _pad(), nn.Conv2d(d2, d1, (3, 3)), nn.ReLU(),
          nn.UpsamplingNearest2d(scale_factor=2), _pad(), nn.Conv2d(d1, d1, (3, 3)), nn.ReLU(),
          _pad(), nn.Conv2d(d1, 3, (3, 3))]
    return nn.Sequential(*m)


def port_vgg_module(widths=PORT_VGG, full: bool = True) -> nn.Sequential:
    """``net.vgg``: the 1x1 conv, then VGG-19 to relu5_4 (53 children); ``full=False``: the 31 children the
    port keeps (``list(vgg.children())[:31]``, to relu4_1)."""
    pool = lambda: nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True)   # noqa: E731
    m, cin = [nn.Conv2d(3, 3, (1, 1))], 3
    for stage, (w, n) in enumerate(zip(widths, (2, 2, 4, 4, 4))):
        if stage:
            m.append(pool())
        for _ in range(n):
            m += [_pad(), nn.Conv2d(cin, w, (3, 3)), nn.ReLU()]
            cin = w
    assert len(m) == 53
    return nn.Sequential(*(m if full else m[:31]))


def _he(sd: dict, skip: str) -> dict:
    """3x3 conv weights at He's gain (variance kept through each ReLU, as in a trained VGG), biases small."""
    return {k: v * 1.6 if k.endswith(".weight") and k != skip else v * 0.05 if k.endswith(".bias") else v
            for k, v in sd.items()}


def port_decoder(widths=PORT_DECODER, seed=0) -> dict:
    """``decoder.pth`` (``torch.save(net.decoder.state_dict())``) with random weights."""
    return _he(randomise(port_decoder_module(widths), seed), "28.weight")


def port_vgg(widths=PORT_VGG, full: bool = True, seed=1) -> dict:
    """``vgg_normalised.pth`` with random weights (the whole VGG-19, as the port loads it strictly)."""
    return _he(randomise(port_vgg_module(widths, full), seed), "0.weight")


def port_pair(vgg_widths=PORT_VGG, dec_widths=PORT_DECODER, full: bool = True, seed=0) -> tuple[dict, dict]:
    """(vgg, decoder) with the decoder's last conv set so that, on seeded noise images, each output channel
    has mean 0.5 and standard deviation 0.15: mostly inside [0, 1] as a trained decoder's output, so the
    image the port saves (clamped) still varies."""
    vgg, dec = port_vgg(vgg_widths, full, seed + 1), port_decoder(dec_widths, seed)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    h = decode(dec, encode(vgg, x), last=False)
    y = F.conv2d(F.pad(h, (1, 1, 1, 1), mode="reflect"), dec["28.weight"])
    scale = 0.15 / y.std((0, 2, 3))
    dec["28.weight"] = dec["28.weight"] * scale[:, None, None, None]
    dec["28.bias"] = 0.5 - y.mean((0, 2, 3)) * scale
    return vgg, dec


# --- the forward, from the paper ----------------------------------------------------------------------
def _conv(sd, i, x, pad=True):
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect") if pad else x, sd[f"{i}.weight"], sd[f"{i}.bias"])


def encode(vgg: dict, x: torch.Tensor) -> torch.Tensor:
    """relu4_1 of images in [0, 1]: the 1x1 conv, then conv/ReLU pairs with 2x2 ceil-mode max pools."""
    h = _conv(vgg, 0, x, pad=False)
    for i in (2, 5, "pool", 9, 12, "pool", 16, 19, 22, 25, "pool", 29):
        h = F.max_pool2d(h, 2, 2, ceil_mode=True) if i == "pool" else F.relu(_conv(vgg, i, h))
    return h


def stats(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """calc_mean_std: per sample and channel, mean and sqrt(unbiased variance + eps), [N, C, 1, 1]."""
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1)
    h_w = flat.shape[2]
    mean = flat.sum(2) / h_w
    var = ((flat - mean[:, :, None]) ** 2).sum(2) / (h_w - 1)
    return mean[:, :, None, None], torch.sqrt(var + eps)[:, :, None, None]


def decode(dec: dict, t: torch.Tensor, last: bool = True) -> torch.Tensor:
    """The decoder: convs after reflection pads, ReLU after all but the last, nearest x2 after 1, 14 and 21
    (``last=False``: the input of the last conv)."""
    h = t
    for i in (1, "up", 5, 8, 11, 14, "up", 18, 21, "up", 25, 28):
        if i == 28 and not last:
            return h
        if i == "up":
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        else:
            h = _conv(dec, i, h)
            h = h if i == 28 else F.relu(h)
    return h


def transfer(vgg: dict, dec: dict, content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
             alpha: float = 1.0) -> torch.Tensor:
    """test.py's style_transfer with the style's statistics given ([N, C, 1, 1] each): AdaIN, alpha, decode."""
    f = encode(vgg, content)
    m, s = stats(f)
    t = (f - m) / s * style_std + style_mean
    return decode(dec, t * alpha + f * (1 - alpha))
