"""MUNIT's translation a -> b (or b -> a) as one module, read from a ``gen_%08d.pt`` file alone.

    config, keymap = parse_munit(nets, direction="a2b")   # ValueError (one line) unless every key fits
    M = MUNITTranslator(**config)
    M.load_state_dict(remap_munit(nets, keymap))
    image = M(content, code)            # content [N,3,H,W] in [-1,1], style code [N, style_dim] -> [-1,1]
    code = M.encode_style(style_images)  # the target domain's style encoder: a real image's style code

Huang, Liu, Belongie & Kautz, "Multimodal Unsupervised Image-to-Image Translation" (ECCV 2018),
reference code github.com/NVlabs/MUNIT. Its trainer saves ``gen_%08d.pt`` = ``{"a": gen_a.state_dict(),
"b": gen_b.state_dict()}``, each an ``AdaINGen`` of ``networks.py``. A translation a -> b encodes the
content with gen_a's content encoder, draws a style code s ~ N(0, I) (style_dim, 8 in the repository's
configs) and decodes with gen_b: gen_b's MLP turns s into the weights and biases of every AdaIN layer of
gen_b's decoder. This module holds exactly those parts (gen_a's ``enc_content``; gen_b's ``dec``,
``mlp`` and ``enc_style``); the other halves of the file are checked key by key and not loaded.

The layout (widths from the shapes; D = dim * 2**n_downsample):

- content encoder: a 7x7 conv dim, ``n_downsample`` 4x4 stride-2 convs doubling the width, then
  ``n_res`` residual blocks of two 3x3 convs (no activation after the second; + input). Every conv
  is followed by InstanceNorm2d without affine and without running statistics (the reference's
  ``'in'``; files written under PyTorch 0.3, which the released models were, also hold each norm's
  ``running_mean`` / ``running_var``, which that PyTorch updated but never used: accepted, dropped;
  the code of the move to PyTorch 0.4 briefly tracked them, and its eval mode used them: a file of that
  time holding ``num_batches_tracked`` is loaded the same way and ``munit_file_notes`` says so);
- decoder: ``n_res`` residual blocks whose norms are AdaIN: instance statistics (biased variance, eps
  1e-5 under the root) times a per-sample weight plus a per-sample bias, both from the MLP. Each AdaIN
  holds ``running_mean`` / ``running_var`` buffers that its forward never reads (it always
  normalises with the batch-of-one statistics of each sample and channel); they are loaded and kept
  as the reference keeps them. Then ``n_downsample`` stages of nearest x2 upsampling, a 5x5 conv
  halving the width, the reference's own LayerNorm and the activation; then a 7x7 conv and tanh;
- MLP: ``mlp_blocks`` (3) Linear layers style_dim -> mlp_dim -> ... -> 2 * (sum of AdaIN widths),
  the activation after all but the last. Its output is consumed in decoder order, AdaIN by AdaIN: the
  first C values are that layer's bias, the next C its weight (``assign_adain_params``);
- style encoder (``StyleEncoder(4, ...)``, no norms): 7x7 conv dim, two 4x4 stride-2 convs doubling
  the width, ``style_downsample`` - 2 more keeping it (2; read from the keys), global average pooling,
  a 1x1 conv to style_dim;
- every conv pads itself (``pad_type``: reflect in the repository's configs; replicate, zero).

The reference LayerNorm normalises each sample over (C, H, W) together with the unbiased standard
deviation and adds eps (1e-5) to the std, not to the variance: (x - mean) / (std + eps) * gamma_c +
beta_c; a new one draws gamma ~ U(0, 1), beta = 0 (our ``reset_parameters`` does the same).

Options the weights cannot say (``gen.pt#direction=b2a,activ=lrelu``): ``direction`` (a2b), ``activ``
(relu, lrelu, selu, tanh; prelu is read from its weights), ``pad_type`` (reflect). The defaults are the
repository's configs' (edges2shoes_folder, summer2winter_yosemite256_folder read). Input and output are
RGB in [-1, 1] (test.py normalises with mean and std 0.5; the decoder ends in tanh): the project's
range, nothing rescaled.

Layers are named by role: ``enc_content.stem``, ``enc_content.down.<i>``, ``enc_content.res.<i>.conv1``
/ ``.conv2`` (a ConvBlock: ``.pad``, ``.conv``, ``.norm``, ``.act``), ``dec.res.<i>`` (an AdaIN residual
block; ``.conv1.norm`` its first AdaIN), ``dec.up.<i>`` (``.upsample``, ``.conv``, ``.norm``, ``.act``),
``dec.out``, ``mlp.<i>.fc``, ``enc_style.*`` (off the generate path). The unit analyses' default layer
(``preferred_unit_layer``) is ``dec.res.<n_res - 1>``: the output of the last AdaIN residual block,
where the content code has received every style modulation and that the upsampling stages decode (D
channels at 1/2**n_downsample of the input size), as StyleNet's last style block. The first conv of the
first decoder block reads the content alone: its output is the same for every style code.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interp_gan.models.keys import few, key_problems, vote
from interp_gan.models.latent import LatentGuided
from interp_gan.models.registry import register_model

__all__ = ["MUNITTranslator", "parse_munit", "remap_munit", "looks_like_munit", "FILE_OPTIONS", "munit_notes",
           "munit_file_notes", "check_option"]

_FIX = "for another architecture use --model file.py:factory"
FILE_OPTIONS = ("direction", "activ", "pad_type")     # the options a gen_*.pt path takes after '#'
_CHOICES = {"direction": ("a2b", "b2a"), "activ": ("relu", "lrelu", "prelu", "selu", "tanh"),
            "pad_type": ("reflect", "replicate", "zero")}
_DEFAULTS = {"direction": "a2b", "activ": "relu", "pad_type": "reflect"}


def check_option(key: str, value) -> str:
    """One option's value, or one line saying which values it takes."""
    v = str(value).strip().lower()
    if key not in _CHOICES or v not in _CHOICES[key]:
        what = ", ".join(f"{k}={'|'.join(c)}" for k, c in _CHOICES.items())
        raise ValueError(f"MUNIT option {key}={value!r}: expected {what} (file.pt#direction=b2a)")
    return v


