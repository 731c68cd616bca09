"""StyleGAN3 generator (alias-free, configs T and R; pure nn.Modules) whose state_dict keys are NVlabs'
own, so the ``G_ema`` of a StyleGAN3 network pickle loads with ``strict=True``.

    G = StyleGAN3Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3,
                           mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=32768))
    G.load_state_dict(sd)                            # the filters are buffers: they come with the weights
    img = G(z, c, truncation_psi=0.7)                # [N, 3, H, W], about [-1, 1]
    ws = G.mapping(z, c)                             # W+: [N, num_ws, w_dim]
    styles = G.synthesis.styles(ws)                  # S: the input's transform, then one [N, C] per layer
    img = G.synthesis(styles=styles)

Written from Karras et al., "Alias-Free Generative Adversarial Networks" (NeurIPS 2021): the mapping
network (pixel-norm, lrelu FC layers with lr multiplier 0.01, tracked ``w_avg``), the Fourier-feature
input (fixed frequencies in a disc of radius f_c,0 and phases, turned and shifted by a rotation and
translation that an affine layer reads from w, faded out beyond the band, then a learned 1x1
mixing), and per layer: an affine style, a modulated convolution with demodulation whose input is
scaled by the tracked magnitude (``magnitude_ema ** -1/2``), then the filtered leaky ReLU: bias,
upsample by ``up_factor`` with the stored up filter, lrelu with gain sqrt(2), clamp, low-pass with
the stored down filter and decimate. The last layer is ToRGB (1x1, no demodulation, weight gain
1/sqrt(in), no lrelu). The image is the last layer's output times ``output_scale``.

The layer geometry (cutoffs, stopbands, sampling rates, sizes, channels, paddings) follows the
paper's geometric schedule as NVlabs compute it in ``SynthesisNetwork.__init__``; the pickle loader
(``interp_gan.subject.stylegan``) checks it against every layer's stored init kwargs. The resampling
filters (Kaiser-windowed sinc, separable for T; radial jinc for R's non-critical down filters) are
*not designed here*: they are buffers of the pickle and are read from it (a generator built from
its config alone has NaN filters until weights are loaded). Everything runs in float32.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interp_gan.models.registry import register_model
from interp_gan.models.stylegan2 import FullyConnectedLayer, MappedSynthesis, MappingNetwork, _plain_kwargs

__all__ = ["StyleGAN3Generator", "SynthesisInput", "SynthesisLayer", "ToRGBSynthesisLayer", "SynthesisNetwork",
           "layer_geometry", "MAPPING_KEYS", "SYNTHESIS_KEYS", "upfirdn2d", "filtered_lrelu"]

MAPPING_KEYS = {"num_layers", "lr_multiplier", "w_avg_beta", "freeze_layers", "freeze_embed"}
_NETWORK_DEFAULTS = dict(channel_base=32768, channel_max=512, num_layers=14, num_critical=2, first_cutoff=2,
                         first_stopband=2 ** 2.1, last_stopband_rel=2 ** 0.3, margin_size=10, output_scale=0.25,
                         num_fp16_res=4)
_LAYER_DEFAULTS = dict(conv_kernel=3, filter_size=6, lrelu_upsampling=2, use_radial_filters=False, conv_clamp=256,
                       magnitude_ema_beta=0.999)
SYNTHESIS_KEYS = set(_NETWORK_DEFAULTS) | set(_LAYER_DEFAULTS)


def _up_pad(x: Tensor, up: int, lo: int, hi: int, dim: int) -> Tensor:
    """Along ``dim`` (2: rows, 3: columns): ``up - 1`` zeros after every sample, then pad (positive) or crop
    (negative) by ``lo`` before and ``hi`` after; written straight into one channels-last buffer."""
    if up == 1 and lo <= 0 and hi <= 0:
        return x.narrow(dim, -lo, x.shape[dim] + lo + hi) if lo or hi else x
    n = x.shape[dim] * up
    shape = list(x.shape)
    shape[dim] = n + max(lo, 0) + max(hi, 0)
    y = x.new_zeros(shape).contiguous(memory_format=torch.channels_last)
    idx = [slice(None)] * 4
    idx[dim] = slice(max(lo, 0), max(lo, 0) + n, up)
    y[tuple(idx)] = x
    if lo < 0 or hi < 0:
        y = y.narrow(dim, max(-lo, 0), shape[dim] - max(-lo, 0) - max(-hi, 0))
    return y


def upfirdn2d(x: Tensor, f: Tensor | None, up: int = 1, down: int = 1, pad=(0, 0, 0, 0), gain: float = 1.0) -> Tensor:
    """Zero-insertion upsampling, pad (negative: crop; x0, x1, y0, y1), convolve with f (1-D: separable,
    rows then columns; 2-D: as is; None: identity), keep every ``down``-th sample. ``gain`` scales the
    filter (gain ** (ndim / 2) per pass).

    A 1-D filter runs one axis at a time (upsample, pad and filter the columns of each row, then the
    rows), and every pass computes only the samples that are kept (a strided convolution): the same
    products as upsampling both axes, filtering the whole grid and decimating, at a fraction of the work."""
    c = x.shape[1]
    x0, x1, y0, y1 = pad
    if f is None or f.ndim == 2:
        x = _up_pad(_up_pad(x, up, x0, x1, 3), up, y0, y1, 2)
        if f is None:
            return (x * gain if gain != 1 else x)[:, :, ::down, ::down]
        k = (f * gain).to(x.dtype).flip([0, 1])
        return F.conv2d(_nhwc(x), k[None, None].expand(c, 1, *k.shape), groups=c, stride=down)
    k = (f * gain ** 0.5).to(x.dtype).flip([0])
    x = _up_pad(x, up, x0, x1, 3)
    x = F.conv2d(_nhwc(x), k[None, None, None].expand(c, 1, 1, len(k)), groups=c, stride=(1, down))
    x = _up_pad(x, up, y0, y1, 2)
    return F.conv2d(_nhwc(x), k[None, None, :, None].expand(c, 1, len(k), 1), groups=c, stride=(down, 1))


def _nhwc(x: Tensor) -> Tensor:
    """Channels last: the layout in which CPU depthwise convolutions are fastest (several times, same numbers)."""
    return x.contiguous(memory_format=torch.channels_last)


CHUNK_BYTES = 1 << 26   # filtered_lrelu's upsampled intermediate is made for at most this many bytes at a time


def filtered_lrelu(x: Tensor, fu: Tensor | None, fd: Tensor | None, b: Tensor, up: int, down: int, padding,
                   gain: float, slope: float, clamp: float | None) -> Tensor:
    """bias -> upsample (fu, gain up^2, the padding) -> leaky ReLU * gain -> clamp -> low-pass (fd) and decimate.

    Every channel of every image is filtered on its own, so the images x channels run in slabs whose
    upsampled intermediate (up^2 times the input's pixels, and more) stays under ``CHUNK_BYTES``: memory
    bounded at any batch, the same numbers."""
    n, c, h, w = x.shape
    x = (x + b.reshape(1, -1, 1, 1)).reshape(1, n * c, h, w)
    tmp = (h * up + padding[2] + padding[3]) * (w * up + padding[0] + padding[1]) * x.element_size()
    step = max(1, CHUNK_BYTES // max(tmp, 1))

    def run(t: Tensor) -> Tensor:
        t = upfirdn2d(t, fu, up=up, pad=padding, gain=up ** 2)
        t = F.leaky_relu(t, slope) if slope != 1 else t
        if gain != 1:
            t = t * gain
        if clamp is not None and clamp >= 0:
            t = t.clamp(-clamp, clamp)
        return upfirdn2d(t, fd, down=down)

    y = run(x) if step >= n * c else torch.cat([run(t) for t in x.split(step, dim=1)], dim=1)
    return y.reshape(n, c, *y.shape[2:])


def modulated_conv2d(x: Tensor, weight: Tensor, s: Tensor, demodulate: bool, padding: int,
                     input_gain: Tensor) -> Tensor:
    """Modulation (and demodulation) as StyleGAN3 does it: with demodulation, w and s are first scaled
    to unit RMS (s over the whole batch: it cancels in the demodulation but for its epsilon); the
    input gain scales every input channel's weights."""
    n = x.shape[0]
    o, i, kh, kw = weight.shape
    w = weight
    if demodulate:
        w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean().rsqrt()
    w = w[None] * s.reshape(n, 1, i, 1, 1)
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(n, o, 1, 1, 1)
    w = w * input_gain.reshape(1, 1, 1, 1, 1)
    y = F.conv2d(x.reshape(1, n * i, *x.shape[2:]), w.reshape(n * o, i, kh, kw), padding=padding, groups=n)
    return y.reshape(n, o, *y.shape[2:])


def layer_geometry(img_resolution: int, img_channels: int, channel_base: float, channel_max: float, num_layers: int,
                   num_critical: int, first_cutoff: float, first_stopband: float, last_stopband_rel: float,
                   margin_size: int) -> tuple[list[dict], dict]:
    """Per synthesis layer (0 .. num_layers, the last is ToRGB): the init kwargs NVlabs' SynthesisNetwork
    gives its SynthesisLayer (the paper's geometric progression of cutoffs and stopbands), and the
    SynthesisInput's (channels, size, sampling_rate, bandwidth)."""
    if num_layers <= num_critical:
        raise ValueError(f"num_layers ({num_layers}) must exceed num_critical ({num_critical})")
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    out = []
    for i in range(num_layers + 1):
        p = max(i - 1, 0)
        out.append(dict(is_torgb=i == num_layers, is_critically_sampled=i >= num_layers - num_critical,
                        in_channels=int(channels[p]), out_channels=int(channels[i]), in_size=int(sizes[p]),
                        out_size=int(sizes[i]), in_sampling_rate=int(rates[p]), out_sampling_rate=int(rates[i]),
                        in_cutoff=float(cutoffs[p]), out_cutoff=float(cutoffs[i]),
                        in_half_width=float(half_widths[p]), out_half_width=float(half_widths[i])))
    return out, dict(channels=int(channels[0]), size=int(sizes[0]), sampling_rate=float(rates[0]),
                     bandwidth=float(cutoffs[0]))


class _InputAffine(FullyConnectedLayer):
    """w -> (r_c, r_s, t_x, t_y); constructed with zero weights and bias (1, 0, 0, 0): the identity transform."""

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.zero_()
            self.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))


