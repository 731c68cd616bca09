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
- the subject is checked against the TorchScript module itself at the export size and, when free,
  at the second size (``meta["torchscript"]["check"]``); a trace that baked a size in differs at
  the second size and is loaded at its own size instead; a difference above ``TS_TOLERANCE`` at
  the export size is refused.

Nothing here unpickles: the archive is recognised by its zip layout (``torch_files``) and loaded
with ``torch.jit.load``, which compiles its TorchScript code, never Python.
"""
from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

import torch
from torch import Tensor

from interp_gan.subject.onnx_contract import RANGES, read_options
from interp_gan.subject.protocol import Subject
from interp_gan.subject.torch_files import traced_input_shapes

__all__ = ["load_torchscript_subject", "torchscript_max_abs_diff", "torchscript_report", "TS_TOLERANCE", "OPSET"]

TS_TOLERANCE = 1e-3       # subject vs the TorchScript module, [-1, 1] output units (measured: 0 to 1e-6)
OPSET = 17
_SIZES = (64, 128, 256, 512)
_HOW = "export it to ONNX yourself (torch.onnx.export, naming the inputs), or load the Python class with --model file.py:factory"


def _load(path: Path) -> torch.jit.ScriptModule:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValueError(f"{path.name} is not a loadable TorchScript archive ({type(e).__name__}: {first}); the file "
                         "is truncated or corrupt, or was saved by a newer torch: save it again") from None
    return m.eval()


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


@contextlib.contextmanager
def _quiet_fds():
    """File descriptors 1 and 2 to /dev/null: the exporter's C++ side prints the whole IR graph on a failure."""
    import os
    import sys

    for f in (sys.stdout, sys.stderr):
        f.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def _export(m, dummies: list, img: int, names: list[str], free: bool, nhwc: bool, path: Path):
    import onnx

    input_names = ["image" if i == img else n for i, n in enumerate(names)]
    image_axes = ({0: "N", 1: "H", 2: "W"} if nhwc else {0: "N", 2: "H", 3: "W"}) if free else {0: "N"}
    dyn = {"image": image_axes, "output": dict(image_axes)}
    for i, d in enumerate(dummies):
        if i != img and d.dim() >= 2:
            dyn[input_names[i]] = {0: "N"}
    buf, log = io.BytesIO(), io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), _quiet_fds():
            warnings.simplefilter("ignore")
            torch.onnx.export(m, tuple(dummies), buf, dynamo=False, opset_version=OPSET, input_names=input_names,
                              output_names=["output"], dynamic_axes=dyn)
    except Exception as e:
        text = str(e).strip()
        op = re.search(r"'(\w+::[\w.]+)'", text) or re.search(r"\b(aten::[\w.]+|prim::\w+)", text)
        first = text.splitlines()[0] if text else type(e).__name__
        what = f"op {op.group(1)} " if op else ""
        raise ValueError(f"{path.name}: torch's ONNX exporter cannot export this TorchScript module ({what}{first[:200]}); "
                         f"replace that op, or {_HOW}") from None
    return onnx.load_from_string(buf.getvalue())


