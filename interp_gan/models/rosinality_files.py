"""What a rosinality/stylegan2-pytorch file holds besides the generator's weights, and the other
shapes such a file takes (docs/models.md, "StyleGAN2 (rosinality/stylegan2-pytorch checkpoints)").

    sd = nest_flattened(flat) or flat        # {"g_ema.style.1.weight": t, "latent_avg": t} -> {"g_ema": {...}, ...}
    refuse_other_arch(ckpt["args"])          # train.py --arch swagan: one line
    checked, note = args_check(ckpt["args"], size=32, n_mlp=8, latent=512, widths={4: 512, ...})   # note None: agree

A ``.safetensors`` file holds flat tensors only, so people who convert a checkpoint with a generic
script flatten its nested dicts with dots (``g_ema.style.1.weight``, ``d.convs.0.0.weight``,
``latent_avg``; train.py's ``args`` and ``ada_aug_p`` are no tensors and drop out): ``nest_flattened``
undoes that. A generator's state dict saved alone (``style.1.weight``, ``input.input``, ...) needs
nothing: it is recognised as it is.

``train.py`` stores its options (``args``: an ``argparse.Namespace``) beside the weights. The
architecture is read from the tensors' shapes, which is what the weights need; ``args`` is checked
against them and a disagreement is said (a model note), never silently taken either way. The
channel widths ``train.py`` builds for a ``channel_multiplier`` cm: 512 up to 32 px, then 256 cm,
128 cm, 64 cm, 32 cm, 16 cm at 64 .. 1024 px.
"""
from __future__ import annotations

__all__ = ["ENTRIES", "nest_flattened", "refuse_other_arch", "args_check", "args_disagreement", "table_widths"]

ENTRIES = ("g_ema", "g", "d", "g_optim", "d_optim")      # train.py's / convert_weight.py's nested entries
_BELOW_64 = 512
_FROM_64 = {64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}


def nest_flattened(sd: dict) -> dict | None:
    """A rosinality checkpoint whose nested dicts were flattened with dots, nested again; None when
    ``sd`` is not one (every dotted key must start with one of ``ENTRIES``, and the result must hold
    a rosinality generator)."""
    from interp_gan.models.rosinality_stylegan2 import looks_like_rosinality

    dotted = {k for k in sd if isinstance(k, str) and "." in k}
    if not dotted or any(k.split(".", 1)[0] not in ENTRIES for k in dotted):
        return None
    nested: dict = {}
    for k, v in sd.items():
        if k in dotted:
            head, rest = k.split(".", 1)
            nested.setdefault(head, {})[rest] = v
        elif k in ENTRIES:       # an entry that is a tensor itself: no checkpoint of this layout
            return None
        else:
            nested[k] = v        # latent_avg (and ada_aug_p, when a script kept it)
    return nested if looks_like_rosinality(nested) else None    # a d-only file too: the loader names g_ema


def _field(args, name: str):
    """``args.name`` of train.py's Namespace (or ``args[name]`` of a dict some forks save); None if absent."""
    return args.get(name) if isinstance(args, dict) else getattr(args, name, None)


def refuse_other_arch(args) -> None:
    """train.py's ``--arch swagan`` (the wavelet generator) has other layers: one line, not a key list."""
    arch = _field(args, "arch")
    if arch not in (None, "stylegan2"):
        raise ValueError(f"its train.py args say arch={arch!r}; only --arch stylegan2 generators are read here "
                         "(SWAGAN's wavelet layers are not implemented); for another architecture use "
                         "--model file.py:factory")


def table_widths(size: int, channel_multiplier) -> dict[int, int]:
    """The width per resolution rosinality's ``Generator(size, ..., channel_multiplier)`` builds."""
    out, r = {}, 4
    while r <= size:
        out[r] = _BELOW_64 if r < 64 else int(_FROM_64.get(r, 0) * channel_multiplier)
        r *= 2
    return out


def args_check(args, size: int, n_mlp: int, latent: int, widths: dict[int, int]) -> tuple[list[str], str | None]:
    """(which of train.py's ``args`` size, n_mlp, latent, channel_multiplier were there to compare, one
    sentence naming those that the tensors contradict or None)."""
    if args is None:
        return [], None
    checked = [k for k in ("size", "n_mlp", "latent", "channel_multiplier") if _field(args, k) is not None]
    return checked, args_disagreement(args, size, n_mlp, latent, widths)


def args_disagreement(args, size: int, n_mlp: int, latent: int, widths: dict[int, int]) -> str | None:
    """One sentence naming what train.py's ``args`` (size, n_mlp, latent, channel_multiplier) say
    that the tensors do not, or None when every one it holds agrees (or there are no args)."""
    if args is None:
        return None
    read = {"size": size, "n_mlp": n_mlp, "latent": latent}
    diffs = [f"{k} {_field(args, k)!r} (the tensors: {v})" for k, v in read.items()
             if _field(args, k) is not None and _field(args, k) != v]
    cm = _field(args, "channel_multiplier")
    if cm is not None:
        try:
            want = table_widths(size, cm)
        except (TypeError, ValueError):
            want = None
        if want != widths:
            diffs.append(f"channel_multiplier {cm!r} (its widths at {size} px: {want}; the tensors: {widths})")
    if not diffs:
        return None
    return ("train.py's args disagree with the weights: " + "; ".join(diffs) +
            ". The architecture is read from the tensors' shapes, which is what loads")
