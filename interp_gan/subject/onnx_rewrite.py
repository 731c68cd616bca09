"""Graph rewrites that make an exported ONNX graph convert, batch or take other sizes; each runs on
the ``onnx.ModelProto`` before onnx2torch and changes only what its docstring says.

    batch_cin_style(model, "style_weights")     # a rank-1 CIN style vector -> one vector per image
    reflect_pads_to_last_axes(model)            # NHWC reflect / edge pads -> pads torch can run
    free_image_size(model, "content_image", "NHWC")   # a fixed declared H, W -> symbolic
    batch_free_reshapes(model)                  # Reshape(x, [1, C, 1, 1]) -> Reshape(x, [0, C, 1, 1])
"""
from __future__ import annotations

__all__ = ["batch_cin_style", "reflect_pads_to_last_axes", "free_image_size", "batch_free_reshapes"]


def batch_cin_style(model, style_name: str) -> str | None:
    """Rewrite, in place, a rank-1 style vector read by conditional instance norm so that it takes one
    vector per image ([N, D]). The pattern (a PyTorch export of Dumoulin et al.'s CIN, as in
    multistyle26.onnx): ``u = Unsqueeze(style, axes=[1])``; per norm layer
    ``Reshape(ReduceSum(Mul(u, W[D,C]), axes=[0], keepdims=0), [1,-1,1,1])``; it becomes
    ``Reshape(MatMul(style, W), [-1,C,1,1])`` (the MatMul keeps the Mul's node name). Returns a
    one-line description, or None (graph left untouched) when the graph does not match exactly."""
    import numpy as np
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node
              if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"}

    def value(name):
        if name in consts:
            return consts[name]
        return numpy_helper.to_array(inits[name]) if name in inits else None

    users: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    outs = {o.name for o in g.output}
    first = users.get(style_name, [])
    if len(first) != 1 or first[0].op_type != "Unsqueeze":
        return None
    unsq = first[0]
    axes = value(unsq.input[1]) if len(unsq.input) > 1 else next(
        (list(a.ints) for a in unsq.attribute if a.name == "axes"), None)
    if axes is None or [int(a) for a in list(axes)] != [1] or unsq.output[0] in outs:
        return None
    chains = []
    for mul in users.get(unsq.output[0], []):
        w = [i for i in mul.input if i != unsq.output[0]]
        if mul.op_type != "Mul" or len(w) != 1 or w[0] not in inits or len(inits[w[0]].dims) != 2:
            return None
        nxt = users.get(mul.output[0], [])
        if len(nxt) != 1 or nxt[0].op_type != "ReduceSum" or mul.output[0] in outs:
            return None
        red = nxt[0]
        r_axes = value(red.input[1]) if len(red.input) > 1 else next(
            (list(a.ints) for a in red.attribute if a.name == "axes"), None)
        keep = next((a.i for a in red.attribute if a.name == "keepdims"), 1)
        if r_axes is None or [int(a) for a in list(r_axes)] != [0] or keep != 0:
            return None
        nxt = users.get(red.output[0], [])
        if len(nxt) != 1 or nxt[0].op_type != "Reshape" or red.output[0] in outs:
            return None
        shape = value(nxt[0].input[1])
        C = int(inits[w[0]].dims[1])
        if shape is None or [int(v) for v in shape] not in ([1, -1, 1, 1], [1, C, 1, 1]):
            return None
        chains.append((mul, w[0], red, nxt[0], C))
    if not chains:
        return None
    drop = {id(unsq)} | {id(c[2]) for c in chains}
    for mul, w, red, resh, C in chains:
        shape_name = f"interp_gan/cin_shape_{C}"
        if shape_name not in inits:
            inits[shape_name] = numpy_helper.from_array(np.array([-1, C, 1, 1], dtype=np.int64), shape_name)
            g.initializer.append(inits[shape_name])
        mm = helper.make_node("MatMul", [style_name, w], [red.output[0]], name=mul.name)
        mul.CopyFrom(mm)
        resh.input[1] = shape_name
    keep_nodes = [n for n in g.node if id(n) not in drop]
    del g.node[:]
    g.node.extend(keep_nodes)
    for i in g.input:
        if i.name == style_name:
            dims = i.type.tensor_type.shape.dim
            d = dims[0].dim_value
            del dims[:]
            dims.add().dim_param = "N"
            dims.add().dim_value = d
    return (f"style input made per-image: {len(chains)} conditional-instance-norm reads "
            "Unsqueeze·Mul·ReduceSum rewritten as MatMul(style [N,D], W)")



