"""Pixel concept masks, computed offline on the generated image (no segmentation weights needed).

    masks, names = concept_masks(images)                  # images [N,3,H,W] in [-1,1]
    masks.shape                                            # [N, K, H, W] bool, K = len(names)
    names[:3]                                              # ['black', 'white', 'grey']

    masks, names = concept_masks(images, segmenter=my_seg) # appends my_seg.labels

Concepts (``CONCEPT_NAMES``):
- the 11 basic colour terms of Berlin & Kay (1969) — black, white, grey, red, orange, yellow,
  green, blue, purple, pink, brown — from fixed HSV rules; every pixel gets exactly one;
- dark / bright: luma Y (Rec. 601) < 0.25 / > 0.75;
- edges: Sobel gradient magnitude of Y in the image's top ``EDGE_FRACTION`` (and above a floor);
- texture: local variance of Y in a 5x5 window (a Laws-like energy), top ``TEXTURE_FRACTION``.
Image-level concepts (the target style) are added by the dissection: the whole image is the
mask of "style:<name>" when the image was generated toward that style.

Plug in any segmenter (the ``Segmenter`` protocol): a callable ``images [N,3,H,W] in [-1,1] ->
labels [N,H,W] int`` with a ``labels: list[str]`` attribute; label ``i`` becomes the mask of
``labels[i]`` (values outside 0..len-1 are ignored). For example a torchvision model with a
weights file you have locally (nothing is downloaded)::

    net = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None,
                                                              num_classes=21)
    net.load_state_dict(torch.load("deeplab_voc.pth", weights_only=True))
    seg = ModelSegmenter(net.eval(), labels=VOC_LABELS)   # normalises with ImageNet mean/std
    masks, names = concept_masks(images, segmenter=seg)

In a pipeline TOML, name a factory that returns the segmenter (it is called once, with no
arguments; ``resolve_segmenter``)::

    [analyses.dissection]
    segmenter = "my_segmenters.py:deeplab_voc"     # or "package.module:factory"
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["concept_masks", "CONCEPT_NAMES", "COLOR_NAMES", "Segmenter", "ModelSegmenter", "resolve_segmenter",
           "to_unit_rgb"]

COLOR_NAMES = ["black", "white", "grey", "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown"]
CONCEPT_NAMES = COLOR_NAMES + ["dark", "bright", "edges", "texture"]
EDGE_FRACTION = 0.10      # the strongest 10% of gradients per image are "edges"
TEXTURE_FRACTION = 0.20   # the busiest 20% of 5x5 windows per image are "texture"
_FLOOR = 1e-3             # a flat image has no edges / texture, not a random 10%


@runtime_checkable
class Segmenter(Protocol):
    labels: list[str]

    def __call__(self, images: Tensor) -> Tensor:  # [N,3,H,W] in [-1,1] -> [N,H,W] integer labels
        ...


class ModelSegmenter:
    """Wrap a segmentation nn.Module (output [N,L,H,W] or {"out": ...}) as a ``Segmenter``."""

    def __init__(self, model: nn.Module, labels: list[str], mean=(0.485, 0.456, 0.406),
                 std=(0.229, 0.224, 0.225)) -> None:
        self.model, self.labels = model, list(labels)
        self.mean, self.std = torch.tensor(mean)[None, :, None, None], torch.tensor(std)[None, :, None, None]

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        x = (to_unit_rgb(images) - self.mean.to(images.device)) / self.std.to(images.device)
        out = self.model(x)
        out = out["out"] if isinstance(out, dict) else out
        if out.shape[-2:] != images.shape[-2:]:
            out = F.interpolate(out, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return out.argmax(1)


def to_unit_rgb(images: Tensor) -> Tensor:
    """[-1,1] -> [0,1], checking the shape."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [N,3,H,W] in [-1,1], got {tuple(images.shape)}")
    return ((images.float() + 1) / 2).clamp(0, 1)


