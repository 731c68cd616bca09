"""pytorch-AdaIN (Huang & Belongie, ICCV 2017; naoto0804/pytorch-AdaIN) as a native family: ``decoder.pth``
with ``vgg_normalised.pth``, rebuilt key by key in the port's layout with random weights
(``adain_reference.py``), checked against an independent functional forward written from the paper, at
the port's widths / 8 and at other widths; the style space (relu4_1 statistics averaged over a style
set's images), alpha, the refusals, the layers, the random-init control and one small pipeline run."""
import numpy as np
import pytest
import torch
from PIL import Image

from interp_gan.subject.loading import load_subject
from tests.models import adain_reference as ar

SMALL_VGG, SMALL_DEC = (4, 8, 12, 16, 16), (16, 10, 6, 5)
COLOURS = {"dots": (20, 40, 200), "stripes": (220, 30, 20)}


def _styles(root, size=32, n=3):
    """Two planted styles, ``n`` images each: coloured squares on white, in two grids (phase k)."""
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            img = Image.new("RGB", (size, size), (250, 250, 240))
            for y in range(k, size, 8 if name == "dots" else 5):
                for x in range(k, size, 8 if name == "dots" else 5):
                    img.paste(rgb, (x, y, x + 3, y + 3))
            img.save(root / name / f"{k}.png")
    return root


def _pair(tmp_path, vgg=SMALL_VGG, dec=SMALL_DEC, full=True):
    """decoder.pth and vgg_normalised.pth in tmp_path; returns their state dicts."""
    vsd, dsd = ar.port_pair(vgg, dec, full)
    torch.save(dsd, tmp_path / "decoder.pth")
    torch.save(vsd, tmp_path / "vgg_normalised.pth")
    return vsd, dsd


def _load(tmp_path, opts="", **kw):
    styles = _styles(tmp_path / "styles")
    p = tmp_path / "decoder.pth"
    return load_subject(f"{p}#style_set={styles},style_size=32{',' + opts if opts else ''}", device="cpu", **kw)


