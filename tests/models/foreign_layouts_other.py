"""State dicts of well-known image networks that are not image-to-image translators but whose first conv
takes an image (super-resolution, AdaIN's decoder and VGG, DCGAN, a classifier), rebuilt with their
references' attribute names, registration order and shapes; random weights, small widths. Part of the
foreign layouts of ``foreign_layouts.py`` (which lists the references and indexes both files).
"""
from __future__ import annotations

from torch import nn

from tests.models.adain_reference import PORT_DECODER, PORT_VGG, port_decoder, port_vgg
from tests.models.foreign_layout_parts import named as _named, randomise as _randomise

# ------------------------------------------------------------------------------------ super-resolution


class _RDB(nn.Module):
    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        for i in range(5):
            setattr(self, f"conv{i + 1}", nn.Conv2d(nf + i * gc, gc if i < 4 else nf, 3, 1, 1))


def rrdbnet(nf=8, gc=4, n_blocks=2, in_ch=3, old_names=False, seed=0) -> dict:
    """ESRGAN / Real-ESRGAN RRDBNet (x4: ``in_ch`` 3; x2 takes 12 pixel-unshuffled channels).
    ``old_names``: the original ESRGAN repository's keys (``RRDB_trunk.*.RDB1``, ``trunk_conv``,
    ``upconv1``, ``HRconv``)."""
    rrdb = lambda: _named(("RDB1", "RDB2", "RDB3") if old_names else ("rdb1", "rdb2", "rdb3"), lambda: _RDB(nf, gc))
    G = nn.Module()
    names = (("conv_first", "RRDB_trunk", "trunk_conv", "upconv1", "upconv2", "HRconv", "conv_last") if old_names
             else ("conv_first", "body", "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"))
    setattr(G, names[0], nn.Conv2d(in_ch, nf, 3, 1, 1))
    setattr(G, names[1], nn.Sequential(*[rrdb() for _ in range(n_blocks)]))
    for n in names[2:6]:
        setattr(G, n, nn.Conv2d(nf, nf, 3, 1, 1))
    setattr(G, names[6], nn.Conv2d(nf, 3, 3, 1, 1))
    return _randomise(G, seed)


class _ResNoBN(nn.Module):
    def __init__(self, nf: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)


def msrresnet(nf=8, n_blocks=2, upscale=4, seed=0) -> dict:
    """BasicSR MSRResNet: ``conv_first``, ``body.<i>.conv1/conv2``, ``upconv1/2`` (x4: both to 4*nf, each
    before a x2 pixel shuffle; x2 / x3: ``upconv1`` alone, to upscale**2 * nf), ``conv_hr``, ``conv_last``."""
    G = nn.Module()
    G.conv_first = nn.Conv2d(3, nf, 3, 1, 1)
    G.body = nn.Sequential(*[_ResNoBN(nf) for _ in range(n_blocks)])
    G.upconv1 = nn.Conv2d(nf, (4 if upscale == 4 else upscale ** 2) * nf, 3, 1, 1)
    if upscale == 4:
        G.upconv2 = nn.Conv2d(nf, 4 * nf, 3, 1, 1)
    G.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
    G.conv_last = nn.Conv2d(nf, 3, 3, 1, 1)
    return _randomise(G, seed)


def edsr_basicsr(nf=8, n_blocks=2, upscale=4, seed=0) -> dict:
    """BasicSR EDSR: ``conv_first``, ``body.<i>.conv1/conv2``, ``conv_after_body``, ``upsample.0/2/..``
    (x2**n: n convs to 4*nf, each before a x2 pixel shuffle; x3: one conv to 9*nf), ``conv_last``."""
    G = nn.Module()
    G.conv_first = nn.Conv2d(3, nf, 3, 1, 1)
    G.body = nn.Sequential(*[_ResNoBN(nf) for _ in range(n_blocks)])
    G.conv_after_body = nn.Conv2d(nf, nf, 3, 1, 1)
    steps = [3] if upscale == 3 else [2] * (upscale.bit_length() - 1)
    G.upsample = nn.Sequential(*[m for r in steps for m in (nn.Conv2d(nf, r * r * nf, 3, 1, 1), nn.PixelShuffle(r))])
    G.conv_last = nn.Conv2d(nf, 3, 3, 1, 1)
    return _randomise(G, seed)


