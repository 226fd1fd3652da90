"""Read a PyTorch state dict saved in the *legacy* (pre-1.6, non-zip) pickle format, without torch.

The legacy format is five things one after another in one file: four pickles (magic number, protocol version,
system info, the object itself with tensors as persistent ids pointing at storages, the list of storage keys)
followed by, for each storage key in that order, an int64 element count and the raw little-endian data.

The unpickler here is restricted: it resolves only ``collections.OrderedDict``, torch's tensor rebuild function
and the typed ``torch.*Storage`` names, so a hostile file cannot run code. Tensors come back as numpy arrays.

A hostile file cannot read or allocate beyond what it holds either: every storage's element count is checked
against the bytes left in the file before it is read; every tensor's offset, sizes and strides are checked
against its storage (the last element it would touch must lie inside it, a tensor never holds more elements
than its storage, so a stride of 0 cannot blow 200 bytes up into 256 MiB); the object must be one flat dict
of name -> tensor (no lists, so shared references cannot multiply); and the file's sha256 is checked against
a pinned hash or the prefix torchvision puts in its file names (``mobilenet_v2-b0353104.pth``).
"""
from __future__ import annotations

import collections
import hashlib
import os
import pickle
import re
import struct
from typing import Any, BinaryIO, Dict, List, Optional, Tuple, Union

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


#: Full sha256 of weight files this project reads, by file name.
PINNED_SHA256 = {
    "mobilenet_v2-b0353104.pth": "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
}
#: torchvision's naming: ``<name>-<first 8+ hex digits of the sha256>.pth``.
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.pth?$")
#: Most tensors in one state dict (MobileNetV2 has 314).
MAX_TENSORS = 100_000
#: The tensors may take at most this many times the file's size (tied weights share a storage).
MAX_EXPANSION = 4


class LegacyTorchFormatError(ValueError):
    """The file is not a legacy-format torch pickle this reader understands (or it fails a bound or its hash)."""


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LegacyTorchFormatError(f"{what} must be an integer, got {type(value).__name__}")
    if value < 0:
        raise LegacyTorchFormatError(f"{what} must be >= 0, got {value}")
    return value


def _int_tuple(value: Any, what: str) -> Tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > 32:
        raise LegacyTorchFormatError(f"{what} must be a short tuple of integers")
    return tuple(_int(v, what) for v in value)


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
        if len(size) != len(stride):
            raise LegacyTorchFormatError(f"a tensor with {len(size)} sizes and {len(stride)} strides")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    @property
    def numel(self) -> int:
        count = 1
        for dim in self.size:
            count *= dim
        return count

    def check_bounds(self) -> None:
        """The elements this tensor reads lie inside its storage, and there are no more of them than the
        storage holds (a stride of 0 could otherwise turn a few bytes into any amount of memory)."""
        numel, available = self.numel, self.storage.numel
        if numel > available:
            raise LegacyTorchFormatError(f"a tensor of {numel} elements over a storage of {available}")
        if numel == 0:
            if self.offset > available:
                raise LegacyTorchFormatError(f"offset {self.offset} beyond a storage of {available} elements")
            return
        last = self.offset + sum((dim - 1) * step for dim, step in zip(self.size, self.stride))
        if last >= available:
            raise LegacyTorchFormatError(
                f"a tensor reaching element {last} (offset {self.offset}, sizes {self.size}, strides "
                f"{self.stride}) of a storage of {available} elements")

    def materialize(self) -> np.ndarray:
        flat = self.storage.data
        if flat is None:
            raise LegacyTorchFormatError("a tensor refers to a storage that the file never wrote")
        self.check_bounds()
        if self.numel == 0:
            return np.zeros(self.size, dtype=flat.dtype)
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
    return _LazyTensor(storage, _int(storage_offset, "storage offset"), _int_tuple(size, "size"),
                       _int_tuple(stride, "stride"))


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
        if len(saved_id) != 6:
            raise LegacyTorchFormatError(f"a storage id of {len(saved_id)} fields, expected 6")
        storage_type, root_key, _location, numel, view_metadata = saved_id[1:]
        if not isinstance(storage_type, _StorageType):
            raise LegacyTorchFormatError("persistent id without a storage type")
        if view_metadata is not None:
            raise LegacyTorchFormatError("storage views are not supported")
        if not isinstance(root_key, (str, bytes)) or len(root_key) > 64:
            raise LegacyTorchFormatError("a storage key must be a short string")
        key = root_key.decode("ascii", errors="replace") if isinstance(root_key, bytes) else root_key
        numel = _int(numel, "storage size")
        storage = self._storages.get(key)
        if storage is None:
            storage = self._storages[key] = _Storage(storage_type.dtype, numel)
        elif storage.numel != numel or storage.dtype != storage_type.dtype:
            raise LegacyTorchFormatError(f"storage {key!r} declared twice with different types or sizes")
        return storage


def _plain_load(handle: BinaryIO) -> Any:
    return _RestrictedUnpickler(handle, {}).load()


