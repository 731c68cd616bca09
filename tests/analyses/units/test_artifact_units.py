"""Artifact units: a toy generator whose unit 2 paints a bright blob that the discriminator
calls unreal; that unit is ranked first, beats random unit sets, and `repair` removes the blob."""
import numpy as np
import pytest
import torch
from torch import nn

from interp_gan.analyses import build_analysis
from interp_gan.analyses.base import AnalysisData
from interp_gan.analyses.units.artifacts import kid, repair_edit, unit_scores
from interp_gan.subject.protocol import Subject

BLOB_UNIT = 2


class BlobFeat(nn.Conv2d):
    """A 1x1 conv of the content whose unit BLOB_UNIT also paints a disc of height 4 near the
    top-left corner (the artifact) on the module's output, where hooks and edits act."""

    def forward(self, x):
        h = super().forward(x)
        yy, xx = torch.meshgrid(torch.arange(x.shape[2]), torch.arange(x.shape[3]), indexing="ij")
        disc = (((yy - 6) ** 2 + (xx - 6) ** 2) < 16).float().to(x)
        h = h.clone()
        h[:, BLOB_UNIT] = h[:, BLOB_UNIT] + 4 * disc
        return h


class BlobGenerator(nn.Module):
    """feat: 6 units (BlobFeat); out: a 1x1 conv back to RGB that passes unit BLOB_UNIT through."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.feat = BlobFeat(3, 6, 1)
        self.out = nn.Conv2d(6, 3, 1)
        with torch.no_grad():
            self.feat.weight.copy_(torch.randn(6, 3, 1, 1, generator=g) * 0.3)
            self.feat.bias.zero_()
            self.feat.weight[BLOB_UNIT] = 0
            self.out.weight.copy_(torch.randn(3, 6, 1, 1, generator=g) * 0.2)
            self.out.weight[:, BLOB_UNIT] = 1.0
            self.out.bias.zero_()

    def forward(self, x):
        return torch.tanh(self.out(self.feat(x)))


class BrightD(nn.Module):
    """Realism logit: real images never exceed 0.6; bright pixels are unreal."""

    def adv_logit(self, images, style_ids):
        return -torch.relu(images - 0.6).mean(dim=(1, 2, 3)) * 50


class MaxMeanClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        f = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], 1)
        return self.head(f)


def _toy():
    torch.manual_seed(0)
    G = BlobGenerator()
    subject = Subject.from_module(G, style_names=["a", "b"], discriminator=BrightD(),
                                  classifier=MaxMeanClassifier())
    g = torch.Generator().manual_seed(1)
    content = torch.rand(16, 3, 20, 20, generator=g) * 1.0 - 0.5
    real = torch.rand(24, 3, 20, 20, generator=g) * 1.0 - 0.5
    data = AnalysisData(content=content, style_ids=torch.arange(16) % 2, style_images=real,
                        style_labels=torch.arange(24) % 2, fingerprint="blob", batch_size=8)
    return subject.eval(), data


def test_blob_unit_ranks_first_and_beats_random_sets():
    subject, data = _toy()
    f = build_analysis("artifact_units", layer="feat", k=1, n_random=9, n_boot=50).run(subject, data)
    units = f.tables["artifact_units"]
    assert int(units["unit"].iloc[0]) == BLOB_UNIT and units["rank"].iloc[0] == 1
    assert units["ci_low"].iloc[0] > 0                          # D finds the images more real without it
    assert units["d_kid"].iloc[0] < 0 and units["d_kid"].iloc[0] == units["d_kid"].min()
    rep = f.tables["artifact_repair"].set_index(["baseline", "measure"])
    assert rep.loc[("top", "d_logit"), "units"] == str(BLOB_UNIT)
    assert rep.loc[("top", "d_logit"), "p_random"] <= 0.1 and rep.loc[("top", "d_kid"), "effect"] < 0


def test_repair_removes_the_blob():
    subject, data = _toy()
    edit = repair_edit(subject, data, layer="feat", k=1)
    assert edit.edits[0].units == (BLOB_UNIT,)
    with torch.no_grad():
        before = subject.generate(data.content, data.style_ids)
        with edit.apply(subject):
            after = subject.generate(data.content, data.style_ids)
    blob = (slice(None), slice(None), slice(3, 10), slice(3, 10))
    assert before[blob].mean() > 0.6 and after[blob].mean() < 0.3      # the disc is gone
    assert (after > 0.6).float().mean() < 0.01


def test_a_model_without_artifact_has_no_clear_winner():
    subject, data = _toy()
    scores = unit_scores(subject, data, "feat")
    assert np.argmax(scores) == BLOB_UNIT                       # control for the test above: the planted unit
    with torch.no_grad():                                        # remove the blob's source: now no unit stands out
        subject.generator.feat.forward = nn.Conv2d.forward.__get__(subject.generator.feat)
    flat = unit_scores(subject, data, "feat")
    assert flat.max() < 0.5 * scores.max()


def test_kid_is_zero_for_same_distribution_and_positive_for_shifted():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 4)), rng.normal(size=(200, 4))
    assert abs(kid(a, b)) < 0.05 and kid(a + 2, b) > 0.5


def test_cli_repair_writes_the_edited_checkpoint(tmp_path, capsys):
    from PIL import Image

    from interp_gan.checkpoint import read_metadata, save_checkpoint
    from interp_gan.cli import main
    from interp_gan.config import ModelConfig, Recipe
    from interp_gan.models import StyleDiscriminator, StyleNet

    torch.manual_seed(0)
    mc = ModelConfig(ch=4, n_down=1, n_blocks=2, style_dim=8, latent_dim=4, d_ch=4, d_layers=2)
    ckpt = save_checkpoint(tmp_path / "c.safetensors", generator=StyleNet(2, ch=4, n_down=1, n_blocks=2, style_dim=8,
                                                                         latent_dim=4),
                           discriminator=StyleDiscriminator(2, ch=4, n_layers=2), style_names=["a", "b"],
                           recipe=Recipe(model=mc), step=1, fingerprint="f" * 64)
    folder = tmp_path / "content"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "repaired.safetensors"
    rc = main(["repair", str(ckpt), "--layer", "blocks.1.conv2", "--k", "2", "--data", str(folder),
               "--n-images", "6", "--image-size", "32", "--device", "cpu", "--out", str(out)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    edits = read_metadata(out)["edits"]
    assert len(edits) == 1 and edits[0]["layer"] == "blocks.1.conv2" and len(edits[0]["units"]) == 2
    assert "ablate blocks.1.conv2 units" in printed.out
    rc = main(["repair", str(ckpt), "--layer", "blocks.1.conv2", "--k", "99", "--data", str(folder),
               "--n-images", "6", "--image-size", "32", "--device", "cpu", "--out", str(tmp_path / "x.safetensors")])
    assert rc == 2 and "--k must be in 1..8" in capsys.readouterr().err
