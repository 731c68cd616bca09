import math

import pytest
import torch

from interp_gan.models import RandomFeatureNet, high_pass
from interp_gan.training import losses as L


def test_nonsaturating_values_at_known_logits():
    z = torch.zeros(4)
    assert L.adversarial_d(z, z) == pytest.approx(2 * math.log(2))
    assert L.adversarial_g(z) == pytest.approx(math.log(2))
    # a confident, correct D costs ~0; the non-saturating G loss stays large when D wins
    assert L.adversarial_d(torch.full((4,), 20.0), torch.full((4,), -20.0)) < 1e-8
    assert L.adversarial_g(torch.full((4,), -20.0)) == pytest.approx(20.0, rel=1e-6)


def test_hinge_and_lsgan_values():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5])
    assert L.adversarial_d(real, fake, "hinge") == pytest.approx((0 + 1) / 2 + (0 + 1.5) / 2)
    assert L.adversarial_g(fake, "hinge") == pytest.approx(0.75)
    assert L.adversarial_d(real, fake, "lsgan") == pytest.approx((1 + 1) / 2 + (4 + 0.25) / 2)
    assert L.adversarial_g(fake, "lsgan") == pytest.approx((9 + 0.25) / 2)
    with pytest.raises(ValueError, match="expected one of"):
        L.adversarial_g(fake, "wasserstein")


def test_r1_is_zero_for_constant_d_and_norm_of_weights_for_linear_d():
    x = torch.randn(3, 3, 8, 8)
    assert L.r1_penalty(lambda im: torch.full((len(im),), 0.7), x) == 0
    assert L.r1_penalty(lambda im: im.sum(dim=(1, 2, 3)) * 0 + 1.0, x) == 0
    w = torch.randn(3, 8, 8)
    r1 = L.r1_penalty(lambda im: (im * w).sum(dim=(1, 2, 3)), x)
    assert r1 == pytest.approx(float((w ** 2).sum()), rel=1e-5)


def test_style_targets_are_per_style_means_and_hp_gram_ignores_palette():
    torch.manual_seed(0)
    f = RandomFeatureNet(seed=3, channels=(4, 8))
    imgs = torch.rand(6, 3, 16, 16) * 2 - 1
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    T = L.style_targets(f, imgs, labels, 3, batch_size=4)   # batches cross style boundaries
    want = [(g[2:5].mean(0)) for g in f.grams(imgs)]
    for t, w in zip(T.full, want):
        torch.testing.assert_close(t[1], w)
    # the only image of style 2 matches its target exactly
    full, hp = L.style_loss(f, imgs[5:6], torch.tensor([2]), T)
    assert float(full) < 1e-10 and float(hp) < 1e-10
    # a palette shift moves the full-image Gram but not the high-passed one
    shifted = imgs[5:6] + torch.tensor([0.3, -0.2, 0.1])[None, :, None, None]
    full_s, hp_s = L.style_loss(f, shifted, torch.tensor([2]), T)
    assert float(full_s) > 1e-4 and float(hp_s) < 1e-10
    torch.testing.assert_close(high_pass(shifted), high_pass(imgs[5:6]))


def test_style_targets_need_every_style():
    f = RandomFeatureNet(seed=3, channels=(4,))
    with pytest.raises(ValueError, match=r"style id\(s\) \[1\]"):
        L.style_targets(f, torch.zeros(2, 3, 8, 8), torch.tensor([0, 2]), 3)


def test_content_loss_zero_on_itself_positive_otherwise_and_cls_loss():
    f = RandomFeatureNet(seed=3, channels=(4, 8, 8))
    a = torch.rand(2, 3, 16, 16) * 2 - 1
    assert float(L.content_loss(f, a, a)) == 0
    assert float(L.content_loss(f, a.flip(-1), a)) > 1e-3
    logits = torch.tensor([[10.0, -10.0], [-10.0, 10.0]])
    assert float(L.style_classification(logits, torch.tensor([0, 1]))) < 1e-6
    assert float(L.style_classification(logits, torch.tensor([1, 0]))) > 10
