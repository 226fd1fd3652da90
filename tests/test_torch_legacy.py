"""The legacy .pth reader against hostile files: offsets, strides and sizes outside the storage, stride-0
blow-ups, storages larger than the file, shared-reference bombs, non-tensor objects, and hash mismatches."""
from __future__ import annotations

import collections
import hashlib
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from baseline_model.encoders import torch_legacy
from baseline_model.encoders.torch_legacy import (
    PINNED_SHA256,
    LegacyTorchFormatError,
    expected_sha256,
    load_legacy_state_dict,
)

MAGIC, PROTOCOL = 0x1950A86A20F9469CFC6C, 1001


class _Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class _Tensor:
    """Pickles as torch's ``_rebuild_tensor_v2(storage, offset, size, stride, ...)``, with any values."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel, None)
        return None


def write_legacy(path, obj, storages, data_counts=None, keys=None):
    """A legacy-format file: magic, protocol, sys info, ``obj`` (tensors as persistent ids), the storage key
    list, then each storage's element count and float32 data (``data_counts`` overrides what is written)."""
    with open(path, "wb") as handle:
        for value in (MAGIC, PROTOCOL, {"little_endian": True}):
            pickle.dump(value, handle, protocol=2)
        _Pickler(handle, protocol=2).dump(obj)
        storage_keys = keys if keys is not None else [s.key for s in storages]
        pickle.dump(storage_keys, handle, protocol=2)
        for storage in storages:
            overridden = storage.key in (data_counts or {})
            handle.write(struct.pack("<q", data_counts[storage.key] if overridden else storage.numel))
            handle.write(np.arange(4 if overridden else storage.numel, dtype="<f4").tobytes())
    return str(path)


def test_the_writer_makes_files_torch_and_the_reader_agree_on(tmp_path):
    storage = _Storage("0", 6)
    path = write_legacy(tmp_path / "ok.pth", collections.OrderedDict(
        w=_Tensor(storage, 0, (2, 3), (3, 1)), t=_Tensor(storage, 1, (3,), (2,)), s=_Tensor(storage, 5, (), ())),
        [storage])
    ours = load_legacy_state_dict(path)
    reference = torch.load(path, weights_only=True)
    for name in ("w", "t", "s"):
        np.testing.assert_array_equal(ours[name], reference[name].numpy())


@pytest.mark.parametrize("offset, size, stride, message", [
    (2, (3,), (1,), "reaching element 4"),                    # reads past the storage into process memory
    (0, (2, 2), (1 << 40, 1), "reaching element"),            # a 2**40 stride: SIGSEGV before
    (0, (1 << 26,), (0,), "over a storage of 4|would take 268435456 bytes"),  # stride 0: 16 B -> 256 MiB
    (9, (), (), "reaching element 9"),                        # a 0-d tensor past the end
    (-1, (2,), (1,), "must be >= 0"),
    (0, (2,), (-1,), "must be >= 0"),
    (0, (2, 2), (1,), "2 sizes and 1 strides"),
    (0, (True,), (1,), "must be an integer"),
])
def test_tensors_outside_their_storage_are_refused(tmp_path, offset, size, stride, message):
    storage = _Storage("0", 4)
    path = write_legacy(tmp_path / "bad.pth", {"w": _Tensor(storage, offset, size, stride)}, [storage])
    with pytest.raises(LegacyTorchFormatError, match=message):
        load_legacy_state_dict(path)


def test_a_huge_stride_never_crashes_the_process(tmp_path):
    storage = _Storage("0", 4)
    path = write_legacy(tmp_path / "bad.pth", {"w": _Tensor(storage, 0, (2, 2), (1 << 40, 1))}, [storage])
    # the reader alone (numpy only), in a process of its own: a crash there cannot take the test run down
    code = ("import importlib.util, sys\n"
            "spec = importlib.util.spec_from_file_location('torch_legacy', sys.argv[1])\n"
            "module = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(module)\n"
            "try:\n    module.load_legacy_state_dict(sys.argv[2])\n"
            "except module.LegacyTorchFormatError:\n    print('refused')\n")
    result = subprocess.run([sys.executable, "-c", code, torch_legacy.__file__, path], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "refused", result.stderr[-500:]


def test_a_storage_larger_than_the_file_is_refused_before_reading(tmp_path):
    storage = _Storage("0", 1 << 40)
    path = write_legacy(tmp_path / "bad.pth", {"w": _Tensor(storage, 0, (1,), (1,))}, [storage],
                        data_counts={"0": 1 << 40})
    with pytest.raises(LegacyTorchFormatError, match="larger than the rest of the file"):
        load_legacy_state_dict(path)


@pytest.mark.parametrize("shape", ["list", "nested", "not a tensor", "int key", "shared views"])
def test_only_one_flat_dict_of_tensors_is_accepted(tmp_path, shape):
    storage = _Storage("0", 1 << 16)
    tensor = _Tensor(storage, 0, (1 << 16,), (1,))
    if shape == "list":  # shared references: one pickle entry, 10^5 copies when materialised
        obj = {"w": [tensor] * 100_000}
    elif shape == "nested":
        obj = {"block": {"w": tensor}}
    elif shape == "not a tensor":
        obj = {"w": tensor, "step": 3}
    elif shape == "int key":
        obj = {0: tensor}
    else:  # a dict of many names for one storage: each would be a 256 KiB copy
        obj = {f"w{i}": tensor for i in range(2000)}
    path = write_legacy(tmp_path / "bad.pth", obj, [storage])
    with pytest.raises(LegacyTorchFormatError):
        load_legacy_state_dict(path)


def test_the_sha256_in_the_file_name_or_pinned_is_verified(tmp_path):
    storage = _Storage("0", 2)
    obj = {"w": _Tensor(storage, 0, (2,), (1,))}
    plain = write_legacy(tmp_path / "weights.pth", obj, [storage])
    digest = hashlib.sha256(open(plain, "rb").read()).hexdigest()
    good = tmp_path / f"weights-{digest[:8]}.pth"
    good.write_bytes(open(plain, "rb").read())
    assert list(load_legacy_state_dict(good)) == ["w"]
    bad = tmp_path / "weights-deadbeef.pth"
    bad.write_bytes(open(plain, "rb").read())
    with pytest.raises(LegacyTorchFormatError, match="sha256 .* does not match the expected deadbeef"):
        load_legacy_state_dict(bad)
    with pytest.raises(LegacyTorchFormatError, match="does not match"):
        load_legacy_state_dict(plain, sha256="0" * 64)
    assert list(load_legacy_state_dict(bad, verify_hash=False)) == ["w"]
    pinned = tmp_path / "mobilenet_v2-b0353104.pth"  # the pinned name with other bytes
    pinned.write_bytes(open(plain, "rb").read())
    assert expected_sha256(pinned) == PINNED_SHA256["mobilenet_v2-b0353104.pth"]
    with pytest.raises(LegacyTorchFormatError, match="does not match"):
        load_legacy_state_dict(pinned)
