"""Streaming statistics: accuracy against exact answers, merge == one pass, state_dict round trip."""
import pytest
import torch

from interp_gan.harvest.stats import IoUCounts, Moments, Quantile, TopK

QS = torch.tensor([0.01, 0.1, 0.5, 0.9, 0.99])


def _rank_error(data: torch.Tensor, est: torch.Tensor, qs: torch.Tensor) -> float:
    """Largest distance between q and the exact rank interval of the estimate, over channels and q."""
    srt = data.sort(0).values
    worst = 0.0
    for c in range(data.shape[1]):
        col = srt[:, c].contiguous()
        lo = torch.searchsorted(col, est[c].contiguous(), right=False).double() / len(col)
        hi = torch.searchsorted(col, est[c].contiguous(), right=True).double() / len(col)
        err = torch.where((lo <= qs) & (qs <= hi), torch.zeros_like(lo), torch.minimum((lo - qs).abs(), (hi - qs).abs()))
        worst = max(worst, float(err.max()))
    return worst


DISTRIBUTIONS = {
    "normal": lambda g, n: torch.randn(n, 3, generator=g),
    "exponential": lambda g, n: -torch.rand(n, 3, generator=g).log(),
    "lognormal": lambda g, n: (2 * torch.randn(n, 3, generator=g)).exp(),
    "bimodal": lambda g, n: torch.where(torch.rand(n, 3, generator=g) < 0.3, torch.randn(n, 3, generator=g) - 5,
                                        0.1 * torch.randn(n, 3, generator=g) + 3),
    "relu_sparse": lambda g, n: torch.relu(torch.randn(n, 3, generator=g) - 2),   # 98% ties at 0
}


@pytest.mark.parametrize("dist", list(DISTRIBUTIONS))
def test_quantile_sketch_within_half_percent_rank_error(dist):
    g = torch.Generator().manual_seed(0)
    data = DISTRIBUTIONS[dist](g, 300_000)
    q = Quantile(3, k=1024)
    for chunk in data.split(8192):
        q.add(chunk)
    # memory is bounded: far fewer than the 300k items are kept per channel
    assert sum(lv.shape[1] for lv in q.levels) < 4 * 1024
    assert _rank_error(data, q.quantile(QS), QS.double()) < 0.005


def test_quantile_sampler_path_is_accurate():
    g = torch.Generator().manual_seed(1)
    data = torch.randn(600_000, 2, generator=g).exp()
    q = Quantile(2, k=512)
    for chunk in data.split(65536):
        q.add(chunk)
    assert q._sample_level(q.count) >= 2          # the sampler is really in use here
    assert _rank_error(data, q.quantile(QS), QS.double()) < 0.005


def test_quantile_merge_of_halves_matches_one_pass_and_state_dict_round_trips():
    g = torch.Generator().manual_seed(2)
    data = torch.randn(100_000, 4, generator=g)
    whole, a, b = Quantile(4), Quantile(4, seed=1), Quantile(4, seed=2)
    for chunk in data.split(5000):
        whole.add(chunk)
    for chunk in data[:50_000].split(5000):
        a.add(chunk)
    for chunk in data[50_000:].split(5000):
        b.add(chunk)
    a.merge(b)
    assert a.count == whole.count == 100_000
    assert _rank_error(data, a.quantile(QS), QS.double()) < 0.005
    assert torch.allclose(a.quantile(QS), whole.quantile(QS), atol=0.05)
    c = Quantile().load_state_dict(a.state_dict())
    assert torch.equal(c.quantile(QS), a.quantile(QS))
    c.add(data[:1000])          # a loaded sketch keeps working
    assert c.count == 101_000


def test_quantile_ignores_and_counts_nan():
    g = torch.Generator().manual_seed(3)
    data = torch.randn(20_000, 2, generator=g)
    with_nan = data.clone()
    with_nan[::10, 0] = float("nan")
    q = Quantile(2)
    for chunk in with_nan.split(1000):
        q.add(chunk)
    assert q.nan_count.tolist() == [2000, 0]
    clean = data[:, 0][~torch.isnan(with_nan[:, 0])][:, None]
    assert _rank_error(clean, q.quantile(QS)[:1], QS.double()) < 0.005
    all_nan = Quantile(1)
    all_nan.add(torch.full((10, 1), float("nan")))
    assert torch.isnan(all_nan.quantile(0.5)).all()


def test_quantile_rejects_bad_shapes():
    with pytest.raises(ValueError, match="samples, channels"):
        Quantile(3).add(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="3 channels"):
        Quantile(3).add(torch.zeros(5, 4))


def test_topk_matches_brute_force_and_merge_is_exact():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(50, 6, generator=g)
    t = TopK(6, k=5)
    for chunk in x.split(7):
        t.add(chunk)
    ref = x.t().topk(5, dim=1)
    assert torch.equal(t.values, ref.values) and torch.equal(t.indices, ref.indices)
    a, b = TopK(6, k=5), TopK(6, k=5)
    a.add(x[:20])
    b.add(x[20:], index=torch.arange(20, 50))
    a.merge(b)
    assert torch.equal(a.indices, ref.indices)
    c = TopK().load_state_dict(a.state_dict())
    assert torch.equal(c.values, ref.values)


