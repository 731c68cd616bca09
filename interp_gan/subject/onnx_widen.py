"""Exports whose tensors are not float32, widened to float32 before conversion.

    done = widen_float16(model)                  # in place; None when the graph holds no float16
    done = float_image_input(model, "image")     # a uint8 image input -> float; None when it is float

**float16** (``model.half()`` before ``torch.onnx.export``, or onnxconverter-common's float16
conversion with or without ``keep_io_types``): every float16 initializer and Constant becomes
float32, every ``Cast`` to float16 a ``Cast`` to float32, float16 graph inputs and outputs float32.
The widened network computes in float32 what the file computes in float16, so the two differ by
float16 rounding (about 1e-3 relative per op, compounding with depth); the conversion is checked
against onnxruntime on the widened graph, and ``interp-gan inspect`` also prints the difference to
the float16 file (docs/models.md, "Foreign exports").

**An integer image input** (TensorFlow's ``uint8`` [N,H,W,3] image, read through a ``Cast`` to
float): the input becomes float32 carrying the same 0..255 values. Where every reader of the input
is a ``Cast`` to a float type, nothing else changes (that Cast now maps float to float), so the
network computes on integer-valued inputs exactly what the file does and, between them, the
natural interpolation (gradients flow, as attribution needs). Otherwise the input is rounded to the
nearest integer and cast back to its type (``Add(0.5)`` then ``Cast``: the same on integer inputs;
no gradient reaches the image), and the description says so.
"""
from __future__ import annotations

__all__ = ["widen_float16", "float_image_input", "INTEGER_IMAGE_TYPES"]

INTEGER_IMAGE_TYPES = {2: "uint8"}     # onnx.TensorProto.UINT8
_F16, _F32, _F64 = 10, 1, 11           # onnx.TensorProto.FLOAT16, FLOAT, DOUBLE
_NARROW = (_F16, _F64)                 # widened (float16) or narrowed (float64) to float32
_FLOATS = (1, 10, 11, 16)


def _widen_tensor(t) -> bool:
    from onnx import numpy_helper

    if t.data_type not in _NARROW:
        return False
    t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype("float32"), t.name))
    return True


def widen_float16(model) -> dict | None:
    """float16 (and float64) -> float32 throughout ``model`` (in place); ``{"tensors": n, "casts": n,
    "io": [...], "from": ["float16" | "float64", ...]}``. A float64 file (double weights and
    inputs) computes in float32 as torch's modules do; the conversion check runs on that graph."""
    g = model.graph
    kinds = sorted({{_F16: "float16", _F64: "float64"}[t.data_type] for t in g.initializer if t.data_type in _NARROW}
                   | {{_F16: "float16", _F64: "float64"}[v.type.tensor_type.elem_type] for v in [*g.input, *g.output]
                      if v.type.tensor_type.elem_type in _NARROW})
    tensors = sum(_widen_tensor(t) for t in g.initializer)
    casts = 0
    for n in g.node:
        for a in n.attribute:
            if a.type == a.TENSOR:
                tensors += _widen_tensor(a.t)
            elif a.name in ("dtype", "to") and a.type == a.INT and a.i in _NARROW:   # Cast, RandomNormal, EyeLike, ...
                a.i, casts = _F32, casts + 1
    io = []
    for v in [*g.input, *g.output]:
        if v.type.tensor_type.elem_type in _NARROW:
            v.type.tensor_type.elem_type = _F32
            io.append(v.name)
    fp16_info = [v for v in g.value_info if v.type.tensor_type.elem_type in _NARROW]
    if not (tensors or casts or io or fp16_info):
        return None
    del g.value_info[:]    # re-derived by shape inference where needed
    return {"tensors": tensors, "casts": casts, "io": io, "from": kinds or ["float16"]}


def float_image_input(model, image_input: str) -> str | None:
    """Make an integer image input float32 (in place); a one-line description, or None when it is
    already float."""
    import numpy as np
    from onnx import helper, numpy_helper

    g = model.graph
    v = next(i for i in g.input if i.name == image_input)
    t = v.type.tensor_type.elem_type
    if t in _FLOATS:
        return None
    kind = INTEGER_IMAGE_TYPES.get(t, str(t))
    readers = [n for n in g.node if image_input in n.input]
    v.type.tensor_type.elem_type = _F32
    if readers and all(n.op_type == "Cast" and any(a.name == "to" and a.i in _FLOATS for a in n.attribute)
                       for n in readers):
        return (f"{kind} image input fed as float32 (0..255 values): its {len(readers)} reader(s) Cast it to float; "
                "integer inputs give exactly what the file gives")
    as_int, half, shifted = f"{image_input}/{kind}", f"{image_input}/half", f"{image_input}/plus_half"
    for n in readers:
        n.input[:] = [as_int if i == image_input else i for i in n.input]
    g.initializer.append(numpy_helper.from_array(np.array(0.5, dtype=np.float32), half))
    g.node.insert(0, helper.make_node("Add", [image_input, half], [shifted], name=f"{image_input}/round"))
    g.node.insert(1, helper.make_node("Cast", [shifted], [as_int], to=t, name=f"{image_input}/to_{kind}"))
    return (f"{kind} image input fed as float32 through a Cast back to {kind} (rounded to the nearest integer; "
            "no gradient reaches the image)")
