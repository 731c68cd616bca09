"""What an ONNX graph says about the value ranges of its image input and output.

    rng = input_range_from_graph(model, "image")   # ("[0,255]", "the input's first ops (/Div) map ...") or None
    out = output_range_from_graph(model)           # ("[0,1]", "Sigmoid '/Sigmoid' at the output") or None

The input: a QuantizeLinear right after it fixes the interval it can represent (scale 1/255, zero
point -128, int8: [0, 1]); otherwise scalar Mul / Div / Add / Sub right after it that map exactly
one of ``RANGES`` onto [0, 1] or [-1, 1] say what it takes (a TensorFlow export's ``x / 255``:
[0, 255]), and so does a per-channel subtraction of the ImageNet RGB means (0.485, 0.456, 0.406 on
[0, 1]; times 255 on [0, 255]). The output: a final Sigmoid ([0, 1]) or Tanh ([-1, 1]), carried through scalar ops after
it (``Sigmoid * 255``: [0, 255]), or a final Clip whose constant bounds are one of them (a
TensorFlow export's ``clip_by_value(y, -1, 1)``), through resizes and reshapes. Nothing else in a float graph says it (``onnx_contract``).
"""
from __future__ import annotations

import numpy as np

__all__ = ["RANGES", "input_range_from_graph", "output_range_from_graph"]

RANGES = {"[-1,1]": (-1.0, 1.0), "[0,1]": (0.0, 1.0), "[0,255]": (0.0, 255.0)}
_PASS = ("Pad", "Transpose", "Reshape", "Identity", "Cast")   # ops that keep the values an image takes


def _consts(model) -> dict:
    from onnx import numpy_helper

    out = {i.name: i for i in model.graph.initializer}
    out.update({n.output[0]: n.attribute[0].t for n in model.graph.node
                if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    return {k: numpy_helper.to_array(v) for k, v in out.items()}


def _match(lo: float, hi: float) -> str | None:
    for name, (a, b) in RANGES.items():
        if abs(lo - a) <= 0.02 * (b - a) and abs(hi - b) <= 0.02 * (b - a):
            return name
    return None


_AFFINE = ("Mul", "Div", "Add", "Sub")


def _scalar(consts: dict, name: str) -> float | None:
    v = consts.get(name)
    if v is None or v.size == 0 or not np.issubdtype(v.dtype, np.number) or not np.all(v == np.ravel(v)[0]):
        return None
    return float(np.ravel(v)[0])


def _affine(n, consts: dict, t: str) -> tuple[float, float] | None:
    """(a, b) when node ``n`` computes a * t + b with scalar constants (Mul / Div / Add / Sub), else None."""
    if n.op_type not in _AFFINE or len(n.input) != 2 or t not in n.input:
        return None
    other = n.input[1] if n.input[0] == t else n.input[0]
    k = _scalar(consts, other)
    if k is None:
        return None
    first = n.input[0] == t
    if n.op_type == "Mul":
        return k, 0.0
    if n.op_type == "Add":
        return 1.0, k
    if n.op_type == "Div":
        return (1.0 / k, 0.0) if first and k else None
    return (1.0, -k) if first else (-1.0, k)


def _through(lo: float, hi: float, ab: tuple[float, float]) -> tuple[float, float]:
    a, b = ab
    return tuple(sorted((a * lo + b, a * hi + b)))


def _normalised_by(model, image_input: str, users: dict, consts: dict) -> tuple[str, str] | None:
    """The range that the scalar Mul / Div / Add / Sub chain right after the image input maps onto
    [0, 1] or [-1, 1] (``x / 255``: [0, 255]; ``x / 127.5 - 1``: [0, 255]; ``x * 2 - 1``: [0, 1])."""
    t, chain, names = image_input, [], []
    for _ in range(6):
        nxt = users.get(t, [])
        if len(nxt) != 1:
            break
        n = nxt[0]
        if n.op_type in ("Transpose", "Identity", "Cast"):
            t = n.output[0]
            continue
        ab = _affine(n, consts, t)
        if ab is None:
            break
        chain.append(ab)
        names.append(n.name or n.op_type)
        t = n.output[0]
    if not chain:
        return None
    hits = []
    for name, (lo, hi) in RANGES.items():
        for ab in chain:
            lo, hi = _through(lo, hi, ab)
        if _match(lo, hi) in ("[0,1]", "[-1,1]") and (lo, hi) != RANGES[name]:
            hits.append((name, _match(lo, hi)))
    if len(hits) != 1:
        return None
    return hits[0][0], f"the input's first ops ({', '.join(names)}) map {hits[0][0]} onto {hits[0][1]}"


_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])   # torchvision's (and most exporters') RGB normalisation


