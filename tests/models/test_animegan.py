"""AnimeGANv2 generators, as the animegan2-pytorch port saves them (``torch.save(state_dict)``), load as Subjects.

The state_dict is written here key by key in the port's layout (``block_a.0.1.weight`` a conv,
``block_a.0.2.weight`` its GroupNorm, ``block_c.<i>.layers.<j>`` the inverted residual blocks,
``out_layer.0.weight``) with random weights and random norm affines; the expected output comes from an
independent functional forward over the same keys (``F.pad`` reflect, ``F.conv2d``, ``F.group_norm``,
``F.interpolate``), never from our module. Old code: such a file reached the CycleGAN-family ResNet
parser and was refused with a message about ResNet generators.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from interp_gan.subject.loading import load_subject
from tests.models.corrupt_files import KINDS, REASON, assert_refused_in_one_line, corrupted

PORT = dict(widths=(32, 64, 128, 256), num_res=4, expansion=2.0)      # the port's Generator()


def _stages(widths, num_res, expansion, input_nc=3):
    """[(key prefix, kind, cin, cout, k, stride)] in execution order; kind: cnl | irb."""
    w1, w2, w3, w4 = widths
    out = [("block_a.0", "cnl", input_nc, w1, 7, 1), ("block_a.1", "cnl", w1, w2, 3, 2), ("block_a.2", "cnl", w2, w2, 3, 1),
           ("block_b.0", "cnl", w2, w3, 3, 2), ("block_b.1", "cnl", w3, w3, 3, 1), ("block_c.0", "cnl", w3, w3, 3, 1)]
    out += [(f"block_c.{i}", "irb", w3 if i == 1 else w4, w4, 0, 1) for i in range(1, num_res + 1)]
    out += [(f"block_c.{num_res + 1}", "cnl", w4, w3, 3, 1), ("up_d", "up", 0, 0, 0, 0),
            ("block_d.0", "cnl", w3, w3, 3, 1), ("block_d.1", "cnl", w3, w3, 3, 1), ("up_e", "up", 0, 0, 0, 0),
            ("block_e.0", "cnl", w3, w2, 3, 1), ("block_e.1", "cnl", w2, w2, 3, 1), ("block_e.2", "cnl", w2, w1, 7, 1)]
    return out


def reference_state_dict(widths=PORT["widths"], num_res=4, expansion=2.0, input_nc=3, output_nc=3, seed=0):
    """The port's Generator state_dict, key by key, with random values."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def conv(key, cout, cin_per_group, k, bias=False):
        sd[f"{key}.weight"] = torch.randn(cout, cin_per_group, k, k, generator=g) / (k * cin_per_group ** 0.5)
        if bias:
            sd[f"{key}.bias"] = torch.randn(cout, generator=g) * 0.1

    def gn(key, c):
        sd[f"{key}.weight"] = torch.rand(c, generator=g) + 0.5
        sd[f"{key}.bias"] = torch.randn(c, generator=g) * 0.2

    for p, kind, cin, cout, k, _ in _stages(widths, num_res, expansion, input_nc):
        if kind == "cnl":
            conv(f"{p}.1", cout, cin, k)
            gn(f"{p}.2", cout)
        elif kind == "irb":
            mid = int(round(cin * expansion))
            conv(f"{p}.layers.0.1", mid, cin, 1)
            gn(f"{p}.layers.0.2", mid)
            conv(f"{p}.layers.1.1", mid, 1, 3, bias=True)      # depthwise, the one conv with a bias
            gn(f"{p}.layers.1.2", mid)
            conv(f"{p}.layers.2", cout, mid, 1)
            gn(f"{p}.layers.3", cout)
    conv("out_layer.0", output_nc, widths[0], 1)
    return sd


