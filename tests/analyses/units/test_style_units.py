"""Style units: a tiny generator with planted style units must be found, and nothing else.

The planted generator (also used by test_ablation.py): layer ``mix`` has 6 units. Unit 2 is
1.5 only for images generated toward style 0 ("checker") and unit 4 only toward style 2
("stripes"); the output adds unit 2 × a checkerboard and unit 4 × horizontal stripes. The
fixed classifier reads those two patterns, so the planted units alone carry their styles.
The other units are content features that do not depend on the style.
"""
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import mannwhitneyu
from sklearn.metrics import roc_auc_score
from torch import nn

from interp_gan.analyses.base import AnalysisData
from interp_gan.analyses.units.style_units import StyleUnits, auroc_bootstrap_ci, auroc_matrix, auroc_pvalues
from interp_gan.subject.protocol import Subject

STYLES = ["checker", "plain", "stripes"]
CHECKER_UNIT, STRIPES_UNIT = 2, 4


def _patterns(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    i = torch.arange(size)
    checker = ((i[:, None] + i[None, :]) % 2 * 2 - 1).float()    # (-1)^(i+j)
    stripes = (i[:, None] % 2 * 2 - 1).float().expand(size, size)  # (-1)^i, orthogonal to checker
    return checker[None, None], stripes[None, None].contiguous()


class StyleMix(nn.Module):
    """h + table[style] per channel: the one place where the style enters."""

    def __init__(self, table: torch.Tensor, nan_unit: int | None = None) -> None:
        super().__init__()
        self.register_buffer("table", table)
        self.nan_unit = nan_unit

    def forward(self, h, style_ids):
        h = h + self.table[style_ids][:, :, None, None]
        if self.nan_unit is not None:  # a unit that overflows on the first two images of a batch
            h[:2, self.nan_unit] = float("nan")
        return h


class PlantedG(nn.Module):
    random_init_constants = ("checker", "stripes")     # fixed patterns: the random-init control leaves them

    def __init__(self, size: int = 16, channels: int = 6, nan_unit: int | None = None, planted: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Conv2d(3, channels, 3, padding=1)
        table = torch.zeros(len(STYLES), channels)
        if planted:  # otherwise the style changes nothing: the null control
            table[0, CHECKER_UNIT] = 1.5
            table[2, STRIPES_UNIT] = 1.5
        table[:, 0] = 0.3  # the same offset for every style: not selective
        self.mix = StyleMix(table, nan_unit)
        self.decoder = nn.Conv2d(channels, 3, 1)
        with torch.no_grad():
            for u in (CHECKER_UNIT, STRIPES_UNIT):
                self.encoder.weight[u] *= 0.05   # a little content, so activations are not tied
                self.encoder.bias[u] = 0.0
                self.decoder.weight[:, u] = 0.0  # the planted units act only through their pattern
        checker, stripes = _patterns(size)
        self.register_buffer("checker", checker)
        self.register_buffer("stripes", stripes)

    def forward(self, content, style_ids):
        h = self.mix(self.encoder(content), style_ids)
        return (0.5 * content + 0.2 * self.decoder(h)
                + 0.3 * h[:, CHECKER_UNIT:CHECKER_UNIT + 1] * self.checker
                + 0.3 * h[:, STRIPES_UNIT:STRIPES_UNIT + 1] * self.stripes)


class PatternClassifier(nn.Module):
    """logits: checker score -> 'checker', stripes score -> 'stripes', 0 -> 'plain'."""

    def __init__(self, size: int = 16, gain: float = 20.0, threshold: float = 0.3) -> None:
        super().__init__()
        checker, stripes = _patterns(size)
        self.register_buffer("checker", checker)
        self.register_buffer("stripes", stripes)
        self.gain, self.threshold = gain, threshold

    def forward(self, image):
        c = (image * self.checker).mean(dim=(1, 2, 3))
        s = (image * self.stripes).mean(dim=(1, 2, 3))
        return torch.stack([self.gain * (c - self.threshold), torch.zeros_like(c),
                            self.gain * (s - self.threshold)], dim=1)


def make_planted_subject(**kw) -> Subject:
    G = PlantedG(**kw).eval()
    return Subject(generator=G, style_names=list(STYLES), _generate=lambda c, s, z=None: G(c, s),
                   classifier=PatternClassifier())


def make_planted_data(n_per_style: int = 12, size: int = 16, seed: int = 0) -> AnalysisData:
    """White-noise content: its chance correlation with the patterns makes every image's
    classifier score a little different, so a unit that does not carry a style has an effect
    that scatters around 0 (rather than float32 rounding noise of one sign)."""
    g = torch.Generator().manual_seed(seed)
    n = n_per_style * len(STYLES)
    content = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    return AnalysisData(content=content, style_ids=torch.arange(n) % len(STYLES), batch_size=8, fingerprint="planted")


def _hook_count(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


# --- the statistics ----------------------------------------------------------------------------

def test_auroc_matrix_matches_sklearn_with_ties_and_constants():
    rng = np.random.default_rng(0)
    y = np.arange(30) % 3
    x = rng.normal(size=(30, 5))
    x[:, 1] = np.round(x[:, 1])        # many ties
    x[:, 2] = 4.0                      # constant
    x[:, 3] += 3 * (y == 1)            # selective for style 1
    auc = auroc_matrix(x, y, 3)
    ref = np.array([[roc_auc_score(y == s, x[:, u]) for u in range(5)] for s in range(3)])
    np.testing.assert_allclose(auc, ref, atol=1e-12)


def test_permutation_pvalues_agree_with_mann_whitney():
    rng = np.random.default_rng(1)
    y = np.arange(40) % 2
    x = rng.normal(size=(40, 30))
    x[:, :10] += 1.2 * y[:, None]      # 10 selective units
    x[:, 10:15] = np.round(x[:, 10:15])  # tied units take the per-pattern path
    p = auroc_pvalues(x, y, 2, n_perm=4000, seed=0, null="permutation")
    ref = np.array([[mannwhitneyu(x[y == s, u], x[y != s, u]).pvalue for u in range(30)] for s in range(2)])
    assert np.corrcoef(np.log(p.ravel()), np.log(ref.ravel()))[0, 1] > 0.98
    assert np.abs(p - ref).max() < 0.05
    lo, hi = auroc_bootstrap_ci(x, y, 2, n_boot=300, seed=0)
    auc = auroc_matrix(x, y, 2)
    assert (lo <= auc + 1e-12).all() and (auc <= hi + 1e-12).all() and (hi - lo).min() > 0


def test_exact_pvalues_equal_scipy_exact_without_ties():
    rng = np.random.default_rng(2)
    y = np.arange(24) % 3                                    # one-vs-rest: 8 against 16
    x = rng.normal(size=(24, 12))
    x[:, :4] += 4.0 * (y[:, None] == 1)                    # 4 units that separate style 1
    p = auroc_pvalues(x, y, 3)                               # null="exact" is the default
    ref = np.array([[mannwhitneyu(x[y == s, u], x[y != s, u], method="exact").pvalue for u in range(12)]
                    for s in range(3)])
    np.testing.assert_allclose(p, ref, rtol=1e-12, atol=0)
    assert p.min() < 1 / 4001                                # below what 4000 shuffles could show


def test_exact_pvalues_with_ties_equal_full_enumeration():
    """N = 10 images, styles of 4, 3 and 3 images; integer activations tie heavily (one column
    constant, one with a single distinct value out of place): every one-vs-rest p equals the
    share of all C(10, n_s) labelings with |R - E R| at least the observed."""
    import itertools
    from scipy.stats import rankdata
    rng = np.random.default_rng(3)
    y = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    x = rng.integers(0, 3, size=(10, 25)).astype(float)
    x[:, 0] = 1.0
    x[:, 1] = np.r_[np.zeros(9), 1.0]
    p = auroc_pvalues(x, y, 3)
    r = rankdata(x, axis=0)
    for s in range(3):
        k = int((y == s).sum())
        subsets = np.array(list(itertools.combinations(range(10), k)))       # [C(10, k), k]
        null = np.abs(r[subsets].sum(1) - k * 11 / 2)                        # [C, U]
        obs = np.abs(r[y == s].sum(0) - k * 11 / 2)
        ref = (null >= obs - 1e-9).mean(0)
        np.testing.assert_allclose(p[s], ref, rtol=1e-12, atol=1e-15)
    assert (p[:, 0] == 1).all()


def test_exact_null_is_used_at_the_magenta_preset_size():
    """256 images in 6 styles of 42-43: 1.65e8 operations an untied table, 0.7 s for a 480-unit layer
    against 0.2-0.3 s for 5000 shuffles (docs/scaling.md), so the exact null, not the floor."""
    from interp_gan.analyses.units.style_units import exact_null_used
    y = np.arange(256) % 6
    assert exact_null_used(y, 6) and exact_null_used(np.arange(256) % 4, 4)
    assert not exact_null_used(np.arange(256) % 2, 2)
    f = StyleUnits(n_perm=5000)
    notes = f._null_notes(np.full(6 * 480, 0.5), y, 6)
    assert notes[0].startswith("p: exact permutation null") and not any("floor" in n for n in notes)


def test_a_layer_whose_tie_patterns_cost_too_much_falls_back_to_shuffles_alone(monkeypatch):
    """Units tied between their extremes (quantised values) each cost about a pass of the rank-sum
    DP; past EXACT_MAX_WALK_OPS for the layer, that layer's p are Monte Carlo, and the notes say so."""
    import interp_gan.analyses.units.style_units as su
    from interp_gan.findings.rank_sum import rank_sum_walk_ops
    rng = np.random.default_rng(0)
    y = np.arange(64) % 4
    untied = rng.standard_normal((64, 10))
    quantised = rng.integers(0, 6, (64, 30)).astype(float)
    walk = {name: rank_sum_walk_ops(np.unique(np.sort(su._rank2(x), axis=0).T, axis=0), 16, [16])
            for name, x in (("untied", untied), ("quantised", quantised))}
    assert walk["quantised"] > 10 * walk["untied"]
    monkeypatch.setattr(su, "EXACT_MAX_WALK_OPS", 2 * walk["untied"])
    for x, used in ((untied, "exact"), (quantised, "permutation")):
        info = {}
        p = auroc_pvalues(x, y, 4, n_perm=99, info=info)
        assert info["null"] == used
        assert np.allclose(p * 100, np.round(p * 100)) == (used == "permutation")
    assert info["patterns"] == 30 and info["walk_ops"] == walk["quantised"]
    # in the analysis: the note names the layer, the control counts its draws
    monkeypatch.setattr(su, "EXACT_MAX_WALK_OPS", 1.0)
    f = StyleUnits(layers=["mix"], n_perm=100, seed=0, control_draws=1).run(make_planted_subject(), make_planted_data())
    assert f.notes and any(n.startswith("p: exact permutation null") for n in f.notes)
    assert any(n.startswith("mix: Monte Carlo null (100 label shuffles) instead") for n in f.notes)
    assert any(n.startswith("random-init control: 1 layer draws had tie patterns too costly") for n in f.notes)
    p = f.tables["style_units"]["p_value"].to_numpy()
    assert np.allclose(p * 101, np.round(p * 101))


def test_exact_null_is_used_where_cheap_by_the_trained_run_and_its_control(monkeypatch):
    import interp_gan.analyses.units.style_units as su
    calls = []
    real = su._exact_pvalues
    monkeypatch.setattr(su, "_exact_pvalues", lambda *a: calls.append(a[2].shape) or real(*a))
    subject, data = make_planted_subject(), make_planted_data()
    f = StyleUnits(layers=["mix"], n_perm=100, seed=0, control_draws=1).run(subject, data)
    assert len(calls) == 2                                   # trained + random-init control: the same test
    assert any(n.startswith("p: exact permutation null (rank-sum DP)") for n in f.notes)
    assert not any("floor" in n for n in f.notes)
    assert f.params["null"] == "exact"
    top = f.tables["style_units"].query("unit == @CHECKER_UNIT and style == 'checker'").iloc[0]
    assert top["p_value"] < 1 / 101                          # no Monte Carlo floor at n_perm = 100
    # above the cost bound (lowered here) the same call falls back to Monte Carlo shuffles, and says so
    calls.clear()
    monkeypatch.setattr(su, "EXACT_MAX_OPS", 10.0)
    f = StyleUnits(layers=["mix"], n_perm=100, seed=0, control_draws=1).run(subject, data)
    p = f.tables["style_units"]["p_value"].to_numpy()
    assert not calls and np.allclose(p * 101, np.round(p * 101))
    assert any(n.startswith("p: Monte Carlo permutation null (100 label shuffles") and "above 1e+01" in n
               for n in f.notes)
    assert any("permutation floor" in n for n in f.notes)
    with pytest.raises(ValueError, match="null must be 'exact' or 'permutation'"):
        StyleUnits(null="asymptotic").check_params()


# --- the analysis on the planted generator -----------------------------------------------------

def test_planted_style_units_are_found_for_their_own_style():
    subject, data = make_planted_subject(), make_planted_data()
    f = StyleUnits(layers=["mix"], n_boot=200, n_perm=1000, seed=0).run(subject, data)
    df = f.tables["style_units"]
    assert {"layer", "unit", "style", "auroc", "ci_low", "ci_high", "p_value", "q_value"} <= set(df.columns)
    assert len(df) == 6 * len(STYLES)
    for style, unit in (("checker", CHECKER_UNIT), ("stripes", STRIPES_UNIT)):
        rows = df[df["style"] == style].sort_values("auroc", ascending=False)
        top = rows.iloc[0]
        assert int(top["unit"]) == unit and top["auroc"] == 1.0
        # logit-DeLong / Newcombe: AUROC 1 with 12 vs 24 images is [0.88, 1], not the bootstrap's [1, 1]
        assert top["q_value"] < 0.05 and 0.85 < top["ci_low"] < 1 and top["ci_high"] == pytest.approx(1.0)
        assert top["mean_style"] > top["mean_other"] + 1.0
        assert top["cohens_d"] > 2 and top["cohens_d"] == rows["cohens_d"].max()   # the clearest separation
    # a planted unit is significantly *low* for the other styles, not high
    other = df[(df["unit"] == CHECKER_UNIT) & (df["style"] != "checker")]
    assert (other["auroc"] < 0.5).all()


def test_null_generator_gives_no_discoveries():
    """The same network with the style table switched off: the style changes nothing, so BH
    must report no unit (this fails if the p-values are anti-conservative)."""
    subject, data = make_planted_subject(planted=False), make_planted_data()
    df = StyleUnits(layers=["mix"], n_boot=50, n_perm=1000, seed=0).run(subject, data).tables["style_units"]
    assert df["q_value"].min() > 0.05, df.sort_values("q_value").head()
    assert abs(df["auroc"].mean() - 0.5) < 0.05


def test_default_layers_and_nan_units_are_reported():
    subject, data = make_planted_subject(nan_unit=5), make_planted_data()
    f = StyleUnits(n_boot=50, n_perm=200).run(subject, data)     # layers=None -> every conv layer
    df = f.tables["style_units"]
    assert set(df["layer"]) == {"encoder", "decoder"}
    # the NaN unit of `mix` spreads into all 3 decoder units of the first two images of each
    # batch of 8 (5 batches for 36 images)
    assert any(n.startswith("decoder: 30 NaN") and "3 units" in n for n in f.notes), f.notes
    assert df[df["layer"] == "decoder"]["auroc"].isna().all() and df[df["layer"] == "encoder"]["auroc"].notna().all()
    f = StyleUnits(layers="mi*", n_boot=50, n_perm=200).run(subject, data)
    df = f.tables["style_units"]
    assert df[df["unit"] == 5]["auroc"].isna().all() and df[df["unit"] != 5]["auroc"].notna().all()
    assert any(n.startswith("mix: 10 NaN") and "1 units" in n for n in f.notes), f.notes


def test_single_style_subject_is_skipped_with_reason():
    G = PlantedG()
    subject = Subject.from_module(nn.Sequential(G.encoder, G.decoder), style_names=["only"])
    data = AnalysisData(content=torch.zeros(8, 3, 16, 16), style_ids=torch.zeros(8, dtype=torch.long))
    f = StyleUnits(n_boot=10, n_perm=10).run(subject, data)
    assert f.skipped and "one style" in f.skipped and not f.tables


def test_too_few_images_per_style_names_the_number_needed():
    subject, data = make_planted_subject(), make_planted_data(n_per_style=3)
    with pytest.raises(ValueError, match=r"at least 8 images generated toward style 'checker'.*got 3"):
        StyleUnits(layers=["mix"], n_boot=10, n_perm=10).run(subject, data)
    # a lower bar is a parameter, not a hidden constant
    f = StyleUnits(layers=["mix"], n_boot=10, n_perm=10, min_per_style=3).run(subject, data)
    assert len(f.tables["style_units"]) == 18


def test_same_seed_same_result_other_seed_other_ci():
    subject, data = make_planted_subject(), make_planted_data()
    a = StyleUnits(layers=["mix"], n_boot=50, n_perm=100, seed=3).run(subject, data).tables["style_units"]
    b = StyleUnits(layers=["mix"], n_boot=50, n_perm=100, seed=3).run(subject, data).tables["style_units"]
    c = StyleUnits(layers=["mix"], n_boot=50, n_perm=100, seed=4).run(subject, data).tables["style_units"]
    pd.testing.assert_frame_equal(a, b)
    np.testing.assert_array_equal(a["auroc"], c["auroc"])         # the estimate does not depend on the seed
    np.testing.assert_array_equal(a["p_value"], c["p_value"])     # nor does the exact null (DeLong CI: no draws)
    mc = [StyleUnits(layers=["mix"], n_boot=50, n_perm=100, seed=s, null="permutation").run(subject, data)
          .tables["style_units"] for s in (3, 4)]
    assert not np.allclose(mc[0]["p_value"], mc[1]["p_value"])   # Monte Carlo shuffles do


def test_no_hook_survives_an_error_in_the_body():
    subject = make_planted_subject()
    G, calls = subject.generator, []

    def flaky(c, s, z=None):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("planted failure on the second batch")
        return G(c, s)

    subject._generate = flaky
    with pytest.raises(RuntimeError, match="planted failure"):
        StyleUnits(layers=["mix", "encoder"], n_boot=10, n_perm=10).run(subject, make_planted_data())
    assert _hook_count(G) == 0


def test_report_section_marks_the_planted_units():
    from interp_gan.reporting.section_style_units import style_units_section
    from interp_gan.reporting.sections import ReportContext

    f = StyleUnits(layers=["mix"], n_boot=50, n_perm=1000).run(make_planted_subject(), make_planted_data())
    sec = style_units_section(f, ReportContext())
    heat = sec.figures["style_units_heatmap"].data[0]
    col = list(heat.x).index(f"mix:{CHECKER_UNIT}")
    assert heat.z[list(heat.y).index("checker")][col] == 1.0
    assert heat.text[list(heat.y).index("checker")][col] in ("*", "**")
    top = [b for b in sec.blocks if hasattr(b, "df")][0].df
    assert int(top[top["style"] == "stripes"].iloc[0]["unit"]) == STRIPES_UNIT
    skipped = style_units_section(type(f).skip("style_units", "one style"), ReportContext())
    assert "one style" in skipped.blocks[0]


def test_saturated_auroc_ties_are_broken_by_cohens_d():
    from interp_gan.reporting.section_style_units import selectivity_heatmap, top_units
    df = pd.DataFrame({"layer": ["a", "a", "b"], "unit": [0, 1, 0], "style": "s", "auroc": [1.0, 1.0, 0.9],
                       "ci_low": 0.9, "ci_high": 1.0, "p_value": 0.001, "q_value": 0.001,
                       "mean_style": 1.0, "mean_other": 0.0, "cohens_d": [1.5, 4.0, 9.0]})
    assert list(top_units(df, per_style=2)[["layer", "unit"]].itertuples(index=False, name=None)) == [("a", 1), ("a", 0)]
    assert list(selectivity_heatmap(df, max_units=2).data[0].x) == ["a:1", "a:0"]


def _cohens_d_loop(a: list[float], b: list[float]) -> float:
    """Cohen's d in plain Python (statistics module): the pooled, (n - 1)-weighted SD."""
    import statistics
    n1, n0 = len(a), len(b)
    s1, s0 = statistics.variance(a), statistics.variance(b)           # sample variances (n - 1)
    pooled = ((n1 - 1) * s1 + (n0 - 1) * s0) / (n1 + n0 - 2)
    return (statistics.fmean(a) - statistics.fmean(b)) / pooled ** 0.5


def test_cohens_d_matches_the_textbook_formula():
    """Planted: unequal group sizes (one style against three), where the old average of the two
    population variances differs from the pooled SD (old: 1e-2 relative error; now 1e-12)."""
    from interp_gan.analyses.units.style_units import cohens_d
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.integers(0, 3, 40)
    x[y == 1, 2] += 3.0                                              # planted: unit 2 high for style 1
    x[y == 1, 1] *= 3.0                                              # unequal spreads: the two formulas differ
    x[0, 0] = np.nan
    d = cohens_d(x, y, 3)
    for s in range(3):
        for u in (1, 2):
            ref = _cohens_d_loop(x[y == s, u].tolist(), x[y != s, u].tolist())
            assert d[s, u] == pytest.approx(ref, rel=1e-12)
    assert np.isnan(d[:, 0]).all() and d[1, 2] > 2 and np.nanargmax(d[:, 2]) == 1
    # random data, many shapes: the vectorised d equals the loop
    for seed in range(5):
        g = np.random.default_rng(seed)
        n = int(g.integers(20, 60))
        x, y = g.normal(size=(n, 4)) * g.uniform(0.5, 3, 4), np.arange(n) % 3
        d = cohens_d(x, y, 3)
        ref = [[_cohens_d_loop(x[y == s, u].tolist(), x[y != s, u].tolist()) for u in range(4)] for s in range(3)]
        np.testing.assert_allclose(d, ref, rtol=1e-12)


def test_no_ci_has_zero_width_on_the_planted_model():
    """Planted units separate their style completely (AUROC 1): the old percentile bootstrap
    gave [1, 1] for them (zero width); the DeLong / Newcombe interval never has zero width."""
    df = StyleUnits(layers=["mix"], n_perm=200, seed=0, control=False).run(
        make_planted_subject(), make_planted_data()).tables["style_units"]
    ok = df.dropna(subset=["ci_low"])
    assert len(ok) == 18 and (ok["ci_high"] - ok["ci_low"] > 0.01).all()
    assert ((ok["ci_low"] <= ok["auroc"]) & (ok["auroc"] <= ok["ci_high"])).all()
    boot = StyleUnits(layers=["mix"], n_perm=200, n_boot=100, seed=0, ci="bootstrap", control=False).run(
        make_planted_subject(), make_planted_data())
    b = boot.tables["style_units"]
    assert (b["ci_high"] == b["ci_low"]).sum() >= 2                  # what the old default did
    assert any("bootstrap replicate" in n for n in boot.notes) and any("zero width" in n for n in boot.notes)


def test_random_init_control_table_and_headline():
    """The control re-runs the same tests with the generator at random init: the table has one
    row per layer with both rates, equals a by-hand run under ``random_init``, and the weights
    come back afterwards. Old code: no control table (KeyError)."""
    from interp_gan.reporting.section_style_units import style_units_section
    from interp_gan.reporting.sections import ReportContext
    subject, data = make_planted_subject(), make_planted_data()
    before = {k: v.clone() for k, v in subject.generator.state_dict().items()}
    f = StyleUnits(layers=["encoder", "mix"], n_perm=300, seed=0).run(subject, data)
    ctl = f.tables["style_units_control"]
    assert list(ctl.columns[:7]) == ["layer", "units", "tests", "frac_q05_trained", "frac_q05_control",
                                     "median_abs_d_trained", "median_abs_d_control"]
    assert list(ctl["layer"]) == ["encoder", "mix"] and list(ctl["units"]) == [6, 6] and list(ctl["tests"]) == [18, 18]
    for k, v in subject.generator.state_dict().items():
        assert torch.equal(v, before[k]), k                           # trained weights restored
    df = f.tables["style_units"]
    tr = ctl.set_index("layer")
    assert tr.loc["mix", "frac_q05_trained"] == pytest.approx((df[df["layer"] == "mix"]["q_value"] < 0.05).mean())
    with subject.random_init(0) as c:
        by_hand = StyleUnits(layers=["encoder", "mix"], n_perm=300, seed=0, control=False).run(c, data)
    bh = by_hand.tables["style_units"]
    # the by-hand run uses other permutation seeds; the d's are identical, the rates close
    for layer in ("encoder", "mix"):
        d = bh[bh["layer"] == layer]["cohens_d"].abs().median()
        assert tr.loc[layer, "median_abs_d_control"] == pytest.approx(d)
    # the planted style table is a buffer (not re-drawn): the planted units stay selective at
    # random init, and the headline must say the control reaches the rate too
    from interp_gan.reporting.numbers import pct
    sec = style_units_section(f, ReportContext())
    head = sec.blocks[0]                                   # the section opens with its claim
    assert "random init" in head and pct((df['q_value'] < 0.05).mean()) in head
    c = sec.claims[0]                                      # the verdict follows the difference's interval
    assert ("No evidence" in c.text) == (not c.survives) and ("✓ beyond random init" in head) == c.survives
    # ... and says, beside the comparison, that the control keeps the trained table (old code: nothing)
    kept = [n for n in f.notes if n.startswith("random-init control keeps")]
    assert len(kept) == 1 and "18 trained value(s) in 1 tensor(s)" in kept[0] and "(mix.table)" in kept[0]
    assert sec.blocks[1].startswith("<p><i>The random-init control keeps 18 trained value(s)")
    assert "the control is partly trained" in c.baseline
    # three draws by default (seeds 0, 1, 2): draw 0 is the per-layer table's control
    d = f.tables["style_units_control_draws"]
    assert sorted(set(d.draw)) == [0, 1, 2] and sorted(set(d.seed)) == [0, 1, 2]
    for layer in ("encoder", "mix"):
        assert d[(d.draw == 0) & (d.layer == layer)].rate.iloc[0] == pytest.approx(tr.loc[layer, "frac_q05_control"])
    assert "(3 draws:" in c.baseline and c.verdict in ("beyond random init", "not beyond random init")


def test_control_draws_one_keeps_the_one_draw_wording_and_bad_values_are_one_line_errors():
    """control_draws=1: one draw, whose Newcombe rule cannot see the spread between networks, so the
    verdict says 'above its one control draw', not 'beyond random init'; 0, 1.5 or 'x' are refused
    naming the parameter (old code: no such parameter)."""
    import interp_gan as ig
    from interp_gan.reporting.section_style_units import style_units_section
    from interp_gan.reporting.sections import ReportContext
    subject, data = make_planted_subject(), make_planted_data()
    f = StyleUnits(layers=["mix"], n_perm=300, seed=0, control_draws=1).run(subject, data)
    assert sorted(set(f.tables["style_units_control_draws"].draw)) == [0]
    c = style_units_section(f, ReportContext()).claims[0]
    assert c.verdict in ("above its one control draw", "not above its control draw") and "one draw" in c.baseline
    for bad in (0, 1.5, "x"):
        with pytest.raises(ValueError, match="control_draws"):
            ig.build_analysis("style_units", control_draws=bad)


def test_many_p_values_at_the_permutation_floor_are_noted():
    """Planted: every planted unit separates completely, so with n_perm=9 many tests sit at
    p = 0.1 (the floor); old code said nothing about it."""
    rng = np.random.default_rng(0)
    y = np.arange(48) % 3
    x = rng.normal(size=(48, 20)) + 5 * (y[:, None] == 0)
    from interp_gan.analyses.units.style_units import auroc_pvalues
    from interp_gan.findings.stats import floor_note
    p = auroc_pvalues(x, y, 3, n_perm=9, seed=0, null="permutation")
    note = floor_note(p, 9, what="unit x style tests", min_share=0.05)   # as StyleUnits calls it
    assert note is not None and note.startswith(f"{int((p <= 0.1 + 1e-12).sum())} of 60") and "raise n_perm" in note
    assert floor_note(auroc_pvalues(rng.normal(size=(48, 20)), y, 3, n_perm=99, seed=0, null="permutation"), 99,
                      min_share=0.05) is None


def test_long_onnx_layer_names_are_end_truncated_on_the_heatmap_axis():
    from interp_gan.reporting.section_style_units import selectivity_heatmap
    long = "transformer/residual/residual3/conv2/Conv2D_prequant"
    df = pd.DataFrame({"layer": [long, "a"], "unit": [27, 0], "style": "s", "auroc": [0.9, 0.8],
                       "ci_low": 0.7, "ci_high": 1.0, "p_value": 0.001, "q_value": 0.001,
                       "mean_style": 1.0, "mean_other": 0.0, "cohens_d": [1.0, 2.0]})
    fig = selectivity_heatmap(df)
    assert list(fig.data[0].x) == [f"{long}:27", "a:0"]                     # the full key stays (hover)
    ticks = list(fig.layout.xaxis.ticktext)
    assert ticks[1] == "a:0" and len(ticks[0]) == 22 and ticks[0].endswith("prequant:27")
    assert fig.layout.margin.b < 250


def test_the_smallest_exact_p_is_noted_when_bh_cannot_reach_it():
    """Exact null: the smallest p is 2 / C(N, n) (the two extreme labellings); with 3 styles of 8 that
    is 2.7e-6, so 20,000 tests can make no lone discovery; 200 tests can."""
    y = np.arange(24) % 3
    few, many = (StyleUnits()._null_notes(np.full(m, 0.5), y, 3) for m in (200, 20_000))
    assert not any("smallest possible exact p" in n for n in few)
    assert any("smallest possible exact p is 2/C(24, 8) = 2.7e-06; with 20000 tests" in n for n in many), many


def test_a_magenta_sized_layer_with_28_quantised_units_now_takes_the_exact_path():
    """256 images in 6 styles (the Magenta preset), 4 untied units and 28 quantised ones (6 levels: tied
    between their extremes, each its own tie pattern). Counted as the DP does it, the layer's walk is
    3.8e9 operations, under EXACT_MAX_WALK_OPS; the former count (min(m, kmax) whole tables a run,
    1.3-1.5x too high here) put it at 4.8e9, above its 4e9, and the layer went to Monte Carlo shuffles. The
    p-values are each pattern's own exact table read at the observed rank sums."""
    import interp_gan.analyses.units.style_units as su
    from interp_gan.findings.rank_sum import (EXACT_MAX_WALK_OPS, _plan, _runs, rank_sum_counts, rank_sum_pvalues,
                                             rank_sum_walk_ops)
    rng = np.random.default_rng(3)
    n, s = 256, 6
    y = np.arange(n) % s
    x = np.c_[rng.standard_normal((n, 4)), np.clip(np.round(rng.standard_normal((n, 28)) * 1.5), -3, 2)]
    patterns = np.unique(np.sort(su._rank2(x), axis=0).T, axis=0)
    kmax = 43
    walk = rank_sum_walk_ops(patterns, kmax, [42, 43])
    cells = (kmax + 1) * (kmax * (2 * n - kmax + 1) + 1)
    runs = [_runs(p) for p in patterns]
    former = sum(cells * (1 + sum(min(m, kmax) for _, m in runs[g][d:-1]))                 # the former count
                 + cells / (kmax + 1) * sum(min(runs[g][-1][1], j) + 1 for j in (42, 43)) for g, d, _ in _plan(runs))
    assert former > 4e9 and walk < former and walk <= EXACT_MAX_WALK_OPS
    info = {}
    p = auroc_pvalues(x, y, s, n_perm=99, info=info)
    assert info["null"] == "exact" and "walk_ops" not in info
    r2 = su._rank2(x)
    for u in (0, 7, 31):
        k = int((y == 1).sum())
        dev = abs(r2[y == 1, u].sum() - k * (n + 1))
        assert p[1, u] == pytest.approx(float(rank_sum_pvalues(rank_sum_counts(r2[:, u], kmax), k, dev, n)), rel=1e-12)


def test_estimate_prices_the_null_the_run_would_pick(monkeypatch):
    """estimate_cost adds each layer's p-values per pass (trained + control draws), priced for the null
    ``null_used`` picks: the exact walk (rank_op_s an operation) or n_perm shuffles (shuffle_s a
    shuffle x style x (image + unit)); forcing the fallback (a bound lowered) switches the price."""
    import interp_gan.analyses.units.style_units as su
    from interp_gan.analyses.cost import UnitCosts
    from interp_gan.findings.rank_sum import rank_sum_walk_ops
    subject, data = make_planted_subject(), make_planted_data()
    n = len(data)
    units = 6
    unit = UnitCosts(forward_s=0.01, grad_s=0.02, shapes={"mix": (units, 8, 8)}, rank_op_s=1e-9, shuffle_s=5e-9)
    y = data.style_ids.numpy()
    sizes = np.bincount(y)
    k = np.minimum(sizes, n - sizes)
    walk = rank_sum_walk_ops(np.arange(2, 2 * n + 1, 2)[None], int(k.max()), np.unique(k))
    mc = 500 * 3 * (n + units) * 5e-9
    base = n * 2 * 0.01
    est = {null: StyleUnits(layers=["mix"], n_perm=500, control_draws=1, null=null).estimate_cost(subject, data, unit)
           for null in ("exact", "permutation")}
    assert est["exact"].seconds(unit) == pytest.approx(base + 2 * walk * 1e-9)
    assert est["permutation"].seconds(unit) == pytest.approx(base + 2 * mc)
    assert est["exact"].notes[0].startswith("p-values: the exact null")
    assert est["permutation"].notes[0].startswith("p-values: the Monte Carlo null")
    monkeypatch.setattr(su, "EXACT_MAX_WALK_OPS", walk / 2)       # the run would shuffle: so does the estimate
    again = StyleUnits(layers=["mix"], n_perm=500, control_draws=1).estimate_cost(subject, data, unit)
    assert again.seconds(unit) == pytest.approx(est["permutation"].seconds(unit))
    info = {}
    auroc_pvalues(np.random.default_rng(0).standard_normal((n, units)), y, 3, n_perm=9, info=info)
    assert info["null"] == "permutation"                            # the same rule, in the run
