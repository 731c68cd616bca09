"""Sanity checks for attribution maps (Adebayo et al., "Sanity Checks for Saliency Maps",
NeurIPS 2018).

    explain = lambda fwd: IntegratedGradients(fwd).attribute(x, target=y)
    steps = cascading_randomization(explain, classifier, classifier)     # [(layer, maps), ...]
    rows = compare_maps(steps[0][1], steps)                              # spearman, ssim per step

    shuffled, info = data_randomized_copy(classifier, images, labels, target_accuracy=0.95)
    maps_r = explain(shuffled)         # info: acc_real, acc_shuffled, steps, reached

    rows = compare_maps(steps[0][1], steps, inputs=x, baselines=b)      # + per-image counts, CI,
                                                                       #   verdict, input_corr

An attribution method that explains the *model* must change when the model's weights are
replaced by random ones (model-parameter randomisation) or when the model is retrained on
shuffled labels (data randomisation). A method whose maps stay the same (e.g. an edge
detector of the input) fails. ``explain(forward)`` takes the forward function to explain and
returns the maps, so any method, Captum's or not, can be checked.

Randomisation never touches the original model: the re-initialised weights live on a deep
copy and are swapped in only for the call (``torch.func.functional_call``), so targets whose
forward reaches the model through a closure (a Subject's generator) are randomised too.

Verdicts rest on every image, not their mean alone: ``compare_maps`` keeps one Spearman rho
per image, counts the images below the threshold, and gives a t-interval for the mean rho over
images. "passed" needs the whole interval below the threshold, "failed" the whole interval at
or above it; otherwise "inconclusive". The interval treats the images as a sample from the
data (it says nothing about another randomisation seed or another set of layers).

Why a method fails is measured too: ``input_corr`` is the Spearman correlation of |attribution|
with |x - baseline| per image. Integrated Gradients multiplies the path-averaged gradient by
(x - baseline) (Sundararajan et al., ICML 2017), so where the gradient carries little structure
the map is |x - baseline| whatever the weights: a high input_corr before *and* after
randomisation is that input factor (the failure Adebayo et al. report for gradient x input),
and plain gradients (saliency) lack it.
"""
from __future__ import annotations

import copy
import warnings
from typing import Callable

import numpy as np
import torch
from scipy.stats import spearmanr
from scipy.stats import t as student_t
from skimage.metrics import structural_similarity
from torch import Tensor, nn

from interp_gan.harvest.hooks import modules_that_fire

__all__ = ["cascading_randomization", "data_randomized_copy", "compare_maps", "rank_correlation",
           "rank_correlations", "input_correlations", "mean_t_interval", "verdict", "map_ssim",
           "parameter_layers", "with_parameters"]


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
    fired = modules_that_fire(module, owners, probe)
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


