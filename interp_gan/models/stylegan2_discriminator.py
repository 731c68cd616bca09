"""StyleGAN2 discriminator (pure nn.Modules) whose state_dict keys are NVlabs' own, so the ``D`` of a
StyleGAN2-ADA-PyTorch (or StyleGAN3 repo, ``--cfg=stylegan2``) snapshot loads with ``strict=True``.

    D = StyleGAN2Discriminator(c_dim=0, img_resolution=256, img_channels=3, channel_base=16384,
                               epilogue_kwargs=dict(mbstd_group_size=4))
    D.load_state_dict(snapshot["D"].state_dict())
    logits = D(images, c)                 # [N, 1]: the realism logit (images [N,3,H,W] in [-1, 1])
    logit = D.adv_logit(images, ids)      # [N]: the same, the class of ``ids`` one-hot (conditional models)

Written from the papers, not from NVlabs' code: Karras et al., "Analyzing and Improving the Image
Quality of StyleGAN" (CVPR 2020): the residual discriminator (two 3x3 convs per resolution, the
second one down-sampling, and a 1x1 skip, summed with gain sqrt(1/2)), the ``skip`` variant
(an image fed at every resolution through a 1x1 "fromRGB") and the ``orig`` one (neither),
down-sampling as a convolution followed by the separable [1,3,3,1] low-pass filter and
decimation, equalised learning rate; Karras et al., "Progressive Growing of GANs" (ICLR 2018):
the minibatch standard deviation layer of the epilogue (the average standard deviation over a
group of samples, per feature group, appended as extra channels), then a 3x3 conv, a
fully-connected layer and the output layer at 4x4; Karras et al., "Training Generative
Adversarial Networks with Limited Data" (NeurIPS 2020, StyleGAN2-ADA): the configuration names
(``channel_base`` / ``channel_max``, ``conv_clamp``, ``mbstd_group_size``) and the conditional
discriminator, a projection discriminator (Miyato & Koyama, ICLR 2018): a mapping network embeds
the label c into ``cmap_dim`` dimensions and the logit is (out . cmap) / sqrt(cmap_dim).

Differences from NVlabs' runtime on purpose: float32 everywhere (``num_fp16_res`` is read and
ignored); where their minibatch-std layer needs the batch size N to be a multiple of the group
size (min(group size, N)), ours takes the largest divisor of N not above it (the same group when
N is a multiple). As in theirs, an image's logit depends on the other images of its group.
``forward(img)`` without c on a conditional model returns the output layer's [N, cmap_dim]
vector (before the projection), so hooks on D's layers can run without a label.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interp_gan.models.registry import register_model
from interp_gan.models.stylegan2 import (Conv2dLayer, FullyConnectedLayer, MappingNetwork, _downsample_pads,
                                         _plain_kwargs, lowpass_filter, upfirdn2d)

__all__ = ["StyleGAN2Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue", "MinibatchStdLayer",
           "D_KWARGS", "BLOCK_KWARGS", "MAPPING_KWARGS", "EPILOGUE_KWARGS"]

ARCHITECTURES = ("orig", "skip", "resnet")
D_KWARGS = {"c_dim", "img_resolution", "img_channels", "architecture", "channel_base", "channel_max", "num_fp16_res",
            "conv_clamp", "cmap_dim", "block_kwargs", "mapping_kwargs", "epilogue_kwargs"}
# freeze_layers (Freeze-D) and the fp16 layout only change training / speed, not the function
BLOCK_KWARGS = {"activation", "resample_filter", "fp16_channels_last", "freeze_layers"}
MAPPING_KWARGS = {"num_layers", "embed_features", "layer_features", "activation", "lr_multiplier"}
EPILOGUE_KWARGS = {"mbstd_group_size", "mbstd_num_channels", "activation"}


def _check_arch(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")


class DiscriminatorBlock(nn.Module):
    """One resolution: [fromrgb] -> conv0 (3x3) -> conv1 (3x3, 2x down) [+ skip (1x1, 2x down)]."""
    random_init_constants = ("resample_filter",)    # fixed by the architecture (Subject.random_init)

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int, img_channels: int,
                 architecture: str = "resnet", activation: str = "lrelu", resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None, fp16_channels_last: bool = False, freeze_layers: int = 0) -> None:
        super().__init__()
        _check_arch(architecture)
        self.in_channels, self.resolution, self.architecture = in_channels, resolution, architecture
        self.register_buffer("resample_filter", lowpass_filter(resample_filter))
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation=activation,
                                       conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                                 conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                                 resample_filter=resample_filter, conv_clamp=conv_clamp)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    resample_filter=resample_filter)

    def forward(self, x: Tensor | None, img: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if self.in_channels == 0 or self.architecture == "skip":
            y = self.fromrgb(img)
            x = y if x is None else x + y
            if self.architecture == "skip":
                f = self.resample_filter
                img = upfirdn2d(img, f, pad=_downsample_pads(f, 2) * 2, down=2)
            else:
                img = None
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = y + self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        else:
            x = self.conv1(self.conv0(x))
        return x, img


class MinibatchStdLayer(nn.Module):
    """Karras et al. 2018, Sec. 3: per group of G samples (sample i is in group i mod N/G) and per
    feature group of C/F channels, the standard deviation over the group averaged over channels and
    pixels, appended as F constant channels."""

    def __init__(self, group_size: int | None, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def group(self, n: int) -> int:
        g = n if self.group_size is None else min(int(self.group_size), n)
        while n % g:
            g -= 1
        return g

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g, f = self.group(n), self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])              # [N/G, F]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)         # back to [N, F, H, W], sample i <- group i mod N/G
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 end: [fromrgb (skip)] -> minibatch std -> conv (3x3) -> fc -> out (1 or cmap_dim)."""

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int, img_channels: int,
                 architecture: str = "resnet", mbstd_group_size: int | None = 4, mbstd_num_channels: int = 1,
                 activation: str = "lrelu", conv_clamp: float | None = None) -> None:
        super().__init__()
        _check_arch(architecture)
        if mbstd_num_channels and in_channels % mbstd_num_channels:
            raise ValueError(f"mbstd_num_channels ({mbstd_num_channels}) must divide the 4x4 channels ({in_channels})")
        self.cmap_dim, self.resolution, self.architecture = cmap_dim, resolution, architecture
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation,
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, cmap_dim or 1)

    def forward(self, x: Tensor, img: Tensor | None, cmap: Tensor | None) -> Tensor:
        if self.architecture == "skip":
            x = x + self.fromrgb(img)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if self.cmap_dim and cmap is not None:             # the projection (Miyato & Koyama 2018)
            x = (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        return x


@register_model("stylegan2_discriminator")
class StyleGAN2Discriminator(nn.Module):
    """Blocks ``b<img_resolution>`` ... ``b8`` (channels min(channel_base // res, channel_max)), the
    epilogue ``b4`` and, for a conditional model, ``mapping`` (c -> cmap), as NVlabs'
    ``training.networks.Discriminator`` (same keys). Layers to hook: every block's ``fromrgb``,
    ``conv0``, ``conv1`` (and ``skip``), ``b4.conv``; all count as conv layers for dissection."""

    def __init__(self, c_dim: int, img_resolution: int, img_channels: int = 3, architecture: str = "resnet",
                 channel_base: int = 32768, channel_max: int = 512, num_fp16_res: int = 0,
                 conv_clamp: float | None = None, cmap_dim: int | None = None, block_kwargs: dict | None = None,
                 mapping_kwargs: dict | None = None, epilogue_kwargs: dict | None = None) -> None:
        super().__init__()
        bk, mk, ek = _plain_kwargs(block_kwargs), _plain_kwargs(mapping_kwargs), _plain_kwargs(epilogue_kwargs)
        for what, got, ok in (("block_kwargs", bk, BLOCK_KWARGS), ("mapping_kwargs", mk, MAPPING_KWARGS),
                              ("epilogue_kwargs", ek, EPILOGUE_KWARGS)):
            bad = sorted(set(got) - ok)
            if bad:
                raise ValueError(f"unknown StyleGAN2 discriminator {what} {bad}; known: {sorted(ok)}")
        _check_arch(architecture)
        img_resolution, c_dim = int(img_resolution), int(c_dim)
        if img_resolution < 8 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of 2 >= 8, got {img_resolution}")
        if "resample_filter" in bk:
            bk["resample_filter"] = list(bk["resample_filter"])
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, int(img_channels)
        self.block_resolutions = [2 ** i for i in range(int(math.log2(img_resolution)), 2, -1)]
        ch = {r: min(int(channel_base) // r, int(channel_max)) for r in self.block_resolutions + [4]}
        cmap = (ch[4] if cmap_dim is None else int(cmap_dim)) if c_dim else 0
        self.cmap_dim = cmap
        self.config = _plain_kwargs(dict(c_dim=c_dim, img_resolution=img_resolution, img_channels=self.img_channels,
                                         architecture=architecture, channel_base=int(channel_base),
                                         channel_max=int(channel_max), num_fp16_res=int(num_fp16_res),
                                         conv_clamp=conv_clamp, cmap_dim=cmap_dim, block_kwargs=bk,
                                         mapping_kwargs=mk, epilogue_kwargs=ek))
        conv_clamp = self.config["conv_clamp"]
        bk = {k: v for k, v in bk.items() if k not in ("fp16_channels_last", "freeze_layers")}
        for r in self.block_resolutions:
            setattr(self, f"b{r}", DiscriminatorBlock(ch[r] if r < img_resolution else 0, ch[r], ch[r // 2], r,
                                                      self.img_channels, architecture=architecture,
                                                      conv_clamp=conv_clamp, **bk))
        if c_dim:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap, num_ws=None, w_avg_beta=None, **mk)
        self.b4 = DiscriminatorEpilogue(ch[4], cmap, 4, self.img_channels, architecture=architecture,
                                        conv_clamp=conv_clamp, **ek)

    def forward(self, img: Tensor, c: Tensor | None = None) -> Tensor:
        """img [N, img_channels, R, R] -> [N, 1] logits (conditional without c: [N, cmap_dim], see the module)."""
        r = self.img_resolution
        if img.dim() != 4 or tuple(img.shape[1:]) != (self.img_channels, r, r):
            raise ValueError(f"the StyleGAN2 discriminator takes images [N, {self.img_channels}, {r}, {r}], "
                             f"got {tuple(img.shape)}")
        x, img = None, img.float()
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img)
        cmap = None
        if self.c_dim and c is not None:
            if c.shape != (len(x), self.c_dim):
                raise ValueError(f"c must be [N, {self.c_dim}] (one-hot class labels), got {tuple(c.shape)}")
            cmap = self.mapping(None, c.to(x.device, torch.float32))
        return self.b4(x, img, cmap)

    def adv_logit(self, image: Tensor, style_ids: Tensor) -> Tensor:
        """[N] realism logit of images in [-1, 1]; a conditional model judges each image as its style's
        class (one-hot c of ``style_ids``), an unconditional one ignores ``style_ids``. Images of
        another size are resized (bilinear, antialiased) to the discriminator's resolution."""
        r = self.img_resolution
        if image.shape[-2:] != (r, r):
            image = F.interpolate(image.float(), size=(r, r), mode="bilinear", align_corners=False, antialias=True)
        c = F.one_hot(style_ids.to(image.device).long(), self.c_dim).float() if self.c_dim else None
        return self(image, c)[:, 0]