def _hsv(rgb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """rgb [N,3,H,W] in [0,1] -> hue in degrees [0,360), saturation, value, each [N,H,W]."""
    r, g, b = rgb.unbind(1)
    v, _ = rgb.max(1)
    mn, _ = rgb.min(1)
    d = v - mn
    s = torch.where(v > 0, d / v.clamp_min(1e-8), torch.zeros_like(v))
    dd = d.clamp_min(1e-8)
    h = torch.where(v == r, ((g - b) / dd) % 6, torch.where(v == g, (b - r) / dd + 2, (r - g) / dd + 4)) * 60
    h = torch.where(d > 0, h, torch.zeros_like(h)) % 360
    return h, s, v


def _colour_masks(rgb: Tensor) -> list[Tensor]:
    """Berlin & Kay's 11 basic colour terms as a partition of the pixels (fixed HSV rules)."""
    h, s, v = _hsv(rgb)
    black = v < 0.2
    achrom = (~black) & (s < 0.15)
    white = achrom & (v > 0.8)
    grey = achrom & ~white
    chrom = ~black & ~achrom
    red_h = (h < 15) | (h >= 345)
    orange_h = (h >= 15) & (h < 45)
    brown = chrom & (red_h | orange_h) & (v < 0.6) & (s > 0.3)          # dark, saturated red-orange
    pink = chrom & ~brown & ((((h >= 300) & (h < 345)) & (v > 0.4)) | (red_h & (s < 0.5) & (v > 0.7)))
    rest = chrom & ~brown & ~pink
    red = rest & red_h
    orange = rest & orange_h
    yellow = rest & (h >= 45) & (h < 70)
    green = rest & (h >= 70) & (h < 165)
    blue = rest & (h >= 165) & (h < 260)
    purple = rest & (h >= 260) & (h < 345)
    return [black, white, grey, red, orange, yellow, green, blue, purple, pink, brown]


def _top_fraction(score: Tensor, fraction: float) -> Tensor:
    """Per image: score >= its (1 - fraction) quantile and above a floor. score [N,H,W]."""
    flat = score.flatten(1)
    thr = torch.quantile(flat, 1 - fraction, dim=1)[:, None, None]
    return (score >= thr) & (score > _FLOOR)


def resolve_segmenter(segmenter: "Segmenter | str | None") -> "Segmenter | None":
    """None, a ``Segmenter``, or ``"path/to/file.py:factory"`` / ``"package.module:factory"``: the
    factory is called with no arguments and must return a ``Segmenter`` (a callable with a
    ``labels`` list)."""
    if segmenter is None or segmenter == "":
        return None
    where = ""
    if isinstance(segmenter, str):
        from interp_gan.util import import_factory
        where = f" returned by {segmenter}()"
        factory = import_factory(segmenter, what="segmenter")
        if not callable(factory):
            raise TypeError(f"segmenter {segmenter} is a {type(factory).__name__}, not a factory to call")
        segmenter = factory()
    if not isinstance(segmenter, Segmenter):
        raise TypeError(f"the segmenter{where} must be a callable images [N,3,H,W] -> labels [N,H,W] with a "
                        f"`labels: list[str]` attribute (wrap an nn.Module with ModelSegmenter(model, labels)); "
                        f"got {type(segmenter).__name__}")
    return segmenter


def concept_masks(images: Tensor, segmenter: Segmenter | None = None) -> tuple[Tensor, list[str]]:
    """images [N,3,H,W] in [-1,1] -> (masks [N,K,H,W] bool, names). See the module docstring."""
    rgb = to_unit_rgb(images)
    y = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2])[:, None]   # [N,1,H,W]
    sobel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=y.device)
    yp = F.pad(y, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(yp, sobel[None, None])
    gy = F.conv2d(yp, sobel.t()[None, None])
    grad = (gx ** 2 + gy ** 2).sqrt()[:, 0] / 8        # /8: a unit step gives magnitude 0.5
    y5 = F.pad(y, (2, 2, 2, 2), mode="replicate")
    local_var = (F.avg_pool2d(y5 ** 2, 5, 1) - F.avg_pool2d(y5, 5, 1) ** 2).clamp_min(0)[:, 0]
    masks = _colour_masks(rgb) + [y[:, 0] < 0.25, y[:, 0] > 0.75,
                                  _top_fraction(grad, EDGE_FRACTION),
                                  _top_fraction(local_var.sqrt(), TEXTURE_FRACTION)]
    names = list(CONCEPT_NAMES)
    if segmenter is not None:
        labels = segmenter(images)
        if labels.shape != (images.shape[0],) + tuple(images.shape[-2:]):
            raise ValueError(f"segmenter returned {tuple(labels.shape)}; expected [N,H,W] = "
                             f"{(images.shape[0],) + tuple(images.shape[-2:])} integer labels")
        seg_labels = list(getattr(segmenter, "labels", []))
        if not seg_labels:
            raise ValueError("segmenter has no `labels` list; give it labels: list[str] (one per class id)")
        masks += [labels.to(y.device) == i for i in range(len(seg_labels))]
        names += [f"seg:{name}" for name in seg_labels]
    return torch.stack(masks, dim=1), names
