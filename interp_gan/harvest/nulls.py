"""Permutation and spatial nulls for "does map A fall on mask M more than chance?" tests.

    perms = stratified_permutations(torch.rand(B, S), strata)     # [B,S], within each stratum
    obs, null = permutation_sums(a, m, perms)                     # a [S,C,R], m [S,K,R] -> [K,C], [B,K,C]
    obs, null, scale = shift_sums(a, m, shifts, r)                # shifts [B,S] in 0..r*r-1
    p = perm_pvalue(null, obs, atol=1e-5 * scale)                  # (1 + #{null >= obs}) / (1 + B)

Both statistics are the summed overlap Σ_j <A_j, M'_j> over S images (A_j: a unit's map, M_j:
a concept's mask, both at r x r = R cells). The nulls differ in what M'_j is:

- ``permutation_sums``: M'_j = M_π(j), another image's mask (a permutation test of image-level
  pairing; Good 2005, *Permutation, Parametric and Bootstrap Tests of Hypotheses*). With
  ``stratified_permutations`` π only maps an image to one of the same stratum (e.g. the same
  target style), so a unit and a concept that both depend on the stratum are not "paired" by that
  alone (a restricted permutation, valid when images are exchangeable within strata).
- ``shift_sums``: M'_j = M_j circularly shifted by a random offset within its own image (the
  toroidal shift test for the association of two spatial patterns; Lotwick & Silverman, JRSS B
  1982). It keeps each image's content and each mask's shape and area, and breaks only the
  relative position: a unit that fires on images that contain the concept but not *on* it is
  no better than a shifted mask. Valid when the mask's position is, under the null, as likely at
  any shift (the circular wrap makes the torus' shifts a group). Computed for all R shifts of
  every image at once as an FFT cross-correlation; a replicate then sums one row per image.

``perm_pvalue`` is Phipson & Smyth's (2010) (1 + #{null >= obs}) / (1 + B), never 0; a
comparison tolerance absorbs float rounding (an FFT's error is relative to ‖A‖‖M‖, hence
``shift_sums``' ``scale``). A label that needs both nulls uses p = max(p_image, p_spatial): an
intersection-union test (Berger 1982), valid for the union of the two null hypotheses.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["stratified_permutations", "selection_halves", "permutation_sums", "shift_sums", "mask_spectrum",
           "perm_pvalue", "shift_units"]

_SHIFT_CHUNK = 2 ** 24      # elements of a shift_sums call's correlation (x3: its complex and permuted copies)
_SHIFT_CPU_CHUNK = 2 ** 22  # on the CPU a smaller call stays in cache: 128 units at once cost 2.5x per element
                            # what 8-16 do (S 32, K 19, 16 x 16 cells, one thread, 2026-12-03)


def stratified_permutations(rand: Tensor, strata: Tensor) -> Tensor:
    """[B,S] permutations of S items, each mapping an item to one of the same stratum: rand [B,S]
    uniform numbers, strata [S] integer labels. With one stratum it is ``argsort(rand)``."""
    S = rand.shape[1]
    st = strata.to(rand.device).double()
    order_b = torch.argsort(st[None] * 2 + rand.double(), dim=1)                        # [B,S]
    order_0 = torch.argsort(st * 2 + torch.arange(S, device=rand.device).double() / S)  # identity within strata
    perms = torch.empty_like(order_b)
    perms[:, order_0] = order_b
    return perms


def selection_halves(strata: Tensor, gen: torch.Generator) -> Tensor:
    """[S] bool, True for the selection half: items ordered by (stratum, random) and alternated,
    so each stratum splits evenly (within one item)."""
    S = len(strata)
    r = torch.rand(S, generator=gen, device=gen.device).to(strata.device)
    order = torch.argsort(strata.double() * 2 + r.double())
    half = torch.zeros(S, dtype=torch.bool, device=strata.device)
    half[order[0::2]] = True
    return half


def permutation_sums(a: Tensor, m: Tensor, perms: Tensor) -> tuple[Tensor, Tensor]:
    """a [S,C,R], m [S,K,R], perms [B,S] -> observed Σ_j <a_j, m_j> [K,C] and, per permutation,
    Σ_j <a_j, m_π(j)> [B,K,C]. The cross overlaps X[j,l] = <a_j, m_l> of every pair are one matrix
    product; each permutation sums S gathered rows of it (one ``embedding_bag`` for all)."""
    S, C, R = a.shape
    K = m.shape[1]
    X = torch.matmul(m.reshape(S * K, R), a.transpose(1, 2)).view(S * S, K * C)   # rows (j,l), columns (k,c)
    ar = torch.arange(S, device=a.device)
    obs = X.index_select(0, ar * S + ar).sum(0).view(K, C)
    null = F.embedding_bag(ar[None, :] * S + perms, X, mode="sum").view(len(perms), K, C)
    return obs, null


def mask_spectrum(m: Tensor) -> Tensor:
    """m [S,K,r,r] -> its 2-D real FFT [S,K,r,r//2+1] (computed once, used for every unit chunk)."""
    return torch.fft.rfft2(m)


def shift_sums(a: Tensor, m: Tensor, shifts: Tensor, r: int, m_fft: Tensor | None = None
               ) -> tuple[Tensor, Tensor, Tensor]:
    """a [S,C,r*r], m [S,K,r,r], shifts [B,S] in 0..r*r-1 -> observed Σ_j <a_j, m_j> [K,C], per
    replicate Σ_j <a_j, roll(m_j, shift_bj)> [B,K,C] (shift s = (s // r, s % r) rows, columns), and
    the rounding scale Σ_j ‖a_j‖‖m_j‖ [K,C] (the bound of any shift's overlap)."""
    S, C, R = a.shape
    K = m.shape[1]
    FM = mask_spectrum(m) if m_fft is None else m_fft
    FA = torch.fft.rfft2(a.reshape(S, C, r, r))
    corr = torch.fft.irfft2(FA[:, None] * FM.conj()[:, :, None], s=(r, r))    # [S,K,C,r,r]: Σ_p a[p+s] m[p]
    X = corr.permute(0, 3, 4, 1, 2).reshape(S * R, K * C)                     # rows (j, s), columns (k, c)
    ar = torch.arange(S, device=a.device)
    obs = X.view(S, R, K * C)[:, 0].sum(0).view(K, C)
    null = F.embedding_bag(ar[None, :] * R + shifts, X, mode="sum").view(len(shifts), K, C)
    scale = torch.einsum("jk,jc->kc", m.flatten(2).norm(dim=2), a.norm(dim=2))
    return obs, null, scale


def shift_units(S: int, R: int, K: int, device) -> int:
    """Units per ``shift_sums`` call for S images, R cells and K masks on ``device`` (dissection
    chunks its units so, and the cost model times the call at that size)."""
    chunk = _SHIFT_CPU_CHUNK if torch.device(device).type == "cpu" else _SHIFT_CHUNK
    return max(1, chunk // (max(1, S) * max(1, R) * max(1, K) * 3))


def perm_pvalue(null: Tensor, obs: Tensor, rtol: float = 0.0, atol: Tensor | float = 0.0) -> Tensor:
    """(1 + #{null >= obs - rtol·|obs| - atol}) / (1 + B) over the first axis of null [B, ...]."""
    B = null.shape[0]
    thr = obs - rtol * obs.abs() - atol
    return (1 + (null >= thr[None]).sum(0)).double() / (1 + B)
