"""Old exports made convertible: graphs written for an opset onnx2torch has no converter for.

    done = upgrade_for_conversion(model)   # in place; None when nothing was needed
    done == {"from": 9, "to": 13, "why": "Upsample (opset 9)"}

The ONNX Model Zoo's fast neural style networks (Johnson et al., ECCV 2016; opset 8 and 9) upsample
with ``Upsample``, deprecated in opset 10 and replaced by ``Resize``; onnx2torch converts only
``Resize``. Such a graph is rewritten by ``onnx.version_converter`` (the ONNX project's own opset
adapters: ``Upsample(scales)`` -> ``Resize(roi, scales)``). In nearest mode torch's interpolate
then computes exactly what ``Upsample`` does (source index floor(x / scale)); in linear mode
``Upsample`` interpolates in asymmetric coordinates, the adapter writes ``Resize``'s default
(half-pixel) and torch has no asymmetric linear mode, so such a graph is refused in one line
naming the node (measured: 0.3 off in [-1, 1] units had it been converted).
The converter leaves the nodes it rebuilds unnamed; their names are restored from the original
node that wrote the same output, so hooks still address the ONNX node names. Whether the upgraded
graph computes what the file does is checked against onnxruntime on the file (``onnx_check``).

Files of IR version 3 (opset <= 8) list every initializer as a graph input too; those inputs are
dropped first (they are the network's weights, not something a caller feeds), which the upgrade
needs (it writes IR >= 4, where such a listing is invalid) and which keeps onnx2torch from making
them placeholders.
"""
from __future__ import annotations

__all__ = ["upgrade_for_conversion", "drop_initializer_inputs", "unconvertible_ops", "TARGET_OPSET"]

TARGET_OPSET = 13


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def unconvertible_ops(model, opset: int | None = None) -> list[str]:
    """The op types of ``model``'s default-domain nodes onnx2torch has no converter for at ``opset``
    (default: the model's own), each once, in graph order."""
    from onnx2torch.node_converters import get_converter

    opset = _opset(model) if opset is None else opset
    out = []
    for n in model.graph.node:
        if n.domain not in ("", "ai.onnx") or n.op_type in out:
            continue
        try:
            get_converter(domain="", operation_type=n.op_type, version=opset)
        except NotImplementedError:
            out.append(n.op_type)
    return out


def drop_initializer_inputs(model) -> int:
    """Remove, in place, the graph inputs that are initializers (IR version 3 lists every weight as
    an input); return how many."""
    inits = {i.name for i in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in inits]
    n = len(model.graph.input) - len(keep)
    if n:
        del model.graph.input[:]
        model.graph.input.extend(keep)
        model.ir_version = max(model.ir_version, 4)
    return n


def upgrade_for_conversion(model) -> dict | None:
    """When some op of ``model`` has no onnx2torch converter at its opset (< ``TARGET_OPSET``) and
    upgrading to ``TARGET_OPSET`` leaves none unconvertible, upgrade it in place; return what was
    done, or None (graph unchanged but for dropped initializer inputs) when nothing was needed or
    the upgrade would not help (conversion then names the node). A linear ``Upsample`` is a
    ValueError naming the node (module docstring)."""
    from onnx import version_converter

    opset = _opset(model)
    missing = unconvertible_ops(model)
    if not missing or opset >= TARGET_OPSET:
        return None
    for n in model.graph.node:
        mode = next((a.s.decode() for a in n.attribute if a.name == "mode"), "nearest")
        if n.op_type == "Upsample" and mode != "nearest":
            raise ValueError(f"node {n.name or n.output[0]!r} (Upsample, mode {mode}, opset {opset}) cannot be "
                             "converted exactly: it interpolates in asymmetric coordinates, which torch's interpolate "
                             "does not offer (nearest mode converts); re-export at opset 11 or later, or run it in "
                             "onnxruntime")
    drop_initializer_inputs(model)   # the upgrade writes IR >= 4, where IR 3's listing is invalid
    try:
        up = version_converter.convert_version(model, TARGET_OPSET)
    except Exception:   # an adapter the converter lacks: conversion will name the node
        return None
    if unconvertible_ops(up):
        return None
    names = {o: n.name for n in model.graph.node for o in n.output if n.name}
    for n in up.graph.node:
        if not n.name and n.output and n.output[0] in names:
            n.name = names[n.output[0]]
    model.CopyFrom(up)
    return {"from": opset, "to": TARGET_OPSET, "why": ", ".join(f"{op} (opset {opset})" for op in missing)}
