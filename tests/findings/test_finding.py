"""Finding: the save/load round trip keeps values and dtypes (text with empty strings, nullable
booleans, float32, ints), arrays, notes, section and skipped; a missing directory is one clear error."""
import numpy as np
import pandas as pd
import pytest

from interp_gan.findings import Finding


def _finding() -> Finding:
    df = pd.DataFrame({
        "layer": ["a", "a", "b"], "concept": ["red", "", "sky"],
        "iou": np.array([0.25, 0.0, 0.125], dtype=np.float32), "unit": [0, 1, 2],
        "p_value": [0.001, np.nan, 1.0],
        "beyond_random": pd.array([True, pd.NA, False], dtype="boolean"),
    })
    return Finding("dissection", params={"quantile": 0.99, "layers": ["a", "b"]}, tables={"units": df},
                   arrays={"maps": np.arange(12, dtype=np.float32).reshape(3, 2, 2)}, notes=["n1"],
                   provenance={"seed": 0}, section={"title": "Channel dissection", "order": 20, "references": []})


def test_round_trip_keeps_values_and_dtypes(tmp_path):
    f = _finding()
    back = Finding.load(f.save(tmp_path / "f"))
    pd.testing.assert_frame_equal(back.tables["units"], f.tables["units"])
    np.testing.assert_array_equal(back.arrays["maps"], f.arrays["maps"])
    assert (back.notes, back.params, back.section, back.provenance) == (f.notes, f.params, f.section, f.provenance)


def test_skipped_and_empty_tables_round_trip(tmp_path):
    s = Finding.skip("style_units", "the subject has one style")
    back = Finding.load(s.save(tmp_path / "s"))
    assert back.skipped == "the subject has one style" and back.tables == {}
    e = Finding("x", tables={"empty": pd.DataFrame(columns=["layer", "unit"])})
    assert list(Finding.load(e.save(tmp_path / "e")).tables["empty"].columns) == ["layer", "unit"]


def test_loading_a_directory_without_a_finding_says_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected a directory written by Finding.save"):
        Finding.load(tmp_path)
