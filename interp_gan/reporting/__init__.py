"""Reporting (stage ⑧ of docs/architecture.md): Findings -> offline HTML report + paper exports.

    from interp_gan.reporting import ReportContext, write_report
    write_report(Path("reports/demo"), findings, ReportContext(name="demo", meta=meta))

Importing this package imports every ``section_*.py`` module in it, so each registers its
``@register_section``. A section module that exists but fails to import raises an
``ImportError`` naming it (it is never skipped silently: a report without that section
would look complete).
"""
from __future__ import annotations

import importlib
import pkgutil

from interp_gan.reporting.exports import table_to_latex, write_paper
from interp_gan.reporting.html import write_report
from interp_gan.reporting.references import Reference, register_reference, references_for, to_bibtex
from interp_gan.reporting.sections import (ImageGrid, ReportContext, Section, Table, get_section, list_sections,
                                           register_section)

__all__ = ["write_report", "write_paper", "table_to_latex", "ReportContext", "Section", "ImageGrid", "Table",
           "register_section", "get_section", "list_sections", "Reference", "register_reference",
           "references_for", "to_bibtex", "section_modules"]


def section_modules() -> list[str]:
    """Names of the ``section_*`` modules in this package (what import registers)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("section_"))


def _import_sections() -> None:
    for name in section_modules():
        try:
            importlib.import_module(f"{__name__}.{name}")
        except Exception as e:
            raise ImportError(f"report section module {__name__}.{name} failed to import: "
                              f"{type(e).__name__}: {e}. Fix the module (or move it out of "
                              f"interp_gan/reporting/) so the report can register its section.") from e


_import_sections()
