"""The discriminator ``d`` of a rosinality/stylegan2-pytorch checkpoint, read into our NVlabs-layout
``StyleGAN2Discriminator`` (``interp_gan.models.stylegan2_discriminator``, resnet architecture).

    D = load_discriminator(ckpt["d"])        # ValueError (one line) unless every key fits

The repository's ``Discriminator`` (its ``model.py``; Karras et al. CVPR 2020, residual D):

- ``convs.0``: 1x1 equalised conv 3 -> C(size) (``0.weight``) + fused leaky ReLU (``1.bias``): ``fromrgb``;
- ``convs.{i}`` (i = 1.., resolution size / 2^(i-1) down to 8), a residual block: ``conv1`` 3x3
  in -> in (``0.weight``, ``1.bias``): our ``conv0``; ``conv2`` the [1,3,3,1] blur with pads (2, 2)
  (``0.kernel``), a 3x3 stride-2 conv in -> out without padding (``1.weight``) and the fused leaky
  ReLU (``2.bias``): our ``conv1`` (conv, filter, decimate: the same sums, the filter and the conv
  being both linear on the same zero-padded input); ``skip`` blur pads (1, 1) (``0.kernel``) and a
  1x1 stride-2 conv without bias (``1.weight``); the sum divided by sqrt 2 (our gain sqrt(1/2) on
  both branches);
- the minibatch standard deviation over groups of min(4, N) samples, one feature group (ours with
  ``mbstd_group_size=4``, ``mbstd_num_channels=1``); ``final_conv`` 3x3 C4 + 1 -> C4 (``0.weight``,
  ``1.bias``): ``b4.conv``; ``final_linear.0`` equalised linear C4*16 -> C4 with fused leaky ReLU:
  ``b4.fc``; ``final_linear.1`` C4 -> 1: ``b4.out``.

Equalised convs scale by 1/sqrt(in k k) and linears by 1/sqrt(in), lr multiplier 1, as ours; fused
leaky ReLU is bias, slope 0.2, gain sqrt 2, as ours. Blur kernels are checked and dropped.
"""
from __future__ import annotations

import torch

from interp_gan.models.keys import few, layout_problems

__all__ = ["parse_discriminator", "load_discriminator"]

_FIX = "for another architecture use --model file.py:factory"


_fmt = few


def _layout(widths: dict[int, int]) -> tuple[dict, dict]:
    """(ours key -> (ref key, ref shape), blur ref key -> shape) for block widths {resolution: C}."""
    size = max(widths)
    m: dict = {f"b{size}.fromrgb.weight": ("convs.0.0.weight", (widths[size], 3, 1, 1)),
               f"b{size}.fromrgb.bias": ("convs.0.1.bias", (widths[size],))}
    blur: dict = {}
    for i, r in enumerate(sorted((r for r in widths if r > 4), reverse=True), start=1):
        cin, cout, p = widths[r], widths[r // 2], f"convs.{i}"
        m[f"b{r}.conv0.weight"] = (f"{p}.conv1.0.weight", (cin, cin, 3, 3))
        m[f"b{r}.conv0.bias"] = (f"{p}.conv1.1.bias", (cin,))
        m[f"b{r}.conv1.weight"] = (f"{p}.conv2.1.weight", (cout, cin, 3, 3))
        m[f"b{r}.conv1.bias"] = (f"{p}.conv2.2.bias", (cout,))
        m[f"b{r}.skip.weight"] = (f"{p}.skip.1.weight", (cout, cin, 1, 1))
        blur[f"{p}.conv2.0.kernel"] = (4, 4)
        blur[f"{p}.skip.0.kernel"] = (4, 4)
    c4 = widths[4]
    m |= {"b4.conv.weight": ("final_conv.0.weight", (c4, c4 + 1, 3, 3)), "b4.conv.bias": ("final_conv.1.bias", (c4,)),
          "b4.fc.weight": ("final_linear.0.weight", (c4, c4 * 16)), "b4.fc.bias": ("final_linear.0.bias", (c4,)),
          "b4.out.weight": ("final_linear.1.weight", (1, c4)), "b4.out.bias": ("final_linear.1.bias", (1,))}
    return m, blur


def parse_discriminator(sd: dict) -> tuple[dict, dict]:
    """(StyleGAN2Discriminator config, ours key -> ref key) of a rosinality ``Discriminator`` state dict."""
    from interp_gan.models.rosinality_stylegan2 import _channel_config

    root = [k for k in ("convs.0.0.weight", "final_conv.0.weight") if k not in sd or not torch.is_tensor(sd[k])]
    if root:
        raise ValueError(f"its 'd' is not a rosinality/stylegan2-pytorch Discriminator: it lacks {_fmt(root)}; {_FIX}")
    n = 1
    while f"convs.{n}.conv1.0.weight" in sd:
        n += 1
    size = 4 << (n - 1)
    widths = {size: int(sd["convs.0.0.weight"].shape[0]), 4: int(sd["final_conv.0.weight"].shape[0])}
    for i in range(1, n):
        w = sd[f"convs.{i}.conv2.1.weight"] if f"convs.{i}.conv2.1.weight" in sd else None
        if w is not None and w.dim() == 4:
            widths[size >> i] = int(w.shape[0])
    if len(widths) != n:          # a block without its conv2: 0 wide, so the layout check names its keys
        widths = {r: widths.get(r, 0) for r in [size >> i for i in range(n)]}
    layout, blur = _layout(widths)
    expected = {ref: shape for ref, shape in layout.values()} | blur
    parts = layout_problems(sd, expected, "unplaced")
    if parts:
        raise ValueError(f"its 'd' is not the rosinality/stylegan2-pytorch Discriminator its keys suggest ({size} px): "
                         f"{'; '.join(parts)}; {_FIX}")
    f = torch.tensor([1.0, 3.0, 3.0, 1.0])
    f = torch.outer(f, f) / 64
    odd = [k for k in blur if not torch.allclose(sd[k].float(), f, atol=1e-6)]
    if odd:
        raise ValueError(f"its 'd' has blur kernels ({_fmt(odd)}) that are not the [1,3,3,1] filter; {_FIX}")
    try:
        base, cmax = _channel_config(widths)
    except ValueError as e:
        raise ValueError(f"its 'd': {e}") from None
    config = dict(c_dim=0, img_resolution=size, img_channels=3, architecture="resnet", channel_base=base,
                  channel_max=cmax, epilogue_kwargs=dict(mbstd_group_size=4, mbstd_num_channels=1))
    return config, {ours: ref for ours, (ref, _) in layout.items()}


def load_discriminator(sd: dict):
    """Our StyleGAN2Discriminator with the weights of rosinality's ``d`` (strict: every key, every shape)."""
    from interp_gan.guards import check_model_size
    from interp_gan.models.stylegan2_discriminator import StyleGAN2Discriminator

    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    cfg, keymap = parse_discriminator(sd)
    check_model_size(lambda: StyleGAN2Discriminator(**cfg), "the StyleGAN2 discriminator its tensors imply")
    D = StyleGAN2Discriminator(**cfg)
    own = D.state_dict()          # the resampling filters (constants of the architecture)
    own.update({ours: sd[ref].float() for ours, ref in keymap.items()})
    D.load_state_dict(own, strict=True)
    return D.eval().requires_grad_(False)
