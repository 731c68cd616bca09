"""Third-party translators nobody tuned us for, given to the command line as their released code saves them:
each loads and matches an independent forward, or is refused in ONE line naming what it is and the way in.

Designs (state dicts built in ``unseen_layouts.py`` and ``foreign_layouts.py``, tiny widths, random weights):
pix2pixHD's GlobalGenerator (4 downsamplings, 9 blocks, instance or batch norm) loads as the ResNet family;
its LocalEnhancer, GANILLA, the white-box cartoonization port, photo2cartoon, pytorch-animeGAN's AnimeGAN
(v1) and v2 generators, and the upscalers (ESRGAN / Real-ESRGAN's RRDBNet and SRVGGNetCompact, MSRResNet,
EDSR as BasicSR and EDSR-PyTorch save it, with the scale their keys give) are recognised by their keys
(``interp_gan/models/known_layouts.py``) and refused naming them;
pix2pixHD's label-map generators (36 input channels) are refused naming their channels.
"""
import json

import pytest
import torch

from interp_gan.cli import main
from interp_gan.models.known_layouts import known_layout
from interp_gan.subject.loading import load_subject
from tests.models import foreign_layouts as fl, unseen_layouts as ul

FIX = "--model file.py:factory"
ONE = torch.zeros(2, dtype=torch.long)


def _save(sd, path):
    torch.save(sd, path)
    return path


# ------------------------------------------------------------------------------ pix2pixHD global: loads


P2HD = {"instance": dict(ngf=2, n_down=4, n_blocks=9, norm="instance"),
        "batch": dict(ngf=2, n_down=4, n_blocks=9, norm="batch")}


@pytest.mark.parametrize("norm", list(P2HD))
def test_pix2pixhd_global_builds_four_downsamplings_and_matches_its_forward(norm, tmp_path):
    sd = fl.pix2pixhd_global(**P2HD[norm])
    s = load_subject(_save(sd, tmp_path / "latest_net_G.pth"), device="cpu")
    roles = [lay["role"] for lay in s.meta["model"]["layers"]]
    assert (roles.count("down"), roles.count("block"), roles.count("up")) == (4, 9, 4)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        want, got = fl.pix2pixhd_functional(sd, x, norm), s.generate(x, ONE)
    assert want.std() > 0.05 and (got - want).abs().max().item() < 1e-4


