"""Style removal / transfer edits on a planted toy generator.

The toy (built here): layer ``mix`` has 24 units. Units 2, 3, 5 are +1.5 only for images
generated toward style 0 ("checker") and add a checkerboard to the image (their mean × the
pattern); units 7, 8, 9 do the same for style 2 ("stripes") with horizontal stripes; "plain" has
no units. The other units are content features. Two fixed classifiers read the patterns: an RGB
one and a colour-blind "texture" one (on the grey image, another gain). So removing the 3
checker units must remove "checker" (both classifiers, beyond random), leave the other styles as
they were (specific), and inserting them into stripes images must add "checker". The null toy
has the same layer with no style in its units (the style pattern is added after the layer, from
the style id): nothing there is beyond random, and the verdicts say so.
"""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from interp_gan.analyses import build_analysis
from interp_gan.analyses.base import AnalysisData
from interp_gan.analyses.units.style_edits import (StyleEdits, contrast_ci, parse_pair, removal_verdict,
                                                   style_removal_edit, style_transfer_edit, transfer_verdict)
from interp_gan.subject.protocol import Subject

STYLES = ["checker", "plain", "stripes"]
CHECKER_UNITS, STRIPES_UNITS = (2, 3, 5), (7, 8, 9)
SIZE = 16


def _patterns(size: int = SIZE):
    i = torch.arange(size)
    checker = ((i[:, None] + i[None, :]) % 2 * 2 - 1).float()
    stripes = (i[:, None] % 2 * 2 - 1).float().expand(size, size)
    return checker[None, None], stripes[None, None].contiguous()


class Mix(nn.Module):
    def __init__(self, table):
        super().__init__()
        self.register_buffer("table", table)

    def forward(self, h, style_ids):
        return h + self.table[style_ids][:, :, None, None]


class ToyG(nn.Module):
    """planted=True: the style lives in units of ``mix``; False: the units carry no style and the
    style's pattern is added after the layer (the null: editing units cannot move the style)."""

    def __init__(self, planted: bool = True, channels: int = 24):
        super().__init__()
        torch.manual_seed(0)
        self.planted = planted
        self.encoder = nn.Conv2d(3, channels, 3, padding=1)
        table = torch.zeros(len(STYLES), channels)
        if planted:
            table[0, list(CHECKER_UNITS)] = 1.5
            table[2, list(STRIPES_UNITS)] = 1.5
        self.mix = Mix(table)
        self.decoder = nn.Conv2d(channels, 3, 1)
        with torch.no_grad():
            self.decoder.weight.mul_(0.3)
            for u in CHECKER_UNITS + STRIPES_UNITS:
                self.encoder.weight[u] *= 0.05
                self.encoder.bias[u] = 0.0
                self.decoder.weight[:, u] = 0.0
        c, s = _patterns()
        self.register_buffer("checker", c)
        self.register_buffer("stripes", s)

    def forward(self, content, style_ids):
        h = self.mix(self.encoder(content), style_ids)
        out = 0.5 * content + 0.2 * self.decoder(h)
        if self.planted:
            amp_c = h[:, list(CHECKER_UNITS)].mean(1, keepdim=True)
            amp_s = h[:, list(STRIPES_UNITS)].mean(1, keepdim=True)
        else:
            amp_c = (style_ids == 0).float()[:, None, None, None] * 1.5
            amp_s = (style_ids == 2).float()[:, None, None, None] * 1.5
        return out + 0.3 * amp_c * self.checker + 0.3 * amp_s * self.stripes


class PatternClassifier(nn.Module):
    def __init__(self, gain: float = 20.0, grey: bool = False):
        super().__init__()
        c, s = _patterns()
        self.register_buffer("checker", c)
        self.register_buffer("stripes", s)
        self.gain, self.grey = gain, grey

    def forward(self, image):
        if self.grey:
            image = image.mean(1, keepdim=True)
        c = (image * self.checker).mean(dim=(1, 2, 3))
        s = (image * self.stripes).mean(dim=(1, 2, 3))
        return torch.stack([self.gain * (c - 0.3), torch.zeros_like(c), self.gain * (s - 0.3)], dim=1)


