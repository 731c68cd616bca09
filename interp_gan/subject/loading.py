"""Build a Subject from what a user has (docs/architecture.md, stage ④).

    subject = load_subject("runs/demo/checkpoint.safetensors")      # an interp_gan checkpoint
    subject = load_subject("latest_net_G_A.pth")                      # CycleGAN reference layout (or CUT / FastCUT)
    subject = load_subject("latest_net_G.pth")                        # pix2pix U-Net (unet_256 / unet_128)
    subject = load_subject("mosaic.pth")                              # PyTorch examples' fast neural style (*.model too)
    subject = load_subject("200000-G.ckpt")                           # StarGAN v1: one style per domain
    subject = load_subject("100000_nets_ema.ckpt")                    # StarGAN v2 (AFHQ, CelebA-HQ): style code s
    subject = load_subject("multistyle26.onnx")                       # ONNX (+ optional net.onnx.toml)
    subject = load_subject("generator.pt")                            # TorchScript (jit.script / jit.trace), via ONNX
    subject = load_subject("arbitrary_transform.onnx", onnx_options={"style_predictor": "arbitrary_predict.onnx"})
    subject = load_subject("network-snapshot.pkl#space=s,psi=0.7")    # StyleGAN2 (NVlabs pickle, read code-free)
    subject = load_subject("550000.pt#space=s")                       # StyleGAN2 (rosinality/stylegan2-pytorch)
    subject = load_subject("paprika.pt#align_corners=false")          # AnimeGANv2 (PyTorch port; default true)
    subject = load_subject("Hayao_net_G_float.pth")                   # CartoonGAN (test port; BGR inside, RGB out)
    subject = load_subject("selfie2anime_params_latest.pt#direction=B2A")   # U-GAT-IT (default genA2B)
    subject = load_subject("gen_01000000.pt#direction=b2a")           # MUNIT: style code s ~ N(0, I); default a2b
    subject = load_subject("decoder.pth#vgg=vgg_normalised.pth")      # pytorch-AdaIN: relu4_1 statistics of a style set
    subject = load_subject("my_models.py:make_generator")             # factory -> nn.Module | Subject
    subject = load_subject("mypkg.models:make_generator")

A factory returns an ``nn.Module`` (content [N,3,H,W] in [-1,1] -> image) or a ``Subject``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from interp_gan.checkpoint import check_shapes
from interp_gan.guards import check_finite, check_model_size
from interp_gan.subject.foreign import MODEL_SUFFIXES as _FILE_SUFFIXES
from interp_gan.subject.protocol import Subject
from interp_gan.subject.state_dicts import (is_plain_safetensors, options_owner, read_state_dict, reference_generator,
                                            split_family_options)
from interp_gan.util import atomic_write, import_factory, resolve_device, sha256_file

__all__ = ["load_subject", "convert_checkpoint", "convert_cyclegan"]


def _from_checkpoint(path: Path, device: torch.device, options: dict | None = None) -> Subject:
    from interp_gan.checkpoint import load_checkpoint, read_metadata

    name = read_metadata(path).get("model", {}).get("name")
    if options and name not in ("stylegan2", "stylegan3"):
        raise ValueError(f"options {sorted(options)} apply to StyleGAN subjects only; {path} holds a {name!r} model")
    if name in _CONVERTED:  # convert_checkpoint
        return _from_converted(path, device, options)
    ck = load_checkpoint(path, device=str(device))
    meta = dict(ck.meta)
    meta.setdefault("checkpoint_sha256", ck.sha256)
    meta.setdefault("checkpoint_path", str(path))
    run_dir = path.parent
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        import json
        rows = []
        for line in metrics.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill; the rest is still good
        meta["metrics"] = rows
    from interp_gan.edits import apply_recorded_edits   # edits recorded as hooks (interp_gan.edits)
    return apply_recorded_edits(Subject.from_stylenet(
        ck.generator, ck.style_names, discriminator=ck.discriminator,
        classifier=ck.classifiers.get("rgb"), texture_classifier=ck.classifiers.get("texture"),
        feature_net=ck.feature_net, meta=meta).eval())


_CONVERTED = ("cyclegan", "resnet_generator", "unet_generator", "stargan_v1", "stargan_v2", "stylegan2", "stylegan3",
              "animegan_v2", "fast_neural_style", "ugatit", "munit", "cartoongan")


_STARGAN_NORM = ("instance statistics: the checkpoint's InstanceNorm running stats are ignored, as the "
                 "authors' test path does (yunjey/stargan#102)")


def _stargan_subject(G: nn.Module, style_names: list[str] | None = None, meta: dict | None = None) -> Subject:
    """A StarGAN v1 generator as a Subject: style s is domain s, fed as the one-hot label e_s.

    The style code space is the label space itself (style_dim = c_dim, latent_dim = 0: no
    noise), so ``stylize_code`` takes any continuous label vector and a direction there
    interpolates domain labels. For a RaFD model that is exactly its training input. For a
    CelebA model c is a 0/1 attribute vector (e.g. black, blond, brown hair, male, young), so
    style s means "attribute s on, every other off": "male" also says "not young, none of the
    listed hair colours" -- not the authors' "flip one attribute of the input photo". For other
    combinations pass the vector to ``subject.stylize_code(content, code)``. A model trained on
    CelebA and RaFD together has c_dim 15 and its last two "domains" are the data-set mask bits;
    the styles are then only meaningful through ``stylize_code`` with full label vectors.
    """
    names = list(style_names or [f"domain{i}" for i in range(G.c_dim)])
    if len(names) != G.c_dim:
        raise ValueError(f"got {len(names)} style names for a StarGAN generator with c_dim={G.c_dim} domains")

    def one_hot(style_ids):                                    # [N] -> [N, c_dim] float
        return torch.nn.functional.one_hot(style_ids.long(), G.c_dim).float()

    return Subject(generator=G, style_names=names,
                   _generate=lambda c, s, z=None: G(c, one_hot(s)),
                   _style_code=lambda s, z: one_hot(s),
                   _stylize_code=lambda c, code: G(c, code),
                   latent_dim=0, style_dim=G.c_dim, meta=dict(meta or {}))


def _subject_of(G: nn.Module, model: dict, style_names: list[str] | None, meta: dict,
                device: torch.device, options: dict | None = None, discriminator: nn.Module | None = None) -> Subject:
    G = G.to(device)
    if model["name"] in ("stylegan2", "stylegan3"):
        from interp_gan.subject.stylegan import stylegan_subject
        D = None if discriminator is None else discriminator.to(device).eval().requires_grad_(False)
        return stylegan_subject(G.eval().requires_grad_(False), class_names=style_names, meta=meta,
                                discriminator=D, **(options or {}))
    if model["name"] == "stargan_v1":
        if meta.get("network_note"):
            meta = {**meta, "model_notes": [*(meta.get("model_notes") or []), meta["network_note"]]}
        return _stargan_subject(G, style_names, meta).eval()
    if model["name"] == "stargan_v2":      # s = mapping(z, domain), image = G(content, s), as stylenet
        names = list(style_names or [f"domain{i}" for i in range(G.num_styles)])
        return Subject.from_stylenet(G, names, meta=meta).eval()
    if model["name"] == "munit":           # z = MUNIT's style code s ~ N(0, I); the target domain is the one style
        from interp_gan.models.munit import munit_notes
        target = "b" if model.get("direction", "a2b") == "a2b" else "a"
        return Subject.from_stylenet(G, list(style_names or [f"domain_{target}"]),
                                     meta={**meta, **munit_notes(model)}).eval()
    if model["name"] == "animegan_v2":     # [-1, 1] in and out, as ours; what the weights cannot say, said
        from interp_gan.models.animegan import animegan_notes
        meta = {**meta, **animegan_notes(model, meta.get("converted_from", {}).get("path") or
                                         meta.get("checkpoint_path", ""))}
    if model["name"] == "ugatit":          # [-1, 1] in and out; direction, size and CAM outputs said
        from interp_gan.models.ugatit import ugatit_notes
        meta = {**meta, **ugatit_notes(model)}
    if model["name"] == "cartoongan":      # BGR inside, RGB outside; what the weights cannot say, said
        from interp_gan.models.cartoongan import cartoongan_notes
        notes = cartoongan_notes(model)
        meta = {**meta, **notes, "model_notes": [*(meta.get("model_notes") or []), *notes["model_notes"]]}
    if model["name"] in ("cyclegan", "resnet_generator"):     # tanh, range, ReLU, padding: assumed, said
        from interp_gan.models.resnet_generator import family_notes
        meta = {**meta, **family_notes(model)}
    from interp_gan.subject.channels import rgb_forward     # a grey (1-channel) input / output: said
    gen, notes = rgb_forward(G, meta.get("checkpoint_path") or model["name"])
    notes = ([meta["network_note"]] if meta.get("network_note") else []) + notes
    if notes:
        meta = {**meta, "model_notes": [*(meta.get("model_notes") or []), *notes]}
    return Subject(generator=G, style_names=list(style_names or ["translated"]), _generate=gen, meta=meta).eval()


def _rosinality_generator(sd: dict, path: Path, options: dict | None) -> tuple[nn.Module, dict, dict]:
    """(our StyleGAN2Generator, model config, notes) of a rosinality/stylegan2-pytorch checkpoint; the
    rebuilt discriminator (or None) is ``notes["_D"]``."""
    from interp_gan.models.rosinality_stylegan2 import load_generator

    if options:
        raise ValueError(f"{path}: options {sorted(options)} apply to {options_owner(options)}; this is a "
                         "rosinality StyleGAN2 checkpoint, which takes space, psi, cutoff, noise, noise_seed")
    try:
        G, D, notes = load_generator(sd)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return G, {"name": "stylegan2", **G.config}, {**notes, "_D": D}


def _from_pth(path: Path, device: torch.device, options: dict | None = None,
              stylegan: dict | None = None) -> Subject:
    """A CycleGAN or StarGAN v1 reference-layout state_dict, a StarGAN v2 ``*_nets_ema.ckpt``, a
    rosinality StyleGAN2 checkpoint (``stylegan``: its space / truncation / noise options), a
    pytorch-AdaIN decoder, or any state-dict family ``reference_generator`` reads."""
    from interp_gan.models.rosinality_stylegan2 import looks_like_rosinality
    from interp_gan.subject.adain import adain_kind, load_adain_subject

    sd = read_state_dict(path)
    if adain_kind(sd):               # pytorch-AdaIN's decoder (its VGG beside it or named), or the VGG alone: refused
        if stylegan:
            raise ValueError(f"{path}: options {sorted(stylegan)} apply to StyleGAN2 subjects only; this is a "
                             "pytorch-AdaIN file (decoder.pth#vgg=vgg_normalised.pth,alpha=...,style_set=...)")
        return _said_plain(path, load_adain_subject(sd, path, device, options))
    if looks_like_rosinality(sd):    # before every state-dict family parser
        G, model, notes = _rosinality_generator(sd, path, options)
        D = notes.pop("_D")
        meta = {"model": model, "checkpoint_sha256": sha256_file(path), "checkpoint_path": str(path), **notes}
        return _said_plain(path, _subject_of(G, model, None, meta, device, stylegan, D))
    if stylegan:
        raise ValueError(f"{path}: options {sorted(stylegan)} apply to StyleGAN2 subjects only (an NVlabs .pkl, a "
                         "rosinality/stylegan2-pytorch checkpoint, or a converted .safetensors); this state dict is "
                         "not one: drop the '#...' part (an AnimeGANv2 generator takes align_corners=true|false, a "
                         "U-GAT-IT params file direction=A2B|B2A, a MUNIT gen_*.pt takes direction=a2b|b2a, activ, "
                         "pad_type, a pytorch-AdaIN decoder vgg, alpha, style_set, styles, style_size)")
    sd, options, picked = _picked_network(sd, path, options)
    G, model = reference_generator(sd, path, options)
    meta = {"model": model, "checkpoint_sha256": sha256_file(path), "checkpoint_path": str(path)}
    meta.update(picked or _which_network(sd, model["name"]))
    if model["name"] == "stargan_v1":
        meta["normalization"] = _STARGAN_NORM
    if model["name"] == "fast_neural_style":     # [0, 255] network, dropped running statistics
        from interp_gan.models.fast_neural_style import subject_meta
        meta.update(subject_meta(sd))
    if model["name"] == "munit":                 # dropped running statistics of the content encoder, if any
        from interp_gan.models.munit import munit_file_notes
        meta.update(munit_file_notes(sd))
    if model["name"] == "cartoongan":            # norms saved as weight / bias: said
        from interp_gan.models.cartoongan import cartoongan_file_notes
        meta.update(cartoongan_file_notes(sd))
    if model.get("w_hpf"):
        meta["face_masks"] = _hpf_note(model, sd)
    elif model["name"] == "stargan_v2" and "fan" in sd:    # the released AFHQ file carries one too
        meta["fan_ignored"] = ("the file's 'fan' entry (face-landmark network) is not loaded: this generator has "
                               "w_hpf=0 and never uses face masks")
    return _said_plain(path, _subject_of(G, model, None, meta, device))


def _picked_network(sd: dict, path: Path, options: dict | None) -> tuple[dict, dict | None, dict]:
    """``FILE#net=NAME``: (the network it names, the other options, its note); unchanged without it."""
    if not options or "net" not in options:
        return sd, options, {}
    from interp_gan.subject.state_dicts import select_network
    net = options["net"]
    rest = {k: v for k, v in options.items() if k != "net"}
    return select_network(sd, net, path), rest or None, {
        "network_entry": [net], "network_note": f"file: loaded the network at {net!r}, as #net={net} asked"}


