"""pytorch-AdaIN's ``decoder.pth`` with its ``vgg_normalised.pth`` -> a Subject whose style space is
AdaIN's target statistics (docs/models.md, "AdaIN"; the module: ``interp_gan/models/adain.py``).

    subject = load_subject("decoder.pth#vgg=vgg_normalised.pth")        # the VGG path: relative to the decoder's folder
    subject = load_subject("decoder.pth")                               # a vgg_normalised.pth beside it is used (said)
    subject = load_subject("decoder.pth#style_set=STYLE_DIR,styles=a+b,alpha=0.5,style_size=256")
    subject.style_code(ids, z)        # [N, 2C]: style i's relu4_1 means, then stds (the mean over its images)
    subject.stylize_code(content, code)   # any 2C-d statistics
    subject.encode_style(style_images, ids)   # one image's statistics, at the size it is given

Huang & Belongie (ICCV 2017): a style is the per-channel mean and standard deviation of the VGG
encoder's relu4_1 features of a style image, and AdaIN gives the content's features those statistics
before the decoder. So the style space is those 2C numbers (C = 512 in the port): style i of the subject
is the mean, over the images of style i of a style set, of their statistics (``style_set = "embedded"``
by default, interp_gan's offline set, or a folder STYLE_DIR/<style>/*.png; ``styles`` picks some, joined
by ``+``; ``style_size``: the side the style images are read at, 256 by default, the port's training
crops), and directions, interpolation and the embedding run in that space. ``generate(content, ids)``
decodes AdaIN(f(content), code_i) with the trade-off ``alpha`` (1 by default, test.py's ``--alpha``).

Range: the port feeds RGB in [0, 1] and its ``save_image`` clamps the output to [0, 1] when it writes it;
the subject feeds (x + 1) / 2 and clamps the decoder's output to [0, 1], the image the port would write,
before mapping it to [-1, 1]; hooks see the raw decoder values.

The VGG file alone is refused in one line naming the decoder to give (it is the fixed feature net, not
the generator), and so is a decoder without a VGG. ``convert`` does not write this pair (two files and a
style set): it is analysed from the files.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from interp_gan.models.adain import (AdaINNet, looks_like_adain_decoder, looks_like_adain_vgg, parse_adain_decoder,
                                     parse_adain_vgg, remap_adain)
from interp_gan.subject.protocol import Subject

__all__ = ["FILE_OPTIONS", "VGG_NAME", "adain_kind", "check_option", "load_adain_subject", "refuse_convert"]

FILE_OPTIONS = ("vgg", "alpha", "style_set", "styles", "style_size")    # what decoder.pth#... takes
VGG_NAME = "vgg_normalised.pth"          # the port's name for the encoder, looked for beside the decoder
_USAGE = "decoder.pth#vgg=vgg_normalised.pth,alpha=1,style_set=embedded,styles=lite01+lite17,style_size=256"


def adain_kind(sd: dict) -> str | None:
    """"decoder" or "vgg" for a state dict in the port's layout (by its first layers), else None."""
    return "decoder" if looks_like_adain_decoder(sd) else "vgg" if looks_like_adain_vgg(sd) else None


def check_option(key: str, value):
    """One option's value, checked; one line saying what each option takes otherwise."""
    try:
        if key in ("vgg", "style_set"):
            v = str(value).strip()
            if v:
                return v
        elif key == "alpha":
            v = float(value)
            if 0.0 <= v <= 1.0:
                return v
        elif key == "styles":
            v = [s.strip() for s in (value.split("+") if isinstance(value, str) else value)]
            if v and all(v):
                return v
        elif key == "style_size":
            v = int(value)
            if v >= 16 and v == float(value):
                return v
    except (TypeError, ValueError):
        pass
    raise ValueError(f"pytorch-AdaIN option {key}={value!r}: expected vgg=FILE, alpha in [0, 1], style_set=embedded|"
                     f"STYLE_DIR, styles=NAME+NAME..., style_size >= 16 (e.g. {_USAGE})")


