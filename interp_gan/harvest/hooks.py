"""Forward hooks as context managers (the idea of baukit's ``nethook.Trace``).

    with Trace(G, "blocks.1") as t:                  # retain one layer's output
        G(content, code)
    t.output                                          # [N,C,H,W], detached

    with TraceDict(G, ["encoder.*", "blocks.*"], stop=True) as td:   # glob; stop after the last
        run_until_stop(G, content, code)
    td["blocks.3"].output

    with Trace(G, "blocks.1", edit=ablate([3, 7])):  # x' = x(1-a) + v·a
        out = G(content, code)

Hooks are always removed on exit, also when the body raises. Layers are ``named_modules()``
dotted names or glob patterns; an unknown name raises ``LookupError`` with close matches.
``stop=True`` raises ``StopForward`` after the last traced layer ran; wrap the call in
``run_until_stop`` (or catch it) to skip the rest of the network.
"""
from __future__ import annotations

import difflib
import fnmatch
import re
from collections import OrderedDict
from typing import Callable, Iterable

import torch
from torch import Tensor, nn

from interp_gan.harvest.layout import (LEFTOUT_GROUPS, NCHW, default_leftouts, first_tensor, layer_info, leftout_kinds,
                                      probed, reused_reason)

__all__ = ["Trace", "TraceDict", "StopForward", "run_until_stop", "resolve_layers", "get_module",
           "Edit", "ablate", "insert", "add_vector", "spatial_layers", "style_blocks", "default_layers",
           "default_unit_layer", "modules_that_fire", "default_layer_notes"]

EditFn = Callable[[Tensor, str], Tensor]


class StopForward(Exception):
    """Raised by a trace with ``stop=True`` after its last layer ran."""


def run_until_stop(fn: Callable, *args, **kwargs):
    """Call ``fn``; swallow ``StopForward`` (returns None when the forward was stopped)."""
    try:
        return fn(*args, **kwargs)
    except StopForward:
        return None


_LIST_HINT = ("; `interp-gan inspect MODEL` lists every layer, and an analysis given no layer picks its own "
              "(analyses/full.toml names none; analyses/demo.toml names the demo StyleNet's)")


def get_module(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.4)
        hint = f"; close matches: {', '.join(close)}" if close else f"; e.g. {', '.join(list(modules)[1:6])}"
        raise LookupError(f"no layer named {name!r} in {type(model).__name__}{hint}{_LIST_HINT}")
    return modules[name]


def resolve_layers(model: nn.Module, patterns: str | Iterable[str]) -> list[str]:
    """Expand names / glob patterns to dotted layer names in forward-registration order."""
    if isinstance(patterns, str):
        patterns = [patterns]
    names = [n for n, _ in model.named_modules() if n]
    out: list[str] = []
    for p in patterns:
        if p in names:              # a layer whose name holds glob characters (e.g. "[") is itself
            hits = [p]
        elif any(ch in p for ch in "*?["):
            hits = [n for n in names if fnmatch.fnmatchcase(n, p)]
            if not hits:
                plain = re.sub(r"\[(\d+)\]", r".\1", p)
                close = difflib.get_close_matches(plain.replace("*", ""), names, n=5, cutoff=0.3)
                brackets = (" ('[...]' is a glob character class: a Python index blocks[0] is written blocks.0, "
                            "a literal '[' is '[[]')" if "[" in p else "")
                raise LookupError(f"pattern {p!r} matches no layer{brackets}; close: {', '.join(close) or 'none'}"
                                  f"{_LIST_HINT}")
        else:
            get_module(model, p)
            hits = [p]
        out += [h for h in hits if h not in out]
    return out


def spatial_layers(model: nn.Module, kinds: tuple[type, ...] = (nn.Conv2d, nn.ConvTranspose2d)) -> list[str]:
    """Every conv layer (the default dissection targets for a model nobody configured), except
    those under the children a model names in ``off_path_modules``: parts its generate() never
    runs, such as a style encoder, whose hooks would never fire; and those it names in
    ``image_free_modules``: layers that never see the image (an ONNX graph's convs that turn the
    style vector into norm parameters), whose 1x1 maps hold no spatial concept; and those it names in
    ``auxiliary_modules``: networks that compute part of the generator's input (StarGAN v2's face-landmark
    network for its w_hpf masks), which run but are not the generator. A custom conv module
    (e.g. StyleGAN2's modulated ``SynthesisLayer``) counts when its class sets ``is_conv_layer = True``."""
    names = _conv_candidates(model, kinds)
    out = default_leftouts(model, names)     # after probe_layers: no 1x1 gates, reused modules, unreadable outputs
    return [n for n in names if n not in out]


def _conv_candidates(model: nn.Module, kinds: tuple[type, ...] = (nn.Conv2d, nn.ConvTranspose2d)) -> list[str]:
    skip = tuple(getattr(model, "off_path_modules", ()) or ()) + tuple(getattr(model, "image_free_modules", ()) or ())
    skip += tuple(getattr(model, "auxiliary_modules", ()) or ())
    return [n for n, m in model.named_modules()
            if n and (isinstance(m, kinds) or getattr(type(m), "is_conv_layer", False) is True)
            and not any(n == s or n.startswith(s + ".") for s in skip)]


