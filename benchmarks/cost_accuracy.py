"""Estimate vs measured seconds where the cost model was known to miss (docs/scaling.md, "How it
is estimated"): each case builds a small seeded model, prints the estimate (``estimate_cost`` on
``measure_unit_costs``) and the measured time of ``run``, and their ratio.

    PYTHONPATH=. python benchmarks/cost_accuracy.py     # every case (PYTHONPATH: which checkout is measured)
    python benchmarks/cost_accuracy.py --case deep      # one: demo_d, deep, draws, attribution, nulls
    python benchmarks/cost_accuracy.py --case attribution --checkpoint runs/demo/checkpoint.safetensors
    python benchmarks/cost_accuracy.py --profile deep   # and a cProfile of its run (top 25 by cumulative time)

Cases:
- ``demo_d``: discriminator dissection of a demo-sized StyleNet (4 styles, ch 32, 64 px, D ch 32 with
  4 layers; random weights) on 64 content images and 384 real style images, demo.toml's parameters.
- ``deep``: dissection of a plain conv generator of ``--depth`` (160) small conv layers nobody
  configured (every conv layer with a spatial output is dissected), 32 images at 32 px.
- ``draws``: dissection (demo.toml's 4 layers) and style units (its 3) of the demo-sized StyleNet,
  with 1 and with 3 control draws.
- ``nulls``: style units of a small StyleNet (4 styles, ch 16, 32 px) on 256 images, so that the
  p-values' null weighs next to the generator passes: the exact null (N = 256 in 4 styles of 64:
  an untied table of 3.7e8 operations a layer and pass) and, with ``null="permutation"``, 5000
  Monte Carlo shuffles.
- ``attribution``: attribution with demo.toml's parameters on the demo-sized StyleNet with two style
  classifiers of the evaluation architecture (random weights: the shuffled-label copy fits its labels as
  well as they do at its first check), or with ``--checkpoint`` on a trained demo checkpoint, its
  classifiers and demo.toml's embedded data (the run that said 1.6x over).
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

import torch
from torch import nn

import interp_gan.analyses  # noqa: F401
from interp_gan.analyses.base import AnalysisData, build_analysis
from interp_gan.analyses.cost import measure_unit_costs
from interp_gan.models import StyleClassifier, StyleDiscriminator, StyleNet
from interp_gan.subject.protocol import Subject


def demo_subject(seed: int = 0) -> tuple[Subject, AnalysisData]:
    torch.manual_seed(seed)
    G = StyleNet(4, ch=32, n_down=2, n_blocks=4, style_dim=64, latent_dim=16).eval()
    D = StyleDiscriminator(4, ch=32, n_layers=4).eval()
    subject = Subject.from_stylenet(G, ["lite01", "lite03", "lite06", "lite17"], discriminator=D)
    g = torch.Generator().manual_seed(seed)
    n, size = 64, 64
    content = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    real = torch.rand(384, 3, size, size, generator=g) * 2 - 1
    data = AnalysisData(content, torch.arange(n) % 4, z=subject.sample_z(n, seed), style_images=real,
                        style_labels=torch.arange(384) % 4, fingerprint="bench", batch_size=16)
    return subject, data


class Deep(nn.Module):
    """A plain conv generator: ``depth`` 3x3 convs of ``ch`` channels with ReLU, a 1x1 conv to RGB."""

    def __init__(self, depth: int = 160, ch: int = 8) -> None:
        super().__init__()
        layers = [nn.Conv2d(3, ch, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU()]
        layers += [nn.Conv2d(ch, 3, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def null_subject(seed: int = 0) -> tuple[Subject, AnalysisData]:
    """A small StyleNet on 256 images in 4 styles at 32 px (the ``nulls`` case)."""
    torch.manual_seed(seed)
    G = StyleNet(4, ch=16, n_down=2, n_blocks=4, style_dim=32, latent_dim=16).eval()
    subject = Subject.from_stylenet(G, ["lite01", "lite03", "lite06", "lite17"])
    g = torch.Generator().manual_seed(seed)
    n = 256
    content = torch.rand(n, 3, 32, 32, generator=g) * 2 - 1
    return subject, AnalysisData(content, torch.arange(n) % 4, z=subject.sample_z(n, seed), fingerprint="bench",
                                 batch_size=32)


def deep_subject(depth: int, seed: int = 0) -> tuple[Subject, AnalysisData]:
    torch.manual_seed(seed)
    subject = Subject.from_module(Deep(depth).eval())
    g = torch.Generator().manual_seed(seed)
    n, size = 32, 32
    content = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    return subject, AnalysisData(content, torch.zeros(n, dtype=torch.long), fingerprint="bench", batch_size=16)


def measure(label: str, name: str, subject, data, params: dict, profile: bool = False) -> float:
    unit = measure_unit_costs(subject, data)
    analysis = build_analysis(name, **params)
    t0 = time.perf_counter()
    cost = analysis.estimate_cost(subject, data, unit)
    est_call = time.perf_counter() - t0
    est = cost.seconds(unit)
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    analysis.run(subject, data)
    if prof:
        prof.disable()
    took = time.perf_counter() - t0
    print(f"{label:40} estimated {est:7.1f} s  took {took:7.1f} s  ratio {took / est:5.2f}  "
          f"(forward {unit.forward_s * 1e3:.2f} ms/img, estimate_cost itself {est_call:.1f} s)", flush=True)
    print(f"    region {unit.region_s * 1e9:.1f} ns, shift {getattr(unit, 'shift_s', 0) * 1e9:.1f} ns, cross {getattr(unit, 'cross_s', 0) * 1e12:.0f} ps, "
          f"gather {unit.null_s * 1e12:.0f} ps, sketch {unit.sketch_s * 1e9:.1f} ns, "
          f"layer {getattr(unit, 'layer_s', 0) * 1e3:.1f} ms; " + "; ".join(cost.notes)[:300], flush=True)
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    return took / est


def attribution_subject(checkpoint: str = "") -> tuple[Subject, AnalysisData, dict]:
    """(subject, data, demo.toml's attribution parameters): the demo-sized StyleNet with random-weight
    classifiers, or a trained checkpoint read as ``interp-gan analyze`` reads it with demo.toml."""
    from interp_gan.config import load_pipeline
    cfg = load_pipeline("analyses/demo.toml")
    params = next(a.params for a in cfg.analyses if a.name == "attribution")
    if not checkpoint:
        s, d = demo_subject()
        torch.manual_seed(1)
        s.classifier = StyleClassifier(4, mode="rgb", ch=32).eval().requires_grad_(False)
        s.texture_classifier = StyleClassifier(4, mode="texture", ch=32).eval().requires_grad_(False)
        return s, d, params
    from interp_gan import pipeline
    from interp_gan.subject.loading import load_subject
    s = load_subject(checkpoint, device="cpu")
    cfg = pipeline._fit_image_size(s, cfg)
    d = pipeline.analysis_data(s, cfg, cfg.data)
    if s.classifier is None and s.texture_classifier is None:
        pipeline.attach_classifiers(s, d, cfg.image_size)
    return s, d, params


DISSECT = dict(quantile=0.99, iou_threshold=0.04, n_boot=200, n_perm=500)
DEMO_LAYERS = ["blocks.1.conv2", "blocks.3.conv2", "decoder.net.1", "decoder.net.5"]


def main() -> None:
    ap = argparse.ArgumentParser()
    cases = ["demo_d", "deep", "draws", "attribution", "nulls"]
    ap.add_argument("--case", choices=cases + ["all"], default="all")
    ap.add_argument("--profile", choices=cases + [""], default="")
    ap.add_argument("--depth", type=int, default=160)
    ap.add_argument("--checkpoint", default="", help="attribution on this trained demo checkpoint")
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cases = cases if a.case == "all" else [a.case]
    for case in cases:
        prof = a.profile == case
        if case == "demo_d":
            s, d = demo_subject()
            measure("discriminator dissection, demo size", "discriminator_dissection", s, d, DISSECT, prof)
        elif case == "attribution":
            s, d, params = attribution_subject(a.checkpoint)
            measure(f"attribution, demo.toml, {'trained' if a.checkpoint else 'random'} demo model", "attribution",
                    s, d, params, prof)
        elif case == "nulls":
            s, d = null_subject()
            for null in ("exact", "permutation"):
                measure(f"style units, 256 images, {null} null", "style_units", s, d,
                        dict(layers=DEMO_LAYERS[:3], n_boot=20, n_perm=5000, control_draws=1, null=null), prof)
        elif case == "deep":
            s, d = deep_subject(a.depth)
            measure(f"dissection, {a.depth} conv layers", "dissection", s, d,
                    dict(DISSECT, n_boot=20, n_perm=100), prof)
        else:
            s, d = demo_subject()
            for k in (1, 3):
                measure(f"dissection, demo layers, {k} draw(s)", "dissection", s, d,
                        dict(DISSECT, layers=DEMO_LAYERS, control_draws=k), prof)
            for k in (1, 3):
                measure(f"style units, demo layers, {k} draw(s)", "style_units", s, d,
                        dict(layers=DEMO_LAYERS[:3], n_boot=200, n_perm=2000, control_draws=k), prof)


if __name__ == "__main__":
    main()
