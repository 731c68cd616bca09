"""The style loss's feature network f: a fixed, seeded, random multi-scale conv net.

    f = RandomFeatureNet(seed=1234)
    feats = f(image)                 # list of [N, C_l, H_l, W_l], one per scale
    grams = f.grams(image)           # list of [N, C_l, C_l]
    d = gram_distance(f.grams(a), f.grams(b))   # [N], the seed's ||G(f(s)) - G(f(g))||^2

No pretrained VGG offline (docs/models.md): random conv features capture texture statistics
(Ustyuzhaninov, Brendel, Gatys & Bethge, "What does it take to generate natural textures?",
ICLR 2017). The net is rebuilt bit for bit from (seed, channels), which is all a checkpoint
stores. Parameters never train (requires_grad False).

Or VGG-19 features from weights in a local file the user names (nothing is downloaded):

    f = VGGFeatureNet("/data/vgg19-dcbb9e9d.pth")            # relu1_1, relu2_1, relu3_1, relu4_1
    f = build_feature_net("vgg19:/data/vgg19-dcbb9e9d.pth")  # the same, from a config string
    f = build_feature_net(f.spec())                          # from a checkpoint's stored spec
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from interp_gan.config import check_feature_net
from interp_gan.models.registry import register_model

__all__ = ["RandomFeatureNet", "VGGFeatureNet", "build_feature_net",
           "FeatureNetUnavailable", "VGG19_LAYERS", "gram", "gram_distance", "high_pass"]


def gram(f: Tensor) -> Tensor:
    """[N,C,H,W] -> [N,C,C] normalised by C·H·W."""
    n, c, h, w = f.shape
    x = f.reshape(n, c, h * w)
    return x @ x.transpose(1, 2) / (c * h * w)


def gram_distance(ga: list[Tensor], gb: list[Tensor]) -> Tensor:
    """Sum over scales of the squared Frobenius distance between Gram matrices, per image [N]."""
    return sum(((a - b) ** 2).flatten(1).sum(1) for a, b in zip(ga, gb))


def high_pass(image: Tensor, kernel: int = 5) -> Tensor:
    """image minus a box-blurred copy: keeps fine detail (strokes, texture), drops palette."""
    blur = nn.functional.avg_pool2d(nn.functional.pad(image, [kernel // 2] * 4, mode="reflect"),
                                    kernel, stride=1)
    return image - blur


@register_model("random_features")
class RandomFeatureNet(nn.Module):
    def __init__(self, seed: int = 1234, channels: tuple[int, ...] = (32, 64, 128, 128)) -> None:
        super().__init__()
        self.seed, self.channels = seed, tuple(channels)
        g = torch.Generator().manual_seed(seed)
        self.stages = nn.ModuleList()
        cin = 3
        for i, c in enumerate(self.channels):
            conv = nn.Conv2d(cin, c, 3, stride=1 if i == 0 else 2, padding=1)
            with torch.no_grad():  # He-style init from our own generator: identical on every machine
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * (2.0 / (cin * 9)) ** 0.5)
                conv.bias.zero_()
            self.stages.append(nn.Sequential(conv, nn.ReLU()))
            cin = c
        self.requires_grad_(False)

    def forward(self, image: Tensor) -> list[Tensor]:
        feats, x = [], image
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def grams(self, image: Tensor) -> list[Tensor]:
        return [gram(f) for f in self(image)]

    def spec(self) -> dict:
        return {"name": "random_features", "seed": self.seed, "channels": list(self.channels)}


# --- VGG-19 from a local weights file --------------------------------------------------------------
def _vgg19_layer_names() -> dict[str, int]:
    """relu<block>_<conv> -> index in torchvision's ``vgg19().features`` (config "E")."""
    names, block, conv, i = {}, 1, 0, 0
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]:
        if v == "M":
            block, conv, i = block + 1, 0, i + 1
        else:
            conv += 1
            names[f"relu{block}_{conv}"] = i + 1     # Conv2d at i, its ReLU at i + 1
            i += 2
    return names


VGG19_LAYERS: dict[str, int] = _vgg19_layer_names()   # relu1_1: 1, relu2_1: 6, relu3_1: 11, relu4_1: 20, relu5_1: 29
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_SHA_CACHE: dict[tuple[str, int, int], str] = {}


class FeatureNetUnavailable(ValueError):
    """A stored feature-net spec cannot be rebuilt here: its weights file is gone or has changed."""


def _sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def _read_weights(path: Path) -> dict:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            sd = load_file(str(path), device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line message
        raise ValueError(f"cannot read VGG-19 weights from {path}: {type(e).__name__}: {str(e)[:200]} "
                         f"(expected a torch.save'd vgg19 state_dict or a .safetensors file)") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"{path} holds a {type(sd).__name__}, expected a vgg19 state_dict "
                         f"(keys features.<i>.weight / .bias)")
    out = {}
    for k, v in sd.items():
        k = str(k)
        while k.startswith("module."):
            k = k[len("module."):]
        out[k] = v
    if not any(k.startswith("features.") for k in out):   # a bare ``vgg.features.state_dict()``
        out = {f"features.{k}": v for k, v in out.items() if k[:1].isdigit()}
    return out


