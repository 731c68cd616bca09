"""State dicts of well-known image networks that are NOT CycleGAN-family ResNet generators (and of one
that is, pix2pixHD's global generator), each rebuilt here as a small module with the attribute names and
registration order of its reference, so the keys, their order and their shapes are the reference's;
random weights, small widths. Used by ``test_foreign_layouts.py`` to check the ResNet family parser
refuses what it cannot run correctly. The networks that are not translators (super-resolution, AdaIN,
DCGAN, a classifier) are built in ``foreign_layouts_other.py``; ``REFUSED`` below indexes both.

References (layouts read from the public code; written anew here):
- pix2pixHD (Wang et al., CVPR 2018; NVIDIA/pix2pixHD ``models/networks.py``): GlobalGenerator,
  LocalEnhancer (``model``, ``model1_1``, ``model1_2``), the instance-feature Encoder (netE).
- SPADE / GauGAN (Park et al., CVPR 2019; NVlabs/SPADE ``models/networks``): SPADEGenerator
  (spectral norm, SPADE blocks) and its pix2pixhd generator (``norm_layer(conv)`` wrappers).
- ESRGAN / Real-ESRGAN (Wang et al., 2018 / 2021; XPixelGroup/BasicSR ``rrdbnet_arch.py``, the
  older ESRGAN ``RRDB_trunk`` names), SRResNet (BasicSR ``MSRResNet``), EDSR (Lim et al., 2017;
  BasicSR and sanghyun-son/EDSR-PyTorch names), Real-ESRGAN's SRVGGNetCompact.
- AdaIN (Huang & Belongie, ICCV 2017; naoto0804/pytorch-AdaIN ``net.py``): decoder and vgg_normalised.
- UNIT / MUNIT (Liu et al. 2017, Huang et al. 2018; NVlabs/MUNIT ``networks.py``): VAEGen, AdaINGen.
- U-GAT-IT (Kim et al., ICLR 2020; znxlwm/UGATIT-pytorch ``networks.py``): ResnetGenerator.
- StarGAN v2 (Choi et al., CVPR 2020; clovaai/stargan-v2 ``core/model.py``): Generator alone.
- DCGAN (Radford et al., 2016; pytorch/examples ``dcgan/main.py``): generator and discriminator.
- Fast neural style as rrmina/fast-neural-style-pytorch saves it (``ConvBlock``, ``ResidualBlock``,
  ``DeconvBlock``: 9x9 convs, output ``tanh * 150`` for [0, 255] images).
- CartoonGAN (Chen et al., CVPR 2018; Yijunmaverick/CartoonGAN-Test-Pytorch-Torch ``Transformer``).
- AnimeGAN v1 as ptran1203/pytorch-animeGAN ports it (ConvBlock / DsConv / InvertedResBlock).
- White-box cartoonization (Wang & Yu, CVPR 2020) as macroexpansion/cartoonizer-pytorch ports it.
- A torchvision ResNet-18 classifier.
"""
from __future__ import annotations

import torch
from torch import nn

from tests.models.foreign_layout_parts import instance_norm as _in, named as _named, randomise as _randomise
from tests.models.foreign_layouts_other import (adain_decoder, adain_vgg, dcgan_discriminator, dcgan_generator,
                                                edsr_basicsr, edsr_original, msrresnet, rrdbnet, srvgg_compact,
                                                torchvision_resnet18)

# ------------------------------------------------------------------------------------------- pix2pixHD


class _P2HDBlock(nn.Module):
    def __init__(self, d: int, norm) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3), norm(d), nn.ReLU(True),
                                        nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3), norm(d))


