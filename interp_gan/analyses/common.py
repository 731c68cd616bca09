"""Helpers the analyses share, written once: seeded noise and RNG, style checks, per-image unit
means, a layer's channel means while generating, the log-odds measure and image thumbnails.

    with seeded(0):
        images = subject.generate(content, ids, fixed_z(subject, data, seed=0))
    lo = log_odds(classifier(images))          # [N, S]: log p_s / (1 - p_s), stable
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from interp_gan.analyses.base import AnalysisData
from interp_gan.findings.stats import MIN_SAMPLES_FOR_CI, require_samples
from interp_gan.harvest.hooks import Trace, run_until_stop

__all__ = ["fixed_z", "seeded", "manual_seed", "check_styles", "one_style_reason", "unit_means", "channel_means",
           "log_odds", "thumbnails"]


def fixed_z(subject, data: AnalysisData, seed: int) -> Tensor | None:
    """data.z, or seeded z for a subject with a latent (so repeated passes see the same noise)."""
    if data.z is not None:
        return data.z
    return subject.sample_z(len(data), seed=seed) if subject.latent_dim else None


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the body under a fixed torch seed without disturbing the caller's RNG state."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        manual_seed(seed)
        yield


def manual_seed(seed: int) -> None:
    """``torch.manual_seed`` for the CPU and, when there is one, the GPU. torch.manual_seed also
    queues a CUDA seeding, with a captured stack, on every call while CUDA is not initialised: a
    quarter of a small ablation's time on a CPU machine, and a list that grows with every call."""
    torch.random.default_generator.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def one_style_reason(subject, name: str, what: str = "compares images generated toward different styles") -> str:
    """The skip reason of an analysis that needs two styles, on a one-style subject."""
    return (f"the subject has one style ({', '.join(subject.style_names)}); {name} {what} and needs a "
            f"multi-style generator")


def check_styles(subject, style_ids: Tensor, name: str, need: int = MIN_SAMPLES_FOR_CI
                 ) -> tuple[list[int] | None, str | None]:
    """(styles present in the data, None) or (None, reason to skip). Raises when a style has too few images."""
    if subject.num_styles < 2:
        return None, one_style_reason(subject, name)
    counts = torch.bincount(style_ids.detach().cpu().long(), minlength=subject.num_styles)
    present = [s for s in range(subject.num_styles) if counts[s] > 0]
    if len(present) < 2:
        raise ValueError(f"data.style_ids target only style {[subject.style_names[s] for s in present]}; {name} "
                         f"needs images generated toward at least 2 styles (e.g. style_ids = arange(N) % num_styles)")
    for s in present:
        require_samples(int(counts[s]), f"images generated toward style {subject.style_names[s]!r} "
                                        f"(per style, for {name})", need)
    return present, None


def unit_means(x: Tensor, layer: str) -> Tensor:
    """Layer output -> [N, U] per-image unit activation (mean over space)."""
    if x.dim() == 4:
        return x.float().mean(dim=(2, 3))
    if x.dim() == 2:
        return x.float()
    raise ValueError(f"layer {layer!r} outputs shape {tuple(x.shape)}; expected [N,C,H,W] or [N,C]; "
                     f"name a conv layer instead")


def channel_means(subject, layer: str, content: Tensor, style_ids: Tensor, z: Tensor | None,
                  batch_size: int = 16) -> np.ndarray:
    """Per-image channel means of ``layer``'s output while generating -> [N, C].

    The forward stops right after ``layer`` (the rest of the generator is not needed)."""
    out = []
    for i in range(0, len(content), batch_size):
        s = slice(i, i + batch_size)
        with Trace(subject.generator, layer, stop=True) as t:
            run_until_stop(subject.generate, content[s], style_ids[s], None if z is None else z[s])
        a = t.output
        out.append((a.mean(dim=(2, 3)) if a.dim() == 4 else a.flatten(1)).double().cpu().numpy())
    return np.concatenate(out)


def log_odds(logits: Tensor) -> Tensor:
    """[n, S] logits -> [n, S] log-odds log p_s - log(1 - p_s) of each class, computed stably as
    logit_s - logsumexp_{k != s} logit_k (no 1 - p rounding to 0 for a confident classifier)."""
    S = logits.shape[1]
    if S < 2:
        return torch.zeros_like(logits)
    others = logits[:, None, :].expand(-1, S, -1).masked_fill(torch.eye(S, dtype=torch.bool, device=logits.device),
                                                              float("-inf"))
    return logits - torch.logsumexp(others, dim=2)


def thumbnails(images: Tensor, size: int = 64) -> np.ndarray:
    """[N,3,H,W] in [-1,1] -> uint8 [N,h,w,3] with h, w <= size (area downsampling)."""
    images = images.detach().float()
    h, w = images.shape[-2:]
    if max(h, w) > size:
        images = F.interpolate(images.float(), size=(h * size // max(h, w), w * size // max(h, w)), mode="area")
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def style_gate_cost(subject, data: AnalysisData, name: str, min_per_style: int):
    """For ``estimate_cost`` of an analysis that needs images of each style: ``Cost(skip=...)`` when
    ``check_styles`` says it will skip, ``Cost(notes=["will fail: ..."])`` when it will fail, else None."""
    from interp_gan.analyses.cost import Cost
    try:
        _, reason = check_styles(subject, data.style_ids, name, min_per_style)
    except ValueError as e:
        return Cost(notes=[f"will fail: {e}"])
    return Cost(skip=reason) if reason else None
