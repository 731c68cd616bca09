"""ONNX files as Subjects (issue #11, item 1, first part: float graphs).

    subject = load_onnx_subject("multistyle26.onnx", device="cpu")   # or load_subject("x.onnx")
    img = subject.generate(content, style_ids)        # content [N,3,H,W] in [-1,1] -> [-1,1]
    diff = onnx_max_abs_diff("multistyle26.onnx", subject, content, style_ids)   # vs onnxruntime

The graph is converted to a ``torch.fx.GraphModule`` with onnx2torch; every module keeps the
name onnx2torch gives it (the ONNX node name, e.g. ``contract/0/Conv``), so hooks and globs
address the ONNX nodes. The wrapper maps content in [-1,1] NCHW to the network's input contract
and the output back to [-1,1]:

- the image input is the first float input of rank 4; its layout (NCHW / NHWC) is inferred from
  the dimension that is 3, its value range ([-1,1] | [0,1] | [0,255]) comes from a sidecar
  ``<file>.onnx.toml`` or defaults to [0,1]; the output is read in the same layout and range;
- a second float input of rank 1 or 2 is the style vector: style ``i`` is the one-hot vector
  ``e_i`` (``style_code``), ``stylize_code`` feeds any vector. A rank-1 style input takes one
  vector per call; when it is read by conditional instance norm in the usual exported pattern
  the graph is rewritten to take one vector per image (``_batch_cin_style``), so one forward
  serves a batch of mixed styles and every hook fires once; otherwise images are run in groups
  sharing a vector (``meta["input_contract"]["style_batching"]`` says which).

Layer names are onnx2torch's: the ONNX node name without the leading ``/`` and with ``.`` turned
into ``/`` (``/contract.0/Conv`` -> ``contract/0/Conv``); the conv layers are ``nn.Conv2d``, so
``spatial_layers`` / ``default_layers`` find them.

Sidecar (all keys optional)::

    range = "[0,1]"                 # "[-1,1]" | "[0,1]" | "[0,255]"
    layout = "NCHW"                 # or "NHWC"
    style_names = ["mosaic", ...]   # one per entry of the style vector

``subject.meta["input_contract"]`` says which parts were inferred, which came from the sidecar,
and which were defaulted. Quantised graphs (QuantizeLinear / DequantizeLinear) are refused for now.
"""
from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from interp_gan.subject.known import known_network
from interp_gan.subject.protocol import Subject
from interp_gan.util import resolve_device, sha256_file

# onnx2torch's Slice indexes with a list, which torch deprecates on every forward: noise, not a finding
warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing",
                        category=UserWarning, module="onnx2torch")

__all__ = ["load_onnx_subject", "onnx_max_abs_diff", "ONNX_TOLERANCE"]

# max |subject - onnxruntime| in the subject's [-1,1] output scale that inspect / tests accept.
# Measured on multistyle26.onnx (CPU, float32, 64 px, uniform random content, 6 images, mixed
# styles in one batch): 4.2e-5 (about 2e-5 in the network's own [0,1] scale); the tolerance leaves a wide margin for
# other sizes and devices while still catching a wrong conversion (errors of 1e-2 and up).
ONNX_TOLERANCE = 1e-3

_RANGES = {"[-1,1]": (-1.0, 1.0), "[0,1]": (0.0, 1.0), "[0,255]": (0.0, 255.0)}
_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
              "ConvInteger", "MatMulInteger"}
_FLOAT = 1   # onnx.TensorProto.FLOAT


def _import_onnx():
    try:
        import onnx
        import onnx2torch
    except ImportError as e:
        raise ImportError(f"loading .onnx files needs onnx and onnx2torch ({e}); pip install onnx onnx2torch") from None
    return onnx, onnx2torch


def _dims(value_info) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value_info.type.tensor_type.shape.dim]


