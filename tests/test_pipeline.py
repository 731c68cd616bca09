"""End to end through pipeline.analyze: a checkpoint or factory, a data folder, the report files."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from interp_gan.config import ModelConfig, PipelineConfig, Recipe
from interp_gan.models import StyleNet
from interp_gan.pipeline import analyze
from interp_gan.checkpoint import save_checkpoint


def _images(folder, n, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def _pipeline(**analyses):
    return PipelineConfig.from_dict({"name": "t", "n_images": 16, "image_size": 32, "batch_size": 8,
                                     "device": "cpu", "analyses": analyses})


@pytest.mark.slow
def test_checkpoint_with_content_and_style_folders(tmp_path):
    torch.manual_seed(0)
    G = StyleNet(2, ch=4, n_down=1, n_blocks=2, style_dim=8, latent_dim=4)
    ckpt = save_checkpoint(tmp_path / "run" / "checkpoint.safetensors", generator=G, style_names=["a", "b"],
                           recipe=Recipe(model=ModelConfig(ch=4, n_down=1, n_blocks=2, style_dim=8, latent_dim=4)),
                           step=1, fingerprint="0" * 64)
    _images(tmp_path / "data" / "content", 20, 0)
    _images(tmp_path / "data" / "style" / "a", 4, 1)
    _images(tmp_path / "data" / "style" / "b", 4, 2)
    cfg = _pipeline(overview={"n_images": 2}, dissection={"layers": ["blocks.*.conv2"], "n_boot": 20, "n_perm": 20})
    report, failed = analyze(ckpt, cfg, out_dir=tmp_path / "rep", data=str(tmp_path / "data"))
    assert failed == []
    units = pd.read_csv(report / "findings" / "dissection_units.csv")
    assert {"layer", "unit", "concept", "iou", "ci_low", "ci_high", "p_value", "q_value"} <= set(units.columns)
    assert set(units.layer) == {"blocks.0.conv2", "blocks.1.conv2"} and len(units) == 16
    manifest = json.loads((report / "manifest.json").read_text())
    assert manifest["checkpoint_sha256"] and manifest["data_fingerprint"]
    assert "http" not in (report / "index.html").read_text().split("<body")[0].replace("http-equiv", "")


@pytest.mark.slow
def test_factory_module_and_a_failing_analysis_is_reported_not_raised(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import torch\ndef make():\n    torch.manual_seed(0)\n"
                 "    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(4, 3, 1))\n")
    _images(tmp_path / "content", 16, 0)
    cfg = _pipeline(dissection={"n_boot": 20, "n_perm": 20}, ablation={}, dissection_typo={})
    with pytest.raises(LookupError, match="dissection_typo"):  # a config error, said before any work
        analyze(f"{f}:make", cfg, out_dir=tmp_path / "rep", data=str(tmp_path / "content"))
    assert not (tmp_path / "rep").exists()
    cfg = _pipeline(dissection={"n_boot": 20, "n_perm": 20}, ablation={}, directions={"layer": "nope"})
    report, failed = analyze(f"{f}:make", cfg, out_dir=tmp_path / "rep", data=str(tmp_path / "content"))
    assert failed == ["directions"]            # a layer the model does not have: a clear error, recorded
    findings = json.loads((report / "findings.json").read_text())
    by_name = {f["analysis"]: f for f in findings["findings"]} if "findings" in findings else findings
    assert "no layer named" in json.dumps(by_name["directions"])
    assert "one style" in json.dumps(by_name["ablation"])  # skipped with its reason
    units = pd.read_csv(report / "findings" / "dissection_units.csv")
    assert set(units.layer.astype(str)) == {"0", "1"}      # no layers named: every conv layer
