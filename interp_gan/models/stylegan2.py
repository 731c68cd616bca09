"""StyleGAN2 generator (pure nn.Modules) whose state_dict keys are NVlabs' own, so the weights of a
StyleGAN2-ADA-PyTorch (or StyleGAN3 repo, ``--cfg=stylegan2``) snapshot load with ``strict=True``.

    G = StyleGAN2Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3,
                           mapping_kwargs=dict(num_layers=8), synthesis_kwargs=dict(channel_base=16384))
    G.load_state_dict(snapshot["G_ema"].state_dict())
    img = G(z, c, truncation_psi=0.7)                 # [N,3,H,W], about [-1, 1]
    ws = G.mapping(z, c)                              # W+: [N, num_ws, w_dim] (one w repeated)
    styles = G.synthesis.styles(ws)                   # StyleSpace S: one [N, C] per modulated layer
    img = G.synthesis(styles=styles)                  # synthesis from S

Written from the papers, not from NVlabs' code: Karras et al., "Analyzing and Improving the
Image Quality of StyleGAN" (CVPR 2020): mapping MLP with pixel-norm of z (lr multiplier 0.01),
w -> per-layer affine "styles", weight modulation and demodulation, constant 4x4 input,
per-pixel noise scaled by a learned strength, skip (tRGB sums) and residual generator
architectures, equalised learning rate; Karras et al., "Training Generative Adversarial
Networks with Limited Data" (NeurIPS 2020, StyleGAN2-ADA): the configuration names
(channel_base / channel_max, conv_clamp, mapping layers, the class-label embedding concatenated
with z for conditional models); upsampling is a stride-2 transposed convolution followed by the
separable [1,3,3,1] low-pass filter (as in the StyleGAN2 paper's Appendix B). Truncation: w' =
w_avg + psi (w - w_avg) (Karras et al. 2019; the tracked average ``mapping.w_avg``).

Differences from NVlabs' runtime on purpose: everything runs in float32 (their ``num_fp16_res``
highest resolutions run in float16 on a GPU, so their outputs differ from these by fp16 rounding);
noise defaults to the stored constant noise maps (``noise_mode="const"``: images are a pure
function of z, as analysis needs); ``"none"`` drops noise; ``"random"`` draws fresh maps per sample
from a seeded generator, re-seeded at every forward (``set_noise_mode("random", seed)``), where
NVlabs draw from the global RNG.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interp_gan.models.registry import register_model

__all__ = ["StyleGAN2Generator", "NOISE_MODES", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock",
           "SynthesisLayer", "ToRGBLayer", "FullyConnectedLayer", "Conv2dLayer", "lowpass_filter", "upfirdn2d"]

NOISE_MODES = ("const", "random", "none")
_GAIN = {"linear": 1.0, "lrelu": math.sqrt(2), "relu": math.sqrt(2)}
_MAPPING_KEYS = {"num_layers", "embed_features", "layer_features", "activation", "lr_multiplier", "w_avg_beta"}
_SYNTHESIS_KEYS = {"channel_base", "channel_max", "num_fp16_res", "architecture", "resample_filter", "conv_clamp",
                   "fp16_channels_last", "use_noise", "activation", "kernel_size"}


def lowpass_filter(taps=(1, 3, 3, 1)) -> Tensor:
    """The 2-D resampling filter: outer product of the 1-D taps, normalised to sum 1."""
    f = torch.as_tensor(list(taps), dtype=torch.float32)
    f = torch.outer(f, f) if f.ndim == 1 else f
    return f / f.sum()


def upfirdn2d(x: Tensor, f: Tensor, up: int = 1, pad: tuple[int, int, int, int] = (0, 0, 0, 0),
              gain: float = 1.0, down: int = 1) -> Tensor:
    """Upsample by zero insertion, pad (negative: crop) by (left, right, top, bottom), FIR-filter,
    then keep every ``down``-th row and column (decimation)."""
    n, c, h, w = x.shape
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(pad[0], 0), max(pad[1], 0), max(pad[2], 0), max(pad[3], 0)])
    x = x[:, :, max(-pad[2], 0): x.shape[2] - max(-pad[3], 0), max(-pad[0], 0): x.shape[3] - max(-pad[1], 0)]
    k = (f * gain ** (f.ndim / 2)).to(x.dtype).flip([0, 1])
    x = F.conv2d(x, k[None, None].expand(c, 1, *k.shape), groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


def _downsample_pads(f: Tensor, down: int) -> tuple[int, int]:
    """Pads of the filter step of a 2x decimation, so that H -> H / down (filter width fw)."""
    fw = f.shape[-1]
    return (fw - down + 1) // 2, (fw - down) // 2


def _conv_down(x: Tensor, w: Tensor, f: Tensor, down: int, padding: int) -> Tensor:
    """Convolution then low-pass filter and decimation (the discriminator's strided layers,
    Karras et al. 2020, Appendix B); a 1x1 kernel filters first (the same result, less work)."""
    p0, p1 = _downsample_pads(f, down)
    if w.shape[-1] == 1:
        return F.conv2d(upfirdn2d(x, f, pad=(p0 + padding, p1 + padding) * 2, down=down), w)
    x = F.conv2d(F.pad(x, [padding + p0, padding + p1] * 2), w)
    return upfirdn2d(x, f, down=down)


def _upsample_pads(f: Tensor, up: int, k: int, padding: int) -> tuple[int, int]:
    """Pads of the filter step after a stride-``up`` transposed conv of kernel k (k=1: after a plain conv)."""
    fw = f.shape[-1]
    p0, p1 = padding + (fw + up - 1) // 2, padding + (fw - up) // 2
    return (p0, p1) if k == 1 else (p0 - (k - 1), p1 - (k - up))


def _conv_up(x: Tensor, w: Tensor, f: Tensor, up: int, padding: int, groups: int = 1) -> Tensor:
    """Convolution with weights w [O, I/groups, k, k]; up=2: transposed conv + low-pass filter."""
    k = w.shape[-1]
    if up == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    p0, p1 = _upsample_pads(f, up, k, padding)
    if k == 1:
        return upfirdn2d(F.conv2d(x, w, groups=groups), f, up=up, pad=(p0, p1, p0, p1), gain=up ** 2)
    o, i = w.shape[0] // groups, w.shape[1]
    wt = w.reshape(groups, o, i, k, k).transpose(1, 2).reshape(groups * i, o, k, k)
    x = F.conv_transpose2d(x, wt, stride=up, groups=groups)
    return upfirdn2d(x, f, pad=(p0, p1, p0, p1), gain=up ** 2)


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, up: int = 1, padding: int = 0,
                     f: Tensor | None = None, demodulate: bool = True) -> Tensor:
    """StyleGAN2's modulated convolution (Karras et al. 2020, Eq. 1-3): w'_ijk = s_i w_ijk, then
    w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + 1e-8) when ``demodulate``; one grouped conv per batch."""
    n = x.shape[0]
    o, i, kh, kw = weight.shape
    w = weight[None] * styles.reshape(n, 1, i, 1, 1)
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(n, o, 1, 1, 1)
    y = _conv_up(x.reshape(1, n * i, *x.shape[2:]), w.reshape(n * o, i, kh, kw), f, up, padding, groups=n)
    return y.reshape(n, o, *y.shape[2:])


def _bias_act(x: Tensor, b: Tensor | None, act: str, gain: float | None = None, clamp: float | None = None) -> Tensor:
    if b is not None:
        x = x + b.reshape(1, -1, *[1] * (x.dim() - 2))
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2)
    elif act == "relu":
        x = F.relu(x)
    elif act != "linear":
        raise ValueError(f"activation {act!r} is not supported (linear, lrelu, relu)")
    g = _GAIN[act] if gain is None else gain
    if g != 1:
        x = x * g
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


class FullyConnectedLayer(nn.Module):
    """Equalised-learning-rate linear layer: y = act(x (weight * lr / sqrt(in))^T + bias * lr)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0) -> None:
        super().__init__()
        self.activation, self.lr_multiplier, self.bias_init = activation, lr_multiplier, bias_init
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.normal_().div_(self.lr_multiplier)
            if self.bias is not None:
                self.bias.fill_(self.bias_init)

    def effective_weight(self) -> Tensor:
        """The matrix the layer applies: y - y(0) = W x for a linear layer (SeFa's A)."""
        return self.weight * self.weight_gain

    def forward(self, x: Tensor) -> Tensor:
        b = None if self.bias is None else self.bias * self.bias_gain
        return _bias_act(x.matmul(self.effective_weight().t()), b, self.activation)


