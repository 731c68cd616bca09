"""Fold a QDQ-quantised ONNX graph back to float, before onnx2torch converts it.

    report = fold_quantisation(model)     # in place; None when the graph has no QuantizeLinear / DequantizeLinear
    report == {"quantize_dequantize_pairs": 195, "dequantized_constants": 76, "nodes_removed": 479}

A QDQ graph (what tf2onnx writes for a TF-Lite int8 model, and what onnxruntime's static
quantiser writes) keeps every op in float and marks where the integer model rounds:
``DequantizeLinear(QuantizeLinear(x))`` around activations, and ``DequantizeLinear(w_int8)`` on
weights stored as integers. Both use the affine scheme r = S (q - Z) of Jacob et al., "Quantization
and Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference" (CVPR 2018), with
per-tensor or per-channel (``axis``) scale S and zero point Z. Folding:

- ``DequantizeLinear`` of a constant (int8 / uint8 weights, int32 biases): replaced by the float
  constant S (q - Z), computed as onnxruntime does (float32 (q - Z) times S);
- ``QuantizeLinear`` -> [data-movement ops: Transpose, Reshape, ...] -> ``DequantizeLinear``:
  both removed, so the float tensor flows through the data-movement ops unrounded. The pair must use
  the same S and Z (a pair with different ones rescales values, which folding would lose), and a
  chain through data-movement ops must be per-tensor.

What folding changes: the rounding of every quantised tensor to its grid (step S) and the clamp
to the grid's range [S (qmin - Z), S (qmax - Z)] are gone, so the folded float network differs from
the integer one that onnxruntime runs by that accumulated rounding (docs/models.md gives the
tolerance and how it was measured). Ops that compute in integers (QLinearConv, ConvInteger,
MatMulInteger, DynamicQuantizeLinear, ...) have no float twin in the graph and are refused with
one line naming the node.
"""
from __future__ import annotations

import numpy as np

__all__ = ["fold_quantisation", "integer_ops"]

_QDQ_DOMAINS = ("", "ai.onnx", "com.microsoft")
# ops that only move or select elements: they commute with a per-tensor affine map r = S (q - Z)
_MOVES = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Slice", "Gather",
          "DepthToSpace", "SpaceToDepth"}
_INTEGER = {"DynamicQuantizeLinear", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QGemm", "QAttention",
            "QOrderedMatMul", "QuantizeBFP", "DequantizeBFP"}


def _is_integer_op(op_type: str) -> bool:
    return op_type in _INTEGER or op_type.startswith("QLinear") or op_type.endswith("Integer")


def integer_ops(model) -> list[tuple[str, str]]:
    """(node name, op type) of every node that computes in integers and cannot be folded to float."""
    return [(n.name or n.output[0], n.op_type) for n in model.graph.node if _is_integer_op(n.op_type)]


def _is_qdq(node, op_type: str) -> bool:
    return node.op_type == op_type and node.domain in _QDQ_DOMAINS


class _Graph:
    """Lookups over one graph: constants (initializers and Constant nodes), users of each tensor."""

    def __init__(self, graph):
        from onnx import numpy_helper

        self.g = graph
        self.consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        for n in graph.node:
            if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value":
                self.consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        self.users: dict[str, list] = {}
        for n in graph.node:
            for i in n.input:
                self.users.setdefault(i, []).append(n)
        self.outputs = {o.name for o in graph.output}

    def params(self, node) -> tuple[np.ndarray, np.ndarray, int]:
        """(scale, zero point, axis) of a QuantizeLinear / DequantizeLinear; the zero point defaults to 0."""
        name = f"{node.op_type} {node.name!r}"
        for a in node.attribute:
            if a.name == "block_size" and a.i:
                raise ValueError(f"{name} uses blocked quantisation (block_size {a.i}), which cannot be folded yet")
        if node.input[1] not in self.consts:
            raise ValueError(f"{name} has a scale computed at run time ({node.input[1]!r}), not a constant: "
                             "dynamic quantisation cannot be folded to float")
        scale = self.consts[node.input[1]]
        if len(node.input) > 2 and node.input[2]:
            if node.input[2] not in self.consts:
                raise ValueError(f"{name} has a zero point computed at run time ({node.input[2]!r}), not a constant")
            zp = self.consts[node.input[2]]
        else:
            zp = np.zeros((), dtype=np.int64)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        return scale, zp, axis


def _dequantize(q: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int) -> np.ndarray:
    """S (q - Z) in the scale's float type, per tensor or along ``axis`` (ONNX DequantizeLinear)."""
    diff = q.astype(np.int64) - zp.astype(np.int64).reshape(_bshape(zp, q, axis))
    return diff.astype(scale.dtype) * scale.reshape(_bshape(scale, q, axis))


