"""StyleGAN2 snapshots as Subjects: .pkl -> images, convert -> identical images, the W / W+ / S
spaces, content ignored, layers by name, a reduced `interp-gan analyze` run, and a planted
StyleSpace channel that both the directions and the dissection analyses find."""
import json
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import interp_gan.analyses  # noqa: F401 - registers the analyses
from interp_gan.analyses.base import AnalysisData, build_analysis
from interp_gan.checkpoint import read_metadata
from interp_gan.harvest.hooks import Trace, spatial_layers
from interp_gan.subject.loading import convert_checkpoint, load_subject
from interp_gan.util import sha256_file
from tests.subject.nvlabs_snapshot import tiny_generator, write_snapshot


def _data(subject, n=8, size=16, seed=0):
    return AnalysisData(content=torch.zeros(n, 3, size, size), style_ids=torch.arange(n) % subject.num_styles,
                        z=subject.sample_z(n, seed), fingerprint="stylegan-test", batch_size=8)


@pytest.mark.parametrize("res", [64, 256])
def test_pkl_and_converted_safetensors_give_identical_images(tmp_path, res):
    G = tiny_generator(res, seed=res, channel_max=8 if res == 256 else 16)
    pkl = write_snapshot(tmp_path / "network-snapshot.pkl", G)
    a = load_subject(str(pkl), device="cpu")
    z = a.sample_z(2, seed=1)
    ids = torch.zeros(2, dtype=torch.long)
    with torch.no_grad():
        img_pkl = a.generate(torch.zeros(2, 3, 8, 8), ids, z)
        torch.testing.assert_close(img_pkl, G(z).clamp(-1, 1))
    assert img_pkl.shape == (2, 3, res, res) and img_pkl.std() > 0.05
    out = convert_checkpoint(pkl, tmp_path / "g.safetensors")
    meta = read_metadata(out)
    assert meta["model"]["name"] == "stylegan2" and meta["resolution"] == res
    assert meta["mapping_layers"] == 2 and meta["conditioning_size"] == 0
    assert meta["channel_base"] == G.config["synthesis_kwargs"]["channel_base"] and meta["channel_max"] in (8, 16)
    assert meta["converted_from"]["sha256"] == sha256_file(pkl) and meta["style_names"] == ["sample"]
    b = load_subject(str(out), device="cpu")
    with torch.no_grad():
        assert torch.equal(b.generate(torch.zeros(2, 3, 8, 8), ids, z), img_pkl)
    assert b.meta["style_space"] == "w" and not b.uses_content


@pytest.mark.parametrize("space,dim", [("w", 16), ("w+", None), ("s", None)])
def test_style_spaces_round_trip(tmp_path, space, dim):
    G = tiny_generator(16, c_dim=3, seed=2)
    pkl = write_snapshot(tmp_path / "cond.pkl", G)
    sub = load_subject(f"{pkl}#space={space},psi=0.7", device="cpu")
    assert sub.style_names == ["class0", "class1", "class2"] and sub.meta["truncation_psi"] == 0.7
    z = sub.sample_z(3, seed=0)
    ids = torch.tensor([0, 1, 2])
    want = {"w": 16, "w+": G.num_ws * 16, "s": sum(a.weight.shape[0] for a in G.style_affines)}[space]
    with torch.no_grad():
        code = sub.style_code(ids, z)
        assert code.shape == (3, want) and sub.style_dim == want
        torch.testing.assert_close(sub.stylize_code(None, code), sub.generate(torch.zeros(3, 3, 8, 8), ids, z),
                                   atol=1e-5, rtol=1e-5)
        ref = G(z, torch.nn.functional.one_hot(ids, 3).float(), truncation_psi=0.7).clamp(-1, 1)
        torch.testing.assert_close(sub.generate(torch.zeros(3, 3, 8, 8), ids, z), ref)


def test_content_is_ignored_and_layers_are_named(tmp_path):
    G = tiny_generator(64, seed=4)
    sub = load_subject(str(write_snapshot(tmp_path / "s.pkl", G)), device="cpu")
    assert sub.style_names == ["sample"] and sub.uses_content is False and sub.latent_dim == G.z_dim
    ids = torch.zeros(2, dtype=torch.long)
    with torch.no_grad():
        a = sub.generate(torch.rand(2, 3, 32, 32), ids)
        b = sub.generate(-torch.rand(2, 3, 64, 64), ids)           # other content, other size: same images
    assert torch.equal(a, b)                                       # and without z: a seeded z
    layers = spatial_layers(sub.generator)
    assert "synthesis.b64.conv1" in layers and "synthesis.b8.conv0" in layers
    assert not any(n.endswith("torgb") for n in layers)            # RGB projections are left out by default
    with torch.no_grad(), Trace(sub.generator, "synthesis.b64.conv1") as t:
        sub.generate(torch.zeros(2, 3, 8, 8), ids)
    assert t.output.shape == (2, G.synthesis.b64.conv1.weight.shape[0], 64, 64)


