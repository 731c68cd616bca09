"""StarGAN v2 checkpoints trained with ``w_hpf > 0`` (the CelebA-HQ model) as subjects.

The oracle below is written independently, functionally on the saved state dicts, from the
authors' clovaai/stargan-v2 ``core/model.py`` (Generator with w_hpf, HighPass) and ``core/wing.py``
(FAN, get_heatmap, preprocess): the FAN forward with explicit coordinate channels, the heatmap
processing with the authors' index-permutation row shift, and the generator with its encoder cache
and masked high-pass additions. Files are saved as the authors' CheckpointIO does:
``torch.save({net: state_dict})`` with a ``fan`` entry beside the three networks.
"""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from interp_gan.harvest.hooks import spatial_layers
from interp_gan.models.fan import FaceLandmarkNet, masks_from_heatmaps
from interp_gan.models.stargan_v2 import StarGANv2
from interp_gan.subject.loading import load_subject

NETS = ("generator", "mapping_network", "style_encoder", "fan")
TINY = dict(img_size=64, style_dim=8, latent_dim=4, num_domains=2, max_conv_dim=16, dim_in=8, hidden=16,
            w_hpf=1.0, fan_width=16, fan_depth=2)


# ---------------------------------------------------------------- the oracle (authors' layout, functional)
def _bn(g, p, h):
    return F.batch_norm(h, g[f"{p}.running_mean"], g[f"{p}.running_var"], g[f"{p}.weight"], g[f"{p}.bias"],
                        False, 0.0, 1e-5)


def _convblock(g, p, h):
    o1 = F.conv2d(F.relu(_bn(g, f"{p}.bn1", h)), g[f"{p}.conv1.weight"], padding=1)
    o2 = F.conv2d(F.relu(_bn(g, f"{p}.bn2", o1)), g[f"{p}.conv2.weight"], padding=1)
    o3 = F.conv2d(F.relu(_bn(g, f"{p}.bn3", o2)), g[f"{p}.conv3.weight"], padding=1)
    res = h
    if f"{p}.downsample.2.weight" in g:
        res = F.conv2d(F.relu(_bn(g, f"{p}.downsample.0", h)), g[f"{p}.downsample.2.weight"])
    return torch.cat([o1, o2, o3], 1) + res


def _add_coords(h):                       # AddCoordsTh(with_r=True): rows, columns, radius / its max
    n, _, H, W = h.shape
    xx = (torch.arange(H).float() / (H - 1) * 2 - 1)[:, None].expand(H, W)
    yy = (torch.arange(W).float() / (W - 1) * 2 - 1)[None, :].expand(H, W)
    rr = torch.sqrt(xx ** 2 + yy ** 2)
    return torch.cat([h, torch.stack([xx, yy, rr / rr.max()])[None].repeat(n, 1, 1, 1)], 1)


def _hourglass(g, level, h):
    up1 = _convblock(g, f"m0.b1_{level}", h)
    low1 = _convblock(g, f"m0.b2_{level}", F.avg_pool2d(h, 2, stride=2))
    low2 = _hourglass(g, level - 1, low1) if level > 1 else _convblock(g, "m0.b2_plus_1", low1)
    low3 = _convblock(g, f"m0.b3_{level}", low2)
    return up1 + F.interpolate(low3, scale_factor=2, mode="nearest")


def _fan(g, x01):
    h = F.conv2d(_add_coords(x01), g["conv1.conv.weight"], g["conv1.conv.bias"], stride=2, padding=3)
    h = F.relu(_bn(g, "bn1", h))
    h = F.avg_pool2d(_convblock(g, "conv2", h), 2, stride=2)
    h = _convblock(g, "conv4", _convblock(g, "conv3", h))
    depth = max(int(k.split(".")[1][3:]) for k in g if k.startswith("m0.b1_"))
    h = F.conv2d(_add_coords(h), g["m0.coordconv.conv.weight"], g["m0.coordconv.conv.bias"])
    h = _convblock(g, "top_m_0", _hourglass(g, depth, h))
    h = F.relu(_bn(g, "bn_end0", F.conv2d(h, g["conv_last0.weight"], g["conv_last0.bias"])))
    return F.conv2d(h, g["l0.weight"], g["l0.bias"])


