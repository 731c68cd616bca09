"""How far a converted ONNX subject is from onnxruntime, and a sample image that shows its contract.

    diff = onnx_max_abs_diff(path, subject, images, style_ids)                  # vs the file
    diff = onnx_max_abs_diff(path, subject, images, style_ids, reference="folded")
    fold = fold_max_abs_diff(path, subject, images, style_ids)                  # QDQ graphs
    png, stats = write_sample(subject, "net.inspect.png", size=128)

All differences are max |a - b| over the images, in the subject's [-1, 1] output units, with
onnxruntime (CPU) fed one image per call on the subject's own input contract.

- **conversion** (every graph): the subject against onnxruntime on the graph that was converted:
  the file for a float graph, the folded graph for a QDQ one (``reference="folded"``).
  ``ONNX_TOLERANCE`` = 1e-3. Measured at 64 px: multistyle26 3e-6 to 4e-5; Magenta's
  arbitrary_transform, folded, 1e-6 to 2e-5 (384 px too); arbitrary_predict 5e-7 to 8e-7; a wrong
  conversion is 1e-2 and up.
- **fold** (QDQ graphs, the predictor too): onnxruntime on the *rounding twin* (``onnx_quant``: the folded graph
  with each QuantizeLinear written as max(min(round(x / S) + Z, qmax), qmin) and each
  DequantizeLinear as (q - Z) S, in float ops) against onnxruntime on the file, graph
  optimisations off in both (they reorder float sums in the twin, and one flipped rounding moves
  this network's output by up to 0.4). ``FOLD_TOLERANCE`` = 1e-6: measured exactly 0 on both
  Magenta graphs at 64 to 384 px, so the fold read every scale, zero point and axis as
  onnxruntime does; a misread one moves values by a grid step (1/128 of this output's range) or more.
- **float16** (float16 files, information, no tolerance): the subject, widened to float32
  (``onnx_widen``), against onnxruntime on the float16 file; the conversion check runs on the
  widened graph (``reference="folded"``). Zoo-like and CycleGAN networks: up to 2.2e-3.
- a uint8 image input is fed to onnxruntime as uint8, on images first moved to the 256 levels it
  can represent (``on_input_grid``), the same images the subject gets; an output the graph does
  not bound (``output_clamped``) is clipped on both sides.
- **quantised** (QDQ graphs, information, no tolerance): the subject against onnxruntime on the
  file, i.e. what dropping the rounding changes. It is not small: on arbitrary_transform, max 0.3
  to 1.8 and mean 0.02 to 0.26 (photos and noise, predicted and random style codes, 64 to 384 px);
  on arbitrary_predict, max 0.02 to 0.35 and mean about 0.01 in vector units (values within about
  +-3). The rounding compounds through 13 conditional instance norms whose variance is itself
  quantised, so no tolerance on this number both passes the fold and catches a wrong conversion
  (1e-2 and up); the two checks above do that.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from interp_gan.subject.geometry import to_model_size, to_size
from interp_gan.subject.onnx_contract import RANGES

__all__ = ["ONNX_TOLERANCE", "FOLD_TOLERANCE", "onnx_max_abs_diff", "fold_max_abs_diff", "quantised_diffs",
           "predictor_max_abs_diff", "predictor_fold_max_abs_diff", "write_sample", "sample_content", "onnx_report",
           "contract_lines"]

ONNX_TOLERANCE = 1e-3
FOLD_TOLERANCE = 1e-6


def _session(model, optimise: bool = True):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    if not optimise:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def reference_graph(path: str | Path, contract: dict, kind: str = "file", image_input: str | None = None):
    """What onnxruntime runs: ``"file"`` as it is, ``"folded"`` (QuantizeLinear / DequantizeLinear
    dropped), or ``"twin"`` (their rounding kept as float ops); a fixed size made free when the
    subject was loaded with ``size = "free"``."""
    from interp_gan.subject.onnx_graph import prepare, read_model
    from interp_gan.subject.onnx_outputs import add_batch_dims, keep_image_output

    if kind not in ("file", "folded", "twin"):
        raise ValueError(f"reference {kind!r}; expected file, folded or twin")
    model = read_model(Path(path))
    add_batch_dims(model)           # as the subject's graph (onnx_outputs): batched, one image output
    keep_image_output(model, contract["layout"])
    free = contract.get("size") == "free" and "declared_size" in contract
    name = image_input or contract["image_input"]
    if kind == "file":
        if free:
            from interp_gan.subject.onnx_rewrite import free_image_size
            free_image_size(model, name, contract["layout"])
        return model
    prepare(model, name, contract["layout"], free_size=free, keep_rounding=kind == "twin", reference=True)
    return model


_NP_TYPES = {1: np.float32, 10: np.float16, 11: np.float64, 2: np.uint8}


def _as_input(x: np.ndarray, model, name: str) -> np.ndarray:
    """``x`` in the dtype graph input ``name`` of ``model`` takes (float16 files, uint8 images)."""
    t = next((i.type.tensor_type.elem_type for i in model.graph.input if i.name == name), 1) if model else 1
    dtype = _NP_TYPES.get(t, np.float32)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.round(x), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def on_input_grid(subject, images: Tensor) -> Tensor:
    """``images`` ([-1,1]) moved to the nearest values an integer (uint8) image input can take, so
    the subject and onnxruntime on the file see the same image; unchanged for a float input."""
    c = subject.meta["input_contract"]
    if c.get("image_dtype") != "uint8":
        return images
    lo, hi = RANGES[c["range"]]
    x = ((images + 1) / 2 * (hi - lo) + lo).round().clamp(0, 255)
    return (x - lo) / (hi - lo) * 2 - 1


def _feeds(subject, images: Tensor, style_ids: Tensor, model=None) -> list[dict]:
    c = subject.meta["input_contract"]
    lo, hi = RANGES[c["range"]]
    codes = None
    if "style_input" in c:
        with torch.no_grad():
            codes = subject.style_code(style_ids.to(subject.device), subject.sample_z(len(style_ids))).float().cpu()
    feeds = []
    for i in range(len(images)):
        x = (images[i:i + 1].float().cpu() + 1) / 2 * (hi - lo) + lo
        if c["layout"] == "NHWC":
            x = x.permute(0, 2, 3, 1)
        b = int(c.get("declared_batch", 1))     # a graph of a fixed batch B > 1: the image repeated B times
        feed = {c["image_input"]: _as_input(np.repeat(x.contiguous().numpy(), b, axis=0), model, c["image_input"])}
        if codes is not None:
            v = codes[i].numpy().astype(np.float32)
            shape = c["style_shape"]
            feed[c["style_input"]] = _as_input(v if c["style_rank"] == 1 else np.repeat(v.reshape(
                [1] + [len(v) if d == len(v) else 1 for d in shape[1:]]), b if shape[0] == b else 1, axis=0),
                model, c["style_input"])
        for f in c.get("fed", []):     # the feed option's constants, as the subject feeds them
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in f["shape"]]
            if len(shape) > 1 and (shape[0] == 1 or not isinstance(f["shape"][0], int)):
                shape[0] = b
            feed[f["name"]] = _as_input(np.full(shape, f["value"], dtype=np.float32), model, f["name"])
        feeds.append(feed)
    return feeds


def _outputs(sess, feeds: list[dict], contract: dict) -> Tensor:
    lo, hi = RANGES[contract["output_range"]]
    ys = []
    for feed in feeds:
        y = torch.from_numpy(sess.run(None, feed)[0][:1]).float()
        if contract["layout"] == "NHWC":
            y = y.permute(0, 3, 1, 2)
        y = y.expand(-1, 3, -1, -1) if y.shape[1] == 1 else y   # a grayscale output, as the runner repeats it
        y = (y - lo) / (hi - lo) * 2 - 1
        ys.append(y.clamp(-1, 1) if "output_clamped" in contract else y)
    return torch.cat(ys)


def _reference(sess, subject, images: Tensor, ids: Tensor, model) -> Tensor:
    """onnxruntime's output for ``images`` ([N,3,S,S] in [-1,1]) one image per run, on the subject's
    [-1,1] NCHW scale: a graph of one non-square size gets them resized as the subject resizes them
    (``geometry``), a graph of a fixed batch B > 1 gets each image repeated B times (the first output kept)."""
    c = subject.meta["input_contract"]
    hw = c.get("declared_size") if c.get("size") == "fixed" else None
    fed = to_model_size(images, hw)
    return to_size(_outputs(sess, _feeds(subject, fed, ids, model), c), images.shape[-2:])


def _ids(subject, images: Tensor, style_ids: Tensor | None) -> Tensor:
    return torch.zeros(len(images), dtype=torch.long) if style_ids is None else style_ids.cpu()


def onnx_max_abs_diff(path: str | Path, subject, images: Tensor, style_ids: Tensor | None = None,
                      reference: str = "file") -> float:
    """max |subject.generate - onnxruntime| over ``images`` ([N,3,H,W] in [-1,1]), in the subject's
    [-1,1] output scale; ``reference`` is the graph onnxruntime runs (``reference_graph``). Style
    ``i`` feeds ``subject.style_code(i)`` (default: style 0 for every image)."""
    ids = _ids(subject, images, style_ids)
    images = on_input_grid(subject, images)
    model = reference_graph(path, subject.meta["input_contract"], reference)
    sess = _session(model)
    with torch.no_grad():
        ours = subject.generate(images.to(subject.device), ids.to(subject.device)).float().cpu()
    ref = _reference(sess, subject, images, ids, model)
    return float((ref - ours).abs().max())


def fold_max_abs_diff(path: str | Path, subject, images: Tensor, style_ids: Tensor | None = None) -> float:
    """max |onnxruntime(rounding twin) - onnxruntime(file)|, graph optimisations off in both."""
    c = subject.meta["input_contract"]
    images = on_input_grid(subject, images)
    twin_g, file_g = reference_graph(path, c, "twin"), reference_graph(path, c, "file")
    ids = _ids(subject, images, style_ids)
    twin = _reference(_session(twin_g, optimise=False), subject, images, ids, twin_g)
    file = _reference(_session(file_g, optimise=False), subject, images, ids, file_g)
    return float((twin - file).abs().max())


def quantised_diffs(path: str | Path, subject, images: Tensor, style_ids: Tensor | None = None) -> tuple[float, float]:
    """(max, mean) |subject - onnxruntime on the file|: what dropping the int8 rounding (a QDQ graph)
    or the float16 rounding (a float16 file) changes."""
    ids = _ids(subject, images, style_ids)
    images = on_input_grid(subject, images)
    with torch.no_grad():
        ours = subject.generate(images.to(subject.device), ids.to(subject.device)).float().cpu()
    model = reference_graph(path, subject.meta["input_contract"], "file")
    ref = _reference(_session(model), subject, images, ids, model)
    d = (ref - ours).abs()
    return float(d.max()), float(d.mean())


def _predictor_inputs(predictor, images: Tensor) -> tuple[dict, list]:
    contract = {"image_input": predictor.input_name, "layout": predictor.layout, "size": "fixed"}
    with torch.no_grad():
        x = predictor.to_net(images.float().to(next(iter(predictor.module.buffers())).device)).cpu()
    return contract, [{predictor.input_name: x[i:i + 1].contiguous().numpy()} for i in range(len(x))]


def _vectors(sess, feeds: list) -> Tensor:
    return torch.cat([torch.from_numpy(sess.run(None, f)[0]).reshape(1, -1) for f in feeds])


def predictor_max_abs_diff(predictor, images: Tensor, reference: str = "folded") -> float:
    """max |predictor(images) - onnxruntime| on the predictor's graph (``"folded"`` or ``"file"``),
    in the predicted vector's units."""
    contract, feeds = _predictor_inputs(predictor, images)
    with torch.no_grad():
        ours = predictor(images).float().cpu()
    return float((_vectors(_session(reference_graph(predictor.meta["path"], contract, reference)), feeds) - ours)
                 .abs().max())


