"""Sharded analyses over 2 gloo CPU processes == one process (docs/scaling.md).

Dissection (planted red unit) and style units (planted style units) run on two ranks, each
harvesting its shard, and are compared with a single-process run: the same labels, IoUs,
p-values and top images; both ranks hold the identical merged Finding; a failure on one rank
fails both with the rank named; ``torchrun ... interp_gan.cli analyze`` writes one report.

Broken variants, measured, each fail this file: shards not aligned to ``perm_block``
(``shard_indices(N)``): other permutation blocks, 27% of the exact run's p-values and all its
CIs differ; the IoU counts not merged: the empty-shard rank fails on its empty counts and the
workers die; no ``fail_together`` in harvest: after the planted failure the ranks' collectives
pair up wrongly and a worker dies (TypeError) instead of both raising.
"""
import datetime
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image

from interp_gan.analyses.units.dissection import Dissection
from interp_gan.findings import Finding
from interp_gan.harvest.distributed import shard_indices
from interp_gan.analyses.units.style_units import StyleUnits
from interp_gan.subject.protocol import Subject

from test_dissection import Planted, _data
from test_style_units import CHECKER_UNIT, STRIPES_UNIT, make_planted_data, make_planted_subject

pytestmark = pytest.mark.slow   # fresh processes import torch: seconds each

ROOT = Path(__file__).resolve().parents[3]
DISSECT = dict(layers=["detect", "trunk"], n_perm=199, n_boot=50, perm_block=16)


def _planted() -> Subject:
    torch.manual_seed(0)   # Planted's other units are randomly initialised: the same on every rank
    return Subject.from_module(Planted())


# name -> (subject, data, analysis); 48 images in blocks of 16: rank 0 gets block 0, rank 1 blocks 1-2
RUNS = {
    # the sketch holds every value (48 x 32 x 32 <= 2^16 per unit): exact thresholds, so all must be equal
    "dissection_exact": lambda: (_planted(), _data(48), Dissection(**DISSECT, sketch_k=2 ** 16)),
    # the default sketch compacts: thresholds within the sketch's error of one pass
    "dissection_sketch": lambda: (_planted(), _data(48), Dissection(**DISSECT)),
    # 16 images, one block: rank 1's shard is empty and it still takes part in every merge
    "dissection_empty_shard": lambda: (_planted(), _data(16), Dissection(**DISSECT)),
    # 36 images in batches of 8: rank 0 batches 0-1, rank 1 batches 2-4
    "style_units": lambda: (make_planted_subject(), make_planted_data(),
                            StyleUnits(layers=["mix"], n_boot=100, n_perm=500, seed=0)),
}


def _boom(module, inputs, output):
    raise RuntimeError("planted failure on rank 1")


def _worker(rank: int, world: int, root: str) -> None:
    torch.set_num_threads(1)
    # a short collective timeout: a rank left waiting (a broken fail-together) errors in a minute, not 30
    dist.init_process_group("gloo", init_method=f"file://{root}/pg", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        out = {}
        # a failure on rank 1 only must fail rank 0 too (not leave it waiting in a collective)
        subject = _planted()
        if rank == 1:
            subject.generator.trunk.register_forward_hook(_boom)
        try:
            Dissection(**DISSECT).run(subject, _data(48))
            out["failure"] = "no error"
        except RuntimeError as e:
            out["failure"] = str(e)
        # then the real runs: the ranks must still be in step
        for name, make in RUNS.items():
            subject, data, analysis = make()
            out[name] = analysis.run(subject, data)
        (Path(root) / f"rank{rank}.pkl").write_bytes(pickle.dumps(out))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    mp.spawn(_worker, args=(2, str(root)), nprocs=2, join=True)
    ranks = [pickle.loads((root / f"rank{r}.pkl").read_bytes()) for r in range(2)]
    single, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)    # as the workers: a conv's float rounding can depend on the thread count
    try:
        for name, make in RUNS.items():
            subject, data, analysis = make()
            single[name] = analysis.run(subject, data)
    finally:
        torch.set_num_threads(threads)
    return ranks, single


def _same_finding(a, b) -> None:
    assert a.tables.keys() == b.tables.keys() and a.arrays.keys() == b.arrays.keys()
    for k in a.tables:
        pd.testing.assert_frame_equal(a.tables[k], b.tables[k], check_exact=True)
    for k in a.arrays:
        np.testing.assert_array_equal(a.arrays[k], b.arrays[k])


def test_a_failure_on_one_rank_fails_every_rank_with_the_rank_named(runs):
    (r0, r1), _ = runs
    assert r1["failure"] == "planted failure on rank 1"
    assert r0["failure"] == "harvest failed on rank 1: RuntimeError: planted failure on rank 1"


def test_both_ranks_hold_the_identical_merged_finding(runs):
    (r0, r1), _ = runs
    for name in RUNS:
        _same_finding(r0[name], r1[name])
        assert any("sharded over 2 ranks" in n for n in r0[name].notes), (name, r0[name].notes)


@pytest.mark.parametrize("name", ["dissection_exact", "dissection_empty_shard", "style_units"])
def test_sharded_equals_single_process(runs, name):
    """Exact thresholds (or one rank with all the data): every table and array is equal —
    IoU, bootstrap CI (per-block seeds), permutation p, q, labels, top images and thumbnails."""
    (r0, _), single = runs
    _same_finding(r0[name], single[name])


