"""CUT / FastCUT's ResNet generator (Park et al., ECCV 2020) written from the reference layout,
independently of interp_gan's module: the state dict key by key, and its eval-mode forward as plain
``torch.nn.functional`` calls that read those keys.

The reference builds one ``nn.Sequential`` ``model``: reflection pad 3, 7x7 conv, norm, ReLU; two
downsampling stages, each either (``--no_antialias``) a 3x3 stride-2 conv, norm, ReLU, or
(default) a 3x3 stride-1 conv (zero padding 1), norm, ReLU and a blur-pool layer (a ``filt`` buffer
[C, 1, f, f], the normalised binomial filter; reflection padding; stride 2; one filter per
channel); residual blocks (``conv_block``: reflection pad, 3x3 conv, norm, ReLU, [dropout],
reflection pad, 3x3 conv, norm); two upsampling stages, each either (``--no_antialias_up``) a 3x3
stride-2 transposed conv (padding 1, output padding 1), norm, ReLU, or (default) a fixed-filter
upsampling layer (``filt`` [C, 1, 4, 4]: binomial x stride**2; replication pad 1, transposed conv
stride 2 padding 1 + (f - 1) // 2 one filter per channel, crop the first row and column, and the
last ones for an even f), a 3x3 stride-1 conv (zero padding 1), norm, ReLU; reflection pad 3, 7x7
conv with bias, tanh. Convs carry a bias only under instance norm.
"""
from math import comb

import torch
import torch.nn.functional as F


def binomial(f: int, gain: float = 1.0) -> torch.Tensor:
    a = torch.tensor([float(comb(f - 1, i)) for i in range(f)])
    k = a[:, None] * a[None, :]
    return k / k.sum() * gain


