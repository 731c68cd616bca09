"""Causal ablation on the planted generator of test_style_units.py: removing the planted unit
removes its style (the classifier's probability drops, CI below 0) while random units of the
same size do nothing; inserting it elsewhere adds the style."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from interp_gan.analyses.units.ablation import Ablation
from interp_gan.analyses.base import AnalysisData
from interp_gan.subject.protocol import Subject
from test_style_units import CHECKER_UNIT, STRIPES_UNIT, PlantedG, _hook_count, make_planted_data, make_planted_subject

FAST = dict(layer="mix", n_boot=300, seed=0)


def _row(df, style, k, baseline, target):
    r = df[(df["style"] == style) & (df["k"] == k) & (df["baseline"] == baseline) & (df["target"] == target)]
    assert len(r) == 1, r
    return r.iloc[0]


def test_ablating_the_planted_unit_removes_its_style_and_random_units_do_not():
    # baseline="random": "random units do nothing" needs sets without the planted units; in this
    # 6-unit layer the 4 uniform draws of seed 0 miss them, the shuffled sets do not (a shuffled
    # set picks any unit, the planted ones included, about as often as a uniform draw does)
    subject, data = make_planted_subject(), make_planted_data()
    f = Ablation(ks=(1, 2), n_random=4, styles=["checker", "stripes"], baseline="random", **FAST).run(subject, data)
    df = f.tables["ablation"]
    assert {"layer", "units", "intervention", "target", "effect", "ci_low", "ci_high", "n", "k", "baseline",
            "style"} <= set(df.columns)
    for style, unit in (("checker", CHECKER_UNIT), ("stripes", STRIPES_UNIT)):
        top = _row(df, style, 1, "top", f"p(style={style})")
        assert top["units"] == str(unit) and top["n"] == 12 and top["intervention"] == "zero"
        assert top["effect"] < -0.5 and top["ci_high"] < 0          # the style is gone
        rnd = _row(df, style, 1, "random", f"p(style={style})")
        assert rnd["ci_low"] <= 0 <= rnd["ci_high"] and abs(rnd["effect"]) < 0.05
        assert rnd["n_sets"] == 4 and rnd["units"].count("|") == 3 and rnd["baseline_sets"] == "random"
        # cumulative: the top 2 contain the top 1
        assert _row(df, style, 2, "top", f"p(style={style})")["units"].split(";")[0] == str(unit)
    ranking = f.tables["ablation_ranking"]
    for fold in (0, 1):                                               # cross-fitted: each half's own ranking
        first = ranking[(ranking["rank"] == 0) & (ranking["fold"] == fold)].set_index("style")["unit"]
        assert first["checker"] == CHECKER_UNIT and first["stripes"] == STRIPES_UNIT
    # no real style images -> no Gram distance, said in a note; concept fractions are measured
    assert any("Gram" in n for n in f.notes) and not df["target"].str.startswith("gram").any()
    assert df["target"].str.startswith("fraction(").any()


def test_inserting_the_planted_unit_adds_its_style_to_other_images():
    subject, data = make_planted_subject(), make_planted_data()
    f = Ablation(units=[CHECKER_UNIT], intervention="insert", n_random=3, styles=["checker"], **FAST).run(subject, data)
    df = f.tables["ablation"]
    top = _row(df, "checker", 1, "top", "p(style=checker)")
    assert top["n"] == 24                                            # measured on the other styles' images
    assert top["effect"] > 0.5 and top["ci_low"] > 0
    rnd = _row(df, "checker", 1, "random", "p(style=checker)")
    assert rnd["effect"] < 0.1 and "ablation_ranking" not in f.tables


def test_mean_ablation_is_weaker_than_zero_ablation_for_a_unit_on_for_one_style_in_three():
    subject, data = make_planted_subject(), make_planted_data()
    zero = Ablation(units=[CHECKER_UNIT], n_random=1, styles=["checker"], **FAST).run(subject, data)
    mean = Ablation(units=[CHECKER_UNIT], intervention="mean", n_random=1, styles=["checker"],
                    **FAST).run(subject, data)
    ez = _row(zero.tables["ablation"], "checker", 1, "top", "p(style=checker)")["effect"]
    em = _row(mean.tables["ablation"], "checker", 1, "top", "p(style=checker)")["effect"]
    assert ez < em < 0   # the unit's mean is about 1.5/3: part of the pattern stays


def test_gram_distance_is_measured_when_real_style_images_exist():
    subject, data = make_planted_subject(), make_planted_data()
    from interp_gan.models import RandomFeatureNet
    subject.feature_net = RandomFeatureNet(seed=1, channels=(4, 8))
    with torch.no_grad():  # real "checker" images are the planted generator's own checker outputs
        real = subject.generator(data.content[:8], torch.zeros(8, dtype=torch.long))
    data.style_images, data.style_labels = real, torch.zeros(8, dtype=torch.long)
    f = Ablation(ks=(1,), n_random=2, styles=["checker"], **FAST).run(subject, data)
    g = _row(f.tables["ablation"], "checker", 1, "top", "gram_distance(checker)")
    assert g["ci_low"] > 0      # without the pattern the images move away from the checker style


def test_single_style_subject_is_skipped_and_bad_input_raises():
    G = PlantedG()
    one = Subject.from_module(nn.Sequential(G.encoder, G.decoder), style_names=["only"])
    data = AnalysisData(content=torch.zeros(8, 3, 16, 16), style_ids=torch.zeros(8, dtype=torch.long))
    f = Ablation(layer="1", n_boot=10).run(one, data)
    assert f.skipped and "one style" in f.skipped
    subject = make_planted_subject()
    with pytest.raises(ValueError, match="intervention must be"):
        Ablation(intervention="shuffle", **FAST).run(subject, make_planted_data())
    with pytest.raises(ValueError, match="units .*out of range"):
        Ablation(units=[99], **FAST).run(subject, make_planted_data())
    with pytest.raises(ValueError, match=r"at least 8 images generated toward style 'checker'.*got 2"):
        Ablation(**FAST).run(subject, make_planted_data(n_per_style=2))


def test_same_seed_same_result():
    subject, data = make_planted_subject(), make_planted_data()
    a = Ablation(ks=(1,), n_random=2, styles=["stripes"], **FAST).run(subject, data).tables["ablation"]
    b = Ablation(ks=(1,), n_random=2, styles=["stripes"], **FAST).run(subject, data).tables["ablation"]
    pd.testing.assert_frame_equal(a, b)


def test_no_hook_survives_an_error_in_the_body():
    subject = make_planted_subject()
    G, calls = subject.generator, []

    def flaky(c, s, z=None):
        calls.append(1)
        if len(calls) == 8:   # after the statistics pass, inside an edited pass
            raise RuntimeError("planted failure")
        return G(c, s)

    subject._generate = flaky
    with pytest.raises(RuntimeError, match="planted failure"):
        Ablation(ks=(1,), n_random=1, **FAST).run(subject, make_planted_data())
    assert _hook_count(G) == 0 and len(calls) == 8


def test_report_section_draws_top_and_random_curves():
    from interp_gan.reporting.section_ablation import ablation_section, summary_table
    from interp_gan.reporting.sections import ReportContext

    f = Ablation(ks=(1, 2), n_random=19, styles=["checker"], **FAST).run(make_planted_subject(channels=48),
                                                                         make_planted_data())
    sec = ablation_section(f, ReportContext())
    fig = sec.figures["ablation_log_odds_mix"]
    names = {t.name for t in fig.data if t.showlegend is not False}
    assert names == {"top-k selective units", "shuffled-label k-unit sets (band: 2.5-97.5% of sets)"}   # the default
    s = summary_table(f.tables["ablation"])
    for target in ("p(style=checker)", "log_odds(style=checker)"):
        row = s[s["target"] == target].iloc[0]
        assert row["k"] == 2 and row["p_random"] == pytest.approx(0.05)       # beat every random set
    # the verdict agrees with q everywhere
    assert (s["beyond random (q_random <= 0.05)"] == (s["q_random"] <= 0.05)).all()


def test_log_odds_are_stable_where_p_saturates():
    from interp_gan.analyses.common import log_odds

    logits = torch.tensor([[0.0, 1.0, -2.0], [30.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    p = logits.softmax(1)
    assert torch.allclose(log_odds(logits)[0], (p / (1 - p)).log()[0])
    assert log_odds(logits)[1, 0].item() == pytest.approx(30 - np.log(2))    # 1 - p rounds to ~0 in float32
    assert torch.allclose(log_odds(logits)[2], torch.full((3,), -np.log(2), dtype=torch.float64))
    assert torch.isfinite(log_odds(logits.float() * 100)).all()


class DecoyG(PlantedG):
    """Unit 2 is the most style-selective unit (+1.5 for 'checker') but does nothing; the checker
    pattern's amplitude is the sum of the other five units (content features plus a common
    offset), gated by the target style directly. Every random set lowers p(checker); the
    selected unit leaves it unchanged: it does LESS than random."""

    def forward(self, content, style_ids):
        h = self.mix(self.encoder(content), style_ids)
        others = torch.cat([h[:, :CHECKER_UNIT], h[:, CHECKER_UNIT + 1:]], 1).mean(dim=(1, 2, 3))
        gate = (style_ids == 0).float() * (2.0 + 5 * others)
        return 0.5 * content + 0.3 * gate[:, None, None, None] * self.checker


def test_a_selected_set_that_does_less_than_random_is_not_beyond_random():
    """Old code flagged this 'beyond random' (two-sided: the top CI [0, 0] does not overlap the
    random CI below 0). One-sided against 19 random sets: p_random = 1."""
    from interp_gan.reporting.section_ablation import summary_table
    from test_style_units import PatternClassifier
    G = DecoyG().eval()
    with torch.no_grad():
        G.encoder.bias[[0, 1, 3, 4, 5]] = 0.5
    subject = Subject(generator=G, style_names=["checker", "plain", "stripes"],
                      _generate=lambda c, s, z=None: G(c, s), classifier=PatternClassifier())
    data = make_planted_data()
    f = Ablation(ks=(1,), n_random=19, styles=["checker"], **FAST).run(subject, data)
    df = f.tables["ablation"]
    top, rnd = _row(df, "checker", 1, "top", "log_odds(style=checker)"), _row(df, "checker", 1, "random",
                                                                               "log_odds(style=checker)")
    assert top["units"] == str(CHECKER_UNIT) and abs(top["effect"]) < 1e-6
    assert rnd["effect"] < -0.1 and rnd["ci_high"] < top["ci_low"] - 1e-3    # the old verdict's condition
    assert top["p_random"] == 1.0 and not top["beyond_random"] and top["direction"] == "decrease"
    s = summary_table(df)
    assert not s["beyond random (q_random <= 0.05)"].any()


def _sets_with(units: str, unit: int) -> int:
    """Baseline sets that are the planted unit on every half ("a;b / c;d": one set per half)."""
    return sum(all(str(unit) in h.split(";") for h in s.split(" / ")) for s in units.split("|"))


def test_cross_fitted_units_are_named_per_half_and_every_image_is_measured_once():
    subject, data = make_planted_subject(channels=48), make_planted_data()
    f = Ablation(ks=(1,), n_random=19, styles=["checker"], **FAST).run(subject, data)
    df = f.tables["ablation"]
    top = _row(df, "checker", 1, "top", "p(style=checker)")
    assert top["n"] == 12 and top["units_fold0"] == top["units_fold1"] == top["units"] == str(CHECKER_UNIT)
    # random sets are drawn from all 48 units: a set that is the planted unit ties with it
    rnd = _row(df, "checker", 1, "random", "p(style=checker)")
    assert top["p_random"] == pytest.approx((1 + _sets_with(rnd["units"], CHECKER_UNIT)) / 20)
    assert top["beyond_random"] == (top["q_random"] <= 0.05) and top["q_random"] >= top["p_random"]
    assert any("cross-fitted" in n for n in f.notes) and any("one-sided rank" in n for n in f.notes)
    # the concept table has BH q-values (old: CI excludes 0, no correction)
    conc = df[(df["measure"] == "concepts") & (df["baseline"] == "top")]
    assert conc["q_zero"].notna().all() and (conc["q_zero"] >= conc["p_zero"] - 1e-12).all()
    assert rnd["n_sets"] == 19 and rnd["random_low"] <= rnd["effect"] <= rnd["random_high"]


def test_few_random_sets_are_noted():
    f = Ablation(ks=(1,), n_random=3, styles=["checker"], **FAST).run(make_planted_subject(), make_planted_data())
    assert any("cannot reach 0.05" in n for n in f.notes)
    assert not f.tables["ablation"]["beyond_random"].fillna(False).astype(bool).any()   # floor 0.25


def test_insertion_value_is_tie_aware():
    """A unit that saturates at 6.0 on 1% of its pixels (and is below 1 elsewhere): the old
    np.quantile(0.99) interpolated to 1.05, a value the unit never takes; the tie-aware value
    is 6.0, and {x >= value} holds the top 1% (ties included)."""
    from interp_gan.analyses.units.ablation import insertion_value
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(0, 1, 990), np.full(10, 6.0)])
    rng.shuffle(x)
    assert np.quantile(x, 0.99) < 2                                   # the old value
    v = insertion_value(x[None], 0.99)[0]
    assert v == 6.0 and (x >= v).mean() >= 0.01
    # a unit tied at its top on more than the quantile's mass: the value is that top
    y = np.concatenate([rng.uniform(0, 1, 950), np.full(50, 1.5)])
    assert insertion_value(y[None], 0.99)[0] == 1.5 and (y >= 1.5).mean() >= 0.01
    # a continuous unit: an observed value with at least 1% at or above it
    z = rng.normal(size=(3, 777))
    v = insertion_value(z, 0.99)
    assert all(val in row for val, row in zip(v, z)) and ((z >= v[:, None]).mean(1) >= 0.01).all()


def test_shuffled_baseline_sets_are_top_k_for_permuted_labels_per_half_and_are_named():
    from interp_gan.analyses.units.ablation import (_unit_stats, crossfit_folds, role_labels, roles_rng,
                                                    select_units, shuffled_roles)
    subject, data = make_planted_subject(channels=48), make_planted_data()
    seen = []
    gen = subject.generate

    def spy(content, ids, z=None):
        seen.append((content.clone(), ids.clone()))
        return gen(content, ids, z)
    subject.generate = spy
    f = Ablation(ks=(2,), n_random=19, styles=["checker"], **FAST).run(subject, data)
    df = f.tables["ablation"]
    top, rnd = _row(df, "checker", 2, "top", "log_odds(style=checker)"), _row(df, "checker", 2, "random",
                                                                               "log_odds(style=checker)")
    assert top["baseline_sets"] == rnd["baseline_sets"] == "shuffled"
    assert top["p_random"] == pytest.approx(0.05) and top["beyond_random"] == (top["q_random"] <= 0.05)   # beats them all
    sets = [[list(map(int, h.split(";"))) for h in s.split(" / ")] for s in rnd["units"].split("|")]
    assert len(sets) == 19 and all(len(h) == 2 for per_half in sets for h in per_half)
    assert any(len(per_half) == 2 for per_half in sets)            # drawn per half: the halves differ
    # reproduce the first set: the images relabelled within each half, the same ranking on the other half
    x = _unit_stats(subject, data, None, ["mix"], 0.99, 0)["mix"][0]
    y = data.style_ids.numpy()
    s = subject.style_names.index("checker")
    fold = crossfit_folds(y, 0 + 17)
    perm = shuffled_roles(fold, roles_rng(0, "mix", s, 0))
    lab = role_labels(y, perm)
    assert (perm[fold == 0] != np.flatnonzero(fold == 0)).any() and set(perm[fold == 0]) == set(np.flatnonzero(fold == 0))
    assert (np.bincount(lab[fold == 1]) == np.bincount(y[fold == 1])).all() and (lab[perm] == y).all()
    first = [select_units(x[fold != h], lab[fold != h], 3, s, 2) for h in (0, 1)]
    assert [sorted(u) for u in first] == [sorted(u) for u in (sets[0] * 2)[:2]]
    # ... and measured on the images that take the checker images' part, rendered toward checker
    for h in (0, 1):
        idx = perm[np.flatnonzero((y == s) & (fold == h))]
        assert any(c.shape == data.content[idx].shape and torch.equal(c, data.content[idx]) and (i == s).all()
                   for c, i in seen), h
        assert not (y[idx] == s).all()                          # not only checker images
    assert any("baseline = shuffled" in n for n in f.notes)
    # explicit units: nothing to rank, so uniform random sets, said in a note and the column
    g = Ablation(units=[CHECKER_UNIT], n_random=2, styles=["checker"], **FAST).run(subject, data)
    assert (g.tables["ablation"]["baseline_sets"] == "random").all()
    assert any("explicit units" in n and "uniform random" in n for n in g.notes)
    with pytest.raises(ValueError, match="baseline must be"):
        Ablation(baseline="uniform", **FAST).run(subject, data)


def test_shuffled_insertion_sets_are_measured_on_relabelled_images_in_the_styles_they_stand_for():
    """Insertion is measured on the other styles' images in their own styles: a shuffled set is
    measured on the images that take their part (perm), each rendered toward the style of the image
    it stands for, and the selected set of a ranked insertion still beats the shuffled sets."""
    from interp_gan.analyses.units.ablation import crossfit_folds, roles_rng, shuffled_roles
    import dataclasses
    subject, data = make_planted_subject(channels=48), make_planted_data()
    data = dataclasses.replace(data, batch_size=64)                 # one call per measured half
    seen = []
    gen = subject.generate

    def spy(content, ids, z=None):
        seen.append((content.clone(), ids.clone()))
        return gen(content, ids, z)
    subject.generate = spy
    f = Ablation(ks=(1,), intervention="insert", n_random=19, styles=["checker"], **FAST).run(subject, data)
    top = _row(f.tables["ablation"], "checker", 1, "top", "p(style=checker)")
    assert top["n"] == 24 and top["p_random"] == pytest.approx(0.05)
    y = data.style_ids.numpy()
    s = subject.style_names.index("checker")
    fold = crossfit_folds(y, 0 + 17)
    for j in (0, 18):
        perm = shuffled_roles(fold, roles_rng(0, "mix", s, j))
        for h in (0, 1):
            own = np.flatnonzero((y != s) & (fold == h))
            want_c, want_s = data.content[perm[own]], torch.as_tensor(y[own])
            assert any(c.shape == want_c.shape and torch.equal(c, want_c) and torch.equal(i.cpu(), want_s)
                       for c, i in seen), (j, h)
            assert (y[perm[own]] == s).any() or (y[perm[own]] != y[own]).any()   # other images than the own


def test_n_measure_renders_the_same_content_images_toward_every_target():
    """n_measure: zero ablation is measured on a fixed sample of content images rendered toward
    the target style (the planted unit still removes it; every target sees the same images, half
    per cross-fitting half); insertion samples the other styles' images; too few is one line."""
    subject, data = make_planted_subject(channels=48), make_planted_data()
    seen = []
    gen = subject.generate

    def spy(content, ids, z=None):
        seen.append(ids.clone())
        return gen(content, ids, z)
    subject.generate = spy
    f = Ablation(ks=(1,), n_random=19, styles=["checker", "stripes"], n_measure=20, **FAST).run(subject, data)
    df = f.tables["ablation"]
    names = subject.style_names
    for style, unit in (("checker", CHECKER_UNIT), ("stripes", STRIPES_UNIT)):
        top = _row(df, style, 1, "top", f"log_odds(style={style})")
        assert top["n"] == 20 and top["units"] == str(unit)            # 20 images, not the 12 of the style
        assert top["ci_high"] < 0 and top["p_random"] == pytest.approx((1 + _sets_with(
            _row(df, style, 1, "random", f"log_odds(style={style})")["units"], unit)) / 20)
    # measured passes render every image toward the target: batches of a single style id
    targets = {names.index("checker"), names.index("stripes")}
    measured = [set(i.tolist()) for i in seen[-4:]]
    assert all(len(m) == 1 and m <= targets for m in measured)
    assert any("rendered toward the target style" in n for n in f.notes)
    ins = Ablation(ks=(1,), n_random=3, styles=["checker"], intervention="insert", n_measure=16,
                   **FAST).run(make_planted_subject(channels=48), data).tables["ablation"]
    assert _row(ins, "checker", 1, "top", "p(style=checker)")["n"] == 16
    with pytest.raises(ValueError, match="n_measure must be at least 16"):
        Ablation(ks=(1,), n_measure=6, **FAST).run(make_planted_subject(), data)


