"""One contract test over every registered analysis (captum's test_hook_removal idea): no hook is
left after success or after an error, the same seed gives the same result, and the Finding
round-trips through JSON/CSV/NPZ with the same values, and its provenance names the data it
analysed, not the checkpoint's training data. Each analysis brings its own small settings
(``@register_analysis(fast=...)``), so a new analysis is covered with no edit here."""
import numpy as np
import pandas as pd
import pytest
import torch

import interp_gan.analyses  # noqa: F401  (registers every analysis)
from interp_gan.analyses.base import build_analysis, get_analysis, list_analyses
from interp_gan.findings import Finding

from conftest import make_tiny_data, make_tiny_subject

NAMES = list_analyses()
TIMING = ["seconds"]  # wall-clock columns legitimately differ between runs


def _fast(name: str) -> dict:
    return dict(get_analysis(name).fast)


def _shown(column: pd.Series) -> list[str]:
    """A text / boolean column as strings, missing values as "" (any dtype, nullable ones too): CSV
    cannot tell a missing text value from an empty one, so neither can this comparison."""
    return [str(v) if pd.notna(v) else "" for v in column.astype(object)]


def _without_timing(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[c for c in TIMING if c in df])


def _hooks(subject):
    n = 0
    for m in (subject.generator, subject.discriminator, subject.classifier, subject.texture_classifier):
        if m is not None:
            for mod in m.modules():
                n += len(mod._forward_hooks) + len(mod._forward_pre_hooks) + len(mod._backward_hooks)
    return n


def test_the_registry_is_not_empty():
    assert {"dissection", "style_units", "ablation", "directions", "attribution"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_analysis_contract(name, tmp_path):
    subject = make_tiny_subject()
    # a checkpoint's metadata names its training data; a Finding must name the data it analysed
    # (`interp-gan report` refuses a finding whose fingerprint is not its report's)
    subject.meta = {**subject.meta, "data_fingerprint": "the-training-data"}
    data = make_tiny_data(subject)
    torch.manual_seed(0)
    f1 = build_analysis(name, **_fast(name)).run(subject, data)
    assert isinstance(f1, Finding) and f1.analysis == name
    assert f1.provenance.get("data_fingerprint", data.fingerprint) == data.fingerprint
    assert f1.skipped is None, f"{name} skipped on the tiny model: {f1.skipped}"
    assert f1.tables, f"{name} returned no table"
    assert f1.section["title"] == get_analysis(name).title        # stamped for the report
    assert _hooks(subject) == 0, "hooks left after a successful run"
    torch.manual_seed(0)
    f2 = build_analysis(name, **_fast(name)).run(subject, data)
    assert f1.tables.keys() == f2.tables.keys()
    for k in f1.tables:
        pd.testing.assert_frame_equal(_without_timing(f1.tables[k]), _without_timing(f2.tables[k]),
                                      check_exact=False, rtol=1e-5)
    f1.save(tmp_path / name)
    back = Finding.load(tmp_path / name)
    assert back.tables.keys() == f1.tables.keys() and back.skipped == f1.skipped
    assert back.section == f1.section and back.notes == f1.notes
    for k in f1.tables:
        want = _without_timing(f1.tables[k]).reset_index(drop=True)
        got = _without_timing(back.tables[k]).reset_index(drop=True)
        assert list(got.columns) == list(map(str, want.columns))
        assert len(got) == len(want)
        for col in want.columns:                                   # values, not only names, survive
            w, g = want[col], got[str(col)]
            if pd.api.types.is_numeric_dtype(w) and not pd.api.types.is_bool_dtype(w):
                rtol = 1e-6 if w.dtype == np.float32 else 1e-12              # CSV keeps float32's digits
                np.testing.assert_allclose(g.to_numpy(float), w.to_numpy(float), rtol=rtol, atol=0,
                                           equal_nan=True, err_msg=f"{name}.{k}.{col}")
            else:
                assert _shown(g) == _shown(w), f"{name}.{k}.{col}"
    for k in f1.arrays:
        np.testing.assert_array_equal(back.arrays[k], f1.arrays[k])


@pytest.mark.parametrize("name", NAMES)
def test_no_hook_survives_an_error(name):
    subject = make_tiny_subject()
    data = make_tiny_data(subject)

    def boom(mod, inputs, output):
        raise RuntimeError("planted failure in the encoder")

    h = subject.generator.encoder.register_forward_hook(boom)  # every forward passes it
    try:
        with pytest.raises(RuntimeError, match="planted failure"):
            build_analysis(name, **_fast(name)).run(subject, data)
    finally:
        h.remove()
    assert _hooks(subject) == 0, "a hook survived the exception"


@pytest.mark.parametrize("params, match", [
    ({"top_quantile": 0.99}, r"unknown parameter\(s\) for analysis 'dissection': 'top_quantile' \(did you mean 'quantile'\?\)"),
    ({"quantile": "abc"}, r"quantile = 'abc' \(str\); expected float"),
    ({"n_boot": 2.5}, r"n_boot = 2.5 \(float\); expected int"),
    ({"null": "spatail"}, r"null = 'spatail'; expected one of 'both', 'image', 'spatial' \(did you mean 'spatial'\?\)"),
])
def test_bad_analysis_parameters_fail_before_any_model_loads(params, match):
    with pytest.raises(ValueError, match=match):
        build_analysis("dissection", **params)
    with pytest.raises(LookupError, match="unknown analysis 'dissektion'; registered: ablation"):
        build_analysis("dissektion")
    with pytest.raises(LookupError, match="; did you mean 'dissection'\\?$"):     # a typo'd table name
        build_analysis("disection")
    assert build_analysis("dissection", iou_threshold=1).iou_threshold == 1.0   # an int is a valid float
    with pytest.raises(ValueError, match=r"quantile = 1.0; expected in \(0, 1\)"):   # a threshold above every value
        build_analysis("dissection", quantile=1)
