"""The U-Net generator of the pix2pix / CycleGAN code base, read from its state_dict alone.

    config, keymap = parse_unet_generator(state_dict)   # ValueError (one line) unless every key fits
    G = UnetGenerator(**config)
    G.load_state_dict(remap_unet_state_dict(state_dict, keymap))

Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with Conditional Adversarial Networks"
(CVPR 2017; pix2pix's default generator, ``--netG unet_256`` / ``unet_128``, also a CycleGAN
training option), after Ronneberger, Fischer & Brox, "U-Net" (MICCAI 2015).

The reference builds ``num_downs`` nested skip blocks (8 for unet_256, 7 for unet_128). Block k
(0 = outermost) halves the resolution with a 4x4 stride-2 conv and doubles it back with a 4x4
stride-2 transposed conv; every block but the outermost returns ``cat([x, up(inner(down(x)))])``.
Inner widths are ngf, 2ngf, 4ngf, then 8ngf for every deeper block.

- outermost: down = conv(input_nc -> ngf); up = ReLU, convT(2ngf -> output_nc, with bias), tanh
- middle:    down = LeakyReLU(0.2), conv, norm; up = ReLU, convT(2*inner -> outer), norm
  (+ Dropout(0.5) after up when trained with dropout: no parameters, identity in eval mode)
- innermost: down = LeakyReLU(0.2), conv (no norm); up = ReLU, convT(inner -> outer), norm

The state_dict names them ``model.model.<i>`` (outermost), ``model.model.1.model.<i>`` (block 1),
``...model.3.model.<i>`` for each deeper block. Norm, as the reference saves it:

- ``batch``: BatchNorm (weight, bias, running statistics); convs have no bias (outermost convT has)
- ``instance``: InstanceNorm without parameters; every conv has a bias. Checkpoints from the
  versions whose InstanceNorm tracked running statistics carry ``running_mean`` / ``running_var``
  there: they are checked and dropped, as the reference's own loader drops them (instance
  statistics at test time).
- ``none``: no norm, no conv bias (outermost convT has one)

Our module names its layers by role, in execution order: ``down.0`` .. ``down.<n-1>`` then
``up.<n-1>`` .. ``up.0`` (``up.k`` undoes ``down.k``), each with ``act``, ``conv`` and ``norm``, so
hooks and globs address them (``up.*.conv``); the analyses' default layer (``preferred_unit_layer``) is
``up.3.conv``, the decoder at 1/8 of the input size. Input height and width must be multiples of
``2**num_downs`` (256 for unet_256), as in the reference.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from interp_gan.models.keys import few, key_problems, strip_shared_prefix
from interp_gan.models.registry import register_model
from interp_gan.models.resnet_generator import unwrap_state_dict

__all__ = ["UnetGenerator", "parse_unet_generator", "remap_unet_state_dict", "looks_like_unet", "NORMS"]

NORMS = ("batch", "instance", "none")
_FIX = "for another architecture use --model file.py:factory"


def _widths(num_downs: int, ngf: int) -> list[int]:
    """Inner channel width of each block, outermost first (the reference's ngf * 1, 2, 4, 8, 8..)."""
    return [ngf * min(2 ** k, 8) for k in range(num_downs)]


def _prefix(k: int) -> str:
    """The reference key prefix of block k's Sequential."""
    return "model.model." + "".join("1.model." if j == 1 else "3.model." for j in range(1, k + 1))


def _ref_layout(num_downs: int, ngf: int, input_nc: int, output_nc: int, norm: str,
                tracked: bool = False) -> dict[str, tuple[tuple[int, ...], str]]:
    """reference key -> (shape, our key) for the whole generator."""
    w = _widths(num_downs, ngf)
    bias = norm == "instance"
    out: dict[str, tuple[tuple[int, ...], str]] = {}

    def conv(src: str, dst: str, shape: tuple, has_bias: bool) -> None:
        out[f"{src}.weight"] = (shape, f"{dst}.weight")
        if has_bias:   # a Conv2d weight is [out, in, 4, 4], a ConvTranspose2d's [in, out, 4, 4]
            out[f"{src}.bias"] = ((shape[1] if dst.startswith("up.") else shape[0],), f"{dst}.bias")

    def nrm(src: str, dst: str, c: int) -> None:
        if norm == "batch":
            for leaf in ("weight", "bias", "running_mean", "running_var"):
                out[f"{src}.{leaf}"] = ((c,), f"{dst}.{leaf}")
            out[f"{src}.num_batches_tracked"] = ((), f"{dst}.num_batches_tracked")
        elif norm == "instance" and tracked:    # checked, then dropped (see the module docstring)
            out[f"{src}.running_mean"] = ((c,), "")
            out[f"{src}.running_var"] = ((c,), "")
            out[f"{src}.num_batches_tracked"] = ((), "")

    for k in range(num_downs):
        p, inner = _prefix(k), w[k]
        outer = output_nc if k == 0 else w[k - 1]
        cin = input_nc if k == 0 else outer
        innermost = k == num_downs - 1
        up_in = inner if innermost else 2 * inner
        if k == 0:
            conv(f"{p}0", "down.0.conv", (inner, cin, 4, 4), bias)
            conv(f"{p}3", "up.0.conv", (up_in, outer, 4, 4), True)
        elif innermost:
            conv(f"{p}1", f"down.{k}.conv", (inner, cin, 4, 4), bias)
            conv(f"{p}3", f"up.{k}.conv", (up_in, outer, 4, 4), bias)
            nrm(f"{p}4", f"up.{k}.norm", outer)
        else:
            conv(f"{p}1", f"down.{k}.conv", (inner, cin, 4, 4), bias)
            nrm(f"{p}2", f"down.{k}.norm", inner)
            conv(f"{p}5", f"up.{k}.conv", (up_in, outer, 4, 4), bias)
            nrm(f"{p}6", f"up.{k}.norm", outer)
    return out


_ROOT = "model.model.0.weight"


def _unwrap(sd: dict) -> dict:
    """``unwrap_state_dict``, then one leading prefix shared by every key (``netG.``, ``G.``) stripped."""
    return strip_shared_prefix(unwrap_state_dict(sd), _ROOT)


def looks_like_unet(sd: dict) -> bool:
    """A (possibly wrapped / prefixed) state_dict in the reference U-Net's key layout."""
    keys = _unwrap(sd)
    return "model.model.0.weight" in keys and any(k.startswith("model.model.1.model.") for k in keys)


_fmt = few


def parse_unet_generator(sd: dict) -> tuple[dict, dict[str, str]]:
    """(config, keymap): ``UnetGenerator(**config)`` and reference key -> our key for every key
    (``""`` for InstanceNorm running statistics, which are dropped).

    Infers num_downs (nesting depth), ngf, input/output channels and the norm from keys and
    shapes, then requires the state_dict to be exactly the reference layout those imply: a missing
    key, a key with no place, or a wrong shape raises a one-line ValueError naming the keys.
    """
    sd = _unwrap(sd)
    what = "not a pix2pix/CycleGAN U-Net generator"
    if "model.model.0.weight" not in sd or getattr(sd["model.model.0.weight"], "dim", lambda: 0)() != 4:
        raise ValueError(f"{what} (no 4-D outermost conv 'model.model.0.weight'); {_FIX}")
    n = 1
    while any(k.startswith(_prefix(n)) for k in sd):
        n += 1
    w0 = sd["model.model.0.weight"]
    ngf, input_nc = int(w0.shape[0]), int(w0.shape[1])
    up0 = sd.get("model.model.3.weight")
    if up0 is None or up0.dim() != 4:
        raise ValueError(f"{what} (no 4-D outermost transposed conv 'model.model.3.weight'); could not place "
                         f"{_fmt(sorted(sd))}; {_FIX}")
    output_nc = int(up0.shape[1])
    # ngf as most of the three tensors that carry it say, so one corrupted tensor is the one named
    votes = [ngf, int(up0.shape[0]) // 2] + [int(sd[k].shape[1]) for k in (_prefix(1) + "1.weight",)
                                              if k in sd and sd[k].dim() == 4]
    ngf = max(votes, key=votes.count)
    p1 = _prefix(1)
    leaves = {k[len(p1) + 2:] for k in sd if k.startswith(p1 + "2.")}   # block 1's down norm
    tracked = False
    if {"weight", "bias"} <= leaves:
        norm = "batch"
    elif "running_mean" in leaves:           # InstanceNorm(track_running_stats=True) of older versions
        norm, tracked = "instance", True
    else:
        norm = "instance" if "model.model.0.bias" in sd else "none"
    if not 2 <= n <= 16:
        raise ValueError(f"{what} ({n} nested blocks; expected 2..16, 8 for unet_256, 7 for unet_128); {_FIX}")
    layout = _ref_layout(n, ngf, input_nc, output_nc, norm, tracked)
    label = f"num_downs={n}, ngf={ngf}, {input_nc}->{output_nc} channels, {norm} norm"
    unplaced = [k for k in sd if k not in layout]
    # num_batches_tracked is absent from files saved before PyTorch 0.4.1 (BatchNorm then starts it at 0)
    missing = [k for k in layout if k not in sd and not k.endswith(".num_batches_tracked")]
    wrong = [f"{k} {list(sd[k].shape)} (expected {list(layout[k][0])})" for k in sd
             if k in layout and tuple(sd[k].shape) != layout[k][0]]
    if unplaced or missing or wrong:
        parts = key_problems(unplaced, missing, wrong)
        raise ValueError(f"not the pix2pix/CycleGAN U-Net its keys suggest ({label}): {'; '.join(parts)}; {_FIX}")
    cfg = {"num_downs": n, "ngf": ngf, "input_nc": input_nc, "output_nc": output_nc, "norm": norm}
    return cfg, {k: v[1] for k, v in layout.items()}


def remap_unet_state_dict(sd: dict, keymap: dict[str, str]) -> dict:
    """The reference state_dict under our module's names (InstanceNorm running statistics dropped)."""
    return {keymap[k]: v for k, v in _unwrap(sd).items() if keymap[k]}


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(c)
    if kind == "instance":
        return nn.InstanceNorm2d(c)
    return nn.Identity()


@register_model("unet_generator")
class UnetGenerator(nn.Module):
    """The pix2pix U-Net (see the module docstring) with role-named layers ``down.k`` / ``up.k``."""

    def __init__(self, num_downs: int = 8, ngf: int = 64, input_nc: int = 3, output_nc: int = 3,
                 norm: str = "batch") -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown U-Net norm {norm!r}; expected one of {', '.join(NORMS)}")
        if not 2 <= int(num_downs) <= 16:
            raise ValueError(f"num_downs={num_downs}; expected 2..16 (8 for unet_256, 7 for unet_128)")
        self.config = {"num_downs": int(num_downs), "ngf": int(ngf), "input_nc": int(input_nc),
                       "output_nc": int(output_nc), "norm": norm}
        w, bias = _widths(num_downs, ngf), norm == "instance"
        self.down = nn.ModuleDict()
        for k in range(num_downs):
            cin = input_nc if k == 0 else w[k - 1]
            m: OrderedDict[str, nn.Module] = OrderedDict()
            if k > 0:
                m["act"] = nn.LeakyReLU(0.2)
            m["conv"] = nn.Conv2d(cin, w[k], 4, stride=2, padding=1, bias=bias)
            if 0 < k < num_downs - 1:
                m["norm"] = _norm(norm, w[k])
            self.down[str(k)] = nn.Sequential(m)
        self.up = nn.ModuleDict()            # registered innermost first: named_modules runs in execution order
        for k in reversed(range(num_downs)):
            outer = output_nc if k == 0 else w[k - 1]
            cin = w[k] if k == num_downs - 1 else 2 * w[k]
            m = OrderedDict(act=nn.ReLU())
            m["conv"] = nn.ConvTranspose2d(cin, outer, 4, stride=2, padding=1, bias=bias or k == 0)
            m["norm" if k > 0 else "out"] = _norm(norm, outer) if k > 0 else nn.Tanh()
            self.up[str(k)] = nn.Sequential(m)

        # the analyses' default layer: the decoder conv writing 1/8 of the input size (32x32 of 256) with
        # 4ngf channels -- the middle conv by count would be the innermost one, 2x2 around the 1x1 bottleneck
        self.preferred_unit_layer = f"up.{min(3, num_downs - 1)}.conv"
        self.size_multiple = 2 ** num_downs   # the pipeline rounds image_size up to it (and says so)

    def forward(self, content: Tensor) -> Tensor:
        n = self.config["num_downs"]
        h, w = content.shape[-2:]
        if h % 2 ** n or w % 2 ** n:
            raise ValueError(f"a U-Net with num_downs={n} needs height and width that are multiples of {2 ** n}; "
                             f"got {h}x{w} (set image_size={2 ** n} or a multiple)")
        skips = [content]
        for k in range(n):
            skips.append(self.down[str(k)](skips[-1]))
        x = skips[n]
        for k in reversed(range(n)):
            x = self.up[str(k)](x)
            if k > 0:
                x = torch.cat([skips[k], x], 1)
        return x

    @classmethod
    def from_state_dict(cls, sd: dict) -> "UnetGenerator":
        cfg, keymap = parse_unet_generator(sd)
        G = cls(**cfg)
        G.load_state_dict(remap_unet_state_dict(sd, keymap))
        return G
