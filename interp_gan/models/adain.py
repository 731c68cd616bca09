"""pytorch-AdaIN's arbitrary style transfer as one module: the VGG encoder to relu4_1, AdaIN, the decoder.

    enc_widths, enc_map = parse_adain_vgg(vgg_sd)        # ValueError (one line) unless every key fits
    dec_widths, dec_map = parse_adain_decoder(decoder_sd)
    M = AdaINNet(enc_widths=enc_widths, dec_widths=dec_widths)
    M.load_state_dict(remap_adain(vgg_sd, enc_map, decoder_sd, dec_map))
    code = M.style_code(style)              # style [N,3,H,W] in [0, 1] -> [N, 2C]: relu4_1's means, then stds
    out = M(content, code)                  # content in [0, 1] -> the decoded image, [0, 1] as trained (unclamped)

Huang & Belongie, "Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization" (ICCV
2017), as the PyTorch port github.com/naoto0804/pytorch-AdaIN ships it: ``decoder.pth`` (the decoder
trained with the paper's content and style losses) and ``vgg_normalised.pth`` (VGG-19 with a 1x1 conv in
front that turns RGB in [0, 1] into the mean-subtracted BGR x 255 that Caffe's VGG reads; fixed, never
trained with the decoder). Both are flat ``nn.Sequential`` state dicts (``<index>.weight`` / ``.bias``).

The layout (widths c1..c4 = 64, 128, 256, 512 and d3, d2, d1 = 256, 128, 64 in the port; read here from
the shapes, each by the majority of the tensors that carry it):

- encoder (``vgg`` indices 0..30, the children the port keeps): the 1x1 conv 3 -> 3 (0), then 3x3 convs
  each after a reflection pad of 1 and before a ReLU: conv1_1 3 -> c1 (2), conv1_2 (5), a 2x2 max pool
  with ceil_mode (7), conv2_1 c1 -> c2 (9), conv2_2 (12), pool (14), conv3_1 c2 -> c3 (16), conv3_2..3_4
  (19, 22, 25), pool (27), conv4_1 c3 -> c4 (29), relu4_1 (30). The file holds VGG-19 to relu5_4 (convs
  32 .. 51): checked key by key (shapes), not loaded; a file cut at relu4_1 loads too;
- AdaIN (``function.py``): per sample and channel, mean and std of a feature map over H x W, the
  variance unbiased (divided by H*W - 1) plus eps 1e-5 under the root; the content's relu4_1 is
  normalised with its own statistics and given the style's: t = (f - mean(f)) / std(f) * std_s + mean_s;
  the content-style trade-off of ``test.py`` then mixes t * alpha + f * (1 - alpha) (alpha in [0, 1],
  default 1);
- decoder (``decoder``): 3x3 convs after a reflection pad of 1, a ReLU after every one but the last,
  nearest x2 upsampling after the first, the fifth and the seventh: c4 -> d3 (1), d3 -> d3 (5, 8, 11),
  d3 -> d2 (14), d2 -> d2 (18), d2 -> d1 (21), d1 -> d1 (25), d1 -> 3 (28); no norm, no output activation.

Images are RGB in [0, 1] both ways, as the port's ``ToTensor`` feeds them and ``save_image`` writes them
(clamping only there); this module returns the raw decoder output (the subject says what it clamps).
Sides must be multiples of 8 (three poolings, three x2 upsamplings: the output then has the input's
size) and at least 16 (relu4_1 needs two positions for an unbiased variance).

Layers are named after VGG's (a reflection pad is the conv's own ``padding_mode="reflect"``, the same
operation): ``enc.prep`` (the 1x1 conv), ``enc.conv1_1`` .. ``enc.conv4_1``, ``enc.relu1_1`` ..
``enc.relu4_1`` (the content features), ``enc.pool1`` .. ``enc.pool3``; ``adain`` (its output is the
feature t the decoder reads); the decoder mirrors the encoder: ``dec.conv4_1`` (c4 -> d3, inverting
enc.conv4_1), ``dec.up3``, ``dec.conv3_4`` .. ``dec.conv3_1``, ``dec.up2``, ``dec.conv2_2``,
``dec.conv2_1``, ``dec.up1``, ``dec.conv1_2``, ``dec.conv1_1`` (to RGB), each conv but the last with its
``dec.reluX_Y``. The encoder is an ``auxiliary_modules`` entry (a fixed feature net that computes the
decoder's input): left out of the default layer lists and kept trained by the random-init control.
Default unit layer (``preferred_unit_layer``): ``dec.conv3_1``, the decoder's middle conv (d2 channels at
1/4 of the input size, the last conv before the second upsampling); the decoder has no norms, so
zeroing a channel there removes it.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from interp_gan.models.keys import layout_problems, vote
from interp_gan.models.registry import register_model

__all__ = ["AdaINNet", "AdaptiveInstanceNorm", "mean_std", "parse_adain_vgg", "parse_adain_decoder",
           "remap_adain", "looks_like_adain_decoder", "looks_like_adain_vgg", "ENC_CONVS", "DEC_CONVS"]

_FIX = "for another architecture use --model file.py:factory"
EPS = 1e-5
# (our name, the port's Sequential index): encoder to relu4_1, VGG-19 beyond it (checked, not loaded), decoder
ENC_CONVS = (("prep", 0), ("conv1_1", 2), ("conv1_2", 5), ("conv2_1", 9), ("conv2_2", 12), ("conv3_1", 16),
             ("conv3_2", 19), ("conv3_3", 22), ("conv3_4", 25), ("conv4_1", 29))
VGG_BEYOND = (("conv4_2", 32), ("conv4_3", 35), ("conv4_4", 38), ("conv5_1", 42), ("conv5_2", 45), ("conv5_3", 48),
              ("conv5_4", 51))
DEC_CONVS = (("conv4_1", 1), ("conv3_4", 5), ("conv3_3", 8), ("conv3_2", 11), ("conv3_1", 14), ("conv2_2", 18),
             ("conv2_1", 21), ("conv1_2", 25), ("conv1_1", 28))


def mean_std(feat: Tensor, eps: float = EPS) -> tuple[Tensor, Tensor]:
    """Per sample and channel over H x W: (mean, sqrt(unbiased variance + eps)), each [N, C]."""
    flat = feat.reshape(feat.shape[0], feat.shape[1], -1)
    return flat.mean(2), (flat.var(2) + eps).sqrt()


class AdaptiveInstanceNorm(nn.Module):
    """t = (f - mean(f)) / std(f) * std_s + mean_s, then t * alpha + f * (1 - alpha); code = [mean_s, std_s]."""

    def forward(self, feat: Tensor, code: Tensor, alpha: float = 1.0) -> Tensor:
        c = feat.shape[1]
        mean, std = mean_std(feat)
        t = (feat - mean[:, :, None, None]) / std[:, :, None, None] * code[:, c:, None, None] + code[:, :c, None, None]
        return t * alpha + feat * (1 - alpha)


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, padding_mode="reflect" if k > 1 else "zeros")


def _encoder(c1: int, c2: int, c3: int, c4: int) -> nn.Sequential:
    m: list[tuple[str, nn.Module]] = [("prep", _conv(3, 3, 1))]
    stages = ((1, 3, c1, 2), (2, c1, c2, 2), (3, c2, c3, 4), (4, c3, c4, 1))
    for s, cin, cout, n in stages:
        for j in range(1, n + 1):
            m += [(f"conv{s}_{j}", _conv(cin if j == 1 else cout, cout)), (f"relu{s}_{j}", nn.ReLU())]
        if s < 4:
            m.append((f"pool{s}", nn.MaxPool2d(2, 2, ceil_mode=True)))
    return nn.Sequential(OrderedDict(m))


def _decoder(c4: int, d3: int, d2: int, d1: int) -> nn.Sequential:
    m: list[tuple[str, nn.Module]] = [("conv4_1", _conv(c4, d3)), ("relu4_1", nn.ReLU()),
                                      ("up3", nn.Upsample(scale_factor=2, mode="nearest"))]
    for s, cin, cout, n in ((3, d3, d2, 4), (2, d2, d1, 2), (1, d1, 3, 2)):
        for j in range(n, 0, -1):
            m.append((f"conv{s}_{j}", _conv(cin, cout if j == 1 else cin)))
            if (s, j) != (1, 1):
                m.append((f"relu{s}_{j}", nn.ReLU()))
        if s > 1:
            m.append((f"up{s - 1}", nn.Upsample(scale_factor=2, mode="nearest")))
    return nn.Sequential(OrderedDict(m))


@register_model("adain")
class AdaINNet(nn.Module):
    """VGG encoder to relu4_1 (``enc``), AdaIN (``adain``), decoder (``dec``): module docstring."""
    auxiliary_modules = ("enc",)     # a fixed feature net: not the generator's own layers, kept by the control
    auxiliary_note = ("the VGG encoder is a fixed, pretrained feature net that AdaIN never trains with the "
                      "decoder, so the control keeps it and re-draws the decoder alone")
    size_multiple = 8
    num_styles = 1

    def __init__(self, enc_widths=(64, 128, 256, 512), dec_widths=(256, 128, 64), alpha: float = 1.0) -> None:
        super().__init__()
        enc, dec = [int(w) for w in enc_widths], [int(w) for w in dec_widths]
        if len(enc) != 4 or len(dec) != 3 or min(enc + dec) < 1 or not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"AdaIN sizes enc_widths={list(enc_widths)}, dec_widths={list(dec_widths)}, "
                             f"alpha={alpha}: expected 4 positive encoder widths, 3 positive decoder widths and alpha in [0, 1]")
        self.config = {"enc_widths": enc, "dec_widths": dec, "alpha": float(alpha)}
        self.alpha = float(alpha)
        self.code_dim = 2 * enc[3]
        self.enc = _encoder(*enc)
        self.adain = AdaptiveInstanceNorm()
        self.dec = _decoder(enc[3], *dec)
        self.preferred_unit_layer = "dec.conv3_1"

    def _check(self, x: Tensor, what: str) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{what} images must be [N,3,H,W] in [0, 1], got {tuple(x.shape)}")
        if min(x.shape[-2:]) < 16:
            raise ValueError(f"AdaIN's relu4_1 is 1/8 of the image: {what} images need sides of at least 16 px "
                             f"(an unbiased variance needs two positions); got {x.shape[-2]}x{x.shape[-1]}")

    def style_code(self, style: Tensor) -> Tensor:
        """Style images [N,3,H,W] in [0, 1] (any size from 16 px) -> [N, 2C]: relu4_1's per-channel mean, then std."""
        self._check(style, "style")
        mean, std = mean_std(self.enc(style))
        return torch.cat([mean, std], 1)

    def forward(self, content: Tensor, code: Tensor) -> Tensor:
        """content [N,3,H,W] in [0, 1], code [N, 2C] -> the decoder's output [N,3,H,W] (unclamped)."""
        self._check(content, "content")
        if content.shape[-2] % 8 or content.shape[-1] % 8:
            raise ValueError(f"AdaIN pools three times and upsamples three times: content sides must be multiples "
                             f"of 8; got {content.shape[-2]}x{content.shape[-1]} (set image_size to a multiple of 8)")
        if code.shape != (content.shape[0], self.code_dim):
            raise ValueError(f"code must be [{content.shape[0]},{self.code_dim}] (relu4_1's {self.code_dim // 2} "
                             f"means, then stds), got {tuple(code.shape)}")
        return self.dec(self.adain(self.enc(content), code, self.alpha))


