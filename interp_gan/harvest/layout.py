"""How a layer's output is read as units, for generators whose internals are not conv maps.

    info = probe_layers(subject, size=64)           # one seeded forward; cached on subject.generator
    info["blocks.0.attn"].layout.kind               # "tokens [N, L, C]" -> read as [N, C, h, w]
    default_leftouts(subject.generator)             # {layer: why it is not a default layer}

Most layers write ``[N, C, H, W]`` maps, and every analysis reads units as channels of such maps
(``[N, C]`` outputs as per-image units). Other designs write other layouts, which read as if they
were maps give wrong units without any error:

- channels last ``[N, H, W, C]``: ConvNeXt's ``nn.Linear`` / ``nn.LayerNorm`` after a permute
  (Liu et al. 2022): read as maps, H would be taken for the channels;
- tokens ``[N, L, C]`` (``batch_first`` attention, ``nn.LayerNorm`` over channels: StyTr^2, Deng et al.
  2022), ``[L, N, C]`` (``nn.MultiheadAttention`` without ``batch_first``) or ``[N, C, L]`` (MLP-Mixer's
  token mixing, Tolstikhin et al. 2021, ``nn.Conv1d``): L = h * w positions of a grid;
- one module called at several places of one forward (weight sharing): a hook sees each call and
  would keep the last, or an edit would change every place.

``Layout`` says how an output is turned into ``[N, C, H, W]`` (or ``[N, C]``) and back (edits write
through it). It is read from the output's shape, the batch size and the grids the model states: the
spatial sizes of its conv layers' outputs and of the input image. A token count L is read as the
grid (h, w) with h * w = L among those; channels last when (H, W) is such a grid and the channel
reading is not, or, when both fit, when the module acts on the last axis (``nn.Linear``,
``nn.LayerNorm``, attention). What cannot be read that way (a class token, L = h * w + 1; an
attention matrix [N, L, L]; an axis order that both readings fit) is refused in one line saying
what was expected. ``probe_layers`` records, per module, the calls in one forward and the output's
layout; ``Trace`` reads both (``harvest/hooks.py``) and the default layer lists leave out what is
not a spatial map or runs more than once, each with its reason (``default_leftouts``).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Layout", "LayerInfo", "probe_layers", "ensure_probed", "probed", "layer_info", "default_leftouts", "read_layout",
           "first_tensor", "unit_layout", "probing", "NCHW",
           "leftout_kinds", "LEFTOUT_GROUPS"]

_LAST_AXIS = (nn.Linear, nn.LayerNorm, nn.MultiheadAttention, nn.Bilinear, nn.Embedding)


def first_tensor(output: Any) -> Tensor | None:
    """A module's output tensor: itself, or the first element of a tuple / list (attention's (out, weights))."""
    if torch.is_tensor(output):
        return output
    if isinstance(output, (tuple, list)) and output and torch.is_tensor(output[0]):
        return output[0]
    return None


@dataclass(frozen=True)
class Layout:
    """kind: "nchw" (maps), "nc" (per-image units), "nhwc", "nlc", "lnc", "ncl"; grid: the (h, w) a
    token layout was read with at the probe's size (its aspect ratio and scale to the image)."""
    kind: str = "nchw"
    grid: tuple[int, int] | None = None
    probe_hw: tuple[int, int] | None = None
    reason: str = ""                # non-empty: refused, with this one-line reason

    @property
    def plain(self) -> bool:
        return self.kind in ("nchw", "nc") and not self.reason

    def words(self) -> str:
        return {"nchw": "[N, C, H, W] maps", "nc": "[N, C] per-image units", "nhwc": "channels last [N, H, W, C]",
                "nlc": "tokens [N, L, C]", "lnc": "tokens [L, N, C]", "ncl": "tokens [N, C, L]"}[self.kind]

    def _grid(self, L: int, layer: str) -> tuple[int, int]:
        h, w = self.grid
        if h * w == L:
            return h, w
        s = (L / (h * w)) ** 0.5         # another image size: the same grid scaled
        hh, ww = round(h * s), round(w * s)
        if hh * ww != L:
            raise ValueError(f"layer {layer!r}: {L} tokens are no grid of the {h}x{w} shape it had at the probe; "
                             f"expected h*w tokens")
        return hh, ww

    def to_units(self, t: Tensor, layer: str = "") -> Tensor:
        """The output as [N, C, H, W] (or [N, C]), a view where possible."""
        if self.reason:
            raise ValueError(self.reason)
        k = self.kind
        if k in ("nchw", "nc"):
            return t
        if k == "nhwc":
            return t.permute(0, 3, 1, 2)
        if k == "lnc":
            t = t.permute(1, 2, 0)
        elif k == "nlc":
            t = t.transpose(1, 2)
        h, w = self._grid(t.shape[-1], layer)
        return t.reshape(t.shape[0], t.shape[1], h, w)

    def from_units(self, u: Tensor, like: Tensor) -> Tensor:
        """[N, C, H, W] units back in the output's own layout (``like``'s shape)."""
        k = self.kind
        if k in ("nchw", "nc"):
            return u
        if k == "nhwc":
            return u.permute(0, 2, 3, 1).contiguous()
        flat = u.flatten(2)                      # [N, C, L]
        if k == "ncl":
            return flat.reshape(like.shape).contiguous()
        if k == "nlc":
            return flat.transpose(1, 2).reshape(like.shape).contiguous()
        return flat.permute(2, 0, 1).reshape(like.shape).contiguous()


