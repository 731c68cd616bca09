"""A StyleGAN2 snapshot's D, rebuilt: read from a pickle in NVlabs' exact format (random weights),
strict key checking with one-line errors, the float64 functional reference, .pkl vs converted
.safetensors, ``subject.discriminator`` for the analyses that need one, and the seeded random noise
mode selected in the option string."""
import json
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from interp_gan.checkpoint import read_metadata
from interp_gan.subject.loading import convert_checkpoint, load_subject
from tests.models.test_stylegan2_discriminator import ref_discriminator
from tests.subject.nvlabs_snapshot import nvlabs_modules, snapshot_dict, tiny_discriminator, tiny_generator, \
    write_snapshot


@pytest.mark.parametrize("res,arch,c_dim", [(32, "resnet", 0), (64, "skip", 0), (32, "resnet", 3), (64, "skip", 2)])
def test_d_loads_strict_matches_the_reference_and_survives_convert(tmp_path, res, arch, c_dim):
    G = tiny_generator(res, c_dim=c_dim, seed=res)
    D = tiny_discriminator(res, c_dim=c_dim, architecture=arch, seed=res + 5)
    pkl = write_snapshot(tmp_path / "network-snapshot.pkl", G, D=D)
    sub = load_subject(str(pkl), device="cpu")
    got = sub.discriminator
    assert got is not None and got.config == D.config
    ref_sd, got_sd = D.state_dict(), got.state_dict()
    assert set(got_sd) == set(ref_sd) and all(torch.equal(got_sd[k], ref_sd[k]) for k in ref_sd)
    ids = torch.arange(4) % max(c_dim, 1)
    with torch.no_grad():
        img = sub.generate(None, ids, sub.sample_z(4, seed=2))
        logit = sub.discriminator.adv_logit(img, ids)
    c = F.one_hot(ids, c_dim).float() if c_dim else None
    torch.testing.assert_close(logit, ref_discriminator(D, img, c)[:, 0], atol=2e-4, rtol=1e-4)
    assert sub.meta["discriminator"].startswith(f"rebuilt: StyleGAN2 discriminator ({arch}")
    out = convert_checkpoint(pkl, tmp_path / "g.safetensors")
    meta = read_metadata(out)
    assert meta["discriminator_model"]["name"] == "stylegan2_discriminator"
    assert meta["discriminator_model"]["architecture"] == arch and meta["discriminator"] == sub.meta["discriminator"]
    conv = load_subject(str(out), device="cpu")
    with torch.no_grad():
        assert torch.equal(conv.discriminator.adv_logit(img, ids), logit)
        assert torch.equal(conv.generate(None, ids, sub.sample_z(4, seed=2)), img)


def _edited_d_pickle(tmp_path, edit) -> str:
    G = tiny_generator(16)
    with nvlabs_modules():
        snap = snapshot_dict(G)
        edit(snap["D"].meta["state"])
        path = tmp_path / "bad_d.pkl"
        path.write_bytes(pickle.dumps(snap, protocol=4))
    return str(path)


