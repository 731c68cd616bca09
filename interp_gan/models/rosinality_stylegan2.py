"""StyleGAN2 checkpoints in the layout of rosinality/stylegan2-pytorch, read into our NVlabs-layout
``StyleGAN2Generator`` (``interp_gan.models.stylegan2``): no second StyleGAN2 implementation.

    flat, notes = select_generator(ckpt)           # ckpt["g_ema"] (else "g"); one line when neither
    config, keymap = parse_rosinality(flat, has_latent_avg=True)
    G = StyleGAN2Generator(**config)
    G.load_state_dict(remap_rosinality(flat, keymap, latent_avg))

The files: the repository's ``train.py`` saves ``{"g", "d", "g_ema", "g_optim", "d_optim", "args",
"ada_aug_p"}`` (``550000.pt``); its ``convert_weight.py`` writes ``{"g_ema", "latent_avg"}`` (plus "g"
and "d" on request) from NVlabs' TensorFlow pickles (``stylegan2-ffhq-config-f.pt``). The generator
(Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020, as that
repository's ``model.py`` lays it out):

- ``style.0`` pixel norm, ``style.{1..n_mlp}`` equalised linear layers (weight [w, w] stored divided
  by the lr multiplier 0.01, bias, leaky ReLU 0.2 with gain sqrt 2): NVlabs' ``mapping.fc{i}`` as
  they are (ADA's FullyConnectedLayer stores weight / lr and applies lr / sqrt(in) too);
- ``input.input`` [1, C, 4, 4]: ``b4.const``; ``conv1``, then per resolution 8..size the pair
  ``convs.{2j}`` (2x up) / ``convs.{2j+1}``, and ``to_rgb1`` / ``to_rgbs.{j}``;
- a styled conv: ``conv.weight`` [1, out, in, k, k] applied times 1/sqrt(in k k), modulated by
  ``conv.modulation`` (equalised linear, lr 1, bias initialised to 1: NVlabs' ``affine``), demodulated
  with eps 1e-8; ``noise.weight`` [1] (``noise_strength``), ``activate.bias`` [out] (fused leaky ReLU:
  bias, slope 0.2, gain sqrt 2). Demodulation cancels any constant factor of the weight, and ours
  applies none, so the weight is stored here times 1/sqrt(in k k): the demodulation sums, eps
  included, and the StyleSpace values are then exactly rosinality's;
- the up conv: transposed stride-2 conv, then the [1,3,3,1] blur times 4 with pads (1, 1)
  (``conv.blur.kernel``), which is what our ``SynthesisLayer(up=2)`` computes; a to-RGB: 1x1
  modulated conv without demodulation, times 1/sqrt(in) (ours' ``weight_gain``), bias [1, 3, 1, 1],
  plus the skip upsampled by zero insertion and the same blur, pads (2, 1) (``upsample.kernel``);
- ``noises.noise_{i}`` [1, 1, r, r]: the fixed noise maps used with ``randomize_noise=False``, in
  layer order (our ``noise_const``); files written before the repository registered them lack them;
- W+ has ``2 log2(size) - 2`` entries, read in the same order as ours (a to-RGB shares the next
  conv's w); truncation is w_avg + psi (w - w_avg) with the file's ``latent_avg`` as w_avg. A file
  without one (``train.py`` saves none) gets the estimate the repository's ``generate.py`` makes,
  ``g_ema.mean_latent(4096)``: the mean of the mapping's w over ``W_AVG_SAMPLES`` z ~ N(0, I), here
  drawn from a ``torch.Generator`` seeded ``W_AVG_SEED``, so one file gives one subject every time.

The discriminator ``d``, when the file has one, is read by ``rosinality_discriminator``. The blur
buffers are checked to be the [1,3,3,1] filter (the repository's only ``blur_kernel``) and
dropped. Widths are read from the shapes and must follow min(channel_base / r, channel_max), as the
repository's table (512 up to 32 px, then 256, 128, 64, 32, 16 times ``channel_multiplier``) does.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from interp_gan.models.keys import few, layout_problems

__all__ = ["looks_like_rosinality", "select_generator", "parse_rosinality", "remap_rosinality", "seeded_noise",
           "estimate_w_avg", "NOISE_SEED", "W_AVG_SAMPLES", "W_AVG_SEED"]

_FIX = "for another architecture use --model file.py:factory"
_ROOT = ("style.1.weight", "input.input", "conv1.conv.weight", "to_rgb1.conv.weight")
NOISE_SEED = 0          # the maps noise=const uses when the file stores none (said in the metadata)
W_AVG_SAMPLES = 4096    # z averaged for w_avg when the file has no latent_avg (generate.py's --truncation_mean)
W_AVG_SEED = 0          # ... drawn from a torch.Generator seeded this (said in the metadata)


def _is_generator(sd) -> bool:
    return isinstance(sd, dict) and all(k in sd for k in _ROOT)


def looks_like_rosinality(sd: dict) -> bool:
    """A rosinality checkpoint ({"g_ema" | "g" | "d": state dict, ...}) or a bare generator state dict."""
    if _is_generator(sd):
        return True
    nets = [sd.get(k) for k in ("g_ema", "g", "d")]
    return any(isinstance(v, dict) for v in nets) and (
        any(_is_generator(v) for v in nets[:2]) or "latent_avg" in sd or "g_optim" in sd or "d_optim" in sd
        or (isinstance(nets[2], dict) and "final_linear.0.weight" in nets[2]))


def select_generator(ckpt: dict) -> tuple[dict, str]:
    """(the generator's state dict, which entry it came from): ``g_ema`` (the moving average the
    repository samples from) before ``g``; a bare generator state dict as itself."""
    if _is_generator(ckpt):
        return ckpt, "the file (a bare generator state dict)"
    for name in ("g_ema", "g"):
        v = ckpt.get(name)
        if isinstance(v, dict):
            return {k.removeprefix("module."): t for k, t in v.items()}, repr(name)
    raise ValueError(f"holds no StyleGAN2 generator: a rosinality/stylegan2-pytorch checkpoint keeps it under "
                     f"'g_ema' (or 'g'), and this one has only {sorted(map(str, ckpt))[:6]}; load the file "
                     "train.py or convert_weight.py wrote with the generator")


_fmt = few


def _widths(sd: dict) -> dict[int, int]:
    """Width per resolution, from the const and the second conv of every up block."""
    out = {4: int(sd["input.input"].shape[1])}
    j = 0
    while f"convs.{2 * j}.conv.weight" in sd:
        out[8 << j] = int(sd[f"convs.{2 * j}.conv.weight"].shape[1])
        j += 1
    return out


def _channel_config(widths: dict[int, int]) -> tuple[int, int]:
    """(channel_base, channel_max) with min(base // r, max) == widths[r] for every r; ValueError if none."""
    cmax = widths[4]
    below = [r for r in sorted(widths) if widths[r] < cmax]
    base = widths[below[0]] * below[0] if below else cmax * max(widths)
    if any(min(base // r, cmax) != w for r, w in widths.items()):
        raise ValueError(f"its widths per resolution {widths} do not follow min(channel_base / r, channel_max) "
                         f"(rosinality's table with a channel_multiplier does); {_FIX}")
    return base, cmax


def _layer_keys(ref: str, ours: str, cin: int, cout: int, w: int, k: int, noise: int | None) -> dict:
    """ours key -> (rosinality key, rosinality shape, how): one modulated conv (noise index) or to-RGB (None)."""
    m = {f"{ours}.affine.weight": (f"{ref}.conv.modulation.weight", (cin, w), "same"),
         f"{ours}.affine.bias": (f"{ref}.conv.modulation.bias", (cin,), "same")}
    if noise is None:
        m[f"{ours}.weight"] = (f"{ref}.conv.weight", (1, cout, cin, k, k), "squeeze")
        m[f"{ours}.bias"] = (f"{ref}.bias", (1, cout, 1, 1), "flat")
    else:
        m[f"{ours}.weight"] = (f"{ref}.conv.weight", (1, cout, cin, k, k), "fan_in")
        m[f"{ours}.bias"] = (f"{ref}.activate.bias", (cout,), "same")
        m[f"{ours}.noise_strength"] = (f"{ref}.noise.weight", (1,), "scalar")
    return m


def _layout(n_mlp: int, w: int, widths: dict[int, int], img_channels: int) -> tuple[dict, dict]:
    """(ours key -> (ref key, ref shape, how), blur buffers ref key -> shape) of the whole generator."""
    m: dict = {}
    for i in range(n_mlp):
        m[f"mapping.fc{i}.weight"] = (f"style.{i + 1}.weight", (w, w), "same")
        m[f"mapping.fc{i}.bias"] = (f"style.{i + 1}.bias", (w,), "same")
    c4 = widths[4]
    m["synthesis.b4.const"] = ("input.input", (1, c4, 4, 4), "squeeze")
    m.update(_layer_keys("conv1", "synthesis.b4.conv1", c4, c4, w, 3, 0))
    m.update(_layer_keys("to_rgb1", "synthesis.b4.torgb", c4, img_channels, w, 1, None))
    blur, cin = {}, c4
    for j, r in enumerate(sorted(widths)[1:]):
        c = widths[r]
        m.update(_layer_keys(f"convs.{2 * j}", f"synthesis.b{r}.conv0", cin, c, w, 3, 2 * j + 1))
        m.update(_layer_keys(f"convs.{2 * j + 1}", f"synthesis.b{r}.conv1", c, c, w, 3, 2 * j + 2))
        m.update(_layer_keys(f"to_rgbs.{j}", f"synthesis.b{r}.torgb", c, img_channels, w, 1, None))
        blur[f"convs.{2 * j}.conv.blur.kernel"] = (4, 4)
        blur[f"to_rgbs.{j}.upsample.kernel"] = (4, 4)
        cin = c
    return m, blur


def _noise_keys(widths: dict[int, int]) -> dict[str, tuple[str, tuple]]:
    """ours noise_const key -> (rosinality buffer, its shape), in layer order."""
    out, i = {}, 0
    for r in sorted(widths):
        for layer in (("conv1",) if r == 4 else ("conv0", "conv1")):
            out[f"synthesis.b{r}.{layer}.noise_const"] = (f"noises.noise_{i}", (1, 1, r, r))
            i += 1
    return out


def parse_rosinality(sd: dict, has_latent_avg: bool = False) -> tuple[dict, dict]:
    """(StyleGAN2Generator config, keymap) of a rosinality generator state dict; ValueError (one line)
    naming up to three missing / unplaced / misshapen keys unless every key fits."""
    missing_root = [k for k in _ROOT if k not in sd or not torch.is_tensor(sd[k])]
    if missing_root:
        raise ValueError(f"is not a rosinality/stylegan2-pytorch generator: it lacks {_fmt(missing_root)}; {_FIX}")
    w = int(sd["style.1.weight"].shape[-1])
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in sd:
        n_mlp += 1
    widths = _widths(sd)
    size = max(widths)
    img_channels = int(sd["to_rgb1.conv.weight"].shape[1]) if sd["to_rgb1.conv.weight"].dim() == 5 else 3
    base, cmax = _channel_config(widths)
    layout, blur = _layout(n_mlp, w, widths, img_channels)
    noises = _noise_keys(widths)
    has_noise = any(k.startswith("noises.") for k in sd)
    expected = {ref: shape for ref, shape, _ in layout.values()} | blur
    if has_noise:
        expected |= {ref: shape for ref, shape in noises.values()}
    parts = layout_problems(sd, expected, "unplaced")
    if parts:
        raise ValueError(f"not the rosinality/stylegan2-pytorch generator its keys suggest ({size} px, n_mlp "
                         f"{n_mlp}, style_dim {w}): {'; '.join(parts)}; {_FIX}")
    ref_filter = torch.tensor([1.0, 3.0, 3.0, 1.0])
    ref_filter = torch.outer(ref_filter, ref_filter) / 64 * 4
    odd = [k for k in blur if not torch.allclose(sd[k].float(), ref_filter, atol=1e-6)]
    if odd:
        raise ValueError(f"its blur kernels ({_fmt(odd)}) are not the [1,3,3,1] filter (times 4) every "
                         f"rosinality model uses; {_FIX}")
    if n_mlp < 1:
        raise ValueError(f"has no mapping layers (style.1 ...); {_FIX}")
    keymap = {ours: (ref, how) for ours, (ref, _, how) in layout.items()}
    if has_noise:
        keymap |= {ours: (ref, "plane") for ours, (ref, _) in noises.items()}
    config = dict(z_dim=w, c_dim=0, w_dim=w, img_resolution=size, img_channels=img_channels,
                  mapping_kwargs=dict(num_layers=n_mlp, lr_multiplier=0.01,
                                      **({} if has_latent_avg else {"w_avg_beta": None})),
                  synthesis_kwargs=dict(channel_base=base, channel_max=cmax, architecture="skip"))
    return config, keymap


def seeded_noise(widths_or_G) -> dict[str, Tensor]:
    """The noise maps ``noise=const`` uses when a file stores none: N(0, 1), drawn in layer order from
    a generator seeded ``NOISE_SEED`` (reproducible, said in the metadata)."""
    g = torch.Generator().manual_seed(NOISE_SEED)
    out = {}
    for k, v in widths_or_G.state_dict().items():
        if k.endswith(".noise_const"):
            out[k] = torch.randn(v.shape, generator=g)
    return out


def estimate_w_avg(G, n: int = W_AVG_SAMPLES, seed: int = W_AVG_SEED, chunk: int = 512) -> Tensor:
    """The mean of ``G.mapping(z)`` over ``n`` z ~ N(0, I) drawn (all at once, on the CPU) from a
    ``torch.Generator`` seeded ``seed``; summed in float64, mapped ``chunk`` z at a time."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of z to average for w_avg must be a positive integer, got {n!r}")
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    dev = next(G.mapping.parameters()).device
    total = torch.zeros(G.w_dim, dtype=torch.float64, device=dev)
    with torch.no_grad():
        for part in z.split(chunk):
            w = G.mapping(part.to(dev), None)
            total += (w[:, 0] if w.dim() == 3 else w).double().sum(0)
    return (total / n).float().cpu()


def remap_rosinality(sd: dict, keymap: dict, latent_avg: Tensor | None = None) -> dict:
    """Our keys and conventions (module docstring); ``latent_avg`` becomes ``mapping.w_avg``."""
    out = {}
    for ours, (ref, how) in keymap.items():
        v = sd[ref].float()
        if how == "fan_in":
            v = v[0] / math.sqrt(v[0, 0].numel())
        elif how == "squeeze":
            v = v[0]
        elif how == "flat":
            v = v.reshape(-1)
        elif how == "scalar":
            v = v.reshape(())
        elif how == "plane":
            v = v[0, 0]
        out[ours] = v
    if latent_avg is not None:
        out["mapping.w_avg"] = latent_avg.float().reshape(-1)
    return out


def _latent_avg(ckpt: dict, w: int) -> Tensor | None:
    v = ckpt.get("latent_avg") if not _is_generator(ckpt) else None
    if v is None:
        return None
    if not torch.is_tensor(v) or v.numel() != w or v.dim() > 2 or not v.is_floating_point():
        raise ValueError(f"its 'latent_avg' is {getattr(v, 'shape', type(v).__name__)}; expected a float tensor of "
                         f"{w} values (the average w, style_dim {w}); {_FIX}")
    return v


def load_generator(ckpt: dict, w_avg_samples: int = W_AVG_SAMPLES):
    """(our StyleGAN2Generator with the checkpoint's generator, our StyleGAN2Discriminator with its
    ``d`` or None, notes for the metadata); ValueError (one line, without the path: the caller
    prefixes it) when anything does not fit, ``d`` included (``rosinality_discriminator``).
    ``mapping.w_avg`` is the file's ``latent_avg``, else ``estimate_w_avg(G, w_avg_samples)``."""
    from interp_gan.guards import check_model_size
    from interp_gan.models.rosinality_files import args_check, refuse_other_arch
    from interp_gan.models.stylegan2 import StyleGAN2Generator

    args = None if _is_generator(ckpt) else ckpt.get("args")
    refuse_other_arch(args)
    flat, which = select_generator(ckpt)
    if not _is_generator(flat):
        raise ValueError(f"{which} is not a rosinality/stylegan2-pytorch generator: it lacks "
                         f"{_fmt([k for k in _ROOT if k not in flat])}; {_FIX}")
    latent_avg = _latent_avg(ckpt, int(flat["style.1.weight"].shape[-1]))
    cfg, keymap = parse_rosinality(flat, has_latent_avg=True)
    check_model_size(lambda: StyleGAN2Generator(**cfg), "the StyleGAN2 generator its tensors imply")
    G = StyleGAN2Generator(**cfg)
    sd = G.state_dict()               # the resampling filters (constants) and, without stored maps, noise
    stored_noise = any(v == "plane" for _, v in keymap.values())
    if not stored_noise:
        sd.update(seeded_noise(G))
    sd.update(remap_rosinality(flat, keymap, latent_avg))
    G.load_state_dict(sd, strict=True)
    model_notes = []
    if latent_avg is None:             # train.py saves none: generate.py's estimate, seeded
        with torch.no_grad():
            G.mapping.w_avg.copy_(estimate_w_avg(G, w_avg_samples))
        average = (f"estimated: the mean of {w_avg_samples} w = mapping(z), z ~ N(0, I) from a torch.Generator "
                   f"seeded {W_AVG_SEED} (the file has no latent_avg; rosinality's generate.py takes the mean of "
                   f"4096 random z too, unseeded), used by psi != 1")
        model_notes.append(f"truncation average w_avg {average}")
    else:
        average = "the file's latent_avg (mapping.w_avg)"
    checked, disagree = args_check(args, G.img_resolution, cfg["mapping_kwargs"]["num_layers"], G.z_dim,
                                   _widths(flat))
    if disagree:
        model_notes.append(disagree)
    D = None
    if not _is_generator(ckpt) and isinstance(ckpt.get("d"), dict):
        from interp_gan.models.rosinality_discriminator import load_discriminator
        D = load_discriminator(ckpt["d"])
        if D.img_resolution != G.img_resolution:
            raise ValueError(f"its 'd' judges {D.img_resolution} px images but the generator makes "
                             f"{G.img_resolution} px; expected one training run's pair")
    others = [k for k in ("g_ema", "g") if isinstance(ckpt.get(k), dict) and repr(k) != which]
    notes = {
        "source_format": "rosinality/stylegan2-pytorch checkpoint (train.py / convert_weight.py layout)",
        "generator_entry": which + (f" (the file also holds {', '.join(map(repr, others))}, not loaded)"
                                    if others else ""),
        "truncation_average": average,
        "noise_maps": ("the file's noises.noise_i buffers (rosinality's randomize_noise=False)" if stored_noise else
                       f"the file stores none: noise=const uses N(0, 1) maps drawn with seed {NOISE_SEED}"),
        "discriminator": ("rebuilt from the file's 'd': StyleGAN2 discriminator (resnet, unconditional, "
                          "minibatch-std group 4)" if D is not None else "not in the file"),
        "value_range": "[-1, 1] (rosinality's to-RGB output; images are clamped to it)",
    }
    if checked:
        notes["train_args"] = disagree or f"train.py's args ({', '.join(checked)}) agree with the weights"
    if model_notes:
        notes["model_notes"] = model_notes
    if D is not None:
        notes["discriminator_model"] = {"name": "stylegan2_discriminator", **D.config}
    return G.eval().requires_grad_(False), D, notes
