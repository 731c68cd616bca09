"""The command line: --dry-run prints the resolved config, inspect lists every layer, user errors are one line."""
import json

import torch

from interp_gan.cli import main
from interp_gan.config import ModelConfig, Recipe
from interp_gan.models import StyleNet
from interp_gan.checkpoint import save_checkpoint


def test_dry_run_prints_resolved_config(capsys, tmp_path):
    rc = main(["train", "training/demo.toml", "--set", "train.steps=7", "--out", str(tmp_path / "r"), "--dry-run"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["recipe"]["train"]["steps"] == 7 and out["out"] == str(tmp_path / "r")
    assert not (tmp_path / "r").exists(), "--dry-run must not create the run directory"


def test_bad_override_is_one_line_error(capsys):
    rc = main(["train", "training/demo.toml", "--set", "train.adv_loss=wgan", "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and "adv_loss" in err and "Traceback" not in err


def test_inspect_lists_metadata_and_layer_shapes(capsys, tmp_path):
    torch.manual_seed(0)
    mc = ModelConfig(ch=4, n_down=1, n_blocks=2, style_dim=8, latent_dim=4)
    G = StyleNet(2, ch=4, n_down=1, n_blocks=2, style_dim=8, latent_dim=4)
    ckpt = save_checkpoint(tmp_path / "checkpoint.safetensors", generator=G, style_names=["a", "b"],
                           recipe=Recipe(model=mc), step=3, fingerprint="f" * 64)
    rc = main(["inspect", str(ckpt), "--size", "32"])
    out = capsys.readouterr().out
    assert rc == 0
    assert '"style_names": ["a", "b"]' in out
    # every named layer with its output shape for one 32x32 image
    assert "blocks.1.conv2" in out and "(1, 8, 16, 16)" in out
    assert "decoder.net" in out and "(1, 3, 32, 32)" in out


def test_analyze_needs_a_subject(capsys):
    rc = main(["analyze", "--pipeline", "analyses/dissection.toml"])
    assert rc == 2 and "CHECKPOINT or --model" in capsys.readouterr().err


def test_inspect_keeps_short_lists_on_one_line_so_the_notes_stay_in_view(capsys, tmp_path):
    """Old code: a 9-block CUT generator's inspect printed its 15-layer config one value per line,
    about 130 lines, before the model notes; now one line per layer, and the JSON is the same."""
    from tests.models.cut_reference import reference_state_dict
    torch.save(reference_state_dict(ngf=4, n_blocks=9), tmp_path / "latest_net_G.pth")
    assert main(["inspect", str(tmp_path / "latest_net_G.pth"), "--size", "32"]) == 0
    head = capsys.readouterr().out.split("\nlayers (output shape")[0]
    meta = json.loads(head)
    assert len(meta["metadata"]["model"]["layers"]) == 15 and len(meta["metadata"]["model_notes"]) == 4
    assert len(head.splitlines()) < 45
    assert '{"role": "stem", "in": 3, "out": 4, "k": 7, "bias": true}' in head
    from interp_gan.cli import compact_json
    deep = {"a": [1, 2, {"b": "x" * 200, "c": []}], "d": {}, 3: None, "e": [[1, 2]] * 40}
    assert json.loads(compact_json(deep)) == json.loads(json.dumps(deep))
    assert max(len(line) for line in compact_json(deep).splitlines() if "xxx" not in line) <= 110


def test_every_option_of_every_command_says_what_it_is():
    """``--help`` is the first page a newcomer reads: each argument of each sub-command carries a help line,
    and the top level shows the examples, not reST markup."""
    import argparse

    from interp_gan.cli import build_parser

    parser = build_parser()
    top = parser.format_help()
    assert "``" not in top and "examples:" in top and "interp-gan analyze" in top
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    silent = [f"{name} {a.dest}" for name, p in sub.choices.items() for a in p._actions
              if not isinstance(a, argparse._HelpAction) and not a.help]
    assert silent == []


def test_python_dash_m_runs_the_command():
    """``python -m interp_gan`` works from a checkout that was not installed (no console script)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "interp_gan", "report", "--help"], capture_output=True, text=True,
                          cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0 and "usage: interp-gan report" in done.stdout


def test_analyze_errors_speak_of_pipelines_not_recipes(capsys, tmp_path):
    rc = main(["analyze", "--model", "x.py:f", "--pipeline", str(tmp_path / "nope.toml")])
    assert rc == 2 and f"no such pipeline file: {tmp_path / 'nope.toml'}" in capsys.readouterr().err
    rc = main(["analyze", "--model", "x.py:f", "--pipeline", "analyses/dissection.toml", "--set", "n_images"])
    assert rc == 2 and "--set expects key=value (e.g. n_images=32), got 'n_images'" in capsys.readouterr().err
    rc = main(["train", "training/nope.toml"])
    assert rc == 2 and "no such recipe file" in capsys.readouterr().err


def test_report_refuses_an_out_it_would_ignore(capsys, tmp_path):
    """``report DIR --out X`` re-rendered DIR in place and wrote nothing to X, silently."""
    rc = main(["report", str(tmp_path / "some_report"), "--out", str(tmp_path / "elsewhere")])
    err = capsys.readouterr().err
    assert rc == 2 and "--out is for --compare only" in err and not (tmp_path / "elsewhere").exists()
