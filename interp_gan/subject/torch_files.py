"""What a PyTorch file holds, read from its zip layout and pickle opcodes, never by unpickling.

    kind = torch_file_kind(path)          # "torchscript" | "torch_export" | "torch_zip" | "pickle" | "not_torch"
    cls = pickled_module_class(path)      # "mypkg.nets.ResnetGenerator" for torch.save(model), else None
    shapes = traced_input_shapes(path)    # [[1, 3, 256, 256], ...] of a torch.jit.trace archive, else []

``torch.jit.save`` writes a zip with ``<root>/code/`` (the TorchScript source) and
``<root>/constants.pkl``; ``torch.save`` writes a zip with ``<root>/data.pkl`` and no ``code/``
(or, before torch 1.6 or with ``_use_new_zipfile_serialization=False``, a stream of pickles);
``torch.export.save`` a zip with ``<root>/archive_format`` ("pt2") and ``<root>/models/``.
The suffix says nothing (.pt, .pth, .ptl, .torchscript all occur). A pickled whole module
(``torch.save(model)``) is recognised by the ``nn.Module`` attribute names in its pickle; its
class is the last class global before them. ``torch.jit.trace`` keeps the example inputs it
traced with in ``<root>/traced_inputs.pkl``; their sizes are read from that pickle's opcodes.
"""
from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

__all__ = ["torch_file_kind", "pickled_module_class", "traced_input_shapes", "pickle_globals"]

_MODULE_KEYS = ("training", "_parameters", "_modules")
_HELPERS = ("builtins", "__builtin__", "copyreg", "collections", "torch._utils", "torch._tensor", "_codecs")


def _zip(path: Path) -> zipfile.ZipFile | None:
    try:
        return zipfile.ZipFile(path) if zipfile.is_zipfile(path) else None
    except (zipfile.BadZipFile, OSError, ValueError):
        return None


def _names(path: Path) -> list[str] | None:
    z = _zip(path)
    if z is None:
        return None
    with z:
        return z.namelist()


def torch_file_kind(path: str | Path) -> str:
    """``"torchscript"`` (a ``torch.jit.save`` archive), ``"torch_export"`` (``torch.export.save``'s
    ``.pt2``: ``<root>/archive_format`` and ``<root>/models/``), ``"torch_zip"`` (``torch.save``'s zip),
    ``"pickle"`` (a bare pickle stream: legacy ``torch.save``), or ``"not_torch"``."""
    path = Path(path)
    names = _names(path)
    if names is None:
        try:
            with open(path, "rb") as f:
                head = f.read(2)
        except OSError:
            return "not_torch"
        return "pickle" if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5 else "not_torch"
    roots = {n.split("/", 1)[0] for n in names if "/" in n}
    for r in roots:
        if f"{r}/constants.pkl" in names and any(n.startswith(f"{r}/code/") for n in names):
            return "torchscript"
        if f"{r}/archive_format" in names and any(n.startswith(f"{r}/models/") for n in names):
            return "torch_export"
    if any(n.endswith("/data.pkl") for n in names):
        return "torch_zip"
    return "not_torch"


def pickle_globals(data: bytes) -> list[tuple[str, str | None]]:
    """The pickle's opcodes reduced to what matters here, in order: ``("global", "mod.name")`` for each
    class / function it names and ``("key", text)`` for each short string. Truncated data: what was read."""
    out: list[tuple[str, str | None]] = []
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name == "GLOBAL":
                out.append(("global", str(arg).replace(" ", ".", 1)))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                out.append(("global", f"{strings[-2]}.{strings[-1]}"))
            elif isinstance(arg, str) and op.name.endswith("UNICODE"):
                strings.append(arg)
                out.append(("key", arg))
    except Exception:   # a cut or corrupt pickle: what was read so far
        pass
    return out


def _module_class(data: bytes) -> str | None:
    seen = pickle_globals(data)
    keys = {v for k, v in seen if k == "key"}
    if not {"_parameters", "_modules"} <= keys:
        return None
    last = None
    for kind, v in seen:
        if kind == "key" and v in _MODULE_KEYS:
            return last
        if kind == "global" and not v.startswith(_HELPERS):
            last = v
    return last


def _legacy_pickles(path: Path, n: int = 4) -> list[bytes]:
    """The first ``n`` pickles of a legacy ``torch.save`` stream (magic number, protocol, sys info, object)."""
    out = []
    with open(path, "rb") as f:
        for _ in range(n):
            start = f.tell()
            try:
                for op, _, _ in pickletools.genops(f):
                    pass
            except Exception:
                break
            end = f.tell()
            f.seek(start)
            out.append(f.read(end - start))
    return out


def pickled_module_class(path: str | Path) -> str | None:
    """The class of the ``nn.Module`` that ``torch.save(model)`` pickled into ``path``
    (``"module.Class"``), or None when the file holds no pickled module."""
    path = Path(path)
    z = _zip(path)
    if z is not None:
        with z:
            pkl = next((n for n in z.namelist() if n.endswith("/data.pkl")), None)
            if pkl is None:
                return None
            try:
                return _module_class(z.read(pkl))
            except (zipfile.BadZipFile, OSError, ValueError, EOFError):
                return None
    for data in _legacy_pickles(path):
        found = _module_class(data)
        if found:
            return found
    return None


def traced_input_shapes(path: str | Path) -> list[list[int]]:
    """The sizes of the example inputs ``torch.jit.trace`` stored with ``forward`` (``traced_inputs.pkl``),
    in argument order; [] when the archive has none (a scripted module, or an older torch)."""
    z = _zip(Path(path))
    if z is None:
        return []
    with z:
        name = next((n for n in z.namelist() if n.endswith("/traced_inputs.pkl")), None)
        if name is None:
            return []
        try:
            data = z.read(name)
        except (zipfile.BadZipFile, OSError, ValueError):
            return []
    shapes, state, current = [], None, []
    try:
        ops = list(pickletools.genops(data))
    except Exception:
        return []
    for op, arg, _ in ops:   # _rebuild_tensor_v2(storage (persistent id), offset, size, stride, ...)
        if op.name in ("BINPUT", "LONG_BINPUT", "MEMOIZE", "PUT"):
            continue
        if op.name == "BINPERSID":
            state, current = "offset", []
        elif state == "offset" and isinstance(arg, int):
            state = "size"
        elif state == "size" and op.name == "MARK":
            continue
        elif state == "size" and isinstance(arg, int) and not isinstance(arg, bool):
            current.append(arg)
        elif state == "size" and op.name in ("TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_TUPLE"):
            shapes.append(current)
            state = None
        elif state is not None:
            state = None
    return shapes
