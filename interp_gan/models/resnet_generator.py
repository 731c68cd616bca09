"""CycleGAN-family ResNet generators as people actually save them, read from the state_dict alone.

    spec, keymap = parse_resnet_generator(state_dict)     # ValueError (one line) if a key has no place
    G = ResnetGenerator(spec)
    G.load_state_dict(remap_state_dict(state_dict, keymap))   # strict: every key placed

The family (Zhu et al., ICCV 2017 and its many re-implementations): a 7x7 stem conv, stride-2
downsampling convs, residual blocks (two 3x3 convs with equal in/out channels, under any
attribute name), upsampling by transposed conv or by resize-conv (x2 nearest upsample + 3x3
conv), a 7x7 head conv and tanh. CUT and FastCUT (Park et al., "Contrastive Learning for Unpaired
Image-to-Image Translation", ECCV 2020; github.com/taesungp/contrastive-unpaired-translation) use
the same generator with anti-aliased resampling (``models/blur.py``), recognised by the fixed
filters their files store as ``filt`` buffers: a downsampling stage is then a stride-1 conv, norm,
ReLU and a blur-pool layer (``--no_antialias`` off, the default), an upsampling stage a
fixed-filter upsampling layer, then a stride-1 conv, norm, ReLU (``--no_antialias_up`` off); each
stage is read on its own, so either flag, both or neither load. Norm: plain instance norm (no
parameters; the reference's convs then carry biases), affine instance norm (weight/bias), batch
norm (running statistics; an InstanceNorm with ``track_running_stats`` computes the same in eval
mode), or none (no norm keys and no conv bias but the head's: ``--norm none``). Dropout in blocks
is identity in eval mode and has no parameters, so it is not modelled.

A chain of convs with those shapes is not enough (super-resolution, style and encoder networks have one
too), so ``_check_family`` also asks for the family's frame: a 7x7 stem from the image, a 7x7 head to
1-4 channels, as many up stages as down stages (at least one) so the head reads the stem's width, and,
where no norm is stored, a layout with room for the norm the biases imply (docs/models.md, "CycleGAN-family
ResNet generators"). What fails is refused in one line naming the conv.

What the weights cannot say and is assumed (the reference implementation's choices, listed in a
subject's ``model_notes`` by ``family_notes``): tanh output and [-1, 1] images, ReLU
activations, reflection padding for the 7x7 and block convs, zero padding (k-1)//2 for the strided
convs and for the stride-1 convs beside a blur layer, ``output_padding=1`` for odd-sized transposed
convs (0 for 4x4, so each doubles the size), and for resize-conv ``nn.Upsample(x2, 'nearest')``
then reflection pad 1 then an unpadded 3x3 conv.

The module names its layers by role: ``stem``, ``down1``.., ``blocks.<i>.conv1/conv2``,
``up1``.., ``head`` (each stage with ``conv``, ``norm``, ``act``; an anti-aliased stage also ``blur``,
after ``act`` going down, before ``conv`` going up), so hooks and globs address them sensibly
(``blocks.*.conv2``).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from interp_gan.models.blur import BlurDown, BlurUp, is_blur_filter
from interp_gan.models.registry import register_model
from interp_gan.models.wrappers import unwrap_choice, unwrap_state_dict  # noqa: F401  (re-exported)

__all__ = ["ResnetGenerator", "parse_resnet_generator", "remap_state_dict", "unwrap_state_dict", "unwrap_choice",
           "family_notes"]

_LEAVES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_FIX = "for another architecture use --model file.py:factory"
_STATS = {"running_mean", "running_var", "num_batches_tracked"}


def tracked_instance_stats(sd: dict) -> list[str]:
    """Keys of norms that hold running statistics and no weight: a parameter-free InstanceNorm that tracked
    them (PyTorch before 0.4, whose InstanceNorm kept ``running_mean`` / ``running_var``; the reference
    deletes them when loading: instance statistics at test time). A batch norm always has a weight here."""
    owners: dict[str, set] = {}
    for k in sd:
        path, _, leaf = k.rpartition(".")
        owners.setdefault(path, set()).add(leaf)
    drop = {p for p, leaves in owners.items() if "running_mean" in leaves and leaves <= _STATS}
    return [k for k in sd if k.rpartition(".")[0] in drop]


def _without_tracked_stats(sd: dict) -> dict:
    drop = set(tracked_instance_stats(sd))
    return {k: v for k, v in sd.items() if k not in drop} if drop else sd


def _owners(sd: dict) -> list[tuple[str, dict]]:
    """[(module path, {leaf: tensor})] in the state_dict's order (= module registration order)."""
    out: OrderedDict[str, dict] = OrderedDict()
    for k, v in sd.items():
        path, _, leaf = k.rpartition(".")
        if leaf not in _LEAVES and leaf != "filt":     # filt: a blur layer's fixed filter (CUT)
            path, leaf = k, ""
        out.setdefault(path, {})[leaf] = v
    return list(out.items())