def test_random_init_control_redraws_every_weight(tmp_path):
    G = tiny_generator(16, seed=5)
    sub = load_subject(str(write_snapshot(tmp_path / "s.pkl", G)), device="cpu")
    ids, z = torch.zeros(2, dtype=torch.long), sub.sample_z(2, 0)
    with torch.no_grad():
        before = sub.generate(None, ids, z)
        with warnings.catch_warnings():
            warnings.simplefilter("error")                          # no parameter is kept trained
            with sub.random_init(seed=0):
                assert not torch.equal(sub.generate(None, ids, z), before)
        assert torch.equal(sub.generate(None, ids, z), before)


def test_sefa_reads_the_affines_in_w_and_skips_elsewhere(tmp_path):
    G = tiny_generator(16, c_dim=2, seed=6)
    pkl = write_snapshot(tmp_path / "s.pkl", G)
    kw = dict(methods=("sefa", "random"), n_samples=32, n_directions=2, n_random=2, n_images=4, steps=(0.0, 2.0),
              n_boot=20, n_perm=20)
    f = build_analysis("directions", **kw).run(sub := load_subject(str(pkl), device="cpu"), _data(sub))
    rows = f.tables["directions"]
    assert (rows["method"] == "sefa").sum() == 2
    from interp_gan.analyses.directions.methods import sefa_directions
    want = sefa_directions([a.weight * a.weight_gain for a in G.style_affines], 2)
    got = f.arrays["directions"][:2]
    assert np.allclose(np.abs((got * want).sum(1)), 1, atol=1e-4)     # the same axes (signs are arbitrary)
    assert len(f.tables["directions_layerwise"]) == 2 * len(G.style_affines)
    s = load_subject(f"{pkl}#space=s", device="cpu")
    f = build_analysis("directions", **kw).run(s, _data(s))
    assert (f.tables["directions"]["method"] == "sefa").sum() == 0
    assert any("sefa skipped" in n and "W" in n for n in f.notes)


def test_options_are_checked(tmp_path):
    pkl = write_snapshot(tmp_path / "s.pkl", tiny_generator(8))
    with pytest.raises(ValueError, match="unknown StyleGAN option"):
        load_subject(f"{pkl}#spce=s")
    with pytest.raises(ValueError, match="space must be one of"):
        load_subject(f"{pkl}#space=q")
    with pytest.raises(ValueError, match="use space='w\\+'"):
        load_subject(f"{pkl}#cutoff=2,psi=0.5")


MINI = """
name = "sg-mini"
n_images = 16
image_size = 32
batch_size = 8
seed = 0
device = "cpu"
[analyses.overview]
n_images = 2
[analyses.dissection]
layers = ["synthesis.b16.conv1", "synthesis.b64.conv1"]
n_boot = 20
n_perm = 20
control = true
[analyses.discriminator_dissection]
n_boot = 20
n_perm = 20
[analyses.style_units]
n_boot = 20
n_perm = 20
[analyses.ablation]
layer = "synthesis.b32.conv1"
ks = [1, 4]
n_random = 2
n_boot = 20
[analyses.directions]
methods = ["pca", "sefa", "random"]
n_samples = 32
n_directions = 2
n_random = 2
n_images = 8
n_boot = 20
n_perm = 20
[analyses.attribution]
n_images = 2
n_steps = 4
sanity_images = 4
label_images = 8
label_steps = 5
"""


def test_analyze_a_64px_snapshot_end_to_end(tmp_path):
    from interp_gan.cli import main

    pkl = write_snapshot(tmp_path / "network-snapshot.pkl", tiny_generator(64, seed=8))
    (tmp_path / "mini.toml").write_text(MINI)
    rc = main(["analyze", str(pkl), "--pipeline", str(tmp_path / "mini.toml"), "--out", str(tmp_path / "rep")])
    assert rc == 0
    findings = json.loads((tmp_path / "rep" / "findings.json").read_text())
    skipped = {k: v.get("skipped") for k, v in findings.items()}
    for ran in ("overview", "dissection", "directions", "discriminator_dissection"):   # D is rebuilt from the pickle
        assert not skipped[ran], (ran, skipped[ran])
    assert "ignores its content input" in skipped["attribution"]
    assert "one style" in skipped["style_units"] and "one style" in skipped["ablation"]
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "This section failed to build" not in html          # 64 px outputs beside 32 px content
    assert "content is shown resized to the output size" in " ".join(findings["overview"]["notes"])


# --- a planted StyleSpace channel ------------------------------------------------------------------------
PLANT = 0          # channel 0 of synthesis.b4.conv1's affine output = StyleSpace coordinate 0


