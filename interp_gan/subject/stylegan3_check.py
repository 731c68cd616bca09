"""A StyleGAN3 pickle's own record of its layers against the layers our ``StyleGAN3Generator`` built from
the Generator's init kwargs.

NVlabs' ``persistent_class`` keeps every module's constructor kwargs, so a pickle says, per synthesis
layer, the sizes, sampling rates, cutoffs, half-widths and channels its ``SynthesisNetwork`` computed
(and, as attributes, the padding and resampling factors its ``__init__`` derived). Our network computes
the same schedule from the top-level kwargs; any disagreement (a modified networks_stylegan3.py, or a
misreading here) is refused in one line naming the layer and the value, rather than run.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from interp_gan.subject.nvlabs_pickle import PersistentObject

__all__ = ["check_stylegan3_layers"]

_LAYER_KWARGS = {"w_dim", "is_torgb", "is_critically_sampled", "use_fp16", "in_channels", "out_channels", "in_size",
                 "out_size", "in_sampling_rate", "out_sampling_rate", "in_cutoff", "out_cutoff", "in_half_width",
                 "out_half_width", "conv_kernel", "filter_size", "lrelu_upsampling", "use_radial_filters",
                 "conv_clamp", "magnitude_ema_beta"}
_DERIVED = ("padding", "up_factor", "down_factor", "up_taps", "down_taps", "conv_kernel")


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.size != b.size:
        a, b = np.broadcast_arrays(a, b) if 1 in (a.size, b.size) else (a, b[:0])
    return a.size == b.size and all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) for x, y in zip(a, b))


def check_stylegan3_layers(G, g: PersistentObject, where: str = "") -> int:
    """Compare (module docstring); returns how many layers' stored kwargs were compared (a pickle
    written without them is checked by its keys and shapes only). Also refuses non-finite filters."""
    syn = g.modules.get("synthesis")
    if not isinstance(syn, PersistentObject):
        raise ValueError(f"{where}the StyleGAN3 Generator has no 'synthesis' network")
    ours = G.synthesis
    layer_kw = {k: v for k, v in G.config["synthesis_kwargs"].items()
                if k in ("conv_kernel", "filter_size", "lrelu_upsampling", "use_radial_filters", "conv_clamp",
                         "magnitude_ema_beta")}
    compared = 0
    inp = syn.modules.get("input")
    if isinstance(inp, PersistentObject) and inp.init_kwargs:
        want = dict(w_dim=G.w_dim, channels=ours.input.channels, size=ours.input.size,
                    sampling_rate=ours.input.sampling_rate, bandwidth=ours.input.bandwidth)
        _compare(want, inp.init_kwargs, f"{where}synthesis.input")
    for name, spec in zip(ours.layer_names, ours.geometry):
        obj = syn.modules.get(name)
        layer = getattr(ours, name)
        for buf in ("up_filter", "down_filter"):
            t = getattr(layer, buf)
            if t is not None and not torch.isfinite(t).all():
                raise ValueError(f"{where}synthesis.{name}.{buf} holds non-finite values; expected the stored "
                                 "low-pass filter")
        if not isinstance(obj, PersistentObject) or not obj.init_kwargs:
            continue
        unknown = sorted(set(obj.init_kwargs) - _LAYER_KWARGS)
        if unknown:
            raise ValueError(f"{where}synthesis.{name} has init_kwargs this reader does not know: {unknown}")
        want = dict(spec, w_dim=G.w_dim, **layer_kw)
        _compare(want, {k: v for k, v in obj.init_kwargs.items() if k != "use_fp16"}, f"{where}synthesis.{name}")
        derived = {"padding": layer.padding, "up_factor": layer.up_factor, "down_factor": layer.down_factor,
                   "up_taps": layer.up_taps, "down_taps": layer.down_taps, "conv_kernel": layer.conv_kernel}
        for k in _DERIVED:
            if k in obj.attributes and not _same(obj.attributes[k], derived[k]):
                raise ValueError(f"{where}synthesis.{name}: the pickle records {k}={obj.attributes[k]!r} but the "
                                 f"layer it describes has {k}={derived[k]!r}; refusing to run a different network")
        compared += 1
    return compared


def _compare(want: dict, got: dict, what: str) -> None:
    for k, v in got.items():
        if k in want and not _same(v, want[k]):
            raise ValueError(f"{what}: the pickle records {k}={v!r} but the Generator's kwargs give {want[k]!r}; "
                             "refusing to run a different network")