def toy_subject(planted: bool = True) -> Subject:
    G = ToyG(planted).eval()
    return Subject(generator=G, style_names=list(STYLES), _generate=lambda c, s, z=None: G(c, s),
                   classifier=PatternClassifier(), texture_classifier=PatternClassifier(gain=12.0, grey=True))


def toy_data(n_per_style: int = 12, seed: int = 0) -> AnalysisData:
    g = torch.Generator().manual_seed(seed)
    n = n_per_style * len(STYLES)
    content = torch.rand(n, 3, SIZE, SIZE, generator=g) * 2 - 1
    return AnalysisData(content=content, style_ids=torch.arange(n) % len(STYLES), batch_size=8, fingerprint="toy")


FAST = dict(layer="mix", ks=(3,), n_random=19, n_boot=300, seed=0)


def _on(df, style, classifier="rgb", measure="log_odds"):
    r = df[(df["style"] == style) & (df["on_target"]) & (df["classifier"] == classifier) & (df["measure"] == measure)]
    assert len(r) == 1, r
    return r.iloc[0]


def _off(df, style, classifier="rgb", measure="log_odds"):
    return df[(df["style"] == style) & (~df["on_target"]) & (df["classifier"] == classifier)
              & (df["measure"] == measure)]


def test_removing_the_planted_units_removes_only_their_style():
    f = StyleEdits(styles=["checker"], pairs=["stripes->checker"], **FAST).run(toy_subject(), toy_data())
    df = f.tables["style_removal"]
    assert {"style", "k", "classifier", "target_style", "effect", "ci_low", "ci_high", "p_random", "n",
            "specificity"} <= set(df.columns)
    for clf in ("rgb", "texture"):
        on = _on(df, "checker", clf)
        for col in ("units_fold0", "units_fold1"):                         # both halves find the planted units
            assert sorted(map(int, on[col].split(";"))) == list(CHECKER_UNITS)
        assert on["n"] == 12 and on["effect"] < -3 and on["ci_high"] < 0    # the style goes away
        assert on["p_random"] == pytest.approx(0.05) and on["random_mean"] > on["effect"] / 2
        off = _off(df, "checker", clf)
        assert set(off["target_style"]) == {"plain", "stripes"} and (off["n"] == 12).all()
        assert (off["effect"].abs() < 0.5).all() and (off["ci_low"] > on["ci_high"]).all()   # barely moved
        assert on["spec_ci_high"] < 0 and on["specificity"] < -3 and on["target_share"] > 0.8
        assert on["verdict"] == "specific"
        p = _on(df, "checker", clf, "p")                                     # the probability drops too
        assert p["effect"] < -0.5 and p["ci_high"] < 0
    edit = df.loc[df["on_target"], "edit"].iloc[0]
    assert edit.startswith('--ablate "mix:') and sorted(map(int, edit[len('--ablate "mix:'):-1].split(","))) == [2, 3, 5]
    # transfer: the checker units set to checker's mean in stripes images add checker
    tr = f.tables["style_transfer"]
    up = tr[(tr["target_style"] == "checker") & (tr["classifier"] == "rgb") & (tr["measure"] == "log_odds")].iloc[0]
    assert up["source_style"] == "stripes" and up["style"] == "checker" and up["n"] == 12
    assert up["effect"] > 3 and up["ci_low"] > 0 and up["p_random"] == pytest.approx(0.05)
    assert up["verdict"] == "transfers"
    pc = tr[(tr["target_style"] == "checker") & (tr["classifier"] == "texture") & (tr["measure"] == "p")].iloc[0]
    assert pc["effect"] > 0.2 and pc["ci_low"] > 0
    assert up["edit"].count("--insert") == 3 and '"mix:2=' in up["edit"]
    # the strips: before / after pictures of the removal and of the transfer
    assert f.arrays["strip_removal_before"].shape == f.arrays["strip_removal_after"].shape == (4, SIZE, SIZE, 3)
    assert list(f.tables["style_edits_strip"]["kind"]) == ["removal", "transfer"]