def _decoder_near(path: Path) -> str:
    found = sorted(p.name for p in path.parent.glob("decoder*.pth*") if p.is_file())
    return f"{path.parent / found[0]}#vgg={path.name}" if found else f"decoder.pth#vgg={path}"


def _refuse_vgg(path: Path) -> None:
    raise ValueError(f"{path} is pytorch-AdaIN's VGG encoder (vgg_normalised.pth), the fixed feature net the decoder "
                     f"reads, not the generator; load the decoder with it: {_decoder_near(path)}")


def refuse_convert(sd: dict, path: Path) -> None:
    """One line when ``convert`` is given either file of the pair."""
    kind = adain_kind(sd)
    if kind == "vgg":
        _refuse_vgg(path)
    if kind == "decoder":
        raise ValueError(f"{path} is a pytorch-AdaIN decoder, which convert does not write (its subject is two files "
                         f"and a style set); analyze or inspect it as it is: {path.name}#vgg={VGG_NAME}")


def _vgg_file(path: Path, given: str | None) -> tuple[Path, str | None]:
    """The VGG file and, when it was not named, the note that says which one was taken."""
    if given is None:
        beside = path.parent / VGG_NAME
        if beside.is_file():
            return beside, (f"vgg: no #vgg option; used {VGG_NAME} found beside the decoder ({beside}); "
                            f"{path.name}#vgg=FILE takes another")
        raise ValueError(f"{path} is a pytorch-AdaIN decoder, which decodes the relu4_1 features of the VGG encoder "
                         f"it was trained with: give that file, {path.name}#vgg={VGG_NAME} (relative to the "
                         f"decoder's folder), or put {VGG_NAME} beside it")
    q = Path(given).expanduser()
    if not q.is_absolute() and (path.parent / q).is_file():
        q = path.parent / q
    if not q.is_file():
        raise FileNotFoundError(f"{path}#vgg={given}: no such file (looked in {path.parent} and the current folder); "
                                f"name pytorch-AdaIN's {VGG_NAME}")
    return q, None


def _read_pair(sd: dict, path: Path, vgg_path: Path) -> tuple[AdaINNet, dict]:
    """The module with both files loaded (strict), and what the VGG file held beyond relu4_1."""
    from interp_gan.checkpoint import check_shapes
    from interp_gan.guards import check_model_size
    from interp_gan.subject.state_dicts import read_state_dict

    vgg = read_state_dict(vgg_path)
    if adain_kind(vgg) == "decoder":
        raise ValueError(f"{vgg_path} (given as the VGG of {path.name}) is a pytorch-AdaIN decoder; #vgg= names "
                         f"the encoder, {VGG_NAME}")
    try:
        enc_widths, enc_map = parse_adain_vgg(vgg)
    except ValueError as e:
        raise ValueError(f"{vgg_path} (the VGG of {path.name}): {e}") from None
    try:
        dec_widths, reads, dec_map = parse_adain_decoder(sd)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if reads != enc_widths[3]:
        raise ValueError(f"{path} decodes {reads}-channel features but the VGG {vgg_path.name} gives {enc_widths[3]} "
                         "at relu4_1: they are not a pair; give the VGG the decoder was trained with")
    cfg = {"enc_widths": enc_widths, "dec_widths": dec_widths}
    check_model_size(lambda: AdaINNet(**cfg), f"{path}: the AdaIN network its tensors imply")
    G = AdaINNet(**cfg)
    state = remap_adain(vgg, enc_map, sd, dec_map)
    check_shapes(G, state, path)
    G.load_state_dict(state)
    unused = sum(1 for k in enc_map if enc_map[k] is None and k.endswith(".weight"))
    return G, {"path": str(vgg_path), "convs_past_relu4_1": unused}