# --- the module -----------------------------------------------------------------------------------
def _activation(name: str) -> nn.Module | None:
    return {"relu": nn.ReLU, "lrelu": lambda: nn.LeakyReLU(0.2), "prelu": nn.PReLU, "selu": nn.SELU,
            "tanh": nn.Tanh, "none": lambda: None}[name]()


def _padding(kind: str, p: int) -> nn.Module:
    return {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d, "zero": nn.ZeroPad2d}[kind](p)


class MUNITLayerNorm(nn.Module):
    """The reference's LayerNorm: per sample over (C, H, W), unbiased std, eps added to the std,
    per-channel gamma / beta."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.empty(num_features))
        self.beta = nn.Parameter(torch.empty(num_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:          # as the reference constructs it
        with torch.no_grad():
            self.gamma.uniform_()
            self.beta.zero_()

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        shape = (-1,) + (1,) * (x.dim() - 1)
        y = (x - flat.mean(1).view(shape)) / (flat.std(1).view(shape) + self.eps)
        return y * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


class AdaIN(nn.Module):
    """Instance statistics, then a per-sample weight [N,C] and bias [N,C]; the two buffers are the
    reference's unused ones (kept so its files load strictly)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def reset_parameters(self) -> None:          # the buffers as constructed (never read)
        with torch.no_grad():
            self.running_mean.zero_()
            self.running_var.fill_(1.0)

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        return F.instance_norm(x, eps=self.eps) * weight[:, :, None, None] + bias[:, :, None, None]

    def extra_repr(self) -> str:
        return str(self.num_features)