def _p2hd_global_layers(input_nc, output_nc, ngf, n_down, n_blocks, norm):
    m = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7), norm(ngf), nn.ReLU(True)]
    for i in range(n_down):
        c = ngf * 2 ** i
        m += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), norm(2 * c), nn.ReLU(True)]
    m += [_P2HDBlock(ngf * 2 ** n_down, norm) for _ in range(n_blocks)]
    for i in range(n_down):
        c = ngf * 2 ** (n_down - i)
        m += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1), norm(c // 2), nn.ReLU(True)]
    m += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
    return m


def _p2hd_norm(kind):
    return (lambda c: nn.BatchNorm2d(c)) if kind == "batch" else (lambda c: nn.InstanceNorm2d(c))


def pix2pixhd_global(ngf=4, n_down=3, n_blocks=2, norm="instance", input_nc=3, output_nc=3, seed=0) -> dict:
    """``--netG global`` (``latest_net_G.pth``): the family with ``n_downsample_global`` stages (4 by
    default); pix2pixHD keeps conv biases under batch norm too."""
    G = nn.Module()
    G.model = nn.Sequential(*_p2hd_global_layers(input_nc, output_nc, ngf, n_down, n_blocks, _p2hd_norm(norm)))
    return _randomise(G, seed)


def pix2pixhd_local(ngf=4, n_down=2, n_blocks=2, n_blocks_local=1, seed=0) -> dict:
    """``--netG local``: the global generator at 2*ngf without its last three layers (``model``), then
    ``model1_1`` (7x7 stem, one downsampling) and ``model1_2`` (blocks, one transposed conv, head)."""
    norm = _p2hd_norm("instance")
    G = nn.Module()
    G.model = nn.Sequential(*_p2hd_global_layers(3, 3, 2 * ngf, n_down, 2, norm)[:-3])
    G.model1_1 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), norm(ngf), nn.ReLU(True),
                               nn.Conv2d(ngf, 2 * ngf, 3, stride=2, padding=1), norm(2 * ngf), nn.ReLU(True))
    G.model1_2 = nn.Sequential(*[_P2HDBlock(2 * ngf, norm) for _ in range(n_blocks_local)],
                               nn.ConvTranspose2d(2 * ngf, ngf, 3, stride=2, padding=1, output_padding=1),
                               norm(ngf), nn.ReLU(True), nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh())
    G.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
    return _randomise(G, seed)


def pix2pixhd_encoder(ngf=4, n_down=3, feat_num=3, seed=0) -> dict:
    """netE (``latest_net_E.pth``, beside G with ``--instance_feat``): stem, downs, ups, 7x7 head to
    ``feat_num`` channels, no residual blocks; its forward averages features per instance."""
    norm = _p2hd_norm("instance")
    m = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), norm(ngf), nn.ReLU(True)]
    for i in range(n_down):
        c = ngf * 2 ** i
        m += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), norm(2 * c), nn.ReLU(True)]
    for i in range(n_down):
        c = ngf * 2 ** (n_down - i)
        m += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1), norm(c // 2), nn.ReLU(True)]
    m += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, feat_num, 7), nn.Tanh()]
    E = nn.Module()
    E.model = nn.Sequential(*m)
    return _randomise(E, seed)


def pix2pixhd_functional(sd: dict, x: torch.Tensor, norm="instance") -> torch.Tensor:
    """pix2pixHD GlobalGenerator's eval forward written from its layout with ``torch.nn.functional``:
    walks the flat ``model.<i>`` keys in index order (conv, ConvTranspose or residual block)."""
    import torch.nn.functional as F

    def nrm(h, i):
        if norm == "batch":
            p = f"model.{i}"
            return F.batch_norm(h, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                                sd[f"{p}.bias"], False, 0.0, 1e-5)
        return F.instance_norm(h, eps=1e-5)

    def bnrm(h, p):
        if norm == "batch":
            return F.batch_norm(h, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                                sd[f"{p}.bias"], False, 0.0, 1e-5)
        return F.instance_norm(h, eps=1e-5)

    idx = sorted({int(k.split(".")[1]) for k in sd if k.startswith("model.")})
    convs = [i for i in idx if f"model.{i}.weight" in sd and sd[f"model.{i}.weight"].dim() == 4]
    blocks = sorted({int(k.split(".")[1]) for k in sd if ".conv_block." in k})
    order = sorted(set(convs) | set(blocks))
    h = x
    for n, i in enumerate(order):
        if i in blocks:
            p = f"model.{i}.conv_block"
            t = F.conv2d(F.pad(h, (1,) * 4, mode="reflect"), sd[f"{p}.1.weight"], sd[f"{p}.1.bias"])
            t = F.relu(bnrm(t, f"{p}.2"))
            t = F.conv2d(F.pad(t, (1,) * 4, mode="reflect"), sd[f"{p}.5.weight"], sd[f"{p}.5.bias"])
            h = h + bnrm(t, f"{p}.6")
            continue
        w, b = sd[f"model.{i}.weight"], sd[f"model.{i}.bias"]
        if n == 0:
            h = F.relu(nrm(F.conv2d(F.pad(h, (3,) * 4, mode="reflect"), w, b), i + 1))
        elif n == len(order) - 1:
            return torch.tanh(F.conv2d(F.pad(h, (3,) * 4, mode="reflect"), w, b))
        elif any(j in blocks for j in order[:n]):          # after the blocks: a transposed conv
            h = F.relu(nrm(F.conv_transpose2d(h, w, b, stride=2, padding=1, output_padding=1), i + 1))
        else:
            h = F.relu(nrm(F.conv2d(h, w, b, stride=2, padding=1), i + 1))
    raise AssertionError("no head conv")


