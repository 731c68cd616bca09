"""Overview analysis on a tiny seeded StyleNet: planted grids, curves, evaluation, section."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from interp_gan.analyses.base import AnalysisData, build_analysis
from interp_gan.util import to_uint8 as to_uint8_hwc
from interp_gan.subject.protocol import Subject
from interp_gan.findings import Finding
from interp_gan.models import StyleClassifier, StyleNet
from interp_gan.reporting import ImageGrid, ReportContext, Section, Table, get_section

NAMES = ["mosaic", "brick", "udnie"]
METRICS = [{"step": 0, "loss_g": 3.0, "loss_d": 1.0, "time": 0.1},
           {"step": 10, "eval/acc_rgb": 0.40, "eval/ssim": 0.7, "eval/feature_frechet": 30.0},
           {"step": 20, "loss_g": 2.0, "loss_d": 1.1, "kind": "train"},
           {"step": 30, "loss_g": 1.5, "eval": {"acc_rgb": 0.90, "acc_texture": 0.6, "n": 64}}]  # as the loop logs


def _subject(meta=None) -> Subject:
    torch.manual_seed(0)
    G = StyleNet(num_styles=3, ch=4, n_down=1, n_blocks=1, style_dim=8, latent_dim=4)
    return Subject.from_stylenet(G, NAMES, classifier=StyleClassifier(3, ch=4), meta=meta or {})


def _data(with_style=True) -> AnalysisData:
    g = torch.Generator().manual_seed(1)
    content = torch.rand(5, 3, 16, 16, generator=g) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0, 2, 0, 0])                 # style 1 has one image only
    # planted: a real style image of style s is a flat image of value (s - 1) / 2 (-0.5, 0, 0.5)
    style_images = ((labels.float() - 1) / 2)[:, None, None, None].expand(7, 3, 16, 16).clone()
    return AnalysisData(content, torch.arange(5) % 3, style_images=style_images if with_style else None,
                        style_labels=labels if with_style else None, fingerprint="fp-test", batch_size=2)


def test_arrays_shapes_and_planted_content():
    sub, data = _subject({"metrics": METRICS, "sha256": "ab" * 32}), _data()
    f = build_analysis("overview", n_images=4, seed=3).run(sub, data)
    a = f.arrays
    assert a["content"].shape == (4, 16, 16, 3) and a["content"].dtype == np.uint8
    assert a["generated"].shape == (3, 4, 16, 16, 3) and a["generated"].dtype == np.uint8
    assert a["real_style"].shape == (3, 4, 16, 16, 3) and a["real_style"].dtype == np.uint8
    assert a["real_style_count"].tolist() == [4, 1, 2]          # capped at n_images
    np.testing.assert_array_equal(a["content"], to_uint8_hwc(data.content[:4]))
    # generated[s, j] is content j toward style s with the seeded z (batching must not reorder)
    z = sub.sample_z(4, seed=3)
    for s in range(3):
        want = to_uint8_hwc(sub.generate(data.content[:4], torch.full((4,), s), z).detach())
        # another batching may round a value the other way (float sums differ in the last bit), never more
        diff = np.abs(a["generated"][s].astype(int) - want.astype(int))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99, (s, diff.max(), (diff > 0).mean())
    assert not np.array_equal(a["generated"][0], a["generated"][1])     # styles differ
    # real style rows hold their own style's images (planted grey levels), padding stays black
    for s, level in enumerate([64, 128, 191]):
        n = a["real_style_count"][s]
        assert np.all(np.abs(a["real_style"][s, :n].astype(int) - level) <= 1), s
        assert np.all(a["real_style"][s, n:] == 0)


def test_tables_metrics_and_last_evaluation():
    meta = {"metrics": METRICS, "classifiers": {"rgb": {"accuracy": 0.97}}}
    f = build_analysis("overview", n_images=2).run(_subject(meta), _data())
    tm = f.tables["training_metrics"]
    assert list(tm.columns) == ["step", "metric", "value"]
    assert set(tm["metric"]) >= {"loss_g", "loss_d", "eval/acc_rgb"} and "kind" not in set(tm["metric"])
    assert tm[(tm.metric == "loss_g")]["value"].tolist() == [3.0, 2.0, 1.5]
    assert tm[(tm.metric == "eval/acc_texture")]["step"].tolist() == [30]
    ev = f.tables["evaluation"].set_index("metric")
    assert ev.loc["acc_rgb", "value"] == 0.90 and ev.loc["acc_rgb", "step"] == 30    # the latest one
    assert ev.loc["ssim", "value"] == 0.7 and ev.loc["feature_frechet", "step"] == 10
    assert ev.loc["acc_texture", "value"] == 0.6
    assert "lum_corr" not in ev.index                                                  # never recorded
    assert ev.loc["classifier_rgb_real_accuracy", "value"] == 0.97
    assert "Not FID" in ev.loc["feature_frechet", "description"]
    parts = f.tables["model_parts"].set_index("part")
    G = _subject().generator
    assert parts.loc["mapping", "parameters"] == sum(p.numel() for p in G.mapping.parameters())
    assert f.tables["model_parts"].query("model == 'generator'")["parameters"].sum() == \
        sum(p.numel() for p in G.parameters())
    card = f.provenance["model_card"]
    assert card["style_names"] == NAMES and card["data_fingerprint"] == "fp-test"
    assert "StyleNet" in card["architecture"]


def test_checkpoint_eval_takes_precedence():
    meta = {"metrics": METRICS, "eval": {"acc_rgb": 0.5}, "step": 99}   # checkpoint meta["eval"] = last eval
    ev = build_analysis("overview", n_images=2).run(_subject(meta), _data()).tables["evaluation"]
    ev = ev.set_index("metric")
    assert ev.loc["acc_rgb", "value"] == 0.5 and ev.loc["acc_rgb", "step"] == 99
    assert ev.loc["acc_texture", "value"] == 0.6 and ev.loc["acc_texture", "step"] == 30


def test_without_metrics_or_style_images():
    f = build_analysis("overview", n_images=10).run(_subject(), _data(with_style=False))
    assert f.skipped is None
    assert f.arrays["generated"].shape[:2] == (3, 5)                   # n capped at the data size
    assert "real_style" not in f.arrays
    assert f.tables["training_metrics"].empty and f.tables["evaluation"].empty
    assert any("metrics" in n for n in f.notes) and any("style images" in n for n in f.notes)
    sec = get_section("overview")(f, ReportContext(style_names=NAMES))
    assert isinstance(sec, Section) and "training_curves" not in sec.figures


def test_bad_n_images():
    with pytest.raises(ValueError, match="n_images"):
        build_analysis("overview", n_images=0).run(_subject(), _data())


def test_section_builds_and_round_trips(tmp_path):
    f = build_analysis("overview", n_images=3).run(_subject({"metrics": METRICS}), _data())
    f = Finding.load(f.save(tmp_path / "overview"))                      # the section reads saved findings
    sec = get_section("overview")(f, ReportContext(style_names=NAMES))
    grids = [b for b in sec.blocks if isinstance(b, ImageGrid)]
    assert len(grids) == 2
    assert grids[0].images.shape == ((1 + 3) * 3, 16, 16, 3) and grids[0].ncols == 3
    assert grids[0].captions[3:6] == ["→ mosaic"] * 3
    assert grids[1].captions[3:6] == ["brick", "(none)", "(none)"]
    fig = sec.figures["training_curves"]
    assert {t.name for t in fig.data} == {"loss_g", "loss_d", "eval/acc_rgb", "eval/acc_texture", "eval/ssim",
                                          "eval/feature_frechet"}                   # 'time' is not a curve
    tables = [b.df for b in sec.blocks if isinstance(b, Table)]
    assert any("description" in t.columns for t in tables)
    card = next(t for t in tables if list(t.columns) == ["field", "value"]).set_index("field")
    assert card.loc["styles (3)", "value"] == "mosaic, brick, udnie"
