"""rosinality/stylegan2-pytorch checkpoints: our NVlabs-layout StyleGAN2 loaded from that layout must
compute what rosinality's Generator computes (an independent float64 forward written from its
model.py, tests/models/rosinality_reference.py), for images, StyleSpace and truncation, and its
discriminator for logits; the file
kinds (train.py's, convert_weight.py's, a bare state dict), refusals in one line, noise maps,
convert round trip and a small directions run. Old code: none of these files loaded (a checkpoint
dict was "neither a CycleGAN nor a StarGAN ...", train.py's argparse.Namespace was refused as a
pickled object, and '#psi=' / '#space=' were unknown options for a .pt). The estimated w_avg, the
.safetensors forms and train.py's args: tests/models/test_rosinality_files.py."""
import numpy as np
import pytest
import torch

import interp_gan.analyses  # noqa: F401 - registers the analyses
from interp_gan.analyses.base import AnalysisData, build_analysis
from interp_gan.checkpoint import read_metadata
from interp_gan.subject.loading import convert_checkpoint, load_subject
from tests.models.rosinality_reference import (generator_state_dict, reference_discriminator, reference_forward,
                                              train_checkpoint)

CONFIGS = {
    "32px": dict(widths={4: 16, 8: 16, 16: 8, 32: 4}, style_dim=8, n_mlp=3),
    "16px_flat": dict(widths={4: 8, 8: 8, 16: 8}, style_dim=6, n_mlp=2),
    "64px": dict(widths={4: 8, 8: 8, 16: 8, 32: 8, 64: 4}, style_dim=4, n_mlp=1),
}


def _z(n, dim, seed=1):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def _save(tmp_path, obj, name="stylegan2-ffhq-config-f.pt"):
    p = tmp_path / name
    torch.save(obj, p)
    return p


def _ids(n):
    return torch.zeros(n, dtype=torch.long)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_images_styles_and_truncation_match_the_reference_forward(tmp_path, name):
    cfg = CONFIGS[name]
    sd = generator_state_dict(seed=3, **cfg)
    avg = torch.randn(cfg["style_dim"], generator=torch.Generator().manual_seed(9))
    p = _save(tmp_path, {"g_ema": sd, "latent_avg": avg})
    z = _z(3, cfg["style_dim"])
    for psi in (1.0, 0.6):
        ref, styles = reference_forward(sd, z, psi=psi, latent_avg=avg)
        sub = load_subject(f"{p}#psi={psi}", device="cpu")
        with torch.no_grad():
            raw = sub.generator(z, truncation_psi=psi).double()
            img = sub.generate(None, _ids(3), z).double()
        assert ref.std() > 0.1 and (raw - ref).abs().max() < 1e-4, (raw - ref).abs().max()
        assert (img - ref.clamp(-1, 1)).abs().max() < 1e-4
    s = load_subject(f"{p}#space=s", device="cpu")
    ref, styles = reference_forward(sd, z)
    with torch.no_grad():
        code = s.style_code(_ids(3), z).double()
        assert (code - torch.cat(styles, 1)).abs().max() < 1e-4     # StyleSpace = rosinality's modulation outputs
        assert (s.stylize_code(None, code.float()).double() - ref.clamp(-1, 1)).abs().max() < 1e-4
    wp = load_subject(f"{p}#space=w+", device="cpu")
    assert wp.style_dim == 2 * len(cfg["widths"]) * cfg["style_dim"]     # n_latent = 2 log2(size) - 2
    assert s.meta["truncation_average"].startswith("the file's latent_avg")


