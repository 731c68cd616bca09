"""--model file.py:factory with the modules researchers write: channels last, a grey input, one
image at a time, an RGB image behind a heatmap, dataclass outputs, [0, 255] without a squash, a
module that writes into its input or gives no gradient; and the ones refused, each naming its cause
(a forward that needs a style id, meta weights, a 4-channel input, a (G, D) pair). Tiny modules."""
import textwrap

import pytest
import torch

from interp_gan.cli import main
from tests.subject.factory_models import generate as _gen, images as _x, loader

MODELS = textwrap.dedent('''
    from dataclasses import dataclass
    import torch
    from torch import nn

    def _conv(cin=3, out=3):
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(cin, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, out, 3, padding=1))

    class ChannelsLast(nn.Module):          # [N, H, W, 3] in and out
        def __init__(self): super().__init__(); self.c = _conv()
        def forward(self, x): return torch.tanh(self.c(x.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
    def nhwc(): return ChannelsLast()
    class LastOut(ChannelsLast):            # NCHW in, NHWC out
        def forward(self, x): return torch.tanh(self.c(x)).permute(0, 2, 3, 1)
    def nhwc_out(): return LastOut()
    class Grey(nn.Module):
        def __init__(self, cin): super().__init__(); self.c = _conv(cin)
        def forward(self, x): return torch.tanh(self.c(x))
    def grey_in(): return Grey(1)
    def rgb_mask(): return Grey(4)
    class One(nn.Module):                   # a hard-coded batch of one
        def __init__(self): super().__init__(); self.c = _conv()
        def forward(self, x): return torch.tanh(self.c(x).view(1, 3, *x.shape[-2:]))
    def batch_of_one(): return One()
    class HeatFirst(nn.Module):             # (attention map, image)
        def __init__(self): super().__init__(); self.c = _conv()
        def forward(self, x): y = torch.tanh(self.c(x)); return y.mean(1, keepdim=True), y
    def heat_first(): return HeatFirst()
    @dataclass
    class Out:
        image: torch.Tensor
        loss: float = 0.0
    class DC(nn.Module):
        def __init__(self): super().__init__(); self.c = _conv()
        def forward(self, x): return Out(torch.tanh(self.c(x)))
    def dataclass_out(): return DC()
    class Sample(nn.Module):               # diffusers-style {'sample': ...} beside a feature map
        def __init__(self): super().__init__(); self.c = _conv()
        def forward(self, x): return {"sample": torch.tanh(self.c(x)), "feat": self.c[0](x)}
    def dict_sample(): return Sample()
    class Bytes(nn.Module):                # [0, 255] in and out, no squash, overshooting a little
        def __init__(self): super().__init__(); self.c = _conv()
        def forward(self, x): return x * 1.1 - 12 + 0.01 * self.c(x)
    def bytes_unclamped(): return Bytes()
    class InPlace(nn.Module):
        def __init__(self): super().__init__(); self.c = _conv()
        def forward(self, x): x.mul_(0.5); return torch.tanh(self.c(x))
    def inplace(): return InPlace()
    class NoGrad(nn.Module):
        def __init__(self): super().__init__(); self.c = _conv()
        @torch.no_grad()
        def forward(self, x): return torch.tanh(self.c(x))
    def no_grad(): return NoGrad()
    class Styled(nn.Module):
        def __init__(self): super().__init__(); self.c = _conv(); self.e = nn.Embedding(2, 3)
        def forward(self, x, style_id): return torch.tanh(self.c(x) + self.e(style_id)[:, :, None, None])
    def needs_style(): return Styled()
    class KwOnly(Styled):
        def forward(self, x, *, z): return torch.tanh(self.c(x) + z)
    def needs_kw(): return KwOnly()
    class Bytes8(nn.Module):
        def __init__(self): super().__init__(); self.c = _conv()
        def forward(self, x): return (torch.sigmoid(self.c(x)) * 255).to(torch.uint8)
    def uint8_out(): return Bytes8()
    def meta():
        with torch.device("meta"):
            return nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Tanh())
    def compiled(): return torch.compile(nn.Sequential(_conv(), nn.Tanh()))
    def g_and_d(): return nn.Sequential(_conv(), nn.Tanh()), nn.Conv2d(3, 1, 4)
    class Mult(nn.Module):
        def __init__(self): super().__init__(); self.c = _conv()
        def forward(self, x):
            if x.shape[-1] % 96: raise RuntimeError("H and W must be multiples of 96")
            return torch.tanh(self.c(x))
    def mult96(): return Mult()
    def hardtanh01(): return nn.Sequential(_conv(), nn.Hardtanh(0.0, 1.0))
    class InPlaceLast(ChannelsLast):        # channels last, writing into its input (a view of the content)
        def forward(self, x): x.mul_(0.5); return super().forward(x)
    def inplace_nhwc(): return InPlaceLast()
    class Valid(nn.Module):                 # two unpadded 5x5 convs: 8 px lost on each axis
        def __init__(self):
            super().__init__(); torch.manual_seed(0); self.a = nn.Conv2d(3, 4, 5); self.b = nn.Conv2d(4, 3, 5)
        def forward(self, x): return torch.tanh(self.b(torch.relu(self.a(x))))
    def valid(): return Valid()
    class Mult32(Mult):
        def forward(self, x):
            if x.shape[-1] % 32: raise RuntimeError("H and W must be multiples of 32")
            return torch.tanh(self.c(x))
    def mult32(): return Mult32()
''')


