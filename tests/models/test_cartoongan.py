"""CartoonGAN generators, as its PyTorch test port saves them (``Hayao_net_G_float.pth``), load as Subjects.

State dicts come from ``tests.models.foreign_layouts.cartoongan`` (the port's ``Transformer`` attribute
names, random weights); the expected output from ``tests.models.cartoongan_reference`` (a functional
forward over the same keys with the port's own instance norm, and ``test.py``'s BGR / range steps), never
from our module. Old code: such a file reached the CycleGAN-family ResNet parser and was refused in one line.
"""

import numpy as np
import pytest
import torch

from interp_gan.subject.loading import load_subject
from tests.models.cartoongan_reference import port_forward, port_test_script
from tests.models.corrupt_files import KINDS, REASON, assert_refused_in_one_line, corrupted
from tests.models.foreign_layouts import cartoongan

SMALL = dict(w=(4, 8, 16), n_res=2)


def _ids(n):
    return torch.zeros(n, dtype=torch.long)


def _save(sd, path, prefix="", wrap=None):
    sd = {f"{prefix}{k}": v for k, v in sd.items()}
    torch.save({wrap: sd, "epoch": 7} if wrap else sd, path)
    return path


def _bgr(x):
    return x[:, [2, 1, 0]]


VARIANTS = {
    "port_widths_8_blocks": dict(w=(64, 128, 256), n_res=8, size=(16, 16)),
    "small": dict(size=(32, 32)),
    "non_square": dict(size=(24, 40)),
    "renamed_norms": dict(renamed=True, size=(32, 32)),
    "no_blocks": dict(w=(4, 8, 16), n_res=0, size=(16, 16)),
    "odd_widths_three_blocks": dict(w=(3, 5, 7), n_res=3, size=(32, 32)),
    "module_prefix": dict(size=(32, 32), _prefix="module."),
    "netG_prefix_wrapped": dict(size=(32, 32), _prefix="netG.", _wrap="state_dict"),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_loads_and_matches_the_port_forward(name, tmp_path):
    opts = dict(VARIANTS[name])
    prefix, wrap, size = opts.pop("_prefix", ""), opts.pop("_wrap", None), opts.pop("size")
    sd = cartoongan(**{**SMALL, **opts})
    s = load_subject(_save(sd, tmp_path / "Hayao_net_G_float.pth", prefix, wrap), device="cpu")
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    n_res = opts.get("n_res", SMALL["n_res"])
    naming = ("weight", "bias") if opts.get("renamed") else ("scale", "shift")
    with torch.no_grad():
        want = _bgr(port_forward(sd, _bgr(x), n_res=n_res, naming=naming))
        got = s.generate(x, _ids(2))
    diff = (got - want).abs().max().item()
    assert got.shape == want.shape == (2, 3, *size) and diff < 1e-5, diff
    assert want.std() > 0.05 and (want.abs() < 0.99).float().mean() > 0.5     # neither constant nor saturated
    assert s.meta["model"] == {"name": "cartoongan", "widths": list(opts.get("w", SMALL["w"])), "n_res": n_res}
    assert s.meta["value_range"]["channel_order"] == "BGR inside, RGB outside"
    assert any("norms: saved as weight / bias" in n for n in s.meta["model_notes"]) == bool(opts.get("renamed"))


def test_an_rgb_image_goes_through_the_test_scripts_bgr_steps(tmp_path):
    """The project's RGB image in [-1, 1] -> subject -> * 0.5 + 0.5 equals test.py on the same uint8 image; and
    the flips matter: the port's network fed RGB without them gives another image."""
    sd = cartoongan(**SMALL, seed=3)
    s = load_subject(_save(sd, tmp_path / "Shinkai_net_G_float.pth"), device="cpu")
    rng = np.random.default_rng(0)
    img = np.zeros((32, 32, 3), np.uint8)
    img[..., 0] = 230                                   # a red photo with texture: channels differ
    img[..., 1:] = rng.integers(0, 90, (32, 32, 2), dtype=np.uint8)
    x = torch.from_numpy(img).permute(2, 0, 1).float().unsqueeze(0) / 127.5 - 1     # interp_gan's loading
    with torch.no_grad():
        want = port_test_script(sd, img, n_res=2)
        got = s.generate(x, _ids(1))[0] * 0.5 + 0.5
        unflipped = port_forward(sd, x, n_res=2)[0] * 0.5 + 0.5
    assert (got - want).abs().max().item() < 1e-5
    assert (unflipped - want).abs().max().item() > 1e-2


def test_layers_are_named_by_role_and_the_default_is_the_last_block(tmp_path):
    from interp_gan import TraceDict
    from interp_gan.harvest.hooks import default_unit_layer, modules_that_fire, spatial_layers
    from interp_gan.models.cartoongan import CartoonGANGenerator

    s = load_subject(_save(cartoongan(**SMALL), tmp_path / "G.pth"), device="cpu")
    convs = spatial_layers(s.generator)
    assert convs == ["stem.conv", "down1.conv1", "down1.conv2", "down2.conv1", "down2.conv2", "res.0.conv1",
                     "res.0.conv2", "res.1.conv1", "res.1.conv2", "up1.deconv", "up1.conv", "up2.deconv", "up2.conv",
                     "head.conv"]
    x = torch.zeros(1, 3, 32, 32)
    assert modules_that_fire(s.generator, convs, lambda: s.generate(x, _ids(1))) == convs
    assert default_unit_layer(s.generator) == "res.1"
    assert default_unit_layer(CartoonGANGenerator()) == "res.7"        # the port's 8 blocks
    assert default_unit_layer(CartoonGANGenerator(n_res=0)) == "down2"
    with torch.no_grad(), TraceDict(s.generator, ["res.1", "up1.deconv"]) as td:
        s.generate(x, _ids(1))
    assert td["res.1"].output.shape == (1, 16, 8, 8) and td["up1.deconv"].output.shape == (1, 8, 16, 16)


def test_the_random_init_control_redraws_every_conv_and_norm(tmp_path):
    s = load_subject(_save(cartoongan(**SMALL), tmp_path / "G.pth"), device="cpu")
    trained = {k: v.clone() for k, v in s.generator.state_dict().items()}
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        before = s.generate(x, _ids(1))
        with s.random_init(seed=0) as c:
            assert c.random_init_report.kept == {}
            live = s.generator.state_dict()
            assert all(not torch.equal(v, trained[k]) for k, v in live.items())
            norms = [k for k in live if ".norm" in k]
            assert len(norms) == 2 * (3 + 2 * 2 + 2)
            assert all(torch.equal(live[k], torch.ones_like(live[k]) if k.endswith("weight") else
                                   torch.zeros_like(live[k])) for k in norms)
        assert torch.equal(s.generate(x, _ids(1)), before)


CORRUPT = {"missing": ("in05_2.shift", None),                    # (key, its new value; None: deleted)
           "extra": ("conv07_1.weight", torch.zeros(16, 16, 3, 3)),      # a block after a gap: not read as a block
           "wrong_shape": ("deconv01_1.weight", torch.zeros(8, 16, 3, 3))}  # the transposed conv saved as a conv


@pytest.mark.parametrize("kind", KINDS)
def test_a_corrupted_file_is_one_line_naming_the_key(kind, tmp_path, capsys):
    sd, key = corrupted(cartoongan(**SMALL), *CORRUPT[kind])
    p = _save(sd, tmp_path / "bad.pth")
    assert_refused_in_one_line(p, key, capsys, says=("CartoonGAN", REASON[kind], str(p)), not_says=("ResNet",))


def test_many_wrong_keys_are_named_three_at_a_time(tmp_path):
    sd = cartoongan(**SMALL)
    for k in ("in01_1.scale", "in02_1.scale", "in03_1.scale", "in04_1.scale"):
        sd[k.replace("scale", "gain")] = sd.pop(k)
    with pytest.raises(ValueError, match=r"could not place in01_1\.gain, in02_1\.gain, in03_1\.gain \(and 1 more\)"):
        load_subject(_save(sd, tmp_path / "bad.pth"), device="cpu")


def test_a_huge_width_in_one_tensor_is_named_not_allocated(tmp_path, monkeypatch):
    sd = cartoongan(**SMALL)
    sd["conv01_1.weight"] = torch.zeros(100000, 3, 7, 7)
    with pytest.raises(ValueError, match=r"widths 4/8/16.*wrong shape conv01_1\.weight \[100000, 3, 7, 7\]"):
        load_subject(_save(sd, tmp_path / "huge.pth"), device="cpu")
    monkeypatch.setenv("INTERP_GAN_MAX_PARAMS", "1000")
    with pytest.raises(ValueError, match=r"G\.pth: the CartoonGAN generator its tensors imply would have"):
        load_subject(_save(cartoongan(**SMALL), tmp_path / "G.pth"), device="cpu")


def test_sizes_options_and_the_pipelines_rounding(tmp_path, capsys):
    from interp_gan.config import PipelineConfig
    from interp_gan.pipeline import _fit_image_size

    p = _save(cartoongan(**SMALL), tmp_path / "Hosoda_net_G_float.pth")
    s = load_subject(p, device="cpu")
    with pytest.raises(ValueError, match=r"multiples of 4 .*got 30x32") as e:
        s.generate(torch.zeros(1, 3, 30, 32), _ids(1))
    assert "\n" not in str(e.value)
    assert _fit_image_size(s, PipelineConfig(name="t", image_size=30)).image_size == 32
    assert "image_size 30 -> 32" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"\['align_corners'\] apply to AnimeGANv2 .*drop the '#...' part") as e:
        load_subject(f"{p}#align_corners=false", device="cpu")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("renamed", [False, True])