@torch.no_grad()
def _accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 128) -> float:
    pred = torch.cat([model(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])
    return float((pred == labels).float().mean())


def data_randomized_copy(model: nn.Module, images: Tensor, labels: Tensor, *, target_accuracy: float | None = None,
                         max_steps: int = 600, lr: float = 2e-3, batch_size: int = 32, check_every: int = 25,
                         seed: int = 0) -> tuple[nn.Module, dict]:
    """Adebayo et al.'s data-randomisation test model: a re-initialised copy of ``model`` trained
    on ``images`` with randomly permuted ``labels`` until its accuracy on those images against
    the permuted labels (its training accuracy, in eval mode) reaches ``target_accuracy``
    (default: the original model's accuracy on the same images with the true labels), or
    ``max_steps`` Adam steps. A model that has memorised a labelling unrelated to the images
    must be explained differently from one that learned the styles.

    Returns (model, info) with info = {acc_real, acc_shuffled, target_accuracy, steps, reached,
    n_images}; when ``reached`` is False the copy never fit its labels as well as the original
    fits the real ones, and a comparison with it is not the test of Adebayo et al.
    """
    g = torch.Generator().manual_seed(seed)
    was = model.training
    model.eval()
    acc_real = _accuracy(model, images, labels)
    model.train(was)
    target = acc_real if target_accuracy is None else float(target_accuracy)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = copy.deepcopy(model).requires_grad_(True)    # the original may be frozen
        for mod in m.modules():
            if hasattr(mod, "reset_parameters"):
                mod.reset_parameters()
        shuffled = labels[torch.randperm(len(labels), generator=g).to(labels.device)]
        opt = torch.optim.Adam(m.parameters(), lr=lr)
        acc, step = 0.0, 0
        while step < max_steps:
            m.train()
            idx = torch.randint(len(images), (min(batch_size, len(images)),), generator=g).to(images.device)
            loss = nn.functional.cross_entropy(m(images[idx]), shuffled[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % check_every == 0 or step == max_steps:
                m.eval()
                acc = _accuracy(m, images, shuffled)
                if acc >= target:
                    break
    info = {"acc_real": acc_real, "acc_shuffled": acc, "target_accuracy": target, "steps": step,
            "reached": bool(acc >= target), "n_images": len(images)}
    return m.eval().requires_grad_(False), info


def _per_example(maps: Tensor) -> np.ndarray:
    """|attr| summed over channels: [N, C, H, W] -> [N, H, W]; [N, D] stays [N, D]."""
    a = maps.detach().float().abs()
    if a.dim() == 4:
        a = a.sum(1)
    return a.cpu().numpy()


def rank_correlations(a: Tensor, b: Tensor) -> np.ndarray:
    """[N]: Spearman's rho between |a| and |b| for each example (0 where a map is constant)."""
    x, y = _per_example(a), _per_example(b)
    vals = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for xi, yi in zip(x, y):
            r = spearmanr(xi.ravel(), yi.ravel()).statistic
            vals.append(0.0 if not np.isfinite(r) else float(r))
    return np.asarray(vals, dtype=np.float64)


def rank_correlation(a: Tensor, b: Tensor) -> float:
    """Mean over examples of Spearman's rho between |a| and |b| (0 where a map is constant)."""
    return float(np.mean(rank_correlations(a, b)))


def input_correlations(maps: Tensor, inputs: Tensor, baselines: Tensor) -> np.ndarray:
    """[N]: Spearman's rho between |attribution| and |x - baseline| (both summed over channels)
    per example: how much of a map is the input factor of gradient x (x - baseline) methods."""
    return rank_correlations(maps, inputs.detach() - baselines.detach())


def mean_t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval for the mean of ``values`` (NaN, NaN below 2 values; a zero-width
    interval when all values are equal)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return float("nan"), float("nan")
    half = student_t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


def verdict(ci_low: float, ci_high: float, threshold: float) -> str:
    """"passed" when the interval for the mean rho lies below the threshold, "failed" when it
    lies at or above it, "inconclusive" when it straddles it or there is no interval."""
    if not (np.isfinite(ci_low) and np.isfinite(ci_high)):
        return "inconclusive"
    if ci_high < threshold:
        return "passed"
    if ci_low >= threshold:
        return "failed"
    return "inconclusive"


def compare_maps(original: Tensor, steps: list[tuple[str, Tensor]], threshold: float = 0.5, *,
                 inputs: Tensor | None = None, baselines: Tensor | None = None,
                 level: float = 0.95) -> list[dict]:
    """One row per randomised step: randomized, step, spearman (mean over images), ssim,
    n_images, n_passed (images with rho < threshold), ci_low / ci_high (t-interval for the mean
    rho), verdict (see ``verdict``), passed (verdict == "passed"); with ``inputs`` and
    ``baselines``: input_corr (mean rho of this step's |map| with |x - baseline|) and
    input_corr_before (the same for the original map)."""
    before = np.nan
    if inputs is not None and baselines is not None:
        before = float(np.mean(input_correlations(original, inputs, baselines)))
    rows = []
    for i, (label, maps) in enumerate(steps):
        if label == "original":
            continue
        rhos = rank_correlations(original, maps)
        lo, hi = mean_t_interval(rhos, level)
        word = verdict(lo, hi, threshold)
        row = {"randomized": label, "step": i, "spearman": float(rhos.mean()), "ssim": map_ssim(original, maps),
               "passed": word == "passed", "n_images": len(rhos), "n_passed": int((rhos < threshold).sum()),
               "ci_low": lo, "ci_high": hi, "verdict": word, "input_corr_before": before, "input_corr": np.nan}
        if inputs is not None and baselines is not None:
            row["input_corr"] = float(np.mean(input_correlations(maps, inputs, baselines)))
        rows.append(row)
    return rows


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
