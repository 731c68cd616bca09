"""StyleGAN2 and StyleGAN3 snapshots as Subjects: the generator of an NVlabs network pickle, rebuilt in
our own modules (``interp_gan.models.stylegan2`` / ``stylegan3``), behind the Subject protocol.

    subject = load_stylegan_pickle("network-snapshot-000400.pkl")            # W space, psi = 1
    subject = load_stylegan_pickle("snap.pkl", space="s", truncation_psi=0.7)
    subject = load_subject("snap.pkl#space=s,psi=0.7")                        # the same, as a spec
    img = subject.generate(content, style_ids, z)      # content is ignored: images come from z
    code = subject.style_code(style_ids, z)            # [N, D] in the chosen space
    img = subject.stylize_code(content, code)          # synthesis from a code (content ignored)

A StyleGAN is not an image-to-image model: it synthesises from a latent, so the content image
is not an input and ``generate`` ignores it (as GAN Dissection does, Bau et al. ICLR 2019): the
images an analysis sees are a function of the seeded z it passes (``data.z``; without z, a
seeded z with seed 0). ``Subject.uses_content`` is False, so analyses that read content pixels
(attribution) skip with that reason. A conditional model (c_dim > 0) has one style per class
(style s feeds the one-hot label e_s); an unconditional one has one style, ``sample``.

Style spaces (``space``): ``"w"`` (default; the mapping output, broadcast to every layer), ``"w+"``
(one w per synthesis input, flattened [N, num_ws * w_dim]), ``"s"`` (StyleSpace: every modulated
layer's affine output concatenated in forward order, Wu, Lischinski & Shechtman, "StyleSpace
Analysis: Disentangled Controls for StyleGAN Image Generation", CVPR 2021). Z is what the
directions analysis calls ``space="z"`` (edit z, map, synthesise). SeFa (Shen & Zhou, CVPR 2021)
factorises the affine weights, which read W: it applies in the ``"w"`` space.

The snapshot's discriminator ``D``, when there is one, is rebuilt too
(``interp_gan.models.stylegan2_discriminator``, loaded strictly) and is ``subject.discriminator``:
``adv_logit(images, style_ids)`` is its realism logit (a conditional D judges each image as its
style's class), and its layers are named for hooks (``b64.conv0``, ``b4.conv``), which is what
``discriminator_dissection`` and ``artifact_units`` need. Noise (``noise_mode``): ``"const"``
(default, the stored maps), ``"random"`` (seeded per-pixel maps, ``noise_seed``, recorded in the
metadata; ``StyleGAN2Generator.set_noise_mode``) or ``"none"``.

A StyleGAN3 (alias-free, configs T and R) pickle gives a ``StyleGAN3Generator``: the same spaces and
options, except that it has no noise inputs (a ``noise`` option other than the default is refused), and
its StyleSpace starts with the Fourier-feature input's 4 transform values (``synthesis.input``).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from interp_gan.subject.nvlabs_pickle import PersistentObject, read_network_pickle
from interp_gan.subject.protocol import Subject
from interp_gan.util import sha256_file

__all__ = ["SPACES", "generator_from_snapshot", "snapshot_config", "stylegan_subject", "load_stylegan_pickle",
           "parse_options", "discriminator_config", "discriminator_from_snapshot"]

SPACES = ("w", "w+", "s")
_Z_SEED = 0
def _is_stylegan3(g: PersistentObject) -> bool:
    """StyleGAN3's synthesis starts from a ``SynthesisInput`` (Fourier features) and its layers track
    ``magnitude_ema_beta`` (a flat Generator kwarg there); its StyleGAN2 config (networks_stylegan2.py) has neither."""
    names = {o.class_name for _, o in g.named_objects()}
    return ("SynthesisInput" in names or "magnitude_ema_beta" in g.init_kwargs
            or "magnitude_ema_beta" in (g.init_kwargs.get("synthesis_kwargs") or {}))


def snapshot_config(g: PersistentObject, path: Path | str = "") -> dict:
    """The ``StyleGAN2Generator`` (or, for a StyleGAN3 pickle, ``StyleGAN3Generator``) keyword arguments
    of a pickled NVlabs ``Generator``."""
    where = f"{path}: " if path else ""
    if g.class_name != "Generator":
        raise ValueError(f"{where}G_ema is a {g.class_name!r}, expected an NVlabs 'Generator'")
    kw = dict(g.init_kwargs)
    if g.init_args:
        raise ValueError(f"{where}the Generator was built with positional arguments {g.init_args!r:.80}; "
                         "expected keyword arguments only (as NVlabs' training code builds it)")
    need = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
    missing = [k for k in need if k not in kw]
    if missing:
        raise ValueError(f"{where}the Generator's init_kwargs lack {missing}; got {sorted(kw)}")
    if _is_stylegan3(g):        # NVlabs' StyleGAN3 Generator takes its synthesis kwargs flat
        from interp_gan.models.stylegan3 import SYNTHESIS_KEYS
        extra = sorted(set(kw) - set(need) - {"mapping_kwargs"} - SYNTHESIS_KEYS)
        if extra:
            raise ValueError(f"{where}the StyleGAN3 Generator has init_kwargs this reader does not know: {extra}; "
                             f"known: {sorted(set(need) | SYNTHESIS_KEYS)} and mapping_kwargs")
        return {k: kw[k] for k in need} | {"mapping_kwargs": dict(kw.get("mapping_kwargs") or {}),
                                            "synthesis_kwargs": {k: kw[k] for k in sorted(SYNTHESIS_KEYS & set(kw))}}
    extra = sorted(set(kw) - set(need) - {"mapping_kwargs", "synthesis_kwargs"})
    if extra:
        raise ValueError(f"{where}the Generator has init_kwargs this reader does not know: {extra}")
    return {k: kw[k] for k in need} | {"mapping_kwargs": dict(kw.get("mapping_kwargs") or {}),
                                        "synthesis_kwargs": dict(kw.get("synthesis_kwargs") or {})}


def generator_from_snapshot(g: PersistentObject, path: Path | str = ""):
    """Our StyleGAN2Generator (or StyleGAN3Generator) with the snapshot's weights (strict: every key,
    every shape; for StyleGAN3 also every layer's stored geometry, ``check_stylegan3_layers``)."""
    from interp_gan.models.stylegan2 import StyleGAN2Generator
    from interp_gan.models.stylegan3 import StyleGAN3Generator

    where = f"{path}: " if path else ""
    sg3 = _is_stylegan3(g)
    cls, kind = (StyleGAN3Generator, "StyleGAN3") if sg3 else (StyleGAN2Generator, "StyleGAN2")
    try:
        from interp_gan.guards import check_model_size
        cfg = snapshot_config(g, path)
        check_model_size(lambda: cls(**cfg), f"{where}the {kind} generator its init_kwargs describe")
        G = cls(**cfg)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}cannot build the {kind} generator ({e})") from None
    _load_strict(G, g.state_dict(), f"{where}G_ema", f"a {kind} generator")
    if sg3:
        from interp_gan.subject.stylegan3_check import check_stylegan3_layers
        check_stylegan3_layers(G, g, where)
    return G.eval().requires_grad_(False)


