"""onnx2torch converters for the opsets the dynamo exporter writes (18 and later).

    register()     # once, before conversion (onnx_graph.import_onnx calls it)

``torch.onnx.export(..., dynamo=True)``, the default since torch 2.9, writes opset 18 or later.
onnx2torch 1.5 registers most ops up to opset 17 only, so e.g. a CycleGAN's reflect ``Pad`` at
opset 20 had no converter. For the versions below, the ONNX change only widened the types an op
accepts (float8, 4-bit integers, ...) or added an input / attribute; each is converted by
onnx2torch's own converter of the last version it knows, after a check that the node uses nothing
the newer version added (else NotImplementedError naming what, which the loader turns into one
line naming the node):

- type-only: Reshape 19 / 21, Transpose 21, Shape 19 / 21, Unsqueeze 21, Flatten 21, Identity
  19 / 21, Constant 19 / 21, ConstantOfShape 20 / 21, Equal 19, Cast 19 / 21 (its ``saturate``
  attribute concerns float8 targets only, which torch conversion refuses anyway);
- Pad 18 / 19 / 21 without the ``axes`` input (18) and not in ``wrap`` mode (19);
- Resize 18 / 19 with ``antialias`` 0, no ``axes``, ``keep_aspect_ratio_policy`` "stretch" (18)
  and not ``half_pixel_symmetric`` coordinates (19);
- AveragePool 19 / 22 with every dilation 1;
- opset 22, which only added bfloat16: Conv, ConvTranspose, InstanceNormalization, MaxPool,
  GlobalAveragePool, Elu, Selu, HardSigmoid, HardSwish, Softplus, Softsign, Dropout, Round, EyeLike;
- opsets 23 / 24, which only added 4- and 8-bit float types: Reshape, Transpose, Shape, Unsqueeze,
  Squeeze, Flatten, Identity, Constant, ConstantOfShape, Cast, Pad (as above).

ReduceMean 18 and Split 18 moved an attribute into an input and are not covered. Whether a
converted graph computes what the file does is what ``onnx_check`` measures against onnxruntime.
"""
from __future__ import annotations

__all__ = ["register", "DELEGATED"]


def _pad(node) -> str | None:
    if len(node.input_values) > 3 and node.input_values[3]:
        return "the axes input (opset 18)"
    if node.attributes.get("mode", "constant") == "wrap":
        return "wrap mode (opset 19)"
    return None


def _resize(node) -> str | None:
    a = node.attributes
    if a.get("antialias", 0):
        return "antialias = 1 (opset 18)"
    if a.get("axes") is not None:
        return "the axes attribute (opset 18)"
    if a.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        return f"keep_aspect_ratio_policy {a['keep_aspect_ratio_policy']!r} (opset 18)"
    if a.get("coordinate_transformation_mode") == "half_pixel_symmetric":
        return "half_pixel_symmetric coordinates (opset 19)"
    return None


def _average_pool(node) -> str | None:
    d = node.attributes.get("dilations")
    return "dilations other than 1 (opset 19)" if d is not None and any(int(v) != 1 for v in d) else None


# op -> (the versions added here, the version whose converter they use, a check or None)
DELEGATED = {
    "Reshape": ((19, 21), 14, None), "Transpose": ((21,), 13, None), "Shape": ((19, 21), 15, None),
    "Unsqueeze": ((21,), 13, None), "Flatten": ((21,), 13, None), "Identity": ((19, 21), 16, None),
    "Constant": ((19, 21), 13, None), "ConstantOfShape": ((20, 21), 9, None), "Equal": ((19,), 13, None),
    "Cast": ((19, 21), 13, None), "Pad": ((18, 19, 21), 13, _pad), "Resize": ((18, 19), 13, _resize),
    "AveragePool": ((19, 22), 11, _average_pool),
    # opset 22 added bfloat16 to these (ONNX 1.17), nothing else
    "Conv": ((22,), 11, None), "ConvTranspose": ((22,), 11, None), "InstanceNormalization": ((22,), 6, None),
    "MaxPool": ((22,), 12, None), "GlobalAveragePool": ((22,), 1, None), "Elu": ((22,), 6, None),
    "Selu": ((22,), 6, None), "HardSigmoid": ((22,), 6, None), "HardSwish": ((22,), 14, None),
    "Softplus": ((22,), 1, None), "Softsign": ((22,), 1, None), "Dropout": ((22,), 13, None),
    "Round": ((22,), 11, None), "EyeLike": ((22,), 9, None),
}
# opsets 23 and 24 added 4-bit and 8-bit float types to these (ONNX 1.18, 1.19), nothing else
for _op in ("Reshape", "Transpose", "Shape", "Unsqueeze", "Flatten", "Identity", "Constant", "ConstantOfShape", "Cast",
            "Pad"):
    DELEGATED[_op] = (DELEGATED[_op][0] + (23, 24), *DELEGATED[_op][1:])
DELEGATED["Squeeze"] = ((23, 24), 13, None)
_done = False


def _delegate(op: str, old: int, check):
    from onnx2torch.node_converters.registry import get_converter

    def convert(node, graph):
        why = check(node) if check else None
        if why:
            raise NotImplementedError(f"{op} with {why} has no onnx2torch converter")
        return get_converter(operation_type=op, version=old)(node, graph)
    return convert


def register() -> None:
    """Add the converters above to onnx2torch's registry (idempotent; a version onnx2torch already
    has is left to it)."""
    global _done
    if _done:
        return
    from onnx2torch.node_converters.registry import add_converter

    for op, (versions, old, check) in DELEGATED.items():
        for v in versions:
            try:
                add_converter(operation_type=op, version=v)(_delegate(op, old, check))
            except ValueError:   # already registered (a newer onnx2torch)
                pass
    _done = True
