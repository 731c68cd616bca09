"""The fast neural style network of the PyTorch examples, read from its state_dict alone.

    config, keymap = parse_fast_neural_style(state_dict)   # ValueError (one line) unless every key fits
    G = FastNeuralStyleNet(**config)
    G.load_state_dict(remap_fast_neural_style(state_dict, keymap))

Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and Super-Resolution"
(ECCV 2016), with instance norm (Ulyanov, Vedaldi & Lempitsky, 2016) and resize-convolutions in
place of transposed ones (Odena, Dumoulin & Olah, Distill 2016), as the ``TransformerNet`` of
github.com/pytorch/examples, ``fast_neural_style``: the network behind its released
``saved_models/{mosaic,candy,rain_princess,udnie}.pth`` and the ``*.model`` files its training
command writes (``torch.save(transformer.state_dict())``).

The layout, which the keys must match exactly (widths ``w1, w2, w3`` = 32, 64, 128 and 5
residual blocks in the reference; both read here from the shapes):

- a ConvLayer (``convK``, ``deconv3``) is reflection padding by ``k // 2``, then a conv with a
  stride (``convK.conv2d``); ``deconv1`` / ``deconv2`` first upsample x2 (nearest), then the same;
- ``conv1`` 9x9 3 -> w1, ``conv2`` 3x3 stride 2 -> w2, ``conv3`` 3x3 stride 2 -> w3, each followed
  by an affine InstanceNorm2d (``in1`` .. ``in3``) and ReLU;
- ``res1`` .. ``resN``: x + in2(conv2(relu(in1(conv1(x))))), 3x3 convs at w3;
- ``deconv1`` 3x3 w3 -> w2, ``in4``, ReLU; ``deconv2`` 3x3 w2 -> w1, ``in5``, ReLU; ``deconv3``
  9x9 w1 -> 3, with no activation after it.

What the keys cannot say is taken from the reference: the strides, the x2 nearest upsampling, the
reflection padding, the kernel sizes (9, 3, 9: another size is a wrong shape), 3 input and output
channels (its loader converts every image to RGB), instance-norm eps 1e-5.

Value range: the reference takes images in [0, 255] (``ToTensor()`` then ``* 255``) and its
``save_image`` clamps the output to [0, 255]. ``forward`` takes and returns the project's [-1, 1]:
content x -> (x + 1) * 127.5, the reference network (``stylize_255``), output clamped to [0, 255]
as the script does, then / 127.5 - 1. Hooks see the reference's own values.

The released files were saved by a PyTorch whose InstanceNorm kept ``running_mean`` /
``running_var``; the example's ``stylize`` deletes every key matching ``in\\d+\\.running_(mean|var)$``
before a strict load (instance statistics at test time). We accept those keys (shape checked;
finiteness is checked for every tensor on reading) and drop them. A ``num_batches_tracked``
(a newer PyTorch tracking statistics, whose eval mode would use them) has no place, as in the
reference's own loader.

Our module keeps the reference's names, so hooks address what a reader of the example sees:
``conv1.conv2d``, ``in1``, ``res3`` (a block's output), ``res3.conv2.conv2d``, ``deconv1.conv2d``
..., plus one ReLU module per use (``relu1`` .. ``relu5``, ``resK.relu``; the reference shares one
module, whose hook would fire five times). Default layer of the unit analyses
(``preferred_unit_layer``): ``resN``, the residual stream the decoder receives (w3 channels at 1/4 of
the input size). Every conv but ``deconv3`` feeds an instance norm, which would turn a zeroed
channel of that conv into the constant β of the norm, so ablating a conv's own output there is not
a removal; a block output is.
"""
from __future__ import annotations

import re

import torch
from torch import Tensor, nn

from interp_gan.models.keys import few, key_problems, strip_shared_prefix
from interp_gan.models.registry import register_model
from interp_gan.models.resnet_generator import unwrap_state_dict

