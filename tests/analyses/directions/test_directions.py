"""Latent directions: planted axes must be recovered; planted effects must be told from random ones."""
import numpy as np
import pytest
import torch
from torch import nn

from interp_gan.analyses.directions import methods as dm
from interp_gan.analyses.base import AnalysisData, build_analysis
from interp_gan.analyses.directions.analysis import Directions  # noqa: F401  (registers "directions")
from interp_gan.subject.protocol import Subject
from interp_gan.findings import Finding
from interp_gan.models.stylenet import StyleNet


def _unit(v):
    return v / np.linalg.norm(v)


# --- the pure methods ------------------------------------------------------------------------------
def test_pca_recovers_planted_axis():
    rng = np.random.default_rng(0)
    u = _unit(rng.standard_normal(16))
    x = 0.1 * rng.standard_normal((200, 16)) + 2.0 * rng.standard_normal((200, 1)) * u
    dirs, var = dm.pca_directions(x, 3)
    assert dirs.shape == (3, 16) and np.allclose(np.linalg.norm(dirs, axis=1), 1)
    assert abs(dirs[0] @ u) >= 0.95
    assert var[0] > 50 * var[1]


def test_pca_fewer_samples_than_dims_uses_shrinkage_and_refuses_too_many_axes():
    rng = np.random.default_rng(1)
    u = _unit(rng.standard_normal(32))
    x = 0.05 * rng.standard_normal((10, 32)) + 2.0 * rng.standard_normal((10, 1)) * u
    dirs, var = dm.pca_directions(x, 5)              # 10 samples < 32 dims: allowed up to 9 axes
    assert abs(dirs[0] @ u) >= 0.95
    assert np.all(var > 0)                           # shrinkage keeps every variance positive
    with pytest.raises(ValueError, match="n_samples"):
        dm.pca_directions(x, 10)


def test_sefa_recovers_dominant_right_singular_vector():
    rng = np.random.default_rng(2)
    u = _unit(rng.standard_normal(12))
    layers = [3.0 * np.outer(rng.standard_normal(2 * c), u) + 0.05 * rng.standard_normal((2 * c, 12))
              for c in (4, 6)]                          # two AdaIN affines [2C, D] sharing D
    for norm in (True, False):
        dirs = dm.sefa_directions(layers, 3, normalize_rows=norm)
        assert dirs.shape == (3, 12)
        assert abs(dirs[0] @ u) >= 0.95
    assert abs(dm.sefa_directions(torch.tensor(layers[0]), 1)[0] @ u) >= 0.95
    with pytest.raises(ValueError, match="sharing D"):
        dm.sefa_directions([np.ones((4, 3)), np.ones((4, 5))], 1)


def test_svm_recovers_planted_boundary_pointing_to_the_positive_group():
    rng = np.random.default_rng(3)
    u = _unit(rng.standard_normal(10))
    x = rng.standard_normal((120, 10))
    x -= np.outer(x @ u, u)                          # no spread along u except the planted margin
    y = np.arange(120) % 2 == 1
    x += np.where(y, 1.0, -1.0)[:, None] * u + 0.2 * rng.standard_normal((120, 1)) * u
    n = dm.svm_direction(x, y)
    assert n @ u >= 0.95                              # recovered and oriented toward the positive group
    with pytest.raises(ValueError, match="both groups"):
        dm.svm_direction(x, np.ones(120, bool))


def test_condition_direction_projects_out_the_other_boundary():
    a, b = _unit(np.array([1.0, 1.0, 0.0])), np.array([0.0, 1.0, 0.0])
    c = dm.condition_direction(a, [b])
    assert abs(c @ b) < 1e-9 and np.allclose(c, [1, 0, 0])
    with pytest.raises(ValueError, match="span"):
        dm.condition_direction(b, [b])