def test_train_checkpoint_loads_g_ema_not_g(tmp_path):
    ck = train_checkpoint(seed=4)          # g, d, g_ema, optimizer states, args (argparse.Namespace), ada_aug_p
    p = _save(tmp_path, ck, "550000.pt")
    sub = load_subject(str(p), device="cpu")
    z = _z(2, 8)
    with torch.no_grad():
        got = sub.generator(z).double()
    assert (got - reference_forward(ck["g_ema"], z)[0]).abs().max() < 1e-4
    assert (got - reference_forward(ck["g"], z)[0]).abs().max() > 0.1
    assert sub.meta["generator_entry"].startswith("'g_ema'") and "'g'" in sub.meta["generator_entry"]
    assert sub.meta["discriminator"].startswith("rebuilt from the file's 'd'") and sub.discriminator is not None
    # no latent_avg in a train.py file: the average is estimated (old code: psi != 1 was refused), and the
    # converted file keeps that estimate (tests/models/test_rosinality_files.py checks the estimate itself)
    assert sub.meta["truncation_average"].startswith("estimated: the mean of 4096 w")
    conv = convert_checkpoint(p, tmp_path / "550000.safetensors")
    a, b = load_subject(f"{p}#psi=0.7", device="cpu"), load_subject(f"{conv}#psi=0.7", device="cpu")
    with torch.no_grad():
        assert torch.equal(a.generate(None, _ids(2), z), b.generate(None, _ids(2), z))
    assert b.meta["truncation_average"] == sub.meta["truncation_average"]
    bad_avg = _save(tmp_path, {"g_ema": ck["g_ema"], "latent_avg": torch.zeros(1, 9)}, "bad_avg.pt")
    with pytest.raises(ValueError, match=r"'latent_avg' is torch.Size\(\[1, 9\]\); expected a float tensor of 8"):
        load_subject(str(bad_avg), device="cpu")
    only_g = _save(tmp_path, {"g": ck["g"]}, "g_only.pt")
    assert load_subject(str(only_g), device="cpu").meta["generator_entry"] == "'g'"
    bare = _save(tmp_path, ck["g_ema"], "bare.pt")        # g_ema.state_dict() saved alone
    with torch.no_grad():
        assert torch.equal(load_subject(str(bare), device="cpu").generator(z).double(), got)


def test_a_file_with_only_the_discriminator_is_refused_naming_g_ema(tmp_path):
    ck = train_checkpoint()
    p = _save(tmp_path, {"d": ck["d"], "d_optim": ck["d_optim"]}, "d_only.pt")
    with pytest.raises(ValueError, match="'g_ema'") as e:
        load_subject(str(p), device="cpu")
    assert "\n" not in str(e.value) and str(p) in str(e.value)


@pytest.mark.parametrize("edit,words", [
    ("missing", "missing convs.1.activate.bias"),
    ("extra", "unplaced convs.1.extra.weight"),
    ("shape", "wrong shape to_rgbs.0.bias [1, 3, 2, 2]"),
    ("blur", "not the [1,3,3,1] filter"),
    ("widths", "do not follow min(channel_base / r, channel_max)"),
])
def test_keys_that_do_not_fit_are_named_in_one_line(tmp_path, edit, words):
    sd = generator_state_dict()
    if edit == "missing":
        del sd["convs.1.activate.bias"]
    elif edit == "extra":
        sd["convs.1.extra.weight"] = torch.zeros(3)
    elif edit == "shape":
        sd["to_rgbs.0.bias"] = torch.zeros(1, 3, 2, 2)
    elif edit == "blur":
        sd["convs.2.conv.blur.kernel"] = torch.ones(4, 4) / 4
    else:
        sd = generator_state_dict(widths={4: 8, 8: 16, 16: 8})
    p = _save(tmp_path, {"g_ema": sd})
    with pytest.raises(ValueError) as e:
        load_subject(str(p), device="cpu")
    msg = str(e.value)
    assert words in msg and "\n" not in msg and "--model file.py:factory" in msg, msg


def test_noise_const_uses_the_stored_maps_and_says_when_there_are_none(tmp_path):
    sd = generator_state_dict(seed=5)
    z = _z(2, 8)
    sd2 = dict(sd)
    sd2["noises.noise_3"] = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    for d in (sd, sd2):
        with torch.no_grad():
            got = load_subject(str(_save(tmp_path, {"g_ema": d})), device="cpu").generator(z).double()
        assert (got - reference_forward(d, z)[0]).abs().max() < 1e-4
    zero = [torch.zeros_like(sd[f"noises.noise_{i}"]) for i in range(7)]
    with torch.no_grad():
        got = load_subject(f"{_save(tmp_path, {'g_ema': sd})}#noise=none", device="cpu").generator(z).double()
    assert (got - reference_forward(sd, z, noise=zero)[0]).abs().max() < 1e-4
    plain = {k: v for k, v in sd.items() if not k.startswith("noises.")}      # an old file without the buffers
    sub = load_subject(str(_save(tmp_path, {"g_ema": plain}, "old.pt")), device="cpu")
    assert "seed 0" in sub.meta["noise_maps"]
    again = load_subject(str(_save(tmp_path, {"g_ema": plain}, "old2.pt")), device="cpu")
    with torch.no_grad():
        assert torch.equal(sub.generator(z), again.generator(z))     # seeded: the same maps every load
        maps = [m.noise_const for n, m in sub.generator.synthesis.named_modules() if n.endswith(("conv0", "conv1"))]
        assert (sub.generator(z).double() - reference_forward(plain, z, noise=[m[None, None] for m in maps])[0]
                ).abs().max() < 1e-4


