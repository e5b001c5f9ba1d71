"""Safe readers for PyTorch checkpoints: no torch import, no code execution.

Two formats are read:

* `torch.save` archives (`.pt`/`.pth`): a zip holding `<archive>/data.pkl` whose persistent ids
  `('storage', storage_type, key, location, numel)` name raw little-endian storages stored at
  `<archive>/data/<key>`; tensors are rebuilt by `torch._utils._rebuild_tensor_v2(storage,
  offset, size, stride, ...)`. The legacy (pre-1.6, non-zip) stream is read as well.
* EDM network pickles (NVlabs EDM `torch_utils.persistence`): plain pickles in which every
  persistent class is reduced to `_reconstruct_persistent_obj(meta)` with `meta = {type, version,
  module_src, class_name, state}`; tensors are reduced to `_rebuild_tensor_v2(storage, ...)` with
  the storage given as `torch.storage._load_from_bytes(bytes)`, the bytes being a legacy
  `torch.save` stream of that one storage. `module_src` is kept as text and never executed.

Unpickling goes through a restricted `pickle.Unpickler` whose `find_class` maps an explicit
allowlist of globals onto local, inert stand-ins; any other global raises `CheckpointError`
naming the file and the forbidden `module.name`, before anything is called.
"""
from __future__ import annotations

import collections
import dataclasses
import io
import os
import pickle
import struct
import zipfile
import zlib
from typing import Any, Callable, ClassVar

import ml_dtypes
import numpy as np

from dg_jax.errors import CheckpointError

# ---------------------------------------------------------------------------------------------
# Stand-ins for the allowed torch / numpy globals.

_TORCH_DTYPES: dict[str, np.dtype] = {
    "float16": np.dtype("<f2"), "half": np.dtype("<f2"),
    "float32": np.dtype("<f4"), "float": np.dtype("<f4"),
    "float64": np.dtype("<f8"), "double": np.dtype("<f8"),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "int8": np.dtype("i1"), "uint8": np.dtype("u1"),
    "int16": np.dtype("<i2"), "short": np.dtype("<i2"),
    "int32": np.dtype("<i4"), "int": np.dtype("<i4"),
    "int64": np.dtype("<i8"), "long": np.dtype("<i8"),
    "bool": np.dtype("?"),
    "complex64": np.dtype("<c8"), "complex128": np.dtype("<c16"),
}

_STORAGE_DTYPES: dict[str, np.dtype] = {
    "HalfStorage": _TORCH_DTYPES["float16"], "FloatStorage": _TORCH_DTYPES["float32"],
    "DoubleStorage": _TORCH_DTYPES["float64"], "BFloat16Storage": _TORCH_DTYPES["bfloat16"],
    "CharStorage": _TORCH_DTYPES["int8"], "ByteStorage": _TORCH_DTYPES["uint8"],
    "ShortStorage": _TORCH_DTYPES["int16"], "IntStorage": _TORCH_DTYPES["int32"],
    "LongStorage": _TORCH_DTYPES["int64"], "BoolStorage": _TORCH_DTYPES["bool"],
    "ComplexFloatStorage": _TORCH_DTYPES["complex64"],
    "ComplexDoubleStorage": _TORCH_DTYPES["complex128"],
    "UntypedStorage": _TORCH_DTYPES["uint8"],
}


@dataclasses.dataclass(frozen=True)
class _DtypeStandIn:
    """A named torch global that stands for a numpy element dtype (looked up in `_TABLE`)."""
    name: str
    _TABLE: ClassVar[dict[str, np.dtype]] = {}

    @property
    def np_dtype(self) -> np.dtype:
        return self._TABLE[self.name]


class TorchDtype(_DtypeStandIn):
    """Stand-in for a `torch.<dtype>` global (e.g. `torch.float32`)."""
    _TABLE = _TORCH_DTYPES


class StorageType(_DtypeStandIn):
    """Stand-in for a `torch.<X>Storage` class global; only carries the element dtype."""
    _TABLE = _STORAGE_DTYPES


@dataclasses.dataclass
class Storage:
    """A flat storage: a 1-D numpy array of its elements (None until a legacy stream's data
    section has been read)."""
    data: np.ndarray | None


@dataclasses.dataclass
class _LazyTensor:
    """A tensor whose storage data comes later in a legacy stream; see `_materialize`."""
    storage: Storage
    args: tuple


