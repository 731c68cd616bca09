"""interp_gan: train style-transfer GANs and open them up (dissection, ablation, directions,
attributions), with confidence intervals, into an offline report.

    import interp_gan as ig
    subject = ig.load_subject("runs/demo/checkpoint.safetensors")
    data = ig.analysis_data(subject, ig.PipelineConfig(n_images=64))
    finding = ig.build_analysis("dissection").run(subject, data)

The names below are loaded on first use (PEP 562), so ``import interp_gan`` imports nothing
heavy: the CLI must set OpenMP's wait policy before torch loads (see ``cli.main``).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Subject": "interp_gan.subject.protocol", "AnalysisData": "interp_gan.analyses.base",
    "build_analysis": "interp_gan.analyses", "list_analyses": "interp_gan.analyses",
    "load_subject": "interp_gan.subject.loading", "convert_cyclegan": "interp_gan.subject.loading",
    "convert_checkpoint": "interp_gan.subject.loading",
    "Trace": "interp_gan.harvest.hooks", "TraceDict": "interp_gan.harvest.hooks",
    "Finding": "interp_gan.findings",
    "analyze": "interp_gan.pipeline", "analysis_data": "interp_gan.pipeline",
    "train": "interp_gan.training", "load_checkpoint": "interp_gan.checkpoint",
    "write_report": "interp_gan.reporting", "ReportContext": "interp_gan.reporting",
    "Recipe": "interp_gan.config", "PipelineConfig": "interp_gan.config",
    "load_recipe": "interp_gan.config", "load_pipeline": "interp_gan.config",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'interp_gan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