def reference_forward(sd, x, widths=PORT["widths"], num_res=4, expansion=2.0, align_corners=True):
    """The port's Generator.forward(x, align_corners), read off the keys."""
    def cnl(h, key, k, stride, groups=1):
        pad = (0, 1, 0, 1) if stride == 2 else (k // 2,) * 4
        h = F.conv2d(F.pad(h, pad, mode="reflect"), sd[f"{key}.1.weight"], sd.get(f"{key}.1.bias"), stride=stride,
                     groups=groups)
        return F.leaky_relu(F.group_norm(h, 1, sd[f"{key}.2.weight"], sd[f"{key}.2.bias"], eps=1e-5), 0.2)

    def up(h, size):
        if align_corners:
            return F.interpolate(h, size=size, mode="bilinear", align_corners=True)
        return F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)

    h, half = x, None
    for p, kind, cin, cout, k, stride in _stages(widths, num_res, expansion, x.shape[1]):
        if kind == "cnl":
            h = cnl(h, p, k, stride)
        elif kind == "irb":
            y = cnl(h, f"{p}.layers.0", 1, 1)
            y = cnl(y, f"{p}.layers.1", 3, 1, groups=y.shape[1])
            y = F.conv2d(y, sd[f"{p}.layers.2.weight"])
            y = F.group_norm(y, 1, sd[f"{p}.layers.3.weight"], sd[f"{p}.layers.3.bias"], eps=1e-5)
            h = h + y if cin == cout else y
        else:
            h = up(h, half if p == "up_d" else x.shape[-2:])
        if p == "block_a.2":
            half = h.shape[-2:]
    return torch.tanh(F.conv2d(h, sd["out_layer.0.weight"]))


def _save(sd, path, prefix="", wrap=None):
    sd = {f"{prefix}{k}": v for k, v in sd.items()}
    torch.save({"state_dict": sd, "epoch": 3} if wrap == "state_dict" else sd, path)
    return path


