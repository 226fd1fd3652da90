"""Hostile and broken input against a live server with small limits: every answer is TF Serving's JSON error
(or a gRPC status), nothing is allocated beyond the limits, no thread or connection is held forever."""
from __future__ import annotations

import gzip
import json
import os
import socket
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import requests

import serving  # noqa: F401  (the project's Keras switch before TensorFlow)
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.errors import ServingError, redact_paths, register_root, to_serving_error
from serving.grpc_server import GrpcServer
from serving.layout import ModelConfig
from serving.limits import Limits
from serving.server import ModelServer, ServerConfig
from serving.tensor_json import loads, to_array
from serving.signatures import TensorInfo
from tests.serving_fixtures import build_toy_classifier

LIMITS = Limits(max_request_bytes=100_000, max_tensor_elements=10_000, max_tensor_bytes=100_000, max_json_depth=16,
                max_connections=6, header_timeout_s=1.0, idle_timeout_s=2.0, body_timeout_s=1.0,
                max_concurrent_rpcs=8, grpc_workers=4)
PREDICT = "/v1/models/toy_classifier:predict"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("models"))
    build_toy_classifier(base, version=1)
    broken = os.path.join(base, "broken", "1")
    os.makedirs(os.path.join(broken, "variables"))
    with open(os.path.join(broken, "saved_model.pb"), "wb") as handle:
        handle.write(b"not a SavedModel")
    config = ServerConfig(rest_port=0, grpc_port=0, poll_interval_s=0, limits=LIMITS)
    models = [ModelConfig("toy_classifier", os.path.join(base, "toy_classifier")),
              ModelConfig("broken", os.path.join(base, "broken"))]
    with ModelServer(models, config) as running:
        running.base = base
        yield running


def _raw(port: int, data: bytes, wait_s: float = 3.0) -> bytes:
    """Send ``data`` on a fresh connection; everything the server answers until it closes (or ``wait_s``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except socket.timeout:
            pass
    return b"".join(chunks)


def _responses(raw: bytes):
    """[(status, headers text, body)] of every response in ``raw`` (Content-Length framing)."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-length":
                length = int(value)
        body, raw = rest[:length], rest[length:]
        out.append((status, head.decode("latin-1"), body))
    return out


def _numeric(x, k=None):
    return {"signature_name": "numeric", "inputs": {"x": x, "k": k if k is not None else [1] * len(x)}}


# ----------------------------------------------------------------------------------------------- gRPC tensors
def _grpc_request(proto: tensor_pb2.TensorProto, name: str = "x") -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toy_classifier"
    request.model_spec.signature_name = "numeric"
    request.inputs[name].CopyFrom(proto)
    request.inputs["k"].CopyFrom(tf.make_tensor_proto(np.array([1], np.int32)))
    return request


def test_grpc_declared_shape_is_checked_before_any_allocation(server):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    huge = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0])
    huge.tensor_shape.dim.add().size = 100_000_000  # a 69-byte message declaring 400 MB
    tracemalloc.start()
    try:
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(_grpc_request(huge), timeout=30)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "10000 elements" in err.value.details()
    assert peak < 20 << 20, f"{peak} bytes allocated while refusing the request"


@pytest.mark.parametrize("mutate, code, words", [
    (lambda p: setattr(p, "tensor_content", b"\x00" * 4), "INVALID_ARGUMENT", "tensor_content holds 4 bytes"),
    (lambda p: p.float_val.extend([1.0] * 5), "INVALID_ARGUMENT", "5 values in float_val"),
    (lambda p: setattr(p, "dtype", 999), "INVALID_ARGUMENT", "DataType 999"),
    (lambda p: setattr(p, "dtype", types_pb2.DT_RESOURCE), "INVALID_ARGUMENT", "holds dt_resource"),
    (lambda p: p.tensor_shape.dim.add(size=-3), "INVALID_ARGUMENT", "negative dimension"),
])
def test_grpc_malformed_tensors(server, mutate, code, words):
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    proto.tensor_shape.dim.add().size = 2
    proto.tensor_shape.dim.add().size = 2
    mutate(proto)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(_grpc_request(proto), timeout=30)
    assert err.value.code() == getattr(grpc.StatusCode, code) and words in err.value.details(), err.value.details()


