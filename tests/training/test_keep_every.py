"""train.keep_every: step snapshots under <run>/steps/, in the checkpoint format, kept across a resume
(none lost, none left from a killed tail) and bit-identical to an uninterrupted run's (docs/dynamics.md)."""
import pytest
import torch
from safetensors import safe_open

from interp_gan.checkpoint import list_snapshots, load_checkpoint, read_metadata, snapshot_path
from interp_gan.config import TrainConfig
from interp_gan.training import train
from conftest import tiny_recipe


def _g_tensors(path):
    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys() if k.startswith("G.")}


def test_keep_every_writes_a_snapshot_at_each_multiple_and_the_last_step(tmp_path, tiny_data):
    run = tmp_path / "run"
    ckpt = train(tiny_recipe(steps=7, keep_every=3), run, data=tiny_data, progress=False)
    snaps = list_snapshots(run)
    assert [s for s, _ in snaps] == [0, 3, 6, 7]          # the initialisation, each multiple, the last step
    assert all(p == snapshot_path(run, s) and p.name == f"step_{s:06d}.safetensors" for s, p in snaps)
    for s, p in snaps:
        assert read_metadata(p)["step"] == s                # a checkpoint like any other: it loads
    last = load_checkpoint(snaps[-1][1])
    assert set(last.classifiers) == {"rgb", "texture"} and last.discriminator is not None
    final = _g_tensors(ckpt)
    assert all(torch.equal(final[k], v) for k, v in _g_tensors(snaps[-1][1]).items())
    first = _g_tensors(snaps[0][1])
    assert not all(torch.equal(final[k], v) for k, v in first.items())   # the weights did change
    assert not list(run.rglob(".*.tmp"))


def test_keep_every_off_by_default_and_validated(tmp_path, tiny_data):
    run = tmp_path / "run"
    train(tiny_recipe(steps=2), run, data=tiny_data, progress=False)
    assert list_snapshots(run) == [] and not (run / "steps").exists()
    with pytest.raises(ValueError, match="keep_every must be >= 0"):
        TrainConfig(keep_every=-1)


def test_snapshots_survive_a_resume_none_lost_none_stale(tmp_path, tiny_data):
    straight = tmp_path / "straight"
    train(tiny_recipe(steps=7, keep_every=2, checkpoint_every=3), straight, data=tiny_data, progress=False)
    part = tmp_path / "part"
    train(tiny_recipe(steps=3, keep_every=2, checkpoint_every=3), part, data=tiny_data, progress=False)
    assert [s for s, _ in list_snapshots(part)] == [0, 2, 3]
    # a killed run's tail: a snapshot past the checkpoint we resume from, and a half-written temp file
    snapshot_path(part, 5).write_bytes(b"from a killed run")
    (part / "steps" / ".step_000006.safetensors.x.tmp").write_bytes(b"partial")
    train(tiny_recipe(steps=7, keep_every=2, checkpoint_every=3), part, resume=True, data=tiny_data, progress=False)
    steps = [s for s, _ in list_snapshots(part)]
    assert steps == [0, 2, 3, 4, 6, 7]      # step 3 was the first leg's last step; 5 (stale) is gone
    assert not list((part / "steps").glob(".*.tmp"))
    for s in (0, 2, 4, 6, 7):               # exact resume: the same weights as the uninterrupted run
        a, b = _g_tensors(snapshot_path(straight, s)), _g_tensors(snapshot_path(part, s))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), s
    # a no-op resume of the finished run keeps every snapshot as it is
    before = {p: p.stat().st_mtime_ns for _, p in list_snapshots(part)}
    train(tiny_recipe(steps=7, keep_every=2, checkpoint_every=3), part, resume=True, data=tiny_data, progress=False)
    assert {p: p.stat().st_mtime_ns for _, p in list_snapshots(part)} == before
