"""Provenance: what produced a result (checkpoint hash, data fingerprint, config, seed, versions, time).

    prov = provenance(checkpoint_sha256=..., data_fingerprint=..., config=cfg.to_dict(), seed=0)
"""
from __future__ import annotations

import time
from typing import Any

from interp_gan.util import package_versions, sha256_file

__all__ = ["package_versions", "sha256_file", "provenance"]

def provenance(**fields: Any) -> dict[str, Any]:
    """Merge the given fields with package versions and the current UTC time."""
    return {**fields, "versions": package_versions(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