def test_converted_file_round_trips_with_its_notes(renamed, tmp_path, capsys):
    from interp_gan.cli import main

    sd = cartoongan(**SMALL, renamed=renamed)
    src = _save(sd, tmp_path / "Paprika_net_G_float.pth", "module.")
    out = tmp_path / "paprika.safetensors"
    assert main(["convert", str(src), str(out), "--style-names", "paprika"]) == 0
    a, b = load_subject(src, device="cpu"), load_subject(out, device="cpu")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.no_grad():
        got = b.generate(x, _ids(2))
        assert torch.equal(got, a.generate(x, _ids(2)))
        naming = ("weight", "bias") if renamed else ("scale", "shift")
        assert (got - _bgr(port_forward(sd, _bgr(x), n_res=2, naming=naming))).abs().max() < 1e-5
    assert b.meta["model"] == a.meta["model"] and b.style_names == ["paprika"]
    assert b.meta["model_notes"] == a.meta["model_notes"] and len(a.meta["model_notes"]) == 3 + renamed
    assert main(["convert", str(src), str(tmp_path / "x.safetensors"), "--style-names", "a,b"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a CartoonGAN generator (one style)" in err


def test_the_overview_cites_the_paper():
    from interp_gan.reporting.references import REFERENCES
    from interp_gan.reporting.section_overview import model_references

    assert model_references({"name": "cartoongan"}) == ["chen2018cartoongan"]
    assert "Photo Cartoonization" in REFERENCES["chen2018cartoongan"].bibtex()


@pytest.mark.slow   # ~10 s: every analysis of analyses/full.toml (but replication) on a CartoonGAN nobody configured
def test_full_pipeline_runs_or_skips_every_analysis(tmp_path):
    from tests.test_unconfigured_pipeline import analyze_family

    p = _save(cartoongan(w=(4, 8, 8), n_res=2), tmp_path / "Hayao_net_G_float.pth")
    found = analyze_family(p, tmp_path / "rep", reasons=True)
    assert any("'res.1', chosen by default" in n for n in found["directions"]["notes"])
    assert any("used 'res.1'" in n for n in found["embedding"]["notes"])
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "reads and writes BGR" in html and "Traceback" not in html
