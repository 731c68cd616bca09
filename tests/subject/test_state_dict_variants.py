"""State dicts as training scripts and older PyTorch versions leave them (docs/models.md, "Formats").

The CycleGAN generator is rebuilt here module for module (nn.Sequential indices as the reference's
``ResnetGenerator``: ``model.1.weight``, ``model.10.conv_block.1.weight``), with random weights; each
file goes through ``load_subject`` and the Subject's image must equal this module's own forward on the
same RGB content, read the way the reference reads it (a grey network gets the luma).
"""
import functools

import pytest
import torch
from torch import nn

from interp_gan.subject.loading import load_subject
from tests.models.test_unet_generator import reference_forward as unet_forward, reference_state_dict as unet_sd

LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


class _Block(nn.Module):
    def __init__(self, dim, norm, bias):
        super().__init__()
        self.conv_block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm(dim), nn.ReLU(True),
                                        nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm(dim))

    def forward(self, x):
        return x + self.conv_block(x)


def cyclegan(input_nc=3, output_nc=3, ngf=8, n_blocks=2, tracked=False, seed=0):
    """The reference ResNet generator with instance norm; ``tracked``: InstanceNorm with running statistics,
    as PyTorch before 0.4 saved it (moved off 0 / 1 so that using them would show)."""
    torch.manual_seed(seed)
    norm = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=tracked)
    m = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7), norm(ngf), nn.ReLU(True)]
    for i in range(2):
        c = ngf * 2 ** i
        m += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), norm(2 * c), nn.ReLU(True)]
    m += [_Block(ngf * 4, norm, True) for _ in range(n_blocks)]
    for i in range(2):
        c = ngf * 2 ** (2 - i)
        m += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1), norm(c // 2), nn.ReLU(True)]
    m += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
    G = nn.Sequential()
    G.model = nn.Sequential(*m)
    with torch.no_grad():
        for mod in G.modules():
            if isinstance(mod, nn.InstanceNorm2d) and tracked:
                mod.running_mean.normal_(0, 1)
                mod.running_var.uniform_(0.5, 2)
    return G.eval()


def expected(G, x):
    """The reference's test-time image: instance statistics (its loader deletes tracked ones), luma in for a
    grey network, a grey output repeated to RGB."""
    for mod in G.modules():
        if isinstance(mod, nn.InstanceNorm2d):
            mod.track_running_stats, mod.running_mean, mod.running_var = False, None, None
    if G.model[1].in_channels == 1:
        x = (x * LUMA).sum(1, keepdim=True)
    with torch.no_grad():
        y = G(x)
    return y.expand(-1, 3, -1, -1) if y.shape[1] == 1 else y


def _x(size=32):
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1


def _image(s, x):
    with torch.no_grad():
        return s.generate(x, torch.zeros(len(x), dtype=torch.long))


@pytest.mark.parametrize("nbt", [False, True])
def test_instance_norm_running_statistics_of_old_pytorch_are_dropped(nbt, tmp_path):
    G = cyclegan(tracked=True)
    sd = {k: v for k, v in G.state_dict().items() if nbt or not k.endswith("num_batches_tracked")}
    assert any(k.endswith("running_mean") for k in sd)
    torch.save(sd, tmp_path / "latest_net_G_A.pth")
    s = load_subject(tmp_path / "latest_net_G_A.pth", device="cpu")
    x = _x()
    assert (_image(s, x) - expected(G, x)).abs().max() < 1e-5
    assert s.meta["model"]["tracked_stats_dropped"] == (27 if nbt else 18)    # 9 norms x 2 or 3 tensors
    assert any("older than 0.4" in n for n in s.meta["model_notes"])


def test_a_grey_input_is_fed_the_luma_and_a_grey_output_is_repeated(tmp_path):
    x = _x()
    G = cyclegan(input_nc=1)
    torch.save(G.state_dict(), tmp_path / "gray_in.pth")
    s = load_subject(tmp_path / "gray_in.pth", device="cpu")
    assert (_image(s, x) - expected(G, x)).abs().max() < 1e-5
    assert any("luma" in n for n in s.meta["model_notes"])
    G = cyclegan(output_nc=1)
    torch.save(G.state_dict(), tmp_path / "gray_out.pth")
    s = load_subject(tmp_path / "gray_out.pth", device="cpu")
    got = _image(s, x)
    assert got.shape == (2, 3, 32, 32) and (got - expected(G, x)).abs().max() < 1e-5
    sd = unet_sd(5, ngf=4, output_nc=1)            # pix2pix --output_nc 1 (a U-Net of 5 levels: 32 px)
    torch.save(sd, tmp_path / "latest_net_G.pth")
    got = _image(load_subject(tmp_path / "latest_net_G.pth", device="cpu"), x)
    assert got.shape == (2, 3, 32, 32)
    assert (got - unet_forward(sd, x, 5, "batch").expand(-1, 3, -1, -1)).abs().max() < 1e-5


@pytest.mark.parametrize("family", ["resnet", "unet"])
def test_a_four_channel_input_is_refused_at_load_in_one_line(family, tmp_path):
    sd = cyclegan(input_nc=4).state_dict() if family == "resnet" else unet_sd(5, ngf=4, input_nc=4)
    torch.save(sd, tmp_path / "G.pth")
    with pytest.raises(ValueError, match="takes 4 input channels.*--model file.py:factory") as e:
        load_subject(tmp_path / "G.pth", device="cpu")
    assert "\n" not in str(e.value)


def _opt():
    return {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(2)}},
            "param_groups": [{"lr": 2e-4, "betas": (0.5, 0.999), "params": [0]}]}


