"""Multi-task discriminator: a real/fake head per style and a style-classification head.

    D = StyleDiscriminator(num_styles=4)
    adv, cls = D(image)      # adv [N, num_styles] (one real/fake logit per style), cls [N, num_styles]
    adv_k = D.adv_logit(image, style_ids)   # [N], the head of each image's own style

StarGAN v1 (Choi et al. 2018) / AC-GAN (Odena et al. 2017): "the discriminator outputs the
style class". The trunk is PatchGAN-like (Isola et al. 2017); the real/fake heads average
their patch logits so each image gets one logit per style.
"""
from __future__ import annotations

from torch import Tensor, nn

from interp_gan.models.registry import register_model

__all__ = ["StyleDiscriminator"]


@register_model("style_discriminator")
class StyleDiscriminator(nn.Module):
    def __init__(self, num_styles: int, ch: int = 32, n_layers: int = 4) -> None:
        super().__init__()
        self.num_styles = num_styles
        layers: list[nn.Module] = [nn.Conv2d(3, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = ch
        for _ in range(n_layers - 1):
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1), nn.LeakyReLU(0.2)]
            c *= 2
        self.trunk = nn.Sequential(*layers)
        self.adv_head = nn.Conv2d(c, num_styles, 3, padding=1)   # patch real/fake per style
        self.cls_head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_styles))

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        h = self.trunk(image)
        return self.adv_head(h).mean(dim=(2, 3)), self.cls_head(h)

    def adv_logit(self, image: Tensor, style_ids: Tensor) -> Tensor:
        adv, _ = self(image)
        return adv.gather(1, style_ids[:, None]).squeeze(1)

    def style_logits(self, image: Tensor) -> Tensor:
        """The style-classification head alone (a scalar target for attribution)."""
        return self.cls_head(self.trunk(image))