def test_uniform_random_baseline_also_finds_the_planted_units():
    f = StyleEdits(styles=["checker"], transfer=False, baseline="random", **FAST).run(toy_subject(), toy_data())
    on = _on(f.tables["style_removal"], "checker")
    assert on["p_random"] == pytest.approx(0.05) and on["verdict"] == "specific"
    assert any("baseline = random" in n for n in f.notes)


def test_null_toy_is_not_beyond_random_and_verdicts_agree_with_numbers():
    f = StyleEdits(pairs=["stripes->checker"], **FAST).run(toy_subject(planted=False), toy_data())
    df = f.tables["style_removal"]
    on = df[df["on_target"]]
    assert len(on) == 3 * 2 * 2                                   # styles x classifiers x measures
    assert not (on["verdict"] == "specific").any()
    for _, r in on.iterrows():                                   # the verdict is the rule applied to the row
        offs = _off(df, r["style"], r["classifier"], r["measure"])
        assert r["verdict"] == removal_verdict(r["p_random"], r["ci_high"], r["spec_ci_high"], offs["ci_low"])
        if r["verdict"] == "not beyond random":
            assert r["p_random"] > 0.05 or r["ci_high"] >= 0
    lo = on[on["measure"] == "log_odds"]
    assert (lo["verdict"] == "not beyond random").all() and (lo["effect"].abs() < 0.5).all()
    tr = f.tables["style_transfer"]
    assert not (tr["verdict"] == "transfers").any()
    for _, r in tr.iterrows():
        d = 1 if r["direction"] == "increase" else -1
        assert r["verdict"] == transfer_verdict(r["p_random"], r["ci_low"], r["ci_high"], d)


def test_edit_builders_reproduce_the_measured_edit():
    subject, data = toy_subject(), toy_data()
    e = style_removal_edit(subject, data, "checker", k=3, layer="mix")
    assert e.edits[0].layer == "mix" and sorted(e.edits[0].units) == list(CHECKER_UNITS)
    p = lambda im: subject.classifier(im).softmax(1)[:, 0]  # noqa: E731
    sel = data.style_ids == 0
    with torch.no_grad():
        before = p(subject.generate(data.content[sel], data.style_ids[sel]))
        with e.apply(subject):
            after = p(subject.generate(data.content[sel], data.style_ids[sel]))
    assert before.mean() > 0.8 and after.mean() < 0.05
    t = style_transfer_edit(subject, data, "checker", k=3, layer="mix")
    assert len(t.edits) == 3 and all(x.kind == "insert" and 1.3 < x.value < 1.7 for x in t.edits)
    sel = data.style_ids == 2
    with torch.no_grad(), t.apply(subject):
        moved = p(subject.generate(data.content[sel], data.style_ids[sel]))
    assert moved.mean() > 0.3
    with pytest.raises(ValueError, match="unknown style 'cubism'"):
        style_removal_edit(subject, data, "cubism", k=3, layer="mix")
    with pytest.raises(ValueError, match=r"--k must be in 1..24"):
        style_removal_edit(subject, data, "checker", k=99, layer="mix")


def test_bad_input_is_one_clear_line():
    subject, data = toy_subject(), toy_data()
    with pytest.raises(ValueError, match="transfer pair is 'SOURCE->STYLE'"):
        StyleEdits(pairs=["stripes"], **FAST).run(subject, data)
    with pytest.raises(ValueError, match=r"unknown style\(s\) \['cubism'\]"):
        parse_pair("stripes->cubism", STYLES)
    with pytest.raises(ValueError, match="baseline must be 'random' or 'shuffled'"):
        StyleEdits(**{**FAST, "n_random": 1}, baseline="uniform").run(subject, data)
    with pytest.raises(ValueError, match="ks must be positive"):
        StyleEdits(layer="mix", ks=(0,)).run(subject, data)
    with pytest.raises(ValueError, match="unknown styles"):
        StyleEdits(layer="mix", styles=["cubism"]).run(subject, data)
    one = Subject.from_module(nn.Conv2d(3, 3, 1), style_names=["only"], classifier=PatternClassifier())
    f = StyleEdits(layer="", n_boot=10).run(one, AnalysisData(torch.zeros(8, 3, SIZE, SIZE),
                                                              torch.zeros(8, dtype=torch.long)))
    assert f.skipped and "one style" in f.skipped
    bare = toy_subject()
    bare.classifier = bare.texture_classifier = None
    assert "no style classifier" in StyleEdits(**FAST).run(bare, data).skipped


