"""A subject that came without the independent style classifiers gets them trained on the data's
real images of its styles (pipeline.attach_classifiers); when that cannot be done, the reason."""
import torch

from interp_gan.analyses.base import AnalysisData
from interp_gan.pipeline import attach_classifiers
from interp_gan.subject import Subject


def _subject(names):
    return Subject.from_module(torch.nn.Conv2d(3, 3, 1), style_names=names)


def _data(labels, seed=0):
    """Style k's real images are flat colour k plus noise: separable by colour, planted."""
    g = torch.Generator().manual_seed(seed)
    colours = torch.tensor([[0.8, -0.8, -0.8], [-0.8, -0.8, 0.8], [-0.8, 0.8, -0.8]])
    labels = torch.tensor(labels)
    style = colours[labels][:, :, None, None] + 0.1 * torch.randn(len(labels), 3, 16, 16, generator=g)
    return AnalysisData(content=torch.zeros(4, 3, 16, 16), style_ids=torch.zeros(4, dtype=torch.long),
                        style_images=style.clamp(-1, 1), style_labels=labels, fingerprint=f"planted-{seed}")


def test_planted_colour_styles_are_classified_and_the_accuracy_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_GAN_CACHE", str(tmp_path))
    s = attach_classifiers(_subject(["red", "blue", "green"]), _data([0, 1, 2] * 10), image_size=16)
    assert s.classifier is not None and s.texture_classifier is not None
    info = s.meta["analysis_classifiers"]
    assert info["rgb"] == 1.0 and info["held_out"] == 6
    x = _data([2, 0, 1], seed=1).style_images
    assert s.classifier(x).argmax(1).tolist() == [2, 0, 1]


def test_a_style_without_two_real_images_gets_no_classifier_and_a_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_GAN_CACHE", str(tmp_path))
    s = attach_classifiers(_subject(["red", "blue", "green"]), _data([0, 1] * 10 + [2]), image_size=16)
    assert s.classifier is None
    assert "1 of 3 styles have fewer than 2 real images" in s.meta["classifiers_missing"]
    assert "green" in s.meta["classifiers_missing"]
    s = attach_classifiers(_subject(["output"]), _data([0] * 4), image_size=16)
    assert s.classifier is None and "one style" in s.meta["classifiers_missing"]


def test_no_training_is_announced_when_none_can_be_trained(tmp_path, monkeypatch, capsys):
    """A one-style model (fast neural style, CUT, ...) printed "training on the real style images (minutes
    ...)" and then, at once, "no independent style classifiers: one style only": only the reason now."""
    monkeypatch.setenv("INTERP_GAN_CACHE", str(tmp_path))
    attach_classifiers(_subject(["translated"]), _data([0] * 4), image_size=16)
    out = capsys.readouterr().out
    assert "training" not in out and "no independent style classifiers: one style only" in out


def test_classifiers_no_better_than_chance_are_said(tmp_path, monkeypatch, capsys):
    """Two real images per style gave 'held-out accuracy rgb 0.500, texture 0.500 (2 images, 2 styles)' and
    the style analyses went on judging with them, unsaid; now a warning and a model note say so. The
    classifiers' training is replaced here by its result: the rule under test is the chance line."""
    import interp_gan.training.classifiers as tc

    monkeypatch.setenv("INTERP_GAN_CACHE", str(tmp_path))
    clf = {"rgb": torch.nn.Identity(), "texture": torch.nn.Identity()}
    for acc, said in ((0.5, True), (0.75, False)):
        monkeypatch.setattr(tc, "classifiers_for_styles",
                            lambda *a, acc=acc, **k: (clf, {"rgb": acc, "texture": 0.5, "held_out": 2}))
        s = attach_classifiers(_subject(["red", "blue"]), _data([0, 1] * 2), image_size=16)
        out = capsys.readouterr().out
        notes = s.meta.get("model_notes") or []
        assert ("no better than chance (0.5: rgb 0.5, texture 0.5 on 2 images)" in out) == said, out
        assert any("no better than chance" in n for n in notes) == said