__all__ = ["FastNeuralStyleNet", "parse_fast_neural_style", "remap_fast_neural_style", "looks_like_fast_neural_style",
           "dropped_running_stats", "subject_meta"]

_FIX = "for another architecture use --model file.py:factory"
_ROOT = "conv1.conv2d.weight"
_FAMILY = re.compile(r"^(res\d+|deconv\d+|in\d+)\.")
_RUNNING = re.compile(r"in\d+\.running_(mean|var)$")     # what the reference's stylize() deletes
_MAX_RES = 64


def _unwrap(sd: dict) -> dict:
    """``unwrap_state_dict``, then one leading prefix shared by every key (``transformer.``) stripped."""
    return strip_shared_prefix(unwrap_state_dict(sd), _ROOT)


def looks_like_fast_neural_style(sd: dict) -> bool:
    """A (possibly wrapped / prefixed) state_dict in the example TransformerNet's key layout."""
    keys = _unwrap(sd)
    return _ROOT in keys and any(_FAMILY.match(k) for k in keys)


def _layout(widths: tuple[int, int, int], n_res: int) -> dict[str, tuple[int, ...]]:
    """reference key -> shape for the whole network (running statistics excluded)."""
    w1, w2, w3 = widths
    out: dict[str, tuple[int, ...]] = {}

    def conv(name: str, cin: int, cout: int, k: int) -> None:
        out[f"{name}.conv2d.weight"] = (cout, cin, k, k)
        out[f"{name}.conv2d.bias"] = (cout,)

    def norm(name: str, c: int) -> None:
        out[f"{name}.weight"] = (c,)
        out[f"{name}.bias"] = (c,)

    conv("conv1", 3, w1, 9), norm("in1", w1)
    conv("conv2", w1, w2, 3), norm("in2", w2)
    conv("conv3", w2, w3, 3), norm("in3", w3)
    for i in range(1, n_res + 1):
        conv(f"res{i}.conv1", w3, w3, 3), norm(f"res{i}.in1", w3)
        conv(f"res{i}.conv2", w3, w3, 3), norm(f"res{i}.in2", w3)
    conv("deconv1", w3, w2, 3), norm("in4", w2)
    conv("deconv2", w2, w1, 3), norm("in5", w1)
    conv("deconv3", w1, 3, 9)
    return out


def _vote(sd: dict, where: list[tuple[str, int]]) -> int | None:
    """The width most of the tensors that carry it say (so one corrupted tensor is the one named)."""
    votes = [int(sd[k].shape[d]) for k, d in where if k in sd and getattr(sd[k], "dim", lambda: 0)() > d]
    return max(votes, key=votes.count) if votes else None


