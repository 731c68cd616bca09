"""State dicts of third-party translators we never tuned for, rebuilt as small modules with the attribute
names, registration order and shapes their released code gives its checkpoints (random weights, tiny
widths), for ``test_unseen_layouts.py``. pix2pixHD, ESRGAN and the white-box cartoonization port come
from ``foreign_layouts.py`` (the upscalers' scale variants there too); GANILLA, photo2cartoon and
pytorch-animeGAN's current generators are built below.

References (layouts read from the papers and the checkpoints' key names; written anew here):
- GANILLA (Hicsonmez et al., Image and Vision Computing 2020; giddyyupp/ganilla ``--netG resnet_fpn``):
  a 7x7 stem, four ResNet-18-like stages whose blocks concatenate the block's input onto its output and
  fuse them with a 3x3 conv (``final_conv``), then an FPN-like decoder of 1x1 lateral convs
  (``fpn.P5_1`` .. ``fpn.P2_1``), upsampling and sums, and a 7x7 conv to RGB.
- photo2cartoon (minivision-ai, 2020): U-GAT-IT's generator with hourglass blocks (``HourGlass1..4``),
  four encoder / decoder blocks (``EncodeBlock<i>``, ``DecodeBlock<i>``) and soft AdaLIN (``norm.rho``,
  ``w_gamma``, ``c_gamma``, ``s_gamma``: the decoder's norm parameters blend the content and style
  features); released as ``photo2cartoon_weights.pt`` = ``{"genA2B": ...}`` (ngf 32, light).
- AnimeGAN (Chen, Liu & Chen, ISICA 2019) as ptran1203/pytorch-animeGAN saves it: ``GeneratorV1`` and that
  repository's ``GeneratorV2``, and its training checkpoint (key names read from its ``models/`` code).
"""
from __future__ import annotations

import torch
from torch import nn

from tests.models.foreign_layout_parts import instance_norm as _in, randomise as _randomise

# ---------------------------------------------------------------------------------------------- GANILLA


class _GanillaBlock(nn.Module):
    def __init__(self, cin: int, c: int, stride: int) -> None:
        super().__init__()
        self.rp1, self.conv1, self.bn1 = nn.ReflectionPad2d(1), nn.Conv2d(cin, c, 3, stride, bias=False), _in(c)
        self.rp2, self.conv2, self.bn2 = nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, 1, bias=False), _in(c)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != c:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), _in(c))
        self.final_conv = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(2 * c, c, 3, bias=False), _in(c))


