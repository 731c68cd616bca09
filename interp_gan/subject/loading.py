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
    subject = load_subject("selfie2anime_params_latest.pt#direction=B2A")   # U-GAT-IT (default genA2B)
    subject = load_subject("gen_01000000.pt#direction=b2a")           # MUNIT: style code s ~ N(0, I); default a2b
    subject = load_subject("my_models.py:make_generator")             # factory -> nn.Module | Subject
    subject = load_subject("mypkg.models:make_generator")

A factory returns an ``nn.Module`` (content [N,3,H,W] in [-1,1] -> image) or a ``Subject``.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from interp_gan.checkpoint import check_shapes
from interp_gan.guards import check_finite, check_model_size
from interp_gan.subject.foreign import MODEL_SUFFIXES as _FILE_SUFFIXES
from interp_gan.subject.protocol import Subject
from interp_gan.util import atomic_write, import_factory, resolve_device, sha256_file

__all__ = ["load_subject", "convert_checkpoint", "convert_cyclegan"]


def _from_checkpoint(path: Path, device: torch.device, options: dict | None = None) -> Subject:
    from interp_gan.checkpoint import load_checkpoint, read_metadata

    name = read_metadata(path).get("model", {}).get("name")
    if options and name != "stylegan2":
        raise ValueError(f"options {sorted(options)} apply to StyleGAN2 subjects only; {path} holds a {name!r} model")
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


def _refuse_unreadable(path: Path, e: Exception) -> None:
    """One line for a file ``torch.load(weights_only=True)`` refused: a pickled whole module (its class,
    read from the pickle's opcodes), a TorchScript archive given to convert, other pickled objects, or
    bytes that are no PyTorch file."""
    from interp_gan.subject.torch_files import pickled_module_class, torch_file_kind

    kind = torch_file_kind(path)
    if kind == "torchscript":
        raise ValueError(f"{path} is a TorchScript archive, not a state_dict: load it directly (interp-gan inspect / "
                         "analyze FILE, load_subject(FILE)); convert takes state dicts only")
    if kind == "torch_export":
        raise ValueError(f"{path} is a torch.export archive (.pt2), not a state_dict; save model.state_dict(), or "
                         "a TorchScript or ONNX export (which load directly)")
    cls = pickled_module_class(path) if kind in ("torch_zip", "pickle") else None
    if cls:
        name = cls.rsplit(".", 1)[-1]
        raise ValueError(f"{path} is a pickled nn.Module of class {cls} (torch.save(model)); interp_gan does not run "
                         f"pickled code. Load it as --model yourfile.py:factory (a function returning {name}(...) "
                         "with its weights), or save model.state_dict() (a CycleGAN / StarGAN-family network then "
                         "loads as is), or save torch.jit.script(model) / torch.jit.trace(model, x) or an ONNX "
                         "export, which load directly")
    text = str(e)
    found = re.search(r"GLOBAL ([\w.]+)", text) if kind in ("torch_zip", "pickle") else None
    if found:
        raise ValueError(f"{path} holds pickled objects other than tensors (the first: {found.group(1)}), which "
                         "weights_only=True loading refuses (interp_gan does not run pickled code); save a dict of "
                         "tensors: model.state_dict()")
    first = (text.strip().splitlines()[0] if text.strip() else type(e).__name__).split(". ")[0]
    raise ValueError(f"{path} is not a readable PyTorch file ({type(e).__name__}: {first[:160]}); it is truncated, "
                     "corrupt or of another format: save or copy it again")


def _is_plain_safetensors(path: Path) -> bool:
    """A readable ``.safetensors`` file without interp_gan's metadata: another tool's state dict
    (``save_file(G.state_dict(), ...)``, a model hub's ``model.safetensors``), read as a ``.pth`` is."""
    from safetensors import safe_open

    from interp_gan.checkpoint import META_KEY
    try:
        with safe_open(str(path), framework="pt") as fh:
            return META_KEY not in (fh.metadata() or {})
    except Exception:   # noqa: BLE001  (not safetensors at all: the checkpoint reader says why)
        return False