def test_moments_match_torch_merge_and_nan():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1000, 3, generator=g) * torch.tensor([1.0, 10.0, 0.1]) + 100
    m = Moments(3)
    for chunk in x.split(97):
        m.add(chunk)
    assert torch.allclose(m.mean(), x.double().mean(0))
    assert torch.allclose(m.variance(), x.double().var(0))
    a, b = Moments(3), Moments(3)
    a.add(x[:300])
    b.add(x[300:])
    a.merge(b)
    assert torch.allclose(a.variance(), x.double().var(0))
    y = x.clone()
    y[:10, 1] = float("nan")
    n = Moments(3)
    n.add(y)
    assert int(n.nan_count[1]) == 10 and torch.allclose(n.mean()[1], x[10:, 1].double().mean())
    r = Moments().load_state_dict(a.state_dict())
    assert torch.allclose(r.std(), x.double().std(0))


def test_iou_counts_sum_over_images_and_merge():
    g = torch.Generator().manual_seed(6)
    A = torch.rand(20, 2, 8, 8, generator=g) > 0.7      # 20 images, 2 units
    M = torch.rand(20, 3, 8, 8, generator=g) > 0.5      # 3 concepts
    inter = torch.einsum("nup,nkp->nuk", A.flatten(2).float(), M.flatten(2).float())
    au, am = A.flatten(2).sum(2).float(), M.flatten(2).sum(2).float()
    s = IoUCounts(2, 3, n_boot=200)
    s.add(inter[:8], au[:8], am[:8])
    s.add(inter[8:], au[8:], am[8:])
    expected = (A[:, :, None] & M[:, None]).sum((0, 3, 4)).double() / (A[:, :, None] | M[:, None]).sum((0, 3, 4)).double()
    assert torch.allclose(s.iou(), expected)            # counts summed over the data set
    lo, hi = s.ci()
    assert bool(((lo <= s.iou() + 1e-9) & (s.iou() <= hi + 1e-9)).all()) and bool((hi > lo).all())
    a, b = IoUCounts(2, 3), IoUCounts(2, 3)
    a.add(inter[:5], au[:5], am[:5])
    b.add(inter[5:], au[5:], am[5:])
    assert torch.allclose(a.merge(b).iou(), expected)
    assert torch.allclose(IoUCounts(2, 3).load_state_dict(a.state_dict()).iou(), expected)
    with pytest.raises(ValueError, match="expected"):
        s.add(inter[:, :1], au, am)


def test_quantile_add_maps_is_the_same_sketch_as_add_of_pixel_rows():
    g = torch.Generator().manual_seed(7)
    a, b = Quantile(5, k=64, seed=3), Quantile(5, k=64, seed=3)
    for _ in range(40):     # enough rows for compactions and the sampler (level > 0)
        maps = torch.randn(4, 5, 16, 16, generator=g).exp()
        maps[0, 2, :2, :2] = float("nan")
        a.add_maps(maps)
        b.add(maps.permute(0, 2, 3, 1).reshape(-1, 5))
    assert b._sample_level(b.count) > 0
    assert len(a.levels) == len(b.levels)
    for x, y in zip(a.levels, b.levels):       # identical, NaN items included (NaN != NaN for torch.equal)
        torch.testing.assert_close(x, y, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(a.nan_count, b.nan_count) and int(a.nan_count[2]) == 160
    assert torch.equal(a.quantile(QS), b.quantile(QS))
    with pytest.raises(ValueError, match="N, 5, H, W"):
        a.add_maps(torch.zeros(2, 4, 3, 3))


def test_iou_counts_ci_of_chosen_concepts_equals_full_ci_columns():
    g = torch.Generator().manual_seed(8)
    A = torch.rand(30, 4, 8, 8, generator=g) > 0.6
    M = torch.rand(30, 3, 8, 8, generator=g) > 0.5
    inter = torch.einsum("nup,nkp->nuk", A.flatten(2).float(), M.flatten(2).float())
    s = IoUCounts(4, 3, n_boot=100)
    s.add(inter, A.flatten(2).sum(2).float(), M.flatten(2).sum(2).float())
    best = torch.tensor([2, 0, 1, 2])
    lo, hi = s.ci()
    lo_b, hi_b = s.ci(concepts=best)
    assert lo_b.shape == (4,) and torch.equal(lo_b, lo[torch.arange(4), best]) and torch.equal(hi_b, hi[torch.arange(4), best])
    with pytest.raises(ValueError, match="one concept index per unit"):
        s.ci(concepts=torch.tensor([0, 1]))


def test_moments_fast_path_and_add_maps_match_float64_with_a_large_offset_and_nans():
    """The no-NaN path (float64 sums around the rounded batch mean) and add_maps (no permute copy)
    equal a float64 reference even when the mean is 1e4 standard deviations away from 0."""
    import numpy as np
    import torch
    from interp_gan.harvest.stats import Moments
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, 10, 9, generator=g) * 0.01 + 100.0
    rows = lambda t: t.permute(0, 2, 3, 1).reshape(-1, 4)  # noqa: E731
    ref = np.concatenate([rows(x).double().numpy(), rows(x[:2] * 3).double().numpy()])
    a, b = Moments(4), Moments(4)
    a.add(rows(x)); a.add(rows(x[:2] * 3))
    b.add_maps(x); b.add_maps(x[:2] * 3)
    for m in (a, b):
        assert np.allclose(m.mean().numpy(), ref.mean(0), rtol=0, atol=1e-9)
        assert np.allclose(m.variance().numpy(), ref.var(0, ddof=1), rtol=1e-6)
    y = x.clone()
    y[0, 1, 2, 3] = float("nan")                               # the general path counts and skips it
    c = Moments(4)
    c.add_maps(y)
    assert c.nan_count.tolist() == [0, 1, 0, 0] and c.n.tolist() == [540, 539, 540, 540]
