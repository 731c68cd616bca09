"""Paper exports: booktabs LaTeX with folded CIs, SVG/PDF via kaleido (or a recorded skip)."""
from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go
import pytest

from interp_gan.findings import Finding
from interp_gan.reporting import ReportContext, write_report
from interp_gan.reporting.exports import export_figures, find_chromium, table_to_latex


def _units() -> pd.DataFrame:
    return pd.DataFrame({"layer": ["blocks.0", "blocks.1"], "unit": [3, 17], "iou": [0.123456, 0.2],
                         "ci_low": [0.1, 0.15], "ci_high": [0.3, 0.25], "q_value": [0.00001234, 0.5]})


def test_latex_booktabs_ci_and_rounding():
    tex = table_to_latex(_units(), caption="Top units", label="tab:units")
    for cmd in ("\\toprule", "\\midrule", "\\bottomrule", "\\caption{Top units}", "\\label{tab:units}"):
        assert cmd in tex, cmd
    assert "[0.100, 0.300]" in tex                       # CI folded into one column
    assert "ci\\_low" not in tex and "ci_low" not in tex
    assert "0.123 " in tex and "0.123456" not in tex     # rounded to ~3 significant digits
    assert "$1.23\\times10^{-5}$" in tex                 # tiny q-values stay visible, in LaTeX notation
    assert "q\\_value" in tex and "blocks.0" in tex     # underscores escaped for LaTeX
    assert " 17 " in tex                                 # ints stay ints


def test_latex_truncates_long_tables():
    df = pd.DataFrame({"unit": range(120), "auroc": [0.5] * 120})
    tex = table_to_latex(df, max_rows=10)
    assert tex.startswith("% first 10 of 120 rows")
    assert tex.count("\\\\\n") == 11                      # header + 10 rows


def test_latex_keeps_the_most_significant_rows_of_a_long_table():
    q = [0.9] * 100
    q[57], q[83], q[12] = 0.001, 0.001, 0.02                   # planted: three significant units
    d = [0.1] * 100
    d[57], d[83] = -4.0, 2.0                                    # a tie in q broken by |d|
    df = pd.DataFrame({"layer": "b", "unit": range(100), "style": "s", "auroc": 0.5, "q_value": q, "cohens_d": d})
    tex = table_to_latex(df, max_rows=3, name="style_units")
    assert tex.startswith("% smallest q, then largest |Cohen's d|: 3 of 100 rows")
    body = tex.split("\\midrule")[1]
    assert [int(line.split("&")[1]) for line in body.strip().splitlines()[:3]] == [57, 83, 12]
    assert table_to_latex(df, max_rows=3).startswith("% first 3 of 100 rows")   # unknown table: as it is


def test_static_export_failure_is_recorded_not_raised(tmp_path, monkeypatch):
    import plotly.io as pio

    def boom(*a, **k):
        raise RuntimeError("planted: no browser")
    monkeypatch.setattr(pio, "write_images", boom)
    info = export_figures({"f": go.Figure(go.Scatter(y=[1, 2]))}, tmp_path)
    assert "planted: no browser" in info["skipped"]
    assert not list(tmp_path.glob("f.*"))


def test_report_records_static_skip_in_manifest(tmp_path, monkeypatch):
    import plotly.io as pio
    monkeypatch.setattr(pio, "write_images", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("planted")))
    f = Finding("overview", tables={"evaluation": pd.DataFrame({"metric": ["ssim"], "value": [0.5]})})
    # the overview section registers a figure only when there are metrics; add one
    f.tables["training_metrics"] = pd.DataFrame({"step": [0, 10], "metric": ["loss_g"] * 2, "value": [2.0, 1.0]})
    out = write_report(tmp_path / "r", [f], ReportContext(name="r"), strict=True)
    m = json.loads((out / "manifest.json").read_text())
    assert "planted" in m["exports"]["static_figures"]["skipped"]
    assert (out / "index.html").is_file() and (out / "paper/evaluation.tex").is_file()


@pytest.mark.browser
def test_static_svg_pdf_export(tmp_path):
    if find_chromium() is None:
        pytest.skip("no chromium on PATH (apt-get install chromium): static SVG/PDF export needs it")
    fig = go.Figure([go.Scatter(x=[0, 1, 2], y=[2, 0, 1], name="planted_trace"),
                     go.Scatter(x=[0, 1, 2], y=[1, 1, 1], name="other_trace")])
    info = export_figures({"curve": fig}, tmp_path)
    assert info["written"] == ["curve.svg", "curve.pdf", "curve.png"], info
    svg = (tmp_path / "curve.svg").read_text()
    assert svg.lstrip().startswith("<svg") and "planted_trace" in svg   # the legend is real text
    assert (tmp_path / "curve.pdf").read_bytes()[:5] == b"%PDF-"
