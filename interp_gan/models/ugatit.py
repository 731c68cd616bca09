"""U-GAT-IT's generator as the authors' PyTorch code saves it, read from the state dict alone.

    flat, direction = select_generator(params, "A2B")    # {'genA2B', 'genB2A', 'disGA', ...} -> genA2B
    config, keymap = parse_ugatit(flat, direction)       # ValueError (one line) unless every key fits
    G = UGATITGenerator(**config)
    G.load_state_dict(remap_ugatit_state_dict(flat, keymap))

Kim, Kim, Kang & Lee, "U-GAT-IT: Unsupervised Generative Attentional Networks with Adaptive
Layer-Instance Normalization for Image-to-Image Translation" (ICLR 2020); the layout is the
official PyTorch implementation's ``networks.py`` ``ResnetGenerator`` (github.com/znxlwm/UGATIT-pytorch),
whose ``UGATIT.save`` writes one dict ``{genA2B, genB2A, disGA, disGB, disLA, disLB}`` of state
dicts to ``<dataset>_params_<step>.pt`` (and ``<dataset>_params_latest.pt``), e.g. selfie2anime.
A file holding one generator's flat state dict loads too.

The layout (``ngf`` = 64 and 4 residual blocks in the reference; both read from the shapes; every
conv but ``conv1x1`` has no bias; every pad is a reflection pad):

- ``DownBlock``: 7x7 conv 3 -> ngf (index 1), InstanceNorm (no affine), ReLU; two 3x3 stride-2
  convs ngf -> 2 ngf -> 4 ngf (indices 5, 9), each InstanceNorm + ReLU; then ``n_blocks`` ResnetBlocks
  (index 12 on): x + IN(conv(ReLU(IN(conv(x))))) with 3x3 convs (``conv_block.1`` / ``.5``);
- the class activation map: ``gap_fc`` and ``gmp_fc`` (Linear 4 ngf -> 1, no bias) give two logits
  from the average- and max-pooled map, and their weights scale the map's channels; the two scaled
  maps, concatenated, go through ``conv1x1`` (8 ngf -> 4 ngf, with bias) and ReLU. The per-pixel
  sum of that map over channels is the heatmap;
- ``FC``: Linear, ReLU, Linear, ReLU (no biases) to 4 ngf, then ``gamma`` and ``beta`` (Linear,
  no bias). Its input is the whole flattened map, (img_size / 4)^2 * 4 ngf values, in the full
  model, or the map's global average, 4 ngf values, with ``--light``: ``FC.0.weight``'s width says
  which, and in the full model the image size it was trained at (refused at any other size);
- ``UpBlock1_1`` .. ``UpBlock1_n``: x + AdaILN(conv(ReLU(AdaILN(conv(x))))) with the same gamma and
  beta in every block; AdaILN mixes instance and layer normalisation by a learned ``rho`` per
  channel, then scales by gamma and shifts by beta;
- ``UpBlock2``: twice (nearest x2 upsampling, 3x3 conv halving the width, ILN, ReLU), then a 7x7
  conv ngf -> 3 and tanh. ILN is AdaILN with its own learned ``rho``, ``gamma`` and ``beta``.

Both norms use the unbiased variance (``torch.var``) with eps 1e-5 inside the square root, as the
reference's code does since its fix of issue #30 (2019-08); a file trained with the code before that
fix (the variance of variances) computes something else, and the weights cannot say which.
Training clips every ``rho`` to [0, 1] after each step (``RhoClipper(0, 1)``); loaded values are
used as stored.

Input and output are RGB in [-1, 1] (the reference's ``Normalize(mean=0.5, std=0.5)`` and tanh),
the project's own convention: nothing is rescaled. ``forward`` returns the image alone (what the
analyses need); ``forward_with_cam`` returns the reference's ``(out, cam_logit, heatmap)``, and in any
forward the CAM logit ([N, 2]: average- then max-pool) and heatmap ([N, 1, h/4, w/4]) are the
outputs of the identity modules ``cam_logit`` and ``heatmap``, so a hook reads them by name.

Our module names the layers by role: ``down.0`` .. ``down.2`` (``.conv`` / ``.norm`` / ``.act``),
``enc_res.<i>`` (``.conv1``, ``.conv2``), ``gap_fc``, ``gmp_fc``, ``conv1x1``, ``cam_act``,
``cam_logit``, ``heatmap``, ``fc`` (``fc.0`` .. ``fc.3``), ``gamma``, ``beta``, ``dec_res.<i>`` (``.conv1``,
``.norm1``, ``.conv2``, ``.norm2``), ``up.0`` / ``up.1`` (``.upsample``, ``.conv``, ``.norm``),
``out.conv``. The analyses' default layer (``preferred_unit_layer``) is ``conv1x1``: the attention
output, the one map the heatmap sums, ``FC`` reads and the decoder starts from (4 ngf units at 1/4
size; it is also the middle conv by count). A ReLU, not a norm, follows it, so zeroing one of its
channels removes that channel from everything downstream.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interp_gan.models.keys import few, key_problems, vote
from interp_gan.models.registry import register_model

__all__ = ["UGATITGenerator", "parse_ugatit", "remap_ugatit_state_dict", "looks_like_ugatit", "select_generator",
           "parse_direction", "ugatit_notes", "FILE_OPTIONS", "NETWORKS"]

_FIX = "for another architecture use --model file.py:factory"
FILE_OPTIONS = ("direction",)          # the option a state-dict path takes after '#': file.pt#direction=B2A
NETWORKS = ("genA2B", "genB2A", "disGA", "disGB", "disLA", "disLB")    # what UGATIT.save writes
_EPS = 1e-5


# --- the module -----------------------------------------------------------------------------------
def _ilnorm(x: Tensor, rho: Tensor, eps: float) -> Tensor:
    """rho * instance-normalised x + (1 - rho) * layer-normalised x (unbiased variances, as the reference)."""
    x_in = (x - x.mean(dim=(2, 3), keepdim=True)) / torch.sqrt(x.var(dim=(2, 3), keepdim=True) + eps)
    x_ln = (x - x.mean(dim=(1, 2, 3), keepdim=True)) / torch.sqrt(x.var(dim=(1, 2, 3), keepdim=True) + eps)
    return rho * x_in + (1 - rho) * x_ln


class AdaILN(nn.Module):
    """Adaptive layer-instance norm: a learned ``rho`` mixes the two; gamma and beta come from the MLP."""

    def __init__(self, channels: int, eps: float = _EPS) -> None:
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.empty(1, channels, 1, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.rho.fill_(0.9)             # the reference's construction value

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        return _ilnorm(x, self.rho, self.eps) * gamma[:, :, None, None] + beta[:, :, None, None]


class ILN(nn.Module):
    """Layer-instance norm with its own learned rho, gamma and beta (per channel)."""

    def __init__(self, channels: int, eps: float = _EPS) -> None:
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.empty(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.empty(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.empty(1, channels, 1, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():               # the reference's construction values
            self.rho.zero_()
            self.gamma.fill_(1.0)
            self.beta.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return _ilnorm(x, self.rho, self.eps) * self.gamma + self.beta


class ConvINReLU(nn.Module):
    """Reflection pad, conv without bias, InstanceNorm (no affine), ReLU."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(k // 2)
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=0, bias=False)
        self.norm = nn.InstanceNorm2d(cout)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(self.pad(x))))


