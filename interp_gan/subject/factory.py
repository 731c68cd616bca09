"""A user's ``nn.Module`` (``--model file.py:factory``) as a Subject: how it is read, decided once and said.

    module = call_factory(import_factory("my.py:make"), "my.py:make")   # one-line errors
    subject = module_subject(module, "my.py:make", torch.device("cpu"))
    probe_module_subject(subject, 128)      # -> the notes, also in subject.meta["model_notes"]

The rules (docs/models.md, "Your own model"):

- **mode and dtype**: analysed in eval mode (a module returned in training mode with batch norm or
  dropout is switched, and a note says so) and in float32 (float64 / float16 / bfloat16 weights are
  cast, said).
- **output form**: a tensor ``[N, C, H, W]``; from a tuple or list its first such tensor; from a
  dict the one under ``image``, ``images``, ``output``, ``out``, ``fake`` or ``y``, else its only
  such tensor. Channels: 3; 1 (grey) is repeated; 4 (RGBA) loses its 4th; others are refused.
- **range**: ``module.output_range`` / ``module.input_range`` when the module declares them (e.g.
  ``(0, 1)``; the input range defaults to the output range); else the module that produced the
  output, when it is ``Tanh`` / ``Hardtanh`` (-1, 1) or ``Sigmoid`` / ``Hardsigmoid`` (0, 1); else
  from the output of a seeded probe batch (noise in [-1, 1]): all values in [0, 1] -> (0, 1), all
  in [0, 255] with some above 20 -> (0, 255), otherwise (-1, 1). Content in [-1, 1] is mapped to
  the input range and the output from its range to [-1, 1], clamped.
- **size**: an output of another height or width is resized to the input's (bilinear,
  antialiased when shrinking). A module that takes one size only declares ``fixed_size = (H, W)``
  (the pipeline then analyses at that size; a non-square one at max(H, W), the square content
  resized to (H, W) on the way in: ``geometry``) or ``size_multiple = m``.

The decisions that need a forward pass are made when the module is loaded, on a seeded probe batch
of 2 at 64 px (or its ``fixed_size``); a module that cannot run that batch is probed again at the
pipeline's image size (``probe_module_subject``), or else by its first call. A batch it cannot run
there is one ``ValueError`` saying what to declare.
"""
from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interp_gan.subject.geometry import resize_note, to_model_size
from interp_gan.subject.protocol import Subject

__all__ = ["call_factory", "module_subject", "probe_module_subject", "ModuleReader", "ModuleFailed"]

_IMAGE_KEYS = ("image", "images", "output", "out", "fake", "y")
_SQUASH = {nn.Tanh: (-1.0, 1.0), nn.Hardtanh: (-1.0, 1.0), nn.Sigmoid: (0.0, 1.0), nn.Hardsigmoid: (0.0, 1.0)}
_TRAIN_ONLY = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd, nn.Dropout)


class ModuleFailed(ValueError):
    """The module raised on a batch of content images (at that size, in that range)."""


