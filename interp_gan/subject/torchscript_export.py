"""A TorchScript archive -> an ONNX ``ModelProto`` in memory, ready for ``load_onnx_subject``.

    m = load_module(path)                                    # torch.jit.load; a corrupt archive: ValueError
    model = export_onnx(m, dummies, img, names, free, nhwc, path)   # an op the exporter lacks: ValueError
    drop_dead_nodes(model); inline_identities(model)         # what onnx2torch cannot take

torch's TorchScript exporter (``torch.onnx.export(..., dynamo=False)``, opset 17) keeps the module
scopes in node names (``/enc/Conv``) and the parameter names in initializers (``enc.weight``). Two
forms it writes that the converter does not take are rewritten: nodes nothing reads (a scripted
``InstanceNorm2d`` exports its input-size check as a ``Loop``) are dropped, and Identity copies of an
initializer (equal constants shared, e.g. a batch norm's zero running means) become initializers.
"""
from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

import torch

__all__ = ["OPSET", "HOW", "load_module", "export_onnx", "drop_dead_nodes", "inline_identities"]

OPSET = 17
HOW = "export it to ONNX yourself (torch.onnx.export, naming the inputs), or load the Python class with --model file.py:factory"


def load_module(path: Path) -> torch.jit.ScriptModule:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if _mkldnn(path):
            raise ValueError(f"{path.name} was saved after torch.jit.optimize_for_inference (its code runs MKLDNN "
                             f"tensors), which torch cannot load back ({type(e).__name__}: {first}): save the "
                             "module before that step (torch.jit.freeze(torch.jit.script(model)) or torch.jit.trace)"
                             ) from None
        raise ValueError(f"{path.name} is not a loadable TorchScript archive ({type(e).__name__}: {first}); the file "
                         "is truncated or corrupt, or was saved by a newer torch: save it again") from None
    return m.eval()


def _mkldnn(path: Path) -> bool:
    """Whether the archive's code uses MKLDNN tensors (what torch.jit.optimize_for_inference writes)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any(b"mkldnn" in z.read(n) for n in z.namelist() if n.endswith(".py") and "/code/" in f"/{n}")
    except Exception:
        return False


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


def export_onnx(m, dummies: list, img: int, names: list[str], free: bool, nhwc: bool, path: Path):
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
                         f"replace that op, or {HOW}") from None
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