# --- sequential baseline sets (n_random_max, h) --------------------------------------------------

SEQ_ONLY = ["p_random", "q_random", "beyond_random", "n_random_used"]   # what sequential sets may change


def test_sequential_sets_off_by_default_are_the_fixed_rule_bit_for_bit():
    subject, data = make_planted_subject(channels=48), make_planted_data()
    kw = dict(ks=(1,), n_random=19, styles=["checker"], **FAST)
    off = Ablation(**kw).run(subject, data)
    same = Ablation(**kw, n_random_max=19).run(subject, data)
    pd.testing.assert_frame_equal(off.tables["ablation"], same.tables["ablation"])
    assert off.notes == same.notes and not any("sequential" in n for n in off.notes)
    top = off.tables["ablation"]["baseline"] == "top"
    assert (off.tables["ablation"].loc[top, "n_random_used"] == 19).all()


def test_sequential_sets_take_a_planted_unit_below_the_fixed_floor_and_leave_the_rest_alone():
    subject, data = make_planted_subject(channels=48), make_planted_data()
    kw = dict(ks=(1,), n_random=19, styles=["checker"], **FAST)
    fixed = Ablation(**kw).run(subject, data).tables["ablation"]
    f = Ablation(**kw, n_random_max=99, h=4).run(subject, data)
    df = f.tables["ablation"]
    # the first 19 sets are the fixed run's: everything but the p, its q and the counts is unchanged
    pd.testing.assert_frame_equal(df.drop(columns=SEQ_ONLY), fixed.drop(columns=SEQ_ONLY))
    planted = _row(df, "checker", 1, "top", "log_odds(style=checker)")
    assert planted["units"] == str(CHECKER_UNIT)
    assert planted["n_random_used"] == 99 and planted["p_random"] == pytest.approx(1 / 100)   # below 1/20
    assert _row(fixed, "checker", 1, "top", "log_odds(style=checker)")["p_random"] == pytest.approx(1 / 20)
    top = df[df["baseline"] == "top"]
    # a row with 4 or more sets at least as large among the first 19 keeps the fixed p; one that goes on
    # stops at the 4th (p = 4 / used) or reads all 99 sets
    block, stopped = top["n_random_used"] == 19, (top["n_random_used"] > 19) & (top["n_random_used"] < 99)
    assert block.any() and stopped.any()
    assert np.allclose(top.loc[block, "p_random"], fixed.loc[top.index[block], "p_random"])
    assert (fixed.loc[top.index[block], "p_random"] >= 5 / 20).all()
    assert np.allclose(top.loc[stopped, "p_random"], 4 / top.loc[stopped, "n_random_used"])
    assert (top["n_random_used"] >= 19).all() and df.loc[df["baseline"] == "random", "n_random_used"].isna().all()
    assert (top["q_random"] >= top["p_random"] - 1e-12).all()
    assert any(n.startswith("sequential baseline sets") and "h = 4 is below" in n for n in f.notes)