def _state_dict(obj: Any, path: str) -> "collections.OrderedDict[str, _LazyTensor]":
    """``obj`` if it is one flat dict of name -> tensor (nothing else is a state dict)."""
    if not isinstance(obj, dict):
        raise LegacyTorchFormatError(f"{path}: expected a state dict, found {type(obj).__name__}")
    if len(obj) > MAX_TENSORS:
        raise LegacyTorchFormatError(f"{path}: {len(obj)} entries, more than {MAX_TENSORS}")
    for key, value in obj.items():
        if not isinstance(key, str):
            raise LegacyTorchFormatError(f"{path}: a state dict key that is a {type(key).__name__}")
        if not isinstance(value, _LazyTensor):
            raise LegacyTorchFormatError(f"{path}: {key!r} is a {type(value).__name__}, not a tensor")
    return collections.OrderedDict(obj)


def sha256_of(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_sha256(path: PathLike) -> Optional[str]:
    """The pinned hash of this file name, else the hash prefix in its name (torchvision's convention)."""
    name = os.path.basename(os.fspath(path))
    if name in PINNED_SHA256:
        return PINNED_SHA256[name]
    match = _HASH_IN_NAME.search(name)
    return match.group(1) if match else None


def verify_sha256(path: PathLike, expected: Optional[str] = None) -> None:
    """Raise :class:`LegacyTorchFormatError` unless the file's sha256 starts with ``expected`` (default:
    :func:`expected_sha256`; nothing to check when neither is known)."""
    expected = (expected or expected_sha256(path) or "").lower()
    if not expected:
        return
    actual = sha256_of(path)
    if not actual.startswith(expected):
        raise LegacyTorchFormatError(f"{os.fspath(path)}: sha256 {actual} does not match the expected {expected}")


def load_legacy_state_dict(path: PathLike, sha256: Optional[str] = None,
                           verify_hash: bool = True) -> "collections.OrderedDict[str, np.ndarray]":
    """Read a legacy-format torch checkpoint into ``{name: numpy array}`` (shapes as torch stores them).

    Args:
      path: the ``.pth`` file.
      sha256: the expected sha256 (or a prefix of it); default: pinned by file name, or the prefix in the
        file name (``name-<hex>.pth``); a file with neither is not hash-checked.
      verify_hash: ``False`` skips the hash check.

    Raises ``LegacyTorchFormatError`` for a hash mismatch, a zip-format (torch >= 1.6) file, a bad magic
    number, an object other than one flat dict of tensors, a tensor outside its storage, or a truncated
    file; ``FileNotFoundError`` if it is missing.
    """
    path = os.fspath(path)
    if verify_hash:
        verify_sha256(path, sha256)
    file_size = os.path.getsize(path)
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
            obj = _state_dict(_RestrictedUnpickler(handle, storages).load(), path)
            keys: List[str] = _plain_load(handle)
        except LegacyTorchFormatError as err:
            raise LegacyTorchFormatError(f"{path}: {err}" if not str(err).startswith(path) else str(err)) from None
        except Exception as err:  # UnpicklingError, EOFError, RecursionError, MemoryError...: a broken file
            raise LegacyTorchFormatError(f"{path}: cannot read legacy torch pickle: {type(err).__name__}: {err}"
                                         ) from None
        if not isinstance(keys, list) or not all(isinstance(k, (str, bytes)) for k in keys):
            raise LegacyTorchFormatError(f"{path}: the storage key list is not a list of strings")
        for key in keys:
            key = key.decode("ascii", errors="replace") if isinstance(key, bytes) else key
            storage = storages.get(key)
            if storage is None:
                raise LegacyTorchFormatError(f"{path}: storage {key!r} listed but never referenced")
            header = handle.read(8)
            if len(header) != 8:
                raise LegacyTorchFormatError(f"{path}: truncated before storage {key!r}")
            (count,) = struct.unpack("<q", header)
            if count != storage.numel:
                raise LegacyTorchFormatError(
                    f"{path}: storage {key!r} holds {count} elements, the pickle says {storage.numel}")
            if count < 0 or count * storage.dtype.itemsize > file_size - handle.tell():
                raise LegacyTorchFormatError(f"{path}: storage {key!r} of {count} elements is larger than the "
                                             "rest of the file")
            raw = handle.read(count * storage.dtype.itemsize)
            if len(raw) != count * storage.dtype.itemsize:
                raise LegacyTorchFormatError(f"{path}: truncated inside storage {key!r}")
            storage.data = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))
    total = sum(tensor.numel * tensor.storage.dtype.itemsize for tensor in obj.values())
    if total > MAX_EXPANSION * file_size:  # many tensors viewing one storage: each copy costs memory
        raise LegacyTorchFormatError(f"{path}: its tensors would take {total} bytes, more than {MAX_EXPANSION} "
                                     f"times the file's {file_size}")
    result: "collections.OrderedDict[str, np.ndarray]" = collections.OrderedDict()
    for name, tensor in obj.items():
        try:
            result[name] = tensor.materialize()
        except LegacyTorchFormatError as err:
            raise LegacyTorchFormatError(f"{path}: tensor {name!r}: {err}") from None
    return result