def _imagenet_mean(users: dict, consts: dict, image_input: str) -> tuple[str, str] | None:
    """[0, 1] or [0, 255] when the input's first op (through Transpose / Identity / Cast) subtracts
    the ImageNet RGB means, on that scale (a VGG-normalised network: ``(x - mean) / std`` per channel)."""
    t = image_input
    for _ in range(4):
        nxt = users.get(t, [])
        if len(nxt) != 1:
            return None
        n = nxt[0]
        if n.op_type in ("Transpose", "Identity", "Cast"):
            t = n.output[0]
            continue
        if n.op_type != "Sub" or n.input[0] != t or n.input[1] not in consts:
            return None
        v = np.ravel(consts[n.input[1]]).astype(np.float64)
        if v.size != 3:
            return None
        for name, scale in (("[0,1]", 1.0), ("[0,255]", 255.0)):
            if np.allclose(v, _IMAGENET_MEAN * scale, rtol=0.01):
                return name, (f"the input's first op ({n.name or n.op_type}) subtracts the ImageNet means "
                              f"{np.round(v, 3).tolist()}, on the {name} scale")
        return None
    return None


def input_range_from_graph(model, image_input: str, scaled: bool = True) -> tuple[str, str] | None:
    """The range the first QuantizeLinear after the image input can represent, when it is one of
    ``RANGES`` (within 2% of its width), or the range a scalar normalisation right after the input
    maps onto [0, 1] or [-1, 1] (``x / 255``; ``scaled=False``: the QuantizeLinear only); None when
    the graph does not say."""
    users: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    consts, t = _consts(model), image_input
    q = _quantised_range(users, consts, t)
    if q or not scaled:
        return q
    return _normalised_by(model, image_input, users, consts) or _imagenet_mean(users, consts, image_input)


def _quantised_range(users: dict, consts: dict, t: str) -> tuple[str, str] | None:
    for _ in range(8):
        nxt = users.get(t, [])
        if len(nxt) != 1:
            return None
        n = nxt[0]
        if n.op_type == "QuantizeLinear" and n.input[1] in consts:
            s = float(np.ravel(consts[n.input[1]])[0])
            zp = consts.get(n.input[2]) if len(n.input) > 2 else None
            z = int(np.ravel(zp)[0]) if zp is not None else 0
            info = np.iinfo(zp.dtype if zp is not None else np.uint8)
            lo, hi = s * (info.min - z), s * (info.max - z)
            name = _match(lo, hi)
            return (name, f"QuantizeLinear {n.name!r}, which represents [{lo:.4g}, {hi:.4g}]") if name else None
        if n.op_type not in _PASS:
            return None
        t = n.output[0]
    return None


def output_range_from_graph(model) -> tuple[str, str] | None:
    """[0,1] when the first output comes from a Sigmoid, [-1,1] from a Tanh (through data-movement
    and QuantizeLinear / DequantizeLinear nodes), or what scalar Mul / Div / Add / Sub after it make
    of that (``Sigmoid * 255``: [0,255]; ``(Tanh + 1) * 127.5``: [0,255]), when it is one of
    ``RANGES``; None otherwise."""
    prod = {o: n for n in model.graph.node for o in n.output}
    consts = _consts(model)
    t, after = model.graph.output[0].name, []
    for _ in range(12):
        n = prod.get(t)
        if n is None:
            return None
        bound = _clip_bounds(n, consts) if n.op_type == "Clip" else None
        if n.op_type in ("Sigmoid", "Tanh") or bound:
            lo, hi = bound or ((0.0, 1.0) if n.op_type == "Sigmoid" else (-1.0, 1.0))
            for ab in reversed(after):
                lo, hi = _through(lo, hi, ab)
            name = _match(lo, hi)
            if name is None:
                return None
            how = f" then {len(after)} scalar op(s) making it [{lo:g}, {hi:g}]" if after else ""
            what = f"{n.op_type}({lo:g}, {hi:g})" if bound else n.op_type
            return name, f"{what} {n.name!r} at the output{how}"
        if n.op_type in _AFFINE:
            ins = [i for i in n.input if i not in consts]
            ab = _affine(n, consts, ins[0]) if len(ins) == 1 else None
            if ab is None:
                return None
            after.append(ab)
            t = ins[0]
            continue
        if n.op_type not in _PASS + _OUT_PASS + ("QuantizeLinear", "DequantizeLinear"):
            return None
        if n.op_type in ("Resize", "Upsample") and _attr(n, "mode", "nearest") not in ("nearest", "linear"):
            return None   # cubic interpolation overshoots the bound
        t = n.input[0]
    return None


# ops after the output's bound that keep every value within it (nearest / linear resizing, reshapes, crops)
_OUT_PASS = ("Resize", "Upsample", "Squeeze", "Unsqueeze", "Slice", "DepthToSpace", "SpaceToDepth", "Flatten")


def _attr(n, name: str, default):
    for a in n.attribute:
        if a.name == name:
            return a.s.decode() if a.type == a.STRING else a.f if a.type == a.FLOAT else a.i
    return default


def _clip_bounds(n, consts: dict) -> tuple[float, float] | None:
    """(min, max) of a Clip with both bounds constant (inputs from opset 11, attributes before), or None."""
    if any(a.name in ("min", "max") for a in n.attribute):
        return float(_attr(n, "min", -np.inf)), float(_attr(n, "max", np.inf))
    if len(n.input) < 3 or not n.input[1] or not n.input[2]:
        return None
    lo, hi = _scalar(consts, n.input[1]), _scalar(consts, n.input[2])
    return None if lo is None or hi is None else (lo, hi)