VARIANTS = {
    "port_64px": dict(size=(64, 64)),
    "port_odd_non_square": dict(size=(37, 50)),                     # aligned corners: any size, exact sizes back
    "port_scale_factor": dict(size=(48, 64), align_corners=False),  # test.py's --upsample_align default
    "narrow_two_blocks": dict(widths=(8, 16, 24, 32), num_res=2, size=(40, 40)),
    "w3_eq_w4_residual_first_block": dict(widths=(4, 8, 16, 16), num_res=1, size=(32, 36)),
    "expansion_1.5_three_blocks": dict(widths=(8, 8, 16, 24), num_res=3, expansion=1.5, size=(32, 32),
                                       align_corners=False),
    "module_prefix": dict(widths=(8, 16, 24, 32), num_res=2, size=(32, 32), _prefix="module."),
    "netG_prefix_wrapped": dict(widths=(8, 16, 24, 32), num_res=2, size=(32, 32), _prefix="netG.",
                                _wrap="state_dict"),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_loads_and_matches_the_independent_forward(name, tmp_path):
    opts = dict(VARIANTS[name])
    prefix, wrap, size = opts.pop("_prefix", ""), opts.pop("_wrap", None), opts.pop("size")
    ac = opts.pop("align_corners", True)
    sd = reference_state_dict(**opts)
    spec = str(_save(sd, tmp_path / "paprika.pt", prefix, wrap)) + ("" if ac else "#align_corners=false")
    s = load_subject(spec, device="cpu")
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        want = reference_forward(sd, x, align_corners=ac, **opts)
        got = s.generate(x, torch.zeros(2, dtype=torch.long))
    diff = (got - want).abs().max().item()
    assert got.shape == want.shape == (2, 3, *size) and diff < 1e-5, diff
    assert want.std() > 0.05                     # not a saturated / constant output that would match anything
    m = s.meta["model"]
    assert m == {"name": "animegan_v2", "widths": list(opts.get("widths", PORT["widths"])),
                 "num_res": opts.get("num_res", 4), "expansion": opts.get("expansion", 2.0), "input_nc": 3,
                 "output_nc": 3, "align_corners": ac}
    assert f"align_corners={str(ac).lower()}" in s.meta["upsampling"] and "[-1, 1]" in s.meta["value_range"]


def test_the_two_upsamplings_differ_so_the_option_matters(tmp_path):
    sd = reference_state_dict((8, 16, 24, 32), 2)
    p = _save(sd, tmp_path / "face_paint_512_v2.pt")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    z = torch.zeros(1, dtype=torch.long)
    with torch.no_grad():
        a = load_subject(p, device="cpu").generate(x, z)
        b = load_subject(f"{p}#align_corners=false", device="cpu").generate(x, z)
        c = load_subject(p, device="cpu", align_corners=False).generate(x, z)      # as a keyword
    assert (a - b).abs().max() > 1e-3 and torch.equal(b, c)


def test_a_paprika_file_run_with_aligned_corners_is_warned_about_in_meta(tmp_path):
    sd = reference_state_dict((8, 16, 24, 32), 2)
    face, pap = _save(sd, tmp_path / "face_paint_512_v2.pt"), _save(sd, tmp_path / "paprika.pt")
    assert "paprika" not in load_subject(face, device="cpu").meta["upsampling"]
    assert "this file's name says paprika" in load_subject(pap, device="cpu").meta["upsampling"]
    assert "says paprika" not in load_subject(f"{pap}#align_corners=false", device="cpu").meta["upsampling"]


class _RefCNL(nn.Sequential):
    """The port's ConvNormLReLU as its module tree holds it: [pad, conv, GroupNorm, LeakyReLU in place]."""

    def __init__(self, cin, cout, k=3, stride=1, pad=1, groups=1, bias=False):
        super().__init__(nn.ReflectionPad2d(pad), nn.Conv2d(cin, cout, k, stride, 0, groups=groups, bias=bias),
                         nn.GroupNorm(1, cout, affine=True), nn.LeakyReLU(0.2, inplace=True))


class _RefIRB(nn.Module):
    def __init__(self, cin, cout, r=2):
        super().__init__()
        mid = int(round(cin * r))
        self.res = cin == cout
        self.layers = nn.Sequential(_RefCNL(cin, mid, 1, pad=0), _RefCNL(mid, mid, groups=mid, bias=True),
                                    nn.Conv2d(mid, cout, 1, bias=False), nn.GroupNorm(1, cout, affine=True))

    def forward(self, x):
        return x + self.layers(x) if self.res else self.layers(x)


def test_the_port_module_tree_takes_exactly_these_keys_and_computes_the_same(tmp_path):
    """The reference tree's strict load pins the key layout; its forward (in-place LeakyReLU) the numbers."""
    ref = nn.Module()
    half = (0, 1, 0, 1)
    ref.block_a = nn.Sequential(_RefCNL(3, 32, 7, pad=3), _RefCNL(32, 64, stride=2, pad=half), _RefCNL(64, 64))
    ref.block_b = nn.Sequential(_RefCNL(64, 128, stride=2, pad=half), _RefCNL(128, 128))
    ref.block_c = nn.Sequential(_RefCNL(128, 128), _RefIRB(128, 256), *[_RefIRB(256, 256) for _ in range(3)],
                                _RefCNL(256, 128))
    ref.block_d = nn.Sequential(_RefCNL(128, 128), _RefCNL(128, 128))
    ref.block_e = nn.Sequential(_RefCNL(128, 64), _RefCNL(64, 64), _RefCNL(64, 32, 7, pad=3))
    ref.out_layer = nn.Sequential(nn.Conv2d(32, 3, 1, bias=False), nn.Tanh())
    sd = reference_state_dict()
    ref.load_state_dict(sd, strict=True)
    ref.eval()
    x = torch.rand(1, 3, 40, 44, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        a = ref.block_a(x.clone())
        h = F.interpolate(ref.block_c(ref.block_b(a)), a.shape[-2:], mode="bilinear", align_corners=True)
        h = F.interpolate(ref.block_d(h), x.shape[-2:], mode="bilinear", align_corners=True)
        want = ref.out_layer(ref.block_e(h))
        got = load_subject(_save(sd, tmp_path / "G.pt"), device="cpu").generate(x, torch.zeros(1, dtype=torch.long))
    assert (got - want).abs().max().item() < 1e-5
    assert (reference_forward(sd, x) - want).abs().max().item() < 1e-5


def test_the_random_init_control_puts_every_group_norm_back_to_its_construction(tmp_path):
    sd = reference_state_dict((8, 16, 24, 32), 2)
    s = load_subject(_save(sd, tmp_path / "G.pt"), device="cpu")
    with s.random_init(seed=0) as c:
        assert c.random_init_report.kept == {}
        live = s.generator.state_dict()
        norms = [k for k in live if ".norm." in k or k.endswith(("norm.weight", "norm.bias"))]
        assert len(norms) == 2 * (12 + 2 * 3)      # 12 ConvNormLReLU stages, 3 GroupNorms in each residual block
        for k in norms:
            assert torch.equal(live[k], torch.ones_like(live[k]) if k.endswith("weight") else torch.zeros_like(live[k])), k
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert (s.generate(x, torch.zeros(1, dtype=torch.long)) - reference_forward(sd, x, (8, 16, 24, 32), 2)).abs().max() < 1e-5


def test_layers_are_named_by_role_in_execution_order(tmp_path):
    from interp_gan.harvest.hooks import default_unit_layer, modules_that_fire, spatial_layers

    s = load_subject(_save(reference_state_dict((8, 16, 24, 32), 2), tmp_path / "G.pt"), device="cpu")
    convs = spatial_layers(s.generator)
    assert convs == (["block_a.0.conv", "block_a.1.conv", "block_a.2.conv", "block_b.0.conv", "block_b.1.conv",
                      "block_c.0.conv"]
                     + [f"block_c.{i}.{n}" for i in (1, 2) for n in ("expand.conv", "dw.conv", "project")]
                     + ["block_c.3.conv", "block_d.0.conv", "block_d.1.conv", "block_e.0.conv", "block_e.1.conv",
                        "block_e.2.conv", "out_layer.conv"])
    x = torch.zeros(1, 3, 64, 64)
    z = torch.zeros(1, dtype=torch.long)
    names = convs + ["up_d", "up_e"]
    fired = modules_that_fire(s.generator, names, lambda: s.generate(x, z))
    assert fired == convs[:13] + ["up_d"] + convs[13:15] + ["up_e"] + convs[15:]
    assert default_unit_layer(s.generator) == "block_c.3.conv"
    from interp_gan.models.animegan import AnimeGANv2Generator
    assert default_unit_layer(AnimeGANv2Generator()) == "block_c.5.conv"     # the port's: not the middle conv
    assert spatial_layers(AnimeGANv2Generator())[12] == "block_c.3.expand.conv"
    with torch.no_grad(), __import__("interp_gan").TraceDict(s.generator, ["block_c.3.conv", "up_e"]) as td:
        s.generate(x, z)
    assert td["block_c.3.conv"].output.shape == (1, 24, 16, 16) and td["up_e"].output.shape == (1, 24, 64, 64)


CORRUPT = {"missing": ("block_c.2.layers.1.1.bias", None),        # (key, its new value; None: deleted)
           "extra": ("block_d.2.1.weight", torch.zeros(24, 24, 3, 3)),
           "wrong_shape": ("block_c.1.layers.1.1.weight", torch.zeros(48, 48, 3, 3))}   # depthwise saved as full


@pytest.mark.parametrize("kind", KINDS)
def test_a_corrupted_file_is_one_line_naming_the_key(kind, tmp_path, capsys):
    sd, key = corrupted(reference_state_dict((8, 16, 24, 32), 2), *CORRUPT[kind])
    assert_refused_in_one_line(_save(sd, tmp_path / "bad.pt"), key, capsys,
                               says=("AnimeGANv2", REASON[kind]), not_says=("ResNet",))


def test_a_huge_width_in_one_tensor_is_named_not_allocated(tmp_path, monkeypatch):
    sd = reference_state_dict((8, 16, 24, 32), 2)
    sd["block_a.0.1.weight"] = torch.zeros(100000, 3, 7, 7)       # one tensor saying w1 = 100000
    with pytest.raises(ValueError, match=r"widths 8/16/24/32.*wrong shape block_a\.0\.1\.weight \[100000, 3, 7, 7\]"):
        load_subject(_save(sd, tmp_path / "huge.pt"), device="cpu")
    monkeypatch.setenv("INTERP_GAN_MAX_PARAMS", "1000")           # a consistent file over the cap
    with pytest.raises(ValueError, match=r"G\.pt: the AnimeGANv2 generator its tensors imply would have"):
        load_subject(_save(reference_state_dict((8, 16, 24, 32), 2), tmp_path / "G.pt"), device="cpu")


def test_options_are_checked_in_one_line(tmp_path):
    from interp_gan.models.cyclegan import CycleGANGenerator

    p = _save(reference_state_dict((8, 16, 24, 32), 2), tmp_path / "paprika.pt")
    with pytest.raises(ValueError, match=r"unknown option 'align_corners=maybe'.*align_corners=true\|false") as e:
        load_subject(f"{p}#align_corners=maybe", device="cpu")
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"\['truncation_psi'\] apply to StyleGAN2 subjects only.*align_corners"):
        load_subject(f"{p}#psi=0.7", device="cpu")
    torch.save(CycleGANGenerator(ngf=4, n_blocks=1).state_dict(), tmp_path / "cyc.pth")
    with pytest.raises(ValueError, match=r"apply to AnimeGANv2 generators \(keys .*\) only"):
        load_subject(f"{tmp_path / 'cyc.pth'}#align_corners=false", device="cpu")
    with pytest.raises(ValueError, match=r"expected True or False"):
        load_subject(p, device="cpu", align_corners="no")
    s = load_subject(f"{p}#align_corners=false", device="cpu")
    with pytest.raises(ValueError, match=r"multiples of 4; got 30x32") as e:
        s.generate(torch.zeros(1, 3, 30, 32), torch.zeros(1, dtype=torch.long))
    assert "\n" not in str(e.value)


def test_the_pipeline_rounds_image_size_up_only_for_scale_factor_upsampling(tmp_path, capsys):
    from interp_gan.config import PipelineConfig
    from interp_gan.pipeline import _fit_image_size

    p = _save(reference_state_dict((8, 16, 24, 32), 2), tmp_path / "paprika.pt")
    cfg = PipelineConfig(name="t", image_size=30)
    assert _fit_image_size(load_subject(p, device="cpu"), cfg).image_size == 30
    assert _fit_image_size(load_subject(f"{p}#align_corners=false", device="cpu"), cfg).image_size == 32
    assert "image_size 30 -> 32" in capsys.readouterr().out


@pytest.mark.parametrize("align", [True, False])
def test_converted_file_round_trips_with_its_upsampling(align, tmp_path):
    from interp_gan.cli import main

    sd = reference_state_dict((8, 16, 24, 32), 2)
    src = _save(sd, tmp_path / "face_paint_512_v1.pt", "module.")
    spec = str(src) if align else f"{src}#align_corners=false"
    out = tmp_path / "g.safetensors"
    assert main(["convert", spec, str(out)]) == 0
    s, orig = load_subject(out, device="cpu"), load_subject(spec, device="cpu")
    assert s.meta["model"]["name"] == "animegan_v2" and s.meta["model"]["align_corners"] is align
    assert s.meta["upsampling"] == orig.meta["upsampling"]
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4)) * 2 - 1
    z = torch.zeros(2, dtype=torch.long)
    with torch.no_grad():
        got = s.generate(x, z)
        assert torch.equal(got, orig.generate(x, z))
        assert (got - reference_forward(sd, x, (8, 16, 24, 32), 2, align_corners=align)).abs().max() < 1e-5
    with pytest.raises(ValueError, match=r"keeps the value it was converted with"):
        load_subject(f"{out}#align_corners=true", device="cpu")


