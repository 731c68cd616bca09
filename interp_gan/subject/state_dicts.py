"""A PyTorch state dict -> the generator it holds (docs/models.md, "Formats"): reading the file
without running pickled code, recognising the family from its keys and shapes, and the family
options a path may carry after ``#``.

    sd = read_state_dict(path)                               # weights only; a .safetensors without our metadata too
    G, model = reference_generator(sd, path, options)        # ValueError (one line) when no family fits
    path, options = split_family_options("paprika.pt#align_corners=false")

Networks we recognise and do not build (``models/known_layouts.py``: photo2cartoon, GANILLA, pix2pixHD's
LocalEnhancer, white-box cartoonization's port, pytorch-animeGAN's generators, and the upscalers RRDBNet,
SRVGGNetCompact, MSRResNet and EDSR) are refused first, naming them. The
families recognise themselves in order: U-GAT-IT, AnimeGANv2, MUNIT, StarGAN v2, the CycleGAN
reference, StarGAN v1, pix2pix U-Net, fast neural style, CartoonGAN, then the CycleGAN-family ResNet
parser, which refuses what is not its family. ``subject/loading.py`` builds the Subject around the module
(pytorch-AdaIN's decoder, which needs its VGG file and a style set, is taken there first:
``subject/adain.py``).
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
from torch import nn

from interp_gan.checkpoint import check_shapes
from interp_gan.guards import check_finite, check_model_size

__all__ = ["read_state_dict", "reference_generator", "split_family_options", "options_owner", "select_network",
           "is_plain_safetensors", "refuse_unreadable", "flat_tensors", "V2_NETS"]


def refuse_unreadable(path: Path, e: Exception) -> None:
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
                         "weights_only=True loading refuses (interp_gan does not run pickled code); save the weights "
                         "alone where that class imports: torch.save(model.state_dict(), 'G.pth'), or the "
                         "checkpoint's generator entry (torch.save(ckpt['state_dict'], 'G.pth'))")
    first = (text.strip().splitlines()[0] if text.strip() else type(e).__name__).split(". ")[0]
    raise ValueError(f"{path} is not a readable PyTorch file ({type(e).__name__}: {first[:160]}); it is truncated, "
                     "corrupt or of another format: save or copy it again")


def is_plain_safetensors(path: Path) -> bool:
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
    """Flat tensors; StarGAN v2's networks (``generator.*``, ``mapping_network.*``, ...) and a rosinality
    StyleGAN2 checkpoint's entries (``g_ema.*``, ``d.*``, ``latent_avg``) nested again."""
    from safetensors.torch import load_file

    from interp_gan.models.rosinality_files import nest_flattened

    sd = load_file(str(path))
    ros = nest_flattened(sd)
    if ros is not None:
        return ros
    heads = {k.split(".", 1)[0] for k in sd}
    if heads and heads <= set(V2_NETS) and "generator" in heads:
        nested: dict = {}
        for k, v in sd.items():
            net, rest = k.split(".", 1)
            nested.setdefault(net, {})[rest] = v
        return nested
    return sd


def _data_globals() -> list:
    """Classes of plain data that training scripts save beside the weights, allowed to ``weights_only``
    loading: ``argparse.Namespace`` (rosinality's ``args``) and NumPy scalars (``np.float64(best_loss)``,
    ``np.int64(epoch)``: a dtype and its bytes, no code), numeric and bool dtypes only."""
    import argparse

    import numpy as np
    try:
        from numpy._core.multiarray import scalar
    except ImportError:      # NumPy 1.x
        from numpy.core.multiarray import scalar
    kinds = [getattr(np.dtypes, n) for n in dir(getattr(np, "dtypes", None) or object) if n.endswith("DType") and
             any(n.startswith(p) for p in ("Bool", "Int", "UInt", "Float", "Complex", "Byte", "UByte", "Short",
                                           "UShort", "Long", "ULong", "LongLong", "ULongLong", "Half", "Double",
                                           "LongDouble", "CLongDouble", "CDouble", "CFloat"))]
    return [argparse.Namespace, scalar, np.dtype, *kinds]