def test_grpc_typed_and_packed_encodings_both_accepted(server):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    packed = tf.make_tensor_proto(np.array([[1.5, 2.0]], np.float32))
    assert packed.tensor_content
    typed = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.5, 2.0])
    typed.tensor_shape.dim.add().size = 1
    typed.tensor_shape.dim.add().size = 2
    broadcast = tf.make_tensor_proto(1.75, dtype=tf.float32, shape=[1, 2])  # one value, TensorFlow's fill rule
    answers = [stub.Predict(_grpc_request(p), timeout=30).outputs["y"] for p in (packed, typed, broadcast)]
    assert [list(a.float_val) for a in answers] == [[4.5], [4.5], [4.5]]  # typed output fields, as TF Serving
    assert all(not a.tensor_content for a in answers)


def test_grpc_concurrency_is_capped():
    class SlowCore:
        def predict(self, *args, **kwargs):
            time.sleep(1.0)
            raise ServingError("NOT_FOUND", "nothing here")

    server = GrpcServer(SlowCore(), port=0, limits=Limits(max_concurrent_rpcs=2, grpc_workers=2))
    server.start()
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))

        def call(_):
            try:
                stub.Predict(predict_pb2.PredictRequest(), timeout=10)
            except grpc.RpcError as exc:
                return exc.code()

        with ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(call, range(6)))
    finally:
        server.stop()
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 3 and grpc.StatusCode.NOT_FOUND in codes, codes


# ----------------------------------------------------------------------------------------------- REST bodies
def test_huge_numbers_and_deep_json_are_400(server):
    url = f"http://127.0.0.1:{server.rest_port}{PREDICT}"
    for body in ('{"signature_name": "numeric", "inputs": {"x": [[%s, 1]], "k": [1]}}' % ("9" * 5000),
                 '{"signature_name": "numeric", "inputs": {"x": [[%s, 1]], "k": [1]}}' % ("9" * 401),
                 "[" * 10_000 + "]" * 10_000,
                 '{"inputs": ' + "[" * 17 + "1" + "]" * 17 + "}"):
        response = requests.post(url, data=body)
        assert response.status_code == 400, response.text
        assert "error" in response.json()
    with pytest.raises(ServingError) as err:  # below the number-length limit, still beyond float range
        to_array([10 ** 401], TensorInfo("float32", (None,)), "x")
    assert err.value.code == "INVALID_ARGUMENT"


def test_too_many_elements_and_gzip_bombs(server):
    url = f"http://127.0.0.1:{server.rest_port}{PREDICT}"
    many = requests.post(url, json=_numeric([[1.0, 2.0]] * 6000))  # 12,000 elements > 10,000
    assert many.status_code == 429 and "elements" in many.json()["error"]
    bomb = gzip.compress(b" " * 5_000_000)  # 5 MB of whitespace in a few KB
    response = requests.post(url, data=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413 and "inflated" in response.json()["error"]
    ok = requests.post(url, data=gzip.compress(json.dumps(_numeric([[1.0, 2.0]], [3])).encode()),
                       headers={"Content-Encoding": "gzip"})
    assert ok.status_code == 200 and ok.json() == {"outputs": [10.0]}


def test_chunked_bodies_and_transfer_encodings(server):
    body = json.dumps(_numeric([[1.0, 2.0]], [3])).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 10]), body[i:i + 10]) for i in range(0, len(body), 10))
    head = f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
    [(status, _, answer)] = _responses(_raw(server.rest_port, head + chunked + b"0\r\n\r\n"))
    assert status == 200 and json.loads(answer) == {"outputs": [10.0]}
    for encoding in (b"gzip, chunked", b"chunked, identity", b"compress"):
        raw = _raw(server.rest_port, b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: %s\r\n\r\n%s" % (
            PREDICT.encode(), encoding, chunked))
        [(status, headers, answer)] = _responses(raw)  # one answer, then the connection closes
        assert status == 501 and "Transfer-Encoding" in json.loads(answer)["error"]
        assert "Connection: close" in headers
    both = _raw(server.rest_port, b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5"
                                  b"\r\n\r\n" % PREDICT.encode() + chunked)
    assert [s for s, _, _ in _responses(both)] == [400]


def test_expect_100_continue_checks_the_limit_first(server):
    raw = _raw(server.rest_port, b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n"
                                 b"Expect: 100-continue\r\n\r\n" % PREDICT.encode())
    assert b"100 Continue" not in raw
    [(status, _, body)] = _responses(raw)
    assert status == 413 and "exceeds the limit" in json.loads(body)["error"]
    small = json.dumps(_numeric([[1.0, 2.0]], [1])).encode()
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=5) as sock:
        sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (
            PREDICT.encode(), len(small)))
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")


