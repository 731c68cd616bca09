"""rosinality/stylegan2-pytorch files beyond the generator's weights (interp_gan/models/rosinality_files.py,
docs/models.md): the w_avg a train.py file lacks, estimated from seeded z as the repository's
generate.py does (mean_latent(4096)); the same checkpoint flattened into a plain .safetensors
(``g_ema.style.1.weight`` ..., ``latent_avg``) or saved as a bare generator state dict, which must give
the .pt's images; train.py's ``args`` checked against the shapes. Old code: psi != 1 was refused for a
file without latent_avg, a flattened .safetensors was "neither a CycleGAN nor a StarGAN ...", a bare one
loaded without saying it was a plain .safetensors, and args were never read."""
from __future__ import annotations

import argparse
from collections import OrderedDict

import pytest
import torch
from safetensors.torch import save_file

from interp_gan.models.rosinality_files import args_check, table_widths
from interp_gan.subject.loading import convert_checkpoint, load_subject
from tests.models.rosinality_reference import (generator_state_dict, reference_forward, reference_mapping,
                                              train_checkpoint)

PLAIN = "file: a plain .safetensors state dict (no interp_gan metadata)"


def _z(n, dim=8, seed=1):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def _ids(n):
    return torch.zeros(n, dtype=torch.long)


def _flatten(obj, prefix=""):
    """What a generic ".pt -> .safetensors" script does: nested dicts joined with dots, tensors kept,
    everything else (train.py's args Namespace, ada_aug_p, optimizer param_groups) dropped."""
    out = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out |= _flatten(v, f"{prefix}{k}.")
        elif torch.is_tensor(v):
            out[f"{prefix}{k}"] = v.clone().contiguous()
    return out


def _mean_w(sd, n=4096, seed=0):
    return reference_mapping(sd, torch.randn(n, 8, generator=torch.Generator().manual_seed(seed))).mean(0)


def test_a_file_without_latent_avg_gets_the_mean_w_of_4096_seeded_z(tmp_path):
    sd = generator_state_dict(seed=11)
    p = tmp_path / "550000.pt"
    torch.save({"g_ema": sd}, p)
    sub = load_subject(p, device="cpu")
    got = sub.generator.mapping.w_avg.double()
    want = _mean_w(sd)                                    # float64, rosinality's mapping, the same seeded z
    scale = float(want.abs().max())
    assert scale > 0.1 and (got - want).abs().max() < 1e-5 * scale, (got - want).abs().max()
    assert (_mean_w(sd, seed=1) - want).abs().max() > 100 * 1e-5 * scale     # the seed matters: a real check
    again = load_subject(p, device="cpu")
    assert torch.equal(again.generator.mapping.w_avg, sub.generator.mapping.w_avg)   # one file, one subject
    for key in ("truncation_average",):
        assert sub.meta[key].startswith("estimated: the mean of 4096 w") and "seeded 0" in sub.meta[key]
    assert any(n.startswith("truncation average w_avg estimated") and "4096" in n for n in sub.meta["model_notes"])
    z = _z(3)
    with torch.no_grad():
        w1 = load_subject(f"{p}#space=w", device="cpu").style_code(_ids(3), z).double()
        for psi in (0.5, 0.0):           # truncation pulls towards the estimate, as rosinality's forward does
            s = load_subject(f"{p}#psi={psi}", device="cpu")
            assert (s.style_code(_ids(3), z).double() - (want + psi * (w1 - want))).abs().max() < 1e-4 * scale
            ref, _ = reference_forward(sd, z, psi=psi, latent_avg=want)
            assert (s.generator(z, truncation_psi=psi).double() - ref).abs().max() < 1e-4
        img0 = s.generate(None, _ids(3), z)
    assert torch.equal(img0[0], img0[1]) and torch.equal(img0[0], img0[2])   # psi = 0: every z -> the average


def test_a_file_with_latent_avg_keeps_it_and_the_count_can_change():
    from interp_gan.models.rosinality_stylegan2 import load_generator
    sd = generator_state_dict(seed=12)
    avg = torch.randn(8, generator=torch.Generator().manual_seed(3))
    G, _, notes = load_generator({"g_ema": sd, "latent_avg": avg})
    assert torch.equal(G.mapping.w_avg, avg) and notes["truncation_average"].startswith("the file's latent_avg")
    assert "model_notes" not in notes
    G, _, notes = load_generator({"g_ema": sd}, w_avg_samples=256)
    want = _mean_w(sd, n=256)
    assert (G.mapping.w_avg.double() - want).abs().max() < 1e-5 * float(want.abs().max())
    assert "mean of 256 w" in notes["truncation_average"]
    with pytest.raises(ValueError, match="positive integer, got 0"):
        load_generator({"g_ema": sd}, w_avg_samples=0)


def _forms(tmp_path, form):
    """(the .pt a rosinality script writes, the same checkpoint in the other form)."""
    ck = train_checkpoint(seed=13)
    if form == "bare .pt (g_ema.state_dict())":
        sd = OrderedDict(ck["g_ema"])
        sd._metadata = OrderedDict({"": {"version": 1}, "style": {"version": 1}})    # as state_dict() returns it
        src, other = {"g_ema": ck["g_ema"]}, tmp_path / "g_ema_only.pt"
        torch.save(sd, other)
    else:
        src = {"convert_weight.py": {"g_ema": ck["g_ema"], "latent_avg": torch.randn(8)},
               "train.py": ck, "bare g_ema": {"g_ema": ck["g_ema"]}}[form]
        other = tmp_path / "g.safetensors"
        save_file(ck["g_ema"] if form == "bare g_ema" else _flatten(src), str(other))
    pt = tmp_path / "550000.pt"
    torch.save(src, pt)
    return pt, other


