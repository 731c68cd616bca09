"""The Subject: the model behind one small protocol that every analysis receives.

    subject = Subject.from_stylenet(G, style_names=["mosaic", "brick"], classifier=clf)
    img = subject.generate(content, style_ids)            # [N,3,H,W] in [-1,1]
    code = subject.style_code(style_ids, z)               # [N,D] (None-capable: see has_latent)
    img = subject.stylize_code(content, code)
    ref = subject.encode_style(style_images, style_ids)    # [N,D], when it has a style encoder

    subject = Subject.from_module(my_cyclegan)            # any nn.Module content -> image

``generator`` is the nn.Module whose ``named_modules()`` names the layers that hooks address.
Capabilities a subject may lack: a latent style space (``has_latent``), a discriminator, the
independent style classifiers. Analyses that need a missing one return
``Finding.skip(...)`` with the reason instead of raising (docs/architecture.md).

Content: ``generate`` always receives content images, but a subject may ignore them. An
unconditional (or class-conditional) GAN such as StyleGAN2 synthesises from its latent alone, as
in GAN Dissection (Bau et al., ICLR 2019): its images are a function of the seeded ``z`` (and the
class, via ``style_ids``), and ``uses_content`` is False. Analyses that read content pixels
(attribution to the input image) skip such a subject with that reason; the others run on the
generated images as usual (``interp_gan.subject.stylegan``).
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field, fields
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from interp_gan.subject.control import Redraw, redraw

__all__ = ["Subject"]


@dataclass
class Subject:
    generator: nn.Module
    style_names: list[str]
    _generate: Callable[[Tensor, Tensor, Tensor | None], Tensor]
    _style_code: Callable[[Tensor, Tensor], Tensor] | None = None
    _stylize_code: Callable[[Tensor, Tensor], Tensor] | None = None
    _encode_style: Callable[[Tensor, Tensor], Tensor] | None = None   # style image, id -> code (reference-guided)
    latent_dim: int = 0
    style_dim: int = 0
    discriminator: nn.Module | None = None
    classifier: nn.Module | None = None           # independent RGB style classifier, image -> logits
    texture_classifier: nn.Module | None = None   # independent colour-blind one
    feature_net: nn.Module | None = None          # the style loss's feature network f (Gram features)
    meta: dict = field(default_factory=dict)      # checkpoint metadata (sha256, config, ...)
    uses_content: bool = True                     # False: generate() ignores content (a GAN sampling from z)
    # inside ``random_init``: what the re-draw kept trained (``control.Redraw``); None outside it
    random_init_report: Redraw | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # An in-place activation (nn.ReLU(inplace=True), as CycleGAN-style code writes it) would
        # overwrite the output of the layer before it while a hook still holds that tensor: the
        # statistics would be of the activation, not of the hooked layer. Out of place, the values
        # are the same and every hook reads what its layer wrote (``Trace.output`` checks the rest).
        for net in (self.generator, self.discriminator):
            for m in (net.modules() if isinstance(net, nn.Module) else ()):
                if getattr(m, "inplace", None) is True:
                    m.inplace = False

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def from_stylenet(cls, G: nn.Module, style_names: list[str], **kw) -> "Subject":
        if len(style_names) != G.num_styles:
            raise ValueError(f"got {len(style_names)} style names for a generator with {G.num_styles} styles")
        if "_encode_style" not in kw:     # a style encoder, when the model has one (StarGAN v2's reference path)
            kw["_encode_style"] = getattr(G, "encode_style", None) or (
                G.style_encoder if getattr(G, "style_encoder", None) is not None else None)
        return cls(generator=G, style_names=list(style_names),
                   _generate=lambda c, s, z=None: G.generate(c, s, z),
                   _style_code=lambda s, z: G.mapping(z, s),
                   _stylize_code=lambda c, code: G(c, code),
                   latent_dim=G.latent_dim, style_dim=G.style_dim, **kw)

    @classmethod
    def from_module(cls, module: nn.Module, style_names: list[str] | None = None, **kw) -> "Subject":
        """Any nn.Module mapping content -> image, read by the rules of ``--model file.py:factory``
        (``subject/factory.py``: eval mode, float32, the image picked from a tuple / dict, channels,
        value range, size; each decision in ``meta["model_notes"]``), so the Python API and the CLI give
        the same subject; one style, no latent. ``style_names`` names it; other keywords are set on the
        subject (``meta`` is merged into the one the rules write)."""
        from interp_gan.subject.factory import module_subject

        p = next(module.parameters(), None)
        subject = module_subject(module, f"Subject.from_module({type(module).__name__})",
                                 p.device if p is not None else torch.device("cpu"))
        subject.style_names = list(style_names or subject.style_names)
        meta = kw.pop("meta", None)
        if meta:
            subject.meta = {**subject.meta, **meta}
        unknown = sorted(set(kw) - {f.name for f in fields(cls) if f.init})
        if unknown:
            raise TypeError(f"Subject.from_module got unexpected keyword(s) {unknown}")
        for k, v in kw.items():
            setattr(subject, k, v)
        subject.__post_init__()      # in-place activations of a discriminator given here too
        return subject

    @classmethod
    def wrap_module(cls, module: nn.Module, style_names: list[str] | None = None, **kw) -> "Subject":
        """A module whose contract is known already (a loader's own network: content and output in
        [-1, 1], [N,3,H,W]) called as it is, with no reading rules and no extra probe call (an analysis
        run from Python does not probe its layers' layouts; the pipeline does); one style, no latent."""
        kw["meta"] = {"called_as_is": True, **(kw.get("meta") or {})}   # no layer probe call on first use
        return cls(generator=module, style_names=list(style_names or ["output"]),
                   _generate=lambda c, s, z=None: module(c), **kw)

    # --- capabilities -----------------------------------------------------------------------
    @property
    def num_styles(self) -> int:
        return len(self.style_names)

    @property
    def has_latent(self) -> bool:
        return self._style_code is not None and self._stylize_code is not None

    @property
    def has_style_encoder(self) -> bool:
        return self._encode_style is not None

    @property
    def device(self) -> torch.device:
        p = next(self.generator.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def eval(self) -> "Subject":
        for m in (self.generator, self.discriminator, self.classifier, self.texture_classifier, self.feature_net):
            if m is not None:
                m.eval()
        return self

    # --- the protocol -------------------------------------------------------------------------
    def check_style_ids(self, style_ids: Tensor) -> None:
        if len(style_ids) and (int(style_ids.min()) < 0 or int(style_ids.max()) >= self.num_styles):
            raise ValueError(f"style ids must be in 0..{self.num_styles - 1} ({', '.join(self.style_names)}); "
                             f"got {style_ids.tolist()[:8]}")

    def sample_z(self, n: int, seed: int = 0) -> Tensor:
        """Seeded z ~ N(0, I) [n, latent_dim] on the subject's device. A subject whose style code
        needs no noise (latent_dim 0, e.g. StarGAN's domain labels) gets an empty [n, 0]."""
        if not self.latent_dim:
            if self.has_latent:
                return torch.zeros(n, 0, device=self.device)
            raise ValueError("this subject has no latent z (it is not a stylenet-like model)")
        g = torch.Generator().manual_seed(seed)
        return torch.randn(n, self.latent_dim, generator=g).to(self.device)

    def generate(self, content: Tensor, style_ids: Tensor, z: Tensor | None = None) -> Tensor:
        """content [N,3,H,W] in [-1,1], style_ids [N] -> image [N,3,H,W] in [-1,1]."""
        self.check_style_ids(style_ids)
        return self._generate(content, style_ids, z)

    def style_code(self, style_ids: Tensor, z: Tensor) -> Tensor:
        if self._style_code is None:
            raise ValueError("this subject has no latent style space; use a layer's activation space instead")
        self.check_style_ids(style_ids)
        return self._style_code(style_ids, z)

    def encode_style(self, style_images: Tensor, style_ids: Tensor) -> Tensor:
        """Reference-guided style codes: style images [N,3,H,W] in [-1,1] of styles [N] -> [N, D]
        (StarGAN v2's style encoder), in the same space as ``style_code``."""
        if self._encode_style is None:
            raise ValueError("this subject has no style encoder (no reference-guided style codes)")
        self.check_style_ids(style_ids)
        return self._encode_style(style_images, style_ids)

    def stylize_code(self, content: Tensor, code: Tensor) -> Tensor:
        if self._stylize_code is None:
            raise ValueError("this subject has no latent style space; use a layer's activation space instead")
        return self._stylize_code(content, code)

    # --- controls -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def random_init(self, seed: int = 0) -> Iterator["Subject"]:
        """This subject with its generator re-drawn at random initialisation, restored on exit.

            with subject.random_init(seed=0) as control:
                control_finding = Dissection(...).run(control, data)
                notes = control.random_init_report.notes()     # what stayed trained, if anything

        The random-init control of a unit analysis: a trained model's labels only mean something
        next to the rate an untrained network of the same architecture reaches (same layers, same
        unit names, same data). The generator is put back to its initialisation, seeded
        (``interp_gan.subject.control.redraw``: every module's ``reset_parameters``, learned
        buffers included, and the learned tables a module declares); the weights are swapped in
        place (so every hook and every protocol callable, which close over the generator, see
        them) and the trained ones come back when the block ends, also when it raises.
        Classifiers, discriminator and feature net are left trained: they are the measuring
        instruments, not the subject; so are the networks a generator names in ``auxiliary_modules``
        (StarGAN v2's face-landmark network, which computes its w_hpf masks). A float parameter or buffer nothing can re-draw (a bare
        ``nn.Parameter`` of a custom module, a buffer no reset touches) keeps its trained value:
        ``random_init_report.kept`` names it and a ``UserWarning`` says so, since the control is
        then only partly random.
        """
        G = self.generator
        saved = {k: v.detach().clone() for k, v in G.state_dict().items()}
        devices = [d for d in {p.device for p in G.parameters()} if d.type == "cuda"]
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                report = redraw(G, seed, saved)
            if report.kept:
                kept = list(report.kept)
                warnings.warn(f"random-init control: {len(kept)} trained tensor(s) ({sum(report.kept.values())} "
                              f"values) cannot be re-drawn and keep their trained values ({', '.join(kept[:5])}"
                              f"{' ...' if len(kept) > 5 else ''})", stacklevel=3)
            self.random_init_report = report
            yield self
        finally:
            self.random_init_report = None
            with torch.no_grad():
                G.load_state_dict(saved)
