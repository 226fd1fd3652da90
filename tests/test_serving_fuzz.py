"""Property tests: the JSON tensor codec and the gRPC tensor decoding, on random and adversarial input, either
return arrays that match what was declared or raise ServingError (INVALID_ARGUMENT / RESOURCE_EXHAUSTED),
never anything else and never more memory than the limits allow."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.errors import ServingError
from serving.limits import Limits
from serving.signatures import Signature, TensorInfo
from serving.tensor_json import decode_request, encode_response, loads
from serving.tensor_proto import array_to_proto, proto_to_array

LIMITS = Limits(max_tensor_elements=4096, max_tensor_bytes=32768, max_json_depth=12, max_json_number_chars=40)
FUZZ = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SIG = Signature("s", {"a": TensorInfo("float32", (None, 2)), "b": TensorInfo("string", (None,)),
                      "c": TensorInfo("int8", None), "d": TensorInfo("bool", (None,))}, {}, fn=None)
ONE = Signature("one", {"x": TensorInfo("int64", (None,))}, {}, fn=None)

json_leaves = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10 ** 500), max_value=10 ** 500)
               | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
               | st.builds(lambda s: {"b64": s}, st.text(alphabet="AZaz09+/=@", max_size=8)))
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from(["a", "b", "c", "d", "x", "b64", "z"]), inner, max_size=4),
                           max_leaves=40)
bodies = st.one_of(json_values, st.builds(lambda v: {"instances": v}, json_values),
                   st.builds(lambda v: {"inputs": v}, json_values),
                   st.builds(lambda a, b: {"inputs": {"a": a, "b": b, "c": [1], "d": [True]}}, json_values, json_values))


def _only_serving_errors(call):
    try:
        return call()
    except ServingError as exc:
        assert exc.code in ("INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"), exc.code
        return None


@FUZZ
@given(bodies, st.sampled_from([SIG, ONE]))
def test_json_requests_decode_or_raise_serving_errors(body, signature):
    result = _only_serving_errors(lambda: decode_request(body, signature, LIMITS))
    if result is not None:
        arrays, _row_format = result
        assert set(arrays) == set(signature.inputs)
        for name, array in arrays.items():  # the dtype is the decoder's to enforce; the shape, the graph's
            info = signature.inputs[name]
            assert array.dtype == np.dtype(info.numpy_dtype) and array.size <= LIMITS.max_tensor_elements


@FUZZ
@given(st.binary(max_size=200) | st.builds(lambda v: json.dumps(v).encode(), json_values)
       | st.builds(lambda n: b"[" * n + b"]" * n, st.integers(0, 3000)))
def test_json_loader_parses_or_raises_invalid_argument(data):
    _only_serving_errors(lambda: loads(data, LIMITS))


@FUZZ
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
                  elements=st.floats(width=32, allow_nan=False, allow_infinity=False)))
def test_float32_outputs_print_shortest_and_read_back_exactly(array):
    text = json.dumps(encode_response({"y": array}, row_format=False))
    back = np.array(json.loads(text)["outputs"], dtype=np.float32)
    np.testing.assert_array_equal(back, array)
    for value in array.reshape(-1)[:3]:
        assert repr(float(str(value))) in text or str(value) in text


@FUZZ
@given(st.binary(max_size=40))
def test_base64_with_or_without_padding(data):
    sig = Signature("e", {"data": TensorInfo("string", (None,))}, {}, fn=None)
    for text in (base64.b64encode(data).decode(), base64.b64encode(data).decode().rstrip("=")):
        arrays, _ = decode_request({"instances": [{"b64": text}]}, sig, LIMITS)
        assert arrays["data"].tolist() == [data]


# ----------------------------------------------------------------------------------------------- gRPC tensors
DTYPES = [types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_INT32, types_pb2.DT_INT8, types_pb2.DT_UINT8,
          types_pb2.DT_INT64, types_pb2.DT_BOOL, types_pb2.DT_STRING, types_pb2.DT_HALF, types_pb2.DT_UINT64,
          types_pb2.DT_COMPLEX64, types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT, 0, 999, -1, 2 ** 31 - 1]


@st.composite
def tensor_protos(draw):
    proto = tensor_pb2.TensorProto(dtype=draw(st.sampled_from(DTYPES)))
    dims = draw(st.lists(st.integers(-2, 10) | st.sampled_from([0, 100_000_000, 2 ** 62]), max_size=4))
    for size in dims:
        proto.tensor_shape.dim.add().size = size
    proto.tensor_shape.unknown_rank = draw(st.booleans()) and draw(st.booleans())
    which = draw(st.sampled_from(["content", "float_val", "int_val", "int64_val", "string_val", "bool_val",
                                  "half_val", "uint64_val", "scomplex_val", "none"]))
    if which == "content":
        proto.tensor_content = draw(st.binary(max_size=64))
    elif which == "float_val":
        proto.float_val.extend(draw(st.lists(st.floats(width=32), max_size=12)))
    elif which in ("int_val", "half_val"):
        getattr(proto, which).extend(draw(st.lists(st.integers(-(2 ** 31), 2 ** 31 - 1), max_size=12)))
    elif which == "int64_val":
        proto.int64_val.extend(draw(st.lists(st.integers(-(2 ** 63), 2 ** 63 - 1), max_size=12)))
    elif which == "uint64_val":
        proto.uint64_val.extend(draw(st.lists(st.integers(0, 2 ** 64 - 1), max_size=12)))
    elif which == "string_val":
        proto.string_val.extend(draw(st.lists(st.binary(max_size=6), max_size=12)))
    elif which == "bool_val":
        proto.bool_val.extend(draw(st.lists(st.booleans(), max_size=12)))
    elif which == "scomplex_val":
        proto.scomplex_val.extend(draw(st.lists(st.floats(width=32), max_size=12)))
    return proto


@FUZZ
@given(tensor_protos())
def test_grpc_tensors_decode_to_their_declared_shape_or_raise(proto):
    array = _only_serving_errors(lambda: proto_to_array(proto, "x", LIMITS))
    if array is not None:
        assert array.shape == tuple(d.size for d in proto.tensor_shape.dim)
        assert array.size <= LIMITS.max_tensor_elements and array.nbytes <= LIMITS.max_tensor_bytes


@FUZZ
@given(hnp.arrays(st.sampled_from([np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8, np.uint64,
                                   np.bool_, np.float16, np.complex64]),
                  hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)))
def test_typed_field_encoding_round_trips(array):
    proto = array_to_proto(array)
    assert not proto.tensor_content  # outputs travel in the typed fields, as TF Serving writes them
    back = proto_to_array(proto, "y", LIMITS)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_an_empty_tensor_with_a_huge_dimension_is_refused_not_a_numpy_error():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    proto.tensor_shape.dim.add(size=0)
    proto.tensor_shape.dim.add(size=2 ** 62)
    with pytest.raises(ServingError) as info:
        proto_to_array(proto, "x", LIMITS)
    assert info.value.code == "RESOURCE_EXHAUSTED"
