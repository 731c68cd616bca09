"""TorchScript archives (``torch.jit.script(g).save`` / ``torch.jit.trace(g, x).save``) as Subjects.

    subject = load_torchscript_subject("generator.pt", device="cpu")            # or load_subject(...)
    subject = load_torchscript_subject("g.pt", range="[0,1]", style_names=["a", "b", "c"])

A ScriptModule takes no forward hooks, so it is exported in memory to ONNX with torch's
TorchScript exporter (opset 17; node names keep the module scopes, ``/res/0/conv/Conv``) and the
ONNX graph goes to ``load_onnx_subject``: the same input contract, options (``range``,
``layout``, ``size``, ``style_names``; the sidecar is ``<file>.toml``, e.g. ``g.pt.toml``) and
conversion. What it adds:

- the export size: the size ``torch.jit.trace`` recorded (read from the archive's opcodes), else
  the first of 64, 128, 256, 512 px the module runs at. When the module also runs at 32 px (64
  when that was the export size) the graph's height and width are left free, else the subject
  takes the export size only (``fixed_size``, as a fixed-size ONNX graph; ``--onnx size=free``
  forces free);
- a second tensor argument is the style vector (one per image): its length is the traced
  example's, or ``len(style_names)``;
- nodes whose outputs nothing reads are dropped (a scripted ``InstanceNorm2d`` exports its
  input-size check as a ``Loop`` no converter takes), and Identity copies of a constant (the
  exporter shares equal constants that way) become constants;
- float16 / bfloat16 weights are cast to float32 before the export (``m.float()``, said in the model
  notes and ``meta["torchscript"]["widened"]``), as a float16 ONNX file is widened;
- the subject is checked against the TorchScript module itself at the export size and, when free,
  at the second size (``meta["torchscript"]["check"]``); a trace that baked a size in differs at
  the second size and is loaded at its own size instead; a difference above ``TS_TOLERANCE`` at
  the export size is refused.

The export and its graph clean-ups are ``torchscript_export``, the check ``torchscript_check``.
Nothing here unpickles: the archive is recognised by its zip layout (``torch_files``) and loaded
with ``torch.jit.load``, which compiles its TorchScript code, never Python.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor

from interp_gan.guards import check_finite
from interp_gan.subject.onnx_contract import read_options
from interp_gan.subject.protocol import Subject
from interp_gan.subject.torch_files import traced_input_shapes
from interp_gan.subject.torchscript_check import (TS_TOLERANCE, check_content, check_ids, torchscript_max_abs_diff,
                                                  torchscript_report)
from interp_gan.subject.torchscript_export import (HOW as _HOW, OPSET, drop_dead_nodes, export_onnx,
                                                   inline_identities, load_module)

__all__ = ["load_torchscript_subject", "torchscript_max_abs_diff", "torchscript_report", "TS_TOLERANCE", "OPSET"]

_SIZES = (64, 128, 256, 512)

def _arguments(m, path: Path) -> list[str]:
    """The names of forward's required arguments; each must be a tensor."""
    try:
        args = list(m.forward.schema.arguments)[1:]
    except Exception as e:
        raise ValueError(f"{path.name}: the TorchScript module has no forward method ({type(e).__name__}); {_HOW}") from None
    required = [a for a in args if not a.has_default_value()]
    other = [f"{a.name}: {a.type}" for a in required if str(a.type) != "Tensor"]
    if other or not required or len(required) > 2:
        raise ValueError(f"{path.name}: forward takes ({', '.join(f'{a.name}: {a.type}' for a in required)}); "
                         "expected an image tensor and at most one style-vector tensor; " + _HOW)
    return [a.name for a in required]


def _dummies(names: list[str], path: Path, opts: dict) -> tuple[list[Tensor], int, list[int] | None]:
    """Example inputs (the traced ones' sizes when stored), the image argument's index, and the image's size."""
    traced = traced_input_shapes(path)
    traced = traced if len(traced) == len(names) else []
    nhwc = opts["values"].get("layout") == "NHWC"
    img = next((i for i, s in enumerate(traced) if len(s) == 4), 0)
    out = []
    for i, name in enumerate(names):
        if i == img:
            out.append(torch.zeros(traced[i]) if traced else None)
            continue
        if traced:
            out.append(torch.zeros(traced[i]))
            continue
        k = len(opts["values"].get("style_names") or [])
        if k < 2:
            raise ValueError(f"{path.name}: forward takes a second tensor {name!r} (a style vector?) whose length "
                             "the archive does not record (a scripted module keeps no example input); give one "
                             "name per entry: --onnx style_names=a,b,c (sidecar style_names = [...]), or " + _HOW)
        out.append(torch.zeros(1, k))
    hw = traced[img][1:3] if traced and nhwc else traced[img][2:] if traced else None
    return out, img, hw


def _image(size: tuple[int, int], nhwc: bool, batch: int = 1) -> Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, *size, generator=g)
    return x.permute(0, 2, 3, 1).contiguous() if nhwc else x


