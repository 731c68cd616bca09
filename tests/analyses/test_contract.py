"""One contract test over every registered analysis (STYLE.md #9; captum's test_hook_removal idea):
no hook is left after success or after an error, the same seed gives the same result, and
the Finding round-trips through JSON/CSV/NPZ."""
import numpy as np
import pandas as pd
import pytest
import torch

import interp_gan.analyses  # noqa: F401  (registers every analysis)
from interp_gan.analyses.base import build_analysis, list_analyses
from interp_gan.findings import Finding

from conftest import make_tiny_data, make_tiny_subject

# Small, fast settings per analysis; every registered analysis must appear here.
FAST = {
    "overview": dict(n_images=2),
    "dissection": dict(layers=["blocks.*.conv2"], n_boot=20, n_perm=20),
    "style_units": dict(layers=["blocks.1.conv2"], n_boot=20, n_perm=20),
    "ablation": dict(layer="blocks.1.conv2", ks=(1, 2), n_random=2, n_boot=20),
    "directions": dict(methods=("pca", "sefa", "random"), n_samples=64, n_directions=2, n_random=2, n_images=8,
                       steps=(-2.0, 0.0, 2.0), n_boot=20),
    "embedding": dict(methods=("pca",)),
    "attribution": dict(methods=("ig", "saliency"), n_images=2, n_steps=8, sanity=False),
}


def _hooks(subject):
    n = 0
    for m in (subject.generator, subject.discriminator, subject.classifier, subject.texture_classifier):
        if m is not None:
            for mod in m.modules():
                n += len(mod._forward_hooks) + len(mod._forward_pre_hooks) + len(mod._backward_hooks)
    return n


def test_every_analysis_has_fast_settings():
    missing = set(list_analyses()) - set(FAST)
    assert not missing, f"add fast contract-test settings for {missing}"


@pytest.mark.parametrize("name", sorted(FAST))
def test_analysis_contract(name, tmp_path):
    if name not in list_analyses():
        pytest.skip(f"{name} is not registered")
    subject = make_tiny_subject()
    data = make_tiny_data(subject)
    torch.manual_seed(0)
    f1 = build_analysis(name, **FAST[name]).run(subject, data)
    assert isinstance(f1, Finding) and f1.analysis == name
    assert _hooks(subject) == 0, "hooks left after a successful run"
    torch.manual_seed(0)
    f2 = build_analysis(name, **FAST[name]).run(subject, data)
    assert f1.tables.keys() == f2.tables.keys()
    timing = ["seconds"]  # wall-clock columns legitimately differ between runs
    for k in f1.tables:
        a, b = (t.drop(columns=[c for c in timing if c in t]) for t in (f1.tables[k], f2.tables[k]))
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-5)
    f1.save(tmp_path / name)
    back = Finding.load(tmp_path / name)
    assert back.tables.keys() == f1.tables.keys() and back.skipped == f1.skipped
    for k in f1.tables:
        assert list(back.tables[k].columns) == list(map(str, f1.tables[k].columns))
        assert len(back.tables[k]) == len(f1.tables[k])
    for k in f1.arrays:
        np.testing.assert_array_equal(back.arrays[k], f1.arrays[k])


@pytest.mark.parametrize("name", sorted(FAST))
def test_no_hook_survives_an_error(name):
    if name not in list_analyses():
        pytest.skip(f"{name} is not registered")
    subject = make_tiny_subject()
    data = make_tiny_data(subject)

    def boom(mod, inputs, output):
        raise RuntimeError("planted failure in the encoder")

    h = subject.generator.encoder.register_forward_hook(boom)  # every forward passes it
    try:
        with pytest.raises(RuntimeError, match="planted failure"):
            build_analysis(name, **FAST[name]).run(subject, data)
    finally:
        h.remove()
    assert _hooks(subject) == 0, "a hook survived the exception"


@pytest.mark.parametrize("params, match", [
    ({"top_quantile": 0.99}, r"unknown parameter\(s\) for analysis 'dissection': 'top_quantile' \(did you mean 'quantile'\?\)"),
    ({"quantile": "abc"}, r"quantile = 'abc' \(str\); expected float"),
    ({"n_boot": 2.5}, r"n_boot = 2.5 \(float\); expected int"),
])
def test_bad_analysis_parameters_fail_before_any_model_loads(params, match):
    with pytest.raises(ValueError, match=match):
        build_analysis("dissection", **params)
    with pytest.raises(LookupError, match="unknown analysis 'dissektion'; registered: ablation"):
        build_analysis("dissektion")
    assert build_analysis("dissection", quantile=1).quantile == 1.0          # an int is a valid float
