"""An ONNX file -> a checked graph -> a torch module, with one-line errors for what cannot load.

    model = read_model(path)                        # unreadable / truncated / invalid: ValueError
    check_image_output(model, path, layout)         # a classifier (rank-2 output): ValueError
    done = prepare(model, image_input, layout, free_size=False)   # old opsets, float16, fold Q/DQ, NHWC pads, ...
    G = convert(model, path)                        # onnx2torch; an op it lacks: ValueError naming the node

``prepare(..., reference=True)`` builds what onnxruntime runs as a reference (``onnx_check``): the
same folding (or its rounding twin) and size, without the rewrites that only torch needs.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from interp_gan.subject.onnx_contract import dims, vector_length
from interp_gan.subject.onnx_opset import drop_initializer_inputs, upgrade_for_conversion
from interp_gan.subject.onnx_quant import fold_quantisation
from interp_gan.subject.onnx_rewrite import batch_free_reshapes, free_image_size, reflect_pads_to_last_axes
from interp_gan.subject.onnx_widen import float_image_input, widen_float16

__all__ = ["import_onnx", "read_model", "check_image_output", "prepare", "convert", "image_free_modules"]


def import_onnx():
    try:
        import onnx
        import onnx2torch
    except ImportError as e:
        raise ImportError(f"loading .onnx files needs onnx and onnx2torch ({e}); pip install onnx onnx2torch") from None
    from interp_gan.subject.onnx_converters import register
    register()   # converters for opset 18+ (the dynamo exporter's)
    return onnx, onnx2torch


def read_model(path: Path):
    """The parsed and checked ``ModelProto``; a truncated, corrupt or invalid file is one ValueError."""
    onnx, _ = import_onnx()
    _check_external_data(onnx, path)
    try:
        model = onnx.load(str(path))
    except Exception as e:   # protobuf DecodeError and friends: the bytes are not an ONNX model
        first = str(e).splitlines()[0] if str(e) else ""
        raise ValueError(f"{path.name} is not a readable ONNX model ({type(e).__name__}: {first}); the file is "
                         "truncated, corrupt or not ONNX: export or copy it again") from None
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValueError(f"{path.name} is not a valid ONNX model ({type(e).__name__}: {first}); the file is "
                         "truncated or corrupt, or the exporter wrote an invalid graph: export it again") from None
    if not model.graph.node or not model.graph.output:
        raise ValueError(f"{path.name} holds an empty ONNX graph (no nodes or no outputs): the file is "
                         "truncated or not a network")
    return model


def _check_external_data(onnx, path: Path) -> None:
    """A graph saved with ``save_as_external_data`` keeps its weights in files beside it; one missing
    (the .onnx copied without them) is one ValueError naming the files and where they belong."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return   # not readable at all: read_model says so
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    tensors = [*model.graph.initializer, *(a.t for n in model.graph.node for a in n.attribute if a.HasField("t"))]
    files = sorted({ExternalDataInfo(t).location for t in tensors if uses_external_data(t)})
    missing = [f for f in files if not (path.parent / f).is_file()]
    if missing:
        raise ValueError(f"{path.name} keeps its weights in external data ({', '.join(missing)}, written by "
                         f"save_as_external_data), which is not in {path.parent}: copy "
                         f"{'it' if len(missing) == 1 else 'them'} next to {path.name}")


def check_image_output(model, path: Path, layout: str) -> None:
    """The first output must be an image in the input's layout: [N,3,H,W] or [N,H,W,3] (or one
    grayscale channel, which the runner repeats into RGB)."""
    out = model.graph.output[0]
    shape = dims(out)
    channel = 1 if layout == "NCHW" else 3
    if len(shape) != 4 or (isinstance(shape[channel], int) and shape[channel] not in (0, 1, 3)):
        want = "[N,3,H,W]" if layout == "NCHW" else "[N,H,W,3]"
        what = ("a classifier or feature extractor" if len(shape) <= 2
                else "one vector per image (a style predictor?)" if vector_length(shape)
                else f"a map of {shape[channel]} channels" if len(shape) == 4 else f"a rank-{len(shape)} tensor")
        raise ValueError(f"{path.name}: output {out.name!r} has shape {shape} (rank {len(shape)}); expected an "
                         f"image {want}: this looks like {what}, not an image -> image network "
                         "(RGB or one grayscale channel; a style image -> vector network is given as style_predictor "
                         "instead)")


