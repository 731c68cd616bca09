"""ONNX files as Subjects (issue #11, item 1): float and QDQ-quantised graphs, with an optional
style predictor.

    subject = load_onnx_subject("multistyle26.onnx", device="cpu")   # or load_subject("x.onnx")
    img = subject.generate(content, style_ids)        # content [N,3,H,W] in [-1,1] -> [-1,1]
    diff = onnx_max_abs_diff("multistyle26.onnx", subject, content, style_ids)   # vs onnxruntime

    # Magenta's arbitrary stylisation (Ghiasi et al., BMVC 2017): transformer + style predictor
    subject = load_onnx_subject(".../arbitrary_transform.onnx", style_predictor="arbitrary_predict.onnx",
                                style_set="embedded", styles=["lite01", "lite17"])
    subject.style_code(ids, z)             # each style's code: the mean predicted bottleneck [N, 100]
    subject.stylize_code(content, code)    # any 100-d bottleneck
    subject.encode_style(style_images, ids)   # the predictor on any style images [N, 100]

The graph is converted to a ``torch.fx.GraphModule`` with onnx2torch; every module keeps the
name onnx2torch gives it (the ONNX node name without the leading ``/`` and with ``.`` turned into
``/``: ``/contract.0/Conv`` -> ``contract/0/Conv``), so hooks and globs address the ONNX nodes and
``spatial_layers`` / ``default_layers`` find the ``nn.Conv2d`` layers. Before conversion:

- an old opset with an op onnx2torch lacks (the zoo's opset 8 / 9 ``Upsample``) is upgraded with
  onnx.version_converter, and a float16 file or a uint8 image input is widened to float32
  (``onnx_opset``, ``onnx_widen``; ``meta["graph"]`` says what was done); opset 18+ ops (the
  dynamo exporter's) that only widened types use onnx2torch's older converters (``onnx_converters``);
- a QDQ-quantised graph (QuantizeLinear / DequantizeLinear, as tf2onnx writes for TF-Lite int8
  models) is folded to float (``onnx_quant``); ``meta["graph"]["quantisation"]`` counts what was
  folded. Integer ops (QLinearConv, ConvInteger, ...) are refused with one line naming the node;
- NHWC reflect pads (TensorFlow's MirrorPad) are rewritten to pad the last two axes, and
  Reshapes to a constant shape that bakes in batch 1 (``[1, C, 1, 1]``) copy the input's batch
  instead, so a batch is one forward (``onnx_rewrite``);
- a ``[3, H, W]`` input or output gets a batch dim, of several outputs the image one is kept
  (``onnx_outputs``), and onnxruntime's ``FusedConv`` is split into Conv + activation (``onnx_contrib``);
- convs that never see the image (the style vector's map to norm parameters) are listed in the
  module's ``image_free_modules``, which default layer lists leave out.

The input contract (``onnx_contract``; ``meta["input_contract"]`` says what was inferred, read from
the sidecar or options, or defaulted):

- the image input is the first float input of rank 4 (else the first uint8 one); its layout
  (NCHW / NHWC) is inferred from the dimension that is 3; its value range from a QuantizeLinear
  right after it (scale 1/255 and zero point -128 in int8 represent [0, 1]) or a uint8 type
  ([0, 255]), else it defaults to the output's range when a final Sigmoid / Tanh fixes it, else
  to [0, 1]; the output's range from a final Sigmoid ([0, 1]) or Tanh ([-1, 1]), else the input's,
  and an output nothing bounds is clipped to its range (``output_clamped``);
- the output must be an image in the same layout (a classifier's [N, K] output is refused);
- a second float input holding one vector per image ([D], [N, D], [1, 1, 1, D], ...) is the style
  vector. Without a predictor, style ``i`` is the one-hot vector ``e_i`` (``style_code``) and
  ``stylize_code`` feeds any vector. A rank-1 style input takes one vector per call; when it is read
  by conditional instance norm in the usual exported pattern the graph is rewritten to take one
  vector per image (``onnx_rewrite.batch_cin_style``), so one forward serves a batch of mixed
  styles and every hook fires once; otherwise images are run in groups sharing a vector
  (``meta["input_contract"]["style_batching"]`` says which);
- with ``style_predictor`` (an ONNX style image -> vector network, ``onnx_predictor``), the style
  vector is that network's space: the styles are a style set's (``style_set = "embedded"``, the
  default, or a folder with one subfolder per style; ``styles`` picks some), each style's code is the
  mean predicted vector over its images, and ``encode_style`` runs the predictor.

Options (all optional), from the strongest: keyword arguments of ``load_onnx_subject``, the CLI's
``--onnx key=value`` (``inspect`` and ``analyze``), the sidecar ``<file>.onnx.toml``::

    range = "[0,1]"                 # the image input: "[-1,1]" | "[0,1]" | "[0,255]"
    output_range = "[0,1]"          # the output, when it differs from the input's
    layout = "NCHW"                 # or "NHWC"
    size = "free"                   # a fixed declared H, W on a fully convolutional network
    style_names = ["mosaic", ...]   # one per entry of the style vector (one-hot styles)
    style_predictor = "arbitrary_predict.onnx"   # relative to the .onnx file's folder, else as given
    style_set = "embedded"          # or a folder STYLE_DIR/<style>/*.png
    styles = ["lite01", "lite17"]   # of the style set (default all)

How far the converted subject is from onnxruntime, and the tolerances, are in ``onnx_check``.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor

from interp_gan.subject.geometry import resize_note
from interp_gan.subject.onnx_check import FOLD_TOLERANCE, ONNX_TOLERANCE, onnx_max_abs_diff
from interp_gan.subject.onnx_contrib import unfuse_contrib
from interp_gan.subject.onnx_contract import (classify_inputs, dims, fed_inputs, infer_layout, input_range_from_graph,
                                              looks_like_noise, output_range_from_graph, read_options, vector_length)
from interp_gan.subject.onnx_graph import (check_image_output, convert, image_free_modules, import_onnx, prepare,
                                           read_model)
from interp_gan.subject.onnx_outputs import add_batch_dims, keep_image_output
from interp_gan.subject.onnx_rewrite import batch_cin_style as _batch_cin_style
from interp_gan.subject.onnx_runner import OnnxRunner, check_batching
from interp_gan.subject.onnx_tables import classify_buffers, random_init_note
from interp_gan.subject.protocol import Subject
from interp_gan.subject.style_set import skipped_note
from interp_gan.util import resolve_device, sha256_file

# onnx2torch's Slice indexes with a list, which torch deprecates on every forward: noise, not a finding
warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing",
                        category=UserWarning, module="onnx2torch")

__all__ = ["load_onnx_subject", "onnx_max_abs_diff", "ONNX_TOLERANCE", "FOLD_TOLERANCE"]


class _Contract(dict):
    """``meta["input_contract"]``: the values plus where each came from."""

    def __init__(self, image_input: str, opts: dict):
        super().__init__(image_input=image_input, inferred=[], from_known=[], from_sidecar=[], from_options=[],
                         defaulted=[], evidence={})
        self.opts = opts

    def given(self, key: str):
        """The option's value, recorded as from a known network's contract, the sidecar or the options;
        None when not given."""
        if key not in self.opts["values"]:
            return None
        self[f"from_{self.opts['source'][key]}"].append(key)
        return self.opts["values"][key]

    def inferred(self, key: str, evidence: str) -> None:
        self["inferred"].append(key)
        self["evidence"][key] = evidence


def _contract(path: Path, model, opts: dict) -> tuple[_Contract, dict, dict | None]:
    shaped = add_batch_dims(model)   # a [3, H, W] input or output (exported on one unbatched image)
    unfused = unfuse_contrib(model)   # onnxruntime's FusedConv (a file saved from an optimised session)
    fed = fed_inputs(model, path, opts["values"].get("feed"))
    image, style = classify_inputs(model, path, tuple(f["name"] for f in fed))
    c = _Contract(image["name"], opts)
    if fed:
        c.given("feed")
        c["fed"] = [{k: f[k] for k in ("name", "shape", "index", "value")} for f in fed]
    if style is not None and looks_like_noise(style) and not any(
            k in opts["values"] for k in ("style_names", "style_predictor")):
        raise ValueError(f"{path.name}: input {style['name']!r} {style['shape']} looks like noise or a latent, not "
                         f"a style vector: feed it a constant (--onnx feed={style['name']}:0), or read it as one-hot "
                         f"styles by naming them (--onnx style_names=a,b,...: one per entry)")
    shape = image["shape"]
    layout = c.given("layout")
    if layout is None:
        layout, _ = infer_layout(shape)
        if layout:
            c.inferred("layout", f"the image input's shape {shape} (the dim of size 3)")
        else:
            layout = "NCHW"
            c["defaulted"].append("layout")
    kept = keep_image_output(model, layout)   # several outputs: the image one
    check_image_output(model, path, layout)
    if dims(model.graph.output[0])[1 if layout == "NCHW" else 3] == 1:
        c["gray_output"] = "the output is one grayscale channel, repeated into R, G and B"
    c.graph_done = {k: v for k, v in (("batch_dims_added", shaped), ("outputs_dropped", kept),
                                                        ("fused_convs_split", unfused)) if v}
    out_found = output_range_from_graph(model)
    rng = c.given("range")
    if rng is None:
        found = input_range_from_graph(model, image["name"], scaled=image["dtype"] != "uint8")
        if found:
            rng = found[0]
            c.inferred("range", found[1])
        elif image["dtype"] == "uint8":
            rng = "[0,255]"
            c.inferred("range", "the image input's type, uint8")
        else:   # an image -> image network most often takes the range it gives (CycleGAN: [-1,1] in, Tanh out)
            rng = out_found[0] if out_found else "[0,1]"
            c["defaulted"].append("range")
            if out_found:
                c["evidence"]["range"] = f"the output's range ({out_found[1]})"
    out_rng = c.given("output_range")
    if out_rng is None:
        if out_found:
            out_rng = out_found[0]
            c.inferred("output_range", out_found[1])
        else:
            out_rng = rng
            c["defaulted"].append("output_range")
    if not out_found:   # nothing in the graph bounds the output (the zoo's style nets clip outside the network)
        c["output_clamped"] = (f"the output is clipped to {out_rng}: no Sigmoid / Tanh at the graph's end bounds it "
                               "(the onnxruntime checks clip both sides the same way)")
    if image["dtype"] != "float32":
        c["image_dtype"] = image["dtype"]
    hw = shape[2:] if layout == "NCHW" else shape[1:3]
    fixed = all(isinstance(d, int) and d > 0 for d in hw)
    free = c.given("size") == "free"
    c.update(layout=layout, range=rng, output_range=out_rng, size="free" if free or not fixed else "fixed")
    if fixed:
        c["declared_size"] = [int(hw[0]), int(hw[1])]
    if isinstance(shape[0], int) and shape[0] > 1:   # a fixed batch B: torch runs any batch, onnxruntime B
        c["declared_batch"] = int(shape[0])
    if style is not None:
        c.update(style_input=style["name"], style_shape=style["shape"], style_rank=len(style["shape"]))
    return c, image, style


def _resolve(path: Path, p: str) -> Path:
    q = Path(p).expanduser()
    if q.is_absolute():
        return q
    return path.parent / q if (path.parent / q).is_file() else q


def load_onnx_subject(path: str | Path, device: str | torch.device = "cpu", sidecar: str | Path | None = None,
                      *, graph=None, **options) -> Subject:
    """An ONNX image -> image network (optionally with a style-vector input and a style predictor)
    as a Subject. ``options``: the sidecar's keys (module docstring), overriding the sidecar.
    ``graph``: a ``ModelProto`` built in memory from ``path`` (a TorchScript archive's export,
    ``subject/torchscript.py``); ``path`` then names the source file in messages and provenance."""
    import_onnx()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX file at {path}")
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    opts = read_options(path, sidecar, options)
    model = read_model(path) if graph is None else graph
    c, image, style = _contract(path, model, opts)
    layout = c["layout"]

    style_dim = vector_length(style["shape"], c.get("declared_batch")) if style is not None else 0
    predictor_file = c.given("style_predictor")
    if predictor_file and not style_dim:
        raise ValueError(f"{path.name}: style_predictor is set but the network has no style-vector input "
                         f"(inputs: {image['name']} only); give it to a network that reads a style vector")
    names = c.given("style_names")
    default_names = [f"style{i}" for i in range(style_dim)] if style_dim else ["output"]
    if names is not None and len(names) != len(default_names):
        where = opts.get("sidecar", "options") if opts["source"]["style_names"] == "sidecar" else "options"
        raise ValueError(f"{where}: {len(names)} style_names for a style vector of length {style_dim}")
    if names is None:
        names = default_names
        if style_dim and not predictor_file:
            c["defaulted"].append("style_names")
    if opts.get("sidecar"):
        c["sidecar"] = opts["sidecar"]
    if opts.get("known"):
        c["known"] = opts["known"]     # a network we verified (subject/known.py)

    free = c["size"] == "free" and "declared_size" in c
    done = {**c.graph_done, **prepare(model, image["name"], layout, free_size=free)}
    per_call = bool(style_dim) and c["style_rank"] == 1
    if per_call:   # one vector per call: hooks would fire once per style group; batch it if we can
        how = _batch_cin_style(model, style["name"])
        if how:
            per_call = False
            c["style_batching"] = how
        else:
            c["style_batching"] = ("one forward per distinct style vector (the style input is rank 1): "
                                   "a batch mixing styles fires each hook once per style group")
    G = convert(model, path).to(dev).eval()
    G.image_free_modules = tuple(image_free_modules(G, image["index"]))   # left out of default layers
    G.random_init_tables, G.random_init_constants = classify_buffers(G)   # for Subject.random_init
    net = _positional(G, image, style, c.get("fed", []), c.get("declared_batch", 1))
    style_shape = None
    if style_dim and not per_call:
        shape = list(style["shape"]) if c["style_rank"] > 1 else ["N", style_dim]
        style_shape = tuple(d if d == style_dim else 1 for d in shape[1:])
    runner = OnnxRunner(net, layout, c["range"], c["output_range"], style_shape, per_call,
                        clamp="output_clamped" in c)
    runner.declared_batch = c.get("declared_batch", 1)
    if c["size"] == "fixed":
        runner.fixed_hw = tuple(c["declared_size"])
        G.fixed_size = tuple(c["declared_size"])       # the pipeline fits its image_size to it

    meta = _meta(path, model, (image, style), done, G)

    if not style_dim:
        c["batched"] = check_batching(runner, None, dev, path.name)[1]
        meta["one_image_per_call"] = not runner.batched               # the pipeline then uses batches of one
        meta["model_notes"] = _notes(c, runner)
        meta["input_contract"] = dict(c)
        return Subject(generator=G, style_names=names, _generate=lambda c_, s, z=None: runner(c_, None),
                       meta=meta).eval()

    if predictor_file:
        codes, encode = _predictor_codes(path, _resolve(path, predictor_file), c, style_dim, dev, meta)
        names = meta["style_set"]["styles"]
    else:
        codes, encode = torch.eye(style_dim, device=dev), None
        c["style_space"] = "one-hot: style i feeds e_i"
    c["batched"] = check_batching(runner, codes[[0, min(1, len(codes) - 1)]], dev, path.name)[1]
    meta["one_image_per_call"] = not runner.batched or per_call     # the pipeline then uses batches of one
    meta["model_notes"] = _notes(c, runner)
    if predictor_file and skipped_note(meta["style_set"].get("skipped", {})):
        meta["model_notes"].append(skipped_note(meta["style_set"]["skipped"]))
    meta["input_contract"] = dict(c)

    def code_of(style_ids: Tensor) -> Tensor:
        return codes[style_ids.long().to(codes.device)]

    return Subject(generator=G, style_names=names,
                   _generate=lambda c_, s, z=None: runner(c_, code_of(s).to(c_.device)),
                   _style_code=lambda s, z: code_of(s),
                   _stylize_code=lambda c_, code: runner(c_, code.to(c_.device)),
                   _encode_style=encode, latent_dim=0, style_dim=style_dim, meta=meta).eval()


def _notes(c: _Contract, runner: OnnxRunner) -> list[str]:
    """What analyze says once and the report lists at its top: a non-square size's resize, an output
    of another size than the input resized back, the contract when part of it is a guess, and the
    constants fed to side inputs."""
    notes = [c["gray_output"]] if "gray_output" in c else []
    if runner.output_resized:
        (h, w), (oh, ow) = runner.output_resized
        c["output_resized"] = (f"the output is {oh}x{ow} for a {h}x{w} input; resized to the input's size "
                               "(bilinear, antialiased when shrinking) so it lines up with the content")
        notes.append(c["output_resized"])
    if c["size"] == "fixed" and c["declared_size"][0] != c["declared_size"][1]:
        c["resized"] = resize_note(c["declared_size"])
        notes.append(c["resized"])
    guessed = [k for k in c["defaulted"] if k in ("layout", "range", "output_range", "style_names")]
    if guessed:
        notes.append(f"input contract: layout {c['layout']}, range {c['range']}, output range {c['output_range']}; "
                     f"not read from the graph but defaulted: {', '.join(guessed)} (interp-gan inspect writes a "
                     "sample image to check them; --onnx range=... / layout=... / output_range=... set them)")
    notes += [f"input {f['name']!r} {f['shape']} fed the constant {f['value']:g} (feed option)" for f in c.get("fed", [])]
    return notes


def _positional(G, image: dict, style: dict | None, fed: list[dict], batch: int = 1):
    """``G`` as ``net(x, code=None)``: the image, the style vector and the ``feed`` constants (every
    entry the value; a leading dim that is 1, symbolic or the image's fixed ``batch``, on an input of
    rank > 1, is the batch) in the graph's input order."""
    if not fed:
        return (lambda x, code=None: G(code, x)) if style is not None and style["index"] < image["index"] else G

    def const(f: dict, x: Tensor) -> Tensor:
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in f["shape"]]
        if len(shape) > 1 and (shape[0] in (1, batch) or not isinstance(f["shape"][0], int)):
            shape[0] = len(x)
        return torch.full(shape, f["value"], dtype=x.dtype, device=x.device)

    def net(x: Tensor, code: Tensor | None = None) -> Tensor:
        args = {image["index"]: x, **({style["index"]: code} if style is not None else {})}
        args.update({f["index"]: const(f, x) for f in fed})
        return G(*(args[i] for i in sorted(args)))
    return net


