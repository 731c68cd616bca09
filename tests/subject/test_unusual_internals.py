"""Generators whose internals are not conv maps (docs/models.md, "Unusual internals"): a channels-last
ConvNeXt block, a token transformer (StyTr^2-like, attention returning a tuple), MLP-Mixer token mixing,
squeeze-excitation gates, a module reused at two places, an attention matrix. Each layer is read as its
units ([N, C, H, W] through its layout) or refused in one line; default layers leave out what is no
spatial map. Tiny seeded modules at 16 px, no pipeline."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from interp_gan.analyses.attribution.analysis import single_unit_effects, unit_importance
from interp_gan.analyses.attribution.targets import Target
from interp_gan.analyses.base import AnalysisData
from interp_gan.harvest.hooks import Trace, ablate, default_unit_layer, spatial_layers
from interp_gan.harvest.stats import Quantile
from interp_gan.harvest.store import harvest
from interp_gan.subject.protocol import Subject

S = 16


class ConvNeXtish(nn.Module):            # Liu et al. 2022: dw conv, then Linear layers channels last
    def __init__(self, c=4):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.pw1 = nn.Linear(c, 3 * c)
        self.act = nn.GELU()
        self.pw2 = nn.Linear(3 * c, c)
        self.out = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, x):
        h = self.stem(x)
        y = self.pw2(self.act(self.pw1(self.norm(self.dw(h).permute(0, 2, 3, 1)))))
        return torch.tanh(self.out(h + y.permute(0, 3, 1, 2)))


class Tokens(nn.Module):                 # StyTr^2-like: patch tokens [N, L, C], attention, LayerNorm
    def __init__(self, c=6):
        super().__init__()
        self.embed = nn.Conv2d(3, c, 4, stride=4)
        self.attn = nn.MultiheadAttention(c, 2, batch_first=True)
        self.norm = nn.LayerNorm(c)
        self.mix = nn.Linear(16, 16)      # MLP-Mixer token mixing on [N, C, L] (Tolstikhin et al. 2021)
        self.dec = nn.Sequential(nn.Conv2d(c, 3, 3, padding=1), nn.Upsample(scale_factor=4))

    def forward(self, x):
        f = self.embed(x)
        B, C, H, W = f.shape
        t = f.flatten(2).transpose(1, 2)
        t = self.norm(t + self.attn(t, t, t, need_weights=False)[0])
        m = self.mix(t.transpose(1, 2))
        return torch.tanh(self.dec(m.reshape(B, C, H, W)))


class Gated(nn.Module):                  # squeeze-excitation (Hu et al. 2018) + one conv used twice
    def __init__(self, c=4):
        super().__init__()
        self.c1 = nn.Conv2d(3, c, 3, padding=1)
        self.fc1, self.fc2 = nn.Conv2d(c, 2, 1), nn.Conv2d(2, c, 1)
        self.lin = nn.Linear(c, c)
        self.shared = nn.Conv2d(c, c, 3, padding=1)
        self.mid = nn.Conv2d(c, c, 3, padding=1)
        self.out = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, x):
        h = F.relu(self.c1(x))
        h = h * torch.sigmoid(self.fc2(F.relu(self.fc1(h.mean((2, 3), keepdim=True)))))
        h = h * torch.sigmoid(self.lin(h.mean((2, 3))))[:, :, None, None]
        h = self.mid(F.relu(self.shared(h)))
        return torch.tanh(self.out(F.relu(self.shared(h))))


class Attention(nn.Module):              # SANet-like (Park & Lee 2019): softmax over an [N, L, L] matrix
    def __init__(self, c=4):
        super().__init__()
        self.enc = nn.Conv2d(3, c, 3, stride=4, padding=1)
        self.softmax = nn.Softmax(dim=-1)
        self.out = nn.Sequential(nn.Conv2d(c, 3, 3, padding=1), nn.Upsample(scale_factor=4))

    def forward(self, x):
        f = self.enc(x)
        B, C, H, W = f.shape
        q = f.flatten(2)
        a = self.softmax(q.transpose(1, 2) @ q)
        return torch.tanh(self.out((q @ a).view(B, C, H, W)))


def _subject(cls):
    torch.manual_seed(0)
    G = cls().eval()
    return Subject(generator=G, style_names=["a", "b"], _generate=lambda c, s, z=None: G(c))


def _data(n=8):
    g = torch.Generator().manual_seed(0)
    return AnalysisData(content=torch.rand(n, 3, S, S, generator=g) * 2 - 1, style_ids=torch.arange(n) % 2,
                        batch_size=4)


def _units_at(subject, layer, edit=None):
    with Trace(subject.generator, layer, edit=edit) as t:
        subject.generate(_data().content[:2], torch.zeros(2, dtype=torch.long))
    return t.output


@pytest.mark.parametrize("layer", ["pw1", "act", "norm"])
def test_channels_last_layer_is_read_as_its_channels(layer):
    subject = _subject(ConvNeXtish)
    harvest(subject, _data(), ["stem"], lambda n, C: Quantile(C))          # probes the layers once
    raw = {}
    h = dict(subject.generator.named_modules())[layer].register_forward_hook(lambda m, i, o: raw.setdefault("o", o))
    units = _units_at(subject, layer)
    h.remove()
    assert raw["o"].shape[1:3] == (S, S)                                     # channels last: [N, H, W, C]
    assert units.shape == (2, raw["o"].shape[-1], S, S)                      # read as [N, C, H, W]
    assert torch.equal(units, raw["o"].permute(0, 3, 1, 2))


def test_channels_last_ablation_zeroes_a_channel_not_a_row():
    subject = _subject(ConvNeXtish)
    harvest(subject, _data(), ["stem"], lambda n, C: Quantile(C))
    got = {}
    h = subject.generator.act.register_forward_hook(lambda m, i, o: got.setdefault("in", i[0]))
    _units_at(subject, "pw1", edit=ablate([0]))
    h.remove()
    assert torch.all(got["in"][..., 0] == 0) and not torch.all(got["in"][:, 0] == 0)


def test_tokens_and_attention_tuple_read_as_maps():
    subject = _subject(Tokens)
    G = subject.generator
    raw = {}
    hooks = [G.norm.register_forward_hook(lambda m, i, o: raw.setdefault("norm", o)),
             G.mix.register_forward_hook(lambda m, i, o: raw.setdefault("mix", o))]
    harvest(subject, _data(), ["embed"], lambda n, C: Quantile(C))
    norm, attn, mix = (_units_at(subject, n) for n in ("norm", "attn", "mix"))
    for h in hooks:
        h.remove()
    assert norm.shape == attn.shape == mix.shape == (2, 6, 4, 4)             # 16 tokens = the 4x4 patch grid
    assert torch.equal(norm, raw["norm"][:2].transpose(1, 2).reshape(2, 6, 4, 4))   # [N, L, C]
    assert torch.equal(mix, raw["mix"][:2].reshape(2, 6, 4, 4))                     # [N, C, L]
    # an edit of unit 0 zeroes channel 0 of every token, not token 0
    got = {}
    h = G.mix.register_forward_hook(lambda m, i, o: got.setdefault("in", i[0]))
    _units_at(subject, "norm", edit=ablate([0]))
    h.remove()
    assert torch.all(got["in"][:, 0] == 0) and not torch.all(got["in"][:, :, 0] == 0)


def test_attention_matrix_is_refused_in_one_line():
    subject = _subject(Attention)
    skipped = {}
    harvest(subject, _data(), ["softmax", "enc"], lambda n, C: Quantile(C), skipped=skipped)
    assert list(skipped) == ["softmax"] and "attention matrix" in skipped["softmax"]
    assert "\n" not in skipped["softmax"]


def test_gates_and_reused_modules_left_out_of_default_layers_and_refused_when_named():
    subject = _subject(Gated)
    G = subject.generator
    harvest(subject, _data(), ["c1"], lambda n, C: Quantile(C))
    assert spatial_layers(G) == ["c1", "mid", "out"]                 # no 1x1 gate convs, no reused conv
    assert default_unit_layer(G) == "mid"
    from interp_gan.harvest import hooks
    notes = hooks.default_layer_notes(G) if hasattr(hooks, "default_layer_notes") else []    # the report says why
    assert any("fc1, fc2" in n and "no spatial extent" in n for n in notes)
    assert any("shared" in n and "more than once" in n for n in notes)
    skipped = {}                                      # named: a gate is per-image units, a reused module refused
    stats = harvest(subject, _data(), ["fc2", "lin", "shared", "mid"], lambda n, C: Quantile(C), skipped=skipped)
    assert set(skipped) == {"shared"} and "runs 2 times" in skipped["shared"] and set(stats) == {"fc2", "lin", "mid"}
    with pytest.raises(ValueError, match="runs 2 times in one forward"):
        Trace(G, "shared")


def test_attribution_units_of_a_vector_gate_and_of_tokens():
    """Captum's layer conductance at an [N, C] gate (crashed) and at [N, L, C] tokens (ranked the
    L positions as if they were units): C units each."""
    for cls, layer, C in [(Gated, "lin", 4), (Tokens, "norm", 6)]:
        subject = _subject(cls)
        harvest(subject, _data(), ["out" if cls is Gated else "embed"], lambda n, C: Quantile(C))
        torch.manual_seed(0)
        score = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
        fwd = lambda x: score(subject.generate(x, torch.zeros(len(x), dtype=torch.long)))   # noqa: E731
        x = _data(4).content
        t = Target("generator", "content", fwd, x, torch.zeros_like(x), torch.zeros(4, dtype=torch.long))
        with Trace(subject.generator, layer) as tr:       # how the hooks read the layer: the units' layout
            fwd(x)
        imp = unit_importance("layer_conductance", fwd, x, dict(subject.generator.named_modules())[layer],
                              target=t.target, baselines=t.baselines, n_steps=4, **(
                                  {"layout": tr.layout} if hasattr(tr, "layout") else {}))
        eff, peak = single_unit_effects(t, subject.generator, layer, range(C))
        assert imp.shape == (4, C) and eff.shape == (4, C) and peak.shape == (4, C)


def test_random_init_redraws_attention_projections():
    """nn.MultiheadAttention's in_proj_weight / in_proj_bias are its own parameters with a private reset:
    the random-init control kept them trained (a partly random control, said as such)."""
    subject = _subject(Tokens)
    trained = subject.generator.attn.in_proj_weight.detach().clone()
    with subject.random_init(0) as control:
        assert not torch.equal(control.generator.attn.in_proj_weight, trained)
        assert not any(k.startswith("attn.") for k in control.random_init_report.kept)
