"""paper/ is paste-ready: escaped LaTeX with significant figures, main.tex compiles with pdfLaTeX,
every figure prints at 3.3 or 6.8 in with no text below 8 pt, image grids are figures too."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from interp_gan.findings import Finding
from interp_gan.reporting import ImageGrid, ReportContext, Section, register_section, write_report
from interp_gan.reporting.exports import MIN_FONT_PT, find_chromium, latex_escape, table_to_latex

PDFLATEX = shutil.which("pdflatex")


def test_escaping_for_pdflatex_default_encoding():
    raw = "a|b -> c_d 50% R&D #1 ≤ ± → {x} ~ ^ $ \\ <q> é Δρ"
    tex = latex_escape(raw)
    for bad in ("|", "->", "≤", "±", "→", "Δ", "<", ">"):
        assert bad not in tex.replace("\\textbar{}", "").replace("\\textless{}", "").replace("\\textgreater{}", ""), bad
    for good in ("\\textbar{}", "$\\rightarrow$", "c\\_d", "50\\%", "R\\&D", "\\#1", "$\\le$", "$\\pm$", "\\{x\\}",
                 "\\textless{}q\\textgreater{}", "\\'e", "$\\Delta$"):
        assert good in tex, good
    assert all(ord(ch) < 128 for ch in tex)


def test_tables_use_significant_figures_not_fixed_decimals():
    df = pd.DataFrame({"layer": ["b|0", "b->1"], "effect": [-4.43e-05, -0.191], "ci_low": [-6.4e-05, -0.237],
                       "ci_high": [-2.9e-05, -0.139], "p_random": [0.6, 0.05], "units": ["1;2", "3"]})
    tex = table_to_latex(df, caption="Effects ≤ 0 (|Δ|)", label="tab:x")
    assert "0.0000" not in tex and "-0.0000" not in tex
    assert "$-4.43\\times10^{-5}$" in tex and "[$-6.40\\times10^{-5}$, $-2.90\\times10^{-5}$]" in tex
    assert "$-0.191$" in tex and "[$-0.237$, $-0.139$]" in tex
    assert "b\\textbar{}0" in tex and "b$\\rightarrow$1" in tex and "$\\le$" in tex
    assert all(ord(ch) < 128 for ch in tex)


def test_wide_tables_are_resized_to_the_text_width():
    wide = pd.DataFrame({f"a_long_column_name_{i}": ["some long text value"] for i in range(12)})
    narrow = pd.DataFrame({"unit": [1, 2], "iou": [0.1, 0.2]})
    assert "\\resizebox{\\linewidth}{!}" in table_to_latex(wide)
    assert "\\resizebox" not in table_to_latex(narrow)


@register_section("_paper_demo")
def _paper_section(f, ctx):
    df = f.tables["paper_rows"]
    bars = go.Figure(go.Bar(x=df["unit"], y=df["iou"], name="iou"))
    bars.update_layout(title="A title the print version drops", xaxis={"tickfont": {"size": 7}},   # planted: 7 px
                       legend={"font": {"size": 6}})
    heat = go.Figure(go.Heatmap(z=np.arange(160).reshape(2, 80), x=[f"c{i}" for i in range(80)],  # planted: cell
                                text=np.full((2, 80), "**"), texttemplate="%{text}"))          # text, auto-sized
    grid = ImageGrid(f.arrays["img"], ncols=3, row_labels=["content", "style a"], col_labels=["1", "2", "3"],
                     title="Samples")
    sec = Section("Paper demo", ["<p>x</p>", bars], figures={"bars": bars, "heat": heat},
                  paper_grids={"samples": grid})
    return sec


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    if find_chromium() is None:
        pytest.skip("no chromium on PATH (apt-get install chromium): the figure export needs it")
    rng = np.random.default_rng(0)
    f = Finding("_paper_demo", tables={"paper_rows": pd.DataFrame({"unit": [0, 1, 2], "iou": [0.1, 0.3, 2e-5],
                                                                   "note": ["a|b", "x -> y", "50% ≤ 1"]})},
                arrays={"img": rng.integers(0, 255, (6, 16, 16, 3), dtype=np.uint8)})
    out = write_report(tmp_path_factory.mktemp("paper") / "rep", [f], ReportContext(name="paper_demo"), strict=True)
    return out / "paper"


@pytest.mark.browser
def test_paper_folder_has_preamble_main_figures_and_every_format(paper):
    for rel in ("preamble.tex", "main.tex", "figures.tex", "references.bib", "paper_rows.tex"):
        assert (paper / rel).is_file(), rel
    figs = re.findall(r"\\includegraphics\{([^}]+)\.pdf\}", (paper / "figures.tex").read_text())
    assert sorted(figs) == ["_paper_demo_bars", "_paper_demo_heat", "_paper_demo_samples"]
    for name in figs:
        for ext in ("pdf", "svg", "png"):
            assert (paper / f"{name}.{ext}").is_file(), (name, ext)
        svg = (paper / f"{name}.svg").read_text()
        assert "A title the print version drops" not in svg                    # the caption carries it
    tex = (paper / "figures.tex").read_text()
    assert tex.count("\\begin{figure") == 3 and "\\caption{Paper demo: A title the print version drops.}" in tex
    main = (paper / "main.tex").read_text()
    assert "\\input{preamble}" in main and "\\input{figures}" in main and "\\input{paper_rows}" in main


def _printed_width_pt(pdf: bytes) -> float:
    box = re.search(rb"/MediaBox\s*\[\s*([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s*\]", pdf)
    return float(box.group(3)) - float(box.group(1))


@pytest.mark.browser
def test_every_exported_figure_prints_at_column_or_page_width_with_text_at_least_8pt(paper):
    from PIL import Image
    names = re.findall(r"\\includegraphics\{([^}]+)\.pdf\}", (paper / "figures.tex").read_text())
    assert names
    for name in names:
        width_pt = _printed_width_pt((paper / f"{name}.pdf").read_bytes())   # printed at natural size
        assert min(abs(width_pt - 3.3 * 72), abs(width_pt - 6.8 * 72)) < 2, (name, width_pt)
        svg = (paper / f"{name}.svg").read_text()
        svg_w = float(re.search(r'<svg[^>]*\swidth="([\d.]+)"', svg).group(1))
        sizes = [float(x) for x in re.findall(r"font-size:\s*([\d.]+)px", svg)]
        assert sizes, name                                                   # it has text (labels, ticks)
        smallest_pt = min(sizes) * width_pt / svg_w
        assert smallest_pt >= MIN_FONT_PT, (name, smallest_pt)
        with Image.open(paper / f"{name}.png") as im:                        # 300 dpi at the same width
            assert abs(im.size[0] / 300 - width_pt / 72) < 0.02 and round(im.info["dpi"][0]) == 300
            assert im.convert("RGB").getpixel((1, 1)) == (255, 255, 255)     # white background


@pytest.mark.browser
@pytest.mark.skipif(PDFLATEX is None, reason="no pdflatex on PATH (apt-get install texlive-latex-base "
                                             "texlive-latex-recommended texlive-fonts-recommended)")
def test_main_tex_compiles_with_pdflatex(paper, tmp_path):
    work = tmp_path / "paper"
    shutil.copytree(paper, work)
    proc = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "main.tex"], cwd=work,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (work / "main.pdf").stat().st_size > 1000
    assert "Missing character" not in (work / "main.log").read_text(errors="replace")


def test_names_with_slashes_from_onnx_layers_become_one_file_each(tmp_path):
    # an ONNX node is named like "res/3/0/Conv": its figure and table must not become folders
    # (that once made the export of every figure of a multistyle26 report fail)
    from interp_gan.reporting.exports import file_stem, write_paper
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1]))
    df = pd.DataFrame({"a": [1.0]})
    out = write_paper(tmp_path, {"ablation_res/3/0/Conv": (df, "t")}, {"ablation_log_odds_res/3/0/Conv": fig},
                      "", static_figures=find_chromium() is not None)
    assert file_stem("ablation_log_odds_res/3/0/Conv") == "ablation_log_odds_res_3_0_Conv"
    assert (tmp_path / "ablation_res_3_0_Conv.tex").is_file() and not (tmp_path / "ablation_res").exists()
    if find_chromium() is not None:
        assert "ablation_log_odds_res_3_0_Conv.png" in out["static_figures"]["written"], out["static_figures"]