def discriminator_config(d: PersistentObject, path: Path | str = "") -> dict:
    """The ``StyleGAN2Discriminator`` keyword arguments of a pickled NVlabs ``Discriminator``."""
    from interp_gan.models.stylegan2_discriminator import D_KWARGS

    where = f"{path}: " if path else ""
    if d.class_name != "Discriminator":
        raise ValueError(f"{where}D is a {d.class_name!r}, expected an NVlabs 'Discriminator'")
    if d.init_args:
        raise ValueError(f"{where}the Discriminator was built with positional arguments {d.init_args!r:.80}; "
                         "expected keyword arguments only (as NVlabs' training code builds it)")
    kw = dict(d.init_kwargs)
    missing = [k for k in ("c_dim", "img_resolution", "img_channels") if k not in kw]
    if missing:
        raise ValueError(f"{where}the Discriminator's init_kwargs lack {missing}; got {sorted(kw)}")
    extra = sorted(set(kw) - D_KWARGS)
    if extra:
        raise ValueError(f"{where}the Discriminator has init_kwargs this reader does not know: {extra}")
    return {k: (dict(v or {}) if k.endswith("_kwargs") else v) for k, v in kw.items()}


def discriminator_from_snapshot(d: PersistentObject, path: Path | str = ""):
    """Our StyleGAN2Discriminator with the snapshot's D weights (strict: every key, every shape)."""
    from interp_gan.models.stylegan2_discriminator import StyleGAN2Discriminator

    where = f"{path}: " if path else ""
    try:
        from interp_gan.guards import check_model_size
        cfg = discriminator_config(d, path)
        check_model_size(lambda: StyleGAN2Discriminator(**cfg),
                         f"{where}the StyleGAN2 discriminator its init_kwargs describe")
        D = StyleGAN2Discriminator(**cfg)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}cannot build the StyleGAN2 discriminator ({e})") from None
    _load_strict(D, d.state_dict(), f"{where}D", "a StyleGAN2 discriminator")
    return D.eval().requires_grad_(False)


