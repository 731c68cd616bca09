"""``interp-gan analyze runs/NAME --over-steps`` on a tiny run: every kept step analysed with the same
pipeline, dynamics.csv with the expected rows, the section in the report; a run without snapshots
is one clear line (docs/dynamics.md)."""
import json

import pandas as pd

from interp_gan.cli import main
from interp_gan.config import load_pipeline
from interp_gan.findings import Finding
from interp_gan.over_steps import analyze_over_steps
from interp_gan.reporting import ReportContext
from interp_gan.reporting.section_dynamics import dynamics_section
from interp_gan.training import train
from conftest import make_tiny_data, tiny_recipe

PIPELINE = """
name = "tiny-dynamics"
n_images = 32
image_size = 32
batch_size = 16
seed = 0
data = "embedded"
[analyses.dissection]
layers = ["blocks.0"]
n_boot = 20
n_perm = 20
control = false
[analyses.style_units]
layers = ["blocks.0", "decoder.net.1"]
n_perm = 50
control = false
"""


def test_over_steps_writes_dynamics_csv_and_one_report_per_step(tmp_path, capsys):
    run = tmp_path / "runs" / "tiny"
    train(tiny_recipe(steps=4, keep_every=2), run, data=make_tiny_data(size=32), progress=False)
    pipe = tmp_path / "tiny.toml"
    pipe.write_text(PIPELINE)
    out = tmp_path / "reports" / "tiny"
    # the function behind `interp-gan analyze RUN --over-steps` (paper/ off: its figure exports need Chromium)
    report, failed = analyze_over_steps(run, load_pipeline(pipe), out_dir=out, paper=False)
    assert report == out and failed == []
    for s in (0, 2):                                   # the snapshots; step 4 is the final checkpoint's report
        assert (out / "steps" / f"step_{s:06d}" / "findings" / "style_units" / "finding.json").is_file()
    assert not (out / "steps" / "step_000004").exists()
    df = pd.read_csv(out / "dynamics.csv")
    assert {"step", "measure", "layer", "unit", "concept", "style", "value", "ci_low", "ci_high"} <= set(df.columns)
    assert sorted(df["step"].unique()) == [0, 2, 4]
    sel = df[df["measure"] == "style_selectivity"]
    # top_k = 2 units for each of the 4 styles, by identity and by match, at each of the 3 steps
    assert len(sel) == 4 * 2 * 2 * 3 and set(sel["tracking"]) == {"identity", "match"}
    assert (sel["ci_low"] <= sel["value"]).all() and (sel["value"] <= sel["ci_high"]).all()
    final = sel[(sel["step"] == 4) & (sel["tracking"] == "match")]
    assert (final["matched_unit"] == final["unit"]).all()   # at the final step a unit is its own match
    acc = df[df["measure"] == "classifier_accuracy"]
    assert set(acc["method"]) == {"rgb", "texture"} and len(acc) == 2 * 3
    assert set(df.loc[df["measure"] == "train_eval", "step"]) == {4}   # the run's own eval (eval_every = 1000)
    em = pd.read_csv(out / "findings" / "dynamics_emergence.csv")
    assert len(em) == 4 * 2 * 2
    html = (out / "index.html").read_text()
    assert "Training dynamics" in html and "Emergence steps" in html
    # the top report is the final checkpoint's, with the dynamics added; its saved Finding renders alone
    f = Finding.load(out / "findings" / "dynamics")
    assert dynamics_section(f, ReportContext()).title == "Training dynamics"
    assert f.provenance["checkpoint_sha256"] == json.loads((out / "manifest.json").read_text())["checkpoint_sha256"]


def test_a_run_without_snapshots_is_one_clear_line(tmp_path, capsys):
    run = tmp_path / "plain"
    train(tiny_recipe(steps=1), run, data=make_tiny_data(size=32), progress=False)
    capsys.readouterr()
    assert main(["analyze", str(run), "--over-steps"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no step snapshots" in err[0] and "train.keep_every" in err[0]
    assert main(["analyze", str(run / "checkpoint.safetensors"), "--over-steps"]) == 2
    assert "takes a run directory" in capsys.readouterr().err
