"""Simulations for the dissection's statistics (issue #9): the held-out IoU CI's coverage with
many equally good concepts (winner's curse), and uniform p-values under planted nulls for the
style-stratified image permutation and the within-image circular-shift null.

Each simulation uses the analysis' own code (``IoUCounts``, ``selection_halves``,
``stratified_permutations``, ``permutation_sums``, ``shift_sums``, ``perm_pvalue``) on simulated
per-image counts / pooled maps with a known answer, at the demo's size (64 images, 4 styles,
blocks of 32)."""
import numpy as np
import pytest
import torch
from scipy import stats as sps

from interp_gan.harvest.stats import IoUCounts
from interp_gan.harvest.nulls import (perm_pvalue, permutation_sums, selection_halves, shift_sums,
                                       stratified_permutations)

N, K, P_IN, AREA, M0 = 64, 15, 0.3, 200.0, 100.0
TRUE_IOU = P_IN * AREA / (AREA + M0)      # E[I] / (E[A] + E[M] - E[I]) = 60 / 300 = 0.2, every concept


def _counts(rng):
    """Per-image pixel counts of one unit and K equally good concepts: region area A_i (images
    differ: gamma heterogeneity), I_ik ~ Binomial(A_i, 0.3), mask M_ik = I_ik + Poisson(h_ik·100)."""
    g = rng.gamma(2.0, 0.5, N)
    A = rng.poisson(g * AREA)
    I = rng.binomial(A[:, None], P_IN, (N, K))
    M = I + rng.poisson(rng.gamma(2.0, 0.5, (N, K)) * M0)
    t = lambda x: torch.from_numpy(np.asarray(x, dtype=np.float64))  # noqa: E731
    return t(I)[:, None, :], t(A)[:, None], t(M)


