"""Write StyleGAN2 snapshots in the exact pickle format of NVlabs' training code, for tests.

NVlabs' ``training_loop.py`` saves ``pickle.dump(dict(G=..., D=..., G_ema=..., augment_pipe=...,
training_set_kwargs=...))``; every network object is a ``torch_utils.persistence.persistent_class``
whose ``__reduce__`` returns ``(_reconstruct_persistent_obj, (meta,), None)`` with ``meta =
dict(type='class', version=6, module_src=<source>, class_name=<name>, state=<the module's
__dict__>)``. Here each of our modules is wrapped in a ``_Persistent`` stand-in whose
``__reduce__`` returns the same, through a stand-in callable registered (only while pickling)
as ``torch_utils.persistence._reconstruct_persistent_obj``, so pickle writes the same GLOBAL.
Parameters and buffers are real tensors (they pickle through ``torch._utils._rebuild_tensor_v2`` /
``_rebuild_parameter`` and ``torch.storage._load_from_bytes``, as in NVlabs' files);
kwargs dicts are ``dnnlib.util.EasyDict``; ``weight_gain`` attributes are numpy float64, as there.
"""
from __future__ import annotations

import contextlib
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from interp_gan.models.stylegan2 import StyleGAN2Generator
from interp_gan.models.stylegan2_discriminator import StyleGAN2Discriminator

SOURCE = "# training/networks.py (stand-in source: never executed by interp_gan)\nimport torch\n"
_CLASS = {"StyleGAN2Generator": "Generator", "StyleGAN2Discriminator": "Discriminator"}


def _stand_in_reconstruct(meta):   # what the real one does: exec(meta['module_src']) and build the class
    raise RuntimeError("test stand-in: never called")


_stand_in_reconstruct.__module__ = "torch_utils.persistence"
_stand_in_reconstruct.__qualname__ = _stand_in_reconstruct.__name__ = "_reconstruct_persistent_obj"


class EasyDict(dict):
    pass


EasyDict.__module__ = "dnnlib.util"
EasyDict.__qualname__ = "EasyDict"


@contextlib.contextmanager
def nvlabs_modules():
    """``torch_utils.persistence`` and ``dnnlib.util`` in sys.modules while pickling (pickle checks
    that a GLOBAL resolves to the object it writes)."""
    mods = {"torch_utils": types.ModuleType("torch_utils"),
            "torch_utils.persistence": types.ModuleType("torch_utils.persistence"),
            "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": types.ModuleType("dnnlib.util")}
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = _stand_in_reconstruct
    mods["torch_utils"].persistence = mods["torch_utils.persistence"]
    mods["dnnlib.util"].EasyDict = EasyDict
    mods["dnnlib"].util = mods["dnnlib.util"]
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class _Persistent:
    def __init__(self, meta: dict) -> None:
        self.meta = meta

    def __reduce__(self):
        return _stand_in_reconstruct, (self.meta,), None


def persistent(class_name: str, params: dict, buffers: dict, modules: dict, init_kwargs: dict,
               attrs: dict | None = None, source: str = SOURCE) -> _Persistent:
    """One persistent object, its state laid out as an nn.Module's __dict__."""
    state = dict(training=False,
                 _parameters=OrderedDict((k, nn.Parameter(v.detach().clone(), requires_grad=False))
                                         for k, v in params.items()),
                 _buffers=OrderedDict((k, v.detach().clone()) for k, v in buffers.items()),
                 _non_persistent_buffers_set=set(), _backward_hooks=OrderedDict(), _forward_hooks=OrderedDict(),
                 _forward_pre_hooks=OrderedDict(), _state_dict_hooks=OrderedDict(),
                 _load_state_dict_pre_hooks=OrderedDict(), _modules=OrderedDict(modules),
                 _init_args=(), _init_kwargs=init_kwargs, **(attrs or {}))
    return _Persistent(dict(type="class", version=6, module_src=source, class_name=class_name, state=state))


def _wrap(m: nn.Module, init_kwargs: dict, source: str) -> _Persistent:
    attrs = {}
    if hasattr(m, "weight_gain"):
        attrs["weight_gain"] = np.float64(m.weight_gain)
    for a in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "num_ws", "resolution", "up", "down",
              "cmap_dim", "in_channels"):
        if isinstance(getattr(m, a, None), int):
            attrs[a] = getattr(m, a)
    return persistent(_CLASS.get(type(m).__name__, type(m).__name__),
                      dict(m.named_parameters(recurse=False)), dict(m.named_buffers(recurse=False)),
                      {k: _wrap(c, {}, source) for k, c in m.named_children()}, init_kwargs, attrs, source)


def generator_kwargs(G: StyleGAN2Generator) -> dict:
    """The Generator's init kwargs as NVlabs' train.py passes them (EasyDicts for the sub-kwargs)."""
    c = G.config
    return dict(z_dim=c["z_dim"], w_dim=c["w_dim"], mapping_kwargs=EasyDict(c["mapping_kwargs"]),
                synthesis_kwargs=EasyDict(c["synthesis_kwargs"]), c_dim=c["c_dim"],
                img_resolution=c["img_resolution"], img_channels=c["img_channels"])


