"""Tiny seeded synthetic style data for the training tests (no embedded set, no disk cache)."""
from __future__ import annotations


import pytest
import torch

from interp_gan.config import DataConfig, ModelConfig, Recipe, TrainConfig
from interp_gan.data import StyleData


def _pattern(style: int, size: int, g: torch.Generator) -> torch.Tensor:
    """A grayscale texture per style (stripes h / v / checker / dots) in a random colour."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    phase = int(torch.randint(0, 4, (1,), generator=g))
    if style == 0:
        t = ((y + phase) // 2 % 2).float()
    elif style == 1:
        t = ((x + phase) // 2 % 2).float()
    elif style == 2:
        t = (((x + phase) // 3 + (y // 3)) % 2).float()
    else:
        t = (torch.rand(size, size, generator=g) < 0.15).float()
    colour = torch.rand(3, 1, 1, generator=g) * 1.2 - 0.6
    return (colour + 0.6 * (t[None] - 0.5)).clamp(-1, 1)


def make_tiny_data(num_styles: int = 4, per_style: int = 6, n_content: int = 8, size: int = 24,
                   seed: int = 0) -> StyleData:
    g = torch.Generator().manual_seed(seed)
    # content: smooth blobs (low-frequency random fields)
    low = torch.rand(n_content, 3, 4, 4, generator=g) * 2 - 1
    content = torch.nn.functional.interpolate(low, size=size, mode="bilinear", align_corners=False)
    style = torch.stack([_pattern(s, size, g) for s in range(num_styles) for _ in range(per_style)])
    labels = torch.arange(num_styles).repeat_interleave(per_style)
    return StyleData(content=content, style=style, style_labels=labels,
                     style_names=[f"s{k}" for k in range(num_styles)], fingerprint=f"tiny-{seed}-{size}",
                     source="synthetic")


def tiny_recipe(steps: int = 6, **train) -> Recipe:
    t = dict(steps=steps, batch_size=4, eval_every=1000, eval_images=8, sample_every=1000,
             checkpoint_every=1000, log_every=1, device="cpu", clf_steps=5, clf_ch=4) | train
    return Recipe(name="tiny", data=DataConfig(image_size=16, load_size=24),
                  model=ModelConfig(ch=8, n_down=1, n_blocks=1, style_dim=8, latent_dim=4, d_ch=8, d_layers=2),
                  train=TrainConfig(**t))


@pytest.fixture
def tiny_data() -> StyleData:
    return make_tiny_data()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    # classifiers are cached beside the embedded data: keep test runs out of the user's cache
    monkeypatch.setenv("INTERP_GAN_CACHE", str(tmp_path / "cache"))
    # one thread: on the shared 2-core box, two OpenMP threads of tiny ops mostly wait on each other
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