def _runs(m, args: list[Tensor], errors: list | None = None) -> tuple | None:
    """The image output's shape when ``m(*args)`` runs, else None (the error's first line goes to ``errors``)."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = m(*args)
    except Exception as e:
        text = str(e).strip()
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        # TorchScript errors open with "The following operation failed in the TorchScript interpreter."
        why = (lines[-1] if lines else "").removeprefix(f"{type(e).__name__}: ")
        if errors is not None:
            errors.append(f"{type(e).__name__}: {why[:160]}")
        return None
    y = y[0] if isinstance(y, (tuple, list)) and y else y
    return tuple(y.shape) if torch.is_tensor(y) else None


def _sizes(m, dummies: list, img: int, hw, nhwc: bool, path: Path) -> tuple[tuple[int, int], tuple[int, int] | None]:
    """(export size, second size the module also runs at or None)."""
    batch = dummies[img].shape[0] if dummies[img] is not None else 1
    candidates = [tuple(hw)] if hw else [(s, s) for s in _SIZES]
    errors: list[str] = []
    for size in candidates:
        args = [_image(size, nhwc, batch) if i == img else d for i, d in enumerate(dummies)]
        first = _runs(m, args, errors)
        if first is not None and len(first) == 4:
            break
        if first is not None:
            errors.append(f"output of shape {list(first)}, not an image")
    else:
        tried = ", ".join(f"{h}x{w}" for h, w in candidates)
        extra = f" and a float style vector of shape {[list(d.shape) for i, d in enumerate(dummies) if i != img][0]}" \
            if len(dummies) > 1 else ""
        raise ValueError(f"{path.name}: the TorchScript module fails on an RGB image of {tried} "
                         f"({'NHWC' if nhwc else 'NCHW'}){extra} ({errors[-1] if errors else 'no output'}); pass "
                         "--onnx layout=NHWC if it takes channels last, or " + _HOW)
    second = (64, 64) if size == (32, 32) else (32, 32)
    args = [_image(second, nhwc, batch) if i == img else d for i, d in enumerate(dummies)]
    shape = _runs(m, args)
    hw = (lambda s: s[1:3] if nhwc else s[2:])
    # free when the output scales with the input (a size baked into a trace gives the same output size)
    scales = shape is not None and len(shape) == 4 and all(
        o2 * s1 == o1 * s2 for o1, o2, s1, s2 in zip(hw(first), hw(shape), size, second))
    return size, (second if scales else None)


def load_torchscript_subject(path: str | Path, device: str | torch.device = "cpu", sidecar: str | Path | None = None,
                             **options) -> Subject:
    """A TorchScript archive as a Subject through an in-memory ONNX export (module docstring)."""
    from interp_gan.subject.onnx import load_onnx_subject
    from interp_gan.subject.onnx_graph import import_onnx

    import_onnx()
    path = Path(path)
    opts = read_options(path, sidecar, options)
    m = load_module(path)
    check_finite(m.state_dict().items(), path)
    low = sorted({str(t.dtype).removeprefix("torch.") for t in m.state_dict().values()
                  if t.dtype in (torch.float16, torch.bfloat16)})
    if low:              # float32 images cannot run through half weights; analysed in float32, as ONNX's
        m = m.float()
    names = _arguments(m, path)
    dummies, img, hw = _dummies(names, path, opts)
    nhwc = opts["values"].get("layout") == "NHWC"
    size, second = _sizes(m, dummies, img, hw, nhwc, path)
    batch = dummies[img].shape[0] if dummies[img] is not None else 1
    dummies[img] = _image(size, nhwc, batch)
    forced = opts["values"].get("size") == "free"
    free = bool(second) or forced
    dropped = {}

    def build(free: bool) -> Subject:
        graph = export_onnx(m, dummies, img, names, free, nhwc, path)
        dropped["n"] = drop_dead_nodes(graph)
        dropped["identities"] = inline_identities(graph)
        s = load_onnx_subject(path, device, sidecar, graph=graph, **options)
        style = [d for i, d in enumerate(dummies) if i != img]
        s.meta["torchscript"] = {"image_index": img, "arguments": names,
                                 "style_shape": list(style[0].shape) if style else None}
        return s

    subject = build(free)
    checks = {f"{size[0]}x{size[1]}": torchscript_max_abs_diff(m, subject, check_content(size),
                                                                check_ids(subject))}
    pinned = None
    if free and second and not forced:
        d2 = torchscript_max_abs_diff(m, subject, check_content(second), check_ids(subject))
        if not d2 <= TS_TOLERANCE:   # the graph runs at other sizes but not as the module does: a size baked in
            pinned = f"{d2:.2e} from the module at {second[0]}x{second[1]}: loaded at {size[0]}x{size[1]} only"
            free = False
            subject = build(False)
            checks = {f"{size[0]}x{size[1]}": torchscript_max_abs_diff(m, subject, check_content(size),
                                                                        check_ids(subject))}
        else:
            checks[f"{second[0]}x{second[1]}"] = d2
    worst = max(checks.values())
    if not worst <= TS_TOLERANCE:   # NaN too
        raise ValueError(f"{path.name}: the ONNX export differs from the TorchScript module by {worst:.2e} "
                         f"(tolerance {TS_TOLERANCE:g}, [-1,1] units, at {', '.join(checks)}); {_HOW}")
    if not free:
        subject.generator.fixed_size = tuple(size)
    meta = subject.meta
    model = meta["model"]
    kind = "traced" if traced_input_shapes(path) else "scripted"
    meta["model"] = {"name": "torchscript", "path": str(path), "module": kind,
                     "exported": f"torch.onnx.export (TorchScript exporter, opset {OPSET})",
                     "inputs": model["inputs"], "outputs": model["outputs"]}
    ts = meta["torchscript"]
    ts.update(export_size=list(size), size="free" if free else "fixed", check=checks, tolerance=TS_TOLERANCE,
              dead_nodes_dropped=dropped["n"], identities_inlined=dropped["identities"])
    if low:
        ts["widened"] = f"weights in {' and '.join(low)}: cast to float32 (the module checked in float32 too)"
        meta["model_notes"] = [*(meta.get("model_notes") or []), ts["widened"]]
    if pinned:
        ts["size_baked_in"] = pinned
    if forced:
        ts["size_forced_free"] = True
    return subject
