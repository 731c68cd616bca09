import json

import pytest
import torch
from safetensors.torch import load_file

from interp_gan.training import loop, train
from conftest import tiny_recipe


def _weights(run):
    return load_file(str(run / "checkpoint.safetensors"))


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _losses(run):
    return [{k: v for k, v in json.loads(ln).items() if k != "eval"} for ln in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_resume_equals_uninterrupted_and_the_test_can_fail(tmp_path, tiny_data, monkeypatch):
    full = train(tiny_recipe(steps=6), tmp_path / "full", data=tiny_data, progress=False).parent
    part = train(tiny_recipe(steps=3), tmp_path / "part", data=tiny_data, progress=False).parent
    assert not _same(_weights(part), _weights(full))       # 3 steps differ from 6: the comparison has teeth
    train(tiny_recipe(steps=6), part, resume=True, data=tiny_data, progress=False)
    assert _same(_weights(part), _weights(full))
    sa, sb = (torch.load(r / "trainer_state.pt", weights_only=True) for r in (part, full))
    assert all(torch.equal(sa["G"][k], sb["G"][k]) for k in sa["G"]) and sa["step"] == sb["step"] == 6
    assert _losses(part) == _losses(full)                    # metrics.jsonl continues seamlessly

    # negative control: the same resume without restoring the RNG states diverges
    ctrl = train(tiny_recipe(steps=3), tmp_path / "ctrl", data=tiny_data, progress=False).parent
    monkeypatch.setattr(loop, "_restore_rng", lambda state, gen: None)
    train(tiny_recipe(steps=6), ctrl, resume=True, data=tiny_data, progress=False)
    assert not _same(_weights(ctrl), _weights(full))


def test_seeded_runs_repeat_and_seeds_differ(tmp_path, tiny_data):
    a = train(tiny_recipe(steps=2), tmp_path / "a", data=tiny_data, progress=False)
    b = train(tiny_recipe(steps=2), tmp_path / "b", data=tiny_data, progress=False)
    c = train(tiny_recipe(steps=2, seed=1), tmp_path / "c", data=tiny_data, progress=False)
    assert _same(_weights(a.parent), _weights(b.parent))
    assert not _same(_weights(a.parent), _weights(c.parent))


@pytest.mark.slow
def test_refuses_to_overwrite_a_run_dir_and_checks_resume(tmp_path, tiny_data):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="never overwritten"):
        train(tiny_recipe(steps=1), run, data=tiny_data, progress=False)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(tiny_recipe(steps=1), run, resume=True, data=tiny_data, progress=False)
    done = train(tiny_recipe(steps=1), tmp_path / "done", data=tiny_data, progress=False).parent
    changed = tiny_recipe(steps=2)
    changed = type(changed).from_dict(changed.to_dict() | {"model": changed.model.to_dict() | {"ch": 4}})
    with pytest.raises(ValueError, match="model.ch"):
        train(changed, done, resume=True, data=tiny_data, progress=False)
    # a run started before a config key existed (here train.feature_net) resumes: the key reads as its default
    cfg = json.loads((done / "config.json").read_text())
    del cfg["train"]["feature_net"]
    (done / "config.json").write_text(json.dumps(cfg))
    train(tiny_recipe(steps=2), done, resume=True, data=tiny_data, progress=False)


def test_run_dir_contents_config_first_and_callbacks(tmp_path, tiny_data, capsys):
    seen = []

    def cb(step, logs):
        seen.append((step, (tmp_path / "r" / "config.json").is_file(), sorted(logs)))
    ckpt = train(tiny_recipe(steps=4, eval_every=2, sample_every=4, checkpoint_every=2, log_every=2),
                 tmp_path / "r", data=tiny_data, callbacks=[cb], progress=False)
    run = ckpt.parent
    assert [s for s, _, _ in seen] == [2, 4] and all(ok for _, ok, _ in seen)
    assert "eval" in seen[0][2] and "loss_g" in seen[0][2]
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert {"acc_rgb", "acc_texture", "ssim", "lum_corr", "feature_frechet"} <= set(rows[-1]["eval"])
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_000004.png"]
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 4
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("tiny: 4 steps") and "checkpoint.safetensors" in out[0]


def test_shipped_recipes_load():
    from pathlib import Path

    from interp_gan.config import load_recipe
    root = Path(__file__).resolve().parents[2] / "training"
    demo, big = load_recipe(root / "demo.toml"), load_recipe(root / "gpu256.toml")
    assert demo.data.image_size == 64 and demo.data.styles == ("lite01", "lite03", "lite06", "lite17")
    assert demo.train.w_style_hp > demo.train.w_style    # the high-passed Gram term is what teaches texture
    assert big.data.image_size == 256 and big.train.device == "cuda"
