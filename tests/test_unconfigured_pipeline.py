"""The thorough pipeline (analyses/full.toml) on a model nobody configured: a CycleGAN-family
ResNet generator with random weights, loaded from a .pth in the reference layout (and with its
blocks' attribute renamed ``block``, a re-implementation the family parser reads), no layer
named anywhere. Every analysis runs
or skips with its reason; none fails. Sizes are tiny (overrides), the analyses and their
defaults are full.toml's."""
import json
from pathlib import Path

import pytest
import torch

from interp_gan.config import load_pipeline
from interp_gan.models.cyclegan import CycleGANGenerator
from interp_gan.pipeline import analyze

FULL = Path(__file__).resolve().parents[1] / "analyses" / "full.toml"
TINY = ["n_images=16", "image_size=32", "batch_size=8", "device=cpu",
        "analyses.overview.n_images=2",
        "analyses.dissection.n_boot=20", "analyses.dissection.n_perm=20",
        "analyses.discriminator_dissection.n_boot=20", "analyses.discriminator_dissection.n_perm=20",
        "analyses.style_units.n_boot=20", "analyses.style_units.n_perm=20",
        "analyses.ablation.n_random=3", "analyses.ablation.n_boot=20",
        "analyses.style_edits.n_random=3", "analyses.style_edits.n_boot=20",
        "analyses.directions.n_samples=32", "analyses.directions.n_random=3", "analyses.directions.n_random_max=6",
        "analyses.directions.n_images=8",
        "analyses.directions.n_boot=20", "analyses.directions.n_perm=20", "analyses.directions.voynov_steps=10",
        "analyses.directions.voynov_restarts=1",
        "analyses.style_interpolation.n_random=3", "analyses.style_interpolation.n_random_max=6",
        "analyses.style_interpolation.n_other=3",
        "analyses.style_interpolation.n_boot=20", "analyses.style_interpolation.n_perm=20",
        "analyses.embedding.n_samples=16", "analyses.embedding.methods=['pca']",
        "analyses.attribution.n_images=2", "analyses.attribution.n_steps=4", "analyses.attribution.sanity_images=4",
        "analyses.attribution.label_images=8", "analyses.attribution.label_steps=10"]
SKIPS = {"style_units": "one style", "ablation": "one style", "discriminator_dissection": "no discriminator",
         "style_edits": "one style", "style_interpolation": "no style code space",
         "agreement": "one style"}


def family_pipeline():
    """full.toml at the TINY sizes for another family's wiring check (every analysis runs or skips
    with its reason on that family's subject), without replication: it re-runs the other analyses
    with other seeds, nothing a family changes, and the reference test below keeps it. The family
    tests also write no paper/ folder (analyze(..., paper=False)): both keep CI's time in bounds."""
    import dataclasses
    cfg = load_pipeline(FULL, TINY)
    return dataclasses.replace(cfg, analyses=tuple(s for s in cfg.analyses if s.name != "replication"))



def analyze_family(path, out_dir, reasons: bool = False) -> dict:
    """Run ``family_pipeline`` on one family's file: no analysis fails, every one is in findings.json,
    exactly those in SKIPS skip (``reasons``: each with its SKIPS reason). Returns the findings."""
    import json

    from interp_gan.pipeline import analyze
    cfg = family_pipeline()
    _, failed = analyze(path, cfg, out_dir=out_dir, paper=False)
    assert failed == []
    found = json.loads((out_dir / "findings.json").read_text())
    assert set(found) == {a.name for a in cfg.analyses}
    for name, f in found.items():
        assert bool(f["skipped"]) == (name in SKIPS), (name, f["skipped"])
        if reasons and f["skipped"]:
            assert SKIPS[name] in f["skipped"], (name, f["skipped"])
    return found

def _pth(tmp_path, block="conv_block"):
    torch.manual_seed(0)
    G = CycleGANGenerator(ngf=4, n_blocks=2)
    path = tmp_path / "latest_net_G_A.pth"
    torch.save({k.replace(".conv_block.", f".{block}."): v for k, v in G.state_dict().items()}, path)
    return path


def _findings(report):
    found = json.loads((Path(report) / "findings.json").read_text())
    rows = found["findings"] if isinstance(found, dict) and "findings" in found else found
    return {f["analysis"]: f for f in (rows if isinstance(rows, list) else rows.values())}


@pytest.mark.slow
@pytest.mark.parametrize("block", ["conv_block", "block"], ids=["reference", "family_parser"])
def test_full_pipeline_runs_or_skips_every_analysis_with_a_reason(tmp_path, capsys, block):
    cfg = load_pipeline(FULL, TINY)
    names = [s.name for s in cfg.analyses]
    assert "discriminator_dissection" in names and "attribution" in names
    report, failed = analyze(_pth(tmp_path, block), cfg, out_dir=tmp_path / "rep")
    assert failed == []
    found = _findings(report)
    assert set(found) == set(names)
    for name, f in found.items():
        if name in SKIPS:
            assert f["skipped"] and SKIPS[name] in f["skipped"], (name, f["skipped"])
        else:
            assert not f["skipped"], (name, f["skipped"])
    # the defaults a model nobody configured gets, each said in the notes
    model = "CycleGANGenerator" if block == "conv_block" else "ResnetGenerator"
    notes = {n: " ".join(f["notes"]) for n, f in found.items()}
    assert "chosen by default" in notes["directions"] and "no layer given, used" in notes["embedding"]
    import pandas as pd
    from interp_gan.harvest.hooks import spatial_layers
    from interp_gan.subject.loading import load_subject
    every_conv = spatial_layers(load_subject(tmp_path / "latest_net_G_A.pth", device="cpu").generator)
    dissected = list(dict.fromkeys(pd.read_csv(Path(report) / "findings" / "dissection_units.csv")["layer"]))
    assert dissected == every_conv and len(every_conv) == 2 * 2 + 6           # no budget cut on a tiny model
    assert type(load_subject(tmp_path / "latest_net_G_A.pth", device="cpu").generator).__name__ == model
    out = capsys.readouterr().out
    assert "estimate (measured on cpu at 32 px" in out and "estimate vs actual" in out, model
    for name in names:
        assert f"{name} ... (estimated" in out


@pytest.mark.slow
def test_a_pipeline_budget_that_forces_cuts_says_them_in_the_notes_and_the_report(tmp_path):
    cfg = load_pipeline(FULL, TINY + ["budget_s=0.5", "analyses.attribution.sanity_steps=5",
                                      "analyses.attribution.n_steps=64", "analyses.attribution.n_images=4"])
    report, failed = analyze(_pth(tmp_path), cfg, out_dir=tmp_path / "rep")
    assert failed == []
    att = _findings(report)["attribution"]
    cut = [n for n in att["notes"] if n.startswith("budget of attribution")]
    assert len(cut) == 1 and "sanity_steps 5 -> 1" in cut[0] and "n_steps 64 -> " in cut[0]
    assert att["params"]["budget_s"] > 0 and att["params"]["sized_to_budget"]["sanity_steps"] == 1
    html = (Path(report) / "index.html").read_text()
    assert "budget of attribution: estimated" in html