def read_state_dict(path: Path) -> dict:
    try:     # plain data beside the tensors: rosinality's argparse.Namespace, NumPy scalars (_data_globals)
        with torch.serialization.safe_globals(_data_globals()), warnings.catch_warnings():
            # a TorchScript archive is refused below in one line; torch's own warning about it is noise
            warnings.filterwarnings("ignore", message=".*looks like a TorchScript archive")
            sd = (_read_safetensors_state_dict(path) if path.suffix == ".safetensors"
                  else torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:  # pickled modules / code are refused on purpose
        refuse_unreadable(path, e)
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict) and "state_dict_ema" not in sd:
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"{path} holds a {type(sd).__name__}; expected a state_dict (dict of tensors)")
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    check_finite(flat_tensors(sd), path)
    return sd


def select_network(sd: dict, net: str, path: Path) -> dict:
    """The network ``FILE#net=NAME`` names: the entry ``sd[NAME]`` (a dict), else the keys under ``NAME.``
    (a flat dict, Lightning's ``state_dict``), prefix removed; one line listing the file's entries otherwise."""
    if isinstance(sd.get(net), dict):
        return sd[net]
    inner = {k[len(net) + 1:]: v for k, v in sd.items() if k.startswith(net + ".")}
    if inner:
        return inner
    entries = [k for k, v in sd.items() if isinstance(v, dict)] or sorted({k.split(".", 1)[0] for k in sd})
    raise ValueError(f"{path}: no network {net!r} in the file (#net={net}); it holds "
                     f"{', '.join(map(repr, entries[:12]))}{' ...' if len(entries) > 12 else ''}: name one of them")


