"""A StarGAN v2 ``*_nets_ema.ckpt`` (the authors' reference layout) as a multi-domain Subject.

The expected key layout below is written out independently from clovaai/stargan-v2
``core/model.py`` (Generator / MappingNetwork / StyleEncoder at img_size 256, style_dim 64,
latent_dim 16, num_domains 3, w_hpf 0: the AFHQ model), so a drift of our module names fails.
Files are saved as the authors' ``CheckpointIO`` does: ``torch.save({net: state_dict})``.
"""
import numpy as np
import pytest
import torch
from torch import nn

from interp_gan.analyses.base import build_analysis
from interp_gan.harvest.hooks import spatial_layers
from interp_gan.subject.loading import convert_checkpoint, load_subject
from interp_gan.models import StarGANv2, build_model
from interp_gan.models.stargan_v2 import infer_stargan_v2_config
from tests.conftest import make_tiny_data

NETS = ("generator", "mapping_network", "style_encoder")
TINY = dict(img_size=32, style_dim=8, latent_dim=4, num_domains=3, max_conv_dim=16, dim_in=8, hidden=16)


def _reference_layout(img_size=256, style_dim=64, latent_dim=16, num_domains=3, max_conv_dim=512, hidden=512):
    """{key: shape} of the reference's three nets, following core/model.py's constructors (w_hpf=0)."""
    out = {}

    def conv(p, cin, cout, k, bias=True):
        out[f"{p}.weight"] = (cout, cin, k, k)
        if bias:
            out[f"{p}.bias"] = (cout,)

    def lin(p, cin, cout):
        out[f"{p}.weight"], out[f"{p}.bias"] = (cout, cin), (cout,)

    def resblk(p, a, b, normalize):              # ResBlk: conv1 a->a, conv2 a->b, norms over a, 1x1 if a != b
        conv(f"{p}.conv1", a, a, 3)
        conv(f"{p}.conv2", a, b, 3)
        if normalize:
            for n in ("norm1", "norm2"):
                out[f"{p}.{n}.weight"], out[f"{p}.{n}.bias"] = (a,), (a,)
        if a != b:
            conv(f"{p}.conv1x1", a, b, 1, bias=False)

    def adainblk(p, a, b):                       # AdainResBlk: conv1 a->b, conv2 b->b, fc(style, 2a), fc(style, 2b)
        conv(f"{p}.conv1", a, b, 3)
        conv(f"{p}.conv2", b, b, 3)
        lin(f"{p}.norm1.fc", style_dim, 2 * a)
        lin(f"{p}.norm2.fc", style_dim, 2 * b)
        if a != b:
            conv(f"{p}.conv1x1", a, b, 1, bias=False)

    d = 2 ** 14 // img_size
    conv("generator.from_rgb", 3, d, 3)
    out["generator.to_rgb.0.weight"], out["generator.to_rgb.0.bias"] = (d,), (d,)
    conv("generator.to_rgb.2", d, 3, 1)
    repeat = int(np.log2(img_size)) - 4
    dec = []                                      # the reference inserts at 0: reversed order
    for i in range(repeat):
        e = min(2 * d, max_conv_dim)
        resblk(f"generator.encode.{i}", d, e, True)
        dec.insert(0, (e, d))
        d = e
    for i in range(2):
        resblk(f"generator.encode.{repeat + i}", d, d, True)
        dec.insert(0, (d, d))
    for i, (a, b) in enumerate(dec):
        adainblk(f"generator.decode.{i}", a, b)

    lin("mapping_network.shared.0", latent_dim, hidden)
    for i in (2, 4, 6):
        lin(f"mapping_network.shared.{i}", hidden, hidden)
    for k in range(num_domains):
        for i in (0, 2, 4):
            lin(f"mapping_network.unshared.{k}.{i}", hidden, hidden)
        lin(f"mapping_network.unshared.{k}.6", hidden, style_dim)

    d = 2 ** 14 // img_size
    conv("style_encoder.shared.0", 3, d, 3)
    n = int(np.log2(img_size)) - 2
    for i in range(n):
        e = min(2 * d, max_conv_dim)
        resblk(f"style_encoder.shared.{1 + i}", d, e, False)
        d = e
    conv(f"style_encoder.shared.{n + 2}", d, d, 4)       # after a LeakyReLU at n + 1
    for k in range(num_domains):
        lin(f"style_encoder.unshared.{k}", d, style_dim)
    return out


