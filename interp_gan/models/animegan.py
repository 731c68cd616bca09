"""AnimeGANv2's generator as the widely used PyTorch port saves it, read from its state_dict alone.

    config, keymap = parse_animegan(state_dict, align_corners=True)   # ValueError (one line) unless every key fits
    G = AnimeGANv2Generator(**config)
    G.load_state_dict(remap_animegan_state_dict(state_dict, keymap))

Chen, Liu & Chen, "AnimeGAN: A Novel Lightweight GAN for Photo Animation" (ISICA 2019), and its
v2 (github.com/TachibanaYoshino/AnimeGANv2); the layout is the PyTorch port's ``model.py``
``Generator`` (github.com/bryandlee/animegan2-pytorch), whose released weights
(``face_paint_512_v1.pt``, ``face_paint_512_v2.pt``, ``celeba_distill.pt``, ``paprika.pt``) are
plain ``torch.save(state_dict)`` files.

Every conv stage is a ConvNormLReLU: a reflection pad, a conv without bias (padding 0),
GroupNorm(1, C) with affine weight and bias, LeakyReLU(0.2); saved as ``<stage>.1.weight`` (conv)
and ``<stage>.2.weight`` / ``.bias`` (norm); index 0 is the pad, 3 the activation. The stride-2
stages pad asymmetrically, one column right and one row below, so a 3x3 stride-2 conv halves an
even size exactly. Widths (w1, w2, w3, w4 = 32, 64, 128, 256 in the port):

- ``block_a``: 7x7 3 -> w1 (pad 3); 3x3 stride 2 w1 -> w2; 3x3 w2 -> w2          (size /2)
- ``block_b``: 3x3 stride 2 w2 -> w3; 3x3 w3 -> w3                               (size /4)
- ``block_c``: 3x3 w3 -> w3; ``num_res`` (4) inverted residual blocks w3 -> w4, w4 -> w4, ...;
  3x3 w4 -> w3. An inverted residual block (``block_c.<i>.layers``): ``0`` a 1x1 ConvNormLReLU to
  round(in * expansion) channels (expansion 2), ``1`` a depthwise 3x3 ConvNormLReLU (groups =
  channels, the one conv with a bias), ``2`` a 1x1 conv to the output width (no bias), ``3``
  GroupNorm(1, out); the input is added when in == out
- bilinear upsampling to block_a's output size, then ``block_d``: 3x3 w3 -> w3 twice   (size /2)
- bilinear upsampling to the input size, then ``block_e``: 3x3 w3 -> w2; 3x3 w2 -> w2; 7x7 w2 -> w1
- ``out_layer``: 1x1 conv w1 -> 3 without bias, tanh

Input and output are RGB in [-1, 1] (the port feeds ``to_tensor(img) * 2 - 1`` and writes
``(out + 1) * 127.5``), the project's own convention: nothing is rescaled.

The weights cannot say how the upsampling aligns its corners, and the port changed it: when it
converted ``paprika.pt`` from TensorFlow its forward doubled the size with half-pixel bilinear
interpolation (``align_corners=False``); with its face models (``celeba_distill``) it switched to
resizing to the exact target size with corners aligned (``True``); today ``Generator.forward`` takes
``align_corners`` as an argument, default True, which its ``torch.hub`` generator and ``face2paint``
use (the README's way to run the face models; ``face_paint_512_v2`` is the hub's default), while its
``test.py`` passes ``--upsample_align``, default False (its default checkpoint is ``paprika.pt``).
``align_corners`` is a constructor argument here, default True (``file.pt#align_corners=false``);
with False each side must be a multiple of 4.

Our module keeps the port's stage names, so a layer reads as the reference file does, and names
the layers inside each stage by role: ``block_a.0.conv`` / ``.norm`` / ``.act``,
``block_c.1.expand.conv``, ``block_c.1.dw.conv``, ``block_c.1.project``, ``block_c.1.norm``,
``up_d`` / ``up_e`` (the two upsamplings, hookable), ``out_layer.conv``. The analyses' default
layer (``preferred_unit_layer``) is ``block_c.<num_res + 1>.conv``, the conv that closes the
bottleneck: every residual block has run, w3 (128) units at 1/4 of the input size, the map the
decoder starts from (the middle conv by count would be ``block_c.3.expand.conv``, the 1x1 expansion
inside a residual block, whose output the block projects back before anything else reads it).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor, nn

from interp_gan.models.keys import few, key_problems, strip_shared_prefix, vote
from interp_gan.models.registry import register_model
from interp_gan.models.resnet_generator import unwrap_state_dict

__all__ = ["AnimeGANv2Generator", "parse_animegan", "remap_animegan_state_dict", "looks_like_animegan",
           "split_file_options", "FILE_OPTIONS"]

_FIX = "for another architecture use --model file.py:factory"
_ROOT = "block_a.0.1.weight"
FILE_OPTIONS = ("align_corners",)      # the options a state-dict path takes after '#'


# --- the module -----------------------------------------------------------------------------------
class ConvNormLReLU(nn.Module):
    """Reflection pad, conv (padding 0), GroupNorm(1, C) affine, LeakyReLU(0.2); children by role."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, pad: int | tuple = 1,
                 groups: int = 1, bias: bool = False) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(pad)
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=0, groups=groups, bias=bias)
        self.norm = nn.GroupNorm(1, cout, affine=True)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(self.pad(x))))


