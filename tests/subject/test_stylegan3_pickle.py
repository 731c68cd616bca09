"""StyleGAN3 (configs T and R) network pickles: the loaded subject against an independent functional
forward written here from the paper and the reference semantics (float64: explicit zero insertion,
padding and cropping, the separable filters as their outer product, convolution with the flipped
filter, per-sample modulated convs, Fourier features from explicit pixel-centre coordinates); the
one-line refusals; W / W+ / S; convert round trip; the noise options; `analyze` end to end.

Old code: every pickle here was refused ("a StyleGAN3 (alias-free) generator ... is not implemented").
"""
import json
import math
import pickle
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from interp_gan.checkpoint import read_metadata
from interp_gan.subject.loading import convert_checkpoint, load_subject
from interp_gan.subject.nvlabs_pickle import loads_network_pickle
from tests.subject.nvlabs_snapshot_sg3 import _extras_of, _geometry_of, tiny_sg3, write_sg3_snapshot

D64 = torch.float64


# --- the independent reference ---------------------------------------------------------------------------------
def _fc(sd, p, x, lr=1.0, act=False):
    w, b = sd[p + ".weight"].to(D64), sd[p + ".bias"].to(D64)
    y = x @ (w * lr / math.sqrt(w.shape[1])).t() + b * lr
    return F.leaky_relu(y, 0.2) * math.sqrt(2) if act else y


def ref_mapping(sd, z, c, num_ws, psi, c_dim):
    def norm(v):
        return v / torch.sqrt(v.square().mean(1, keepdim=True) + 1e-8)
    x = norm(z.to(D64))
    if c_dim:
        x = torch.cat([x, norm(_fc(sd, "mapping.embed", c.to(D64)))], 1)
    for i in range(2):
        x = _fc(sd, f"mapping.fc{i}", x, lr=0.01, act=True)
    w_avg = sd["mapping.w_avg"].to(D64)
    return (w_avg + psi * (x - w_avg))[:, None].repeat(1, num_ws, 1)


def ref_upfirdn(x, f, up=1, down=1, pad=(0, 0, 0, 0), gain=1.0):
    n, c, h, w = x.shape
    y = torch.zeros(n, c, h * up, w * up, dtype=x.dtype)
    y[:, :, ::up, ::up] = x
    x0, x1, y0, y1 = pad
    big = torch.zeros(n, c, h * up + max(y0, 0) + max(y1, 0), w * up + max(x0, 0) + max(x1, 0), dtype=x.dtype)
    big[:, :, max(y0, 0): max(y0, 0) + h * up, max(x0, 0): max(x0, 0) + w * up] = y
    big = big[:, :, max(-y0, 0): big.shape[2] - max(-y1, 0), max(-x0, 0): big.shape[3] - max(-x1, 0)]
    if f is None:
        k = torch.ones(1, 1, dtype=x.dtype) * gain
    else:
        f = f.to(x.dtype)
        k = (torch.outer(f, f) if f.ndim == 1 else f) * gain
    k = torch.flip(k, [0, 1])                                         # convolution, not correlation
    out = F.conv2d(big, k[None, None].repeat(c, 1, 1, 1), groups=c)
    return out[:, :, ::down, ::down]


def ref_input(sd, w, kw):
    p = "synthesis.input"
    t = _fc(sd, p + ".affine", w)
    t = t / t[:, :2].norm(dim=1, keepdim=True)
    c, s = t[:, 0], t[:, 1]
    size, sr, bw = kw["size"], float(kw["sampling_rate"]), float(kw["bandwidth"])
    freqs, phases = sd[p + ".freqs"].to(D64), sd[p + ".phases"].to(D64)
    coords = (torch.arange(size, dtype=D64) + 0.5 - size / 2) / sr              # pixel centres, in image units
    out = []
    for i in range(len(w)):
        rot = torch.tensor([[c[i], -s[i]], [s[i], c[i]]], dtype=D64)
        trans = torch.stack([-t[i, 2], -t[i, 3]])
        m = torch.eye(3, dtype=D64)
        m[:2, :2] = rot
        m[:2, 2] = rot @ trans
        m = m @ sd[p + ".transform"].to(D64)
        f = freqs @ m[:2, :2]
        ph = phases + freqs @ m[:2, 2]
        amp = (1 - (f.norm(dim=1) - bw) / (sr / 2 - bw)).clamp(0, 1)
        yy, xx = torch.meshgrid(coords, coords, indexing="ij")
        arg = xx[..., None] * f[:, 0] + yy[..., None] * f[:, 1] + ph           # [H, W, C]
        feat = torch.sin(2 * math.pi * arg) * amp
        wt = sd[p + ".weight"].to(D64)
        out.append((feat @ (wt / math.sqrt(wt.shape[0])).t()).permute(2, 0, 1))
    return torch.stack(out)


