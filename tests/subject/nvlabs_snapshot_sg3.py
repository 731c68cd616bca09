"""Write StyleGAN3 (configs T and R) snapshots in NVlabs' pickle format, with random weights, for tests.

What NVlabs' ``networks_stylegan3.py`` constructors store is rebuilt here on its own, from the paper and
the reference's definitions, not from ``interp_gan.models.stylegan3``: the per-layer geometry
(``sg3_geometry``: cutoffs, stopbands, sampling rates, sizes, channels), the paddings, and the
resampling filters, designed with scipy (``design_filter``: a Kaiser-windowed ``firwin`` low-pass, or
for R's non-critical down filters a jinc windowed by the outer product of two Kaiser windows). Every
module is a ``persistent`` object with NVlabs' class name, its ``_init_kwargs`` (numpy float64 cutoffs,
EasyDicts) and the attributes its ``__init__`` sets (``in_size`` / ``size`` as numpy arrays, ``padding``
as a list, the factors and tap counts), so the pickle carries what a real one carries.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import scipy.signal
import scipy.special
import torch

from interp_gan.models.stylegan3 import StyleGAN3Generator
from tests.subject.nvlabs_snapshot import EasyDict, nvlabs_modules, persistent, tiny_discriminator

SOURCE = "# training/networks_stylegan3.py (stand-in source: never executed by interp_gan)\nimport torch\n"


def sg3_geometry(res: int, img_channels: int, channel_base: float, channel_max: float, num_layers: int = 14,
                 num_critical: int = 2, first_cutoff: float = 2, first_stopband: float = 2 ** 2.1,
                 last_stopband_rel: float = 2 ** 0.3, margin_size: int = 10) -> tuple[dict, list[dict]]:
    """(SynthesisInput kwargs, [SynthesisLayer kwargs]) as the paper's Sec. 3.2 / App. F schedule gives them."""
    n = num_layers
    t = np.array([min(i / (n - num_critical), 1.0) for i in range(n + 1)])
    fc = first_cutoff * ((res / 2) / first_cutoff) ** t
    ft = first_stopband * ((res / 2) * last_stopband_rel / first_stopband) ** t
    s = np.array([2.0 ** np.ceil(np.log2(min(2 * v, res))) for v in ft])
    fh = np.maximum(ft, s / 2) - fc
    size = s + 2 * margin_size
    size[-2:] = res
    ch = np.rint(np.minimum(channel_base / 2 / fc, channel_max))
    ch[-1] = img_channels
    layers = []
    for i in range(n + 1):
        j = max(i - 1, 0)
        layers.append(dict(is_torgb=i == n, is_critically_sampled=i >= n - num_critical, use_fp16=False,
                           in_channels=int(ch[j]), out_channels=int(ch[i]), in_size=int(size[j]), out_size=int(size[i]),
                           in_sampling_rate=int(s[j]), out_sampling_rate=int(s[i]), in_cutoff=fc[j], out_cutoff=fc[i],
                           in_half_width=fh[j], out_half_width=fh[i]))
    return dict(channels=int(ch[0]), size=int(size[0]), sampling_rate=s[0], bandwidth=fc[0]), layers


def design_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False):
    """The low-pass the paper uses: None (identity) for one tap; else firwin's Kaiser design, or a jinc."""
    if numtaps == 1:
        return None
    if not radial:
        return torch.as_tensor(scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs),
                               dtype=torch.float32)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    f = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    w = np.kaiser(numtaps, beta)
    f = f * np.outer(w, w)
    return torch.as_tensor(f / f.sum(), dtype=torch.float32)


def layer_extras(kw: dict, conv_kernel: int, filter_size: int, lrelu_upsampling: int, radial: bool) -> dict:
    """What SynthesisLayer.__init__ derives from its kwargs: factors, taps, filters, padding."""
    torgb = kw["is_torgb"]
    k = 1 if torgb else conv_kernel
    tmp = max(kw["in_sampling_rate"], kw["out_sampling_rate"]) * (1 if torgb else lrelu_upsampling)
    up, down = tmp // kw["in_sampling_rate"], tmp // kw["out_sampling_rate"]
    up_taps = filter_size * up if up > 1 and not torgb else 1
    down_taps = filter_size * down if down > 1 and not torgb else 1
    down_radial = radial and not kw["is_critically_sampled"]
    fu = design_filter(up_taps, kw["in_cutoff"], kw["in_half_width"] * 2, tmp)
    fd = design_filter(down_taps, kw["out_cutoff"], kw["out_half_width"] * 2, tmp, down_radial)
    total = (kw["out_size"] - 1) * down + 1 - (kw["in_size"] + k - 1) * up + up_taps + down_taps - 2
    lo = (total + up) // 2
    return dict(conv_kernel=k, up_factor=up, down_factor=down, up_taps=up_taps, down_taps=down_taps, up_filter=fu,
                down_filter=fd, padding=[lo, total - lo, lo, total - lo], tmp_sampling_rate=tmp)