def _prefixed(p, sd):
    return {p + k: v for k, v in sd.items()}


WRAPS = {   # name -> (file contents from (G, other), which one must load, the entry the note names or None)
    "tutorial_model_state_dict": (lambda g, o: {"model_state_dict": g, "optimizer_state_dict": _opt(), "epoch": 3,
                                                "loss": 0.5}, "G", None),
    "G_AB_G_BA_D_A": (lambda g, o: {"G_AB": g, "G_BA": o, "D_A": {"model.0.weight": torch.zeros(8, 3, 4, 4)}},
                      "G", "G_AB"),
    "raw_and_ema_copy": (lambda g, o: {"G": o, "G_ema": g, "step": 1000}, "G", "G_ema"),
    "state_dict_and_its_ema": (lambda g, o: {"state_dict": o, "state_dict_ema": g, "epoch": 3}, "G", "state_dict_ema"),
    "lightning_generator_discriminator": (lambda g, o: {"state_dict": {**_prefixed("generator.", g),
                                                                       **_prefixed("discriminator.", o)},
                                                        "hyper_parameters": {"lr": 2e-4}, "epoch": 3},
                                          "G", "generator"),
    "ddp_and_torch_compile_prefixes": (lambda g, o: _prefixed("module._orig_mod.", g), "G", None),
    "netG_A_netG_B_optimizer": (lambda g, o: {"netG_A": g, "netG_B": o, "optimizer_G": _opt()}, "G", "netG_A"),
}


@pytest.mark.parametrize("name", list(WRAPS))
def test_training_script_wrappers_load_the_generator_and_say_which(name, tmp_path):
    make, _, entry = WRAPS[name]
    G, other = cyclegan(seed=0), cyclegan(seed=1)
    torch.save(make(G.state_dict(), other.state_dict()), tmp_path / "ckpt.pt")
    s = load_subject(tmp_path / "ckpt.pt", device="cpu")
    x = _x()
    assert (_image(s, x) - expected(G, x)).abs().max() < 1e-5
    notes = [n for n in s.meta.get("model_notes", []) if n.startswith("file: several networks")]
    if entry is None:
        assert not notes
    else:
        assert s.meta["network_entry"][-1] == entry and repr(entry) in notes[0]


