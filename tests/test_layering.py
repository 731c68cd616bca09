"""Who may import whom (docs/architecture.md): analyses, subjects and harvest never import training;
models know nothing of analyses; reporting imports no model code. Checked on the source, so a
lazy import inside a function counts too."""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "interp_gan"

RULES = {   # folder (or module) -> prefixes it must not import
    "analyses": ("interp_gan.training",),
    "subject": ("interp_gan.training", "interp_gan.analyses"),
    "harvest": ("interp_gan.training", "interp_gan.analyses"),
    "models": ("interp_gan.analyses", "interp_gan.harvest", "interp_gan.subject", "interp_gan.training"),
    "findings": ("interp_gan.analyses", "interp_gan.harvest", "interp_gan.training", "torch"),
    "reporting": ("interp_gan.analyses", "interp_gan.harvest", "interp_gan.subject", "interp_gan.training",
                  "torch", "captum"),
}


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


@pytest.mark.parametrize("folder", sorted(RULES))
def test_no_layer_reaches_into_one_it_must_not(folder):
    bad = [f"{p.relative_to(PKG.parent)} imports {m}" for p in sorted((PKG / folder).rglob("*.py"))
           for m in _imports(p) if any(m == f or m.startswith(f + ".") for f in RULES[folder])]
    assert bad == []