def _which_network(sd: dict, name: str) -> dict:
    """The note on which network of a multi-network file was loaded (``{"netG_A": ..., "netG_B": ...}``,
    ``{"G": ..., "G_ema": ...}``, Lightning's ``generator.*`` / ``discriminator.*``); {} for a lone one."""
    if name not in ("resnet_generator", "unet_generator", "animegan_v2", "fast_neural_style", "stargan_v1",
                    "cartoongan"):
        return {}
    from interp_gan.models.keys import few
    from interp_gan.models.wrappers import GEN_NAMES as _GEN_NAMES, unwrap_choice

    _, taken, left = unwrap_choice(sd)
    if not left:
        return {}
    ema = " (the moving-average copy saved beside the raw weights, the one its authors evaluate)" \
        if taken[-1].lower().endswith("_ema") else ""
    where = " / ".join(repr(t) for t in taken)
    return {"network_entry": taken, "network_note":
            f"file: several networks in one file; loaded the generator at {where}{ema}, not {few(left)}; "
            f"FILE#net={next((n for n in left if n in _GEN_NAMES), left[0])} loads another"}


def _said_plain(path: Path, subject: Subject) -> Subject:
    """A plain ``.safetensors`` (another tool's file): how it was taken is the first model note."""
    if path.suffix == ".safetensors":
        subject.meta = {**subject.meta, "model_notes": [
            "file: a plain .safetensors state dict (no interp_gan metadata): read as the same network's .pth is, "
            "the architecture from its keys and shapes; no style names, training data or metrics are stored in it",
            *(subject.meta.get("model_notes") or [])]}
    return subject


