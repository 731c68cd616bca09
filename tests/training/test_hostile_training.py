"""Issue #16 for training: a NaN loss stops the run and keeps the last finite checkpoint; a no-op
resume touches nothing; a failed start can be started again; stale temp files go; skipped images
are said and logged."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from interp_gan.checkpoint import load_checkpoint, read_metadata
from interp_gan.config import DataConfig, ModelConfig, Recipe, TrainConfig
from interp_gan.training import losses as L
from interp_gan.training import train
from interp_gan.training.loop import NonFiniteLoss

from conftest import tiny_recipe


def test_a_nan_loss_stops_the_run_and_keeps_the_last_finite_checkpoint(tmp_path, tiny_data, monkeypatch):
    calls = {"n": 0}
    real = L.content_loss

    def poisoned(f, fake, content):   # the content loss turns NaN at the third step
        calls["n"] += 1
        out = real(f, fake, content)
        return out * float("nan") if calls["n"] >= 3 else out
    monkeypatch.setattr(L, "content_loss", poisoned)
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLoss, match="stopped at step 3: non-finite loss.*step 2.* is kept"):
        train(tiny_recipe(steps=6, checkpoint_every=1), run, data=tiny_data, progress=False)
    ck = load_checkpoint(run / "checkpoint.safetensors")     # loads: its weights are finite
    assert ck.meta["step"] == 2
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["stopped"] == "non-finite loss" and rows[-1]["step"] == 3


def test_a_no_op_resume_of_a_finished_run_leaves_it_untouched(tmp_path, tiny_data, capsys):
    run = tmp_path / "run"
    ckpt = train(tiny_recipe(steps=2), run, data=tiny_data, progress=False)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.iterdir() if p.is_file()}
    assert train(tiny_recipe(steps=2), run, resume=True, data=tiny_data, progress=False) == ckpt
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.iterdir() if p.is_file()}
    assert after == before
    assert "nothing to do" in capsys.readouterr().out


def test_a_failed_start_does_not_block_the_same_command(tmp_path, tiny_data):
    run = tmp_path / "run"
    missing_vgg = tiny_recipe(steps=1, feature_net=f"vgg19:{tmp_path / 'no_such_vgg.pth'}")
    with pytest.raises(Exception, match="no_such_vgg"):
        train(missing_vgg, run, data=tiny_data, progress=False)
    assert [p.name for p in run.iterdir()] == ["config.json"]      # it failed after writing config.json
    with pytest.raises(Exception, match="no_such_vgg"):             # the same command: the same error,
        train(missing_vgg, run, data=tiny_data, progress=False)     # not "already holds a run"
    train(tiny_recipe(steps=1), run, data=tiny_data, progress=False)    # and a fixed recipe starts
    assert (run / "checkpoint.safetensors").is_file()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_a_gpu_fails_before_writing_anything(tmp_path, tiny_data):
    with pytest.raises(ValueError, match="no CUDA device"):
        train(tiny_recipe(steps=1, device="cuda"), tmp_path / "run", data=tiny_data, progress=False)
    assert not (tmp_path / "run").exists()


def test_stale_temp_files_of_a_killed_write_are_removed_on_resume(tmp_path, tiny_data):
    run = tmp_path / "run"
    train(tiny_recipe(steps=1), run, data=tiny_data, progress=False)
    stale = run / ".checkpoint.safetensors.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    train(tiny_recipe(steps=2), run, resume=True, data=tiny_data, progress=False)
    assert not stale.exists()


def test_bad_images_in_training_data_are_counted_printed_and_logged(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for folder, n in (("content", 10), ("style/a", 6), ("style/b", 6)):
        d = tmp_path / "data" / folder
        d.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(d / f"{i}.png")
    (tmp_path / "data" / "content" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    recipe = Recipe(name="bad", data=DataConfig(source=str(tmp_path / "data" / "style"),
                                                content=str(tmp_path / "data" / "content"),
                                                image_size=16, load_size=24),
                    model=ModelConfig(ch=8, n_down=1, n_blocks=1, style_dim=8, latent_dim=4, d_ch=8, d_layers=2),
                    train=TrainConfig(steps=1, batch_size=4, eval_every=1000, eval_images=8, sample_every=1000,
                                      checkpoint_every=1000, log_every=1, device="cpu", clf_steps=2, clf_ch=4))
    train(recipe, tmp_path / "run", progress=False)
    out = capsys.readouterr().out
    assert "skipped 1 unreadable image" in out and "content/broken.png" in out
    rows = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["skipped_images_total"] == 1 and rows[0]["skipped_files"] == ["content/broken.png"]


def test_numeric_settings_are_checked_when_the_config_is_built():
    for bad in (dict(checkpoint_every=0), dict(log_every=0), dict(eval_every=-1), dict(batch_size=0)):
        with pytest.raises(ValueError, match=f"{next(iter(bad))} must be >= 1"):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="n_down = 3 does not fit data.image_size = 16"):
        Recipe(data=DataConfig(image_size=16, load_size=24), model=ModelConfig(n_down=3))
    with pytest.raises(ValueError, match="multiple of 2\\*\\*n_down = 4"):
        Recipe(data=DataConfig(image_size=18, load_size=24), model=ModelConfig(n_down=2))


def test_a_misshapen_trainer_state_names_the_key_on_resume(tmp_path, tiny_data):
    run = tmp_path / "run"
    train(tiny_recipe(steps=1), run, data=tiny_data, progress=False)
    st = torch.load(run / "trainer_state.pt", weights_only=True)
    key = next(k for k, v in st["G"].items() if v.dim() == 4)
    st["G"][key] = torch.zeros(1, 1, 1, 1)
    torch.save(st, run / "trainer_state.pt")
    with pytest.raises(ValueError, match=rf"tensor 'G.{key}' has shape \[1, 1, 1, 1\], expected"):
        train(tiny_recipe(steps=2), run, resume=True, data=tiny_data, progress=False)
