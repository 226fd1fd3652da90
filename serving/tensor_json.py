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
import json
import math
import re
import warnings
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from serving.errors import ServingError, invalid
from serving.limits import Limits
from serving.signatures import Signature, TensorInfo

_STRING_LITERAL = re.compile(rb'"(?:[^"\\]|\\.)*"')
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


def json_depth(data: bytes, stop_above: Optional[int] = None) -> int:
    """Deepest nesting of objects and lists in a JSON text, without parsing it (string contents ignored);
    stops counting once it passes ``stop_above``. Linear time, constant extra memory per 1 MiB block."""
    if data.count(b"[") + data.count(b"{") <= (stop_above or 0):
        return 0  # cannot be deeper than the number of brackets
    text = _STRING_LITERAL.sub(b'""', data)
    depth = deepest = 0
    for start in range(0, len(text), 1 << 20):
        block = np.frombuffer(text, np.uint8, count=min(1 << 20, len(text) - start), offset=start)
        steps = np.isin(block, _OPEN).astype(np.int32) - np.isin(block, _CLOSE).astype(np.int32)
        levels = np.cumsum(steps[steps != 0]) + depth
        if levels.size:
            deepest = max(deepest, int(levels.max()))
            depth = int(levels[-1])
        if stop_above is not None and deepest > stop_above:
            break
    return deepest


def loads(data: bytes, limits: Limits = Limits()) -> Any:
    """Parse a request body with the JSON limits checked first: nesting depth (before parsing) and the length
    of every number literal (before converting it). Raises INVALID_ARGUMENT naming what is wrong."""
    depth = json_depth(data, stop_above=limits.max_json_depth)
    if depth > limits.max_json_depth:
        raise invalid(f"JSON parse error: nested deeper than the limit of {limits.max_json_depth} levels")

    def number(text: str, convert):
        if len(text) > limits.max_json_number_chars:
            raise invalid(f"JSON parse error: a number of {len(text)} characters is longer than the limit of "
                          f"{limits.max_json_number_chars}")
        value = convert(text)
        if convert is float and math.isinf(value):
            raise invalid(f"JSON parse error: number {text!r} is out of range")
        return value

    try:
        return json.loads(data, parse_int=lambda t: number(t, int), parse_float=lambda t: number(t, float))
    except ServingError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid(f"JSON parse error: {exc}") from None
    except (RecursionError, ValueError) as exc:
        raise invalid(f"JSON parse error: {type(exc).__name__}: {str(exc)[:200]}") from None


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _decode_b64(value: dict, name: str) -> bytes:
    text = value["b64"]
    if not isinstance(text, str):
        raise invalid(f"input '{name}': \"b64\" must hold a string")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)  # padding is optional, as in TF Serving
    except (binascii.Error, ValueError) as exc:
        raise invalid(f"input '{name}': bad base64 in {{\"b64\": ...}}: {exc}") from None


def _string_leaf(value: Any, name: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if _is_b64(value):
        return _decode_b64(value, name)
    raise invalid(f"input '{name}': {_kind(value)} is not of expected type: string (a string tensor takes strings "
                  f"or {{\"b64\": ...}})")


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


def to_array(value: Any, info: TensorInfo, name: str, limits: Limits = Limits()) -> np.ndarray:
    """A JSON value -> numpy array of the input's dtype (bytes objects for strings); checks dtypes, not shape.

    Raises INVALID_ARGUMENT (wrong kinds of values, integers out of range, ragged lists) or RESOURCE_EXHAUSTED
    (more elements than ``limits.max_tensor_elements``), nothing else.
    """
    try:
        shape, leaves = _shape_and_leaves(value, name)
    except RecursionError:
        raise invalid(f"input '{name}' is nested too deeply") from None
    if len(leaves) > limits.max_tensor_elements:
        raise ServingError("RESOURCE_EXHAUSTED", f"input '{name}' has {len(leaves)} elements, over the limit of "
                                                 f"{limits.max_tensor_elements} per tensor")
    if info.dtype == "string":
        out = np.empty(len(leaves), dtype=object)
        for i, leaf in enumerate(leaves):
            out[i] = _string_leaf(leaf, name)
        return out.reshape(shape)
    dtype = np.dtype(info.numpy_dtype)
    for leaf in leaves:
        if dtype == np.bool_:
            if not isinstance(leaf, bool):
                raise invalid(f"input '{name}': {_kind(leaf)} is not of expected type: bool (expected true/false)")
        elif isinstance(leaf, bool) or not isinstance(leaf, (int, float)):
            raise invalid(f"input '{name}': {_kind(leaf)} is not of expected type: {info.dtype} (expected numbers)")
        elif dtype.kind in "iu":
            if isinstance(leaf, float) and (not math.isfinite(leaf) or leaf != int(leaf)):
                raise invalid(f"input '{name}' is an {info.dtype} tensor: {leaf!r} is not an integer")
            bounds = np.iinfo(dtype)
            if not bounds.min <= leaf <= bounds.max:
                raise invalid(f"input '{name}': {leaf!r} is out of range for {info.dtype}")
        elif isinstance(leaf, int) and not -1e308 < leaf < 1e308:
            raise invalid(f"input '{name}': an integer of {len(str(abs(leaf)))} digits is out of range for "
                          f"{info.dtype}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a float beyond float32's range becomes inf, as in TF
        return np.array(leaves, dtype=dtype).reshape(shape)


def decode_request(body: Any, signature: Signature, limits: Limits = Limits()) -> Tuple[Dict[str, np.ndarray], bool]:
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
    if has_instances:
        arrays = _decode_rows(body["instances"], signature, limits)
    else:
        arrays = _decode_columns(body["inputs"], signature, limits)
    signature.check_inputs(arrays)
    return arrays, has_instances


def _decode_rows(instances: Any, signature: Signature, limits: Limits) -> Dict[str, np.ndarray]:
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
        return {names[0]: to_array(instances, signature.inputs[names[0]], names[0], limits)}
    columns: Dict[str, list] = {}
    for index, instance in enumerate(instances):
        if set(instance) != set(names):
            missing, extra = sorted(set(names) - set(instance)), sorted(set(instance) - set(names))
            raise invalid(f"instance {index} does not match signature '{signature.name}' "
                          f"(missing {missing}, unknown {extra}); it expects {signature.describe_inputs()}")
        for name in names:
            columns.setdefault(name, []).append(instance[name])
    return {name: to_array(columns[name], signature.inputs[name], name, limits) for name in names}


def _decode_columns(inputs: Any, signature: Signature, limits: Limits) -> Dict[str, np.ndarray]:
    names = sorted(signature.inputs)
    if isinstance(inputs, dict) and not _is_b64(inputs):
        unknown = sorted(set(inputs) - set(names))
        if unknown:
            raise invalid(f"\"inputs\" names {unknown} but signature '{signature.name}' expects "
                          f"{signature.describe_inputs()}")
        return {name: to_array(value, signature.inputs[name], name, limits) for name, value in inputs.items()}
    if len(names) != 1:
        raise invalid(f"signature '{signature.name}' has {len(names)} inputs ({signature.describe_inputs()}): "
                      "\"inputs\" must be an object keyed by input name")
    return {names[0]: to_array(inputs, signature.inputs[names[0]], names[0], limits)}


# ----- responses -----

def _jsonable(name: str, array: np.ndarray) -> Any:
    if array.dtype in (np.float32, np.float16):
        # shortest text that reads back as the same float32 (TF Serving prints 1.2, not 1.2000000476837158)
        return array.astype(str).astype(np.float64).tolist()
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
