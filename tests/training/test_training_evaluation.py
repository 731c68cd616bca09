import numpy as np
import pytest
import torch

from interp_gan.models import RandomFeatureNet
from interp_gan.training.classifiers import split_holdout, train_classifiers
from interp_gan.training.evaluation import evaluate, frechet_distance
from interp_gan.training.sampling import centre_crop_batch


class Identity(torch.nn.Module):
    """Returns the content unchanged: content is perfectly kept, no style is transferred."""

    def generate(self, content, style_ids, z=None):
        return content


class PasteRealStyle(torch.nn.Module):
    """Returns a real image of the target style: style is perfectly 'transferred', content lost."""

    def __init__(self, data, size):
        super().__init__()
        self.data, self.size = data, size

    def generate(self, content, style_ids, z=None):
        first = [int(torch.nonzero(self.data.style_labels == s)[k % 3, 0]) for k, s in enumerate(style_ids.tolist())]
        return centre_crop_batch(self.data.style[first], self.size)


@pytest.fixture
def judges(tiny_data):
    return train_classifiers(tiny_data, 16, steps=60, ch=8, batch_size=16, seed=0)


def test_planted_generators_get_the_metrics_they_deserve(tiny_data, judges):
    clfs, acc = judges
    f = RandomFeatureNet(seed=1, channels=(8, 16))
    ident = evaluate(Identity(), tiny_data, clfs, f, n=16, seed=0, image_size=16)
    assert ident["lum_corr"] > 0.999 and ident["ssim"] > 0.999
    paste = evaluate(PasteRealStyle(tiny_data, 16), tiny_data, clfs, f, n=16, seed=0, image_size=16)
    assert paste["acc_rgb"] >= 0.9 and paste["acc_texture"] >= 0.9
    assert paste["acc_texture"] > ident["acc_texture"] + 0.4
    assert paste["lum_corr"] < 0.5 and paste["ssim"] < 0.5
    assert paste["feature_frechet"] < ident["feature_frechet"]   # real style crops look like real style crops
    assert set(ident) == {"n", "acc_rgb", "acc_texture", "ssim", "lum_corr", "feature_frechet"}
    # the held-out accuracy of the classifiers is reported and well above chance on this easy set
    assert acc["rgb"] >= 0.75 and acc["texture"] >= 0.75


def test_classifiers_are_cached_by_fingerprint(tiny_data, judges, tmp_path):
    clfs, acc = judges
    files = list((tmp_path / "cache" / "classifiers").glob("tiny-0-24*.safetensors"))
    assert len(files) == 1
    again, acc2 = train_classifiers(tiny_data, 16, steps=60, ch=8, batch_size=16, seed=0)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    assert acc2 == pytest.approx(acc)
    for k in ("rgb", "texture"):
        torch.testing.assert_close(again[k](x), clfs[k](x), rtol=0, atol=0)
        assert not any(p.requires_grad for p in again[k].parameters())


def test_holdout_split_is_disjoint_and_covers_every_style():
    labels = torch.tensor([0] * 5 + [1] * 2 + [2])
    tr, held = split_holdout(labels, fraction=0.2, seed=0)
    assert set(tr.tolist()).isdisjoint(held.tolist()) and sorted(tr.tolist() + held.tolist()) == list(range(8))
    assert sorted(labels[held].tolist()) == [0, 1]     # style 2 has one image: it stays in training


def test_frechet_distance_planted_values():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-8)
    shifted = a + np.array([2.0, 0, 0])
    assert frechet_distance(a, shifted) == pytest.approx(4.0, rel=1e-6)
    scaled = a * 2     # Tr(S + 4S - 2 * 2S) = Tr(S) ~ 3
    assert frechet_distance(a, scaled) == pytest.approx(3.0, rel=0.1)