def parse_fast_neural_style(sd: dict) -> tuple[dict, dict[str, str]]:
    """(config, keymap): ``FastNeuralStyleNet(**config)`` and reference key -> our key for every key
    (``""`` for the InstanceNorm running statistics of older files, which are dropped).

    Reads the three widths and the number of residual blocks from keys and shapes, then requires
    the state_dict to be exactly the layout they imply: a missing key, a key with no place or a
    wrong shape raises a one-line ValueError naming up to three of each.
    """
    sd = _unwrap(sd)
    what = "not a fast neural style network (pytorch/examples TransformerNet)"
    if _ROOT not in sd or getattr(sd[_ROOT], "dim", lambda: 0)() != 4:
        raise ValueError(f"{what}: no 4-D first conv {_ROOT!r}; {_FIX}")
    w = lambda k: f"{k}.conv2d.weight"   # noqa: E731
    w1 = _vote(sd, [(w("conv1"), 0), ("in1.weight", 0), (w("conv2"), 1), (w("deconv2"), 0), ("in5.weight", 0),
                    (w("deconv3"), 1)])
    w2 = _vote(sd, [(w("conv2"), 0), ("in2.weight", 0), (w("conv3"), 1), (w("deconv1"), 0), ("in4.weight", 0),
                    (w("deconv2"), 1)])
    w3 = _vote(sd, [(w("conv3"), 0), ("in3.weight", 0), (w("deconv1"), 1), (w("res1.conv1"), 0),
                    (w("res1.conv1"), 1), ("res1.in1.weight", 0)])
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"^res(\d+)\.", k))}
    n_res = max(blocks, default=0)
    if n_res > _MAX_RES:
        raise ValueError(f"{what}: residual block res{n_res}; expected at most {_MAX_RES} (the reference has 5); "
                         f"{_FIX}")
    widths = (w1 or 32, w2 or 64, w3 or 128)
    layout = _layout(widths, n_res)
    running = {k for k in sd if _RUNNING.search(k) and k.rsplit(".", 1)[0] + ".weight" in layout}
    label = f"widths {'/'.join(map(str, widths))}, {n_res} residual blocks"
    unplaced = [k for k in sd if k not in layout and k not in running]
    missing = [k for k in layout if k not in sd]
    wrong = [f"{k} {list(sd[k].shape)} (expected {list(layout[k])})" for k in sd
             if k in layout and tuple(sd[k].shape) != layout[k]]
    wrong += [f"{k} {list(sd[k].shape)} (expected {list(layout[k.rsplit('.', 1)[0] + '.weight'])})"
              for k in sorted(running) if tuple(sd[k].shape) != layout[k.rsplit(".", 1)[0] + ".weight"]]
    if unplaced or missing or wrong:
        parts = key_problems(unplaced, missing, wrong)
        raise ValueError(f"not the fast neural style network its keys suggest ({label}): {'; '.join(parts)}; {_FIX}")
    cfg = {"widths": list(widths), "n_res": n_res}
    return cfg, {**{k: k for k in layout}, **{k: "" for k in running}}


def remap_fast_neural_style(sd: dict, keymap: dict[str, str]) -> dict:
    """The reference state_dict under our module's names (the same), running statistics dropped."""
    return {keymap[k]: v for k, v in _unwrap(sd).items() if keymap[k]}


def dropped_running_stats(sd: dict) -> int:
    """How many InstanceNorm ``running_mean`` / ``running_var`` tensors a file holds (all dropped)."""
    return sum(1 for k in _unwrap(sd) if _RUNNING.search(k))


