"""StarGAN v2 in the authors' reference layout, so their ``*_nets_ema.ckpt`` files load.

    M = StarGANv2.from_reference(torch.load("100000_nets_ema.ckpt", weights_only=True))   # AFHQ or CelebA-HQ
    code = M.mapping(z, style_ids)             # z [N,16] ~ N(0,I), style_ids [N] (domain) -> s [N,64]
    out = M(content, code)                     # content [N,3,H,W] in [-1,1] -> [N,3,H,W] in [-1,1]
    out = M.generate(content, style_ids, z)    # the two together

Choi, Uh, Yoo & Ha, "StarGAN v2: Diverse Image Synthesis for Multiple Domains" (CVPR 2020),
reference code clovaai/stargan-v2 (``core/model.py``). This is an independent implementation
of that architecture; module and parameter names follow the reference so its state_dicts load
with ``strict=True``:

- ``generator``: ``from_rgb`` (3x3 conv) -> ``encode.<i>`` pre-activation residual blocks
  (InstanceNorm(affine) -> LeakyReLU(0.2) -> conv, 2x2 average-pool in the downsampling ones,
  1x1 ``conv1x1`` shortcut where the width changes, sum / sqrt(2)); the first ``n_down`` blocks
  halve the resolution, the last two are the bottleneck -> ``decode.<i>`` mirror blocks whose
  norms are AdaIN (``norm1`` / ``norm2``: InstanceNorm without affine, then ``(1 + gamma) x + beta``
  from ``fc``: Linear(style_dim, 2C)), nearest 2x upsampling in the last ``n_down`` -> ``to_rgb``
  (InstanceNorm(affine), LeakyReLU, 1x1 conv). No InstanceNorm tracks running statistics.
- ``mapping_network``: ``shared`` MLP (latent_dim -> hidden, 4 Linear+ReLU), then one
  ``unshared.<d>`` head per domain (3 Linear+ReLU, Linear(hidden, style_dim)); the output is the
  head of the requested domain.
- ``style_encoder``: conv + downsampling residual blocks (no norms) + 4x4 conv, one Linear head
  per domain. Its weights load; the Subject does not use it (styles come from the mapping), so it
  is listed in ``off_path_modules``, which the analyses' default layers
  (``hooks.spatial_layers``) leave out: they are only layers that ``generate`` runs.

The widths are inferred from the weights (``infer_stargan_v2_config``): 256 px AFHQ models
(img_size 256, style_dim 64, latent_dim 16, 3 domains: cat, dog, wild) load unchanged, and tests
build tiny ones. CelebA-HQ models (``w_hpf=1``; recognised by the extra generator downsampling
block that ``w_hpf > 0`` adds) drop the decoder's residual shortcuts and add high-pass-filtered
encoder features (``HighPass``), masked by face masks, to the decoder outputs of height 32, 64 and
128 px; the masks come from the face-landmark network saved as the file's ``fan`` entry
(``interp_gan.models.fan``), computed from the content in ``forward`` (no gradient). ``w_hpf`` is
read from a saved ``hpf.filter`` (kernel / w_hpf; the authors' later code saves it), else 1 (the
released CelebA-HQ model's value). A ``w_hpf > 0`` file without ``fan`` is refused
(``FAN_MISSING``). The FAN is an ``auxiliary_modules`` entry: not among the default layers, and
left trained by the random-init control.

The reference generator's output is not squashed (the authors clamp when saving images);
``StarGANv2.forward`` / ``generate`` clamp to [-1, 1]; ``generator(x, s)`` is the raw output.
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interp_gan.models.latent import LatentGuided
from interp_gan.models.registry import register_model

__all__ = ["StarGANv2", "StarGANv2Generator", "StarGANv2MappingNetwork", "StarGANv2StyleEncoder",
           "infer_stargan_v2_config", "is_stargan_v2_checkpoint", "FAN_MISSING", "HighPass"]

NETS = ("generator", "mapping_network", "style_encoder")
FAN_MISSING = ("this StarGAN v2 generator was trained with w_hpf > 0 (CelebA-HQ style: one more downsampling "
               "block), so it needs face masks from the face-landmark network (FAN) that the authors save as the "
               "'fan' entry of *_nets_ema.ckpt; this file has no 'fan' entry (its entries: {entries}), so the masks "
               "cannot be computed. Use the complete *_nets_ema.ckpt (the FAN weights travel in it), or add the FAN's "
               "state dict (from the authors' wing.ckpt, under the FAN's own key names) as 'fan'")
_ENC = re.compile(r"^encode\.(\d+)\.conv1\.weight$")
_DEC = re.compile(r"^decode\.(\d+)\.conv1\.weight$")
_SE_BLOCK = re.compile(r"^shared\.(\d+)\.conv1\.weight$")
_HEAD = re.compile(r"^unshared\.(\d+)\.")
_INV_SQRT2 = 1 / math.sqrt(2)


def _in(dim: int, affine: bool) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(dim, affine=affine, track_running_stats=False)   # as the reference


class ResBlk(nn.Module):
    """Pre-activation residual block: [norm] act conv [pool] [norm] act conv, + shortcut, / sqrt 2."""

    def __init__(self, dim_in: int, dim_out: int, normalize: bool = False, downsample: bool = False,
                 ) -> None:
        super().__init__()
        self.normalize, self.downsample = normalize, downsample
        self.actv = nn.LeakyReLU(0.2)
        self.conv1 = nn.Conv2d(dim_in, dim_in, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        if normalize:
            self.norm1, self.norm2 = _in(dim_in, True), _in(dim_in, True)
        self.learned_sc = dim_in != dim_out
        if self.learned_sc:
            self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        sc = self.conv1x1(x) if self.learned_sc else x
        if self.downsample:
            sc = F.avg_pool2d(sc, 2)
        h = self.norm1(x) if self.normalize else x
        h = self.conv1(self.actv(h))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        if self.normalize:
            h = self.norm2(h)
        h = self.conv2(self.actv(h))
        return (sc + h) * _INV_SQRT2


class AdaIN(nn.Module):
    """(1 + gamma(s)) * InstanceNorm(x) + beta(s), gamma / beta from ``fc``: Linear(style_dim, 2C)."""

    def __init__(self, style_dim: int, num_features: int) -> None:
        super().__init__()
        self.norm = _in(num_features, False)
        self.fc = nn.Linear(style_dim, 2 * num_features)

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        gamma, beta = self.fc(s)[:, :, None, None].chunk(2, dim=1)
        return (1 + gamma) * self.norm(x) + beta


class AdainResBlk(nn.Module):
    """AdaIN act [up] conv AdaIN act conv, + ([up] [1x1 conv]) shortcut, / sqrt 2 (w_hpf = 0); without
    ``shortcut`` (w_hpf > 0) the residual branch alone (its ``conv1x1`` still exists, unused, as in the
    reference, so the state dicts match)."""

    def __init__(self, dim_in: int, dim_out: int, style_dim: int, upsample: bool = False,
                 shortcut: bool = True) -> None:
        super().__init__()
        self.upsample, self.shortcut = upsample, shortcut
        self.actv = nn.LeakyReLU(0.2)
        self.conv1 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_out, dim_out, 3, 1, 1)
        self.norm1 = AdaIN(style_dim, dim_in)
        self.norm2 = AdaIN(style_dim, dim_out)
        self.learned_sc = dim_in != dim_out
        if self.learned_sc:
            self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False)

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        h = self.actv(self.norm1(x, s))
        if self.upsample:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = self.conv2(self.actv(self.norm2(self.conv1(h), s)))
        if not self.shortcut:
            return h
        sc = F.interpolate(x, scale_factor=2, mode="nearest") if self.upsample else x
        if self.learned_sc:
            sc = self.conv1x1(sc)
        return (h + sc) * _INV_SQRT2


HPF_KERNEL = ((-1.0, -1.0, -1.0), (-1.0, 8.0, -1.0), (-1.0, -1.0, -1.0))
HPF_SIZES = (32, 64, 128)          # the feature heights (px) where w_hpf > 0 adds masked high-pass features


class HighPass(nn.Module):
    """Depthwise 3x3 Laplacian-like high-pass (8 at the centre, -1 around), divided by w_hpf, zero padding.
    The kernel is a constant of the architecture (a non-persistent buffer: not in the state dict)."""

    def __init__(self, w_hpf: float) -> None:
        super().__init__()
        self.w_hpf = float(w_hpf)
        self.register_buffer("filter", torch.tensor(HPF_KERNEL) / self.w_hpf, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        k = self.filter.to(x.dtype)[None, None].expand(x.shape[1], 1, 3, 3)
        return F.conv2d(x, k, padding=1, groups=x.shape[1])


def _widths(dim_in: int, n: int, max_conv_dim: int) -> list[int]:
    dims = [dim_in]
    for _ in range(n):
        dims.append(min(dims[-1] * 2, max_conv_dim))
    return dims


class StarGANv2Generator(nn.Module):
    """content [N,3,H,W], style code s [N, style_dim] (, masks) -> [N,3,H,W] (unclamped, as the reference).

    ``w_hpf > 0``: decoder blocks without shortcut, and when ``masks`` (whole-face, inner-face) are
    given, each decoder output of height 32, 64 or 128 gets ``hpf(mask * e)`` added, e the encoder
    feature of that height (the input of the encoder block there), mask the whole-face one at 32 and
    the inner-face one at 64 and 128, bilinearly resized to the feature's size."""

    def __init__(self, dim_in: int = 64, n_down: int = 4, style_dim: int = 64, max_conv_dim: int = 512,
                 w_hpf: float = 0.0) -> None:
        super().__init__()
        self.n_down, self.w_hpf = n_down, float(w_hpf)
        self.from_rgb = nn.Conv2d(3, dim_in, 3, 1, 1)
        self.encode, self.decode = nn.ModuleList(), nn.ModuleList()
        self.to_rgb = nn.Sequential(_in(dim_in, True), nn.LeakyReLU(0.2), nn.Conv2d(dim_in, 3, 1, 1, 0))
        dims = _widths(dim_in, n_down, max_conv_dim)
        dec: list[nn.Module] = []
        sc = self.w_hpf <= 0
        for a, b in zip(dims[:-1], dims[1:]):
            self.encode.append(ResBlk(a, b, normalize=True, downsample=True))
            dec.append(AdainResBlk(b, a, style_dim, upsample=True, shortcut=sc))
        d = dims[-1]
        for _ in range(2):                                             # bottleneck
            self.encode.append(ResBlk(d, d, normalize=True))
            dec.append(AdainResBlk(d, d, style_dim, shortcut=sc))
        self.decode.extend(reversed(dec))                              # the decoder mirrors the encoder
        if self.w_hpf > 0:
            self.hpf = HighPass(self.w_hpf)

    def forward(self, x: Tensor, s: Tensor, masks: tuple[Tensor, Tensor] | None = None) -> Tensor:
        if masks is not None and self.w_hpf <= 0:
            raise ValueError("face masks apply to w_hpf > 0 generators only; this one has w_hpf=0")
        x = self.from_rgb(x)
        skips: dict[int, Tensor] = {}
        for block in self.encode:
            if masks is not None and x.shape[2] in HPF_SIZES:
                skips[x.shape[2]] = x                                  # the last one of that height, as the reference
            x = block(x)
        for block in self.decode:
            x = block(x, s)
            if masks is not None and x.shape[2] in HPF_SIZES:
                m = masks[0] if x.shape[2] == HPF_SIZES[0] else masks[1]
                m = F.interpolate(m, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
                x = x + self.hpf(m * skips[x.shape[2]])
        return self.to_rgb(x)


class StarGANv2MappingNetwork(nn.Module):
    """z [N, latent_dim], domain y [N] -> s [N, style_dim]: a shared MLP, then domain y's head."""

    def __init__(self, latent_dim: int = 16, style_dim: int = 64, num_domains: int = 2, hidden: int = 512) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(latent_dim, hidden), nn.ReLU()]
        for _ in range(3):
            layers += [nn.Linear(hidden, hidden), nn.ReLU()]
        self.shared = nn.Sequential(*layers)
        self.unshared = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                          nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, style_dim))
            for _ in range(num_domains))

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        h = self.shared(z)
        out = torch.stack([head(h) for head in self.unshared], dim=1)   # [N, domains, style_dim]
        return out[torch.arange(len(y), device=out.device), y.long().to(out.device)]


