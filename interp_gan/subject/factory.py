"""A user's ``nn.Module`` (``--model file.py:factory``) as a Subject: how it is read, decided once and said.

    module = call_factory(import_factory("my.py:make"), "my.py:make")   # one-line errors
    subject = module_subject(module, "my.py:make", torch.device("cpu"))
    probe_module_subject(subject, 128)      # -> the notes, also in subject.meta["model_notes"]

The rules (docs/models.md, "Your own model"):

- **mode and dtype**: analysed in eval mode (a module returned in training mode with batch norm or
  dropout is switched, and a note says so) and in float32 (float64 / float16 / bfloat16 weights are
  cast, said).
- **torch.compile**: the compiled wrapper's ``_orig_mod`` is analysed (hooks need the eager module).
  Refused in one line: meta weights, a ``forward`` needing more than the image (a style id).
- **input**: a copy of the content (a module writing into its input leaves the data alone); a
  module that fails on ``[N, 3, H, W]`` is tried channels last, as one grey channel (luma), and
  both: the first that runs is kept (``_forward``), said. One that runs on a batch of 1 only is
  refused naming that (hooks need one forward per batch).
- **output form**: a tensor ``[N, C, H, W]`` (or ``[N, H, W, C]`` when only the last axis is a
  channel count); from a tuple or list its first such tensor with 3 channels, else its first; from
  a dict, dataclass or named tuple the one under ``image``, ``images``, ``output``, ``out``,
  ``fake``, ``y``, ``sample``, ``pred``, ``rgb`` or ``img``, else its only such tensor (or its only
  3-channel one). Channels: 3; 1 (grey) is repeated; 4 (RGBA) loses its 4th; others are refused.
- **range**: ``module.output_range`` / ``module.input_range`` when the module declares them (e.g.
  ``(0, 1)``; the input range defaults to the output range); else the module that produced the
  output, when it is ``Tanh`` (-1, 1), ``Hardtanh`` (its min_val, max_val) or ``Sigmoid`` /
  ``Hardsigmoid`` (0, 1); else
  from the output of a seeded probe batch (noise in [-1, 1]): all values in [0, 1] -> (0, 1), all
  in [0, 255] with some above 20 -> (0, 255), otherwise (-1, 1); when over half of the probe's
  values lie outside that, content in [0, 255] then [0, 1] is tried, and one whose output stays
  at least 80% in that range is taken (``_other_range``). Content in [-1, 1] is mapped to
  the input range and the output from its range to [-1, 1], clamped. A forward that gives no
  gradient where one is asked for raises ``NoGradient`` (a ``RuntimeError`` too).
- **size**: an output of another height or width is resized to the input's (bilinear,
  antialiased when shrinking); one smaller by the same margin at a second probe size (valid
  convolutions) gets its border back by edge repetition instead (``margin``), aligned. A module that takes one size only declares ``fixed_size = (H, W)``
  (the pipeline then analyses at that size; a non-square one at max(H, W), the square content
  resized to (H, W) on the way in: ``geometry``) or ``size_multiple = m``.

The decisions that need a forward pass are made when the module is loaded, on a seeded probe batch
of 2 at 64 px (or its ``fixed_size``); a module that cannot run that batch is probed again at the
pipeline's image size (``probe_module_subject``), or else by its first call. A batch it cannot run
there is one ``ValueError`` saying what to declare.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interp_gan.subject.geometry import resize_note, to_model_size
from interp_gan.subject.protocol import Subject

__all__ = ["call_factory", "module_subject", "probe_module_subject", "ModuleReader", "ModuleFailed", "NoGradient"]

_IMAGE_KEYS = ("image", "images", "output", "out", "fake", "y", "sample", "pred", "rgb", "img")
_SQUASH = {nn.Tanh: (-1.0, 1.0), nn.Hardtanh: (-1.0, 1.0), nn.Sigmoid: (0.0, 1.0), nn.Hardsigmoid: (0.0, 1.0)}
_TRAIN_ONLY = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd, nn.Dropout)


class ModuleFailed(ValueError):
    """The module raised on a batch of content images (at that size, in that range)."""


class NoGradient(ValueError, RuntimeError):
    """The module's output carries no gradient to its input (a RuntimeError too, as autograd's own)."""


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


class _Attr(str):
    """A step into an output object's attribute (a dataclass's field), not a dict key."""


def _forward_needs(module: nn.Module) -> list[str]:
    """The arguments of ``module.forward`` beyond the image that have no default."""
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return []
    pos = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    kw = [p for p in params if p.kind == p.KEYWORD_ONLY]
    if not pos and not any(p.kind == p.VAR_POSITIONAL for p in params):
        return [p.name for p in kw if p.default is p.empty] or ["an image argument it does not take"]
    return [p.name for p in pos[1:] + kw if p.default is p.empty]


def _grey(x: Tensor) -> Tensor:
    """RGB [N,3,H,W] -> luma [N,1,H,W] (ITU-R BT.601 weights)."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


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
        self.nhwc_in = self.nhwc_out = self.grey_in = False
        self.margin: tuple[int, int] | None = None    # (H, W) pixels a valid-convolution module loses
        self.decided = False

    # --- the forward ------------------------------------------------------------------------------
    def _map_in(self, content: Tensor) -> Tensor:
        lo, hi = self.in_range or self.out_range or (-1.0, 1.0)
        x = content if (lo, hi) == (-1.0, 1.0) else (content + 1) * ((hi - lo) / 2) + lo
        if self.grey_in:
            x = _grey(x)
        if self.nhwc_in:
            x = x.permute(0, 2, 3, 1)
        dt = next((p.dtype for p in self.module.parameters()), torch.float32)
        x = x.to(dt)
        same = x.untyped_storage().data_ptr() == content.untyped_storage().data_ptr()
        return x.clone() if same else x      # a module that writes into its input leaves the data alone

    def _image(self, out: Any) -> Tensor:
        for step in self.pick:
            out = getattr(out, step) if isinstance(step, _Attr) else out[step]
        return out.permute(0, 3, 1, 2) if self.nhwc_out else out

    def _run(self, x: Tensor) -> Tensor:
        return self._image(self.module(self._map_in(x)))

    def __call__(self, content: Tensor, style_ids: Tensor, z: Tensor | None = None) -> Tensor:
        x = to_model_size(content, self.fixed_hw)
        if self.decided:
            y = self._run(x)
        else:       # the load-time probe could not run: the first call decides, from its own forward
            used = self.in_range or self.out_range
            y = self.decide(x, probe=False)     # no extra forward here: hooks may be tracing this call
            if (self.in_range or self.out_range) != (used or (-1.0, 1.0)):   # fed the wrong range: once more
                y = self._run(x)
        if torch.is_grad_enabled() and x.requires_grad and not y.requires_grad:
            why = ("its output is an integer image, which carries no gradient" if not y.is_floating_point() else
                   "its forward gives no gradient (torch.no_grad, inference_mode or .detach() inside it)")
            raise NoGradient(f"{_who(self.spec)}: {why}, and this analysis needs one; "
                             + ("return the float image before rounding" if not y.is_floating_point() else
                                "remove that from forward (the analyses switch gradients off themselves where "
                                "they need none)"))
        y = y.float()
        if y.shape[1] == 1:
            y = y.expand(-1, 3, -1, -1)
        elif y.shape[1] == 4:
            y = y[:, :3]
        lo, hi = self.out_range
        if (lo, hi) != (-1.0, 1.0):
            y = (y - lo) * (2.0 / (hi - lo)) - 1
        dh, dw = content.shape[-2] - y.shape[-2], content.shape[-1] - y.shape[-1]
        if self.margin is not None and (dh, dw) == self.margin:      # valid convolutions: the border back
            y = F.pad(y, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="replicate")
        if y.shape[-2:] != content.shape[-2:]:
            shrink = y.shape[-2] > content.shape[-2] or y.shape[-1] > content.shape[-1]
            y = F.interpolate(y, size=tuple(content.shape[-2:]), mode="bilinear", align_corners=False,
                              antialias=shrink)
        return y.clamp(-1, 1)

    # --- the decisions, made once on a probe batch ----------------------------------------------------
    def _find_image(self, out: Any, n: int, hw: list[int]) -> tuple[tuple, Tensor, str]:
        def ok(t: Any) -> bool:
            return torch.is_tensor(t) and t.ndim == 4 and t.shape[0] == n and t.dtype != torch.bool
        def rgb(t: Tensor) -> bool:      # 3 channels, first or last
            return t.shape[1] == 3 or (t.shape[-1] == 3 and list(t.shape[1:3]) != [3, 3])
        if ok(out):
            return (), out, ""
        fields = None
        if dataclasses.is_dataclass(out) and not isinstance(out, type):
            fields = {_Attr(f.name): getattr(out, f.name) for f in dataclasses.fields(out)}
        if isinstance(out, (tuple, list)) and not hasattr(out, "_fields"):
            hits = [i for i, t in enumerate(out) if ok(t)]
            best = next((i for i in hits if rgb(out[i])), hits[0] if hits else None)   # an RGB image before a map
            if best is not None:
                return (best,), out[best], f"output: element {best} of a {type(out).__name__} of {len(out)}"
        if isinstance(out, tuple) and hasattr(out, "_fields"):          # a named tuple: by field name
            fields = {_Attr(k): getattr(out, k) for k in out._fields}
        if isinstance(out, dict) or fields is not None:
            items = fields if fields is not None else out
            kind = "dict" if fields is None else type(out).__name__
            hits = [k for k in _IMAGE_KEYS if ok(items.get(k))] or [k for k, t in items.items() if ok(t)]
            if len(hits) > 1 and hits[0] not in _IMAGE_KEYS and sum(rgb(items[k]) for k in hits) == 1:
                hits = [k for k in hits if rgb(items[k])]
            if len(hits) == 1 or (hits and hits[0] in _IMAGE_KEYS):
                hits = [next(k for k in items if k == hits[0])]       # the key itself (a field stays a field)
                word = "entry" if fields is None else "field"
                return ((hits[0],), items[hits[0]],
                        f"output: the {kind}'s {str(hits[0])!r} {word} (of {', '.join(map(str, items))})")
            raise ValueError(f"{_who(self.spec)} returns a {kind} with keys {', '.join(map(str, items))[:200]}; "
                             f"expected one image [N, C, H, W] under {', '.join(_IMAGE_KEYS)} (or a single 4-d tensor)")
        what = (f"a tensor of shape {list(out.shape)}" if torch.is_tensor(out)
                else f"a {type(out).__name__}" + (f" of {len(out)}" if isinstance(out, (tuple, list)) else ""))
        raise ValueError(f"{_who(self.spec)} returns {what} for a batch of {n}; expected an image "
                         f"[{n}, 3, H, W] (or a tuple / dict holding one)")

    def _forward(self, content: Tensor) -> Any:
        """The module on ``content`` as it reads it now; on failure, the other readings in turn (channels
        last, one grey channel): the first that runs is kept and said. One that runs on a batch of one
        only is refused naming that."""
        from interp_gan.harvest.hooks import StopForward
        tries = [("", {})]
        if content.shape[-1] != 3:
            tries.append(("content given channels last ([N, H, W, 3])", {"nhwc_in": True}))
        tries += [("content given as one grey channel (luma)", {"grey_in": True}),
                  ("content given as one grey channel, channels last", {"grey_in": True, "nhwc_in": True})]
        first: Exception | None = None
        for how, flags in tries:
            for k in ("nhwc_in", "grey_in"):
                setattr(self, k, flags.get(k, False))
            try:
                return self.module(self._map_in(content)), how
            except StopForward:
                raise
            except Exception as e:
                first = first or e
        for k in ("nhwc_in", "grey_in"):
            setattr(self, k, False)
        if content.shape[0] > 1:
            try:
                self._find_image(self.module(self._map_in(content[:1])), 1, list(content.shape[-2:]))
            except StopForward:
                raise
            except Exception:
                pass
            else:
                first_line = (str(first).strip().splitlines() or [""])[0][:200]
                raise ValueError(f"{_who(self.spec)} runs on a batch of 1 only (a batch of {content.shape[0]} "
                                 f"fails: {type(first).__name__}: {first_line}); the analyses run batches and "
                                 f"their hooks need one forward per batch: make it take any batch size (e.g. "
                                 f"x.shape[0] where it reshapes to 1)")
        raise self._failed(content, first)

    def _failed(self, content: Tensor, e: Exception) -> ValueError:
        n, size = content.shape[0], list(content.shape[-2:])
        lo, hi = self.in_range or self.out_range or (-1.0, 1.0)
        first = (str(e).strip().splitlines() or [""])[0][:300]
        chans = re.search(r"to have (\d+) channels, but got 3 channels", first)
        if chans:
            return ModuleFailed(f"{_who(self.spec)}: its first layer takes {chans.group(1)} input channels and the "
                                f"content images are RGB (3) ({type(e).__name__}: {first}); wrap it so that it takes "
                                f"an RGB image (e.g. add the extra channels in forward), or return a Subject")
        return ModuleFailed(f"{_who(self.spec)}: the module fails on a [{n}, 3, {size[0]}, {size[1]}] batch in "
                            f"[{lo:g}, {hi:g}] ({type(e).__name__}: {first}); if it takes one size only, set "
                            f"fixed_size = (H, W) on it, or size_multiple = m if H and W must be multiples of m (or "
                            f"--set image_size=N); for another input, return a Subject from the factory")

    def decide(self, content: Tensor, probe: bool = True) -> Tensor:
        """Run ``content`` once and read the output's form, channels, range and size from it; -> the image.
        ``probe``: a probe batch, not an analysis's call (a smaller output may then be run once more at
        another size, to tell a cropped border from a rescale)."""
        produced: list[tuple[Tensor, nn.Module]] = []      # (output, squashing module), kept alive
        hooks = [m.register_forward_hook(lambda m, i, o: produced.append((o, m)))
                 for m in self.module.modules() if type(m) in _SQUASH]
        n, size = content.shape[0], list(content.shape[-2:])
        try:
            out, how_in = self._forward(content)
        finally:
            for h in hooks:
                h.remove()
        self.pick, _, how = self._find_image(out, n, size)
        notes = [how_in] if how_in else []
        notes += [how] if how else []
        raw = self._image_raw(out)
        if raw.shape[1] not in (1, 3, 4) and raw.shape[-1] in (1, 3, 4):      # an image channels last
            self.nhwc_out = True
            notes.append(f"output is channels last ({list(raw.shape)}): read as [N, H, W, C]")
        img = raw.permute(0, 3, 1, 2) if self.nhwc_out else raw
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
            return o is raw or (torch.is_tensor(o) and o.numel() == raw.numel() and
                                o.untyped_storage().data_ptr() == raw.untyped_storage().data_ptr())
        squash = next((m for o, m in produced if same(o)), None)
        if self.out_range is not None:
            why = "declared by the module's output_range"
        elif not img.is_floating_point():
            self.out_range, why = (0.0, 255.0), f"an integer ({str(img.dtype).replace('torch.', '')}) image"
        elif squash is not None:
            self.out_range = ((float(squash.min_val), float(squash.max_val)) if type(squash) is nn.Hardtanh
                              else _SQUASH[type(squash)])     # Hardtanh(0, 1): its own bounds
            why = f"its last layer is {type(squash).__name__}"
        else:
            self.out_range = ((0.0, 1.0) if lo_v >= 0 and hi_v <= 1 else
                              (0.0, 255.0) if lo_v >= 0 and 20 < hi_v <= 255 else (-1.0, 1.0))
            why = (f"inferred from a probe batch, whose values were in [{lo_v:.3g}, {hi_v:.3g}]; "
                   f"set output_range on the module to choose")
            other = self._other_range(content, y) if self.in_range is None and probe else None
            if other is not None:
                self.out_range, why, img, y = other
        lo, hi = self.out_range
        lo_in, hi_in = self.in_range or self.out_range
        notes.append(f"output range [{lo:g}, {hi:g}] ({why}); content given in [{lo_in:g}, {hi_in:g}]"
                     + ("" if self.in_range else " (input_range on the module to choose)"))
        outside = float(((y < lo) | (y > hi)).float().mean())
        if outside > 0.001:
            notes.append(f"{outside:.1%} of a probe batch's output values lie outside [{lo:g}, {hi:g}]: clamped")
        if list(y.shape[-2:]) != size and probe and self._same_margin(content, y.shape[-2:]):
            dh, dw = self.margin
            notes.append(f"output is {dh} x {dw} px smaller than its input at two input sizes (valid convolutions "
                         f"crop a border): its edge is repeated back around it, so each output pixel stays over "
                         f"the input pixel it was computed at")
        elif list(y.shape[-2:]) != size:
            notes.append(f"output size differs from the input's ({y.shape[-2]}x{y.shape[-1]} for a {size[0]}x{size[1]} "
                         f"input): resized to the input's size (bilinear)")
        self.notes += notes
        self.decided, self.probed = True, size
        return img

    def _same_margin(self, content: Tensor, out_hw) -> bool:
        """Whether an output smaller than its input loses the same number of pixels at another input size
        (a border cropped by valid convolutions, not a rescale): then ``margin`` is set. One more probe
        forward, 16 px (or a size_multiple) larger."""
        dh, dw = content.shape[-2] - out_hw[0], content.shape[-1] - out_hw[1]
        if self.fixed_hw is not None or getattr(self.module, "fixed_size", None) or dh <= 0 or dw <= 0:
            return False
        m = int(getattr(self.module, "size_multiple", 1) or 1)
        step = -(-16 // m) * m
        bigger = F.interpolate(content, size=(content.shape[-2] + step, content.shape[-1] + step), mode="bilinear",
                               align_corners=False)
        try:
            with torch.no_grad():
                hw = self._run(bigger).shape[-2:]
        except Exception:        # noqa: BLE001 - a module of one size: resized as before
            return False
        if (bigger.shape[-2] - hw[0], bigger.shape[-1] - hw[1]) != (dh, dw):
            return False
        self.margin = (dh, dw)
        return True

    def _image_raw(self, out: Any) -> Tensor:
        for step in self.pick:
            out = getattr(out, step) if isinstance(step, _Attr) else out[step]
        return out

    def _other_range(self, content: Tensor, y: Tensor):
        """When most of the probe's output lies outside the range read from it (content in [-1, 1]), the
        module may take and give [0, 255] or [0, 1]: probe each; one whose output mostly stays in its own
        range wins -> (range, why, image, values), else None."""
        lo, hi = self.out_range
        share = float(((y < lo) | (y > hi)).float().mean())
        if share <= 0.5:
            return None
        for cand in ((0.0, 255.0), (0.0, 1.0)):
            self.out_range = cand
            try:
                with torch.no_grad():
                    img = self._run(content)
            except Exception:
                continue
            v = img.detach().float()
            out_share = float(((v < cand[0]) | (v > cand[1])).float().mean())
            if out_share <= 0.2:
                return cand, (f"inferred: with content in [-1, 1], {share:.0%} of its output lay outside [{lo:g}, "
                              f"{hi:g}]; with content in [{cand[0]:g}, {cand[1]:g}], {1 - out_share:.0%} lies in "
                              f"[{cand[0]:g}, {cand[1]:g}]; set input_range and output_range on the module to "
                              f"choose"), img, v
        self.out_range = (lo, hi)
        return None


def module_subject(module: nn.Module, spec: str, device: torch.device) -> Subject:
    """The Subject of a factory's module: eval mode and float32, each change said in ``meta["model_notes"]``."""
    notes: list[str] = []
    inner = getattr(module, "_orig_mod", None)          # torch.compile's wrapper: hooks need the module itself
    if isinstance(inner, nn.Module) and type(module).__name__ == "OptimizedModule":
        module = inner
        notes.append("torch.compile'd: analysed uncompiled (hooks and ablations need the eager module)")
    if any(t.is_meta for t in [*module.parameters(), *module.buffers()]):
        raise ValueError(f"{_who(spec)}: the module's weights are on the meta device (shapes without values); "
                         f"load them in the factory (module.to_empty(device='cpu') then load_state_dict(...), or "
                         f"load_state_dict(..., assign=True)) and return it")
    needs = _forward_needs(module)
    if needs:
        raise ValueError(f"{_who(spec)}: {type(module).__name__}.forward needs {', '.join(needs)} besides the image, "
                         f"and the module is called with the image only; give {'them' if len(needs) > 1 else 'it'} "
                         f"a default, or return a Subject (interp_gan.subject.protocol) that passes the style")
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
    g = torch.Generator().manual_seed(seed)
    x = to_model_size((torch.rand(2, 3, size, size, generator=g) * 2 - 1).to(subject.device), reader.fixed_hw)
    with torch.no_grad():
        if not reader.decided:
            reader.decide(x)
        elif reader.probed != list(x.shape[-2:]):     # decided at another size: this one must run too
            from interp_gan.harvest.hooks import StopForward
            try:
                reader._run(x)
            except StopForward:
                raise
            except Exception as e:
                raise reader._failed(x, e) from None
    return list(reader.notes)