def _is_blur(p: dict) -> bool:
    return set(p) == {"filt"} and is_blur_filter(p["filt"])


def _is_conv(p: dict) -> bool:
    return "weight" in p and p["weight"].dim() == 4 and set(p) <= {"weight", "bias"}


def _norm_kind(p: dict) -> str | None:
    w = p.get("weight", p.get("running_mean"))
    if w is None or w.dim() != 1:
        return None
    if "running_mean" in p:
        return "bn" if set(p) <= set(_LEAVES) else None
    return "in_affine" if set(p) <= {"weight", "bias"} else None


def _natural(path: str) -> list:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.split(".")]


def _common(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a.split("."), b.split(".")):
        if x != y:
            break
        n += 1
    return n


class _Unplaced(Exception):
    def __init__(self, reason: str, keys: list[str]) -> None:
        super().__init__(reason)
        self.reason, self.keys = reason, keys


def parse_resnet_generator(sd: dict) -> tuple[dict, dict[str, str]]:
    """(config, keymap): ``ResnetGenerator(**config)`` and source key -> module key for every key.

    Raises a one-line ValueError naming (a few of) the keys it could not place.
    """
    sd = unwrap_state_dict(sd)
    dropped = len(tracked_instance_stats(sd))
    owners = _owners(_without_tracked_stats(sd))
    try:
        cfg, keymap = _parse(owners)
        return ({**cfg, "tracked_stats_dropped": dropped} if dropped else cfg), keymap
    except _Unplaced as e:
        try:   # keys saved sorted as strings ('model.10' before 'model.2'): retry in natural order
            cfg, keymap = _parse(sorted(owners, key=lambda o: _natural(o[0])))
            return ({**cfg, "tracked_stats_dropped": dropped} if dropped else cfg), keymap
        except _Unplaced:
            pass
        keys = e.keys or [f"{p}.{leaf}" if leaf else p for p, d in owners for leaf in d]
        more = f" (and {len(keys) - 4} more)" if len(keys) > 4 else ""
        raise ValueError(f"not a CycleGAN-family ResNet generator ({e.reason}); could not place "
                         f"{', '.join(keys[:4])}{more}; {_FIX}") from None