def _shift(x, n):                         # the authors' shift: row i takes row (i + n) mod H
    H = x.shape[2]
    return x[:, :, [(i + n) % H for i in range(H)]]


def _preprocess(heat):
    N, C, H, W = heat.shape
    x = torch.where(heat < 0.1, torch.zeros_like(heat), heat)
    flat = x.reshape(N * C, -1)
    mx, mn = flat.max(1, keepdim=True)[0], flat.min(1, keepdim=True)[0]
    x = ((flat - mn) / (mx - mn + 1e-6)).reshape(N, C, H, W)
    for a, b, sh, p in [(8, 25, 0, 3), (33, 51, -7, 2), (55, 60, 8, 4), (77, 82, -8, 4), (83, 88, 8, 4),
                        (88, 96, -2, 3)]:
        x[:, a:b] = _shift(x[:, a:b], sh) ** p
    x[:, list(range(0, 8)) + list(range(25, 33)) + [33, 46, 76, 82]] = 0
    x[:, 52:55] = _shift(x[:, 52:55], 4)
    eyes = x[:, 60:76].clone()
    x[:, 60:76] = _shift(eyes, -8) ** 3 + _shift(eyes, -24)
    x2 = x.clone()
    x2[:, 8:25], x2[:, 76:96], x2[:, 33:51] = 0, 0, 0
    return x.sum(1, keepdim=True).clamp(0, 1), x2.sum(1, keepdim=True).clamp(0, 1)