def _read_safetensors_state_dict(path: Path) -> dict:
    """Flat tensors; StarGAN v2's networks (``generator.*``, ``mapping_network.*``, ...) nested again."""
    from safetensors.torch import load_file

    sd = load_file(str(path))
    heads = {k.split(".", 1)[0] for k in sd}
    if heads and heads <= set(_V2_NETS) and "generator" in heads:
        nested: dict = {}
        for k, v in sd.items():
            net, rest = k.split(".", 1)
            nested.setdefault(net, {})[rest] = v
        return nested
    return sd


def _read_state_dict(path: Path) -> dict:
    import argparse
    try:     # argparse.Namespace: the training options rosinality's train.py stores (plain data)
        with torch.serialization.safe_globals([argparse.Namespace]):
            sd = (_read_safetensors_state_dict(path) if path.suffix == ".safetensors"
                  else torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:  # pickled modules / code are refused on purpose
        _refuse_unreadable(path, e)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"{path} holds a {type(sd).__name__}; expected a state_dict (dict of tensors)")
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    check_finite(_flat_tensors(sd), path)
    return sd


def _flat_tensors(sd: dict, prefix: str = ""):
    """(name, tensor) of a state_dict, nested dicts (StarGAN v2's networks) included."""
    for k, v in sd.items():
        if isinstance(v, dict):
            yield from _flat_tensors(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


_CONVERTED = ("cyclegan", "resnet_generator", "unet_generator", "stargan_v1", "stargan_v2", "stylegan2",
              "animegan_v2", "fast_neural_style", "ugatit", "munit")
_V2_NETS = ("generator", "mapping_network", "style_encoder", "discriminator", "fan")


def _stargan_v2_model(sd: dict, path: Path) -> tuple[nn.Module, dict]:
    """A StarGAN v2 ``*_nets_ema.ckpt`` ({generator, mapping_network, style_encoder: state_dict}) as a model."""
    from interp_gan.models.stargan_v2 import StarGANv2

    ema = path.name.replace("_nets.ckpt", "_nets_ema.ckpt").replace("_optims.ckpt", "_nets_ema.ckpt")
    if ema == path.name:
        ema = "{step:06d}_nets_ema.ckpt"
    if any(isinstance(v, dict) and "param_groups" in v for v in sd.values()):
        raise ValueError(f"{path} holds StarGAN v2 optimizer states (*_optims.ckpt), not networks; "
                         f"load the exponential-moving-average networks, {ema}, instead")
    if "discriminator" in sd:
        raise ValueError(f"{path} is a StarGAN v2 training checkpoint (*_nets.ckpt: the raw networks with the "
                         f"discriminator); load the moving-average networks the authors evaluate, {ema}, instead")
    try:
        M = StarGANv2.from_reference(sd)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return M, {"name": "stargan_v2", **M.config}


def _is_reference_cyclegan(sd: dict) -> bool:
    """Exactly the reference CycleGANGenerator's keys and shapes (else the family parser reads it)."""
    from interp_gan.models.cyclegan import CycleGANGenerator, infer_cyclegan_config

    try:
        with torch.device("meta"):   # shapes only: a hostile size allocates nothing here
            ref = CycleGANGenerator(**infer_cyclegan_config(sd)).state_dict()
    except Exception:
        return False
    return set(ref) == set(sd) and all(getattr(sd[k], "shape", None) == v.shape for k, v in ref.items())


def _looks_like_resnet_generator(sd: dict) -> bool:
    """A (possibly wrapped / prefixed) state_dict whose first conv weight (4-D) has 1-4 input channels."""
    from interp_gan.models.resnet_generator import unwrap_state_dict

    first = next((v for v in unwrap_state_dict(sd).values() if v.dim() == 4), None)
    return first is not None and 1 <= first.shape[1] <= 4


_STARGAN_NORM = ("instance statistics: the checkpoint's InstanceNorm running stats are ignored, as the "
                 "authors' test path does (yunjey/stargan#102)")


def _family_generator(sd: dict, path: Path, cls, parse, remap, what: str, name: str) -> tuple[nn.Module, dict]:
    """A generator family read from keys and shapes: ``parse(sd) -> (config, keymap)`` (one line
    on failure), the size cap before anything is built, then a strict load under our names."""
    try:
        cfg, keymap = parse(sd)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    check_model_size(lambda: cls(**cfg), f"{path}: the {what} generator its tensors imply")
    G = cls(**cfg)
    sd = remap(sd, keymap)
    check_shapes(G, sd, path)
    G.load_state_dict(sd)
    return G, {"name": name, **G.config}


def _options_owner(keys) -> str:
    """Which families the '#' options of a state-dict path belong to (for one-line refusals)."""
    keys, owners = set(keys), []
    if "align_corners" in keys:
        owners.append("AnimeGANv2 generators (keys 'block_a.0.1.weight', ...)")
    if "direction" in keys:
        owners.append("U-GAT-IT params files (UGATIT.save's 'genA2B' / 'genB2A') and MUNIT generator files (gen_*.pt)")
    if keys & {"activ", "pad_type"}:
        owners.append("MUNIT generator files (gen_*.pt)")
    return " / ".join(owners or ["AnimeGANv2, U-GAT-IT and MUNIT files"]) + " only"


def _ugatit_generator(sd: dict, path: Path, options: dict | None) -> tuple[nn.Module, dict]:
    """genA2B (or genB2A: ``#direction=B2A``) of a ``UGATIT.save`` params file, or a lone U-GAT-IT generator."""
    from interp_gan.models import ugatit

    other = sorted(set(options or {}) - set(ugatit.FILE_OPTIONS))
    if other:
        raise ValueError(f"{path}: options {other} apply to {_options_owner(other)}; this is a U-GAT-IT file, "
                         "which takes #direction=A2B|B2A: drop them")
    direction = (options or {}).get("direction")
    try:
        direction = None if direction is None else ugatit.parse_direction(direction)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    try:
        flat, direction = ugatit.select_generator(sd, direction)
    except ValueError as e:
        raise ValueError(f"{path} {e}") from None
    return _family_generator(flat, path, ugatit.UGATITGenerator, lambda d: ugatit.parse_ugatit(d, direction),
                             ugatit.remap_ugatit_state_dict, "U-GAT-IT", "ugatit")


def _reference_generator(sd: dict, path: Path, options: dict | None = None) -> tuple[nn.Module, dict]:
    """The generator a reference-layout state_dict holds (CycleGAN ResNet or pix2pix U-Net, StarGAN v1,
    the StarGAN v2 wrapper of a ``*_nets_ema.ckpt``, AnimeGANv2, U-GAT-IT, or one direction of a MUNIT
    ``gen_*.pt``) and its model config; ``options`` apply to AnimeGANv2 (``file#align_corners=false``),
    U-GAT-IT (``file#direction=B2A``) and MUNIT (``file#direction=b2a,activ=lrelu,pad_type=zero``) only."""
    from interp_gan.models.animegan import FILE_OPTIONS, looks_like_animegan
    from interp_gan.models.cyclegan import CycleGANGenerator, infer_cyclegan_config
    from interp_gan.models.stargan import StarGANGenerator, is_stargan_state_dict
    from interp_gan.models.ugatit import looks_like_ugatit

    if looks_like_ugatit(sd):     # UGATIT.save's {genA2B, genB2A, dis*}: before the ResNet parser
        return _ugatit_generator(sd, path, options)
    if looks_like_animegan(sd):   # the animegan2-pytorch port: before the ResNet parser, which would claim it
        if set(options or {}) - set(FILE_OPTIONS):
            raise ValueError(f"{path}: options {sorted(set(options) - set(FILE_OPTIONS))} apply to "
                             f"{_options_owner(set(options) - set(FILE_OPTIONS))}; this is an AnimeGANv2 generator "
                             "(it takes align_corners): drop them")
        from interp_gan.models.animegan import AnimeGANv2Generator, parse_animegan, remap_animegan_state_dict
        return _family_generator(sd, path, AnimeGANv2Generator, lambda d: parse_animegan(d, **(options or {})),
                                 remap_animegan_state_dict, "AnimeGANv2", "animegan_v2")
    from interp_gan.models import munit
    if munit.looks_like_munit(sd):   # gen_*.pt {'a': AdaINGen, 'b': AdaINGen}: one direction, options its own
        if set(options or {}) - set(munit.FILE_OPTIONS):
            raise ValueError(f"{path}: options {sorted(set(options) - set(munit.FILE_OPTIONS))} do not apply to a MUNIT "
                             f"generator file; it takes {', '.join(munit.FILE_OPTIONS)} (file.pt#direction=b2a)")
        opts = {k: munit.check_option(k, v) for k, v in (options or {}).items()}
        return _family_generator(sd, path, munit.MUNITTranslator, lambda d: munit.parse_munit(d, **opts),
                                 munit.remap_munit, "MUNIT", "munit")
    if options:
        raise ValueError(f"{path}: options {sorted(options)} apply to {_options_owner(options)}; this "
                         "state_dict is not one: drop the '#...' part")
    if any(k in sd and isinstance(sd[k], dict) for k in _V2_NETS):
        return _stargan_v2_model(sd, path)
    if "model.1.weight" in sd and _is_reference_cyclegan(sd):
        cfg = infer_cyclegan_config(sd)
        check_model_size(lambda: CycleGANGenerator(**cfg), f"{path}: the CycleGAN generator its tensors imply ({cfg})")
        G = CycleGANGenerator(**cfg)
        G.load_state_dict(sd)
        return G, {"name": "cyclegan", **cfg}
    if is_stargan_state_dict(sd):
        try:
            from interp_gan.models.stargan import infer_stargan_config
            check_model_size(lambda: StarGANGenerator(**infer_stargan_config(sd)),
                             "the StarGAN generator its tensors imply")
            G = StarGANGenerator.from_reference(sd)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        return G, {"name": "stargan_v1", "conv_dim": G.conv_dim, "c_dim": G.c_dim, "repeat_num": G.repeat_num}
    from interp_gan.models.unet_generator import looks_like_unet
    if looks_like_unet(sd):       # pix2pix / CycleGAN --netG unet_*: before the ResNet family parser
        from interp_gan.models.unet_generator import UnetGenerator, parse_unet_generator, remap_unet_state_dict
        return _family_generator(sd, path, UnetGenerator, parse_unet_generator, remap_unet_state_dict,
                                 "U-Net", "unet_generator")
    from interp_gan.models import fast_neural_style as fns
    if fns.looks_like_fast_neural_style(sd):     # pytorch/examples fast_neural_style: before the ResNet parser
        return _family_generator(sd, path, fns.FastNeuralStyleNet, fns.parse_fast_neural_style,
                                 fns.remap_fast_neural_style, "fast neural style", "fast_neural_style")
    stargan_d = "main.0.weight" in sd and {"conv1.weight", "conv2.weight"} <= set(sd)
    if not stargan_d:              # a netD / CUT's netF / an empty file: one line naming the generator's file
        from interp_gan.subject.companion_nets import refuse_companion
        refuse_companion(sd, path)
    if not stargan_d and _looks_like_resnet_generator(sd):
        from interp_gan.models.resnet_generator import ResnetGenerator, parse_resnet_generator, remap_state_dict
        return _family_generator(sd, path, ResnetGenerator, parse_resnet_generator, remap_state_dict,
                                 "ResNet", "resnet_generator")
    hint = ""
    if stargan_d:
        hint = " It looks like a StarGAN discriminator (conv1/conv2 heads): pass the generator (*-G.ckpt)."
    raise ValueError(f"{path} is neither a CycleGAN nor a StarGAN v1 generator state_dict nor a StarGAN v2 "
                     "checkpoint: expected CycleGAN keys like 'model.1.weight' (a U-Net: 'model.model.0.weight'), or StarGAN's 'main.0.weight' "
                     "(more than 3 input channels) with residual blocks 'main.<i>.main.0.weight', or StarGAN v2's "
                     "'generator' / 'mapping_network' / 'style_encoder' state_dicts (*_nets_ema.ckpt); "
                     f"its first keys are {list(sd)[:4]}.{hint} "
                     "For another architecture use --model file.py:factory")


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
    if model["name"] == "stylegan2":
        from interp_gan.subject.stylegan import stylegan_subject
        D = None if discriminator is None else discriminator.to(device).eval().requires_grad_(False)
        return stylegan_subject(G.eval().requires_grad_(False), class_names=style_names, meta=meta,
                                discriminator=D, **(options or {}))
    if model["name"] == "stargan_v1":
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
    if model["name"] in ("cyclegan", "resnet_generator"):     # tanh, range, ReLU, padding: assumed, said
        from interp_gan.models.resnet_generator import family_notes
        meta = {**meta, **family_notes(model)}
    return Subject.wrap_module(G, style_names=list(style_names or ["translated"]), meta=meta).eval()


def _rosinality_generator(sd: dict, path: Path, options: dict | None) -> tuple[nn.Module, dict, dict]:
    """(our StyleGAN2Generator, model config, notes) of a rosinality/stylegan2-pytorch checkpoint; the
    rebuilt discriminator (or None) is ``notes["_D"]``."""
    from interp_gan.models.rosinality_stylegan2 import load_generator

    if options:
        raise ValueError(f"{path}: options {sorted(options)} apply to {_options_owner(options)}; this is a "
                         "rosinality StyleGAN2 checkpoint, which takes space, psi, cutoff, noise, noise_seed")
    try:
        G, D, notes = load_generator(sd)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return G, {"name": "stylegan2", **G.config}, {**notes, "_D": D}


def _from_pth(path: Path, device: torch.device, options: dict | None = None,
              stylegan: dict | None = None) -> Subject:
    """A CycleGAN or StarGAN v1 reference-layout state_dict, a StarGAN v2 ``*_nets_ema.ckpt``, or a
    rosinality StyleGAN2 checkpoint (``stylegan``: its space / truncation / noise options)."""
    from interp_gan.models.rosinality_stylegan2 import looks_like_rosinality

    sd = _read_state_dict(path)
    if looks_like_rosinality(sd):    # before every state-dict family parser
        G, model, notes = _rosinality_generator(sd, path, options)
        D = notes.pop("_D")
        meta = {"model": model, "checkpoint_sha256": sha256_file(path), "checkpoint_path": str(path), **notes}
        return _subject_of(G, model, None, meta, device, stylegan, D)
    if stylegan:
        raise ValueError(f"{path}: options {sorted(stylegan)} apply to StyleGAN2 subjects only (an NVlabs .pkl, a "
                         "rosinality/stylegan2-pytorch checkpoint, or a converted .safetensors); this state dict is "
                         "not one: drop the '#...' part (an AnimeGANv2 generator takes align_corners=true|false, a "
                         "U-GAT-IT params file direction=A2B|B2A, a MUNIT gen_*.pt takes direction=a2b|b2a, activ, "
                         "pad_type)")
    G, model = _reference_generator(sd, path, options)
    meta = {"model": model, "checkpoint_sha256": sha256_file(path), "checkpoint_path": str(path)}
    if model["name"] == "stargan_v1":
        meta["normalization"] = _STARGAN_NORM
    if model["name"] == "fast_neural_style":     # [0, 255] network, dropped running statistics
        from interp_gan.models.fast_neural_style import subject_meta
        meta.update(subject_meta(sd))
    if model["name"] == "munit":                 # dropped running statistics of the content encoder, if any
        from interp_gan.models.munit import munit_file_notes
        meta.update(munit_file_notes(sd))
    if model.get("w_hpf"):
        meta["face_masks"] = _hpf_note(model, sd)
    elif model["name"] == "stargan_v2" and "fan" in sd:    # the released AFHQ file carries one too
        meta["fan_ignored"] = ("the file's 'fan' entry (face-landmark network) is not loaded: this generator has "
                               "w_hpf=0 and never uses face masks")
    subject = _subject_of(G, model, None, meta, device)
    if path.suffix == ".safetensors":    # another tool's file: say how it was taken, first among the notes
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
        raise ValueError(f"got style names {names} for a StyleGAN2 with c_dim={G.c_dim}; give {len(default)} "
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

    src, family = _split_family_options(src)
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise FileNotFoundError(f"no such file: {src}")
    if out.exists():
        raise FileExistsError(f"{out} exists; choose another output path (files are never overwritten)")
    if src.suffix == ".pkl":
        return _convert_stylegan(src, out, style_names)
    sd = _read_state_dict(src)
    from interp_gan.models.rosinality_stylegan2 import looks_like_rosinality
    ros = looks_like_rosinality(sd)
    G, model, ros_notes = (_rosinality_generator(sd, src, family) if ros
                           else (*_reference_generator(sd, src, family), {}))
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
    D = ros_notes.pop("_D", None)
    meta.update(ros_notes)         # a rosinality StyleGAN2: its source, w_avg, noise and D notes travel along
    tensors = {f"G.{k}": v.detach().contiguous().cpu() for k, v in G.state_dict().items()}
    if D is not None:              # stored as an NVlabs pickle's D is (_from_converted rebuilds it)
        tensors |= {f"D.{k}": v.detach().contiguous().cpu() for k, v in D.state_dict().items()}
    blob = safetensors_bytes(tensors, metadata={META_KEY: json.dumps(meta)})
    return atomic_write(out, lambda fh: fh.write(blob))


convert_cyclegan = convert_checkpoint   # the old name (it also converts StarGAN now)


def _split_family_options(spec: str | Path) -> tuple[str, dict]:
    """``paprika.pt#align_corners=false`` / ``params.pt#direction=B2A`` / ``gen.pt#direction=b2a`` -> the path
    and the state-dict family's options (a path that exists as written, or a StyleGAN2 ``.pkl`` /
    ``.safetensors``, is left alone). ``direction`` is checked here (a2b | b2a, any case: U-GAT-IT's and
    MUNIT's); each family then takes only its own options."""
    from interp_gan.models.animegan import FILE_OPTIONS, split_file_options
    from interp_gan.models.munit import FILE_OPTIONS as MUNIT_OPTIONS, check_option
    from interp_gan.models.ugatit import FILE_OPTIONS as UGATIT_OPTIONS

    s = str(spec)
    if "#" not in s or Path(s).exists():
        return s, {}
    base, _, opts = s.partition("#")
    items = [o.strip() for o in opts.split(",") if o.strip()]
    keys = {o.partition("=")[0].strip() for o in items}
    named = set(UGATIT_OPTIONS) | set(MUNIT_OPTIONS)
    if base.endswith((".pkl", ".safetensors")) and not keys <= set(FILE_OPTIONS) | named:
        return s, {}     # StyleGAN2 options (stylegan.parse_options)
    if keys <= _STYLEGAN_KEYS:
        return s, {}     # the same, for a rosinality StyleGAN2 checkpoint (.pt)
    mine = [o for o in items if o.partition("=")[0].strip() in named]
    try:
        path, out = split_file_options(base + "#" + ",".join(o for o in items if o not in mine))
    except ValueError as e:
        raise ValueError(f"{e}; a U-GAT-IT params file takes direction=A2B|B2A, and a MUNIT gen_*.pt takes "
                         "direction=a2b|b2a, activ=relu|lrelu|selu|tanh, pad_type=reflect|replicate|zero") from None
    for o in mine:       # U-GAT-IT's direction (which generator), MUNIT's direction, activ, pad_type
        k, _, v = (t.strip() for t in o.partition("="))
        if k == "direction":
            if v.lower() not in ("a2b", "b2a"):
                raise ValueError(f"direction={v!r} in {s!r}: expected direction=a2b|b2a (A2B / B2A: U-GAT-IT's genA2B / "
                                 "genB2A; MUNIT's translation a -> b or b -> a)")
            out[k] = v
        else:
            out[k] = check_option(k, v)
    return path, out


_STYLEGAN_KEYS = {"space", "psi", "cutoff", "noise", "noise_seed", "truncation_psi", "truncation_cutoff", "noise_mode"}


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
    (a2b | b2a), ``activ`` and ``pad_type`` the same two ways."""
    dev = resolve_device(device)
    s, family = _split_family_options(spec)    # paprika.pt#align_corners=false (AnimeGANv2)
    from interp_gan.models.animegan import FILE_OPTIONS
    from interp_gan.models.munit import FILE_OPTIONS as MUNIT_OPTIONS
    from interp_gan.models.ugatit import FILE_OPTIONS as UGATIT_OPTIONS
    family |= {k: options.pop(k) for k in dict.fromkeys(FILE_OPTIONS + UGATIT_OPTIONS + MUNIT_OPTIONS)
               if k in options}   # or as keywords
    if family and ":" in s and not Path(s).exists() and not s.endswith(_FILE_SUFFIXES):
        raise ValueError(f"options {sorted(family)} apply to {_options_owner(family)}, state dicts (.pt / .pth); "
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
        raise TypeError(f"factory {s} returned {type(obj).__name__}; expected an nn.Module or a Subject")
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
    plain = path.suffix == ".safetensors" and _is_plain_safetensors(path)   # another tool's state dict
    if family and not plain and (path.suffix in (".safetensors", ".onnx", ".pkl") or _torch_kind(path) == "torchscript"):
        raise ValueError(f"options {sorted(family)} apply to {_options_owner(family)}, state dicts (.pt / .pth); "
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