def test_an_unexpected_or_missing_d_key_is_one_line_naming_it(tmp_path):
    def extra(state):
        state["_modules"]["b4"].meta["state"]["_parameters"]["gain"] = nn.Parameter(torch.ones(1))

    with pytest.raises(ValueError) as e:
        load_subject(_edited_d_pickle(tmp_path, extra), device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and "unexpected ['b4.gain']" in msg and "bad_d.pkl" in msg and "D's weights" in msg

    def missing(state):
        state["_modules"]["b16"].meta["state"]["_modules"]["conv0"].meta["state"]["_parameters"].pop("bias")

    with pytest.raises(ValueError) as e:
        load_subject(_edited_d_pickle(tmp_path, missing), device="cpu")
    assert "\n" not in str(e.value) and "missing ['b16.conv0.bias']" in str(e.value)

    def unknown_kwarg(state):
        state["_init_kwargs"]["epilogue_kwargs"]["mbstd_size"] = 4

    with pytest.raises(ValueError) as e:
        load_subject(_edited_d_pickle(tmp_path, unknown_kwarg), device="cpu")
    assert "\n" not in str(e.value) and "mbstd_size" in str(e.value)


def test_a_d_of_another_resolution_is_refused(tmp_path):
    pkl = write_snapshot(tmp_path / "s.pkl", tiny_generator(16), D=tiny_discriminator(32))
    with pytest.raises(ValueError, match="D judges 32 px images .* G_ema makes 16 px"):
        load_subject(str(pkl), device="cpu")


def test_a_generator_only_pickle_has_no_discriminator(tmp_path):
    pkl = write_snapshot(tmp_path / "s.pkl", tiny_generator(16), with_d=False)
    sub = load_subject(str(pkl), device="cpu")
    assert sub.discriminator is None and sub.meta["discriminator"] == "not in the pickle"
    meta = read_metadata(convert_checkpoint(pkl, tmp_path / "g.safetensors"))
    assert "discriminator_model" not in meta
    assert load_subject(str(tmp_path / "g.safetensors"), device="cpu").discriminator is None


# --- noise_mode="random" ------------------------------------------------------------------------
def test_random_noise_is_seeded_and_const_is_unchanged(tmp_path):
    G = tiny_generator(16, seed=9)
    pkl = write_snapshot(tmp_path / "s.pkl", G)
    ids = torch.zeros(3, dtype=torch.long)
    z = torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        const = load_subject(str(pkl), device="cpu").generate(None, ids, z)
        torch.testing.assert_close(const, G(z).clamp(-1, 1))         # the default: the stored maps
        a = load_subject(f"{pkl}#noise=random,noise_seed=3", device="cpu")
        assert a.meta["noise_mode"] == "random" and a.meta["noise_seed"] == 3
        img = a.generate(None, ids, z)
        assert torch.equal(a.generate(None, ids, z), img)                            # reproducible call to call
        assert torch.equal(load_subject(f"{pkl}#noise=random,noise_seed=3").generate(None, ids, z), img)
        assert torch.equal(a.generate(None, ids[:2], z[:2]), img[:2])                 # batch size does not matter
        other = load_subject(f"{pkl}#noise=random,noise_seed=4", device="cpu").generate(None, ids, z)
        assert (other - img).abs().max() > 1e-3 and (img - const).abs().max() > 1e-3
        none = load_subject(f"{pkl}#noise=none", device="cpu").generate(None, ids, z)
        assert (none - img).abs().max() > 1e-3
        # the noise is what differs: with zero strengths every mode gives the same image
        for m in G.modules():
            if hasattr(m, "noise_strength"):
                m.noise_strength.zero_()
        pkl0 = write_snapshot(tmp_path / "s0.pkl", G)
        base = load_subject(str(pkl0)).generate(None, ids, z)
        assert torch.equal(load_subject(f"{pkl0}#noise=random,noise_seed=4").generate(None, ids, z), base)
    out = convert_checkpoint(pkl, tmp_path / "g.safetensors")
    with torch.no_grad():
        assert torch.equal(load_subject(f"{out}#noise=random,noise_seed=3").generate(None, ids, z), img)


def test_noise_options_are_checked(tmp_path):
    pkl = write_snapshot(tmp_path / "s.pkl", tiny_generator(8))
    with pytest.raises(ValueError, match="noise_mode must be one of"):
        load_subject(f"{pkl}#noise=fresh")
    with pytest.raises(ValueError, match="noise_seed applies to noise_mode='random' only"):
        load_subject(f"{pkl}#noise_seed=2")
    with pytest.raises(ValueError, match="expected a number"):
        load_subject(f"{pkl}#noise=random,noise_seed=two")


# --- the analyses that need a discriminator --------------------------------------------------------
MINI = """
name = "sg-d"
n_images = 16
image_size = 16
batch_size = 8
seed = 0
device = "cpu"
[analyses.discriminator_dissection]
layers = ["b16.conv0", "b8.conv1"]
n_boot = 20
n_perm = 20
[analyses.artifact_units]
layer = "synthesis.b8.conv1"
k = 1
n_random = 3
n_boot = 20
"""


def test_analyze_runs_the_discriminator_analyses_on_a_snapshot(tmp_path):
    from interp_gan.cli import main

    pkl = write_snapshot(tmp_path / "network-snapshot.pkl", tiny_generator(16, seed=8))
    (tmp_path / "mini.toml").write_text(MINI)
    rc = main(["analyze", str(pkl), "--pipeline", str(tmp_path / "mini.toml"), "--out", str(tmp_path / "rep")])
    assert rc == 0
    findings = json.loads((tmp_path / "rep" / "findings.json").read_text())
    for name in ("discriminator_dissection", "artifact_units"):
        assert not findings[name].get("skipped"), (name, findings[name].get("skipped"))
    layers = {r["layer"] for r in findings["discriminator_dissection"]["tables"]["discriminator_dissection_units"]}
    assert layers == {"b16.conv0", "b8.conv1"}


def test_a_planted_red_unit_of_d_is_found_by_discriminator_dissection(tmp_path):
    """Known answer: unit 0 of D's b16.fromrgb is set to fire on red (R - (G + B) / 2 above 0.2); the
    planted generator paints the top-left quadrant red for some images. Dissecting D by layer name
    on the images it judges labels that unit red."""
    from interp_gan.analyses.base import AnalysisData, build_analysis
    from tests.subject.test_stylegan_subject import planted_generator

    D = tiny_discriminator(16, c_dim=2, seed=4)
    with torch.no_grad():
        rgb = D.b16.fromrgb
        rgb.weight[0, :, 0, 0] = torch.tensor([4.0, -2.0, -2.0]) * 3 ** 0.5     # undo the 1/sqrt(fan_in) gain
        rgb.bias[0] = -0.8
    sub = load_subject(str(write_snapshot(tmp_path / "planted.pkl", planted_generator(), D=D)), device="cpu")
    data = AnalysisData(content=torch.zeros(64, 3, 16, 16), style_ids=torch.arange(64) % 2,
                        z=sub.sample_z(64, 0), fingerprint="sg-d-planted", batch_size=16)
    f = build_analysis("discriminator_dissection", layers=["b16.fromrgb"], n_boot=200, n_perm=500,
                       control=False).run(sub, data)
    units = f.tables["discriminator_dissection_units"].set_index("unit")
    assert units.loc[0, "concept"] == "red" and bool(units.loc[0, "labelled"])
    assert units.loc[0, "ci_low"] > 0.3 and units.loc[0, "q_value"] < 0.05
    # without the plant, unit 0 of this seeded D is labelled nothing (its best concept: blue, IoU 0.04); a
    # 1x1 unit is a linear map of RGB, so some random units that lean red reach the same mask as the plant