def _coverage(n_sims: int, split: bool, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    strata = torch.arange(N) % 4
    hits = 0
    for s in range(n_sims):
        I, A, M = _counts(rng)
        est = IoUCounts(1, K, n_boot=200, seed=s)
        if split:   # the analysis' rule: choose on one half, estimate + CI on the other
            half = selection_halves(strata, torch.Generator().manual_seed(s))
            sel = IoUCounts(1, K)
            sel.add(I[half], A[half], M[half])
            est.add(I[~half], A[~half], M[~half])
            best = sel.iou().argmax(1)
        else:       # the old rule: choose and estimate on the same images
            est.add(I, A, M)
            best = est.iou().argmax(1)
        lo, hi = est.ci(concepts=best)
        hits += bool(lo[0] <= TRUE_IOU <= hi[0])
    return hits / n_sims


def test_held_out_iou_ci_covers_with_15_equally_good_concepts():
    """Split-half (the default): coverage within 3 points of 95% (measured 0.932 over 800
    simulations). The same-data choice, the old rule, under-covers (measured 0.805 here, 0.64 in
    the issue's setting): this is the
    case the test is built to catch."""
    split = _coverage(800, split=True)
    same = _coverage(200, split=False, seed=1)
    print(f"coverage of the 95% CI of the chosen concept's IoU: split-half {split:.3f}, same-data {same:.3f}")
    assert abs(split - 0.95) <= 0.03
    assert same < 0.85


def test_undefined_bootstrap_replicates_are_counted_not_zero():
    """A unit that fires on one image only, with a concept present on that image only: every
    replicate that leaves the image out has an empty union (no IoU). They are NaN and counted
    (old code: IoU 0, pulling the interval's low end to 0 silently)."""
    c = IoUCounts(1, 1, n_boot=400, seed=0)
    inter = torch.zeros(20, 1, 1)
    inter[3] = 5
    area_u, area_m = torch.zeros(20, 1), torch.zeros(20, 1)
    area_u[3], area_m[3] = 10, 10
    c.add(inter, area_u, area_m)
    lo, hi, bad = c.ci(concepts=torch.zeros(1), return_nonfinite=True)
    assert 0.25 * 400 < int(bad[0]) < 0.5 * 400          # P(weight 0) = e^-1 = 0.37
    assert float(lo[0]) == pytest.approx(5 / 15) and float(hi[0]) == pytest.approx(5 / 15)


S, R_SIDE = 32, 8     # a block of 32 images, masks and maps at 8 x 8 cells
N_PERM, N_REP = 199, 400


def _stratified_null_pvalues(stratified: bool, seed: int = 0) -> np.ndarray:
    """Unit maps and concept masks both depend on the image's style (style 0: more activity and
    more of the concept), but are independent given the style: the stratified null is true, the
    unstratified one is not."""
    g = torch.Generator().manual_seed(seed)
    strata = torch.arange(S) % 2
    scale = torch.where(strata == 0, 3.0, 1.0)[:, None, None]
    ps = []
    for _ in range(N_REP):
        a = torch.rand(S, 1, R_SIDE ** 2, generator=g) ** 2 * scale
        m = (torch.rand(S, 1, R_SIDE ** 2, generator=g) < 0.1 * scale).float()
        rand = torch.rand(N_PERM, S, generator=g)
        perms = stratified_permutations(rand, strata) if stratified else torch.argsort(rand, dim=1)
        obs, null = permutation_sums(a, m, perms)
        ps.append(float(perm_pvalue(null, obs, rtol=1e-5)[0, 0]))
    return np.array(ps)


def test_style_stratified_image_null_gives_uniform_p_values():
    """KS against uniform: stratified p > 0.01 (measured 0.137); the unstratified permutation on
    the same data is far from uniform (measured KS p < 1e-300), which is what the stratification fixes."""
    p = _stratified_null_pvalues(True)
    ks = sps.kstest(p, "uniform").pvalue
    ks_old = sps.kstest(_stratified_null_pvalues(False), "uniform").pvalue
    print(f"stratified image null: KS p {ks:.3g} (P(p<0.05) {np.mean(p < 0.05):.3f}); unstratified: KS p {ks_old:.3g}")
    assert ks > 0.01 and abs(np.mean(p < 0.05) - 0.05) < 0.03
    assert ks_old < 1e-6


def _spatial_null_pvalues(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each image either contains the concept or not (presence, image-level); the unit fires more
    on images that contain it, but at places independent of where the concept is (iid cells: a
    pattern whose law is the same at every circular shift). The shift null is true; the image
    permutation null is not (co-occurrence)."""
    g = torch.Generator().manual_seed(seed)
    R = R_SIDE ** 2
    p_sp, p_img = [], []
    for _ in range(N_REP):
        present = (torch.rand(S, generator=g) < 0.5).float()[:, None, None]
        a = torch.rand(S, 1, R, generator=g) ** 3 * (0.2 + present)
        m = (torch.rand(S, 1, R, generator=g) < 0.15).float() * present
        shifts = torch.randint(0, R, (N_PERM, S), generator=g)
        obs, null, scale = shift_sums(a, m.view(S, 1, R_SIDE, R_SIDE), shifts, R_SIDE)
        p_sp.append(float(perm_pvalue(null, obs, atol=1e-5 * scale)[0, 0]))
        o2, n2 = permutation_sums(a, m, torch.argsort(torch.rand(N_PERM, S, generator=g), dim=1))
        p_img.append(float(perm_pvalue(n2, o2, rtol=1e-5)[0, 0]))
    return np.array(p_sp), np.array(p_img)


def test_within_image_shift_null_gives_uniform_p_values():
    """KS against uniform: shift-null p > 0.01 (measured 0.853); the image permutation on the same
    co-occurring data is far from uniform (measured KS p < 1e-300): the shift null is what rejects
    a unit that only co-occurs with the concept."""
    p, p_img = _spatial_null_pvalues()
    ks, ks_img = sps.kstest(p, "uniform").pvalue, sps.kstest(p_img, "uniform").pvalue
    print(f"shift null: KS p {ks:.3g} (P(p<0.05) {np.mean(p < 0.05):.3f}); image null on the same data: {ks_img:.3g}")
    assert ks > 0.01 and abs(np.mean(p < 0.05) - 0.05) < 0.03
    assert ks_img < 1e-6


def test_shift_sums_equal_a_plain_roll():
    """The FFT cross-correlation equals summing <a_j, roll(m_j, shift)> one image at a time."""
    g = torch.Generator().manual_seed(1)
    a, m = torch.rand(5, 3, 16, generator=g), (torch.rand(5, 2, 4, 4, generator=g) < 0.3).float()
    shifts = torch.randint(0, 16, (7, 5), generator=g)
    obs, null, _ = shift_sums(a, m, shifts, 4)
    ref = torch.zeros(7, 2, 3)
    for b in range(7):
        for j in range(5):
            dy, dx = divmod(int(shifts[b, j]), 4)
            ref[b] += torch.einsum("kp,cp->kc", torch.roll(m[j], (dy, dx), dims=(1, 2)).flatten(1), a[j])
    assert torch.allclose(null, ref, atol=1e-5)
    assert torch.allclose(obs, torch.einsum("jkp,jcp->kc", m.flatten(2), a), atol=1e-5)