class ConvBlock(nn.Module):
    """pad, conv (with bias), optional norm ('in', 'ln', 'adain'), optional activation."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, pad: int, norm: str, act: str, pad_type: str,
                 upsample: bool = False) -> None:
        super().__init__()
        if upsample:
            self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.pad = _padding(pad_type, pad)
        self.conv = nn.Conv2d(cin, cout, k, stride)
        norm_mod = {"in": lambda: nn.InstanceNorm2d(cout), "ln": lambda: MUNITLayerNorm(cout),
                    "adain": lambda: AdaIN(cout), "none": lambda: None}[norm]()
        if norm_mod is not None:
            self.norm = norm_mod
        act_mod = _activation(act)
        if act_mod is not None:
            self.act = act_mod

    def forward(self, x: Tensor, adain: tuple[Tensor, Tensor] | None = None) -> Tensor:
        if hasattr(self, "upsample"):
            x = self.upsample(x)
        x = self.conv(self.pad(x))
        if hasattr(self, "norm"):
            x = self.norm(x, *adain) if adain is not None else self.norm(x)
        return self.act(x) if hasattr(self, "act") else x


class ResBlock(nn.Module):
    """x + conv2(conv1(x)): two 3x3 ConvBlocks, the activation after the first only."""

    def __init__(self, dim: int, norm: str, act: str, pad_type: str) -> None:
        super().__init__()
        self.conv1 = ConvBlock(dim, dim, 3, 1, 1, norm, act, pad_type)
        self.conv2 = ConvBlock(dim, dim, 3, 1, 1, norm, "none", pad_type)

    def forward(self, x: Tensor, adain: list[tuple[Tensor, Tensor]] | None = None) -> Tensor:
        a1, a2 = adain if adain is not None else (None, None)
        return x + self.conv2(self.conv1(x, a1), a2)


class ContentEncoder(nn.Module):
    def __init__(self, input_nc: int, dim: int, n_downsample: int, n_res: int, act: str, pad_type: str) -> None:
        super().__init__()
        self.stem = ConvBlock(input_nc, dim, 7, 1, 3, "in", act, pad_type)
        self.down = nn.Sequential(*[ConvBlock(dim * 2 ** i, dim * 2 ** (i + 1), 4, 2, 1, "in", act, pad_type)
                                    for i in range(n_downsample)])
        D = dim * 2 ** n_downsample
        self.res = nn.Sequential(*[ResBlock(D, "in", act, pad_type) for _ in range(n_res)])

    def forward(self, x: Tensor) -> Tensor:
        return self.res(self.down(self.stem(x)))


class Decoder(nn.Module):
    def __init__(self, D: int, output_nc: int, n_upsample: int, n_res: int, act: str, pad_type: str) -> None:
        super().__init__()
        self.res = nn.ModuleList(ResBlock(D, "adain", act, pad_type) for _ in range(n_res))
        self.up = nn.Sequential(*[ConvBlock(D // 2 ** i, D // 2 ** (i + 1), 5, 1, 2, "ln", act, pad_type,
                                            upsample=True) for i in range(n_upsample)])
        self.out = ConvBlock(D // 2 ** n_upsample, output_nc, 7, 1, 3, "none", "tanh", pad_type)

    def adain_layers(self) -> list[AdaIN]:
        """Every AdaIN in the order the reference's ``assign_adain_params`` fills them."""
        return [m for m in self.modules() if isinstance(m, AdaIN)]

    def forward(self, content: Tensor, params: Tensor) -> Tensor:
        chunks, i = [], 0
        for m in self.adain_layers():                 # [bias C, weight C] per AdaIN, in module order
            c = m.num_features
            chunks.append((params[:, i + c:i + 2 * c], params[:, i:i + c]))
            i += 2 * c
        h = content
        for b, block in enumerate(self.res):
            h = block(h, chunks[2 * b:2 * b + 2])
        return self.out(self.up(h))


class LinearBlock(nn.Module):
    def __init__(self, cin: int, cout: int, act: str) -> None:
        super().__init__()
        self.fc = nn.Linear(cin, cout)
        act_mod = _activation(act)
        if act_mod is not None:
            self.act = act_mod

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc(x)
        return self.act(x) if hasattr(self, "act") else x