def sg3_kwargs(res: int = 16, c_dim: int = 0, cfg: str = "t", w_dim: int = 8, channel_base: int = 128,
               channel_max: int = 8, num_layers: int = 4, margin_size: int = 2, **extra) -> dict:
    """Generator init kwargs as NVlabs' train.py passes them (flat synthesis kwargs; R: 1x1 convs, radial)."""
    kw = dict(z_dim=w_dim, w_dim=w_dim, mapping_kwargs=EasyDict(num_layers=2), channel_base=channel_base,
              channel_max=channel_max, num_fp16_res=4, conv_clamp=256, magnitude_ema_beta=0.5 ** (32 / 20000),
              num_layers=num_layers, margin_size=margin_size, c_dim=c_dim, img_resolution=res, img_channels=3)
    if cfg == "r":
        kw.update(conv_kernel=1, use_radial_filters=True)
    return kw | extra


def tiny_sg3(seed: int = 0, **kw) -> tuple[StyleGAN3Generator, dict]:
    """(our generator with random weights and the test-designed filters, the Generator's init kwargs)."""
    gkw = sg3_kwargs(**kw)
    flat = {k: v for k, v in gkw.items() if k not in ("z_dim", "w_dim", "c_dim", "img_resolution", "img_channels",
                                                      "mapping_kwargs")}
    torch.manual_seed(seed)
    G = StyleGAN3Generator(gkw["z_dim"], gkw["c_dim"], gkw["w_dim"], gkw["img_resolution"], gkw["img_channels"],
                           mapping_kwargs=dict(gkw["mapping_kwargs"]), synthesis_kwargs=flat)
    _, layers = _geometry_of(gkw)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, kwl in zip(G.synthesis.layer_names, layers):
            ex = _extras_of(gkw, kwl)
            layer = getattr(G.synthesis, name)
            for b in ("up_filter", "down_filter"):
                if ex[b] is not None:
                    getattr(layer, b).copy_(ex[b])
            layer.magnitude_ema.fill_(float(0.5 + torch.rand((), generator=g)))
        for name, p in G.named_parameters():
            if name.endswith("bias") or name == "synthesis.input.affine.weight":
                p.add_(0.2 * torch.randn(p.shape, generator=g))
        G.mapping.w_avg.copy_(0.3 * torch.randn(G.w_dim, generator=g))
    return G.eval(), gkw


def _geometry_of(gkw: dict):
    return sg3_geometry(gkw["img_resolution"], gkw["img_channels"], gkw["channel_base"], gkw["channel_max"],
                        gkw.get("num_layers", 14), margin_size=gkw.get("margin_size", 10))


def _extras_of(gkw: dict, kwl: dict) -> dict:
    return layer_extras(kwl, gkw.get("conv_kernel", 3), 6, 2, gkw.get("use_radial_filters", False))


def _fc(m, **kw) -> object:
    return persistent("FullyConnectedLayer", dict(m.named_parameters(recurse=False)), {}, {},
                      dict(in_features=m.weight.shape[1], out_features=m.weight.shape[0], **kw),
                      dict(in_features=m.weight.shape[1], out_features=m.weight.shape[0],
                           weight_gain=np.float64(m.weight_gain), bias_gain=m.bias_gain), SOURCE)


