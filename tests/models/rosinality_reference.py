"""rosinality/stylegan2-pytorch generator files with random weights, and an independent forward of
that layout, for tests. Written from the repository's ``model.py`` semantics (Generator, StyledConv,
ModulatedConv2d, ToRGB, EqualLinear with fused leaky ReLU, PixelNorm, upfirdn2d), in float64 with
plain F.conv2d / F.conv_transpose2d, one sample at a time: nothing here is interp_gan's code."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

WIDTHS = {4: 16, 8: 16, 16: 8, 32: 4}        # min(128 // r, 16): representable as channel_base / max


def _kernel(scale: float = 1.0) -> torch.Tensor:
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = k[None, :] * k[:, None]
    return k / k.sum() * scale


def generator_state_dict(widths=None, style_dim: int = 8, n_mlp: int = 3, seed: int = 0, noises: bool = True) -> dict:
    """A rosinality ``Generator.state_dict()`` (keys, shapes, buffers) with seeded random values."""
    widths = dict(WIDTHS if widths is None else widths)
    g = torch.Generator().manual_seed(seed)
    rn = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    sd: dict = {}
    for i in range(1, n_mlp + 1):
        sd[f"style.{i}.weight"] = rn(style_dim, style_dim) / 0.01
        sd[f"style.{i}.bias"] = rn(style_dim) * 10
    res = sorted(widths)

    def styled(name, cin, cout, up):
        sd[f"{name}.conv.weight"] = rn(1, cout, cin, 3, 3)
        sd[f"{name}.conv.modulation.weight"] = rn(cin, style_dim)
        sd[f"{name}.conv.modulation.bias"] = 1 + 0.2 * rn(cin)
        if up:
            sd[f"{name}.conv.blur.kernel"] = _kernel(4.0)
        sd[f"{name}.noise.weight"] = 0.3 * rn(1)
        sd[f"{name}.activate.bias"] = 0.1 * rn(cout)

    def torgb(name, cin, up):
        if up:
            sd[f"{name}.upsample.kernel"] = _kernel(4.0)
        sd[f"{name}.conv.weight"] = 0.3 * rn(1, 3, cin, 1, 1)
        sd[f"{name}.conv.modulation.weight"] = rn(cin, style_dim)
        sd[f"{name}.conv.modulation.bias"] = 1 + 0.2 * rn(cin)
        sd[f"{name}.bias"] = 0.1 * rn(1, 3, 1, 1)

    sd["input.input"] = rn(1, widths[4], 4, 4)
    styled("conv1", widths[4], widths[4], False)
    torgb("to_rgb1", widths[4], False)
    cin = widths[4]
    for j, r in enumerate(res[1:]):
        styled(f"convs.{2 * j}", cin, widths[r], True)
        styled(f"convs.{2 * j + 1}", widths[r], widths[r], False)
        torgb(f"to_rgbs.{j}", widths[r], True)
        cin = widths[r]
    if noises:
        for i in range(2 * len(res) - 1):
            r = 2 ** ((i + 5) // 2)
            sd[f"noises.noise_{i}"] = rn(1, 1, r, r)
    return sd


# --- the independent forward -------------------------------------------------------------------------
def _upfirdn(x, k, up, pad0, pad1):
    """Zero insertion (sample first), pad (pad0, pad1) on both axes, correlate with the flipped kernel."""
    n, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(n, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, [pad0, pad1, pad0, pad1])
    kk = torch.flip(k, [0, 1]).to(x)[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, kk, groups=c)


def _equal_linear(x, w, b, lr=1.0, act=False):
    out = x @ (w * lr / math.sqrt(w.shape[1])).t()
    if act:
        return F.leaky_relu(out + b * lr, 0.2) * math.sqrt(2)
    return out + b * lr


def _modconv(sd, name, x, wlat, demod, up, styles_out):
    W = sd[f"{name}.conv.weight"]
    _, o, i, k, _ = W.shape
    s = _equal_linear(wlat, sd[f"{name}.conv.modulation.weight"], sd[f"{name}.conv.modulation.bias"])
    styles_out.append(s)
    outs = []
    for n in range(x.shape[0]):
        wt = W[0] / math.sqrt(i * k * k) * s[n].view(1, i, 1, 1)
        if demod:
            wt = wt * torch.rsqrt(wt.pow(2).sum([1, 2, 3]) + 1e-8).view(o, 1, 1, 1)
        if up:
            y = F.conv_transpose2d(x[n:n + 1], wt.transpose(0, 1), stride=2)
            y = _upfirdn(y, _kernel(4.0), 1, 1, 1)
        else:
            y = F.conv2d(x[n:n + 1], wt, padding=k // 2)
        outs.append(y)
    return torch.cat(outs)


def reference_mapping(sd: dict, z: torch.Tensor) -> torch.Tensor:
    """w = ``Generator.style(z)`` (PixelNorm, then the lr-0.01 equalised linear layers), float64."""
    x = z.double()
    x = x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)
    i = 1
    while f"style.{i}.weight" in sd:
        x = _equal_linear(x, sd[f"style.{i}.weight"].double(), sd[f"style.{i}.bias"].double(), 0.01, True)
        i += 1
    return x


def reference_forward(sd: dict, z: torch.Tensor, psi: float = 1.0, latent_avg=None, noise=None):
    """(image, StyleSpace list) as rosinality's ``Generator([z], truncation=psi, truncation_latent=latent_avg,
    randomize_noise=False)`` computes it; ``noise``: maps to use instead of ``noises.noise_i``."""
    sd = {k: v.double() for k, v in sd.items()}
    x = reference_mapping(sd, z)
    if psi != 1:
        x = latent_avg.double() + psi * (x - latent_avg.double())
    noises = [sd[f"noises.noise_{j}"] if noise is None else noise[j].double()
              for j in range(sum(k.startswith("noises.") for k in sd) if noise is None else len(noise))]
    n_blocks = sum(1 for k in sd if k.endswith(".upsample.kernel"))
    styles: list = []

    def styled(name, h, wl, nz, up):
        h = _modconv(sd, name, h, wl, True, up, styles)
        h = h + sd[f"{name}.noise.weight"] * nz
        return F.leaky_relu(h + sd[f"{name}.activate.bias"].view(1, -1, 1, 1), 0.2) * math.sqrt(2)

    def torgb(name, h, wl, skip):
        out = _modconv(sd, name, h, wl, False, False, styles) + sd[f"{name}.bias"]
        if skip is not None:
            out = out + _upfirdn(skip, _kernel(4.0), 2, 2, 1)
        return out

    h = sd["input.input"].repeat(len(z), 1, 1, 1)
    h = styled("conv1", h, x, noises[0], False)
    skip = torgb("to_rgb1", h, x, None)
    for j in range(n_blocks):
        h = styled(f"convs.{2 * j}", h, x, noises[2 * j + 1], True)
        h = styled(f"convs.{2 * j + 1}", h, x, noises[2 * j + 2], False)
        skip = torgb(f"to_rgbs.{j}", h, x, skip)
    return skip, styles


def discriminator_state_dict(widths=None, seed: int = 0) -> dict:
    """A rosinality ``Discriminator.state_dict()`` (3-channel input, resnet blocks) with seeded values."""
    widths = dict(WIDTHS if widths is None else widths)
    g = torch.Generator().manual_seed(seed)
    rn = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    size = max(widths)
    sd = {"convs.0.0.weight": rn(widths[size], 3, 1, 1), "convs.0.1.bias": 0.1 * rn(widths[size])}
    for i, r in enumerate(sorted((r for r in widths if r > 4), reverse=True), start=1):
        cin, cout = widths[r], widths[r // 2]
        sd[f"convs.{i}.conv1.0.weight"] = rn(cin, cin, 3, 3)
        sd[f"convs.{i}.conv1.1.bias"] = 0.1 * rn(cin)
        sd[f"convs.{i}.conv2.0.kernel"] = _kernel()
        sd[f"convs.{i}.conv2.1.weight"] = rn(cout, cin, 3, 3)
        sd[f"convs.{i}.conv2.2.bias"] = 0.1 * rn(cout)
        sd[f"convs.{i}.skip.0.kernel"] = _kernel()
        sd[f"convs.{i}.skip.1.weight"] = rn(cout, cin, 1, 1)
    c4 = widths[4]
    sd |= {"final_conv.0.weight": rn(c4, c4 + 1, 3, 3), "final_conv.1.bias": 0.1 * rn(c4),
           "final_linear.0.weight": rn(c4, c4 * 16), "final_linear.0.bias": 0.1 * rn(c4),
           "final_linear.1.weight": rn(1, c4), "final_linear.1.bias": 0.1 * rn(1)}
    return sd


def _conv_layer(sd, p, x, k, down=False, act=True):
    """rosinality's ConvLayer: [Blur] -> EqualConv2d (stride 2 without padding when down) -> [FusedLeakyReLU]."""
    i, stride, padding = 0, 1, k // 2
    if down:
        pad = 2 + (k - 1)
        x = _upfirdn(x, _kernel(), 1, (pad + 1) // 2, pad // 2)
        i, stride, padding = 1, 2, 0
    w = sd[f"{p}.{i}.weight"]
    x = F.conv2d(x, w / math.sqrt(w[0].numel()), stride=stride, padding=padding)
    if act:
        x = F.leaky_relu(x + sd[f"{p}.{i + 1}.bias"].view(1, -1, 1, 1), 0.2) * math.sqrt(2)
    return x


def reference_discriminator(sd: dict, img: torch.Tensor) -> torch.Tensor:
    """[N, 1] logits as rosinality's ``Discriminator`` computes them (minibatch std by explicit loops)."""
    sd = {k: v.double() for k, v in sd.items()}
    x = _conv_layer(sd, "convs.0", img.double(), 1)
    i = 1
    while f"convs.{i}.conv1.0.weight" in sd:
        out = _conv_layer(sd, f"convs.{i}.conv2", _conv_layer(sd, f"convs.{i}.conv1", x, 3), 3, down=True)
        x = (out + _conv_layer(sd, f"convs.{i}.skip", x, 1, down=True, act=False)) / math.sqrt(2)
        i += 1
    n, c, h, w = x.shape
    group = min(n, 4)
    m = n // group                       # sample j*m + t belongs to group t (rosinality's view(group, -1, ...))
    std = torch.empty(n, dtype=x.dtype)
    for t in range(m):
        members = x[[j * m + t for j in range(group)]]
        val = torch.sqrt(((members - members.mean(0)) ** 2).mean(0) + 1e-8).mean()
        for j in range(group):
            std[j * m + t] = val
    x = torch.cat([x, std.view(n, 1, 1, 1).expand(n, 1, h, w)], 1)
    x = _conv_layer(sd, "final_conv", x, 3).reshape(n, -1)
    x = _equal_linear(x, sd["final_linear.0.weight"], sd["final_linear.0.bias"], act=True)
    return _equal_linear(x, sd["final_linear.1.weight"], sd["final_linear.1.bias"])


def train_checkpoint(seed: int = 0, **kw) -> dict:
    """What rosinality's train.py saves: g, d, g_ema, optimizer states, args (a Namespace), ada_aug_p."""
    import argparse
    g_ema = generator_state_dict(seed=seed, **kw)
    g = generator_state_dict(seed=seed + 100, **kw)
    d = discriminator_state_dict(kw.get("widths"), seed=seed + 200)
    optim = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(2)}},
             "param_groups": [{"lr": 0.002, "betas": (0.0, 0.99), "params": [0]}]}
    args = argparse.Namespace(size=32, n_mlp=3, latent=8, channel_multiplier=2, path="data/lmdb", ckpt=None)
    return {"g": g, "d": d, "g_ema": g_ema, "g_optim": optim, "d_optim": optim, "args": args, "ada_aug_p": 0.0}
