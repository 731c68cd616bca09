"""The face-landmark network whose heatmaps mask StarGAN v2's high-pass skips (``w_hpf > 0``).

    fan = FaceLandmarkNet.from_state_dict(nets["fan"])     # the ``fan`` entry of a CelebA-HQ nets_ema.ckpt
    heat = fan.heatmaps(content)                          # [N, 98, 64, 64] raw landmark heatmaps
    outer, inner = fan.face_masks(content)                # two [N, 1, 256, 256] masks in [0, 1]

StarGAN v2 (Choi, Uh, Yoo & Ha, CVPR 2020) trains its CelebA-HQ generator with ``w_hpf = 1``:
high-pass-filtered encoder features, weighted by face masks, are added to the decoder at 32, 64
and 128 px. The masks come from a pretrained 98-landmark face-alignment network, the "FAN" of the
authors' ``core/wing.py``: the stacked-hourglass face alignment network of Bulat & Tzimiropoulos
(ICCV 2017) in the CoordConv variant of Wang, Bo & Fuxin, "Adaptive Wing Loss for Robust Face
Alignment via Heatmap Regression" (ICCV 2019), which is the model (and loss) that file follows,
not Feng et al.'s earlier Wing loss (CVPR 2018). This is an independent implementation of that
network and of the authors' heatmap -> mask processing; parameter names follow the state dict
(``conv1.conv``, ``m0.b1_4``, ``top_m_0``, ``l0``, ...) so the checkpoint's ``fan`` entry loads
with every key and shape checked.

Architecture (width w = 64, hourglass depth 4 in the released network; both read from the
shapes, so tests can build small ones): a 7x7 stride-2 CoordConv (the image plus row, column
and radius channels) -> BN -> ReLU -> ConvBlock(w, 2w) -> 2x2 average pool -> ConvBlock(2w, 2w) ->
ConvBlock(2w, 4w) -> hourglass (a 1x1 CoordConv, then at each level an upper ConvBlock at this size
and a lower branch: pool, ConvBlock, the next level (a ConvBlock at the bottom), ConvBlock, nearest
2x upsampling; the two summed) -> ConvBlock -> 1x1 conv -> BN -> ReLU -> 1x1 conv to 98 landmark
heatmaps + 1 boundary map. A ConvBlock is three pre-activation (BN, ReLU) 3x3 convs of widths
out/2, out/4, out/4 whose outputs are concatenated, plus the input (through BN, ReLU, 1x1 conv when
the width changes). Batch norm always uses the stored running statistics: the network is a fixed
pretrained instrument (``train()`` leaves it in inference mode), as in the authors' code.

Masks (``face_masks``, no gradient, as the authors' ``get_heatmap``): the content image in
[-1, 1] is resized to 256 x 256 (bilinear), mapped to [0, 1] and run through the network; the 98
landmark heatmaps (the boundary map dropped) are upsampled 4x to 256 px (bilinear, corners
aligned), values below 0.1 zeroed, each map min-max normalised, and the landmark groups reshaped
(``_LANDMARK_OPS``: rows rolled up or down, values raised to a power); jaw ends, eyebrow and lip
corners dropped; the eye maps become a sharpened copy rolled 8 rows down plus one rolled 24 rows
down. The first mask sums every map, the second drops the jaw line, the eyebrows and the mouth;
both are clamped to [0, 1]. The generator uses the first at 32 px and the second at 64 and 128 px.
"""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FaceLandmarkNet", "fan_config", "masks_from_heatmaps", "NUM_LANDMARKS", "FAN_INPUT"]

NUM_LANDMARKS = 98          # the WFLW layout the mask processing indexes
FAN_INPUT = 256             # the network's input size (its CoordConv grids are fixed to it)


def _coords(n: int, h: int, w: int, like: Tensor) -> Tensor:
    """[n, 3, h, w]: row and column in [-1, 1], and their radius scaled to at most 1."""
    rows = (torch.arange(h, dtype=like.dtype, device=like.device) / (h - 1) * 2 - 1)[:, None].expand(h, w)
    cols = (torch.arange(w, dtype=like.dtype, device=like.device) / (w - 1) * 2 - 1)[None, :].expand(h, w)
    r = torch.sqrt(rows ** 2 + cols ** 2)
    return torch.stack([rows, cols, r / r.max()])[None].expand(n, 3, h, w)


