"""pix2pix / CycleGAN U-Net generators (``--netG unet_128`` / ``unet_256``) load as Subjects.

Each variant's state_dict is written here in the reference key layout (nested skip blocks:
``model.model.<i>``, block 1 under ``model.model.1.model.``, deeper ones under ``.3.model.``)
with random weights, random norm parameters and running statistics; the expected output comes
from an independent functional forward that reads the same keys (plain ``torch.nn.functional``
calls), never from our module. The Subject from ``load_subject`` must match it within 1e-5.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from interp_gan.subject.loading import load_subject
from tests.models.corrupt_files import KINDS, REASON, assert_refused_in_one_line, corrupted


def _width(k, ngf):
    return ngf * min(2 ** k, 8)      # inner channels of block k: ngf, 2ngf, 4ngf, 8ngf, 8ngf, ...


def reference_state_dict(num_downs, ngf=8, input_nc=3, output_nc=3, norm="batch", tracked=False, seed=0):
    """The reference UnetGenerator's state_dict, key by key, with random values."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    bias = norm == "instance"

    def conv(key, cout, cin, transposed=False, has_bias=bias):
        shape = (cin, cout, 4, 4) if transposed else (cout, cin, 4, 4)
        sd[f"{key}.weight"] = torch.randn(shape, generator=g) / (4 * cin ** 0.5)
        if has_bias:
            sd[f"{key}.bias"] = torch.randn(cout, generator=g) * 0.1

    def nrm(key, c):
        if norm == "batch":
            sd[f"{key}.weight"] = torch.rand(c, generator=g) + 0.5
            sd[f"{key}.bias"] = torch.randn(c, generator=g) * 0.2
            sd[f"{key}.running_mean"] = torch.randn(c, generator=g) * 0.1
            sd[f"{key}.running_var"] = torch.rand(c, generator=g) * 1.5 + 0.5
            sd[f"{key}.num_batches_tracked"] = torch.tensor(1000)
        elif norm == "instance" and tracked:   # older reference versions: InstanceNorm tracking statistics
            sd[f"{key}.running_mean"] = torch.randn(c, generator=g)
            sd[f"{key}.running_var"] = torch.rand(c, generator=g) + 0.5
            sd[f"{key}.num_batches_tracked"] = torch.tensor(7)

    def block(p, k, outer, cin):
        inner = _width(k, ngf)
        if k == 0:                              # [conv, sub, relu, convT, tanh]
            conv(f"{p}0", inner, cin)
            block(f"{p}1.model.", 1, inner, inner)
            conv(f"{p}3", outer, 2 * inner, transposed=True, has_bias=True)
        elif k == num_downs - 1:                # [lrelu, conv, relu, convT, norm]
            conv(f"{p}1", inner, cin)
            conv(f"{p}3", outer, inner, transposed=True)
            nrm(f"{p}4", outer)
        else:                                   # [lrelu, conv, norm, sub, relu, convT, norm (, dropout)]
            conv(f"{p}1", inner, cin)
            nrm(f"{p}2", inner)
            block(f"{p}3.model.", k + 1, inner, inner)
            conv(f"{p}5", outer, 2 * inner, transposed=True)
            nrm(f"{p}6", outer)

    block("model.model.", 0, output_nc, input_nc)
    return sd


def reference_forward(sd, x, num_downs, norm):
    """The reference U-Net's eval-mode forward, read off the keys (dropout is identity in eval)."""
    def cv(h, key):
        return F.conv2d(h, sd[f"{key}.weight"], sd.get(f"{key}.bias"), stride=2, padding=1)

    def ct(h, key):
        return F.conv_transpose2d(h, sd[f"{key}.weight"], sd.get(f"{key}.bias"), stride=2, padding=1)

    def nm(h, key):
        if norm == "batch":
            return F.batch_norm(h, sd[f"{key}.running_mean"], sd[f"{key}.running_var"], sd[f"{key}.weight"],
                                sd[f"{key}.bias"], training=False, eps=1e-5)
        if norm == "instance":   # the reference's loader drops tracked statistics: instance statistics
            return F.instance_norm(h, eps=1e-5)
        return h

    def block(h, p, k):
        if k == 0:
            y = block(cv(h, f"{p}0"), f"{p}1.model.", 1)
            return torch.tanh(ct(F.relu(y), f"{p}3"))
        if k == num_downs - 1:
            y = nm(ct(F.relu(cv(F.leaky_relu(h, 0.2), f"{p}1")), f"{p}3"), f"{p}4")
        else:
            y = nm(cv(F.leaky_relu(h, 0.2), f"{p}1"), f"{p}2")
            y = block(y, f"{p}3.model.", k + 1)
            y = nm(ct(F.relu(y), f"{p}5"), f"{p}6")
        return torch.cat([h, y], 1)

    return block(x, "model.model.", 0)