# --- reading the port's files -------------------------------------------------------------------------
def _is_tensor_key(sd: dict, key: str, dims: int) -> bool:
    return isinstance(sd.get(key), torch.Tensor) and sd[key].dim() == dims


def looks_like_adain_decoder(sd: dict) -> bool:
    """A flat Sequential whose first conv (index 1, after a pad) is a 3x3 conv from features (> 4 channels)."""
    return ("0.weight" not in sd and _is_tensor_key(sd, "1.weight", 4) and tuple(sd["1.weight"].shape[2:]) == (3, 3)
            and sd["1.weight"].shape[1] > 4)


def looks_like_adain_vgg(sd: dict) -> bool:
    """A flat Sequential opening with the 1x1 3 -> 3 conv and a 3x3 conv from 3 channels at index 2."""
    return (_is_tensor_key(sd, "0.weight", 4) and tuple(sd["0.weight"].shape) == (3, 3, 1, 1)
            and _is_tensor_key(sd, "2.weight", 4) and tuple(sd["2.weight"].shape[1:]) == (3, 3, 3))


def _layout(convs: list[tuple[str, int, int, int, int]]) -> dict[str, tuple[tuple, str]]:
    """(our name, index, cout, cin, k) -> {"<index>.weight": (shape, our key), "<index>.bias": ...}."""
    out = {}
    for name, i, cout, cin, k in convs:
        out[f"{i}.weight"] = ((cout, cin, k, k), f"{name}.weight")
        out[f"{i}.bias"] = ((cout,), f"{name}.bias")
    return out


