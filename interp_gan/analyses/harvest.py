"""Harvest: run the generator over a data set once and stream per-unit statistics.

    from interp_gan.analyses.stats import Quantile, TopK
    stats = harvest(subject, data, ["blocks.*.conv2"],
                    lambda layer, C: {"q": Quantile(C), "top": TopK(C, k=8)})
    stats["blocks.0.conv2"]["q"].quantile(0.99)        # [C]
    stats["blocks.0.conv2"]["q"].nan_count              # NaNs seen (and left out)

Returns a plain ``dict[layer, Stat | dict[str, Stat]]`` (whatever ``stats_factory(layer,
channels)`` built), as baukit's ``TraceDict`` and TransformerLens' cache do (STYLE.md #3).
Each statistic is fed what its ``observes`` attribute asks for: "location" -> one row per
pixel [N·H·W, C]; "image" -> the per-image max [N, C] (NaN ignored). A layer whose output is
[N, C] (no spatial axes) is treated as image-level units: both views are [N, C]. Runs under
``torch.no_grad()``; with ``stop=True`` and no ``on_output`` the forward stops after the last
traced layer. ``on_output(batch_slice, images)`` sees each batch's generated images (then the
forward runs to the end).
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from interp_gan.analyses.hooks import TraceDict, run_until_stop, resolve_layers
from interp_gan.analyses.stats import Stat

__all__ = ["harvest", "as_units", "feed", "ActivationStore"]


def as_units(output: Any, layer: str) -> Tensor:
    """A layer output as [N, C, H, W] (an [N, C] output becomes [N, C, 1, 1]); float32."""
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        output = output[0]
    if not isinstance(output, Tensor) or output.dim() not in (2, 4):
        shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ValueError(f"layer {layer!r} gives {shape}; expected [N,C,H,W] or [N,C] units")
    x = output.detach().float()
    return x[:, :, None, None] if x.dim() == 2 else x


def feed(stat: Stat, acts: Tensor, first_index: int) -> None:
    """Give one stat its view of acts [N,C,H,W] (images first_index.. first_index+N-1)."""
    kind = getattr(stat, "observes", "location")
    N, C = acts.shape[:2]
    if kind == "location":
        stat.add(acts.permute(0, 2, 3, 1).reshape(-1, C))
    elif kind == "image":
        per_image = torch.nan_to_num(acts, nan=float("-inf")).flatten(2).amax(2)  # [N,C]
        if hasattr(stat, "indices"):  # TopK wants global image indices
            stat.add(per_image, torch.arange(first_index, first_index + N, device=acts.device))
        else:
            stat.add(per_image)
    elif kind == "map":
        stat.add(acts, first_index)
    else:
        raise ValueError(f"harvest cannot feed a stat that observes {kind!r}; use 'location' or 'image'")


def harvest(subject, data, layers, stats_factory: Callable[[str, int], Stat | dict[str, Stat]], *,
            stop: bool = True, on_output: Callable[[slice, Tensor], None] | None = None,
            batch_size: int | None = None, skipped: dict[str, str] | None = None) -> dict[str, Any]:
    """Stream every batch of ``data`` through ``subject.generate`` and feed the stats per layer.

    layers: names or glob patterns (``LookupError`` with close matches if unknown).
    skipped: pass a dict to skip (and record why) layers whose output is not [N,C,H,W] / [N,C]
    instead of raising.
    """
    G = subject.generator
    names = resolve_layers(G, layers)
    out: dict[str, Any] = {}
    device = subject.device
    with torch.no_grad():
        for sl, content, style_ids, z in data.batches(batch_size):
            content, style_ids = content.to(device), style_ids.to(device)
            z = None if z is None else z.to(device)
            with TraceDict(G, names, stop=stop and on_output is None) as td:
                images = run_until_stop(subject.generate, content, style_ids, z)
            if on_output is not None:
                on_output(sl, images)
            for name in names:
                if td[name].output is None:
                    raise RuntimeError(f"layer {name!r} did not run during subject.generate; "
                                       f"is it part of the generator's forward path?")
                if skipped is not None and name in skipped:
                    continue
                try:
                    acts = as_units(td[name].output, name)
                except ValueError as e:
                    if skipped is None:
                        raise
                    skipped[name] = str(e)
                    continue
                if name not in out:
                    out[name] = stats_factory(name, acts.shape[1])
                stats = out[name].values() if isinstance(out[name], dict) else [out[name]]
                for st in stats:
                    feed(st, acts, sl.start)
    return out


class ActivationStore:
    """Per-batch chunks of unit maps (at their own resolution) and generated images, kept in RAM
    up to ``memory_mb`` and spilled to a temporary directory beyond it, so RAM stays flat in N.

        store = ActivationStore(memory_mb=512)
        store.add_images(0, imgs_uint8); store.view("blocks.0").add(acts, 0)   # harvest feeds views
        imgs, acts = store.read(0, 32, ["blocks.0"])       # numpy, images [n,H,W,3], acts [n,C,h,w]
        store.close()
    """

    def __init__(self, memory_mb: float = 1024, directory: str | None = None) -> None:
        self.budget = int(memory_mb * 2 ** 20)
        self.used = 0
        self._dir_arg = directory
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.chunks: dict[int, dict[str, Any]] = {}   # start -> {"stop", "images", layer: array|path}
        self._cache: tuple[int, dict[str, np.ndarray]] | None = None
        self.spilled = 0

    class _View:
        observes = "map"

        def __init__(self, store: "ActivationStore", layer: str) -> None:
            self.store, self.layer = store, layer

        def add(self, acts: Tensor, first_index: int) -> None:
            self.store._put(first_index, first_index + len(acts), self.layer, acts.cpu().numpy())

    def view(self, layer: str) -> "ActivationStore._View":
        return ActivationStore._View(self, layer)

    def add_images(self, first_index: int, images: np.ndarray) -> None:
        self._put(first_index, first_index + len(images), "__images__", images)

    def _put(self, start: int, stop: int, key: str, arr: np.ndarray) -> None:
        chunk = self.chunks.setdefault(start, {"stop": stop})
        if self.used + arr.nbytes > self.budget:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="interp_gan_store_", dir=self._dir_arg)
            path = os.path.join(self._tmp.name, f"{start}_{len(chunk)}.npy")
            np.save(path, arr)
            chunk[key] = path
            self.spilled += arr.nbytes
        else:
            chunk[key] = arr
            self.used += arr.nbytes

    def _load(self, start: int) -> dict[str, np.ndarray]:
        if self._cache is not None and self._cache[0] == start:
            return self._cache[1]
        chunk = {k: (np.load(v) if isinstance(v, str) else v) for k, v in self.chunks[start].items() if k != "stop"}
        self._cache = (start, chunk)
        return chunk

    def read(self, start: int, stop: int, layers: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Images [n,H,W,3] and {layer: acts [n,C,h,w]} of images start..stop-1."""
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ["__images__", *layers]}
        for s0 in sorted(self.chunks):
            s1 = self.chunks[s0]["stop"]
            if s1 <= start or s0 >= stop:
                continue
            chunk = self._load(s0)
            lo, hi = max(start, s0) - s0, min(stop, s1) - s0
            for k in parts:
                parts[k].append(chunk[k][lo:hi])
        images = np.concatenate(parts.pop("__images__"))
        return images, {k: np.concatenate(v) for k, v in parts.items()}

    def take(self, indices: list[int], layer: str | None = None, unit: int | None = None):
        """Images [n,H,W,3] (layer None) or one unit's maps [n,h,w] for the given image indices."""
        out = []
        for i in indices:
            images, acts = self.read(i, i + 1, [] if layer is None else [layer])
            out.append(images[0] if layer is None else acts[layer][0, unit])
        return np.stack(out)

    def close(self) -> None:
        self.chunks.clear()
        self._cache = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
