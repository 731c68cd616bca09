"""What the ``--model file.py:factory`` tests share: a researcher's model file written to disk and
loaded by name, seeded content images, and a generation without gradient."""
from __future__ import annotations

import torch

from interp_gan.subject.loading import load_subject


def loader(tmp_path, source: str, filename: str):
    """Writes ``source`` to ``tmp_path / filename``; returns name -> the Subject of ``file.py:name``."""
    f = tmp_path / filename
    f.write_text(source)
    return lambda name: load_subject(f"{f}:{name}", device="cpu")


def images(n: int = 2, size: int = 16) -> torch.Tensor:
    """``n`` seeded content images in [-1, 1]."""
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1


def generate(s, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return s.generate(x, torch.zeros(len(x), dtype=torch.long))