def _hpf_note(model: dict, sd: dict | None) -> str:
    """What a w_hpf > 0 StarGAN v2 subject does with its FAN, and where its w_hpf came from
    (``sd``: the source ``*_nets_ema.ckpt``; None for a converted file, whose metadata holds it)."""
    gen = {k.removeprefix("module."): v for k, v in sd["generator"].items()} if sd is not None else {}
    source = ("stored by convert" if sd is None else "read from generator.hpf.filter" if "hpf.filter" in gen else
              "not recorded in the file; 1 is the released CelebA-HQ model's value")
    return (f"w_hpf={model['w_hpf']:g} ({source}): the checkpoint's face-landmark network (FAN) computes face "
            "masks from each content batch (no gradient, as the authors); the generator adds masked high-pass "
            "encoder features at 32, 64 and 128 px. Default layers and the random-init control cover the "
            "generator only; the FAN stays trained")


def _from_converted(path: Path, device: torch.device, options: dict | None = None) -> Subject:
    """A generator stored by ``convert_checkpoint`` (weights under ``G.``, the model in the metadata)."""
    from safetensors.torch import load_file

    from interp_gan.models.registry import build_model
    from interp_gan.checkpoint import read_metadata

    meta = read_metadata(path)
    model = meta["model"]
    kwargs = {k: v for k, v in model.items() if k != "name"}
    check_model_size(lambda: build_model(model["name"], **kwargs), f"{path}: the {model['name']} its metadata describes")
    tensors = load_file(str(path))
    sd = {k[2:]: v for k, v in tensors.items() if k.startswith("G.")}
    check_finite(sd.items(), path)
    G = build_model(model["name"], **kwargs)
    check_shapes(G, sd, path, "G.")
    G.load_state_dict(sd)
    D = None
    d_model = meta.get("discriminator_model")    # a StyleGAN2 snapshot's D (convert writes it under "D.")
    if isinstance(d_model, dict) and d_model.get("name"):
        d_kw = {k: v for k, v in d_model.items() if k != "name"}
        check_model_size(lambda: build_model(d_model["name"], **d_kw),
                         f"{path}: the discriminator its metadata describes")
        d_sd = {k[2:]: v for k, v in tensors.items() if k.startswith("D.")}
        check_finite(d_sd.items(), path)
        D = build_model(d_model["name"], **d_kw)
        check_shapes(D, d_sd, path, "D.")
        D.load_state_dict(d_sd)
    meta = {**meta, "checkpoint_sha256": sha256_file(path), "checkpoint_path": str(path)}
    if model["name"] == "stargan_v2" and model.get("w_hpf"):
        meta["face_masks"] = _hpf_note(model, None)
    from interp_gan.edits import apply_recorded_edits   # edits recorded as hooks (interp_gan.edits)
    return apply_recorded_edits(_subject_of(G, model, meta.get("style_names"), meta, device, options, D))