def parse_adain_vgg(sd: dict) -> tuple[list[int], dict[str, str | None]]:
    """(encoder widths [c1, c2, c3, c4], keymap: file key -> our key under ``enc.``, None for VGG-19's
    layers past relu4_1, checked and not loaded). One line naming up to three keys of each problem."""
    c1 = vote(sd, [("2.weight", 4, 0), ("5.weight", 4, 0), ("5.weight", 4, 1), ("9.weight", 4, 1)], 64)
    c2 = vote(sd, [("9.weight", 4, 0), ("12.weight", 4, 0), ("12.weight", 4, 1), ("16.weight", 4, 1)], 128)
    c3 = vote(sd, [("16.weight", 4, 0)] + [(f"{i}.weight", 4, a) for i in (19, 22, 25) for a in (0, 1)]
              + [("29.weight", 4, 1)], 256)
    c4 = vote(sd, [("29.weight", 4, 0), ("32.weight", 4, 1), ("32.weight", 4, 0)], 512)
    c5 = vote(sd, [("42.weight", 4, 0), ("45.weight", 4, 0), ("45.weight", 4, 1), ("51.weight", 4, 0)], c4)
    ins = {"prep": (3, 3), "conv1_1": (c1, 3), "conv1_2": (c1, c1), "conv2_1": (c2, c1), "conv2_2": (c2, c2),
           "conv3_1": (c3, c2), "conv3_2": (c3, c3), "conv3_3": (c3, c3), "conv3_4": (c3, c3), "conv4_1": (c4, c3)}
    layout = _layout([(n, i, *ins[n], 1 if n == "prep" else 3) for n, i in ENC_CONVS])
    beyond = _layout([(n, i, c5 if n.startswith("conv5") else c4, c4 if n in ("conv4_2", "conv4_3", "conv4_4",
                                                                              "conv5_1") else c5, 3)
                      for n, i in VGG_BEYOND])
    if any(k in sd for k in beyond):           # the port's whole VGG-19: every layer past relu4_1 is there
        layout |= {k: (shape, None) for k, (shape, _) in beyond.items()}
    problems = layout_problems(sd, {k: shape for k, (shape, _) in layout.items()})
    if problems:
        raise ValueError(f"not the pytorch-AdaIN VGG encoder its keys suggest (vgg_normalised.pth, widths {c1}, {c2}, "
                         f"{c3}, {c4} to relu4_1): {'; '.join(problems)}; {_FIX}")
    return [c1, c2, c3, c4], {k: ours for k, (_, ours) in layout.items()}