def test_convert_round_trip_gives_identical_images(tmp_path):
    sd = generator_state_dict(seed=6)
    avg = torch.randn(8)
    p = _save(tmp_path, {"g_ema": sd, "latent_avg": avg, "d": train_checkpoint()["d"]})
    out = convert_checkpoint(p, tmp_path / "g.safetensors")
    meta = read_metadata(out)
    assert meta["model"]["name"] == "stylegan2" and meta["style_names"] == ["sample"]
    assert meta["source_format"].startswith("rosinality") and meta["discriminator"].startswith("rebuilt")
    assert meta["discriminator_model"]["name"] == "stylegan2_discriminator"
    z = _z(3, 8)
    for opts in ("", "#space=s,psi=0.5", "#space=w+,noise=random,noise_seed=3"):
        a, b = load_subject(f"{p}{opts}", device="cpu"), load_subject(f"{out}{opts}", device="cpu")
        with torch.no_grad():
            ia, ib = a.generate(None, _ids(3), z), b.generate(None, _ids(3), z)
            assert torch.equal(ia, ib) and torch.equal(a.style_code(_ids(3), z), b.style_code(_ids(3), z))
    assert b.meta["noise_seed"] == 3 and b.meta["style_space"] == "w+"
    img = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(a.discriminator.adv_logit(img, _ids(4)), b.discriminator.adv_logit(img, _ids(4)))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_discriminator_matches_the_reference_forward(tmp_path, name):
    widths = CONFIGS[name]["widths"]
    ck = train_checkpoint(seed=8, **CONFIGS[name])
    sub = load_subject(str(_save(tmp_path, ck, "010000.pt")), device="cpu")
    size = max(widths)
    for n in (2, 4, 8):      # groups of min(4, N); rosinality's view needs N divisible by the group
        img = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(n))
        ref = reference_discriminator(ck["d"], img)[:, 0]
        with torch.no_grad():
            got = sub.discriminator.adv_logit(img, _ids(n)).double()
        assert ref.abs().max() > 1e-3 and (got - ref).abs().max() < 1e-5 * max(1.0, float(ref.abs().max()))
    assert sub.meta["discriminator_model"]["architecture"] == "resnet"


def test_a_discriminator_that_does_not_fit_is_named_in_one_line(tmp_path):
    ck = train_checkpoint()
    ck["d"]["final_linear.0.weight"] = torch.zeros(16, 100)
    with pytest.raises(ValueError, match=r"'d' is not the rosinality.*wrong shape final_linear.0.weight \[16, 100\]") as e:
        load_subject(str(_save(tmp_path, ck, "bad_d.pt")), device="cpu")
    assert "\n" not in str(e.value)


def test_stylegan_options_on_other_state_dicts_are_refused(tmp_path):
    from interp_gan.models.cyclegan import CycleGANGenerator
    p = _save(tmp_path, CycleGANGenerator(ngf=4, n_blocks=1).state_dict(), "latest_net_G_A.pth")
    with pytest.raises(ValueError, match="apply to StyleGAN2 subjects only") as e:
        load_subject(f"{p}#space=s", device="cpu")
    assert "\n" not in str(e.value)
    ros = _save(tmp_path, {"g_ema": generator_state_dict()})
    with pytest.raises(ValueError, match="rosinality StyleGAN2 checkpoint"):
        load_subject(f"{ros}#direction=b2a", device="cpu")


def test_directions_run_end_to_end(tmp_path):
    sd = generator_state_dict(seed=7)
    p = _save(tmp_path, {"g_ema": sd, "latent_avg": torch.zeros(8)})
    sub = load_subject(str(p), device="cpu")
    data = AnalysisData(content=torch.zeros(8, 3, 32, 32), style_ids=_ids(8), z=sub.sample_z(8, 0),
                        fingerprint="rosinality-test", batch_size=8)
    f = build_analysis("directions", methods=("sefa", "random"), n_samples=32, n_directions=2, n_random=2,
                       n_images=4, steps=(0.0, 2.0), n_boot=20, n_perm=20).run(sub, data)
    assert (f.tables["directions"]["method"] == "sefa").sum() == 2
    from interp_gan.analyses.directions.methods import sefa_directions
    names = ["conv1", "to_rgb1"] + [n for j in range(3)
                                    for n in (f"convs.{2 * j}", f"convs.{2 * j + 1}", f"to_rgbs.{j}")]
    want = sefa_directions([sd[f"{n}.conv.modulation.weight"] / np.sqrt(8) for n in names], 2)   # from the file
    got = f.arrays["directions"][:2]
    assert np.allclose(np.abs((got * want).sum(1)), 1, atol=1e-4)