class Conv2dLayer(nn.Module):
    """Equalised-learning-rate conv: the generator's resnet 1x1 upsampling skip (``up=2``) and every
    discriminator layer (``down=2``: conv, then the low-pass filter and decimation)."""
    is_conv_layer = True
    random_init_constants = ("resample_filter",)    # fixed by the architecture (Subject.random_init)

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None, down: int = 1) -> None:
        super().__init__()
        if up > 1 and down > 1:
            raise ValueError("a Conv2dLayer resamples up or down, not both")
        self.activation, self.up, self.conv_clamp, self.padding = activation, up, conv_clamp, kernel_size // 2
        self.down, self.in_channels, self.out_channels = down, in_channels, out_channels
        self.register_buffer("resample_filter", lowpass_filter(resample_filter))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.normal_()
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        w = self.weight * self.weight_gain
        if self.down > 1:
            x = _conv_down(x, w, self.resample_filter, self.down, self.padding)
        else:
            x = _conv_up(x, w, self.resample_filter, self.up, self.padding)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return _bias_act(x, self.bias, self.activation, _GAIN[self.activation] * gain, clamp)


def _layer_seed(seed: int, index: int) -> int:
    """A seed per (noise seed, layer) for ``noise_mode="random"``: independent streams per layer."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally 2x upsampling) + noise + bias + lrelu. Its output is the
    layer's activation map that dissection and ablation address (``synthesis.b64.conv1``); its
    ``affine`` output is this layer's StyleSpace coordinates (Wu et al., CVPR 2021).

    ``noise_const`` is a fixed N(0, 1) draw made at construction and never trained (as in NVlabs'
    code); ``reset_parameters`` draws it afresh (before the weight, so construction consumes the
    RNG as it always did), so the random-init control is the layer as a new construction makes it."""
    is_conv_layer = True
    random_init_constants = ("resample_filter",)

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu", resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.resolution, self.up, self.use_noise, self.activation = resolution, up, use_noise, activation
        self.conv_clamp, self.padding, self.noise_mode = conv_clamp, kernel_size // 2, "const"
        self.noise_index = 0                # this layer's place in forward order (its random-noise stream)
        self.register_buffer("resample_filter", lowpass_filter(resample_filter))
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        if use_noise:
            self.register_buffer("noise_const", torch.empty(resolution, resolution))   # drawn in reset_parameters
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            if self.use_noise:
                self.noise_const.normal_()
            self.weight.normal_()
            self.bias.zero_()
            if self.use_noise:
                self.noise_strength.zero_()

    def forward(self, x: Tensor, w: Tensor | None, styles: Tensor | None = None, gain: float = 1.0,
                noise_seed: int = 0) -> Tensor:
        """``noise_seed``: the seed ``noise_mode="random"`` draws this layer's maps with (the synthesis
        network passes its ``noise_seed``)."""
        s = self.affine(w) if styles is None else styles
        x = modulated_conv2d(x, self.weight, s, up=self.up, padding=self.padding, f=self.resample_filter)
        if self.use_noise and self.noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        elif self.use_noise and self.noise_mode == "random":
            g = torch.Generator().manual_seed(_layer_seed(noise_seed, self.noise_index))
            n = torch.stack([torch.randn(1, self.resolution, self.resolution, generator=g) for _ in range(len(x))])
            x = x + n.to(x.device, x.dtype) * self.noise_strength
        elif self.use_noise and self.noise_mode != "none":
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {self.noise_mode!r}")
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return _bias_act(x, self.bias, self.activation, _GAIN[self.activation] * gain, clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv to RGB, without demodulation (Karras et al. 2020, Fig. 7). An RGB
    projection, not a feature layer: default layer lists leave it out (name it to hook it)."""
    is_conv_layer = False

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.normal_()
            self.bias.zero_()

    def forward(self, x: Tensor, w: Tensor | None, styles: Tensor | None = None) -> Tensor:
        s = (self.affine(w) if styles is None else styles) * self.weight_gain
        x = modulated_conv2d(x, self.weight, s, padding=self.weight.shape[-1] // 2, demodulate=False)
        return _bias_act(x, self.bias, "linear", 1.0, self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution: [const 4x4 | conv0 (2x up)] -> conv1 -> [torgb]; skip or resnet architecture."""
    random_init_constants = ("resample_filter",)

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None, **layer_kwargs) -> None:
        super().__init__()
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        self.in_channels, self.resolution, self.is_last, self.architecture = in_channels, resolution, is_last, architecture
        self.img_channels = img_channels
        self.register_buffer("resample_filter", lowpass_filter(resample_filter))
        self.num_conv = self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp,
                                    **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    def reset_parameters(self) -> None:
        if self.in_channels == 0:
            with torch.no_grad():
                self.const.normal_()

    def style_layers(self) -> list[str]:
        return [n for n in ("conv0", "conv1", "torgb") if hasattr(self, n)]

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor | None, styles, n: int,
                noise: int = 0):
        """ws [N, num_conv + num_torgb, w_dim] (or None), styles: an iterator of per-layer S tensors (or None);
        noise: the seed of ``noise_mode="random"``."""
        ws_it = iter(ws.unbind(1)) if ws is not None else None
        nxt = lambda: (next(ws_it) if ws_it is not None else None, next(styles) if styles is not None else None)  # noqa: E731
        if self.in_channels == 0:
            x = self.conv1(self.const[None].expand(n, -1, -1, -1), *nxt(), noise_seed=noise)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, *nxt(), noise_seed=noise)
            x = y + self.conv1(x, *nxt(), gain=np.sqrt(0.5), noise_seed=noise)
        else:
            x = self.conv0(x, *nxt(), noise_seed=noise)
            x = self.conv1(x, *nxt(), noise_seed=noise)
        if img is not None:
            f = self.resample_filter
            img = upfirdn2d(img, f, up=2, pad=_upsample_pads(f, 2, 1, 0) * 2, gain=4)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, *nxt())
            img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """Blocks ``b4`` ... ``b<img_resolution>``; channels min(channel_base // res, channel_max)."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, fp16_channels_last: bool = False,
                 **block_kwargs) -> None:
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of 2 >= 4, got {img_resolution}")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.noise_seed = 0                         # noise_mode="random": the maps' seed (set_noise_mode)
        self.block_resolutions = [2 ** i for i in range(2, int(math.log2(img_resolution)) + 1)]
        ch = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        self.num_ws = 0
        for r in self.block_resolutions:
            block = SynthesisBlock(ch[r // 2] if r > 4 else 0, ch[r], w_dim, r, img_channels,
                                   is_last=r == img_resolution, **block_kwargs)
            self.num_ws += block.num_conv + (block.num_torgb if r == img_resolution else 0)
            setattr(self, f"b{r}", block)
        for i, m in enumerate(m for _, blk in self.blocks() for m in (getattr(blk, "conv0", None), blk.conv1) if m):
            m.noise_index = i

    def blocks(self) -> list[tuple[str, SynthesisBlock]]:
        return [(f"b{r}", getattr(self, f"b{r}")) for r in self.block_resolutions]

    def style_layer_names(self) -> list[str]:
        """Modulated layers in forward order (the order of StyleSpace S), e.g. ``b4.conv1``, ``b4.torgb``."""
        return [f"{b}.{n}" for b, blk in self.blocks() for n in blk.style_layers()]

    def style_layer_ws(self) -> list[int]:
        """The index into W+ each modulated layer reads (a block's tRGB shares the next block's conv0 w)."""
        out, i = [], 0
        for _, blk in self.blocks():
            out += [i + j for j in range(len(blk.style_layers()))]
            i += blk.num_conv
        return out

    def styles(self, ws: Tensor) -> list[Tensor]:
        """StyleSpace S of W+ codes ws [N, num_ws, w_dim]: each modulated layer's affine output."""
        mods = dict(self.named_modules())
        return [mods[n].affine(ws[:, i]) for n, i in zip(self.style_layer_names(), self.style_layer_ws())]

    def forward(self, ws: Tensor | None = None, styles: list[Tensor] | None = None) -> Tensor:
        if (ws is None) == (styles is None):
            raise ValueError("give ws (W+) or styles (StyleSpace), exactly one")
        if ws is not None and (ws.dim() != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim):
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        n = ws.shape[0] if ws is not None else styles[0].shape[0]
        it = iter(styles) if styles is not None else None
        x = img = None
        i = 0
        noise = int(self.noise_seed)
        for _, blk in self.blocks():
            cur = ws.narrow(1, i, blk.num_conv + blk.num_torgb).float() if ws is not None else None
            x, img = blk(x, img, cur, it, n, noise)
            i += blk.num_conv
        return img