def test_pix2pixhd_global_on_the_command_line(tmp_path, capsys):
    p = _save(fl.pix2pixhd_global(**P2HD["instance"]), tmp_path / "latest_net_G.pth")
    assert main(["inspect", str(p), "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "resnet_generator" in out and "(1, 3, 32, 32)" in out


@pytest.mark.slow   # ~10 s: analyze with its report
def test_pix2pixhd_global_analyze_dissection(tmp_path, capsys):
    p = _save(fl.pix2pixhd_global(**P2HD["batch"]), tmp_path / "latest_net_G.pth")
    sets = ["n_images=8", "image_size=32", "batch_size=8", "analyses.dissection.n_boot=20",
            "analyses.dissection.n_perm=20"]
    rc = main(["analyze", str(p), "--pipeline", "analyses/dissection.toml", "--device", "cpu",
               "--out", str(tmp_path / "rep"), *[x for s in sets for x in ("--set", s)]])
    assert rc == 0, capsys.readouterr().err[-2000:]
    found = json.loads((tmp_path / "rep" / "findings.json").read_text())
    assert not found["dissection"].get("skipped"), found["dissection"].get("skipped")


# ------------------------------------------------------------------ the others: one line naming them

REFUSED = {   # name -> (state dict builder, what the line must name)
    "pix2pixhd_local_enhancer": (fl.pix2pixhd_local, "pix2pixHD LocalEnhancer"),
    "pix2pixhd_local_enhancer_wrapped": (lambda: {"state_dict": fl.pix2pixhd_local()}, "pix2pixHD LocalEnhancer"),
    "ganilla": (ul.ganilla, "GANILLA generator"),
    "ganilla_resnet34_grey_out": (lambda: ul.ganilla(blocks=(3, 4, 6, 3), output_nc=1), "GANILLA generator"),
    "whitebox_cartoonizer_port": (fl.whitebox_cartoonizer, "white-box cartoonization generator"),
    "photo2cartoon_released": (ul.photo2cartoon_params, "photo2cartoon generator"),
    "photo2cartoon_training": (lambda: ul.photo2cartoon_params(training=True), "photo2cartoon generator"),
    "photo2cartoon_generator_alone": (ul.photo2cartoon_generator, "photo2cartoon generator"),
    "esrgan_rrdbnet_x4": (fl.rrdbnet, "ESRGAN / Real-ESRGAN RRDBNet super-resolution network, x4"),
    "esrgan_rrdbnet_old_names": (lambda: fl.rrdbnet(old_names=True), "RRDBNet super-resolution network, x4"),
    "real_esrgan_x2_released": (lambda: {"params_ema": fl.rrdbnet(in_ch=12)}, "RRDBNet super-resolution network, x2"),
    "basicsr_training_params": (lambda: {"params": fl.rrdbnet(), "params_ema": fl.rrdbnet(seed=1)},
                                "RRDBNet super-resolution network, x4"),
    "pix2pixhd_label2city": (lambda: fl.pix2pixhd_global(ngf=2, n_down=4, input_nc=36), "takes 36 input channels"),
    # named by their keys (were: "not a CycleGAN-family ResNet generator (no residual blocks ...)")
    "animegan_v1_pytorch_port": (ul.animegan_port_v1, "AnimeGAN (v1) generator as pytorch-animeGAN saves it"),
    "animegan_v1_pytorch_port_checkpoint": (lambda: ul.animegan_port_checkpoint(ul.animegan_port_v1()),
                                            "AnimeGAN (v1) generator as pytorch-animeGAN saves it"),
    "animegan_v1_pytorch_port_dsconv": (fl.animegan_v1_port, "inverted residual blocks 'res_blocks.0'"),
    "animegan_v2_pytorch_port": (lambda: ul.animegan_port_checkpoint(ul.animegan_port_v2()),
                                 "AnimeGANv2 generator as pytorch-animeGAN saves it"),
    "real_esrgan_srvgg_x4_released": (lambda: {"params": fl.srvgg_compact()},
                                      "Real-ESRGAN SRVGGNetCompact super-resolution network, x4 (3 body convs"),
    "real_esrgan_srvgg_x2": (lambda: fl.srvgg_compact(n_conv=2, upscale=2), "SRVGGNetCompact super-resolution "
                             "network, x2 (2 body convs"),
    "msrresnet_x4_released": (lambda: {"params": fl.msrresnet()}, "MSRResNet (modified SRResNet) super-resolution "
                              "network, x4"),
    "msrresnet_x3": (lambda: fl.msrresnet(upscale=3), "MSRResNet (modified SRResNet) super-resolution network, x3"),
    "msrresnet_x2": (lambda: fl.msrresnet(upscale=2), "MSRResNet (modified SRResNet) super-resolution network, x2"),
    "edsr_basicsr_x4_released": (lambda: {"params": fl.edsr_basicsr()}, "EDSR super-resolution network as BasicSR "
                                 "saves it, x4"),
    "edsr_basicsr_x3": (lambda: fl.edsr_basicsr(upscale=3), "EDSR super-resolution network as BasicSR saves it, x3"),
    "edsr_basicsr_x8": (lambda: fl.edsr_basicsr(upscale=8), "EDSR super-resolution network as BasicSR saves it, x8"),
    "edsr_pytorch_x2": (fl.edsr_original, "EDSR super-resolution network as EDSR-PyTorch saves it, x2"),
}


@pytest.mark.parametrize("name", list(REFUSED))
@pytest.mark.parametrize("verb", ["inspect", "analyze"])
def test_refused_in_one_line_naming_it(name, verb, tmp_path, capsys):
    build, what = REFUSED[name]
    p = _save(build(), tmp_path / "latest_net_G.pth")
    args = (["inspect", str(p), "--size", "32"] if verb == "inspect" else
            ["analyze", str(p), "--pipeline", "analyses/dissection.toml", "--device", "cpu", "--set", "n_images=8",
             "--out", str(tmp_path / "rep")])
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert what in err and FIX in err and str(p) in err, err
    assert not (tmp_path / "rep").exists()


def test_convert_refuses_them_too(tmp_path, capsys):
    p = _save(ul.ganilla(), tmp_path / "latest_net_G_A.pth")
    assert main(["convert", str(p), str(tmp_path / "g.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "GANILLA generator" in err and not (tmp_path / "g.safetensors").exists()


def test_the_families_we_read_are_not_taken_for_them():
    """No signature fires on a file one of our families reads (so none of them is refused by it)."""
    from interp_gan.models.cyclegan import CycleGANGenerator
    from tests.models.test_animegan import reference_state_dict as animegan_sd
    from tests.models.test_fast_neural_style import reference_state_dict as fns_sd

    torch.manual_seed(0)
    ours = {"cyclegan": CycleGANGenerator(ngf=4, n_blocks=2).state_dict(), "pix2pixhd_global": fl.pix2pixhd_global(),
            "ugatit": {"genA2B": fl.ugatit_generator()}, "cartoongan": fl.cartoongan(), "animegan": animegan_sd(),
            "fast_neural_style": fns_sd((4, 8, 8)), "munit": {"a": fl.munit_generator(), "b": fl.munit_generator()}}
    assert {k: known_layout(v) for k, v in ours.items()} == {k: None for k in ours}


def test_no_family_we_read_trips_the_new_signatures_and_each_network_trips_one():
    """The AnimeGAN port and upscaler signatures fire on none of our families (more of them than above: a
    MUNIT with PReLU weights, StarGAN v1 and v2, the pix2pix U-Net, CUT, AdaIN's decoder), and each
    network they name is named by exactly one signature (none shadows another)."""
    from interp_gan.models import known_layouts as kl
    from interp_gan.models.cyclegan import CycleGANGenerator
    from interp_gan.models.stargan import StarGANGenerator
    from tests.models.cut_reference import reference_state_dict as cut_sd
    from tests.models.test_animegan import reference_state_dict as animegan_sd
    from tests.models.test_munit import reference_gen
    from tests.models.test_unet_generator import reference_state_dict as unet_sd

    new = (kl._animegan_port, kl._msrresnet, kl._edsr, kl._edsr_original, kl._srvgg)
    torch.manual_seed(0)
    ours = {"cyclegan": CycleGANGenerator(ngf=4, n_blocks=2).state_dict(), "pix2pixhd_global": fl.pix2pixhd_global(),
            "ugatit": {"genA2B": fl.ugatit_generator()}, "cartoongan": fl.cartoongan(), "animegan_v2": animegan_sd(),
            "munit_prelu": {"a": reference_gen(prelu=True), "b": reference_gen(prelu=True, seed=1)},
            "stargan": StarGANGenerator(conv_dim=4, c_dim=3, repeat_num=2).state_dict(),
            "stargan_v2": {"generator": fl.stargan_v2_generator()}, "unet": unet_sd(5, ngf=4), "cut": cut_sd(ngf=4),
            "adain_decoder": fl.adain_decoder()}
    assert {k: [s.__name__ for s in new if s(kl._flat(v))] for k, v in ours.items()} == {k: [] for k in ours}
    named = {n: REFUSED[n][0]() for n in REFUSED if n.startswith(("animegan_v", "real_esrgan_srvgg", "msrresnet",
                                                                     "edsr"))}
    fired = {n: [s.__name__ for s in kl._SIGNATURES if s(kl._flat(sd))] for n, sd in named.items()}
    assert all(len(v) == 1 for v in fired.values()) and len(named) == 13, fired


def test_a_generator_in_basicsr_params_loads_its_moving_average(tmp_path):
    """BasicSR's save_network writes {"params": G, "params_ema": G_ema}: read as "holds no tensors" (a netF)
    before; now the moving-average copy loads, as a G_ema beside G does."""
    from interp_gan.models.cyclegan import CycleGANGenerator

    torch.manual_seed(0)
    raw, ema = CycleGANGenerator(ngf=4, n_blocks=2), CycleGANGenerator(ngf=4, n_blocks=2)
    s = load_subject(_save({"params": raw.state_dict(), "params_ema": ema.state_dict()}, tmp_path / "net_g_5000.pth"),
                     device="cpu")
    assert s.meta["network_entry"] == ["params_ema"]
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert (s.generate(x, ONE) - ema(x)).abs().max().item() < 1e-5


def test_the_way_in_for_an_upscaler_resizes_its_output_back():
    """The RRDBNet line says --model resizes its output back: a x4 module through the same rules gives
    the input's size."""
    from interp_gan.subject.protocol import Subject

    up = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.Upsample(scale_factor=4), torch.nn.Tanh())
    s = Subject.from_module(up)
    assert s.generate(torch.zeros(2, 3, 32, 32), ONE).shape == (2, 3, 32, 32)


def test_pix2pixhd_global_runs_at_a_multiple_of_16(tmp_path, capsys):
    """4 downsamplings give a 48 px output for 40 px content (shifted, larger): inspect and the pipeline
    round the size up to a multiple of 2 ** 4 (pix2pixHD's own loader does too), as for the U-Net."""
    from dataclasses import replace

    from interp_gan.config import load_pipeline
    from interp_gan.pipeline import _fit_image_size

    p = _save(fl.pix2pixhd_global(ngf=2, n_down=4, n_blocks=2), tmp_path / "latest_net_G.pth")
    assert main(["inspect", str(p), "--size", "40"]) == 0
    out = capsys.readouterr().out
    stem = next(line for line in out.splitlines() if line.strip().startswith("stem.conv "))
    assert "(1, 2, 48, 48)" in stem, stem          # the input was rounded up, not only the output grown
    s = load_subject(p, device="cpu")
    assert s.generator.size_multiple == 16
    cfg = _fit_image_size(s, replace(load_pipeline("analyses/dissection.toml"), image_size=40))
    assert cfg.image_size == 48 and "takes multiples of 16" in capsys.readouterr().out
    x = torch.zeros(1, 3, 48, 48)
    assert s.generate(x, ONE[:1]).shape == x.shape
