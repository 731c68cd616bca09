"""Harvest: run a model (a Subject's generator, or any nn.Module) over a data set once and stream
per-unit statistics.

    from interp_gan.harvest.stats import Quantile, TopK
    stats = harvest(subject, data, ["blocks.*.conv2"],
                    lambda layer, C: {"q": Quantile(C), "top": TopK(C, k=8)})
    stats["blocks.0.conv2"]["q"].quantile(0.99)        # [C]
    stats["blocks.0.conv2"]["q"].nan_count              # NaNs seen (and left out)

Returns a plain ``dict[layer, Stat | dict[str, Stat]]`` (whatever ``stats_factory(layer,
channels)`` built), as baukit's ``TraceDict`` and TransformerLens' cache do.
Each statistic is fed what its ``observes`` attribute asks for: "location" -> one row per
pixel [N·H·W, C] (a stat with ``add_maps``, such as ``Quantile``, gets the [N,C,H,W] maps
instead: the same items, one copy fewer); "image" -> the per-image max [N, C] (NaN ignored);
"map" -> the maps and the first image index (``ActivationStore`` views). A layer whose output
is [N, C] (no spatial axes) is treated as image-level units: both views are [N, C]. Runs under
``torch.no_grad()``; with ``stop=True`` and no ``on_output`` the forward stops after the last
traced layer. ``on_output(batch_slice, images)`` sees each batch's generated images (then the
forward runs to the end).

Sharded (docs/scaling.md), e.g. under ``torchrun``: every rank passes its own ``shard`` of image
indices and gets back the statistics of all ranks merged (``all_merge``):

    from interp_gan.harvest.distributed import shard_indices
    stats = harvest(subject, data, layers, factory, shard=shard_indices(len(data)))  # on every rank

The rank runs only its images, in the single-process batches cut at the shard's edges, and
feeds them with their global indices (``TopK`` indices, ``ActivationStore`` chunks). With a
shard, harvest is a collective: every rank must call it with the same layers and factory. Every
``Stat`` the factory built is merged, in the order of the layers and of the factory's dict, so
every rank holds the same merged stats; other consumers (``ActivationStore`` views) keep this
rank's share. A rank whose shard is empty gets the other ranks' layers and stats all the same.
A failure on one rank fails every rank (``fail_together``), so none waits for it.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from interp_gan.distributed import all_gather_objects, fail_together, rank_and_world
from interp_gan.harvest.distributed import all_merge
from interp_gan.harvest.hooks import TraceDict, run_until_stop, resolve_layers
from interp_gan.harvest.layout import ensure_probed, layer_info, reused_reason
from interp_gan.harvest.stats import Stat

__all__ = ["harvest", "as_units", "feed", "shard_batches", "ActivationStore"]


def shard_batches(data, shard: range | None = None, batch_size: int | None = None):
    """``data.batches(batch_size)`` restricted to the images of ``shard`` (global indices): the
    single-process batches cut at the shard's edges, as (global slice, content, style_ids, z).
    A shard that starts on a multiple of the batch size gets exactly the single-process batches."""
    bs = batch_size or data.batch_size
    if shard is None:
        shard = range(len(data))
    if shard.step != 1 or shard.start < 0 or shard.stop > len(data):
        raise ValueError(f"shard must be a contiguous range inside range({len(data)}), got {shard}; "
                         f"use distributed.shard_indices(len(data))")
    for b0 in range(shard.start // bs * bs, shard.stop, bs):
        s = slice(max(b0, shard.start), min(b0 + bs, shard.stop))
        yield s, data.content[s], data.style_ids[s], None if data.z is None else data.z[s]


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
        if hasattr(stat, "add_maps"):   # same items, one copy fewer (Quantile)
            stat.add_maps(acts)
        else:
            stat.add(acts.permute(0, 2, 3, 1).reshape(-1, C))
    elif kind == "image":
        if acts.device.type == "cpu":     # amax propagates NaN: mask NaN (a copy of acts) only if there is one
            per_image = acts.flatten(2).amax(2)                                           # [N,C]
            if per_image.is_floating_point() and bool(torch.isnan(per_image).any()):
                per_image = torch.nan_to_num(acts, nan=float("-inf")).flatten(2).amax(2)
        else:                             # on an accelerator: no host sync
            per_image = torch.nan_to_num(acts, nan=float("-inf")).flatten(2).amax(2)
        if hasattr(stat, "indices"):  # TopK wants global image indices
            stat.add(per_image, torch.arange(first_index, first_index + N, device=acts.device))
        else:
            stat.add(per_image)
    elif kind == "map":
        stat.add(acts, first_index)
    else:
        raise ValueError(f"harvest cannot feed a stat that observes {kind!r}; use 'location' or 'image'")


def harvest(target, data, layers, stats_factory: Callable[[str, int], Stat | dict[str, Stat]], *,
            forward: Callable[..., Any] | None = None,
            stop: bool = True, on_output: Callable[[slice, Tensor], None] | None = None,
            batch_size: int | None = None, skipped: dict[str, str] | None = None,
            shard: range | None = None) -> dict[str, Any]:
    """Stream every batch of ``data`` through a forward pass and feed the stats per layer.

    target: a Subject (its generator is traced, ``subject.generate`` runs) or any ``nn.Module``
    (a discriminator, a classifier, a feature net), traced while ``forward(content, style_ids, z)``
    runs -- by default ``module(content)``, so ``data.content`` holds whatever the module takes
    (e.g. real and generated images for a discriminator).
    layers: names or glob patterns of ``target``'s modules (``LookupError`` with close matches).
    skipped: pass a dict to skip (and record why) layers whose output is not [N,C,H,W] / [N,C]
    (after its layout, ``harvest/layout.py``) or that run more than once per forward, instead of raising.
    shard: only these image indices (a contiguous range, e.g. ``shard_indices(len(data))``),
    then merge the stats across ranks (module docstring).
    """
    if isinstance(target, torch.nn.Module):
        G = target
        run = forward or (lambda content, style_ids, z: target(content))
        p = next(target.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    else:
        G, run, device = target.generator, forward or target.generate, target.device
        ensure_probed(target, data)        # each layer's calls and layout, once per generator (harvest/layout.py)
    names = resolve_layers(G, layers)
    out: dict[str, Any] = {}
    channels: dict[str, int] = {}
    local_skips: dict[str, str] = {} if skipped is None else skipped
    if skipped is not None:           # a module called at several places of one forward: skipped, said
        for name in names:
            info = layer_info(G, name)
            if info is not None and info.calls > 1:
                skipped[name] = reused_reason(G, name, info.calls)
        names = [n for n in names if n not in skipped]
    with fail_together("harvest") if shard is not None else contextlib.nullcontext(), torch.no_grad():
        for sl, content, style_ids, z in shard_batches(data, shard, batch_size):
            content, style_ids = content.to(device), style_ids.to(device)
            z = None if z is None else z.to(device)
            with TraceDict(G, names, stop=stop and on_output is None) as td:
                images = run_until_stop(run, content, style_ids, z)
            if on_output is not None:
                on_output(sl, images)
            for name in names:
                if td[name]._output is None:
                    raise RuntimeError(f"layer {name!r} did not run during the forward pass; "
                                       f"is it on the traced module's forward path?")
                if name in local_skips:
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
                    channels[name] = acts.shape[1]
                stats = out[name].values() if isinstance(out[name], dict) else [out[name]]
                for st in stats:
                    feed(st, acts, sl.start)
    if shard is not None and rank_and_world()[1] > 1:
        out = _merge_shards(out, names, channels, local_skips, stats_factory)
    return out


def _merge_shards(out: dict[str, Any], names: list[str], channels: dict[str, int], skipped: dict[str, str],
                  stats_factory) -> dict[str, Any]:
    """Agree on the layers (a rank with an empty shard learns them from the others), then
    ``all_merge`` every Stat in a fixed order (collective)."""
    seen = all_gather_objects((channels, skipped))
    for _, sk in seen:
        skipped.update(sk)
    merged: dict[str, Any] = {}
    for name in names:
        if name in skipped:
            continue
        sizes = {ch[name] for ch, _ in seen if name in ch}
        if not sizes:
            continue
        if len(sizes) > 1:
            raise RuntimeError(f"layer {name!r} has {sorted(sizes)} channels on different ranks; "
                               f"expected the same model on every rank")
        merged[name] = out[name] if name in out else stats_factory(name, sizes.pop())
        stats = merged[name].values() if isinstance(merged[name], dict) else [merged[name]]
        for st in stats:
            if isinstance(st, Stat):
                all_merge(st)
    return merged


class ActivationStore:
    """Per-batch chunks of unit maps (at their own resolution) and generated images, kept as
    tensors on the device they were made on (the model's: no copy to the host) up to
    ``memory_mb``, and spilled to a temporary directory beyond it, so memory stays flat in N.

        store = ActivationStore(memory_mb=512)
        store.add_images(0, imgs_uint8); store.view("blocks.0").add(acts, 0)   # harvest feeds views
        imgs, acts = store.read(0, 32, ["blocks.0"], device)   # tensors: [n,3,H,W] uint8, {layer: [n,C,h,w]}
        store.take([3, 7])                                      # numpy [2,H,W,3] uint8 (thumbnails)
        store.close()

    ``memory_mb`` counts the bytes kept in memory wherever they are (GPU memory for a CUDA
    model). Stored tensors are the traced outputs themselves (no copy); spilled ones are
    written with ``np.save`` and read back to ``device``.
    """

    def __init__(self, memory_mb: float = 1024, directory: str | None = None) -> None:
        self.budget = int(memory_mb * 2 ** 20)
        self.used = 0
        self._dir_arg = directory
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.chunks: dict[int, dict[str, Any]] = {}   # start -> {"stop", "__images__", layer: Tensor|path}
        self._cache: tuple[int, dict[str, Tensor]] | None = None
        self.spilled = 0

    class _View:
        observes = "map"

        def __init__(self, store: "ActivationStore", layer: str) -> None:
            self.store, self.layer = store, layer

        def add(self, acts: Tensor, first_index: int) -> None:
            self.store._put(first_index, first_index + len(acts), self.layer, acts.detach())

    def view(self, layer: str) -> "ActivationStore._View":
        return ActivationStore._View(self, layer)

    def add_images(self, first_index: int, images: Tensor) -> None:
        """images [n,3,H,W] uint8 (any device)."""
        self._put(first_index, first_index + len(images), "__images__", torch.as_tensor(images))

    def _put(self, start: int, stop: int, key: str, t: Tensor) -> None:
        chunk = self.chunks.setdefault(start, {"stop": stop})
        nbytes = t.numel() * t.element_size()
        if self.used + nbytes > self.budget:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="interp_gan_store_", dir=self._dir_arg)
            path = os.path.join(self._tmp.name, f"{start}_{len(chunk)}.npy")
            np.save(path, t.cpu().numpy())
            chunk[key] = path
            self.spilled += nbytes
        else:
            chunk[key] = t
            self.used += nbytes

    def _load(self, start: int, keys: list[str]) -> dict[str, Tensor]:
        """The chunk's tensors for ``keys``; spilled ones are read from disk once (the last
        chunk read stays cached)."""
        if self._cache is None or self._cache[0] != start:
            self._cache = (start, {})
        cached = self._cache[1]
        for k in keys:
            if k not in cached:
                v = self.chunks[start][k]
                cached[k] = torch.from_numpy(np.load(v)) if isinstance(v, str) else v
        return cached

    def read(self, start: int, stop: int, layers: list[str], device: torch.device | str | None = None
             ) -> tuple[Tensor, dict[str, Tensor]]:
        """Images [n,3,H,W] uint8 and {layer: acts [n,C,h,w]} of images start..stop-1 (on ``device``
        if given, else where they are kept)."""
        parts: dict[str, list[Tensor]] = {k: [] for k in ["__images__", *layers]}
        for s0 in sorted(self.chunks):
            s1 = self.chunks[s0]["stop"]
            if s1 <= start or s0 >= stop:
                continue
            chunk = self._load(s0, list(parts))
            lo, hi = max(start, s0) - s0, min(stop, s1) - s0
            for k in parts:
                parts[k].append(chunk[k][lo:hi].to(device) if device is not None else chunk[k][lo:hi])
        out = {k: (v[0] if len(v) == 1 else torch.cat(v)) for k, v in parts.items()}
        return out.pop("__images__"), out

    def take(self, indices: list[int], layer: str | None = None, unit: int | None = None) -> np.ndarray:
        """Images [n,H,W,3] uint8 (layer None) or one unit's maps [n,h,w], as numpy, for the given
        image indices (each chunk is loaded once)."""
        found: dict[int, np.ndarray] = {}
        for s0 in sorted(self.chunks):
            s1 = self.chunks[s0]["stop"]
            want = [i for i in indices if s0 <= i < s1 and i not in found]
            if not want:
                continue
            key = "__images__" if layer is None else layer
            t = self._load(s0, [key])[key]
            got = t[torch.as_tensor([i - s0 for i in want], device=t.device)]
            got = got.permute(0, 2, 3, 1) if layer is None else got[:, unit]
            for i, g in zip(want, got.cpu().numpy()):
                found[i] = g
        return np.stack([found[i] for i in indices])

    def close(self) -> None:
        self.chunks.clear()
        self._cache = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
