"""A flat (one-value) image through instance norms: its attribution overflows to inf. It is left out
and counted before any method runs. Old code: float16 casts to inf, "invalid value encountered in
divide" warnings from the sanity checks (one per map), NaN in the stored maps."""
import warnings

import numpy as np
import torch
from torch import nn

from interp_gan.analyses.attribution.finite import finite_rows
from interp_gan.analyses.base import AnalysisData, build_analysis
from interp_gan.subject import Subject


def _subject():
    torch.manual_seed(0)
    layers = []
    for i in range(18):                                # ~300x per norm at variance 0: 18 overflow float32
        norm = nn.InstanceNorm2d(4, affine=True)
        nn.init.constant_(norm.bias, 0.1)               # as a trained norm's shift: ReLU passes the flat map on
        layers += [nn.Conv2d(3 if i == 0 else 4, 4, 3, padding=1, padding_mode="reflect"), norm, nn.ReLU()]
    return Subject.from_module(nn.Sequential(*layers, nn.Conv2d(4, 3, 1), nn.Tanh()), style_names=["translated"])


def _data():
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    x[2] = 0.25                                        # a flat grey photo
    return AnalysisData(x, torch.zeros(4, dtype=torch.long))


def test_a_flat_image_is_left_out_and_counted_and_nothing_is_nan():
    s, d = _subject(), _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        f = build_analysis("attribution", methods=("ig", "saliency"), targets=("region",), n_images=4, n_steps=4,
                           sanity_images=4).run(s, d)
    assert any(n.startswith("region/content: 1 of 4 image(s) left out") for n in f.notes), f.notes
    for k, a in f.arrays.items():
        if k.startswith("maps__"):
            assert len(a) == 3 and np.isfinite(a.astype(np.float64)).all(), k
    assert f.tables["attribution_completeness"]["rel_delta"].notna().all()


def test_finite_rows_names_the_flat_image_only():
    from interp_gan.analyses.attribution.targets import build_targets
    (t,), _ = build_targets(_subject(), _data(), ["region"], n_images=4)
    assert finite_rows(t).tolist() == [True, True, False, True]