def default_layer_notes(model: nn.Module) -> list[str]:
    """What the default layer lists left out after ``probe_layers`` and why (one line per reason);
    [] when nothing was, or the model was not probed."""
    if probed(model) is None:
        return []
    names = _conv_candidates(model)
    by_reason: dict[str, list[str]] = {}
    for n, (kind, _) in leftout_kinds(model, names).items():
        by_reason.setdefault(LEFTOUT_GROUPS[kind], []).append(n)
    return [f"default layers leave out {', '.join(ns[:8])}{' and %d more' % (len(ns) - 8) if len(ns) > 8 else ''}: "
            f"{why}" for why, ns in by_reason.items()]


class Edit:
    """x' = x·(1 - a) + v·a on the chosen units (channels) and locations.

    units: channel indices (None = all); value: scalar, [C_sel] per-unit, or a tensor
    broadcastable to the selected output; alpha: strength a; mask: [H,W] or [N,1,H,W] spatial
    weight multiplied into a (None = everywhere). ``add`` switches to x' = x + v·a.
    """

    def __init__(self, units=None, value: float | Tensor = 0.0, alpha: float = 1.0,
                 mask: Tensor | None = None, add: bool = False) -> None:
        self.units = None if units is None else torch.as_tensor(list(units) if not isinstance(units, Tensor) else units,
                                                                dtype=torch.long)
        self.value, self.alpha, self.mask, self.add = value, alpha, mask, add

    def __call__(self, x: Tensor, layer: str = "") -> Tensor:
        idx = None if self.units is None else self.units.to(x.device)
        if idx is not None and len(idx) and int(idx.max()) >= x.shape[1]:
            raise IndexError(f"unit {int(idx.max())} out of range for layer {layer!r} with {x.shape[1]} units")
        sel = x if idx is None else x.index_select(1, idx)
        v = torch.as_tensor(self.value, dtype=x.dtype, device=x.device)
        if v.dim() == 1 and x.dim() == 4:
            v = v[None, :, None, None]
        elif v.dim() == 1 and x.dim() == 2:
            v = v[None, :]
        a = torch.as_tensor(self.alpha, dtype=x.dtype, device=x.device)
        if self.mask is not None:
            m = self.mask.to(device=x.device, dtype=x.dtype)
            if m.dim() == 2:
                m = m[None, None]
            if m.shape[-2:] != x.shape[-2:]:
                m = torch.nn.functional.interpolate(m, size=x.shape[-2:], mode="bilinear", align_corners=False)
            a = a * m
        new = sel + v * a if self.add else sel * (1 - a) + v * a
        if idx is None:
            return new
        out = x.clone()
        out[:, idx] = new
        return out


def ablate(units, value: float | Tensor = 0.0, mask: Tensor | None = None) -> Edit:
    """Set units to ``value`` (0 = zero ablation; pass per-unit means for mean ablation)."""
    return Edit(units, value, 1.0, mask)


def insert(units, value: float | Tensor, mask: Tensor | None = None) -> Edit:
    """Force units to a high value (e.g. their top quantile) where ``mask`` is on."""
    return Edit(units, value, 1.0, mask)


def add_vector(vector: Tensor, scale: float = 1.0) -> Edit:
    """x' = x + scale·vector (a direction in a layer's channel space)."""
    return Edit(None, vector, scale, None, add=True)


def _version(t: Tensor) -> int | None:
    """The tensor's in-place version counter (None for inference-mode tensors, which have none)."""
    try:
        return t._version
    except RuntimeError:
        return None


