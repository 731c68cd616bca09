"""MUNIT generator files (``gen_%08d.pt`` = {"a": AdaINGen state_dict, "b": ...}) load as Subjects whose
latent z is MUNIT's style code.

The files are written here key by key in the layout of NVlabs/MUNIT ``networks.py`` (AdaINGen:
``enc_style`` StyleEncoder(4, ...), ``enc_content`` ContentEncoder, ``dec`` Decoder, ``mlp`` MLP of 3
LinearBlocks; each Conv2dBlock ``.conv``, ``.norm``, ``.activation``; ``ResBlocks.model.<i>.model.<j>``)
with random weights; the expected images come from an independent functional forward over those keys
(``F.pad``, ``F.conv2d``, instance statistics by hand, the reference LayerNorm formula, ``F.linear``,
nearest upsampling), never from our module. Old code: such a file (a dict of two dicts) was refused as
"neither a CycleGAN nor a StarGAN v1 generator state_dict nor a StarGAN v2 checkpoint".
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from interp_gan.subject.loading import load_subject
from tests.models.corrupt_files import KINDS, REASON, assert_refused_in_one_line, corrupted

TINY = dict(dim=4, style_dim=3, n_down=2, n_res=2, mlp_dim=8)


# --- the reference layout, written out -------------------------------------------------------------
def reference_gen(dim=4, style_dim=3, n_down=2, n_res=2, mlp_dim=8, mlp_blocks=3, style_down=4, input_nc=3,
                  prelu=False, old_in_stats=False, tracked=False, seed=0):
    """One AdaINGen's state_dict with random values (AdaIN's dummy buffers as the reference leaves them)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def conv(key, cin, cout, k, act=True, norm="none"):
        sd[f"{key}.conv.weight"] = torch.randn(cout, cin, k, k, generator=g) / (k * cin ** 0.5)
        sd[f"{key}.conv.bias"] = torch.randn(cout, generator=g) * 0.1
        if norm == "ln":
            sd[f"{key}.norm.gamma"] = torch.rand(cout, generator=g) + 0.5
            sd[f"{key}.norm.beta"] = torch.randn(cout, generator=g) * 0.2
        if norm == "adain":
            sd[f"{key}.norm.running_mean"], sd[f"{key}.norm.running_var"] = torch.zeros(cout), torch.ones(cout)
        if norm == "in" and old_in_stats:          # PyTorch 0.3: every InstanceNorm kept (unused) statistics
            sd[f"{key}.norm.running_mean"] = torch.randn(cout, generator=g)
            sd[f"{key}.norm.running_var"] = torch.rand(cout, generator=g) + 0.5
            if tracked:
                sd[f"{key}.norm.num_batches_tracked"] = torch.tensor(100)
        if act and prelu:
            sd[f"{key}.activation.weight"] = torch.rand(1, generator=g) * 0.3

    # StyleEncoder(4, input_dim, dim, style_dim): 7x7, two doubling 4x4 s2, n-2 more, pool, 1x1 conv
    conv("enc_style.model.0", input_nc, dim, 7)
    d = dim
    for i in range(2):
        conv(f"enc_style.model.{i + 1}", d, 2 * d, 4)
        d *= 2
    for i in range(style_down - 2):
        conv(f"enc_style.model.{i + 3}", d, d, 4)
    sd[f"enc_style.model.{style_down + 2}.weight"] = torch.randn(style_dim, d, 1, 1, generator=g) / d ** 0.5
    sd[f"enc_style.model.{style_down + 2}.bias"] = torch.randn(style_dim, generator=g) * 0.1
    # ContentEncoder(n_downsample, n_res, input_dim, dim, 'in')
    conv("enc_content.model.0", input_nc, dim, 7, norm="in")
    d = dim
    for i in range(n_down):
        conv(f"enc_content.model.{i + 1}", d, 2 * d, 4, norm="in")
        d *= 2
    for i in range(n_res):
        for j in range(2):
            conv(f"enc_content.model.{n_down + 1}.model.{i}.model.{j}", d, d, 3, act=j == 0, norm="in")
    # Decoder(n_downsample, n_res, D, input_dim, res_norm='adain')
    for i in range(n_res):
        for j in range(2):
            conv(f"dec.model.0.model.{i}.model.{j}", d, d, 3, act=j == 0, norm="adain")
    for i in range(n_down):                          # model.{2i+1} is nn.Upsample: no keys
        conv(f"dec.model.{2 * i + 2}", d, d // 2, 5, norm="ln")
        d //= 2
    conv(f"dec.model.{2 * n_down + 1}", d, input_nc, 7, act=False)
    # MLP(style_dim, num_adain_params, mlp_dim, 3)
    n_adain = 2 * 2 * n_res * dim * 2 ** n_down
    widths = [style_dim] + [mlp_dim] * (mlp_blocks - 1) + [n_adain]
    for i in range(mlp_blocks):
        sd[f"mlp.model.{i}.fc.weight"] = torch.randn(widths[i + 1], widths[i], generator=g) / widths[i] ** 0.5
        sd[f"mlp.model.{i}.fc.bias"] = torch.randn(widths[i + 1], generator=g) * 0.1
        if i < mlp_blocks - 1 and prelu:
            sd[f"mlp.model.{i}.activation.weight"] = torch.rand(1, generator=g) * 0.3
    # the AdaIN weights (the second half of each chunk) near 1, so that the decoder is not saturated
    sd[f"mlp.model.{mlp_blocks - 1}.fc.bias"] = torch.cat(
        [torch.cat([torch.zeros(dim * 2 ** n_down), torch.ones(dim * 2 ** n_down)]) for _ in range(2 * n_res)])
    return sd


def _act(h, key, sd, activ):
    if f"{key}.activation.weight" in sd:
        return F.prelu(h, sd[f"{key}.activation.weight"])
    return {"relu": F.relu, "lrelu": lambda t: F.leaky_relu(t, 0.2), "selu": F.selu, "tanh": torch.tanh}[activ](h)


def _block(h, sd, key, k, stride, pad, pad_type, norm=None, act=None):
    """Conv2dBlock: pad, conv, norm, activation (a callable or None)."""
    mode = {"reflect": "reflect", "replicate": "replicate", "zero": "constant"}[pad_type]
    h = F.conv2d(F.pad(h, (pad,) * 4, mode=mode), sd[f"{key}.conv.weight"], sd[f"{key}.conv.bias"], stride=stride)
    if norm is not None:
        h = norm(h)
    return act(h) if act is not None else h


def _inorm(h, eps=1e-5):
    mu = h.mean((2, 3), keepdim=True)
    var = ((h - mu) ** 2).mean((2, 3), keepdim=True)       # biased, eps under the root
    return (h - mu) / torch.sqrt(var + eps)


def _lnorm(sd, key, eps=1e-5):
    def f(h):
        flat = h.reshape(h.shape[0], -1)
        mean = flat.mean(1)
        std = torch.sqrt(((flat - mean[:, None]) ** 2).sum(1) / (flat.shape[1] - 1))   # unbiased
        y = (h - mean[:, None, None, None]) / (std[:, None, None, None] + eps)           # eps on the std
        return y * sd[f"{key}.norm.gamma"][None, :, None, None] + sd[f"{key}.norm.beta"][None, :, None, None]
    return f


def reference_content(sd, x, n_down, n_res, pad_type="reflect", activ="relu"):
    act = lambda key: (lambda h: _act(h, key, sd, activ))
    h = _block(x, sd, "enc_content.model.0", 7, 1, 3, pad_type, _inorm, act("enc_content.model.0"))
    for i in range(n_down):
        k = f"enc_content.model.{i + 1}"
        h = _block(h, sd, k, 4, 2, 1, pad_type, _inorm, act(k))
    for i in range(n_res):
        p = f"enc_content.model.{n_down + 1}.model.{i}.model"
        y = _block(h, sd, f"{p}.0", 3, 1, 1, pad_type, _inorm, act(f"{p}.0"))
        h = h + _block(y, sd, f"{p}.1", 3, 1, 1, pad_type, _inorm)
    return h


def reference_decode(sd, content, s, n_down, n_res, pad_type="reflect", activ="relu", mlp_blocks=3):
    act = lambda key: (lambda h: _act(h, key, sd, activ))
    p = s.reshape(len(s), -1)
    for i in range(mlp_blocks):
        p = F.linear(p, sd[f"mlp.model.{i}.fc.weight"], sd[f"mlp.model.{i}.fc.bias"])
        if i < mlp_blocks - 1:
            p = _act(p, f"mlp.model.{i}", sd, activ)
    h, off = content, 0
    for i in range(n_res):
        y = h
        for j in range(2):
            C = y.shape[1]
            bias, weight = p[:, off:off + C], p[:, off + C:off + 2 * C]       # assign_adain_params' order
            off += 2 * C
            key = f"dec.model.0.model.{i}.model.{j}"
            norm = lambda t, w=weight, b=bias: _inorm(t) * w[:, :, None, None] + b[:, :, None, None]
            y = _block(y, sd, key, 3, 1, 1, pad_type, norm, act(key) if j == 0 else None)
        h = h + y
    assert off == p.shape[1]
    for i in range(n_down):
        key = f"dec.model.{2 * i + 2}"
        h = _block(F.interpolate(h, scale_factor=2, mode="nearest"), sd, key, 5, 1, 2, pad_type, _lnorm(sd, key),
                   act(key))
    return _block(h, sd, f"dec.model.{2 * n_down + 1}", 7, 1, 3, pad_type, None, torch.tanh)


def reference_style(sd, x, style_down=4, pad_type="reflect", activ="relu"):
    h = x
    for i in range(style_down + 1):
        k = f"enc_style.model.{i}"
        h = _block(h, sd, k, 7 if i == 0 else 4, 1 if i == 0 else 2, 3 if i == 0 else 1, pad_type, None,
                   lambda t, k=k: _act(t, k, sd, activ))
    h = h.mean((2, 3), keepdim=True)
    w = sd[f"enc_style.model.{style_down + 2}.weight"]
    return F.conv2d(h, w, sd[f"enc_style.model.{style_down + 2}.bias"]).flatten(1)


def test_the_norm_helpers_are_the_reference_formulations():
    """The helpers above against networks.py's own formulations: AdaptiveInstanceNorm2d is F.batch_norm in
    training mode on the batch folded into channels [1, N*C, H, W] (its running buffers are copies it
    never reads back); LayerNorm is (x - mean) / (x.view(N, -1).std(1) + eps) (torch's unbiased std)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, 6, generator=g) * 3 + 1
    w, b = torch.rand(3 * 4, generator=g), torch.randn(3 * 4, generator=g)
    folded = F.batch_norm(x.reshape(1, 12, 5, 6), torch.zeros(12), torch.ones(12), w, b, True, 0.1, 1e-5)
    assert torch.allclose(folded.reshape(3, 4, 5, 6), _inorm(x) * w.view(3, 4, 1, 1) + b.view(3, 4, 1, 1), atol=1e-5)
    sd = {"k.norm.gamma": torch.rand(4, generator=g), "k.norm.beta": torch.randn(4, generator=g)}
    flat = x.view(3, -1)
    ref = (x - flat.mean(1).view(-1, 1, 1, 1)) / (flat.std(1).view(-1, 1, 1, 1) + 1e-5)
    ref = ref * sd["k.norm.gamma"].view(1, -1, 1, 1) + sd["k.norm.beta"].view(1, -1, 1, 1)
    assert torch.allclose(_lnorm(sd, "k")(x), ref, atol=1e-5)


def _nets(seed=0, **kw):
    return {"a": reference_gen(seed=seed, **kw), "b": reference_gen(seed=seed + 100, **kw)}


def _save(nets, path, prefix=""):
    torch.save({g: {f"{prefix}{k}": v for k, v in sd.items()} for g, sd in nets.items()}, path)
    return path


def _x(n=2, size=(16, 16), seed=1):
    return torch.rand(n, 3, *size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# --- the forward --------------------------------------------------------------------------------------
VARIANTS = {
    "tiny": dict(),
    "one_down_three_blocks": dict(n_down=1, n_res=3, size=(18, 26)),   # not square, not a power of 2
    "wider_mlp_four_layers": dict(mlp_dim=16, mlp_blocks=4, style_dim=8),
    "style_encoder_five_downs": dict(style_down=5, size=(32, 32)),
    "zero_padding": dict(_opts="pad_type=zero"),
    "replicate_lrelu": dict(_opts="pad_type=replicate,activ=lrelu"),
    "selu": dict(_opts="activ=selu"),
    "prelu_read_from_weights": dict(prelu=True),
    "pytorch03_running_stats": dict(old_in_stats=True),
    "module_prefix_b2a": dict(_prefix="module.", _opts="direction=b2a"),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_loads_and_matches_the_independent_forward(name, tmp_path):
    v = dict(VARIANTS[name])
    opts, prefix, size = v.pop("_opts", ""), v.pop("_prefix", ""), v.pop("size", (16, 16))
    nets = _nets(**v)
    spec = str(_save(nets, tmp_path / "gen_00800000.pt", prefix)) + (f"#{opts}" if opts else "")
    s = load_subject(spec, device="cpu")
    kv = dict(o.split("=") for o in opts.split(",")) if opts else {}
    pad, activ = kv.get("pad_type", "reflect"), kv.get("activ", "relu")
    src, tgt = ("b", "a") if kv.get("direction") == "b2a" else ("a", "b")
    n_down, n_res = v.get("n_down", 2), v.get("n_res", 2)
    x = _x(size=size)
    z = s.sample_z(2, seed=3)
    assert z.shape == (2, v.get("style_dim", 3)) and s.has_latent and s.num_styles == 1
    with torch.no_grad():
        c = reference_content(nets[src], x, n_down, n_res, pad, activ)
        want = reference_decode(nets[tgt], c, z, n_down, n_res, pad, activ, v.get("mlp_blocks", 3))
        got = s.generate(x, torch.zeros(2, dtype=torch.long), z)
        assert torch.equal(s.style_code(torch.zeros(2, dtype=torch.long), z), z)       # the style code is z
        assert torch.equal(s.stylize_code(x, z), got)
        code = s.encode_style(x, torch.zeros(2, dtype=torch.long))
        want_code = reference_style(nets[tgt], x, v.get("style_down", 4), pad, activ)
    diff = (got - want).abs().max().item()
    assert got.shape == want.shape == (2, 3, *size) and diff < 1e-5, diff
    assert want.std() > 0.05 and (want.abs() < 0.99).float().mean() > 0.5    # neither constant nor saturated
    assert (code - want_code).abs().max() < 1e-5 and code.shape == z.shape
    m = s.meta["model"]
    assert m["name"] == "munit" and m["direction"] == ("b2a" if src == "b" else "a2b")
    assert m["activ"] == ("prelu" if v.get("prelu") else activ) and m["pad_type"] == pad
    assert s.style_names == [f"domain_{tgt}"]
    assert "[-1, 1]" in s.meta["value_range"] and f"{src} -> {tgt}" in s.meta["translation"]
    assert ("munit_file_notes" in s.meta) == bool(v.get("old_in_stats"))


def test_the_style_code_changes_the_image_and_the_content_code_does_not_depend_on_it(tmp_path):
    s = load_subject(_save(_nets(), tmp_path / "gen.pt"), device="cpu")
    x, ids = _x(), torch.zeros(2, dtype=torch.long)
    from interp_gan import TraceDict
    with torch.no_grad(), TraceDict(s.generator, ["enc_content", "dec.res.0.conv1.conv", "dec.res.1"]) as td:
        a = s.generate(x, ids, s.sample_z(2, 0))
        first = {k: t.output.clone() for k, t in td.items()}
        b = s.generate(x, ids, s.sample_z(2, 1))
    assert (a - b).abs().max() > 1e-2                                  # multimodal: the code matters
    assert torch.equal(first["enc_content"], td["enc_content"].output)
    assert torch.equal(first["dec.res.0.conv1.conv"], td["dec.res.0.conv1.conv"].output)   # before any AdaIN
    assert not torch.equal(first["dec.res.1"], td["dec.res.1"].output)


def test_adain_running_buffers_are_loaded_but_never_read(tmp_path):
    nets = _nets()
    p0 = _save(nets, tmp_path / "gen0.pt")
    for k in nets["b"]:
        if k.startswith("dec.model.0.") and k.endswith(("running_mean", "running_var")):
            nets["b"][k] = torch.rand(nets["b"][k].shape) + 3.0
    s0, s1 = (load_subject(p, device="cpu") for p in (p0, _save(nets, tmp_path / "gen1.pt")))
    assert (s1.generator.dec.res[0].conv1.norm.running_mean >= 3).all()          # loaded as they are
    x, ids, z = _x(), torch.zeros(2, dtype=torch.long), torch.randn(2, 3)
    with torch.no_grad():
        assert torch.equal(s0.generate(x, ids, z), s1.generate(x, ids, z))


def test_the_two_directions_and_the_options_matter(tmp_path):
    nets = _nets()
    p = _save(nets, tmp_path / "gen.pt")
    x, ids = _x(1), torch.zeros(1, dtype=torch.long)
    z = torch.randn(1, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        outs = {o: load_subject(f"{p}#{o}" if o else p, device="cpu").generate(x, ids, z)
                for o in ("", "direction=b2a", "pad_type=zero", "activ=lrelu")}
        kw = load_subject(p, device="cpu", direction="b2a").generate(x, ids, z)        # as a keyword
    assert torch.equal(kw, outs["direction=b2a"])
    assert all((outs[""] - outs[o]).abs().max() > 1e-3 for o in outs if o)


# --- the reference's module tree, rebuilt from networks.py's structure ---------------------------------
class _RefAdaIN(nn.Module):
    """AdaptiveInstanceNorm2d: weight / bias assigned from outside; batch_norm over [1, N*C, H, W]."""

    def __init__(self, c):
        super().__init__()
        self.num_features, self.weight, self.bias = c, None, None
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))

    def forward(self, x):
        n, c = x.shape[:2]
        out = F.batch_norm(x.contiguous().view(1, n * c, *x.shape[2:]), self.running_mean.repeat(n),
                           self.running_var.repeat(n), self.weight, self.bias, True, 0.1, 1e-5)
        return out.view(x.shape)


class _RefLN(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gamma, self.beta = nn.Parameter(torch.rand(c)), nn.Parameter(torch.zeros(c))

    def forward(self, x):
        mean, std = x.view(x.size(0), -1).mean(1), x.view(x.size(0), -1).std(1)
        x = (x - mean.view(-1, 1, 1, 1)) / (std.view(-1, 1, 1, 1) + 1e-5)
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


class _RefBlock(nn.Module):
    """Conv2dBlock: children registered as the reference does (pad, norm, activation, conv)."""

    def __init__(self, cin, cout, k, stride, pad, norm="none", act="relu"):
        super().__init__()
        self.pad = nn.ReflectionPad2d(pad)
        self.norm = {"in": lambda: nn.InstanceNorm2d(cout), "ln": lambda: _RefLN(cout),
                     "adain": lambda: _RefAdaIN(cout), "none": lambda: None}[norm]()
        self.activation = {"relu": lambda: nn.ReLU(inplace=True), "tanh": nn.Tanh, "none": lambda: None}[act]()
        self.conv = nn.Conv2d(cin, cout, k, stride)

    def forward(self, x):
        x = self.conv(self.pad(x))
        x = self.norm(x) if self.norm is not None else x
        return self.activation(x) if self.activation is not None else x


class _RefRes(nn.Module):
    def __init__(self, d, norm):
        super().__init__()
        self.model = nn.Sequential(_RefBlock(d, d, 3, 1, 1, norm), _RefBlock(d, d, 3, 1, 1, norm, "none"))

    def forward(self, x):
        out = self.model(x)
        out += x                                        # in place, as the reference
        return out


def _seq(*mods):
    m = nn.Module()
    m.model = nn.Sequential(*mods)
    m.forward = m.model.forward
    return m


def _ref_gen(dim=4, style_dim=3, n_down=2, n_res=2, mlp_dim=8):
    G = nn.Module()
    d = dim
    style = [_RefBlock(3, d, 7, 1, 3)] + [_RefBlock(d * 2 ** i, d * 2 ** (i + 1), 4, 2, 1) for i in range(2)]
    G.enc_style = _seq(*style, _RefBlock(4 * d, 4 * d, 4, 2, 1), _RefBlock(4 * d, 4 * d, 4, 2, 1),
                       nn.AdaptiveAvgPool2d(1), nn.Conv2d(4 * d, style_dim, 1))
    D = d * 2 ** n_down
    G.enc_content = _seq(_RefBlock(3, d, 7, 1, 3, "in"),
                         *[_RefBlock(d * 2 ** i, d * 2 ** (i + 1), 4, 2, 1, "in") for i in range(n_down)],
                         _seq(*[_RefRes(D, "in") for _ in range(n_res)]))
    ups = []
    for i in range(n_down):
        ups += [nn.Upsample(scale_factor=2), _RefBlock(D // 2 ** i, D // 2 ** (i + 1), 5, 1, 2, "ln")]
    G.dec = _seq(_seq(*[_RefRes(D, "adain") for _ in range(n_res)]), *ups, _RefBlock(d, 3, 7, 1, 3, "none", "tanh"))
    mlp = [nn.Module() for _ in range(3)]
    sizes = [(style_dim, mlp_dim, True), (mlp_dim, mlp_dim, True), (mlp_dim, 4 * n_res * D, False)]
    for m, (a, b, act) in zip(mlp, sizes):
        m.fc = nn.Linear(a, b)
        m.activation = nn.ReLU(inplace=True) if act else None
        m.forward = lambda x, m=m: m.activation(m.fc(x)) if m.activation is not None else m.fc(x)
    G.mlp = _seq(*mlp)
    return G


def _ref_decode(G, content, s):
    p = G.mlp(s.view(s.size(0), -1))
    for m in G.dec.modules():                           # assign_adain_params
        if isinstance(m, _RefAdaIN):
            c = m.num_features
            m.bias, m.weight = p[:, :c].contiguous().view(-1), p[:, c:2 * c].contiguous().view(-1)
            p = p[:, 2 * c:]
    return G.dec(content)


def test_the_reference_module_tree_takes_exactly_these_keys_and_computes_the_same(tmp_path):
    """Strict loads into networks.py's tree pin the key layout; its forward (in-place ReLU and residual
    sum, AdaIN parameters assigned as attributes) the numbers, with the style code as [N, 8, 1, 1] as
    test.py draws it."""
    nets = _nets()
    ref = {g: _ref_gen() for g in "ab"}
    for g in "ab":
        ref[g].load_state_dict(nets[g], strict=True)
        ref[g].eval()
    s = load_subject(_save(nets, tmp_path / "gen.pt"), device="cpu")
    x = _x(2, (24, 32))
    z = torch.randn(2, 3, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want = _ref_decode(ref["b"], ref["a"].enc_content(x.clone()), z.view(2, 3, 1, 1))
        got = s.generate(x, torch.zeros(2, dtype=torch.long), z)
        code = ref["b"].enc_style(x.clone()).flatten(1)
        assert (got - want).abs().max().item() < 1e-5 and want.std() > 0.05
        assert (s.encode_style(x, torch.zeros(2, dtype=torch.long)) - code).abs().max() < 1e-5
        assert (reference_decode(nets["b"], reference_content(nets["a"], x, 2, 2), z, 2, 2) - want).abs().max() < 1e-5


# --- layers, controls -----------------------------------------------------------------------------------
def test_layers_are_named_by_role_and_the_default_is_the_last_adain_block(tmp_path):
    from interp_gan.harvest.hooks import default_unit_layer, modules_that_fire, spatial_layers
    from interp_gan.models.munit import MUNITTranslator

    s = load_subject(_save(_nets(), tmp_path / "gen.pt"), device="cpu")
    convs = spatial_layers(s.generator)
    res = [f"{p}.res.{i}.conv{j}.conv" for p in ("enc_content", "dec") for i in range(2) for j in (1, 2)]
    assert convs == (["enc_content.stem.conv", "enc_content.down.0.conv", "enc_content.down.1.conv"] + res[:4]
                     + res[4:] + ["dec.up.0.conv", "dec.up.1.conv", "dec.out.conv"])      # no enc_style
    assert "enc_style.down.3.conv" in dict(s.generator.named_modules())                  # hookable by name
    x, ids = torch.zeros(1, 3, 16, 16), torch.zeros(1, dtype=torch.long)
    assert modules_that_fire(s.generator, convs + ["mlp.0.fc"], lambda: s.generate(x, ids)) == \
        convs[:7] + ["mlp.0.fc"] + convs[7:]
    assert default_unit_layer(s.generator) == "dec.res.1"
    assert default_unit_layer(MUNITTranslator()) == "dec.res.3"               # the released configs' n_res = 4
    with torch.no_grad(), __import__("interp_gan").TraceDict(s.generator, ["dec.res.1", "dec.up.0.norm"]) as td:
        s.generate(x, ids)
    assert td["dec.res.1"].output.shape == (1, 16, 4, 4) and td["dec.up.0.norm"].output.shape == (1, 8, 8, 8)
    with pytest.raises(ValueError, match=r"multiples of 4; got 18x16") as e:
        s.generate(torch.zeros(1, 3, 18, 16), ids)
    assert "\n" not in str(e.value)


def test_the_random_init_control_redraws_layer_norms_and_resets_adain_buffers(tmp_path):
    s = load_subject(_save(_nets(), tmp_path / "gen.pt"), device="cpu")
    trained = {k: v.clone() for k, v in s.generator.state_dict().items()}
    with s.random_init(seed=0) as c:
        assert c.random_init_report.kept == {}
        live = s.generator.state_dict()
        for k, v in live.items():
            if k.endswith("norm.gamma"):
                assert 0 <= v.min() and v.max() <= 1 and not torch.equal(v, trained[k]), k     # U(0, 1) again
            if k.endswith("norm.beta"):
                assert torch.equal(v, torch.zeros_like(v)), k
            if k.endswith(".weight") and "conv" in k:
                assert not torch.equal(v, trained[k]), k
    assert all(torch.equal(v, trained[k]) for k, v in s.generator.state_dict().items())


# --- refusals -----------------------------------------------------------------------------------------
CORRUPT = {   # (key, its new value (None: deleted), which network of the file)
    "missing": ("dec.model.4.norm.beta", None, "b"),
    "extra": ("dec.model.0.model.2.model.0.conv.weight", torch.zeros(16, 16, 3, 3), "b"),
    "wrong_shape": ("mlp.model.2.fc.weight", torch.zeros(60, 8), "a"),   # an MLP that feeds too few AdaIN parameters
}


@pytest.mark.parametrize("kind", KINDS)
def test_a_corrupted_file_is_one_line_naming_the_key(kind, tmp_path, capsys):
    key, value, net = CORRUPT[kind]
    nets, _ = corrupted(_nets(), key, value, at=(net,))
    assert_refused_in_one_line(_save(nets, tmp_path / "gen_bad.pt"), key, capsys, size=16,
                               says=("MUNIT", REASON[kind]))


def test_a_huge_width_in_one_tensor_is_named_not_allocated(tmp_path, monkeypatch):
    nets = _nets()
    nets["a"]["enc_content.model.0.conv.weight"] = torch.zeros(100000, 3, 7, 7)     # one tensor saying dim = 100000
    with pytest.raises(ValueError, match=r"dim 4, .*wrong shape a\.enc_content\.model\.0\.conv\.weight \[100000, 3"):
        load_subject(_save(nets, tmp_path / "huge.pt"), device="cpu")
    monkeypatch.setenv("INTERP_GAN_MAX_PARAMS", "1000")                             # a consistent file over the cap
    with pytest.raises(ValueError, match=r"gen\.pt: the MUNIT generator its tensors imply would have"):
        load_subject(_save(_nets(), tmp_path / "gen.pt"), device="cpu")


def test_unit_files_discriminators_and_mismatched_generators_are_refused_in_one_line(tmp_path):
    unit = {g: {"enc.model.0.conv.weight": torch.zeros(4, 3, 7, 7), "dec.model.0.conv.weight": torch.zeros(3, 4, 7, 7)}
            for g in "ab"}
    dis = {g: {"cnns.0.0.conv.weight": torch.zeros(4, 3, 4, 4)} for g in "ab"}
    mixed = {"a": reference_gen(), "b": reference_gen(dim=8)}
    grey = {"a": reference_gen(input_nc=1), "b": reference_gen()}          # input_dim_a: 1 in a config
    for nets, pattern in ((unit, r"layout of UNIT \(VAEGen\), which has no style code"),
                          (grey, r"1-channel images \(domain a\): this loader translates RGB \(3 channels\) only"),
                          (dis, r"MUNIT's discriminators \(dis_\*\.pt"),
                          (mixed, r"its two generators differ \(dim 4 vs 8")):
        with pytest.raises(ValueError, match=pattern) as e:
            load_subject(_save(nets, tmp_path / "g.pt"), device="cpu")
        assert "\n" not in str(e.value)


def test_options_are_checked_in_one_line(tmp_path):
    from tests.models.test_animegan import reference_state_dict

    p = _save(_nets(), tmp_path / "gen.pt")
    for spec, pattern in ((f"{p}#direction=c2d", r"direction='c2d' in .*: expected direction=a2b\|b2a"),
                          (f"{p}#align_corners=false", r"do not apply to a MUNIT generator file"),
                          (f"{p}#activ=prelu", r"holds no PReLU weights"),
                          (f"{p}#psi=0.7", r"apply to StyleGAN2 subjects only.*MUNIT gen_\*\.pt takes direction")):
        with pytest.raises(ValueError, match=pattern) as e:
            load_subject(spec, device="cpu")
        assert "\n" not in str(e.value)
    anime = tmp_path / "paprika.pt"
    torch.save(reference_state_dict((8, 16, 24, 32), 2), anime)
    with pytest.raises(ValueError, match=r"apply to U-GAT-IT params files .* and MUNIT generator files \(gen_\*\.pt\) only"):
        load_subject(f"{anime}#direction=b2a", device="cpu")


def test_a_file_of_the_running_stats_version_is_loaded_with_instance_statistics_and_said(tmp_path):
    nets = _nets(old_in_stats=True, tracked=True)
    nets["classifier"] = {"fc.weight": torch.zeros(2, 2)}       # a fork's extra network: said, not loaded
    s = load_subject(_save(nets, tmp_path / "gen.pt"), device="cpu")
    notes = " ".join(s.meta["munit_file_notes"])
    assert "num_batches_tracked" in notes and "instance statistics are used" in notes
    assert "entries other than the two generators are not loaded: classifier" in notes
    x, z = _x(1), torch.randn(1, 3)
    with torch.no_grad():
        want = reference_decode(nets["b"], reference_content(nets["a"], x, 2, 2), z, 2, 2)
        assert (s.generate(x, torch.zeros(1, dtype=torch.long), z) - want).abs().max() < 1e-5


# --- convert, analyses ------------------------------------------------------------------------------------
@pytest.mark.parametrize("direction", ["a2b", "b2a"])
def test_converted_file_round_trips(direction, tmp_path):
    from interp_gan.cli import main

    nets = _nets(old_in_stats=True)
    src = _save(nets, tmp_path / "gen_01000000.pt")
    spec = f"{src}#direction={direction},pad_type=zero"
    out = tmp_path / "munit.safetensors"
    assert main(["convert", spec, str(out)]) == 0
    s, orig = load_subject(out, device="cpu"), load_subject(spec, device="cpu")
    assert s.meta["model"] == orig.meta["model"] and s.meta["model"]["pad_type"] == "zero"
    assert s.style_names == orig.style_names == [f"domain_{direction[-1]}"]
    assert s.meta["translation"] == orig.meta["translation"]
    assert s.meta["munit_file_notes"] == orig.meta["munit_file_notes"]
    x, ids = _x(2), torch.zeros(2, dtype=torch.long)
    z = s.sample_z(2, 5)
    with torch.no_grad():
        got = s.generate(x, ids, z)
        assert torch.equal(got, orig.generate(x, ids, z))
        assert torch.equal(s.encode_style(x, ids), orig.encode_style(x, ids))
    with pytest.raises(ValueError, match=r"keeps the value it was converted with"):
        load_subject(f"{out}#direction=a2b", device="cpu")


def test_convert_with_two_style_names_names_munit(tmp_path, capsys):
    from interp_gan.cli import main

    src = _save(_nets(), tmp_path / "gen.pt")
    assert main(["convert", str(src), str(tmp_path / "g.safetensors"), "--style-names", "a,b"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "MUNIT translation (one style: the target domain)" in err


def test_directions_run_in_the_style_code_space_and_dissection_on_the_decoder(tmp_path):
    from interp_gan.analyses.base import build_analysis
    from tests.conftest import make_tiny_data

    s = load_subject(_save(_nets(), tmp_path / "gen.pt"), device="cpu")
    data = make_tiny_data(s, n=12, size=16)
    f = build_analysis("directions", methods=("pca", "sefa", "random"), n_samples=32, n_directions=2, n_random=2,
                       n_images=8, n_boot=50, n_perm=50, steps=(0, 2), seed=0).run(s, data)
    df = f.tables["directions"]
    assert not f.skipped and set(df.space) == {"style_code"} and {"pca", "random"} <= set(df.method)
    assert f.arrays["directions"].shape[1] == s.style_dim == 3
    assert any("sefa skipped" in n for n in f.notes)          # the MLP is no linear style affine
    d = build_analysis("dissection", n_boot=20, n_perm=20).run(s, data)
    assert not d.skipped
    layers = set(d.tables["dissection_units"]["layer"]) if "dissection_units" in d.tables else set()
    assert {"enc_content.stem.conv", "dec.res.1.conv2.conv", "dec.up.1.conv"} <= layers
    assert not [n for n in layers if n.startswith("enc_style")]


@pytest.mark.slow   # ~10 s: every analysis of analyses/full.toml (but replication) on a MUNIT nobody configured, b -> a
def test_full_pipeline_runs_or_skips_every_analysis_with_directions_in_the_style_space(tmp_path):
    import json

    import pandas as pd

    from interp_gan.config import load_pipeline
    from interp_gan.pipeline import analyze
    from tests.test_unconfigured_pipeline import SKIPS, family_pipeline

    p = _save(_nets(dim=2, n_down=1, n_res=1, mlp_dim=4), tmp_path / "gen_00800000.pt")
    cfg = family_pipeline()
    report, failed = analyze(f"{p}#direction=b2a", cfg, out_dir=tmp_path / "rep", paper=False)
    assert failed == []
    found = json.loads((tmp_path / "rep" / "findings.json").read_text())
    assert set(found) == {a.name for a in cfg.analyses}
    for name, f in found.items():
        assert bool(f["skipped"]) == (name in SKIPS), (name, f["skipped"])
    rows = pd.read_csv(tmp_path / "rep" / "findings" / "directions.csv")
    assert len(rows) and set(rows["space"]) == {"style_code"}
    assert "domain_a" in (tmp_path / "rep" / "index.html").read_text()