def flat_tensors(sd: dict, prefix: str = ""):
    """(name, tensor) of a state_dict, nested dicts (StarGAN v2's networks) included."""
    for k, v in sd.items():
        if isinstance(v, dict):
            yield from flat_tensors(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


V2_NETS = ("generator", "mapping_network", "style_encoder", "discriminator", "fan")


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


def options_owner(keys) -> str:
    """Which families the '#' options of a state-dict path belong to (for one-line refusals)."""
    keys, owners = set(keys), []
    if "align_corners" in keys:
        owners.append("AnimeGANv2 generators (keys 'block_a.0.1.weight', ...)")
    if "direction" in keys:
        owners.append("U-GAT-IT params files (UGATIT.save's 'genA2B' / 'genB2A') and MUNIT generator files (gen_*.pt)")
    if keys & {"activ", "pad_type"}:
        owners.append("MUNIT generator files (gen_*.pt)")
    if "net" in keys:
        owners.append("state dicts holding several networks ({'netG_A': ..., 'netG_B': ...})")
    from interp_gan.subject.adain import FILE_OPTIONS as ADAIN_OPTIONS
    if keys & set(ADAIN_OPTIONS):
        owners.append("pytorch-AdaIN decoders (decoder.pth)")
    return " / ".join(owners or ["AnimeGANv2, U-GAT-IT, MUNIT and pytorch-AdaIN files"]) + " only"


def _ugatit_generator(sd: dict, path: Path, options: dict | None) -> tuple[nn.Module, dict]:
    """genA2B (or genB2A: ``#direction=B2A``) of a ``UGATIT.save`` params file, or a lone U-GAT-IT generator."""
    from interp_gan.models import ugatit

    other = sorted(set(options or {}) - set(ugatit.FILE_OPTIONS))
    if other:
        raise ValueError(f"{path}: options {other} apply to {options_owner(other)}; this is a U-GAT-IT file, "
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


def reference_generator(sd: dict, path: Path, options: dict | None = None) -> tuple[nn.Module, dict]:
    """The generator a reference-layout state_dict holds (CycleGAN ResNet or pix2pix U-Net, StarGAN v1,
    the StarGAN v2 wrapper of a ``*_nets_ema.ckpt``, AnimeGANv2, U-GAT-IT, fast neural style, CartoonGAN, or
    one direction of a MUNIT ``gen_*.pt``) and its model config; ``options`` apply to AnimeGANv2 (``file#align_corners=false``),
    U-GAT-IT (``file#direction=B2A``) and MUNIT (``file#direction=b2a,activ=lrelu,pad_type=zero``) only."""
    from interp_gan.models.animegan import FILE_OPTIONS, looks_like_animegan
    from interp_gan.models.cyclegan import CycleGANGenerator, infer_cyclegan_config
    from interp_gan.models.stargan import StarGANGenerator, is_stargan_state_dict
    from interp_gan.models.ugatit import looks_like_ugatit

    from interp_gan.models.known_layouts import refuse_known_layout
    refuse_known_layout(sd, path)  # photo2cartoon, GANILLA, ...: named before a family reader misreads them
    if looks_like_ugatit(sd):     # UGATIT.save's {genA2B, genB2A, dis*}: before the ResNet parser
        return _ugatit_generator(sd, path, options)
    if looks_like_animegan(sd):   # the animegan2-pytorch port: before the ResNet parser, which would claim it
        if set(options or {}) - set(FILE_OPTIONS):
            raise ValueError(f"{path}: options {sorted(set(options) - set(FILE_OPTIONS))} apply to "
                             f"{options_owner(set(options) - set(FILE_OPTIONS))}; this is an AnimeGANv2 generator "
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
        raise ValueError(f"{path}: options {sorted(options)} apply to {options_owner(options)}; this "
                         "state_dict is not one: drop the '#...' part")
    if any(k in sd and isinstance(sd[k], dict) for k in V2_NETS):
        return _stargan_v2_model(sd, path)
    if "model.1.weight" in sd and _is_reference_cyclegan(sd):
        cfg = infer_cyclegan_config(sd)
        check_model_size(lambda: CycleGANGenerator(**cfg), f"{path}: the CycleGAN generator its tensors imply ({cfg})")
        G = CycleGANGenerator(**cfg)
        G.load_state_dict(sd)
        return G, {"name": "cyclegan", **cfg}
    if not is_stargan_state_dict(sd):    # {"G": ..., "D": ..., "epoch": 3}, `_orig_mod.`: the generator inside
        from interp_gan.models.resnet_generator import unwrap_state_dict
        inner = unwrap_state_dict(sd)
        sd = inner if is_stargan_state_dict(inner) else sd
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
    from interp_gan.models import cartoongan
    if cartoongan.looks_like_cartoongan(sd):     # the CartoonGAN test port's Transformer: before the ResNet parser
        return _family_generator(sd, path, cartoongan.CartoonGANGenerator, cartoongan.parse_cartoongan,
                                 cartoongan.remap_cartoongan, "CartoonGAN", "cartoongan")
    stargan_d = "main.0.weight" in sd and {"conv1.weight", "conv2.weight"} <= set(sd)
    if not stargan_d:              # a netD / CUT's netF / an empty file: one line naming the generator's file
        from interp_gan.subject.companion_nets import refuse_companion
        refuse_companion(sd, path)
    if not stargan_d and _looks_like_resnet_generator(sd):
        from interp_gan.models.resnet_generator import ResnetGenerator, parse_resnet_generator, remap_state_dict
        return _family_generator(sd, path, ResnetGenerator, parse_resnet_generator, remap_state_dict,
                                 "ResNet", "resnet_generator")
    hint = ""
    first = next((k for k, v in sd.items() if getattr(v, "dim", lambda: 0)() == 4), None)
    if first is not None and not stargan_d and sd[first].shape[1] > 4:
        raise ValueError(f"{path}: its first conv ({first!r}) takes {sd[first].shape[1]} input channels; interp_gan "
                         "feeds RGB photos (3 channels; 1-channel generators get their luma). What the others hold (a "
                         "label map, as pix2pixHD's label_nc models take; a mask) is not in the weights: load it with "
                         "--model file.py:factory, a module that builds its input from RGB")
    if stargan_d:
        hint = " It looks like a StarGAN discriminator (conv1/conv2 heads): pass the generator (*-G.ckpt)."
    raise ValueError(f"{path} is neither a CycleGAN nor a StarGAN v1 generator state_dict nor a StarGAN v2 "
                     "checkpoint: expected CycleGAN keys like 'model.1.weight' (a U-Net: 'model.model.0.weight'), or StarGAN's 'main.0.weight' "
                     "(more than 3 input channels) with residual blocks 'main.<i>.main.0.weight', or StarGAN v2's "
                     "'generator' / 'mapping_network' / 'style_encoder' state_dicts (*_nets_ema.ckpt); "
                     f"its first keys are {list(sd)[:4]}.{hint} "
                     "For another architecture use --model file.py:factory")


def split_family_options(spec: str | Path) -> tuple[str, dict]:
    """``paprika.pt#align_corners=false`` / ``params.pt#direction=B2A`` / ``gen.pt#direction=b2a`` /
    ``decoder.pth#vgg=vgg_normalised.pth,styles=a+b`` -> the path and the state-dict family's options (a
    path that exists as written, or a StyleGAN2 ``.pkl`` / ``.safetensors``, is left alone). ``direction`` is
    checked here (a2b | b2a, any case: U-GAT-IT's and MUNIT's), and pytorch-AdaIN's options (``styles``: names
    joined by ``+``); each family then takes only its own options."""
    from interp_gan.models.animegan import FILE_OPTIONS, split_file_options
    from interp_gan.models.munit import FILE_OPTIONS as MUNIT_OPTIONS, check_option
    from interp_gan.models.ugatit import FILE_OPTIONS as UGATIT_OPTIONS
    from interp_gan.subject import adain

    s = str(spec)
    if "#" not in s or Path(s).exists():
        return s, {}
    base, _, opts = s.partition("#")
    items = [o.strip() for o in opts.split(",") if o.strip()]
    keys = {o.partition("=")[0].strip() for o in items}
    named = set(UGATIT_OPTIONS) | set(MUNIT_OPTIONS) | set(adain.FILE_OPTIONS) | {"net"}
    if base.endswith((".pkl", ".safetensors")) and not keys <= set(FILE_OPTIONS) | named:
        return s, {}     # StyleGAN2 options (stylegan.parse_options)
    if keys <= _STYLEGAN_KEYS:
        return s, {}     # the same, for a rosinality StyleGAN2 checkpoint (.pt)
    mine = [o for o in items if o.partition("=")[0].strip() in named]
    try:
        path, out = split_file_options(base + "#" + ",".join(o for o in items if o not in mine))
    except ValueError as e:
        raise ValueError(f"{e}; a U-GAT-IT params file takes direction=A2B|B2A, a MUNIT gen_*.pt takes "
                         "direction=a2b|b2a, activ=relu|lrelu|selu|tanh, pad_type=reflect|replicate|zero, and a "
                         "pytorch-AdaIN decoder vgg, alpha, style_set, styles, style_size") from None
    for o in mine:       # U-GAT-IT's direction (which generator), MUNIT's direction, activ, pad_type, AdaIN's
        k, _, v = (t.strip() for t in o.partition("="))
        if k == "net":         # which network of a multi-network file (select_network)
            if not v:
                raise ValueError(f"net= in {s!r} names no entry: give the file's key or key prefix, e.g. net=netG_B")
            out[k] = v
        elif k == "direction":
            if v.lower() not in ("a2b", "b2a"):
                raise ValueError(f"direction={v!r} in {s!r}: expected direction=a2b|b2a (A2B / B2A: U-GAT-IT's genA2B / "
                                 "genB2A; MUNIT's translation a -> b or b -> a)")
            out[k] = v
        elif k in adain.FILE_OPTIONS:
            out[k] = adain.check_option(k, v)
        else:
            out[k] = check_option(k, v)
    return path, out


_STYLEGAN_KEYS = {"space", "psi", "cutoff", "noise", "noise_seed", "truncation_psi", "truncation_cutoff", "noise_mode"}