@pytest.mark.parametrize("form", ["convert_weight.py", "train.py", "bare g_ema", "bare .pt (g_ema.state_dict())"])
def test_other_forms_of_a_checkpoint_give_the_pt_images(tmp_path, form):
    pt, other = _forms(tmp_path, form)
    z = _z(4)
    for opts in ("", "#psi=0.6,space=s", "#space=w+,noise=random,noise_seed=2"):
        a, b = load_subject(f"{pt}{opts}", device="cpu"), load_subject(f"{other}{opts}", device="cpu")
        with torch.no_grad():
            assert torch.equal(a.generate(None, _ids(4), z), b.generate(None, _ids(4), z)), opts
            assert torch.equal(a.style_code(_ids(4), z), b.style_code(_ids(4), z)), opts
    assert b.meta["truncation_average"] == a.meta["truncation_average"]
    want = "the file (a bare generator state dict)" if "bare" in form else a.meta["generator_entry"]
    assert b.meta["generator_entry"] == want
    if other.suffix == ".safetensors":
        assert b.meta["model_notes"][0].startswith(PLAIN)
    if form == "train.py":        # d travels too; the flattened file lost args, so only the .pt says them
        img = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            assert torch.equal(a.discriminator.adv_logit(img, _ids(4)), b.discriminator.adv_logit(img, _ids(4)))
        assert "train_args" in a.meta and "train_args" not in b.meta
    if other.suffix == ".safetensors":
        out = convert_checkpoint(other, tmp_path / "ours.safetensors")     # and it converts
        c = load_subject(f"{out}#psi=0.6", device="cpu")
        with torch.no_grad():
            want = load_subject(f"{pt}#psi=0.6", device="cpu").generate(None, _ids(4), z)
            assert torch.equal(c.generate(None, _ids(4), z), want)
        assert c.meta["source_format"].startswith("rosinality")


def test_a_flattened_file_that_does_not_fit_is_one_line(tmp_path):
    sd = generator_state_dict()
    del sd["convs.1.activate.bias"]
    save_file(_flatten({"g_ema": sd, "latent_avg": torch.zeros(8)}), str(tmp_path / "g.safetensors"))
    with pytest.raises(ValueError) as e:
        load_subject(tmp_path / "g.safetensors", device="cpu")
    msg = str(e.value)
    assert "missing convs.1.activate.bias" in msg and "\n" not in msg and "--model file.py:factory" in msg, msg
    ck = train_checkpoint()
    save_file(_flatten({"d": ck["d"], "d_optim": ck["d_optim"]}), str(tmp_path / "d.safetensors"))
    with pytest.raises(ValueError, match="holds no StyleGAN2 generator.*'g_ema'") as e:   # as the .pt is refused
        load_subject(tmp_path / "d.safetensors", device="cpu")
    assert "\n" not in str(e.value)


def test_train_args_are_checked_against_the_shapes(tmp_path):
    # the table train.py builds: 512 to 32 px, then 256 / 128 / 64 ... times channel_multiplier
    assert table_widths(256, 2) == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128}
    args = argparse.Namespace(size=256, n_mlp=8, latent=512, channel_multiplier=2, path="lmdb")
    assert args_check(args, 256, 8, 512, table_widths(256, 2)) == (
        ["size", "n_mlp", "latent", "channel_multiplier"], None)
    _, note = args_check(args, 256, 8, 512, table_widths(256, 1))
    assert note.startswith("train.py's args disagree with the weights: channel_multiplier 2 (its widths at 256 px")
    assert args_check(None, 256, 8, 512, {}) == ([], None)
    assert args_check({"size": 128, "latent": 512}, 256, 8, 512, {})[1].endswith(   # a fork's dict of args too
        "size 128 (the tensors: 256). The architecture is read from the tensors' shapes, which is what loads")

    ck = train_checkpoint(seed=14)                 # 32 px, n_mlp 3, style_dim 8, narrow widths
    ck["args"] = argparse.Namespace(size=32, n_mlp=3, latent=8, path="lmdb")    # agrees (no channel_multiplier)
    torch.save(ck, tmp_path / "ok.pt")
    sub = load_subject(tmp_path / "ok.pt", device="cpu")
    assert sub.meta["train_args"] == "train.py's args (size, n_mlp, latent) agree with the weights"
    assert not any("args" in n for n in sub.meta["model_notes"])
    ck["args"] = argparse.Namespace(size=64, n_mlp=8, latent=8, channel_multiplier=2)
    torch.save(ck, tmp_path / "off.pt")
    sub = load_subject(tmp_path / "off.pt", device="cpu")        # loads by the shapes, and says so
    note = sub.meta["train_args"]
    assert note.startswith("train.py's args disagree with the weights: size 64 (the tensors: 32); n_mlp 8 "
                           "(the tensors: 3); channel_multiplier 2") and "\n" not in note
    assert note in sub.meta["model_notes"] and sub.generator.img_resolution == 32
    ck["args"] = argparse.Namespace(size=32, n_mlp=3, latent=8, arch="swagan")
    torch.save(ck, tmp_path / "swagan.pt")
    with pytest.raises(ValueError, match=r"args say arch='swagan'; only --arch stylegan2") as e:
        load_subject(tmp_path / "swagan.pt", device="cpu")
    assert "\n" not in str(e.value) and "swagan.pt" in str(e.value)