# ---------------------------------------------------------------------------------------------- SPADE


class _SpadeNorm(nn.Module):
    def __init__(self, c: int, label_nc: int, nhidden: int = 8) -> None:
        super().__init__()
        self.param_free_norm = nn.BatchNorm2d(c, affine=False)        # SynchronizedBatchNorm2d's keys
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, nhidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(nhidden, c, 3, padding=1)
        self.mlp_beta = nn.Conv2d(nhidden, c, 3, padding=1)


class _SpadeBlock(nn.Module):
    def __init__(self, fin: int, fout: int, label_nc: int) -> None:
        super().__init__()
        sn = nn.utils.spectral_norm
        fmid = min(fin, fout)
        self.conv_0 = sn(nn.Conv2d(fin, fmid, 3, padding=1))
        self.conv_1 = sn(nn.Conv2d(fmid, fout, 3, padding=1))
        if fin != fout:
            self.conv_s = sn(nn.Conv2d(fin, fout, 1, bias=False))
        self.norm_0 = _SpadeNorm(fin, label_nc)
        self.norm_1 = _SpadeNorm(fmid, label_nc)
        if fin != fout:
            self.norm_s = _SpadeNorm(fin, label_nc)


def spade_generator(nf=2, label_nc=3, seed=0) -> dict:
    """SPADEGenerator (``norm_G=spectralspadesyncbatch3x3``, no VAE): ``fc`` from the label map, SPADE
    residual blocks ``head_0``, ``G_middle_*``, ``up_0..3``, ``conv_img``. A 3-label map makes its first
    conv take 3 channels, like an image."""
    G = nn.Module()
    G.fc = nn.Conv2d(label_nc, 16 * nf, 3, padding=1)
    G.head_0 = _SpadeBlock(16 * nf, 16 * nf, label_nc)
    G.G_middle_0 = _SpadeBlock(16 * nf, 16 * nf, label_nc)
    G.G_middle_1 = _SpadeBlock(16 * nf, 16 * nf, label_nc)
    for i, (a, b) in enumerate(((16, 8), (8, 4), (4, 2), (2, 1))):
        setattr(G, f"up_{i}", _SpadeBlock(a * nf, b * nf, label_nc))
    G.conv_img = nn.Conv2d(nf, 3, 3, padding=1)
    return _randomise(G, seed)


def spade_pix2pixhd(ngf=4, n_down=2, n_blocks=2, input_nc=3, seed=0) -> dict:
    """SPADE's ``--netG pix2pixhd`` with its default ``norm_G=instance``: every conv but the last is
    wrapped as ``Sequential(conv without bias, InstanceNorm2d(affine=False))``, so the file holds
    bias-free convs at ``model.<i>.0`` and no norm keys: the keys of ``--norm none`` in another nesting."""
    def wrap(conv):
        conv.bias = None
        return nn.Sequential(conv, nn.InstanceNorm2d(conv.out_channels))

    class Block(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.conv_block = nn.Sequential(nn.ReflectionPad2d(1), wrap(nn.Conv2d(d, d, 3)), nn.ReLU(False),
                                            nn.ReflectionPad2d(1), wrap(nn.Conv2d(d, d, 3)))

    m = [nn.ReflectionPad2d(3), wrap(nn.Conv2d(input_nc, ngf, 7)), nn.ReLU(False)]
    for i in range(n_down):
        c = ngf * 2 ** i
        m += [wrap(nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)), nn.ReLU(False)]
    m += [Block(ngf * 2 ** n_down) for _ in range(n_blocks)]
    for i in range(n_down):
        c = ngf * 2 ** (n_down - i)
        m += [wrap(nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1)), nn.ReLU(False)]
    m += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    G = nn.Module()
    G.model = nn.Sequential(*m)
    return _randomise(G, seed)


