"""The losses of the style-transfer GAN (the seed's algorithm, made trainable).

    d_loss = adversarial_d(D.adv_logit(real, s), D.adv_logit(fake.detach(), t), "nonsaturating")
    g_loss = adversarial_g(D.adv_logit(fake, t), "nonsaturating")
    r1 = r1_penalty(lambda x: D.adv_logit(x, s), real)                  # Mescheder et al. 2018
    targets = style_targets(f, style_images, style_labels, num_styles)   # per-style mean Grams
    g_style = style_loss(f, fake, t, targets)                            # full + high-passed Gram

Adversarial losses: the seed's minimax game in its non-saturating form (Goodfellow et al.
2014, §3), hinge (Lim & Ye 2017; Miyato et al. 2018) and least squares (Mao et al. 2017).
Style loss: the seed's ``||f(s) - f(g)||^2`` on Gram matrices of a fixed random feature net
(Gatys et al. 2016; random features: Ustyuzhaninov et al. 2017). On full images the Gram
term mostly matches palette; a second Gram term on ``high_pass`` images (image minus a
blurred copy) matches strokes and texture, which is what a colour-blind classifier sees.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from interp_gan.data.transforms import luminance  # noqa: F401 - here since training began; defined once there
from interp_gan.models.features import RandomFeatureNet, high_pass

__all__ = ["adversarial_d", "adversarial_g", "style_classification", "r1_penalty", "StyleTargets",
           "style_targets", "style_loss", "content_loss", "luminance", "ADV_LOSSES"]

ADV_LOSSES = ("nonsaturating", "hinge", "lsgan")


def _check_kind(kind: str) -> None:
    if kind not in ADV_LOSSES:
        raise ValueError(f"adversarial loss {kind!r} is unknown; expected one of {list(ADV_LOSSES)}")


def adversarial_d(real_logit: Tensor, fake_logit: Tensor, kind: str = "nonsaturating") -> Tensor:
    """Discriminator loss (scalar) from its logits on real [N] and fake [M] images."""
    _check_kind(kind)
    if kind == "nonsaturating":   # -log sigmoid(real) - log(1 - sigmoid(fake))
        return F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean()
    if kind == "hinge":
        return F.relu(1 - real_logit).mean() + F.relu(1 + fake_logit).mean()
    return ((real_logit - 1) ** 2).mean() + (fake_logit ** 2).mean()


def adversarial_g(fake_logit: Tensor, kind: str = "nonsaturating") -> Tensor:
    """Generator loss (scalar) from D's logits on fake images [M]."""
    _check_kind(kind)
    if kind == "nonsaturating":   # -log sigmoid(fake): strong gradients when D wins early
        return F.softplus(-fake_logit).mean()
    if kind == "hinge":
        return -fake_logit.mean()
    return ((fake_logit - 1) ** 2).mean()


def style_classification(cls_logits: Tensor, style_ids: Tensor) -> Tensor:
    """Cross-entropy of D's style head [N,S] against style ids [N] (AC-GAN / StarGAN)."""
    return F.cross_entropy(cls_logits.float(), style_ids)


def r1_penalty(logit_fn: Callable[[Tensor], Tensor], real: Tensor) -> Tensor:
    """R1 = E ||d logit / d real||^2 (Mescheder, Geiger & Nowozin 2018); scale by gamma/2 outside.

    Zero for a discriminator that ignores its input.
    """
    real = real.detach().requires_grad_(True)
    out = logit_fn(real)
    if not out.requires_grad:  # a constant discriminator: no gradient at all
        return real.new_zeros(())
    (grad,) = torch.autograd.grad(out.float().sum(), real, create_graph=True, allow_unused=True)
    if grad is None:  # the logit does not depend on the image at all
        return real.new_zeros(())
    return grad.float().pow(2).flatten(1).sum(1).mean()


# --- style targets and the Gram losses --------------------------------------------------------
class StyleTargets(torch.nn.Module):
    """Per-style mean Gram matrices of real style images: ``full[l]`` and ``hp[l]`` are [S,C_l,C_l].

    The mean over *all* real crops of a style is a stable target (one style's images are
    different photos in the same style, so pairing a fake with one random real image is a noisy
    target), costs nothing per step and needs no resume state: it is recomputed from the data.
    """

    def __init__(self, full: list[Tensor], hp: list[Tensor]) -> None:
        super().__init__()
        self.full = torch.nn.ParameterList([torch.nn.Parameter(g, requires_grad=False) for g in full])
        self.hp = torch.nn.ParameterList([torch.nn.Parameter(g, requires_grad=False) for g in hp])


@torch.no_grad()
def style_targets(f: RandomFeatureNet, style_images: Tensor, style_labels: Tensor, num_styles: int,
                  batch_size: int = 64) -> StyleTargets:
    """Mean Gram (full and high-passed) of ``style_images`` [M,3,H,W] per style label [M]."""
    missing = sorted(set(range(num_styles)) - set(style_labels.tolist()))
    if missing:
        raise ValueError(f"no real style images for style id(s) {missing}; every style needs at least one")
    sums_full: list[Tensor] | None = None
    sums_hp: list[Tensor] | None = None
    for i in range(0, len(style_images), batch_size):
        x = style_images[i:i + batch_size]
        onehot = F.one_hot(style_labels[i:i + batch_size], num_styles).to(x.dtype)  # [B,S]
        gf = [torch.einsum("bs,bij->sij", onehot, g) for g in f.grams(x)]
        gh = [torch.einsum("bs,bij->sij", onehot, g) for g in f.grams(high_pass(x))]
        sums_full = gf if sums_full is None else [a + b for a, b in zip(sums_full, gf)]
        sums_hp = gh if sums_hp is None else [a + b for a, b in zip(sums_hp, gh)]
    counts = torch.bincount(style_labels, minlength=num_styles).to(style_images.dtype)[:, None, None]
    return StyleTargets([s / counts for s in sums_full], [s / counts for s in sums_hp])


def _gram_to_target(f: RandomFeatureNet, image: Tensor, style_ids: Tensor, targets) -> Tensor:
    # Grams of fakes vs the per-style targets; float32 for the squared distances (bf16-safe).
    grams = f.grams(image)
    return sum(((g.float() - t[style_ids].float()) ** 2).flatten(1).sum(1) for g, t in zip(grams, targets))


def style_loss(f: RandomFeatureNet, fake: Tensor, style_ids: Tensor, targets: StyleTargets) -> tuple[Tensor, Tensor]:
    """(full-image Gram loss, high-passed Gram loss), each a scalar mean over the batch."""
    full = _gram_to_target(f, fake, style_ids, list(targets.full)).mean()
    hp = _gram_to_target(f, high_pass(fake), style_ids, list(targets.hp)).mean()
    return full, hp


def content_loss(f: RandomFeatureNet, fake: Tensor, content: Tensor, layer: int = 2) -> Tensor:
    """Content preservation: feature MSE at one layer of f plus MSE of 16x16 luminance.

    The feature term keeps edges and shapes; the luminance term keeps the light/dark layout
    (what ``lum_corr`` measures) while leaving palette and fine texture free to change.
    """
    with torch.no_grad():
        target_feat, target_lum = f(content)[layer].float(), luminance(content).float()
    feat = F.mse_loss(f(fake)[layer].float(), target_feat)
    lum = F.mse_loss(luminance(fake).float(), target_lum)
    return feat + lum