def _convert_stylegan(src: Path, out: Path, style_names: list[str] | None) -> Path:
    """An NVlabs network pickle's G_ema (and D, when the pickle has one) -> safetensors (weights under
    ``G.`` and ``D.`` + metadata; ``discriminator_model`` says how to rebuild D)."""
    import json

    from safetensors.torch import save as safetensors_bytes

    from interp_gan.checkpoint import META_KEY, FORMAT, FORMAT_VERSION
    from interp_gan.subject.stylegan import read_snapshot

    G, D, _, smeta = read_snapshot(src)
    default = [f"class{i}" for i in range(G.c_dim)] if G.c_dim else ["sample"]
    names = list(default if style_names is None else style_names)
    if len(names) != len(default) or len(set(names)) != len(names) or not all(n.strip() for n in names):
        raise ValueError(f"got style names {names} for a StyleGAN with c_dim={G.c_dim}; give {len(default)} "
                         f"distinct non-empty names in label order, e.g. --style-names {','.join(default)}")
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": smeta["model"], "style_names": names,
            **{k: smeta[k] for k in ("resolution", "mapping_layers", "channel_base", "channel_max",
                                     "conditioning_size", "discriminator", "source_format")},
            "converted_from": {"path": str(src), "sha256": smeta["checkpoint_sha256"]},
            "torch_version": torch.__version__}
    tensors = {f"G.{k}": v.detach().contiguous().cpu() for k, v in G.state_dict().items()}
    if D is not None:
        meta["discriminator_model"] = smeta["discriminator_model"]
        tensors |= {f"D.{k}": v.detach().contiguous().cpu() for k, v in D.state_dict().items()}
    blob = safetensors_bytes(tensors, metadata={META_KEY: json.dumps(meta)})
    return atomic_write(out, lambda fh: fh.write(blob))


