"""Model edits as first-class objects: ablate / insert / scale units, apply them, save them.

    from interp_gan.edits import ModelEdit
    e = ModelEdit.ablate("blocks.3.conv2", [12, 40])            # chain: .scale(layer, units, 0.5)
    with e.apply(subject):                                      # hooks on subject.generator
        images = subject.generate(content, style_ids, z)
    e.save("edited.safetensors", source="runs/demo/checkpoint.safetensors")
    subject = load_subject("edited.safetensors")                # the edit is active: every analysis sees it

    interp-gan edit CHECKPOINT --ablate "blocks.3.conv2:12,40" [--insert "layer:units=value"]
                    [--scale "layer:units=factor"] --out edited.safetensors

Semantics are the hooks' (``harvest.hooks``, the ones the ablation analysis uses): an edit acts
on the **output of the named module**, unit = output channel. ``ablate`` sets the units to
``value`` (default 0), ``insert`` forces them to ``value``, ``scale`` multiplies them by ``factor``.

Saving writes a copy of the source checkpoint (every tensor, D and classifiers included) whose
metadata records each edit (``meta["edits"]``: layer, units, kind, value, how it is applied, the
source file's sha256) and ``meta["edited_from"]``. An edit is **baked into the weights** when that
is bit-for-bit the hook's result:

- ablate / insert on an ``nn.Conv2d`` or ``nn.Linear``: the output channel's weights are set to 0
  and its bias to ``value``, so the module's raw output on that channel is exactly ``value``
  (0·x sums to 0 for finite inputs). What follows the module (an InstanceNorm, an activation, a
  residual add) then sees exactly what it sees under the hook, so no later normalisation can
  "undo" the edit relative to the hook: both are the same forward.
- scale by a power of two on such a module: weights and bias times ``factor`` (a power-of-two
  multiplication is exact in floating point, so every partial sum scales exactly).

Everything else (a block's output, a norm layer, a non-power-of-two scale, a module without bias
asked for a nonzero value, a generator whose module names differ from the stored keys) is
recorded with ``applied: "hook"`` and re-applied as a forward hook by ``load_subject``
(``apply_recorded_edits``), so analyses, ``inspect`` and reports run on the edited model either way.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import Tensor, nn

from interp_gan.edit_meta import describe_edit, describe_edits

__all__ = ["ModelEdit", "UnitEdit", "AppliedEdit", "apply_recorded_edits", "describe_edits", "parse_edit_arg",
           "edit_checkpoint", "KINDS"]

KINDS = ("ablate", "insert", "scale")


@dataclass(frozen=True)
class UnitEdit:
    """One edit of some units (output channels) of one layer's output."""
    layer: str
    units: tuple[int, ...]
    kind: str = "ablate"
    value: float = 0.0                  # ablate / insert: the value; scale: the factor

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"edit kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if not self.layer:
            raise ValueError("an edit needs a layer name")
        units = tuple(int(u) for u in self.units)
        if not units:
            raise ValueError(f"edit of {self.layer!r}: give at least one unit")
        if min(units) < 0:
            raise ValueError(f"edit of {self.layer!r}: unit indices must be >= 0, got {list(units)}")
        if len(set(units)) != len(units):
            raise ValueError(f"edit of {self.layer!r}: repeated unit in {list(units)}")
        if not math.isfinite(float(self.value)):
            raise ValueError(f"edit of {self.layer!r}: the value must be finite, got {self.value}")
        object.__setattr__(self, "units", units)
        object.__setattr__(self, "value", float(self.value))

    def hook_fn(self):
        """x -> x' on the module's output: the same arithmetic as ``harvest.hooks.ablate/insert``."""
        units, kind, value = list(self.units), self.kind, self.value

        def fn(x: Tensor, layer: str = "") -> Tensor:
            if max(units) >= x.shape[1]:
                raise IndexError(f"edit unit {max(units)} out of range for layer {layer!r} with {x.shape[1]} units")
            if kind == "scale":
                out = x.clone()
                out[:, units] = x[:, units] * value
                return out
            from interp_gan.harvest.hooks import ablate, insert
            return (ablate if kind == "ablate" else insert)(units, value)(x, layer)
        return fn

    def describe(self) -> str:
        return describe_edit(self.to_dict())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["units"] = list(self.units)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "UnitEdit":
        return cls(layer=str(d["layer"]), units=tuple(d["units"]), kind=str(d.get("kind", "ablate")),
                   value=float(d.get("value", 0.0)))