# ------------------------------------------------------------------------------------------ UNIT / MUNIT


class _LayerNorm(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(c))
        self.beta = nn.Parameter(torch.zeros(c))


class _AdaIN2d(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))


class _Conv2dBlock(nn.Module):
    """MUNIT's Conv2dBlock: registers pad, norm, activation, then conv (so norm keys come first)."""

    def __init__(self, cin, cout, k, norm="none", tracked=False) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(k // 2)
        if norm == "in":
            self.norm = nn.InstanceNorm2d(cout, track_running_stats=tracked)
        elif norm == "ln":
            self.norm = _LayerNorm(cout)
        elif norm == "adain":
            self.norm = _AdaIN2d(cout)
        self.conv = nn.Conv2d(cin, cout, k)


def _res_blocks(n, d, norm, tracked):
    def block():
        b = nn.Module()
        b.model = nn.Sequential(_Conv2dBlock(d, d, 3, norm, tracked), _Conv2dBlock(d, d, 3, norm, tracked))
        return b
    r = nn.Module()
    r.model = nn.Sequential(*[block() for _ in range(n)])
    return r


def _content_encoder(dim, n_down, n_res, tracked):
    e = nn.Module()
    m = [_Conv2dBlock(3, dim, 7, "in", tracked)]
    for _ in range(n_down):
        m.append(_Conv2dBlock(dim, 2 * dim, 4, "in", tracked))
        dim *= 2
    m.append(_res_blocks(n_res, dim, "in", tracked))
    e.model = nn.Sequential(*m)
    return e, dim


def _decoder(dim, n_up, n_res, res_norm, tracked):
    d = nn.Module()
    m = [_res_blocks(n_res, dim, res_norm, tracked)]
    for _ in range(n_up):
        m += [nn.Upsample(scale_factor=2), _Conv2dBlock(dim, dim // 2, 5, "ln")]
        dim //= 2
    m.append(_Conv2dBlock(dim, 3, 7, "none"))
    d.model = nn.Sequential(*m)
    return d


def unit_generator(dim=4, n_down=2, n_res=2, tracked=False, seed=0) -> dict:
    """UNIT's VAEGen (``gen_a`` of ``gen_<iter>.pt``): ``enc`` (content encoder, instance norm) and ``dec``
    (instance-norm residual blocks, x2 upsampling + 5x5 conv + LayerNorm ``gamma``/``beta``, 7x7 head).
    ``tracked``: the versions whose InstanceNorm tracked running statistics."""
    G = nn.Module()
    G.enc, out = _content_encoder(dim, n_down, n_res, tracked)
    G.dec = _decoder(out, n_down, n_res, "in", tracked)
    return _randomise(G, seed)


def munit_generator(dim=4, n_down=2, n_res=2, style_dim=4, mlp_dim=8, seed=0) -> dict:
    """MUNIT's AdaINGen: ``enc_style`` (7x7, two 4x4 stride-2 doublings, two more at the same width, global
    pool, 1x1 to the style code), ``enc_content``, ``dec`` (AdaIN residual blocks: dummy running stats,
    LayerNorm up stages) and ``mlp`` (Linear layers to the AdaIN parameters)."""
    G = nn.Module()
    s = nn.Module()
    m, d = [_Conv2dBlock(3, dim, 7)], dim
    for _ in range(2):
        m.append(_Conv2dBlock(d, 2 * d, 4))
        d *= 2
    m += [_Conv2dBlock(d, d, 4), _Conv2dBlock(d, d, 4), nn.AdaptiveAvgPool2d(1), nn.Conv2d(d, style_dim, 1)]
    s.model = nn.Sequential(*m)
    G.enc_style = s
    G.enc_content, out = _content_encoder(dim, n_down, n_res, False)
    G.dec = _decoder(out, n_down, n_res, "adain", False)
    n_adain = 2 * out * 2 * n_res
    mlp = nn.Module()
    mlp.model = nn.Sequential(*[_named(("fc",), lambda a=a, b=b: nn.Linear(a, b))
                                for a, b in ((style_dim, mlp_dim), (mlp_dim, mlp_dim), (mlp_dim, n_adain))])
    G.mlp = mlp
    return _randomise(G, seed)


# --------------------------------------------------------------------------------------------- U-GAT-IT


def ugatit_generator(ngf=4, n_blocks=2, light=True, seed=0) -> dict:
    """U-GAT-IT's ResnetGenerator (``genA2B`` of its ``*_params_*.pt``), registration order kept: the CAM
    layers and gamma/beta MLP and the AdaLIN blocks come before ``DownBlock`` (assigned last), then
    ``FC`` and ``UpBlock2`` (ILN ``rho``/``gamma``/``beta`` of shape [1, C, 1, 1]); convs bias-free."""
    d = ngf * 4

    class AdaLINBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.pad1, self.conv1 = nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3, bias=False)
            self.norm1 = _named(("rho",), lambda: nn.Parameter(torch.full((1, d, 1, 1), 0.9)))
            self.relu1 = nn.ReLU(True)
            self.pad2, self.conv2 = nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3, bias=False)
            self.norm2 = _named(("rho",), lambda: nn.Parameter(torch.full((1, d, 1, 1), 0.9)))

    class ILN(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.rho = nn.Parameter(torch.zeros(1, c, 1, 1))
            self.gamma = nn.Parameter(torch.ones(1, c, 1, 1))
            self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3, bias=False), _in(d), nn.ReLU(True),
                                            nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3, bias=False), _in(d))

    G = nn.Module()
    G.gap_fc = nn.Linear(d, 1, bias=False)
    G.gmp_fc = nn.Linear(d, 1, bias=False)
    G.conv1x1 = nn.Conv2d(2 * d, d, 1)
    G.relu = nn.ReLU(True)
    G.gamma = nn.Linear(d, d, bias=False)
    G.beta = nn.Linear(d, d, bias=False)
    for i in range(n_blocks):
        setattr(G, f"UpBlock1_{i + 1}", AdaLINBlock())
    down = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, bias=False), _in(ngf), nn.ReLU(True)]
    for i in range(2):
        c = ngf * 2 ** i
        down += [nn.ReflectionPad2d(1), nn.Conv2d(c, 2 * c, 3, stride=2, bias=False), _in(2 * c), nn.ReLU(True)]
    down += [Block() for _ in range(n_blocks)]
    G.DownBlock = nn.Sequential(*down)
    G.FC = nn.Sequential(nn.Linear(d if light else 64 * d, d, bias=False), nn.ReLU(True), nn.Linear(d, d, bias=False),
                         nn.ReLU(True))
    up = []
    for i in range(2):
        c = ngf * 2 ** (2 - i)
        up += [nn.Upsample(scale_factor=2), nn.ReflectionPad2d(1), nn.Conv2d(c, c // 2, 3, bias=False), ILN(c // 2),
               nn.ReLU(True)]
    up += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7, bias=False), nn.Tanh()]
    G.UpBlock2 = nn.Sequential(*up)
    return _randomise(G, seed)


