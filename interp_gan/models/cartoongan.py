"""CartoonGAN's generator as its PyTorch test port saves it, read from the state dict alone.

    config, keymap = parse_cartoongan(state_dict)     # ValueError (one line) unless every key fits
    G = CartoonGANGenerator(**config)
    G.load_state_dict(remap_cartoongan(state_dict, keymap))
    image = G(content)                                # RGB in [-1, 1] in and out (BGR inside, below)

Chen, Lai & Liu, "CartoonGAN: Generative Adversarial Networks for Photo Cartoonization" (CVPR 2018).
The authors released four styles (Hayao, Hosoda, Paprika, Shinkai) as Torch models; the PyTorch test
port (github.com/Yijunmaverick/CartoonGAN-Test-Pytorch-Torch) copied their weights layer by layer into
state dicts of its ``network/Transformer.py`` ``Transformer``: ``Hayao_net_G_float.pth`` etc.

The port's layout (widths w1, w2, w3 = 64, 128, 256 and 8 residual blocks; all read here from the
shapes; every conv has a bias; ``in*`` is the port's own instance norm, below; ReLU after each norm
but the second of a residual block):

- ``conv01_1``: reflection pad 3, 7x7 conv 3 -> w1, ``in01_1``, ReLU
- ``conv02_1`` 3x3 stride 2 (zero pad 1) w1 -> w2, ``conv02_2`` 3x3 (zero pad 1), ``in02_1``, ReLU;
  ``conv03_1`` / ``conv03_2`` / ``in03_1`` the same, w2 -> w3 (no norm between the two convs)
- residual blocks ``conv04_*`` .. ``conv11_*``: x + in_2(conv_2(pad(ReLU(in_1(conv_1(pad(x))))))),
  3x3 convs at w3, reflection pad 1 each, no ReLU after the sum
- ``deconv01_1`` a transposed 3x3 conv, stride 2, padding 1, output padding 1 (w3 -> w2), ``deconv01_2``
  3x3 (zero pad 1), ``in12_1``, ReLU; ``deconv02_*`` / ``in13_1`` the same, w2 -> w1
- ``deconv03_1``: reflection pad 3, 7x7 conv w1 -> 3, tanh

The instance norm (``InstanceNormalization`` in the port) holds ``scale`` and ``shift`` and computes
(x - mean) / sqrt(var + 1e-9) * scale + shift over each channel's H x W, with the biased variance:
``nn.InstanceNorm2d(affine=True, eps=1e-9)`` computes the same, so it is used here, its ``weight`` /
``bias`` read from ``scale`` / ``shift``. A file whose norms are saved as ``weight`` / ``bias`` (a
re-implementation with ``nn.InstanceNorm2d``) is read the same way. The residual blocks are numbered
from 04 on; the decoder's two norms are the two ``inNN_1`` numbered after the last block (12 and 13
in the port), which is how a file with another number of blocks is read.

Channels and range: the port's ``test.py`` turns the RGB image into BGR, scales it to [-1, 1]
(``-1 + 2 * ToTensor(img)``), and turns the BGR output back into RGB before ``* 0.5 + 0.5``. The
network therefore reads and writes BGR in [-1, 1]; ``forward`` takes and returns the project's RGB
in [-1, 1] and flips the channels on the way in and out (``cartoonize_bgr`` is the port's forward);
hooks see the network's own features. The script also resizes the longer side to 450 px (bicubic),
which comes back 452 px: two stride-2 convs and two x2 transposed convs return 4 * ceil(side / 4).
Here sides must be multiples of 4 (``size_multiple``; the pipeline rounds ``image_size`` up), so the
output has the input's size.

Our module names layers by role: ``stem`` (``.pad``, ``.conv``, ``.norm``, ``.relu``), ``down1`` /
``down2`` (``.conv1`` the strided conv, ``.conv2``, ``.norm``, ``.relu``), ``res.<i>`` (``.pad1``,
``.conv1``, ``.norm1``, ``.relu``, ``.pad2``, ``.conv2``, ``.norm2``; ``res.<i>`` itself is the block's
output), ``up1`` / ``up2`` (``.deconv`` the transposed conv, ``.conv``, ``.norm``, ``.relu``), ``head``
(``.pad``, ``.conv``, ``.tanh``). The analyses' default layer (``preferred_unit_layer``) is the last
residual block, ``res.<n - 1>``: the residual stream the decoder reads, w3 units at 1/4 of the input
size. Not a conv: most convs feed an instance norm directly (every block conv, each stage's second
conv), which turns a zeroed channel into the norm's shift, so ablating a conv's output there pins a
channel rather than removing it.
"""
from __future__ import annotations

