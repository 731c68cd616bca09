"""Our StyleGAN2 discriminator against an independent float64 functional forward written here from
the papers (Karras et al. CVPR 2020: residual / skip / orig discriminators, equalised lr; Karras
et al. ICLR 2018: the minibatch standard deviation; StyleGAN2-ADA: the projection of the class
embedding) and NVlabs' resampling conventions as read: a strided layer is the convolution (padded
by its own half-width plus one), then the [1,3,3,1] filter, keeping every other sample. The
reference filters in polyphase form along each axis (no upfirdn2d, no grouped conv) and computes
the minibatch standard deviation with explicit loops over samples and groups.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from interp_gan.models.stylegan2_discriminator import StyleGAN2Discriminator
from tests.subject.nvlabs_snapshot import tiny_discriminator

SQRT2 = math.sqrt(2)


def lrelu(x, gain=SQRT2):
    return torch.where(x >= 0, x, 0.2 * x) * gain


def down_axis(y, dim):
    """out[j] = (y[2j] + 3 y[2j+1] + 3 y[2j+2] + y[2j+3]) / 8 along ``dim`` (length L -> (L - 2) / 2)."""
    y = y.movedim(dim, -1)
    n = (y.shape[-1] - 2) // 2
    out = sum(w * y[..., t: t + 2 * n: 2] for t, w in enumerate((1, 3, 3, 1))) / 8
    return out.movedim(-1, dim)


def down2(y):
    return down_axis(down_axis(y, -1), -2)


def conv(sd, p, x, act=True, down=False, clamp=None, gain=1.0, bias=True):
    W = sd[f"{p}.weight"]
    k = W.shape[-1]
    W = W / math.sqrt(W[0].numel())
    if down and k == 1:
        y = F.conv2d(x, W)                                   # 1x1 first, then the padded filter (linear: same)
        y = down2(F.pad(y, [1, 1, 1, 1]))
    elif down:
        y = down2(F.conv2d(x, W, padding=k // 2 + 1))
    else:
        y = F.conv2d(x, W, padding=k // 2)
    if bias:
        y = y + sd[f"{p}.bias"][None, :, None, None]
    y = lrelu(y, SQRT2 * gain) if act else y * gain
    return y.clamp(-clamp * gain, clamp * gain) if clamp is not None else y


def fc(sd, p, x, act, lr=1.0):
    W, b = sd[f"{p}.weight"], sd[f"{p}.bias"]
    y = x @ (W * lr / math.sqrt(W.shape[1])).T + b * lr
    return lrelu(y) if act else y


def mbstd(x, group_size, n_feat):
    n, c, h, w = x.shape
    g = min(group_size, n)
    while n % g:                       # the documented rule when N is not a multiple of the group size
        g -= 1
    m = n // g
    out = torch.zeros(n, n_feat, h, w, dtype=x.dtype)
    for i in range(n):
        members = [j for j in range(n) if j % m == i % m]
        for f in range(n_feat):
            xs = x[members, f * (c // n_feat):(f + 1) * (c // n_feat)]
            std = torch.sqrt(((xs - xs.mean(0)) ** 2).mean(0) + 1e-8)
            out[i, f] = std.mean()
    return torch.cat([x, out], 1)


def ref_discriminator(D: StyleGAN2Discriminator, img, c=None):
    sd = {k: v.detach().double() for k, v in D.state_dict().items()}
    cfg = D.config
    arch, clamp = cfg["architecture"], cfg["conv_clamp"]
    ek, mk = cfg["epilogue_kwargs"], cfg["mapping_kwargs"]
    img = img.double()
    x = None
    res = [2 ** i for i in range(int(math.log2(cfg["img_resolution"])), 2, -1)]
    for r in res:
        b = f"b{r}"
        if r == res[0] or arch == "skip":
            y = conv(sd, f"{b}.fromrgb", img, clamp=clamp)
            x = y if x is None else x + y
            img = down2(F.pad(img, [1, 1, 1, 1]))
        h = conv(sd, f"{b}.conv0", x, clamp=clamp)
        if arch == "resnet":
            x = conv(sd, f"{b}.skip", x, act=False, down=True, gain=math.sqrt(0.5), bias=False) + \
                conv(sd, f"{b}.conv1", h, down=True, clamp=clamp, gain=math.sqrt(0.5))
        else:
            x = conv(sd, f"{b}.conv1", h, down=True, clamp=clamp)
    if arch == "skip":
        x = x + conv(sd, "b4.fromrgb", img)
    if ek.get("mbstd_num_channels", 1):
        x = mbstd(x, ek.get("mbstd_group_size", 4), ek.get("mbstd_num_channels", 1))
    x = conv(sd, "b4.conv", x, clamp=clamp)
    x = fc(sd, "b4.out", fc(sd, "b4.fc", x.flatten(1), True), False)
    if cfg["c_dim"]:
        e = fc(sd, "mapping.embed", c.double(), False)
        e = e / torch.sqrt((e ** 2).mean(1, keepdim=True) + 1e-8)
        for i in range(mk.get("num_layers", 8)):
            e = fc(sd, f"mapping.fc{i}", e, True, lr=mk.get("lr_multiplier", 0.01))
        x = (x * e).sum(1, keepdim=True) / math.sqrt(e.shape[1])
    return x.float()


CASES = [  # resolution, architecture, c_dim, batch, mbstd (group, channels), conv_clamp
    (32, "resnet", 0, 8, (4, 1), 256),
    (64, "resnet", 0, 6, (4, 1), 256),         # 6 is no multiple of 4: groups of 3
    (32, "skip", 0, 4, (2, 2), 256),
    (32, "resnet", 3, 6, (2, 1), 256),
    (64, "skip", 4, 4, (4, 1), 0.5),           # a small clamp that bites
    (16, "orig", 2, 5, (4, 1), 256),
]


@pytest.mark.parametrize("res,arch,c_dim,n,mb,clamp", CASES)
def test_forward_matches_the_functional_reference(res, arch, c_dim, n, mb, clamp):
    D = tiny_discriminator(res, c_dim=c_dim, architecture=arch, seed=res + c_dim, mbstd_group_size=mb[0],
                           mbstd_num_channels=mb[1], conv_clamp=clamp)
    g = torch.Generator().manual_seed(1)
    img = torch.rand(n, 3, res, res, generator=g) * 2 - 1
    c = F.one_hot(torch.arange(n) % c_dim, c_dim).float() if c_dim else None
    with torch.no_grad():
        ours = D(img, c)
    ref = ref_discriminator(D, img, c)
    assert ours.shape == (n, 1)
    assert ours.std() > 1e-3                                   # images are told apart
    torch.testing.assert_close(ours, ref, atol=2e-4, rtol=1e-4)
    if c_dim:                                                  # the class changes the logit
        with torch.no_grad():
            other = D(img, F.one_hot((torch.arange(n) + 1) % c_dim, c_dim).float())
        assert (other - ours).abs().max() > 1e-3
        assert torch.equal(D.adv_logit(img, torch.arange(n) % c_dim), ours[:, 0])


def test_the_reference_is_not_blind_to_a_wrong_filter():
    """The comparison can fail: the same D with a box filter instead of [1,3,3,1] is far from the reference."""
    D = tiny_discriminator(32, seed=3)
    img = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    ref = ref_discriminator(D, img)
    box = StyleGAN2Discriminator(**{**D.config, "block_kwargs": {"resample_filter": [1, 1, 1, 1]}})
    box.load_state_dict({k: v for k, v in D.state_dict().items() if not k.endswith("resample_filter")}, strict=False)
    with torch.no_grad():
        assert (box(img) - ref).abs().max() > 1e-3


def test_key_layout_is_nvlabs():
    """Keys written out from NVlabs' Discriminator naming (32 px, resnet, conditional)."""
    sd = tiny_discriminator(32, c_dim=2).state_dict()
    for k in ("b32.fromrgb.weight", "b32.fromrgb.bias", "b32.fromrgb.resample_filter", "b32.conv0.weight",
              "b32.conv1.weight", "b32.conv1.bias", "b32.skip.weight", "b32.resample_filter", "b16.conv0.weight",
              "b8.skip.weight", "b4.conv.weight", "b4.fc.weight", "b4.fc.bias", "b4.out.weight", "b4.out.bias",
              "mapping.embed.weight", "mapping.fc0.weight", "mapping.fc1.bias"):
        assert k in sd, k
    assert "b16.fromrgb.weight" not in sd and "b32.skip.bias" not in sd and "mapping.w_avg" not in sd
    skip = tiny_discriminator(32, architecture="skip").state_dict()
    assert {"b16.fromrgb.weight", "b4.fromrgb.weight"} <= set(skip) and "b16.skip.weight" not in skip
    assert sd["b4.out.weight"].shape[0] == 16                   # cmap_dim defaults to the 4x4 channels


def test_bad_configs_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown StyleGAN2 discriminator epilogue_kwargs \\['mbstd_size'\\]"):
        StyleGAN2Discriminator(0, 32, epilogue_kwargs={"mbstd_size": 4})
    with pytest.raises(ValueError, match="architecture must be one of"):
        StyleGAN2Discriminator(0, 32, architecture="dense")
    D = tiny_discriminator(16)
    with pytest.raises(ValueError, match="takes images \\[N, 3, 16, 16\\]"):
        D(torch.zeros(2, 3, 32, 32))
