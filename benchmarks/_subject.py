"""The StarGAN-v1-sized subject both benchmarks use (StyleNet ch=64, 6 blocks; 640 traced units)."""
from __future__ import annotations

import argparse

import torch

from interp_gan.analyses.base import AnalysisData
from interp_gan.subject.protocol import Subject
from interp_gan.models.stylenet import StyleNet

# 128 + 256 + 256 = 640 units, as in the peer measurement (measured on the 2-core CPU machine)
LAYERS = ["encoder.3", "blocks.2.conv2", "blocks.5.conv2"]


def build(n: int, size: int, device: str, batch_size: int = 8, seed: int = 0) -> tuple[Subject, AnalysisData]:
    torch.manual_seed(seed)
    G = StyleNet(num_styles=2, ch=64, n_down=2, n_blocks=6).to(device).eval()
    subject = Subject.from_stylenet(G, ["a", "b"])
    g = torch.Generator().manual_seed(seed)
    content = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    data = AnalysisData(content, torch.arange(n) % 2, z=torch.randn(n, G.latent_dim, generator=g),
                        batch_size=batch_size)
    return subject, data


def plain_forward(subject: Subject, data: AnalysisData) -> None:
    with torch.no_grad():
        for _, c, s, z in data.batches():
            subject.generate(c.to(subject.device), s.to(subject.device), z.to(subject.device))
    if subject.device.type == "cuda":
        torch.cuda.synchronize()


def arg_parser(repeats: int) -> argparse.ArgumentParser:
    """The options every benchmark on this subject takes: device, image size, images, batch, repeats."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=repeats)
    return ap
