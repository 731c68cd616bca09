"""CartoonGAN's test port (Yijunmaverick/CartoonGAN-Test-Pytorch-Torch) written as functions over its keys,
independent of our module: ``Transformer.forward`` with its own ``InstanceNormalization`` (``port_forward``),
and ``test.py``'s steps around it (``port_test_script``). State dicts come from
``tests.models.foreign_layouts.cartoongan`` (the port's attribute names and registration order)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def port_instance_norm(x, scale, shift, eps=1e-9):
    """The port's InstanceNormalization: torch.var (unbiased) times (n - 1) / n, i.e. the biased variance."""
    n = x.shape[2] * x.shape[3]
    t = x.reshape(x.shape[0], x.shape[1], n)
    mean = t.mean(2)[:, :, None, None]
    var = t.var(2)[:, :, None, None] * ((n - 1) / float(n))
    return (x - mean) / torch.sqrt(var + eps) * scale[None, :, None, None] + shift[None, :, None, None]


def port_forward(sd, x, n_res=8, naming=("scale", "shift"), decoder_norms=("in12_1", "in13_1")):
    """Transformer.forward(x): BGR in [-1, 1] -> BGR in [-1, 1], read off the keys."""
    a, b = naming

    def conv(h, k, stride=1, pad=0):
        return F.conv2d(h, sd[f"{k}.weight"], sd[f"{k}.bias"], stride=stride, padding=pad)

    def norm(h, k):
        return port_instance_norm(h, sd[f"{k}.{a}"], sd[f"{k}.{b}"])

    def refl(h, p):
        return F.pad(h, (p, p, p, p), mode="reflect")

    y = F.relu(norm(conv(refl(x, 3), "conv01_1"), "in01_1"))
    y = F.relu(norm(conv(conv(y, "conv02_1", 2, 1), "conv02_2", 1, 1), "in02_1"))
    t = F.relu(norm(conv(conv(y, "conv03_1", 2, 1), "conv03_2", 1, 1), "in03_1"))
    for i in range(4, 4 + n_res):
        y = F.relu(norm(conv(refl(t, 1), f"conv{i:02d}_1"), f"in{i:02d}_1"))
        t = norm(conv(refl(y, 1), f"conv{i:02d}_2"), f"in{i:02d}_2") + t
    for i, k in ((1, decoder_norms[0]), (2, decoder_norms[1])):
        t = F.conv_transpose2d(t, sd[f"deconv0{i}_1.weight"], sd[f"deconv0{i}_1.bias"], stride=2, padding=1,
                               output_padding=1)
        t = F.relu(norm(conv(t, f"deconv0{i}_2", 1, 1), k))
    return torch.tanh(conv(refl(t, 3), "deconv03_1"))


def port_test_script(sd, image: np.ndarray, **kw) -> torch.Tensor:
    """test.py on one RGB uint8 image [H, W, 3] (already at the size to run): RGB -> BGR, ToTensor, -1 + 2x,
    the network, BGR -> RGB, * 0.5 + 0.5 -> [3, H, W] in [0, 1] (what it hands to save_image)."""
    bgr = image[:, :, [2, 1, 0]]
    x = torch.from_numpy(np.ascontiguousarray(bgr)).permute(2, 0, 1).float().div(255).unsqueeze(0)
    out = port_forward(sd, -1 + 2 * x, **kw)[0]
    return out[[2, 1, 0], :, :] * 0.5 + 0.5