# ------------------------------------------------------------------------------------------- StarGAN v2


def stargan_v2_generator(dim_in=8, img_size=32, style_dim=4, max_conv_dim=16, seed=0) -> dict:
    """StarGAN v2's Generator state dict alone (``nets_ema.generator``, unwrapped): ``from_rgb`` (3x3),
    ``encode.<i>`` ResBlks (conv1, conv2, affine norm1/norm2, 1x1 ``conv1x1`` where widths change),
    ``decode.<i>`` AdainResBlks (``norm*.fc`` Linear), ``to_rgb`` (affine norm, LeakyReLU, 1x1 conv)."""
    import math

    def resblk(a, b, normalize):
        m = nn.Module()
        m.conv1, m.conv2 = nn.Conv2d(a, a, 3, 1, 1), nn.Conv2d(a, b, 3, 1, 1)
        if normalize:
            m.norm1, m.norm2 = _in(a, True), _in(a, True)
        if a != b:
            m.conv1x1 = nn.Conv2d(a, b, 1, bias=False)
        return m

    def adainblk(a, b):
        m = nn.Module()
        m.conv1, m.conv2 = nn.Conv2d(a, b, 3, 1, 1), nn.Conv2d(b, b, 3, 1, 1)
        m.norm1 = _named(("fc",), lambda: nn.Linear(style_dim, 2 * a))
        m.norm2 = _named(("fc",), lambda: nn.Linear(style_dim, 2 * b))
        if a != b:
            m.conv1x1 = nn.Conv2d(a, b, 1, bias=False)
        return m

    G = nn.Module()
    G.from_rgb = nn.Conv2d(3, dim_in, 3, 1, 1)
    enc, dec, d = [], [], dim_in
    for _ in range(int(math.log2(img_size)) - 4):
        e = min(2 * d, max_conv_dim)
        enc.append(resblk(d, e, True))
        dec.insert(0, adainblk(e, d))
        d = e
    for _ in range(2):
        enc.append(resblk(d, d, True))
        dec.insert(0, adainblk(d, d))
    G.encode, G.decode = nn.ModuleList(enc), nn.ModuleList(dec)
    G.to_rgb = nn.Sequential(_in(dim_in, True), nn.LeakyReLU(0.2), nn.Conv2d(dim_in, 3, 1, 1, 0))
    return _randomise(G, seed)