def ref_layer(sd, name, x, w, kwl, ex, clamp):
    p = f"synthesis.{name}"
    torgb = kwl["is_torgb"]
    s = _fc(sd, p + ".affine", w)
    weight = sd[p + ".weight"].to(D64)
    k = weight.shape[-1]
    if torgb:
        s = s / math.sqrt(weight.shape[1] * k * k)
    gain_in = sd[p + ".magnitude_ema"].to(D64) ** -0.5
    ys = []
    for i in range(len(x)):
        wi = weight * s[i][None, :, None, None]
        if not torgb:
            wi = wi / torch.sqrt(wi.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        ys.append(F.conv2d(x[i:i + 1], wi * gain_in, padding=k - 1))
    y = torch.cat(ys) + sd[p + ".bias"].to(D64)[None, :, None, None]
    y = ref_upfirdn(y, ex["up_filter"], up=ex["up_factor"], pad=ex["padding"], gain=ex["up_factor"] ** 2)
    if not torgb:
        y = F.leaky_relu(y, 0.2) * math.sqrt(2)
    if clamp is not None:
        y = y.clamp(-clamp, clamp)
    return ref_upfirdn(y, ex["down_filter"], down=ex["down_factor"])


def ref_generator(G, gkw, z, c, psi):
    sd = G.state_dict()
    inp, layers = _geometry_of(gkw)
    ws = ref_mapping(sd, z, c, G.num_ws, psi, gkw["c_dim"])
    x = ref_input(sd, ws[:, 0], inp)
    for i, (name, kwl) in enumerate(zip(G.synthesis.layer_names, layers)):
        x = ref_layer(sd, name, x, ws[:, i + 1], kwl, _extras_of(gkw, kwl), gkw["conv_clamp"])
    return x * 0.25


# --- the subject against it ----------------------------------------------------------------------------------
CASES = {"t": dict(cfg="t"), "r": dict(cfg="r"), "t_cond": dict(cfg="t", c_dim=3),
         "r_cond_clamped": dict(cfg="r", c_dim=2, conv_clamp=0.5),
         "t_wide": dict(cfg="t", res=32, num_layers=6, margin_size=4, channel_max=6),
         "t_fp32": dict(cfg="t", num_fp16_res=0, conv_clamp=None)}        # train.py --fp32


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("psi", [1.0, 0.6])
def test_subject_matches_the_independent_forward(tmp_path, case, psi):
    G, gkw = tiny_sg3(seed=3, **CASES[case])
    pkl = write_sg3_snapshot(tmp_path / "network-snapshot-000200.pkl", G, gkw)
    sub = load_subject(f"{pkl}#psi={psi}", device="cpu")
    n = 3
    ids = torch.arange(n) % sub.num_styles
    z = sub.sample_z(n, seed=5)
    with torch.no_grad():
        img = sub.generate(torch.zeros(n, 3, 8, 8), ids, z)
    c = F.one_hot(ids, gkw["c_dim"]).to(D64) if gkw["c_dim"] else None
    want = ref_generator(G, gkw, z, c, psi).clamp(-1, 1).float()
    assert img.shape == want.shape == (n, 3, gkw["img_resolution"], gkw["img_resolution"])
    assert want.std() > 0.01
    torch.testing.assert_close(img, want, atol=1e-4, rtol=0)
    assert sub.meta["model"]["name"] == "stylegan3" and "no noise" in sub.meta["noise_mode"]


def test_the_reference_is_sensitive_to_what_it_checks():
    """The comparison above can fail: a shifted filter, a missing magnitude gain, a missing output scale or
    (in the clamped case) a missing clamp each moves the image by far more than the tolerance."""
    G, gkw = tiny_sg3(seed=4, cfg="t", res=32, num_layers=6, margin_size=4, channel_max=6)
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = G(z)
        name = G.synthesis.layer_names[2]
        layer = getattr(G.synthesis, name)
        layer.magnitude_ema.mul_(4)
        assert (G(z) - base).abs().max() > 1e-2
        layer.magnitude_ema.div_(4)
        G.synthesis.output_scale = 1.0
        assert (G(z) - base).abs().max() > 1e-2
        G.synthesis.output_scale = 0.25
        layer.down_filter.copy_(layer.down_filter.roll(1))
        assert (G(z) - base).abs().max() > 1e-3
    G, gkw = tiny_sg3(seed=3, **CASES["r_cond_clamped"])
    c = torch.eye(2)[[0, 1]]
    with torch.no_grad():
        base = G(z[:, :G.z_dim], c)
        for n in G.synthesis.layer_names:
            getattr(G.synthesis, n).conv_clamp = None
        assert (G(z[:, :G.z_dim], c) - base).abs().max() > 1e-2


@pytest.mark.parametrize("space", ["w", "w+", "s"])
def test_style_spaces_round_trip(tmp_path, space):
    G, gkw = tiny_sg3(seed=2, cfg="r", c_dim=2)
    pkl = write_sg3_snapshot(tmp_path / "cond.pkl", G, gkw)
    sub = load_subject(f"{pkl}#space={space},psi=0.7", device="cpu")
    assert sub.style_names == ["class0", "class1"]
    ids, z = torch.tensor([0, 1]), sub.sample_z(2, seed=0)
    with torch.no_grad():
        code = sub.style_code(ids, z)
        dim = {"w": G.w_dim, "w+": G.num_ws * G.w_dim, "s": 4 + sum(getattr(G.synthesis, n).in_channels
                                                                   for n in G.synthesis.layer_names)}[space]
        assert code.shape == (2, dim) and sub.style_dim == dim
        torch.testing.assert_close(sub.stylize_code(None, code), sub.generate(None, ids, z), atol=1e-6, rtol=0)
    if space == "s":
        assert sub.meta["style_layers"][0] == "synthesis.input" and sub.meta["style_layer_sizes"][0] == 4


def test_pkl_and_converted_safetensors_give_identical_images(tmp_path):
    G, gkw = tiny_sg3(seed=6, cfg="r", c_dim=2)
    pkl = write_sg3_snapshot(tmp_path / "stylegan3-r-tiny.pkl", G, gkw)
    a = load_subject(f"{pkl}", device="cpu")
    out = convert_checkpoint(pkl, tmp_path / "g.safetensors", style_names=["cat", "dog"])
    meta = read_metadata(out)
    assert meta["model"]["name"] == "stylegan3" and meta["mapping_layers"] == 2 and meta["conditioning_size"] == 2
    assert meta["model"]["synthesis_kwargs"]["use_radial_filters"] is True
    b = load_subject(f"{out}#psi=0.5,space=s", device="cpu")
    a2 = load_subject(f"{pkl}#psi=0.5,space=s", device="cpu")
    ids, z = torch.tensor([0, 1, 1]), a.sample_z(3, seed=2)
    with torch.no_grad():
        assert torch.equal(a.generate(None, ids, z), load_subject(str(out)).generate(None, ids, z))
        assert torch.equal(b.generate(None, ids, z), a2.generate(None, ids, z))
        assert torch.equal(b.style_code(ids, z), a2.style_code(ids, z))
    assert b.style_names == ["cat", "dog"] and b.discriminator is not None


@pytest.mark.parametrize("opts", ["noise=random", "noise=none", "noise=random,noise_seed=3"])
def test_noise_options_are_refused_in_one_line(tmp_path, opts):
    G, gkw = tiny_sg3(seed=1)
    pkl = write_sg3_snapshot(tmp_path / "s.pkl", G, gkw, with_d=False)
    with pytest.raises(ValueError, match="has no noise inputs") as e:
        load_subject(f"{pkl}#{opts}", device="cpu")
    assert "\n" not in str(e.value)


def _layer(snap, i=1):
    syn = snap["G_ema"].meta["state"]["_modules"]["synthesis"].meta["state"]
    name = syn["layer_names"][i]
    return syn["_modules"][name].meta["state"], name


def _kw(k, v):
    def edit(snap):
        snap["G_ema"].meta["state"]["_init_kwargs"][k] = v
    return edit


def _layer_kw(k, v):
    def edit(snap):
        _layer(snap)[0]["_init_kwargs"][k] = v
    return edit


def _drop(key):
    def edit(snap):
        st, _ = _layer(snap)
        st["_parameters" if key in st["_parameters"] else "_buffers"].pop(key)
    return edit


def _reshape(key):
    def edit(snap):
        st, _ = _layer(snap)
        d = st["_parameters"] if key in st["_parameters"] else st["_buffers"]
        d[key] = torch.cat([d[key], d[key][:1]])
    return edit


def _padding(snap):
    _layer(snap)[0]["padding"] = [0, 0, 0, 0]


REFUSALS = {
    "unknown Generator kwarg": (_kw("use_noise", True), re.escape("does not know: ['use_noise']")),
    "unknown mapping kwarg": (_kw("mapping_kwargs", {"num_layers": 2, "layer_features": 8}),
                              re.escape("unknown StyleGAN3 mapping_kwargs ['layer_features']")),
    "unknown layer kwarg": (_layer_kw("sampling_mode", "x"), re.escape("does not know: ['sampling_mode']")),
    "missing key": (_drop("weight"), r"missing \['synthesis.L1_"),
    "missing filter": (_drop("down_filter"), r"missing \['synthesis.L1_.*down_filter"),
    "misshapen key": (_reshape("up_filter"), r"misshapen \['synthesis.L1_.*up_filter"),
    "layer geometry": (_layer_kw("out_cutoff", 3.25), "records out_cutoff=3.25"),
    "padding": (_padding, r"records padding=\[0, 0, 0, 0\]"),
    "kwargs that change the layers": (_kw("channel_max", 16), "(misshapen|missing|unexpected)"),
}


@pytest.mark.parametrize("what", sorted(REFUSALS))
def test_bad_pickles_are_refused_in_one_line(tmp_path, what):
    edit, msg = REFUSALS[what]
    G, gkw = tiny_sg3(seed=1)
    pkl = write_sg3_snapshot(tmp_path / "bad.pkl", G, gkw, edit=edit)
    with pytest.raises(ValueError, match=msg) as e:
        load_subject(str(pkl), device="cpu")
    assert "\n" not in str(e.value) and "bad.pkl" in str(e.value)


def test_numpy_arrays_are_read_as_data_and_object_arrays_refused():
    arr = pickle.dumps({"size": np.broadcast_to(np.asarray(36), [2]), "f": np.arange(6.0).reshape(2, 3)}, protocol=4)
    got = loads_network_pickle(arr)
    assert got["size"].array.tolist() == [36, 36] and got["f"].array.tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="object dtype"):
        loads_network_pickle(pickle.dumps(np.array([print], dtype=object), protocol=4))