def test_random_directions_are_unit_and_seeded():
    r = dm.random_directions(5, 7, seed=4)
    assert np.allclose(np.linalg.norm(r, axis=1), 1)
    assert np.array_equal(r, dm.random_directions(5, 7, seed=4))
    assert not np.array_equal(r, dm.random_directions(5, 7, seed=5))


def test_ssim_matches_skimage():
    from skimage.metrics import structural_similarity
    torch.manual_seed(0)
    a = torch.rand(2, 3, 16, 16) * 2 - 1
    b = (a + 0.3 * torch.randn_like(a)).clamp(-1, 1)
    ours = dm.ssim(a, b)
    ref = [structural_similarity(a[i].numpy(), b[i].numpy(), channel_axis=0, data_range=2.0) for i in range(2)]
    assert np.allclose(ours.numpy(), ref, atol=1e-4)
    assert torch.allclose(dm.ssim(a, a), torch.ones(2))


# --- the analysis on a planted subject ------------------------------------------------------------------
D = 32


class _Planted(nn.Module):
    """Code axis u shifts the red channel of every image alike; every other axis shifts red (and,
    three times more, blue) by an image-specific amount (sign set by the content), so only u has
    a consistent effect on red, and only u moves red more than blue."""

    def __init__(self, u: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("u", u)
        self.out = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.out.weight.copy_(torch.eye(3)[:, :, None, None])
            self.out.bias.zero_()

    def forward(self, content, code):
        g = content[:, 1].flatten(1)[:, :D]                     # an image-specific vector
        g = g - (g @ self.u)[:, None] * self.u                    # orthogonal to u
        g = g / g.norm(dim=1, keepdim=True)
        own = (code * g).sum(1)[:, None, None, None]
        red = 0.1 * (code @ self.u)[:, None, None, None] + own    # consistent + image-specific parts
        img = content * 0.5                                        # blue: image-specific only, larger
        img = torch.cat([img[:, :1] + red, img[:, 1:2], img[:, 2:] + 3 * own], 1)
        return self.out(img)


class _RedClassifier(nn.Module):
    def forward(self, image):                                     # logits ["plain", "red"]
        red = image[:, 0].mean(dim=(1, 2))
        return torch.stack([torch.zeros_like(red), 10 * red], 1)


def _planted_subject(seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(D, generator=g)
    u /= u.norm()
    v = torch.randn(D, generator=g)
    v -= (v @ u) * u
    v /= v.norm()                                                # the style axis, orthogonal to u
    G = _Planted(u)

    def style_code(ids, z):                                      # big variance along u, small elsewhere
        return 0.05 * z + z[:, :1] * u + 0.3 * (2 * ids[:, None].float() - 1) * v

    subj = Subject(generator=G, style_names=["plain", "red"], _generate=lambda c, s, z=None: G(c, style_code(s, z)),
                   _style_code=style_code, _stylize_code=lambda c, code: G(c, code), latent_dim=D, style_dim=D,
                   classifier=_RedClassifier())
    return subj, u.numpy(), v.numpy()


def _data(n=16, size=16, styles=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return AnalysisData(torch.rand(n, 3, size, size, generator=g) * 2 - 1, torch.arange(n) % styles)


def test_planted_direction_found_and_significant_random_directions_not():
    torch.manual_seed(0)
    subj, u, v = _planted_subject()
    f = build_analysis("directions", methods=("pca", "sefa", "svm", "random"), n_samples=128, n_directions=8,
                       n_random=8, n_images=16, n_boot=500, n_perm=500, steps=(-2, 0, 2), seed=0).run(subj, _data())
    df, dirs = f.tables["directions"], f.arrays["directions"]
    assert {"method", "space", "index", "style", "effect", "ci_low", "ci_high", "p_value", "q_value",
            "ssim_min", "top_units"} <= set(df.columns)
    assert dirs.shape == (len(df), D)
    pc0 = df[(df.method == "pca") & (df["index"] == 0)].iloc[0]
    cos = float(dirs[pc0.name] @ u)
    assert abs(cos) >= 0.95                                       # PCA finds the planted axis
    assert pc0.style == ("red" if cos > 0 else "plain")            # its positive end moves toward that style
    assert pc0.ci_low > 0.5 and pc0.p_value < 0.01                # a real effect (log-odds), CI far from 0
    assert pc0.top_units.split(";")[0] == "0"                      # it moves the red output unit most
    svm0 = df[df.method == "svm"].iloc[0]
    assert dirs[svm0.name] @ v >= 0.9                              # the style boundary, toward "red" (id 1)
    rnd = df[df.method == "random"]
    assert len(rnd) == 8
    includes0 = ((rnd.ci_low <= 0) & (rnd.ci_high >= 0)).mean()
    # Random directions have small real effects on this model (sigmoid curvature x image-specific
    # shifts; p < 0.05 for 6 of 32 over 4 seeds, measured), so most, not all, CIs include 0.
    assert includes0 >= 0.6                                        # random directions: no consistent effect
    assert (rnd.effect.abs() < pc0.effect / 3).all()
    assert (rnd.top_units.str.split(";").str[0] == "2").all()     # random directions move blue most
    assert pc0.p_random == pytest.approx(1 / 9)                   # beats every random direction at its step
    # ... but 8 random directions cannot show it at 5%: the floor 1/9 binds, and the verdict says so
    assert not pc0.beyond_random and pc0.q_random >= 1 / 9 - 1e-12 and pc0.n_random == 8
    assert np.allclose(rnd.step_length, np.median(df.loc[df.method != "random", "step_length"]))
    assert f.arrays["random_null_effects"].shape == (len(df), 8)
    assert rnd.beyond_random.isna().all() and rnd.q_random.isna().all()     # controls carry no verdict
    assert any("cannot go below 1/9" in n or "permutation floor" in n for n in f.notes)
    # random rows are ranked among the 7 others: their floor is 1/8, so "about 5% at p <= 0.05" was wrong
    assert any("uniform on 1/8, 2/8, ..., 1" in n for n in f.notes)
    assert rnd.p_random.min() >= 1 / 8 - 1e-12
    assert any("sefa skipped" in n for n in f.notes)               # no style affines on this subject
    assert f.arrays["traversal_img0"].shape == (len(df), 3, 16, 16, 3)
    assert f.arrays["traversal_img0"].dtype == np.uint8
    agree = f.tables["direction_agreement"]
    assert list(agree.columns) == ["method_a", "index_a", "method_b", "index_b", "cosine"]
    assert len(agree) == 8 * 1 + 8 * 8 + 1 * 8                   # pca x svm, pca x random, svm x random


def test_stylenet_sefa_layerwise_and_same_seed_same_result(tmp_path):
    torch.manual_seed(0)
    G = StyleNet(3, ch=4, n_down=1, n_blocks=2, style_dim=8, latent_dim=4)
    subj = Subject.from_stylenet(G, ["a", "b", "c"])               # no classifier: effects left empty
    kw = dict(methods=("sefa", "svm_cond", "random"), n_samples=30, n_directions=2, n_images=4, n_boot=50,
              n_perm=50, steps=(0, 2))
    f = build_analysis("directions", **kw).run(subj, _data(8, styles=3))
    lw = f.tables["directions_layerwise"]
    assert sorted(set(lw.layer)) == [f"blocks.{i}.norm{j}.affine" for i in range(2) for j in (1, 2)]
    assert len(lw) == 2 * 4
    assert (lw.ssim < 1).all()                                     # each single-layer edit changes the image
    df = f.tables["directions"]
    assert set(df.method) == {"sefa", "svm_cond", "random"} and df.effect.isna().all()
    assert any("no independent style classifier" in n for n in f.notes)
    g = build_analysis("directions", **kw).run(subj, _data(8, styles=3))
    assert np.array_equal(f.arrays["directions"], g.arrays["directions"])
    assert df.drop(columns=["effect", "ci_low", "ci_high", "p_value", "q_value", "p_random"]).equals(
        g.tables["directions"].drop(columns=["effect", "ci_low", "ci_high", "p_value", "q_value", "p_random"]))
    back = Finding.load(f.save(tmp_path / "dir"))
    assert back.tables["directions"].shape == df.shape
    assert back.arrays["directions"].shape == f.arrays["directions"].shape


def _module_subject():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(6, 3, 3, padding=1), nn.Tanh())
    return Subject.from_module(net)


def test_an_unknown_activation_layer_names_close_matches():
    with pytest.raises(LookupError, match="close matches"):
        build_analysis("directions", layer="3x").run(_module_subject(), _data(8, styles=1))


def test_activation_space_edits_move_the_edited_channels():
    subj = _module_subject()
    f = build_analysis("directions", layer="1", methods=("pca", "random"), n_directions=2, n_random=2, n_samples=12,
                       n_images=8, steps=(0, 3), n_boot=50).run(subj, _data(12, styles=1))
    df = f.tables["directions"]
    assert set(df.space) == {"activation"} and f.arrays["directions"].shape == (4, 6)
    assert (df.unit_layer == "2").all()                            # the next conv after the edited layer
    assert (df.ssim_min < 1).all()                                 # the hook edit reaches the output
    assert df.effect.isna().all()                                  # no classifier on a bare module


def test_bad_parameters_raise_clear_errors():
    subj, _, _ = _planted_subject()
    with pytest.raises(ValueError, match="unknown direction method"):
        build_analysis("directions", methods=("pca", "nope")).run(subj, _data())
    with pytest.raises(ValueError, match="positive step"):
        build_analysis("directions", steps=(-1, 0)).run(subj, _data())
    with pytest.raises(ValueError, match="n_random must be >= 1"):
        build_analysis("directions", n_random=0).run(subj, _data())
    skipped = build_analysis("directions", space="z").run(_module_subject(), _data(8, styles=1))
    assert skipped.skipped and "latent" in skipped.skipped


def test_report_section_shows_traversals_effects_and_agreement():
    import plotly.graph_objects as go
    from interp_gan.reporting.section_directions import directions_section
    from interp_gan.reporting.sections import ImageGrid, ReportContext, Table, get_section
    subj, _, _ = _planted_subject()
    f = build_analysis("directions", methods=("pca", "random"), n_samples=64, n_directions=3, n_images=8,
                       n_boot=50, n_perm=50, steps=(-2, 0, 2)).run(subj, _data(8))
    assert get_section("directions") is directions_section
    sec = directions_section(f, ReportContext(style_names=subj.style_names))
    grids = [b for b in sec.blocks if isinstance(b, ImageGrid)]
    assert len(grids) == 1 and grids[0].images.shape == (4 * 3, 16, 16, 3)   # 2 per method x 3 steps
    assert set(sec.figures) == {"directions_effects", "directions_agreement"}
    bars = sec.figures["directions_effects"]
    assert isinstance(bars, go.Figure) and {t.name for t in bars.data} >= {"pca", "random (19)"}
    assert [t.type for t in bars.data] == ["bar", "scatter", "box"] and len(bars.data[2].y) == 19   # every random
    df = f.tables["directions"]
    assert np.allclose(bars.data[1].y, df.loc[df.method == "pca", "random_p95"])   # matched baselines' 95th pct
    assert "log-odds" in bars.layout.yaxis.title.text
    head = sec.blocks[0]                                   # the claim, then the traversals, then the bars
    k = int((df.loc[df.method == "pca", "q_random"] <= 0.05).sum())
    floor = int((df.loc[df.method == "pca", "p_random"] <= 0.05 + 1e-12).sum())
    assert (f"{k} of 3 discovered" in head) if k else (f"{floor} of 3 discovered" in head and "Not resolved" in head
                                                       if floor else "none of 3 moves the style classifier more than" in head)
    assert "floor 0.0500" in head and sec.claims[0].survives == (k > 0)
    assert isinstance(sec.blocks[1], ImageGrid) and sec.blocks[2] is bars
    assert sec.figures["directions_agreement"].data[0].z.shape == (6, 6)   # 3 pca + the first 3 random
    assert any(isinstance(b, Table) for b in sec.blocks) and "How to read" in sec.blocks[-1]
    assert "same Euclidean step" in sec.blocks[-1] and "not evidence that a direction is special" in sec.blocks[-1]
    skipped = directions_section(Finding.skip("directions", "no <latent>"), ReportContext())
    assert "no &lt;latent&gt;" in skipped.blocks[0]


def test_effect_is_cross_fitted_so_choosing_the_style_does_not_inflate_it():
    """Five styles, directions with no effect on average (each image's change is symmetric noise
    around 0): picking the largest of five mean changes and measuring it on the same images is
    biased upward by about 1.2 standard errors; the cross-fitted effect is not. A planted change
    on one style is measured at its size, with that style picked by both halves."""

    d = Directions(n_boot=200, n_perm=200)
    names = [f"s{k}" for k in range(5)]
    rng = np.random.default_rng(0)
    n, reps = 16, 300
    p0 = torch.full((n, 5), 0.2, dtype=torch.float64)
    crossfit, naive = [], []
    for r in range(reps):
        noise = rng.normal(0, 0.05, (n, 5))
        noise -= noise.mean(1, keepdims=True)                     # probabilities still sum to 1
        eff = d._effect(p0, p0 + torch.from_numpy(noise), names, seed=r)
        crossfit.append(eff["effect"])
        naive.append(noise.mean(0).max())
    se = 0.05 * np.sqrt(4 / 5) / np.sqrt(n)                       # sd of one style's mean change
    crossfit, naive = np.array(crossfit), np.array(naive)
    assert naive.mean() > 0.8 * se                                # the bias that was there
    assert abs(crossfit.mean()) < 3 * crossfit.std() / np.sqrt(reps)   # unbiased: mean 0 within 3 SE
    planted = rng.normal(0, 0.05, (n, 5))
    planted -= planted.mean(1, keepdims=True)
    planted[:, 2] += 0.2
    planted[:, [0, 1, 3, 4]] -= 0.05
    eff = d._effect(p0, p0 + torch.from_numpy(planted), names, seed=0)
    assert eff["style"] == "s2" and eff["style_agree"]
    assert eff["ci_low"] < 0.2 < eff["ci_high"] and eff["p_value"] < 0.01


def test_a_model_nobody_configured_gets_the_default_activation_layer_not_an_error():
    """A plain content -> image module (no latent style space, no layer given): directions run in
    the activation space of the default unit layer (the middle conv) and say so in a note."""
    from interp_gan.analyses.base import AnalysisData, build_analysis
    from interp_gan.subject.protocol import Subject

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1),
                              torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1), torch.nn.Tanh())
    data = AnalysisData(torch.rand(16, 3, 16, 16) * 2 - 1, torch.zeros(16, dtype=torch.long), batch_size=8)
    f = build_analysis("directions", methods=("pca", "random"), n_samples=16, n_directions=2, n_random=2,
                       n_images=8, n_boot=20).run(Subject.from_module(net), data)
    assert f.skipped is None and len(f.tables["directions"])
    assert any("layer '2', chosen by default" in n for n in f.notes)


def test_provenance_names_the_analysis_data_not_the_training_data(tiny_subject, tiny_data):
    # a checkpoint's metadata carries the training data's fingerprint; the Finding must carry the
    # analysis data's, or `interp-gan report` refuses the report as mixing data (found by --over-steps)
    from interp_gan.analyses.base import build_analysis

    tiny_subject.meta = {**tiny_subject.meta, "data_fingerprint": "the-training-data"}
    f = build_analysis("directions", **build_analysis("directions").fast).run(tiny_subject, tiny_data)
    assert f.provenance["data_fingerprint"] == tiny_data.fingerprint == "tiny"