def tiny_generator(resolution: int = 64, c_dim: int = 0, seed: int = 0, architecture: str = "skip",
                   w_dim: int = 16, channel_base: int | None = None, channel_max: int = 16) -> StyleGAN2Generator:
    """A random StyleGAN2 with tiny widths; every parameter and buffer re-drawn (seeded), so no
    zero-initialised bias or noise strength hides a wrong key."""
    torch.manual_seed(seed)
    G = StyleGAN2Generator(z_dim=w_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=resolution, img_channels=3,
                           mapping_kwargs=dict(num_layers=2),
                           synthesis_kwargs=dict(channel_base=channel_base or 4 * resolution * 4,
                                                 channel_max=channel_max, num_fp16_res=2, conv_clamp=256,
                                                 architecture=architecture))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.copy_(0.1 * torch.randn((), generator=g))
            elif name.endswith("bias"):
                p.copy_(p + 0.1 * torch.randn(p.shape, generator=g))
        G.mapping.w_avg.copy_(0.3 * torch.randn(G.w_dim, generator=g))
    return G.eval()


def discriminator_kwargs(D: StyleGAN2Discriminator) -> dict:
    """The Discriminator's init kwargs as NVlabs' train.py passes them (EasyDicts for the sub-kwargs;
    ``architecture`` and ``cmap_dim`` only when they are not the defaults, as there)."""
    c = D.config
    kw = dict(c_dim=c["c_dim"], img_resolution=c["img_resolution"], img_channels=c["img_channels"],
              block_kwargs=EasyDict(c["block_kwargs"]), mapping_kwargs=EasyDict(c["mapping_kwargs"]),
              epilogue_kwargs=EasyDict(c["epilogue_kwargs"]), channel_base=c["channel_base"],
              channel_max=c["channel_max"], num_fp16_res=c["num_fp16_res"], conv_clamp=c["conv_clamp"])
    if c["architecture"] != "resnet":
        kw["architecture"] = c["architecture"]
    if c["cmap_dim"] is not None:
        kw["cmap_dim"] = c["cmap_dim"]
    return kw


def tiny_discriminator(resolution: int = 32, c_dim: int = 0, seed: int = 0, architecture: str = "resnet",
                       channel_max: int = 16, mbstd_group_size: int = 4, mbstd_num_channels: int = 1,
                       mapping_layers: int = 2, cmap_dim: int | None = None,
                       conv_clamp: float | None = 256) -> StyleGAN2Discriminator:
    """A random StyleGAN2 discriminator with tiny widths; biases re-drawn (seeded) so none is zero."""
    torch.manual_seed(seed)
    D = StyleGAN2Discriminator(c_dim=c_dim, img_resolution=resolution, img_channels=3, architecture=architecture,
                               channel_base=4 * resolution * 4, channel_max=channel_max, num_fp16_res=2,
                               conv_clamp=conv_clamp, cmap_dim=cmap_dim, block_kwargs=dict(freeze_layers=0),
                               mapping_kwargs=dict(num_layers=mapping_layers),
                               epilogue_kwargs=dict(mbstd_group_size=mbstd_group_size,
                                                    mbstd_num_channels=mbstd_num_channels))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in D.named_parameters():
            if name.endswith("bias"):
                p.copy_(p + 0.1 * torch.randn(p.shape, generator=g))
    return D.eval()


def snapshot_dict(G: StyleGAN2Generator, source: str = SOURCE, with_d: bool = True,
                  D: StyleGAN2Discriminator | None = None) -> dict:
    """NVlabs' snapshot dict; D: a random tiny resnet discriminator of G's resolution and classes
    unless one is given (with_d=False: no D, as a generator-only pickle)."""
    kw = generator_kwargs(G)
    g_ema = _wrap(G, kw, source)
    g = _wrap(G, kw, source)          # the training G (NVlabs keeps both; we read G_ema)
    if with_d and D is None:
        D = tiny_discriminator(G.img_resolution, G.c_dim, seed=G.img_resolution + 17)
    d = _wrap(D, discriminator_kwargs(D), source) if with_d else None
    return {"G": g, "D": d, "G_ema": g_ema, "augment_pipe": None,
            "training_set_kwargs": EasyDict(path="~/datasets/tiny.zip", resolution=G.img_resolution,
                                            use_labels=bool(G.c_dim), xflip=False, max_size=np.int64(1000),
                                            ada_target=np.float32(0.6))}


def write_snapshot(path: str | Path, G: StyleGAN2Generator, source: str = SOURCE, with_d: bool = True,
                   D: StyleGAN2Discriminator | None = None) -> Path:
    path = Path(path)
    with nvlabs_modules():
        data = pickle.dumps(snapshot_dict(G, source, with_d, D), protocol=4)
    path.write_bytes(data)
    return path
