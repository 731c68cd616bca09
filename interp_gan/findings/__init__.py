"""Findings: the tidy, saved results of analyses (DESIGN.md §3)."""
from interp_gan.findings.finding import Finding

__all__ = ["Finding"]
