"""No silent misloads: networks that are not CycleGAN-family ResNet generators are refused in one line.

The foreign state dicts (``tests/models/foreign_layouts.py``) follow their references' layouts. Each
must be refused by the family parser (``parse_resnet_generator``, called directly, so the test does
not depend on which recognisers run before it in the dispatch) in one line that says what does not
fit and points to ``--model file.py:factory``; those that reach ``load_subject`` must be refused there
in one line too (by the parser or by the dispatch). Three of them loaded without error before the
family checks, and wrongly (``OLD_MISLOADED``). pix2pixHD's global generator is the family with more
downsamplings and must load, matching a functional forward written from its layout.
"""
import pytest
import torch

from interp_gan.models.resnet_generator import ResnetGenerator, parse_resnet_generator
from interp_gan.subject.loading import load_subject
from tests.models import foreign_layouts as fl

ONE = torch.zeros(2, dtype=torch.long)
FIX = "--model file.py:factory"
# loaders for these families are added elsewhere: here they are tests of the ResNet parser only
# (pytorch-AdaIN's decoder loads with its VGG, test_adain_pair_now_loads below and tests/models/test_adain.py;
# CartoonGAN loads as its own family, test_cartoongan_now_loads below and tests/models/test_cartoongan.py)
NOW_LOADED = {"cartoongan", "cartoongan_renamed_norms"}
PARSER_ONLY = {"unit_vaegen", "unit_vaegen_tracked_in", "munit_adaingen", "ugatit_generator", "adain_decoder",
               "adain_vgg_normalised"} | NOW_LOADED
# loaded without error, and wrong, before the family checks: what each refusal must name
OLD_MISLOADED = {
    "rrmina_fast_neural_style": "is 9x9; the family's stem is a 7x7 conv",        # [0, 255] in, tanh * 150 out
    "spade_pix2pixhd_instance": "alone at index 0 of its own container",           # read as no norm
    "plain_translator_no_norm": "only one layer sits between 'model.0' and 'model.2'",   # read as instance norm
}


@pytest.mark.parametrize("name", list(fl.REFUSED))
def test_the_family_parser_refuses_it_in_one_line(name):
    sd = fl.REFUSED[name]()
    with pytest.raises(ValueError) as e:
        parse_resnet_generator(sd)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("not a CycleGAN-family ResNet generator (") and FIX in msg
    if name in OLD_MISLOADED:
        assert OLD_MISLOADED[name] in msg, msg


