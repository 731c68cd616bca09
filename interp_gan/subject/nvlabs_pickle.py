"""Read NVlabs network pickles (StyleGAN2-ADA-PyTorch, StyleGAN3) without running their code.

    snap = read_network_pickle("network-snapshot-000400.pkl")
    g = snap["G_ema"]                    # PersistentObject
    g.class_name, g.init_kwargs          # 'Generator', {'z_dim': 512, 'c_dim': 0, ...}
    g.state_dict()                       # {'synthesis.b4.const': Tensor, 'mapping.fc0.weight': ...}

NVlabs training code (``training/training_loop.py``) saves ``pickle.dump(dict(G=..., D=...,
G_ema=..., augment_pipe=..., training_set_kwargs=...))``. Every network class is decorated by
``torch_utils.persistence.persistent_class``, whose ``__reduce__`` replaces the object by a call
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with ``meta = dict(type='class',
version=..., module_src=<the defining module's Python source>, class_name=..., state=<the
module's __dict__>)``. Loading such a pickle with ``pickle.load`` *executes* ``module_src``
(``exec``): arbitrary code. This reader never does:

- ``_Restricted.find_class`` resolves an allow-list of globals only (``ALLOWED``); any other
  global (``os.system``, ``builtins.eval``, ...) raises ``UnsafePickleError`` with one line naming
  it, before anything is called.
- ``_reconstruct_persistent_obj`` is replaced by a function that stores the class name, the
  source's sha256 (the source itself is never compiled or executed), the constructor's
  arguments (``_init_args`` / ``_init_kwargs``), the ``_parameters`` / ``_buffers`` tensors and the
  child ``_modules`` as a plain ``PersistentObject``.
- Tensors reduce through ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` and their
  storages, in a plain ``pickle.dump``, through ``torch.storage._load_from_bytes(b)``, where ``b``
  is a legacy-format ``torch.save`` of one storage. ``torch.load`` is never called on those bytes
  (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot re-enable full unpickling here): ``_storage_from_bytes``
  parses the format itself, with a second restricted unpickler that knows only the typed-storage
  classes (``torch.FloatStorage``, ...).
- ``collections.OrderedDict``, ``dnnlib.util.EasyDict`` (read as a plain dict subclass), numpy
  scalars / dtypes and plain numpy arrays (``_reconstruct`` + raw bytes, object dtypes refused;
  StyleGAN3 keeps sizes as arrays) are the only other globals.

What to build from the result (our own StyleGAN2 / StyleGAN3 modules) lives in
``interp_gan.models.stylegan2`` / ``stylegan3`` and ``interp_gan.subject.stylegan``.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["UnsafePickleError", "PersistentObject", "read_network_pickle", "loads_network_pickle", "ALLOWED",
           "looks_like_network_pickle"]


class UnsafePickleError(ValueError):
    """A global outside the allow-list (the message is one line naming it)."""


@dataclass
class PersistentObject:
    """One ``persistent_class`` instance as data: never an instance of the pickled class."""
    class_name: str
    module_src_sha256: str
    init_args: tuple = ()
    init_kwargs: dict = field(default_factory=dict)
    parameters: dict[str, torch.Tensor | None] = field(default_factory=dict)
    buffers: dict[str, torch.Tensor | None] = field(default_factory=dict)
    modules: dict[str, Any] = field(default_factory=dict)       # child name -> PersistentObject
    attributes: dict[str, Any] = field(default_factory=dict)    # other plain attributes (ints, strs, ...)
    module_src_head: str = ""                                   # first line of the source (for messages)
    module_src: str = field(default="", repr=False)             # the source text, kept only to be searched

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and persistent buffers of this object and its children, with nn.Module key names."""
        out: dict[str, torch.Tensor] = {}
        skip = set(self.attributes.get("_non_persistent_buffers_set") or ())
        for k, v in self.parameters.items():
            if v is not None:
                out[prefix + k] = v
        for k, v in self.buffers.items():
            if v is not None and k not in skip:
                out[prefix + k] = v
        for k, m in self.modules.items():
            if m is not None:
                out.update(m.state_dict(f"{prefix}{k}."))
        return out

    def named_objects(self, prefix: str = ""):
        """(dotted name, object) of this object and every descendant."""
        yield prefix, self
        for k, m in self.modules.items():
            if m is not None:
                yield from m.named_objects(f"{prefix}.{k}" if prefix else k)


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a dict (attribute access is not needed)."""

    def __setstate__(self, state):      # BUILD on a dict subclass: its __dict__, empty for EasyDict
        if isinstance(state, dict):
            self.update(state)


_DTYPES = {"FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
           "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
           "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
           "BoolStorage": torch.bool}


@dataclass(frozen=True)
class _StorageType:
    dtype: torch.dtype


def _unsafe(module: str, name: str, where: str) -> UnsafePickleError:
    return UnsafePickleError(f"refusing to load global {module}.{name}{where}: it is not on the allow-list of "
                             "NVlabs network pickles (interp_gan.subject.nvlabs_pickle.ALLOWED); nothing was executed")


# --- tensor storages: the legacy torch.save format, parsed without torch.load -----------------------
class _StorageUnpickler(pickle.Unpickler):
    """The small pickles inside one legacy ``torch.save(storage)``: only typed-storage classes."""

    def find_class(self, module, name):
        if module == "torch" and name in _DTYPES:
            return _StorageType(_DTYPES[name])
        raise _unsafe(module, name, " inside a tensor storage")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id in a tensor storage: {pid!r:.80}")
        _, st, key, _location, numel = pid[:5]
        return ("storage", st.dtype, str(key), int(numel))


def _storage_from_bytes(b: bytes) -> torch.Tensor:
    """``torch.storage._load_from_bytes`` without torch.load: a flat tensor holding the storage.

    Layout (torch/serialization.py ``_legacy_save``): pickled magic number, protocol version and
    system info, then the pickled object (a persistent id ``('storage', <type>, key, location,
    numel, view)``), the pickled list of storage keys, then per key an int64 element count and
    the raw little-endian bytes."""
    f = io.BytesIO(b)
    up = lambda: _StorageUnpickler(f).load()  # noqa: E731
    magic, _proto, sys_info = up(), up(), up()
    if magic != 0x1950A86A20F9469CFC6C:
        raise pickle.UnpicklingError("a tensor storage is not in torch's legacy format (bad magic number)")
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise pickle.UnpicklingError("big-endian tensor storages are not supported")
    obj = up()
    keys = up()
    if not (isinstance(obj, tuple) and obj and obj[0] == "storage"):
        raise pickle.UnpicklingError("the bytes of a tensor storage hold something else than one storage")
    _, dtype, key, numel = obj
    found = None
    for k in keys:
        (n,) = struct.unpack("<q", f.read(8))
        itemsize = torch.empty(0, dtype=dtype).element_size()
        raw = f.read(n * itemsize)
        if len(raw) != n * itemsize:
            raise pickle.UnpicklingError("a tensor storage is truncated")
        if str(k) == key:
            found = torch.frombuffer(bytearray(raw), dtype=dtype) if n else torch.empty(0, dtype=dtype)
    if found is None or found.numel() < numel:
        raise pickle.UnpicklingError("a tensor storage's data is missing")
    return found


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, torch.Tensor):
        raise pickle.UnpicklingError("a tensor's storage is not a storage")
    t = torch.as_strided(storage, tuple(size), tuple(stride), int(storage_offset)) if storage.numel() else \
        torch.empty(tuple(size), dtype=storage.dtype)
    return t.clone()


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *_state):
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("a parameter's data is not a tensor")
    return data        # parameters are plain tensors here; the model wraps them on load_state_dict


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError("refusing a numpy scalar of object dtype")
    return np.frombuffer(data, dtype=dtype, count=1)[0] if data is not None else dtype.type()


def _numpy_dtype(name, align=False, copy=False):
    dt = np.dtype(name)
    if dt.hasobject:
        raise UnsafePickleError(f"refusing numpy dtype {name!r} (object dtype)")
    return dt


_PLAIN = (type(None), bool, int, float, complex, str, bytes, bytearray, np.generic, np.dtype)


class _NdarrayType:
    """Stand-in for the ``numpy.ndarray`` class a pickled array names (a marker, never instantiated)."""


class _Ndarray:
    """A pickled numpy array (``numpy.core.multiarray._reconstruct`` + its BUILD state), rebuilt from its
    raw bytes only (object dtypes refused). StyleGAN3 stores sizes as small arrays (``in_size``)."""

    def __init__(self, subtype=None, shape=(0,), dtype=b"b") -> None:
        if subtype is not _NdarrayType:
            raise UnsafePickleError("refusing to reconstruct a numpy array of another class than numpy.ndarray")
        self.array = np.zeros(0)

    def __setstate__(self, state) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise pickle.UnpicklingError("malformed numpy array state")
        _version, shape, dtype, fortran, raw = state
        if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(raw, (bytes, bytearray)):
            raise UnsafePickleError("refusing a numpy array of object dtype (or without raw bytes)")
        shape = tuple(int(n) for n in shape)
        self.array = np.frombuffer(bytes(raw), dtype=dtype, count=int(np.prod(shape))).reshape(
            shape, order="F" if fortran else "C").copy()


def _plain(v: Any) -> bool:
    if isinstance(v, _PLAIN):
        return True
    if isinstance(v, (list, tuple, set, frozenset)):
        return all(_plain(x) for x in v)
    if isinstance(v, dict):
        return all(_plain(k) and _plain(x) for k, x in v.items())
    return False


def _as_object(meta: Any) -> PersistentObject:
    """A module's pickled state (``meta['state']``: its ``__dict__``) as a PersistentObject."""
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise pickle.UnpicklingError("_reconstruct_persistent_obj got something else than a class meta dict")
    src, cls, state = meta.get("module_src") or "", meta.get("class_name"), meta.get("state") or {}
    if not isinstance(src, str) or not isinstance(cls, str) or not isinstance(state, dict):
        raise pickle.UnpicklingError("malformed persistent-object meta (module_src, class_name, state)")
    obj = PersistentObject(cls, hashlib.sha256(src.encode()).hexdigest(),
                           module_src_head=src.strip().splitlines()[0][:120] if src.strip() else "",
                           module_src=src)
    for k, v in state.items():
        if k == "_parameters":
            obj.parameters = dict(v or {})
        elif k == "_buffers":
            obj.buffers = dict(v or {})
        elif k == "_modules":
            obj.modules = dict(v or {})
        elif k == "_init_args":
            obj.init_args = tuple(v or ())
        elif k == "_init_kwargs":
            obj.init_kwargs = dict(v or {})
        elif isinstance(v, _Ndarray):
            obj.attributes[k] = v.array
        elif _plain(v):
            obj.attributes[k] = v
    for d in (obj.parameters, obj.buffers):
        for k, v in d.items():
            if v is not None and not isinstance(v, torch.Tensor):
                raise pickle.UnpicklingError(f"{obj.class_name}.{k} is a {type(v).__name__}, expected a tensor")
    for k, m in obj.modules.items():
        if m is not None and not isinstance(m, PersistentObject):
            raise pickle.UnpicklingError(f"{obj.class_name}.{k} is a {type(m).__name__}, expected a module")
    return obj