def _parse(owners: list[tuple[str, dict]]) -> tuple[dict, dict[str, str]]:
    if not owners:
        raise _Unplaced("no tensors", [])
    keys_of = lambda i: [f"{owners[i][0]}.{leaf}" if leaf else owners[i][0] for leaf in owners[i][1]]
    # 1. a flat list of (conv owner index, norm owner index | None)
    convs: list[tuple[int, int | None]] = []
    blur_after: dict[int, int] = {}      # conv number -> owner index of the blur filter that follows it
    norm_kinds: set[str] = set()
    i = 0
    while i < len(owners):
        if _is_blur(owners[i][1]) and convs and len(convs) - 1 not in blur_after:
            blur_after[len(convs) - 1] = i
            i += 1
            continue
        if not _is_conv(owners[i][1]):
            raise _Unplaced(f"'{owners[i][0]}' is neither a conv nor a norm after a conv", keys_of(i))
        j = None
        if i + 1 < len(owners) and not _is_conv(owners[i + 1][1]) and not _is_blur(owners[i + 1][1]):
            kind = _norm_kind(owners[i + 1][1])
            if kind is None:
                raise _Unplaced(f"'{owners[i + 1][0]}' is neither a conv nor a norm", keys_of(i + 1))
            norm_kinds.add(kind)
            j = i + 1
        convs.append((i, j))
        i += 2 if j is not None else 1
    if len(norm_kinds) > 1:
        raise _Unplaced(f"mixed norms {sorted(norm_kinds)}", [])
    # no norm parameters: plain instance norm, whose convs carry biases in the reference, or no norm at
    # all (``--norm none`` / CUT's ``--normG none``: Identity, and no conv but the last has a bias)
    biased = ["bias" in owners[ci][1] for ci, _ in convs[:-1]]
    norm = next(iter(norm_kinds)) if norm_kinds else "none" if biased and not any(biased) else "in"
    W = lambda c: owners[convs[c][0]][1]["weight"]
    has_bias = lambda c: "bias" in owners[convs[c][0]][1]
    # 2. roles: stem, downs, blocks, ups, head
    if len(convs) < 2:
        raise _Unplaced("fewer than two convs", [])
    w0 = W(0)
    in_ch, c, k0 = int(w0.shape[1]), int(w0.shape[0]), int(w0.shape[2])
    layers: list[dict] = [{"role": "stem", "in": in_ch, "out": c, "k": k0, "bias": has_bias(0)}]
    src = [[0]]
    blurs: dict[int, int] = {}           # layer number -> owner index of its blur filter
    filt_of = lambda b: owners[b][1]["filt"]
    n = 1
    while n < len(convs) - 1 and W(n).shape[1] == c and W(n).shape[0] == 2 * c and W(n).shape[2] != 1:
        layers.append({"role": "down", "in": c, "out": 2 * c, "k": int(W(n).shape[2]), "bias": has_bias(n)})
        b = blur_after.get(n)
        if b is not None and filt_of(b).shape[0] == 2 * c:      # anti-aliased: stride-1 conv, norm, ReLU, blur-pool
            layers[-1]["blur"], blurs[len(layers) - 1] = int(filt_of(b).shape[-1]), b
        src.append([n])
        c, n = 2 * c, n + 1
    n_blocks = 0
    while n + 1 < len(convs) - 1 and all(tuple(W(m).shape) == (c, c, 3, 3) for m in (n, n + 1)):
        a, b = owners[convs[n][0]][0], owners[convs[n + 1][0]][0]
        shared = _common(a, b)
        outside = max([_common(a, owners[convs[m][0]][0]) for m in (n - 1, n + 2) if 0 <= m < len(convs)] + [0])
        if shared <= outside:   # the pair is not one residual block of its own
            break
        layers.append({"role": "block", "in": c, "out": c, "k": 3, "bias": has_bias(n) and has_bias(n + 1)})
        src.append([n, n + 1])
        n, n_blocks = n + 2, n_blocks + 1
    if n_blocks == 0:
        hint = "; a discriminator? pass the generator" if W(len(convs) - 1).shape[0] == 1 else ""
        raise _Unplaced(f"no residual blocks (pairs of 3x3 {c}->{c} convs) after the "
                        f"{len(layers) - 1} downsampling convs{hint}", keys_of(convs[n][0]))
    while n < len(convs) - 1:
        w, b = W(n), blur_after.get(n - 1)
        if b is not None and filt_of(b).shape[0] == c and w.shape[1] == c and w.shape[0] * 2 == c:
            up = "blur"                                   # fixed-filter upsampling, then a stride-1 conv
            blurs[len(layers)] = b
        elif w.shape[0] == c and w.shape[1] * 2 == c:      # ConvTranspose2d weight: [in, out, k, k]
            up = "transposed"
        elif w.shape[1] == c and w.shape[0] * 2 == c:
            up = "nearest"
        else:
            raise _Unplaced(f"'{owners[convs[n][0]][0]}' of shape {tuple(w.shape)} is not an upsampling "
                            f"conv from {c} channels", keys_of(convs[n][0]))
        layers.append({"role": "up", "in": c, "out": c // 2, "k": int(w.shape[2]), "bias": has_bias(n), "up": up})
        if up == "blur":
            layers[-1]["blur"] = int(filt_of(b).shape[-1])
        src.append([n])
        c, n = c // 2, n + 1
    _read_up_padding(layers, src, lambda m: owners[convs[m][0]][0])
    wh = W(n)
    if wh.shape[1] != c or convs[n][1] is not None:
        raise _Unplaced(f"the last conv '{owners[convs[n][0]][0]}' ({tuple(wh.shape)}) is not an output conv "
                        f"from {c} channels without norm", keys_of(convs[n][0]))
    layers.append({"role": "head", "in": c, "out": int(wh.shape[0]), "k": int(wh.shape[2]), "bias": has_bias(n)})
    src.append([n])
    _check_family(layers, [owners[convs[m[0]][0]][0] for m in src], [owners[ci][0] for ci, _ in convs],
                  norm, bool(norm_kinds), lambda li: keys_of(convs[src[li][0]][0]))
    stray = [b for b in blur_after.values() if b not in blurs.values()]
    if stray:
        name, filt = owners[stray[0]][0], owners[stray[0]][1]["filt"]
        raise _Unplaced(f"the blur filter '{name}' {tuple(filt.shape)} fits no anti-aliased down- or upsampling "
                        f"stage", [f"{owners[b][0]}.filt" for b in stray])
    for role, side in (("down", "after"), ("up", "before")):     # the reference sets one flag per direction
        have = [li for li, lay in enumerate(layers) if lay["role"] == role and "blur" in lay]
        lack = [li for li, lay in enumerate(layers) if lay["role"] == role and "blur" not in lay]
        if have and lack:
            ci, (ref, p) = convs[src[lack[0]][0]][0], owners[blurs[have[0]]]
            raise _Unplaced(f"{_stage_names(layers)[lack[0]]} has no blur filter {side} its conv "
                            f"'{owners[ci][0]}' while another {role} stage has one ('{ref}.filt' "
                            f"{tuple(p['filt'].shape)}): a missing 'filt'?", keys_of(ci))
    # 3. keymap: source owner -> module path
    cfg = {"layers": layers, "norm": norm}
    keymap: dict[str, str] = {}
    names = _stage_names(layers)
    for name, lay, convs_of in zip(names, layers, src):
        for s, m in enumerate(convs_of):
            ci, ni = convs[m]
            sub = f"conv{s + 1}" if lay["role"] == "block" else "conv"
            nsub = f"norm{s + 1}" if lay["role"] == "block" else "norm"
            for leaf in owners[ci][1]:
                keymap[f"{owners[ci][0]}.{leaf}"] = f"{name}.{sub}.{leaf}"
            if ni is not None:
                for leaf in owners[ni][1]:
                    keymap[f"{owners[ni][0]}.{leaf}"] = f"{name}.{nsub}.{leaf}"
    for li, b in blurs.items():
        keymap[f"{owners[b][0]}.filt"] = f"{names[li]}.blur.filt"
    return cfg, keymap


def _read_up_padding(layers: list[dict], src: list[list[int]], path) -> None:
    """Resize-conv upsampling pads with reflection (a ``ReflectionPad2d`` module before the conv, as
    CycleGAN's ``--netG`` forks write it) or with zeros inside the conv (``Upsample, Conv2d(padding=1)``,
    as eriklindernoren/PyTorch-GAN's CycleGAN): read from how many keyless modules stand between the last
    residual block and the first upsampling conv in the container index: one (the Upsample) means the
    conv pads itself. Sets ``pad = "zero"`` on the resize-conv stages then; otherwise leaves them alone."""
    ups = [li for li, lay in enumerate(layers) if lay["role"] == "up"]
    if not ups or any(layers[li]["up"] != "nearest" for li in ups) or layers[ups[0] - 1]["role"] != "block":
        return
    container, _, k = path(src[ups[0]][0]).rpartition(".")
    block = path(src[ups[0] - 1][0])
    if not k.isdigit():
        return
    if block.startswith(container + "."):
        p = block[len(container) + 1:].split(".", 1)[0]
        gap = int(k) - int(p) - 1 if p.isdigit() else None
    else:
        gap = int(k)
    if gap == 1:
        for li in ups:
            layers[li]["pad"] = "zero"


def _check_family(layers: list[dict], paths: list[str], conv_paths: list[str], norm: str, norm_stored: bool,
                  keys) -> None:
    """What the weights say must be the family's shape, not only a chain of convs that fits it: a 7x7 stem
    from the image, a 7x7 head to 1-4 channels, as many up stages as down stages (>= 1), so the head
    reads the stem's width; and where the norm was inferred from biases alone, nothing in the layout
    contradicting it. ``paths``: each layer's (first) conv; ``keys(li)``: layer li's source keys."""
    stem, head = layers[0], layers[-1]
    downs = [li for li, lay in enumerate(layers) if lay["role"] == "down"]
    ups = [li for li, lay in enumerate(layers) if lay["role"] == "up"]
    if stem["k"] != 7:
        raise _Unplaced(f"the first conv '{paths[0]}' is {stem['k']}x{stem['k']}; the family's stem is a 7x7 conv "
                        f"from the image", keys(0))
    if head["k"] != 7 or not 1 <= head["out"] <= 4:
        raise _Unplaced(f"the last conv '{paths[-1]}' is {head['k']}x{head['k']} to {head['out']} channels; the "
                        f"family's head is a 7x7 conv to 1-4 image channels", keys(len(layers) - 1))
    if not downs or len(ups) != len(downs) or head["in"] != stem["out"]:
        li = (ups or downs or [len(layers) - 1])[-1]
        raise _Unplaced(f"{len(downs)} downsampling and {len(ups)} upsampling stages (widths {stem['out']} -> "
                        f"{layers[downs[-1]]['out'] if downs else stem['out']} -> {head['in']}); the family has as "
                        f"many of each, at least one, and its head reads the stem's width", keys(li))
    if norm_stored:
        return
    if norm == "in":         # no norm keys, biased convs: instance norm, if a norm layer fits between the convs
        a, b = conv_paths[0], conv_paths[1]
        (pa, _, ia), (pb, _, ib) = a.rpartition("."), b.rpartition(".")
        if pa == pb and ia.isdigit() and ib.isdigit() and int(ib) - int(ia) == 2:
            raise _Unplaced(f"no norm parameters and biased convs, which the family reads as instance norm, but only "
                            f"one layer sits between '{a}' and '{b}' (the activation): a network without "
                            f"normalisation?", keys(0))
    elif norm == "none" and all(p.endswith(".0") and not any(q.startswith(p[:-1]) and q != p for q in conv_paths)
                                for p in conv_paths[:-1]):
        raise _Unplaced(f"no norm parameters and no conv biases, and every conv but the last sits alone at index 0 of "
                        f"its own container ('{conv_paths[0]}'), as a conv wrapped with a parameter-free norm "
                        f"(SPADE's pix2pixhd generator: conv + instance norm) is saved: instance norm or none cannot "
                        f"be read from the weights", keys(0))


def _stage_names(layers: list[dict]) -> list[str]:
    counts = {"down": 0, "up": 0, "block": 0}
    out = []
    for lay in layers:
        r = lay["role"]
        if r == "block":
            out.append(f"blocks.{counts['block']}")
            counts["block"] += 1
        elif r in counts:
            counts[r] += 1
            out.append(f"{r}{counts[r]}")
        else:
            out.append(r)
    return out


def remap_state_dict(sd: dict, keymap: dict[str, str]) -> dict:
    sd = _without_tracked_stats(unwrap_state_dict(sd))
    return {keymap[k]: v for k, v in sd.items()}


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "bn":
        return nn.BatchNorm2d(c)
    return nn.InstanceNorm2d(c, affine=kind == "in_affine")


class _ResBlock(nn.Module):
    def __init__(self, c: int, norm: str, bias: bool) -> None:
        super().__init__()
        self.pad1, self.conv1, self.norm1, self.act = nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=bias), _norm(norm, c), nn.ReLU()
        self.pad2, self.conv2, self.norm2 = nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=bias), _norm(norm, c)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.norm2(self.conv2(self.pad2(self.act(self.norm1(self.conv1(self.pad1(x)))))))


