"""Discriminator dissection: which units of D detect which concepts in the images it judges.

    finding = build_analysis("discriminator_dissection", n_perm=1000).run(subject, data)
    finding.tables["discriminator_dissection_units"]   # layer (D's), unit, concept, iou, ci_low, ci_high, p, q

GAN Dissection (Bau et al., ICLR 2019) labels the generator's units; the same question asked of
the discriminator says what the critic looks at when it calls an image real or fake, and in which
style (the discriminator of a multi-style GAN, StarGAN v2's and ours, judges each style). The
images are the ones D judges in training: the generator's outputs for the analysis content,
toward each target style, and the real style images (each with its style label). Every statistic
is the channel dissection's (``units/dissection.py``): tie-aware regions, a held-out IoU with its
bootstrap CI, the style-stratified image null and the within-image shift null, BH q-values, and the
random-init control, which here re-draws D's weights (a random critic's units also follow colour).

The dissection runs on a Subject whose "generator" is D and whose "generated image" is the input D
sees: the hooks sit on D's layers, the concept masks are computed on the judged images, and
``random_init`` re-initialises D. Nothing else about the Dissection changes.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from interp_gan.analyses.base import AnalysisData, register_analysis
from interp_gan.analyses.cost import Cost, UnitCosts, evenly, measure_unit_costs
from interp_gan.analyses.units.dissection import Dissection
from interp_gan.findings import Finding
from interp_gan.subject.protocol import Subject

__all__ = ["DiscriminatorDissection", "judged_images"]


@torch.no_grad()
def judged_images(subject: Subject, data: AnalysisData) -> tuple[Tensor, Tensor, int]:
    """The images D judges: the generator's outputs for ``data`` (toward ``data.style_ids``) then the
    real style images (at the same size, with their labels). -> (images [N,3,H,W] in [-1,1],
    style ids [N], number of generated images first)."""
    device = subject.device
    fake = []
    for _, content, ids, z in data.batches():
        fake.append(subject.generate(content.to(device), ids.to(device), None if z is None else z.to(device))
                    .float().clamp(-1, 1).cpu())
    images, ids = [torch.cat(fake)], [data.style_ids.cpu()]
    if data.style_images is not None and data.style_labels is not None and len(data.style_images):
        real = data.style_images.float()
        if real.shape[-2:] != images[0].shape[-2:]:
            real = nn.functional.interpolate(real, size=images[0].shape[-2:], mode="bilinear", align_corners=False,
                                             antialias=True)
        images.append(real.clamp(-1, 1).cpu())
        ids.append(data.style_labels.long().cpu())
    return torch.cat(images), torch.cat(ids), len(images[0])


def _critic(D: nn.Module, style_names: list[str]) -> Subject:
    """D as a dissection subject: its layers are hooked while it judges an image, and the image
    it judged is what the concepts are measured on."""
    def judge(images: Tensor, style_ids: Tensor, z: Tensor | None = None) -> Tensor:
        D(images)
        return images
    return Subject(generator=D, style_names=list(style_names), _generate=judge)


@register_analysis(
    "discriminator_dissection", title="Discriminator dissection", order=25,
    references=("bau2019gandissect", "bau2017netdissect", "efron1993bootstrap", "benjamini1995fdr"),
    fast=dict(n_boot=20, n_perm=20))
class DiscriminatorDissection(Dissection):
    """Channel dissection of the discriminator on the images it judges (module docstring); the
    parameters are the channel dissection's, ``layers`` naming D's modules (default: its convs)."""

    def estimate_cost(self, subject, data: AnalysisData, unit: UnitCosts) -> Cost:
        """The generated images (one generator pass), then the channel dissection of D on them and
        the real style images, priced by D's own unit costs (measured here on a few images)."""
        D = subject.discriminator
        if D is None:
            return Cost(skip="the subject has no discriminator")
        n_real = 0 if data.style_images is None else len(data.style_images)
        critic = _critic(D, subject.style_names)
        b = min(len(data), data.batch_size)
        probe = AnalysisData(data.content[:b], data.style_ids[:b], batch_size=b)
        d_unit = measure_unit_costs(critic, probe)
        layers = self._layers(D)
        if not layers:
            return Cost(forwards=len(data), skip="the discriminator has no conv layers and no layers were given")
        sizes, notes = self._sized(critic, d_unit, layers, len(data) + n_real)
        d_cost = self._seconds(critic, d_unit, evenly(layers, sizes["layers"]), sizes["n_images"],
                               sizes["control_draws"])
        return Cost(forwards=len(data), other_s=d_cost.seconds(d_unit) + d_unit.measure_s,
                    notes=notes + [f"D: {d_unit.forward_s * 1e3:.1f} ms per image"])

    def run(self, subject, data: AnalysisData) -> Finding:
        D = subject.discriminator
        if D is None:
            return Finding.skip(self.name, "this subject has no discriminator (none was loaded: an ONNX graph, a "
                                "CycleGAN / pix2pix G or StarGAN's *_nets_ema.ckpt holds none, and U-GAT-IT's are not "
                                "read); dissect the generator instead",
                                self.params())
        images, ids, n_fake = judged_images(subject, data)
        judged = AnalysisData(images, ids, fingerprint=f"{data.fingerprint}+judged", batch_size=data.batch_size)
        finding = super().run(_critic(D, subject.style_names), judged)
        # the judged images are made from ``data`` and the subject: the Finding names the data the
        # report names (`interp-gan report` refuses a finding whose fingerprint is not its report's)
        finding.provenance = {**finding.provenance, "data_fingerprint": data.fingerprint}
        if not finding.skipped:   # tables are named after the analysis: dissection_units.csv stays the generator's
            finding.notes.insert(0, f"Units of the discriminator, on the {len(images)} images it judged: "
                                    f"{n_fake} generated (toward each target style) then {len(images) - n_fake} real "
                                    "style images; 'style:<name>' is the image's target style or real label.")
        return finding