def test_few_random_sets_cannot_be_beyond_random_and_say_so():
    f = StyleEdits(styles=["checker"], transfer=False, layer="mix", ks=(3,), n_random=3, n_boot=50).run(
        toy_subject(), toy_data())
    on = f.tables["style_removal"].query("on_target")
    assert (on["verdict"] == "not beyond random").all() and (on["p_random"] >= 0.25).all()
    assert any("cannot reach 0.05" in n for n in f.notes) and f.tables["style_transfer"].empty


def test_contrast_ci_is_the_difference_of_means_and_brackets_it():
    rng = np.random.default_rng(0)
    on, a, b = rng.normal(-2, 1, 12), rng.normal(0, 1, 12), rng.normal(0.5, 1, 12)
    est, lo, hi, bad = contrast_ci(on, [a, b], 500, 0)
    assert est == pytest.approx(on.mean() - (a.mean() + b.mean()) / 2) and lo < est < hi and bad == 0
    assert hi < 0
    assert contrast_ci(np.zeros(5), [np.zeros(5)], 100, 0)[1:3] == (0.0, 0.0)


def test_contrast_ci_with_heavy_ties_takes_in_the_moderated_welch_interval(monkeypatch):
    import interp_gan.analyses.units.style_edits as style_edits
    from interp_gan.findings.tied_groups import moderated_welch_bounds
    on, off1, off2 = np.r_[np.zeros(7), 0.3], np.zeros(8), np.r_[np.zeros(6), 0.1, 0.2]   # one group flat
    est, lo, hi, _ = contrast_ci(on, [off1, off2], 400, 3)
    with monkeypatch.context() as m:
        m.setattr(style_edits, "TIED_FLAT_CHANCE", 1.0)                # the bootstrap-t alone
        _, blo, bhi, _ = contrast_ci(on, [off1, off2], 400, 3)
    wlo, whi = moderated_welch_bounds([on, off1, off2], [1.0, -0.5, -0.5])
    assert (lo, hi) == (min(blo, wlo), max(bhi, whi)) and (lo, hi) != (blo, bhi)
    rng = np.random.default_rng(1)                                     # no ties: the bootstrap-t alone
    on, offs = rng.normal(size=12), [rng.normal(size=12), rng.normal(size=12)]
    got = contrast_ci(on, offs, 400, 3)
    with monkeypatch.context() as m:
        m.setattr(style_edits, "TIED_FLAT_CHANCE", 1.0)
        assert contrast_ci(on, offs, 400, 3) == got


def test_cost_counts_the_passes_and_budget_cuts_random_sets_first():
    from interp_gan.analyses.cost import UnitCosts
    subject, data = toy_subject(), toy_data()
    unit = UnitCosts(forward_s=0.01, grad_s=0.02, shapes={"mix": (24, SIZE, SIZE)})
    a = StyleEdits(layer="mix", ks=(3,), n_random=19, n_strip=0)
    c = a.estimate_cost(subject, data, unit)
    # 3 x 36 (unit means, unedited per style and half, unedited per half) + per style: 36 + 19 x 12,
    # and each shuffled set's own unedited pass over its relabelled images, 19 x 12; per pair (3
    # cyclic): 20 x 12 + 19 x 12 the same way. Uniform random sets share the style's unedited pass.
    assert c.forwards == 3 * 36 + 3 * (36 + 2 * 19 * 12) + 3 * (20 + 19) * 12
    r = StyleEdits(layer="mix", ks=(3,), n_random=19, n_strip=0, baseline="random").estimate_cost(subject, data, unit)
    assert r.forwards == 3 * 36 + 3 * (36 + 19 * 12) + 3 * 20 * 12
    small = StyleEdits(layer="mix", ks=(3, 6), n_random=99, n_strip=0, budget_s=1.0).estimate_cost(subject, data, unit)
    assert any("n_random 99 -> 19" in n for n in small.notes)
    assert StyleEdits().estimate_cost(Subject.from_module(nn.Conv2d(3, 3, 1), style_names=["a"]), data, unit).skip