def test_with_a_compacting_sketch_labels_and_top_images_agree(runs):
    (r0, _), single = runs
    a, b = (f.tables["dissection_units"] for f in (r0["dissection_sketch"], single["dissection_sketch"]))
    assert a.label.tolist() == b.label.tolist() and a.concept.tolist() == b.concept.tolist()
    diff = float(np.abs(a.iou - b.iou).max())
    same_thr = (a.threshold == b.threshold).to_numpy()
    print(f"compacting sketch: max |IoU diff| {diff:.2e}; thresholds equal for {same_thr.sum()} of {len(a)} units")
    assert diff < 0.02
    la, lb = (f.tables["dissection_iou"] for f in (r0["dissection_sketch"], single["dissection_sketch"]))
    equal_units = a.loc[same_thr, ["layer", "unit"]].apply(tuple, axis=1).tolist()
    rows = la[["layer", "unit"]].apply(tuple, axis=1).isin(equal_units).to_numpy()
    assert np.array_equal(la.p_value[rows], lb.p_value[rows]) and np.array_equal(la.iou[rows], lb.iou[rows])
    for k in ("topk_index", "top_images"):   # top-k is exact; thumbnails come from the rank that holds each image
        np.testing.assert_array_equal(r0["dissection_sketch"].arrays[k], single["dissection_sketch"].arrays[k])
    red = a[(a.layer == "detect") & (a.unit == 0)].iloc[0]
    assert red.label == "red" and red.q_value < 0.05     # the planted answer, sharded


def test_planted_style_units_are_found_when_sharded(runs):
    (r0, _), _ = runs
    df = r0["style_units"].tables["style_units"]
    for style, unit in (("checker", CHECKER_UNIT), ("stripes", STRIPES_UNIT)):
        top = df[df["style"] == style].sort_values("auroc", ascending=False).iloc[0]
        assert int(top["unit"]) == unit and top["q_value"] < 0.05


@pytest.mark.parametrize("n", [0, 5, 16, 48, 50])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_are_whole_blocks_that_cover_every_image_once(n, world):
    shards = [shard_indices(n, r, world, block=16) for r in range(world)]
    assert [i for s in shards for i in s] == list(range(n))            # in order, each image once
    assert all(s.start % 16 == 0 for s in shards if len(s))             # blocks as in one process
    assert all(s.stop % 16 == 0 or s.stop == n for s in shards)


# -- the command line under torchrun ----------------------------------------------------------
def _checkpoint_and_images(tmp_path: Path) -> tuple[Path, Path]:
    from interp_gan.config import ModelConfig, Recipe
    from interp_gan.models import StyleNet
    from interp_gan.checkpoint import save_checkpoint

    torch.manual_seed(0)
    mc = ModelConfig(ch=4, n_down=1, n_blocks=2, style_dim=8, latent_dim=4)
    G = StyleNet(2, ch=4, n_down=1, n_blocks=2, style_dim=8, latent_dim=4)
    ckpt = save_checkpoint(tmp_path / "run" / "checkpoint.safetensors", generator=G, style_names=["a", "b"],
                           recipe=Recipe(model=mc), step=1, fingerprint="0" * 64)
    folder = tmp_path / "content"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return ckpt, folder


# dissection.toml, small (sketch_k: the sketch holds all 16 x 32 x 32 values of a unit, so the
# thresholds are exact); plus style_units (sharded) and overview (rank 0 only)
SETS = ["n_images=16", "image_size=32", "batch_size=8", "analyses.dissection.perm_block=8",
        "analyses.dissection.sketch_k=16384",
        "analyses.dissection.n_perm=99", "analyses.dissection.n_boot=20", "analyses.style_units.n_boot=20",
        "analyses.style_units.n_perm=99", "analyses.overview.n_images=2"]


@pytest.mark.slow   # two fresh processes import torch, and the report exports figures (~10 s)
def test_torchrun_cli_writes_one_report_equal_to_one_process(tmp_path):
    from interp_gan.subject.loading import load_subject
    from interp_gan.config import load_pipeline
    from interp_gan.pipeline import analysis_data, run_analyses

    ckpt, folder = _checkpoint_and_images(tmp_path)
    sets = [x for s in SETS for x in ("--set", s)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "interp_gan.cli",
           "analyze", str(ckpt), "--pipeline", "analyses/dissection.toml", "--data", str(folder), "--device", "cpu",
           "--out", str(tmp_path / "rep"), *sets]
    res = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.count("] report: ") == 1, res.stdout                 # written once, by rank 0
    findings = json.loads((tmp_path / "rep" / "findings.json").read_text())
    assert set(findings) == {"dissection", "style_units", "overview"}      # overview: rank 0 only
    for name in ("dissection", "style_units"):
        assert any("sharded over 2 ranks" in n for n in findings[name]["notes"]), findings[name]["notes"]

    # the same pipeline in this process, one rank
    cfg = load_pipeline(ROOT / "analyses" / "dissection.toml", SETS)
    subject = load_subject(ckpt, device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one, failed = run_analyses(subject, analysis_data(subject, cfg, str(folder)), cfg)
    finally:
        torch.set_num_threads(threads)
    assert failed == []
    for table, name in (("style_units", "style_units"), ("dissection_units", "dissection")):
        saved = Finding.load(tmp_path / "rep" / "findings" / name).tables[table]    # what the report wrote
        pd.testing.assert_frame_equal(saved, one[name].tables[table], check_dtype=False, rtol=1e-6)
