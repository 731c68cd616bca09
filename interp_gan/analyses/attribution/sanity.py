"""Sanity checks for attribution maps (Adebayo et al., "Sanity Checks for Saliency Maps",
NeurIPS 2018).

    explain = lambda fwd: IntegratedGradients(fwd).attribute(x, target=y)
    steps = cascading_randomization(explain, classifier, classifier)     # [(layer, maps), ...]
    rows = compare_maps(steps[0][1], steps)                              # spearman, ssim per step

    shuffled = label_randomized_copy(classifier, images, labels, steps=30)
    maps_r = explain(shuffled)

An attribution method that explains the *model* must change when the model's weights are
replaced by random ones (model-parameter randomisation) or when the model is retrained on
shuffled labels (data randomisation). A method whose maps stay the same (e.g. an edge
detector of the input) fails. ``explain(forward)`` takes the forward function to explain and
returns the maps, so any method, Captum's or not, can be checked.

Randomisation never touches the original model: the re-initialised weights live on a deep
copy and are swapped in only for the call (``torch.func.functional_call``), so targets whose
forward reaches the model through a closure (a Subject's generator) are randomised too.
"""
from __future__ import annotations

import copy
import warnings
from typing import Callable

import numpy as np
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import Tensor, nn

__all__ = ["cascading_randomization", "label_randomized_copy", "compare_maps", "rank_correlation",
           "map_ssim", "parameter_layers", "with_parameters"]


class _Holder(nn.Module):
    def __init__(self, module: nn.Module, fn: Callable) -> None:
        super().__init__()
        self.module = module
        # not registered as a submodule: fn may contain ``module`` (or be it), and a module
        # reachable under two paths is restored wrongly after functional_call's swap
        self.__dict__["fn"] = fn

    def forward(self, *args):
        return self.fn(*args)


def with_parameters(fn: Callable, module: nn.Module, state: dict[str, Tensor]) -> Callable:
    """``fn`` evaluated with ``module``'s parameters and buffers replaced by ``state``."""
    holder = _Holder(module, fn)
    full = {f"module.{k}": v for k, v in state.items()}

    def call(*args):
        return torch.func.functional_call(holder, full, args)
    return call


def parameter_layers(module: nn.Module, probe: Callable[[], object] | None = None) -> list[str]:
    """Names of the modules that own parameters, in forward order (first call of each module
    during ``probe()``), or registration order when there is no probe or nothing fired."""
    owners = [n for n, m in module.named_modules() if any(True for _ in m.parameters(recurse=False))]
    if probe is None:
        return owners
    fired: list[str] = []
    mods = dict(module.named_modules())
    handles = [mods[n].register_forward_hook(lambda m, i, o, n=n: fired.append(n) if n not in fired else None)
               for n in owners]
    try:
        with torch.no_grad():
            probe()
    finally:
        for h in handles:
            h.remove()
    return fired or owners


def _reinit(m: nn.Module, gen: torch.Generator) -> None:
    if hasattr(m, "reset_parameters"):
        m.reset_parameters()        # the layer's own initialisation scheme (as in Adebayo et al.)
        return
    for p in m.parameters(recurse=False):   # a custom module: same-scale Gaussian noise
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=gen).to(p) * (p.std() if p.numel() > 1 else 1.0))


def cascading_randomization(explain: Callable[[Callable], Tensor], forward: Callable, module: nn.Module,
                            *, max_steps: int | None = None, seed: int = 0,
                            probe: Callable[[], object] | None = None) -> list[tuple[str, Tensor]]:
    """Re-initialise ``module``'s layers from the top (output side) down, cumulatively, and
    recompute ``explain``. Returns [("original", maps), (layer, maps), ..., ("all", maps)].

    forward: the forward function that uses ``module`` (what ``explain`` explains). probe: a
    call that runs the forward once, to order layers as they execute. max_steps groups the
    layers into at most that many cascade steps (each step named by its lowest layer).
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    order = parameter_layers(module, probe)[::-1]          # top (output) first
    if max_steps and len(order) > max_steps:
        groups = [list(g) for g in np.array_split(np.array(order, dtype=object), max_steps)]
    else:
        groups = [[n] for n in order]
    out = [("original", explain(forward).detach())]
    rand = copy.deepcopy(module)
    mods = dict(rand.named_modules())
    for i, group in enumerate(groups):
        for name in group:
            _reinit(mods[name], gen)
        state = {**dict(rand.named_parameters()), **dict(rand.named_buffers())}
        label = "all" if i == len(groups) - 1 else str(group[-1])
        out.append((label, explain(with_parameters(forward, module, state)).detach()))
    return out


def label_randomized_copy(model: nn.Module, images: Tensor, labels: Tensor, *, steps: int = 30,
                          lr: float = 1e-3, batch_size: int = 16, seed: int = 0) -> nn.Module:
    """A re-initialised copy of ``model`` trained ``steps`` Adam steps on randomly permuted
    labels (Adebayo et al.'s data-randomisation test, shortened: the copy learns a labelling
    unrelated to the images, so explanations of it should not match the original's)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    m = copy.deepcopy(model).requires_grad_(True)    # the original may be frozen
    for mod in m.modules():
        if hasattr(mod, "reset_parameters"):
            mod.reset_parameters()
    shuffled = labels[torch.randperm(len(labels), generator=g).to(labels.device)]
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    m.train()
    for _ in range(steps):
        idx = torch.randint(len(images), (min(batch_size, len(images)),), generator=g).to(images.device)
        loss = nn.functional.cross_entropy(m(images[idx]), shuffled[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return m.eval().requires_grad_(False)


def _per_example(maps: Tensor) -> np.ndarray:
    """|attr| summed over channels: [N, C, H, W] -> [N, H, W]; [N, D] stays [N, D]."""
    a = maps.detach().float().abs()
    if a.dim() == 4:
        a = a.sum(1)
    return a.cpu().numpy()


def rank_correlation(a: Tensor, b: Tensor) -> float:
    """Mean over examples of Spearman's rho between |a| and |b| (0 where a map is constant)."""
    x, y = _per_example(a), _per_example(b)
    vals = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for xi, yi in zip(x, y):
            r = spearmanr(xi.ravel(), yi.ravel()).statistic
            vals.append(0.0 if not np.isfinite(r) else float(r))
    return float(np.mean(vals))


def map_ssim(a: Tensor, b: Tensor) -> float:
    """Mean SSIM between |a| and |b| maps, each scaled to [0, 1]; NaN for non-image maps."""
    x, y = _per_example(a), _per_example(b)
    if x.ndim != 3 or min(x.shape[-2:]) < 7:
        return float("nan")
    vals = []
    for xi, yi in zip(x, y):
        xi, yi = xi / max(xi.max(), 1e-12), yi / max(yi.max(), 1e-12)
        vals.append(structural_similarity(xi, yi, data_range=1.0))
    return float(np.mean(vals))


def compare_maps(original: Tensor, steps: list[tuple[str, Tensor]], threshold: float = 0.5) -> list[dict]:
    """One row per randomised step: randomized, step, spearman, ssim, passed (spearman < threshold)."""
    rows = []
    for i, (label, maps) in enumerate(steps):
        if label == "original":
            continue
        rho = rank_correlation(original, maps)
        rows.append({"randomized": label, "step": i, "spearman": rho, "ssim": map_ssim(original, maps),
                     "passed": bool(rho < threshold)})
    return rows