@pytest.fixture
def models(tmp_path):
    return loader(tmp_path, MODELS, "researcher.py")



def _said(s, text):
    return any(text in n for n in s.meta["model_notes"])


def test_channels_last_input_and_output_are_read_and_said(models):
    s, x = models("nhwc"), _x()
    with torch.no_grad():
        ref = torch.tanh(s.generator.c(x))
    torch.testing.assert_close(_gen(s, x), ref)
    assert _said(s, "content given channels last") and _said(s, "output is channels last")
    o = models("nhwc_out")
    torch.testing.assert_close(_gen(o, x), ref)
    assert not _said(o, "content given channels last") and _said(o, "output is channels last")


def test_a_grey_input_module_gets_luma(models):
    s, x = models("grey_in"), _x()
    luma = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]
    with torch.no_grad():
        torch.testing.assert_close(_gen(s, x), torch.tanh(s.generator.c(luma)))
    assert _said(s, "content given as one grey channel (luma)")


def test_a_batch_of_one_module_is_refused_naming_that(models):
    with pytest.raises(ValueError, match=r"runs on a batch of 1 only \(a batch of 2 fails: RuntimeError: shape"):
        models("batch_of_one")


def test_the_rgb_image_is_picked_over_a_map_and_from_dataclasses_and_sample_dicts(models):
    x = _x()
    h = models("heat_first")
    with torch.no_grad():
        torch.testing.assert_close(_gen(h, x), torch.tanh(h.generator.c(x)))
    assert _said(h, "output: element 1 of a tuple of 2")
    d = models("dataclass_out")
    with torch.no_grad():
        torch.testing.assert_close(_gen(d, x), torch.tanh(d.generator.c(x)))
    assert _said(d, "output: the Out's 'image' field")
    assert _said(models("dict_sample"), "output: the dict's 'sample' entry (of sample, feat)")


def test_a_0_255_module_without_a_squash_is_found_not_clamped_to_black(models):
    s, x = models("bytes_unclamped"), _x()
    y = _gen(s, x)
    with torch.no_grad():
        ref = (s.generator((x + 1) * 127.5) / 127.5 - 1).clamp(-1, 1)
    torch.testing.assert_close(y, ref)
    assert y.std() > 0.3                                  # an image, not a clamped constant
    assert _said(s, "output range [0, 255] (inferred: with content in [-1, 1], 100% of its output lay outside")