def test_convert_with_two_style_names_names_animegan(tmp_path, capsys):
    from interp_gan.cli import main

    src = _save(reference_state_dict((8, 16, 24, 32), 2), tmp_path / "paprika.pt")
    assert main(["convert", str(src), str(tmp_path / "g.safetensors"), "--style-names", "a,b"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "AnimeGANv2 generator (one style)" in err


@pytest.mark.slow   # ~12 s: a whole analyze run with its report
def test_analyze_runs_dissection_end_to_end(tmp_path, capsys):
    import json

    from interp_gan.cli import main

    p = _save(reference_state_dict((4, 8, 8, 8), 1), tmp_path / "paprika.pt")
    sets = ["n_images=16", "image_size=32", "batch_size=8", "analyses.dissection.n_boot=20",
            "analyses.dissection.n_perm=20"]
    rc = main(["analyze", f"{p}#align_corners=false", "--pipeline", "analyses/dissection.toml", "--device", "cpu",
               "--out", str(tmp_path / "rep"), *[x for s in sets for x in ("--set", s)]])
    assert rc == 0, capsys.readouterr().err[-2000:]
    found = json.loads((tmp_path / "rep" / "findings.json").read_text())
    d = found["dissection"]
    assert not d.get("skipped"), d.get("skipped")
    import pandas as pd
    units = pd.read_csv(tmp_path / "rep" / "findings" / "dissection_units.csv")
    assert {"block_c.2.conv", "block_c.1.dw.conv", "block_e.2.conv"} <= set(units["layer"])
    assert (tmp_path / "rep" / "index.html").is_file()


@pytest.mark.slow   # ~10 s: every analysis of analyses/full.toml (but replication) on an AnimeGANv2 nobody configured
def test_full_pipeline_runs_or_skips_every_analysis(tmp_path):
    import json

    from interp_gan.config import load_pipeline
    from tests.test_unconfigured_pipeline import analyze_family

    p = _save(reference_state_dict((4, 8, 8, 8), 1), tmp_path / "face_paint_512_v2.pt")
    found = analyze_family(p, tmp_path / "rep")
    assert any("'block_c.2.conv', chosen by default" in n for n in found["directions"]["notes"])
    assert any("used 'block_c.2.conv'" in n for n in found["embedding"]["notes"])
