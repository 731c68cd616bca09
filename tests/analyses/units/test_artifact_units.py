"""Artifact units: a toy generator whose unit 2 paints a bright blob that the discriminator
calls unreal; that unit is ranked first, beats random unit sets, and `repair` removes the blob."""
import html

import numpy as np
import pytest
import torch
from torch import nn

from interp_gan.analyses import build_analysis
from interp_gan.analyses.base import AnalysisData
from interp_gan.analyses.units.artifacts import kid, repair_edit, unit_scores
from interp_gan.subject.protocol import Subject

BLOB_UNIT = 2


class BlobFeat(nn.Conv2d):
    """A 1x1 conv of the content whose unit BLOB_UNIT also paints a disc of height 4 near the
    top-left corner (the artifact) on the module's output, where hooks and edits act."""

    def forward(self, x):
        h = super().forward(x)
        yy, xx = torch.meshgrid(torch.arange(x.shape[2]), torch.arange(x.shape[3]), indexing="ij")
        disc = (((yy - 6) ** 2 + (xx - 6) ** 2) < 16).float().to(x)
        h = h.clone()
        h[:, BLOB_UNIT] = h[:, BLOB_UNIT] + 4 * disc
        return h


class BlobGenerator(nn.Module):
    """feat: 6 units (BlobFeat); out: a 1x1 conv back to RGB that passes unit BLOB_UNIT through."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.feat = BlobFeat(3, 6, 1)
        self.out = nn.Conv2d(6, 3, 1)
        with torch.no_grad():
            self.feat.weight.copy_(torch.randn(6, 3, 1, 1, generator=g) * 0.3)
            self.feat.bias.zero_()
            self.feat.weight[BLOB_UNIT] = 0
            self.out.weight.copy_(torch.randn(3, 6, 1, 1, generator=g) * 0.2)
            self.out.weight[:, BLOB_UNIT] = 1.0
            self.out.bias.zero_()

    def forward(self, x):
        return torch.tanh(self.out(self.feat(x)))


class BrightD(nn.Module):
    """Realism logit: real images never exceed 0.6; bright pixels are unreal."""

    def adv_logit(self, images, style_ids):
        return -torch.relu(images - 0.6).mean(dim=(1, 2, 3)) * 50


class MaxMeanClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        f = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], 1)
        return self.head(f)


def _toy():
    torch.manual_seed(0)
    G = BlobGenerator()
    subject = Subject.from_module(G, style_names=["a", "b"], discriminator=BrightD(),
                                  classifier=MaxMeanClassifier())
    g = torch.Generator().manual_seed(1)
    content = torch.rand(16, 3, 20, 20, generator=g) * 1.0 - 0.5
    real = torch.rand(24, 3, 20, 20, generator=g) * 1.0 - 0.5
    data = AnalysisData(content=content, style_ids=torch.arange(16) % 2, style_images=real,
                        style_labels=torch.arange(24) % 2, fingerprint="blob", batch_size=8)
    return subject.eval(), data


def test_blob_unit_ranks_first_and_beats_random_sets():
    subject, data = _toy()
    f = build_analysis("artifact_units", layer="feat", k=1, n_random=9, n_boot=50).run(subject, data)
    units = f.tables["artifact_units"]
    assert int(units["unit"].iloc[0]) == BLOB_UNIT and units["rank"].iloc[0] == 1
    assert units["ci_low"].iloc[0] > 0                          # D finds the images more real without it
    assert units["d_kid"].iloc[0] < 0 and units["d_kid"].iloc[0] == units["d_kid"].min()
    rep = f.tables["artifact_repair"].set_index(["baseline", "measure"])
    assert rep.loc[("top", "d_logit"), "units"] == str(BLOB_UNIT)
    assert rep.loc[("top", "d_logit"), "p_random"] <= 0.1 and rep.loc[("top", "d_kid"), "effect"] < 0


def test_repair_removes_the_blob():
    subject, data = _toy()
    edit = repair_edit(subject, data, layer="feat", k=1)
    assert edit.edits[0].units == (BLOB_UNIT,)
    with torch.no_grad():
        before = subject.generate(data.content, data.style_ids)
        with edit.apply(subject):
            after = subject.generate(data.content, data.style_ids)
    blob = (slice(None), slice(None), slice(3, 10), slice(3, 10))
    assert before[blob].mean() > 0.6 and after[blob].mean() < 0.3      # the disc is gone
    assert (after > 0.6).float().mean() < 0.01


def test_a_model_without_artifact_has_no_clear_winner():
    subject, data = _toy()
    scores = unit_scores(subject, data, "feat")
    assert np.argmax(scores) == BLOB_UNIT                       # control for the test above: the planted unit
    with torch.no_grad():                                        # remove the blob's source: now no unit stands out
        subject.generator.feat.forward = nn.Conv2d.forward.__get__(subject.generator.feat)
    flat = unit_scores(subject, data, "feat")
    assert flat.max() < 0.5 * scores.max()


def test_kid_is_zero_for_same_distribution_and_positive_for_shifted():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 4)), rng.normal(size=(200, 4))
    assert abs(kid(a, b)) < 0.05 and kid(a + 2, b) > 0.5


def test_cli_repair_without_a_classifier_refuses_in_one_line(tmp_path, capsys):
    from PIL import Image

    from interp_gan.checkpoint import read_metadata, save_checkpoint
    from interp_gan.cli import main
    from interp_gan.config import ModelConfig, Recipe
    from interp_gan.models import StyleDiscriminator, StyleNet

    torch.manual_seed(0)
    mc = ModelConfig(ch=4, n_down=1, n_blocks=2, style_dim=8, latent_dim=4, d_ch=4, d_layers=2)
    ckpt = save_checkpoint(tmp_path / "c.safetensors", generator=StyleNet(2, ch=4, n_down=1, n_blocks=2, style_dim=8,
                                                                         latent_dim=4),
                           discriminator=StyleDiscriminator(2, ch=4, n_layers=2), style_names=["a", "b"],
                           recipe=Recipe(model=mc), step=1, fingerprint="f" * 64)
    folder = tmp_path / "content"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "repaired.safetensors"
    # no independent classifier in this checkpoint: the style cost cannot be checked, so no repair
    rc = main(["repair", str(ckpt), "--layer", "blocks.1.conv2", "--k", "2", "--data", str(folder),
               "--n-images", "6", "--image-size", "32", "--device", "cpu", "--n-boot", "20", "--out", str(out)])
    printed = capsys.readouterr()
    assert rc == 1, printed.err
    assert printed.out.strip().splitlines()[-1] == ("repair: no k in 1..2 qualifies (no independent style classifier: the style cost "
                                   "of an ablation cannot be checked); nothing written")
    assert not out.exists()
    rc = main(["repair", str(ckpt), "--layer", "blocks.1.conv2", "--k", "99", "--data", str(folder),
               "--n-images", "6", "--image-size", "32", "--device", "cpu", "--out", str(tmp_path / "x.safetensors")])
    assert rc == 2 and "--k must be in 1..8" in capsys.readouterr().err
    rc = main(["repair", str(ckpt), "--k", "two", "--out", str(tmp_path / "y.safetensors")])
    assert rc == 2 and "--k expects a whole number" in capsys.readouterr().err


# --- the trade-off curve and repair's choice of k --------------------------------------------------
STYLE_UNIT = 4


class StyledBlobFeat(BlobFeat):
    """BlobFeat whose unit STYLE_UNIT also carries the target style: +0.8 for style 1, -0.8 for 0."""

    style = None

    def forward(self, x):
        h = super().forward(x)
        h[:, STYLE_UNIT] = h[:, STYLE_UNIT] + 0.8 * (2 * self.style.float() - 1).view(-1, 1, 1)
        return h


class StyledBlobGenerator(BlobGenerator):
    """Two styles: unit STYLE_UNIT moves red up and blue down (style 1) or the reverse (style 0);
    unit BLOB_UNIT paints the blob, as in BlobGenerator; half the content passes straight through
    (so the output keeps the content's light / dark layout where there is no blob)."""

    def __init__(self) -> None:
        super().__init__()
        w, b = self.feat.weight.data.clone(), self.feat.bias.data.clone()
        self.feat = StyledBlobFeat(3, 6, 1)
        with torch.no_grad():
            self.feat.weight.copy_(w)
            self.feat.bias.copy_(b)
            self.feat.weight[STYLE_UNIT] = 0
            self.out.weight[:, STYLE_UNIT] = torch.tensor([1.0, 0.0, -1.0]).view(3, 1, 1)

    def forward(self, x, style_ids):
        self.feat.style = style_ids
        return torch.tanh(self.out(self.feat(x)) + 0.5 * x)


class RedBlueClassifier(nn.Module):
    """Style 1 = red above blue: logit_1 - logit_0 = 5 (mean R - mean B) over the bottom-right
    quarter, away from the blob; features: those means and the channel maxima over the whole image
    (the blob shows in the maxima, so KID sees it)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(6, 2)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.zero_()
            self.head.weight[0, 0], self.head.weight[0, 2] = -2.5, 2.5
            self.head.weight[1, 0], self.head.weight[1, 2] = 2.5, -2.5

    def forward(self, x):
        h, w = x.shape[-2:]
        return self.head(torch.cat([x[:, :, h // 2:, w // 2:].mean(dim=(2, 3)), x.amax(dim=(2, 3))], 1))


def _styled_subject(G=None):
    G = G or StyledBlobGenerator()
    return Subject(generator=G, style_names=["blue", "red"], _generate=lambda c, s, z=None: G(c, s),
                   discriminator=BrightD(), classifier=RedBlueClassifier()).eval()


def _styled_toy(n=32, size=20):
    g = torch.Generator().manual_seed(1)
    content = torch.rand(n, 3, size, size, generator=g) - 0.5
    real = torch.rand(24, 3, size, size, generator=g) - 0.5
    data = AnalysisData(content=content, style_ids=torch.arange(n) % 2, style_images=real,
                        style_labels=torch.arange(24) % 2, fingerprint="styled-blob", batch_size=8)
    return _styled_subject(), data


def test_tradeoff_curve_puts_the_blob_first_and_repair_stops_before_the_style_unit():
    subject, data = _styled_toy()
    f = build_analysis("artifact_units", layer="feat", k=1, k_max=3, n_random=5, n_boot=100, n_show=2
                       ).run(subject, data)
    t = f.tables["artifact_tradeoff"]
    assert list(t.columns[:8]) == ["layer", "k", "units", "measure", "effect", "ci_low", "ci_high", "n"]
    assert set(t["measure"]) == {"d_logit", "d_kid", "d_style_log_odds", "d_style_acc", "d_lum_corr"}
    assert sorted(t["k"].unique()) == [1, 2, 3] and (t["n"] == 16).all()      # measured on the held-out half
    one = t[t["k"] == 1].set_index("measure")
    assert one.loc["d_logit", "units"] == str(BLOB_UNIT)
    assert one.loc["d_logit", "ci_low"] > 0                                   # realism improves, CI excludes 0
    assert one.loc["d_style_log_odds", "ci_low"] <= 0 <= one.loc["d_style_log_odds", "ci_high"]
    assert one.loc["d_kid", "effect"] < 0
    # the style unit is next in D's ranking (its red / blue is bright too), but removing it costs style
    two = t[t["k"] == 2].set_index("measure")
    assert two.loc["d_logit", "units"] == f"{BLOB_UNIT};{STYLE_UNIT}"
    assert two.loc["d_style_log_odds", "ci_high"] < 0 and two.loc["d_style_acc", "effect"] < 0
    choice = f.tables["artifact_choice"].iloc[0]
    assert choice["k"] == 1 and choice["units"] == str(BLOB_UNIT)
    before, after = f.arrays["repair_before"], f.arrays["repair_after"]
    assert before.shape == after.shape == (2, 2, 20, 20, 3) and before.dtype == np.uint8
    assert before[:, :, 3:10, 3:10].mean() > after[:, :, 3:10, 3:10].mean() + 50   # the blob is gone in the grid


def test_repair_refuses_when_every_ablation_costs_style():
    class AllStyleFeat(nn.Conv2d):
        """Four units, each carrying the target style (+1 / -1) and nothing else."""
        style = None

        def forward(self, x):
            return super().forward(x) + (2 * self.style.float() - 1).view(-1, 1, 1, 1)

    class AllStyle(nn.Module):
        def __init__(self):
            super().__init__()
            self.feat = AllStyleFeat(3, 4, 1)
            self.out = nn.Conv2d(4, 3, 1, bias=False)
            with torch.no_grad():
                self.feat.weight.zero_()
                self.feat.bias.zero_()
                self.out.weight.zero_()
                self.out.weight[0], self.out.weight[2] = 0.4, -0.4      # red minus blue = the style

        def forward(self, x, style_ids):
            self.feat.style = style_ids
            return torch.tanh(self.out(self.feat(x)) + 0.5 * x)

    class CalmD(nn.Module):
        """Saturated colour (red far from blue) is unreal."""

        def adv_logit(self, images, style_ids):
            return -(images[:, 0] - images[:, 2]).abs().mean(dim=(1, 2)) * 10

    from interp_gan.analyses.units.artifacts import plan_repair
    G = AllStyle()
    subject = Subject(generator=G, style_names=["blue", "red"], _generate=lambda c, s, z=None: G(c, s),
                      discriminator=CalmD(), classifier=RedBlueClassifier()).eval()
    _, data = _styled_toy()
    plan = plan_repair(subject, data, layer="feat", k_max=4, n_boot=100)
    t = plan.tradeoff.set_index(["measure", "k"])
    assert all(t.loc[("d_logit", k), "ci_low"] > 0 for k in range(1, 5))       # every ablation looks more real
    assert all(t.loc[("d_style_log_odds", k), "ci_high"] < 0 for k in range(1, 5))   # and costs style
    assert plan.k == 0 and plan.units == [] and plan.edit() is None
    assert "\n" not in plan.summary() and "no k in 1..4 qualifies" in plan.summary()
    assert "lowers the target style's log-odds" in plan.summary()


def test_choose_k_rule():
    import pandas as pd

    from interp_gan.analyses.units.artifacts import choose_k

    def table(realism, style):
        rows = []
        for k, ((e, lo), (slo, shi)) in enumerate(zip(realism, style), 1):
            rows += [dict(k=k, measure="d_logit", effect=e, ci_low=lo, ci_high=e + 1),
                     dict(k=k, measure="d_style_log_odds", effect=0.0, ci_low=slo, ci_high=shi)]
        return pd.DataFrame(rows)

    # k=3 has the largest gain but costs style; k=2 beats k=1; k=4's gain CI reaches 0
    t = table([(1.0, 0.2), (2.0, 0.5), (3.0, 1.0), (5.0, -0.1)], [(-1, 1), (-0.5, 0.0), (-2, -0.1), (-1, 1)])
    assert choose_k(t)[0] == 2
    assert choose_k(table([(1.0, 0.5), (1.0, 0.5)], [(-1, 1), (-1, 1)]))[0] == 1    # ties: the smaller k
    k, why = choose_k(table([(1.0, -0.1)], [(-1, 1)]))
    assert k == 0 and "raises D's realism logit beyond its CI" in why
    k, why = choose_k(t[t["measure"] == "d_logit"])
    assert k == 0 and "no independent style classifier" in why


def _toy_checkpoint(path, G, style_names):
    """A .safetensors file with G's weights under the G. prefix and minimal interp_gan metadata."""
    import json

    from safetensors.torch import save_file

    from interp_gan.checkpoint import FORMAT, FORMAT_VERSION, META_KEY
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "style_names": style_names, "model": {"name": "toy"}}
    save_file({f"G.{k}": v.contiguous() for k, v in G.state_dict().items()}, str(path),
              metadata={META_KEY: json.dumps(meta)})
    return path


