"""CycleGAN-family ResNet generators as people save them load as Subjects and match an independent forward.

Each variant is a plain nn.Sequential written here by hand (random weights, random norm
parameters and running statistics); its state_dict, renamed / prefixed / wrapped as that
variant is saved, goes through ``load_subject``; the Subject's output must equal the hand-built
network's forward on the same images.
"""
from collections import OrderedDict

import pytest
import torch
from torch import nn

from interp_gan.subject.loading import load_subject
from tests.models.corrupt_files import REASON, assert_refused_in_one_line, corrupted

MAX_ABS = {}   # variant -> max |subject - independent| (printed with -s)


class Residual(nn.Module):
    """x + body(x), the body stored under any attribute name (conv_block, block, res, ...)."""

    def __init__(self, attr: str, body: nn.Module) -> None:
        super().__init__()
        self.attr = attr
        setattr(self, attr, body)

    def forward(self, x):
        return x + getattr(self, self.attr)(x)


def _norm(kind, c):
    return {"in": lambda: nn.InstanceNorm2d(c), "in_affine": lambda: nn.InstanceNorm2d(c, affine=True),
            "bn": lambda: nn.BatchNorm2d(c)}[kind]()


def hand_built(ngf=8, n_blocks=2, norm="in", block_attr="conv_block", up="transposed", dropout=False,
               nested=False) -> nn.Module:
    """The ResNet generator as an nn.Sequential; ``nested`` groups it as encoder / res / decoder."""
    bias = norm != "bn"          # the reference drops conv biases under batch norm
    enc = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, bias=bias), _norm(norm, ngf), nn.ReLU(True)]
    for i in range(2):
        c = ngf * 2 ** i
        enc += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), _norm(norm, 2 * c), nn.ReLU(True)]
    d = ngf * 4
    blocks = []
    for _ in range(n_blocks):
        body = [nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3, bias=bias), _norm(norm, d), nn.ReLU(True)]
        body += [nn.Dropout(0.5)] if dropout else []
        body += [nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3, bias=bias), _norm(norm, d)]
        blocks.append(Residual(block_attr, nn.Sequential(*body)))
    dec = []
    for i in range(2):
        c = ngf * 2 ** (2 - i)
        if up == "transposed":
            dec += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)]
        elif up == "transposed4":   # the 4x4 / stride 2 / padding 1 transposed conv some forks use
            dec += [nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1, bias=bias)]
        else:   # resize-conv: nearest x2, reflection pad, 3x3 conv
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(c, c // 2, 3, bias=bias)]
        dec += [_norm(norm, c // 2), nn.ReLU(True)]
    dec += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    if nested:
        G = nn.Sequential(OrderedDict(encoder=nn.Sequential(*enc), res=nn.Sequential(*blocks),
                                      decoder=nn.Sequential(*dec)))
    else:
        G = nn.Sequential(OrderedDict(model=nn.Sequential(*enc, *blocks, *dec)))
    with torch.no_grad():   # norms that matter: random affine parameters and running statistics
        for m in G.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.affine:
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return G.eval()


def _save(G, path, prefix="", wrap=None):
    sd = {f"{prefix}{k}": v for k, v in G.state_dict().items()}
    if wrap == "state_dict":
        obj = {"state_dict": sd, "epoch": 200}
    elif wrap == "netG_A":
        D = nn.Conv2d(3, 1, 4)
        obj = {"netG_A": sd, "netD_A": D.state_dict(), "netG_B": {k: v + 1 for k, v in sd.items()}}
    elif wrap == "model":
        obj = {"model": sd, "optimizer_step": 7}
    elif wrap == "flat_multi":      # one flat dict: netG_A.* + netD_A.*
        obj = {**sd, **{f"netD_A.{k}": v for k, v in nn.Conv2d(3, 1, 4).state_dict().items()}}
    elif wrap == "sorted":          # keys sorted as strings: model.10 before model.2
        obj = dict(sorted(sd.items()))
    else:
        obj = sd
    torch.save(obj, path)
    return path


VARIANTS = {
    "reference": dict(),
    "reference_dropout": dict(dropout=True),
    "block_affine_in": dict(norm="in_affine", block_attr="block"),
    "batch_norm": dict(norm="bn"),
    "resize_conv": dict(up="resize"),
    "res_nested_affine_resize": dict(norm="in_affine", block_attr="res", up="resize", nested=True),
    "6_blocks": dict(n_blocks=6),
    "9_blocks_ngf16": dict(n_blocks=9, ngf=16),
    "block_6_blocks_dropout": dict(n_blocks=6, norm="in_affine", block_attr="block", dropout=True),
    "res_9_blocks_ngf16_bn": dict(n_blocks=9, ngf=16, norm="bn", block_attr="res", nested=True),
    "transposed_4x4": dict(up="transposed4", norm="in_affine", block_attr="block"),
    "ngf32": dict(ngf=32, n_blocks=2, norm="in_affine", block_attr="block"),
    "prefix_module": dict(_prefix="module."),
    "prefix_netG_A": dict(norm="in_affine", block_attr="block", _prefix="netG_A.", _wrap="flat_multi"),
    "prefix_G": dict(norm="bn", _prefix="G."),
    "wrap_state_dict": dict(norm="in_affine", block_attr="block", _wrap="state_dict"),
    "wrap_netG_A": dict(_wrap="netG_A", block_attr="block"),
    "keys_sorted_as_strings": dict(norm="in_affine", block_attr="block", _wrap="sorted"),
    "wrap_model_module": dict(norm="bn", up="resize", _prefix="module.", _wrap="model"),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_loads_and_matches_the_hand_built_forward(name, tmp_path):
    opts = dict(VARIANTS[name])
    prefix, wrap = opts.pop("_prefix", ""), opts.pop("_wrap", None)
    torch.manual_seed(0)
    G = hand_built(**opts)
    p = _save(G, tmp_path / "G.pth", prefix, wrap)
    s = load_subject(p, device="cpu")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        want = G(x)
        got = s.generate(x, torch.zeros(2, dtype=torch.long))
    diff = (got - want).abs().max().item()
    MAX_ABS[name] = diff
    print(f"{name}: max abs diff {diff:.3g}  ({s.meta['model']['name']})")
    assert got.shape == want.shape and diff < 1e-5
    n_blocks = opts.get("n_blocks", 2)
    reference = (opts.get("norm", "in") == "in" and opts.get("up", "transposed") == "transposed" and opts.get("block_attr", "conv_block") == "conv_block"
                 and opts.get("up", "transposed") == "transposed" and not opts.get("nested"))
    if reference:      # the reference layout keeps its exact model (and its exact numbers)
        assert s.meta["model"]["name"] == "cyclegan" and s.meta["model"]["n_blocks"] == n_blocks
        assert torch.equal(got, want)
    else:
        m = s.meta["model"]
        assert m["name"] == "resnet_generator" and m["norm"] == opts.get("norm", "in")
        assert sum(lay["role"] == "block" for lay in m["layers"]) == n_blocks
        ups = {lay["up"] for lay in m["layers"] if lay["role"] == "up"}
        assert ups == {"nearest" if opts.get("up") == "resize" else "transposed"}
        assert all(lay["k"] == (4 if opts.get("up") == "transposed4" else 3) for lay in m["layers"] if lay["role"] == "up")
        names = {n for n, _ in s.generator.named_modules()}
        assert {"stem.conv", "down1.conv", "blocks.0.conv1", "blocks.0.conv2", "up2.conv", "head.conv"} <= names


def test_converted_family_generator_round_trips(tmp_path):
    from interp_gan.cli import main

    torch.manual_seed(1)
    G = hand_built(norm="in_affine", block_attr="block", up="resize")
    src = _save(G, tmp_path / "G.pth", "module.")
    out = tmp_path / "g.safetensors"
    assert main(["convert", str(src), str(out)]) == 0
    s = load_subject(out, device="cpu")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert (s.generate(x, torch.zeros(1, dtype=torch.long)) - G(x)).abs().max() < 1e-5


def test_unplaceable_layout_is_one_line(tmp_path, capsys):
    sd = dict(hand_built(norm="in_affine", block_attr="block").state_dict())
    sd, key = corrupted(sd, "model.attention.query.weight", torch.zeros(8, 32))   # a layer the family does not have
    torch.save(sd, tmp_path / "odd.pth")
    assert_refused_in_one_line(tmp_path / "odd.pth", key, capsys, says=(REASON["extra"],))


def test_a_middle_layer_the_family_lacks_is_named(tmp_path):
    torch.manual_seed(0)
    G = hand_built()
    sd = dict(G.state_dict())
    # a 1x1 bottleneck conv spliced in after the blocks: 32 -> 32 channels, not an upsampling conv
    items = list(sd.items())
    cut = next(i for i, (k, _) in enumerate(items) if k.startswith("model.12."))
    items.insert(cut, ("model.11b.weight", torch.zeros(32, 32, 1, 1)))
    torch.save(dict(items), tmp_path / "odd.pth")
    with pytest.raises(ValueError, match=r"could not place model\.11b\.weight.*--model file\.py:factory"):
        load_subject(tmp_path / "odd.pth", device="cpu")


def test_a_discriminator_is_one_line_with_a_hint(tmp_path):
    D = nn.Sequential(nn.Conv2d(3, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(8, 16, 4, 2, 1), nn.InstanceNorm2d(16),
                      nn.LeakyReLU(0.2), nn.Conv2d(16, 1, 4, 1, 1))   # a PatchGAN, latest_net_D_A.pth
    torch.save(D.state_dict(), tmp_path / "latest_net_D_A.pth")
    with pytest.raises(ValueError, match=r"discriminator\? pass the generator.*--model file\.py:factory") as e:
        load_subject(tmp_path / "latest_net_D_A.pth", device="cpu")
    assert "\n" not in str(e.value)