def test_a_sequential_set_depends_on_its_row_and_index_only_so_p_is_the_one_at_a_time_p():
    from interp_gan.analyses.units.ablation import later_set_rng
    a = later_set_rng(0, "mix", 1, 2, 30).permutation(48)
    assert (a == later_set_rng(0, "mix", 1, 2, 30).permutation(48)).all()
    assert not (a == later_set_rng(0, "mix", 1, 2, 31).permutation(48)).all()
    assert not (a == later_set_rng(0, "mix", 2, 2, 30).permutation(48)).all()
    # a row that stopped before 99 sets reads the same sets, so gets the same p, with a larger
    # n_random_max or with another style's rows open beside it
    subject, data = make_planted_subject(channels=48), make_planted_data()
    kw = dict(ks=(1,), n_random=19, baseline="random", **FAST)
    one = Ablation(**kw, n_random_max=99, styles=["checker"]).run(subject, data).tables["ablation"]
    more = Ablation(**kw, n_random_max=199, styles=["checker", "stripes"]).run(subject, data).tables["ablation"]
    more = more[more["style"] == "checker"].reset_index(drop=True)
    stopped = (one["baseline"] == "top") & (one["n_random_used"] < 99)
    assert stopped.sum() >= 3
    pd.testing.assert_series_equal(one.loc[stopped, "p_random"], more.loc[stopped, "p_random"])
    pd.testing.assert_series_equal(one.loc[stopped, "n_random_used"], more.loc[stopped, "n_random_used"])


