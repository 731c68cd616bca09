"""The pipeline files in analyses/ are valid: each parses, each analysis it names is registered
and accepts its parameters (the same ``build_analysis`` the pipeline calls), and the case studies
(multistyle26.toml, magenta.toml) say in their header the command that ran them. magenta.toml
(issue #11: the thorough pipeline on the Magenta pair) names every analysis of full.toml, so
each either runs or skips with its reason, and its style subset is valid embedded styles."""
import re
from pathlib import Path

import pytest

from interp_gan.analyses import build_analysis
from interp_gan.config import load_pipeline

ROOT = Path(__file__).resolve().parents[1] / "analyses"
FILES = sorted(ROOT.glob("*.toml"))


def _header(path: Path) -> str:
    lines = path.read_text().splitlines()
    return "\n".join(l for l in lines[: next(i for i, l in enumerate(lines) if not l.startswith("#"))])


def test_the_case_studies_are_here():
    assert {"full.toml", "multistyle26.toml", "magenta.toml"} <= {p.name for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_pipeline_file_parses_and_builds_its_analyses(path):
    cfg = load_pipeline(path)
    assert cfg.analyses, f"{path.name} names no analysis"
    for spec in cfg.analyses:
        build_analysis(spec.name, **spec.params)   # raises on an unknown analysis or parameter


@pytest.mark.parametrize("name", ["multistyle26", "magenta"])
def test_case_study_header_gives_its_command(name):
    head = _header(ROOT / f"{name}.toml")
    assert f"--pipeline analyses/{name}.toml" in head and "interp-gan analyze" in head
    assert "What differs from full.toml" in head


def test_magenta_names_every_analysis_of_full_toml_and_valid_styles():
    from interp_gan.data.embedded import EMBEDDED_STYLES

    full = {s.name for s in load_pipeline(ROOT / "full.toml").analyses}
    magenta = {s.name for s in load_pipeline(ROOT / "magenta.toml").analyses}
    assert full - magenta == set()
    head = _header(ROOT / "magenta.toml")
    assert "style_predictor=" in head and "arbitrary_transform.onnx" in head
    styles = re.search(r"--onnx styles=([\w,]+)", head).group(1).split(",")
    # every fifth of the embedded set, fixed in advance (the header says so)
    assert styles == list(EMBEDDED_STYLES[::5])