def _load_strict(model, sd: dict, what: str, kind: str) -> None:
    """load_state_dict(strict=True), with one line naming the keys that have no place (or no value)."""
    ref = model.state_dict()
    missing, unexpected = sorted(set(ref) - set(sd)), sorted(set(sd) - set(ref))
    bad = sorted(k for k in set(ref) & set(sd) if tuple(ref[k].shape) != tuple(sd[k].shape))
    if missing or unexpected or bad:
        raise ValueError(f"{what}'s weights do not match {kind} of its init_kwargs: missing {missing[:4]}, "
                         f"unexpected {unexpected[:4]}, misshapen {bad[:4]}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=True)


_OPTION_NAMES = {"psi": "truncation_psi", "cutoff": "truncation_cutoff", "noise": "noise_mode"}
_OPTIONS = ("space", "truncation_psi", "truncation_cutoff", "noise_mode", "noise_seed")


def parse_options(spec: str) -> tuple[str, dict]:
    """``"snap.pkl#space=s,psi=0.7"`` -> ("snap.pkl", {"space": "s", "truncation_psi": 0.7});
    ``noise=random,noise_seed=3``: seeded random noise (``StyleGAN2Generator.set_noise_mode``)."""
    path, _, opts = str(spec).partition("#")
    out: dict = {}
    for item in filter(None, (o.strip() for o in opts.split(","))):
        k, eq, v = item.partition("=")
        k = _OPTION_NAMES.get(k.strip(), k.strip())
        if not eq or k not in _OPTIONS:
            raise ValueError(f"unknown StyleGAN option {item!r} in {spec!r}; expected space=w|w+|s, psi=<float>, "
                             "cutoff=<int>, noise=const|random|none, noise_seed=<int>")
        try:
            out[k] = float(v) if k == "truncation_psi" else int(v) if k in ("truncation_cutoff", "noise_seed") \
                else v.strip()
        except ValueError:
            raise ValueError(f"StyleGAN option {item!r} in {spec!r}: expected a number after '='") from None
    return path, out


def stylegan_subject(G, space: str = "w", truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                     noise_mode: str = "const", class_names: list[str] | None = None,
                     meta: dict | None = None, noise_seed: int = 0, discriminator=None) -> Subject:
    """A StyleGAN2Generator as a Subject (module docstring): content ignored, codes in ``space``;
    ``discriminator``: the snapshot's rebuilt D (``adv_logit(images, style_ids)``), or None."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    if space == "w" and truncation_cutoff is not None:
        raise ValueError("truncation_cutoff truncates only the first layers' w, so the code is no single w: "
                         "use space='w+' (or drop the cutoff)")
    if not getattr(G, "has_noise", True):
        G.set_noise_mode(noise_mode, noise_seed)       # a StyleGAN3: any noise option is refused there
    if noise_mode != "random" and noise_seed != 0:
        raise ValueError(f"noise_seed applies to noise_mode='random' only (got noise_mode={noise_mode!r})")
    if truncation_psi != 1 and not hasattr(G.mapping, "w_avg"):
        raise ValueError(f"truncation (psi={truncation_psi:g}) needs the average w, and this generator has none "
                         "(an NVlabs pickle with w_avg_beta=None, or a .safetensors converted from a rosinality "
                         "train.py file by an interp_gan older than its w_avg estimate: convert the .pt again): "
                         "use psi=1")
    G.set_noise_mode(noise_mode, noise_seed)
    n_cls = G.c_dim
    names = list(class_names or ([f"class{i}" for i in range(n_cls)] if n_cls else ["sample"]))
    if len(names) != max(n_cls, 1):
        raise ValueError(f"got {len(names)} class names for a StyleGAN with c_dim={n_cls}")
    syn, num_ws, w_dim = G.synthesis, G.num_ws, G.w_dim
    sizes = [a.weight.shape[0] for a in G.style_affines]

    def dev() -> torch.device:
        return next(G.parameters()).device

    def label(style_ids: Tensor) -> Tensor:
        ids = style_ids.to(dev()).long()
        if n_cls:
            return torch.nn.functional.one_hot(ids, n_cls).float()
        return torch.zeros(len(ids), 0, device=dev())

    def latent(n: int, z: Tensor | None) -> Tensor:
        if z is None:
            z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(_Z_SEED))
        return z.to(dev(), torch.float32)

    def ws_of(style_ids: Tensor, z: Tensor | None) -> Tensor:
        return G.mapping(latent(len(style_ids), z), label(style_ids), truncation_psi, truncation_cutoff)

    def out(img: Tensor) -> Tensor:
        return img.clamp(-1, 1)

    def code(style_ids: Tensor, z: Tensor) -> Tensor:
        ws = ws_of(style_ids, z)
        if space == "w":
            return ws[:, 0]
        if space == "w+":
            return ws.flatten(1)
        return torch.cat(syn.styles(ws), dim=1)

    def stylize(content: Tensor, c: Tensor) -> Tensor:
        c = c.to(dev(), torch.float32)
        if space == "w":
            return out(syn(c[:, None].expand(-1, num_ws, -1)))
        if space == "w+":
            return out(syn(c.reshape(len(c), num_ws, w_dim)))
        return out(syn(styles=list(c.split(sizes, dim=1))))

    dim = {"w": w_dim, "w+": num_ws * w_dim, "s": sum(sizes)}[space]
    meta = dict(meta or {})
    meta.update(style_space=space, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                noise_mode=noise_mode if getattr(G, "has_noise", True) else "none (StyleGAN3 has no noise inputs)",
                noise_seed=noise_seed if noise_mode == "random" else None,
                content_input="ignored: a StyleGAN synthesises from z (seeded); "
                                                     "the content image is not an input",
                style_layers=G.style_layer_names(), style_layer_sizes=sizes)
    return Subject(generator=G, style_names=names,
                   _generate=lambda c, s, z=None: out(syn(ws_of(s, z))),
                   _style_code=code, _stylize_code=stylize, latent_dim=G.z_dim, style_dim=dim,
                   uses_content=False, meta=meta, discriminator=discriminator).eval()


def snapshot_meta(path: Path, G, snap: dict, D=None) -> dict:
    """What the report and ``convert`` say about a snapshot."""
    cfg = G.config
    sk, mk = cfg["synthesis_kwargs"], cfg["mapping_kwargs"]
    sg3 = not getattr(G, "has_noise", True)
    if D is not None:
        dc = D.config
        d_meta = {"discriminator": (f"rebuilt: StyleGAN2 discriminator ({dc['architecture']}, "
                                    f"{'conditional, cmap_dim ' + str(D.cmap_dim) if D.c_dim else 'unconditional'}, "
                                    f"minibatch-std group {D.b4.mbstd.group_size if D.b4.mbstd else 'off'})"),
                  "discriminator_model": {"name": "stylegan2_discriminator", **dc}}
    else:
        d_meta = {"discriminator": "not in the pickle"}
    if sg3:
        d_meta["synthesis"] = (f"StyleGAN3 config {'R (radial filters)' if sk.get('use_radial_filters') else 'T'}: "
                               f"{len(G.synthesis.layer_names)} layers {', '.join(G.synthesis.layer_names[:2])} ... "
                               f"{G.synthesis.layer_names[-1]}; resampling filters read from the pickle; float32; "
                               "no noise inputs")
    return d_meta | {"model": {"name": "stylegan3" if sg3 else "stylegan2", **cfg},
            "checkpoint_sha256": sha256_file(path), "checkpoint_path": str(path),
            "source_format": "NVlabs network pickle (G_ema)",
            "resolution": cfg["img_resolution"], "mapping_layers": mk.get("num_layers", 2 if sg3 else 8),
            "channel_base": sk.get("channel_base", 32768), "channel_max": sk.get("channel_max", 512),
            "conditioning_size": cfg["c_dim"]}


def read_snapshot(path: str | Path):
    """(our generator, our discriminator or None, the snapshot dict, metadata) of an NVlabs network
    pickle; a ``D`` that is there but does not load is an error (one line naming its keys)."""
    path = Path(path)
    snap = read_network_pickle(path)
    if not isinstance(snap, dict):
        raise ValueError(f"{path} holds a {type(snap).__name__}; expected an NVlabs snapshot dict "
                         "{'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs'}")
    g = snap.get("G_ema", snap.get("G"))
    if not isinstance(g, PersistentObject):
        raise ValueError(f"{path} has no G_ema network (keys: {sorted(map(str, snap))[:6]})")
    G = generator_from_snapshot(g, path)
    d = snap.get("D")
    D = discriminator_from_snapshot(d, path) if isinstance(d, PersistentObject) else None
    if D is not None and (D.img_resolution, D.c_dim) != (G.img_resolution, G.c_dim):
        raise ValueError(f"{path}: D judges {D.img_resolution} px images with c_dim={D.c_dim} but G_ema makes "
                         f"{G.img_resolution} px with c_dim={G.c_dim}; expected one snapshot's pair")
    return G, D, snap, snapshot_meta(path, G, snap, D)


def load_stylegan_pickle(path: str | Path, device: str | torch.device = "cpu", space: str = "w",
                         truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                         noise_mode: str = "const", class_names: list[str] | None = None,
                         noise_seed: int = 0) -> Subject:
    G, D, _, meta = read_snapshot(path)
    return stylegan_subject(G.to(device), space, truncation_psi, truncation_cutoff, noise_mode, class_names, meta,
                            noise_seed=noise_seed, discriminator=None if D is None else D.to(device))