class StarGANv2StyleEncoder(nn.Module):
    """reference image [N,3,S,S] (S = img_size), domain y [N] -> s [N, style_dim]."""

    def __init__(self, dim_in: int = 64, n_down: int = 6, style_dim: int = 64, num_domains: int = 2,
                 max_conv_dim: int = 512) -> None:
        super().__init__()
        dims = _widths(dim_in, n_down, max_conv_dim)
        blocks: list[nn.Module] = [nn.Conv2d(3, dim_in, 3, 1, 1)]
        blocks += [ResBlk(a, b, downsample=True) for a, b in zip(dims[:-1], dims[1:])]
        d = dims[-1]
        blocks += [nn.LeakyReLU(0.2), nn.Conv2d(d, d, 4, 1, 0), nn.LeakyReLU(0.2)]
        self.shared = nn.Sequential(*blocks)
        self.unshared = nn.ModuleList(nn.Linear(d, style_dim) for _ in range(num_domains))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.shared(x).flatten(1)
        out = torch.stack([head(h) for head in self.unshared], dim=1)
        return out[torch.arange(len(y), device=out.device), y.long().to(out.device)]


@register_model("stargan_v2")
class StarGANv2(LatentGuided, nn.Module):
    """The three networks of a ``*_nets_ema.ckpt`` (generator, mapping_network, style_encoder).

    ``img_size`` fixes the reference's defaults (dim_in = 2**14 // img_size, log2(img_size) - 4
    generator and log2(img_size) - 2 style-encoder downsamplings); ``dim_in`` / ``hidden``
    override the widths (tiny test models). The generator itself is fully convolutional; only
    the style encoder needs img_size x img_size inputs.
    """
    off_path_modules = ("style_encoder",)   # never runs in generate(): no default analysis layer there
    auxiliary_modules: tuple[str, ...] = ()  # ("fan",) for w_hpf > 0: runs, but is not the generator

    def __init__(self, img_size: int = 256, style_dim: int = 64, latent_dim: int = 16, num_domains: int = 2,
                 max_conv_dim: int = 512, dim_in: int | None = None, hidden: int = 512, w_hpf: float = 0.0,
                 fan_width: int = 64, fan_depth: int = 4) -> None:
        super().__init__()
        log2 = int(round(math.log2(img_size)))
        if 2 ** log2 != img_size or log2 < 5:
            raise ValueError(f"img_size must be a power of two >= 32 (the reference uses 256); got {img_size}")
        if not w_hpf >= 0:
            raise ValueError(f"w_hpf must be >= 0 (0 for AFHQ models, 1 for the CelebA-HQ one); got {w_hpf}")
        dim_in = 2 ** 14 // img_size if dim_in is None else dim_in
        self.img_size, self.style_dim, self.latent_dim, self.num_styles = img_size, style_dim, latent_dim, num_domains
        self.w_hpf = float(w_hpf)
        self.config = {"img_size": img_size, "style_dim": style_dim, "latent_dim": latent_dim,
                       "num_domains": num_domains, "max_conv_dim": max_conv_dim, "dim_in": dim_in, "hidden": hidden}
        n_down = log2 - 4 + (1 if self.w_hpf > 0 else 0)     # w_hpf > 0: one more downsampling block
        self.generator = StarGANv2Generator(dim_in, n_down, style_dim, max_conv_dim, self.w_hpf)
        self.mapping_network = StarGANv2MappingNetwork(latent_dim, style_dim, num_domains, hidden)
        self.style_encoder = StarGANv2StyleEncoder(dim_in, log2 - 2, style_dim, num_domains, max_conv_dim)
        self.fan = None
        if self.w_hpf > 0:
            from interp_gan.models.fan import FaceLandmarkNet
            self.fan = FaceLandmarkNet(fan_width, fan_depth)
            self.config.update(w_hpf=self.w_hpf, fan_width=fan_width, fan_depth=fan_depth)
            self.auxiliary_modules = ("fan",)
            unused = [f"generator.decode.{i}.conv1x1" for i, b in enumerate(self.generator.decode) if b.learned_sc]
            self.off_path_modules = ("style_encoder", *unused)   # no shortcut: those 1x1 convs never run

    def forward(self, content: Tensor, code: Tensor) -> Tensor:
        """content [N,3,H,W] in [-1,1] (H, W divisible by 2**n_down), code s [N, style_dim] -> [-1,1].
        For w_hpf > 0 the face masks are computed from ``content`` first (``face_masks``, no gradient)."""
        if content.dim() != 4 or content.shape[1] != 3:
            raise ValueError(f"content must be [N,3,H,W], got {tuple(content.shape)}")
        if code.shape != (content.shape[0], self.style_dim):
            raise ValueError(f"code must be [{content.shape[0]},{self.style_dim}], got {tuple(code.shape)}")
        return self.generator(content, code, self.face_masks(content)).clamp(-1, 1)

    def face_masks(self, content: Tensor) -> tuple[Tensor, Tensor] | None:
        """The FAN's (whole-face, inner-face) masks [N,1,256,256] of content in [-1,1]; None for w_hpf = 0."""
        return None if self.fan is None else self.fan.face_masks(content)

    def mapping(self, z: Tensor, style_ids: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be [N,{self.latent_dim}], got {tuple(z.shape)}")
        return self.mapping_network(z, style_ids)

    def encode_style(self, reference: Tensor, style_ids: Tensor) -> Tensor:
        """The style encoder's code of reference images [N,3,H,W] in [-1,1] of domains [N]; resized
        to img_size first (the encoder's last 4x4 conv and flatten need img_size x img_size)."""
        if reference.dim() != 4 or reference.shape[1] != 3:
            raise ValueError(f"references must be [N,3,H,W], got {tuple(reference.shape)}")
        if reference.shape[-2:] != (self.img_size, self.img_size):
            reference = F.interpolate(reference, size=(self.img_size, self.img_size), mode="bilinear",
                                      align_corners=False, antialias=True)
        return self.style_encoder(reference, style_ids)

    @property
    def style_affines(self) -> list[nn.Linear]:
        """Every AdaIN's ``fc``: Linear(style_dim, 2C), in forward order (for SeFa)."""
        return [m.fc for m in self.generator.modules() if isinstance(m, AdaIN)]

    @classmethod
    def from_reference(cls, nets: dict) -> "StarGANv2":
        """A model holding a ``*_nets_ema.ckpt`` dict {generator, mapping_network, style_encoder: state_dict}:
        config inferred from the shapes, every key checked strictly. ``module.`` prefixes are stripped."""
        nets = _strip(nets)
        cfg = infer_stargan_v2_config(nets)
        if cfg.get("w_hpf"):
            nets = {**nets, "generator": {k: v for k, v in nets["generator"].items() if k != "hpf.filter"}}
        M = cls(**cfg)
        names = NETS + (("fan",) if M.fan is not None else ())
        problems = []
        for name in names:
            sd, expected = nets[name], getattr(M, name).state_dict()
            missing = sorted(set(expected) - set(sd))
            unexpected = sorted(set(sd) - set(expected))
            wrong = [f"{name}.{k} {tuple(sd[k].shape)} (expected {tuple(expected[k].shape)})"
                     for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
            if missing or unexpected or wrong:
                problems.append(f"{name}: missing {[f'{name}.{k}' for k in missing[:5]]}, unexpected "
                                f"{[f'{name}.{k}' for k in unexpected[:5]]}, wrong shapes {wrong[:5]}")
        if problems:
            cfg = ", ".join(f"{k}={v}" for k, v in M.config.items())
            raise ValueError(f"checkpoint does not match the StarGAN v2 layout ({cfg}): " + "; ".join(problems))
        for name in names:
            getattr(M, name).load_state_dict(nets[name], strict=True)
        return M


def _strip(nets: dict) -> dict:
    """{net: state_dict} with DataParallel ``module.`` prefixes removed (older reference code saved them)."""
    return {n: ({k.removeprefix("module."): v for k, v in sd.items()} if isinstance(sd, dict) else sd)
            for n, sd in nets.items()}


def is_stargan_v2_checkpoint(obj) -> bool:
    """A dict whose top-level keys include generator and mapping_network (the reference's CheckpointIO)."""
    return isinstance(obj, dict) and {"generator", "mapping_network"} <= set(obj)


def _count(sd: dict, pattern: re.Pattern) -> list[int]:
    return sorted({int(m.group(1)) for k in sd if (m := pattern.match(k))})


def infer_stargan_v2_config(nets: dict) -> dict:
    """StarGANv2 kwargs from a {generator, mapping_network, style_encoder: state_dict} dict's shapes.
    Raises ValueError for w_hpf > 0 (CelebA-HQ) checkpoints and for missing nets / keys."""
    nets = _strip(nets)
    missing = [n for n in NETS if not isinstance(nets.get(n), dict)]
    if missing:
        raise ValueError(f"a StarGAN v2 nets_ema checkpoint holds {', '.join(NETS)} state_dicts; "
                         f"missing {missing} (its keys: {sorted(nets)[:8]})")
    G, Mn, Se = (nets[n] for n in NETS)
    need = {"generator": ["from_rgb.weight", "encode.0.conv1.weight"],
            "mapping_network": ["shared.0.weight", "unshared.0.6.weight"],
            "style_encoder": ["shared.0.weight"]}
    for n, keys in need.items():
        absent = [k for k in keys if k not in nets[n]]
        if absent:
            raise ValueError(f"not a StarGAN v2 {n} state_dict: no {', '.join(f'{n}.{k}' for k in absent)} "
                             f"(its first keys: {list(nets[n])[:4]})")
    enc, se_blocks = _count(G, _ENC), _count(Se, _SE_BLOCK)
    n_down, se_down = len(enc) - 2, len(se_blocks)
    if n_down < 1 or se_down < 3:
        raise ValueError(f"StarGAN v2 checkpoint with {len(enc)} generator encode blocks and {se_down} style-encoder "
                         "blocks: expected at least 3 and 3")
    hpf = n_down == se_down - 1      # w_hpf > 0 adds one generator downsampling block for the same img_size
    if not hpf and n_down != se_down - 2:
        raise ValueError(f"StarGAN v2 generator ({n_down} downsampling blocks) and style encoder ({se_down}) do not "
                         f"belong to one img_size (the reference has log2(img_size) - 4 and log2(img_size) - 2, "
                         f"- 3 with w_hpf > 0)")
    if not hpf and "hpf.filter" in G:
        raise ValueError("the generator holds a high-pass filter (generator.hpf.filter) but has the w_hpf=0 "
                         f"depth ({n_down} downsampling blocks for a {se_down}-block style encoder; w_hpf > 0 has "
                         f"{se_down - 1}): a damaged or mixed checkpoint")
    widths = [int(v.shape[0]) for k, v in list(G.items()) + list(Se.items())
              if k.endswith("conv2.weight") and getattr(v, "dim", lambda: 0)() == 4]
    heads = _count(Mn, _HEAD)
    cfg = {"img_size": 2 ** (se_down + 2), "style_dim": int(Mn["unshared.0.6.weight"].shape[0]),
           "latent_dim": int(Mn["shared.0.weight"].shape[1]), "num_domains": len(heads),
           "max_conv_dim": max(widths, default=int(G["from_rgb.weight"].shape[0])),
           "dim_in": int(G["from_rgb.weight"].shape[0]), "hidden": int(Mn["shared.0.weight"].shape[0])}
    if hpf:
        from interp_gan.models.fan import fan_config
        if not isinstance(nets.get("fan"), dict):
            raise ValueError(FAN_MISSING.format(entries=", ".join(sorted(nets))))
        cfg.update(w_hpf=_read_w_hpf(G), **{f"fan_{k}": v for k, v in fan_config(nets["fan"]).items()})
    return cfg


def _read_w_hpf(G: dict) -> float:
    """w_hpf from the generator's ``hpf.filter`` (kernel / w_hpf; the reference's later code saves it),
    else 1.0: the released CelebA-HQ model's value (its code kept the filter out of the state dict)."""
    f = G.get("hpf.filter")
    if f is None:
        return 1.0
    kernel = torch.tensor(HPF_KERNEL)
    w = 8.0 / float(f[1, 1]) if tuple(f.shape) == (3, 3) and float(f[1, 1]) > 0 else None
    if w is None or not torch.allclose(f.float(), kernel / w, rtol=1e-5, atol=1e-7):
        raise ValueError(f"generator.hpf.filter {tuple(f.shape)} is not the 3x3 high-pass kernel (8 at "
                         "the centre, -1 around) divided by a w_hpf > 0, which the w_hpf > 0 generator needs")
    return w