class SynthesisInput(nn.Module):
    """Fourier features at ``size`` px, sampling rate ``sampling_rate``, frequencies in the disc of radius
    ``bandwidth``, rotated and translated by the transform its affine reads from w; then a 1x1 mixing.
    ``freqs`` and ``phases`` are a random draw at construction, never trained (redrawn by
    ``reset_parameters``); ``transform`` is the user's inverse view transform (identity at construction),
    kept by the random-init control."""
    random_init_constants = ("transform",)

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float) -> None:
        super().__init__()
        self.w_dim, self.channels, self.size = w_dim, channels, int(size)
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)
        self.weight = nn.Parameter(torch.empty(channels, channels))
        self.affine = _InputAffine(w_dim, 4)
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", torch.empty(channels, 2))
        self.register_buffer("phases", torch.empty(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            f = torch.randn(self.channels, 2)
            r = f.square().sum(dim=1, keepdim=True).sqrt()
            self.freqs.copy_(f / (r * r.square().exp().pow(0.25)) * self.bandwidth)
            self.phases.copy_(torch.rand(self.channels) - 0.5)
            self.weight.normal_()

    def forward(self, w: Tensor | None, t: Tensor | None = None) -> Tensor:
        """``t``: the affine's output (StyleSpace), instead of w."""
        t = self.affine(w) if t is None else t
        n, dev = t.shape[0], t.device
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        m_r = torch.eye(3, device=dev).repeat(n, 1, 1)
        m_r[:, 0, 0], m_r[:, 0, 1], m_r[:, 1, 0], m_r[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        m_t = torch.eye(3, device=dev).repeat(n, 1, 1)
        m_t[:, 0, 2], m_t[:, 1, 2] = -t[:, 2], -t[:, 3]
        m = m_r @ m_t @ self.transform[None]
        freqs, phases = self.freqs[None], self.phases[None]
        phases = phases + (freqs @ m[:, :2, 2:]).squeeze(2)
        freqs = freqs @ m[:, :2, :2]
        amp = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        theta = torch.eye(2, 3, device=dev)
        theta[0, 0] = theta[1, 1] = 0.5 * self.size / self.sampling_rate
        grid = F.affine_grid(theta[None], [1, 1, self.size, self.size], align_corners=False)
        x = (grid.unsqueeze(3) @ freqs.permute(0, 2, 1)[:, None, None]).squeeze(3)   # [N, H, W, C]
        x = torch.sin((x + phases[:, None, None]) * (2 * np.pi)) * amp[:, None, None]
        x = x @ (self.weight / np.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)


class SynthesisLayer(nn.Module):
    """Modulated conv + filtered leaky ReLU at the layer's sampling rate (module docstring). Its output is
    the activation map dissection and ablation address (``synthesis.L3_52_1024``)."""
    is_conv_layer = True
    random_init_constants = ("up_filter", "down_filter")

    def __init__(self, w_dim: int, is_torgb: bool, is_critically_sampled: bool, in_channels: int, out_channels: int,
                 in_size: int, out_size: int, in_sampling_rate: int, out_sampling_rate: int, in_cutoff: float,
                 out_cutoff: float, in_half_width: float, out_half_width: float, conv_kernel: int = 3,
                 filter_size: int = 6, lrelu_upsampling: int = 2, use_radial_filters: bool = False,
                 conv_clamp: float | None = 256, magnitude_ema_beta: float = 0.999) -> None:
        super().__init__()
        self.is_torgb, self.in_channels, self.out_channels = bool(is_torgb), int(in_channels), int(out_channels)
        self.in_size, self.out_size, self.conv_clamp = int(in_size), int(out_size), conv_clamp
        self.conv_kernel = 1 if is_torgb else int(conv_kernel)
        tmp = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.up_factor, self.down_factor = int(np.rint(tmp / in_sampling_rate)), int(np.rint(tmp / out_sampling_rate))
        if in_sampling_rate * self.up_factor != tmp or out_sampling_rate * self.down_factor != tmp:
            raise ValueError(f"sampling rates {in_sampling_rate} -> {out_sampling_rate} are not integer ratios "
                             f"of {tmp}")
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.down_radial = bool(use_radial_filters) and not is_critically_sampled
        nan = float("nan")      # read from the weights, never designed here (module docstring)
        self.register_buffer("up_filter", torch.full([self.up_taps], nan) if self.up_taps > 1 else None)
        shape = [self.down_taps] * (2 if self.down_radial else 1)
        self.register_buffer("down_filter", torch.full(shape, nan) if self.down_taps > 1 else None)
        total = (self.out_size - 1) * self.down_factor + 1
        total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        total += self.up_taps + self.down_taps - 2
        lo = (total + self.up_factor) // 2
        self.padding = [lo, total - lo, lo, total - lo]
        self.affine = FullyConnectedLayer(w_dim, self.in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.empty(self.out_channels, self.in_channels, self.conv_kernel, self.conv_kernel))
        self.bias = nn.Parameter(torch.empty(self.out_channels))
        self.register_buffer("magnitude_ema", torch.ones([]))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Construction values: weight N(0, 1), bias 0, magnitude_ema 1 (a tracked statistic, learned)."""
        with torch.no_grad():
            self.weight.normal_()
            self.bias.zero_()
            self.magnitude_ema.fill_(1.0)

    def forward(self, x: Tensor, w: Tensor | None, styles: Tensor | None = None) -> Tensor:
        s = self.affine(w) if styles is None else styles
        if self.is_torgb:
            s = s * (1 / np.sqrt(self.in_channels * self.conv_kernel ** 2))
        x = modulated_conv2d(x, self.weight, s, demodulate=not self.is_torgb, padding=self.conv_kernel - 1,
                             input_gain=self.magnitude_ema.rsqrt())
        return filtered_lrelu(x, self.up_filter, self.down_filter, self.bias, self.up_factor, self.down_factor,
                              self.padding, gain=1.0 if self.is_torgb else math.sqrt(2),
                              slope=1.0 if self.is_torgb else 0.2, clamp=self.conv_clamp)


class ToRGBSynthesisLayer(SynthesisLayer):
    """The last layer (``is_torgb``): an RGB projection, left out of default layer lists (name it to hook it)."""
    is_conv_layer = False


class SynthesisNetwork(nn.Module):
    """``input`` (Fourier features) then layers ``L<i>_<size>_<channels>``; the last is ToRGB."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, **kwargs) -> None:
        super().__init__()
        net = {k: kwargs.pop(k, v) for k, v in _NETWORK_DEFAULTS.items()}
        layer_kw = {k: kwargs.pop(k, v) for k, v in _LAYER_DEFAULTS.items()}
        if kwargs:
            raise ValueError(f"unknown StyleGAN3 synthesis kwargs {sorted(kwargs)}; known: {sorted(SYNTHESIS_KEYS)}")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.num_ws, self.output_scale = int(net["num_layers"]) + 2, float(net["output_scale"])
        layers, first = layer_geometry(img_resolution, img_channels, net["channel_base"], net["channel_max"],
                                       int(net["num_layers"]), int(net["num_critical"]), net["first_cutoff"],
                                       net["first_stopband"], net["last_stopband_rel"], int(net["margin_size"]))
        self.geometry = layers
        self.input = SynthesisInput(w_dim, **first)
        self.layer_names = []
        for spec in layers:
            cls = ToRGBSynthesisLayer if spec["is_torgb"] else SynthesisLayer
            name = f"L{len(self.layer_names)}_{spec['out_size']}_{spec['out_channels']}"
            setattr(self, name, cls(w_dim, **spec, **layer_kw))
            self.layer_names.append(name)

    def style_layer_names(self) -> list[str]:
        """Every affine in forward order (the order of S): ``input`` (its 4 transform values), then the layers."""
        return ["input"] + self.layer_names

    def styles(self, ws: Tensor) -> list[Tensor]:
        mods = dict(self.named_modules())
        return [mods[n].affine(ws[:, i]) for i, n in enumerate(self.style_layer_names())]

    def forward(self, ws: Tensor | None = None, styles: list[Tensor] | None = None) -> Tensor:
        if (ws is None) == (styles is None):
            raise ValueError("give ws (W+) or styles (StyleSpace), exactly one")
        if ws is not None and (ws.dim() != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim):
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        if ws is not None:
            ws = ws.float().unbind(1)
            x = self.input(ws[0])
            for name, w in zip(self.layer_names, ws[1:]):
                x = getattr(self, name)(x, w)
        else:
            if len(styles) != len(self.layer_names) + 1:
                raise ValueError(f"styles must be {len(self.layer_names) + 1} tensors, got {len(styles)}")
            x = self.input(None, styles[0].float())
            for name, s in zip(self.layer_names, styles[1:]):
                x = getattr(self, name)(x, None, s.float())
        return x * self.output_scale if self.output_scale != 1 else x


@register_model("stylegan3")
class StyleGAN3Generator(MappedSynthesis):
    """``synthesis`` + ``mapping``, as NVlabs' ``training.networks_stylegan3.Generator`` (same keys). NVlabs
    pass the synthesis kwargs flat; here they are grouped as ``synthesis_kwargs`` (as for StyleGAN2). Its
    StyleSpace starts with the Fourier input's affine."""
    has_noise = False

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int = 3,
                 mapping_kwargs: dict | None = None, synthesis_kwargs: dict | None = None) -> None:
        super().__init__()
        mk, sk = _plain_kwargs(mapping_kwargs), _plain_kwargs(synthesis_kwargs)
        for what, got, ok in (("mapping_kwargs", mk, MAPPING_KEYS), ("synthesis kwargs", sk, SYNTHESIS_KEYS)):
            bad = sorted(set(got) - ok)
            if bad:
                raise ValueError(f"unknown StyleGAN3 {what} {bad}; known: {sorted(ok)}")
        self.z_dim, self.c_dim, self.w_dim = int(z_dim), int(c_dim), int(w_dim)
        self.img_resolution, self.img_channels = int(img_resolution), int(img_channels)
        self.config = dict(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, img_resolution=self.img_resolution,
                           img_channels=self.img_channels, mapping_kwargs=mk, synthesis_kwargs=sk)
        self.synthesis = SynthesisNetwork(self.w_dim, self.img_resolution, self.img_channels, **sk)
        self.num_ws = self.synthesis.num_ws
        # freeze_layers / freeze_embed only stop training of some layers: the forward is the same
        self.mapping = MappingNetwork(self.z_dim, self.c_dim, self.w_dim, self.num_ws,
                                      num_layers=int(mk.get("num_layers", 2)),
                                      lr_multiplier=float(mk.get("lr_multiplier", 0.01)),
                                      w_avg_beta=float(mk.get("w_avg_beta") or 0.998))

    def set_noise_mode(self, mode: str, seed: int = 0) -> None:
        """StyleGAN3 has no noise inputs: only the default (``"const"``, seed 0) is accepted."""
        if mode != "const" or seed:
            raise ValueError(f"a StyleGAN3 generator has no noise inputs, so noise={mode!r} (seed {seed}) has no "
                             "meaning: drop the noise / noise_seed options")

