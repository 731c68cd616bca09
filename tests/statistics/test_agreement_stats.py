"""Agreement's permutation p under the null: random unit sets, and the analyses themselves on
random-init generators whose style changes nothing (slow: tests/statistics is marked slow)."""
import numpy as np
import torch
from torch import nn

from interp_gan.analyses.agreement import Agreement, overlap_pvalue
from interp_gan.analyses.base import AnalysisData, build_analysis
from interp_gan.subject.protocol import Subject


def test_overlap_p_is_valid_and_not_degenerate_for_random_sets():
    rng = np.random.default_rng(0)
    U, k, ps = 64, 5, []
    for _ in range(400):
        a, b = set(rng.choice(U, k, replace=False)), set(rng.choice(U, k, replace=False))
        ps.append(overlap_pvalue(a, k, U, len(a & b), 499, rng))
    ps = np.array(ps)
    for alpha in (0.05, 0.1, 0.25, 0.5):
        assert (ps <= alpha).mean() <= alpha + 0.03, (alpha, (ps <= alpha).mean())
    assert (ps <= 0.7).mean() >= 0.3          # discrete overlaps: conservative, but p is not stuck at 1


class RandomG(nn.Module):
    """A random-init conv generator: 48 units, the target style adds nothing (null model)."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.enc = nn.Conv2d(3, 48, 3, padding=1)
        self.units = nn.Conv2d(48, 48, 1)
        self.out = nn.Conv2d(48, 3, 1)

    def forward(self, content, ids):
        return torch.tanh(self.out(torch.relu(self.units(self.enc(content)))))


class Clf(nn.Module):
    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed + 1000)
        self.lin = nn.Linear(3, 2)

    def forward(self, image):
        return self.lin(image.mean(dim=(2, 3)))


def test_agreement_is_at_chance_on_random_init_models():
    ps = []
    for seed in range(10):
        G = RandomG(seed).eval()
        subject = Subject(generator=G, style_names=["a", "b"], _generate=lambda c, s, z=None, G=G: G(c, s),
                          classifier=Clf(seed))
        g = torch.Generator().manual_seed(seed)
        data = AnalysisData(torch.rand(32, 3, 16, 16, generator=g) * 2 - 1, torch.arange(32) % 2, batch_size=16)
        torch.manual_seed(seed)
        data.extra["findings"] = {
            "style_units": build_analysis("style_units", layers=["units"], n_perm=50, control=False,
                                          seed=seed).run(subject, data),
            "directions": build_analysis("directions", space="activation", layer="enc", unit_layer="units",
                                         methods=("pca", "random"), n_directions=4, n_random=2, n_images=16,
                                         n_samples=32, n_boot=20, n_perm=20, steps=(-2.0, 0.0, 2.0),
                                         layerwise=False, seed=seed).run(subject, data)}
        f = Agreement(k=5, n_perm=499, seed=seed).run(subject, data)
        ps += f.tables["agreement"].p_value.tolist()
    ps = np.array(ps)
    assert len(ps) >= 10, ps
    assert (ps <= 0.05).mean() <= 0.2, ps          # about alpha (a few tests: generous bound)
    assert np.median(ps) >= 0.3, ps                 # roughly uniform or conservative, not piled near 0