def _read_sidecar(path: Path, sidecar: str | Path | None) -> dict:
    side = Path(sidecar) if sidecar is not None else path.with_name(path.name + ".toml")
    if sidecar is not None and not side.is_file():
        raise FileNotFoundError(f"no sidecar at {side}")
    if not side.is_file():   # a network we verified needs none (subject/known.py)
        known = known_network(sha256_file(path))
        return {} if known is None else {k: known[k] for k in ("range", "style_names")
                                         if k in known} | {"_path": f"known network {known['name']}"}
    cfg = tomllib.loads(side.read_text())
    unknown = set(cfg) - {"range", "layout", "style_names"}
    if unknown:
        raise ValueError(f"{side}: unknown keys {sorted(unknown)}; expected range, layout, style_names")
    if "range" in cfg and str(cfg["range"]).replace(" ", "") not in _RANGES:
        raise ValueError(f"{side}: range {cfg['range']!r}; expected one of {', '.join(_RANGES)}")
    if "layout" in cfg and str(cfg["layout"]).upper() not in ("NCHW", "NHWC"):
        raise ValueError(f"{side}: layout {cfg['layout']!r}; expected NCHW or NHWC")
    return {**cfg, "_path": str(side)}


def _batch_cin_style(model, style_name: str) -> str | None:
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


class _OnnxRunner:
    """content [N,3,H,W] in [-1,1] (+ style vectors [N,D]) -> the network -> [N,3,H,W] in [-1,1]."""

    def __init__(self, net: nn.Module, layout: str, value_range: str, style_rank: int | None):
        self.net, self.layout, self.style_rank = net, layout, style_rank
        self.lo, self.hi = _RANGES[value_range]
        self.batched = True   # set by the load-time check
        self.fixed_hw: tuple[int, int] | None = None   # a graph with a fixed image size

    def to_net(self, content: Tensor) -> Tensor:
        x = (content + 1) / 2 * (self.hi - self.lo) + self.lo
        return x.permute(0, 2, 3, 1) if self.layout == "NHWC" else x

    def from_net(self, y: Tensor) -> Tensor:
        y = y.permute(0, 3, 1, 2) if self.layout == "NHWC" else y
        return (y - self.lo) / (self.hi - self.lo) * 2 - 1

    def _call(self, x: Tensor, code: Tensor | None) -> Tensor:
        """x in the network's contract; code [n,D] (one row when the style input is rank 1)."""
        if code is None:
            return self.net(x)
        return self.net(x, code[0] if self.style_rank == 1 else code)

    def _batch(self, x: Tensor, code: Tensor | None) -> Tensor:
        if self.batched:
            return self._call(x, code)
        return torch.cat([self._call(x[i:i + 1], None if code is None else code[i:i + 1] if self.style_rank == 2
                                     else code) for i in range(len(x))])

    def __call__(self, content: Tensor, codes: Tensor | None) -> Tensor:
        if self.fixed_hw is not None and tuple(content.shape[-2:]) != self.fixed_hw:
            raise ValueError(f"this ONNX network takes {self.fixed_hw[0]}x{self.fixed_hw[1]} images only; "
                             f"got {content.shape[-2]}x{content.shape[-1]} (set image_size accordingly)")
        x = self.to_net(content)
        if codes is None or self.style_rank == 2:
            return self.from_net(self._batch(x, codes))
        codes = codes.to(x.dtype)
        uniq, group = torch.unique(codes, dim=0, return_inverse=True)   # rank 1: one vector per call
        if len(uniq) == 1:
            return self.from_net(self._batch(x, uniq[:1]))
        out = None
        for g in range(len(uniq)):
            idx = (group == g).nonzero().flatten()
            y = self._batch(x[idx], uniq[g:g + 1])
            if out is None:
                out = y.new_empty((len(x), *y.shape[1:]))
            out[idx] = y
        return self.from_net(out)


