"""Run a converted ONNX image network on the Subject contract: [-1,1] NCHW in and out.

    runner = OnnxRunner(G, layout="NHWC", in_range="[0,1]", out_range="[0,1]", style_shape=(1, 1, 100))
    image = runner(content, codes)          # content [N,3,H,W] in [-1,1], codes [N,D] or None
    batched, why = check_batching(runner, two_codes, device)

``style_shape`` is the style input's shape after the batch dim (``(D,)`` for [N, D], ``(1, 1, D)``
for TensorFlow's [1, 1, 1, D]); ``None`` with ``per_call=True`` is a rank-1 style input [D], which
takes one vector per call, so a batch is run in groups of images that share a vector.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from interp_gan.subject.geometry import to_model_size, to_size
from interp_gan.subject.onnx_contract import RANGES

__all__ = ["OnnxRunner", "check_batching", "BATCH_TOLERANCE"]

BATCH_TOLERANCE = 1e-3   # a batch of 2 vs 2 single images, in [-1,1] output units


class OnnxRunner:
    """content [N,3,H,W] in [-1,1] (+ style vectors [N,D]) -> the network -> [N,3,H,W] in [-1,1]."""

    def __init__(self, net: nn.Module, layout: str, in_range: str, out_range: str,
                 style_shape: tuple | None = None, per_call: bool = False, clamp: bool = False):
        self.net, self.layout, self.style_shape, self.per_call = net, layout, style_shape, per_call
        self.clamp = clamp     # an output nothing in the graph bounds: clipped to its range
        self.lo, self.hi = RANGES[in_range]
        self.out_lo, self.out_hi = RANGES[out_range]
        self.batched = True   # set by check_batching
        self.fixed_hw: tuple[int, int] | None = None   # a graph with a fixed image size
        self.output_resized: tuple | None = None   # ((h, w) in, (h, w) out) when the output's size differs

    def to_net(self, content: Tensor) -> Tensor:
        x = (content + 1) / 2 * (self.hi - self.lo) + self.lo
        return x.permute(0, 2, 3, 1) if self.layout == "NHWC" else x

    def from_net(self, y: Tensor) -> Tensor:
        y = y.permute(0, 3, 1, 2) if self.layout == "NHWC" else y
        y = y.expand(-1, 3, -1, -1) if y.shape[1] == 1 else y   # a grayscale output: the same in R, G and B
        y = (y.float() - self.out_lo) / (self.out_hi - self.out_lo) * 2 - 1
        return y.clamp(-1, 1) if self.clamp else y

    def _call(self, x: Tensor, code: Tensor | None) -> Tensor:
        """x in the network's contract; code [n,D] (one row when the style input takes one per call)."""
        if code is None:
            return self.net(x)
        if self.per_call:
            return self.net(x, code[0])
        return self.net(x, code.reshape(len(code), *self.style_shape))

    def _batch(self, x: Tensor, code: Tensor | None) -> Tensor:
        if self.batched:
            return self._call(x, code)
        return torch.cat([self._call(x[i:i + 1], None if code is None else code if self.per_call else code[i:i + 1])
                          for i in range(len(x))])

    def __call__(self, content: Tensor, codes: Tensor | None) -> Tensor:
        if self.fixed_hw is not None and self.fixed_hw[0] != self.fixed_hw[1]:   # one non-square size: resized
            size = content.shape[-2:]
            return to_size(self._run(to_model_size(content, self.fixed_hw), codes), size)
        if self.fixed_hw is not None and tuple(content.shape[-2:]) != self.fixed_hw:
            h, w = self.fixed_hw
            raise ValueError(f"this network (as exported to ONNX) takes {h}x{w} images only; got {content.shape[-2]}x"
                             f"{content.shape[-1]} (set image_size to {h}: --set image_size={h}; or, when the "
                             "network is fully convolutional, load it with size = \"free\": --onnx size=free)")
        try:
            y = self._run(content, codes)
        except Exception as e:
            if isinstance(e, ValueError) or self.fixed_hw is not None:
                raise
            advice = self._size_advice(content, codes)
            if advice is None:
                raise
            raise ValueError(advice) from None
        if tuple(y.shape[-2:]) != tuple(content.shape[-2:]):   # a graph whose output is another size (x2, a crop)
            self.output_resized = (tuple(content.shape[-2:]), tuple(y.shape[-2:]))
            y = to_size(y, content.shape[-2:])
        return y

    def _size_advice(self, content: Tensor, codes: Tensor | None) -> str | None:
        """Why a free-size graph failed, when it is the size: one image of this size fails, and the
        first multiple of 4, 8, ..., 128 at or above it runs (a U-Net whose skips need even maps at
        every level). None when one image of this size runs (the failure is something else)."""
        h, w = content.shape[-2:]

        def runs(hh: int, ww: int) -> bool:
            x = torch.zeros(1, 3, hh, ww, device=content.device, dtype=content.dtype)
            try:
                with torch.no_grad():
                    self._run(x, None if codes is None else codes[:1])
                return True
            except Exception:
                return False
        if runs(h, w):
            return None
        for m in (4, 8, 16, 32, 64, 128):
            hh, ww = -(-h // m) * m, -(-w // m) * m
            if (hh, ww) != (h, w) and runs(hh, ww):
                return (f"this network fails on {h}x{w} images and runs on {hh}x{ww}: its height and width must be "
                        f"multiples of {m} (set image_size to one: --set image_size={max(hh, ww)})")
        return None

    def _run(self, content: Tensor, codes: Tensor | None) -> Tensor:
        x = self.to_net(content)
        if codes is not None:
            codes = codes.to(x.dtype)
        if codes is None or not self.per_call:
            return self.from_net(self._batch(x, codes))
        uniq, group = torch.unique(codes, dim=0, return_inverse=True)   # one vector per call
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


def check_batching(runner: OnnxRunner, codes: Tensor | None, device: torch.device,
                   name: str = "the network") -> tuple[bool, str]:
    """Whether the converted graph gives the same result for a batch of 2 as for 2 single images
    (an ONNX export often fixes the batch to 1 and a reshape may bake it in); ``codes`` [2, D] are
    two different style vectors (also checks a per-image style input). Sets ``runner.batched``.
    A network that fails on one image is a one-line ValueError."""
    g = torch.Generator().manual_seed(0)
    h, w = runner.fixed_hw or (32, 32)
    x = (torch.rand(2, 3, h, w, generator=g) * 2 - 1).to(device)
    codes = None if codes is None else codes.to(device)
    runner.batched = False
    with torch.no_grad():
        try:
            single = runner(x, codes)
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            b = getattr(runner, "declared_batch", 1)
            why = (f"the graph declares a fixed batch of {b}, and a shape baked from it does not fit one image: "
                   "export it again with a dynamic batch axis (torch.onnx.export(..., dynamic_axes={input: "
                   "{0: 'N'}}); tf2onnx: --inputs name:0[-1,H,W,3])" if b > 1 else
                   "an op exported in a form torch cannot run")
            raise ValueError(f"{name}: the converted network fails on a {h}x{w} image ({type(e).__name__}: "
                             f"{first}); {why}") from None
        runner.batched = True
        try:
            both = runner(x, codes)
        except Exception as e:   # the graph refuses batch > 1: run one image per call
            runner.batched = False
            return False, f"batch of 2 failed ({type(e).__name__}); one image per call"
    if both.shape != single.shape:   # torch ran the batch where a squeeze of the batch axis does nothing
        runner.batched = False
        return False, (f"batch of 2 gave shape {list(both.shape)}, 2 single images {list(single.shape)}; "
                       "one image per call")
    diff = float((both - single).abs().max())
    runner.batched = diff <= BATCH_TOLERANCE
    return runner.batched, f"batch of 2 vs 2 single images: max abs diff {diff:.2e}" + (
        "" if runner.batched else "; one image per call")