def predictor_fold_max_abs_diff(predictor, images: Tensor) -> float:
    """The fold check on a predictor: onnxruntime on its rounding twin vs on its file, optimisations off."""
    contract, feeds = _predictor_inputs(predictor, images)
    twin, file = (_vectors(_session(reference_graph(predictor.meta["path"], contract, k), optimise=False), feeds)
                  for k in ("twin", "file"))
    return float((twin - file).abs().max())


def sample_content(size: int) -> Tensor:
    """One photo [1,3,size,size] in [-1,1]: scikit-image's astronaut (public domain, NASA): skin, a red
    and blue flag and a white suit make a swapped channel order or a wrong value range obvious."""
    import skimage.data

    from interp_gan.data.transforms import resize_square, to_tensor

    return to_tensor([resize_square(skimage.data.astronaut(), size)])


def write_sample(subject, out: str | Path, size: int) -> tuple[Path, dict]:
    """Write [content | output of the first style | output of the last style] as one PNG; return its
    path and the outputs' share of pixels at the ends of [-1, 1] (a wrong range saturates them)."""
    from interp_gan.util import to_uint8

    content = sample_content(size)
    ids = sorted({0, subject.num_styles - 1})
    with torch.no_grad():
        outs = [subject.generate(content.to(subject.device), torch.tensor([i], device=subject.device)).float().cpu()
                for i in ids]
    tiles = [content] + [o.clamp(-1, 1) for o in outs]
    row = torch.cat([t[0] for t in tiles], dim=2)                     # [3, size, size * k]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from interp_gan.provenance_mark import save_marked_image
    save_marked_image(to_uint8(row[None])[0], out, subject.meta.get("checkpoint_sha256"),
                      format=None if out.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp") else "PNG")
    y = torch.cat(outs)
    stats = {"styles": [subject.style_names[i] for i in ids], "saturated": float((y.abs() >= 0.98).float().mean()),
             "mean": float(y.mean()), "outside": float((y.abs() > 1.02).float().mean())}
    return out, stats


def onnx_report(path: str | Path, subject, size: int, sample: str | Path) -> list[str]:
    """What ``interp-gan inspect`` prints for an ONNX subject: the checks above on two images (the
    sample photo and a seeded random one), the contract and where each part came from, and the
    sample image it wrote."""
    c, graph = subject.meta["input_contract"], subject.meta.get("graph", {})
    g = torch.Generator().manual_seed(0)
    x = torch.cat([sample_content(size), torch.rand(1, 3, size, size, generator=g) * 2 - 1])
    ids = torch.tensor([0, subject.num_styles - 1])

    def verdict(d, tol):
        return f"(tolerance {tol:g}): {'ok' if d <= tol else 'MISMATCH'}"

    q = graph.get("quantisation")
    lines = [f"onnxruntime checks (the sample photo and a random image, {size}x{size}, styles {ids.tolist()}), "
             "max abs diff in [-1,1] output units:"]
    half = graph.get("float16_widened")
    ref = "folded graph" if q else "widened (float32) graph" if half else "file"
    conv = onnx_max_abs_diff(path, subject, x, ids, reference="folded" if q or half else "file")
    lines.append(f"  conversion: {conv:.2e} vs onnxruntime on the {ref} {verdict(conv, ONNX_TOLERANCE)}")
    if half:
        kind = "/".join(half.get("from", ["float16"]))
        try:
            mx, mean = quantised_diffs(path, subject, x, ids)
            lines.append(f"  {kind}: max {mx:.3g}, mean {mean:.3g} vs onnxruntime on the {kind} file: the {kind} "
                         "rounding that float32 changes (information, no tolerance: docs/models.md)")
        except Exception as e:   # onnxruntime's CPU kernels lack float64 Conv: the file itself does not run there
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            lines.append(f"  {kind}: onnxruntime cannot run the {kind} file itself ({first}); the conversion "
                         "above is checked on the float32 graph")
        lines += [
                  f"{kind} graph {'widened' if kind == 'float16' else 'made'} to float32: {half['tensors']} tensors, "
                  f"{half['casts']} casts"
                  + (f", inputs / outputs {', '.join(half['io'])}" if half["io"] else "")]
    up = graph.get("opset_upgrade")
    if up:
        lines.append(f"opset {up['from']} upgraded to {up['to']} for conversion (onnx.version_converter; onnx2torch "
                     f"has no converter for {up['why']}); onnxruntime runs the original opset in the check above")
    if graph.get("image_input_widened"):
        lines.append(f"image input: {graph['image_input_widened']}")
    if graph.get("initializer_inputs_dropped"):
        lines.append(f"{graph['initializer_inputs_dropped']} initializers listed as graph inputs (IR version 3) "
                     "read as the constants they are")
    if "output_clamped" in c:
        lines.append(f"output: {c['output_clamped']}")
    if q:
        fold = fold_max_abs_diff(path, subject, x, ids)
        mx, mean = quantised_diffs(path, subject, x, ids)
        lines += [f"  fold: {fold:.2e} between onnxruntime on the rounding twin and on the file "
                  f"{verdict(fold, FOLD_TOLERANCE)}",
                  f"  quantised: max {mx:.3g}, mean {mean:.3g} vs onnxruntime on the quantised file: the int8 "
                  "rounding that folding drops (information, no tolerance: docs/models.md)",
                  f"quantised graph folded to float: {q['quantize_dequantize_pairs']} QuantizeLinear/DequantizeLinear "
                  f"pairs, {q['dequantized_constants']} integer constants dequantised ({q['nodes_removed']} nodes "
                  "removed)"]
    p = subject.meta.get("style_predictor")
    pred = getattr(subject._encode_style, "predictor", None)
    if p is not None:
        if pred is not None:
            pd = predictor_max_abs_diff(pred, x, "folded" if p.get("quantisation") else "file")
            lines.append(f"style predictor {Path(p['path']).name}: conversion {pd:.2e} in vector units "
                         f"{verdict(pd, ONNX_TOLERANCE)}; layout {p['layout']}, range {p['range']} "
                         f"({p['how']['range']})")
            if p.get("quantisation"):
                pf = predictor_fold_max_abs_diff(pred, x)
                lines.append(f"  quantised graph folded to float ({p['quantisation']['quantize_dequantize_pairs']} "
                             f"pairs); fold: {pf:.2e} {verdict(pf, FOLD_TOLERANCE)}")
        s = subject.meta["style_set"]
        lo, hi = min(s["images"].values()), max(s["images"].values())
        lines.append(f"styles: {len(s['styles'])} from the {s['source']} style set, each the mean predicted vector "
                     f"over its {lo if lo == hi else f'{lo} to {hi}'} images")
    return lines + contract_lines(subject, size, sample)


def contract_lines(subject, size: int, sample: str | Path) -> list[str]:
    """The input contract, where each part came from, and the sample image (written here): the end of
    ``onnx_report``, shared with the TorchScript report (``subject/torchscript.py``)."""
    c = subject.meta["input_contract"]
    lines = []
    ev = c.get("evidence", {})
    lines.append(f"input contract: layout {c['layout']}, range {c['range']}, output range {c['output_range']}, "
                 f"size {c['size']}{' ' + str(c['declared_size']) if c.get('declared_size') else ''}")
    if c.get("resized"):
        lines.append(f"  size: {c['resized']}")
    if "style_input" in c and "style_names" in c["defaulted"]:
        lines.append(f"  style: input {c['style_input']!r} {c['style_shape']} read as a style vector, style i feeding "
                     f"the one-hot e_i; if it is noise or another side input, feed it a constant: --onnx "
                     f"feed={c['style_input']}:0")
    for f in c.get("fed", []):
        lines.append(f"  fed: input {f['name']!r} {f['shape']} gets {f['value']:g} in every entry, for every image "
                     "(the feed option)")
    if c.get("declared_batch"):
        lines.append(f"  batch: the graph declares a fixed batch of {c['declared_batch']}; the converted module runs "
                     f"any batch ({c.get('batched', 'unchecked')}); onnxruntime gets each image repeated "
                     f"{c['declared_batch']} times and the first output is compared")
    for k in c["inferred"]:
        lines.append(f"  {k}: inferred from {ev.get(k, 'the graph')}")
    for src in ("from_sidecar", "from_options", "defaulted"):
        if c[src]:
            lines.append(f"  {src.replace('_', ' ')}: {', '.join(c[src])}")
    for k in c["defaulted"]:
        if k in ev:
            lines.append(f"  {k}: defaulted to {ev[k]}")
    png, st = write_sample(subject, sample, size)
    warn = ("; WARNING: most output pixels sit at the ends of the range: check range / output_range"
            if st["saturated"] > 0.5 else "")
    lines.append(f"sample: {png.resolve()} (content | {' | '.join(st['styles'])}); {100 * st['saturated']:.1f}% of "
                 f"output pixels saturated{warn}. Look at it: swapped colours mean a wrong layout, a washed-out "
                 "or black image a wrong range")
    return lines
