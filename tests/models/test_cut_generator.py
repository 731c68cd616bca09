"""CUT / FastCUT generators (``latest_net_G.pth``) load as Subjects through the ResNet family.

Each variant's state dict is written in the reference key layout with random weights
(``tests/models/cut_reference.py``); the expected output comes from an independent functional
forward that reads those keys, never from our module. Both anti-aliasing flags and their mixtures,
three norms, other widths / depths / filter sizes, prefixes and wrappers; misplaced, missing and
misshapen keys; CUT's other networks (netF, netD); default layers, the random-init control,
convert and an end-to-end analysis.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from interp_gan.subject.loading import load_subject
from tests.models.corrupt_files import assert_refused_in_one_line, corrupted
from tests.models.cut_reference import binomial, reference_forward, reference_state_dict

ONE = torch.zeros(2, dtype=torch.long)


def _save(sd, path, prefix="", wrap=None):
    sd = {f"{prefix}{k}": v for k, v in sd.items()}
    if wrap == "state_dict":
        obj = {"state_dict": sd, "epoch": 400}
    elif wrap == "nets":               # a bundle of CUT's three networks
        obj = {"netG": sd, "netF": _netf(), "netD": _netd()}
    elif wrap == "flat_multi":         # one flat dict, networks under prefixes
        obj = {**sd, **{f"netF.{k}": v for k, v in _netf().items()}, **{f"netD.{k}": v for k, v in _netd().items()}}
    elif wrap == "sorted":             # keys sorted as strings: model.10 before model.2
        obj = dict(sorted(sd.items()))
    else:
        obj = sd
    torch.save(obj, path)
    return path


VARIANTS = {
    "cut_default": dict(),
    "no_antialias": dict(antialias=False),
    "no_antialias_up": dict(antialias_up=False),
    "batch_norm": dict(norm="batch"),
    "no_norm": dict(norm="none"),
    "batch_no_antialias_up": dict(norm="batch", antialias_up=False),
    "no_norm_both_flags_off": dict(norm="none", antialias=False, antialias_up=False),   # old code: instance norm
    "ngf16_6_blocks_dropout": dict(ngf=16, n_blocks=6, dropout=True),
    "gray_in_9_blocks": dict(input_nc=1, n_blocks=9, ngf=4),
    "filters_5_and_3": dict(down_filt=5, up_filt=3),
    "filters_1_and_2": dict(down_filt=1, up_filt=2, antialias_up=True),
    "prefix_module": dict(_prefix="module."),
    "prefix_netG_flat_multi": dict(_prefix="netG.", _wrap="flat_multi", norm="batch"),
    "wrapped_state_dict": dict(_wrap="state_dict", antialias=False),
    "bundle_of_nets": dict(_wrap="nets"),
    "keys_sorted_as_strings": dict(_wrap="sorted", n_blocks=9, ngf=4),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_loads_and_matches_the_independent_forward(name, tmp_path):
    opts = dict(VARIANTS[name])
    prefix, wrap = opts.pop("_prefix", ""), opts.pop("_wrap", None)
    sd = reference_state_dict(**opts)
    s = load_subject(_save(sd, tmp_path / "latest_net_G.pth", prefix, wrap), device="cpu")
    x = torch.rand(2, opts.get("input_nc", 3), 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        want = reference_forward(sd, x, opts.get("norm", "instance"))
        got = s.generate(x, ONE)
    diff = (got - want).abs().max().item()
    print(f"{name}: max abs diff {diff:.3g}")
    assert got.shape == want.shape == (2, 3, 32, 32) and diff < 1e-5
    assert want.std() > 0.05                  # not a saturated / constant output that would match anything
    m = s.meta["model"]
    assert m["name"] == "resnet_generator" and m["norm"] == {"instance": "in", "batch": "bn", "none": "none"}[
        opts.get("norm", "instance")]
    downs = [lay for lay in m["layers"] if lay["role"] == "down"]
    ups = [lay for lay in m["layers"] if lay["role"] == "up"]
    assert [lay.get("blur") for lay in downs] == [opts.get("down_filt", 3) if opts.get("antialias", True) else None] * 2
    assert [lay["up"] for lay in ups] == ["blur" if opts.get("antialias_up", True) else "transposed"] * 2
    assert sum(lay["role"] == "block" for lay in m["layers"]) == opts.get("n_blocks", 2)
    # the model notes say what was read from the filt buffers (old code: no note named the anti-aliasing)
    blur = [n for n in s.meta["model_notes"] if n.startswith("anti-aliased resampling (CUT / FastCUT)")]
    aa, aa_up = opts.get("antialias", True), opts.get("antialias_up", True)
    assert len(blur) == (1 if aa or aa_up else 0)
    if aa:
        f = opts.get("down_filt", 3)
        assert f"blur-pool after 2 downsampling conv(s) (stride-1 conv, then a {f}x{f} binomial" in blur[0]
    if aa_up:
        f = opts.get("up_filt", 4)
        assert f"upsampling before 2 upsampling conv(s) ({f}x{f} binomial)" in blur[0]


def test_with_both_flags_off_it_is_the_cyclegan_reference(tmp_path):
    sd = reference_state_dict(antialias=False, antialias_up=False)
    s = load_subject(_save(sd, tmp_path / "latest_net_G.pth"), device="cpu")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert s.meta["model"]["name"] == "cyclegan"
    with torch.no_grad():
        assert (s.generate(x, ONE) - reference_forward(sd, x)).abs().max() < 1e-5


# --- the reference as a module tree: the keys it makes, and resampling written another way ---------
class _Down(nn.Module):
    """Blur-pool written with strided slices of the reflection-padded map (no conv)."""

    def __init__(self, c, f=3):
        super().__init__()
        self.register_buffer("filt", binomial(f)[None, None].repeat(c, 1, 1, 1))

    def forward(self, x):
        f = self.filt.shape[-1]
        xp = F.pad(x, ((f - 1) // 2, f // 2) * 2, mode="reflect")
        ho, wo = (xp.shape[2] - f) // 2 + 1, (xp.shape[3] - f) // 2 + 1
        return sum(self.filt[:, 0, a, b].view(1, -1, 1, 1) * xp[:, :, a::2, b::2][:, :, :ho, :wo]
                   for a in range(f) for b in range(f))


class _Up(nn.Module):
    """The 1-3-3-1 x2 upsampling is bilinear interpolation at half-pixel centres, edges clamped."""

    def __init__(self, c):
        super().__init__()
        self.register_buffer("filt", binomial(4, 4.0)[None, None].repeat(c, 1, 1, 1))

    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class _Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.conv_block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3), nn.InstanceNorm2d(d), nn.ReLU(True),
                                        nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3), nn.InstanceNorm2d(d))

    def forward(self, x):
        return x + self.conv_block(x)


def _tree(ngf, n_blocks):
    """The reference's nn.Sequential for the default flags and instance norm, layer by layer."""
    m = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
    for i in range(2):
        c = ngf * 2 ** i
        m += [nn.Conv2d(c, 2 * c, 3, padding=1), nn.InstanceNorm2d(2 * c), nn.ReLU(True), _Down(2 * c)]
    m += [_Block(4 * ngf) for _ in range(n_blocks)]
    for i in range(2):
        c = ngf * 2 ** (2 - i)
        m += [_Up(c), nn.Conv2d(c, c // 2, 3, padding=1), nn.InstanceNorm2d(c // 2), nn.ReLU(True)]
    m += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    G = nn.Module()
    G.model = nn.Sequential(*m)
    return G


def test_the_layout_is_the_reference_tree_and_matches_it(tmp_path):
    sd = reference_state_dict(ngf=8, n_blocks=3)
    G = _tree(8, 3)
    G.load_state_dict(sd, strict=True)      # the tree takes exactly these keys: indices and shapes are the reference's
    assert list(G.state_dict()) == list(sd)
    x = torch.rand(2, 3, 36, 28, generator=torch.Generator().manual_seed(2)) * 2 - 1
    s = load_subject(_save(sd, tmp_path / "latest_net_G.pth"), device="cpu")
    with torch.no_grad():
        want = G.model(x)
        assert (reference_forward(sd, x) - want).abs().max() < 1e-5
        assert (s.generate(x, ONE) - want).abs().max() < 1e-5
        odd = torch.rand(1, 3, 30, 30) * 2 - 1        # 30 -> 15 -> 8 -> 16 -> 32, as the reference does
        assert s.generate(odd, ONE[:1]).shape[-1] == G.model(odd).shape[-1] == 32


def test_layers_are_named_as_the_resnet_family_and_blur_layers_are_not_units(tmp_path):
    from interp_gan.harvest.hooks import default_unit_layer, modules_that_fire, spatial_layers

    s = load_subject(_save(reference_state_dict(ngf=4, n_blocks=9), tmp_path / "latest_net_G.pth"), device="cpu")
    names = {n for n, _ in s.generator.named_modules()}
    assert {"stem.conv", "down1.conv", "down1.blur", "down2.blur", "blocks.8.conv2", "up1.blur", "up1.conv",
            "up2.norm", "head.conv"} <= names
    convs = spatial_layers(s.generator)
    assert convs == (["stem.conv", "down1.conv", "down2.conv"]
                     + [f"blocks.{i}.conv{j}" for i in range(9) for j in (1, 2)] + ["up1.conv", "up2.conv", "head.conv"])
    x = torch.zeros(1, 3, 32, 32)
    order = modules_that_fire(s.generator, ["down1.conv", "down1.blur", "up1.blur", "up1.conv"],
                              lambda: s.generate(x, ONE[:1]))
    assert order == ["down1.conv", "down1.blur", "up1.blur", "up1.conv"]
    assert default_unit_layer(s.generator) == "blocks.4.conv2"    # as for a CycleGAN with 9 blocks


def test_the_random_init_control_keeps_the_filters_and_redraws_the_rest(tmp_path):
    sd = reference_state_dict(ngf=4, norm="batch")
    s = load_subject(_save(sd, tmp_path / "latest_net_G.pth"), device="cpu")
    trained = {k: v.clone() for k, v in s.generator.state_dict().items()}
    with s.random_init(seed=0) as c:
        r = c.random_init_report
        assert r.kept == {} and sorted(r.constants) == ["down1.blur.filt", "down2.blur.filt", "up1.blur.filt",
                                                         "up2.blur.filt"]
        for k, v in s.generator.state_dict().items():
            if k.endswith(".filt"):
                assert torch.equal(v, trained[k])
            elif v.is_floating_point() and not k.endswith("running_var"):
                assert not torch.equal(v, trained[k]), k


# --- convert ----------------------------------------------------------------------------------------
def test_convert_round_trips_with_identical_images(tmp_path):
    from interp_gan.cli import main

    src = _save(reference_state_dict(antialias_up=False, norm="batch"), tmp_path / "latest_net_G.pth", "module.")
    out = tmp_path / "cut.safetensors"
    assert main(["convert", str(src), str(out)]) == 0
    a, b = load_subject(src, device="cpu"), load_subject(out, device="cpu")
    assert b.meta["model"] == a.meta["model"] and b.meta["model"]["layers"][1]["blur"] == 3
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.no_grad():
        assert torch.equal(a.generate(x, ONE), b.generate(x, ONE))


# --- bad files: one line each ---------------------------------------------------------------------
CORRUPT = {      # (the key the line names, the key changed, its new value; None: deleted)
    "missing_filt": ("model.8.weight", "model.11.filt", None),           # down2's blur filter gone: down1 keeps one
    "missing_up_filt": ("model.19.weight", "model.18.filt", None),
    "filt_wrong_channels": ("model.7.filt", "model.7.filt", binomial(3)[None, None].repeat(12, 1, 1, 1)),
    "conv_wrong_shape": ("model.15.weight", "model.15.weight", torch.zeros(16, 24, 3, 3)),
    "extra_filt_after_head": ("model.25.filt", "model.25.filt", binomial(3)[None, None].repeat(3, 1, 1, 1)),
    "extra_layer": ("model.12.attn.weight", "model.12.attn.weight", torch.zeros(8, 32)),   # a layer with no place
}


@pytest.mark.parametrize("kind", list(CORRUPT))
def test_a_corrupted_cut_file_is_one_line_naming_the_key(kind, tmp_path, capsys):
    named, key, value = CORRUPT[kind]
    sd, _ = corrupted(reference_state_dict(), key, value)
    assert_refused_in_one_line(_save(sd, tmp_path / "latest_net_G.pth"), named, capsys)


# --- CUT's other networks -------------------------------------------------------------------------
def _netf(nc=16, widths=(3, 8, 16, 32, 32)):
    """PatchSampleF with MLPs: mlp_<i> = Linear(C_i, nc), ReLU, Linear(nc, nc), one per NCE layer."""
    sd = {}
    for i, c in enumerate(widths):
        sd |= {f"mlp_{i}.0.weight": torch.randn(nc, c), f"mlp_{i}.0.bias": torch.zeros(nc),
               f"mlp_{i}.2.weight": torch.randn(nc, nc), f"mlp_{i}.2.bias": torch.zeros(nc)}
    return sd


def _netd(ndf=8, antialias=True):
    """NLayerDiscriminator (n_layers 3, instance norm): 4x4 convs, blur-pool after the first three."""
    sd, i, widths = {}, 0, [3, ndf, 2 * ndf, 4 * ndf, 8 * ndf]
    for n in range(4):
        sd[f"model.{i}.weight"] = torch.randn(widths[n + 1], widths[n], 4, 4)
        sd[f"model.{i}.bias"] = torch.zeros(widths[n + 1])
        i += 2 if n == 0 else 3                          # conv, [norm], leaky relu
        if antialias and n < 3:
            sd[f"model.{i}.filt"] = binomial(3)[None, None].repeat(widths[n + 1], 1, 1, 1)
            i += 1
    sd[f"model.{i}.weight"], sd[f"model.{i}.bias"] = torch.randn(1, 8 * ndf, 4, 4), torch.zeros(1)
    return sd


@pytest.mark.parametrize("net,name,expect", [
    ("F", "latest_net_F.pth", "latest_net_G.pth"), ("F_empty", "400_net_F.pth", "400_net_G.pth"),
    ("D", "latest_net_D.pth", "latest_net_G.pth"), ("D_plain", "latest_net_D_A.pth", "latest_net_G_A.pth"),
    ("D", "disc.pth", "CUT: latest_net_G.pth")])
def test_cuts_other_networks_are_refused_naming_the_generator(net, name, expect, tmp_path, capsys):
    from interp_gan.cli import main

    sd = {"F": _netf, "F_empty": dict, "D": _netd, "D_plain": lambda: _netd(antialias=False)}[net]()
    p = tmp_path / name
    torch.save(sd, p)
    with pytest.raises(ValueError) as e:
        load_subject(p, device="cpu")
    msg = str(e.value)
    print(msg)
    assert "\n" not in msg and expect in msg and "not a generator" in msg
    assert ("netF" if net.startswith("F") and net != "F_empty" else "no tensors" if net == "F_empty" else "netD") in msg
    assert main(["inspect", str(p), "--size", "32"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expect in err and "Traceback" not in err


# --- end to end ---------------------------------------------------------------------------------
@pytest.mark.slow   # ~16-22 s: a whole analyze run with its report
def test_overview_and_dissection_run_end_to_end(tmp_path, capsys):
    import json

    from interp_gan.cli import main

    p = _save(reference_state_dict(ngf=4), tmp_path / "latest_net_G.pth")
    pipe = tmp_path / "tiny.toml"
    pipe.write_text('name = "cut"\nn_images = 16\nimage_size = 32\nbatch_size = 8\nseed = 0\ndata = "embedded"\n'
                    "[analyses.overview]\n[analyses.dissection]\nn_boot = 20\nn_perm = 20\n")
    rc = main(["analyze", str(p), "--pipeline", str(pipe), "--device", "cpu", "--out", str(tmp_path / "rep")])
    assert rc == 0, capsys.readouterr().err[-2000:]
    found = json.loads((tmp_path / "rep" / "findings.json").read_text())
    assert not found["dissection"].get("skipped"), found["dissection"].get("skipped")
    assert not found["overview"].get("skipped"), found["overview"].get("skipped")
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "Contrastive Learning for Unpaired Image-to-Image Translation" in html     # the overview cites CUT
