"""A StarGAN v1 generator checkpoint (the authors' reference layout) as a multi-domain Subject.

The reference generator is rebuilt here independently, exactly as the authors build it
(InstanceNorm with track_running_stats=True, in-place ReLUs), run in train mode so its
running statistics are non-trivial, and saved as a plain state_dict named like theirs.
"""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from interp_gan.analyses.base import AnalysisData, build_analysis
from interp_gan.subject.loading import load_subject
from interp_gan.subject.protocol import Subject
from interp_gan.config import PipelineConfig
from interp_gan.models import StarGANGenerator, build_model
from interp_gan.models.stargan import infer_stargan_config

C_DIM = 3


class _RefBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        norm = lambda: nn.InstanceNorm2d(d, affine=True, track_running_stats=True)  # noqa: E731
        self.main = nn.Sequential(nn.Conv2d(d, d, 3, 1, 1, bias=False), norm(), nn.ReLU(inplace=True),
                                  nn.Conv2d(d, d, 3, 1, 1, bias=False), norm())

    def forward(self, x):
        return x + self.main(x)


class _Reference(nn.Module):
    """yunjey/stargan ``Generator(conv_dim, c_dim, repeat_num)``, module for module."""

    def __init__(self, conv_dim=8, c_dim=C_DIM, repeat_num=2):
        super().__init__()
        norm = lambda d: nn.InstanceNorm2d(d, affine=True, track_running_stats=True)  # noqa: E731
        m = [nn.Conv2d(3 + c_dim, conv_dim, 7, 1, 3, bias=False), norm(conv_dim), nn.ReLU(inplace=True)]
        d = conv_dim
        for _ in range(2):
            m += [nn.Conv2d(d, 2 * d, 4, 2, 1, bias=False), norm(2 * d), nn.ReLU(inplace=True)]
            d *= 2
        m += [_RefBlock(d) for _ in range(repeat_num)]
        for _ in range(2):
            m += [nn.ConvTranspose2d(d, d // 2, 4, 2, 1, bias=False), norm(d // 2), nn.ReLU(inplace=True)]
            d //= 2
        m += [nn.Conv2d(d, 3, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*m)

    def forward(self, x, c):
        c = c.view(c.size(0), c.size(1), 1, 1).repeat(1, 1, x.size(2), x.size(3))
        return self.main(torch.cat([x, c], dim=1))


def _content(n, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture
def reference(tmp_path):
    """(path of 200000-G.ckpt, the reference module) with running stats moved off 0 / 1."""
    torch.manual_seed(0)
    R = _Reference().train()
    with torch.no_grad():
        for i in range(3):
            R(_content(4, seed=10 + i) * 3 + 0.5, torch.eye(C_DIM)[torch.arange(4) % C_DIM])
    p = tmp_path / "200000-G.ckpt"
    torch.save(R.state_dict(), p)
    return p, R


def test_loads_with_instance_statistics_not_the_running_ones(reference):
    path, R = reference
    assert "main.1.running_mean" in torch.load(path, weights_only=True)   # the reference keeps them
    s = load_subject(path, device="cpu")
    assert isinstance(s.generator, StarGANGenerator) and not s.generator.training
    assert s.num_styles == C_DIM and s.style_names == ["domain0", "domain1", "domain2"]
    assert s.meta["model"] == {"name": "stargan_v1", "conv_dim": 8, "c_dim": C_DIM, "repeat_num": 2}
    assert "stargan#102" in s.meta["normalization"]
    x, ids = _content(6), torch.arange(6) % C_DIM
    c = torch.eye(C_DIM)[ids]
    with torch.no_grad():
        out = s.generate(x, ids)
        assert torch.allclose(out, R.train()(x, c), atol=1e-6)        # per-instance statistics
        assert (out - R.eval()(x, c)).abs().max() > 0.1                # not the stored running ones
        assert (s.generate(x, torch.zeros_like(ids)) - s.generate(x, torch.ones_like(ids))).abs().max() > 1e-3


def test_old_checkpoints_without_num_batches_tracked_load_and_other_keys_are_strict(reference, tmp_path):
    path, R = reference
    sd = torch.load(path, weights_only=True)
    old = tmp_path / "20_3000_G.pth"                                  # the older code's name and keys
    torch.save({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, old)
    x = _content(2)
    with torch.no_grad():
        assert torch.equal(load_subject(old, device="cpu").generate(x, torch.tensor([0, 2])),
                           load_subject(path, device="cpu").generate(x, torch.tensor([0, 2])))
    bad = tmp_path / "bad-G.ckpt"
    torch.save({k: v for k, v in sd.items() if k != "main.9.main.1.weight"}, bad)
    with pytest.raises(ValueError, match=r"does not match the StarGAN v1 generator layout.*main\.9\.main\.1\.weight"):
        load_subject(bad, device="cpu")


def test_style_code_space_is_the_domain_label_space(reference):
    s = load_subject(reference[0], device="cpu")
    assert s.has_latent and s.latent_dim == 0 and s.style_dim == C_DIM
    z = s.sample_z(5)
    assert z.shape == (5, 0)
    ids = torch.tensor([0, 1, 2, 1, 0])
    code = s.style_code(ids, z)
    assert torch.equal(code, torch.eye(C_DIM)[ids])
    x = _content(5)
    with torch.no_grad():
        assert torch.equal(s.stylize_code(x, code), s.generate(x, ids))
        e0, e1 = torch.eye(C_DIM)[[0] * 5], torch.eye(C_DIM)[[1] * 5]
        a, b, mid = s.stylize_code(x, e0), s.stylize_code(x, e1), s.stylize_code(x, (e0 + e1) / 2)
        assert (mid - a).abs().mean() > 1e-3 and (mid - b).abs().mean() > 1e-3    # labels interpolate
    with pytest.raises(ValueError, match=r"domain label c must be \[N, c_dim\] = \[5, 3\]; got \(5, 4\)"):
        s.stylize_code(x, torch.zeros(5, 4))
    with pytest.raises(ValueError, match="no latent z"):                          # unchanged for no-code subjects
        Subject.from_module(nn.Conv2d(3, 3, 1)).sample_z(2)


def test_convert_with_style_names_round_trips(reference, tmp_path, capsys):
    from interp_gan.cli import main

    path, _ = reference
    out = tmp_path / "stargan.safetensors"
    assert main(["convert", str(path), str(tmp_path / "x.safetensors"), "--style-names", "a,b"]) == 2
    assert "give 3 distinct non-empty names" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()
    assert main(["convert", str(path), str(out), "--style-names", "black_hair, blond_hair,male"]) == 0
    s = load_subject(out, device="cpu")
    assert s.style_names == ["black_hair", "blond_hair", "male"]
    assert s.meta["model"]["name"] == "stargan_v1" and s.meta["converted_from"]["path"] == str(path)
    x, ids = _content(3), torch.tensor([2, 0, 1])
    with torch.no_grad():
        assert torch.equal(s.generate(x, ids), load_subject(path, device="cpu").generate(x, ids))
    assert build_model("stargan_v1", conv_dim=8, c_dim=C_DIM, repeat_num=2).c_dim == C_DIM
    assert main(["inspect", str(out), "--size", "32"]) == 0
    assert "main.9.main.0" in capsys.readouterr().out


def test_a_state_dict_of_another_model_is_refused_clearly(tmp_path):
    p = tmp_path / "other.ckpt"
    torch.save(nn.Linear(3, 3).state_dict(), p)
    with pytest.raises(ValueError, match="neither a CycleGAN nor a StarGAN v1 generator.*'weight'"):
        load_subject(p, device="cpu")
    d = tmp_path / "200000-D.ckpt"                       # StarGAN's discriminator: 3 input channels, two heads
    torch.save({"main.0.weight": torch.zeros(8, 3, 4, 4), "main.0.bias": torch.zeros(8),
                "conv1.weight": torch.zeros(1, 8, 3, 3), "conv2.weight": torch.zeros(3, 8, 2, 2)}, d)
    with pytest.raises(ValueError, match="looks like a StarGAN discriminator"):
        load_subject(d, device="cpu")
    with pytest.raises(ValueError, match="not a StarGAN v1 generator state_dict"):
        infer_stargan_config({"main.0.weight": torch.zeros(8, 3, 7, 7)})


class _PlantedClassifier(nn.Module):
    """p(domain s) from how close each image is to G(content_i, e_s): a classifier that knows the answer."""

    def __init__(self, subject, content):
        super().__init__()
        with torch.no_grad():
            refs = [subject.generate(content, torch.full((len(content),), k)) for k in range(subject.num_styles)]
        self.refs = torch.stack(refs, 1)                                      # [n, S, 3, H, W]
        self.scale = float((self.refs[:, 0] - self.refs[:, 1]).pow(2).mean())

    def forward(self, img):                                                  # the evaluation images, in order
        return -(img[:, None] - self.refs).pow(2).mean(dim=(2, 3, 4)) / self.scale * 4


def test_planted_direction_e1_minus_e0_moves_toward_domain1(reference):
    s = load_subject(reference[0], device="cpu")
    content = _content(24, seed=3)
    data = AnalysisData(content=content, style_ids=torch.arange(24) % C_DIM, z=None, style_images=None,
                        style_labels=None, fingerprint="t", batch_size=8)
    s.classifier = _PlantedClassifier(s, content[:12])
    f = build_analysis("directions", methods=("svm",), space="style_code", n_samples=48, n_images=12,
                       steps=(0, 1), n_boot=200, n_perm=200).run(s, data)
    t = f.tables["directions"].set_index("label")
    v = f.arrays["directions"][list(t.index).index("domain0->domain1")]
    assert np.allclose(v, np.array([-1, 1, 0]) / np.sqrt(2), atol=0.05)     # the SVM normal is e1 - e0
    row = t.loc["domain0->domain1"]
    assert row["space"] == "style_code" and row["style"] == "domain1" and row["ci_low"] > 0
    z = build_analysis("directions", methods=("random",), space="z").run(s, data)
    assert "space='z' needs a noise input z" in z.skipped and "style_code" in z.skipped


@pytest.mark.slow
def test_the_analyses_run_end_to_end_on_a_stargan_checkpoint(reference, tmp_path):
    from interp_gan.pipeline import analyze

    rng = np.random.default_rng(0)
    (tmp_path / "content").mkdir()
    for i in range(24):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "content" / f"{i}.png")
    cfg = PipelineConfig.from_dict({"name": "t", "n_images": 24, "image_size": 32, "batch_size": 8, "device": "cpu",
                                    "analyses": {
                                        "dissection": {"n_boot": 20, "n_perm": 20},
                                        "style_units": {"n_boot": 20, "n_perm": 20},
                                        "ablation": {"ks": [1, 2], "n_random": 2, "n_boot": 20},
                                        "directions": {"methods": ["pca", "svm", "random"], "n_samples": 48,
                                                       "n_random": 3, "n_images": 8, "n_boot": 50, "n_perm": 50}}})
    report, failed = analyze(reference[0], cfg, out_dir=tmp_path / "rep", data=str(tmp_path / "content"))
    assert failed == []
    findings = json.loads((report / "findings.json").read_text())
    assert not any(f.get("skipped") for f in findings.values())
    tables = {n: pd.read_csv(report / "findings" / f"{n}.csv")
              for n in ("dissection_units", "style_units", "ablation", "directions")}
    assert set(tables["style_units"]["style"]) == {"domain0", "domain1", "domain2"}
    assert {"main.0", "main.9.main.0", "main.11"} <= set(tables["style_units"]["layer"])   # every conv layer
    assert set(tables["directions"]["space"]) == {"style_code"}
    assert {"domain0->domain1", "domain1->domain2"} <= set(tables["directions"]["label"])
    assert len(tables["dissection_units"]) and len(tables["ablation"])
