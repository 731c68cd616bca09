"""Voynov & Babenko: learn K latent directions that a reconstructor can tell apart.

    render = lambda codes: G(content_batch, codes)          # [B, D] -> [B, 3, H, W], differentiable
    dirs = voynov_babenko_directions(render, dim=D, k=8, base=code_samples, steps=300)   # [k, D] unit rows

    fit = fit_voynov_babenko(render, dim=D, k=8, base=code_samples)   # the same, with diagnostics
    fit.directions, fit.accuracy, fit.shift_error, fit.reconstructor
    fit = fit_voynov_babenko(render, dim=D, k=8, restarts=3)   # keep the run with the lowest loss

Method (Voynov & Babenko, "Unsupervised Discovery of Interpretable Directions in the GAN
Latent Space", ICML 2020, arXiv:2002.03754): a direction matrix A (K unit-norm directions in
the latent space) and a reconstructor R are trained jointly, the generator G frozen. Each step
draws base codes c, a direction index k and a signed shift ε, renders the pair
(G(c), G(c + ε·A_k)), and asks R to predict k (cross-entropy) and ε (L1, weight
``shift_weight``; the paper's 0.25). Only directions whose edits R can distinguish survive,
so A is pushed toward directions that change the image in mutually different ways, and away
from directions G ignores. As in the paper, ε's magnitude is drawn uniformly from
``eps_range`` (the paper uses [0.5, 6] for z ~ N(0, I)) with a random sign.

Our choices: the directions are orthonormal rows (QR of a free matrix; the paper's
orthonormal variant, ``orthogonal=False`` gives its unit-length-columns variant), R is tiny
(three strided convs on the channel-concatenated pair, downsampled to ``image_size`` px, then
a class head and a shift head), A learns fast and R slowly (``lr`` 0.1 vs ``r_lr`` 1e-3, Adam),
and only A and R receive gradients (``torch.autograd.grad``; G's ``.grad`` fields stay untouched).

Known failure modes (measured on the planted 2-D generator of the tests, k=2, 300 steps, ten
seeds 0, 100, ..., 900: 7 of 10 single runs put both directions >= 0.9 inside the planted
subspace): (a) two directions share one effect and R cannot tell them apart -- ``accuracy``
stays near chance (1/k), so check it; (b) one direction drifts into the space G ignores and R
learns "no change" as its class -- high accuracy but a larger ``shift_error`` (more likely
with a faster R, e.g. ``r_lr`` = ``lr``). Both end with a higher training loss (failures
0.15-0.76, successes 0.08-0.23 on the same runs), so ``restarts`` keeps the lowest-loss run of
several seeds: with ``restarts=3`` 9 of the 10 seeds succeed. The optimum is not unique
either: any rotation of the effective subspace is as distinguishable.

Cost: each step renders 2 x ``batch_size`` images (the base batch without gradients) and
back-propagates through G once, so about steps x batch_size x 4 generator forward-equivalents
(300 x 8 x 4 = 9,600 for the defaults), times ``restarts``, plus the reconstructor, which is negligible at 32 px.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Reconstructor", "VoynovBabenkoFit", "fit_voynov_babenko", "voynov_babenko_directions"]


class Reconstructor(nn.Module):
    """R(x0, x1) -> (logits [B, k] over direction indices, shift [B]); images [B, 3, H, W].

    The pair is concatenated on channels (6 in), resized to ``image_size`` (area), then three
    stride-2 convs and a 2x2 average pool feed two linear heads."""

    def __init__(self, k: int, image_size: int = 32, width: int = 16) -> None:
        super().__init__()
        self.image_size = image_size
        self.body = nn.Sequential(
            nn.Conv2d(6, width, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 2 * width, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.index_head = nn.Linear(8 * width, k)
        self.shift_head = nn.Linear(8 * width, 1)

    def forward(self, x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat([x0, x1], 1)                                  # [B, 6, H, W]
        if max(x.shape[-2:]) > self.image_size:
            h, w = x.shape[-2:]
            s = self.image_size / max(h, w)
            x = F.interpolate(x, size=(max(1, round(h * s)), max(1, round(w * s))), mode="area")
        f = self.body(x)
        return self.index_head(f), self.shift_head(f).squeeze(1)


@dataclass
class VoynovBabenkoFit:
    directions: np.ndarray          # [k, D] float64 unit rows
    accuracy: float                 # R's index accuracy over the last quarter of the steps (chance = 1/k)
    shift_error: float              # mean |ε̂ - ε| over the last quarter of the steps
    reconstructor: Reconstructor
    loss: float = float("nan")      # the training loss (CE + shift_weight * L1) over the last quarter
    restart_losses: list[float] = field(default_factory=list)   # every restart's loss, in seed order
    chosen: int = 0                 # which restart was kept (the lowest loss)


def _directions(A: Tensor, orthogonal: bool) -> Tensor:
    """Raw parameters [k, D] -> unit rows; orthonormal rows via QR when ``orthogonal``."""
    if not orthogonal:
        return A / A.norm(dim=1, keepdim=True).clamp_min(1e-8)
    q, r = torch.linalg.qr(A.T)                                    # q [D, k], orthonormal columns
    s = torch.sign(torch.diagonal(r))
    s = torch.where(s == 0, torch.ones_like(s), s)                  # QR's sign fixed: row i stays near A[i]
    return (q * s).T


def _check(render, dim: int, k: int, steps: int, batch_size: int, eps_range, base, orthogonal: bool) -> None:
    if not callable(render):
        raise ValueError(f"render must be a callable codes [B, D] -> images [B, 3, H, W], got {type(render)}")
    if dim < 1 or k < 1:
        raise ValueError(f"dim and k must be >= 1, got dim={dim}, k={k}")
    if orthogonal and k > dim:
        raise ValueError(f"{k} orthonormal directions do not fit in {dim} dimensions; ask for k <= {dim} "
                         "or pass orthogonal=False")
    if steps < 0 or batch_size < 1:
        raise ValueError(f"steps must be >= 0 and batch_size >= 1, got steps={steps}, batch_size={batch_size}")
    lo, hi = eps_range
    if not 0 <= lo <= hi or hi == 0:
        raise ValueError(f"eps_range must be (low, high) with 0 <= low <= high and high > 0, got {eps_range}")
    if base is not None and (np.ndim(base) != 2 or np.shape(base)[1] != dim or len(base) == 0):
        raise ValueError(f"base must be codes [N, {dim}] with N >= 1, got shape {np.shape(base)}")


def fit_voynov_babenko(render: Callable[[Tensor], Tensor], dim: int, k: int, *, base: np.ndarray | Tensor | None = None,
                       steps: int = 300, batch_size: int = 8, eps_range: tuple[float, float] = (0.5, 3.0),
                       lr: float = 0.1, r_lr: float = 1e-3, shift_weight: float = 0.25, image_size: int = 32,
                       orthogonal: bool = True, seed: int = 0, restarts: int = 1,
                       device: str | torch.device = "cpu") -> VoynovBabenkoFit:
    """Train A [k, dim] and a reconstructor against ``render``; see the module docstring.

    render: codes [batch_size, dim] -> images [batch_size, 3, H, W], differentiable in codes
        (the caller keeps the content images of a batch fixed, so only the code differs).
    base: codes the base points c are drawn from (rows, with replacement); None = N(0, I).
    eps_range: (low, high) range of |ε|, in the units of the codes.
    restarts: independent runs (seeds ``seed``, ``seed + 1``, ...); the one with the lowest
        training loss over its last quarter is returned (selection by the method's own
        objective, never by what the directions turn out to mean).
    """
    _check(render, dim, k, steps, batch_size, eps_range, base, orthogonal)
    if restarts < 1:
        raise ValueError(f"restarts must be >= 1, got {restarts}")
    runs = [_fit_once(render, dim, k, base=base, steps=steps, batch_size=batch_size, eps_range=eps_range,
                      lr=lr, r_lr=r_lr, shift_weight=shift_weight, image_size=image_size,
                      orthogonal=orthogonal, seed=seed + i, device=torch.device(device))
            for i in range(restarts)]
    best = min(range(restarts), key=lambda i: (np.nan_to_num(runs[i].loss, nan=np.inf), i))
    fit = runs[best]
    fit.restart_losses = [r.loss for r in runs]
    fit.chosen = best
    return fit


def _fit_once(render, dim: int, k: int, *, base, steps: int, batch_size: int, eps_range, lr: float,
              r_lr: float, shift_weight: float, image_size: int, orthogonal: bool, seed: int,
              device: torch.device) -> VoynovBabenkoFit:
    """One training run of A and R from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    pool = None if base is None else torch.as_tensor(np.asarray(base), dtype=torch.float32)
    A = torch.randn(k, dim, generator=g).to(device).requires_grad_(True)
    with torch.random.fork_rng(devices=[]):                         # seeded R init, global RNG untouched
        torch.manual_seed(seed)
        R = Reconstructor(k, image_size).to(device)
    params = [A, *R.parameters()]
    opt = torch.optim.Adam([{"params": [A], "lr": lr}, {"params": list(R.parameters()), "lr": r_lr}])
    lo, hi = map(float, eps_range)
    hits, errs, losses = [], [], []
    with torch.enable_grad():
        for _ in range(steps):
            c = (torch.randn(batch_size, dim, generator=g) if pool is None
                 else pool[torch.randint(len(pool), (batch_size,), generator=g)]).to(device)
            idx = torch.randint(k, (batch_size,), generator=g).to(device)
            sign = torch.randint(2, (batch_size,), generator=g).float() * 2 - 1
            eps = (sign * (lo + (hi - lo) * torch.rand(batch_size, generator=g))).to(device)
            dirs = _directions(A, orthogonal)                        # unit rows [k, dim]
            with torch.no_grad():
                x0 = render(c)
            x1 = render(c + eps[:, None] * dirs[idx])
            if x1.shape[0] != batch_size or x1.dim() != 4:
                raise ValueError(f"render must return images [{batch_size}, C, H, W], got {tuple(x1.shape)}")
            logits, shift = R(x0.detach(), x1)
            loss = F.cross_entropy(logits, idx) + shift_weight * (shift - eps).abs().mean()
            grads = torch.autograd.grad(loss, params)               # only A and R: G stays frozen
            for p, gr in zip(params, grads):
                p.grad = gr
            opt.step()
            hits.append((logits.argmax(1) == idx).float().mean().item())
            errs.append((shift - eps).abs().mean().item())
            losses.append(loss.item())
    tail = max(1, len(hits) // 4)

    def last(v: list[float]) -> float:
        return float(np.mean(v[-tail:])) if v else float("nan")
    with torch.no_grad():
        d = _directions(A, orthogonal).double().cpu().numpy()
    return VoynovBabenkoFit(d, last(hits), last(errs), R.eval(), loss=last(losses))


def voynov_babenko_directions(render: Callable[[Tensor], Tensor], dim: int, k: int, *,
                              base: np.ndarray | Tensor | None = None, steps: int = 300, batch_size: int = 8,
                              eps_range: tuple[float, float] = (0.5, 3.0), lr: float = 0.1, seed: int = 0,
                              device: str | torch.device = "cpu", **kw) -> np.ndarray:
    """The learned directions only: [k, dim] float64 unit rows (signs meaningful: + is +ε).

    Extra keywords (r_lr, shift_weight, image_size, orthogonal) go to ``fit_voynov_babenko``."""
    return fit_voynov_babenko(render, dim, k, base=base, steps=steps, batch_size=batch_size,
                              eps_range=eps_range, lr=lr, seed=seed, device=device, **kw).directions