def test_report_section_shows_heatmap_specificity_transfer_and_strip():
    from interp_gan.reporting.section_style_edits import style_edits_section
    from interp_gan.reporting.sections import ImageGrid, ReportContext, Table

    f = StyleEdits(styles=["checker"], pairs=["stripes->checker"], **FAST).run(toy_subject(), toy_data())
    sec = style_edits_section(f, ReportContext())
    assert {"style_edits_removal_heatmap"} <= set(sec.figures)
    fig = sec.figures["style_edits_removal_heatmap"]
    assert len(fig.data) == 2                                       # one heatmap per classifier
    tables = [b for b in sec.blocks if isinstance(b, Table)]
    spec = next(t.df for t in tables if "verdict" in t.df.columns and "specificity [95% CI]" in t.df.columns)
    assert (spec["verdict"] == "specific").all()
    assert any(isinstance(b, ImageGrid) for b in sec.blocks)
    c = sec.claims[0]
    assert c.survives and "1 of 1" in c.text
    null = StyleEdits(styles=["checker"], pairs=["stripes->checker"], **FAST).run(toy_subject(False), toy_data())
    cn = style_edits_section(null, ReportContext()).claims[0]
    assert not cn.survives and cn.verdict == "not specific"


def test_cli_remove_style_writes_the_edit_the_builder_chooses(tmp_path, capsys):
    from PIL import Image

    from interp_gan.checkpoint import read_metadata, save_checkpoint
    from interp_gan.cli import main
    from interp_gan.config import ModelConfig, Recipe
    from interp_gan.models import StyleNet

    torch.manual_seed(0)
    mc = ModelConfig(ch=4, n_down=1, n_blocks=2, style_dim=8, latent_dim=4, d_ch=4, d_layers=2)
    ckpt = save_checkpoint(tmp_path / "c.safetensors", generator=StyleNet(2, ch=4, n_down=1, n_blocks=2, style_dim=8,
                                                                         latent_dim=4),
                           style_names=["a", "b"], recipe=Recipe(model=mc), step=1, fingerprint="f" * 64)
    folder = tmp_path / "content"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    args = ["--layer", "blocks.1.conv2", "--k", "3", "--data", str(folder), "--n-images", "8", "--image-size", "32",
            "--device", "cpu"]
    out = tmp_path / "no_a.safetensors"
    rc = main(["edit", str(ckpt), "--remove-style", "a", *args, "--out", str(out)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    edits = read_metadata(out)["edits"]
    assert len(edits) == 1 and edits[0]["layer"] == "blocks.1.conv2" and len(edits[0]["units"]) == 3
    # the same units as the notebook builder on the same data
    from interp_gan.config import PipelineConfig
    from interp_gan.pipeline import analysis_data
    from interp_gan.subject.loading import load_subject
    subject = load_subject(ckpt, device="cpu")
    data = analysis_data(subject, PipelineConfig(n_images=8, image_size=32, seed=0), source=str(folder))
    assert list(style_removal_edit(subject, data, "a", 3, layer="blocks.1.conv2").edits[0].units) == edits[0]["units"]
    rc = main(["edit", str(ckpt), "--insert-style", "b", *args, "--out", str(tmp_path / "b.safetensors")])
    assert rc == 0 and len(read_metadata(tmp_path / "b.safetensors")["edits"]) == 3
    capsys.readouterr()
    rc = main(["edit", str(ckpt), "--remove-style", "zzz", *args, "--out", str(tmp_path / "x.safetensors")])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown style 'zzz'" in err and len(err.strip().splitlines()) == 1