def _ref_masks(fan_sd, content):
    x = F.interpolate(content, size=256, mode="bilinear")
    heat = _fan(fan_sd, x * 0.5 + 0.5)[:, :-1]
    heat = F.interpolate(heat, scale_factor=256 // heat.shape[2], mode="bilinear", align_corners=True)
    return _preprocess(heat)


def _ref_generator(g, x, s, masks, w_hpf=1.0):
    """core/model.py Generator.forward with w_hpf > 0 (decoder blocks without shortcut)."""
    conv = lambda p, h, pad: F.conv2d(h, g[f"{p}.weight"], g.get(f"{p}.bias"), 1, pad)  # noqa: E731
    act = lambda h: F.leaky_relu(h, 0.2)  # noqa: E731
    kernel = torch.tensor([[-1., -1, -1], [-1, 8, -1], [-1, -1, -1]]) / w_hpf

    def hpf(h):
        return F.conv2d(h, kernel[None, None].repeat(h.shape[1], 1, 1, 1), padding=1, groups=h.shape[1])

    def adain(p, h):
        gamma, beta = F.linear(s, g[f"{p}.fc.weight"], g[f"{p}.fc.bias"])[:, :, None, None].chunk(2, 1)
        return (1 + gamma) * F.instance_norm(h) + beta

    h, cache = conv("from_rgb", x, 1), {}
    n = len({k.split(".")[1] for k in g if k.startswith("encode.")})
    for i in range(n):
        if h.shape[2] in (32, 64, 128):
            cache[h.shape[2]] = h
        p, down = f"encode.{i}", i < n - 2
        sc = conv(f"{p}.conv1x1", h, 0) if f"{p}.conv1x1.weight" in g else h
        sc = F.avg_pool2d(sc, 2) if down else sc
        r = conv(f"{p}.conv1", act(F.instance_norm(h, weight=g[f"{p}.norm1.weight"], bias=g[f"{p}.norm1.bias"])), 1)
        r = F.avg_pool2d(r, 2) if down else r
        r = conv(f"{p}.conv2", act(F.instance_norm(r, weight=g[f"{p}.norm2.weight"], bias=g[f"{p}.norm2.bias"])), 1)
        h = (sc + r) / math.sqrt(2)
    for i in range(n):
        p, up = f"decode.{i}", i >= 2
        r = act(adain(f"{p}.norm1", h))
        r = conv(f"{p}.conv1", F.interpolate(r, scale_factor=2, mode="nearest") if up else r, 1)
        h = conv(f"{p}.conv2", act(adain(f"{p}.norm2", r)), 1)              # no shortcut
        if h.shape[2] in (32, 64, 128):
            m = F.interpolate(masks[0] if h.shape[2] == 32 else masks[1], size=h.shape[2], mode="bilinear")
            h = h + hpf(m * cache[h.shape[2]])
    h = act(F.instance_norm(h, weight=g["to_rgb.0.weight"], bias=g["to_rgb.0.bias"]))
    return conv("to_rgb.2", h, 0)


def _fan_layout(w=64, depth=4):
    """{key: shape} of core/wing.py's FAN (num_landmarks 98), written from its constructors."""
    out = {}

    def bn(p, c):
        out.update({f"{p}.weight": (c,), f"{p}.bias": (c,), f"{p}.running_mean": (c,), f"{p}.running_var": (c,),
                    f"{p}.num_batches_tracked": ()})

    def block(p, a, b):
        bn(f"{p}.bn1", a)
        out[f"{p}.conv1.weight"] = (b // 2, a, 3, 3)
        bn(f"{p}.bn2", b // 2)
        out[f"{p}.conv2.weight"] = (b // 4, b // 2, 3, 3)
        bn(f"{p}.bn3", b // 4)
        out[f"{p}.conv3.weight"] = (b // 4, b // 4, 3, 3)
        if a != b:
            bn(f"{p}.downsample.0", a)
            out[f"{p}.downsample.2.weight"] = (b, a, 1, 1)

    out["conv1.conv.weight"], out["conv1.conv.bias"] = (w, 6, 7, 7), (w,)     # 3 + rows, cols, radius
    bn("bn1", w)
    block("conv2", w, 2 * w)
    block("conv3", 2 * w, 2 * w)
    block("conv4", 2 * w, 4 * w)
    c = 4 * w
    out["m0.coordconv.conv.weight"], out["m0.coordconv.conv.bias"] = (c, c + 3, 1, 1), (c,)
    for level in range(depth, 0, -1):
        for b in ("b1", "b2", "b3"):
            block(f"m0.{b}_{level}", c, c)
    block("m0.b2_plus_1", c, c)
    block("top_m_0", c, c)
    out["conv_last0.weight"], out["conv_last0.bias"] = (c, c, 1, 1), (c,)
    bn("bn_end0", c)
    out["l0.weight"], out["l0.bias"] = (99, c, 1, 1), (99,)
    return out


# ---------------------------------------------------------------- fixtures
def _content(n, size=128, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _tiny(seed=0, content=None):
    """A tiny w_hpf=1 model with random weights, random BN statistics, and a FAN whose heatmaps cross
    the 0.1 threshold on ~1% of the pixels of ``content`` (masks neither empty nor saturated)."""
    torch.manual_seed(seed)
    M = StarGANv2(**TINY).eval()
    with torch.no_grad():
        for m in M.fan.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.num_batches_tracked.fill_(1000)
        heat = M.fan.heatmaps(_content(4) if content is None else content)
        q = torch.quantile(heat.transpose(0, 1).reshape(heat.shape[1], -1), 0.99, dim=1)
        M.fan.l0.bias[:98] -= q - 0.1
    return M


def _save(M, path, drop=(), **extra):
    nets = {n: getattr(M, n).state_dict() for n in NETS if n not in drop}
    torch.save({**nets, **extra}, path)
    return path


@pytest.fixture(scope="module")
def hpf_ckpt(tmp_path_factory):
    M = _tiny()
    return _save(M, tmp_path_factory.mktemp("hpf") / "100000_nets_ema.ckpt"), M


# ---------------------------------------------------------------- tests
def test_the_256px_celeba_hq_layout_and_sizes_are_the_authors():
    with torch.device("meta"):
        M = StarGANv2(img_size=256, num_domains=2, w_hpf=1)
    fan = {k: tuple(v.shape) for k, v in M.fan.state_dict().items()}
    assert fan == _fan_layout()                                           # every FAN key and shape
    count = {n: sum(p.numel() for p in getattr(M, n).parameters()) for n in NETS}
    # the parameter counts the authors' code prints for the CelebA-HQ model (w_hpf=1, 2 domains)
    assert count == {"generator": 43_467_395, "mapping_network": 2_438_272, "style_encoder": 20_916_928,
                     "fan": 6_333_603}
    g = M.generator.state_dict()
    assert "encode.6.conv1.weight" in g and "decode.6.conv1x1.weight" in g and "encode.7.conv1.weight" not in g
    assert "hpf.filter" not in g                                          # the released file has none either


def test_face_masks_match_the_authors_processing_on_planted_landmarks():
    heat = torch.zeros(1, 98, 256, 256)
    heat[0, 40, 100, 120], heat[0, 40, 101, 120] = 1.0, 0.5             # an eyebrow: 7 rows down, squared
    heat[0, 65, 50, 60] = 1.0                                             # an eye: 8 rows down (cubed) + 24 down
    heat[0, 53, 80, 80] = 1.0                                             # the nose: 4 rows up
    heat[0, 30, 10, 10] = heat[0, 20, 200, 20] = 1.0                      # a jaw end (dropped), the jaw (cubed)
    heat[0, 90, 150, 150] = 0.05                                          # below the 0.1 threshold: gone
    whole, inner = masks_from_heatmaps(heat)
    one = 1 / (1 + 1e-6)
    on = {(107, 120): one ** 2, (108, 120): (0.5 * one) ** 2, (58, 60): one ** 3, (74, 60): one,
          (76, 80): one, (200, 20): one ** 3}
    for (r, c), v in on.items():
        assert whole[0, 0, r, c].item() == pytest.approx(v, abs=1e-6), (r, c)
    assert whole.sum().item() == pytest.approx(sum(on.values()), abs=1e-5)   # nothing else: 10,10 and 150,150 dropped
    assert inner[0, 0, 58, 60].item() == pytest.approx(one ** 3) and inner[0, 0, 76, 80].item() == pytest.approx(one)
    assert inner[0, 0, 107, 120] == 0 and inner[0, 0, 200, 20] == 0       # eyebrows and jaw line left out
    ref_whole, ref_inner = _preprocess(heat.clone())
    assert torch.equal(whole, ref_whole) and torch.equal(inner, ref_inner)


def test_outputs_equal_the_reference_computation(hpf_ckpt):
    path, M = hpf_ckpt
    s = load_subject(path, device="cpu")
    assert isinstance(s.generator, StarGANv2) and s.generator.fan is not None
    assert s.meta["model"] == {"name": "stargan_v2", **TINY}
    assert "w_hpf=1 (not recorded in the file" in s.meta["face_masks"]
    sd = torch.load(path, weights_only=True)
    x, ids, z = _content(3), torch.tensor([0, 1, 0]), s.sample_z(3, seed=1)
    with torch.no_grad():
        masks = _ref_masks(sd["fan"], x)
        got = s.generator.face_masks(x)
        for a, b in zip(got, masks):
            assert torch.allclose(a, b, atol=1e-6)
        assert 0.02 < masks[0].mean() < 0.98 and 0.02 < masks[1].mean() < 0.98 and (masks[0] != masks[1]).any()
        code = s.style_code(ids, z)
        want = _ref_generator(sd["generator"], x, code, masks)
        out = s.generate(x, ids, z)
        assert torch.allclose(out, want.clamp(-1, 1), atol=1e-5)
        assert (out - want.clamp(-1, 1)).abs().max() < 1e-5
        # the masks matter: none, or the two swapped, give other images
        assert (want - _ref_generator(sd["generator"], x, code, masks[::-1])).abs().max() > 1e-3
        assert (s.generator.generator(x, code) - want).abs().max() > 1e-3
        small = _content(2, size=64, seed=3)                              # analyses' size: the 32/64 px skips only
        assert torch.allclose(s.stylize_code(small, code[:2]),
                              _ref_generator(sd["generator"], small, code[:2], _ref_masks(sd["fan"], small)).clamp(-1, 1),
                              atol=1e-5)


def test_a_saved_high_pass_filter_gives_w_hpf(hpf_ckpt, tmp_path):
    path, M = hpf_ckpt
    sd = torch.load(path, weights_only=True)
    kernel = torch.tensor([[-1., -1, -1], [-1, 8, -1], [-1, -1, -1]])
    two = tmp_path / "two_nets_ema.ckpt"                                  # the authors' later code saves hpf.filter
    torch.save({**sd, "generator": {**sd["generator"], "hpf.filter": kernel / 2}}, two)
    s = load_subject(two, device="cpu")
    assert s.generator.w_hpf == 2.0 and "w_hpf=2 (read from generator.hpf.filter)" in s.meta["face_masks"]
    x, code = _content(2, seed=4), torch.randn(2, 8)
    with torch.no_grad():
        want = _ref_generator(sd["generator"], x, code, _ref_masks(sd["fan"], x), w_hpf=2.0)
        assert torch.allclose(s.stylize_code(x, code), want.clamp(-1, 1), atol=1e-5)
    bad = tmp_path / "bad_filter_nets_ema.ckpt"
    torch.save({**sd, "generator": {**sd["generator"], "hpf.filter": torch.ones(3, 3)}}, bad)
    with pytest.raises(ValueError, match=r"hpf\.filter \(3, 3\) is not the 3x3 high-pass kernel"):
        load_subject(bad, device="cpu")


def test_strict_loading_errors_are_one_line(hpf_ckpt, tmp_path, capsys):
    from interp_gan.cli import main

    path, M = hpf_ckpt
    sd = torch.load(path, weights_only=True)
    no_fan = _save(M, tmp_path / "nofan_nets_ema.ckpt", drop=("fan",))
    with pytest.raises(ValueError, match=r"trained with w_hpf > 0.*no 'fan' entry \(its entries: generator, "
                                         r"mapping_network, style_encoder\), so the masks cannot be computed"):
        load_subject(no_fan, device="cpu")
    rc = main(["inspect", str(no_fan), "--size", "64"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and "cannot be computed" in err[0], err
    cases = {
        "missing": ({k: v for k, v in sd["fan"].items() if k != "m0.b3_1.conv2.weight"},
                    r"missing \['fan\.m0\.b3_1\.conv2\.weight'\]"),
        "shape": ({**sd["fan"], "top_m_0.bn2.weight": torch.zeros(5)},
                  r"fan\.top_m_0\.bn2\.weight \(5,\) \(expected \(32,\)\)"),
        "extra": ({**sd["fan"], "m1.conv.weight": torch.zeros(1)}, r"unexpected \['fan\.m1\.conv\.weight'\]"),
        "landmarks": ({**sd["fan"], "l0.weight": torch.zeros(69, 64, 1, 1)}, r"predicts 68 landmarks.*98-landmark"),
        "not_fan": ({"weight": torch.zeros(2)}, r"not a face-landmark network \(FAN\) state dict"),
    }
    for name, (fan, pattern) in cases.items():
        p = tmp_path / f"{name}_nets_ema.ckpt"
        torch.save({**sd, "fan": fan}, p)
        with pytest.raises(ValueError, match=pattern):
            load_subject(p, device="cpu")
    net = FaceLandmarkNet.from_state_dict(sd["fan"])                       # the FAN on its own
    assert (net.width, net.depth) == (16, 2) and not net.train().training  # always in inference mode
    assert all(torch.equal(v, sd["fan"][k]) for k, v in net.state_dict().items())
    with pytest.raises(ValueError, match=r"does not match the face-landmark network \(FAN, width 16, depth 2\): "
                                         r"missing \['fan\.l0\.bias'\]"):
        FaceLandmarkNet.from_state_dict({k: v for k, v in sd["fan"].items() if k != "l0.bias"})


def test_default_layers_hooks_and_the_random_init_control(hpf_ckpt):
    from interp_gan.harvest.hooks import default_unit_layer, modules_that_fire

    s = load_subject(hpf_ckpt[0], device="cpu")
    G = s.generator
    layers = spatial_layers(G)
    assert layers and all(n.startswith("generator.") for n in layers)     # no FAN, no style encoder
    assert not [n for n in layers if n.endswith("conv1x1") and n.startswith("generator.decode")]
    assert "fan.m0.b1_2.conv1" in dict(G.named_modules())                 # still hookable by name
    x, ids, z = _content(2, size=64), torch.tensor([0, 1]), s.sample_z(2, seed=0)
    assert sorted(modules_that_fire(G, layers, lambda: s.generate(x, ids, z))) == sorted(layers)   # all run
    assert default_unit_layer(G).startswith("generator.")
    with torch.no_grad():                                                 # "trained": nothing at its init value
        for v in G.generator.parameters():
            v.add_(torch.randn_like(v) * 0.01)
    fan_before = {k: v.clone() for k, v in G.fan.state_dict().items()}
    gen_before = {k: v.clone() for k, v in G.generator.state_dict().items()}
    with torch.no_grad():
        masks, out = G.face_masks(x), s.generate(x, ids, z)
    with s.random_init(seed=0) as control, torch.no_grad():
        assert all(torch.equal(v, fan_before[k]) for k, v in G.fan.state_dict().items())
        changed = [k for k, v in G.generator.state_dict().items() if not torch.equal(v, gen_before[k])]
        assert len(changed) == len(gen_before)                            # every generator tensor re-drawn
        assert all(torch.equal(a, b) for a, b in zip(G.face_masks(x), masks))
        assert not G.fan.training and (control.generate(x, ids, z) - out).abs().max() > 1e-3
        report = control.random_init_report
        assert not report.kept and report.auxiliary and all(k.startswith("fan.") for k in report.auxiliary)
        assert any("leaves fan trained" in n for n in report.notes())
    assert all(torch.equal(v, gen_before[k]) for k, v in G.generator.state_dict().items())
    x.requires_grad_(True)                                                # attribution: gradients reach the content
    s.generate(x, ids, z).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_inspect_and_convert(hpf_ckpt, tmp_path, capsys):
    from interp_gan.cli import main

    path, M = hpf_ckpt
    capsys.readouterr()
    assert main(["inspect", str(path), "--size", "64"]) == 0
    printed = capsys.readouterr().out
    assert "generator.decode.3.conv1" in printed and "fan.m0.b1_2.conv1" in printed and "face_masks" in printed
    out_file = tmp_path / "celeba.safetensors"
    assert main(["convert", str(path), str(out_file), "--style-names", "female,male"]) == 0
    c, s = load_subject(out_file, device="cpu"), load_subject(path, device="cpu")
    x, ids = _content(2, size=64, seed=7), torch.tensor([1, 0])
    with torch.no_grad():
        assert torch.equal(c.generate(x, ids, s.sample_z(2, seed=2)), s.generate(x, ids, s.sample_z(2, seed=2)))
    assert c.generator.w_hpf == 1.0 and c.meta["model"]["fan_width"] == 16
    assert c.meta["face_masks"].startswith("w_hpf=1 (stored by convert)")


@pytest.mark.slow
def test_analyze_end_to_end_with_the_random_init_control(hpf_ckpt, tmp_path):
    from interp_gan.cli import main

    path, _ = hpf_ckpt
    (tmp_path / "mini.toml").write_text(
        'name = "hpf-mini"\nn_images = 8\nimage_size = 64\nbatch_size = 8\nseed = 0\ndevice = "cpu"\n'
        "[analyses.overview]\nn_images = 2\n[analyses.dissection]\nn_boot = 10\nn_perm = 10\ncontrol = true\n")
    rc = main(["analyze", str(path), "--pipeline", str(tmp_path / "mini.toml"), "--out", str(tmp_path / "rep")])
    assert rc == 0
    findings = json.loads((tmp_path / "rep" / "findings.json").read_text())
    assert not findings["dissection"].get("skipped")
    notes = " ".join(findings["dissection"].get("notes", []))
    assert "leaves fan trained" in notes
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "Adaptive Wing Loss" in html and "leaves fan trained" in html     # the FAN's papers, the control's note
