"""Findings: the tidy, saved results of analyses (docs/architecture.md, stage ⑦)."""
from interp_gan.findings.finding import Finding
from interp_gan.findings.provenance import package_versions, provenance, sha256_file
from interp_gan.findings.stats import bh_qvalues, bootstrap_ci, permutation_pvalue

__all__ = ["Finding", "provenance", "package_versions", "sha256_file", "bootstrap_ci", "permutation_pvalue",
           "bh_qvalues"]