import re

from torch import Tensor, nn

from interp_gan.models.keys import key_problems, strip_shared_prefix, vote
from interp_gan.models.registry import register_model
from interp_gan.models.resnet_generator import unwrap_state_dict

__all__ = ["CartoonGANGenerator", "parse_cartoongan", "remap_cartoongan", "looks_like_cartoongan",
           "cartoongan_notes", "cartoongan_file_notes", "EPS"]

_FIX = "for another architecture use --model file.py:factory"
_ROOT = "conv01_1.weight"
_FAMILY = re.compile(r"^(conv\d\d_\d|deconv\d\d_\d|in\d\d_\d)\.")
_MAX_RES = 64
EPS = 1e-9            # the port's InstanceNormalization default
_BGR = [2, 1, 0]      # RGB <-> BGR (its own inverse)


# --- the module -----------------------------------------------------------------------------------
def _norm(c: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(c, eps=EPS, affine=True)


class _Stem(nn.Module):
    """Reflection pad 3, 7x7 conv, instance norm, ReLU (the port's conv01_1, in01_1)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.pad, self.conv = nn.ReflectionPad2d(3), nn.Conv2d(cin, cout, 7)
        self.norm, self.relu = _norm(cout), nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.norm(self.conv(self.pad(x))))


class _Down(nn.Module):
    """3x3 stride-2 conv, 3x3 conv (zero padding 1 each), instance norm, ReLU (conv02_*, in02_1)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(cin, cout, 3, 2, 1), nn.Conv2d(cout, cout, 3, 1, 1)
        self.norm, self.relu = _norm(cout), nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.norm(self.conv2(self.conv1(x))))


class _Res(nn.Module):
    """x + norm2(conv2(pad(relu(norm1(conv1(pad(x))))))) with reflection pads (conv04_1 .. in04_2)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.pad1, self.conv1, self.norm1, self.relu = nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), _norm(c), nn.ReLU()
        self.pad2, self.conv2, self.norm2 = nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), _norm(c)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.norm2(self.conv2(self.pad2(self.relu(self.norm1(self.conv1(self.pad1(x)))))))


class _Up(nn.Module):
    """Transposed 3x3 conv x2, 3x3 conv (zero padding 1), instance norm, ReLU (deconv01_*, in12_1)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.deconv, self.conv = nn.ConvTranspose2d(cin, cout, 3, 2, 1, 1), nn.Conv2d(cout, cout, 3, 1, 1)
        self.norm, self.relu = _norm(cout), nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.norm(self.conv(self.deconv(x))))


class _Head(nn.Module):
    """Reflection pad 3, 7x7 conv to 3 channels, tanh (deconv03_1)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.pad, self.conv, self.tanh = nn.ReflectionPad2d(3), nn.Conv2d(cin, 3, 7), nn.Tanh()

    def forward(self, x: Tensor) -> Tensor:
        return self.tanh(self.conv(self.pad(x)))


@register_model("cartoongan")
class CartoonGANGenerator(nn.Module):
    """The port's Transformer (module docstring), layers named by role; ``forward`` in RGB."""

    def __init__(self, widths=(64, 128, 256), n_res: int = 8) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != 3 or min(widths) < 1 or not 0 <= int(n_res) <= _MAX_RES:
            raise ValueError(f"CartoonGAN widths {list(widths)}, n_res={n_res}: expected three positive widths "
                             f"and 0..{_MAX_RES} residual blocks (the port: 64, 128, 256 and 8)")
        w1, w2, w3 = widths
        self.config = {"widths": list(widths), "n_res": int(n_res)}
        self.stem, self.down1, self.down2 = _Stem(3, w1), _Down(w1, w2), _Down(w2, w3)
        self.res = nn.Sequential(*[_Res(w3) for _ in range(int(n_res))])
        self.up1, self.up2, self.head = _Up(w3, w2), _Up(w2, w1), _Head(w1)
        # the residual stream the decoder reads (module docstring)
        self.preferred_unit_layer = f"res.{int(n_res) - 1}" if n_res else "down2"
        self.size_multiple = 4     # two stride-2 convs, two x2 transposed convs: other sizes come back larger

    def cartoonize_bgr(self, x: Tensor) -> Tensor:
        """The port's forward: BGR in [-1, 1] -> BGR in [-1, 1]."""
        return self.head(self.up2(self.up1(self.res(self.down2(self.down1(self.stem(x)))))))

    def forward(self, content: Tensor) -> Tensor:
        """content [N, 3, H, W], RGB in [-1, 1] -> image, RGB in [-1, 1] (the test script's channel flips)."""
        h, w = content.shape[-2:]
        if h % 4 or w % 4 or min(h, w) < 8:
            raise ValueError(f"the CartoonGAN generator needs height and width that are multiples of 4 (at least 8; "
                             f"other sizes come back larger); got {h}x{w} (set image_size to a multiple of 4)")
        return self.cartoonize_bgr(content[:, _BGR])[:, _BGR]

    @classmethod
    def from_state_dict(cls, sd: dict) -> "CartoonGANGenerator":
        cfg, keymap = parse_cartoongan(sd)
        G = cls(**cfg)
        G.load_state_dict(remap_cartoongan(sd, keymap))
        return G


