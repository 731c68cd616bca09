"""The input contract of an ONNX network: what the user said (options, sidecar) and what the graph says.

    opts = read_options(path, sidecar=None, options={"style_predictor": "arbitrary_predict.onnx"})
    image, style = classify_inputs(model, path)          # {"name", "shape", ...} dicts; style may be None
    layout, how = infer_layout(image["shape"])            # "NHWC", "inferred" (or None, None)
    rng = input_range_from_graph(model, image["name"])    # ("[0,1]", "input QuantizeLinear: ...") or None

Every key can come from three places, strongest first: keyword options (``load_onnx_subject(...,
key=value)``, ``interp-gan ... --onnx key=value``), the sidecar ``<file>.onnx.toml``, and the graph.
One schema, checked the same way wherever a key comes from (``OPTION_KEYS``).

What a graph can say about its value range is read in ``onnx_ranges`` (a QuantizeLinear or a
scalar normalisation after the input, a Sigmoid / Tanh and scalar ops at the output); a uint8 image
input means [0, 255]. Otherwise the input range is defaulted (to the output's range when the graph
fixes that, else [0, 1]; ``load_onnx_subject``), said at analyze, and ``interp-gan inspect`` writes
a sample image to make a wrong guess visible.

Inputs other than the image: a float vector per image is the style vector; ``feed`` gives any side
input a constant (``fed_inputs``); a vector named like noise is not read as styles unless
``style_names`` says so (``looks_like_noise``).
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from interp_gan.subject.known import known_network
from interp_gan.subject.onnx_ranges import RANGES, input_range_from_graph, output_range_from_graph
from interp_gan.util import sha256_file

__all__ = ["RANGES", "OPTION_KEYS", "read_options", "classify_inputs", "fed_inputs", "looks_like_noise", "infer_layout",
           "input_range_from_graph", "output_range_from_graph", "dims", "vector_length"]

OPTION_KEYS = {
    "range": "the image input's value range: \"[-1,1]\", \"[0,1]\" or \"[0,255]\"",
    "output_range": "the output's value range (default: read from a final Sigmoid / Tanh, else = range)",
    "layout": "\"NCHW\" or \"NHWC\"",
    "size": "\"free\": the graph declares a fixed height and width but is fully convolutional",
    "style_names": "one name per entry of the style vector (no style_predictor)",
    "style_predictor": "an ONNX style image -> vector network whose vector the style input reads "
                       "(path relative to the .onnx file)",
    "style_set": "with style_predictor: \"embedded\" (default) or a folder with one subfolder per style",
    "styles": "with style_predictor: the style set's styles to use (default all)",
    "feed": "a constant for each side input that is neither image nor style vector: name:value[,name:value] "
            "(a strength [1] or [N,1], a noise vector [N,16]: every entry that value, for every image)",
}
_NOISE_NAME = re.compile(r"noise|latent|rand|(^|[^a-z])z($|[^a-z])", re.I)   # a vector input that is likely no style
_FLOAT_TYPES = (1, 10, 11, 16)   # onnx.TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16
_TYPE_NAMES = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16", 2: "uint8", 3: "int8", 6: "int32",
               7: "int64"}


def dims(value_info) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value_info.type.tensor_type.shape.dim]


def _check(key: str, value, where: str):
    """One option's value, normalised; ValueError naming where it came from and what is allowed."""
    if key in ("range", "output_range"):
        v = str(value).replace(" ", "")
        if v not in RANGES:
            raise ValueError(f"{where}: {key} {value!r}; expected one of {', '.join(RANGES)}")
        return v
    if key == "layout":
        v = str(value).upper()
        if v not in ("NCHW", "NHWC"):
            raise ValueError(f"{where}: layout {value!r}; expected NCHW or NHWC")
        return v
    if key == "size":
        if str(value) != "free":
            raise ValueError(f"{where}: size {value!r}; the only value is \"free\" (a fixed-size export of a "
                             "fully convolutional network)")
        return "free"
    if key == "feed":
        return _feed(value, where)
    if key in ("style_names", "styles"):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",")]
        if not isinstance(value, (list, tuple)) or not value or not all(str(v).strip() for v in value):
            raise ValueError(f"{where}: {key} must be a non-empty list of names, got {value!r}")
        return [str(v) for v in value]
    return str(value)


