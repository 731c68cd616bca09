"""Subject.random_init: the random-init control swaps weights in place and always restores them."""
import pytest
import torch

from interp_gan.subject.protocol import Subject
from interp_gan.harvest.hooks import Trace


def _subject():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 1))
    with torch.no_grad():
        net[0].weight.fill_(0.5)                      # "trained": far from any default init
    return Subject.from_module(net)


def test_random_init_changes_outputs_and_hooks_see_it_then_restores():
    s = _subject()
    x = torch.randn(2, 3, 8, 8)
    before = s.generate(x, torch.zeros(2, dtype=torch.long)).detach().clone()
    w = s.generator[0].weight.detach().clone()
    with s.random_init(seed=3) as c:
        with Trace(c.generator, "0") as tr:
            out = c.generate(x, torch.zeros(2, dtype=torch.long))
        assert not torch.allclose(out, before)
        assert not torch.allclose(c.generator[0].weight, w)
        assert torch.allclose(tr.output, c.generator[0](x))
        again = c.generator[0].weight.detach().clone()
    with s.random_init(seed=3):
        assert torch.equal(s.generator[0].weight, again)          # seeded: the same control every time
    assert torch.equal(s.generator[0].weight, w)
    assert torch.equal(s.generate(x, torch.zeros(2, dtype=torch.long)), before)


def test_random_init_restores_on_error():
    s = _subject()
    w = s.generator[0].weight.detach().clone()
    with pytest.raises(RuntimeError):
        with s.random_init():
            raise RuntimeError("boom")
    assert torch.equal(s.generator[0].weight, w)


def test_parameters_it_cannot_redraw_are_named_in_a_warning():
    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 1)
            self.gain = torch.nn.Parameter(torch.full((1, 3, 1, 1), 2.0))   # no reset_parameters here

        def forward(self, x):
            return self.conv(x) * self.gain

    s = Subject.from_module(Scaled())
    with pytest.warns(UserWarning, match=r"1 parameter\(s\) have no reset_parameters .*\(gain\)"):
        with s.random_init():
            assert torch.equal(s.generator.gain, torch.full((1, 3, 1, 1), 2.0))