def _ref_generator(g, x, s):
    """The reference Generator.forward (w_hpf=0, masks=None), written functionally on a state_dict g."""
    import math

    import torch.nn.functional as F

    def conv(p, h, pad):
        return F.conv2d(h, g[f"{p}.weight"], g.get(f"{p}.bias"), 1, pad)

    def inorm(p, h, affine=True):
        return F.instance_norm(h, weight=g[f"{p}.weight"] if affine else None, bias=g[f"{p}.bias"] if affine else None)

    act = lambda h: F.leaky_relu(h, 0.2)  # noqa: E731
    down, up = lambda h: F.avg_pool2d(h, 2), lambda h: F.interpolate(h, scale_factor=2, mode="nearest")  # noqa: E731

    def adain(p, h):
        gamma, beta = F.linear(s, g[f"{p}.fc.weight"], g[f"{p}.fc.bias"])[:, :, None, None].chunk(2, 1)
        return (1 + gamma) * F.instance_norm(h) + beta

    h = conv("from_rgb", x, 1)
    n_enc = len({k.split(".")[1] for k in g if k.startswith("encode.")})
    for i in range(n_enc):
        p, sampled = f"encode.{i}", i < n_enc - 2                  # the last two do not downsample
        sc = conv(f"{p}.conv1x1", h, 0) if f"{p}.conv1x1.weight" in g else h
        sc = down(sc) if sampled else sc
        r = conv(f"{p}.conv1", act(inorm(f"{p}.norm1", h)), 1)
        r = down(r) if sampled else r
        r = conv(f"{p}.conv2", act(inorm(f"{p}.norm2", r)), 1)
        h = (sc + r) / math.sqrt(2)
    for i in range(n_enc):
        p, sampled = f"decode.{i}", i >= 2                          # the first two do not upsample
        sc = up(h) if sampled else h
        sc = conv(f"{p}.conv1x1", sc, 0) if f"{p}.conv1x1.weight" in g else sc
        r = act(adain(f"{p}.norm1", h))
        r = conv(f"{p}.conv1", up(r) if sampled else r, 1)
        r = conv(f"{p}.conv2", act(adain(f"{p}.norm2", r)), 1)
        h = (r + sc) / math.sqrt(2)
    return conv("to_rgb.2", act(inorm("to_rgb.0", h)), 0)


def _tiny(seed=0):
    torch.manual_seed(seed)
    return StarGANv2(**TINY).eval()


def _save(M, path, **extra):
    torch.save({**{n: getattr(M, n).state_dict() for n in NETS}, **extra}, path)
    return path