# ------------------------------------------------------------------------------------ style transfer


def rrmina_fast_neural_style(w=(4, 8, 16), n_res=2, seed=0) -> dict:
    """rrmina/fast-neural-style-pytorch's TransformerNetwork: ``ConvBlock`` (9x9 stem, two stride-2 3x3
    convs, each a ConvLayer ``conv_layer`` + affine ``norm_layer``), ``ResidualBlock.<i>.conv1/conv2``,
    ``DeconvBlock`` (two ``conv_transpose`` + norm, a 9x9 ``conv_layer`` without norm). Fed images in
    [0, 255]; its output is tanh * 150. Same chain of shapes as the family but for the 9x9 convs."""
    def conv_layer(a, b, k, norm=True):
        m = nn.Module()
        m.reflection_pad = nn.ReflectionPad2d(k // 2)
        m.conv_layer = nn.Conv2d(a, b, k)
        if norm:
            m.norm_layer = _in(b, True)
        return m

    def deconv_layer(a, b):
        m = nn.Module()
        m.conv_transpose = nn.ConvTranspose2d(a, b, 3, 2, 1, 1)
        m.norm_layer = _in(b, True)
        return m

    def res():
        m = nn.Module()
        m.conv1, m.relu, m.conv2 = conv_layer(w[2], w[2], 3), nn.ReLU(), conv_layer(w[2], w[2], 3)
        return m

    G = nn.Module()
    G.ConvBlock = nn.Sequential(conv_layer(3, w[0], 9), nn.ReLU(), conv_layer(w[0], w[1], 3), nn.ReLU(),
                                conv_layer(w[1], w[2], 3), nn.ReLU())
    G.ResidualBlock = nn.Sequential(*[res() for _ in range(n_res)])
    G.DeconvBlock = nn.Sequential(deconv_layer(w[2], w[1]), nn.ReLU(), deconv_layer(w[1], w[0]), nn.ReLU(),
                                  conv_layer(w[0], 3, 9, norm=False), nn.Tanh())
    return _randomise(G, seed)


def cartoongan(w=(4, 8, 16), n_res=2, renamed=False, seed=0) -> dict:
    """CartoonGAN's test-time Transformer (``Hayao_net_G_float.pth``): ``conv01_1`` 7x7, ``conv02_1``
    stride 2 + ``conv02_2``, ``conv03_*``, residual ``conv04_1``.., ``deconv01_1`` (transposed) +
    ``deconv01_2``, ..., ``deconv03_1`` 7x7; its InstanceNormalization holds ``scale`` / ``shift``
    (``renamed``: as ``weight`` / ``bias``, an nn.InstanceNorm2d(affine=True) re-implementation)."""
    class IN(nn.Module):
        def __init__(self, c):
            super().__init__()
            if renamed:
                self.weight, self.bias = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c))
            else:
                self.scale, self.shift = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c))

    G = nn.Module()
    G.conv01_1, G.in01_1 = nn.Conv2d(3, w[0], 7), IN(w[0])
    G.conv02_1, G.conv02_2, G.in02_1 = nn.Conv2d(w[0], w[1], 3, 2, 1), nn.Conv2d(w[1], w[1], 3, 1, 1), IN(w[1])
    G.conv03_1, G.conv03_2, G.in03_1 = nn.Conv2d(w[1], w[2], 3, 2, 1), nn.Conv2d(w[2], w[2], 3, 1, 1), IN(w[2])
    for i in range(n_res):
        for j in (1, 2):
            setattr(G, f"conv{4 + i:02d}_{j}", nn.Conv2d(w[2], w[2], 3))
            setattr(G, f"in{4 + i:02d}_{j}", IN(w[2]))
    G.deconv01_1, G.deconv01_2 = nn.ConvTranspose2d(w[2], w[1], 3, 2, 1, 1), nn.Conv2d(w[1], w[1], 3, 1, 1)
    G.in12_1 = IN(w[1])
    G.deconv02_1, G.deconv02_2 = nn.ConvTranspose2d(w[1], w[0], 3, 2, 1, 1), nn.Conv2d(w[0], w[0], 3, 1, 1)
    G.in13_1 = IN(w[0])
    G.deconv03_1 = nn.Conv2d(w[0], 3, 7)
    return _randomise(G, seed)