def _meta(path: Path, model, inputs: tuple, done: dict, G) -> dict:
    meta = {"model": {"name": "onnx", "path": str(path),
                      "inputs": [{"name": d["name"], "shape": d["shape"]} for d in inputs if d],
                      "outputs": [{"name": o.name, "shape": dims(o)} for o in model.graph.output]},
            "checkpoint_sha256": sha256_file(path), "checkpoint_path": str(path), "graph": done}
    note = random_init_note(G)   # onnx2torch keeps initializers read by generic ops (CIN's gamma/beta) as buffers
    if note:
        meta["random_init_note"] = note
    return meta


def _predictor_codes(path: Path, predictor_path: Path, c: _Contract, style_dim: int, dev, meta: dict):
    """The style set's codes [S, D] through the predictor, and the encoder callable; fills meta."""
    from interp_gan.subject.onnx_predictor import StyleEncoder, StylePredictor, style_set_codes

    predictor = StylePredictor(predictor_path, dev)
    if predictor.dim != style_dim:
        raise ValueError(f"style predictor {predictor_path.name} gives {predictor.dim}-d vectors but "
                         f"{path.name}'s style input {c['style_input']!r} takes {style_dim}")
    style_set = c.given("style_set") or "embedded"
    skipped: dict[str, int] = {}
    names, codes, counts = style_set_codes(predictor, style_set, c.given("styles"), skipped=skipped)
    c["style_space"] = (f"the style predictor's {style_dim}-d vector; style i feeds the mean over its images "
                        f"(Ghiasi et al. 2017)")
    meta["style_predictor"] = predictor.meta
    meta["style_set"] = {"source": style_set, "styles": names, "images": dict(zip(names, counts))}
    if skipped:
        meta["style_set"]["skipped"] = skipped
    return codes.to(dev), StyleEncoder(predictor)
