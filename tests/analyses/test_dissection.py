"""Dissection on tiny seeded generators with planted answers."""
import numpy as np
import pytest
import torch
from torch import nn

from interp_gan.analyses.base import AnalysisData
from interp_gan.analyses.dissection import Dissection
from interp_gan.analyses.subject import Subject
from interp_gan.findings import Finding

PALETTE = torch.tensor([[0.1, 0.8, 0.1], [0.1, 0.1, 0.9], [0.9, 0.9, 0.1], [0.9, 0.9, 0.9],
                        [0.1, 0.1, 0.1], [0.5, 0.5, 0.5]])
RED = torch.tensor([0.9, 0.1, 0.1])


def scenes(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Random rectangles on a random background, small red patches in most images, mild noise."""
    g = torch.Generator().manual_seed(seed)
    img = PALETTE[torch.randint(0, len(PALETTE), (n,), generator=g)][:, :, None, None].repeat(1, 1, size, size)
    for i in range(n):
        for _ in range(3):
            c = PALETTE[torch.randint(0, len(PALETTE), (1,), generator=g)].view(3, 1, 1)
            y, x = torch.randint(0, size - 10, (2,), generator=g).tolist()
            img[i, :, y:y + 10, x:x + 10] = c
        if torch.rand(1, generator=g) < 0.8:
            y, x = torch.randint(0, size - 5, (2,), generator=g).tolist()
            img[i, :, y:y + 4, x:x + 4] = RED.view(3, 1, 1)
    return (img * 2 - 1 + 0.03 * torch.randn(img.shape, generator=g)).clamp(-1, 1)


class Planted(nn.Module):
    """Output = input; unit 0 of ``detect`` = r - g - b (high exactly where the output is red)."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Conv2d(3, 6, 3, padding=1)
        self.detect = nn.Conv2d(6, 5, 1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))  # non-spatial [N,3]
        with torch.no_grad():
            self.detect.weight[0].zero_()
            self.detect.bias[0] = 0
            self.detect.weight[0, :3, 0, 0] = torch.tensor([1.0, -1.0, -1.0])
            self.trunk.weight[:3].zero_()
            self.trunk.bias[:3] = 0
            for i in range(3):
                self.trunk.weight[i, i, 1, 1] = 1.0        # channels 0..2 copy r, g, b

    def forward(self, x):
        h = self.trunk(x)
        self.detect(h)
        self.head(h)
        return x


class Independent(nn.Module):
    """Random units on the input, but an output drawn independently of it (the null is true)."""

    def __init__(self, n: int, size: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, 2, 1))
        self.register_buffer("bank", scenes(n, size, seed=99))
        self.i = 0

    def forward(self, x):
        self.net(x)
        out = self.bank[self.i:self.i + len(x)]
        self.i += len(x)
        return out


def _data(n=32, size=32, seed=0):
    return AnalysisData(scenes(n, size, seed), torch.zeros(n, dtype=torch.long), batch_size=8)


def test_planted_red_unit_ranks_first_for_red():
    torch.manual_seed(0)
    f = Dissection(layers=["detect", "trunk"], n_perm=999, n_boot=200).run(
        Subject.from_module(Planted()), _data())
    units, long = f.tables["dissection_units"], f.tables["dissection_iou"]
    red = long[long.concept == "red"].sort_values("iou", ascending=False)
    assert (red.iloc[0].layer, red.iloc[0].unit) == ("detect", 0)
    row = units[(units.layer == "detect") & (units.unit == 0)].iloc[0]
    assert row.concept == "red" and row.label == "red" and bool(row.labelled)
    assert row.q_value < 0.05 and row.ci_low <= row.iou <= row.ci_high and row.iou > 0.3
    assert f.tables["dissection_top"].iloc[0][["layer", "unit"]].tolist() == ["detect", 0]
    assert f.arrays["top_images"].dtype == np.uint8 and f.arrays["top_images"].shape[:2] == (8, 4)
    assert f.arrays["topk_index"].shape == (len(units), 4)


def test_null_generator_labels_about_nominal_fraction():
    torch.manual_seed(0)
    n = 48
    f = Dissection(layers=["net.0", "net.2"], n_perm=499, n_boot=50, perm_block=16).run(
        Subject.from_module(Independent(n, 32)), _data(n))
    long = f.tables["dissection_iou"]
    tested = long[long.iou > 0]                       # concepts a unit never touches have p = 1
    assert len(tested) > 50
    assert (tested.p_value < 0.05).mean() < 0.15      # about uniform p-values: ~5% expected
    assert (long.q_value < 0.05).mean() <= 0.02       # BH keeps false labels rare
    assert f.tables["dissection_units"].labelled.mean() <= 0.1


def test_too_few_images_says_how_many_are_needed():
    with pytest.raises(ValueError, match="at least 8 images, got 5"):
        Dissection(layers=["detect"]).run(Subject.from_module(Planted()), _data(5))


def test_unknown_layer_raises_lookup_error():
    with pytest.raises(LookupError, match="detect"):
        Dissection(layers=["detekt"]).run(Subject.from_module(Planted()), _data(8))


def test_nan_activations_are_counted_and_left_out():
    torch.manual_seed(0)
    m = Planted()
    m.trunk.register_forward_hook(lambda mod, i, o: o.__setitem__((slice(None), 1, slice(0, 2), slice(0, 2)),
                                                                   float("nan")))  # 4 per image
    f = Dissection(layers=["trunk", "detect"], n_perm=99, n_boot=20).run(Subject.from_module(m), _data(16))
    assert any("trunk: 64 NaN" in note for note in f.notes), f.notes
    assert np.isfinite(f.tables["dissection_units"].iou).all()


def test_non_spatial_layer_is_image_level_units_and_finding_round_trips(tmp_path):
    torch.manual_seed(0)
    subject = Subject.from_module(Planted())
    f = Dissection(layers=["head.2", "detect"], n_perm=99, n_boot=20, memory_mb=0.001).run(subject, _data(16))
    units = f.tables["dissection_units"]
    assert (units.layer == "head.2").sum() == 3
    assert {"layer", "unit", "concept", "iou", "ci_low", "ci_high", "p_value", "q_value"} <= set(units.columns)
    assert any("spilled" in n for n in f.notes)      # the store went to disk at this tiny budget
    g = Finding.load(f.save(tmp_path / "d"))
    assert np.allclose(g.tables["dissection_units"].iou, units.iou)
    assert g.arrays["top_maps"].shape == f.arrays["top_maps"].shape
    ram = Dissection(layers=["head.2", "detect"], n_perm=99, n_boot=20).run(subject, _data(16))
    assert np.allclose(ram.tables["dissection_iou"].iou, f.tables["dissection_iou"].iou)


def test_report_section_builds_from_the_finding_alone(tmp_path):
    import plotly.graph_objects as go

    from interp_gan.reporting.section_dissection import dissection_section
    from interp_gan.reporting.sections import ImageGrid, ReportContext

    torch.manual_seed(0)
    f = Dissection(layers=["detect"], n_perm=99, n_boot=20).run(Subject.from_module(Planted()), _data(16))
    sec = dissection_section(Finding.load(f.save(tmp_path / "d")), ReportContext())
    assert any(isinstance(b, go.Figure) for b in sec.blocks)
    grid = next(b for b in sec.blocks if isinstance(b, ImageGrid))
    assert grid.images.dtype == np.uint8 and len(grid.images) == 5 * 4     # 5 units x top 4 images
