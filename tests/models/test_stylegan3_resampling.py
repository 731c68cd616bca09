"""StyleGAN3's filtered leaky ReLU: the per-axis, strided, chunked path against the plain one it replaced
(upsample both axes, filter the whole grid, decimate), on every layer's real geometry (T and R), and its
memory bound: no intermediate over ``CHUNK_BYTES`` (and the layer's own input and output) at any batch."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from interp_gan.models import stylegan3
from tests.subject.nvlabs_snapshot_sg3 import tiny_sg3


def _plain_upfirdn2d(x, f, up=1, down=1, pad=(0, 0, 0, 0), gain=1.0):
    n, c, h, w = x.shape
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x0, x1, y0, y1 = pad
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0): x.shape[2] - max(-y1, 0), max(-x0, 0): x.shape[3] - max(-x1, 0)]
    f = torch.ones(1, 1) if f is None else f
    k = (f * gain ** (f.ndim / 2)).flip(list(range(f.ndim)))
    if k.ndim == 2:
        x = F.conv2d(x, k[None, None].expand(c, 1, *k.shape), groups=c)
    else:
        x = F.conv2d(x, k[None, None, None].expand(c, 1, 1, len(k)), groups=c)
        x = F.conv2d(x, k[None, None, :, None].expand(c, 1, len(k), 1), groups=c)
    return x[:, :, ::down, ::down]


def _plain_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp):
    x = _plain_upfirdn2d(x + b.reshape(1, -1, 1, 1), fu, up=up, pad=padding, gain=up ** 2)
    x = F.leaky_relu(x, slope) * gain if slope != 1 else x * gain
    x = x.clamp(-clamp, clamp) if clamp is not None and clamp >= 0 else x
    return _plain_upfirdn2d(x, fd, down=down)


def _layer_calls(cfg: str, monkeypatch) -> list[tuple]:
    """Every filtered_lrelu call of a forward of a random 32 px generator: its real inputs and geometry."""
    G, _ = tiny_sg3(res=32, cfg=cfg, num_layers=6, margin_size=3)
    calls, real = [], stylegan3.filtered_lrelu

    def record(*args, gain, slope, clamp):
        calls.append((*args, gain, slope, clamp))
        return real(*args, gain=gain, slope=slope, clamp=clamp)
    monkeypatch.setattr(stylegan3, "filtered_lrelu", record)
    with torch.no_grad():
        G(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(1)), None)
    monkeypatch.setattr(stylegan3, "filtered_lrelu", real)
    return calls


@pytest.mark.parametrize("cfg", ["t", "r"])
def test_fast_path_matches_the_plain_one_on_every_layer(cfg, monkeypatch):
    calls = _layer_calls(cfg, monkeypatch)
    assert len(calls) == 7 and any(c[2] is not None and c[2].ndim == 2 for c in calls) == (cfg == "r")
    monkeypatch.setattr(stylegan3, "CHUNK_BYTES", 4096, raising=False)     # slabs of a few channels: chunks checked too
    for args in calls:
        ref = _plain_filtered_lrelu(*args)
        got = stylegan3.filtered_lrelu(*args[:-3], gain=args[-3], slope=args[-2], clamp=args[-1])
        assert got.shape == ref.shape
        assert (got - ref).abs().max().item() <= 1e-6 * max(1.0, ref.abs().max().item())


class _Largest(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.bytes = max(self.bytes, t.numel() * t.element_size())
        return out


def test_the_upsampled_intermediate_is_bounded_at_any_batch(monkeypatch):
    calls = _layer_calls("t", monkeypatch)
    x, *rest = max(calls, key=lambda a: a[0][0].numel() * a[4] ** 2)       # the most upsampled layer
    x = x.repeat(8, 1, 1, 1)                                                   # a bigger batch
    kw = dict(zip(("gain", "slope", "clamp"), rest[-3:]))
    io = max(x.numel(), stylegan3.filtered_lrelu(x, *rest[:-3], **kw).numel()) * 4
    monkeypatch.setattr(stylegan3, "CHUNK_BYTES", 8192, raising=False)
    with _Largest() as seen:
        stylegan3.filtered_lrelu(x, *rest[:-3], **kw)
    assert seen.bytes <= max(io, 4 * 8192), (seen.bytes, io)
