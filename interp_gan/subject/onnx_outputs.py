"""Image inputs and outputs as exporters write them, made [N, C, H, W] (or [N, H, W, C]) with one output.

    done = add_batch_dims(model)              # a [3, H, W] input or output gets a batch dim of 1
    kept = keep_image_output(model, "NCHW")   # several outputs: the image one is kept, the rest dropped

**No batch dim.** A network exported on one unbatched image (``torch.onnx.export(net, x[0])``, a
graph that Unsqueezes its input and Squeezes its output) declares ``[3, H, W]``. Such an input
becomes ``[1, 3, H, W]`` read through a ``Squeeze`` back to the original tensor, and such an output
``[1, 3, H, W]`` through an ``Unsqueeze``: the graph computes what the file computes. Where the
graph itself adds the batch (its input's only readers Unsqueeze axis 0) or drops it (its output
is a Squeeze of axis 0), those nodes are bypassed instead, so a batch is one forward (hooks see
every image); otherwise it runs one image per call.

**Several outputs** (an image and a mask, a feature map, a second image): the first output that is
an image (rank 4, 3 channels in the input's layout; else a symbolic channel count; else one
grayscale channel) is the network's output; the others are dropped
from the graph with the nodes only they need, so neither conversion nor hooks see them, and
``meta["graph"]["outputs_dropped"]`` names them. When no output is an image, nothing changes and
``onnx_graph.check_image_output`` refuses the first one, naming all.
"""
from __future__ import annotations

import numpy as np

__all__ = ["add_batch_dims", "keep_image_output"]


def _shape(v) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in v.type.tensor_type.shape.dim]


def _is_chw(shape: list) -> bool:
    """[3, H, W] or [H, W, 3] (an unbatched image)."""
    return len(shape) == 3 and (shape[0] == 3) != (shape[2] == 3)


def _prepend(v) -> None:
    dims = v.type.tensor_type.shape.dim
    old = [type(dims[0])() for _ in dims]
    for a, b in zip(old, dims):
        a.CopyFrom(b)
    del dims[:]
    d = dims.add()
    d.dim_value = 1
    for a in old:
        dims.add().CopyFrom(a)


def add_batch_dims(model) -> dict | None:
    """Give unbatched image inputs / outputs ([3,H,W] or [H,W,3]) a leading batch dim of 1, in place;
    ``{"inputs": [...], "outputs": [...], "squeezes_bypassed": n}`` or None."""
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {i.name for i in g.initializer}
    ins = [v for v in g.input if v.name not in inits and _is_chw(_shape(v))]
    outs = [v for v in g.output if _is_chw(_shape(v))]
    if not ins and not outs:
        return None
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    consts.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node
                   if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    axis = f"{g.name or 'graph'}/batch_axis"
    old_opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13) < 13

    def node(op: str, x: str, y: str, name: str):   # axes an input from opset 13, an attribute before
        return (helper.make_node(op, [x], [y], name=name, axes=[0]) if old_opset
                else helper.make_node(op, [x, axis], [y], name=name))
    if not old_opset:
        g.initializer.append(numpy_helper.from_array(np.array([0], dtype=np.int64), axis))
    front, bypassed = [], 0
    for v in ins:
        readers = [n for n in g.node if v.name in n.input]
        if readers and all(_on_axis0(n, "Unsqueeze", consts) for n in readers):   # the graph adds the batch itself
            for r in readers:   # its readers read the batched input instead; the Unsqueeze goes
                for n in g.node:
                    n.input[:] = [v.name if i == r.output[0] else i for i in n.input]
                g.node.remove(r)
                bypassed += 1
        else:   # every reader reads the input squeezed back to [3, H, W] (one image per call)
            inner = f"{v.name}/unbatched"
            for n in readers:
                n.input[:] = [inner if i == v.name else i for i in n.input]
            front.append(node("Squeeze", v.name, inner, f"{v.name}/squeeze_batch"))
        _prepend(v)
    for k, n in enumerate(front):
        g.node.insert(k, n)
    for v in outs:
        last = next((n for n in g.node if v.name in n.output), None)
        if last is not None and _on_axis0(last, "Squeeze", consts):   # the graph drops the batch itself: keep it
            last.op_type, last.name = "Identity", last.name or f"{v.name}/kept_batch"
            del last.input[1:]
            del last.attribute[:]
            bypassed += 1
        else:   # the old output tensor, unsqueezed into a new output of the same name
            inner = f"{v.name}/unbatched_out"
            for n in g.node:
                n.output[:] = [inner if o == v.name else o for o in n.output]
                n.input[:] = [inner if i == v.name else i for i in n.input]
            g.node.append(node("Unsqueeze", inner, v.name, f"{v.name}/unsqueeze_batch"))
        _prepend(v)
    del g.value_info[:]
    return {"inputs": [v.name for v in ins], "outputs": [v.name for v in outs], "squeezes_bypassed": bypassed}


def _on_axis0(n, op: str, consts: dict) -> bool:
    """Whether node ``n`` is ``op`` (Squeeze / Unsqueeze) on axis 0 only (axes an input or an attribute)."""
    if n.op_type != op:
        return False
    for a in n.attribute:
        if a.name == "axes":
            return list(a.ints) == [0]
    return len(n.input) > 1 and n.input[1] in consts and [int(v) for v in np.ravel(consts[n.input[1]])] == [0]


def _image_like(shape: list, layout: str) -> int:
    """Rank 4 with, where the layout has channels: 3 (3), a symbolic dim (2), 1 (1, grayscale); else 0."""
    if len(shape) != 4:
        return 0
    c = shape[1] if layout == "NCHW" else shape[3]
    return 3 if c == 3 else 2 if not isinstance(c, int) or c <= 0 else 1 if c == 1 else 0


def keep_image_output(model, layout: str) -> dict | None:
    """Keep only the first image output of a graph with several (in place); ``{"kept": name,
    "dropped": [names]}``, or None when there is one output or none is an image."""
    from interp_gan.subject.torchscript_export import drop_dead_nodes

    outs = list(model.graph.output)
    if len(outs) < 2:
        return None
    score = [_image_like(_shape(o), layout) for o in outs]
    best = max(score)
    if best == 0:
        return None
    keep = outs[score.index(best)]
    dropped = [o.name for o in outs if o is not keep]
    kept = type(keep)()
    kept.CopyFrom(keep)
    del model.graph.output[:]
    model.graph.output.append(kept)
    drop_dead_nodes(model)
    return {"kept": kept.name, "dropped": dropped}
