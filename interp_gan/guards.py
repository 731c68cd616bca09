"""Checks that refuse hostile or mixed inputs before any work is done, each with one line naming
the file, the key and what was expected (issue #16: nothing lost, nothing mixed, nothing
silently wrong).

Nothing here imports torch at module level: ``interp-gan report`` (torch-free) uses the report
checks; the tensor checks import torch when called.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

__all__ = ["check_out_dir", "check_report_owner", "check_report_provenance", "remove_stale_tmp",
           "check_model_size", "check_finite", "read_json", "max_params", "NonFiniteOutput"]

DEFAULT_MAX_PARAMS = 2e9


class NonFiniteOutput(RuntimeError):
    """A model's outputs held NaN / Inf values in more than the tolerated fraction."""


def read_json(path: str | Path, what: str = "file") -> Any:
    """``json.loads`` of a file; a truncated or invalid file is one line naming it."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{p} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); "
                         f"the {what} is truncated or corrupt: re-run the step that wrote it") from None
    except UnicodeDecodeError:
        raise ValueError(f"{p} is not a UTF-8 text {what}; it is corrupt") from None


# --- report folders ------------------------------------------------------------------------------
def remove_stale_tmp(folder: str | Path) -> list[Path]:
    """Delete ``.<name>.*.tmp`` files left by an atomic write that was killed (``util.atomic_write``)."""
    d = Path(folder)
    gone = []
    if d.is_dir():
        for p in d.glob(".*.tmp"):
            if p.is_file():
                p.unlink(missing_ok=True)
                gone.append(p)
    return gone


def check_out_dir(out: str | Path) -> Path:
    """A report folder that can be written: not a file, writable, and either empty / absent or a
    report folder (holding ``manifest.json``). Said before any analysis runs."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder; give a folder for the report")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {out}: {probe} is not a writable folder; give a folder you can write to")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise ValueError(f"--out {out} is not empty and is not a report folder (no manifest.json); "
                         f"use --out elsewhere or delete the folder")
    remove_stale_tmp(out)
    return out


# what, besides the file, makes a subject: the family's resolved configuration (a U-GAT-IT / MUNIT
# direction, AnimeGAN's upsampling, ...), StyleGAN2's space, truncation and noise, an ONNX contract
_SUBJECT_KEYS = ("model", "style_space", "truncation_psi", "truncation_cutoff", "noise_mode", "noise_seed",
                 "input_contract")


def subject_config(meta: dict) -> dict:
    """The part of a subject's metadata that, with its file's sha256, says which subject it is: one
    file loaded with other options (``gen.pt#direction=b2a``, ``snap.pkl#space=s``) is another subject."""
    return json.loads(json.dumps({k: meta[k] for k in _SUBJECT_KEYS if meta.get(k) is not None}, default=str,
                                 sort_keys=True))


def check_report_owner(out: str | Path, checkpoint_sha256: str, data_fingerprint: str,
                       config: dict | None = None) -> None:
    """A report folder belongs to one subject (file and options: ``subject_config``) and one data set:
    refuse another's. A manifest written before the options were recorded is judged by the file alone."""
    manifest = Path(out) / "manifest.json"
    if not manifest.is_file():
        return
    m = read_json(manifest, "report manifest")
    for key, new in (("checkpoint_sha256", checkpoint_sha256), ("data_fingerprint", data_fingerprint)):
        old = m.get(key) or ""
        if str(old) != str(new or ""):
            raise ValueError(f"--out {out} holds the report of another {key.split('_')[0]} ({key} "
                             f"{str(old)[:12] or 'none'}, this run {str(new)[:12] or 'none'}); reports never "
                             f"mix: use --out elsewhere or delete the folder")
    old_cfg = m.get("subject_config")
    if config is not None and old_cfg is not None and old_cfg != subject_config(config):
        a, b = _flat(old_cfg), _flat(subject_config(config))
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        detail = "; ".join(f"{k}: {_short(a.get(k))} there, {_short(b.get(k))} now" for k in diff[:2])
        raise ValueError(f"--out {out} holds the report of the same file loaded as another subject ({detail}); "
                         f"reports never mix: use --out elsewhere or delete the folder")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _short(v) -> str:
    """A config value for a one-line message, cut to 80 characters."""
    text = json.dumps(v, sort_keys=True, default=str) if v is not None else "none"
    return text if len(text) <= 80 else text[:77] + "..."


def check_report_provenance(report_dir: str | Path, manifest: dict, findings: dict) -> None:
    """Every saved Finding of a report folder comes from the manifest's subject and data."""
    bad = []
    for name, f in findings.items():
        prov = getattr(f, "provenance", {}) or {}
        for key in ("checkpoint_sha256", "data_fingerprint"):
            want, got = manifest.get(key), prov.get(key)
            if want is not None and got is not None and str(want) != str(got):
                bad.append(f"findings/{name}/finding.json ({key} {str(got)[:12]}, manifest {str(want)[:12]})")
                break
    if bad:
        raise ValueError(f"{report_dir} mixes findings of different subjects or data: {'; '.join(bad)}; "
                         f"re-run `interp-gan analyze` into an empty --out")


# --- model size and weights ----------------------------------------------------------------------
def max_params() -> float:
    v = os.environ.get("INTERP_GAN_MAX_PARAMS")
    try:
        return float(v) if v else DEFAULT_MAX_PARAMS
    except ValueError:
        raise ValueError(f"INTERP_GAN_MAX_PARAMS must be a number, got {v!r}") from None


def check_model_size(make: Callable[[], Any], what: str) -> None:
    """Build ``make()`` on the meta device (no memory) and refuse it when its parameter count is
    over the cap (``INTERP_GAN_MAX_PARAMS``, default 2e9): sizes read from a file are untrusted."""
    import torch

    try:
        with torch.device("meta"):
            m = make()
    except (ValueError, TypeError, LookupError):
        raise
    except Exception:   # a constructor that cannot run on the meta device: no estimate
        return
    n = sum(p.numel() for p in m.parameters())
    cap = max_params()
    if n > cap:
        raise ValueError(f"{what} would have {n:.3g} parameters, more than the cap {cap:.3g}; the file is "
                         f"corrupt or hostile (set INTERP_GAN_MAX_PARAMS to allow a larger model)")


def check_finite(tensors: Iterable[tuple[str, Any]], path: str | Path) -> None:
    """Refuse weights holding NaN / Inf: one line naming the first bad tensor and the count."""
    import torch

    bad, first = 0, None
    for name, t in tensors:
        if torch.is_tensor(t) and t.is_floating_point():
            n = int((~torch.isfinite(t)).sum())
            if n:
                bad += 1
                if first is None:
                    first = (name, n, t.numel())
    if first:
        raise ValueError(f"{path}: tensor {first[0]!r} holds {first[1]} NaN/Inf of {first[2]} values "
                         f"({bad} tensor(s) with non-finite values in all); the weights are corrupt "
                         f"(a diverged training run?)")