def test_sequential_sets_are_priced_at_their_worst_case_and_cut_first_by_a_budget():
    import dataclasses
    from interp_gan.analyses.cost import measure_unit_costs
    subject, data = make_planted_subject(channels=48), make_planted_data()
    unit = dataclasses.replace(measure_unit_costs(subject, data), order=())
    kw = dict(ks=(1,), n_random=19, styles=["checker"], **FAST)
    off = Ablation(**kw).estimate_cost(subject, data, unit)
    on = Ablation(**kw, n_random_max=99).estimate_cost(subject, data, unit)
    n_s = 12                                    # the checker images zero ablation is measured on
    # each shuffled set: an edited pass and its own unedited pass (its relabelled images)
    assert on.forwards - off.forwards == pytest.approx(2 * n_s * (99 - 19))
    rnd = dict(kw, baseline="random")
    assert (Ablation(**rnd, n_random_max=99).estimate_cost(subject, data, unit).forwards
            - Ablation(**rnd).estimate_cost(subject, data, unit).forwards) == pytest.approx(n_s * (99 - 19))
    assert any(n.startswith("up to 99 random baseline sets") for n in on.notes)
    assert not any(n.startswith("up to") for n in off.notes)
    budget = (off.seconds(unit) + on.seconds(unit)) / 2
    f = Ablation(**kw, n_random_max=99, budget_s=budget).run(subject, data)
    cut = f.params["sized_to_budget"]
    assert set(cut) == {"n_random_max"} and 19 <= cut["n_random_max"] < 99, cut
    assert (f.tables["ablation"]["n_random_used"].dropna() <= cut["n_random_max"]).all()
    with pytest.raises(ValueError, match="n_random_max must be >= n_random"):
        Ablation(**kw, n_random_max=5).run(subject, data)
