"""Scalar targets for attribution: what a Captum method explains.

    targets, skipped = build_targets(subject, data, ["classifier", "generator", "region"],
                                     n_images=4, baseline="blurred", region="center", seed=0)
    t = targets[0]
    IntegratedGradients(t.forward).attribute(t.inputs, t.baselines, target=t.target,
                                             additional_forward_args=t.extra)

Each ``Target`` is a forward function plus the inputs it is attributed to, the per-example
output index (the style) Captum selects, the fixed extra arguments (style ids, z, content)
that Captum repeats alongside the inputs, the baselines, and ``model``: the module the
sanity check re-initialises (the model being explained).

Targets (names used in the ``attribution`` analysis's ``targets`` parameter):
  classifier / texture_classifier   the independent style classifier's logit for the image's
                                    style, on real style images and on generated images
  discriminator                     D's style-head logit (``D.style_logits``), same images
  generator                         the classifier's logit for the target style of
                                    G(content), attributed to the content pixels
  generator_code                    the same score attributed to the style-code dimensions
                                    (``subject.stylize_code``); needs ``subject.has_latent``
  region                            the sum of G(content) over a region mask, to content pixels
Real style images are taken across styles (``balanced_order``), so a few images already cover
several styles. A target the subject cannot provide is returned in ``skipped`` with the reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import torch
import torchvision.transforms.functional as TF
from torch import Tensor, nn

from interp_gan.harvest.hooks import modules_that_fire, spatial_layers

__all__ = ["Target", "build_targets", "available_targets", "make_baseline", "region_mask", "check_style", "balanced_order", "BOXES",
           "TARGET_NAMES", "Baseline"]

Baseline = Literal["black", "blurred", "mean"]
TARGET_NAMES = ("classifier", "texture_classifier", "discriminator", "generator", "generator_code", "region")

# named boxes as (top, bottom, left, right) fractions of the image
BOXES = {"center": (0.25, 0.75, 0.25, 0.75), "top_left": (0, 0.5, 0, 0.5), "top_right": (0, 0.5, 0.5, 1),
         "bottom_left": (0.5, 1, 0, 0.5), "bottom_right": (0.5, 1, 0.5, 1), "top": (0, 0.5, 0, 1),
         "bottom": (0.5, 1, 0, 1), "left": (0, 1, 0, 0.5), "right": (0, 1, 0.5, 1), "all": (0, 1, 0, 1)}


_CONTENT_IGNORED = ("the subject ignores its content input (a GAN that synthesises from z, e.g. StyleGAN2): "
                    "there are no content pixels to attribute to")


@dataclass
class Target:
    name: str                      # one of TARGET_NAMES
    source: str                    # what the inputs are: "real" | "generated" | "content" | "code"
    forward: Callable[..., Tensor]  # forward(inputs, *extra) -> [N, S] logits or [N] scores
    inputs: Tensor                 # [N, 3, H, W] images or [N, D] codes
    baselines: Tensor              # same shape as inputs
    target: Tensor | None          # [N] output index per example (the style) or None for [N] scores
    extra: tuple = ()              # additional_forward_args (repeated by Captum with the inputs)
    model: nn.Module | None = None  # the module the sanity check randomises
    cam_layer: nn.Module | None = None  # last conv of the image model scored (for Grad-CAM maps)
    styles: Tensor | None = None   # [N] style id per example (-1 when there is none)
    images: Tensor | None = None   # [N, 3, H, W] in [-1, 1]: what the map is laid over
    meta: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.name}__{self.source}"


def check_style(style: int | Tensor, num_styles: int, what: str = "style index") -> None:
    """Raise ValueError naming the valid range when a style index is outside 0..num_styles-1."""
    vals = [int(style)] if not isinstance(style, Tensor) else [int(v) for v in style.flatten().tolist()]
    bad = [v for v in vals if v < 0 or v >= num_styles]
    if bad:
        raise ValueError(f"{what} out of range: got {bad[:8]}, expected integers in 0..{num_styles - 1} "
                         f"(the model has {num_styles} styles)")


def balanced_order(labels: Tensor) -> Tensor:
    """Indices of ``labels`` interleaved across labels (first of each style, then the second of
    each, ...), keeping data order within a style: the first k indices cover as many styles as
    k allows. Real style images are stored style by style, so their first k are one style."""
    lab = labels.detach().cpu().long()
    if not len(lab):
        return torch.zeros(0, dtype=torch.long)
    within = torch.zeros_like(lab)
    for s in lab.unique():
        ix = torch.nonzero(lab == s).flatten()
        within[ix] = torch.arange(len(ix))
    key = within * (int(lab.max()) + 1) + lab          # position within its style first, then style
    return torch.argsort(key, stable=True)


def region_mask(region: str | Tensor | np.ndarray, height: int, width: int) -> Tensor:
    """A [H, W] float mask from a named box (``BOXES``) or a mask of exactly that shape."""
    if isinstance(region, str):
        if region not in BOXES:
            raise ValueError(f"unknown region {region!r}; expected a [H,W] mask or one of {sorted(BOXES)}")
        t, b, l, r = BOXES[region]
        m = torch.zeros(height, width)
        m[round(t * height):round(b * height), round(l * width):round(r * width)] = 1.0
        return m
    m = torch.as_tensor(region, dtype=torch.float32)
    if tuple(m.shape) != (height, width):
        raise ValueError(f"region mask has shape {tuple(m.shape)}, expected ({height}, {width}) "
                         f"(the [H,W] of the content images); resize it or pass a named box {sorted(BOXES)}")
    return m


def make_baseline(kind: Baseline, x: Tensor) -> Tensor:
    """The IG/occlusion reference image for x [N,3,H,W] in [-1,1].

    black: all -1; blurred: a Gaussian blur with sigma = max(H,W)/16 (removes texture and
    edges, keeps layout: Sturmfels et al., "Visualizing the Impact of Feature Attribution
    Baselines", Distill 2020); mean: each image's mean colour.
    """
    if kind == "black":
        return torch.full_like(x, -1.0)
    if kind == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).contiguous()
    if kind == "blurred":
        h, w = x.shape[-2:]
        sigma = max(1.0, max(h, w) / 16)
        k = min(2 * math.ceil(3 * sigma) + 1, 2 * ((min(h, w) - 1) // 2) + 1)  # reflect pad < size
        return TF.gaussian_blur(x, kernel_size=[k, k], sigma=[sigma, sigma])
    raise ValueError(f"unknown baseline {kind!r}; expected 'black', 'blurred' or 'mean'")


class _Scored(nn.Module):
    """forward(content, style_ids, z) -> scorer(G(content)): the target-style score of G."""

    def __init__(self, subject, scorer: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.subject, self.scorer = subject, scorer

    def forward(self, content: Tensor, style_ids: Tensor, z: Tensor | None = None) -> Tensor:
        return self.scorer(self.subject.generate(content, style_ids, z))


class _CodeScored(nn.Module):
    """forward(code, content) -> scorer(G(content, code)): attribution to the style code."""

    def __init__(self, subject, scorer: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.subject, self.scorer = subject, scorer

    def forward(self, code: Tensor, content: Tensor) -> Tensor:
        return self.scorer(self.subject.stylize_code(content, code))


class _RegionSum(nn.Module):
    """forward(content, style_ids, z) -> sum of G(content) over the mask: [N]."""

    def __init__(self, subject, mask: Tensor) -> None:
        super().__init__()
        self.subject, self.mask = subject, mask

    def forward(self, content: Tensor, style_ids: Tensor, z: Tensor | None = None) -> Tensor:
        return (self.subject.generate(content, style_ids, z) * self.mask).sum(dim=(1, 2, 3))


def _last_conv(model: nn.Module, call: Callable[[], object]) -> nn.Module | None:
    """The last conv layer of ``model`` that runs during ``call()`` (D's style head skips adv_head)."""
    fired = modules_that_fire(model, spatial_layers(model), call)
    return model.get_submodule(fired[-1]) if fired else None


def _scorers(subject) -> list[tuple[str, nn.Module, Callable[[Tensor], Tensor], str]]:
    """(name, module, image -> logits, why missing) for the image models the subject has."""
    out = []
    for name in ("classifier", "texture_classifier"):
        m = getattr(subject, name)
        out.append((name, m, m, "" if m is not None else f"the subject has no {name}"))
    D = subject.discriminator
    why = "" if D is not None and hasattr(D, "style_logits") else (
        "the subject has no discriminator" if D is None else "the discriminator has no style_logits head")
    out.append(("discriminator", D, getattr(D, "style_logits", None), why))
    return out


def build_targets(subject, data, names, *, n_images: int, baseline: Baseline = "blurred",
                  region: str | Tensor | None = "center", seed: int = 0
                  ) -> tuple[list[Target], list[tuple[str, str]]]:
    """The targets in ``names`` for this subject and data; (targets, [(name, why skipped)])."""
    unknown = [n for n in names if n not in TARGET_NAMES]
    if unknown:
        raise ValueError(f"unknown attribution targets {unknown}; expected some of {list(TARGET_NAMES)}")
    dev = subject.device
    S = subject.num_styles
    n = min(n_images, len(data))
    content = data.content[:n].to(dev)
    style_ids = data.style_ids[:n].to(dev)
    check_style(style_ids, S, "data.style_ids")
    z = None
    if subject.has_latent:
        z = data.z[:n].to(dev) if data.z is not None else subject.sample_z(n, seed)
    real = real_labels = None
    if data.style_images is not None and data.style_labels is not None and len(data.style_images):
        pick = balanced_order(data.style_labels)[:n].to(data.style_labels.device)   # every style, not the first one
        real, real_labels = data.style_images[pick].to(dev), data.style_labels[pick].to(dev)
        check_style(real_labels, S, "data.style_labels")
    with torch.no_grad():
        generated = subject.generate(content, style_ids, z)
    plan, skipped = available_targets(subject, data, names, n_images=n_images, region=region)
    targets: list[Target] = []
    for p in plan:
        name = p["name"]
        if not p["on_generator"]:
            imgs, labels = (real, real_labels) if p["source"] == "real" else (generated, style_ids)
            fn = p["fn"]
            targets.append(Target(name, p["source"], fn, imgs, make_baseline(baseline, imgs), labels,
                                  model=p["model"], cam_layer=_last_conv(p["model"], lambda: fn(imgs[:1])),
                                  styles=labels, images=imgs))
        elif name == "generator":
            score = p["scorer"]
            targets.append(Target(name, "content", _Scored(subject, score), content,
                                  make_baseline(baseline, content), style_ids, (style_ids, z),
                                  model=subject.generator,
                                  cam_layer=_last_conv(p["scorer_model"], lambda: score(generated[:1])),
                                  styles=style_ids, images=content, meta={"scorer": p["scorer_name"]}))
        elif name == "generator_code":
            with torch.no_grad():
                code = subject.style_code(style_ids, z)
                # baseline: the average code over all styles for the same z (a style-neutral code)
                all_codes = torch.stack([subject.style_code(torch.full_like(style_ids, k), z)
                                         for k in range(S)])
            targets.append(Target(name, "code", _CodeScored(subject, p["scorer"]), code,
                                  all_codes.mean(0), style_ids, (content,), model=subject.generator,
                                  styles=style_ids, images=generated, meta={"scorer": p["scorer_name"]}))
        else:                                                     # region
            mask = region_mask(region, *content.shape[-2:]).to(dev)
            targets.append(Target("region", "content", _RegionSum(subject, mask), content,
                                  make_baseline(baseline, content), None, (style_ids, z),
                                  model=subject.generator, styles=style_ids, images=content,
                                  meta={"mask": mask}))
    return targets, skipped


def available_targets(subject, data, names, *, n_images: int, region: str | Tensor | None = "center"
                      ) -> tuple[list[dict], list[tuple[str, str]]]:
    """The plan of ``build_targets``, found without running a model (cost estimates read it too):
    ([{name, source, model, fn, n, on_generator[, scorer, scorer_name, scorer_model]}],
    [(name, why skipped)]), in the order the targets are built. ``fn`` is the image model's
    image -> logits (None for the targets that run the generator); ``scorer`` is what scores the
    generator's image (the generator targets). Every skip decision is made here, once."""
    n = min(n_images, len(data))
    real = data.style_images is not None and data.style_labels is not None and len(data.style_images) > 0
    n_real = min(n_images, len(data.style_images)) if real else 0
    uses_content = getattr(subject, "uses_content", True)
    out: list[dict] = []
    skipped: list[tuple[str, str]] = []
    scorers = {s[0]: s for s in _scorers(subject)}
    for name in ("classifier", "texture_classifier", "discriminator"):
        if name not in names:
            continue
        _, module, fn, why = scorers[name]
        if why:
            skipped.append((name, why))
            continue
        for source, k in (("real", n_real), ("generated", n)):
            if source == "real" and not real:
                skipped.append((f"{name}/{source}", "the data has no labelled real style images"))
                continue
            out.append(dict(name=name, source=source, model=module, fn=fn, n=k, on_generator=False))
    # the generator is scored by the first image model it has: classifier, texture, D
    scorer = next((s for s in scorers.values() if not s[3]), None)
    for name in ("generator", "generator_code"):
        if name not in names:
            continue
        if name == "generator" and not uses_content:
            skipped.append((name, _CONTENT_IGNORED))
        elif scorer is None:
            skipped.append((name, "no classifier or discriminator to score the generated image's style"))
        elif name == "generator_code" and not subject.has_latent:
            skipped.append((name, "the subject has no latent style code (stylize_code)"))
        else:
            out.append(dict(name=name, source="content" if name == "generator" else "code", model=subject.generator,
                            fn=None, n=n, on_generator=True, scorer=scorer[2], scorer_name=scorer[0],
                            scorer_model=scorer[1]))
    if "region" in names:
        if not uses_content:
            skipped.append(("region", _CONTENT_IGNORED))
        elif region is None:
            skipped.append(("region", "no region given (param region: a [H,W] mask or a box name)"))
        else:
            out.append(dict(name="region", source="content", model=subject.generator, fn=None, n=n, on_generator=True))
    return out, skipped