@pytest.mark.parametrize("name", [n for n in fl.REFUSED if n not in PARSER_ONLY])
def test_load_subject_refuses_it_in_one_line(name, tmp_path):
    p = tmp_path / f"{name}.pth"
    torch.save(fl.REFUSED[name](), p)
    with pytest.raises(ValueError) as e:
        load_subject(p, device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg
    assert FIX in msg or "is not a generator" in msg         # a discriminator is named as one (companion_nets)


def test_adain_pair_now_loads(tmp_path):
    """Old code: both files refused in one line (not a CycleGAN-family generator). Now the decoder loads with
    the VGG beside it as the AdaIN family, and the VGG alone is refused naming the decoder."""
    torch.save(fl.REFUSED["adain_decoder"](), tmp_path / "decoder.pth")
    torch.save(fl.REFUSED["adain_vgg_normalised"](), tmp_path / "vgg_normalised.pth")
    (tmp_path / "styles" / "dots").mkdir(parents=True)
    from PIL import Image
    Image.new("RGB", (32, 32), (200, 30, 20)).save(tmp_path / "styles" / "dots" / "0.png")
    s = load_subject(f"{tmp_path / 'decoder.pth'}#style_set={tmp_path / 'styles'}", device="cpu")
    assert s.meta["model"]["name"] == "adain" and s.style_names == ["dots"]
    with pytest.raises(ValueError) as e:
        load_subject(tmp_path / "vgg_normalised.pth", device="cpu")
    assert "\n" not in str(e.value) and f"{tmp_path / 'decoder.pth'}#vgg=vgg_normalised.pth" in str(e.value)


@pytest.mark.parametrize("name", sorted(NOW_LOADED))
def test_cartoongan_now_loads(name, tmp_path):
    """Old code: refused in one line (not a CycleGAN-family generator). Now its own family, as the port runs it."""
    torch.save(fl.REFUSED[name](), tmp_path / "Hayao_net_G_float.pth")
    s = load_subject(tmp_path / "Hayao_net_G_float.pth", device="cpu")
    assert s.meta["model"] == {"name": "cartoongan", "widths": [4, 8, 16], "n_res": 2}
    assert s.generate(torch.zeros(2, 3, 16, 16), ONE).shape == (2, 3, 16, 16)


def test_a_misload_of_old_is_one_line_on_the_command_line(tmp_path, capsys):
    from interp_gan.cli import main

    p = tmp_path / "style.model"
    torch.save(fl.rrmina_fast_neural_style(), p)
    assert main(["inspect", str(p), "--size", "32"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "9x9" in err and FIX in err and "Traceback" not in err


PIX2PIXHD = {
    "global_3_downs_instance": dict(n_down=3),
    "global_4_downs_batch": dict(n_down=4, norm="batch", ngf=2),
    "global_3_downs_gray_in_6_blocks": dict(n_down=3, input_nc=1, n_blocks=6, ngf=2),
}


@pytest.mark.parametrize("name", list(PIX2PIXHD))
def test_pix2pixhd_global_generator_is_the_family_and_matches_its_forward(name, tmp_path):
    opts = PIX2PIXHD[name]
    sd = fl.pix2pixhd_global(**opts)
    torch.save(sd, tmp_path / "latest_net_G.pth")
    s = load_subject(tmp_path / "latest_net_G.pth", device="cpu")
    x = torch.rand(2, opts.get("input_nc", 3), 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        want = fl.pix2pixhd_functional(sd, x, opts.get("norm", "instance"))
        got = s.generate(x, ONE)
    assert got.shape == want.shape == (2, 3, 32, 32) and want.std() > 0.05
    assert (got - want).abs().max().item() < 1e-5
    m = s.meta["model"]
    assert m["name"] == "resnet_generator" and m["norm"] == {"instance": "in", "batch": "bn"}[opts.get("norm", "instance")]
    assert [lay["role"] for lay in m["layers"]].count("down") == opts["n_down"]
    assert [lay["role"] for lay in m["layers"]].count("up") == opts["n_down"]


def _family(layers, norm="in_affine"):
    torch.manual_seed(0)
    return ResnetGenerator(layers, norm=norm).state_dict()


def _layers(stem_k=7, head_k=7, head_out=3, downs=2, ups=2, c=4):
    L = [{"role": "stem", "in": 3, "out": c, "k": stem_k, "bias": True}]
    for _ in range(downs):
        L.append({"role": "down", "in": c, "out": 2 * c, "k": 3, "bias": True})
        c *= 2
    L += [{"role": "block", "in": c, "out": c, "k": 3, "bias": True}] * 2
    for _ in range(ups):
        L.append({"role": "up", "in": c, "out": c // 2, "k": 3, "bias": True, "up": "transposed"})
        c //= 2
    return L + [{"role": "head", "in": c, "out": head_out, "k": head_k, "bias": True}]


@pytest.mark.parametrize("change, expect", [
    (dict(stem_k=9), "'stem.conv' is 9x9; the family's stem is a 7x7 conv"),
    (dict(stem_k=3), "'stem.conv' is 3x3"),
    (dict(head_k=3), "'head.conv' is 3x3 to 3 channels; the family's head is a 7x7 conv to 1-4"),
    (dict(head_out=8), "'head.conv' is 7x7 to 8 channels"),
    (dict(downs=2, ups=1), "2 downsampling and 1 upsampling stages (widths 4 -> 16 -> 8)"),
    (dict(downs=1, ups=2, c=8), "1 downsampling and 2 upsampling stages (widths 8 -> 16 -> 4)"),
    (dict(downs=0, ups=0), "0 downsampling and 0 upsampling stages"),
])
def test_each_family_rule_is_named(change, expect):
    with pytest.raises(ValueError) as e:
        parse_resnet_generator(_family(_layers(**change)))
    assert expect in str(e.value) and "\n" not in str(e.value) and FIX in str(e.value)
    cfg, _ = parse_resnet_generator(_family(_layers()))        # the unchanged layout loads
    assert [lay["role"] for lay in cfg["layers"]].count("up") == 2


def test_gray_and_rgba_heads_still_load():
    for out in (1, 4):
        cfg, _ = parse_resnet_generator(_family(_layers(head_out=out)))
        assert cfg["layers"][-1]["out"] == out


@pytest.mark.parametrize("kind", ["reference", "family", "converted"])
def test_the_subject_says_what_the_family_assumes(kind, tmp_path):
    from interp_gan.cli import main
    from interp_gan.models.cyclegan import CycleGANGenerator

    torch.manual_seed(0)
    sd = CycleGANGenerator(ngf=4, n_blocks=2).state_dict()
    if kind != "reference":
        sd = {k.replace(".conv_block.", ".block."): v for k, v in sd.items()}
    torch.save(sd, tmp_path / "G.pth")
    path = tmp_path / "G.pth"
    if kind == "converted":
        assert main(["convert", str(path), str(tmp_path / "g.safetensors")]) == 0
        path = tmp_path / "g.safetensors"
    s = load_subject(path, device="cpu")
    assert s.meta["model"]["name"] == ("cyclegan" if kind == "reference" else "resnet_generator")
    notes = s.meta["model_notes"]
    assert len(notes) == 3 and "tanh" in notes[0] and "[-1, 1]" in notes[0]
    assert "ReLU" in notes[1] and "reflection padding" in notes[1] and FIX in notes[1]
    assert notes[2].startswith("norm: no norm parameters and biased convs: read as instance norm")
    assert s.meta["value_range"]["output"] == [-1, 1]


def test_the_report_prints_the_notes():
    from interp_gan.models.resnet_generator import family_notes
    from interp_gan.reporting.input_notes import input_notes_html

    html = input_notes_html(family_notes({"name": "resnet_generator", "norm": "bn"}))
    assert html.count("<li>model: ") == 3 and "batch norm with the file&#x27;s running statistics" in html