def _const(model, name: str):
    from onnx import numpy_helper

    for i in model.graph.initializer:
        if i.name == name:
            return numpy_helper.to_array(i)
    for n in model.graph.node:
        if n.op_type == "Constant" and n.output[0] == name and n.attribute and n.attribute[0].name == "value":
            return numpy_helper.to_array(n.attribute[0].t)
    return None


def reflect_pads_to_last_axes(model) -> int:
    """Rewrite, in place, every 4-D reflect / edge ``Pad`` that pads axes 1 and 2 (an NHWC image, as
    TensorFlow's MirrorPad exports) as Transpose(NCHW) · Pad(axes 2, 3) · Transpose(NHWC): torch
    pads reflect / replicate only along the last two axes of a 4-D tensor, so onnx2torch's Pad fails
    on the NHWC form at run time. The Pad keeps its node name. Returns how many were rewritten."""
    import numpy as np
    from onnx import helper, numpy_helper

    g = model.graph
    nodes, done = [], 0
    for n in g.node:
        mode = next((a.s.decode() for a in n.attribute if a.name == "mode"), "constant")
        pads = _const(model, n.input[1]) if n.op_type == "Pad" and len(n.input) > 1 else None
        if (pads is None or mode not in ("reflect", "edge") or len(pads) != 8 or len(n.input) > 3
                or (len(n.input) == 3 and n.input[2]) or not (pads[1] or pads[5]) or pads[[0, 3, 4, 7]].any()):
            nodes.append(n)
            continue
        base = n.name or n.output[0]
        perm_pads = np.asarray(pads, dtype=np.int64)[[0, 3, 1, 2, 4, 7, 5, 6]]
        pads_name = f"{base}/pads_nchw"
        g.initializer.append(numpy_helper.from_array(perm_pads, pads_name))
        a, b = f"{base}/nchw", f"{base}/padded_nchw"
        nodes += [helper.make_node("Transpose", [n.input[0]], [a], perm=[0, 3, 1, 2], name=f"{base}/to_nchw"),
                  helper.make_node("Pad", [a, pads_name], [b], mode=mode, name=n.name),
                  helper.make_node("Transpose", [b], [n.output[0]], perm=[0, 2, 3, 1], name=f"{base}/to_nhwc")]
        done += 1
    if done:
        del g.node[:]
        g.node.extend(nodes)
    return done


def free_image_size(model, image_input: str, layout: str) -> list[str]:
    """Make, in place, the image input's height and width symbolic (``H``, ``W``) and likewise the
    spatial dims of every rank-4 graph output: for a fully convolutional network exported with one
    fixed size (tf2onnx writes the size it was traced at). Shape annotations of inner tensors are
    dropped so that onnxruntime re-derives them. Returns the names whose dims changed."""
    g = model.graph
    hw = (2, 3) if layout == "NCHW" else (1, 2)
    changed = []
    for v in [*[i for i in g.input if i.name == image_input], *g.output]:
        dims = v.type.tensor_type.shape.dim
        if len(dims) != 4:
            continue
        for k, sym in zip(hw, ("H", "W")):
            dims[k].Clear()
            dims[k].dim_param = sym if v.name == image_input else f"{sym}_out"
        changed.append(v.name)
    del g.value_info[:]
    return changed


def batch_free_reshapes(model) -> int:
    """Let, in place, every ``Reshape`` to a constant shape that starts with B copy its input's first
    dim instead (B -> 0, ONNX's "keep this dim"), where shape inference says that input's first dim is
    B: an export traced at batch B (most often 1) bakes the batch into such shapes (tf2onnx:
    ``[1, C, 1, 1]``). At batch B the graph computes exactly what it did; whether another batch now
    gives the same as single images is for the loader's batching check to say. Returns how many were rewritten."""
    import numpy as np
    from onnx import numpy_helper, shape_inference

    g = model.graph
    try:
        inferred = shape_inference.infer_shapes(model)
    except Exception:
        return 0
    first = {}
    for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        d = v.type.tensor_type.shape.dim
        if len(d):
            first[v.name] = d[0].dim_value if d[0].HasField("dim_value") else None
    done = 0
    for n in g.node:
        if n.op_type != "Reshape" or any(a.name == "allowzero" and a.i for a in n.attribute):
            continue
        shape = _const(model, n.input[1])
        if shape is None or shape.ndim != 1 or len(shape) < 2 or shape[0] < 1 or first.get(n.input[0]) != shape[0]:
            continue
        new = np.array(shape, dtype=np.int64)
        new[0] = 0
        name = f"{n.input[1]}/batch_free"
        if not any(i.name == name for i in g.initializer):
            g.initializer.append(numpy_helper.from_array(new, name))
        n.input[1] = name
        done += 1
    return done
