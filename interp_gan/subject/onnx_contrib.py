"""onnxruntime's own fused ops (domain ``com.microsoft``), split back into standard ONNX ops.

    n = unfuse_contrib(model)     # in place; how many FusedConv nodes became Conv + activation

A graph saved from an onnxruntime session (``SessionOptions.optimized_model_filepath`` at the
extended level) has its convolutions fused with the activation after them (``FusedConv``:
Conv, an optional residual ``Z`` added, then Relu / Tanh / Sigmoid / LeakyRelu / Clip /
HardSigmoid). onnx2torch has no converter for it; written back as ``Conv`` (same name, so the
layer keeps its name), ``Add`` and the activation, the graph computes the same function and the
conv is an ``nn.Conv2d`` that hooks, default layers and the random-init control see. The last
activation is then visible to the range inference too (a fused Tanh at the output means [-1, 1]).
Other contrib ops, and the hardware-specific ``com.microsoft.nchwc`` ones of the highest level, are
refused at conversion in one line asking for the file as exported (``onnx_graph.convert``).
"""
from __future__ import annotations

__all__ = ["unfuse_contrib"]

_ACT_PARAMS = {"Relu": (), "Tanh": (), "Sigmoid": (), "LeakyRelu": ("alpha",), "HardSigmoid": ("alpha", "beta")}


def _attr(n, name):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in n.attribute if a.name == name), None)


def unfuse_contrib(model) -> int:
    """Every ``com.microsoft`` FusedConv -> Conv [+ Add] + activation, in place; how many."""
    from onnx import helper, numpy_helper
    import numpy as np

    g = model.graph
    nodes, n_done = [], 0
    for n in g.node:
        act = _attr(n, "activation")
        act = act.decode() if isinstance(act, bytes) else act
        if n.domain != "com.microsoft" or n.op_type != "FusedConv" or (act and act not in (*_ACT_PARAMS, "Clip")):
            nodes.append(n)
            continue
        params = list(_attr(n, "activation_params") or [])
        conv_attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute
                      if a.name not in ("activation", "activation_params")}
        name, out = n.name or n.output[0], n.output[0]
        x = f"{out}/conv" if act or (len(n.input) > 3 and n.input[3]) else out
        nodes.append(helper.make_node("Conv", list(n.input[:3]), [x], name=name, **conv_attrs))
        if len(n.input) > 3 and n.input[3]:   # the residual Z, added before the activation
            y = f"{out}/sum" if act else out
            nodes.append(helper.make_node("Add", [x, n.input[3]], [y], name=f"{name}/add"))
            x = y
        if act == "Clip":
            lo, hi = (params + [-np.inf, np.inf])[:2] if params else (-np.inf, np.inf)
            bounds = [f"{name}/clip_min", f"{name}/clip_max"]
            g.initializer.extend(numpy_helper.from_array(np.array(v, dtype=np.float32), b)
                                 for v, b in zip((lo, hi), bounds))
            nodes.append(helper.make_node("Clip", [x, *bounds], [out], name=f"{name}/{act}"))
        elif act:
            kw = dict(zip(_ACT_PARAMS[act], params))
            nodes.append(helper.make_node(act, [x], [out], name=f"{name}/{act}", **kw))
        n_done += 1
    if n_done:
        del g.node[:]
        g.node.extend(nodes)
        if not any(n.domain == "com.microsoft" for n in g.node):   # the contrib opset is no longer needed
            keep = [o for o in model.opset_import if o.domain != "com.microsoft"]
            del model.opset_import[:]
            model.opset_import.extend(keep)
    return n_done