def test_get_bodies_never_smuggle_a_second_request(server):
    hidden = b"GET /v1/models/nope HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = _raw(server.rest_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        len(hidden), hidden))
    responses = _responses(raw)
    assert len(responses) == 1 and responses[0][0] in (200, 503), raw
    assert "Connection: close" in responses[0][1]


@pytest.mark.parametrize("request_bytes, status", [
    (b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
    (b"PATCH /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 405),
    (b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
    (b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", 501),
    (b"\x00\xffgarbage\r\n\r\n", 400),
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET /healthz HTTP/1.1\r\n" + b"X-a: b\r\n" * 200 + b"\r\n", 431),
    (b"GET /healthz\r\n", 400),
])
def test_protocol_errors_are_json(server, request_bytes, status):
    raw = _raw(server.rest_port, request_bytes)
    [(got, headers, body)] = _responses(raw)
    assert got == status and "Content-Type: application/json" in headers, raw[:300]
    assert b"<html" not in raw.lower() and b"<!doctype" not in raw.lower()
    if not request_bytes.startswith(b"HEAD"):
        assert isinstance(json.loads(body)["error"], str)


# ----------------------------------------------------------------------------------------------- connections
def test_connection_cap_and_header_deadline(server):
    before = threading.active_count()
    socks = []
    try:
        for _ in range(20):  # unfinished headers, never completed
            sock = socket.create_connection(("127.0.0.1", server.rest_port), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            socks.append(sock)
        time.sleep(0.3)
        assert threading.active_count() - before <= LIMITS.max_connections
        refused = 0
        for sock in socks[LIMITS.max_connections:]:
            data = sock.recv(4096)
            refused += data.startswith(b"HTTP/1.1 503") and b'"error"' in data
        assert refused == 20 - LIMITS.max_connections
        started = time.monotonic()
        for sock in socks[:LIMITS.max_connections]:  # the server drops them after the header deadline
            sock.sendall(b"X-drip: 1\r\n")
            assert sock.recv(4096) == b""
        assert time.monotonic() - started < LIMITS.header_timeout_s + 2
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.2)
    assert threading.active_count() <= before + 1
    assert requests.get(f"http://127.0.0.1:{server.rest_port}/healthz").status_code in (200, 503)


def test_stalled_body_times_out_with_408(server):
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=5) as sock:
        sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"inputs\"" % PREDICT.encode())
        started = time.monotonic()
        data = b""
        while not data.endswith(b"}") and time.monotonic() - started < 5:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    [(status, headers, body)] = _responses(data)
    assert status == 408 and "Connection: close" in headers and "not received" in json.loads(body)["error"]
    assert time.monotonic() - started < LIMITS.body_timeout_s + 2


def test_idle_keep_alive_connections_close(server):
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 ")
        started = time.monotonic()
        assert sock.recv(4096) == b""  # closed by the server, not by us
        assert LIMITS.idle_timeout_s - 0.5 < time.monotonic() - started < LIMITS.idle_timeout_s + 2


# ----------------------------------------------------------------------------------------------- messages
def test_no_server_paths_in_messages(server):
    status = requests.get(f"http://127.0.0.1:{server.rest_port}/v1/models/broken").json()
    [failed] = status["model_version_status"]
    assert failed["state"] == "END" and failed["status"]["error_message"]
    assert server.base not in json.dumps(status) and os.path.realpath(server.base) not in json.dumps(status)
    error = to_serving_error(RuntimeError(f"cannot open {server.base}/secret/file.txt"))
    assert error.code == "INTERNAL" and server.base not in error.message and "secret" not in error.message
    register_root("/srv/models/rec", "rec")
    assert redact_paths("NotFoundError: /srv/models/rec/3/variables") == "NotFoundError: rec/3/variables"
    assert redact_paths("no route for '/v1/models/x/versions/2:predict'").endswith("'/v1/models/x/versions/2:predict'")


def test_json_loader_raises_only_invalid_argument():
    for text in (b"1" * 5000, b"[" * 5000, b"\xff\xfe", b"{} {}", b'{"a": 1e5000000000}', b"[" * 20 + b"]" * 20):
        with pytest.raises(ServingError) as err:
            loads(text, LIMITS)
        assert err.value.code == "INVALID_ARGUMENT"
    assert loads(b'{"a": "' + b"[" * 100 + b'"}', LIMITS) == {"a": "[" * 100}  # brackets in strings do not count