def _normalize_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """z (and the class embedding) -> w: pixel-norm, then ``num_layers`` lrelu FC layers. ``w_avg`` (the
    tracked average of w that truncation pulls towards) is a learned buffer: zeros at construction,
    and again after ``reset_parameters`` (the random-init control)."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None, activation: str = "lrelu",
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        embed = (w_dim if embed_features is None else embed_features) if c_dim else 0
        feat = w_dim if layer_features is None else layer_features
        sizes = [z_dim + embed] + [feat] * (num_layers - 1) + [w_dim]
        if c_dim:
            self.embed = FullyConnectedLayer(c_dim, embed)
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(sizes[i], sizes[i + 1], activation=activation,
                                                        lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def reset_parameters(self) -> None:
        """Back to construction: ``w_avg`` zeros (the FC layers reset themselves)."""
        if hasattr(self, "w_avg"):
            with torch.no_grad():
                self.w_avg.zero_()

    def forward(self, z: Tensor, c: Tensor | None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> Tensor:
        x = _normalize_2nd_moment(z.float()) if self.z_dim else None
        if self.c_dim:
            y = _normalize_2nd_moment(self.embed(c.float()))
            x = y if x is None else torch.cat([x, y], dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if self.num_ws is not None:
            x = x[:, None].repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            if not hasattr(self, "w_avg"):
                raise ValueError("truncation needs the tracked average w (mapping.w_avg); this model has none")
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = torch.cat([self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi),
                               x[:, truncation_cutoff:]], dim=1)
        return x


def _plain_kwargs(d) -> dict:
    """EasyDict / numpy scalars -> JSON-able builtins."""
    def conv(v):
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, np.generic):
            return v.item()
        return v
    return conv(dict(d or {}))


class MappedSynthesis(nn.Module):
    """What a StyleGAN2 and a StyleGAN3 generator share: ``synthesis(mapping(z, c))``, and their
    affines (w -> S) in StyleSpace order (``synthesis.style_layer_names()``), which SeFa factorises."""

    @property
    def style_affines(self) -> list[FullyConnectedLayer]:
        mods = dict(self.synthesis.named_modules())
        return [mods[n].affine for n in self.synthesis.style_layer_names()]

    def style_layer_names(self) -> list[str]:
        return [f"synthesis.{n}" for n in self.synthesis.style_layer_names()]

    def forward(self, z: Tensor, c: Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> Tensor:
        return self.synthesis(self.mapping(z, c, truncation_psi, truncation_cutoff))


@register_model("stylegan2")
class StyleGAN2Generator(MappedSynthesis):
    """``synthesis`` + ``mapping``, as NVlabs' ``training.networks.Generator`` (same keys)."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int = 3,
                 mapping_kwargs: dict | None = None, synthesis_kwargs: dict | None = None) -> None:
        super().__init__()
        mk, sk = _plain_kwargs(mapping_kwargs), _plain_kwargs(synthesis_kwargs)
        for what, got, ok in (("mapping_kwargs", mk, _MAPPING_KEYS), ("synthesis_kwargs", sk, _SYNTHESIS_KEYS)):
            bad = sorted(set(got) - ok)
            if bad:
                raise ValueError(f"unknown StyleGAN2 {what} {bad}; known: {sorted(ok)}")
        if "resample_filter" in sk:
            sk["resample_filter"] = list(sk["resample_filter"])
        self.z_dim, self.c_dim, self.w_dim = int(z_dim), int(c_dim), int(w_dim)
        self.img_resolution, self.img_channels = int(img_resolution), int(img_channels)
        self.config = dict(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, img_resolution=self.img_resolution,
                           img_channels=self.img_channels, mapping_kwargs=mk, synthesis_kwargs=sk)
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **sk)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **mk)

    def set_noise_mode(self, mode: str, seed: int = 0) -> None:
        """``"const"`` (default): the stored noise maps; ``"none"``: no noise; ``"random"``: per-pixel
        N(0, 1) maps [N, 1, H, W] per layer (Karras et al. 2020, Sec. 2), drawn on the CPU from a
        ``torch.Generator`` seeded per (``seed``, layer) afresh at every forward: a call is reproducible
        (on any device), another seed draws other maps, and sample i of a batch gets the i-th map of
        each layer's stream whatever the batch size (an image depends on its position in the batch)."""
        if mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {mode!r}")
        self.synthesis.noise_seed = int(seed)
        for m in self.modules():
            if isinstance(m, SynthesisLayer):
                m.noise_mode = mode

