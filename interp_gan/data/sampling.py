"""How much of a folder an analysis reads: a seeded sample of its files, chosen before any is decoded.

    load_data(cfg, sample=Sample(content=256, per_style=512, seed=0))

An analysis uses ``n_images`` content photos and, per style, real images to train the two
independent style classifiers on. Decoding a whole folder first (CelebA: 200k photos) would take
minutes and more memory than a machine has, so the files are put in a seeded order (a permutation
of the sorted list: the same seed and folder give the same files) and read in that order until
enough good ones are in hand; bad files met on the way are skipped and counted. A folder holding
no more than is used is read whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["Sample", "seeded_order"]


@dataclass(frozen=True)
class Sample:
    """``content``: content photos to read (in a seeded order, until that many good ones; they are
    returned in that order); ``per_style``: at most this many images of each style (a folder holding
    more is sampled the same way; the ones read are kept in file order); ``seed``: the order's seed."""
    content: int
    per_style: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.content < 1 or self.per_style < 1:
            raise ValueError(f"a data sample needs >= 1 content photo and >= 1 image per style, "
                             f"got content={self.content}, per_style={self.per_style}")


def seeded_order(paths: list[Path], seed: int) -> list[Path]:
    """``paths`` (sorted) in a seeded random order: ``torch.randperm`` with a generator seeded by
    ``seed``, the permutation the pipeline used on decoded images before, now on file names."""
    g = torch.Generator().manual_seed(int(seed))
    return [paths[i] for i in torch.randperm(len(paths), generator=g).tolist()]

