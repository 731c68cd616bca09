"""all_merge over 2 gloo CPU processes == one process over all the data; shard_indices covers 0..n-1 once."""
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from interp_gan.distributed import dist_ready
from interp_gan.harvest.distributed import all_merge, shard_indices
from interp_gan.harvest.stats import IoUCounts, Moments, Quantile, TopK

pytestmark = pytest.mark.slow   # fresh processes import torch: seconds each

N, C, U, K, CHUNK = 3000, 3, 4, 2, 250
QS = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, C, generator=g) * torch.tensor([1.0, 3.0, 0.5]) + torch.tensor([0.0, 2.0, -1.0])
    # per-image pixel counts for IoU: intersections <= both areas
    area_u = torch.randint(0, 50, (N, U), generator=g).double()
    area_m = torch.randint(0, 50, (N, K), generator=g).double()
    inter = torch.minimum(area_u[:, :, None], area_m[:, None, :]) * torch.rand(N, U, K, generator=g).round()
    return x, inter, area_u, area_m


def _stats():
    return {"moments": Moments(C), "topk": TopK(C, k=5), "q_exact": Quantile(C, k=4096),
            "q_sketch": Quantile(C, k=64), "iou": IoUCounts(U, K)}


def _feed(stats, idx: range):
    x, inter, au, am = _data()
    for lo in range(idx.start, idx.stop, CHUNK):
        sl = slice(lo, min(lo + CHUNK, idx.stop))
        stats["moments"].add(x[sl])
        stats["topk"].add(x[sl], index=torch.arange(sl.start, sl.stop))   # global image indices
        stats["q_exact"].add(x[sl])
        stats["q_sketch"].add(x[sl])
        stats["iou"].add(inter[sl], au[sl], am[sl])


def _worker(rank: int, world: int, root: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{root}/pg", rank=rank, world_size=world)
    try:
        stats = _stats()
        _feed(stats, shard_indices(N))
        before = {k: s.state_dict() for k, s in stats.items()}
        for s in stats.values():
            assert all_merge(s) is s
        # a type mismatch across ranks is a clear error on every rank, not a hang
        try:
            all_merge(Moments(C) if rank == 0 else TopK(C))
            mismatch = "no error"
        except ValueError as e:
            mismatch = str(e)
        torch.save({"before": before, "after": {k: s.state_dict() for k, s in stats.items()},
                    "mismatch": mismatch}, f"{root}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _rank_error(col: torch.Tensor, est: torch.Tensor, qs: torch.Tensor) -> float:
    srt = col.sort().values
    lo = torch.searchsorted(srt, est.contiguous(), right=False).double() / len(srt)
    hi = torch.searchsorted(srt, est.contiguous(), right=True).double() / len(srt)
    err = torch.where((lo <= qs) & (qs <= hi), torch.zeros_like(lo), torch.minimum((lo - qs).abs(), (hi - qs).abs()))
    return float(err.max())


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    mp.spawn(_worker, args=(2, str(root)), nprocs=2, join=True)
    ranks = [torch.load(root / f"rank{r}.pt", weights_only=False) for r in range(2)]
    single = _stats()
    _feed(single, range(N))
    return ranks, single


def _load(kind: str, state):
    return _stats()[kind].load_state_dict(state)


def test_shards_differ_before_merge(results):
    (r0, r1), _ = results
    assert r0["before"]["moments"]["n"].tolist() == [N / 2] * C      # each rank saw only half
    assert int(r0["after"]["moments"]["n"][0]) == N
    assert r0["before"]["topk"]["indices"].max() < N // 2 <= r1["before"]["topk"]["indices"].min()


def test_all_ranks_hold_identical_results(results):
    (r0, r1), _ = results
    for kind in r0["after"]:
        a, b = r0["after"][kind], r1["after"][kind]
        for key in a:
            va, vb = a[key], b[key]
            if isinstance(va, list):
                assert len(va) == len(vb) and all(torch.equal(x, y) for x, y in zip(va, vb)), (kind, key)
            elif isinstance(va, torch.Tensor):
                assert torch.equal(va, vb), (kind, key)
            else:
                assert va == vb, (kind, key)


def test_merged_equals_single_process(results):
    (r0, _), single = results
    m = _load("moments", r0["after"]["moments"])
    torch.testing.assert_close(m.mean(), single["moments"].mean(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.variance(), single["moments"].variance(), rtol=1e-12, atol=1e-12)
    x = _data()[0].double()
    torch.testing.assert_close(m.variance(), x.var(0), rtol=1e-10, atol=1e-10)

    top = _load("topk", r0["after"]["topk"])
    assert torch.equal(top.values, single["topk"].values)
    assert torch.equal(top.indices, single["topk"].indices)
    assert torch.equal(top.indices, x.topk(5, dim=0).indices.t())           # planted: true top images

    iou = _load("iou", r0["after"]["iou"])
    assert torch.equal(iou.iou(), single["iou"].iou()) and iou.count == N

    # k=4096 > N: nothing is compacted, both are exact, so the quantiles are equal
    qe = _load("q_exact", r0["after"]["q_exact"])
    assert torch.equal(qe.quantile(QS), single["q_exact"].quantile(QS))

    # k=64 compacts; merged and single-pass sketches are each within the sketch's rank error
    qs_m = _load("q_sketch", r0["after"]["q_sketch"]).quantile(QS)
    qs_1 = single["q_sketch"].quantile(QS)
    err_m = max(_rank_error(x[:, c].float(), qs_m[c], QS.double()) for c in range(C))
    err_1 = max(_rank_error(x[:, c].float(), qs_1[c], QS.double()) for c in range(C))
    print(f"quantile rank error k=64: merged {err_m:.4f}, single-pass {err_1:.4f}")
    assert err_m < 0.04 and err_1 < 0.04


def test_type_mismatch_raises_on_every_rank(results):
    (r0, r1), _ = results
    assert "different statistic types" in r0["mismatch"] and "different statistic types" in r1["mismatch"]


@pytest.mark.parametrize("n", [0, 1, 7, 10, 101])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shard_indices_cover_once(n, world):
    shards = [shard_indices(n, r, world) for r in range(world)]
    flat = [i for s in shards for i in s]
    assert flat == list(range(n))                                       # in order, each exactly once
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1


def test_noop_without_process_group():
    assert not dist_ready()
    m = Moments(C)
    m.add(_data()[0][:10])
    before = m.mean()
    assert all_merge(m) is m and torch.equal(m.mean(), before)
    assert shard_indices(10) == range(10)
    with pytest.raises(ValueError, match="rank"):
        shard_indices(10, rank=2, world_size=2)