def test_a_stargan_generator_saved_in_a_training_dict_loads(tmp_path):
    from tests.subject.test_stargan_loading import _Reference

    torch.manual_seed(0)
    R = _Reference().eval()
    sd = {"_orig_mod." + k: v for k, v in R.state_dict().items()}
    torch.save({"G": sd, "D": {"main.0.weight": torch.zeros(8, 3, 4, 4)}, "epoch": 3}, tmp_path / "ckpt.pth")
    s = load_subject(tmp_path / "ckpt.pth", device="cpu")
    for m in R.modules():          # the authors' test path: instance statistics (yunjey/stargan#102)
        if isinstance(m, nn.InstanceNorm2d):
            m.track_running_stats, m.running_mean, m.running_var = False, None, None
    x = _x()
    with torch.no_grad():
        want = R(x, torch.nn.functional.one_hot(torch.ones(2, dtype=torch.long), 3).float())
        got = s.generate(x, torch.ones(2, dtype=torch.long))
    assert s.meta["model"]["name"] == "stargan_v1" and (got - want).abs().max() < 1e-5
    assert s.meta["network_entry"] == ["G"] and any("'G', not D" in n for n in s.meta["model_notes"])


def test_numpy_scalars_beside_the_weights_load_and_other_objects_are_named(tmp_path):
    import numpy as np
    from pathlib import PurePosixPath

    G = cyclegan()
    torch.save({"state_dict": G.state_dict(), "best_loss": np.float64(0.3), "epoch": np.int64(3),
                "ok": np.bool_(True)}, tmp_path / "best.pth")
    x = _x()
    assert (_image(load_subject(tmp_path / "best.pth", device="cpu"), x) - expected(G, x)).abs().max() < 1e-5
    torch.save({"state_dict": G.state_dict(), "hyper_parameters": {"root": PurePosixPath("/data")}}, tmp_path / "l.ckpt")
    with pytest.raises(ValueError, match=r"\(the first: pathlib.PurePosixPath\).*ckpt\['state_dict'\]") as e:
        load_subject(tmp_path / "l.ckpt", device="cpu")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("layout", ["entries", "lightning_prefixes"])
def test_net_option_picks_another_network_and_convert_keeps_it(layout, tmp_path):
    from interp_gan.subject.loading import convert_checkpoint

    GA, GB = cyclegan(seed=0), cyclegan(seed=1)
    if layout == "entries":
        obj = {"netG_A": GA.state_dict(), "netG_B": GB.state_dict(), "optimizer_G": _opt()}
    else:
        obj = {"state_dict": {**_prefixed("netG_A.", GA.state_dict()), **_prefixed("netG_B.", GB.state_dict())}}
    torch.save(obj, tmp_path / "ckpt.pt")
    x = _x()
    s = load_subject(tmp_path / "ckpt.pt", device="cpu")
    assert (_image(s, x) - expected(GA, x)).abs().max() < 1e-5
    assert any("FILE#net=netG_B loads another" in n for n in s.meta["model_notes"])
    for s in (load_subject(f"{tmp_path / 'ckpt.pt'}#net=netG_B", device="cpu"),
              load_subject(tmp_path / "ckpt.pt", device="cpu", net="netG_B")):
        assert (_image(s, x) - expected(GB, x)).abs().max() < 1e-5 and s.meta["network_entry"] == ["netG_B"]
    convert_checkpoint(f"{tmp_path / 'ckpt.pt'}#net=netG_B", tmp_path / "b.safetensors")
    assert (_image(load_subject(tmp_path / "b.safetensors", device="cpu"), x) - expected(GB, x)).abs().max() < 1e-5
    with pytest.raises(ValueError, match=r"no network 'netG_C' in the file .*'netG_A', 'netG_B'") as e:
        load_subject(f"{tmp_path / 'ckpt.pt'}#net=netG_C", device="cpu")
    assert "\n" not in str(e.value)