def prepare(model, image_input: str, layout: str, free_size: bool = False, keep_rounding: bool = False,
            reference: bool = False) -> dict:
    """Rewrite ``model`` in place for conversion (or, ``reference=True``, for onnxruntime as a
    reference); return what was done: ``{"quantisation": {...}, "reflect_pads": n, "free_size": [...]}``.
    For torch only: initializer inputs (IR 3) dropped, an old opset upgraded (``onnx_opset``); for
    both: float16 widened and an integer image input made float (``onnx_widen``)."""
    done: dict = {}
    if not reference:
        n = drop_initializer_inputs(model)
        if n:
            done["initializer_inputs_dropped"] = n
        up = upgrade_for_conversion(model)
        if up:
            done["opset_upgrade"] = up
    w = widen_float16(model)
    if w:
        done["float16_widened"] = w
    f = float_image_input(model, image_input)
    if f:
        done["image_input_widened"] = f
    if free_size:
        done["free_size"] = free_image_size(model, image_input, layout)
    q = fold_quantisation(model, keep_rounding=keep_rounding)
    if q:
        done["quantisation"] = q
    if not reference:
        n = _unkeyword_names(model)
        if n:
            done["node_names_renamed"] = n
        n = reflect_pads_to_last_axes(model)
        if n:
            done["reflect_pads"] = n
        n = batch_free_reshapes(model)
        if n:
            done["batch_free_reshapes"] = n
    return done


def _unkeyword_names(model) -> int:
    """Node names with a Python keyword as a part (``in``, ``if``, ``/dec/in``) get a ``_`` appended to
    that part: onnx2torch makes each a module attribute, and torch.fx cannot generate code that
    names ``self.in``; how many were renamed."""
    import keyword
    import re

    n = 0
    for node in model.graph.node:
        parts = re.split(r"([/.])", node.name)
        if any(keyword.iskeyword(p) for p in parts):
            node.name = "".join(p + "_" if keyword.iskeyword(p) else p for p in parts)
            n += 1
    return n


def _failing_node(model, onnx2torch) -> tuple[str, str, str] | None:
    """(node name, op, reason) of the first node onnx2torch cannot convert, converting node by node."""
    from onnx2torch.node_converters import get_converter
    from onnx2torch.onnx_graph import OnnxGraph
    from onnx2torch.utils.safe_shape_inference import safe_shape_inference

    opsets = {o.domain: o.version for o in model.opset_import}
    for n in model.graph.node:   # first the cheap check: is there a converter at all?
        try:
            get_converter(domain=n.domain, operation_type=n.op_type, version=opsets.get(n.domain, 1))
        except NotImplementedError:
            return n.name or n.output[0], n.op_type, f"onnx2torch has no converter for {n.op_type} " \
                                                     f"(opset {opsets.get(n.domain, 1)})"
    try:
        graph = OnnxGraph(safe_shape_inference(model).graph)
    except Exception:
        return None
    for name, node in graph.nodes.items():
        try:
            conv = get_converter(domain=node.domain, operation_type=node.operation_type,
                                 version=opsets.get(node.domain, 1))
            conv(node, graph)
        except Exception as e:
            return name, node.operation_type, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return None


_CONTROL_FLOW = ("If", "Loop", "Scan")
_SEQUENCES = ("SequenceConstruct", "SequenceAt", "SequenceInsert", "SequenceEmpty", "SequenceLength",
              "ConcatFromSequence", "SplitToSequence")


def _way_out(model, name: str, op: str) -> str:
    """How to get a graph without the node that cannot be converted, by what kind of node it is."""
    domain = next((n.domain for n in model.graph.node if (n.name or n.output[0]) == name), "")
    if domain.startswith("com.microsoft"):
        return (f"{op} is an onnxruntime op (domain {domain}) that its graph optimiser writes into a saved "
                "optimised model: load the file as exported, before onnxruntime optimised it")
    if op in _CONTROL_FLOW:
        return ("control flow in the graph (a scripted module's if / for on its input, exported as it is): export "
                "a trace instead (torch.jit.trace, or torch.onnx.export of the plain module), which fixes the branch "
                "at the traced size")
    if op in _SEQUENCES:
        return ("a list built at run time (a scripted module's Python list, e.g. of U-Net skips): export a trace "
                "instead (torch.jit.trace, or torch.onnx.export of the plain module), which unrolls it")
    return ("re-export without it (e.g. a static shape instead of a data-dependent one), or run the network in "
            "onnxruntime")


def convert(model, path: Path):
    """onnx2torch's ``fx.GraphModule``; a node it cannot convert is one ValueError naming node and op."""
    _, onnx2torch = import_onnx()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return onnx2torch.convert(model)
    except Exception as e:
        bad = _failing_node(model, onnx2torch)
        if bad:
            name, op, why = bad
            raise ValueError(f"{path.name}: node {name!r} ({op}) cannot be converted to torch ({why}); "
                             f"{_way_out(model, name, op)}") from None
        first = str(e).splitlines()[0] if str(e) else ""
        raise ValueError(f"{path.name}: onnx2torch could not convert the graph ({type(e).__name__}: {first})") from None


def image_free_modules(G, image_index: int) -> list[str]:
    """Names of ``G``'s modules whose inputs never depend on graph input ``image_index`` (the image):
    e.g. the convs that map a style vector to conditional-instance-norm parameters. Read from the
    fx graph, so they match ``named_modules()``."""
    placeholders = [n for n in G.graph.nodes if n.op == "placeholder"]
    seen = {placeholders[image_index]}
    free = []
    for n in G.graph.nodes:
        if n is placeholders[image_index]:
            continue
        if any(a in seen for a in n.all_input_nodes):
            seen.add(n)
        elif n.op == "call_module":
            free.append(str(n.target))
    return free
