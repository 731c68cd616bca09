"""Style interpolation: a walk to the target style's code beats random walks; a null walk does not."""
import numpy as np
import pytest
import torch
from torch import nn

from interp_gan.analyses.base import AnalysisData, build_analysis
from interp_gan.analyses.directions.interpolation import parse_pairs, random_rank_pvalue_ge
from interp_gan.subject.protocol import Subject

D, S = 8, 4
PROTO = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])   # style colours


class _Colour(nn.Module):
    """The code sets the image's colour through a fixed 3 x D map; content adds texture."""

    def __init__(self, W: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("W", W)

    def forward(self, content, code):
        colour = code @ self.W.T                                          # [n, 3]
        return 0.2 * content + colour[:, :, None, None]


class _ProtoClassifier(nn.Module):
    """Logits = -5 x squared distance of the mean colour to each style's prototype colour."""

    def forward(self, image):
        m = image.mean(dim=(2, 3))
        return -5.0 * ((m[:, None, :] - PROTO[None]) ** 2).sum(-1)


def _subject(codes: torch.Tensor, W: torch.Tensor, z_noise: float = 0.0):
    G = _Colour(W)

    def style_code(ids, z):
        c = codes[ids]
        return c if z is None or not z_noise else c + z_noise * z

    return Subject(generator=G, style_names=[f"s{i}" for i in range(S)],
                   _generate=lambda c, s, z=None: G(c, style_code(s, z)), _style_code=style_code,
                   _stylize_code=lambda c, code: G(c, code), latent_dim=D, style_dim=D, classifier=_ProtoClassifier())


def _planted():
    """Style i's code maps exactly onto its prototype colour: codes = pinv(W) @ PROTO."""
    g = torch.Generator().manual_seed(0)
    W = torch.randn(3, D, generator=g)
    codes = (torch.linalg.pinv(W) @ PROTO.T).T                            # [S, D], W @ code_i = PROTO_i
    return _subject(codes, W)


def _data(n=16, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return AnalysisData(torch.rand(n, 3, size, size, generator=g) * 2 - 1, torch.arange(n) % S)


def test_walk_to_the_target_code_beats_every_random_walk_and_the_path_hands_over():
    f = build_analysis("style_interpolation", pairs=("s0->s2", "s1->s3"), n_random=19, n_images=16,
                       n_boot=500, n_perm=500).run(_planted(), _data())
    df = f.tables["style_interpolation"]
    assert list(df["pair"]) == ["s0->s2", "s1->s3"] and (df.classifier == "classifier").all()
    assert (df.ci_low > 0).all() and (df.p_value < 0.01).all()
    assert (df.effect > df.random_max).all()                  # beats every random walk of the same length
    assert np.allclose(df.p_random, 1 / 20) and df.beyond_random.all()
    assert np.allclose(df.q_random, 0.05)
    assert (df.beyond_random == ((df.q_random <= 0.05) & (df.ci_low > 0))).all()   # the word follows the numbers
    assert (df.n_other == 2).all() and np.allclose(df.p_other, 1 / 3)   # beats the walks to the 2 other styles
    path = f.tables["style_interpolation_path"]
    p = path[(path.pair == "s0->s2")].pivot_table(index="t", columns="role", values="p")
    assert p.loc[0.0, "source"] > 0.5 > p.loc[0.0, "target"]          # starts as the source style
    assert p.loc[1.0, "target"] > 0.5 > p.loc[1.0, "source"]          # ends as the target style
    assert list(p.index) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert f.arrays["interpolation_img0"].shape == (2, 5, 8, 8, 3)
    assert any("p_random" in n for n in f.notes)


def test_a_classifier_blind_to_the_code_is_not_beyond_random():
    subj = _planted()
    subj.classifier = nn.Sequential(nn.Flatten(), nn.LazyLinear(S))     # reads texture, never the colour shift
    with torch.no_grad():
        subj.classifier(torch.zeros(1, 3, 8, 8))
        subj.classifier[1].weight.copy_(torch.randn(S, 192) * 0.0)
    f = build_analysis("style_interpolation", pairs=("s0->s2",), n_random=19, n_images=16, n_boot=200,
                       n_perm=200).run(subj, _data())
    r = f.tables["style_interpolation"].iloc[0]
    assert r.effect == pytest.approx(0.0, abs=1e-9) and not r.beyond_random


def test_pairs_are_seeded_not_chosen_by_result_and_bad_pairs_give_one_line():
    subj = _planted()
    a = build_analysis("style_interpolation", n_pairs=2, n_random=3, n_images=8, steps=(1.0,), n_boot=20,
                       n_perm=20).run(subj, _data())
    b = build_analysis("style_interpolation", n_pairs=2, n_random=3, n_images=8, steps=(1.0,), n_boot=20,
                       n_perm=20).run(subj, _data())
    assert list(a.tables["style_interpolation"].pair) == list(b.tables["style_interpolation"].pair)
    assert a.tables["style_interpolation"].pair.nunique() == 2
    assert any("cannot go below" in n or "floor" in n for n in a.notes)      # 3 random walks: floor 0.25
    with pytest.raises(ValueError, match="not one of the subject's styles"):
        parse_pairs(["s0->nope"], subj.style_names)
    with pytest.raises(ValueError, match="source->target"):
        parse_pairs(["s0,s1"], subj.style_names)
    with pytest.raises(ValueError, match="two different styles"):
        parse_pairs(["s1->s1"], subj.style_names)
    with pytest.raises(ValueError, match="include 1.0"):
        build_analysis("style_interpolation", steps=(0.5,))


def test_skips_without_a_code_space_or_a_classifier():
    subj = _planted()
    subj.classifier = None
    f = build_analysis("style_interpolation").run(subj, _data())
    assert f.skipped and "classifier" in f.skipped


def test_random_rank_pvalue():
    assert random_rank_pvalue_ge(5.0, np.array([1.0, 2.0, 6.0])) == pytest.approx(2 / 4)
    assert random_rank_pvalue_ge(5.0, np.array([1.0, np.nan])) == pytest.approx(1 / 2)


def test_report_section_states_the_verdict_and_draws_the_path(tmp_path):
    from interp_gan.reporting.section_interpolation import claim, interpolation_section
    from interp_gan.reporting.sections import ReportContext
    f = build_analysis("style_interpolation", pairs=("s0->s2",), n_random=19, n_images=16, n_boot=200,
                       n_perm=200).run(_planted(), _data())
    c = claim(f.tables["style_interpolation"])
    assert c.survives and c.verdict == "beyond random walks" and "1 of 1" in c.text
    sec = interpolation_section(f, ReportContext())
    assert "interpolation_path" in sec.figures and len(sec.figures["interpolation_path"].data) == 4
    assert sec.paper_grids["interpolation_walks"].images.shape[0] == 5
    f.tables["style_interpolation"]["beyond_random"] = False      # the sentence follows the verdict column
    assert not claim(f.tables["style_interpolation"]).survives


def test_budget_cuts_random_walks_then_others_then_images_and_says_so():
    """A budget the configured sizes cannot meet: n_random goes down to 19 first (p_random's floor
    stays 0.05), then images; the note and params name each cut and the table really ran at them.
    The unit cost is set, so the cut does not depend on this machine's speed."""
    import dataclasses
    from interp_gan.analyses.cost import measure_unit_costs
    subj, data = _planted(), _data(n=32)
    unit = dataclasses.replace(measure_unit_costs(subj, data), forward_s=0.01)
    data.extra["unit_costs"] = unit
    kw = dict(pairs=("s0->s2",), steps=(1.0,), n_random=99, n_other=2, n_images=32, n_boot=100, n_perm=100)
    full = build_analysis("style_interpolation", **kw).estimate_cost(subj, data, unit).seconds(unit)
    assert full == pytest.approx(32 * (1 + 1 + 99 + 2) * 0.01, rel=0.01)
    budget = 16 * (1 + 1 + 19 + 2) * 0.01 * 1.05        # fits at n_random 19 and 16 images
    a = build_analysis("style_interpolation", budget_s=budget, **kw)
    assert a.estimate_cost(subj, data, unit).seconds(unit) <= budget
    f = a.run(subj, data)
    note = [n for n in f.notes if n.startswith("budget")]
    assert len(note) == 1 and "n_random 99 -> 19" in note[0] and "n_images 32 -> 16" in note[0]
    assert f.params["sized_to_budget"] == {"n_random": 19, "n_images": 16} and f.params["n_random"] == 99
    r = f.tables["style_interpolation"].iloc[0]
    assert r["n"] == 16 and r["p_random"] >= 1 / 20
    # a budget that fits cuts nothing and says nothing
    f2 = build_analysis("style_interpolation", budget_s=full * 2, **kw).run(subj, data)
    assert not any(n.startswith("budget") for n in f2.notes) and "sized_to_budget" not in f2.params


def test_sequential_random_walks_reach_the_floor_of_n_random_max_and_off_is_the_fixed_rule():
    """n_random = 19 with n_random_max = 199: the planted walks beat every one of 199 random walks
    (p_random = 1/200, n_random_used 199), q_random < 0.05; the columns that describe the random
    walks are those of the first 19. n_random_max = 19 gives the fixed rule's table exactly."""
    kw = dict(pairs=("s0->s2", "s1->s3"), n_random=19, n_images=16, n_boot=100, n_perm=100)
    fixed = build_analysis("style_interpolation", **kw).run(_planted(), _data())
    seq = build_analysis("style_interpolation", n_random_max=199, **kw).run(_planted(), _data())
    same = build_analysis("style_interpolation", n_random_max=19, **kw).run(_planted(), _data())
    f0, df = fixed.tables["style_interpolation"], seq.tables["style_interpolation"]
    assert np.allclose(f0.p_random, 1 / 20) and (f0.n_random_used == 19).all()
    assert np.allclose(df.p_random, 1 / 200) and (df.n_random_used == 199).all() and (df.q_random < 0.05).all()
    for col in ("random_max", "random_mean", "random_any_max", "effect", "ci_low"):
        assert np.allclose(df[col], f0[col]), col
    assert any("sequential random walks" in n and "360 walks past the first 19" in n for n in seq.notes)
    assert same.tables["style_interpolation"].equals(f0)


def test_a_null_walk_stops_after_few_random_walks():
    """The exact null of tests/statistics/test_interpolation_stats.py (b's code = a's plus an
    isotropic draw): the walk is no better than random, so it stops once h = 10 random walks match it
    -- far fewer than n_random_max = 199 -- with a p_random above 0.05."""
    W = torch.randn(3, D, generator=torch.Generator().manual_seed(99))
    codes = torch.randn(S, D, generator=torch.Generator().manual_seed(1001))
    codes = torch.ones(1, D) * 0.3 + torch.cat([torch.zeros(1, D), codes[1:]])
    f = build_analysis("style_interpolation", pairs=("s0->s1",), steps=(1.0,), n_random=19, n_random_max=199,
                       n_images=8, n_boot=50, n_perm=50, seed=1).run(_subject(codes, W), _data(n=8))
    r = f.tables["style_interpolation"].iloc[0]
    assert r.n_random_used < 100 and r.p_random > 0.05 and not r.beyond_random
    assert r.p_random == pytest.approx(10 / r.n_random_used) or (r.n_random_used == 19 and r.p_random > 0.5)


class _NanAtTarget(nn.Module):
    """The prototype classifier, but NaN logits on images near style 2's colour (the walk's end)."""

    def forward(self, image):
        m = image.mean(dim=(2, 3))
        logits = -5.0 * ((m[:, None, :] - PROTO[None]) ** 2).sum(-1)
        logits[((m - PROTO[2]) ** 2).sum(-1) < 0.05] = float("nan")
        return logits


@pytest.mark.parametrize("n_random_max", [None, 39])
def test_a_nan_effect_gets_no_p_and_stays_out_of_bh_on_both_paths(n_random_max):
    """A walk whose target log-odds are NaN has no rank among the random walks: p_random, q_random
    NaN and no walks read, on the fixed path (it used to get the floor 1/20 and enter BH) as on the
    sequential one; the other rows' q are BH over the finite p only."""
    subject = _planted()
    subject.texture_classifier = _NanAtTarget()
    f = build_analysis("style_interpolation", pairs=("s0->s2", "s1->s3"), n_random=19, n_random_max=n_random_max,
                       n_images=16, n_boot=50, n_perm=50).run(subject, _data())
    df = f.tables["style_interpolation"].set_index(["pair", "classifier"])
    bad = df.loc[("s0->s2", "texture_classifier")]
    assert np.isnan(bad["effect"]) and np.isnan(bad["p_random"]) and np.isnan(bad["q_random"])
    assert bad["n_random_used"] == 0 and not bad["beyond_random"]
    ok = df.loc[("s1->s3", "texture_classifier")]
    assert ok["q_random"] == pytest.approx(ok["p_random"])          # BH over its one finite p
    assert np.isnan(random_rank_pvalue_ge(float("nan"), np.array([1.0, 2.0])))