def _x(n=2, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# --- the forward ------------------------------------------------------------------------------------
@pytest.mark.parametrize("vgg, dec, full, alpha", [
    (tuple(w // 8 for w in ar.PORT_VGG), tuple(w // 8 for w in ar.PORT_DECODER), True, 1.0),   # the port / 8
    (SMALL_VGG, SMALL_DEC, True, 1.0),
    (SMALL_VGG, SMALL_DEC, False, 0.5),                 # a VGG cut at relu4_1, half stylised
    ((5, 7, 9, 11, 13), (11, 9, 3, 4), True, 0.25),
], ids=["port_over_8", "other_widths", "vgg_to_relu4_1_alpha_half", "odd_widths_alpha_quarter"])
def test_the_pair_matches_the_functional_forward(vgg, dec, full, alpha, tmp_path):
    vsd, dsd = _pair(tmp_path, vgg, dec, full)
    s = _load(tmp_path, f"alpha={alpha}")
    x, style = _x(), (_x(2, 36, seed=1) + 1) / 2           # 36 -> 18 -> 9 -> 5: the third pool rounds up
    m, sd = ar.stats(ar.encode(vsd, style))
    with torch.no_grad():
        code = s.encode_style(style * 2 - 1, torch.zeros(2, dtype=torch.long))
        raw = s.generator((x + 1) / 2, code)
        want = ar.transfer(vsd, dsd, (x + 1) / 2, m, sd, alpha)
        got = s.stylize_code(x, code)
    assert (code - torch.cat([m.flatten(1), sd.flatten(1)], 1)).abs().max() < 1e-5
    assert raw.shape == want.shape == (2, 3, 32, 32) and want.std() > 0.02
    assert (raw - want).abs().max() < 1e-5
    assert (got - (want.clamp(0, 1) * 2 - 1)).abs().max() < 1e-5          # the image the port would save
    m = s.meta["model"]
    assert m["name"] == "adain" and m["enc_widths"] == list(vgg[:4]) and m["dec_widths"] == list(dec[1:])
    assert m["alpha"] == alpha and s.style_dim == 2 * vgg[3]


def test_alpha_zero_decodes_the_content_features_and_the_styles_then_agree(tmp_path):
    vsd, dsd = _pair(tmp_path)
    s0, s1 = _load(tmp_path, "alpha=0"), _load(tmp_path)
    x, ids = _x(2), torch.tensor([0, 1])
    with torch.no_grad():
        zero = s0.generate(x, ids)
        assert (zero - s0.generate(x, ids.flip(0))).abs().max() < 1e-6      # the style no longer matters
        one = s1.generate(x, ids)
        assert (one - s1.generate(x, ids.flip(0))).abs().max() > 1e-2
    want = ar.decode(dsd, ar.encode(vsd, (x + 1) / 2))
    assert (zero - (want.clamp(0, 1) * 2 - 1)).abs().max() < 1e-5
    assert any("alpha=0" in n for n in s0.meta["model_notes"])


def test_the_port_module_tree_takes_exactly_these_keys(tmp_path):
    """The port's own Sequentials load the files strictly (the keys are the port's) and, run as test.py runs
    them (vgg[:31], calc_mean_std, AdaIN, decoder), give our output."""
    _pair(tmp_path)
    s = _load(tmp_path)
    vgg, dec = ar.port_vgg_module(SMALL_VGG), ar.port_decoder_module(SMALL_DEC)
    vgg.load_state_dict(torch.load(tmp_path / "vgg_normalised.pth"))
    dec.load_state_dict(torch.load(tmp_path / "decoder.pth"))
    enc = torch.nn.Sequential(*list(vgg.children())[:31])
    x = (_x(1) + 1) / 2
    with torch.no_grad():
        f = enc(x)
        code = s.style_code(torch.tensor([1]), s.sample_z(1))
        c = f.shape[1]
        m, sd = ar.stats(f)
        want = dec((f - m) / sd * code[:, c:, None, None] + code[:, :c, None, None])
        got = s.generator(x, code)
    assert (got - want).abs().max() < 1e-5


# --- the style space ----------------------------------------------------------------------------------
def test_a_style_code_is_the_mean_statistics_of_its_images(tmp_path):
    from interp_gan.data.transforms import to_tensor

    vgg, _ = _pair(tmp_path)
    s = _load(tmp_path)
    assert s.style_names == ["dots", "stripes"] and s.has_latent and s.latent_dim == 0 and s.has_style_encoder
    for i, name in enumerate(s.style_names):
        imgs = to_tensor([np.asarray(Image.open(p)) for p in sorted((tmp_path / "styles" / name).glob("*.png"))])
        m, sd = ar.stats(ar.encode(vgg, (imgs + 1) / 2))
        want = torch.cat([m.flatten(1), sd.flatten(1)], 1).mean(0)
        got = s.style_code(torch.tensor([i]), s.sample_z(1))[0]
        assert (got - want).abs().max() < 1e-5
    assert s.meta["style_set"]["images"] == {"dots": 3, "stripes": 3} and s.meta["style_set"]["size"] == 32
    assert "relu4_1" in s.meta["style_space"] and "32-d" in s.meta["style_space"]
    picked = _load(tmp_path, "styles=stripes")
    assert picked.style_names == ["stripes"]
    assert torch.equal(picked.style_code(torch.tensor([0]), picked.sample_z(1)),
                       s.style_code(torch.tensor([1]), s.sample_z(1)))


def test_unreadable_style_set_images_are_skipped_said_and_refused_beyond_a_fifth(tmp_path):
    """A style set's bad files are counted in the model notes (they were dropped unsaid); more than 20% of a
    style's is one line naming the style set and the style, without the pipeline's max_bad_fraction advice,
    which does not reach a style set."""
    _pair(tmp_path)
    styles = _styles(tmp_path / "styles", n=5)
    (styles / "dots" / "empty.png").write_bytes(b"")
    s = load_subject(f"{tmp_path / 'decoder.pth'}#style_set={styles},style_size=32", device="cpu")
    assert s.meta["style_set"]["images"] == {"dots": 5, "stripes": 5}
    assert s.meta["style_set"]["skipped"] == {"empty file": 1}
    assert "style set: 1 unreadable image(s) skipped (empty file 1); each style's code is the mean over the others" \
        in s.meta["model_notes"]
    for k in range(2):
        (styles / "stripes" / f"bad{k}.png").write_text("not an image")
    with pytest.raises(ValueError) as e:
        load_subject(f"{tmp_path / 'decoder.pth'}#style_set={styles},style_size=32", device="cpu")
    msg = _one_line(e)
    assert f"style 'stripes' of the style set ({styles / 'stripes'}): 2 of 7 images could not be read" in msg, msg
    assert "max_bad_fraction" not in msg


def test_the_default_style_set_is_the_embedded_one(tmp_path, monkeypatch):
    import interp_gan.data.embedded as embedded

    _pair(tmp_path)
    root = tmp_path / "cache"
    _styles(root / "style")
    (root / "style" / "lite00").mkdir()
    for k in range(2):
        Image.new("RGB", (32, 32), (k * 90, 100, 50)).save(root / "style" / "lite00" / f"{k}.png")
    asked = []
    monkeypatch.setattr(embedded, "ensure_embedded", lambda names: asked.append(list(names)) or root)
    s = load_subject(tmp_path / "decoder.pth", device="cpu", styles=["lite00"], style_size=32)
    assert asked == [["lite00"]] and s.style_names == ["lite00"] and s.meta["style_set"]["source"] == "embedded"
    notes = s.meta["model_notes"]
    assert notes[0].startswith("vgg: no #vgg option; used vgg_normalised.pth found beside the decoder")


def test_directions_run_in_the_statistics_space_and_sefa_says_why_not(tmp_path):
    from interp_gan.analyses.base import build_analysis
    from tests.conftest import make_tiny_data

    _pair(tmp_path)
    s = _load(tmp_path)
    data = make_tiny_data(s, n=8, size=32)
    f = build_analysis("directions", methods=("pca", "sefa", "random"), n_samples=16, n_directions=2, n_random=2,
                       n_images=4, n_boot=20, n_perm=20, steps=(0, 2), seed=0).run(s, data)
    assert not f.skipped and set(f.tables["directions"].space) == {"style_code"}
    assert f.arrays["directions"].shape[1] == 32
    assert any(n.startswith("sefa skipped") and "style_affines" in n for n in f.notes)


# --- layers and the control ---------------------------------------------------------------------------
def test_layers_are_named_after_vgg_and_the_defaults_are_the_decoder(tmp_path):
    from interp_gan.harvest.hooks import Trace, default_layers, default_unit_layer

    _pair(tmp_path)
    s = _load(tmp_path)
    names = dict(s.generator.named_modules())
    assert {"enc.prep", "enc.conv1_1", "enc.relu4_1", "enc.pool3", "adain", "dec.conv4_1", "dec.up3", "dec.conv3_1",
            "dec.relu3_1", "dec.conv1_1"} <= set(names)
    assert default_layers(s.generator) == [f"dec.conv{c}" for c in ("4_1", "3_4", "3_3", "3_2", "3_1", "2_2", "2_1",
                                                                    "1_2", "1_1")]
    assert default_unit_layer(s.generator) == "dec.conv3_1"
    code = s.style_code(torch.tensor([0, 1]), s.sample_z(2))
    with Trace(s.generator, "adain") as t, torch.no_grad():
        s.generate(_x(2), torch.tensor([0, 1]))
    mean = t.output.mean((2, 3))                                   # AdaIN's output carries the style's means
    assert t.output.shape == (2, 16, 4, 4) and (mean - code[:, :16]).abs().max() < 1e-4


def test_the_random_init_control_redraws_the_decoder_and_keeps_the_vgg(tmp_path):
    _pair(tmp_path)
    s = _load(tmp_path)
    G = s.generator
    enc, dec = ({k: v.clone() for k, v in part.state_dict().items()} for part in (G.enc, G.dec))
    x, ids = _x(1), torch.tensor([0])
    with torch.no_grad():
        before = s.generate(x, ids)
        with s.random_init(seed=0) as ctrl:
            assert all(torch.equal(v, G.enc.state_dict()[k]) for k, v in enc.items())
            assert all(not torch.equal(v, G.dec.state_dict()[k]) for k, v in dec.items() if k.endswith("weight"))
            notes = ctrl.random_init_report.notes()
            assert ctrl.random_init_report.kept == {}
            assert (s.generate(x, ids) - before).abs().max() > 1e-3
        assert torch.equal(s.generate(x, ids), before)
    assert len(notes) == 1 and notes[0].startswith("random-init control leaves enc trained")
    assert "fixed, pretrained feature net" in notes[0] and "face masks" not in notes[0]


# --- refusals -----------------------------------------------------------------------------------------
def test_wrong_keys_are_refused_in_one_line_naming_them(tmp_path):
    vgg, dec = _pair(tmp_path)
    styles = _styles(tmp_path / "styles")
    cases = {"extra": {**dec, "30.weight": torch.zeros(3, 3, 3, 3)},
             "missing": {k: v for k, v in dec.items() if k != "28.bias"},
             "shape": {**dec, "8.weight": torch.zeros(10, 10, 5, 5)}}
    expect = {"extra": "could not place 30.weight", "missing": "missing 28.bias",
              "shape": "wrong shape 8.weight [10, 10, 5, 5] (expected [10, 10, 3, 3])"}
    for name, sd in cases.items():
        torch.save(sd, tmp_path / f"{name}.pth")
        with pytest.raises(ValueError) as e:
            load_subject(f"{tmp_path / name}.pth#vgg=vgg_normalised.pth,style_set={styles}", device="cpu")
        msg = _one_line(e)
        assert msg.startswith(f"{tmp_path / name}.pth: not the pytorch-AdaIN decoder") and expect[name] in msg, msg
    torch.save({k: v for k, v in vgg.items() if k not in ("45.weight", "45.bias")}, tmp_path / "partial_vgg.pth")
    with pytest.raises(ValueError) as e:
        load_subject(f"{tmp_path / 'decoder.pth'}#vgg=partial_vgg.pth,style_set={styles}", device="cpu")
    assert "not the pytorch-AdaIN VGG encoder" in _one_line(e) and "missing 45.weight, 45.bias" in str(e.value)


def test_the_vgg_alone_and_a_decoder_without_one_are_refused_naming_the_other(tmp_path, capsys):
    from interp_gan.cli import main

    torch.save(ar.port_vgg(SMALL_VGG), tmp_path / "vgg_normalised.pth")
    with pytest.raises(ValueError) as e:
        load_subject(tmp_path / "vgg_normalised.pth", device="cpu")
    assert "VGG encoder" in _one_line(e) and "decoder.pth#vgg=" in str(e.value)
    (tmp_path / "alone").mkdir()
    torch.save(ar.port_decoder(SMALL_DEC), tmp_path / "alone" / "decoder.pth")
    with pytest.raises(ValueError) as e:
        load_subject(tmp_path / "alone" / "decoder.pth", device="cpu")
    assert "decoder.pth#vgg=vgg_normalised.pth" in _one_line(e)
    with pytest.raises(FileNotFoundError) as e:
        load_subject(f"{tmp_path / 'alone' / 'decoder.pth'}#vgg=nothing.pth", device="cpu")
    assert "nothing.pth: no such file" in _one_line(e)
    with pytest.raises(ValueError) as e:    # the decoder named as its own VGG
        load_subject(f"{tmp_path / 'alone' / 'decoder.pth'}#vgg=decoder.pth", device="cpu")
    assert "is a pytorch-AdaIN decoder; #vgg= names the encoder" in _one_line(e)
    torch.save(ar.port_vgg((4, 8, 12, 24, 24)), tmp_path / "alone" / "other_vgg.pth")
    with pytest.raises(ValueError) as e:    # a VGG of another relu4_1 width
        load_subject(f"{tmp_path / 'alone' / 'decoder.pth'}#vgg=other_vgg.pth", device="cpu")
    assert "decodes 16-channel features but the VGG other_vgg.pth gives 24" in _one_line(e)
    assert main(["inspect", str(tmp_path / "vgg_normalised.pth")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "VGG encoder" in err and "Traceback" not in err


def test_options_are_checked_in_one_line_and_belong_to_this_family(tmp_path):
    from interp_gan.models.cyclegan import CycleGANGenerator

    _pair(tmp_path)
    for bad, what in (("alpha=2", "alpha='2'"), ("style_size=8", "style_size='8'"), ("styles=a++b", "styles='a++b'")):
        with pytest.raises(ValueError) as e:
            load_subject(f"{tmp_path / 'decoder.pth'}#{bad}", device="cpu")
        assert f"pytorch-AdaIN option {what}" in _one_line(e)
    with pytest.raises(ValueError) as e:
        load_subject(tmp_path / "decoder.pth", device="cpu", direction="b2a")
    assert "do not apply to a pytorch-AdaIN decoder" in _one_line(e)
    torch.manual_seed(0)
    torch.save(CycleGANGenerator(ngf=4, n_blocks=2).state_dict(), tmp_path / "G.pth")
    with pytest.raises(ValueError) as e:
        load_subject(f"{tmp_path / 'G.pth'}#alpha=0.5", device="cpu")
    assert "pytorch-AdaIN decoders" in _one_line(e)


def test_convert_refuses_the_pair_in_one_line(tmp_path, capsys):
    from interp_gan.cli import main

    _pair(tmp_path)
    for f in ("decoder.pth", "vgg_normalised.pth"):
        assert main(["convert", str(tmp_path / f), str(tmp_path / "out.safetensors")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "pytorch-AdaIN" in err
    assert not (tmp_path / "out.safetensors").exists()


# --- other ways in ------------------------------------------------------------------------------------
def test_a_training_snapshot_and_a_plain_safetensors_load(tmp_path):
    from safetensors.torch import save_file

    _, dec = _pair(tmp_path)
    ref = _load(tmp_path)
    torch.save(dec, tmp_path / "decoder_iter_160000.pth.tar")   # train.py's name
    save_file(dec, str(tmp_path / "decoder.safetensors"))
    x, ids = _x(1), torch.tensor([1])
    with torch.no_grad():
        for name in ("decoder_iter_160000.pth.tar", "decoder.safetensors"):
            s = load_subject(f"{tmp_path / name}#vgg=vgg_normalised.pth,style_set={tmp_path / 'styles'},"
                             "style_size=32", device="cpu")
            assert torch.equal(s.generate(x, ids), ref.generate(x, ids)), name
    assert s.meta["model_notes"][0].startswith("file: a plain .safetensors state dict")


def test_inspect_lists_the_layers(tmp_path, capsys):
    from interp_gan.cli import main

    _pair(tmp_path)
    styles = _styles(tmp_path / "styles")
    assert main(["inspect", f"{tmp_path / 'decoder.pth'}#style_set={styles},style_size=32", "--size", "36"]) == 0
    out = capsys.readouterr().out
    assert '"name": "adain"' in out and "one 40x40 image, --size 36 rounded up to a multiple of 8" in out
    assert "dec.conv3_1" in out and "(1, 6, 20, 20)" in out and "enc.relu4_1" in out


def test_the_overview_cites_the_paper():
    from interp_gan.reporting.section_overview import model_references

    assert model_references({"name": "adain"}) == ["huang2017adain"]


@pytest.mark.slow   # ~15 s: every analysis of analyses/full.toml (but replication) on a random-weight pair
def test_full_pipeline_runs_or_skips_every_analysis(tmp_path, monkeypatch):
    import json

    import pandas as pd

    import dataclasses

    from interp_gan.config import load_pipeline
    from interp_gan.pipeline import analyze
    from tests.test_unconfigured_pipeline import FULL, TINY

    import interp_gan.training.classifiers as classifiers

    monkeypatch.setenv("INTERP_GAN_CACHE", str(tmp_path / "cache"))
    real = classifiers.classifiers_for_styles        # trained for real, but small: 30 s at the default 300 steps
    monkeypatch.setattr(classifiers, "classifiers_for_styles", lambda *a, **k: real(*a, **k, steps=30, ch=8))
    _pair(tmp_path)
    data = tmp_path / "data"
    _styles(data / "style", n=12)
    (data / "content").mkdir()
    for k in range(16):
        Image.fromarray((torch.rand(32, 32, 3, generator=torch.Generator().manual_seed(k)) * 255).byte().numpy()
                        ).save(data / "content" / f"{k}.png")
    # family_pipeline()'s sizes; two styles make attribution run in full: occlusion and all units left out here
    cfg = load_pipeline(FULL, TINY + ["analyses.attribution.methods=['ig', 'saliency']",
                                      "analyses.attribution.max_units=4"])
    cfg = dataclasses.replace(cfg, analyses=tuple(a for a in cfg.analyses if a.name != "replication"))
    report, failed = analyze(f"{tmp_path / 'decoder.pth'}#style_set={data / 'style'},style_size=32", cfg,
                             out_dir=tmp_path / "rep", data=str(data), paper=False)
    assert failed == []
    found = json.loads((tmp_path / "rep" / "findings.json").read_text())
    assert set(found) == {a.name for a in cfg.analyses}
    skipped = {name: f["skipped"] for name, f in found.items() if f["skipped"]}
    assert set(skipped) <= {"discriminator_dissection"}, skipped
    assert "discriminator" in skipped.get("discriminator_dissection", "discriminator")
    rows = pd.read_csv(tmp_path / "rep" / "findings" / "directions.csv")
    assert len(rows) and set(rows["space"]) == {"style_code"}
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "Huang" in html and "relu4_1" in html
