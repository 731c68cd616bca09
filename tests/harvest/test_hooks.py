"""Hooks: no hook outlives its block, names resolve with helpful errors, edits do the stated math."""
import gc
import sys

import pytest
import torch
from torch import nn

from interp_gan.harvest.hooks import (Edit, StopForward, Trace, TraceDict, ablate, add_vector, insert,
                                       resolve_layers, run_until_stop, spatial_layers)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.blocks = nn.ModuleList([nn.Conv2d(4, 4, 3, padding=1) for _ in range(3)])
        self.head = nn.Conv2d(4, 3, 1)
        self.calls: list[str] = []

    def forward(self, x):
        h = self.enc(x)
        for i, b in enumerate(self.blocks):
            self.calls.append(f"blocks.{i}")
            h = b(h)
        self.calls.append("head")
        return self.head(h)


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


@pytest.fixture
def model():
    torch.manual_seed(0)
    return Tiny()


def test_no_hook_survives_an_exception(model):
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(RuntimeError, match="boom"):
        with TraceDict(model, ["enc.0", "blocks.*"]):
            assert _hook_count(model) == 4
            raise RuntimeError("boom")
    assert _hook_count(model) == 0
    with pytest.raises(RuntimeError):
        with Trace(model, "head"):
            model(torch.randn(2, 5, 8, 8))   # wrong channel count: the forward itself raises
    assert _hook_count(model) == 0
    with pytest.raises(StopForward):
        with TraceDict(model, "blocks.1", stop=True):
            model(x)
    assert _hook_count(model) == 0


def test_unknown_names_raise_lookup_error_with_close_matches(model):
    with pytest.raises(LookupError, match="blocks.1"):
        Trace(model, "block.1")
    with pytest.raises(LookupError, match="close"):
        resolve_layers(model, "blox.*")
    with pytest.raises(LookupError, match="interp-gan inspect MODEL` lists every layer") as e:
        TraceDict(model, ["blocks.0", "nope"])
    assert "\n" not in str(e.value)
    assert _hook_count(model) == 0            # the half-built TraceDict removed its hooks
    seen = []
    old, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        try:
            Trace(model, "no.such.layer")
        except LookupError:
            pass
        gc.collect()                          # a failed Trace must not raise in __del__
    finally:
        sys.unraisablehook = old
    assert not seen, [str(u.exc_value) for u in seen]


def test_glob_expands_in_module_order(model):
    assert resolve_layers(model, "blocks.*") == ["blocks.0", "blocks.1", "blocks.2"]
    assert resolve_layers(model, ["head", "blocks.?"]) == ["head", "blocks.0", "blocks.1", "blocks.2"]
    assert spatial_layers(model) == ["enc.0", "blocks.0", "blocks.1", "blocks.2", "head"]


def test_trace_retains_detached_output(model):
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    with Trace(model, "blocks.1") as t:
        model(x)
    ref = model.blocks[1](model.blocks[0](model.enc(x)))
    assert torch.allclose(t.output, ref) and not t.output.requires_grad


def test_edit_math(model):
    x = torch.randn(2, 4, 5, 5)
    a, v = 0.3, torch.tensor([2.0, -1.0])
    out = Edit([1, 3], v, alpha=a)(x)
    assert torch.allclose(out[:, [1, 3]], x[:, [1, 3]] * (1 - a) + v[None, :, None, None] * a)
    assert torch.equal(out[:, [0, 2]], x[:, [0, 2]])
    mask = torch.zeros(5, 5)
    mask[:2] = 1
    out = insert([0], 7.0, mask=mask)(x)
    assert torch.allclose(out[:, 0, :2], torch.full_like(out[:, 0, :2], 7.0))
    assert torch.equal(out[:, 0, 2:], x[:, 0, 2:])
    assert torch.equal(ablate([2])(x)[:, 2], torch.zeros_like(x[:, 2]))
    d = torch.randn(4)
    assert torch.allclose(add_vector(d, 2.0)(x), x + 2 * d[None, :, None, None])
    with pytest.raises(IndexError, match="out of range"):
        ablate([9])(x)


def test_edit_changes_the_forward_and_only_inside_the_block(model):
    x = torch.randn(2, 3, 8, 8)
    clean = model(x)
    with Trace(model, "blocks.2", edit=ablate(list(range(4)))):
        edited = model(x)
    assert torch.allclose(edited, model.head(torch.zeros(2, 4, 8, 8)))
    assert torch.allclose(model(x), clean)


def test_stop_after_the_last_layer(model):
    x = torch.randn(1, 3, 8, 8)
    model.calls.clear()
    with TraceDict(model, ["blocks.1", "blocks.0"], stop=True) as td:
        out = run_until_stop(model, x)
    assert out is None
    assert model.calls == ["blocks.0", "blocks.1"]     # blocks.2 and head never ran
    assert td["blocks.1"].output is not None and td["blocks.0"].output is not None


def test_default_layers_leave_out_what_generate_never_runs():
    from interp_gan.models.stylenet import StyleNet
    G = StyleNet(2, ch=4, n_down=1, n_blocks=1, style_dim=8, latent_dim=4, style_encoder=True).eval()
    names = spatial_layers(G)
    assert names and not any(n.startswith("style_encoder") for n in names)
    assert any(n.startswith("style_encoder") for n, m in G.named_modules() if isinstance(m, nn.Conv2d))
    with TraceDict(G, names) as td:                                      # every default layer fires
        G.generate(torch.zeros(1, 3, 16, 16), torch.tensor([1]), torch.zeros(1, 4))
    assert all(td[n].output is not None for n in names)


class _InPlaceAfterConv(nn.Module):
    """conv -> ReLU(inplace=True) as a module, then conv2 -> an in-place functional op."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv2(self.act(self.conv(x)))
        return y.relu_()


def test_in_place_activations_cannot_change_what_a_hook_read():
    """baukit's Trace clones for this reason. A Subject switches in-place modules out of place (same
    values), so the conv's retained output keeps its negative values; an in-place op a hook cannot
    see coming (y.relu_() in the forward) is one clear error when the output is read."""
    from interp_gan.subject.protocol import Subject
    torch.manual_seed(0)
    net = _InPlaceAfterConv()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad(), Trace(net, "conv") as t:
        net(x)                                            # the raw module: the ReLU overwrote it
        with pytest.raises(ValueError, match="'conv': its output was modified in place"):
            t.output
    subject = Subject.wrap_module(net)    # called as it is (from_module would read its range)
    assert not net.act.inplace
    with torch.no_grad(), Trace(subject.generator, "conv") as t, Trace(subject.generator, "conv2") as t2:
        subject.generate(x, torch.zeros(2, dtype=torch.long))
        assert t.output.min() < 0 and torch.allclose(t.output, net.conv(x))
        with pytest.raises(ValueError, match="'conv2': its output was modified in place"):
            t2.output