def _feed(value, where: str) -> dict:
    """``feed``: "name:value,name:value" (CLI) or a TOML table {name = value} -> {name: float}."""
    if isinstance(value, str):
        pairs = [p.strip().rsplit(":", 1) for p in value.split(",") if p.strip()]
        if not pairs or any(len(p) != 2 for p in pairs):
            raise ValueError(f"{where}: feed {value!r}; expected name:value[,name:value], e.g. feed=strength:1.0")
        value = dict(pairs)
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{where}: feed must be name:value pairs (a TOML table {{strength = 1.0}}), got {value!r}")
    out = {}
    for k, v in value.items():
        try:
            out[str(k).strip()] = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: feed {k}:{v!r}; the value must be a number (every entry of the input "
                             "takes it)") from None
    return out


def read_options(path: Path, sidecar: str | Path | None = None, options: dict | None = None) -> dict:
    """Merged options: ``{"values": {key: value}, "source": {key: "options" | "sidecar" | "known"},
    "sidecar": path?, "known": name?}``. The sidecar is ``sidecar`` if given (it must exist), else
    ``<path>.toml`` when present. Lowest first: a known network's verified contract (subject/known.py),
    the sidecar, the options."""
    side = Path(sidecar) if sidecar is not None else path.with_name(path.name + ".toml")
    if sidecar is not None and not side.is_file():
        raise FileNotFoundError(f"no sidecar at {side}")
    out: dict = {"values": {}, "source": {}}
    layers = []
    known = known_network(sha256_file(path)) if path.is_file() else None
    if known is not None:   # a network we verified (subject/known.py): its contract, under anything the user says
        layers.append(({k: known[k] for k in ("range", "style_names") if k in known}, "known", known["name"]))
        out["known"] = known["name"]
    if side.is_file():
        try:
            layers.append((tomllib.loads(side.read_text()), "sidecar", str(side)))
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{side}: not valid TOML ({e})") from None
        out["sidecar"] = str(side)
    if options:
        layers.append((dict(options), "options", "options"))
    for values, source, where in layers:
        unknown = sorted(set(values) - set(OPTION_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; expected {', '.join(OPTION_KEYS)}")
        for k, v in values.items():
            if v is None:
                continue
            out["values"][k] = _check(k, v, where)
            out["source"][k] = source
    vals = out["values"]
    if "style_predictor" not in vals:
        for k in ("style_set", "styles"):
            if k in vals:
                raise ValueError(f"{k} is set but style_predictor is not: a style set only means something "
                                 "with a style predictor")
    elif "style_names" in vals:
        raise ValueError("style_names and style_predictor are both set: with a predictor the styles are the "
                         "style set's (choose them with styles = [...])")
    return out


def vector_length(shape: list, batch: int | None = None) -> int | None:
    """D when ``shape`` holds one vector per image: one fixed dim D > 1, every other dim 1 or a batch
    dim in front, symbolic or the image's fixed ``batch`` ([D], [N, D], [1, 1, 1, D], [1, D, 1, 1],
    [4, D] beside a [4, 3, H, W] image); None otherwise."""
    def is_batch(i: int, d) -> bool:
        return i == 0 and len(shape) > 1 and (not isinstance(d, int) or (bool(batch) and batch > 1 and d == batch))
    big = [(i, d) for i, d in enumerate(shape) if not (d == 1 or is_batch(i, d))]
    if len(big) != 1 or not isinstance(big[0][1], int) or big[0][1] <= 1:
        return None
    return big[0][1]


def _inputs(model) -> list[dict]:
    inits = {i.name for i in model.graph.initializer}
    return [{"name": i.name, "shape": dims(i), "float": i.type.tensor_type.elem_type in _FLOAT_TYPES,
             "dtype": _TYPE_NAMES.get(i.type.tensor_type.elem_type, f"type {i.type.tensor_type.elem_type}"),
             "index": k} for k, i in enumerate(i for i in model.graph.input if i.name not in inits)]


def fed_inputs(model, path: Path, feed: dict | None) -> list[dict]:
    """The side inputs given a constant by the ``feed`` option: ``{"name", "shape", "index", "value"}``
    each; a name that is no input (or is the image) is one ValueError naming the inputs."""
    if not feed:
        return []
    info = {d["name"]: d for d in _inputs(model)}
    bad = [k for k in feed if k not in info]
    if bad:
        raise ValueError(f"{path.name}: feed names {bad}, which are not inputs of the graph; its inputs are "
                         f"{[(d['name'], d['shape']) for d in info.values()]}")
    return [{**info[k], "value": v} for k, v in feed.items()]


def classify_inputs(model, path: Path, fed: tuple = ()) -> tuple[dict, dict | None]:
    """The image input (the first float input of rank 4, else the first uint8 one) and the
    style-vector input (another float input holding one vector per image), or ValueError naming the
    inputs. Each is ``{"name", "shape", "float", "dtype", "index"}``. Inputs named in ``fed`` (the
    ``feed`` option's constants) are neither."""
    info = [d for d in _inputs(model) if d["name"] not in fed]
    rank4 = [d for d in info if len(d["shape"]) == 4 and vector_length(d["shape"]) is None]
    images = [d for d in rank4 if d["float"]] or [d for d in rank4 if d["dtype"] == "uint8"]
    if not images:
        raise ValueError(f"{path.name}: no float or uint8 input of rank 4 (an image); inputs are "
                         f"{[(d['name'], d['dtype'], d['shape']) for d in info]}: expected an image -> image network")
    image = images[0]
    b = image["shape"][0] if isinstance(image["shape"][0], int) else None
    styles = [d for d in info if d is not image and d["float"] and vector_length(d["shape"], b)]
    rest = [d for d in info if d is not image and (not styles or d is not styles[0])]
    second = [d for d in rest if d["float"] and len(d["shape"]) == 4 and 3 in (d["shape"][1], d["shape"][3])]
    if second:   # arbitrary style transfer that reads a style image (AdaIN, Huang & Belongie 2017)
        d = second[0]
        raise ValueError(f"{path.name}: input {d['name']!r} {d['shape']} is a second image beside {image['name']!r} "
                         "(a style image, as arbitrary style transfer such as AdaIN reads): interp_gan takes a style "
                         "as a vector, so export the style branch as its own network (style image -> vector, e.g. "
                         "AdaIN's style feature means and stds) and the rest as content + vector, then load the "
                         "second with --onnx style_predictor=FIRST.onnx (its styles: the embedded set's, or "
                         "--onnx style_set=DIR with DIR/<style>/*.png)")
    if rest:
        d = rest[0]
        raise ValueError(f"{path.name}: inputs {[(d['name'], d['shape']) for d in rest]} are neither the image "
                         "nor a style vector (float, one vector of length > 1 per image); give each a constant, "
                         f"fed with every image: --onnx feed={d['name']}:VALUE (sidecar: feed = {{{d['name']} = "
                         "VALUE}), or export the network without it")
    return image, (styles[0] if styles else None)


def looks_like_noise(style: dict) -> bool:
    """A vector input named like noise or a latent (``noise``, ``z``, ``latent``, ``rand``): reading
    it as one-hot styles would be a silent wrong guess."""
    return bool(_NOISE_NAME.search(style["name"]))


def infer_layout(shape: list) -> tuple[str | None, str | None]:
    """("NCHW" | "NHWC", "inferred") from the dim that is 3, or (None, None) when it cannot tell."""
    if shape[1] == 3 and shape[3] != 3:
        return "NCHW", "inferred"
    if shape[3] == 3 and shape[1] != 3:
        return "NHWC", "inferred"
    return None, None
