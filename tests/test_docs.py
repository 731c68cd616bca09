"""The repo explains itself: every docs/ page the code, tests, README or docs name exists, every
relative link inside docs/ resolves, and nothing points outside the repository for its design."""
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / p for p in out.stdout.split()]


def _texts():
    for p in _tracked("*.py", "*.md", "*.toml", "*.sh", "Makefile"):
        if p.is_file():
            yield p, p.read_text(errors="replace")


def test_every_named_docs_page_exists():
    missing = []
    for p, text in _texts():
        for ref in re.findall(r"docs/[\w./-]+\.(?:md|png)", text):
            if not (ROOT / ref).is_file():
                missing.append(f"{p.relative_to(ROOT)} -> {ref}")
    assert missing == []


def test_every_repo_file_the_docs_name_exists():
    """A path into the repository written in prose (README, docs/, benchmarks/RESULTS.md) names a file
    that is there: a moved module leaves no stale pointer (``analyses/cost.py`` once stood for
    ``interp_gan/analyses/cost.py``, while ``analyses/`` holds the pipeline TOMLs)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "benchmarks").glob("*.md"))]
    pattern = re.compile(r"(?<![\w./-])((?:interp_gan|tests|benchmarks|analyses|training)/[\w/.-]+\.(?:py|toml|sh))\b")
    missing = [f"{p.relative_to(ROOT)} -> {ref}" for p in pages for ref in pattern.findall(p.read_text())
               if not (ROOT / ref).exists()]
    assert missing == []


def test_links_inside_docs_resolve():
    broken = []
    for p in (ROOT / "docs").glob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", p.read_text()):
            if not (p.parent / target).exists():
                broken.append(f"{p.name} -> {target}")
    assert broken == []


def test_nothing_cites_design_notes_outside_the_repo():
    pattern = re.compile(r"DESIGN\.md|STYLE\.md|FACTS\.md|\.\./shared")
    hits = [f"{p.relative_to(ROOT)}" for p, text in _texts() if pattern.search(text) and p.name != "test_docs.py"]
    assert hits == []


def test_readme_is_short_and_points_to_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 140   # the model zoo and the case study (issue #11) live here
    for page in ("docs/architecture.md", "docs/models.md", "docs/statistics.md", "docs/scaling.md"):
        assert page in readme