def test_a_module_that_writes_into_its_input_leaves_the_content_alone(models):
    s, x = models("inplace"), _x()
    before = x.clone()
    _gen(s, x)
    assert torch.equal(x, before)
    _gen(models("inplace_nhwc"), x)
    assert torch.equal(x, before)
    x.requires_grad_(True)                               # attribution's case: a leaf that needs a gradient
    s.generate(x, torch.zeros(2, dtype=torch.long)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_a_forward_without_gradient_is_named_when_a_gradient_is_needed(models):
    from interp_gan.subject.factory import NoGradient
    s, x = models("no_grad"), _x()
    assert _gen(s, x).shape == (2, 3, 16, 16)            # fine where no gradient is needed
    with pytest.raises(NoGradient, match=r"its forward gives no gradient \(torch.no_grad"):
        s.generate(x.requires_grad_(True), torch.zeros(2, dtype=torch.long))
    with pytest.raises(NoGradient, match="its output is an integer image, which carries no gradient"):
        models("uint8_out").generate(x, torch.zeros(2, dtype=torch.long))


def test_a_compiled_module_is_analysed_uncompiled(models):
    s = models("compiled")
    assert type(s.generator).__name__ == "Sequential"
    assert _said(s, "torch.compile'd: analysed uncompiled")


@pytest.mark.parametrize("name, expected", [
    ("needs_style", "Styled.forward needs style_id besides the image"),
    ("needs_kw", "KwOnly.forward needs z besides the image"),
    ("meta", "weights are on the meta device"),
    ("g_and_d", "returned a tuple of 2 (Sequential, Conv2d); expected an nn.Module or a Subject: return the "
                "generator alone"),
])
def test_refusals_name_the_cause(tmp_path, capsys, name, expected):
    (tmp_path / "researcher.py").write_text(MODELS)
    rc = main(["analyze", "--model", f"{tmp_path / 'researcher.py'}:{name}", "--pipeline", "analyses/dissection.toml",
               "--out", str(tmp_path / "rep")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and expected in err[0], err


def test_input_channels_and_size_multiples_are_named_when_the_module_fails(models):
    with pytest.raises(ValueError, match="its first layer takes 4 input channels and the content images are RGB"):
        _gen(models("rgb_mask"), _x())
    with pytest.raises(ValueError, match=r"size_multiple = m if H and W must be multiples of m"):
        _gen(models("mult96"), _x(size=48))


def test_a_size_the_module_cannot_take_is_named_before_the_analyses(models):
    from interp_gan.subject.factory import probe_module_subject
    s = models("mult32")                                   # decided on the 64 px probe at load
    assert probe_module_subject(s, 32)
    with pytest.raises(ValueError, match=r"fails on a \[2, 3, 48, 48\] batch .*size_multiple = m"):
        probe_module_subject(s, 48)


def test_a_hardtanh_last_layer_gives_its_own_bounds(models):
    s, x = models("hardtanh01"), _x()
    with torch.no_grad():
        torch.testing.assert_close(_gen(s, x), s.generator((x + 1) / 2) * 2 - 1)
    assert _said(s, "output range [0, 1] (its last layer is Hardtanh)")


def test_a_valid_convolution_border_is_repeated_back_not_stretched(models):
    s, x = models("valid"), _x(size=24)
    y = _gen(s, x)
    with torch.no_grad():
        inner = s.generator(x)                              # 16 x 16, over input pixels 4 .. 19
    torch.testing.assert_close(y[..., 4:20, 4:20], inner)   # each output pixel over its own input pixel
    torch.testing.assert_close(y[..., :4, 4:20], inner[..., :1, :].expand(-1, -1, 4, -1))
    assert _said(s, "output is 8 x 8 px smaller than its input at two input sizes")