def _save(sd, path, prefix="", wrap=None):
    sd = {f"{prefix}{k}": v for k, v in sd.items()}
    if wrap == "state_dict":
        obj = {"state_dict": sd, "epoch": 200}
    elif wrap == "netG_A":             # a CycleGAN training dict: both generators, a discriminator
        obj = {"netG_A": sd, "netD_A": {"model.0.weight": torch.zeros(8, 3, 4, 4)},
               "netG_B": {k: v + 1 for k, v in sd.items()}}
    elif wrap == "flat_multi":         # one flat dict, networks under prefixes
        obj = {**sd, "netD.model.0.weight": torch.zeros(8, 6, 4, 4), "netD.model.0.bias": torch.zeros(8)}
    else:
        obj = sd
    torch.save(obj, path)
    return path


VARIANTS = {   # num_downs 7 = unet_128, 8 = unet_256
    "unet128_batch": dict(num_downs=7),
    "unet256_batch_dropout": dict(num_downs=8),       # dropout: no keys, identity in eval; same layout
    "unet128_instance_ngf16": dict(num_downs=7, ngf=16, norm="instance"),
    "unet256_instance_gray_in": dict(num_downs=8, norm="instance", input_nc=1),
    "unet128_instance_tracked": dict(num_downs=7, norm="instance", tracked=True),
    "unet128_none": dict(num_downs=7, norm="none"),
    "unet128_batch_pre_041": dict(num_downs=7, _drop="num_batches_tracked"),   # saved before PyTorch 0.4.1
    "unet128_batch_1to3_module": dict(num_downs=7, ngf=16, input_nc=1, _prefix="module."),
    "unet256_instance_netG_A_prefix": dict(num_downs=8, norm="instance", _prefix="netG_A."),
    "unet128_batch_netG_flat_multi": dict(num_downs=7, _prefix="netG.", _wrap="flat_multi"),
    "unet128_batch_wrapped_state_dict": dict(num_downs=7, ngf=16, _wrap="state_dict"),
    "unet128_instance_wrapped_netG_A": dict(num_downs=7, norm="instance", _prefix="module.", _wrap="netG_A"),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_loads_and_matches_the_independent_forward(name, tmp_path):
    opts = dict(VARIANTS[name])
    prefix, wrap, drop = opts.pop("_prefix", ""), opts.pop("_wrap", None), opts.pop("_drop", None)
    sd = reference_state_dict(**opts)
    if drop:
        sd = {k: v for k, v in sd.items() if not k.endswith(drop)}
    s = load_subject(_save(sd, tmp_path / "latest_net_G.pth", prefix, wrap), device="cpu")
    n, size = opts["num_downs"], 2 ** opts["num_downs"]
    x = torch.rand(2, opts.get("input_nc", 3), size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        want = reference_forward(sd, x, n, opts.get("norm", "batch"))
        got = s.generate(x, torch.zeros(2, dtype=torch.long))
    diff = (got - want).abs().max().item()
    print(f"{name}: max abs diff {diff:.3g}")
    assert got.shape == want.shape == (2, 3, size, size) and diff < 1e-5
    assert want.std() > 0.05          # not a saturated / constant output that would match anything
    m = s.meta["model"]
    assert m == {"name": "unet_generator", "num_downs": n, "ngf": opts.get("ngf", 8),
                 "input_nc": opts.get("input_nc", 3), "output_nc": 3, "norm": opts.get("norm", "batch")}


def test_layers_are_named_by_role_in_execution_order(tmp_path):
    from interp_gan.harvest.hooks import default_unit_layer, modules_that_fire, spatial_layers

    s = load_subject(_save(reference_state_dict(7), tmp_path / "G.pth"), device="cpu")
    convs = spatial_layers(s.generator)
    assert convs == [f"down.{k}.conv" for k in range(7)] + [f"up.{k}.conv" for k in reversed(range(7))]
    x = torch.zeros(1, 3, 128, 128)
    assert modules_that_fire(s.generator, convs, lambda: s.generate(x, torch.zeros(1, dtype=torch.long))) == convs
    assert default_unit_layer(s.generator) == "up.3.conv"      # 16x16 of 128, not the 2x2 innermost conv
    shapes = {}
    hs = [s.generator.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: shapes.update({n: o.shape}))
          for n in ("up.3.conv", "up.6.conv", "down.6.conv")]
    with torch.no_grad():
        s.generate(x, torch.zeros(1, dtype=torch.long))
    for h in hs:
        h.remove()
    assert shapes["up.3.conv"][-2:] == (16, 16) and shapes["up.6.conv"][-2:] == (2, 2) and shapes["down.6.conv"][-2:] == (1, 1)


def test_the_resnet_family_still_loads_as_resnet(tmp_path):
    from interp_gan.models.cyclegan import CycleGANGenerator

    torch.manual_seed(0)
    G = CycleGANGenerator(ngf=4, n_blocks=2).eval()
    torch.save(G.state_dict(), tmp_path / "ref.pth")
    torch.save({k.replace(".conv_block.", ".block."): v for k, v in G.state_dict().items()}, tmp_path / "fam.pth")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    for name, want in (("ref.pth", "cyclegan"), ("fam.pth", "resnet_generator")):
        s = load_subject(tmp_path / name, device="cpu")
        assert s.meta["model"]["name"] == want
        with torch.no_grad():
            assert (s.generate(x, torch.zeros(1, dtype=torch.long)) - G(x)).abs().max() < 1e-5


def test_converted_unet_round_trips(tmp_path):
    from interp_gan.cli import main

    sd = reference_state_dict(7, norm="instance", tracked=True)
    src = _save(sd, tmp_path / "G.pth", "module.")
    out = tmp_path / "g.safetensors"
    assert main(["convert", str(src), str(out)]) == 0
    s = load_subject(out, device="cpu")
    assert s.meta["model"]["name"] == "unet_generator"
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        diff = (s.generate(x, torch.zeros(1, dtype=torch.long)) - reference_forward(sd, x, 7, "instance")).abs().max()
    assert diff < 1e-5


def test_convert_with_two_style_names_names_the_unet(tmp_path, capsys):
    from interp_gan.cli import main

    src = _save(reference_state_dict(7, norm="instance"), tmp_path / "G.pth")
    assert main(["convert", str(src), str(tmp_path / "g.safetensors"), "--style-names", "a,b"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "U-Net generator (one style)" in err and "CycleGAN generator" not in err


CORRUPT = {"missing": ("model.model.1.model.3.model.2.running_var", None),   # (key, its new value; None: deleted)
           "extra": ("model.model.1.model.3.model.9.weight", torch.zeros(4, 4, 3, 3)),
           "wrong_shape": ("model.model.1.model.5.weight", torch.zeros(32, 9, 4, 4))}


@pytest.mark.parametrize("kind", KINDS)
def test_a_corrupted_unet_is_one_line_naming_the_key(kind, tmp_path, capsys):
    sd, key = corrupted(reference_state_dict(7), *CORRUPT[kind])
    assert_refused_in_one_line(_save(sd, tmp_path / "bad.pth"), key, capsys, size=128, says=("U-Net", REASON[kind]))


def test_sizes_read_from_the_file_are_checked_before_allocation(tmp_path, monkeypatch):
    sd = reference_state_dict(7)
    sd["model.model.0.weight"] = torch.zeros(4096, 3, 4, 4)       # implies ngf = 4096: ~1e10 parameters
    with pytest.raises(ValueError, match=r"ngf=8.*wrong shape model\.model\.0\.weight \[4096, 3, 4, 4\] \(expected \[8, 3, 4, 4\]\); for"):
        load_subject(_save(sd, tmp_path / "huge.pth"), device="cpu")
    monkeypatch.setenv("INTERP_GAN_MAX_PARAMS", "1000")           # a consistent file over the cap
    with pytest.raises(ValueError, match=r"G\.pth: the U-Net generator its tensors imply would have .* more than the cap"):
        load_subject(_save(reference_state_dict(7), tmp_path / "G.pth"), device="cpu")


def test_an_image_size_the_unet_cannot_take_is_one_line(tmp_path):
    s = load_subject(_save(reference_state_dict(7), tmp_path / "G.pth"), device="cpu")
    with pytest.raises(ValueError, match=r"multiples of 128; got 32x32") as e:
        s.generate(torch.zeros(1, 3, 32, 32), torch.zeros(1, dtype=torch.long))
    assert "\n" not in str(e.value)


def test_inspect_lists_the_unet(tmp_path, capsys):
    from interp_gan.cli import main

    p = _save(reference_state_dict(7, ngf=4), tmp_path / "latest_net_G.pth")
    assert main(["inspect", str(p), "--size", "128"]) == 0
    out = capsys.readouterr().out
    assert "unet_generator" in out and "up.0.conv" in out and "(1, 3, 128, 128)" in out


@pytest.mark.slow   # ~25 s: a whole analyze run with its report
def test_dissection_pipeline_runs_end_to_end(tmp_path, capsys):
    from interp_gan.cli import main

    p = _save(reference_state_dict(7, ngf=4), tmp_path / "latest_net_G.pth")
    sets = ["n_images=16", "image_size=128", "batch_size=8", "analyses.dissection.n_boot=20",
            "analyses.dissection.n_perm=20"]
    rc = main(["analyze", str(p), "--pipeline", "analyses/dissection.toml", "--device", "cpu",
               "--out", str(tmp_path / "rep"), *[x for s in sets for x in ("--set", s)]])
    assert rc == 0, capsys.readouterr().err[-2000:]
    import json
    found = json.loads((tmp_path / "rep" / "findings.json").read_text())
    assert not found["dissection"].get("skipped"), found["dissection"].get("skipped")
    assert (tmp_path / "rep" / "index.html").is_file()


@pytest.mark.slow   # ~10 s: every analysis of analyses/full.toml (but replication) on a U-Net nobody configured
def test_full_pipeline_runs_or_skips_every_analysis_on_a_unet(tmp_path):
    import json

    from interp_gan.config import load_pipeline
    from tests.test_unconfigured_pipeline import analyze_family

    # 5 levels take the tiny pipeline's 32 px (unet_128 needs 128 px: 4x the CI time for the same check)
    p = _save(reference_state_dict(5, ngf=4), tmp_path / "latest_net_G.pth")
    found = analyze_family(p, tmp_path / "rep")
    assert any("'up.3.conv', chosen by default" in n for n in found["directions"]["notes"])
    assert any("used 'up.3.conv'" in n for n in found["embedding"]["notes"])


def test_the_pipeline_rounds_image_size_up_to_what_the_unet_takes(tmp_path, capsys):
    from interp_gan.config import PipelineConfig
    from interp_gan.pipeline import _fit_image_size
    from interp_gan.subject.loading import load_subject
    path = _save(reference_state_dict(8, ngf=4), tmp_path / "latest_net_G.pth")
    subject = load_subject(str(path))
    cfg = _fit_image_size(subject, PipelineConfig(name="t", image_size=128))
    assert cfg.image_size == 256 and "image_size 128 -> 256" in capsys.readouterr().out
    assert _fit_image_size(subject, PipelineConfig(name="t", image_size=512)).image_size == 512   # kept


class _RefSkip(nn.Module):
    """The reference's skip block as the reference builds it: one Sequential ``model`` with
    IN-PLACE activations (LeakyReLU(0.2, True), ReLU(True)), forward ``cat([x, model(x)])``. The
    in-place LeakyReLU rewrites x before the concatenation, so the reference's skips carry
    leaky_relu(x); every concatenation then meets a ReLU first, which maps leaky_relu(x) and x to
    the same values, so our out-of-place module computes the same output (this test pins it)."""

    def __init__(self, k, n, ngf, input_nc, output_nc, norm, sub=None):
        super().__init__()
        outer, inner = (output_nc if k == 0 else _width(k - 1, ngf)), _width(k, ngf)
        cin, bias = (input_nc if k == 0 else outer), norm == "instance"

        def nl(c):
            return nn.BatchNorm2d(c) if norm == "batch" else nn.InstanceNorm2d(c) if norm == "instance" else nn.Identity()
        down = nn.Conv2d(cin, inner, 4, 2, 1, bias=bias)
        if k == 0:
            layers = [down, sub, nn.ReLU(True), nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1), nn.Tanh()]
        elif k == n - 1:
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias),
                      nl(outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, nl(inner), sub, nn.ReLU(True),
                      nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1, bias=bias), nl(outer)]
        self.outermost, self.model = k == 0, nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_matches_the_reference_module_tree_with_its_in_place_activations(norm, tmp_path):
    n, ngf = 5, 4
    sub = None
    for k in reversed(range(n)):
        sub = _RefSkip(k, n, ngf, 3, 3, norm, sub)
    ref = nn.Module()
    ref.model = sub
    sd = reference_state_dict(n, ngf=ngf, norm=norm)
    ref.load_state_dict(sd, strict=True)                 # the reference tree takes exactly these keys
    ref.eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    s = load_subject(_save(sd, tmp_path / "latest_net_G.pth"), device="cpu")
    with torch.no_grad():
        want = ref.model(x.clone())
        got = s.generate(x, torch.zeros(2, dtype=torch.long))
        functional = reference_forward(sd, x, n, norm)
    assert (got - want).abs().max().item() < 1e-5 and (functional - want).abs().max().item() < 1e-5