@register_model("vgg19_features")
class VGGFeatureNet(nn.Module):
    """VGG-19 feature maps (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale
    Image Recognition", ICLR 2015) at the layers of Gatys, Ecker & Bethge's style loss ("Image
    Style Transfer Using Convolutional Neural Networks", CVPR 2016): relu1_1, relu2_1, relu3_1,
    relu4_1 by default (relu5_1 may be asked for too).

    torchvision's ``vgg19(weights=None).features`` layout, cut after the deepest requested layer;
    the weights come only from ``weights_path``, a local file (never downloaded): a torchvision
    vgg19 state_dict (``features.<i>.weight/bias``; ``classifier.*`` and layers past the cut are
    ignored; a ``module.`` prefix is accepted) or a ``.safetensors`` file with the same keys.
    Every key the cut net needs must be there with its exact shape (else a ValueError naming the
    key and the file). Inputs are images in [-1, 1]; they are mapped to [0, 1] and normalised
    with the ImageNet mean / std the weights were trained with. Parameters never train.
    """

    def __init__(self, weights_path: str | Path,
                 layers: tuple[str, ...] | list[str] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers   # torchvision's own vgg19 layout, no weights

        self.layers = tuple(layers)
        bad = [l for l in self.layers if l not in VGG19_LAYERS]
        if not self.layers or bad:
            raise ValueError(f"VGG-19 layers {bad or list(self.layers)} not known; choose from {list(VGG19_LAYERS)}")
        path = Path(os.path.expanduser(str(weights_path))).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no VGG-19 weights file at {path}: expected a local torchvision vgg19 "
                                    f"state_dict (e.g. vgg19-dcbb9e9d.pth); nothing is downloaded")
        self.path = path
        self.indices = tuple(VGG19_LAYERS[l] for l in self.layers)
        cut = max(self.indices) + 1
        with torch.random.fork_rng(devices=[]):     # the throwaway init must not move the caller's RNG
            self.features = make_layers(cfgs["E"], batch_norm=False)[:cut]
        for m in self.features:
            if isinstance(m, nn.ReLU):
                m.inplace = False                   # returned maps are never overwritten later
        sd = _read_weights(path)
        with torch.no_grad():
            for k, p in self.features.state_dict(prefix="features.").items():
                if k not in sd:
                    raise ValueError(f"VGG-19 weights file {path} lacks key {k!r} (needed up to {self.layers[-1]}; "
                                     f"expected a torchvision vgg19 state_dict)")
                v = sd[k]
                if not isinstance(v, Tensor) or tuple(v.shape) != tuple(p.shape):
                    got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
                    raise ValueError(f"VGG-19 weights file {path}: key {k!r} has shape {got}, expected {tuple(p.shape)}")
                p.copy_(v.to(p.dtype))
        self.sha256 = _sha256(path)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def normalize(self, image: Tensor) -> Tensor:
        """[-1, 1] -> [0, 1] -> ImageNet-normalised."""
        return ((image + 1) / 2 - self.mean.to(image.dtype)) / self.std.to(image.dtype)

    def forward(self, image: Tensor) -> list[Tensor]:
        x, out = self.normalize(image), {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.indices:
                out[i] = x
        return [out[i] for i in self.indices]

    def grams(self, image: Tensor) -> list[Tensor]:
        return [gram(f) for f in self(image)]

    def spec(self) -> dict:
        return {"name": "vgg19", "path": str(self.path), "sha256": self.sha256, "layers": list(self.layers)}


def build_feature_net(spec: str | dict, seed: int = 1234) -> nn.Module:
    """The feature net f named by a string or by a stored ``spec()`` dict.

    "random" -> ``RandomFeatureNet(seed)``; "vgg19:<path>" -> ``VGGFeatureNet(path)``; a spec dict
    (what a checkpoint stores) -> the same net again. For a stored vgg19 spec whose weights file
    is gone or whose sha256 differs, raises ``FeatureNetUnavailable`` (a ValueError) saying which.
    """
    if isinstance(spec, str):
        check_feature_net("feature_net", spec)
        if spec == "random":
            return RandomFeatureNet(seed=seed)
        return VGGFeatureNet(spec[len("vgg19:"):].strip())
    if not isinstance(spec, dict):
        raise TypeError(f"feature net spec must be a string or a spec dict, got {type(spec).__name__}")
    name = spec.get("name")
    if name == "random_features":
        return RandomFeatureNet(seed=int(spec["seed"]), channels=tuple(spec["channels"]))
    if name == "vgg19":
        path = Path(spec["path"])
        if not path.is_file():
            raise FeatureNetUnavailable(f"VGG-19 weights file {path} is gone (sha256 {str(spec.get('sha256'))[:12]}...)")
        sha = _sha256(path)
        if spec.get("sha256") and sha != spec["sha256"]:
            raise FeatureNetUnavailable(f"VGG-19 weights file {path} has changed (sha256 {sha[:12]}..., "
                                        f"expected {spec['sha256'][:12]}...)")
        layers = spec.get("layers")
        return VGGFeatureNet(path, **({"layers": tuple(layers)} if layers else {}))
    raise ValueError(f"unknown feature net {name!r} in spec {spec}; known: 'random_features', 'vgg19'")