class RedTopLeft(nn.Module):
    """The independent 'classifier' of the toy: the class1 logit is how red the top-left quadrant is."""

    def forward(self, img):
        h, w = img.shape[-2:]
        q = img[:, :, : h // 2, : w // 2]
        r = (q[:, 0] - (q[:, 1] + q[:, 2]) / 2).mean(dim=(1, 2))
        return torch.stack([-2 * r, 2 * r], 1)


def planted_generator(seed=0):
    """A class-conditional 16 px StyleGAN2 in which one StyleSpace channel (b4.conv1's style 0)
    paints the top-left quadrant red when it is positive.

    The class direction u of W (difference of the class means of w) is removed from every affine,
    then affine 0 of b4.conv1 reads s_0 = a (w.u - mid) + b (w.v - mean) with v a second direction:
    the class sets the sign of s_0 most of the time, z flips it for some images of each class.
    Conv unit 0 of b4.conv1 reads only input 0 (the constant's channel 0: ones in the top-left
    2x2 of 4x4), so after demodulation it is sign(s_0) x that region; nothing downstream reads it
    but b4's tRGB, which maps it to red (the other tRGB weights are scaled down to keep the rest
    of the image muted)."""
    G = tiny_generator(16, c_dim=2, seed=seed, channel_max=8, w_dim=16)
    g = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        z = torch.randn(512, G.z_dim, generator=g)
        w = G.mapping(z, torch.nn.functional.one_hot(torch.arange(512) % 2, 2).float())[:, 0]
        u = w[1::2].mean(0) - w[::2].mean(0)
        u = u / u.norm()
        v = torch.randn(G.w_dim, generator=g)
        v = v - (v @ u) * u
        v = v / v.norm()
        for a in G.style_affines:
            a.weight -= (a.weight @ u)[:, None] * u[None]
        pu, pv = w @ u, w @ v
        alpha, beta = 2 / (pu[1::2].mean() - pu[::2].mean()), 1 / pv.std()
        conv = G.synthesis.b4.conv1
        conv.affine.weight[PLANT] = (alpha * u + beta * v) / conv.affine.weight_gain
        conv.affine.bias[PLANT] = -(alpha * (pu[1::2].mean() + pu[::2].mean()) / 2 + beta * pv.mean())
        conv.weight[PLANT] = 0
        conv.weight[PLANT, PLANT, 1, 1] = 1
        conv.weight[PLANT + 1:, PLANT] = 0
        conv.bias[PLANT] = 0
        conv.noise_strength.zero_()
        G.synthesis.b4.const[PLANT] = 0
        G.synthesis.b4.const[PLANT, :2, :2] = 1
        G.synthesis.b8.conv0.weight[:, PLANT] = 0
        for _, blk in G.synthesis.blocks():
            blk.torgb.weight *= 0.2
        rgb = G.synthesis.b4.torgb
        rgb.affine.weight[PLANT] = 0
        rgb.affine.bias[PLANT] = 1
        rgb.weight[:, PLANT, 0, 0] = torch.tensor([3.0, -1.5, -1.5]) * math.sqrt(rgb.weight.shape[1])
    return G


def test_planted_stylespace_channel_is_found_by_directions_and_dissection(tmp_path):
    pkl = write_snapshot(tmp_path / "planted.pkl", planted_generator())
    sub = load_subject(f"{pkl}#space=s", device="cpu")
    sub.classifier = RedTopLeft()
    data = _data(sub, n=64)
    # StyleSpace directions: the class0 -> class1 SVM normal points along the planted coordinate and
    # moves the independent classifier toward class1, beyond every random direction of the same length
    f = build_analysis("directions", methods=("pca", "svm", "random"), n_samples=256, n_directions=2, n_random=19,
                       n_images=16, n_boot=500, n_perm=500).run(sub, data)
    df = f.tables["directions"]
    i = int(np.flatnonzero(df["method"] == "svm")[0])
    row = df.iloc[i]
    assert np.abs(f.arrays["directions"][i]).argmax() == PLANT
    assert row["style"] == "class1" and row["ci_low"] > 0 and row["q_value"] < 0.05
    assert row["p_random"] <= 0.05                                   # the best of 20 (the floor with 19)
    # dissection: unit 0 of synthesis.b4.conv1 (what the planted style drives) is labelled red
    f = build_analysis("dissection", layers=["synthesis.b4.conv1"], n_boot=200, n_perm=2000,
                       control=False).run(sub, data)
    units = f.tables["dissection_units"].set_index("unit")
    assert units.loc[PLANT, "concept"] == "red" and bool(units.loc[PLANT, "labelled"])
    assert units.loc[PLANT, "ci_low"] > 0 and units.loc[PLANT, "q_value"] < 0.05
    assert units["labelled"].sum() == 1
