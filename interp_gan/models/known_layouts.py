"""Networks recognised by their state-dict keys that interp_gan does not build (docs/models.md, "Recognised
and refused"): each is named in one line with the way in, before a family reader can misread it.

    refuse_known_layout(sd, path)     # ValueError "FILE is a GANILLA generator (...); ..." or nothing
    known_layout(sd)                  # "a GANILLA generator (...)" or None

A family reader that meets such a file fails with a message about its own layout ("not a U-GAT-IT
generator", "no residual blocks"), which does not tell the user what they hold; worse, a network whose
keys a reader accepts would run as another architecture. Each signature needs two key patterns that only
that network's released code writes, looked for at any depth of nesting (``{"genA2B": ...}``,
``{"params_ema": ...}``) and under any prefix (``module.``, ``netG.``). An upscaler's line gives the scale
its keys imply (RRDBNet: ``conv_first``'s input channels; SRVGGNetCompact: the last conv's outputs over
the first's inputs, scale squared; MSRResNet, EDSR: the convs before each pixel shuffle).
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


_UPSCALER = ": an upscaler, not a style translator, whose output --model resizes back to the input's size"


def _rrdbnet(flat: dict) -> str | None:
    blocks = _find(flat, r"(?:body|RRDB_trunk)\.\d+\.(?:rdb|RDB)[123]\.conv1\.weight$")
    if not blocks or not _find(flat, r"conv_first\.weight$"):
        return None
    w = flat[_find(flat, r"conv_first\.weight$")[0]]
    cin = int(w.shape[1]) if w.dim() == 4 else None
    scale = {3: "x4", 12: "x2 (a pixel-unshuffled input)", 48: "x1 (a pixel-unshuffled input)"}.get(
        cin, f"{cin} input channels")
    return (f"an ESRGAN / Real-ESRGAN RRDBNet super-resolution network, {scale} (keys {blocks[0]!r}, "
            f"'conv_first.weight'){_UPSCALER}")


def _shuffle_scale(convs: list, nf: int) -> str:
    """x2**n for n convs to 4*nf channels (each before a x2 pixel shuffle), x3 for one conv to 9*nf."""
    outs = [int(w.shape[0]) for w in convs]
    if outs and all(o == 4 * nf for o in outs):
        return f"x{2 ** len(outs)}"
    if outs == [9 * nf]:
        return "x3"
    return f"upsampling convs to {outs} channels from {nf}"


def _msrresnet(flat: dict) -> str | None:
    blocks = _find(flat, r"body\.\d+\.conv1\.weight$")
    up1, hr = _find(flat, r"upconv1\.weight$"), _find(flat, r"conv_hr\.weight$")
    if not (blocks and up1 and hr):
        return None
    w = flat[up1[0]]
    up2 = _find(flat, r"upconv2\.weight$")
    scale = "x4" if up2 else {4: "x2", 9: "x3"}.get(int(w.shape[0]) // max(int(w.shape[1]), 1),
                                                    f"'upconv1' to {int(w.shape[0])} channels")
    return (f"a BasicSR MSRResNet (modified SRResNet) super-resolution network, {scale} (keys {blocks[0]!r}, "
            f"{up1[0]!r}, {hr[0]!r}){_UPSCALER}")


def _edsr(flat: dict) -> str | None:
    blocks, after = _find(flat, r"body\.\d+\.conv1\.weight$"), _find(flat, r"conv_after_body\.weight$")
    if not (blocks and after):
        return None
    ups = sorted(_find(flat, r"upsample\.\d+\.weight$"), key=lambda k: int(k.rsplit(".", 2)[-2]))
    scale = _shuffle_scale([flat[k] for k in ups if flat[k].dim() == 4], int(flat[after[0]].shape[0]))
    return (f"an EDSR super-resolution network as BasicSR saves it, {scale} (keys {blocks[0]!r}, "
            f"{after[0]!r}){_UPSCALER}")


def _edsr_original(flat: dict) -> str | None:
    tail, head = _find(flat, r"tail\.0\.\d+\.weight$"), _find(flat, r"head\.0\.weight$")
    if not (_find(flat, r"sub_mean\.weight$") and _find(flat, r"add_mean\.weight$") and tail and head
            and _find(flat, r"body\.\d+\.body\.0\.weight$")) or _find(flat, r"body\.\d+\.body\.\d+\.body\."):
        return None       # the last: RCAN's residual groups, written by the same code base
    tail = sorted(tail, key=lambda k: int(k.rsplit(".", 2)[-2]))
    scale = _shuffle_scale([flat[k] for k in tail if flat[k].dim() == 4], int(flat[head[0]].shape[0]))
    return (f"an EDSR super-resolution network as EDSR-PyTorch saves it, {scale} (keys 'sub_mean.weight', "
            f"{tail[0]!r}){_UPSCALER}")


def _srvgg(flat: dict) -> str | None:
    """Real-ESRGAN's SRVGGNetCompact: a ModuleList ``body`` of 3x3 convs, each followed by a PReLU whose
    weight is one number per channel, the last conv to out * scale**2 channels for a pixel shuffle."""
    rx = re.compile(r"^((?:.*\.)?)body\.(\d+)\.weight$")
    nets: dict = {}
    for k, w in flat.items():
        m = rx.match(k)
        if m:
            nets.setdefault(m.group(1), {})[int(m.group(2))] = w
    for prefix, body in nets.items():
        prelu = [i for i, w in body.items() if w.dim() == 1]
        convs = sorted(i for i, w in body.items() if w.dim() == 4)
        if not (prelu and convs and convs[0] == 0 and all(
                i - 1 in body and body[i - 1].dim() == 4 and body[i - 1].shape[0] == body[i].numel() for i in prelu)):
            continue
        cin, cout = int(body[0].shape[1]), int(body[convs[-1]].shape[0])
        s = int(round((cout / cin) ** 0.5))
        scale = f"x{s}" if s * s * cin == cout else f"a last conv to {cout} channels"
        return (f"a Real-ESRGAN SRVGGNetCompact super-resolution network, {scale} ({len(convs) - 2} body convs, "
                f"PReLU weights of shape [C] such as {prefix}body.{prelu[0]}.weight, a pixel shuffle at the end)"
                f"{_UPSCALER}")
    return None


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


def _animegan_port(flat: dict) -> str | None:
    """ptran1203/pytorch-animeGAN's generators (AnimeGAN v1 and its own v2), which are not the layout of
    animegan2-pytorch that the AnimeGANv2 family reads."""
    if all(_find(flat, rf"{name}\.\d+\.") for name in ("encode_blocks", "res_blocks", "decode_blocks")):
        inv = _find(flat, r"res_blocks\.\d+\.depthwise_conv\.weight$")
        kind = f"inverted residual blocks {inv[0].rsplit('.', 2)[0]!r}" if inv else "residual blocks 'res_blocks'"
        return (f"an AnimeGAN (v1) generator as pytorch-animeGAN saves it ('encode_blocks', {kind}, 'decode_blocks'),"
                f" not the animegan2-pytorch layout the AnimeGANv2 reader builds: {_ANIME_FORWARD}")
    if _find(flat, r"conv_block1\.\d+\.conv\.weight$") and _find(flat, r"upsample1\.0\.conv_block\.conv\.weight$"):
        return ("an AnimeGANv2 generator as pytorch-animeGAN saves it ('conv_block1', 'res_blocks', 'upsample1', "
                f"'upsample2'), not the animegan2-pytorch layout the AnimeGANv2 reader builds: {_ANIME_FORWARD}")
    return None


_ANIME_FORWARD = ("its resampling (bilinear or nearest), padding, norms and LeakyReLU slopes live in its forward, "
                  "changed between the port's versions, and no weight says which")


_SIGNATURES = (_photo2cartoon, _ganilla, _local_enhancer, _whitebox, _animegan_port, _rrdbnet, _msrresnet, _edsr,
               _edsr_original, _srvgg)


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
