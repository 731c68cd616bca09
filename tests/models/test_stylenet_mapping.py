"""StyleNet's mapping network sends each image through its own style's head only: the same codes
as running every head and keeping one, with gradients, and a trace that serves every style."""
from __future__ import annotations

import pytest
import torch

from interp_gan.models.stylenet import MappingNetwork


def _every_head(m: MappingNetwork, z, ids):
    h = m.shared(z)
    return torch.stack([head(h) for head in m.heads], 1)[torch.arange(len(z)), ids]


@pytest.mark.parametrize("training", [True, False])
def test_codes_and_gradients_match_every_head_and_keep_one(training):
    torch.manual_seed(0)
    m = MappingNetwork(4, 8, 50).train(training)
    z, ids = torch.randn(12, 4), torch.tensor([3, 49, 3, 0, 7, 7, 7, 12, 0, 49, 21, 3])
    torch.testing.assert_close(m(z, ids), _every_head(m, z, ids))
    m(z, ids).pow(2).sum().backward()
    got = {n: p.grad.clone() if p.grad is not None else None for n, p in m.named_parameters()}
    m.zero_grad(set_to_none=False)
    _every_head(m, z, ids).pow(2).sum().backward()
    for n, p in m.named_parameters():      # training: unused heads get a zero gradient (Adam moves them)
        if got[n] is None:
            assert not training and not p.grad.any(), n
        else:
            torch.testing.assert_close(got[n], p.grad, msg=n)
    assert not m.heads[1].weight.grad.any() and m.heads[3].weight.grad.any()


def test_a_trace_serves_styles_its_example_did_not_hold():
    torch.manual_seed(1)
    m = MappingNetwork(4, 8, 6).eval()
    traced = torch.jit.trace(m, (torch.randn(2, 4), torch.tensor([0, 0])))
    z, ids = torch.randn(5, 4), torch.tensor([5, 1, 2, 0, 4])
    torch.testing.assert_close(traced(z, ids), _every_head(m, z, ids))