def test_cli_repair_picks_the_blob_and_writes_a_marked_grid(tmp_path, capsys, monkeypatch):
    from PIL import Image

    from interp_gan.checkpoint import read_metadata
    from interp_gan.cli import main
    from interp_gan.provenance_mark import read_mark
    from interp_gan.subject import loading
    from interp_gan.util import sha256_file

    torch.manual_seed(0)
    G = StyledBlobGenerator().eval()
    ckpt = _toy_checkpoint(tmp_path / "toy.safetensors", G, ["blue", "red"])
    monkeypatch.setattr(loading, "load_subject", lambda *a, **kw: _styled_subject(G))   # the toy is not a StyleNet
    folder = tmp_path / "content"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(32):
        Image.fromarray(rng.integers(64, 192, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "repaired.safetensors"
    rc = main(["repair", str(ckpt), "--layer", "feat", "--k", "3", "--data", str(folder), "--n-images", "32",
               "--image-size", "20", "--device", "cpu", "--n-boot", "100", "--n-show", "2", "--out", str(out)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    edits = read_metadata(out)["edits"]
    assert edits[0]["layer"] == "feat" and edits[0]["units"] == [BLOB_UNIT] and edits[0]["applied"] == "weights"
    grid = tmp_path / "repaired.before_after.png"
    mark = read_mark(grid)
    assert mark is not None and mark["model_sha256"] == sha256_file(out)
    img = np.asarray(Image.open(grid))
    assert img.shape[0] == 2 * 22 + 2                                           # one row per style
    lines = printed.out.strip().splitlines()
    assert f"repair: k = 1 of 1..3 (feat units {BLOB_UNIT};" in printed.out and len(lines) == 4
    assert "d_logit +" in lines[-1] and "d_style_log_odds" in lines[-1] and "d_lum_corr" in lines[-1]


def test_the_report_section_shows_the_curve_the_chosen_k_and_the_grid(tmp_path):
    import plotly.graph_objects as go

    from interp_gan.findings import Finding
    from interp_gan.reporting import ReportContext, get_section, write_report
    from interp_gan.reporting.sections import ImageGrid, Table

    subject, data = _styled_toy()
    f = build_analysis("artifact_units", layer="feat", k=1, k_max=3, n_random=5, n_boot=50, n_show=2
                       ).run(subject, data)
    f = Finding.load(f.save(tmp_path / "f"))                                   # what a saved report re-renders
    sec = get_section("artifact_units")(f, ReportContext(style_names=subject.style_names))
    assert sec.claims and sec.claims[0].survives and sec.claims[0].verdict == "repair qualifies"
    assert f"Removing 1 unit(s) of feat ({BLOB_UNIT})" in sec.claims[0].text
    fig = next(b for b in sec.blocks if isinstance(b, go.Figure))
    assert len(fig.layout.annotations) == 5                                    # one panel per measure
    assert any(s.x0 == 1 and s.line.dash == "dash" for s in fig.layout.shapes)    # the chosen k
    grid = next(b for b in sec.blocks if isinstance(b, ImageGrid))
    assert grid.images.shape == (8, 20, 20, 3) and grid.row_labels == ["blue", "red"] and grid.ncols == 4
    ranking = next(b for b in sec.blocks if isinstance(b, Table))
    assert int(ranking.df["unit"].iloc[0]) == BLOB_UNIT
    out = write_report(tmp_path / "r", {"artifact_units": f}, ReportContext(style_names=subject.style_names),
                       static_figures=False, paper=False)
    page = (out / "index.html").read_text()
    assert "Artifact units and repair" in page and "repair qualifies" in page


def test_repair_gate_is_the_simultaneous_bound_and_the_repair_table_prints_the_curves_interval():
    """The trade-off table keeps ``ci_low_simul`` (the gate ``choose_k`` reads; without it the choice fell
    back to the per-k 95% bound, which proposes a repair under the null twice as often); the top set's
    d_logit in ``artifact_repair`` is the curve's row for that k, printed with the same interval; its
    d_kid has no interval (the KID bootstrap has no coverage check), as in the curve."""
    from interp_gan.analyses.units.artifacts import choose_k
    subject, data = _styled_toy()
    f = build_analysis("artifact_units", layer="feat", k=2, k_max=3, n_random=5, n_boot=100, n_show=1
                       ).run(subject, data)
    t = f.tables["artifact_tradeoff"]
    logit = t[t.measure == "d_logit"]
    assert "ci_low_simul" in t.columns and logit["ci_low_simul"].notna().all()
    assert (logit["ci_low_simul"] <= logit["ci_low"] + 1e-12).all()        # the wider, Bonferroni bound
    # a k whose 95% bound clears 0 but whose simultaneous bound does not is not chosen
    planted = t.copy()
    row = (planted.measure == "d_logit") & (planted.k == 1)
    planted.loc[row, ["ci_low", "ci_low_simul"]] = [0.01, -0.01]
    assert choose_k(planted[planted.k == 1])[0] == 0
    rep = f.tables["artifact_repair"].set_index(["baseline", "measure"])
    two = logit[logit.k == 2].iloc[0]
    top = rep.loc[("top", "d_logit")]
    assert top["effect"] == pytest.approx(two["effect"])
    assert (top["ci_low"], top["ci_high"]) == pytest.approx((two["ci_low"], two["ci_high"]))
    assert np.isnan(rep.loc[("top", "d_kid"), "ci_low"]) and np.isnan(rep.loc[("top", "d_kid"), "ci_high"])


def test_no_repair_reason_names_the_simultaneous_bound_it_read():
    """k = 1's per-k 95% CI clears 0 (the curve's table prints it) but its simultaneous bound does not:
    the reason used to say "no k raises D's realism logit beyond its CI", which the table contradicts."""
    import pandas as pd
    from interp_gan.analyses.units.artifacts import choose_k
    t = pd.DataFrame({"k": [1, 1], "measure": ["d_logit", "d_style_log_odds"], "effect": [0.1, 0.0],
                      "ci_low": [0.01, -0.1], "ci_high": [0.2, 0.1], "ci_low_simul": [-0.01, np.nan]})
    k, why = choose_k(t)
    assert k == 0 and "with its simultaneous lower bound (ci_low_simul) above 0" in why, why   # not "beyond" a bound
    assert "beyond its CI" in choose_k(t.drop(columns="ci_low_simul").assign(ci_low=[-0.01, -0.1]))[1]


class CoarseD(nn.Module):
    """Realism logit: the image's mean rounded to 1/50, so most single-unit ablations change it by 0."""

    def adv_logit(self, images, style_ids):
        return torch.round(images.mean(dim=(1, 2, 3)) * 50) / 50


def test_resamples_without_spread_are_counted_once_each_and_shown_in_the_section(monkeypatch):
    """Ablating a unit that paints no bright pixel leaves D's logit unchanged on most images: paired
    changes of many zeros, whose bootstrap resamples often have no spread (t = +-inf; the interval
    keeps them, with Student's t on a side they reach). The finding says how many, as ablation and
    style edits do, counting each distinct resampling once (the ci_low_simul bound and the top set's
    row reuse the curve row's), and the section prints the note (before: the count was thrown away)."""
    import re

    import interp_gan.analyses.units.artifacts as art
    from interp_gan.reporting import ReportContext, get_section

    seen: dict = {}
    real_ci = art.bootstrap_t_mean_ci

    def recording(v, n_boot, seed, level=0.95):
        out = real_ci(v, n_boot, seed, level=level)
        seen[(np.asarray(v, dtype=np.float64).tobytes(), n_boot, seed)] = out[2]
        return out
    monkeypatch.setattr(art, "bootstrap_t_mean_ci", recording)
    subject, data = _toy()
    subject.discriminator = CoarseD()
    f = build_analysis("artifact_units", layer="feat", k=1, k_max=3, n_random=3, n_boot=50, n_show=1
                       ).run(subject, data)
    said = [n for n in f.notes if "bootstrap resamples had no spread" in n]
    assert sum(seen.values()) > 0 and len(said) == 1, f.notes
    assert int(re.match(r"(\d+) bootstrap resamples", said[0]).group(1)) == sum(seen.values())
    sec = get_section("artifact_units")(f, ReportContext(style_names=subject.style_names))
    assert any(isinstance(b, str) and said[0] in html.unescape(b) for b in sec.blocks)


def test_no_note_in_the_section_when_every_resample_had_spread(monkeypatch):
    import interp_gan.analyses.units.artifacts as art
    from interp_gan.reporting import ReportContext, get_section

    real_ci = art.bootstrap_t_mean_ci
    monkeypatch.setattr(art, "bootstrap_t_mean_ci", lambda v, n_boot, seed, level=0.95:
                        real_ci(np.asarray(v) + np.linspace(0, 1e-3, len(v)), n_boot, seed, level=level))
    subject, data = _toy()
    f = build_analysis("artifact_units", layer="feat", k=1, k_max=2, n_random=3, n_boot=50, n_show=1
                       ).run(subject, data)
    assert "every bootstrap resample had spread" in f.notes
    sec = get_section("artifact_units")(f, ReportContext(style_names=subject.style_names))
    assert not any(isinstance(b, str) and "spread" in b for b in sec.blocks)