def _content(n, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture
def tiny_ckpt(tmp_path):
    M = _tiny()
    return _save(M, tmp_path / "000010_nets_ema.ckpt"), M


def test_the_256px_afhq_model_has_the_reference_key_layout():
    with torch.device("meta"):
        M = StarGANv2(img_size=256, style_dim=64, latent_dim=16, num_domains=3)
    got = {k: tuple(v.shape) for k, v in M.state_dict().items()}
    want = _reference_layout()
    assert got == want                                            # every name and shape, no buffers
    spot = {"generator.from_rgb.weight": (64, 3, 3, 3), "generator.encode.0.conv1.weight": (64, 64, 3, 3),
            "generator.encode.0.conv2.weight": (128, 64, 3, 3), "generator.encode.0.norm1.weight": (64,),
            "generator.encode.0.conv1x1.weight": (128, 64, 1, 1), "generator.encode.5.conv2.weight": (512, 512, 3, 3),
            "generator.decode.0.norm1.fc.weight": (1024, 64), "generator.decode.5.norm1.fc.weight": (256, 64),
            "generator.decode.5.norm2.fc.bias": (128,), "generator.decode.5.conv1x1.weight": (64, 128, 1, 1),
            "generator.to_rgb.0.weight": (64,), "generator.to_rgb.2.weight": (3, 64, 1, 1),
            "mapping_network.shared.0.weight": (512, 16), "mapping_network.shared.6.weight": (512, 512),
            "mapping_network.unshared.2.0.weight": (512, 512), "mapping_network.unshared.2.6.weight": (64, 512),
            "style_encoder.shared.0.weight": (64, 3, 3, 3), "style_encoder.shared.6.conv2.weight": (512, 512, 3, 3),
            "style_encoder.shared.8.weight": (512, 512, 4, 4), "style_encoder.unshared.2.weight": (64, 512)}
    assert {k: got[k] for k in spot} == spot
    assert "generator.decode.6.conv1.weight" not in got and "generator.hpf.filter" not in got
    counts = {n: sum(int(np.prod(s)) for k, s in got.items() if k.startswith(n + ".")) for n in NETS}
    assert counts == {"generator": 33_892_995, "mapping_network": 3_259_072, "style_encoder": 20_949_760}
    assert sum(p.numel() for p in M.parameters()) == 58_101_827 and len(got) == 177
    assert len(M.style_affines) == 12 and M.style_affines[0] is M.generator.decode[0].norm1.fc
    assert infer_stargan_v2_config({n: getattr(M, n).state_dict() for n in NETS}) == {
        "img_size": 256, "style_dim": 64, "latent_dim": 16, "num_domains": 3, "max_conv_dim": 512,
        "dim_in": 64, "hidden": 512}


def test_nets_ema_file_loads_to_identical_outputs_and_converts(tiny_ckpt, tmp_path, capsys):
    from interp_gan.cli import main

    path, M = tiny_ckpt
    s = load_subject(path, device="cpu")
    assert isinstance(s.generator, StarGANv2) and not s.generator.training
    assert s.style_names == ["domain0", "domain1", "domain2"] and s.latent_dim == 4 and s.style_dim == 8
    assert s.meta["model"] == {"name": "stargan_v2", **TINY}
    x, ids, z = _content(6), torch.arange(6) % 3, s.sample_z(6, seed=1)
    with torch.no_grad():
        code = M.mapping_network(z, ids)
        want = M.generator(x, code).clamp(-1, 1)
        out = s.generate(x, ids, z)
        assert torch.equal(out, want)
        raw = _ref_generator(torch.load(path, weights_only=True)["generator"], x, code)
        assert torch.allclose(M.generator(x, code), raw, atol=1e-5)      # the reference forward, independently
        assert (raw.abs() > 1).any() or torch.equal(out, raw)            # unclamped there; clamped in the Subject
        ref = _content(2, seed=5)
        assert torch.equal(s.generator.encode_style(ref, ids[:2]), M.style_encoder(ref, ids[:2]))
    old = _save(M, tmp_path / "dp_nets_ema.ckpt")            # DataParallel-era files: module. prefixes
    sd = torch.load(old, weights_only=True)
    torch.save({n: {f"module.{k}": v for k, v in sd[n].items()} for n in NETS}, old)
    with torch.no_grad():
        assert torch.equal(load_subject(old, device="cpu").generate(x, ids, z), out)

    out_file = tmp_path / "afhq.safetensors"
    with pytest.raises(ValueError, match="StarGAN v2 model with 3 domains; give 3 distinct"):
        convert_checkpoint(path, tmp_path / "x.safetensors", style_names=["cat", "dog"])
    assert main(["convert", str(path), str(out_file), "--style-names", "cat,dog,wild"]) == 0
    c = load_subject(out_file, device="cpu")
    assert c.style_names == ["cat", "dog", "wild"] and c.meta["model"]["name"] == "stargan_v2"
    assert c.meta["converted_from"]["path"] == str(path)
    with torch.no_grad():
        assert torch.equal(c.generate(x, ids, z), out)
    capsys.readouterr()
    assert main(["inspect", str(path), "--size", "32"]) == 0
    printed = capsys.readouterr().out
    assert "generator.encode.0.conv1" in printed and "generator.decode.2.norm1.fc" in printed
    assert build_model("stargan_v2", **TINY).num_styles == 3


def test_the_domain_head_picks_the_style_code(tiny_ckpt):
    path, M = tiny_ckpt
    s = load_subject(path, device="cpu")
    z = s.sample_z(4, seed=2)
    with torch.no_grad():
        codes = [s.style_code(torch.full((4,), d), z) for d in range(3)]
        h = M.mapping_network.shared(z)
        for d in range(3):
            assert torch.allclose(codes[d], M.mapping_network.unshared[d](h), atol=1e-6)
        assert (codes[0] - codes[1]).abs().min() > 0 and (codes[1] - codes[2]).abs().max() > 1e-3
        mixed = s.style_code(torch.tensor([2, 0, 1, 2]), z)
        assert torch.equal(mixed, torch.stack([codes[2][0], codes[0][1], codes[1][2], codes[2][3]]))
    with pytest.raises(ValueError, match=r"style ids must be in 0..2"):
        s.style_code(torch.tensor([3]), z[:1])


def test_the_adain_path_carries_the_code(tiny_ckpt):
    s = load_subject(tiny_ckpt[0], device="cpu")
    x = _content(4, seed=3)
    with torch.no_grad():
        a = s.stylize_code(x, s.style_code(torch.zeros(4, dtype=torch.long), s.sample_z(4, seed=0)))
        b = s.stylize_code(x, s.style_code(torch.zeros(4, dtype=torch.long), s.sample_z(4, seed=1)))
        c = s.stylize_code(x, s.style_code(torch.ones(4, dtype=torch.long), s.sample_z(4, seed=0)))
        a2 = s.stylize_code(x, s.style_code(torch.zeros(4, dtype=torch.long), s.sample_z(4, seed=0)))
    assert torch.equal(a, a2)
    assert (a - b).abs().mean() > 1e-4 and (a - c).abs().mean() > 1e-4
    assert a.shape == x.shape and a.abs().max() <= 1
    with pytest.raises(ValueError, match=r"code must be \[4,8\], got \(4, 7\)"):
        s.stylize_code(x, torch.zeros(4, 7))


def test_hpf_nets_and_malformed_checkpoints_are_refused_clearly(tiny_ckpt, tmp_path):
    path, M = tiny_ckpt
    sd = torch.load(path, weights_only=True)
    # the released AFHQ file carries the FAN too (clovaai/stargan-v2#51); a w_hpf=0 generator never uses it
    fan = _save(M, tmp_path / "100000_nets_ema_fan.ckpt", fan={"conv1.weight": torch.zeros(2, 3, 3, 3)})
    x, ids = _content(2), torch.tensor([0, 2])
    with torch.no_grad():
        s = load_subject(fan, device="cpu")
        assert s.generator.fan is None and "face_masks" not in s.meta and "never uses face masks" in s.meta["fan_ignored"]
        assert torch.equal(s.generate(x, ids, s.sample_z(2, seed=0)),
                           load_subject(path, device="cpu").generate(x, ids, s.sample_z(2, seed=0)))
    buf = tmp_path / "hpf_nets_ema.ckpt"                     # the reference's HighPass as a buffer, w_hpf=0 depth
    torch.save({**sd, "generator": {**sd["generator"], "hpf.filter": torch.ones(3, 3)}}, buf)
    with pytest.raises(ValueError, match=r"high-pass filter \(generator\.hpf\.filter\) but has the w_hpf=0 depth"):
        load_subject(buf, device="cpu")
    torch.manual_seed(0)                                     # w_hpf > 0: one more generator downsampling
    hpf = StarGANv2(**{**TINY, "img_size": 64})              # generator of a 64 px model ...
    nets = {n: getattr(M, n).state_dict() for n in NETS}
    nets["generator"] = hpf.generator.state_dict()           # ... with a 32 px style encoder, and no FAN
    torch.save(nets, tmp_path / "extra_nets_ema.ckpt")
    with pytest.raises(ValueError, match=r"w_hpf > 0.*no 'fan' entry.*the masks cannot be computed"):
        load_subject(tmp_path / "extra_nets_ema.ckpt", device="cpu")

    nets_file = _save(M, tmp_path / "000010_nets.ckpt", discriminator={"main.0.weight": torch.zeros(8, 3, 3, 3)})
    with pytest.raises(ValueError, match=r"training checkpoint \(\*_nets.ckpt.*000010_nets_ema\.ckpt, instead"):
        load_subject(nets_file, device="cpu")
    optims = tmp_path / "000010_optims.ckpt"
    torch.save({n: torch.optim.Adam(getattr(M, n).parameters()).state_dict() for n in NETS}, optims)
    with pytest.raises(ValueError, match=r"optimizer states.*000010_nets_ema\.ckpt"):
        load_subject(optims, device="cpu")

    bad = tmp_path / "bad_nets_ema.ckpt"
    torch.save({**sd, "generator": {**sd["generator"], "decode.1.norm2.fc.weight": torch.zeros(5, 8)}}, bad)
    with pytest.raises(ValueError, match=r"does not match the StarGAN v2 layout.*"
                                         r"generator\.decode\.1\.norm2\.fc\.weight \(5, 8\) \(expected \(32, 8\)\)"):
        load_subject(bad, device="cpu")
    gone = tmp_path / "gone_nets_ema.ckpt"
    torch.save({**sd, "style_encoder": {k: v for k, v in sd["style_encoder"].items() if k != "unshared.1.bias"}}, gone)
    with pytest.raises(ValueError, match=r"missing \['style_encoder\.unshared\.1\.bias'\]"):
        load_subject(gone, device="cpu")
    half = tmp_path / "half_nets_ema.ckpt"
    torch.save({"generator": sd["generator"], "mapping_network": sd["mapping_network"]}, half)
    with pytest.raises(ValueError, match=r"holds generator, mapping_network, style_encoder state_dicts; "
                                         r"missing \['style_encoder'\]"):
        load_subject(half, device="cpu")
    other = tmp_path / "other.ckpt"
    torch.save(nn.Linear(2, 2).state_dict(), other)
    with pytest.raises(ValueError, match="nor a StarGAN v2 checkpoint.*_nets_ema.ckpt.*'weight'"):
        load_subject(other, device="cpu")


def test_directions_and_dissection_run_on_a_stargan_v2_subject(tiny_ckpt):
    s = load_subject(tiny_ckpt[0], device="cpu")
    data = make_tiny_data(s, n=12, size=32)
    f = build_analysis("directions", methods=("pca", "sefa", "random"), n_samples=32, n_directions=3,
                       n_random=2, n_images=8, n_boot=50, n_perm=50, steps=(0, 2), seed=0).run(s, data)
    df = f.tables["directions"]
    assert not f.skipped and len(df) and set(df.space) == {"style_code"}
    assert {"pca", "sefa", "random"} <= set(df.method)
    assert f.arrays["directions"].shape[1] == s.style_dim
    convs = spatial_layers(s.generator)                      # the default layers: only what generate runs
    assert convs[0] == "generator.from_rgb" and not [n for n in convs if not n.startswith("generator.")]
    assert "style_encoder.shared.1.conv1" in dict(s.generator.named_modules())   # still hookable by name
    d = build_analysis("dissection", n_boot=20, n_perm=20).run(s, data)
    assert not d.skipped
    layers = set(d.tables["dissection_units"]["layer"]) if "dissection_units" in d.tables else set()
    assert {"generator.from_rgb", "generator.encode.0.conv1", "generator.decode.2.conv2"} <= layers


def test_reference_guided_codes_come_from_the_style_encoder(tiny_ckpt):
    import torch.nn.functional as F
    s = load_subject(tiny_ckpt[0])
    M = s.generator
    assert s.has_style_encoder
    imgs, ids = _content(3, size=M.img_size // 2, seed=5), torch.tensor([0, 1, 2]) % M.num_styles
    with torch.no_grad():
        code = s.encode_style(imgs, ids)                       # any size: resized to img_size first
        big = F.interpolate(imgs, size=(M.img_size, M.img_size), mode="bilinear", align_corners=False, antialias=True)
        assert torch.equal(code, M.style_encoder(big, ids))
        assert code.shape == (3, M.style_dim) and not torch.equal(code[0], s.encode_style(imgs[:1], ids[1:2])[0])