def _bshape(p: np.ndarray, q: np.ndarray, axis: int) -> tuple[int, ...]:
    if p.size == 1 or q.ndim == 0:
        return () if p.ndim == 0 or q.ndim == 0 else (1,) * q.ndim
    shape = [1] * q.ndim
    shape[axis % q.ndim] = p.size
    return tuple(shape)


def _same(a: tuple, b: tuple) -> bool:
    (s1, z1, ax1), (s2, z2, ax2) = a, b
    if s1.size != s2.size or z1.size != z2.size:
        return False
    per_axis = s1.size > 1
    return (np.array_equal(s1.ravel(), s2.ravel()) and np.array_equal(z1.ravel().astype(np.int64),
                                                                         z2.ravel().astype(np.int64))
            and (not per_axis or ax1 == ax2))


def _fmt(p: tuple) -> str:
    s, z, _ = p
    return (f"scale {float(s.ravel()[0]):.6g}, zero point {int(z.ravel()[0])}" if s.size == 1
            else f"{s.size} per-channel scales")


def _chain(G: _Graph, q) -> tuple[list, list]:
    """The data-movement nodes and the DequantizeLinear nodes that read QuantizeLinear ``q``'s integers."""
    moves, dqs, todo = [], [], [q.output[0]]
    while todo:
        t = todo.pop()
        if t in G.outputs:
            raise ValueError(f"the integer tensor {t!r} (from QuantizeLinear {q.name!r}) is a graph output; "
                             "only graphs that end in float can be folded")
        for u in G.users.get(t, []):
            if _is_qdq(u, "DequantizeLinear") and u.input[0] == t:
                dqs.append(u)
            elif u.op_type in _MOVES and u.input[0] == t and len(u.output) == 1:
                moves.append(u)
                todo.append(u.output[0])
            else:
                raise ValueError(f"node {u.name!r} ({u.op_type}) reads the integers of QuantizeLinear {q.name!r}; "
                                 f"only DequantizeLinear and data-movement ops ({', '.join(sorted(_MOVES))}) can "
                                 "be folded between them")
    return moves, dqs


def fold_quantisation(model, keep_rounding: bool = False) -> dict | None:
    """Fold every QuantizeLinear / DequantizeLinear of ``model`` (an ``onnx.ModelProto``, changed in
    place) into float; return counts, or None when there is nothing to fold. Raises ``ValueError``
    (one line naming the node and op) for what cannot be folded.

    ``keep_rounding=True`` writes the rounding twin instead: each QuantizeLinear becomes
    ``max(min(round(x / S) + Z, qmax), qmin)`` and each DequantizeLinear ``(q - Z) S``, in float ops
    (Div, Round, Add, Min, Max, Sub, Mul), so the graph computes what the integer one does;
    the check that folding read every scale and zero point right (``onnx_check``)."""
    from onnx import helper, numpy_helper

    g = model.graph
    bad = integer_ops(model)
    if bad:
        name, op = bad[0]
        more = f" (and {len(bad) - 1} more integer nodes)" if len(bad) > 1 else ""
        raise ValueError(f"node {name!r} ({op}) computes in integers and cannot be folded to float{more}; "
                         "export the float model, or a QDQ one (QuantizeLinear / DequantizeLinear around float ops)")
    qs = [n for n in g.node if _is_qdq(n, "QuantizeLinear")]
    dqs = [n for n in g.node if _is_qdq(n, "DequantizeLinear")]
    if not qs and not dqs:
        return None
    G = _Graph(g)
    rename: dict[str, str] = {}
    drop: set[int] = set()
    twin: dict[int, list] = {}                         # node -> the float nodes that replace it (keep_rounding)
    new_consts = []
    n_consts = 0
    for dq in dqs:                                     # weights stored as integers
        if dq.input[0] in G.consts:
            scale, zp, axis = G.params(dq)
            value = _dequantize(G.consts[dq.input[0]], scale, zp, axis)
            new_consts.append(numpy_helper.from_array(value, dq.output[0]))
            drop.add(id(dq))
            n_consts += 1
    for q in qs:                                       # activations: Q -> [moves] -> DQ
        pq = G.params(q)
        moves, readers = _chain(G, q)
        if (moves or keep_rounding) and pq[0].size > 1:
            raise ValueError(f"QuantizeLinear {q.name!r} is per-channel and its integers pass through "
                             f"{(moves or readers)[0].op_type} {(moves or readers)[0].name!r}; only per-tensor "
                             "chains can be folded" + (" with their rounding" if keep_rounding else ""))
        for dq in readers:
            pd = G.params(dq)
            if not _same(pq, pd):
                raise ValueError(f"QuantizeLinear {q.name!r} ({_fmt(pq)}) and DequantizeLinear {dq.name!r} "
                                 f"({_fmt(pd)}) differ: folding them would drop a rescale")
            drop.add(id(dq))
            if keep_rounding:
                twin[id(dq)] = _dequantize_nodes(dq, pq, new_consts)
            else:
                rename[dq.output[0]] = dq.input[0]
        drop.add(id(q))
        if keep_rounding:
            twin[id(q)] = _quantize_nodes(q, pq, new_consts)
        else:
            rename[q.output[0]] = q.input[0]
    left = [n for n in dqs if id(n) not in drop]
    if left:
        n = left[0]
        raise ValueError(f"DequantizeLinear {n.name!r} reads {n.input[0]!r}, which is neither a constant nor the "
                         "output of a QuantizeLinear (an integer graph input?); cannot fold it to float")

    def resolve(t: str) -> str:
        while t in rename:
            t = rename[t]
        return t

    kept = []
    for n in g.node:
        kept += twin.get(id(n), []) if id(n) in drop else [n]
    for n in kept:
        for k, t in enumerate(n.input):
            if t in rename:
                n.input[k] = resolve(t)
    for o in g.output:                                # keep the graph's output names
        if o.name in rename:
            kept.append(helper.make_node("Identity", [resolve(o.name)], [o.name], name=f"{o.name}/folded"))
    _replace_nodes(g, kept)
    g.initializer.extend(new_consts)
    removed = _prune(g)
    del g.value_info[:]                               # integer tensors are float now: let inference redo the types
    return {"quantize_dequantize_pairs": len(qs), "dequantized_constants": n_consts,
            "nodes_removed": len(drop) + removed, "rounding": "kept" if keep_rounding else "dropped"}