def _generator(G: StyleGAN3Generator, gkw: dict):
    inp_kw, layers = _geometry_of(gkw)
    syn = G.synthesis
    layer_kw = {k: gkw[k] for k in ("conv_kernel", "use_radial_filters", "conv_clamp", "magnitude_ema_beta")
                if k in gkw}
    children = {}
    i = syn.input
    children["input"] = persistent(
        "SynthesisInput", dict(i.named_parameters(recurse=False)), dict(i.named_buffers(recurse=False)),
        {"affine": _fc(i.affine, weight_init=0, bias_init=[1, 0, 0, 0])}, dict(w_dim=G.w_dim, **inp_kw),
        dict(w_dim=G.w_dim, channels=inp_kw["channels"], size=np.broadcast_to(np.asarray(inp_kw["size"]), [2]),
             sampling_rate=inp_kw["sampling_rate"], bandwidth=inp_kw["bandwidth"]), SOURCE)
    for name, kwl in zip(syn.layer_names, layers):
        m = getattr(syn, name)
        ex = _extras_of(gkw, kwl)
        bufs = {"magnitude_ema": m.magnitude_ema, "up_filter": ex["up_filter"], "down_filter": ex["down_filter"]}
        attrs = dict(w_dim=G.w_dim, is_torgb=kwl["is_torgb"], in_channels=kwl["in_channels"],
                     out_channels=kwl["out_channels"], in_size=np.broadcast_to(np.asarray(kwl["in_size"]), [2]),
                     out_size=np.broadcast_to(np.asarray(kwl["out_size"]), [2]),
                     **{k: ex[k] for k in ("conv_kernel", "up_factor", "down_factor", "up_taps", "down_taps",
                                           "padding", "tmp_sampling_rate")})
        obj = persistent("SynthesisLayer", dict(m.named_parameters(recurse=False)),
                         {k: v for k, v in bufs.items() if v is not None}, {"affine": _fc(m.affine, bias_init=1)},
                         dict(w_dim=G.w_dim, **kwl, **layer_kw), attrs, SOURCE)
        obj.meta["state"]["_buffers"] = {k: None if v is None else obj.meta["state"]["_buffers"][k]
                                         for k, v in bufs.items()}     # register_buffer(name, None), as NVlabs
        children[name] = obj
    net_kw = {k: gkw[k] for k in ("channel_base", "channel_max", "num_layers", "margin_size", "num_fp16_res")
              if k in gkw} | layer_kw
    synthesis = persistent("SynthesisNetwork", {}, {}, children,
                           dict(w_dim=G.w_dim, img_resolution=G.img_resolution, img_channels=3, **net_kw),
                           dict(layer_names=list(syn.layer_names), num_ws=G.num_ws), SOURCE)
    mp = G.mapping
    mchildren = {f"fc{k}": _fc(getattr(mp, f"fc{k}"), activation="lrelu", lr_multiplier=0.01) for k in range(2)}
    if G.c_dim:
        mchildren = {"embed": _fc(mp.embed)} | mchildren
    mapping = persistent("MappingNetwork", {}, {"w_avg": mp.w_avg}, mchildren,
                         dict(z_dim=G.z_dim, c_dim=G.c_dim, w_dim=G.w_dim, num_ws=G.num_ws, num_layers=2),
                         dict(num_ws=G.num_ws), SOURCE)
    return persistent("Generator", {}, {}, {"synthesis": synthesis, "mapping": mapping}, dict(gkw),
                      dict(z_dim=G.z_dim, c_dim=G.c_dim, w_dim=G.w_dim, num_ws=G.num_ws), SOURCE)


def sg3_snapshot_dict(G: StyleGAN3Generator, gkw: dict, with_d: bool = True) -> dict:
    """NVlabs' snapshot dict: G, G_ema (StyleGAN3) and, as NVlabs' StyleGAN3 training builds it, a StyleGAN2 D."""
    from tests.subject.nvlabs_snapshot import _wrap, discriminator_kwargs
    d = None
    if with_d:
        D = tiny_discriminator(G.img_resolution, G.c_dim, seed=G.img_resolution + 17)
        d = _wrap(D, discriminator_kwargs(D), SOURCE)
    return {"G": _generator(G, gkw), "D": d, "G_ema": _generator(G, gkw), "augment_pipe": None,
            "training_set_kwargs": EasyDict(path="~/datasets/tiny.zip", resolution=G.img_resolution,
                                            use_labels=bool(G.c_dim), xflip=False, max_size=np.int64(1000))}


def write_sg3_snapshot(path: str | Path, G: StyleGAN3Generator, gkw: dict, with_d: bool = True,
                       edit=None) -> Path:
    """Pickle it; ``edit(snapshot_dict)`` may change the dict first (for the refusal tests)."""
    path = Path(path)
    with nvlabs_modules():
        snap = sg3_snapshot_dict(G, gkw, with_d)
        if edit is not None:
            edit(snap)
        data = pickle.dumps(snap, protocol=4)
    path.write_bytes(data)
    return path