class ModuleStandIn:
    """Inert stand-in for an allowed `torch.nn` container/module class; keeps its `__dict__` state."""
    torch_name = "torch.nn.Module"

    def __init__(self, *args, **kwargs):
        self.state: dict = {}

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise CheckpointError(f"unexpected state for {self.torch_name}: {type(state).__name__}")
        self.state = dict(state)


@dataclasses.dataclass
class PersistentObject:
    """What EDM's `_reconstruct_persistent_obj(meta)` describes: a class name, its source (as
    text, never executed) and the instance `__dict__` (`state`)."""
    class_name: str
    module_src: str
    version: Any
    state: dict


class EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict` (a dict with attribute access)."""

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.update(state)


class Namespace(EasyDict):
    """Stand-in for `argparse.Namespace`: its attributes as dict entries (DiT's `train.py` saves
    its parsed `args` in every checkpoint, beside "model", "ema" and "opt")."""


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2: the strided view `storage[offset + sum_i idx_i*stride_i]`."""
    if not isinstance(storage, Storage):
        raise CheckpointError(f"tensor storage is a {type(storage).__name__}, not a storage")
    if storage.data is None:
        return _LazyTensor(storage, (storage_offset, size, stride))
    data = storage.data
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    offset = int(storage_offset)
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size + stride):
        raise CheckpointError(f"bad tensor geometry size={size} stride={stride} offset={offset}")
    if 0 in size:
        return np.zeros(size, data.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= data.size:
        raise CheckpointError(
            f"tensor size={size} stride={stride} offset={offset} reaches element {last} of a "
            f"storage holding {data.size} (truncated or corrupt storage)")
    item = data.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[offset:], shape=size, strides=tuple(s * item for s in stride), writeable=False)
    return np.array(view, copy=True)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    """torch._utils._rebuild_parameter(_with_state): a Parameter is just its data here."""
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    """torch._tensor._rebuild_from_type_v2 for plain Tensor/Parameter types."""
    if func not in (_rebuild_tensor_v2, _rebuild_parameter):
        raise CheckpointError("_rebuild_from_type_v2 with a non-tensor rebuild function")
    return func(*args)


_NUMPY_SAFE_KINDS = set("biufc")


def _numpy_dtype(name, align=False, copy=False):
    """numpy.dtype restricted to numeric/bool dtypes (no object dtype)."""
    dt = np.dtype(name)
    if dt.kind not in _NUMPY_SAFE_KINDS:
        raise CheckpointError(f"numpy dtype {name!r} is not allowed")
    return dt


def _numpy_scalar(dtype, data=None):
    """numpy._core.multiarray.scalar: a numeric scalar from its raw bytes."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMPY_SAFE_KINDS:
        raise CheckpointError(f"numpy scalar of dtype {dtype!r} is not allowed")
    if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize:
        raise CheckpointError("malformed numpy scalar")
    return np.frombuffer(bytes(data), dtype)[0]


class _NumpyArrayBuilder:
    """numpy._core.multiarray._reconstruct(ndarray, shape, dtype) + BUILD, numeric dtypes only."""

    def __init__(self, cls, shape, dtype):
        self.array = None

    def __setstate__(self, state):
        version, shape, dtype, fortran, raw = state
        if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMPY_SAFE_KINDS:
            raise CheckpointError(f"numpy array of dtype {dtype!r} is not allowed")
        if not isinstance(raw, (bytes, bytearray)):
            raise CheckpointError("numpy array with non-bytes payload is not allowed")
        arr = np.frombuffer(bytes(raw), dtype)
        self.array = arr.reshape(shape, order="F" if fortran else "C").copy()


class _NumpyNdarray:  # only used as the `cls` argument of _reconstruct
    pass


def _reconstruct_persistent_obj(meta):
    """EDM torch_utils.persistence._reconstruct_persistent_obj, without importing module_src."""
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise CheckpointError("malformed persistent object metadata")
    state = meta.get("state")
    if state is None:
        state = {}
    if not isinstance(state, dict):
        raise CheckpointError(f"persistent object {meta.get('class_name')!r} has non-dict state")
    return PersistentObject(str(meta.get("class_name")), str(meta.get("module_src", "")),
                            meta.get("version"), dict(state))


_MODULE_CLASSES = [
    "torch.nn.modules.container.ModuleDict", "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.container.Sequential", "torch.nn.modules.container.ParameterDict",
    "torch.nn.modules.container.ParameterList", "torch.nn.modules.module.Module",
    "torch.nn.modules.linear.Linear", "torch.nn.modules.linear.Identity",
    "torch.nn.modules.conv.Conv2d", "torch.nn.modules.normalization.GroupNorm",
    "torch.nn.modules.activation.SiLU", "torch.nn.modules.dropout.Dropout",
]
_MODULE_STANDINS = {name: type(name.rsplit(".", 1)[1], (ModuleStandIn,), {"torch_name": name})
                    for name in _MODULE_CLASSES}


def _allowed_globals(storage_loader: Callable[[bytes], Storage]) -> dict[str, Any]:
    table: dict[str, Any] = {
        "collections.OrderedDict": collections.OrderedDict,
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
        "torch._utils._rebuild_parameter": _rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
        "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
        "torch._tensor.Tensor": "torch.Tensor", "torch.Tensor": "torch.Tensor",
        "torch.nn.parameter.Parameter": "torch.nn.Parameter",
        "torch.Size": tuple,
        "torch.storage._load_from_bytes": storage_loader,
        "torch_utils.persistence._reconstruct_persistent_obj": _reconstruct_persistent_obj,
        "dnnlib.util.EasyDict": EasyDict, "dnnlib.EasyDict": EasyDict,
        "argparse.Namespace": Namespace,
        "numpy.dtype": _numpy_dtype,
        "numpy._core.multiarray.scalar": _numpy_scalar,
        "numpy.core.multiarray.scalar": _numpy_scalar,
        "numpy._core.multiarray._reconstruct": _NumpyArrayBuilder,
        "numpy.core.multiarray._reconstruct": _NumpyArrayBuilder,
        "numpy.ndarray": _NumpyNdarray,
    }
    for name in _STORAGE_DTYPES:
        table[f"torch.{name}"] = StorageType(name)
        table[f"torch.storage.{name}"] = StorageType(name)
    for name in _TORCH_DTYPES:
        table[f"torch.{name}"] = TorchDtype(name)
    table.update(_MODULE_STANDINS)
    return table


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler resolving only allowlisted globals; storages come from `storage_fn(pid)`."""

    def __init__(self, file, path: str, globals_table: dict[str, Any],
                 storage_fn: Callable[[tuple], Storage] | None):
        super().__init__(file, encoding="utf-8")
        self._path, self._table, self._storage_fn = path, globals_table, storage_fn

    def find_class(self, module, name):
        key = f"{module}.{name}"
        if key not in self._table:
            raise CheckpointError(f"{self._path}: refusing to load forbidden global {key!r}")
        return self._table[key]

    def persistent_load(self, pid):
        if self._storage_fn is None:
            raise CheckpointError(f"{self._path}: unexpected persistent id {pid!r}")
        return self._storage_fn(pid)


def _storage_dtype(storage_type, path) -> np.dtype:
    if isinstance(storage_type, (StorageType, TorchDtype)):
        return storage_type.np_dtype
    raise CheckpointError(f"{path}: unknown storage type {storage_type!r}")


def _check_pid(pid, path) -> tuple:
    if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] not in ("storage", b"storage"):
        raise CheckpointError(f"{path}: malformed storage persistent id {pid!r}")
    return pid


def _as_storage_array(raw: bytes, dtype: np.dtype, numel: int, what: str, big_endian=False):
    nbytes = int(numel) * dtype.itemsize
    if len(raw) < nbytes:
        raise CheckpointError(f"{what}: storage holds {len(raw)} bytes, needs {nbytes} (truncated)")
    arr = np.frombuffer(raw[:nbytes], dtype)
    if big_endian and dtype.itemsize > 1:
        arr = arr.byteswap()
    return arr


# ---------------------------------------------------------------------------------------------
# Legacy (non-zip) torch.save streams.

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _load_legacy(stream: io.BufferedIOBase, path: str) -> Any:
    """Reads a legacy torch.save stream: magic, protocol, sys info, the object pickle (storages
    as persistent ids `('storage', type, key, location, numel[, view_metadata])`), the pickled
    list of storage keys, then per key an int64 element count and the raw elements."""
    def plain(what):
        return _RestrictedUnpickler(stream, path, {}, None).load()

    if plain("magic") != _LEGACY_MAGIC:
        raise CheckpointError(f"{path}: not a torch.save file (bad magic number)")
    if plain("protocol") != 1001:
        raise CheckpointError(f"{path}: unsupported legacy torch.save protocol version")
    sys_info = plain("sys_info")
    big_endian = isinstance(sys_info, dict) and not sys_info.get("little_endian", True)

    storages: dict[str, dict] = {}
    views: list[tuple[Storage, str, int, int]] = []

    def storage_fn(pid):
        pid = _check_pid(pid, path)
        _, stype, key, _location, numel = pid[:5]
        key = str(key)
        root = storages.setdefault(key, {"dtype": _storage_dtype(stype, path),
                                         "numel": int(numel), "obj": Storage(None)})
        view_meta = pid[5] if len(pid) > 5 else None
        if view_meta is None:
            return root["obj"]
        view_key, offset, view_size = view_meta
        view = Storage(None)
        views.append((view, key, int(offset), int(view_size)))
        return view

    table = _allowed_globals(_storage_loader_for(path))
    result = _RestrictedUnpickler(stream, path, table, storage_fn).load()
    keys = plain("storage keys")
    for key in keys:
        key = str(key)
        if key not in storages:
            raise CheckpointError(f"{path}: storage key {key!r} listed but never referenced")
        entry = storages[key]
        head = stream.read(8)
        if len(head) != 8:
            raise CheckpointError(f"{path}: truncated legacy storage {key!r}")
        (count,) = struct.unpack("<q", head)
        raw = stream.read(count * entry["dtype"].itemsize)
        entry["obj"].data = _as_storage_array(raw, entry["dtype"], count,
                                              f"{path} storage {key!r}", big_endian)
    for view, key, offset, size in views:
        view.data = storages[key]["obj"].data[offset:offset + size]
    return _materialize(result)


def _storage_loader_for(path: str) -> Callable[[bytes], Storage]:
    def load_from_bytes(data):
        if not isinstance(data, (bytes, bytearray)):
            raise CheckpointError(f"{path}: _load_from_bytes with a non-bytes argument")
        obj = _load_legacy(io.BytesIO(bytes(data)), path)
        if not isinstance(obj, Storage):
            raise CheckpointError(f"{path}: embedded storage bytes hold a {type(obj).__name__}")
        return obj
    return load_from_bytes


def _materialize(obj, seen=None):
    """Replaces the `_LazyTensor`s left by a legacy stream with arrays, in place where mutable."""
    seen = set() if seen is None else seen
    if isinstance(obj, _LazyTensor):
        return _rebuild_tensor_v2(obj.storage, *obj.args)
    if id(obj) in seen:
        return obj
    seen.add(id(obj))
    if isinstance(obj, dict):
        for k in list(obj):
            obj[k] = _materialize(obj[k], seen)
    elif isinstance(obj, list):
        obj[:] = [_materialize(v, seen) for v in obj]
    elif isinstance(obj, tuple):
        return type(obj)(_materialize(v, seen) for v in obj) if type(obj) is tuple else obj
    elif isinstance(obj, (ModuleStandIn, PersistentObject)):
        _materialize(obj.state, seen)
    return obj


# ---------------------------------------------------------------------------------------------
# torch.save zip archives.

def _read_bytes(path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read checkpoint: {err}") from err


def _load_zip(data: bytes, path: str) -> Any:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise CheckpointError(f"{path}: corrupt or truncated torch.save archive: {err}") from err
    pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1] or \
          [n for n in names if n == "data.pkl"]
    if len(pkl) != 1:
        raise CheckpointError(f"{path}: torch.save archive without a single data.pkl ({names[:5]})")
    prefix = pkl[0][: -len("data.pkl")]
    big_endian = False
    if prefix + "byteorder" in names:
        big_endian = archive.read(prefix + "byteorder").strip() == b"big"
    cache: dict[str, Storage] = {}

    def storage_fn(pid):
        pid = _check_pid(pid, path)
        _, stype, key, _location, numel = pid[:5]
        key = str(key)
        if key not in cache:
            dtype = _storage_dtype(stype, path)
            entry = f"{prefix}data/{key}"
            try:
                raw = archive.read(entry)
            except KeyError as err:
                raise CheckpointError(f"{path}: missing storage {entry!r}") from err
            if not isinstance(stype, TorchDtype) and stype.name == "UntypedStorage":
                numel = len(raw)
            cache[key] = Storage(_as_storage_array(raw, dtype, int(numel),
                                                   f"{path} storage {entry!r}", big_endian))
        return cache[key]

    table = _allowed_globals(_storage_loader_for(path))
    try:
        return _RestrictedUnpickler(io.BytesIO(archive.read(pkl[0])), path, table,
                                    storage_fn).load()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:
        raise CheckpointError(f"{path}: corrupt or truncated torch.save archive: {err}") from err


def _guard(path, fn):
    """Runs `fn`, turning any unpickling failure into a CheckpointError naming `path`."""
    try:
        return fn()
    except CheckpointError as err:
        if str(path) in str(err):
            raise
        raise CheckpointError(f"{path}: {err}") from err
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, struct.error, MemoryError, zipfile.BadZipFile) as err:
        raise CheckpointError(
            f"{path}: cannot read checkpoint (corrupt or truncated?): {type(err).__name__}: {err}"
        ) from err


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())


_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "ema", "net")


def load_torch_object(path: str | os.PathLike) -> Any:
    """The whole object of a `torch.save` file (zip archive or legacy stream): tensors as
    np.ndarray, containers as dicts / lists / tuples, allowed classes as their stand-ins."""
    path = str(path)
    data = _read_bytes(path)

    def load():
        if data[:4] == b"PK\x03\x04":
            return _load_zip(data, path)
        if not data:
            raise CheckpointError(f"{path}: empty file")
        return _load_legacy(io.BytesIO(data), path)

    return _guard(path, load)


def load_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a `torch.save`d state dict (zip archive or legacy stream) as `{name: np.ndarray}`.

    A state dict nested under one of the keys 'state_dict', 'model_state_dict', 'model', 'ema',
    'net' of a top-level dict that is not itself a state dict is returned instead of the top.
    """
    path = str(path)
    obj = load_torch_object(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: top-level object is a {type(obj).__name__}, not a dict")
    if not _is_state_dict(obj):
        for key in _NESTED_KEYS:
            if _is_state_dict(obj.get(key)):
                obj = obj[key]
                break
    return dict(obj)


# ---------------------------------------------------------------------------------------------
# EDM network pickles.

@dataclasses.dataclass
class EdmNetwork:
    """An EDM network read from a pickle: the top class (e.g. 'EDMPrecond'), its constructor
    keyword arguments as EDM stored them (model_type and the inner model's kwargs included), and
    the flat torch-style state dict (`model.enc.32x32_conv.weight`, ...)."""
    class_name: str
    init_kwargs: dict
    state: dict[str, np.ndarray]


# Positional parameters of EDM's preconditioners, for pickles whose init_args are non-empty.
_PRECOND_POSITIONAL = ("img_resolution", "img_channels", "label_dim", "use_fp16")


def _module_state(obj) -> dict:
    if isinstance(obj, PersistentObject):
        return obj.state
    if isinstance(obj, ModuleStandIn):
        return obj.state
    raise CheckpointError(f"module tree holds a {type(obj).__name__}, not an nn.Module")


def module_state_dict(obj, prefix: str = "") -> dict[str, np.ndarray]:
    """torch's `Module.state_dict()` over the stand-in tree: parameters, persistent buffers,
    then submodules, with dotted names."""
    state = _module_state(obj)
    out: dict[str, np.ndarray] = {}
    non_persistent = set(state.get("_non_persistent_buffers_set") or ())
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is None or (group == "_buffers" and name in non_persistent):
                continue
            if not isinstance(value, np.ndarray):
                raise CheckpointError(f"{prefix}{name} is a {type(value).__name__}, not a tensor")
            out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(module_state_dict(child, f"{prefix}{name}."))
    return out


def _plain(value):
    """numpy scalars -> Python numbers, recursively through lists/tuples/dicts."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def load_edm_pickle(path: str | os.PathLike, key: str = "ema") -> EdmNetwork:
    """Reads the network under `key` of an EDM network pickle without executing its code."""
    path = str(path)
    data = _read_bytes(path)
    table = _allowed_globals(_storage_loader_for(path))

    def load():
        if not data:
            raise CheckpointError(f"{path}: empty file")
        return _RestrictedUnpickler(io.BytesIO(data), path, table, None).load()

    obj = _guard(path, load)
    if not isinstance(obj, dict) or key not in obj:
        keys = list(obj) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path}: not an EDM network pickle (no {key!r} entry; got {keys})")
    net = obj[key]
    if not isinstance(net, PersistentObject):
        raise CheckpointError(f"{path}: {key!r} is a {type(net).__name__}, not a persistent network")
    init_args = tuple(net.state.get("_init_args") or ())
    init_kwargs = dict(net.state.get("_init_kwargs") or {})
    if init_args:
        if len(init_args) > len(_PRECOND_POSITIONAL):
            raise CheckpointError(f"{path}: {net.class_name} has {len(init_args)} positional "
                                  "init args; cannot name them")
        init_kwargs.update(zip(_PRECOND_POSITIONAL, init_args))
    state = _guard(path, lambda: module_state_dict(net))
    return EdmNetwork(net.class_name, _plain(init_kwargs), state)
