"""Our StyleGAN2 generator against an independent, step-by-step functional forward written here
from the papers' equations (Karras et al. CVPR 2020: mapping with pixel norm, modulation /
demodulation Eq. 1-3, noise, skip and residual architectures; StyleGAN2-ADA's configuration) and
NVlabs' resampling conventions: upsampling = zero insertion, a true convolution with the kernel,
then the [1,3,3,1] filter (x4 gain). The reference works one sample at a time with plain conv2d
(no grouped or transposed convolutions), and upsamples tRGB images by their polyphase form.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from interp_gan.models.stylegan2 import StyleGAN2Generator
from tests.subject.nvlabs_snapshot import tiny_generator

SQRT2 = math.sqrt(2)


def lrelu(x, gain=SQRT2):
    return torch.where(x >= 0, x, 0.2 * x) * gain


def ref_mapping(sd, cfg, z, c, psi):
    mk = cfg["mapping_kwargs"]
    lr = mk.get("lr_multiplier", 0.01)
    x = z / torch.sqrt((z ** 2).mean(1, keepdim=True) + 1e-8)
    if cfg["c_dim"]:
        W, b = sd["mapping.embed.weight"], sd["mapping.embed.bias"]
        y = c @ (W / math.sqrt(W.shape[1])).T + b
        y = y / torch.sqrt((y ** 2).mean(1, keepdim=True) + 1e-8)
        x = torch.cat([x, y], 1)
    for i in range(mk.get("num_layers", 8)):
        W, b = sd[f"mapping.fc{i}.weight"], sd[f"mapping.fc{i}.bias"]
        x = lrelu(x @ (W * lr / math.sqrt(W.shape[1])).T + b * lr)
    return sd["mapping.w_avg"] + psi * (x - sd["mapping.w_avg"])


def fir4(x, up_gain=4.0, pad=(1, 1)):
    """Per-channel 2-D [1,3,3,1] x [1,3,3,1] / 64 filter (x gain), zero padding (pad before, after)."""
    f = torch.tensor([1., 3, 3, 1], dtype=x.dtype)
    k = torch.outer(f, f) / 64 * up_gain
    c = x.shape[0]
    x = F.pad(x[None], [pad[0], pad[1], pad[0], pad[1]])
    return F.conv2d(x, k.expand(c, 1, 4, 4), groups=c)[0]


def zero_insert(x):
    c, h, w = x.shape
    u = torch.zeros(c, 2 * h, 2 * w, dtype=x.dtype)
    u[:, ::2, ::2] = x
    return u


def upsample_img(img):
    """tRGB upsampling in polyphase form: even outputs (x[i-1] + 3 x[i]) / 4, odd (3 x[i] + x[i+1]) / 4."""
    def one_axis(x, dim):
        x = x.movedim(dim, -1)
        p = F.pad(x, [1, 1])
        even = (p[..., :-2] + 3 * p[..., 1:-1]) / 4
        odd = (3 * p[..., 1:-1] + p[..., 2:]) / 4
        return torch.stack([even, odd], -1).flatten(-2).movedim(-1, dim)
    return one_axis(one_axis(img, -1), -2)


def ref_layer(sd, p, x, w, up, clamp, gain=1.0, demod=True, act=True):
    """One sample: x [I, H, W], w [w_dim] -> [O, H', W']."""
    A, bA = sd[f"{p}.affine.weight"], sd[f"{p}.affine.bias"]
    s = A @ w / math.sqrt(A.shape[1]) + bA
    Wt = sd[f"{p}.weight"]
    if not demod:
        s = s / math.sqrt(Wt.shape[1] * Wt.shape[2] * Wt.shape[3])
    Wm = Wt * s[None, :, None, None]
    if demod:
        Wm = Wm / torch.sqrt((Wm ** 2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
    k = Wt.shape[-1]
    if up:
        u = F.pad(zero_insert(x)[None], [2, 1, 2, 1])                  # true convolution with Wm ...
        y = F.conv2d(u, Wm.flip(2, 3))[0]
        y = fir4(y)                                                     # ... then the low-pass filter
    else:
        y = F.conv2d(x[None], Wm, padding=k // 2)[0]
    if f"{p}.noise_const" in sd:
        y = y + sd[f"{p}.noise_const"] * sd[f"{p}.noise_strength"]
    y = y + sd[f"{p}.bias"][:, None, None]
    y = lrelu(y, SQRT2 * gain) if act else y
    return y.clamp(-clamp * gain, clamp * gain) if clamp is not None else y


def ref_skip(sd, p, x):
    """The resnet block's 1x1 skip: conv (equalised lr), then upsample with the filter, x sqrt(0.5)."""
    W = sd[f"{p}.weight"][:, :, 0, 0] / math.sqrt(sd[f"{p}.weight"].shape[1])
    y = torch.einsum("oi,ihw->ohw", W, x)
    y = fir4(zero_insert(y), pad=(2, 1))
    return y * math.sqrt(0.5)