def call_factory(factory: Any, spec: str) -> Any:
    """Call a ``--model`` factory with no arguments (an ``nn.Module`` object is taken as is).
    Not callable, required arguments, or an exception inside it: one ``ValueError`` line."""
    if isinstance(factory, nn.Module):
        return factory
    if not callable(factory):
        raise ValueError(f"--model {spec} is not callable (a {type(factory).__name__} object); expected a function "
                         f"with no arguments returning an nn.Module or a Subject")
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        params = []
    required = [p.name for p in params if p.default is p.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if required:
        raise ValueError(f"--model {spec} takes required argument(s) {', '.join(required)}, and --model calls it "
                         f"with none: give them defaults, or wrap it (def make(): return "
                         f"{getattr(factory, '__name__', 'factory')}(...))")
    try:
        return factory()
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise ValueError(f"--model {spec}: the factory raised {type(e).__name__}: {first}") from e


def _who(spec: str) -> str:
    """How messages name the module: ``--model my.py:make``, or ``Subject.from_module(Net)``."""
    return spec if spec.startswith("Subject.") else f"--model {spec}"


def _range(value: Any, name: str, spec: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        lo = hi = None
    if lo is None or not lo < hi:
        raise ValueError(f"{_who(spec)}: {name} = {value!r}; expected (low, high) with low < high, e.g. (0, 1)")
    return lo, hi


class ModuleReader:
    """The ``_generate`` of a module subject: maps content in, picks and fixes the image, maps it out."""

    def __init__(self, module: nn.Module, spec: str, notes: list[str]) -> None:
        self.module, self.spec, self.notes = module, spec, notes
        declared = getattr(module, "output_range", None)
        self.out_range = _range(declared, "output_range", spec) if declared is not None else None
        declared_in = getattr(module, "input_range", None)
        self.in_range = _range(declared_in, "input_range", spec) if declared_in is not None else None
        fixed = getattr(module, "fixed_size", None)    # one non-square size: square content resized to it
        self.fixed_hw = (int(fixed[0]), int(fixed[1])) if fixed and int(fixed[0]) != int(fixed[1]) else None
        self.pick: tuple = ()           # () a tensor; (i,) a sequence's element; ("key",) a dict's entry
        self.decided = False

    # --- the forward ------------------------------------------------------------------------------
    def _map_in(self, content: Tensor) -> Tensor:
        lo, hi = self.in_range or self.out_range or (-1.0, 1.0)
        x = content if (lo, hi) == (-1.0, 1.0) else (content + 1) * ((hi - lo) / 2) + lo
        dt = next((p.dtype for p in self.module.parameters()), torch.float32)
        return x.to(dt)

    def _image(self, out: Any) -> Tensor:
        for step in self.pick:
            out = out[step]
        return out

    def __call__(self, content: Tensor, style_ids: Tensor, z: Tensor | None = None) -> Tensor:
        x = to_model_size(content, self.fixed_hw)
        if self.decided:
            y = self._image(self.module(self._map_in(x)))
        else:       # the load-time probe could not run: the first call decides, from its own forward
            used = self.in_range or self.out_range
            y = self.decide(x)
            if (self.in_range or self.out_range) != (used or (-1.0, 1.0)):   # fed the wrong range: once more
                y = self._image(self.module(self._map_in(x)))
        y = y.float()
        if y.shape[1] == 1:
            y = y.expand(-1, 3, -1, -1)
        elif y.shape[1] == 4:
            y = y[:, :3]
        lo, hi = self.out_range
        if (lo, hi) != (-1.0, 1.0):
            y = (y - lo) * (2.0 / (hi - lo)) - 1
        if y.shape[-2:] != content.shape[-2:]:
            shrink = y.shape[-2] > content.shape[-2] or y.shape[-1] > content.shape[-1]
            y = F.interpolate(y, size=tuple(content.shape[-2:]), mode="bilinear", align_corners=False,
                              antialias=shrink)
        return y.clamp(-1, 1)

    # --- the decisions, made once on a probe batch ----------------------------------------------------
    def _find_image(self, out: Any, n: int) -> tuple[tuple, Tensor, str]:
        def ok(t: Any) -> bool:
            return torch.is_tensor(t) and t.ndim == 4 and t.shape[0] == n and t.dtype != torch.bool
        if ok(out):
            return (), out, ""
        if isinstance(out, (tuple, list)):
            for i, t in enumerate(out):
                if ok(t):
                    return (i,), t, f"output: element {i} of a {type(out).__name__} of {len(out)}"
        if isinstance(out, dict):
            hits = [k for k in _IMAGE_KEYS if ok(out.get(k))] or [k for k, t in out.items() if ok(t)]
            if len(hits) == 1 or (hits and hits[0] in _IMAGE_KEYS):
                return (hits[0],), out[hits[0]], f"output: the dict's {hits[0]!r} entry (of {', '.join(map(str, out))})"
            raise ValueError(f"{_who(self.spec)} returns a dict with keys {', '.join(map(str, out))[:200]}; expected "
                             f"one image [N, C, H, W] under {', '.join(_IMAGE_KEYS)} (or a single 4-d tensor)")
        what = (f"a tensor of shape {list(out.shape)}" if torch.is_tensor(out)
                else f"a {type(out).__name__}" + (f" of {len(out)}" if isinstance(out, (tuple, list)) else ""))
        raise ValueError(f"{_who(self.spec)} returns {what} for a batch of {n}; expected an image "
                         f"[{n}, 3, H, W] (or a tuple / dict holding one)")

    def decide(self, content: Tensor) -> Tensor:
        """Run ``content`` once and read the output's form, channels, range and size from it; -> the image."""
        from interp_gan.harvest.hooks import StopForward

        produced: list[tuple[Tensor, type]] = []      # (output, squashing module type), kept alive
        hooks = [m.register_forward_hook(lambda m, i, o: produced.append((o, type(m))))
                 for m in self.module.modules() if type(m) in _SQUASH]
        n, size = content.shape[0], list(content.shape[-2:])
        try:
            out = self.module(self._map_in(content))
        except StopForward:
            raise
        except Exception as e:
            lo, hi = self.in_range or self.out_range or (-1.0, 1.0)
            first = (str(e).strip().splitlines() or [""])[0][:300]
            raise ModuleFailed(f"{_who(self.spec)}: the module fails on a [{n}, 3, {size[0]}, {size[1]}] batch in "
                             f"[{lo:g}, {hi:g}] ({type(e).__name__}: {first}); if it takes one size only, set "
                             f"fixed_size = (H, W) on it (or --set image_size=N); for another input, return a "
                             f"Subject from the factory") from None
        finally:
            for h in hooks:
                h.remove()
        self.pick, img, how = self._find_image(out, n)
        notes = [how] if how else []
        c = img.shape[1]
        if c not in (1, 3, 4):
            raise ValueError(f"{_who(self.spec)} returns {c} channels ({list(img.shape)}); expected 3 (RGB), "
                             f"1 (grey, repeated) or 4 (RGBA, the 4th dropped)")
        if c != 3:
            notes.append("output has 1 channel: read as grey, repeated to RGB" if c == 1
                         else "output has 4 channels: the first 3 read as RGB, the 4th dropped")
        y = img.detach().float()
        lo_v, hi_v = float(y.min()), float(y.max())
        def same(o: Any) -> bool:     # the squashing module's output itself, or a view of all of it
            return o is img or (torch.is_tensor(o) and o.numel() == img.numel() and
                                o.untyped_storage().data_ptr() == img.untyped_storage().data_ptr())
        squash = next((kind for o, kind in produced if same(o)), None)
        if self.out_range is not None:
            why = "declared by the module's output_range"
        elif not img.is_floating_point():
            self.out_range, why = (0.0, 255.0), f"an integer ({str(img.dtype).replace('torch.', '')}) image"
        elif squash is not None:
            self.out_range, why = _SQUASH[squash], f"its last layer is {squash.__name__}"
        else:
            self.out_range = ((0.0, 1.0) if lo_v >= 0 and hi_v <= 1 else
                              (0.0, 255.0) if lo_v >= 0 and 20 < hi_v <= 255 else (-1.0, 1.0))
            why = (f"inferred from a probe batch, whose values were in [{lo_v:.3g}, {hi_v:.3g}]; "
                   f"set output_range on the module to choose")
        lo, hi = self.out_range
        lo_in, hi_in = self.in_range or self.out_range
        notes.append(f"output range [{lo:g}, {hi:g}] ({why}); content given in [{lo_in:g}, {hi_in:g}]"
                     + ("" if self.in_range else " (input_range on the module to choose)"))
        outside = float(((y < lo) | (y > hi)).float().mean())
        if outside > 0.001:
            notes.append(f"{outside:.1%} of a probe batch's output values lie outside [{lo:g}, {hi:g}]: clamped")
        if list(y.shape[-2:]) != size:
            notes.append(f"output size differs from the input's ({y.shape[-2]}x{y.shape[-1]} for a {size[0]}x{size[1]} "
                         f"input): resized to the input's size (bilinear)")
        self.notes += notes
        self.decided = True
        return img


def module_subject(module: nn.Module, spec: str, device: torch.device) -> Subject:
    """The Subject of a factory's module: eval mode and float32, each change said in ``meta["model_notes"]``."""
    notes: list[str] = []
    training = [m for m in module.modules() if m.training and isinstance(m, _TRAIN_ONLY)]
    if training:
        kinds = ", ".join(sorted({type(m).__name__ for m in training}))
        notes.append(f"returned in training mode: analysed in eval mode ({kinds}: batch norm uses its running "
                     f"statistics, dropout is off)")
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in [*module.parameters(), *module.buffers()]
                     if t.is_floating_point() and t.dtype != torch.float32})
    if dtypes:
        module = module.float()
        notes.append(f"weights in {', '.join(dtypes)}: analysed in float32")
    module = module.to(device).eval()
    reader = ModuleReader(module, spec, notes)
    if reader.fixed_hw:
        notes.append(resize_note(reader.fixed_hw))
    subject = Subject(generator=module, style_names=["output"], _generate=reader,
                      meta={"model": {"name": "factory", "spec": spec}, "model_notes": notes}).eval()
    fixed = getattr(module, "fixed_size", None)
    m = int(getattr(module, "size_multiple", 1) or 1)
    try:                       # decided now, before anything hooks the module (a trace sees no probe)
        probe_module_subject(subject, int(max(fixed)) if fixed else -(-64 // m) * m)
    except ModuleFailed:       # e.g. a size it cannot take: the pipeline probes again at its own size
        pass
    return subject


def probe_module_subject(subject: Subject, size: int, seed: int = 0) -> list[str]:
    """Make a factory subject's decisions on a seeded [2, 3, size, size] batch in [-1, 1], if not
    made yet; -> its notes. Any other subject: []."""
    reader = subject._generate
    if not isinstance(reader, ModuleReader):
        return []
    if not reader.decided:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            x = (torch.rand(2, 3, size, size, generator=g) * 2 - 1).to(subject.device)
            reader.decide(to_model_size(x, reader.fixed_hw))
    return list(reader.notes)
