"""The Finding: what every analysis returns (docs/architecture.md, stage ⑦).

    f = Finding(analysis="dissection", params={"quantile": 0.99},
                tables={"dissection_units": df}, arrays={"iou": iou})
    f.save("reports/demo/findings/dissection")
    g = Finding.load("reports/demo/findings/dissection")

A Finding holds tidy ``pandas.DataFrame`` tables (one row per observation), optional numpy
arrays, free-text notes, and provenance. ``skipped`` is set (with the reason) when the
analysis could not run on this subject; such a Finding has no tables and the report says why.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Finding"]


def _jsonable(obj: Any) -> Any:
    """Turn numpy / tuples / paths into plain JSON values (raise on anything else)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a Finding; expected JSON-like values")


def _restore_dtypes(df: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    """Undo what CSV loses: a text column's empty strings (read back as NaN) and numeric widths."""
    for col, dtype in dtypes.items():
        if col not in df:
            continue
        if dtype in ("object", "str", "string"):
            if all(isinstance(v, str) for v in df[col].dropna()):      # a text column: "" was written as empty
                col_ = df[col]
                df[col] = (col_.fillna("") if pd.api.types.is_string_dtype(col_)
                           else col_.astype(object).where(col_.notna(), ""))
        elif dtype != str(df[col].dtype):
            try:
                df[col] = df[col].astype(dtype)
            except (TypeError, ValueError):
                pass                                  # e.g. an int column that now holds NaN: keep as read
    return df


@dataclass
class Finding:
    analysis: str
    params: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    # how the report shows it: {"title", "order", "references"}, stamped from the analysis' registration,
    # so rendering a saved Finding needs nothing but the Finding (no analysis code, no torch)
    section: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def skip(cls, analysis: str, reason: str, params: dict | None = None) -> "Finding":
        """A Finding that records why an analysis did not run (never an exception)."""
        return cls(analysis=analysis, params=dict(params or {}), skipped=reason)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: params, notes, provenance, tables as records, array shapes."""
        return {
            "analysis": self.analysis,
            "params": _jsonable(self.params),
            "notes": list(self.notes),
            "provenance": _jsonable(self.provenance),
            "skipped": self.skipped,
            "section": _jsonable(self.section),
            "tables": {k: json.loads(v.to_json(orient="records", double_precision=15))
                       for k, v in self.tables.items()},
            "table_columns": {k: list(map(str, v.columns)) for k, v in self.tables.items()},
            "table_dtypes": {k: {str(c): str(t) for c, t in v.dtypes.items()} for k, v in self.tables.items()},
            "arrays": {k: list(v.shape) for k, v in self.arrays.items()},
        }

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``finding.json``, one ``<table>.csv`` per table and ``arrays.npz``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = self.to_dict()
        meta.pop("tables")
        (d / "finding.json").write_text(json.dumps(meta, indent=2))
        for name, df in self.tables.items():
            df.to_csv(d / f"{name}.csv", index=False)
        if self.arrays:
            np.savez_compressed(d / "arrays.npz", **self.arrays)
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "Finding":
        d = Path(directory)
        if not (d / "finding.json").is_file():
            raise FileNotFoundError(f"{d} has no finding.json; expected a directory written by Finding.save")
        try:
            meta = json.loads((d / "finding.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{d / 'finding.json'} is not valid JSON ({e}); the file is truncated or corrupt: "
                             f"re-run the analysis") from None
        tables = {}
        for name, cols in meta.get("table_columns", {}).items():
            path = d / f"{name}.csv"
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing; {d / 'finding.json'} lists table {name!r}")
            with open(path, "rb") as fh:   # pandas reads a row cut short as NaNs: check the end first
                size = fh.seek(0, 2)
                fh.seek(max(0, size - 1))
                if size > 1 and fh.read(1) != b"\n":
                    raise ValueError(f"{path} does not end with a newline: the CSV is truncated; re-run the analysis")
            try:
                tables[name] = pd.read_csv(path) if path.stat().st_size > 1 else pd.DataFrame(columns=cols)
            except (ValueError, UnicodeDecodeError) as e:   # pandas' ParserError / EmptyDataError
                raise ValueError(f"{path} is not a readable CSV ({str(e).strip()[:160]}); the file is truncated "
                                 f"or corrupt: re-run the analysis") from None
            if len(tables[name]) and list(map(str, tables[name].columns)) != list(map(str, cols)):
                raise ValueError(f"{path} has columns {list(tables[name].columns)[:6]}, expected {list(cols)[:6]} "
                                 f"(as {d / 'finding.json'} lists them); the file is truncated or was edited")
            if len(tables[name]) == 0:
                tables[name] = pd.DataFrame(columns=cols)
            else:
                tables[name] = _restore_dtypes(tables[name], meta.get("table_dtypes", {}).get(name, {}))
        arrays = {}
        if (d / "arrays.npz").is_file():
            with np.load(d / "arrays.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        return cls(analysis=meta["analysis"], params=meta["params"], tables=tables, arrays=arrays,
                   notes=meta.get("notes", []), provenance=meta.get("provenance", {}),
                   skipped=meta.get("skipped"), section=meta.get("section", {}))
