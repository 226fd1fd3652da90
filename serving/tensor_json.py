"""TF Serving's JSON tensor encoding (g3doc/api_rest.md): request bodies to numpy, numpy to responses.

Request (``:predict``)::

    {"signature_name": "...",                       optional, default "serving_default"
     "instances": [...]}                            row format: a list of examples -> {"predictions": [...]}
     "inputs": ... }                                columnar format: a tensor or {name: tensor} -> {"outputs": ...}

Exactly one of ``instances`` / ``inputs``. In row format each example is an object keyed by input name
(or, for a one-input signature, the bare value); all inputs share the batch dimension. Binary strings
travel as ``{"b64": "..."}``; output tensors whose name ends in ``_bytes`` are returned as ``{"b64": ...}``.
"""
from __future__ import annotations

import base64
import binascii
import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from serving.errors import invalid
from serving.signatures import Signature, TensorInfo


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _decode_b64(value: dict, name: str) -> bytes:
    text = value["b64"]
    if not isinstance(text, str):
        raise invalid(f"input '{name}': \"b64\" must hold a string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid(f"input '{name}': bad base64 in {{\"b64\": ...}}: {exc}") from None


def _string_leaf(value: Any, name: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if _is_b64(value):
        return _decode_b64(value, name)
    raise invalid(f"input '{name}' is a string tensor: expected a string or {{\"b64\": ...}}, got {_kind(value)}")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return type(value).__name__


def _shape_and_leaves(value: Any, name: str) -> Tuple[Tuple[int, ...], List[Any]]:
    """Rectangular nested lists -> (shape, flat leaves); ragged lists are an error."""
    if not isinstance(value, list):
        return (), [value]
    if not value:
        return (0,), []
    shapes, leaves = set(), []
    for item in value:
        shape, flat = _shape_and_leaves(item, name)
        shapes.add(shape)
        leaves.extend(flat)
    if len(shapes) != 1:
        raise invalid(f"input '{name}' is ragged: its lists have different lengths or depths")
    return (len(value),) + shapes.pop(), leaves


def to_array(value: Any, info: TensorInfo, name: str) -> np.ndarray:
    """A JSON value -> numpy array of the input's dtype (bytes objects for strings); checks dtypes, not shape."""
    try:
        shape, leaves = _shape_and_leaves(value, name)
    except RecursionError:
        raise invalid(f"input '{name}' is nested too deeply") from None
    if info.dtype == "string":
        out = np.empty(len(leaves), dtype=object)
        for i, leaf in enumerate(leaves):
            out[i] = _string_leaf(leaf, name)
        return out.reshape(shape)
    dtype = np.dtype(info.numpy_dtype)
    for leaf in leaves:
        if dtype == np.bool_:
            if not isinstance(leaf, bool):
                raise invalid(f"input '{name}' is a bool tensor: expected true/false, got {_kind(leaf)}")
        elif isinstance(leaf, bool) or not isinstance(leaf, (int, float)):
            raise invalid(f"input '{name}' is a {info.dtype} tensor: expected numbers, got {_kind(leaf)}")
        elif dtype.kind in "iu":
            if isinstance(leaf, float) and (not math.isfinite(leaf) or leaf != int(leaf)):
                raise invalid(f"input '{name}' is an {info.dtype} tensor: {leaf!r} is not an integer")
            limits = np.iinfo(dtype)
            if not limits.min <= leaf <= limits.max:
                raise invalid(f"input '{name}': {leaf!r} is out of range for {info.dtype}")
    return np.array(leaves, dtype=dtype).reshape(shape)


def decode_request(body: Any, signature: Signature) -> Tuple[Dict[str, np.ndarray], bool]:
    """A parsed ``:predict`` body -> (inputs, row_format). Raises INVALID_ARGUMENT naming the problem."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object with \"instances\" or \"inputs\"")
    has_instances, has_inputs = "instances" in body, "inputs" in body
    if has_instances and has_inputs:
        raise invalid("request has both \"instances\" and \"inputs\"; use one (row or columnar format)")
    if not has_instances and not has_inputs:
        raise invalid("request has neither \"instances\" (row format) nor \"inputs\" (columnar format)")
    unknown = sorted(set(body) - {"instances", "inputs", "signature_name"})
    if unknown:
        raise invalid(f"unknown request field(s) {unknown}")
    arrays = _decode_rows(body["instances"], signature) if has_instances else _decode_columns(body["inputs"], signature)
    signature.check_inputs(arrays)
    return arrays, has_instances


def _decode_rows(instances: Any, signature: Signature) -> Dict[str, np.ndarray]:
    if not isinstance(instances, list) or not instances:
        raise invalid("\"instances\" must be a non-empty list of examples")
    names = sorted(signature.inputs)
    named = all(isinstance(x, dict) and not _is_b64(x) for x in instances)
    if not named:
        if any(isinstance(x, dict) and not _is_b64(x) for x in instances):
            raise invalid("\"instances\" mixes objects keyed by input name with bare values")
        if len(names) != 1:
            raise invalid(f"signature '{signature.name}' has {len(names)} inputs ({signature.describe_inputs()}): "
                          "each instance must be an object keyed by input name")
        return {names[0]: to_array(instances, signature.inputs[names[0]], names[0])}
    columns: Dict[str, list] = {}
    for index, instance in enumerate(instances):
        if set(instance) != set(names):
            missing, extra = sorted(set(names) - set(instance)), sorted(set(instance) - set(names))
            raise invalid(f"instance {index} does not match signature '{signature.name}' "
                          f"(missing {missing}, unknown {extra}); it expects {signature.describe_inputs()}")
        for name in names:
            columns.setdefault(name, []).append(instance[name])
    return {name: to_array(columns[name], signature.inputs[name], name) for name in names}


def _decode_columns(inputs: Any, signature: Signature) -> Dict[str, np.ndarray]:
    names = sorted(signature.inputs)
    if isinstance(inputs, dict) and not _is_b64(inputs):
        unknown = sorted(set(inputs) - set(names))
        if unknown:
            raise invalid(f"\"inputs\" names {unknown} but signature '{signature.name}' expects "
                          f"{signature.describe_inputs()}")
        return {name: to_array(value, signature.inputs[name], name) for name, value in inputs.items()}
    if len(names) != 1:
        raise invalid(f"signature '{signature.name}' has {len(names)} inputs ({signature.describe_inputs()}): "
                      "\"inputs\" must be an object keyed by input name")
    return {names[0]: to_array(inputs, signature.inputs[names[0]], names[0])}


# ----- responses -----

def _jsonable(name: str, array: np.ndarray) -> Any:
    if array.dtype == object or array.dtype.kind == "S":
        as_b64 = name.endswith("_bytes")
        flat = [_string_out(x, as_b64) for x in array.reshape(-1)]
        return np.array(flat, dtype=object).reshape(array.shape).tolist() if array.ndim else flat[0]
    return array.tolist()


def _string_out(value: Any, as_b64: bool) -> Any:
    data = value if isinstance(value, bytes) else str(value).encode("utf-8")
    if not as_b64:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass  # not text: send it losslessly
    return {"b64": base64.b64encode(data).decode("ascii")}


def encode_response(outputs: Mapping[str, np.ndarray], row_format: bool,
                    output_filter: Optional[List[str]] = None) -> Dict[str, Any]:
    """Outputs -> ``{"predictions": [...]}`` (row) or ``{"outputs": ...}`` (columnar), as TF Serving."""
    names = sorted(outputs) if not output_filter else list(output_filter)
    if not row_format:
        if len(names) == 1:
            return {"outputs": _jsonable(names[0], outputs[names[0]])}
        return {"outputs": {name: _jsonable(name, outputs[name]) for name in names}}
    if len(names) == 1:
        return {"predictions": _jsonable(names[0], outputs[names[0]])}
    sizes = {outputs[n].shape[0] if outputs[n].ndim else None for n in names}
    if len(sizes) != 1 or None in sizes:
        raise invalid("outputs have different batch sizes (or none): use the columnar \"inputs\" format")
    columns = {name: _jsonable(name, outputs[name]) for name in names}
    return {"predictions": [{name: columns[name][i] for name in names} for i in range(sizes.pop())]}