def convert_checkpoint(src: str | Path, out: str | Path, style_names: list[str] | None = None) -> Path:
    """A CycleGAN or StarGAN v1 reference-layout state_dict (.pth / .pt / .ckpt), or a StarGAN v2
    ``*_nets_ema.ckpt`` (generator, mapping network and style encoder), a rosinality/stylegan2-pytorch
    checkpoint (g_ema and d), or an NVlabs StyleGAN2
    network pickle ``.pkl`` (its G_ema, read without running its code) -> a
    self-describing ``.safetensors`` (weights + JSON metadata: architecture, style names, source
    file and its sha256); loading it needs no pickle.

    ``style_names``: one per style -- StarGAN's c_dim domains in label order (e.g. black_hair,
    blond_hair, brown_hair, male, young for the CelebA model), StarGAN v2's domains in label
    order (cat, dog, wild for AFHQ), CycleGAN's one; default domain0.. / translated.
    """
    import json

    from safetensors.torch import save as safetensors_bytes

    from interp_gan.checkpoint import META_KEY, FORMAT, FORMAT_VERSION

    src, family = split_family_options(src)
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise FileNotFoundError(f"no such file: {src}")
    if out.exists():
        raise FileExistsError(f"{out} exists; choose another output path (files are never overwritten)")
    if src.suffix == ".pkl":
        return _convert_stylegan(src, out, style_names)
    sd = read_state_dict(src)
    from interp_gan.subject.adain import refuse_convert
    refuse_convert(sd, src)           # pytorch-AdaIN: two files and a style set, analysed as they are
    sd, family, _ = _picked_network(sd, src, family)
    from interp_gan.models.rosinality_stylegan2 import looks_like_rosinality
    ros = looks_like_rosinality(sd)
    G, model, ros_notes = (_rosinality_generator(sd, src, family) if ros
                           else (*reference_generator(sd, src, family), {}))
    n_domains = {"stargan_v1": lambda: G.c_dim, "stargan_v2": lambda: G.num_styles}.get(model["name"])
    default = [f"domain{i}" for i in range(n_domains())] if n_domains else ["translated"]
    if model["name"] == "munit":
        default = [f"domain_{'b' if model['direction'] == 'a2b' else 'a'}"]
    if ros:
        default = ["sample"]
    names = list(default if style_names is None else style_names)
    if len(names) != len(default) or len(set(names)) != len(names) or not all(n.strip() for n in names):
        what = {"stargan_v1": f"a StarGAN v1 generator with c_dim={len(default)} domains",
                "stargan_v2": f"a StarGAN v2 model with {len(default)} domains",
                "unet_generator": "a pix2pix / CycleGAN U-Net generator (one style)",
                "fast_neural_style": "a fast neural style network (one style)",
                "resnet_generator": "a CycleGAN-family ResNet generator (one style)",
                "animegan_v2": "an AnimeGANv2 generator (one style)",
                "cartoongan": "a CartoonGAN generator (one style)",
                "ugatit": "a U-GAT-IT generator (one style)",
                "munit": "a MUNIT translation (one style: the target domain)",
                "stylegan2": "an unconditional StyleGAN2 (one style)"}.get(
                    model["name"], "a CycleGAN generator (one style)")
        raise ValueError(f"got style names {names} for {what}; give {len(default)} distinct non-empty names "
                         f"in label order, e.g. --style-names {','.join(default)}")
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model, "style_names": names,
            "converted_from": {"path": str(src), "sha256": sha256_file(src)}, "torch_version": torch.__version__}
    if model["name"] == "stargan_v1":
        meta["normalization"] = _STARGAN_NORM
    if model["name"] == "fast_neural_style":     # the notes travel with the converted file
        from interp_gan.models.fast_neural_style import subject_meta
        meta.update(subject_meta(sd))
    if model["name"] == "munit":
        from interp_gan.models.munit import munit_file_notes
        meta.update(munit_file_notes(sd))
    if model["name"] == "cartoongan":
        from interp_gan.models.cartoongan import cartoongan_file_notes
        meta.update(cartoongan_file_notes(sd))
    D = ros_notes.pop("_D", None)
    meta.update(ros_notes)         # a rosinality StyleGAN2: its source, w_avg, noise and D notes travel along
    tensors = {f"G.{k}": v.detach().contiguous().cpu() for k, v in G.state_dict().items()}
    if D is not None:              # stored as an NVlabs pickle's D is (_from_converted rebuilds it)
        tensors |= {f"D.{k}": v.detach().contiguous().cpu() for k, v in D.state_dict().items()}
    blob = safetensors_bytes(tensors, metadata={META_KEY: json.dumps(meta)})
    return atomic_write(out, lambda fh: fh.write(blob))