class CoordConv(nn.Module):
    """A conv over the input with its coordinate channels appended (rows, columns, radius)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin + 3, cout, kernel, stride, padding)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(torch.cat([x, _coords(x.shape[0], x.shape[2], x.shape[3], x)], dim=1))


class ConvBlock(nn.Module):
    """cat(c1, c2, c3) + shortcut, c_i = conv3x3(relu(bn(previous))) of widths out/2, out/4, out/4."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        half, quarter = cout // 2, cout // 4
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, half, 3, 1, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(half), nn.Conv2d(half, quarter, 3, 1, 1, bias=False)
        self.bn3, self.conv3 = nn.BatchNorm2d(quarter), nn.Conv2d(quarter, quarter, 3, 1, 1, bias=False)
        self.downsample = (nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 1, 1, bias=False))
                           if cin != cout else None)

    def forward(self, x: Tensor) -> Tensor:
        a = self.conv1(F.relu(self.bn1(x)))
        b = self.conv2(F.relu(self.bn2(a)))
        c = self.conv3(F.relu(self.bn3(b)))
        skip = x if self.downsample is None else self.downsample(x)
        return torch.cat([a, b, c], dim=1) + skip


class Hourglass(nn.Module):
    """A 1x1 CoordConv, then ``depth`` nested levels (``b1_<l>`` upper, ``b2_<l>`` / ``b3_<l>`` lower)."""

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.depth = depth
        self.coordconv = CoordConv(width, width, 1)
        for level in range(depth, 0, -1):
            for name in ("b1", "b2", "b3"):
                self.add_module(f"{name}_{level}", ConvBlock(width, width))
        self.add_module("b2_plus_1", ConvBlock(width, width))

    def _level(self, level: int, x: Tensor) -> Tensor:
        upper = getattr(self, f"b1_{level}")(x)
        low = getattr(self, f"b2_{level}")(F.avg_pool2d(x, 2, 2))
        low = self._level(level - 1, low) if level > 1 else self.b2_plus_1(low)
        low = getattr(self, f"b3_{level}")(low)
        return upper + F.interpolate(low, scale_factor=2, mode="nearest")

    def forward(self, x: Tensor) -> Tensor:
        return self._level(self.depth, self.coordconv(x))