def edsr_original(nf=8, n_blocks=2, seed=0) -> dict:
    """EDSR-PyTorch x2: ``sub_mean`` (a 1x1 3->3 conv), ``head.0``, ``body.<i>.body.0/2``, ``body.<n>``,
    ``tail.0.0`` (to 4*nf, pixel shuffle), ``tail.1``, ``add_mean``."""
    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(nf, nf, 3, padding=1), nn.ReLU(True), nn.Conv2d(nf, nf, 3, padding=1))

    G = nn.Module()
    G.sub_mean = nn.Conv2d(3, 3, 1)
    G.head = nn.Sequential(nn.Conv2d(3, nf, 3, padding=1))
    G.body = nn.Sequential(*[Res() for _ in range(n_blocks)], nn.Conv2d(nf, nf, 3, padding=1))
    G.tail = nn.Sequential(nn.Sequential(nn.Conv2d(nf, 4 * nf, 3, padding=1), nn.PixelShuffle(2)),
                           nn.Conv2d(nf, 3, 3, padding=1))
    G.add_mean = nn.Conv2d(3, 3, 1)
    return _randomise(G, seed)


def srvgg_compact(nf=8, n_conv=3, upscale=4, seed=0) -> dict:
    """Real-ESRGAN's SRVGGNetCompact (``realesr-general-x4v3``): ``body`` alternates 3x3 convs and PReLU
    (a 1-D weight per channel), the last conv to 3*upscale**2 channels for a pixel shuffle."""
    body = [nn.Conv2d(3, nf, 3, 1, 1), nn.PReLU(nf)]
    for _ in range(n_conv):
        body += [nn.Conv2d(nf, nf, 3, 1, 1), nn.PReLU(nf)]
    body += [nn.Conv2d(nf, 3 * upscale ** 2, 3, 1, 1)]
    G = nn.Module()
    G.body = nn.ModuleList(body)
    G.upsampler = nn.PixelShuffle(upscale)
    return _randomise(G, seed)


# ------------------------------------------------------------------------------------------------ AdaIN


def adain_decoder(scale=8, seed=0) -> dict:
    """pytorch-AdaIN ``decoder.pth``: a flat Sequential from relu4_1 (512 channels / ``scale``) to RGB:
    3x3 convs with reflection padding and x2 nearest upsampling, no norm, no output activation
    (``adain_reference.py``). Not a ResNet generator; it loads with its VGG as the AdaIN family."""
    return port_decoder(tuple(w // scale for w in PORT_DECODER), seed)


def adain_vgg(scale=8, seed=0) -> dict:
    """pytorch-AdaIN ``vgg_normalised.pth``: a 1x1 3->3 conv, then VGG-19's 3x3 convs to relu5_4."""
    return port_vgg(tuple(w // scale for w in PORT_VGG), seed=seed)


# ------------------------------------------------------------------------------------------------ DCGAN


def dcgan_generator(nz=8, ngf=2, nc=3, seed=0) -> dict:
    """pytorch/examples DCGAN ``netG``: ``main`` = ConvTranspose2d(nz -> 8ngf, 4, 1, 0) .. (ngf -> nc), BN, Tanh."""
    m, c = [nn.ConvTranspose2d(nz, 8 * ngf, 4, 1, 0, bias=False), nn.BatchNorm2d(8 * ngf), nn.ReLU(True)], 8 * ngf
    for _ in range(3):
        m += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(True)]
        c //= 2
    m += [nn.ConvTranspose2d(c, nc, 4, 2, 1, bias=False), nn.Tanh()]
    G = nn.Module()
    G.main = nn.Sequential(*m)
    return _randomise(G, seed)


def dcgan_discriminator(ndf=2, nc=3, seed=0) -> dict:
    """pytorch/examples DCGAN ``netD``: ``main`` = Conv2d(nc -> ndf, 4, 2, 1), LeakyReLU, three conv + BN
    doublings, Conv2d(8ndf -> 1, 4, 1, 0), Sigmoid."""
    m, c = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)], ndf
    for _ in range(3):
        m += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2, True)]
        c *= 2
    m += [nn.Conv2d(c, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
    D = nn.Module()
    D.main = nn.Sequential(*m)
    return _randomise(D, seed)


# -------------------------------------------------------------------------------------------- classifier


def torchvision_resnet18(seed=0) -> dict:
    """A torchvision ResNet-18 classifier (``conv1`` 7x7 stride 2, ``bn1``, ``layer1..4`` BasicBlocks, ``fc``)."""
    from torchvision.models import resnet18

    return _randomise(resnet18(weights=None, num_classes=10), seed)
