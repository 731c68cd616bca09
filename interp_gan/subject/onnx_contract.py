"""The input contract of an ONNX network: what the user said (options, sidecar) and what the graph says.

    opts = read_options(path, sidecar=None, options={"style_predictor": "arbitrary_predict.onnx"})
    image, style = classify_inputs(model, path)          # {"name", "shape", ...} dicts; style may be None
    layout, how = infer_layout(image["shape"])            # "NHWC", "inferred" (or None, None)
    rng = input_range_from_graph(model, image["name"])    # ("[0,1]", "input QuantizeLinear: ...") or None

Every key can come from three places, strongest first: keyword options (``load_onnx_subject(...,
key=value)``, ``interp-gan ... --onnx key=value``), the sidecar ``<file>.onnx.toml``, and the graph.
One schema, checked the same way wherever a key comes from (``OPTION_KEYS``).

What a graph can say about its value range: a QuantizeLinear right after the image input fixes the
representable interval S (qmin - Z) .. S (qmax - Z) (scale 1/255, zero point -128, int8: [0, 1]);
a Sigmoid or Tanh at the end fixes the output's range; a uint8 image input means [0, 255]. Nothing
else in a float graph does, so the input range is otherwise defaulted (to the output's range when
the graph fixes that, else [0, 1]; ``load_onnx_subject``) and ``interp-gan inspect`` writes a
sample image to make a wrong guess visible.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np

from interp_gan.subject.known import known_network
from interp_gan.util import sha256_file

__all__ = ["RANGES", "OPTION_KEYS", "read_options", "classify_inputs", "fed_inputs", "looks_like_noise", "infer_layout",
           "input_range_from_graph", "output_range_from_graph", "dims", "vector_length"]

RANGES = {"[-1,1]": (-1.0, 1.0), "[0,1]": (0.0, 1.0), "[0,255]": (0.0, 255.0)}
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


_PASS = ("Pad", "Transpose", "Reshape", "Identity", "Cast")   # ops that keep the values an image takes


def _consts(model) -> dict:
    from onnx import numpy_helper

    out = {i.name: i for i in model.graph.initializer}
    out.update({n.output[0]: n.attribute[0].t for n in model.graph.node
                if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    return {k: numpy_helper.to_array(v) for k, v in out.items()}


def _match(lo: float, hi: float) -> str | None:
    for name, (a, b) in RANGES.items():
        if abs(lo - a) <= 0.02 * (b - a) and abs(hi - b) <= 0.02 * (b - a):
            return name
    return None


_AFFINE = ("Mul", "Div", "Add", "Sub")


def _scalar(consts: dict, name: str) -> float | None:
    v = consts.get(name)
    if v is None or v.size == 0 or not np.issubdtype(v.dtype, np.number) or not np.all(v == np.ravel(v)[0]):
        return None
    return float(np.ravel(v)[0])


def _affine(n, consts: dict, t: str) -> tuple[float, float] | None:
    """(a, b) when node ``n`` computes a * t + b with scalar constants (Mul / Div / Add / Sub), else None."""
    if n.op_type not in _AFFINE or len(n.input) != 2 or t not in n.input:
        return None
    other = n.input[1] if n.input[0] == t else n.input[0]
    k = _scalar(consts, other)
    if k is None:
        return None
    first = n.input[0] == t
    if n.op_type == "Mul":
        return k, 0.0
    if n.op_type == "Add":
        return 1.0, k
    if n.op_type == "Div":
        return (1.0 / k, 0.0) if first and k else None
    return (1.0, -k) if first else (-1.0, k)


def _through(lo: float, hi: float, ab: tuple[float, float]) -> tuple[float, float]:
    a, b = ab
    return tuple(sorted((a * lo + b, a * hi + b)))


def _normalised_by(model, image_input: str, users: dict, consts: dict) -> tuple[str, str] | None:
    """The range that the scalar Mul / Div / Add / Sub chain right after the image input maps onto
    [0, 1] or [-1, 1] (``x / 255``: [0, 255]; ``x / 127.5 - 1``: [0, 255]; ``x * 2 - 1``: [0, 1])."""
    t, chain, names = image_input, [], []
    for _ in range(6):
        nxt = users.get(t, [])
        if len(nxt) != 1:
            break
        n = nxt[0]
        if n.op_type in ("Transpose", "Identity", "Cast"):
            t = n.output[0]
            continue
        ab = _affine(n, consts, t)
        if ab is None:
            break
        chain.append(ab)
        names.append(n.name or n.op_type)
        t = n.output[0]
    if not chain:
        return None
    hits = []
    for name, (lo, hi) in RANGES.items():
        for ab in chain:
            lo, hi = _through(lo, hi, ab)
        if _match(lo, hi) in ("[0,1]", "[-1,1]") and (lo, hi) != RANGES[name]:
            hits.append((name, _match(lo, hi)))
    if len(hits) != 1:
        return None
    return hits[0][0], f"the input's first ops ({', '.join(names)}) map {hits[0][0]} onto {hits[0][1]}"


def input_range_from_graph(model, image_input: str, scaled: bool = True) -> tuple[str, str] | None:
    """The range the first QuantizeLinear after the image input can represent, when it is one of
    ``RANGES`` (within 2% of its width), or the range a scalar normalisation right after the input
    maps onto [0, 1] or [-1, 1] (``x / 255``; ``scaled=False``: the QuantizeLinear only); None when
    the graph does not say."""
    users: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    consts, t = _consts(model), image_input
    q = _quantised_range(users, consts, t)
    return q or (_normalised_by(model, image_input, users, consts) if scaled else None)


def _quantised_range(users: dict, consts: dict, t: str) -> tuple[str, str] | None:
    for _ in range(8):
        nxt = users.get(t, [])
        if len(nxt) != 1:
            return None
        n = nxt[0]
        if n.op_type == "QuantizeLinear" and n.input[1] in consts:
            s = float(np.ravel(consts[n.input[1]])[0])
            zp = consts.get(n.input[2]) if len(n.input) > 2 else None
            z = int(np.ravel(zp)[0]) if zp is not None else 0
            info = np.iinfo(zp.dtype if zp is not None else np.uint8)
            lo, hi = s * (info.min - z), s * (info.max - z)
            name = _match(lo, hi)
            return (name, f"QuantizeLinear {n.name!r}, which represents [{lo:.4g}, {hi:.4g}]") if name else None
        if n.op_type not in _PASS:
            return None
        t = n.output[0]
    return None


def output_range_from_graph(model) -> tuple[str, str] | None:
    """[0,1] when the first output comes from a Sigmoid, [-1,1] from a Tanh (through data-movement
    and QuantizeLinear / DequantizeLinear nodes), or what scalar Mul / Div / Add / Sub after it make
    of that (``Sigmoid * 255``: [0,255]; ``(Tanh + 1) * 127.5``: [0,255]), when it is one of
    ``RANGES``; None otherwise."""
    prod = {o: n for n in model.graph.node for o in n.output}
    consts = _consts(model)
    t, after = model.graph.output[0].name, []
    for _ in range(12):
        n = prod.get(t)
        if n is None:
            return None
        if n.op_type in ("Sigmoid", "Tanh"):
            lo, hi = (0.0, 1.0) if n.op_type == "Sigmoid" else (-1.0, 1.0)
            for ab in reversed(after):
                lo, hi = _through(lo, hi, ab)
            name = _match(lo, hi)
            if name is None:
                return None
            how = f" then {len(after)} scalar op(s) making it [{lo:g}, {hi:g}]" if after else ""
            return name, f"{n.op_type} {n.name!r} at the output{how}"
        if n.op_type in _AFFINE:
            ins = [i for i in n.input if i not in consts]
            ab = _affine(n, consts, ins[0]) if len(ins) == 1 else None
            if ab is None:
                return None
            after.append(ab)
            t = ins[0]
            continue
        if n.op_type not in _PASS + ("QuantizeLinear", "DequantizeLinear"):
            return None
        t = n.input[0]
    return None
