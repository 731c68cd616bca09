"""U-GAT-IT generators (UGATIT-pytorch's ResnetGenerator) read from a UGATIT.save params file.

The reference is rebuilt here in two independent ways: its module tree with the reference's own
indices (``DownBlock.<i>``, ``UpBlock1_<i>``, ``UpBlock2.<i>``; its strict load pins the keys), and a
functional forward written from the reference layout with F.conv2d / F.pad / hand-written norms
(not from our module), on random weights. Old code: every file here was refused (a params dict is
no CycleGAN / StarGAN layout; a lone generator was misread by the generic ResNet parser).
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from interp_gan.subject.loading import load_subject
from tests.models.corrupt_files import KINDS, REASON, assert_refused_in_one_line, corrupted

Z1 = torch.zeros(1, dtype=torch.long)


# --- the reference, independently ---------------------------------------------------------------------
class _RefILN(nn.Module):
    """Holds the reference ILN / adaILN parameters under its names (rho [, gamma, beta])."""

    def __init__(self, c, affine):
        super().__init__()
        self.rho = nn.Parameter(torch.zeros(1, c, 1, 1))
        if affine:
            self.gamma = nn.Parameter(torch.ones(1, c, 1, 1))
            self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))


class _RefRes(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv_block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=False), nn.InstanceNorm2d(c),
                                        nn.ReLU(), nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=False),
                                        nn.InstanceNorm2d(c))


class _RefAda(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.pad1, self.conv1, self.norm1 = nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=False), _RefILN(c, False)
        self.relu1 = nn.ReLU()
        self.pad2, self.conv2, self.norm2 = nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=False), _RefILN(c, False)


def reference_tree(ngf=4, n_blocks=2, img_size=32, light=False, cin=3, cout=3):
    """The reference ResnetGenerator's module tree (keys and shapes only; no forward)."""
    m = 4
    ref = nn.Module()
    down = [nn.ReflectionPad2d(3), nn.Conv2d(cin, ngf, 7, bias=False), nn.InstanceNorm2d(ngf), nn.ReLU()]
    for i in range(2):
        k = 2 ** i
        down += [nn.ReflectionPad2d(1), nn.Conv2d(ngf * k, ngf * k * 2, 3, 2, bias=False),
                 nn.InstanceNorm2d(ngf * k * 2), nn.ReLU()]
    down += [_RefRes(ngf * m) for _ in range(n_blocks)]
    ref.DownBlock = nn.Sequential(*down)
    ref.gap_fc = nn.Linear(ngf * m, 1, bias=False)
    ref.gmp_fc = nn.Linear(ngf * m, 1, bias=False)
    ref.conv1x1 = nn.Conv2d(ngf * m * 2, ngf * m, 1, bias=True)
    fc_in = ngf * m if light else img_size // m * img_size // m * ngf * m
    ref.FC = nn.Sequential(nn.Linear(fc_in, ngf * m, bias=False), nn.ReLU(), nn.Linear(ngf * m, ngf * m, bias=False),
                           nn.ReLU())
    ref.gamma = nn.Linear(ngf * m, ngf * m, bias=False)
    ref.beta = nn.Linear(ngf * m, ngf * m, bias=False)
    for i in range(n_blocks):
        setattr(ref, f"UpBlock1_{i + 1}", _RefAda(ngf * m))
    up = []
    for i in range(2):
        k = 2 ** (2 - i)
        up += [nn.Upsample(scale_factor=2), nn.ReflectionPad2d(1), nn.Conv2d(ngf * k, ngf * k // 2, 3, bias=False),
               _RefILN(ngf * k // 2, True), nn.ReLU()]
    up += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, cout, 7, bias=False), nn.Tanh()]
    ref.UpBlock2 = nn.Sequential(*up)
    return ref


def reference_state_dict(ngf=4, n_blocks=2, img_size=32, light=False, seed=0, cin=3, cout=3):
    """Random weights in the reference layout: convs / linears ~ N(0, 1/fan_in), rho in [0, 1]."""
    sd = reference_tree(ngf, n_blocks, img_size, light, cin, cout).state_dict()
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in sd.items():
        if k.endswith(".rho"):
            out[k] = torch.rand(v.shape, generator=g)
        elif k.endswith(".gamma"):
            out[k] = 1 + 0.2 * torch.randn(v.shape, generator=g)
        elif k.endswith((".beta", ".bias")) and v.dim() != 2:
            out[k] = 0.2 * torch.randn(v.shape, generator=g)
        else:
            fan_in = math.prod(v.shape[1:])
            out[k] = torch.randn(v.shape, generator=g) * (1.5 / math.sqrt(fan_in))
    return out


def _pad_conv(x, w, pad, stride=1, b=None):
    return F.conv2d(F.pad(x, (pad,) * 4, mode="reflect"), w, b, stride=stride)


def _instance(x):        # nn.InstanceNorm2d: biased variance, eps 1e-5, no affine
    mu = x.mean(dim=(2, 3), keepdim=True)
    return (x - mu) / torch.sqrt(((x - mu) ** 2).mean(dim=(2, 3), keepdim=True) + 1e-5)


def _unbiased(x, dims):
    n = math.prod(x.shape[d] for d in dims)
    mu = x.mean(dim=dims, keepdim=True)
    return mu, ((x - mu) ** 2).sum(dim=dims, keepdim=True) / (n - 1)


def _iln(x, rho):        # the reference's ILN / adaILN mix, torch.var (unbiased), eps 1e-5
    mi, vi = _unbiased(x, (2, 3))
    ml, vl = _unbiased(x, (1, 2, 3))
    return rho * (x - mi) / torch.sqrt(vi + 1e-5) + (1 - rho) * (x - ml) / torch.sqrt(vl + 1e-5)


def reference_forward(sd, x, n_blocks=2, light=False):
    """(out, cam_logit, heatmap) of the reference ResnetGenerator, written from its layout."""
    h = F.relu(_instance(_pad_conv(x, sd["DownBlock.1.weight"], 3)))
    h = F.relu(_instance(_pad_conv(h, sd["DownBlock.5.weight"], 1, 2)))
    h = F.relu(_instance(_pad_conv(h, sd["DownBlock.9.weight"], 1, 2)))
    for i in range(n_blocks):
        p = f"DownBlock.{12 + i}.conv_block"
        r = F.relu(_instance(_pad_conv(h, sd[f"{p}.1.weight"], 1)))
        h = h + _instance(_pad_conv(r, sd[f"{p}.5.weight"], 1))
    wa, wm = sd["gap_fc.weight"], sd["gmp_fc.weight"]          # [1, C]
    logit = torch.stack([(h.mean(dim=(2, 3)) * wa).sum(1), (h.amax(dim=(2, 3)) * wm).sum(1)], dim=1)
    both = torch.cat([h * wa.view(1, -1, 1, 1), h * wm.view(1, -1, 1, 1)], 1)
    h = F.relu(F.conv2d(both, sd["conv1x1.weight"], sd["conv1x1.bias"]))
    heat = h.sum(1, keepdim=True)
    v = h.mean(dim=(2, 3)) if light else h.reshape(len(h), -1)
    v = F.relu(F.relu(v @ sd["FC.0.weight"].T) @ sd["FC.2.weight"].T)
    gamma, beta = (v @ sd["gamma.weight"].T)[:, :, None, None], (v @ sd["beta.weight"].T)[:, :, None, None]
    for i in range(1, n_blocks + 1):
        p = f"UpBlock1_{i}"
        r = F.relu(_iln(_pad_conv(h, sd[f"{p}.conv1.weight"], 1), sd[f"{p}.norm1.rho"]) * gamma + beta)
        h = h + _iln(_pad_conv(r, sd[f"{p}.conv2.weight"], 1), sd[f"{p}.norm2.rho"]) * gamma + beta
    for conv, norm in ((2, 3), (7, 8)):
        h = _pad_conv(h.repeat_interleave(2, 2).repeat_interleave(2, 3), sd[f"UpBlock2.{conv}.weight"], 1)
        h = F.relu(_iln(h, sd[f"UpBlock2.{norm}.rho"]) * sd[f"UpBlock2.{norm}.gamma"] + sd[f"UpBlock2.{norm}.beta"])
    return torch.tanh(_pad_conv(h, sd["UpBlock2.11.weight"], 3)), logit, heat


def params_file(ngf=4, n_blocks=2, img_size=32, light=False, seed=0, dis=True):
    """A UGATIT.save params dict: two generators (different seeds) and, optionally, four discriminator stand-ins."""
    out = {"genA2B": reference_state_dict(ngf, n_blocks, img_size, light, seed),
           "genB2A": reference_state_dict(ngf, n_blocks, img_size, light, seed + 1)}
    if dis:
        for name in ("disGA", "disGB", "disLA", "disLB"):
            out[name] = _dis_state_dict(ngf)
    return out


def _dis_state_dict(ndf=4):
    """The keys a spectral-normed U-GAT-IT discriminator saves (a few of them; shapes as the reference)."""
    sn = nn.utils.spectral_norm
    d = nn.Module()
    d.model = nn.Sequential(nn.ReflectionPad2d(1), sn(nn.Conv2d(3, ndf, 4, 2)))
    d.gap_fc = sn(nn.Linear(ndf, 1, bias=False))
    d.gmp_fc = sn(nn.Linear(ndf, 1, bias=False))
    d.conv1x1 = nn.Conv2d(ndf * 2, ndf, 1)
    d.conv = sn(nn.Conv2d(ndf, 1, 4, bias=False))
    return d.state_dict()


def _save(obj, path):
    torch.save(obj, path)
    return path


# --- loading and the forward -----------------------------------------------------------------------
VARIANTS = {
    "full": dict(ngf=4, n_blocks=2, img_size=32),
    "light": dict(ngf=4, n_blocks=2, light=True, size=(40, 24)),       # any multiple of 4, non-square too
    "full_one_block_B2A": dict(ngf=3, n_blocks=1, img_size=16, _direction="B2A"),
    "light_no_blocks": dict(ngf=4, n_blocks=0, light=True, size=(16, 16)),
    "full_module_prefix_wrapped": dict(ngf=4, n_blocks=2, img_size=24, _prefix="module.", _wrap=True),
    "lone_generator": dict(ngf=4, n_blocks=3, light=True, size=(32, 32), _lone=True),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_loads_and_matches_the_independent_forward(name, tmp_path):
    o = dict(VARIANTS[name])
    direction, prefix = o.pop("_direction", None), o.pop("_prefix", "")
    wrap, lone = o.pop("_wrap", False), o.pop("_lone", False)
    light = o.get("light", False)
    size = o.pop("size", (o.get("img_size"),) * 2)
    params = params_file(**o)
    if prefix:
        params = {n: {prefix + k: v for k, v in sd.items()} for n, sd in params.items()}
    obj = params["genA2B"] if lone else {"state_dict": params} if wrap else params
    p = _save(obj, tmp_path / "selfie2anime_params_latest.pt")
    s = load_subject(f"{p}#direction={direction}" if direction else p, device="cpu")
    sd = reference_state_dict(**o, seed=1 if direction == "B2A" else 0)
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        want, logit, heat = reference_forward(sd, x, o["n_blocks"], light)
        got = s.generate(x, torch.zeros(2, dtype=torch.long))
        _, got_logit, got_heat = s.generator.forward_with_cam(x)
    diff = (got - want).abs().max().item()
    assert got.shape == want.shape == (2, 3, *size) and diff < 5e-5, diff
    assert want.std() > 0.05                 # not a saturated / constant output that would match anything
    assert torch.allclose(got_logit, logit, atol=1e-5) and torch.allclose(got_heat, heat, atol=1e-4)
    m = s.meta["model"]
    assert m == {"name": "ugatit", "ngf": o["ngf"], "n_blocks": o["n_blocks"], "img_size": o.get("img_size"),
                 "input_nc": 3, "output_nc": 3, "direction": None if lone else (direction or "A2B")}
    assert "[-1, 1]" in s.meta["value_range"] and any("cam_logit" in n for n in s.meta["model_notes"])
    # a params file's discriminators are not loaded: said (old code: dropped in silence, and discriminator
    # dissection's skip called the file generator-only)
    assert any("discriminators (disGA" in n for n in s.meta["model_notes"]) is (not lone)


def test_the_reference_module_tree_takes_exactly_the_keys_we_read():
    """The reference tree (its own indices) strict-loads our parser's keys back: the layout is the reference's."""
    from interp_gan.models.ugatit import UGATITGenerator, parse_ugatit, remap_ugatit_state_dict

    for light in (False, True):
        sd = reference_state_dict(ngf=4, n_blocks=3, img_size=32, light=light)
        cfg, keymap = parse_ugatit(sd)
        assert set(keymap) == set(sd)
        G = UGATITGenerator(**cfg)
        G.load_state_dict(remap_ugatit_state_dict(sd, keymap))
        back = {k: G.state_dict()[v] for k, v in keymap.items()}
        reference_tree(4, 3, 32, light).load_state_dict(back, strict=True)


def test_the_two_directions_are_two_generators(tmp_path):
    p = _save(params_file(), tmp_path / "selfie2anime_params_latest.pt")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        a = load_subject(p, device="cpu").generate(x, Z1)
        b = load_subject(f"{p}#direction=B2A", device="cpu").generate(x, Z1)
        c = load_subject(p, device="cpu", direction="b2a").generate(x, Z1)          # as a keyword
    assert (a - b).abs().max() > 1e-3 and torch.equal(b, c)


# --- sizes ----------------------------------------------------------------------------------------
def test_a_full_model_takes_its_training_size_only_and_the_pipeline_uses_it(tmp_path, capsys):
    from interp_gan.config import PipelineConfig
    from interp_gan.pipeline import _fit_image_size

    full = load_subject(_save(params_file(img_size=32), tmp_path / "a.pt"), device="cpu")
    with pytest.raises(ValueError, match=r"trained at 32x32.*got 64x64 \(set image_size=32\)") as e:
        full.generate(torch.zeros(1, 3, 64, 64), Z1)
    assert "\n" not in str(e.value)
    cfg = PipelineConfig(name="t", image_size=128)
    assert _fit_image_size(full, cfg).image_size == 32
    assert "image_size 128 -> 32" in capsys.readouterr().out
    from interp_gan.cli import main
    assert main(["inspect", str(tmp_path / "a.pt")]) == 0         # at its own size, not the default 64
    assert "output shape for one 32x32 image, the one size the model takes" in capsys.readouterr().out
    light = load_subject(_save(params_file(light=True), tmp_path / "b.pt"), device="cpu")
    assert _fit_image_size(light, cfg).image_size == 128
    assert _fit_image_size(light, PipelineConfig(name="t", image_size=30)).image_size == 32
    with pytest.raises(ValueError, match=r"multiples of 4.*got 30x32"):
        light.generate(torch.zeros(1, 3, 30, 32), Z1)


def test_an_fc_width_no_image_size_gives_is_one_line(tmp_path):
    params = params_file()
    params["genA2B"]["FC.0.weight"] = torch.zeros(16, 16 * 7)
    with pytest.raises(ValueError, match=r"FC\.0\.weight takes 112 inputs.*--light.*--model file\.py:factory") as e:
        load_subject(_save(params, tmp_path / "x.pt"), device="cpu")
    assert "\n" not in str(e.value)


# --- names, hooks, the control --------------------------------------------------------------------------
def test_layers_are_named_by_role_and_the_cam_outputs_are_hookable(tmp_path):
    from interp_gan import TraceDict
    from interp_gan.harvest.hooks import default_unit_layer, modules_that_fire, spatial_layers

    sd = reference_state_dict()
    s = load_subject(_save(params_file(), tmp_path / "p.pt"), device="cpu")
    convs = spatial_layers(s.generator)
    assert convs == (["down.0.conv", "down.1.conv", "down.2.conv"]
                     + [f"enc_res.{i}.conv{j}" for i in (0, 1) for j in (1, 2)] + ["conv1x1"]
                     + [f"dec_res.{i}.conv{j}" for i in (0, 1) for j in (1, 2)]
                     + ["up.0.conv", "up.1.conv", "out.conv"])
    assert default_unit_layer(s.generator) == "conv1x1" == convs[len(convs) // 2]
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    names = convs + ["cam_logit", "heatmap", "fc.0", "gamma", "beta", "up.0.norm"]
    fired = modules_that_fire(s.generator, names, lambda: s.generate(x, torch.zeros(2, dtype=torch.long)))
    assert fired[:8] == convs[:8] and fired.index("cam_logit") > fired.index("conv1x1")
    assert fired.index("gamma") < fired.index("dec_res.0.conv1") and set(fired) == set(names)
    with torch.no_grad(), TraceDict(s.generator, ["cam_logit", "heatmap", "conv1x1"]) as td:
        s.generate(x, torch.zeros(2, dtype=torch.long))
    _, logit, heat = reference_forward(sd, x)
    assert torch.allclose(td["cam_logit"].output, logit, atol=1e-5)
    assert torch.allclose(td["heatmap"].output, heat, atol=1e-4) and td["conv1x1"].output.shape == (2, 16, 8, 8)


def test_the_random_init_control_puts_every_norm_back_to_its_construction(tmp_path):
    sd = reference_state_dict()
    s = load_subject(_save(params_file(), tmp_path / "p.pt"), device="cpu")
    with s.random_init(seed=0) as c:
        assert c.random_init_report.kept == {}
        live = s.generator.state_dict()
        for k, v in live.items():
            if k.startswith("dec_res.") and k.endswith("rho"):
                assert torch.equal(v, torch.full_like(v, 0.9)), k
            elif k.startswith("up.") and ".norm." in k:
                fill = {"rho": 0.0, "gamma": 1.0, "beta": 0.0}[k.rsplit(".", 1)[1]]
                assert torch.equal(v, torch.full_like(v, fill)), k
            else:
                assert not torch.equal(v, reference_state_dict()[_ref_key(k)]), k
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        assert (s.generate(x, Z1) - reference_forward(sd, x)[0]).abs().max() < 5e-5


def _ref_key(ours):
    from interp_gan.models.ugatit import parse_ugatit
    return {v: k for k, v in parse_ugatit(reference_state_dict())[1].items()}[ours]


# --- refusals --------------------------------------------------------------------------------------
CORRUPT = {"missing": ("UpBlock1_2.norm1.rho", None),        # (key in genA2B, its new value; None: deleted)
           "extra": ("UpBlock2.3.running_mean", torch.zeros(8)),
           "wrong_shape": ("conv1x1.weight", torch.zeros(16, 16, 1, 1))}   # the 1x1 conv reading one map, not two


@pytest.mark.parametrize("kind", KINDS)
def test_a_corrupted_file_is_one_line_naming_the_key(kind, tmp_path, capsys):
    params, key = corrupted(params_file(), *CORRUPT[kind], at=("genA2B",))
    assert_refused_in_one_line(_save(params, tmp_path / "bad.pt"), key, capsys, not_says=("ResNet",),
                               says=("U-GAT-IT", "ngf 4, 2 residual blocks, full, trained at 32x32", REASON[kind]))


def test_a_file_of_discriminators_only_names_the_generator_it_needs(tmp_path, capsys):
    from interp_gan.cli import main

    params = params_file()
    del params["genA2B"], params["genB2A"]
    p = _save(params, tmp_path / "dis.pt")
    with pytest.raises(ValueError, match=r"only U-GAT-IT discriminators \(disGA, disGB, disLA, disLB\).*'genA2B'"):
        load_subject(p, device="cpu")
    assert main(["inspect", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "genA2B" in err
    one = _save(_dis_state_dict(), tmp_path / "disGA.pt")          # one discriminator's own state dict
    with pytest.raises(ValueError, match=r"one U-GAT-IT discriminator's state dict.*'genA2B'"):
        load_subject(one, device="cpu")


def test_direction_options_are_checked_in_one_line(tmp_path):
    from interp_gan.models.cyclegan import CycleGANGenerator

    only_a = params_file()
    del only_a["genB2A"]
    p = _save(only_a, tmp_path / "a.pt")
    with pytest.raises(ValueError, match=r"holds no 'genB2A' \(it has genA2B, disGA.*'#direction=A2B'"):
        load_subject(f"{p}#direction=B2A", device="cpu")
    with pytest.raises(ValueError, match=r"direction='up' in .*: expected direction=a2b\|b2a \(A2B / B2A: U-GAT-IT's genA2B / genB2A"):
        load_subject(f"{p}#direction=up", device="cpu")
    with pytest.raises(ValueError, match=r"apply to StyleGAN2 subjects only.*direction=A2B\|B2A"):
        load_subject(f"{p}#psi=0.7", device="cpu")
    with pytest.raises(ValueError, match=r"options \['align_corners'\] apply to AnimeGANv2 generators \(keys .*\) only"):
        load_subject(f"{p}#align_corners=false", device="cpu")
    lone = _save(params_file()["genA2B"], tmp_path / "g.pt")
    with pytest.raises(ValueError, match=r"one U-GAT-IT generator's state dict.*drop '#direction=B2A'"):
        load_subject(f"{lone}#direction=B2A", device="cpu")
    torch.save(CycleGANGenerator(ngf=4, n_blocks=1).state_dict(), tmp_path / "cyc.pth")
    with pytest.raises(ValueError, match=r"apply to U-GAT-IT params files \(UGATIT\.save's 'genA2B' / 'genB2A'\) and MUNIT generator files"):
        load_subject(f"{tmp_path / 'cyc.pth'}#direction=B2A", device="cpu")


def test_a_huge_fc_is_named_not_allocated(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_GAN_MAX_PARAMS", "1000")
    with pytest.raises(ValueError, match=r"p\.pt: the U-GAT-IT generator its tensors imply would have"):
        load_subject(_save(params_file(), tmp_path / "p.pt"), device="cpu")


# --- convert and the pipeline -----------------------------------------------------------------------------
@pytest.mark.parametrize("direction", ["A2B", "B2A"])
def test_converted_file_round_trips_with_its_direction(direction, tmp_path):
    from interp_gan.cli import main

    light = direction == "B2A"
    src = _save(params_file(light=light), tmp_path / "selfie2anime_params_0100000.pt")
    spec = f"{src}#direction={direction}"
    out = tmp_path / "g.safetensors"
    assert main(["convert", spec, str(out)]) == 0
    s, orig = load_subject(out, device="cpu"), load_subject(spec, device="cpu")
    assert s.meta["model"] == orig.meta["model"] and s.meta["model"]["direction"] == direction
    assert s.meta["model_notes"] == orig.meta["model_notes"]
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4)) * 2 - 1
    z = torch.zeros(2, dtype=torch.long)
    sd = reference_state_dict(light=light, seed=0 if direction == "A2B" else 1)
    with torch.no_grad():
        got = s.generate(x, z)
        assert torch.equal(got, orig.generate(x, z))
        assert (got - reference_forward(sd, x, light=light)[0]).abs().max() < 5e-5
    assert getattr(s.generator, "fixed_size", None) == (None if light else (32, 32))
    with pytest.raises(ValueError, match=r"U-GAT-IT params files.*keeps the value it was converted with"):
        load_subject(f"{out}#direction=A2B", device="cpu")


def test_convert_with_two_style_names_names_ugatit(tmp_path, capsys):
    from interp_gan.cli import main

    src = _save(params_file(), tmp_path / "p.pt")
    assert main(["convert", str(src), str(tmp_path / "g.safetensors"), "--style-names", "a,b"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "U-GAT-IT generator (one style)" in err


@pytest.mark.slow   # ~11 s: a whole analyze run with its report
def test_analyze_runs_dissection_end_to_end_at_the_trained_size(tmp_path, capsys):
    import json

    import pandas as pd

    from interp_gan.cli import main

    p = _save(params_file(ngf=2, n_blocks=1, img_size=32), tmp_path / "selfie2anime_params_latest.pt")
    sets = ["n_images=16", "image_size=64", "batch_size=8", "analyses.dissection.n_boot=20",
            "analyses.dissection.n_perm=20"]
    rc = main(["analyze", f"{p}#direction=B2A", "--pipeline", "analyses/dissection.toml", "--device", "cpu",
               "--out", str(tmp_path / "rep"), *[x for s in sets for x in ("--set", s)]])
    out = capsys.readouterr()
    assert rc == 0, out.err[-2000:]
    assert "image_size 64 -> 32" in out.out
    found = json.loads((tmp_path / "rep" / "findings.json").read_text())
    assert not found["dissection"].get("skipped"), found["dissection"].get("skipped")
    units = pd.read_csv(tmp_path / "rep" / "findings" / "dissection_units.csv")
    assert {"conv1x1", "dec_res.0.conv1", "up.1.conv"} <= set(units["layer"])
    assert (tmp_path / "rep" / "index.html").is_file()


@pytest.mark.slow   # ~10 s: every analysis of analyses/full.toml (but replication) on a U-GAT-IT nobody configured
def test_full_pipeline_runs_or_skips_every_analysis(tmp_path):
    import json

    from interp_gan.config import load_pipeline
    from tests.test_unconfigured_pipeline import analyze_family

    p = _save(params_file(ngf=2, n_blocks=1, img_size=32), tmp_path / "selfie2anime_params_latest.pt")
    found = analyze_family(p, tmp_path / "rep")
    assert any("'conv1x1', chosen by default" in n for n in found["directions"]["notes"])