def animegan_v1_port(w=(4, 8, 16), n_res=2, seed=0) -> dict:
    """pytorch-animeGAN's AnimeGAN (v1) Generator: ``encode_blocks`` of ConvBlock (``conv`` +
    parameter-free ``ins_norm``), DownConv (``dsconv1``/``dsconv2``: a depthwise conv, then a ConvBlock),
    ``res_blocks`` of InvertedResBlock (1x1 expansion, depthwise 3x3, 1x1 projection), ``decode_blocks``
    with UpConv and a last 3x3 conv to RGB."""
    def cb(a, b, k=3, s=1):
        m = nn.Module()
        m.conv = nn.Conv2d(a, b, k, s, k // 2)
        m.ins_norm = _in(b)
        return m

    def ds(a, b, s=1):
        m = nn.Module()
        m.depthwise_conv = nn.Conv2d(a, a, 3, groups=a, padding=1)
        m.ins_norm = _in(a)
        m.conv_block = cb(a, b, 3, s)
        return m

    def down(c):
        m = nn.Module()
        m.dsconv1, m.dsconv2 = ds(c, c, 2), ds(c, c, 1)
        return m

    def inv(c, e=2):
        m = nn.Module()
        m.conv_block = cb(c, e * c, 1)
        m.depthwise_conv = nn.Conv2d(e * c, e * c, 3, groups=e * c, padding=1)
        m.conv = nn.Conv2d(e * c, c, 1)
        return m

    def up(c):
        m = nn.Module()
        m.dsconv = ds(c, c)
        return m

    G = nn.Module()
    G.encode_blocks = nn.Sequential(cb(3, w[0]), cb(w[0], w[1]), down(w[1]), cb(w[1], w[1]), ds(w[1], w[2]),
                                    down(w[2]), cb(w[2], w[2]))
    G.res_blocks = nn.Sequential(*[inv(w[2]) for _ in range(n_res)])
    G.decode_blocks = nn.Sequential(cb(w[2], w[1]), up(w[1]), ds(w[1], w[1]), cb(w[1], w[1]), up(w[1]),
                                    cb(w[1], w[0]), cb(w[0], w[0]), nn.Conv2d(w[0], 3, 1), nn.Tanh())
    return _randomise(G, seed)


def whitebox_cartoonizer(ch=4, seed=0) -> dict:
    """The cartoonizer-pytorch port of white-box cartoonization's generator: ``encoder0`` (7x7), ``encoder1``
    / ``encoder2`` (stride-2 conv, then a conv doubling the width), ``resblock0..3`` (two 3x3 convs, no
    norm), ``decoder0..2`` (bilinear upsampling and U-Net skips in its forward), 7x7 to RGB; LeakyReLU."""
    lr = lambda: nn.LeakyReLU(0.2)
    G = nn.Module()
    G.encoder0 = nn.Sequential(nn.Conv2d(3, ch, 7, padding=3), lr())
    G.encoder1 = nn.Sequential(nn.Conv2d(ch, ch, 3, stride=2), lr(), nn.Conv2d(ch, 2 * ch, 3, padding=1), lr())
    G.encoder2 = nn.Sequential(nn.Conv2d(2 * ch, 2 * ch, 3, stride=2), lr(), nn.Conv2d(2 * ch, 4 * ch, 3, padding=1),
                               lr())
    for i in range(4):
        setattr(G, f"resblock{i}", nn.Sequential(nn.Conv2d(4 * ch, 4 * ch, 3, padding=1), lr(),
                                                 nn.Conv2d(4 * ch, 4 * ch, 3, padding=1)))
    G.decoder0 = nn.Sequential(nn.Conv2d(4 * ch, 2 * ch, 3, padding=1), lr())
    G.decoder1 = nn.Sequential(nn.Conv2d(2 * ch, 2 * ch, 3, padding=1), lr(), nn.Conv2d(2 * ch, ch, 3, padding=1), lr())
    G.decoder2 = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), lr(), nn.Conv2d(ch, 3, 7, padding=3))
    return _randomise(G, seed)