# --- reading the port's state dict -------------------------------------------------------------------
def _unwrap(sd: dict) -> dict:
    """``unwrap_state_dict``, then one leading prefix shared by every key (``netG.``, ``G.``) stripped."""
    return strip_shared_prefix(unwrap_state_dict(sd), _ROOT)


def looks_like_cartoongan(sd: dict) -> bool:
    """A (possibly wrapped / prefixed) state dict in the port's key layout (its first conv and a later layer)."""
    keys = _unwrap(sd)
    return _ROOT in keys and any(_FAMILY.match(k) and not k.startswith("conv01_1.") for k in keys)


def _naming(sd: dict) -> tuple[str, str]:
    """The norms' parameter names: the port's ``scale`` / ``shift``, or ``weight`` / ``bias`` (most keys say)."""
    port = sum(1 for k in sd if k.startswith("in") and k.endswith((".scale", ".shift")))
    renamed = sum(1 for k in sd if k.startswith("in") and k.endswith((".weight", ".bias")))
    return ("weight", "bias") if renamed > port else ("scale", "shift")


def _layout(widths, n_res: int, dec_norms: tuple[str, str], naming: tuple[str, str]) -> dict[str, tuple[tuple, str]]:
    """port key -> (shape, our key) for the whole generator."""
    w1, w2, w3 = widths
    out: dict[str, tuple[tuple, str]] = {}

    def conv(src: str, dst: str, shape: tuple) -> None:
        out[f"{src}.weight"] = (shape, f"{dst}.weight")
        out[f"{src}.bias"] = ((shape[1] if dst.endswith("deconv") else shape[0],), f"{dst}.bias")

    def norm(src: str, dst: str, c: int) -> None:
        out[f"{src}.{naming[0]}"] = ((c,), f"{dst}.weight")
        out[f"{src}.{naming[1]}"] = ((c,), f"{dst}.bias")

    conv("conv01_1", "stem.conv", (w1, 3, 7, 7)), norm("in01_1", "stem.norm", w1)
    for i, (cin, cout) in ((2, (w1, w2)), (3, (w2, w3))):
        conv(f"conv0{i}_1", f"down{i - 1}.conv1", (cout, cin, 3, 3))
        conv(f"conv0{i}_2", f"down{i - 1}.conv2", (cout, cout, 3, 3))
        norm(f"in0{i}_1", f"down{i - 1}.norm", cout)
    for b in range(n_res):
        for j in (1, 2):
            conv(f"conv{4 + b:02d}_{j}", f"res.{b}.conv{j}", (w3, w3, 3, 3))
            norm(f"in{4 + b:02d}_{j}", f"res.{b}.norm{j}", w3)
    for i, (cin, cout) in ((1, (w3, w2)), (2, (w2, w1))):
        conv(f"deconv0{i}_1", f"up{i}.deconv", (cin, cout, 3, 3))       # a transposed conv: (in, out, k, k)
        conv(f"deconv0{i}_2", f"up{i}.conv", (cout, cout, 3, 3))
        norm(dec_norms[i - 1], f"up{i}.norm", cout)
    conv("deconv03_1", "head.conv", (3, w1, 7, 7))
    return out


