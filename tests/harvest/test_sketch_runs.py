"""The Quantile sketch's chunked path (a batch of more than RUNS_DOWN_TO·k items is compacted in
sorted runs of RUN items before its one full sort), the NaN / tie / constant-channel handling on
that path, and the CPU fast paths of Moments and of harvest's per-image max: checked against exact
answers on seeded data (docs/statistics.md, "Quantile sketch")."""
import math

import pytest
import torch

from interp_gan.harvest.stats import Moments, Quantile, TopK
from interp_gan.harvest.store import feed

QS = torch.tensor([0.01, 0.1, 0.5, 0.9, 0.99], dtype=torch.float64)


def _signed_rank_error(cols: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
    """cols [C, n] (no NaN), est [C, Q]: distance from q to the exact rank interval of each estimate,
    signed (+: the estimate ranks above q), [C, Q]."""
    srt = cols.double().sort(1).values
    e = est.double().contiguous()
    lo = torch.searchsorted(srt, e, right=False).double() / cols.shape[1]
    hi = torch.searchsorted(srt, e, right=True).double() / cols.shape[1]
    return torch.where((lo <= QS) & (QS <= hi), torch.zeros_like(lo), torch.where(QS < lo, lo - QS, hi - QS))


def _runs_bound(q: Quantile) -> float:
    """The documented bound on the runs' rank-error std: 1/sqrt(RUN · m'), m' > RUNS_DOWN_TO·k/2."""
    return 1 / math.sqrt(q.RUN * q.RUNS_DOWN_TO * q.k / 2)


def test_run_compaction_is_unbiased_and_within_its_documented_error():
    # one batch of 4 maps of 64x64 = 16384 rows per channel: 2 rounds of runs at k=512, before any sampler
    C, k = 96, 512
    g = torch.Generator().manual_seed(11)
    maps = torch.randn(4, C, 64, 64, generator=g).exp()
    q = Quantile(C, k=k, seed=5)
    assert 16384 > 2 * q.RUNS_DOWN_TO * k and q._sample_level(16384) == 0     # the path under test is taken
    q.add_maps(maps)
    assert sum(lv.shape[1] for lv in q.levels) < 4 * k                       # memory stays the sketch's
    cols = maps.transpose(0, 1).reshape(C, -1)
    assert float(_signed_rank_error(cols, q.quantile(QS)).abs().max()) < 0.005    # the sketch's stated bound
    # rank() at the exact quantiles (no query rounding): the error of the runs and the final stride
    srt = cols.sort(1).values
    mid = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9])          # every run straddles these
    idx = (mid * cols.shape[1]).long()
    err = torch.stack([q.rank(srt[:, i]) - (i + 1) / cols.shape[1] for i in idx.tolist()], 1)   # [C, 5]
    assert float(err.std()) < _runs_bound(q)                                 # no larger than documented
    # ... and centred: a run that always kept its lower half would shift every rank by ~0.1%
    assert abs(float(err.mean())) < 4 * float(err.std()) / math.sqrt(err.numel())


def test_run_compaction_error_matches_the_full_sort_within_the_bound():
    # against the pre-runs behaviour (one full sort; RUNS_DOWN_TO huge) on the same data and seed
    C, k = 32, 256
    g = torch.Generator().manual_seed(12)
    maps = torch.relu(torch.randn(4, C, 64, 64, generator=g) + 0.5)
    runs, full = Quantile(C, k=k, seed=1), Quantile(C, k=k, seed=1)
    full.RUNS_DOWN_TO = 10 ** 9
    runs.add_maps(maps)
    full.add_maps(maps)
    cols = maps.transpose(0, 1).reshape(C, -1)
    e_runs = _signed_rank_error(cols, runs.quantile(QS)).abs().max()
    e_full = _signed_rank_error(cols, full.quantile(QS)).abs().max()
    assert float(e_full) < 2 / k                     # the full sort: every 2^j-th item, error < 2^j / m
    assert float(e_runs) < float(e_full) + 5 * _runs_bound(runs)