def _reconstruct_persistent_obj(meta):
    return _as_object(meta)


# (module, name) -> the stand-in this reader calls instead; nothing else resolves.
ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("collections", "OrderedDict"): dict,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy", "ndarray"): _NdarrayType,
    ("numpy.core.multiarray", "_reconstruct"): _Ndarray,
    ("numpy._core.multiarray", "_reconstruct"): _Ndarray,
}


class _Restricted(pickle.Unpickler):
    def find_class(self, module, name):
        fn = ALLOWED.get((module, name))
        if fn is None:
            raise _unsafe(module, name, "")
        return fn

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("unexpected persistent id at the top level of a network pickle "
                                     "(is this a torch.save file? load it as a state_dict instead)")


def loads_network_pickle(data: bytes) -> Any:
    """The object a network pickle holds, with every persistent object as a ``PersistentObject``."""
    return _Restricted(io.BytesIO(data)).load()


def read_network_pickle(path: str | Path) -> Any:
    """``loads_network_pickle`` of a file; errors name the file, in one line."""
    path = Path(path)
    try:
        return loads_network_pickle(path.read_bytes())
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, struct.error, AttributeError) as e:
        raise ValueError(f"{path} is not a readable NVlabs network pickle ({type(e).__name__}: {e})") from None


def looks_like_network_pickle(path: str | Path) -> bool:
    """A pickle (protocol 2+) whose first kilobytes mention ``torch_utils.persistence``."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    return head[:1] == b"\x80" and b"torch_utils.persistence" in head