class StyleEncoder(nn.Module):
    def __init__(self, input_nc: int, dim: int, style_dim: int, n_downsample: int, act: str, pad_type: str) -> None:
        super().__init__()
        self.stem = ConvBlock(input_nc, dim, 7, 1, 3, "none", act, pad_type)
        widths = [dim * 2 ** min(i, 2) for i in range(n_downsample + 1)]
        self.down = nn.Sequential(*[ConvBlock(widths[i], widths[i + 1], 4, 2, 1, "none", act, pad_type)
                                    for i in range(n_downsample)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out = nn.Conv2d(widths[-1], style_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.pool(self.down(self.stem(x)))).flatten(1)


@register_model("munit")
class MUNITTranslator(LatentGuided, nn.Module):
    """One MUNIT direction (module docstring): source content encoder, target decoder, MLP and style
    encoder. The style code is the latent: ``mapping(z, ids) = z`` (MUNIT's prior N(0, I))."""
    off_path_modules = ("enc_style",)   # never runs in generate(): no default analysis layer there
    num_styles = 1

    def __init__(self, dim: int = 64, style_dim: int = 8, n_downsample: int = 2, n_res: int = 4, mlp_dim: int = 256,
                 mlp_blocks: int = 3, style_downsample: int = 4, input_nc: int = 3, output_nc: int = 3,
                 activ: str = "relu", pad_type: str = "reflect", direction: str = "a2b") -> None:
        super().__init__()
        activ, pad_type, direction = (check_option(k, v) for k, v in
                                      (("activ", activ), ("pad_type", pad_type), ("direction", direction)))
        sizes = dict(dim=dim, style_dim=style_dim, n_res=n_res, mlp_dim=mlp_dim, input_nc=input_nc, output_nc=output_nc)
        if (min(int(v) for v in sizes.values()) < 1 or not 0 <= int(n_downsample) <= 8
                or not 2 <= int(mlp_blocks) <= 16 or not 2 <= int(style_downsample) <= 12):
            raise ValueError(f"MUNIT sizes {sizes}, n_downsample={n_downsample}, mlp_blocks={mlp_blocks}, "
                             f"style_downsample={style_downsample}: expected positive sizes, 0..8 downsamplings, "
                             "2..16 MLP layers and 2..12 style-encoder downsamplings")
        self.config = {"dim": int(dim), "style_dim": int(style_dim), "n_downsample": int(n_downsample),
                       "n_res": int(n_res), "mlp_dim": int(mlp_dim), "mlp_blocks": int(mlp_blocks),
                       "style_downsample": int(style_downsample), "input_nc": int(input_nc),
                       "output_nc": int(output_nc), "activ": activ, "pad_type": pad_type, "direction": direction}
        self.latent_dim = self.style_dim = int(style_dim)
        D = int(dim) * 2 ** int(n_downsample)
        self.enc_content = ContentEncoder(input_nc, dim, n_downsample, n_res, activ, pad_type)
        self.dec = Decoder(D, output_nc, n_downsample, n_res, activ, pad_type)
        n_adain = 2 * sum(m.num_features for m in self.dec.adain_layers())
        widths = [int(style_dim)] + [int(mlp_dim)] * (int(mlp_blocks) - 1) + [n_adain]
        self.mlp = nn.Sequential(*[LinearBlock(widths[i], widths[i + 1], activ if i < mlp_blocks - 1 else "none")
                                   for i in range(int(mlp_blocks))])
        self.enc_style = StyleEncoder(output_nc, dim, style_dim, style_downsample, activ, pad_type)
        self.preferred_unit_layer = f"dec.res.{int(n_res) - 1}"
        self.size_multiple = 2 ** int(n_downsample)

    def content_code(self, x: Tensor) -> Tensor:
        m = self.size_multiple
        if x.dim() != 4 or x.shape[1] != self.config["input_nc"]:
            raise ValueError(f"content must be [N,{self.config['input_nc']},H,W], got {tuple(x.shape)}")
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(f"MUNIT with n_downsample={self.config['n_downsample']} needs height and width that are "
                             f"multiples of {m}; got {x.shape[-2]}x{x.shape[-1]} (set image_size to a multiple of {m})")
        return self.enc_content(x)

    def decode(self, content: Tensor, code: Tensor) -> Tensor:
        """gen.decode(content, s) of the reference: AdaIN parameters from the MLP, then the decoder."""
        return self.dec(content, self.mlp(code.reshape(code.shape[0], -1)))

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        """content [N,C,H,W] in [-1,1], style code [N, style_dim] (or [N, style_dim, 1, 1]) -> [-1,1]."""
        if code.reshape(code.shape[0], -1).shape != (x.shape[0], self.style_dim):
            raise ValueError(f"code must be [{x.shape[0]},{self.style_dim}], got {tuple(code.shape)}")
        return self.decode(self.content_code(x), code)

    def mapping(self, z: Tensor, style_ids: Tensor) -> Tensor:
        """The style code is z itself: MUNIT samples s ~ N(0, I) with no mapping network."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be [N,{self.latent_dim}], got {tuple(z.shape)}")
        return z

    def encode_style(self, images: Tensor, style_ids: Tensor | None = None) -> Tensor:
        """The target domain's style encoder: images [N,C,H,W] in [-1,1] of that domain -> codes [N, style_dim]."""
        if images.dim() != 4 or images.shape[1] != self.config["output_nc"]:
            raise ValueError(f"style images must be [N,{self.config['output_nc']},H,W], got {tuple(images.shape)}")
        m = 2 ** self.config["style_downsample"]
        if min(images.shape[-2:]) < m:
            raise ValueError(f"MUNIT's style encoder halves its input {self.config['style_downsample']} times: style "
                             f"images need sides of at least {m} px; got {images.shape[-2]}x{images.shape[-1]}")
        return self.enc_style(images)


# --- reading the reference's gen_*.pt ----------------------------------------------------------------
def _flat(nets: dict) -> dict:
    """{"a": sd, "b": sd} -> {"a.<key>": tensor, ...}, ``module.`` prefixes stripped."""
    return {f"{g}.{k.removeprefix('module.')}": v for g in ("a", "b") for k, v in nets[g].items()}


def looks_like_munit(sd: dict) -> bool:
    """A ``gen_*.pt`` of MUNIT (or of its sibling UNIT, which has no style code: refused by the parser)."""
    if not all(isinstance(sd.get(g), dict) for g in ("a", "b")):
        return False
    keys = [k.removeprefix("module.") for k in sd["a"]]
    return any(k.startswith(("enc_content.model.", "enc.model.", "mlp.model.", "enc_style.model.", "dec.model.",
                             "cnns.")) for k in keys)


def _count(keys, fmt: str) -> int:
    n = 0
    while fmt.format(n) in keys:
        n += 1
    return n


_vote = vote


def _gen_layout(g: str, cfg: dict, input_nc: int, prelu: bool) -> tuple[dict, dict]:
    """(required, optional): reference key -> (shape, role) of one AdaINGen ``g``; role names the part
    (enc_content, dec, mlp, enc_style) and our key inside it."""
    dim, n, r, s = cfg["dim"], cfg["n_downsample"], cfg["n_res"], cfg["style_dim"]
    D = dim * 2 ** n
    req, opt = {}, {}

    def block(ref: str, ours: str, cin: int, cout: int, k: int, act: bool = True, norm: str = "none") -> None:
        req[f"{g}.{ref}.conv.weight"] = ((cout, cin, k, k), f"{ours}.conv.weight")
        req[f"{g}.{ref}.conv.bias"] = ((cout,), f"{ours}.conv.bias")
        if act and prelu:
            req[f"{g}.{ref}.activation.weight"] = ((1,), f"{ours}.act.weight")
        if norm == "ln":
            req[f"{g}.{ref}.norm.gamma"] = ((cout,), f"{ours}.norm.gamma")
            req[f"{g}.{ref}.norm.beta"] = ((cout,), f"{ours}.norm.beta")
        elif norm == "adain":
            req[f"{g}.{ref}.norm.running_mean"] = ((cout,), f"{ours}.norm.running_mean")
            req[f"{g}.{ref}.norm.running_var"] = ((cout,), f"{ours}.norm.running_var")
        elif norm == "in":   # PyTorch 0.3's InstanceNorm kept (unused) running statistics; 2018's short-lived
            for b in ("running_mean", "running_var"):              # track_running_stats=True also counted
                opt[f"{g}.{ref}.norm.{b}"] = ((cout,), None)
            opt[f"{g}.{ref}.norm.num_batches_tracked"] = ((), None)

    block("enc_content.model.0", "enc_content.stem", input_nc, dim, 7, norm="in")
    for i in range(n):
        block(f"enc_content.model.{i + 1}", f"enc_content.down.{i}", dim * 2 ** i, dim * 2 ** (i + 1), 4, norm="in")
    for i in range(r):
        for j in range(2):
            block(f"enc_content.model.{n + 1}.model.{i}.model.{j}", f"enc_content.res.{i}.conv{j + 1}", D, D, 3,
                  act=j == 0, norm="in")
    for i in range(r):
        for j in range(2):
            block(f"dec.model.0.model.{i}.model.{j}", f"dec.res.{i}.conv{j + 1}", D, D, 3, act=j == 0, norm="adain")
    for i in range(n):
        block(f"dec.model.{2 * i + 2}", f"dec.up.{i}", D // 2 ** i, D // 2 ** (i + 1), 5, norm="ln")
    block(f"dec.model.{2 * n + 1}", "dec.out", dim, input_nc, 7, act=False)
    n_adain = 2 * 2 * r * D
    widths = [s] + [cfg["mlp_dim"]] * (cfg["mlp_blocks"] - 1) + [n_adain]
    for i in range(cfg["mlp_blocks"]):
        req[f"{g}.mlp.model.{i}.fc.weight"] = ((widths[i + 1], widths[i]), f"mlp.{i}.fc.weight")
        req[f"{g}.mlp.model.{i}.fc.bias"] = ((widths[i + 1],), f"mlp.{i}.fc.bias")
        if prelu and i < cfg["mlp_blocks"] - 1:
            req[f"{g}.mlp.model.{i}.activation.weight"] = ((1,), f"mlp.{i}.act.weight")
    sw = [dim * 2 ** min(i, 2) for i in range(cfg["style_downsample"] + 1)]
    block("enc_style.model.0", "enc_style.stem", input_nc, dim, 7)
    for i in range(cfg["style_downsample"]):
        block(f"enc_style.model.{i + 1}", f"enc_style.down.{i}", sw[i], sw[i + 1], 4)
    last = cfg["style_downsample"] + 2          # + 1 is the (parameter-free) global pooling
    req[f"{g}.enc_style.model.{last}.weight"] = ((s, sw[-1], 1, 1), "enc_style.out.weight")
    req[f"{g}.enc_style.model.{last}.bias"] = ((s,), "enc_style.out.bias")
    return req, opt


def _read_config(sd: dict, g: str) -> dict:
    """One AdaINGen's sizes, each as most of the tensors that carry it say."""
    k = set(sd)
    n = _count(k, g + ".enc_content.model.{}.conv.weight") - 1
    r = _count(k, f"{g}.enc_content.model.{max(n, 0) + 1}.model.{{}}.model.0.conv.weight")
    nb = _count(k, g + ".mlp.model.{}.fc.weight")
    sdn = _count(k, g + ".enc_style.model.{}.conv.weight") - 1
    dim = _vote(sd, [(f"{g}.enc_content.model.0.conv.weight", 4, 0), (f"{g}.enc_style.model.0.conv.weight", 4, 0),
                     (f"{g}.dec.model.{2 * n + 1}.conv.weight", 4, 1), (f"{g}.enc_content.model.1.conv.weight", 4, 1)],
                64)
    style_dim = _vote(sd, [(f"{g}.mlp.model.0.fc.weight", 2, 1), (f"{g}.enc_style.model.{sdn + 2}.weight", 4, 0)], 8)
    mlp_dim = _vote(sd, [(f"{g}.mlp.model.0.fc.weight", 2, 0), (f"{g}.mlp.model.{nb - 1}.fc.weight", 2, 1)], 256)
    input_nc = _vote(sd, [(f"{g}.enc_content.model.0.conv.weight", 4, 1), (f"{g}.enc_style.model.0.conv.weight", 4, 1),
                          (f"{g}.dec.model.{2 * n + 1}.conv.weight", 4, 0)], 3)
    return {"dim": dim, "style_dim": style_dim, "n_downsample": n, "n_res": r, "mlp_dim": mlp_dim,
            "mlp_blocks": nb, "style_downsample": sdn, "input_nc": input_nc}


def parse_munit(nets: dict, direction: str = "a2b", activ: str = "relu", pad_type: str = "reflect"
                ) -> tuple[dict, dict[str, str | None]]:
    """(config, keymap): ``MUNITTranslator(**config)`` and the file's (flattened, ``a.`` / ``b.``) key ->
    our key, None for the keys checked and not loaded (the unused halves, dropped running statistics).

    Both generators must hold exactly the AdaINGen layout their shapes imply (a missing key, a key with
    no place, a wrong shape: one line naming up to three of each) with the same sizes; ``direction``,
    ``activ`` and ``pad_type`` are not in the weights (module docstring) and are passed through.
    """
    direction, activ, pad_type = (check_option(k, v) for k, v in
                                  (("direction", direction), ("activ", activ), ("pad_type", pad_type)))
    sd = _flat(nets)
    what = "not a MUNIT generator file (gen_*.pt: {'a': AdaINGen state_dict, 'b': ...})"
    for g in ("a", "b"):
        if any(k.startswith(f"{g}.cnns.") for k in sd):
            raise ValueError(f"{what}: it holds MUNIT's discriminators (dis_*.pt, MsImageDis 'cnns.*'), not its "
                             "generators; load the gen_*.pt of the same step")
        if f"{g}.enc.model.0.conv.weight" in sd and f"{g}.mlp.model.0.fc.weight" not in sd:
            raise ValueError(f"{what}: its '{g}' generator has 'enc' / 'dec' but no style MLP, the layout of UNIT "
                             f"(VAEGen), which has no style code; {_FIX}")
        if f"{g}.enc_content.model.0.conv.weight" not in sd or f"{g}.mlp.model.0.fc.weight" not in sd:
            raise ValueError(f"{what}: its '{g}' generator lacks 'enc_content.model.0.conv.weight' or "
                             f"'mlp.model.0.fc.weight' (first keys {list(nets[g])[:3]}); {_FIX}")
    cfgs = {g: _read_config(sd, g) for g in ("a", "b")}
    prelu = any(k.endswith(".activation.weight") for k in sd)
    if prelu:
        activ = "prelu"
    elif activ == "prelu":
        raise ValueError("MUNIT option activ=prelu: this file holds no PReLU weights ('.activation.weight'); "
                         "drop the option or name the activation its config used (relu, lrelu, selu, tanh)")
    layout, optional = {}, {}
    for g, c in cfgs.items():
        if not (1 <= c["mlp_blocks"] <= 16 and 0 <= c["n_downsample"] <= 8 and 2 <= c["style_downsample"] <= 12
                and c["n_res"] >= 1):
            raise ValueError(f"{what}: generator '{g}' has {c['n_downsample']} content downsamplings, {c['n_res']} "
                             f"residual blocks, {c['mlp_blocks']} MLP layers and {c['style_downsample']} style "
                             f"downsamplings (expected 0..8, >= 1, 2..16, 2..12; 2, 4, 3, 4 in the reference); {_FIX}")
        req, opt = _gen_layout(g, c, c["input_nc"], prelu)
        layout |= req
        optional |= opt
    a, b = ({k: v for k, v in cfgs[g].items() if k != "input_nc"} for g in ("a", "b"))
    label = (f"dim {a['dim']}, style_dim {a['style_dim']}, {a['n_downsample']} downsamplings, {a['n_res']} residual "
             f"blocks, MLP {a['mlp_blocks']} x {a['mlp_dim']}")
    unplaced = [k for k in sd if k not in layout and k not in optional]
    missing = [k for k in layout if k not in sd]
    wrong = [f"{k} {list(sd[k].shape)} (expected {list(spec[0])})" for k in sd
             for spec in [layout.get(k) or optional.get(k)] if spec and tuple(sd[k].shape) != spec[0]]
    if unplaced or missing or wrong:
        parts = key_problems(unplaced, missing, wrong)
        raise ValueError(f"not the MUNIT generators their keys suggest ({label}): {'; '.join(parts)}; {_FIX}")
    if a != b:
        diff = ", ".join(f"{k} {a[k]} vs {b[k]}" for k in a if a[k] != b[k])
        raise ValueError(f"{what}: its two generators differ ({diff}); MUNIT's trainer builds both from one "
                         f"config; {_FIX}")
    grey = {g: c["input_nc"] for g, c in cfgs.items() if c["input_nc"] != 3}
    if grey:
        which = ", ".join(f"{n}-channel images (domain {g})" for g, n in grey.items())
        raise ValueError(f"MUNIT generators of {which}: "
                         f"this loader translates RGB (3 channels) only; {_FIX}")
    src, tgt = ("a", "b") if direction == "a2b" else ("b", "a")
    keymap: dict[str, str | None] = {}
    for k, (_, ours) in layout.items():
        g, part = k.split(".", 2)[:2]
        used = (g == src and part == "enc_content") or (g == tgt and part in ("dec", "mlp", "enc_style"))
        keymap[k] = ours if used else None
    keymap |= {k: None for k in optional}
    cfg = {**a, "input_nc": cfgs[src]["input_nc"], "output_nc": cfgs[tgt]["input_nc"], "activ": activ,
           "pad_type": pad_type, "direction": direction}
    return cfg, keymap


def remap_munit(nets: dict, keymap: dict[str, str | None]) -> dict:
    """The used half of the file under our module's names."""
    return {keymap[k]: v for k, v in _flat(nets).items() if keymap.get(k)}


# --- what a subject says about itself ------------------------------------------------------------------
def munit_file_notes(nets: dict) -> dict:
    """Notes that depend on the source file (kept by convert): the dropped running statistics."""
    sd = _flat(nets)
    stats = [k for k in sd if ".enc_content." in k and k.endswith((".norm.running_mean", ".norm.running_var"))]
    tracked = [k for k in sd if k.endswith(".num_batches_tracked")]
    notes = []
    other = sorted(k for k in nets if k not in ("a", "b"))
    if other:
        notes.append(f"entries other than the two generators are not loaded: {', '.join(map(str, other[:5]))}")
    if stats:
        notes.append(f"content encoder instance norms: {len(stats)} running_mean / running_var tensor(s) checked and "
                     "dropped (a PyTorch 0.3 file, as the released models are: that PyTorch updated them but "
                     "normalised with instance statistics); instance statistics are used")
    if tracked:
        notes.append(f"the file holds {len(tracked)} num_batches_tracked counter(s): it was written by the MUNIT "
                     "code of its PyTorch 0.4 move, whose content encoder tracked running statistics (and whose test.py "
                     "used them, in eval mode); "
                     "instance statistics are used here, as the released code (PyTorch 0.3) and today's code do")
    return {"munit_file_notes": notes} if notes else {}


def munit_notes(model: dict) -> dict:
    """What a MUNIT subject assumes and how its style space is built (for its metadata)."""
    src, tgt = ("a", "b") if model.get("direction", "a2b") == "a2b" else ("b", "a")
    return {"translation": f"{src} -> {tgt}: content = gen_{src}.enc_content(x); image = gen_{tgt}.decode(content, s), "
                           f"its MLP turning s into every AdaIN weight and bias; gen_{tgt}.enc_style gives the style "
                           f"code of a real {tgt} image (encode_style); the other halves of the file are checked, "
                           "not loaded. Choose with FILE#direction=a2b|b2a",
            "style_space": f"z = the style code s ~ N(0, I) ({model.get('style_dim')}-d, MUNIT's prior; no mapping "
                           "network): directions run in the space the paper samples its multimodal outputs from",
            "assumed": f"activ={model.get('activ')}, pad_type={model.get('pad_type')} (not stored in the weights, "
                       "except PReLU's: the values of MUNIT's own configs; FILE#activ=...,pad_type=... to "
                       "change them)",
            "value_range": "RGB in [-1, 1] in and out (test.py normalises with mean = std = 0.5; the decoder ends "
                           "in tanh), as the analyses: nothing rescaled. test.py's saved images are min-max "
                           "stretched by save_image(normalize=True); the analyses read the raw output"}