def test_run_path_keeps_ties_constants_and_nan_counts_exact():
    C, k = 4, 128
    g = torch.Generator().manual_seed(13)
    maps = torch.randn(8, C, 32, 32, generator=g)                 # 4096 rows per add > RUNS_DOWN_TO·k = 1024
    maps[:, 1] = 2.5                                             # a constant channel
    maps[:, 2] = torch.relu(maps[:, 2] - 2)                      # ~98% ties at 0
    nan = torch.rand(8, 32, 32, generator=g) < 0.1
    maps[:, 3][nan] = float("nan")                               # 10% NaN
    q = Quantile(C, k=k)
    for half in maps.split(4):
        q.add_maps(half)
    assert q.nan_count.tolist() == [0, 0, 0, int(nan.sum())]
    est = q.quantile(QS)
    assert torch.equal(est[1], torch.full((5,), 2.5))            # a constant stays exact
    assert torch.equal(est[2, :3], torch.zeros(3))               # the tie at 0 holds the low quantiles
    below, tied, above = q.tie_masses(torch.tensor([0.0, 2.5, 0.0, 0.0]))
    exact_tie = float((maps[:, 2] == 0).double().mean())
    assert abs(float(tied[2]) - exact_tie) < 0.01 and float(tied[1]) == 1.0
    for c in (0, 2, 3):
        col = maps[:, c].reshape(-1)
        col = col[~torch.isnan(col)][None]
        assert float(_signed_rank_error(col, est[c:c + 1]).abs().max()) < 0.01   # 2/k-level error at k=128
    all_nan = Quantile(2, k=k)
    all_nan.add_maps(torch.full((4, 2, 32, 32), float("nan")))
    assert torch.isnan(all_nan.quantile(0.5)).all() and all_nan.nan_count.tolist() == [4096, 4096]


@pytest.mark.parametrize("shape", [(1, 3, 48, 48), (3, 1, 40, 40)])
def test_sketch_never_sorts_the_callers_tensor_in_place(shape):
    g = torch.Generator().manual_seed(14)
    maps = torch.randn(*shape, generator=g)
    before = maps.clone()
    Quantile(shape[1], k=16).add_maps(maps)              # N=1: the [C, samples] view is the caller's memory
    cols = maps.transpose(0, 1).reshape(shape[1], -1).contiguous()
    keep = cols.clone()
    Quantile(shape[1], k=16).add(cols.t())               # x.t() of a contiguous [C, n]: again the caller's
    assert torch.equal(maps, before) and torch.equal(cols, keep)


def test_moments_fast_path_is_exact_leaves_input_alone_and_nan_falls_back():
    g = torch.Generator().manual_seed(15)
    maps = (torch.randn(6, 3, 20, 20, generator=g, dtype=torch.float64) * torch.tensor([1.0, 10.0, 0.1])[None, :, None, None]
            + 100)
    before = maps.clone()
    m = Moments(3)
    for part in maps.split(2):
        m.add_maps(part)
    assert torch.equal(maps, before)                      # the float64 input is not centred in place
    rows = maps.permute(0, 2, 3, 1).reshape(-1, 3)
    assert torch.allclose(m.mean(), rows.mean(0), rtol=0, atol=1e-10)
    assert torch.allclose(m.variance(), rows.var(0), rtol=1e-10)
    f32 = maps.float()
    f32[0, 1, :3, :3] = float("nan")
    n = Moments(3)
    n.add_maps(f32)
    ok = f32.permute(0, 2, 3, 1).reshape(-1, 3)
    assert n.nan_count.tolist() == [0, 9, 0]
    col = ok[:, 1][~torch.isnan(ok[:, 1])].double()
    assert torch.allclose(n.mean()[1], col.mean()) and torch.allclose(n.variance()[1], col.var())
    assert torch.allclose(n.mean()[0], ok[:, 0].double().mean())


def test_per_image_max_ignores_nan_and_equals_the_masked_max():
    g = torch.Generator().manual_seed(16)
    acts = torch.randn(5, 3, 8, 8, generator=g)
    acts[2, 1, 0, 0] = float("nan")
    acts[3, 0] = float("nan")                             # an image whose map is all NaN: -inf, never in the top
    t = TopK(3, k=2)
    feed(t, acts, 10)
    ref = torch.nan_to_num(acts, nan=float("-inf")).flatten(2).amax(2).t().topk(2, dim=1)
    assert torch.equal(t.values, ref.values) and torch.equal(t.indices, ref.indices + 10)
    clean = TopK(3, k=2)
    feed(clean, acts.nan_to_num(0.0), 0)
    assert torch.equal(clean.values, acts.nan_to_num(0.0).flatten(2).amax(2).t().topk(2, dim=1).values)