def test_inspect_rounds_its_size_up_to_what_a_unet_takes(tmp_path, capsys):
    from interp_gan.cli import main

    torch.save(unet_sd(7, ngf=4), tmp_path / "latest_net_G.pth")      # unet_128, inspect's default --size 64
    assert main(["inspect", str(tmp_path / "latest_net_G.pth")]) == 0
    out = capsys.readouterr().out
    assert "(1, 3, 128, 128)" in out and "--size 64 rounded up to a multiple of 128" in out


class _PGResBlock(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(f, f, 3), nn.InstanceNorm2d(f), nn.ReLU(True),
                                   nn.ReflectionPad2d(1), nn.Conv2d(f, f, 3), nn.InstanceNorm2d(f))

    def forward(self, x):
        return x + self.block(x)


def pytorch_gan_generator(n_res=3, width=8, reflect_up=False, split=False):
    """eriklindernoren/PyTorch-GAN's CycleGAN ``GeneratorResNet`` (nearest x2, then a conv with padding=1: zero
    padding); ``reflect_up``: a ReflectionPad2d module before that conv instead; ``split``: the decoder in its
    own container."""
    torch.manual_seed(0)
    f = width
    enc = [nn.ReflectionPad2d(3), nn.Conv2d(3, f, 7), nn.InstanceNorm2d(f), nn.ReLU(True)]
    for _ in range(2):
        enc += [nn.Conv2d(f, 2 * f, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * f), nn.ReLU(True)]
        f *= 2
    enc += [_PGResBlock(f) for _ in range(n_res)]
    dec = []
    for _ in range(2):
        pad = [nn.ReflectionPad2d(1), nn.Conv2d(f, f // 2, 3)] if reflect_up else [nn.Conv2d(f, f // 2, 3, padding=1)]
        dec += [nn.Upsample(scale_factor=2), *pad, nn.InstanceNorm2d(f // 2), nn.ReLU(True)]
        f //= 2
    dec += [nn.ReflectionPad2d(3), nn.Conv2d(f, 3, 7), nn.Tanh()]
    G = nn.Sequential()
    if split:
        G.encoder, G.decoder = nn.Sequential(*enc), nn.Sequential(*dec)
    else:
        G.model = nn.Sequential(*enc, *dec)
    return G.eval()


@pytest.mark.parametrize("variant", ["flat", "split", "reflect_flat", "reflect_split"])
def test_resize_conv_padding_is_read_from_the_layout(variant, tmp_path):
    G = pytorch_gan_generator(reflect_up=variant.startswith("reflect"), split=variant.endswith("split"))
    torch.save(G.state_dict(), tmp_path / "G_AB_199.pth")
    s = load_subject(tmp_path / "G_AB_199.pth", device="cpu")
    x = _x(48)
    with torch.no_grad():
        assert (_image(s, x) - G(x)).abs().max() < 1e-5
    zero = not variant.startswith("reflect")
    assert [lay.get("pad") for lay in s.meta["model"]["layers"] if lay["role"] == "up"] == (["zero"] * 2 if zero
                                                                                           else [None, None])
    assert any(n.startswith("upsampling: nearest x2, then a 3x3 conv that pads with zeros") for n in
               s.meta["model_notes"]) == zero


def test_an_output_that_is_no_image_is_refused_at_load_in_one_line(tmp_path):
    torch.save(unet_sd(5, ngf=4, input_nc=1, output_nc=2), tmp_path / "latest_net_G.pth")   # colorization: L -> ab
    with pytest.raises(ValueError, match="output conv writes 2 channels.*colorization.*--model file.py:factory") as e:
        load_subject(tmp_path / "latest_net_G.pth", device="cpu")
    assert "\n" not in str(e.value)