class _both:
    """A method callable on the class (start a new edit) or on an instance (append to it)."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def __get__(self, obj, cls):
        def call(*a, **kw):
            return self.fn(obj if obj is not None else cls(), *a, **kw)
        call.__doc__ = self.fn.__doc__
        return call


class AppliedEdit:
    """Hooks of a ``ModelEdit`` on a subject; ``remove()`` or leave the ``with`` block to undo."""

    def __init__(self, subject, handles: list, recorded: list[dict]) -> None:
        self.subject, self._handles, self._recorded = subject, handles, recorded

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        edits = self.subject.meta.get("edits")
        if isinstance(edits, list):
            for r in self._recorded:
                if r in edits:
                    edits.remove(r)
        self._recorded = []

    def __enter__(self):
        return self.subject

    def __exit__(self, *exc) -> bool:
        self.remove()
        return False


class ModelEdit:
    """An ordered list of ``UnitEdit`` s; build with ``ModelEdit.ablate(...)`` and chain."""

    def __init__(self, edits: Iterable[UnitEdit] = ()) -> None:
        self.edits: list[UnitEdit] = list(edits)

    def __repr__(self) -> str:
        return f"ModelEdit({'; '.join(e.describe() for e in self.edits) or 'nothing'})"

    def __add__(self, other: "ModelEdit") -> "ModelEdit":
        return ModelEdit(self.edits + other.edits)

    @_both
    def ablate(self, layer: str, units: Sequence[int], value: float = 0.0) -> "ModelEdit":
        """Set ``units`` of ``layer``'s output to ``value`` (0: zero ablation)."""
        return ModelEdit(self.edits + [UnitEdit(layer, tuple(units), "ablate", value)])

    @_both
    def insert(self, layer: str, units: Sequence[int], value: float) -> "ModelEdit":
        """Force ``units`` of ``layer``'s output to ``value`` everywhere."""
        return ModelEdit(self.edits + [UnitEdit(layer, tuple(units), "insert", value)])

    @_both
    def scale(self, layer: str, units: Sequence[int], factor: float) -> "ModelEdit":
        """Multiply ``units`` of ``layer``'s output by ``factor``."""
        return ModelEdit(self.edits + [UnitEdit(layer, tuple(units), "scale", factor)])

    def describe(self) -> str:
        return "; ".join(e.describe() for e in self.edits)

    # --- in memory ----------------------------------------------------------------------------
    def apply(self, subject) -> AppliedEdit:
        """Register one forward hook per edit on ``subject.generator`` (kept until ``remove()``
        or the end of a ``with`` block) and record the edits in ``subject.meta["edits"]``."""
        from interp_gan.harvest.hooks import get_module

        handles, recorded = [], []
        try:
            for e in self.edits:
                mod = get_module(subject.generator, e.layer)
                fn = e.hook_fn()
                handles.append(mod.register_forward_hook(lambda m, i, o, fn=fn, n=e.layer: fn(o, n)))
                recorded.append(e.to_dict() | {"applied": "hook (in memory)"})
        except Exception:
            for h in handles:
                h.remove()
            raise
        subject.meta.setdefault("edits", []).extend(recorded)
        return AppliedEdit(subject, handles, recorded)

    # --- on disk ------------------------------------------------------------------------------
    def save(self, path: str | Path, source: str | Path | None = None, subject=None) -> Path:
        """Write ``source`` (default: the checkpoint ``subject`` was loaded from) with this edit
        to ``path`` (never overwritten); returns ``path``."""
        if source is None:
            src = (subject.meta.get("checkpoint_path") if subject is not None else None)
            if not src:
                raise ValueError("ModelEdit.save: give source=<the .safetensors checkpoint to edit>")
            source = src
        return edit_checkpoint(source, path, self)


def apply_recorded_edits(subject):
    """Re-apply the hook-applied edits recorded in ``subject.meta["edits"]`` (``load_subject``
    calls this); baked ones are already in the weights. Returns the subject."""
    from interp_gan.harvest.hooks import get_module

    handles = []
    for d in subject.meta.get("edits") or []:
        if d.get("applied") != "hook":
            continue
        e = UnitEdit.from_dict(d)
        fn = e.hook_fn()
        handles.append(get_module(subject.generator, e.layer).register_forward_hook(
            lambda m, i, o, fn=fn, n=e.layer: fn(o, n)))
    if handles:
        subject._edit_hooks = handles   # kept alive with the subject
    return subject


def parse_edit_arg(kind: str, text: str) -> UnitEdit:
    """CLI strings: ablate 'layer:1,2[=value]', insert 'layer:1,2=value', scale 'layer:1,2=factor'."""
    if ":" not in text:
        raise ValueError(f"--{kind} expects LAYER:UNITS{'=VALUE' if kind != 'ablate' else '[=VALUE]'} "
                         f"(e.g. blocks.3.conv2:12,40), got {text!r}")
    layer, rest = text.rsplit(":", 1)
    units_s, eq, value_s = rest.partition("=")
    if kind != "ablate" and not eq:
        raise ValueError(f"--{kind} expects LAYER:UNITS={'FACTOR' if kind == 'scale' else 'VALUE'}, got {text!r}")
    try:
        units = tuple(int(u) for u in units_s.split(",") if u.strip())
    except ValueError:
        raise ValueError(f"--{kind} {text!r}: units must be integers separated by commas") from None
    try:
        value = float(value_s) if eq else 0.0
    except ValueError:
        raise ValueError(f"--{kind} {text!r}: {value_s!r} is not a number") from None
    return UnitEdit(layer.strip(), units, kind, value)


