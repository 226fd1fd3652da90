"""A loaded signature: its inputs/outputs as the SignatureDef declares them, and the call itself.

Signatures run as TF Serving runs them: the SavedModel is loaded into a TF1 ``Session`` (the Python twin of
TF Serving's SavedModelBundle) and a request's tensors are fed to the signature's input tensors by name. Only
the graph's own ops decide what they accept: TF Serving answers ``{"instances": [1.0, 2.0, 5.0]}`` for an
input declared ``[-1, 1]`` (``y = a*x + b`` broadcasts) and so does this server. The JSON and TensorProto
decoders convert values to the declared dtype; shapes are the graph's business.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from serving.errors import ERROR_CODE_NUMBERS, ServingError, invalid

#: tf.DType name -> numpy dtype accepted on the wire (strings travel as Python bytes in object arrays).
_NUMPY_DTYPES = {
    "float16": np.float16, "bfloat16": np.float32, "float32": np.float32, "float64": np.float64,
    "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
    "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
    "bool": np.bool_, "string": np.object_, "complex64": np.complex64, "complex128": np.complex128,
}
_CODE_NAMES = {number: name for name, number in ERROR_CODE_NUMBERS.items()}

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """dtype name (``"float32"``, ``"string"``...) and shape (``None`` = unknown dim; ``None`` shape = any rank)."""

    dtype: str
    shape: Optional[tuple]
    tensor_name: str = ""

    @classmethod
    def from_proto(cls, info: Any) -> "TensorInfo":
        """A SignatureDef's TensorInfo proto."""
        import tensorflow as tf

        shape = None if info.tensor_shape.unknown_rank else tuple(
            None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim)
        return cls(tf.dtypes.as_dtype(info.dtype).name, shape, info.name)

    @property
    def numpy_dtype(self):
        try:
            return _NUMPY_DTYPES[self.dtype]
        except KeyError:
            raise ServingError("UNIMPLEMENTED", f"tensors of dtype {self.dtype} are not supported") from None

    def describe(self) -> str:
        dims = "?" if self.shape is None else "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"
        return f"{self.dtype} {dims}"


@dataclasses.dataclass
class Signature:
    """One signature of a loaded SavedModel.

    ``fn(list of input arrays in sorted input-name order) -> list of output arrays in sorted output-name
    order`` runs it (a Session callable); inputs are batched on axis 0 when batchable.
    """

    name: str
    inputs: Dict[str, TensorInfo]
    outputs: Dict[str, TensorInfo]
    fn: Optional[Callable[[Sequence[np.ndarray]], List[np.ndarray]]]
    method_name: str = PREDICT_METHOD

    @property
    def batchable(self) -> bool:
        """All inputs and outputs have a leading (batch) dimension of unknown size."""
        infos = list(self.inputs.values()) + list(self.outputs.values())
        return bool(self.inputs) and all(i.shape is not None and len(i.shape) >= 1 and i.shape[0] is None
                                         for i in infos)

    def check_inputs(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Exactly the signature's inputs (TF Serving's check); their shapes are the graph's to judge."""
        missing = sorted(set(self.inputs) - set(arrays))
        extra = sorted(set(arrays) - set(self.inputs))
        if missing or extra:
            raise invalid(f"Request inputs do not match required inputs for model: signature '{self.name}' "
                          f"expects {self.describe_inputs()}"
                          + (f"; missing {missing}" if missing else "") + (f"; unknown {extra}" if extra else ""))

    def describe_inputs(self) -> str:
        return ", ".join(f"{n}: {i.describe()}" for n, i in sorted(self.inputs.items()))

    def __call__(self, arrays: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Feed numpy inputs to the graph; numpy outputs (bytes objects for strings)."""
        import tensorflow as tf

        feeds = [np.asarray(arrays[name], dtype=self.inputs[name].numpy_dtype) for name in sorted(self.inputs)]
        try:
            results = self.fn(feeds)
        except tf.errors.OpError as exc:
            code = _CODE_NAMES.get(getattr(exc, "error_code", 2), "UNKNOWN")
            if code == "OK":
                code = "UNKNOWN"
            raise ServingError(code, f"signature '{self.name}': {_first_line(exc)}") from None
        return dict(zip(sorted(self.outputs), results))


def session_signatures(session, signature_defs, timeout_ms: Optional[int] = None) -> Dict[str, Signature]:
    """A Signature for every SignatureDef with dense (named) inputs and outputs, run through ``session``
    (each run given ``timeout_ms``, after which TensorFlow cancels it with DEADLINE_EXCEEDED)."""
    from tensorflow.core.protobuf import config_pb2

    signatures = {}
    for key, signature_def in signature_defs.items():
        if key.startswith("__"):  # __saved_model_init_op and the like: not callable signatures
            continue
        infos = list(signature_def.inputs.values()) + list(signature_def.outputs.values())
        if any(info.WhichOneof("encoding") != "name" for info in infos):
            continue  # sparse / composite tensors: not servable over TF Serving's APIs
        inputs = {name: TensorInfo.from_proto(info) for name, info in signature_def.inputs.items()}
        outputs = {name: TensorInfo.from_proto(info) for name, info in signature_def.outputs.items()}
        # A callable made from CallableOptions feeds the tensors as they are (Session.run and make_callable
        # would first compare each feed's shape with the tensor's static shape, which TF Serving never does).
        options = config_pb2.CallableOptions(feed=[inputs[n].tensor_name for n in sorted(inputs)],
                                             fetch=[outputs[n].tensor_name for n in sorted(outputs)])
        if timeout_ms:
            options.run_options.timeout_in_ms = int(timeout_ms)
        fn = session._make_callable_from_options(options)  # noqa: SLF001 - the only shape-check-free path
        signatures[key] = Signature(key, inputs, outputs, lambda feeds, fn=fn: fn(*feeds),
                                    signature_def.method_name or PREDICT_METHOD)
    return signatures


def _first_line(exc: BaseException) -> str:
    """The informative line of a TensorFlow error (its message ends with the op's own complaint)."""
    text = getattr(exc, "message", None) or str(exc)
    lines = [line.strip() for line in text.splitlines()]
    noise = ("Graph execution error", "Detected at node", "File ", "[[", "Node:", "Traceback")
    useful = [line for line in lines if line and not line.startswith(noise)]
    if not useful:
        return type(exc).__name__
    return re.sub(r"\s*\[(Op|\[\{\{).*$", "", useful[-1])[:500]