NCHW = Layout()


@dataclass
class LayerInfo:
    """One module in the probe's forward: how often it ran, its output's shape and layout."""
    calls: int = 0
    shape: tuple[int, ...] | None = None
    layout: Layout = NCHW
    container: str = ""             # the output was a tuple / list: its first tensor is the layer's

    def spatial(self) -> bool:
        """An [N, C, H, W] map larger than 1x1, read as it is or through its layout."""
        if self.layout.reason or self.shape is None:
            return False
        if self.layout.kind == "nc":
            return False
        if self.layout.kind == "nchw":
            return len(self.shape) == 4 and self.shape[2] * self.shape[3] > 1
        return True


@dataclass
class _Probe:
    info: dict[str, LayerInfo] = field(default_factory=dict)
    size: int = 0


_PROBED: "weakref.WeakKeyDictionary[nn.Module, _Probe]" = weakref.WeakKeyDictionary()


def _grids(image_hw: tuple[int, int], maps: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """The spatial sizes the model states: its input's, its halvings, and every conv-like layer's map."""
    h, w = image_hw
    out = {(h >> k, w >> k) for k in range(8) if h >> k and w >> k}
    out |= set(maps)
    return {g for g in out if g[0] * g[1] > 1}


def read_layout(shape: tuple[int, ...], n: int, grids: set[tuple[int, int]], module: nn.Module,
                layer: str, image_hw: tuple[int, int]) -> Layout:
    """The layout of an output of ``shape`` for a batch of ``n`` (module docstring)."""
    last = isinstance(module, _LAST_AXIS)
    hw = tuple(image_hw)
    expected = (f"expected [N, C, H, W] maps, [N, C] units, channels last [N, H, W, C] or tokens [N, L, C] / "
                f"[L, N, C] / [N, C, L] with L = h*w of a grid the model works at "
                f"(e.g. {', '.join(f'{a}x{b}' for a, b in sorted(grids, reverse=True)[:3])})")
    if len(shape) == 2 and shape[0] == n:
        return Layout("nc")
    if len(shape) == 4 and shape[0] == n:
        maps, last_c = (shape[2], shape[3]) in grids, (shape[1], shape[2]) in grids
        if last_c and (not maps or last):
            return Layout("nhwc", probe_hw=hw)
        return NCHW
    if len(shape) == 3:
        def grid(L: int):
            fits = [g for g in grids if g[0] * g[1] == L]
            same = [g for g in fits if g[0] * hw[1] == g[1] * hw[0]]      # the image's aspect ratio first
            return (same or fits or [None])[0]
        cands = []
        if shape[0] == n:
            if grid(shape[1]):
                cands.append(Layout("nlc", grid(shape[1]), hw))
            if grid(shape[2]):
                cands.append(Layout("ncl", grid(shape[2]), hw))
        elif shape[1] == n and grid(shape[0]):
            cands.append(Layout("lnc", grid(shape[0]), hw))
        if len(cands) == 2 and shape[1] == shape[2]:
            return Layout(reason=f"layer {layer!r} gives {list(shape)}: both middle axes hold {shape[1]} "
                                 f"positions (an attention matrix [N, L, L]?), no channel axis to read units from; "
                                 f"name the layer whose output the attention weights are applied to")
        if len(cands) == 2:
            return cands[0] if last else Layout(
                reason=f"layer {layer!r} gives {list(shape)}: tokens [N, L, C] and [N, C, L] both fit its shape, "
                       f"so its channel axis is unknown; name a layer whose output is [N, C, H, W] (e.g. after the "
                       f"tokens are reshaped to a map)")
        if cands:
            return cands[0]
        extra = ""
        if shape[0] == n and any(g[0] * g[1] + 1 == shape[1] for g in grids):
            extra = f" ({shape[1]} = h*w + 1: a class token beside a grid?)"
        return Layout(reason=f"layer {layer!r} gives {list(shape)}{extra}, which is no grid of units; {expected}")
    return Layout(reason=f"layer {layer!r} gives {list(shape)} for a batch of {n}; {expected}")


_CONV_LIKE = (nn.Conv2d, nn.ConvTranspose2d, nn.PixelShuffle, nn.PixelUnshuffle, nn.Upsample,
              nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)


_active = [False]


def probing() -> bool:
    """Whether ``probe_layers``' forward is running (pass counters leave it out)."""
    return _active[0]


def probe_layers(subject, size: int, seed: int = 0, n: int = 2) -> dict[str, LayerInfo]:
    """Run ``subject.generate`` once on a seeded [n, 3, size, size] batch with a hook on every module
    of its generator; record each module's calls and output layout; cache it (``probed``). Modules
    that did not run have calls 0. A generator whose forward fails here is left unprobed ({})."""
    G = subject.generator
    named = [(name, m) for name, m in G.named_modules() if name]
    seen: dict[str, LayerInfo] = {name: LayerInfo() for name, _ in named}
    maps: list[tuple[int, int]] = []
    hooks = []
    count = [0]

    batch: list[int] = []

    def root_pre(mod, args):
        count[0] += 1
        x = next((a for a in args if torch.is_tensor(a) and a.dim() > 0), None)
        if x is not None:
            batch.append(int(x.shape[0]))

    def hook(name, mod, out):
        info = seen[name]
        info.calls += 1
        t = first_tensor(out)
        if t is not None and info.shape is None:
            info.container = "" if torch.is_tensor(out) else type(out).__name__
            info.shape = tuple(t.shape)
            if isinstance(mod, _CONV_LIKE) and t.dim() == 4:
                maps.append((int(t.shape[2]), int(t.shape[3])))

    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 3, size, size, generator=g) * 2 - 1).to(subject.device)
    ids = torch.arange(n, device=subject.device) % max(1, subject.num_styles)
    z = subject.sample_z(n, seed=seed).to(subject.device) if getattr(subject, "latent_dim", 0) else None
    devices = [d for d in {p.device for p in G.parameters()} if d.type == "cuda"]
    try:
        hooks.append(G.register_forward_pre_hook(root_pre))
        for name, m in named:
            hooks.append(m.register_forward_hook(lambda mod, i, o, name=name: hook(name, mod, o)))
        _active[0] = True
        with torch.no_grad(), torch.random.fork_rng(devices=devices):   # leaves the analyses' random draws alone
            subject.generate(x, ids, z)
    except Exception:         # noqa: BLE001 - the analyses meet (and say) the failure themselves
        return {}
    finally:
        _active[0] = False
        for h in hooks:
            h.remove()
    per_image = bool(getattr(subject, "meta", {}).get("one_image_per_call"))   # a graph run image by image
    grids = _grids((size, size), maps)
    mods = dict(named)
    per_call = batch[0] if batch and batch[0] in (1, n) else 1 if per_image else n      # images per root call
    for name, info in seen.items():
        if info.shape is not None:
            info.layout = read_layout(info.shape, per_call, grids, mods[name], name, (size, size))
        if count[0] > 1:        # the root ran several times (a module called per image): calls per root call
            info.calls = -(-info.calls // count[0])
        elif per_image:
            info.calls = -(-info.calls // n)
    _PROBED[G] = _Probe(seen, size)
    return seen


def ensure_probed(subject, data) -> None:
    """``probe_layers`` at the data's image size, once per generator (every analysis' ``run`` calls it
    first, so the library path reads layers as the pipeline does)."""
    G = getattr(subject, "generator", None)
    content = getattr(data, "content", None)
    if (getattr(subject, "meta", None) or {}).get("called_as_is"):    # Subject.wrap_module: no extra call
        return
    if not isinstance(G, nn.Module) or G in _PROBED or not torch.is_tensor(content) or content.dim() != 4:
        return
    if not callable(getattr(subject, "generate", None)):
        return
    probe_layers(subject, int(content.shape[-1]))


def probed(model: nn.Module) -> dict[str, LayerInfo] | None:
    p = _PROBED.get(model)
    return None if p is None else p.info


def layer_info(model: nn.Module, layer: str) -> LayerInfo | None:
    info = probed(model)
    return None if info is None else info.get(layer)


def reused_reason(model: nn.Module, layer: str, calls: int) -> str:
    return (f"layer {layer!r} runs {calls} times in one forward of {type(model).__name__} (a module reused at "
            f"several places): a hook cannot tell its calls apart, so its units would mix those places and an edit "
            f"would change all of them; name a module that runs once, or give each place its own module")


def unit_layout(model: nn.Module, layer: str, one_tensor: bool = True) -> Layout:
    """The layout of ``layer``'s units for a method that hooks the module itself (Captum's layer
    attributions); a reused module, an unreadable output, or (``one_tensor``) an output that is a tuple is
    one ``ValueError`` line. NCHW when the model was not probed."""
    info = layer_info(model, layer)
    if info is None:
        return NCHW
    if info.calls > 1:
        raise ValueError(reused_reason(model, layer, info.calls))
    if info.layout.reason:
        raise ValueError(info.layout.reason)
    if one_tensor and info.container:
        raise ValueError(f"layer {layer!r} returns a {info.container} (e.g. attention's (output, weights)); the "
                         f"layer attribution methods need a layer that returns one tensor: name a module inside it, "
                         f"or the one that takes its output")
    return info.layout


# why a default-layer candidate is left out: its kind -> the line that groups such layers (hooks.default_layer_notes)
LEFTOUT_GROUPS = {
    "reused": "they run more than once in one forward (reused modules: a hook cannot tell the calls apart)",
    "gate": "their outputs have no spatial extent ([N, C, 1, 1] or [N, C]: per-image gates)",
    "unreadable": "their outputs read as no unit map",
}


def leftout_kinds(model: nn.Module, names: list[str]) -> dict[str, tuple[str, str]]:
    """Of ``names`` (default layer candidates), those the probe found unfit: {layer: (kind, why)}, the kind a
    key of ``LEFTOUT_GROUPS``."""
    info = probed(model)
    if not info:
        return {}
    out = {}
    for n in names:
        i = info.get(n)
        if i is None or i.calls == 0:
            continue                      # not run by the probe: the analyses say it themselves
        if i.calls > 1:
            out[n] = ("reused", f"runs {i.calls} times in one forward (a reused module)")
        elif i.layout.reason:
            out[n] = ("unreadable", f"its output {list(i.shape)} is no unit map")
        elif not i.spatial():
            out[n] = ("gate", f"its output {list(i.shape)} has no spatial extent (a per-image gate or vector)")
    return out


def default_leftouts(model: nn.Module, names: list[str]) -> dict[str, str]:
    """Of ``names`` (default layer candidates), those the probe found unfit, each with why."""
    return {n: why for n, (_, why) in leftout_kinds(model, names).items()}