# --- writing an edited checkpoint ---------------------------------------------------------------
def _is_pow2(f: float) -> bool:
    if f == 0 or not math.isfinite(f):
        return False
    m, _ = math.frexp(abs(f))
    return m == 0.5


def _n_units(subject, layer: str, mod: nn.Module) -> int | None:
    if isinstance(mod, nn.Conv2d):
        return mod.out_channels
    if isinstance(mod, nn.Linear):
        return mod.out_features
    shape: list = []
    h = mod.register_forward_hook(lambda m, i, o: shape.append(tuple(o.shape)) if torch.is_tensor(o) else None)
    try:
        with torch.no_grad():
            subject.generate(torch.zeros(1, 3, 64, 64, device=subject.device), torch.zeros(1, dtype=torch.long),
                             subject.sample_z(1) if subject.latent_dim else None)
    except Exception:  # noqa: BLE001 - the hook checks the range at run time anyway
        return None
    finally:
        h.remove()
    return shape[0][1] if shape and len(shape[0]) > 1 else None


def _bake(e: UnitEdit, mod: nn.Module, tensors: dict[str, Tensor]) -> bool:
    """Edit the stored weights of ``mod`` in ``tensors`` when that is exact; True if done."""
    if not isinstance(mod, (nn.Conv2d, nn.Linear)):
        return False
    wk, bk = f"G.{e.layer}.weight", f"G.{e.layer}.bias"
    if wk not in tensors or not torch.equal(tensors[wk], mod.weight.detach().cpu().to(tensors[wk].dtype)):
        return False                         # the generator's names are not the stored keys: use a hook
    has_bias = mod.bias is not None and bk in tensors
    idx = list(e.units)
    if e.kind in ("ablate", "insert"):
        if e.value != 0 and not has_bias:
            return False
        w = tensors[wk].clone()
        w[idx] = 0
        tensors[wk] = w
        if has_bias:
            b = tensors[bk].clone()
            b[idx] = e.value
            tensors[bk] = b
        return True
    if not _is_pow2(e.value):
        return False
    w = tensors[wk].clone()
    w[idx] = w[idx] * e.value
    tensors[wk] = w
    if has_bias:
        b = tensors[bk].clone()
        b[idx] = b[idx] * e.value
        tensors[bk] = b
    return True


def edit_checkpoint(src: str | Path, out: str | Path, edit: ModelEdit | Iterable[UnitEdit]) -> Path:
    """Write ``src`` (an interp_gan ``.safetensors``: trained or converted) with ``edit`` to ``out``."""
    from safetensors import safe_open
    from safetensors.torch import save as safetensors_bytes

    from interp_gan import __version__
    from interp_gan.checkpoint import META_KEY, read_metadata
    from interp_gan.harvest.hooks import get_module
    from interp_gan.subject.loading import load_subject
    from interp_gan.util import atomic_write, sha256_file

    edits = list(edit.edits if isinstance(edit, ModelEdit) else edit)
    src, out = Path(src), Path(out)
    if not edits:
        raise ValueError("nothing to edit: give --ablate, --insert, --scale, --remove-style or --insert-style")
    if not src.is_file():
        raise FileNotFoundError(f"no such checkpoint file: {src}")
    if src.suffix != ".safetensors":
        raise ValueError(f"{src}: edits are written to interp_gan .safetensors checkpoints; "
                         f"`interp-gan convert` it first")
    if out.exists():
        raise FileExistsError(f"{out} exists; choose another output path (files are never overwritten)")
    meta = read_metadata(src)
    subject = load_subject(src, device="cpu")           # prior recorded edits are active here
    with safe_open(str(src), framework="pt", device="cpu") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    src_sha = sha256_file(src)
    records = []
    hooked = {d["layer"] for d in meta.get("edits") or [] if d.get("applied") == "hook"}
    for e in edits:
        mod = get_module(subject.generator, e.layer)     # LookupError with close matches
        n = _n_units(subject, e.layer, mod)
        if n is not None and max(e.units) >= n:
            raise ValueError(f"edit of {e.layer!r}: unit {max(e.units)} out of range (the layer has {n} units)")
        baked = e.layer not in hooked and _bake(e, mod, tensors)   # keep the order of edits on one layer
        if not baked:
            hooked.add(e.layer)
        records.append(e.to_dict() | {"applied": "weights" if baked else "hook", "source_sha256": src_sha,
                                      "tool": f"interp_gan {__version__}"})
    meta = dict(meta)
    meta["edits"] = list(meta.get("edits") or []) + records
    meta["edited_from"] = {"sha256": src_sha, "path": str(src)}
    blob = safetensors_bytes({k: v.contiguous() for k, v in tensors.items()}, metadata={META_KEY: json.dumps(meta)})
    return atomic_write(out, lambda fh: fh.write(blob))