def ref_generator(G: StyleGAN2Generator, z, c=None, psi=1.0):
    sd = {k: v.detach().double() for k, v in G.state_dict().items()}
    cfg = G.config
    sk = cfg["synthesis_kwargs"]
    arch, clamp = sk.get("architecture", "skip"), sk.get("conv_clamp")
    ws = ref_mapping(sd, cfg, z.double(), None if c is None else c.double(), psi)
    res = [2 ** i for i in range(2, int(math.log2(cfg["img_resolution"])) + 1)]
    out = []
    for n in range(len(z)):
        w = ws[n]                                   # one w for every layer (no mixing)
        x = img = None
        for r in res:
            b = f"synthesis.b{r}"
            if r == 4:
                x = ref_layer(sd, f"{b}.conv1", sd[f"{b}.const"], w, False, clamp)
            elif arch == "resnet":
                y = ref_skip(sd, f"{b}.skip", x)
                x = ref_layer(sd, f"{b}.conv0", x, w, True, clamp)
                x = y + ref_layer(sd, f"{b}.conv1", x, w, False, clamp, gain=math.sqrt(0.5))
            else:
                x = ref_layer(sd, f"{b}.conv1", ref_layer(sd, f"{b}.conv0", x, w, True, clamp), w, False, clamp)
            if img is not None:
                img = upsample_img(img)
            if arch == "skip" or r == res[-1]:
                y = ref_layer(sd, f"{b}.torgb", x, w, False, clamp, demod=False, act=False)
                img = y if img is None else img + y
        out.append(img)
    return torch.stack(out).float()


@pytest.mark.parametrize("res,arch,c_dim,psi", [(32, "skip", 0, 1.0), (16, "resnet", 0, 0.7), (16, "skip", 3, 0.5),
                                                (8, "orig", 0, 1.0)])
def test_forward_matches_the_functional_reference(res, arch, c_dim, psi):
    G = tiny_generator(res, c_dim=c_dim, architecture=arch, seed=res + c_dim)
    z = torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(1))
    c = torch.nn.functional.one_hot(torch.tensor([0, 2, 1]) % max(c_dim, 1), c_dim).float() if c_dim else None
    with torch.no_grad():
        ours = G(z, c, truncation_psi=psi)
    ref = ref_generator(G, z, c, psi)
    assert ours.shape == (3, 3, res, res)
    assert ours.std() > 0.05                          # not a degenerate (constant) image
    torch.testing.assert_close(ours, ref, atol=2e-4, rtol=1e-4)


def test_styles_route_equals_w_route():
    G = tiny_generator(16, seed=3)
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        ws = G.mapping(z, None)
        styles = G.synthesis.styles(ws)
        assert [s.shape[1] for s in styles] == [a.weight.shape[0] for a in G.style_affines]
        torch.testing.assert_close(G.synthesis(styles=styles), G.synthesis(ws), atol=1e-5, rtol=1e-5)


def test_key_layout_is_nvlabs():
    """A few keys written out from NVlabs' training/networks.py naming (Generator at 16 px, skip)."""
    sd = tiny_generator(16).state_dict()
    for k in ("synthesis.b4.const", "synthesis.b4.resample_filter", "synthesis.b4.conv1.weight",
              "synthesis.b4.conv1.noise_const", "synthesis.b4.conv1.noise_strength", "synthesis.b4.conv1.bias",
              "synthesis.b4.conv1.resample_filter", "synthesis.b4.conv1.affine.weight",
              "synthesis.b4.conv1.affine.bias", "synthesis.b4.torgb.weight", "synthesis.b4.torgb.bias",
              "synthesis.b4.torgb.affine.weight", "synthesis.b8.conv0.weight", "synthesis.b16.torgb.weight",
              "mapping.fc0.weight", "mapping.fc1.bias", "mapping.w_avg"):
        assert k in sd, k
    resnet = tiny_generator(16, architecture="resnet").state_dict()
    assert "synthesis.b8.skip.weight" in resnet and "synthesis.b8.torgb.weight" not in resnet
    assert "synthesis.b16.torgb.weight" in resnet


def test_random_noise_is_the_seeded_per_layer_maps_added_like_the_const_ones():
    """noise_mode="random" with seed s: sample 0's map of the i-th noisy layer (forward order) is the
    first draw of a CPU generator seeded by SeedSequence([s, i]); it enters exactly where and how the
    stored map does (x + map * noise_strength), so copying those draws into noise_const reproduces it."""
    import numpy as np

    G = tiny_generator(16, seed=11)
    z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        G.set_noise_mode("random", 7)
        rnd = G(z)
        G.set_noise_mode("const")
        const = G(z)
        layers = [blk_layer for _, blk in G.synthesis.blocks()
                  for blk_layer in (getattr(blk, "conv0", None), blk.conv1) if blk_layer is not None]
        for i, m in enumerate(layers):
            seed = int(np.random.SeedSequence([7, i]).generate_state(1)[0])
            m.noise_const.copy_(torch.randn(1, m.resolution, m.resolution,
                                            generator=torch.Generator().manual_seed(seed))[0])
        assert torch.equal(G(z), rnd) and (rnd - const).abs().max() > 1e-3
    with pytest.raises(ValueError, match="noise_mode must be one of"):
        G.set_noise_mode("fresh")