class _GanillaFPN(nn.Module):
    def __init__(self, sizes, f: int) -> None:
        super().__init__()
        for name, c in zip(("P5_1", "P4_1", "P3_1", "P2_1"), reversed(sizes)):
            setattr(self, name, nn.Conv2d(c, f, 1))
        self.P2_2 = nn.Conv2d(f, f // 2, 3)


def ganilla(ngf=4, blocks=(2, 2, 2, 2), feature=8, input_nc=3, output_nc=3, seed=0) -> dict:
    """GANILLA's generator (``latest_net_G_A.pth``): stem ``conv1`` (7x7, biased), ``layer1..4`` of
    ``_GanillaBlock`` at ngf, 2ngf, 4ngf, 8ngf (stride 2 from ``layer2``), ``fpn``, ``conv2`` (7x7 to RGB)."""
    G = nn.Module()
    G.conv1 = nn.Conv2d(input_nc, ngf, 7)
    cin = ngf
    for i, n in enumerate(blocks):
        c = ngf * 2 ** i
        layer = []
        for j in range(n):
            layer.append(_GanillaBlock(cin, c, 2 if (i > 0 and j == 0) else 1))
            cin = c
        setattr(G, f"layer{i + 1}", nn.Sequential(*layer))
    G.fpn = _GanillaFPN([ngf * 2 ** i for i in range(4)], feature)
    G.conv2 = nn.Conv2d(feature // 2, output_nc, 7)
    return _randomise(G, seed)


# ---------------------------------------------------------------------------------------- photo2cartoon


class _P2CConvBlock(nn.Module):
    """Norm, ReLU, pad, conv thrice (widths c/2, c/4, c/4, concatenated), plus a 1x1 when widths change."""

    def __init__(self, cin: int, c: int) -> None:
        super().__init__()
        self.ConvBlock1 = nn.Sequential(_in(cin), nn.ReLU(True), nn.ReflectionPad2d(1), nn.Conv2d(cin, c // 2, 3, bias=False))
        self.ConvBlock2 = nn.Sequential(_in(c // 2), nn.ReLU(True), nn.ReflectionPad2d(1),
                                        nn.Conv2d(c // 2, c // 4, 3, bias=False))
        self.ConvBlock3 = nn.Sequential(_in(c // 4), nn.ReLU(True), nn.ReflectionPad2d(1),
                                        nn.Conv2d(c // 4, c // 4, 3, bias=False))
        self.ConvBlock4 = nn.Sequential(_in(cin), nn.ReLU(True), nn.Conv2d(cin, c, 1, bias=False))


class _P2CHourGlassBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        for n in ("1_1", "1_2", "2_1", "2_2", "3_1", "3_2", "4_1", "4_2", "5", "6", "7", "8", "9"):
            setattr(self, f"ConvBlock{n}", _P2CConvBlock(c, c))


class _P2CHourGlass(nn.Module):
    def __init__(self, c: int, use_res: bool = True) -> None:
        super().__init__()
        self.HG = nn.Sequential(_P2CHourGlassBlock(c), _P2CConvBlock(c, c), nn.Conv2d(c, c, 1, bias=False), _in(c),
                                nn.ReLU(True))
        self.Conv1 = nn.Conv2d(c, 3, 1)
        if use_res:
            self.Conv2 = nn.Conv2d(c, c, 1)
            self.Conv3 = nn.Conv2d(3, c, 1)


class _P2CResBlock(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3, bias=False), _in(d), nn.ReLU(True),
                                        nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3, bias=False), _in(d))


class _SoftAdaLIN(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.norm = nn.Module()
        self.norm.rho = nn.Parameter(torch.full((1, d, 1, 1), 0.9))
        self.w_gamma = nn.Parameter(torch.zeros(1, d))
        self.w_beta = nn.Parameter(torch.zeros(1, d))
        self.c_gamma = nn.Sequential(nn.Linear(d, d), nn.ReLU(True), nn.Linear(d, d))
        self.c_beta = nn.Sequential(nn.Linear(d, d), nn.ReLU(True), nn.Linear(d, d))
        self.s_gamma = nn.Linear(d, d)
        self.s_beta = nn.Linear(d, d)


class _P2CDecodeBlock(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.pad1, self.conv1, self.norm1 = nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3, bias=False), _SoftAdaLIN(d)
        self.relu1 = nn.ReLU(True)
        self.pad2, self.conv2, self.norm2 = nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3, bias=False), _SoftAdaLIN(d)


class _LIN(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.rho = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.ones(1, c, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))


def photo2cartoon_generator(ngf=4, img_size=32, light=True, seed=0) -> dict:
    """photo2cartoon's ResnetGenerator state dict (what ``params['genA2B']`` holds)."""
    d = 4 * ngf
    G = nn.Module()
    G.ConvBlock1 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, bias=False), _in(ngf), nn.ReLU(True))
    G.HourGlass1, G.HourGlass2 = _P2CHourGlass(ngf), _P2CHourGlass(ngf)
    G.DownBlock1 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ngf, 2 * ngf, 3, 2, bias=False), _in(2 * ngf),
                                 nn.ReLU(True))
    G.DownBlock2 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(2 * ngf, d, 3, 2, bias=False), _in(d), nn.ReLU(True))
    for i in range(4):
        setattr(G, f"EncodeBlock{i + 1}", _P2CResBlock(d))
    G.gap_fc, G.gmp_fc = nn.Linear(d, 1, bias=False), nn.Linear(d, 1, bias=False)
    G.conv1x1 = nn.Conv2d(2 * d, d, 1)
    G.relu = nn.ReLU(True)
    G.FC = nn.Sequential(nn.Linear(d if light else (img_size // 4) ** 2 * d, d), nn.ReLU(True), nn.Linear(d, d),
                         nn.ReLU(True))
    for i in range(4):
        setattr(G, f"DecodeBlock{i + 1}", _P2CDecodeBlock(d))
    G.UpBlock1 = nn.Sequential(nn.Upsample(scale_factor=2), nn.ReflectionPad2d(1), nn.Conv2d(d, 2 * ngf, 3, bias=False),
                               _LIN(2 * ngf), nn.ReLU(True))
    G.UpBlock2 = nn.Sequential(nn.Upsample(scale_factor=2), nn.ReflectionPad2d(1),
                               nn.Conv2d(2 * ngf, ngf, 3, bias=False), _LIN(ngf), nn.ReLU(True))
    G.HourGlass3, G.HourGlass4 = _P2CHourGlass(ngf), _P2CHourGlass(ngf, use_res=False)
    G.ConvBlock2 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, 3, 7, bias=False), nn.Tanh())
    return _randomise(G, seed)


def photo2cartoon_params(ngf=4, seed=0, training=False) -> dict:
    """The released ``photo2cartoon_weights.pt`` ({"genA2B": G}); ``training``: what its trainer's save
    writes (both generators and four discriminators, U-GAT-IT's entry names)."""
    out = {"genA2B": photo2cartoon_generator(ngf, seed=seed)}
    if training:
        out["genB2A"] = photo2cartoon_generator(ngf, seed=seed + 1)
        for n in ("disGA", "disGB", "disLA", "disLB"):
            D = nn.Module()
            D.model = nn.Sequential(nn.Conv2d(3, ngf, 4, 2, 1))
            D.conv = nn.Conv2d(ngf, 1, 4, 1, 0, bias=False)
            out[n] = _randomise(D, seed)
    return out


# ------------------------------------------------------------------------------ pytorch-animeGAN (ptran1203)
# AnimeGAN (Chen, Liu & Chen, ISICA 2019) as ptran1203/pytorch-animeGAN's ``GeneratorV1`` saves it (its
# ``models/`` code, convs without bias), and that repository's own ``GeneratorV2`` (layer norms with weights);
# neither is animegan2-pytorch's layout, which the AnimeGANv2 family reads. An older version of the port
# (DsConv blocks, ``dsconv1``) is ``foreign_layouts.animegan_v1_port``.


def _cb(cin: int, cout: int, k: int = 3, stride: int = 1, layer_norm: bool = False) -> nn.Module:
    """ConvBlock: reflection pad (no weights), ``conv``, ``ins_norm`` (instance: none; layer: weight, bias [C])."""
    m = nn.Module()
    m.conv = nn.Conv2d(cin, cout, k, stride, bias=False)
    m.ins_norm = nn.LayerNorm(cout) if layer_norm else _in(cout)
    return m


def _sep(cin: int, cout: int, stride: int = 1) -> nn.Module:
    """SeparableConv2D: ``depthwise`` 3x3 (groups = cin), ``pointwise`` 1x1, two parameter-free instance norms."""
    m = nn.Module()
    m.depthwise = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
    m.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
    m.ins_norm1, m.ins_norm2 = _in(cin), _in(cout)
    return m


def _inverted(cin: int, cout: int, expand: int = 2, layer_norm: bool = False) -> nn.Module:
    """InvertedResBlock: ``conv_block`` (1x1 ConvBlock to expand * cin), ``depthwise_conv``, ``conv`` (1x1)."""
    m, e = nn.Module(), expand * cin
    m.conv_block = _cb(cin, e, 1, layer_norm=layer_norm)
    m.depthwise_conv = nn.Conv2d(e, e, 3, 1, 1, groups=e, bias=False)
    m.conv = nn.Conv2d(e, cout, 1, bias=False)
    m.ins_norm1 = nn.LayerNorm(e) if layer_norm else _in(cout)
    m.ins_norm2 = nn.LayerNorm(cout) if layer_norm else _in(cout)
    return m


def animegan_port_v1(w=(4, 8, 16), n_res=2, seed=0) -> dict:
    """``GeneratorV1``: ``encode_blocks`` (ConvBlock, ConvBlock, DownConv = ``conv1`` stride 2 + ``conv2``
    separable convs, ConvBlock, SeparableConv2D, DownConv, ConvBlock), ``res_blocks`` (8 inverted residual
    blocks in the port), ``decode_blocks`` (ConvBlock, UpConv = ``conv`` separable, SeparableConv2D,
    ConvBlock, UpConv, ConvBlock, ConvBlock, a 1x1 conv to RGB at index 7, tanh)."""
    def down(c):
        m = nn.Module()
        m.conv1, m.conv2 = _sep(c, c, 2), _sep(c, c)
        return m

    def up(c):
        m = nn.Module()
        m.conv = _sep(c, c)
        return m

    G = nn.Module()
    G.encode_blocks = nn.Sequential(_cb(3, w[0]), _cb(w[0], w[1]), down(w[1]), _cb(w[1], w[1]), _sep(w[1], w[2]),
                                    down(w[2]), _cb(w[2], w[2]))
    G.res_blocks = nn.Sequential(*[_inverted(w[2], w[2]) for _ in range(n_res)])
    G.decode_blocks = nn.Sequential(_cb(w[2], w[1]), up(w[1]), _sep(w[1], w[1]), _cb(w[1], w[1]), up(w[1]),
                                    _cb(w[1], w[0]), _cb(w[0], w[0]), nn.Conv2d(w[0], 3, 1, bias=False), nn.Tanh())
    return _randomise(G, seed)


def animegan_port_v2(w=(4, 8, 16, 32), seed=0) -> dict:
    """pytorch-animeGAN's ``GeneratorV2``: ``conv_block1`` (7x7, stride 2, 3x3 ConvBlocks), ``conv_block2``,
    ``res_blocks`` (ConvBlock, 4 inverted residual blocks, ConvBlock), ``upsample1`` / ``upsample2``
    (``UpConvLNormLReLU``: a ``conv_block`` after x2 bilinear), ``decode_blocks.0`` (1x1 to RGB); layer norms."""
    class Up(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.conv_block = _cb(cin, cout, layer_norm=True)

    a, b, c, d = w
    G = nn.Module()
    G.conv_block1 = nn.Sequential(_cb(3, a, 7, layer_norm=True), _cb(a, b, 3, 2, True), _cb(b, b, layer_norm=True))
    G.conv_block2 = nn.Sequential(_cb(b, c, 3, 2, True), _cb(c, c, layer_norm=True))
    G.res_blocks = nn.Sequential(_cb(c, c, layer_norm=True), _inverted(c, d, layer_norm=True),
                                 *[_inverted(d, d, layer_norm=True) for _ in range(3)], _cb(d, c, layer_norm=True))
    G.upsample1 = nn.Sequential(Up(c, c), _cb(c, c, layer_norm=True))
    G.upsample2 = nn.Sequential(Up(c, b), _cb(b, b, layer_norm=True), _cb(b, a, 7, layer_norm=True))
    G.decode_blocks = nn.Sequential(nn.Conv2d(a, 3, 1, bias=False), nn.Tanh())
    return _randomise(G, seed)


def animegan_port_checkpoint(sd: dict) -> dict:
    """What the port's ``save_checkpoint`` writes: ``{"model_state_dict", "optimizer_state_dict", "epoch"}``,
    the optimizer's after one Adam step (its per-parameter state keyed by integers)."""
    params = [nn.Parameter(v.clone()) for v in sd.values()]
    opt = torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    return {"model_state_dict": sd, "optimizer_state_dict": opt.state_dict(), "epoch": 3}