def _check_batching(runner: _OnnxRunner, style_dim: int, device: torch.device) -> tuple[bool, str]:
    """Whether the converted graph gives the same result for a batch of 2 as for 2 single images
    (an ONNX export often fixes the batch to 1 and a reshape may bake it in)."""
    g = torch.Generator().manual_seed(0)
    h, w = runner.fixed_hw or (32, 32)
    x = (torch.rand(2, 3, h, w, generator=g) * 2 - 1).to(device)
    code = torch.zeros(2, style_dim, device=device) if style_dim else None
    if code is not None:   # two different styles: also checks a per-image style input
        code[0, 0] = 1
        code[1, min(1, style_dim - 1)] = 1
    runner.batched = False
    with torch.no_grad():
        single = runner(x, code)
        runner.batched = True
        try:
            both = runner(x, code)
        except Exception as e:   # the graph refuses batch > 1: run one image per call
            runner.batched = False
            return False, f"batch of 2 failed ({type(e).__name__}); one image per call"
    diff = float((both - single).abs().max())
    runner.batched = diff <= ONNX_TOLERANCE
    return runner.batched, f"batch of 2 vs 2 single images: max abs diff {diff:.2e}"


def load_onnx_subject(path: str | Path, device: str | torch.device = "cpu",
                      sidecar: str | Path | None = None) -> Subject:
    """A float ONNX image -> image network (optionally with a style-vector input) as a Subject."""
    onnx, onnx2torch = _import_onnx()
    path = Path(path)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    model = onnx.load(str(path))
    quant = sorted({n.op_type for n in model.graph.node} & _QUANT_OPS)
    if quant:
        raise ValueError(f"{path.name}: quantised ONNX graphs ({', '.join(quant)}) are not supported yet")
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    info = [{"name": i.name, "shape": _dims(i), "float": i.type.tensor_type.elem_type == _FLOAT} for i in inputs]
    images = [d for d in info if d["float"] and len(d["shape"]) == 4]
    if not images:
        raise ValueError(f"{path.name}: no float input of rank 4 (an image); inputs are "
                         f"{[(d['name'], d['shape']) for d in info]}")
    image = images[0]
    styles = [d for d in info if d is not image and d["float"] and len(d["shape"]) in (1, 2)]
    rest = [d for d in info if d is not image and (not styles or d is not styles[0])]
    if rest:
        raise ValueError(f"{path.name}: inputs {[(d['name'], d['shape']) for d in rest]} are neither the image "
                         "nor a style vector (float, rank 1 or 2)")
    style = styles[0] if styles else None

    side = _read_sidecar(path, sidecar)
    contract = {"image_input": image["name"], "inferred": [], "from_sidecar": [], "defaulted": []}
    shape = image["shape"]
    if "layout" in side:
        layout = str(side["layout"]).upper()
        contract["from_sidecar"].append("layout")
    elif shape[1] == 3 and shape[3] != 3:
        layout = "NCHW"
        contract["inferred"].append("layout")
    elif shape[3] == 3 and shape[1] != 3:
        layout = "NHWC"
        contract["inferred"].append("layout")
    else:
        layout = "NCHW"
        contract["defaulted"].append("layout")
    if "range" in side:
        value_range = str(side["range"]).replace(" ", "")
        contract["from_sidecar"].append("range")
    else:
        value_range = "[0,1]"
        contract["defaulted"].append("range")
    contract.update(layout=layout, range=value_range,
                    size="fixed" if all(isinstance(d, int) and d > 0 for d in (shape[2:] if layout == "NCHW"
                                                                                  else shape[1:3])) else "free")

    style_dim = 0
    if style is not None:
        style_dim = style["shape"][-1]
        if not isinstance(style_dim, int) or style_dim <= 0:
            raise ValueError(f"{path.name}: style input {style['name']!r} has no fixed length ({style['shape']})")
        contract.update(style_input=style["name"], style_rank=len(style["shape"]))
    default_names = [f"style{i}" for i in range(style_dim)] if style_dim else ["output"]
    if "style_names" in side:
        names = [str(n) for n in side["style_names"]]
        if len(names) != len(default_names):
            raise ValueError(f"{side['_path']}: {len(names)} style_names for a style vector of length {style_dim}")
        contract["from_sidecar"].append("style_names")
    else:
        names = default_names
        if style_dim:
            contract["defaulted"].append("style_names")
    if side:
        contract["sidecar"] = side["_path"]

    style_rank = contract.get("style_rank")
    if style_rank == 1:   # one vector per call: hooks would fire once per style group; batch it if we can
        how = _batch_cin_style(model, style["name"])
        if how:
            style_rank = 2
            contract["style_batching"] = how
        else:
            contract["style_batching"] = ("one forward per distinct style vector (the style input is rank 1): "
                                          "a batch mixing styles fires each hook once per style group")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        G = onnx2torch.convert(model)
    G = G.to(dev).eval()
    # the converted forward takes the graph's inputs in the graph's order
    style_first = style is not None and info.index(style) < info.index(image)
    net = (lambda x, code=None: G(code, x)) if style_first else G
    runner = _OnnxRunner(net, layout, value_range, style_rank)
    hw = shape[2:] if layout == "NCHW" else shape[1:3]
    if contract["size"] == "fixed":
        runner.fixed_hw = (int(hw[0]), int(hw[1]))
    batched, why = _check_batching(runner, style_dim, dev)
    contract["batched"] = why

    meta = {"model": {"name": "onnx", "path": str(path),
                      "inputs": [{"name": d["name"], "shape": d["shape"]} for d in info],
                      "outputs": [{"name": o.name, "shape": _dims(o)} for o in model.graph.output]},
            "checkpoint_sha256": sha256_file(path), "checkpoint_path": str(path), "input_contract": contract}
    held = [b for n, b in G.named_buffers() if b.is_floating_point() and b.numel() > 1]
    if held:   # onnx2torch keeps initializers read by generic ops (CIN's gamma/beta) as buffers, not parameters
        meta["random_init_note"] = (f"{len(held)} float initializers ({sum(b.numel() for b in held)} values) are "
                                    "buffers, not parameters: Subject.random_init re-draws the conv layers only "
                                    "and keeps these trained")

    if not style_dim:
        return Subject(generator=G, style_names=names, _generate=lambda c, s, z=None: runner(c, None),
                       meta=meta).eval()

    def one_hot(style_ids: Tensor) -> Tensor:
        return torch.nn.functional.one_hot(style_ids.long(), style_dim).float().to(style_ids.device)

    return Subject(generator=G, style_names=names,
                   _generate=lambda c, s, z=None: runner(c, one_hot(s).to(c.device)),
                   _style_code=lambda s, z: one_hot(s),
                   _stylize_code=lambda c, code: runner(c, code.to(c.device)),
                   latent_dim=0, style_dim=style_dim, meta=meta).eval()


