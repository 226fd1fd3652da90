"""TensorProto <-> numpy for the gRPC API, without trusting the request.

:func:`proto_to_array` checks the declared dtype and shape against :class:`~serving.limits.Limits` *before*
allocating anything (``tf.make_ndarray`` would fill a declared ``float32 [100000000]`` first and complain
after), and checks that ``tensor_content`` holds exactly shape x dtype-size bytes and that no more typed
values than elements are given. Fewer typed values than elements follow TensorFlow's own rule (the last value
repeats; none at all means zeros), so ``tf.make_tensor_proto(5.0, shape=[3])`` still works.

:func:`array_to_proto` writes outputs as TF Serving does (``Tensor::AsProtoField``): in the typed fields
(``float_val``, ``int64_val``, ``string_val``...), never ``tensor_content``.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from serving.errors import ServingError, invalid
from serving.limits import Limits

#: DataType -> (numpy dtype, typed field, TensorFlow's dtype name)
_TYPES: Dict[int, Tuple[Any, str, str]] = {
    types_pb2.DT_FLOAT: (np.float32, "float_val", "float32"),
    types_pb2.DT_DOUBLE: (np.float64, "double_val", "float64"),
    types_pb2.DT_HALF: (np.float16, "half_val", "float16"),
    types_pb2.DT_INT8: (np.int8, "int_val", "int8"),
    types_pb2.DT_INT16: (np.int16, "int_val", "int16"),
    types_pb2.DT_INT32: (np.int32, "int_val", "int32"),
    types_pb2.DT_INT64: (np.int64, "int64_val", "int64"),
    types_pb2.DT_UINT8: (np.uint8, "int_val", "uint8"),
    types_pb2.DT_UINT16: (np.uint16, "int_val", "uint16"),
    types_pb2.DT_UINT32: (np.uint32, "uint32_val", "uint32"),
    types_pb2.DT_UINT64: (np.uint64, "uint64_val", "uint64"),
    types_pb2.DT_BOOL: (np.bool_, "bool_val", "bool"),
    types_pb2.DT_COMPLEX64: (np.complex64, "scomplex_val", "complex64"),
    types_pb2.DT_COMPLEX128: (np.complex128, "dcomplex_val", "complex128"),
    types_pb2.DT_STRING: (object, "string_val", "string"),
}
_BY_NUMPY = {np.dtype(t): code for code, (t, _f, _n) in _TYPES.items() if t is not object}


def dtype_name(code: int) -> str:
    """TensorFlow's name for a DataType number (``"float32"``), or ``"DataType N"`` when it is not one we serve."""
    entry = _TYPES.get(code)
    if entry:
        return entry[2]
    return types_pb2.DataType.Name(code).lower() if code in types_pb2.DataType.values() else f"DataType {code}"


def declared_shape(proto: tensor_pb2.TensorProto, name: str) -> Tuple[int, ...]:
    shape = proto.tensor_shape
    if shape.unknown_rank:
        raise invalid(f"input '{name}': a request tensor needs a known shape")
    dims = tuple(int(d.size) for d in shape.dim)
    if any(d < 0 for d in dims):
        raise invalid(f"input '{name}': negative dimension in shape {list(dims)}")
    return dims


def check_size(name: str, shape: Tuple[int, ...], itemsize: int, limits: Limits) -> int:
    """Elements of ``shape``; INVALID_ARGUMENT / RESOURCE_EXHAUSTED when over the limits (before allocating)."""
    elements = 1
    for dim in shape:
        elements *= dim
        if elements > limits.max_tensor_elements:
            break
    # Each dimension is bounded too: an empty tensor may still declare [0, 2**62], which numpy cannot shape.
    if elements > limits.max_tensor_elements or any(dim > limits.max_tensor_elements for dim in shape):
        raise ServingError("RESOURCE_EXHAUSTED", f"input '{name}' declares shape {list(shape)}: more than the "
                                                 f"limit of {limits.max_tensor_elements} elements per tensor")
    if elements * itemsize > limits.max_tensor_bytes:
        raise ServingError("RESOURCE_EXHAUSTED", f"input '{name}' declares shape {list(shape)}: "
                                                 f"{elements * itemsize} bytes, over the limit of "
                                                 f"{limits.max_tensor_bytes} bytes per tensor")
    return elements


