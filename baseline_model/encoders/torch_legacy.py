"""Read a PyTorch state dict saved in the *legacy* (pre-1.6, non-zip) pickle format, without torch.

The legacy format is five things one after another in one file: four pickles (magic number, protocol version,
system info, the object itself with tensors as persistent ids pointing at storages, the list of storage keys)
followed by, for each storage key in that order, an int64 element count and the raw little-endian data.

The unpickler here is restricted: it resolves only ``collections.OrderedDict``, torch's tensor rebuild function
and the typed ``torch.*Storage`` names, so a hostile file cannot run code. Tensors come back as numpy arrays.
"""
from __future__ import annotations

import collections
import os
import pickle
import struct
from typing import Any, BinaryIO, Dict, List, Tuple, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class LegacyTorchFormatError(ValueError):
    """The file is not a legacy-format torch pickle this reader understands."""


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A flat array that is filled in after the object pickle has been read."""

    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


class _LazyTensor:
    def __init__(self, storage: _Storage, offset: int, size: Tuple[int, ...], stride: Tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialize(self) -> np.ndarray:
        flat = self.storage.data
        if flat is None:
            raise LegacyTorchFormatError("a tensor refers to a storage that the file never wrote")
        if not self.size:
            return np.array(flat[self.offset])  # a 0-d array, like a 0-d tensor
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size, strides=tuple(s * itemsize for s in self.stride))
        return np.array(view)  # a contiguous copy that owns its memory


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None) -> _LazyTensor:
    del requires_grad, backward_hooks, metadata
    if not isinstance(storage, _Storage):
        raise LegacyTorchFormatError("tensor rebuild received something that is not a storage")
    return _LazyTensor(storage, int(storage_offset), tuple(size), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, handle: BinaryIO, storages: Dict[str, _Storage]) -> None:
        super().__init__(handle)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise LegacyTorchFormatError(f"refusing to unpickle {module}.{name} (only tensors and dicts allowed)")

    def persistent_load(self, saved_id: Any) -> Any:
        if not isinstance(saved_id, tuple) or not saved_id or saved_id[0] not in ("storage", b"storage"):
            raise LegacyTorchFormatError(f"unsupported persistent id {saved_id!r:.80}")
        storage_type, root_key, _location, numel, view_metadata = saved_id[1:]
        if not isinstance(storage_type, _StorageType):
            raise LegacyTorchFormatError("persistent id without a storage type")
        if view_metadata is not None:
            raise LegacyTorchFormatError("storage views are not supported")
        key = root_key.decode("ascii") if isinstance(root_key, bytes) else str(root_key)
        storage = self._storages.get(key)
        if storage is None:
            storage = self._storages[key] = _Storage(storage_type.dtype, int(numel))
        return storage


def _plain_load(handle: BinaryIO) -> Any:
    return _RestrictedUnpickler(handle, {}).load()


def _materialize(obj: Any) -> Any:
    if isinstance(obj, _LazyTensor):
        return obj.materialize()
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for key, value in obj.items():
            out[key] = _materialize(value)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def load_legacy_state_dict(path: PathLike) -> "collections.OrderedDict[str, np.ndarray]":
    """Read a legacy-format torch checkpoint into ``{name: numpy array}`` (shapes as torch stores them).

    Raises ``LegacyTorchFormatError`` for a zip-format (torch >= 1.6) file, a bad magic number, an object
    other than tensors in (ordered) dicts, or a truncated file; ``FileNotFoundError`` if it is missing.
    """
    path = os.fspath(path)
    with open(path, "rb") as handle:
        if handle.read(2) == b"PK":
            raise LegacyTorchFormatError(f"{path} is a zip-format torch file; load it with torch.load")
        handle.seek(0)
        try:
            if _plain_load(handle) != _MAGIC_NUMBER:
                raise LegacyTorchFormatError(f"{path}: bad magic number, not a legacy torch file")
            if _plain_load(handle) != _PROTOCOL_VERSION:
                raise LegacyTorchFormatError(f"{path}: unsupported legacy protocol version")
            _plain_load(handle)  # sys_info: endianness and type sizes
            storages: Dict[str, _Storage] = {}
            obj = _RestrictedUnpickler(handle, storages).load()
            keys: List[str] = _plain_load(handle)
        except (pickle.UnpicklingError, EOFError, TypeError, ValueError) as err:
            if isinstance(err, LegacyTorchFormatError):
                raise
            raise LegacyTorchFormatError(f"{path}: cannot read legacy torch pickle: {err}") from err
        for key in keys:
            storage = storages.get(str(key))
            if storage is None:
                raise LegacyTorchFormatError(f"{path}: storage {key!r} listed but never referenced")
            header = handle.read(8)
            if len(header) != 8:
                raise LegacyTorchFormatError(f"{path}: truncated before storage {key!r}")
            (count,) = struct.unpack("<q", header)
            if count != storage.numel:
                raise LegacyTorchFormatError(
                    f"{path}: storage {key!r} holds {count} elements, the pickle says {storage.numel}")
            raw = handle.read(count * storage.dtype.itemsize)
            if len(raw) != count * storage.dtype.itemsize:
                raise LegacyTorchFormatError(f"{path}: truncated inside storage {key!r}")
            storage.data = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))
    result = _materialize(obj)
    if not isinstance(result, dict):
        raise LegacyTorchFormatError(f"{path}: expected a state dict, found {type(result).__name__}")
    return result