def _stage(lay: dict, norm: str) -> nn.Module:
    r, i, o, k, b = lay["role"], lay["in"], lay["out"], lay["k"], lay["bias"]
    m: OrderedDict[str, nn.Module] = OrderedDict()
    blur = lay.get("blur")                   # CUT's anti-aliased stages: a stride-1 conv beside a fixed filter
    if r in ("stem", "head"):
        m["pad"], m["conv"] = nn.ReflectionPad2d(k // 2), nn.Conv2d(i, o, k, bias=b)
    elif r == "down":
        m["conv"] = nn.Conv2d(i, o, k, stride=1 if blur else 2, padding=(k - 1) // 2, bias=b)
    elif lay["up"] == "blur":
        m["blur"], m["conv"] = BlurUp(i, blur), nn.Conv2d(i, o, k, padding=(k - 1) // 2, bias=b)
    elif lay["up"] == "transposed":
        m["conv"] = nn.ConvTranspose2d(i, o, k, stride=2, padding=(k - 1) // 2, output_padding=k % 2, bias=b)
    elif lay.get("pad") == "zero":           # Upsample, then a conv that pads with zeros itself
        m["up"], m["conv"] = nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(i, o, k, padding=k // 2, bias=b)
    else:
        m["up"], m["pad"] = nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(k // 2)
        m["conv"] = nn.Conv2d(i, o, k, bias=b)
    if r == "head":
        m["act"] = nn.Tanh()
    else:
        m["norm"], m["act"] = _norm(norm, o), nn.ReLU()
    if r == "down" and blur:
        m["blur"] = BlurDown(o, blur)
    return nn.Sequential(m)


@register_model("resnet_generator")
class ResnetGenerator(nn.Module):
    """A CycleGAN-family ResNet generator built from ``parse_resnet_generator``'s config."""

    def __init__(self, layers: list[dict], norm: str = "in", tracked_stats_dropped: int = 0) -> None:
        super().__init__()
        self.config = {"layers": [dict(x) for x in layers], "norm": norm}
        if tracked_stats_dropped:      # the source file's instance-norm running statistics (not loaded), said
            self.config["tracked_stats_dropped"] = int(tracked_stats_dropped)
        blocks = []
        for name, lay in zip(_stage_names(layers), layers):
            if lay["role"] == "block":
                blocks.append(_ResBlock(lay["in"], norm, lay["bias"]))
            else:
                if blocks and not hasattr(self, "blocks"):
                    self.blocks = nn.Sequential(*blocks)
                setattr(self, name, _stage(lay, norm))
        self._order = list(dict.fromkeys(n.split(".")[0] for n in _stage_names(layers)))  # stem, down1.., blocks, up1.., head
        # each downsampling halves the size and each upsampling doubles it, so other sizes come back larger and
        # shifted; the pipeline and inspect round image_size up to a multiple (pix2pixHD's loader does the same)
        self.size_multiple = 2 ** sum(lay["role"] == "down" for lay in layers)

    def forward(self, content: Tensor) -> Tensor:
        x = content
        for name in self._order:
            x = getattr(self, name)(x)
        return x

    @classmethod
    def from_state_dict(cls, sd: dict) -> "ResnetGenerator":
        cfg, keymap = parse_resnet_generator(sd)
        G = cls(**cfg)
        G.load_state_dict(remap_state_dict(sd, keymap))
        return G


_NORM_READ = {
    "in": "no norm parameters and biased convs: read as instance norm without affine parameters (the reference's "
          "--norm instance); a network with no normalisation and biased convs has the same keys",
    "none": "no norm parameters and no conv biases but the output conv's: read as no normalisation (the reference's "
            "--norm none); a parameter-free norm after bias-free convs has the same keys",
    "in_affine": "affine instance norm (a weight and bias per channel, no running statistics)",
    "bn": "batch norm with the file's running statistics (eval mode)",
}


def family_notes(model: dict) -> dict:
    """What a CycleGAN-family subject (``model``: its config, reference ``cyclegan`` or ``resnet_generator``)
    assumes that no weight says, for its metadata and the report's model notes."""
    norm = model.get("norm", "in")
    return {"value_range": {"input": [-1, 1], "output": [-1, 1], "output_activation": "tanh (assumed)"},
            "model_notes": [
                "value range: content in [-1, 1] goes in as is and the output is tanh of the last conv, in [-1, 1] "
                "(the reference normalises images with mean 0.5 and std 0.5 and ends in Tanh); assumed, no weight "
                "says it",
                "assumed from the CycleGAN reference, not stored in the weights: ReLU after each norm, reflection "
                "padding for the 7x7 and residual convs, zero padding for strided convs, and no skip from the input "
                "to the output; a network that differs (LeakyReLU, zero padding, an output without tanh, an input "
                "added to the output as DeblurGAN's learn_residual does) needs --model file.py:factory",
                f"norm: {_NORM_READ.get(norm, norm)}", *_stats_note(model), *_pad_note(model), *_blur_note(model.get("layers") or [])]}


def _pad_note(model: dict) -> list[str]:
    if not any(lay.get("pad") == "zero" for lay in model.get("layers") or []):
        return []
    return ["upsampling: nearest x2, then a 3x3 conv that pads with zeros itself (as eriklindernoren/PyTorch-GAN's "
            "CycleGAN writes it), read from the layout: only the Upsample stands between the last residual block "
            "and the first upsampling conv (a ReflectionPad2d module there would be reflection padding)"]


def _stats_note(model: dict) -> list[str]:
    n = model.get("tracked_stats_dropped")
    return [f"instance norm: {n} running_mean / running_var / num_batches_tracked tensor(s) of a PyTorch older "
            "than 0.4 (whose InstanceNorm tracked them) were not loaded, as the reference's loader deletes them: "
            "instance statistics at test time"] if n else []


def _blur_note(layers: list[dict]) -> list[str]:
    """CUT / FastCUT's anti-aliased resampling, as read from the file's ``filt`` buffers (none: [])."""
    down = [lay["blur"] for lay in layers if lay.get("role") == "down" and lay.get("blur")]
    up = [lay["blur"] for lay in layers if lay.get("role") == "up" and lay.get("up") == "blur"]
    if not down and not up:
        return []
    def size(fs):
        return " / ".join(f"{f}x{f}" for f in dict.fromkeys(fs))
    parts = ([f"blur-pool after {len(down)} downsampling conv(s) (stride-1 conv, then a {size(down)} binomial "
              "filter at stride 2)"] if down else []) + (
             [f"fixed-filter x2 upsampling before {len(up)} upsampling conv(s) ({size(up)} binomial)"] if up else [])
    return ["anti-aliased resampling (CUT / FastCUT): " + "; ".join(parts) + ", the filters read from the file's "
            "'filt' buffers and used as stored; the random-init control keeps them"]