def onnx_max_abs_diff(path: str | Path, subject: Subject, images: Tensor,
                      style_ids: Tensor | None = None) -> float:
    """max |subject.generate - onnxruntime| over ``images`` ([N,3,H,W] in [-1,1]), in the subject's
    [-1,1] output scale. onnxruntime runs the original file, one image per call, on the same
    preprocessing (the subject's input contract); a style subject gets one-hot vectors of
    ``style_ids`` (default: style 0 for every image)."""
    import numpy as np
    import onnxruntime as ort

    c = subject.meta["input_contract"]
    lo, hi = _RANGES[c["range"]]
    if style_ids is None:
        style_ids = torch.zeros(len(images), dtype=torch.long)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ours = subject.generate(images.to(subject.device), style_ids.to(subject.device)).float().cpu()
    worst = 0.0
    for i in range(len(images)):
        x = (images[i:i + 1].float().cpu() + 1) / 2 * (hi - lo) + lo
        if c["layout"] == "NHWC":
            x = x.permute(0, 2, 3, 1)
        feed = {c["image_input"]: x.contiguous().numpy()}
        if "style_input" in c:
            v = np.zeros(subject.style_dim, dtype=np.float32)
            v[int(style_ids[i])] = 1
            feed[c["style_input"]] = v if c["style_rank"] == 1 else v[None]
        y = torch.from_numpy(sess.run(None, feed)[0])
        if c["layout"] == "NHWC":
            y = y.permute(0, 3, 1, 2)
        y = (y - lo) / (hi - lo) * 2 - 1
        worst = max(worst, float((y - ours[i:i + 1]).abs().max()))
    return worst
