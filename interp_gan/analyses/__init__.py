"""Analyses (stages ④–⑥ of docs/architecture.md): subject, hooks, streaming statistics and one class per method.

    from interp_gan.analyses import build_analysis, list_analyses
    finding = build_analysis("dissection", quantile=0.99).run(subject, data)

Importing this package imports each of its modules once, so every ``@register_analysis``
class is available by name; a module that fails to import raises (never silently missing).
"""
from __future__ import annotations

import importlib
import pkgutil

from interp_gan.analyses.base import Analysis, AnalysisData, build_analysis, list_analyses, register_analysis
from interp_gan.subject.protocol import Subject

__all__ = ["Analysis", "AnalysisData", "Subject", "build_analysis", "list_analyses", "register_analysis"]

for _m in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
    importlib.import_module(_m.name)