def parse_adain_decoder(sd: dict) -> tuple[list[int], int, dict[str, str | None]]:
    """(decoder widths [d3, d2, d1], the channels it reads (c4), keymap: file key -> our key under ``dec.``)."""
    c4 = vote(sd, [("1.weight", 4, 1)], 512)
    d3 = vote(sd, [("1.weight", 4, 0)] + [(f"{i}.weight", 4, a) for i in (5, 8, 11) for a in (0, 1)]
              + [("14.weight", 4, 1)], 256)
    d2 = vote(sd, [("14.weight", 4, 0), ("18.weight", 4, 0), ("18.weight", 4, 1), ("21.weight", 4, 1)], 128)
    d1 = vote(sd, [("21.weight", 4, 0), ("25.weight", 4, 0), ("25.weight", 4, 1), ("28.weight", 4, 1)], 64)
    ins = {"conv4_1": (d3, c4), "conv3_4": (d3, d3), "conv3_3": (d3, d3), "conv3_2": (d3, d3), "conv3_1": (d2, d3),
           "conv2_2": (d2, d2), "conv2_1": (d1, d2), "conv1_2": (d1, d1), "conv1_1": (3, d1)}
    layout = _layout([(n, i, *ins[n], 3) for n, i in DEC_CONVS])
    problems = layout_problems(sd, {k: shape for k, (shape, _) in layout.items()})
    if problems:
        raise ValueError(f"not the pytorch-AdaIN decoder its keys suggest (decoder.pth, widths {c4} -> {d3} -> {d2} -> "
                         f"{d1} -> 3): {'; '.join(problems)}; {_FIX}")
    return [d3, d2, d1], c4, {k: ours for k, (_, ours) in layout.items()}


def remap_adain(vgg: dict, enc_map: dict, decoder: dict, dec_map: dict) -> dict:
    """The two files' used tensors under ``AdaINNet``'s names."""
    return ({f"enc.{enc_map[k]}": v for k, v in vgg.items() if enc_map.get(k)}
            | {f"dec.{dec_map[k]}": v for k, v in decoder.items() if dec_map.get(k)})