def drop_dead_nodes(model) -> int:
    """Remove nodes none of whose outputs reach a graph output; return how many."""
    def used_in(graph) -> set[str]:
        names = set()
        for n in graph.node:
            names.update(n.input)
            for a in n.attribute:
                for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    names |= used_in(g)
        return names

    live = {o.name for o in model.graph.output}
    keep = []
    for n in reversed(model.graph.node):
        if any(o in live for o in n.output):
            keep.append(n)
            live.update(n.input)
            for a in n.attribute:
                for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    live |= used_in(g)
    dropped = len(model.graph.node) - len(keep)
    if dropped:
        nodes = list(reversed(keep))
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        used = {i for n in model.graph.node for i in n.input} | live
        inits = [i for i in model.graph.initializer if i.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(inits)
    return dropped


def inline_identities(model) -> int:
    """Identity nodes that copy an initializer become initializers themselves (the exporter shares equal
    constants, e.g. zero running means, through Identity; onnx2torch wants a conv's weight as an
    initializer); return how many."""
    inits = {i.name: i for i in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    keep, n = [], 0
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input and node.input[0] in inits and node.output[0] not in outputs:
            t = type(inits[node.input[0]])()
            t.CopyFrom(inits[node.input[0]])
            t.name = node.output[0]
            model.graph.initializer.append(t)
            inits[t.name] = t
            n += 1
        else:
            keep.append(node)
    if n:
        del model.graph.node[:]
        model.graph.node.extend(keep)
    return n


def torchscript_max_abs_diff(m, subject: Subject, content: Tensor, style_ids: Tensor | None = None) -> float:
    """max |subject.generate - the TorchScript module| over ``content`` ([N,3,H,W] in [-1,1]), the module fed
    and read through the subject's input contract (range, layout, style vector), one image per call."""
    c = subject.meta["input_contract"]
    lo, hi = RANGES[c["range"]]
    out_lo, out_hi = RANGES[c["output_range"]]
    ts = subject.meta["torchscript"]
    ids = torch.zeros(len(content), dtype=torch.long) if style_ids is None else style_ids.long().cpu()
    with torch.no_grad():
        ours = subject.generate(content.to(subject.device), ids.to(subject.device)).float().cpu()
        diffs = []
        for i in range(len(content)):
            x = (content[i:i + 1].float().cpu() + 1) / 2 * (hi - lo) + lo
            if c["layout"] == "NHWC":
                x = x.permute(0, 2, 3, 1)
            args = [x]
            if "style_input" in c:
                code = subject.style_code(ids[i:i + 1].to(subject.device), None).float().cpu()
                args.append(code.reshape(ts["style_shape"] if len(ts["style_shape"]) == 1 else [1, *ts["style_shape"][1:]]))
                if ts["image_index"] == 1:
                    args.reverse()
            y = m(*args)
            y = y[0] if isinstance(y, (tuple, list)) else y
            y = y.permute(0, 3, 1, 2) if c["layout"] == "NHWC" else y
            y = (y.float() - out_lo) / (out_hi - out_lo) * 2 - 1
            if "output_clamped" in c:
                y = y.clamp(-1, 1)
            if y.shape != ours[i:i + 1].shape:
                return float("inf")
            diffs.append(float((y - ours[i:i + 1]).abs().max()))
    return max(diffs)


def _check_content(size: tuple[int, int], n: int = 2) -> Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, *size, generator=g) * 2 - 1


def load_torchscript_subject(path: str | Path, device: str | torch.device = "cpu", sidecar: str | Path | None = None,
                             **options) -> Subject:
    """A TorchScript archive as a Subject through an in-memory ONNX export (module docstring)."""
    from interp_gan.subject.onnx import load_onnx_subject
    from interp_gan.subject.onnx_graph import import_onnx
    from interp_gan.util import sha256_file

    import_onnx()
    path = Path(path)
    opts = read_options(path, sidecar, options)
    m = _load(path)
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
        graph = _export(m, dummies, img, names, free, nhwc, path)
        dropped["n"] = drop_dead_nodes(graph)
        dropped["identities"] = inline_identities(graph)
        s = load_onnx_subject(path, device, sidecar, graph=graph, **options)
        style = [d for i, d in enumerate(dummies) if i != img]
        s.meta["torchscript"] = {"image_index": img, "arguments": names,
                                 "style_shape": list(style[0].shape) if style else None}
        return s

    subject = build(free)
    checks = {f"{size[0]}x{size[1]}": torchscript_max_abs_diff(m, subject, _check_content(size),
                                                                _check_ids(subject))}
    pinned = None
    if free and second and not forced:
        d2 = torchscript_max_abs_diff(m, subject, _check_content(second), _check_ids(subject))
        if d2 > TS_TOLERANCE:   # the graph runs at other sizes but not as the module does: a size baked in
            pinned = f"{d2:.2e} from the module at {second[0]}x{second[1]}: loaded at {size[0]}x{size[1]} only"
            free = False
            subject = build(False)
            checks = {f"{size[0]}x{size[1]}": torchscript_max_abs_diff(m, subject, _check_content(size),
                                                                        _check_ids(subject))}
        else:
            checks[f"{second[0]}x{second[1]}"] = d2
    worst = max(checks.values())
    if worst > TS_TOLERANCE:
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
    meta["checkpoint_sha256"], meta["checkpoint_path"] = sha256_file(path), str(path)
    ts = meta["torchscript"]
    ts.update(export_size=list(size), size="free" if free else "fixed", check=checks, tolerance=TS_TOLERANCE,
              dead_nodes_dropped=dropped["n"], identities_inlined=dropped["identities"])
    if pinned:
        ts["size_baked_in"] = pinned
    if forced:
        ts["size_forced_free"] = True
    return subject


def _check_ids(subject: Subject) -> Tensor:
    return torch.tensor([0, subject.num_styles - 1])


def torchscript_report(path: str | Path, subject: Subject, size: int, sample: str | Path) -> list[str]:
    """What ``interp-gan inspect`` prints for a TorchScript subject: the subject against the module itself
    on two images (the sample photo and a seeded random one), how it was exported, the contract, the sample."""
    from interp_gan.subject.onnx_check import contract_lines, sample_content

    ts = subject.meta["torchscript"]
    g = torch.Generator().manual_seed(0)
    x = torch.cat([sample_content(size), torch.rand(1, 3, size, size, generator=g) * 2 - 1])
    ids = _check_ids(subject)
    d = torchscript_max_abs_diff(_load(Path(path)), subject, x, ids)
    ok = "ok" if d <= TS_TOLERANCE else "MISMATCH"
    h, w = ts["export_size"]
    lines = [f"TorchScript check (the sample photo and a random image, {size}x{size}, styles {ids.tolist()}): "
             f"{d:.2e} max abs diff vs the TorchScript module, [-1,1] output units (tolerance {TS_TOLERANCE:g}): {ok}",
             f"exported to ONNX in memory with {subject.meta['model']['exported']} from a {subject.meta['model']['module']} "
             f"module at {h}x{w}; size {ts['size']}"
             + (f" ({ts['size_baked_in']})" if ts.get("size_baked_in") else "")
             + (f"; {ts['dead_nodes_dropped']} nodes nothing reads dropped" if ts["dead_nodes_dropped"] else "")]
    if "style_input" in subject.meta["input_contract"]:
        lines.append(f"style input: {subject.meta['input_contract']['style_input']!r}, "
                     f"{subject.meta['input_contract'].get('style_space', '')}")
    return lines + contract_lines(subject, size, sample)