_QRANGE = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255), np.dtype(np.int16): (-32768, 32767),
           np.dtype(np.uint16): (0, 65535)}


def _scalars(base: str, values: dict, consts: list) -> list[str]:
    from onnx import numpy_helper

    names = []
    for k, v in values.items():
        consts.append(numpy_helper.from_array(np.asarray(v, dtype=np.float32).reshape(()), f"{base}/{k}"))
        names.append(f"{base}/{k}")
    return names


def _quantize_nodes(q, p: tuple, consts: list) -> list:
    """QuantizeLinear in float ops: max(min(round(x / S) + Z, qmax), qmin), the integer as a float."""
    from onnx import helper

    scale, zp, _ = p
    if zp.dtype not in _QRANGE:
        raise ValueError(f"QuantizeLinear {q.name!r} quantises to {zp.dtype}; the rounding twin knows "
                         f"{', '.join(str(d) for d in _QRANGE)}")
    lo, hi = _QRANGE[zp.dtype]
    b = q.name or q.output[0]
    s, z, mn, mx = _scalars(b, {"S": scale.ravel()[0], "Z": zp.ravel()[0], "qmin": lo, "qmax": hi}, consts)
    o = q.output[0]
    return [helper.make_node("Div", [q.input[0], s], [f"{b}/div"], name=f"{b}/div"),
            helper.make_node("Round", [f"{b}/div"], [f"{b}/round"], name=f"{b}/round"),
            helper.make_node("Add", [f"{b}/round", z], [f"{b}/add"], name=f"{b}/add"),
            helper.make_node("Min", [f"{b}/add", mx], [f"{b}/min"], name=f"{b}/min"),
            helper.make_node("Max", [f"{b}/min", mn], [o], name=f"{b}/max")]


def _dequantize_nodes(dq, p: tuple, consts: list) -> list:
    """DequantizeLinear in float ops: (q - Z) S."""
    from onnx import helper

    scale, zp, _ = p
    b = dq.name or dq.output[0]
    s, z = _scalars(b, {"S": scale.ravel()[0], "Z": zp.ravel()[0]}, consts)
    return [helper.make_node("Sub", [dq.input[0], z], [f"{b}/sub"], name=f"{b}/sub"),
            helper.make_node("Mul", [f"{b}/sub", s], [dq.output[0]], name=f"{b}/mul")]


def _replace_nodes(g, nodes: list) -> None:
    del g.node[:]
    g.node.extend(nodes)


def _prune(g) -> int:
    """Drop nodes whose outputs nothing reads (the Constant scales and zero points) and unused
    initializers; return how many nodes went."""
    needed = {o.name for o in g.output}
    keep = []
    for n in reversed(g.node):
        if n.op_type == "Constant" and not any(o in needed for o in n.output):
            continue
        keep.append(n)
        needed.update(n.input)
    removed = len(g.node) - len(keep)
    if removed:
        keep.reverse()
        _replace_nodes(g, keep)
    inits = [i for i in g.initializer if i.name in needed]
    if len(inits) != len(g.initializer):
        del g.initializer[:]
        g.initializer.extend(inits)
    return removed