def reference_state_dict(ngf=8, n_blocks=2, norm="instance", antialias=True, antialias_up=True, input_nc=3,
                         output_nc=3, dropout=False, down_filt=3, up_filt=4, seed=0):
    """The reference ResnetGenerator's state_dict (insertion order = the reference's), random values."""
    g = torch.Generator().manual_seed(seed)
    bias = norm == "instance"
    sd = {}

    def conv(i, cout, cin, k, transposed=False, has_bias=bias):
        shape = (cin, cout, k, k) if transposed else (cout, cin, k, k)
        sd[f"{i}.weight"] = torch.randn(shape, generator=g) / (k * cin ** 0.5)
        if has_bias:
            sd[f"{i}.bias"] = torch.randn(cout, generator=g) * 0.1

    def nrm(i, c):
        if norm == "batch":
            sd[f"{i}.weight"] = torch.rand(c, generator=g) + 0.5
            sd[f"{i}.bias"] = torch.randn(c, generator=g) * 0.2
            sd[f"{i}.running_mean"] = torch.randn(c, generator=g) * 0.1
            sd[f"{i}.running_var"] = torch.rand(c, generator=g) * 1.5 + 0.5
            sd[f"{i}.num_batches_tracked"] = torch.tensor(1000)

    conv("model.1", ngf, input_nc, 7)
    nrm("model.2", ngf)
    i = 4
    for s in range(2):
        c = ngf * 2 ** s
        conv(f"model.{i}", 2 * c, c, 3)
        nrm(f"model.{i + 1}", 2 * c)
        if antialias:
            sd[f"model.{i + 3}.filt"] = binomial(down_filt)[None, None].repeat(2 * c, 1, 1, 1)
            i += 4
        else:
            i += 3
    d = ngf * 4
    for _ in range(n_blocks):
        j = 5 if not dropout else 6
        conv(f"model.{i}.conv_block.1", d, d, 3)
        nrm(f"model.{i}.conv_block.2", d)
        conv(f"model.{i}.conv_block.{j}", d, d, 3)
        nrm(f"model.{i}.conv_block.{j + 1}", d)
        i += 1
    for s in range(2):
        c = ngf * 2 ** (2 - s)
        if antialias_up:
            sd[f"model.{i}.filt"] = binomial(up_filt, 4.0)[None, None].repeat(c, 1, 1, 1)
            conv(f"model.{i + 1}", c // 2, c, 3)
            nrm(f"model.{i + 2}", c // 2)
            i += 4
        else:
            conv(f"model.{i}", c // 2, c, 3, transposed=True)
            nrm(f"model.{i + 1}", c // 2)
            i += 3
    conv(f"model.{i + 1}", output_nc, ngf, 7, has_bias=True)
    return sd


def reference_forward(sd, x, norm="instance"):
    """The reference generator's eval-mode forward, read off the keys in their order."""
    def cv(h, key, **kw):
        return F.conv2d(h, sd[f"{key}.weight"], sd.get(f"{key}.bias"), **kw)

    def nm(h, key):
        if norm == "batch":
            return F.batch_norm(h, sd[f"{key}.running_mean"], sd[f"{key}.running_var"], sd[f"{key}.weight"],
                                sd[f"{key}.bias"], training=False, eps=1e-5)
        if norm == "instance":
            return F.instance_norm(h, eps=1e-5)
        return h

    def blur_down(h, filt):
        f = filt.shape[-1]
        lo, hi = (f - 1) // 2, f // 2                 # int((f-1)/2), ceil((f-1)/2)
        return F.conv2d(F.pad(h, (lo, hi, lo, hi), mode="reflect"), filt, stride=2, groups=h.shape[1])

    def blur_up(h, filt):
        f = filt.shape[-1]
        y = F.conv_transpose2d(F.pad(h, (1, 1, 1, 1), mode="replicate"), filt, stride=2,
                               padding=1 + (f - 1) // 2, groups=h.shape[1])[:, :, 1:, 1:]
        return y if f % 2 else y[:, :, :-1, :-1]

    idx = sorted({int(k.split(".")[1]) for k in sd})
    convs = [i for i in idx if sd.get(f"model.{i}.weight", torch.empty(0)).dim() == 4]
    h = F.relu(nm(cv(F.pad(x, (3,) * 4, mode="reflect"), "model.1"), "model.2"))
    i = 4
    for _ in range(2):          # downsampling stages
        if f"model.{i + 3}.filt" in sd:
            h = F.relu(nm(cv(h, f"model.{i}", padding=1), f"model.{i + 1}"))
            h, i = blur_down(h, sd[f"model.{i + 3}.filt"]), i + 4
        else:
            h, i = F.relu(nm(cv(h, f"model.{i}", stride=2, padding=1), f"model.{i + 1}")), i + 3
    while f"model.{i}.conv_block.1.weight" in sd:
        p = f"model.{i}.conv_block."
        j = 6 if sd.get(f"{p}6.weight", torch.empty(0)).dim() == 4 else 5     # 6: after a dropout
        r = F.relu(nm(cv(F.pad(h, (1,) * 4, mode="reflect"), f"{p}1"), f"{p}2"))
        h, i = h + nm(cv(F.pad(r, (1,) * 4, mode="reflect"), f"{p}{j}"), f"{p}{j + 1}"), i + 1
    for _ in range(2):          # upsampling stages
        if f"model.{i}.filt" in sd:
            h = blur_up(h, sd[f"model.{i}.filt"])
            h, i = F.relu(nm(cv(h, f"model.{i + 1}", padding=1), f"model.{i + 2}")), i + 4
        else:
            h = F.conv_transpose2d(h, sd[f"model.{i}.weight"], sd.get(f"model.{i}.bias"), stride=2, padding=1,
                                   output_padding=1)
            h, i = F.relu(nm(h, f"model.{i + 1}")), i + 3
    assert convs[-1] == i + 1
    return torch.tanh(cv(F.pad(h, (3,) * 4, mode="reflect"), f"model.{i + 1}"))