class _ConvLayer(nn.Module):
    """Reflection pad k // 2, then a conv with a stride; with ``upsample``, x2 nearest first."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, upsample: bool = False) -> None:
        super().__init__()
        if upsample:
            self.upsample_layer = nn.Upsample(scale_factor=2, mode="nearest")
        self.reflection_pad = nn.ReflectionPad2d(k // 2)
        self.conv2d = nn.Conv2d(cin, cout, k, stride)

    def forward(self, x: Tensor) -> Tensor:
        if hasattr(self, "upsample_layer"):
            x = self.upsample_layer(x)
        return self.conv2d(self.reflection_pad(x))


class _ResidualBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = _ConvLayer(c, c, 3)
        self.in1 = nn.InstanceNorm2d(c, affine=True)
        self.relu = nn.ReLU()
        self.conv2 = _ConvLayer(c, c, 3)
        self.in2 = nn.InstanceNorm2d(c, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.in2(self.conv2(self.relu(self.in1(self.conv1(x)))))


@register_model("fast_neural_style")
class FastNeuralStyleNet(nn.Module):
    """The example's TransformerNet (module docstring); ``forward`` in the project's [-1, 1]."""

    def __init__(self, widths: tuple[int, int, int] | list[int] = (32, 64, 128), n_res: int = 5) -> None:
        super().__init__()
        widths = tuple(int(c) for c in widths)
        if len(widths) != 3 or min(widths) < 1:
            raise ValueError(f"widths={list(widths)}; expected three positive channel counts "
                             "(the reference's 32, 64, 128)")
        if not 0 <= int(n_res) <= _MAX_RES:
            raise ValueError(f"n_res={n_res}; expected 0..{_MAX_RES} residual blocks (the reference has 5)")
        self.config = {"widths": list(widths), "n_res": int(n_res)}
        w1, w2, w3 = widths
        # registered in execution order, so named_modules() (and the default layer lists) run in it too
        self.conv1, self.in1, self.relu1 = _ConvLayer(3, w1, 9), nn.InstanceNorm2d(w1, affine=True), nn.ReLU()
        self.conv2, self.in2, self.relu2 = _ConvLayer(w1, w2, 3, 2), nn.InstanceNorm2d(w2, affine=True), nn.ReLU()
        self.conv3, self.in3, self.relu3 = _ConvLayer(w2, w3, 3, 2), nn.InstanceNorm2d(w3, affine=True), nn.ReLU()
        for i in range(1, int(n_res) + 1):
            self.add_module(f"res{i}", _ResidualBlock(w3))
        self.deconv1, self.in4, self.relu4 = (_ConvLayer(w3, w2, 3, upsample=True), nn.InstanceNorm2d(w2, affine=True),
                                              nn.ReLU())
        self.deconv2, self.in5, self.relu5 = (_ConvLayer(w2, w1, 3, upsample=True), nn.InstanceNorm2d(w1, affine=True),
                                              nn.ReLU())
        self.deconv3 = _ConvLayer(w1, 3, 9)
        # the residual stream the decoder reads (see the module docstring for why not a conv)
        self.preferred_unit_layer = f"res{n_res}" if n_res else "relu3"
        self.size_multiple = 4     # two stride-2 convs, two x2 upsamplings: other sizes come back larger

    def stylize_255(self, x: Tensor) -> Tensor:
        """The reference forward: images in [0, 255] -> unclamped output on the same scale."""
        y = self.relu1(self.in1(self.conv1(x)))
        y = self.relu2(self.in2(self.conv2(y)))
        y = self.relu3(self.in3(self.conv3(y)))
        for i in range(1, self.config["n_res"] + 1):
            y = getattr(self, f"res{i}")(y)
        y = self.relu4(self.in4(self.deconv1(y)))
        y = self.relu5(self.in5(self.deconv2(y)))
        return self.deconv3(y)

    def forward(self, content: Tensor) -> Tensor:
        """content [N, 3, H, W] in [-1, 1] -> image in [-1, 1] (clamped in [0, 255], as the script saves)."""
        h, w = content.shape[-2:]
        if h % 4 or w % 4 or min(h, w) < 8:
            raise ValueError(f"the fast neural style network needs height and width that are multiples of 4 (at "
                             f"least 8; other sizes come back larger); got {h}x{w} (set image_size to a multiple of 4)")
        return self.stylize_255((content + 1) * 127.5).clamp(0, 255) / 127.5 - 1

    @classmethod
    def from_state_dict(cls, sd: dict) -> "FastNeuralStyleNet":
        cfg, keymap = parse_fast_neural_style(sd)
        G = cls(**cfg)
        G.load_state_dict(remap_fast_neural_style(sd, keymap))
        return G


def subject_meta(sd: dict) -> dict:
    """What the subject assumes and what was dropped, for its metadata (and the report's model notes)."""
    notes = ["value range: content in [-1, 1] is fed as (x + 1) * 127.5 in [0, 255] (the example's ToTensor() * "
             "255); the output is clamped to [0, 255] as its save_image does, then mapped to [-1, 1]"]
    out = {"value_range": {"input": [0, 255], "output": [0, 255], "output_clamped": True}}
    n = dropped_running_stats(sd)
    if n:
        notes.append(f"instance norm: {n} running_mean / running_var tensor(s) of an older PyTorch checked (finite) "
                     "and dropped, as the example's stylize() deletes them: instance statistics at test time")
        out["instance_norm_running_stats_dropped"] = n
    return {**out, "model_notes": notes}