class InvertedResBlock(nn.Module):
    """1x1 expand, depthwise 3x3 (with bias), 1x1 project, GroupNorm; + input when in == out."""

    def __init__(self, cin: int, cout: int, expansion: float) -> None:
        super().__init__()
        mid = int(round(cin * expansion))
        self.residual = cin == cout
        self.expand = ConvNormLReLU(cin, mid, k=1, pad=0)
        self.dw = ConvNormLReLU(mid, mid, groups=mid, bias=True)
        self.project = nn.Conv2d(mid, cout, 1, bias=False)
        self.norm = nn.GroupNorm(1, cout, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm(self.project(self.dw(self.expand(x))))
        return x + y if self.residual else y


class BilinearUp(nn.Module):
    """The port's decoder upsampling: to ``size`` with aligned corners, or x2 with half-pixel centres."""

    def __init__(self, align_corners: bool) -> None:
        super().__init__()
        self.align_corners = bool(align_corners)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        if self.align_corners:
            return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"align_corners={self.align_corners}"


_HALF = (0, 1, 0, 1)     # left, right, top, bottom: the stride-2 stages' asymmetric reflection pad


@register_model("animegan_v2")
class AnimeGANv2Generator(nn.Module):
    """AnimeGANv2's generator in the PyTorch port's layout (module docstring), layers named by role."""

    def __init__(self, widths=(32, 64, 128, 256), num_res: int = 4, expansion: float = 2.0, input_nc: int = 3,
                 output_nc: int = 3, align_corners: bool = True) -> None:
        super().__init__()
        w1, w2, w3, w4 = (int(w) for w in widths)
        if min(w1, w2, w3, w4, int(input_nc), int(output_nc)) < 1 or not 1 <= int(num_res) <= 64 or expansion <= 0:
            raise ValueError(f"AnimeGANv2 widths {list(widths)}, num_res={num_res}, expansion={expansion}: expected "
                             "positive widths, 1..64 residual blocks and a positive expansion")
        self.config = {"widths": [w1, w2, w3, w4], "num_res": int(num_res), "expansion": float(expansion),
                       "input_nc": int(input_nc), "output_nc": int(output_nc), "align_corners": bool(align_corners)}
        self.block_a = nn.Sequential(ConvNormLReLU(input_nc, w1, k=7, pad=3),
                                     ConvNormLReLU(w1, w2, stride=2, pad=_HALF), ConvNormLReLU(w2, w2))
        self.block_b = nn.Sequential(ConvNormLReLU(w2, w3, stride=2, pad=_HALF), ConvNormLReLU(w3, w3))
        res = [InvertedResBlock(w3 if i == 0 else w4, w4, expansion) for i in range(int(num_res))]
        self.block_c = nn.Sequential(ConvNormLReLU(w3, w3), *res, ConvNormLReLU(w4, w3))
        self.up_d = BilinearUp(align_corners)
        self.block_d = nn.Sequential(ConvNormLReLU(w3, w3), ConvNormLReLU(w3, w3))
        self.up_e = BilinearUp(align_corners)
        self.block_e = nn.Sequential(ConvNormLReLU(w3, w2), ConvNormLReLU(w2, w2), ConvNormLReLU(w2, w1, k=7, pad=3))
        self.out_layer = nn.Sequential()
        self.out_layer.add_module("conv", nn.Conv2d(w1, output_nc, 1, bias=False))
        self.out_layer.add_module("tanh", nn.Tanh())
        # the conv closing the bottleneck (module docstring): 1/4 size, after every residual block
        self.preferred_unit_layer = f"block_c.{int(num_res) + 1}.conv"
        self.size_multiple = 1 if align_corners else 4   # x2 upsampling only restores sizes divisible by 4

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if not self.config["align_corners"] and (h % 4 or w % 4):
            raise ValueError(f"AnimeGANv2 with align_corners=false (x2 upsampling) needs height and width that are "
                             f"multiples of 4; got {h}x{w} (set image_size to a multiple of 4)")
        a = self.block_a(x)
        y = self.block_c(self.block_b(a))
        y = self.block_d(self.up_d(y, a.shape[-2:]))
        y = self.block_e(self.up_e(y, x.shape[-2:]))
        return self.out_layer(y)

    @classmethod
    def from_state_dict(cls, sd: dict, align_corners: bool = True) -> "AnimeGANv2Generator":
        cfg, keymap = parse_animegan(sd, align_corners=align_corners)
        G = cls(**cfg)
        G.load_state_dict(remap_animegan_state_dict(sd, keymap))
        return G


# --- reading the port's state dict -------------------------------------------------------------------
def _layout(widths, num_res: int, expansion: float, input_nc: int, output_nc: int) -> dict[str, tuple[tuple, str]]:
    """reference key -> (shape, our key) for the whole generator."""
    w1, w2, w3, w4 = widths
    out: dict[str, tuple[tuple, str]] = {}

    def cnl(src: str, dst: str, cin: int, cout: int, k: int = 3, groups: int = 1, bias: bool = False) -> None:
        out[f"{src}.1.weight"] = ((cout, cin // groups, k, k), f"{dst}.conv.weight")
        if bias:
            out[f"{src}.1.bias"] = ((cout,), f"{dst}.conv.bias")
        out[f"{src}.2.weight"] = ((cout,), f"{dst}.norm.weight")
        out[f"{src}.2.bias"] = ((cout,), f"{dst}.norm.bias")

    for i, (cin, cout, k) in enumerate([(input_nc, w1, 7), (w1, w2, 3), (w2, w2, 3)]):
        cnl(f"block_a.{i}", f"block_a.{i}", cin, cout, k)
    for i, (cin, cout) in enumerate([(w2, w3), (w3, w3)]):
        cnl(f"block_b.{i}", f"block_b.{i}", cin, cout)
    cnl("block_c.0", "block_c.0", w3, w3)
    for i in range(1, num_res + 1):
        cin = w3 if i == 1 else w4
        mid = int(round(cin * expansion))
        p = f"block_c.{i}"
        cnl(f"{p}.layers.0", f"{p}.expand", cin, mid, k=1)
        cnl(f"{p}.layers.1", f"{p}.dw", mid, mid, groups=mid, bias=True)
        out[f"{p}.layers.2.weight"] = ((w4, mid, 1, 1), f"{p}.project.weight")
        out[f"{p}.layers.3.weight"] = ((w4,), f"{p}.norm.weight")
        out[f"{p}.layers.3.bias"] = ((w4,), f"{p}.norm.bias")
    cnl(f"block_c.{num_res + 1}", f"block_c.{num_res + 1}", w4, w3)
    for i in range(2):
        cnl(f"block_d.{i}", f"block_d.{i}", w3, w3)
    for i, (cin, cout, k) in enumerate([(w3, w2, 3), (w2, w2, 3), (w2, w1, 7)]):
        cnl(f"block_e.{i}", f"block_e.{i}", cin, cout, k)
    out["out_layer.0.weight"] = ((output_nc, w1, 1, 1), "out_layer.conv.weight")
    return out


def _unwrap(sd: dict) -> dict:
    """``unwrap_state_dict``, then one leading prefix shared by every key (``netG.``, ``G.``) stripped."""
    return strip_shared_prefix(unwrap_state_dict(sd), _ROOT)


def looks_like_animegan(sd: dict) -> bool:
    """A (possibly wrapped / prefixed) state_dict in the port's key layout (its first conv and a later stage)."""
    keys = _unwrap(sd)
    return _ROOT in keys and any(k.startswith(("block_c.", "out_layer.")) for k in keys)


_vote = vote


def parse_animegan(sd: dict, align_corners: bool = True) -> tuple[dict, dict[str, str]]:
    """(config, keymap): ``AnimeGANv2Generator(**config)`` and the port's key -> our key for every key.

    Reads the four widths, the number of inverted residual blocks, their expansion and the
    input / output channels from keys and shapes (each as most of the tensors that carry it say),
    then requires exactly the port's layout they imply: a missing key, a key with no place or a wrong
    shape raises a one-line ValueError naming up to three of each. ``align_corners`` is not in the
    weights (module docstring) and is passed through.
    """
    if not isinstance(align_corners, bool):
        raise ValueError(f"align_corners={align_corners!r}: expected True or False (file.pt#align_corners=true|false)")
    sd = _unwrap(sd)
    what = "not an AnimeGANv2 generator (PyTorch port layout)"
    if _ROOT not in sd or sd[_ROOT].dim() != 4:
        raise ValueError(f"{what} (no 4-D first conv {_ROOT!r}); {_FIX}")
    n = 0
    while any(k.startswith(f"block_c.{n + 1}.layers.") for k in sd):
        n += 1
    if not 1 <= n <= 64:
        raise ValueError(f"{what} ({n} inverted residual blocks 'block_c.<i>.layers'; expected 1..64, 4 in the "
                         f"port); {_FIX}")
    last = f"block_c.{n + 1}"
    w1 = _vote(sd, [(_ROOT, 4, 0), ("block_a.0.2.weight", 1, 0), ("block_a.1.1.weight", 4, 1),
                    ("block_e.2.1.weight", 4, 0), ("out_layer.0.weight", 4, 1)], 32)
    w2 = _vote(sd, [("block_a.1.1.weight", 4, 0), ("block_a.2.1.weight", 4, 0), ("block_b.0.1.weight", 4, 1),
                    ("block_e.0.1.weight", 4, 0), ("block_e.2.1.weight", 4, 1)], 64)
    w3 = _vote(sd, [("block_b.0.1.weight", 4, 0), ("block_b.1.1.weight", 4, 0), ("block_c.0.1.weight", 4, 0),
                    ("block_c.1.layers.0.1.weight", 4, 1), (f"{last}.1.weight", 4, 0), ("block_d.0.1.weight", 4, 0),
                    ("block_e.0.1.weight", 4, 1)], 128)
    w4 = _vote(sd, [(f"block_c.{i}.layers.2.weight", 4, 0) for i in range(1, n + 1)]
               + [(f"{last}.1.weight", 4, 1)], 256)
    ratios = [sd[k].shape[0] / sd[k].shape[1] for i in range(1, n + 1)
              if (k := f"block_c.{i}.layers.0.1.weight") in sd and sd[k].dim() == 4 and sd[k].shape[1]]
    expansion = Counter(ratios).most_common(1)[0][0] if ratios else 2.0
    input_nc = int(sd[_ROOT].shape[1])
    output_nc = int(sd["out_layer.0.weight"].shape[0]) if "out_layer.0.weight" in sd else 3
    layout = _layout((w1, w2, w3, w4), n, expansion, input_nc, output_nc)
    label = (f"widths {w1}/{w2}/{w3}/{w4}, {n} inverted residual blocks, expansion {expansion:g}, "
             f"{input_nc}->{output_nc} channels")
    unplaced = [k for k in sd if k not in layout]
    missing = [k for k in layout if k not in sd]
    wrong = [f"{k} {list(sd[k].shape)} (expected {list(layout[k][0])})" for k in sd
             if k in layout and tuple(sd[k].shape) != layout[k][0]]
    if unplaced or missing or wrong:
        parts = key_problems(unplaced, missing, wrong)
        raise ValueError(f"not the AnimeGANv2 generator its keys suggest ({label}): {'; '.join(parts)}; {_FIX}")
    cfg = {"widths": [w1, w2, w3, w4], "num_res": n, "expansion": float(expansion), "input_nc": input_nc,
           "output_nc": output_nc, "align_corners": bool(align_corners)}
    return cfg, {k: v[1] for k, v in layout.items()}


def remap_animegan_state_dict(sd: dict, keymap: dict[str, str]) -> dict:
    """The port's state_dict under our module's names."""
    return {keymap[k]: v for k, v in _unwrap(sd).items()}


# --- options after '#' in a path ---------------------------------------------------------------------
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def split_file_options(spec: str) -> tuple[str, dict]:
    """``"paprika.pt#align_corners=false"`` -> ("paprika.pt", {"align_corners": False}); one line for
    anything else after '#'."""
    path, _, opts = str(spec).partition("#")
    out: dict = {}
    for item in filter(None, (o.strip() for o in opts.split(","))):
        k, eq, v = (s.strip() for s in item.partition("="))
        if not eq or k not in FILE_OPTIONS or v.lower() not in _TRUE + _FALSE:
            raise ValueError(f"unknown option {item!r} in {spec!r}: a state-dict file takes align_corners=true|false "
                             "(AnimeGANv2 generators: how the decoder's bilinear upsampling aligns corners)")
        out[k] = v.lower() in _TRUE
    return path, out


def animegan_notes(model: dict, source: str = "") -> dict:
    """What a subject's metadata says about what was assumed (the weights cannot say it); ``source``: the
    file's path (a name holding "paprika" with aligned corners gets a warning: the port ran it without)."""
    ac = bool(model.get("align_corners", True))
    how = ("align_corners=true: bilinear to the exact size with aligned corners (the port's Generator.forward "
           "default since its face models, which its torch.hub generator and face2paint use for the face models; "
           "face_paint_512_v2 is the hub's default)" if ac else
           "align_corners=false: x2 bilinear with half-pixel centres (the port's forward when it converted "
           "paprika.pt from TensorFlow, and its test.py default); sides must be multiples of 4")
    if ac and "paprika" in Path(source).name.lower():
        how += ("; but this file's name says paprika, which the port converted and runs with align_corners=false "
                "(FILE#align_corners=false)")
    upsampling = f"{how}. Not stored in the weights: choose with FILE#align_corners=true|false"
    return {"upsampling": upsampling,
            "value_range": "RGB in [-1, 1] in and out (the port feeds to_tensor(img) * 2 - 1 and writes "
                           "(out + 1) * 127.5), as the analyses: nothing rescaled",
            "model_notes": [f"upsampling: {upsampling}"]}   # what the weights cannot say: the report shows it