class _Statistics:
    """The style-set encoder (``style_set.style_set_codes``): images in [-1, 1] -> relu4_1 statistics [N, 2C]."""

    def __init__(self, G: AdaINNet, size: int):
        self.G, self.size = G, (size, size)

    def __call__(self, images: Tensor) -> Tensor:
        dev = next(self.G.parameters()).device
        return self.G.style_code((images.to(dev).float() + 1) / 2)


def load_adain_subject(sd: dict, path: Path, device: torch.device, options: dict | None = None) -> Subject:
    """The Subject of a decoder state dict (module docstring); ``options``: FILE_OPTIONS."""
    from interp_gan.subject.style_set import skipped_note, style_set_codes
    from interp_gan.util import sha256_file

    if adain_kind(sd) == "vgg":
        _refuse_vgg(path)
    other = sorted(set(options or {}) - set(FILE_OPTIONS))
    if other:
        raise ValueError(f"{path}: options {other} do not apply to a pytorch-AdaIN decoder; it takes "
                         f"{', '.join(FILE_OPTIONS)} ({_USAGE})")
    opts = {k: check_option(k, v) for k, v in (options or {}).items()}
    vgg_path, found = _vgg_file(path, opts.get("vgg"))
    G, vgg = _read_pair(sd, path, vgg_path)
    G.alpha = G.config["alpha"] = opts.get("alpha", 1.0)
    G = G.to(device).eval()
    size, source = opts.get("style_size", 256), opts.get("style_set", "embedded")
    if source != "embedded":
        source = str(Path(source).expanduser().resolve())
    skipped: dict[str, int] = {}
    names, codes, counts = style_set_codes(_Statistics(G, size), source, opts.get("styles"), skipped=skipped)
    codes = codes.to(device)
    c = G.config["enc_widths"][3]
    vgg_sha = sha256_file(vgg_path)
    model = {"name": "adain", **G.config, "vgg_sha256": vgg_sha, "style_set": source, "styles": names,
             "style_size": size}
    space = (f"AdaIN's target statistics of relu4_1: {c} channel means, then {c} standard deviations ({2 * c}-d); "
             f"style i is their mean over its images of the style set {source!r} ({size} px)")
    value_range = ("RGB in [0, 1] in and out, as the port: content fed as (x + 1) / 2; the decoder's output clamped "
                   "to [0, 1], as the port's save_image writes it, then mapped to [-1, 1]; hooks see the raw "
                   "decoder values")
    notes = [found] if found else []
    notes += [f"style space: {space}", f"range: {value_range}"] + ([skipped_note(skipped)] if skipped else [])
    if G.alpha != 1.0:
        notes.append(f"alpha={G.alpha:g} (test.py's content-style trade-off): the decoder reads "
                     "AdaIN(f) * alpha + f * (1 - alpha)")
    meta = {"model": model, "checkpoint_sha256": sha256_file(path), "checkpoint_path": str(path),
            "vgg": {**vgg, "sha256": vgg_sha, "how": "found beside the decoder" if found else "#vgg option"},
            "style_set": {"source": source, "styles": names, "images": dict(zip(names, counts)), "size": size,
                          **({"skipped": skipped} if skipped else {})},
            "style_space": space, "value_range": value_range, "model_notes": notes}

    def stylize(content: Tensor, code: Tensor) -> Tensor:
        out = G((content + 1) / 2, code.to(content.device, content.dtype))
        return out.clamp(0, 1) * 2 - 1

    def code_of(style_ids: Tensor) -> Tensor:
        return codes[style_ids.long().to(codes.device)]

    return Subject(generator=G, style_names=names,
                   _generate=lambda content, s, z=None: stylize(content, code_of(s)),
                   _style_code=lambda s, z: code_of(s), _stylize_code=stylize,
                   _encode_style=lambda images, s: G.style_code((images + 1) / 2),
                   latent_dim=0, style_dim=2 * c, meta=meta).eval()