def parse_cartoongan(sd: dict) -> tuple[dict, dict[str, str]]:
    """(config, keymap): ``CartoonGANGenerator(**config)`` and the port's key -> our key for every key.

    Reads the three widths (each as most of the tensors that carry it say) and the number of residual
    blocks (``conv04_1`` on, consecutive), then requires exactly the port's layout they imply: a missing
    key, a key with no place or a wrong shape raises a one-line ValueError naming up to three of each.
    """
    sd = _unwrap(sd)
    what = "not a CartoonGAN generator (the PyTorch test port's Transformer)"
    if _ROOT not in sd or getattr(sd[_ROOT], "dim", lambda: 0)() != 4:
        raise ValueError(f"{what}: no 4-D first conv {_ROOT!r}; {_FIX}")
    n = 0
    while f"conv{4 + n:02d}_1.weight" in sd and n <= _MAX_RES:
        n += 1
    if n > _MAX_RES:
        raise ValueError(f"{what}: more than {_MAX_RES} residual blocks (the port has 8); {_FIX}")
    naming = _naming(sd)
    last = 3 + n                                       # the last block's number
    # the decoder's two norms: the two highest-numbered inNN_1 after the last block (in12_1, in13_1 in the port)
    later = sorted({(int(m.group(1)), k.split(".")[0]) for k in sd
                    if (m := re.match(r"^in(\d\d)_1\.", k)) and int(m.group(1)) > last})
    dec = [name for _, name in later][-2:]
    dec_norms = tuple(sorted((dec + [d for d in (f"in{last + 1:02d}_1", f"in{last + 2:02d}_1") if d not in dec])[:2]))
    w1 = vote(sd, [(_ROOT, 4, 0), (f"in01_1.{naming[0]}", 1, 0), ("conv02_1.weight", 4, 1),
                   ("deconv02_1.weight", 4, 1), ("deconv02_2.weight", 4, 0), ("deconv03_1.weight", 4, 1)], 64)
    w2 = vote(sd, [("conv02_1.weight", 4, 0), ("conv02_2.weight", 4, 0), ("conv03_1.weight", 4, 1),
                   ("deconv01_1.weight", 4, 1), ("deconv01_2.weight", 4, 0), ("deconv02_1.weight", 4, 0)], 128)
    w3 = vote(sd, [("conv03_1.weight", 4, 0), ("conv03_2.weight", 4, 0), ("conv04_1.weight", 4, 0),
                   ("conv04_1.weight", 4, 1), ("deconv01_1.weight", 4, 0)], 256)
    layout = _layout((w1, w2, w3), n, dec_norms, naming)
    label = f"widths {w1}/{w2}/{w3}, {n} residual blocks, norms saved as {naming[0]} / {naming[1]}"
    parts = key_problems([k for k in sd if k not in layout], [k for k in layout if k not in sd],
                         [f"{k} {list(sd[k].shape)} (expected {list(layout[k][0])})" for k in sd
                          if k in layout and tuple(getattr(sd[k], "shape", ())) != layout[k][0]])
    if parts:
        raise ValueError(f"not the CartoonGAN generator its keys suggest ({label}): {'; '.join(parts)}; {_FIX}")
    return {"widths": [w1, w2, w3], "n_res": n}, {k: v[1] for k, v in layout.items()}


def remap_cartoongan(sd: dict, keymap: dict[str, str]) -> dict:
    """The port's state dict under our module's names."""
    return {keymap[k]: v for k, v in _unwrap(sd).items()}


# --- what the subject says -------------------------------------------------------------------------
def cartoongan_file_notes(sd: dict) -> dict:
    """What this file's keys said that the architecture does not keep (for the metadata; travels with convert)."""
    if _naming(_unwrap(sd)) == ("scale", "shift"):
        return {}
    return {"model_notes": ["CartoonGAN norms: saved as weight / bias (an nn.InstanceNorm2d re-implementation, not "
                            "the port's scale / shift) and read as the port's instance norm, eps 1e-9; "
                            "nn.InstanceNorm2d's default eps is 1e-5, which the weights cannot confirm either way"]}


def cartoongan_notes(model: dict) -> dict:
    """What the subject assumes that no weight says (its metadata and the report's model notes)."""
    return {"value_range": {"input": [-1, 1], "output": [-1, 1], "channel_order": "BGR inside, RGB outside",
                            "output_activation": "tanh"},
            "model_notes": [
                "CartoonGAN channels: the port's network reads and writes BGR (its test.py flips RGB -> BGR before "
                "and BGR -> RGB after); the subject flips inside the generator's forward, so content and images are "
                "RGB in [-1, 1] (the script's -1 + 2 * ToTensor(img) and out * 0.5 + 0.5: nothing rescaled) and "
                "hooks see the network's own features",
                "CartoonGAN instance norm: the port's (biased variance, eps 1e-9), as its test.py runs the .pth "
                "files; the Torch original's InstanceNormalization defaults to eps 1e-5, and the weights say neither",
                "CartoonGAN size: the port's test.py resizes the longer side to 450 px; here the pipeline's "
                "image_size, a multiple of 4 (the network returns 4 * ceil(side / 4))"]}