class Trace:
    """Hook one layer: retain its output (detached unless ``detach=False``), optionally edit it."""

    def __init__(self, model: nn.Module, layer: str, retain_output: bool = True, detach: bool = True,
                 edit: EditFn | None = None, stop: bool = False, retain_input: bool = False,
                 module: nn.Module | None = None) -> None:
        self._handle = None  # set first: __del__ runs even when get_module below raises
        self.layer, self.layout = layer, NCHW
        self._output: Tensor | None = None
        self._version = None
        self.input: Tensor | None = None
        module = get_module(model, layer) if module is None else module   # module: the caller looked it up
        info = layer_info(model, layer)          # from probe_layers: calls per forward and the output's layout
        if info is not None and info.calls > 1:
            raise ValueError(reused_reason(model, layer, info.calls))
        layout = info.layout if info is not None else NCHW
        self.layout = layout

        def hook(mod, inputs, output):
            raw = first_tensor(output)
            units = raw if raw is None or layout.plain or layout.reason else layout.to_units(raw, layer)
            if edit is not None:
                if units is None or layout.reason:
                    raise ValueError(layout.reason or f"layer {layer!r} gives {type(output).__name__}, not a tensor; "
                                                      f"an edit needs [N, C, H, W] or [N, C] units")
                units = edit(units, layer)
                new = units if layout.plain else layout.from_units(units, raw)
                output = new if torch.is_tensor(output) else type(output)([new, *output[1:]])
            if retain_input:
                self.input = inputs[0].detach() if detach else inputs[0]
            if retain_output:
                kept = units if units is not None else output
                self.output = kept.detach() if detach and torch.is_tensor(kept) else kept
                self._version = _version(self._output) if torch.is_tensor(self._output) else None
            if stop:
                raise StopForward(layer)
            return output

        self._handle = module.register_forward_hook(hook)

    @property
    def output(self) -> Tensor | None:
        """The layer's output as it wrote it. A later in-place op on the same tensor (a functional
        ``relu_`` or ``x += ...`` in the model's forward; ``inplace`` modules are switched off by
        ``Subject``) would change it before it is read: that is one clear error, never silently
        other numbers."""
        o = self._output
        if o is not None and self.layout.reason:
            raise ValueError(self.layout.reason)
        if o is not None and self._version is not None and _version(o) != self._version:
            raise ValueError(f"layer {self.layer!r}: its output was modified in place after the layer ran (an "
                             f"in-place op follows it in the model's forward, e.g. F.relu(x, inplace=True) or "
                             f"x += y); hook the op after it, or make that op out of place")
        return o

    @output.setter
    def output(self, value: Tensor | None) -> None:
        self._output = value

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def __enter__(self) -> "Trace":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return exc_type is StopForward and False  # never swallow; use run_until_stop

    def __del__(self) -> None:
        self.close()


class TraceDict(OrderedDict):
    """Trace several layers (names or globs); ``td[name].output``. ``stop`` stops after the last.

    ``edit`` is one function applied at every traced layer (it receives the layer name), or a
    dict {layer: edit}.
    """

    def __init__(self, model: nn.Module, layers: str | Iterable[str], retain_output: bool = True,
                 detach: bool = True, edit: EditFn | dict[str, EditFn] | None = None, stop: bool = False,
                 retain_input: bool = False) -> None:
        super().__init__()
        names = resolve_layers(model, layers)
        modules = dict(model.named_modules())             # one walk for all layers (harvest builds one per batch)
        order = {n: i for i, n in enumerate(modules)}
        last = max(names, key=lambda n: order[n]) if names else None
        try:
            for n in names:
                e = edit.get(n) if isinstance(edit, dict) else edit
                self[n] = Trace(model, n, retain_output, detach, e, stop and n == last, retain_input, modules[n])
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        for t in self.values():
            t.close()

    def __enter__(self) -> "TraceDict":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return False


# --- the default layers every analysis falls back to -------------------------------------------
def style_blocks(generator: nn.Module) -> list[str]:
    """The children of a ``blocks`` ModuleList (a StyleNet-like model's style-modulated blocks)."""
    blocks = getattr(generator, "blocks", None)
    return [f"blocks.{i}" for i in range(len(blocks))] if isinstance(blocks, nn.ModuleList) else []


def default_layers(generator: nn.Module) -> list[str]:
    """The layers to look at when nobody named any.

    A StyleNet-like generator (a ``blocks`` ModuleList of style-modulated blocks): each block's
    output, where the style code has been injected, plus the decoder's conv layers. Any other
    model: every conv layer (``spatial_layers``).
    """
    names = style_blocks(generator)
    if names:
        dec = getattr(generator, "decoder", None)
        if isinstance(dec, nn.Module):
            names += [f"decoder.{n}" for n in spatial_layers(dec)]
        return names
    return spatial_layers(generator)


def default_unit_layer(generator: nn.Module) -> str:
    """One layer when nobody named one: the last style-modulated block of a StyleNet-like model,
    else the middle conv layer (the last conv of most generators only writes RGB). A model may name
    its own with a ``preferred_unit_layer`` attribute (a U-Net's middle conv is its 1x1 bottleneck)."""
    preferred = getattr(generator, "preferred_unit_layer", None)
    if isinstance(preferred, str) and preferred in dict(generator.named_modules()):
        return preferred
    blocks = style_blocks(generator)
    if blocks:
        return blocks[-1]
    convs = spatial_layers(generator)
    if not convs:
        raise LookupError(f"{type(generator).__name__} has no conv layer; name the layer (layer=...)")
    return convs[len(convs) // 2]


def modules_that_fire(model: nn.Module, names: list[str], call: Callable[[], object]) -> list[str]:
    """Which of ``names`` (modules of ``model``) run during ``call()``, in the order they first
    run (under ``torch.no_grad()``; the probe's hooks are removed, also when ``call`` raises)."""
    mods = dict(model.named_modules())
    fired: list[str] = []
    handles = [mods[n].register_forward_hook(lambda m, i, o, n=n: fired.append(n) if n not in fired else None)
               for n in names]
    try:
        with torch.no_grad():
            call()
    finally:
        for h in handles:
            h.remove()
    return fired