class FaceLandmarkNet(nn.Module):
    """image [N,3,256,256] in [0, 1] -> [N, 99, 64, 64] (98 landmark heatmaps + 1 boundary map)."""

    def __init__(self, width: int = 64, depth: int = 4, num_landmarks: int = NUM_LANDMARKS) -> None:
        super().__init__()
        if width % 16 or width < 16 or depth < 1:
            raise ValueError(f"FAN width must be a multiple of 16 (64 in the released network) and depth >= 1 "
                             f"(4); got width={width}, depth={depth}")
        self.width, self.depth = width, depth
        self.conv1 = CoordConv(3, width, 7, 2, 3)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = ConvBlock(width, 2 * width)
        self.conv3 = ConvBlock(2 * width, 2 * width)
        self.conv4 = ConvBlock(2 * width, 4 * width)
        self.m0 = Hourglass(4 * width, depth)
        self.top_m_0 = ConvBlock(4 * width, 4 * width)
        self.conv_last0 = nn.Conv2d(4 * width, 4 * width, 1)
        self.bn_end0 = nn.BatchNorm2d(4 * width)
        self.l0 = nn.Conv2d(4 * width, num_landmarks + 1, 1)
        self.eval()

    def train(self, mode: bool = True) -> "FaceLandmarkNet":
        return super().train(False)          # a fixed pretrained instrument: running statistics always

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.conv4(self.conv3(F.avg_pool2d(self.conv2(x), 2, 2)))
        x = self.top_m_0(self.m0(x))
        return self.l0(F.relu(self.bn_end0(self.conv_last0(x))))

    @torch.no_grad()
    def heatmaps(self, content: Tensor) -> Tensor:
        """content [N,3,H,W] in [-1, 1] -> the 98 landmark heatmaps [N, 98, 64, 64]."""
        x = F.interpolate(content, size=(FAN_INPUT, FAN_INPUT), mode="bilinear", align_corners=False)
        return self(x * 0.5 + 0.5)[:, :-1]

    @torch.no_grad()
    def face_masks(self, content: Tensor) -> tuple[Tensor, Tensor]:
        """content [N,3,H,W] in [-1, 1] -> (whole-face mask, inner-face mask), each [N,1,256,256]."""
        heat = self.heatmaps(content)
        heat = F.interpolate(heat, scale_factor=FAN_INPUT // heat.shape[-2], mode="bilinear", align_corners=True)
        return masks_from_heatmaps(heat)

    @classmethod
    def from_state_dict(cls, sd: dict, where: str = "fan") -> "FaceLandmarkNet":
        """The network of a state dict, widths read from it, every key and shape checked (one line)."""
        net = cls(**fan_config(sd, where))
        expected = net.state_dict()
        missing, unexpected = sorted(set(expected) - set(sd)), sorted(set(sd) - set(expected))
        wrong = [f"{where}.{k} {tuple(sd[k].shape)} (expected {tuple(v.shape)})"
                 for k, v in expected.items() if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
        if missing or unexpected or wrong:
            raise ValueError(f"the {where!r} entry does not match the face-landmark network (FAN, width "
                             f"{net.width}, depth {net.depth}): missing {[f'{where}.{k}' for k in missing[:3]]}, "
                             f"unexpected {[f'{where}.{k}' for k in unexpected[:3]]}, wrong shapes {wrong[:3]}")
        net.load_state_dict(sd, strict=True)
        return net


_LEVEL = re.compile(r"^m0\.b1_(\d+)\.conv1\.weight$")


def fan_config(sd: dict, where: str = "fan") -> dict:
    """{width, depth} of a FAN state dict (``conv1.conv.weight``: [w, 6, 7, 7]; levels ``m0.b1_<l>``)."""
    w, head = sd.get("conv1.conv.weight"), sd.get("l0.weight")
    if w is None or head is None or getattr(w, "dim", lambda: 0)() != 4 or head.dim() != 4:
        raise ValueError(f"the {where!r} entry is not a face-landmark network (FAN) state dict: no 4-d "
                         f"{where}.conv1.conv.weight / {where}.l0.weight (its first keys: {list(sd)[:4]})")
    if int(head.shape[0]) != NUM_LANDMARKS + 1:
        raise ValueError(f"the {where!r} network predicts {int(head.shape[0]) - 1} landmarks; the mask processing "
                         f"needs the 98-landmark (WFLW) layout, {where}.l0.weight [99, C, 1, 1]")
    levels = sorted({int(m.group(1)) for k in sd if (m := _LEVEL.match(k))})
    return {"width": int(w.shape[0]), "depth": max(levels, default=0)}


def _roll_rows(x: Tensor, up: int) -> Tensor:
    """Rows moved up by ``up`` (down when negative), wrapping around, as the authors' shift."""
    return torch.roll(x, -up, dims=2)


# (first, end) landmark range, rows moved up, power -- the authors' per-part reshaping
_LANDMARK_OPS = (((8, 25), 0, 3),        # jaw line without its ends
                 ((33, 51), -7, 2),      # eyebrows
                 ((55, 60), 8, 4),       # nostrils
                 ((77, 82), -8, 4),      # upper lip
                 ((83, 88), 8, 4),       # lower lip
                 ((88, 96), -2, 3))      # inner lip
_DROPPED = [*range(0, 8), *range(25, 33), 33, 46, 76, 82]   # jaw ends, an eyebrow edge, lip corners


def masks_from_heatmaps(heat: Tensor, threshold: float = 0.1, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """98 landmark heatmaps [N, 98, H, W] (H = 256) -> (whole-face, inner-face) masks [N, 1, H, W]."""
    if heat.dim() != 4 or heat.shape[1] != NUM_LANDMARKS:
        raise ValueError(f"expected [N, {NUM_LANDMARKS}, H, W] heatmaps, got {tuple(heat.shape)}")
    n, c, h, w = heat.shape
    sw = h // FAN_INPUT
    x = torch.where(heat < threshold, torch.zeros_like(heat), heat)
    flat = x.reshape(n, c, -1)
    lo, hi = flat.min(dim=2, keepdim=True).values, flat.max(dim=2, keepdim=True).values
    x = ((flat - lo) / (hi - lo + eps)).reshape(n, c, h, w).clone()
    for (a, b), up, power in _LANDMARK_OPS:
        x[:, a:b] = _roll_rows(x[:, a:b], up * sw) ** power
    x[:, _DROPPED] = 0
    x[:, 52:55] = _roll_rows(x[:, 52:55], 4 * sw)                        # nose, below its bridge's top
    eyes = x[:, 60:76].clone()
    x[:, 60:76] = _roll_rows(eyes, -8) ** 3 + _roll_rows(eyes, -24)
    inner = x.clone()
    inner[:, 8:25] = 0                                                    # jaw line
    inner[:, 76:96] = 0                                                   # mouth
    inner[:, 33:51] = 0                                                   # eyebrows
    whole, inner = x.sum(dim=1, keepdim=True), inner.sum(dim=1, keepdim=True)
    whole = torch.where(torch.isnan(whole), torch.zeros_like(whole), whole)   # as the authors (the whole mask only)
    return whole.clamp(0, 1), inner.clamp(0, 1)
