"""Networks recognised by their state-dict keys that interp_gan does not build (docs/models.md, "Recognised
and refused"): each is named in one line with the way in, before a family reader can misread it.

    refuse_known_layout(sd, path)     # ValueError "FILE is a GANILLA generator (...); ..." or nothing
    known_layout(sd)                  # "a GANILLA generator (...)" or None

A family reader that meets such a file fails with a message about its own layout ("not a U-GAT-IT
generator", "no residual blocks"), which does not tell the user what they hold; worse, a network whose
keys a reader accepts would run as another architecture. Each signature needs two key patterns that only
that network's released code writes, looked for at any depth of nesting (``{"genA2B": ...}``,
``{"params_ema": ...}``) and under any prefix (``module.``, ``netG.``).
"""
from __future__ import annotations

import re
from pathlib import Path

__all__ = ["known_layout", "refuse_known_layout"]

_WAY_IN = ("interp_gan does not build it, and no family it reads runs it correctly: load it with "
           "--model file.py:factory (a function returning the network with these weights; docs/models.md, "
           "'Your own model'), or export it with torch.jit.trace / torch.onnx.export, which load directly")


def _flat(sd: dict, prefix: str = "") -> dict:
    """Every tensor under its dotted name, nested dicts flattened (a params file's entries become prefixes)."""
    out = {}
    for k, v in sd.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif hasattr(v, "shape"):
            out[f"{prefix}{k}"] = v
    return out


def _find(flat: dict, pattern: str) -> list[str]:
    rx = re.compile(r"(?:^|\.)" + pattern)
    return [k for k in flat if rx.search(k)]


def _rrdbnet(flat: dict) -> str | None:
    blocks = _find(flat, r"(?:body|RRDB_trunk)\.\d+\.(?:rdb|RDB)[123]\.conv1\.weight$")
    if not blocks or not _find(flat, r"conv_first\.weight$"):
        return None
    w = flat[_find(flat, r"conv_first\.weight$")[0]]
    cin = int(w.shape[1]) if w.dim() == 4 else None
    scale = {3: "x4", 12: "x2 (a pixel-unshuffled input)", 48: "x1 (a pixel-unshuffled input)"}.get(
        cin, f"{cin} input channels")
    return (f"an ESRGAN / Real-ESRGAN RRDBNet super-resolution network, {scale} (keys {blocks[0]!r}, "
            "'conv_first.weight'): an upscaler, not a style translator, whose output --model resizes back to the "
            "input's size")


def _photo2cartoon(flat: dict) -> str | None:
    hg = _find(flat, r"HourGlass\d+\.HG\.")
    soft = _find(flat, r"DecodeBlock\d+\.norm1\.(?:w_gamma|c_gamma\.0\.weight)$")
    if not (hg and soft):
        return None
    return (f"a photo2cartoon generator (minivision-ai's variant of U-GAT-IT's, which the U-GAT-IT reader does not "
            f"build: hourglass blocks {hg[0].split('.HG.')[0]!r}, soft AdaLIN {soft[0]!r})")


def _ganilla(flat: dict) -> str | None:
    fuse = _find(flat, r"layer\d+\.\d+\.final_conv\.\d+\.weight$")
    fpn = _find(flat, r"fpn\.P\d_1\.weight$")
    if not (fuse and fpn):
        return None
    return (f"a GANILLA generator (a ResNet-18-like encoder whose blocks concatenate their input, {fuse[0]!r}, and an "
            f"FPN-like decoder, {fpn[0]!r})")


def _local_enhancer(flat: dict) -> str | None:
    first = _find(flat, r"model\d+_1\.\d+\.weight$")
    if not (first and _find(flat, r"model\d+_2\.")):
        return None
    n = len({re.search(r"model(\d+)_1\.", k).group(1) for k in first})
    return (f"a pix2pixHD LocalEnhancer ('--netG local': the global generator 'model.*' at a downsampled input, "
            f"then {n} local enhancer{'s' if n > 1 else ''} 'model1_1' / 'model1_2' at full size, their features "
            "summed)")


def _whitebox(flat: dict) -> str | None:
    if not (_find(flat, r"encoder0\.0\.weight$") and _find(flat, r"resblock0\.0\.weight$")
            and _find(flat, r"decoder\d\.\d+\.weight$")):
        return None
    return ("a white-box cartoonization generator as its PyTorch port saves it ('encoder0', 'resblock0', 'decoder0'; "
            "U-Net skips, bilinear upsampling and LeakyReLU in its forward, and a guided filter after it)")


_SIGNATURES = (_photo2cartoon, _ganilla, _local_enhancer, _whitebox, _rrdbnet)


def known_layout(sd: dict) -> str | None:
    """What the state dict holds, in words, when it is a network we recognise and do not build; else None."""
    flat = _flat(sd)
    for sig in _SIGNATURES:
        what = sig(flat)
        if what:
            return what
    return None


def refuse_known_layout(sd: dict, path: str | Path) -> None:
    """One line naming the network and the way in, for a network ``known_layout`` recognises."""
    what = known_layout(sd)
    if what:
        raise ValueError(f"{path} holds {what}; {_WAY_IN}")
