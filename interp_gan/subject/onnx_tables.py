"""Which float buffers of a converted ONNX graph the random-init control re-draws (docs/models.md).

    tables, constants = classify_buffers(G)   # G: onnx2torch's fx.GraphModule
    G.random_init_tables, G.random_init_constants = tables, constants   # read by Subject.random_init

onnx2torch makes the initializers of the ops it converts to ``nn`` layers (Conv, Gemm as Linear)
parameters, which ``reset_parameters`` re-draws. Initializers read by generic ops, and the values
of Constant nodes, become buffers: the ``initializers`` container's ``onnx_initializer_<i>`` (read
through a ``get_attr`` node) and each ``OnnxConstant``'s ``value``. Nothing resets a buffer, so
each float one is sorted by the ops that read it in the fx graph:

- a **learned table**: more than 4 values, and every reader is arithmetic (Add, Sub, Mul, Div,
  MatMul, Gemm) whose other operand depends on a graph input (the image or the style vector).
  That is how a conditional instance norm's per-style scale and shift tables are read
  (multistyle26.onnx: style one-hot [N, 26] @ gamma [26, C]). The control re-draws it from a
  Gaussian with its own mean and std (``subject.control``);
- a **constant**: at most 4 values (an epsilon, an RGB normalisation, Resize scales [1, 1, 2, 2]),
  or read only by ops that take it as a size or a shape (Resize, Reshape, Pad, Expand, Tile, Slice,
  ConstantOfShape, Range), or read by nothing. Left as it is, not counted;
- anything else (e.g. a float tensor a Conv reads as its weight through a generic op, or a table
  that also feeds a constant-only computation): left trained, and the control counts it as kept.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["classify_buffers", "random_init_note", "MAX_CONSTANT_VALUES"]

MAX_CONSTANT_VALUES = 4       # an epsilon, RGB(A) constants, Resize scales: never a learned table
_MATH = {torch.add: "Add", torch.sub: "Sub", torch.mul: "Mul"}
_ARITHMETIC = {"Add", "Sub", "Mul", "Div", "MatMul", "Gemm"}
_SIZE_OPS = {"Resize", "Reshape", "Pad", "PadStatic", "PadDynamic", "Expand", "Tile", "Slice", "ConstantOfShape",
             "Range", "Upsample"}


def _op(G: nn.Module, node) -> str:
    """The ONNX op a node of onnx2torch's graph runs (its module class without ``Onnx``)."""
    if node.op == "call_module":
        m = G.get_submodule(node.target)
        name = type(m).__name__
        if name == "OnnxBinaryMathOperation":
            f = m.math_op_function
            return _MATH.get(f, "Div" if "div" in getattr(f, "__name__", "") else name)
        return name[4:] if name.startswith("Onnx") else name
    if node.op == "call_function":
        return {"add": "Add", "sub": "Sub", "mul": "Mul", "truediv": "Div", "matmul": "MatMul"}.get(
            getattr(node.target, "__name__", ""), str(node.target))
    return node.op


def _holders(G: nn.Module):
    """(fx node whose output is the buffer, state_dict name of the buffer) for each float buffer read
    as a value: ``get_attr`` nodes, and call_module nodes of input-free, parameter-free modules
    (``OnnxConstant``)."""
    for node in G.graph.nodes:
        if node.op == "get_attr":
            t = G.get_buffer(node.target) if _is_buffer(G, node.target) else None
            if t is not None and t.is_floating_point():
                yield node, str(node.target)
        elif node.op == "call_module" and not node.all_input_nodes:
            m = G.get_submodule(node.target)
            if next(m.parameters(recurse=False), None) is None:
                for b, t in m.named_buffers(recurse=False):
                    if t.is_floating_point():
                        yield node, f"{node.target}.{b}"


def _is_buffer(G: nn.Module, target: str) -> bool:
    try:
        G.get_buffer(target)
        return True
    except AttributeError:
        return False


def classify_buffers(G: nn.Module) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(learned tables, constants) among ``G``'s float buffers, as state_dict names (module docstring).
    The buffers in neither are the ones the random-init control keeps trained."""
    live = set()
    for n in G.graph.nodes:        # nodes whose value depends on a graph input
        if n.op == "placeholder" or any(a in live for a in n.all_input_nodes):
            live.add(n)
    readers: dict[str, list] = {}          # buffer -> [(reader node, the node holding the buffer)]
    for node, name in _holders(G):
        readers.setdefault(name, []).extend((u, node) for u in node.users)
    tables, constants = [], []
    for name, rs in readers.items():
        ops = [_op(G, u) for u, _ in rs]
        if G.get_buffer(name).numel() <= MAX_CONSTANT_VALUES or all(o in _SIZE_OPS for o in ops):
            constants.append(name)          # (all() of no readers: a buffer nothing reads changes nothing)
        elif all(o in _ARITHMETIC and any(a in live for a in u.all_input_nodes if a is not h)
                 for o, (u, h) in zip(ops, rs)):
            tables.append(name)
    return tuple(tables), tuple(constants)


def random_init_note(G: nn.Module) -> str | None:
    """One line for ``meta`` / ``inspect``: what the random-init control does with the held buffers."""
    tables, constants = getattr(G, "random_init_tables", ()), set(getattr(G, "random_init_constants", ()))
    held = [f"{p}.{n}" if p else n for p, m in G.named_modules() if not callable(getattr(m, "reset_parameters", None))
            for n, b in m.named_buffers(recurse=False) if b.is_floating_point() and b.numel()]
    held = [n for n in held if n not in constants and n not in tables]
    if not tables and not held:
        return None
    size = lambda names: sum(G.get_buffer(n).numel() for n in names)   # noqa: E731
    parts = []
    if tables:
        parts.append(f"{len(tables)} float initializer table(s) ({size(tables)} values, read by arithmetic on "
                     f"activations, e.g. conditional instance norm's per-style scales) are buffers: "
                     f"Subject.random_init re-draws them from a Gaussian with each table's own mean and std")
    if held:
        parts.append(f"{len(held)} other float buffer(s) ({size(held)} values: {', '.join(held[:3])}"
                     f"{' ...' if len(held) > 3 else ''}) keep their trained values in the random-init control")
    return "; ".join(parts)
