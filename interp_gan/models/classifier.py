"""Independent style classifiers used for evaluation (never D's own head).

    clf = StyleClassifier(num_styles=4, mode="texture")
    logits = clf(image)        # image [N,3,H,W] in [-1,1] -> [N, num_styles]

``mode="rgb"`` sees colour. ``mode="texture"`` is colour-blind: it converts to grayscale and
normalises each image's brightness and contrast (zero mean, unit std) before the trunk, so
a palette shift alone cannot fool it. Both are trained only on real style images.
"""
from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from interp_gan.models.registry import register_model

__all__ = ["StyleClassifier", "texture_view"]


def texture_view(image: Tensor) -> Tensor:
    """[N,3,H,W] -> [N,1,H,W]: luminance with per-image zero mean and unit std."""
    gray = (0.299 * image[:, 0] + 0.587 * image[:, 1] + 0.114 * image[:, 2])[:, None]
    mean = gray.mean(dim=(2, 3), keepdim=True)
    std = gray.std(dim=(2, 3), keepdim=True).clamp_min(1e-3)
    return (gray - mean) / std


@register_model("style_classifier")
class StyleClassifier(nn.Module):
    def __init__(self, num_styles: int, mode: Literal["rgb", "texture"] = "rgb", ch: int = 32) -> None:
        super().__init__()
        if mode not in ("rgb", "texture"):
            raise ValueError(f"mode must be 'rgb' or 'texture', got {mode!r}")
        self.num_styles, self.mode = num_styles, mode
        cin = 3 if mode == "rgb" else 1
        self.features = nn.Sequential(
            nn.Conv2d(cin, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(ch, 2 * ch, 3, padding=1), nn.BatchNorm2d(2 * ch), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * ch, 4 * ch, 3, padding=1), nn.BatchNorm2d(4 * ch), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4 * ch, 4 * ch, 3, padding=1), nn.BatchNorm2d(4 * ch), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4 * ch, num_styles)

    def forward(self, image: Tensor) -> Tensor:
        x = texture_view(image) if self.mode == "texture" else image
        return self.head(self.pool(self.features(x)).flatten(1))