def plain_translator_no_norm(ngf=4, n_res=2, seed=0) -> dict:
    """A hand-written translator with CycleGAN's shapes and no normalisation at all, as a flat
    Sequential: conv, ReLU, conv, ReLU, ...; residual blocks of conv, ReLU, conv (biases everywhere)."""
    class Res(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.block = nn.Sequential(nn.Conv2d(d, d, 3, padding=1), nn.ReLU(), nn.Conv2d(d, d, 3, padding=1))

    d = 4 * ngf
    m = [nn.Conv2d(3, ngf, 7, padding=3), nn.ReLU(), nn.Conv2d(ngf, 2 * ngf, 3, 2, 1), nn.ReLU(),
         nn.Conv2d(2 * ngf, d, 3, 2, 1), nn.ReLU(), *[Res(d) for _ in range(n_res)],
         nn.ConvTranspose2d(d, 2 * ngf, 3, 2, 1, 1), nn.ReLU(), nn.ConvTranspose2d(2 * ngf, ngf, 3, 2, 1, 1), nn.ReLU(),
         nn.Conv2d(ngf, 3, 7, padding=3), nn.Tanh()]
    G = nn.Module()
    G.model = nn.Sequential(*m)
    return _randomise(G, seed)

# ------------------------------------------------------------------------------------------------ index

# name -> builder of a state dict the ResNet family must refuse
REFUSED = {
    "pix2pixhd_local_enhancer": pix2pixhd_local,
    "pix2pixhd_feature_encoder": pix2pixhd_encoder,
    "spade_generator": spade_generator,
    "spade_pix2pixhd_instance": spade_pix2pixhd,
    "esrgan_rrdbnet_basicsr": rrdbnet,
    "esrgan_rrdbnet_old_names": lambda: rrdbnet(old_names=True),
    "real_esrgan_x2_rrdbnet": lambda: rrdbnet(in_ch=12),
    "msrresnet": msrresnet,
    "edsr_basicsr": edsr_basicsr,
    "edsr_original": edsr_original,
    "real_esrgan_srvgg_compact": srvgg_compact,
    "adain_decoder": adain_decoder,
    "adain_vgg_normalised": adain_vgg,
    "unit_vaegen": unit_generator,
    "unit_vaegen_tracked_in": lambda: unit_generator(tracked=True),
    "munit_adaingen": munit_generator,
    "ugatit_generator": ugatit_generator,
    "stargan_v2_generator_alone": stargan_v2_generator,
    "dcgan_generator": dcgan_generator,
    "dcgan_discriminator": dcgan_discriminator,
    "rrmina_fast_neural_style": rrmina_fast_neural_style,
    "cartoongan": cartoongan,
    "cartoongan_renamed_norms": lambda: cartoongan(renamed=True),
    "animegan_v1_port": animegan_v1_port,
    "whitebox_cartoonizer_port": whitebox_cartoonizer,
    "plain_translator_no_norm": plain_translator_no_norm,
    "torchvision_resnet18": torchvision_resnet18,
}