MINI = """
name = "sg3-mini"
n_images = 8
image_size = 16
batch_size = 8
seed = 0
device = "cpu"
[analyses.overview]
n_images = 2
[analyses.dissection]
layers = ["synthesis.L1_20_8", "synthesis.L3_16_8"]
n_boot = 10
n_perm = 10
[analyses.directions]
methods = ["pca", "sefa", "random"]
n_samples = 16
n_directions = 2
n_random = 2
n_images = 4
n_boot = 10
n_perm = 10
"""


@pytest.mark.slow
def test_analyze_runs_dissection_and_directions_end_to_end(tmp_path, capsys):
    from interp_gan.cli import main

    G, gkw = tiny_sg3(seed=8, cfg="t")
    pkl = write_sg3_snapshot(tmp_path / "network-snapshot.pkl", G, gkw)
    assert main(["inspect", str(pkl)]) == 0
    listed = capsys.readouterr().out
    assert all(n in listed for n in G.synthesis.layer_names) and "stylegan3" in listed
    (tmp_path / "mini.toml").write_text(MINI)
    rc = main(["analyze", str(pkl), "--pipeline", str(tmp_path / "mini.toml"), "--out", str(tmp_path / "rep")])
    assert rc == 0
    findings = json.loads((tmp_path / "rep" / "findings.json").read_text())
    for ran in ("overview", "dissection", "directions"):
        assert not findings[ran].get("skipped"), (ran, findings[ran].get("skipped"))
    layers = {r.get("layer") for t in findings["dissection"]["tables"].values() for r in t}
    assert {"synthesis.L1_20_8", "synthesis.L3_16_8"} <= layers
    assert {r["method"] for r in findings["directions"]["tables"]["directions"]} == {"pca", "sefa", "random"}


def test_default_layers_are_the_feature_layers_not_torgb(tmp_path):
    from interp_gan.harvest.hooks import spatial_layers

    G, gkw = tiny_sg3(seed=9)
    sub = load_subject(str(write_sg3_snapshot(tmp_path / "s.pkl", G, gkw, with_d=False)), device="cpu")
    names = [f"synthesis.{n}" for n in G.synthesis.layer_names]
    assert [n for n in spatial_layers(sub.generator) if n.startswith("synthesis.L")] == names[:-1]
    assert sub.discriminator is None and sub.meta["discriminator"] == "not in the pickle"


def test_inspect_names_the_synthesised_size_not_an_input_size(tmp_path, capsys):
    from interp_gan.cli import main

    G, gkw = tiny_sg3(seed=3)
    assert main(["inspect", str(write_sg3_snapshot(tmp_path / "s.pkl", G, gkw, with_d=False))]) == 0
    out = capsys.readouterr().out
    assert "layers (output shape for one 16x16 image synthesised from a seeded z; no content input)" in out
    assert "64x64" not in out
