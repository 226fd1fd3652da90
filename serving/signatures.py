"""A loaded signature: its input/output specs, input checks shared by REST and gRPC, and the call itself."""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Dict, Mapping, Optional

import numpy as np

from serving.errors import ServingError, invalid

#: tf.DType name -> numpy dtype accepted on the wire (strings travel as Python bytes in object arrays).
_NUMPY_DTYPES = {
    "float16": np.float16, "bfloat16": np.float32, "float32": np.float32, "float64": np.float64,
    "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
    "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
    "bool": np.bool_, "string": np.object_,
}


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """dtype name (``"float32"``, ``"string"``...) and shape (``None`` = unknown dim; ``None`` shape = any rank)."""

    dtype: str
    shape: Optional[tuple]

    @classmethod
    def from_spec(cls, spec: Any) -> "TensorInfo":
        shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
        return cls(spec.dtype.name, shape)

    @property
    def numpy_dtype(self):
        try:
            return _NUMPY_DTYPES[self.dtype]
        except KeyError:
            raise ServingError("UNIMPLEMENTED", f"tensors of dtype {self.dtype} are not supported") from None

    def describe(self) -> str:
        dims = "?" if self.shape is None else "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"
        return f"{self.dtype} {dims}"

    def check(self, name: str, array: np.ndarray) -> None:
        """Raise INVALID_ARGUMENT when ``array``'s shape cannot feed this input."""
        if self.shape is None:
            return
        if array.ndim != len(self.shape):
            raise invalid(f"input '{name}' expects rank {len(self.shape)} ({self.describe()}) "
                          f"but got shape {list(array.shape)}")
        for axis, (want, got) in enumerate(zip(self.shape, array.shape)):
            if want is not None and want != got:
                raise invalid(f"input '{name}' expects dimension {axis} of size {want} ({self.describe()}) "
                              f"but got shape {list(array.shape)}")


@dataclasses.dataclass
class Signature:
    """One callable signature of a loaded SavedModel.

    ``fn(**{input: tensor})`` returns ``{output: tensor}``; inputs are batched on axis 0 when batchable.
    """

    name: str
    inputs: Dict[str, TensorInfo]
    outputs: Dict[str, TensorInfo]
    fn: Callable[..., Mapping[str, Any]]

    @property
    def batchable(self) -> bool:
        """All inputs and outputs have a leading (batch) dimension of unknown size."""
        infos = list(self.inputs.values()) + list(self.outputs.values())
        return bool(self.inputs) and all(i.shape is not None and len(i.shape) >= 1 and i.shape[0] is None
                                         for i in infos)

    def check_inputs(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Exactly the signature's inputs, each with a matching dtype kind and shape."""
        missing = sorted(set(self.inputs) - set(arrays))
        extra = sorted(set(arrays) - set(self.inputs))
        if missing:
            raise invalid(f"signature '{self.name}' is missing input(s) {missing}; it expects "
                          f"{self.describe_inputs()}")
        if extra:
            raise invalid(f"signature '{self.name}' has no input(s) {extra}; it expects {self.describe_inputs()}")
        for name, info in self.inputs.items():
            info.check(name, arrays[name])

    def describe_inputs(self) -> str:
        return ", ".join(f"{n}: {i.describe()}" for n, i in sorted(self.inputs.items()))

    def __call__(self, arrays: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Run the signature on numpy inputs; returns numpy outputs (bytes objects for strings)."""
        import tensorflow as tf

        feed = {name: tf.constant(arrays[name], dtype=tf.as_dtype(info.dtype)) for name, info in self.inputs.items()}
        try:
            result = self.fn(**feed)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            raise invalid(f"signature '{self.name}' rejected the input: {_first_line(exc)}") from None
        except tf.errors.OpError as exc:
            raise ServingError("INTERNAL", f"signature '{self.name}' failed: {_first_line(exc)}") from None
        return {name: value.numpy() for name, value in result.items()}


def _first_line(exc: BaseException) -> str:
    """The informative line of a TensorFlow error (its message ends with the op's own complaint)."""
    text = getattr(exc, "message", None) or str(exc)
    lines = [line.strip() for line in text.splitlines()]
    noise = ("Graph execution error", "Detected at node", "File ", "[[", "Node:", "Traceback")
    useful = [line for line in lines if line and not line.startswith(noise)]
    if not useful:
        return type(exc).__name__
    return re.sub(r"\s*\[(Op|\[\{\{).*$", "", useful[-1])[:500]