convert_cyclegan = convert_checkpoint   # the old name (it also converts StarGAN now)


def _torch_kind(spec: str | Path) -> str:
    from interp_gan.subject.torch_files import torch_file_kind
    return torch_file_kind(spec) if Path(spec).is_file() else "not_torch"


def _is_torchscript(spec: str | Path) -> bool:
    return _torch_kind(spec) == "torchscript"


def load_subject(spec: str | Path, device: str = "auto", onnx_options: dict | None = None, **options) -> Subject:
    """A Subject from a checkpoint path, a CycleGAN or StarGAN v1 state_dict, a StarGAN v2
    ``*_nets_ema.ckpt``, an ``.onnx`` file (``interp_gan.subject.onnx``; ``onnx_options`` are its
    sidecar keys, e.g. ``{"style_predictor": "arbitrary_predict.onnx"}``), a TorchScript archive of any
    suffix (exported to ONNX in memory, ``interp_gan.subject.torchscript``; the same ``onnx_options``), an NVlabs StyleGAN2
    network pickle (``.pkl``, read without running its code: ``interp_gan.subject.stylegan``), or a
    ``file.py:factory`` spec.

    ``options`` (StyleGAN2 only: a ``.pkl``, a rosinality ``.pt`` or a converted ``.safetensors``): ``space`` ("w",
    "w+" or "s"), ``truncation_psi``, ``truncation_cutoff``, ``noise_mode``; also given as a suffix
    of the path, ``snap.pkl#space=s,psi=0.7`` (so the CLI and pipelines can choose). An AnimeGANv2
    state dict takes ``align_corners`` the same two ways (``paprika.pt#align_corners=false``; default
    true: the weights cannot say it, docs/models.md), a U-GAT-IT params file ``direction``
    (``selfie2anime_params_latest.pt#direction=B2A``; default A2B); a MUNIT ``gen_*.pt`` takes ``direction``
    (a2b | b2a), ``activ`` and ``pad_type`` the same two ways; a pytorch-AdaIN decoder ``vgg``, ``alpha``,
    ``style_set``, ``styles`` and ``style_size`` (``interp_gan.subject.adain``)."""
    dev = resolve_device(device)
    s, family = split_family_options(spec)    # paprika.pt#align_corners=false (AnimeGANv2)
    from interp_gan.models.animegan import FILE_OPTIONS
    from interp_gan.models.munit import FILE_OPTIONS as MUNIT_OPTIONS
    from interp_gan.models.ugatit import FILE_OPTIONS as UGATIT_OPTIONS
    from interp_gan.subject.adain import FILE_OPTIONS as ADAIN_OPTIONS
    family |= {k: options.pop(k) for k in dict.fromkeys(FILE_OPTIONS + UGATIT_OPTIONS + MUNIT_OPTIONS + ADAIN_OPTIONS
                                                         + ("net",)) if k in options}   # or as keywords
    if family and ":" in s and not Path(s).exists() and not s.endswith(_FILE_SUFFIXES):
        raise ValueError(f"options {sorted(family)} apply to {options_owner(family)}, state dicts (.pt / .pth); "
                         f"got {s}")
    if onnx_options and not (s.endswith(".onnx") or _is_torchscript(s)):
        raise ValueError(f"ONNX options ({', '.join(sorted(onnx_options))}) apply to .onnx files and TorchScript "
                         f"archives only; got {s}")
    if "#" in s and not Path(s).exists():
        from interp_gan.subject.stylegan import parse_options
        s, opts = parse_options(s)
        options = {**opts, **options}
    if options and not s.endswith((".pkl", ".safetensors", ".pt", ".pth", ".ckpt")):
        raise ValueError(f"options {sorted(options)} apply to StyleGAN2 subjects only (.pkl, a rosinality .pt or "
                         f"a converted .safetensors); got {s}")
    if ":" in s and not Path(s).exists() and s.rsplit("#", 1)[0].endswith(_FILE_SUFFIXES):
        raise FileNotFoundError(f"no such file: {s} (a checkpoint path, not a module:factory spec)")
    if ":" in s and not Path(s).exists() and not (len(s) > 1 and s[1] == ":" and Path(s).exists()):
        from interp_gan.subject.factory import call_factory, module_subject
        obj = call_factory(import_factory(s), s)
        if isinstance(obj, Subject):
            obj.generator.to(dev)
            return obj.eval()
        if isinstance(obj, nn.Module):      # eval mode, float32, range / size / output form: subject/factory.py
            return module_subject(obj, s, dev)
        what = type(obj).__name__
        if isinstance(obj, (tuple, list)):
            what = f"a {what} of {len(obj)} ({', '.join(type(o).__name__ for o in obj[:4])})"
        raise TypeError(f"factory {s} returned {what}; expected an nn.Module or a Subject"
                        + (": return the generator alone" if isinstance(obj, (tuple, list)) else ""))
    path = Path(s)
    if path.is_dir():          # a training run's folder, or a SavedModel / a folder of models: said in one line
        from interp_gan.subject.foreign import checkpoint_in_folder
        path = checkpoint_in_folder(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; expected a .safetensors checkpoint (or a training run "
                                "folder), a CycleGAN .pth, a StarGAN .ckpt, an .onnx file, a TorchScript archive, a "
                                "StyleGAN2 .pkl, or --model file.py:factory")
    if path.suffix not in (".safetensors", ".onnx") and _torch_kind(path) == "torch_export":
        raise ValueError(f"{path} is a torch.export archive (.pt2), which interp_gan does not load: its unflattened "
                         "layers are generic interpreter modules (no nn.Conv2d for the default layer lists, no "
                         "random-init control) and its shapes are pinned unless exported dynamic. Save the model as "
                         "TorchScript (torch.jit.trace(model, x).save(...)) or ONNX (torch.onnx.export), which load, "
                         "or use --model file.py:factory")
    plain = path.suffix == ".safetensors" and is_plain_safetensors(path)   # another tool's state dict
    if family and not plain and (path.suffix in (".safetensors", ".onnx", ".pkl") or _torch_kind(path) == "torchscript"):
        raise ValueError(f"options {sorted(family)} apply to {options_owner(family)}, state dicts (.pt / .pth); "
                         f"got {path} (a converted .safetensors keeps the value it was converted with)")
    if path.suffix not in (".safetensors", ".onnx") and _is_torchscript(path):   # any suffix: .pt, .ptl, ...
        if options:
            raise ValueError(f"options {sorted(options)} apply to StyleGAN2 subjects only; {path} is a TorchScript "
                             "archive: drop the '#...' part")
        from interp_gan.subject.torchscript import load_torchscript_subject
        return load_torchscript_subject(path, dev, **(onnx_options or {}))
    if path.suffix == ".safetensors":
        return _from_pth(path, dev, family, options) if plain else _from_checkpoint(path, dev, options)
    if path.suffix == ".pkl":
        from interp_gan.subject.stylegan import load_stylegan_pickle
        return load_stylegan_pickle(path, dev, **options)
    if path.suffix in (".pth", ".pt", ".ckpt"):
        return _from_pth(path, dev, family, options)
    if path.suffix == ".py":
        raise ValueError(f"{path} is a Python file; name the factory in it too: --model {path}:make_generator "
                         f"(a function returning an nn.Module or a Subject)")
    if path.suffix == ".onnx":
        from interp_gan.subject.onnx import load_onnx_subject
        return load_onnx_subject(path, dev, **(onnx_options or {}))
    if _torch_kind(path) in ("torch_zip", "pickle"):   # a state dict of another suffix (pytorch_model.bin)
        return _from_pth(path, dev, family)
    from interp_gan.subject.foreign import refusal
    why = refusal(path)                                  # Keras, TensorFlow, TensorRT, Core ML, ...
    if why:
        raise ValueError(why)
    raise ValueError(f"unknown checkpoint type {path.suffix!r}; expected .safetensors, a state_dict "
                     ".pth / .pt / .ckpt, a TorchScript archive, an .onnx file, or an NVlabs StyleGAN2 network pickle .pkl")