def proto_to_array(proto: tensor_pb2.TensorProto, name: str, limits: Limits) -> np.ndarray:
    """A request's TensorProto -> numpy (``bytes`` objects for strings); raises ServingError on bad input."""
    entry = _TYPES.get(proto.dtype)
    if entry is None:
        raise invalid(f"input '{name}': tensors of type {dtype_name(proto.dtype)} are not supported")
    numpy_type, field, type_name = entry
    shape = declared_shape(proto, name)
    itemsize = 8 if numpy_type is object else np.dtype(numpy_type).itemsize
    elements = check_size(name, shape, itemsize, limits)
    if proto.tensor_content:
        if numpy_type is object:
            raise invalid(f"input '{name}': string tensors cannot use tensor_content; use string_val")
        if len(proto.tensor_content) != elements * itemsize:
            raise invalid(f"input '{name}': tensor_content holds {len(proto.tensor_content)} bytes but shape "
                          f"{list(shape)} of {type_name} needs {elements * itemsize}")
        return np.frombuffer(proto.tensor_content, dtype=numpy_type).reshape(shape).copy()
    values = getattr(proto, field)
    count = len(values)
    if field in ("scomplex_val", "dcomplex_val"):
        if count % 2:
            raise invalid(f"input '{name}': {field} needs (real, imaginary) pairs")
        count //= 2
    if count > elements:
        raise invalid(f"input '{name}': {count} values in {field} but shape {list(shape)} holds {elements}")
    flat = _typed_values(values, field, numpy_type, name)
    if count == elements:
        return flat.reshape(shape)
    out = np.empty(elements, dtype=numpy_type) if numpy_type is object else np.zeros(elements, dtype=numpy_type)
    if numpy_type is object:
        out.fill(b"")
    if count:  # TensorFlow's rule: the last value repeats
        out[:count] = flat
        out[count:] = flat[-1]
    return out.reshape(shape)


def _typed_values(values, field: str, numpy_type, name: str) -> np.ndarray:
    if numpy_type is object:
        out = np.empty(len(values), dtype=object)
        out[:] = list(values)
        return out
    if field == "half_val":
        bits = np.array(values, dtype=np.int64)
        if bits.size and (bits.min() < 0 or bits.max() > 0xFFFF):
            raise invalid(f"input '{name}': half_val holds values that are not 16-bit patterns")
        return bits.astype(np.uint16).view(np.float16)
    if field in ("scomplex_val", "dcomplex_val"):
        parts = np.array(values, dtype=np.float32 if numpy_type is np.complex64 else np.float64)
        return parts.view(numpy_type)  # (real, imaginary) pairs are exactly a complex array's memory
    if field == "int_val" and numpy_type is not np.int32:
        wide = np.array(values, dtype=np.int64)
        limits = np.iinfo(numpy_type)
        if wide.size and (wide.min() < limits.min or wide.max() > limits.max):
            raise invalid(f"input '{name}': int_val holds values out of range for {np.dtype(numpy_type).name}")
        return wide.astype(numpy_type)
    return np.array(values, dtype=numpy_type)


def array_to_proto(array: Any, proto: Optional[tensor_pb2.TensorProto] = None) -> tensor_pb2.TensorProto:
    """numpy -> TensorProto with the values in the typed field, as TF Serving's Predict writes outputs."""
    array = np.asarray(array)
    proto = proto if proto is not None else tensor_pb2.TensorProto()
    proto.tensor_shape.CopyFrom(tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in array.shape]))
    if array.dtype == object or array.dtype.kind in "SU":
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode("utf-8") for v in array.reshape(-1))
        return proto
    code = _BY_NUMPY.get(array.dtype)
    if code is None:
        raise ServingError("INTERNAL", f"outputs of numpy type {array.dtype} cannot be sent")
    proto.dtype = code
    field = _TYPES[code][1]
    flat = array.reshape(-1)
    if field == "half_val":
        proto.half_val.extend(flat.view(np.uint16).astype(np.int32).tolist())
    elif field in ("scomplex_val", "dcomplex_val"):
        getattr(proto, field).extend(np.stack([flat.real, flat.imag], axis=1).reshape(-1).tolist())
    else:
        getattr(proto, field).extend(flat.tolist())
    return proto