class EncoderBlock(nn.Module):
    """The encoder's ResnetBlock: x + IN(conv2(ReLU(IN(conv1(x)))))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.pad1, self.conv1 = nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False)
        self.norm1 = nn.InstanceNorm2d(dim)
        self.act = nn.ReLU()
        self.pad2, self.conv2 = nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False)
        self.norm2 = nn.InstanceNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.norm2(self.conv2(self.pad2(self.act(self.norm1(self.conv1(self.pad1(x)))))))


class DecoderBlock(nn.Module):
    """The decoder's ResnetAdaILNBlock: x + AdaILN(conv2(ReLU(AdaILN(conv1(x))))), one gamma / beta."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.pad1, self.conv1, self.norm1 = nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), AdaILN(dim)
        self.act = nn.ReLU()
        self.pad2, self.conv2, self.norm2 = nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), AdaILN(dim)

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        y = self.act(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        return x + self.norm2(self.conv2(self.pad2(y)), gamma, beta)


class UpStage(nn.Module):
    """Nearest x2 upsampling, reflection pad, 3x3 conv without bias, ILN, ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(cin, cout, 3, bias=False)
        self.norm = ILN(cout)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(self.pad(self.upsample(x)))))


_DIRECTIONS = ("A2B", "B2A")


@register_model("ugatit")
class UGATITGenerator(nn.Module):
    """U-GAT-IT's ResnetGenerator (module docstring), layers named by role; ``img_size`` None = ``--light``.
    ``direction`` (A2B, B2A, or None for a lone generator's file) only records which one it is."""

    def __init__(self, ngf: int = 64, n_blocks: int = 4, img_size: int | None = 256, input_nc: int = 3,
                 output_nc: int = 3, direction: str | None = "A2B") -> None:
        super().__init__()
        ngf, n_blocks = int(ngf), int(n_blocks)
        if min(ngf, int(input_nc), int(output_nc)) < 1 or not 0 <= n_blocks <= 64:
            raise ValueError(f"U-GAT-IT ngf={ngf}, n_blocks={n_blocks}, {input_nc}->{output_nc} channels: expected a "
                             "positive width and channel counts and 0..64 residual blocks")
        if img_size is not None and (int(img_size) < 4 or int(img_size) % 4):
            raise ValueError(f"U-GAT-IT img_size={img_size}: expected a multiple of 4 (or None for --light)")
        if direction not in (*_DIRECTIONS, None):
            raise ValueError(f"U-GAT-IT direction={direction!r}: expected 'A2B', 'B2A' or None")
        light = img_size is None
        self.config = {"ngf": ngf, "n_blocks": n_blocks, "img_size": None if light else int(img_size),
                       "input_nc": int(input_nc), "output_nc": int(output_nc), "direction": direction}
        w = 4 * ngf
        self.down = nn.Sequential(ConvINReLU(input_nc, ngf, 7), ConvINReLU(ngf, 2 * ngf, 3, stride=2),
                                  ConvINReLU(2 * ngf, w, 3, stride=2))
        self.enc_res = nn.Sequential(*[EncoderBlock(w) for _ in range(n_blocks)])
        self.gap_fc = nn.Linear(w, 1, bias=False)
        self.gmp_fc = nn.Linear(w, 1, bias=False)
        self.conv1x1 = nn.Conv2d(2 * w, w, 1, bias=True)
        self.cam_act = nn.ReLU()
        self.cam_logit = nn.Identity()       # [N, 2]: the average-pool and max-pool logits (hookable)
        self.heatmap = nn.Identity()         # [N, 1, h/4, w/4]: the attention map's channel sum (hookable)
        fc_in = w if light else (int(img_size) // 4) ** 2 * w
        self.fc = nn.Sequential(nn.Linear(fc_in, w, bias=False), nn.ReLU(), nn.Linear(w, w, bias=False), nn.ReLU())
        self.gamma = nn.Linear(w, w, bias=False)
        self.beta = nn.Linear(w, w, bias=False)
        self.dec_res = nn.ModuleList([DecoderBlock(w) for _ in range(n_blocks)])
        self.up = nn.Sequential(UpStage(w, 2 * ngf), UpStage(2 * ngf, ngf))
        self.out = nn.Sequential()
        self.out.add_module("pad", nn.ReflectionPad2d(3))
        self.out.add_module("conv", nn.Conv2d(ngf, output_nc, 7, bias=False))
        self.out.add_module("tanh", nn.Tanh())
        self.preferred_unit_layer = "conv1x1"      # the attention output (module docstring)
        self.size_multiple = 4                     # two stride-2 convs, two x2 upsamplings
        if not light:                              # FC reads the flattened map: one size only
            self.fixed_size = (int(img_size), int(img_size))

    def _check_size(self, x: Tensor) -> None:
        h, w = x.shape[-2:]
        s = self.config["img_size"]
        if s is not None and (h, w) != (s, s):
            raise ValueError(f"this U-GAT-IT generator (full, not --light) was trained at {s}x{s}: its FC layer reads "
                             f"the flattened {s // 4}x{s // 4} attention map, so it takes {s}x{s} images only; got "
                             f"{h}x{w} (set image_size={s})")
        if s is None and (h % 4 or w % 4 or min(h, w) < 8):
            raise ValueError(f"a U-GAT-IT generator needs height and width that are multiples of 4 (at least 8; "
                             f"other sizes come back another size); got {h}x{w} (set image_size to a multiple of 4)")

    def forward_with_cam(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The reference's forward: (image [N,3,H,W] in [-1, 1], cam_logit [N, 2], heatmap [N, 1, H/4, W/4])."""
        self._check_size(x)
        h = self.enc_res(self.down(x))
        a_logit = self.gap_fc(F.adaptive_avg_pool2d(h, 1).flatten(1))
        m_logit = self.gmp_fc(F.adaptive_max_pool2d(h, 1).flatten(1))
        scaled = torch.cat([h * self.gap_fc.weight[0][None, :, None, None],
                            h * self.gmp_fc.weight[0][None, :, None, None]], dim=1)
        h = self.cam_act(self.conv1x1(scaled))
        cam_logit = self.cam_logit(torch.cat([a_logit, m_logit], dim=1))
        heatmap = self.heatmap(h.sum(dim=1, keepdim=True))
        v = F.adaptive_avg_pool2d(h, 1).flatten(1) if self.config["img_size"] is None else h.flatten(1)
        v = self.fc(v)
        gamma, beta = self.gamma(v), self.beta(v)
        for block in self.dec_res:
            h = block(h, gamma, beta)
        return self.out(self.up(h)), cam_logit, heatmap

    def forward(self, x: Tensor) -> Tensor:
        """content [N, 3, H, W] in [-1, 1] -> the translated image in [-1, 1]."""
        return self.forward_with_cam(x)[0]

    @classmethod
    def from_state_dict(cls, sd: dict, direction: str | None = None) -> "UGATITGenerator":
        flat, direction = select_generator(sd, direction)
        cfg, keymap = parse_ugatit(flat, direction)
        G = cls(**cfg)
        G.load_state_dict(remap_ugatit_state_dict(flat, keymap))
        return G


# --- which network of the file -------------------------------------------------------------------
def parse_direction(value) -> str:
    """``"b2a"`` -> ``"B2A"``; one line for anything else."""
    v = str(value).strip().upper()
    if v not in _DIRECTIONS:
        raise ValueError(f"direction={value!r}: expected A2B or B2A (file.pt#direction=B2A picks genB2A)")
    return v


def _strip(sd: dict) -> dict:
    return {k.removeprefix("module."): v for k, v in sd.items() if torch.is_tensor(v)}


def _is_discriminator(sd: dict) -> bool:
    return any(k.startswith(("gap_fc.weight_orig", "gmp_fc.weight_orig")) for k in sd)


def looks_like_ugatit(sd: dict) -> bool:
    """A ``UGATIT.save`` params dict (any of its six networks), or one U-GAT-IT network's flat state dict."""
    if any(isinstance(sd.get(n), dict) for n in NETWORKS):
        return True
    keys = set(_strip(sd))
    generator = "DownBlock.1.weight" in keys and bool({"gap_fc.weight", "conv1x1.weight", "FC.0.weight"} & keys)
    return generator or (_is_discriminator(keys) and "conv1x1.weight" in keys)


def select_generator(sd: dict, direction: str | None = None) -> tuple[dict, str | None]:
    """(the chosen generator's flat state dict, its direction): ``genA2B`` by default, ``genB2A`` for
    ``direction="B2A"``; a lone generator's flat state dict as it is (direction None; naming one is an
    error: the file cannot say which it is). One line for a file without the generator asked for."""
    d = None if direction is None else parse_direction(direction)
    nets = [n for n in NETWORKS if isinstance(sd.get(n), dict)]
    if not nets:
        if _is_discriminator(_strip(sd)):
            raise ValueError("holds one U-GAT-IT discriminator's state dict (gap_fc.weight_orig: spectral norm), no "
                             "generator: load the params file UGATIT.save writes (<dataset>_params_<step>.pt, with "
                             "'genA2B' and 'genB2A'), or a generator's own state dict")
        if d is not None:
            raise ValueError(f"holds one U-GAT-IT generator's state dict, not a UGATIT.save params file with "
                             f"'genA2B' / 'genB2A', so it cannot say which direction it is: drop '#direction={d}'")
        return _strip(sd), None
    want = f"gen{d or 'A2B'}"
    if want not in nets:
        gens = [n for n in nets if n.startswith("gen")]
        if not gens:
            raise ValueError(f"holds only U-GAT-IT discriminators ({', '.join(nets)}), no generator: expected "
                             "'genA2B' (and 'genB2A') as UGATIT.save writes them into <dataset>_params_<step>.pt")
        other = gens[0][3:]
        raise ValueError(f"holds no '{want}' (it has {', '.join(nets)}): load {other} with '#direction={other}'")
    return _strip(sd[want]), d or "A2B"


# --- reading the reference state dict ------------------------------------------------------------------
def _layout(ngf: int, n_blocks: int, fc_in: int, input_nc: int, output_nc: int) -> dict[str, tuple[tuple, str]]:
    """reference key -> (shape, our key) for the whole generator."""
    w = 4 * ngf
    out: dict[str, tuple[tuple, str]] = {
        "DownBlock.1.weight": ((ngf, input_nc, 7, 7), "down.0.conv.weight"),
        "DownBlock.5.weight": ((2 * ngf, ngf, 3, 3), "down.1.conv.weight"),
        "DownBlock.9.weight": ((w, 2 * ngf, 3, 3), "down.2.conv.weight"),
    }
    for i in range(n_blocks):
        out[f"DownBlock.{12 + i}.conv_block.1.weight"] = ((w, w, 3, 3), f"enc_res.{i}.conv1.weight")
        out[f"DownBlock.{12 + i}.conv_block.5.weight"] = ((w, w, 3, 3), f"enc_res.{i}.conv2.weight")
    out |= {"gap_fc.weight": ((1, w), "gap_fc.weight"), "gmp_fc.weight": ((1, w), "gmp_fc.weight"),
            "conv1x1.weight": ((w, 2 * w, 1, 1), "conv1x1.weight"), "conv1x1.bias": ((w,), "conv1x1.bias"),
            "FC.0.weight": ((w, fc_in), "fc.0.weight"), "FC.2.weight": ((w, w), "fc.2.weight"),
            "gamma.weight": ((w, w), "gamma.weight"), "beta.weight": ((w, w), "beta.weight")}
    for i in range(n_blocks):
        for j in (1, 2):
            out[f"UpBlock1_{i + 1}.conv{j}.weight"] = ((w, w, 3, 3), f"dec_res.{i}.conv{j}.weight")
            out[f"UpBlock1_{i + 1}.norm{j}.rho"] = ((1, w, 1, 1), f"dec_res.{i}.norm{j}.rho")
    for stage, (conv, norm, cin, cout) in enumerate([(2, 3, w, 2 * ngf), (7, 8, 2 * ngf, ngf)]):
        out[f"UpBlock2.{conv}.weight"] = ((cout, cin, 3, 3), f"up.{stage}.conv.weight")
        for p in ("rho", "gamma", "beta"):
            out[f"UpBlock2.{norm}.{p}"] = ((1, cout, 1, 1), f"up.{stage}.norm.{p}")
    out["UpBlock2.11.weight"] = ((output_nc, ngf, 7, 7), "out.conv.weight")
    return out


_vote = vote


def _image_size(fc_in: int, w: int) -> int | None:
    """The training image size FC.0's width implies (None: --light), or ValueError."""
    if fc_in == w:
        return None
    side = math.isqrt(fc_in // w) if fc_in % w == 0 else 0
    if side < 1 or side * side * w != fc_in:
        raise ValueError(f"FC.0.weight takes {fc_in} inputs, which is neither 4*ngf = {w} (--light) nor "
                         f"(img_size/4)^2 * {w} for a whole img_size; {_FIX}")
    return 4 * side


def parse_ugatit(sd: dict, direction: str | None = "A2B") -> tuple[dict, dict[str, str]]:
    """(config, keymap): ``UGATITGenerator(**config)`` and the reference key -> our key for every key.

    Reads ngf, the number of residual blocks, the input / output channels and, from ``FC.0.weight``,
    ``--light`` or the training image size (each width as most of the tensors that carry it say), then
    requires exactly the reference layout they imply: a missing key, a key with no place or a wrong
    shape raises a one-line ValueError naming up to three of each.
    """
    sd = _strip(sd)
    what = "not a U-GAT-IT generator (UGATIT-pytorch's ResnetGenerator)"
    if "DownBlock.1.weight" not in sd or sd["DownBlock.1.weight"].dim() != 4:
        raise ValueError(f"{what} (no 4-D first conv 'DownBlock.1.weight'; its first keys are {list(sd)[:3]}); {_FIX}")
    n_enc = sum(1 for k in sd if k.startswith("DownBlock.") and k.endswith(".conv_block.1.weight"))
    n_dec = sum(1 for k in sd if k.startswith("UpBlock1_") and k.endswith(".conv1.weight"))
    n = max(n_enc, n_dec)
    if n > 64:
        raise ValueError(f"{what} ({n} residual blocks; expected 0..64, 4 in the reference); {_FIX}")
    w = _vote(sd, [("DownBlock.9.weight", 4, 0), ("gap_fc.weight", 2, 1), ("gmp_fc.weight", 2, 1),
                   ("conv1x1.weight", 4, 0), ("gamma.weight", 2, 0), ("beta.weight", 2, 1), ("FC.2.weight", 2, 0),
                   ("UpBlock2.2.weight", 4, 1)], 256)
    ngf = _vote(sd, [("DownBlock.1.weight", 4, 0), ("DownBlock.5.weight", 4, 1), ("UpBlock2.7.weight", 4, 0),
                     ("UpBlock2.11.weight", 4, 1)], max(w // 4, 1))
    if w != 4 * ngf:     # the widths disagree: read from the first conv, the others named as wrong shapes
        w = 4 * ngf
    fc = sd.get("FC.0.weight")
    fc_in = int(fc.shape[1]) if fc is not None and fc.dim() == 2 else w
    try:
        img_size = _image_size(fc_in, w)
    except ValueError as e:
        raise ValueError(f"not the U-GAT-IT generator its keys suggest (ngf {ngf}, {n} residual blocks): {e}") from None
    label_size = "--light" if img_size is None else f"full, trained at {img_size}x{img_size}"
    input_nc = int(sd["DownBlock.1.weight"].shape[1])
    out = sd.get("UpBlock2.11.weight")
    output_nc = int(out.shape[0]) if out is not None and out.dim() == 4 else 3
    layout = _layout(ngf, n, fc_in, input_nc, output_nc)
    label = f"ngf {ngf}, {n} residual blocks, {label_size}, {input_nc}->{output_nc} channels"
    unplaced = [k for k in sd if k not in layout]
    missing = [k for k in layout if k not in sd]
    wrong = [f"{k} {list(sd[k].shape)} (expected {list(layout[k][0])})" for k in sd
             if k in layout and tuple(sd[k].shape) != layout[k][0]]
    if unplaced or missing or wrong:
        parts = key_problems(unplaced, missing, wrong)
        raise ValueError(f"not the U-GAT-IT generator its keys suggest ({label}): {'; '.join(parts)}; {_FIX}")
    cfg = {"ngf": ngf, "n_blocks": n, "img_size": img_size, "input_nc": input_nc, "output_nc": output_nc,
           "direction": direction}
    return cfg, {k: v[1] for k, v in layout.items()}


def remap_ugatit_state_dict(sd: dict, keymap: dict[str, str]) -> dict:
    """The reference generator's state dict under our module's names."""
    return {keymap[k]: v for k, v in _strip(sd).items()}


def ugatit_notes(model: dict) -> dict:
    """What a subject's metadata says was read and assumed (the report's model notes)."""
    d = model.get("direction")
    which = (f"the {d} generator (gen{d}) of a UGATIT.save params file; FILE#direction="
             f"{'A2B' if d == 'B2A' else 'B2A'} loads the other" if d else
             "a lone generator's state dict: which direction it translates is not recorded")
    size = ("--light: gamma / beta from the attention map's global average, any size that is a multiple of 4"
            if model.get("img_size") is None else
            f"full model: its FC reads the flattened attention map of {model['img_size']}x{model['img_size']} images, "
            "the one size it runs at (the pipeline's image_size is set to it)")
    notes = [f"U-GAT-IT: {which}", f"U-GAT-IT {size}",
             *(["U-GAT-IT: the params file's discriminators (disGA, disGB, disLA, disLB) are not loaded, so "
                "discriminator dissection skips"] if d else []),
             "U-GAT-IT: the CAM logit and heatmap are not analysed; hooks read them as the modules 'cam_logit' "
             "and 'heatmap' (forward_with_cam returns them as the reference does)",
             "U-GAT-IT norms: unbiased variance as the reference's code since its fix of issue #30 (2019-08); rho "
             "used as stored (training clips it to [0, 1])"]
    return {"value_range": "RGB in [-1, 1] in and out (the reference's Normalize(0.5, 0.5) and tanh), as the "
                           "analyses: nothing rescaled",
            "model_notes": notes}
