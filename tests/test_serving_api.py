"""The server's REST and gRPC APIs against a live server on 127.0.0.1, with small SavedModels.

One server for the whole module (loading SavedModels is slow): ``toy_classifier`` versions 1 and 2 (policy
all, labels stable=1 / canary=2; several signatures, string/b64 inputs, a ``_bytes`` output, a numeric
multi-input signature) and ``toy_recommender`` version 1; batching on.
"""
from __future__ import annotations

import base64
import json
import socket

import grpc
import numpy as np
import pytest
import requests

import serving  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc)

from serving.batching import BatchingConfig
from serving.client import (GrpcClient, RestClient, ServingClientError, classify_video, embed_video, encode_video,
                            recommend, similar_items)
from serving.layout import ModelConfig, VersionPolicy
from serving.limits import Limits
from serving.server import ModelServer, ServerConfig
from tests.serving_fixtures import build_toy_classifier, build_toy_recommender

B64 = lambda data: {"b64": base64.b64encode(data).decode()}  # noqa: E731


@pytest.fixture(scope="module")
def model_base(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("models"))
    build_toy_classifier(base, version=1)
    build_toy_classifier(base, version=2)
    build_toy_recommender(base, version=1)
    return base


@pytest.fixture(scope="module")
def server(model_base):
    models = [ModelConfig("toy_classifier", f"{model_base}/toy_classifier", VersionPolicy("all"),
                          {"stable": 1, "canary": 2}),
              ModelConfig("toy_recommender", f"{model_base}/toy_recommender")]
    config = ServerConfig(rest_port=0, grpc_port=0, poll_interval_s=0, limits=Limits(max_request_bytes=200_000),
                          batching=BatchingConfig(max_batch_size=8, batch_timeout_micros=2000))
    with ModelServer(models, config) as running:
        yield running


@pytest.fixture(scope="module")
def url(server):
    return f"http://127.0.0.1:{server.rest_port}"


@pytest.fixture(scope="module")
def http():
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
        yield ch


@pytest.fixture(scope="module")
def reference(model_base):
    """The SavedModels loaded in-process: what every answer must equal."""
    return {v: tf.saved_model.load(f"{model_base}/toy_classifier/{v}") for v in (1, 2)} | {
        "rec": tf.saved_model.load(f"{model_base}/toy_recommender/1")}


EXAMPLES = {"brief": ["a short brief", ""], "cover": [b"\xff\xd8 not really a jpeg", b""],
            "frames": [[b"frame-0", b"frame-one"], [b"", b""]]}


def _expected(reference, version, signature="serving_default", inputs=EXAMPLES):
    fn = reference[version].signatures[signature]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def _rows():
    return [{"brief": EXAMPLES["brief"][i], "cover": B64(EXAMPLES["cover"][i]),
             "frames": [B64(f) for f in EXAMPLES["frames"][i]]} for i in range(2)]


# ----------------------------------------------------------------------------------------------- REST
def test_status_routes(http, url):
    body = http.get(f"{url}/v1/models/toy_classifier").json()
    assert body == {"model_version_status": [
        {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    one = http.get(f"{url}/v1/models/toy_classifier/versions/1").json()["model_version_status"]
    assert [s["version"] for s in one] == ["1"]
    canary = http.get(f"{url}/v1/models/toy_classifier/labels/canary").json()["model_version_status"]
    assert [s["version"] for s in canary] == ["2", "1"]  # TF Serving: a label does not narrow the status
    assert http.get(f"{url}/v1/models/toy_classifier/labels/beta").status_code == 200
    health = http.get(f"{url}/healthz")
    assert health.status_code == 200 and health.json()["models"] == {"toy_classifier": ["1", "2"],
                                                                     "toy_recommender": ["1"]}


def test_metadata_routes(http, url, model_base):
    body = http.get(f"{url}/v1/models/toy_classifier/metadata").json()
    assert body["model_spec"]["name"] == "toy_classifier" and body["model_spec"]["version"] == "2"
    sigs = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "embed", "numeric", "echo", "image_size"} <= set(sigs)
    default = sigs["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["frames"]["dtype"] == "DT_STRING"
    assert [d["size"] for d in default["inputs"]["frames"]["tensor_shape"]["dim"]] == ["-1", "2"]
    assert set(default["outputs"]) == {"probabilities", "label", "label_id"}
    assert http.get(f"{url}/v1/models/toy_classifier/versions/1/metadata").json()["model_spec"]["version"] == "1"
    assert http.get(f"{url}/v1/models/toy_classifier/labels/stable/metadata").json()["model_spec"]["version"] == "1"


def test_predict_row_format_equals_in_process(http, url, reference):
    got = http.post(f"{url}/v1/models/toy_classifier:predict", json={"instances": _rows()})
    assert got.status_code == 200, got.text
    predictions = got.json()["predictions"]
    want = _expected(reference, 2)
    assert len(predictions) == 2
    for i, row in enumerate(predictions):
        np.testing.assert_allclose(row["probabilities"], want["probabilities"][i], rtol=1e-6)
        assert row["label"] == want["label"][i].decode() and row["label_id"] == want["label_id"][i]


def test_predict_columnar_versions_and_labels(http, url, reference):
    inputs = {"brief": EXAMPLES["brief"], "cover": [B64(c) for c in EXAMPLES["cover"]],
              "frames": [[B64(f) for f in row] for row in EXAMPLES["frames"]]}
    for route, version in (("versions/1", 1), ("labels/stable", 1), ("labels/canary", 2), (None, 2)):
        path = f"{url}/v1/models/toy_classifier" + (f"/{route}" if route else "") + ":predict"
        outputs = http.post(path, json={"inputs": inputs}).json()["outputs"]
        want = _expected(reference, version)
        np.testing.assert_allclose(outputs["probabilities"], want["probabilities"], rtol=1e-6)
    assert not np.allclose(_expected(reference, 1)["probabilities"], _expected(reference, 2)["probabilities"])


def test_signature_name_bytes_outputs_and_numeric(http, url, reference):
    echo = http.post(f"{url}/v1/models/toy_classifier:predict",
                     json={"signature_name": "echo", "inputs": {"data": ["hi", B64(b"\x00\x01\xfe")]}}).json()
    assert echo["outputs"]["data_bytes"] == [B64(b"hi"), B64(b"\x00\x01\xfe")]  # *_bytes -> b64
    assert echo["outputs"]["length"] == [2, 3]
    single = http.post(f"{url}/v1/models/toy_classifier/versions/1:predict",
                       json={"signature_name": "numeric", "instances": [{"x": [1.5, 2], "k": 3}, {"x": [0, 1], "k": -1}]})
    want = _expected(reference, 1, "numeric", {"x": np.array([[1.5, 2], [0, 1]], np.float32),
                                               "k": np.array([3, -1], np.int32)})
    assert single.json() == {"predictions": pytest.approx(want["y"].tolist())}  # one output: bare values
    embed = http.post(f"{url}/v1/models/toy_classifier:predict", json={"signature_name": "embed", "instances": _rows()})
    np.testing.assert_allclose(embed.json()["predictions"], _expected(reference, 2, "embed")["embedding"], rtol=1e-6)


def test_corrupt_jpeg_fails_alone_in_a_batch(http, url):
    from concurrent.futures import ThreadPoolExecutor

    from data_interface_for_model.decoding import encode_jpeg

    good = B64(encode_jpeg(np.zeros((6, 10, 3), np.uint8)))
    bodies = [{"signature_name": "image_size", "instances": [good if i != 3 else B64(b"\xff\xd8 truncated")]}
              for i in range(8)]
    with ThreadPoolExecutor(8) as pool:  # concurrent: merged into batches by the server
        answers = list(pool.map(lambda b: requests.post(f"{url}/v1/models/toy_classifier:predict", json=b), bodies))
    assert [a.status_code for a in answers] == [200] * 3 + [400] + [200] * 4
    assert answers[0].json() == {"predictions": [{"height": 6, "width": 10}]}
    assert "image_size" in answers[3].json()["error"] and "jpeg" in answers[3].json()["error"].lower()


def test_single_input_bare_values(http, url, reference):
    history = [["item001", "item002", ""], ["item010", "", ""]]
    want = {k: v.numpy() for k, v in reference["rec"].signatures["serving_default"](history=tf.constant(history)).items()}
    rows = http.post(f"{url}/v1/models/toy_recommender:predict", json={"instances": history}).json()["predictions"]
    assert [r["item_ids"] for r in rows] == [[i.decode() for i in r] for r in want["item_ids"]]
    cols = http.post(f"{url}/v1/models/toy_recommender:predict", json={"inputs": history}).json()["outputs"]
    np.testing.assert_allclose(cols["scores"], want["scores"], rtol=1e-6)


@pytest.mark.parametrize("body, status, words", [
    (b"{not json", 400, "JSON parse error"),
    (b"[1, 2]", 400, "JSON object"),
    (json.dumps({"instances": [1], "inputs": [1]}).encode(), 400, "both"),
    (json.dumps({"signature_name": "embed"}).encode(), 400, "neither"),
    (json.dumps({"instances": []}).encode(), 400, "non-empty"),
    (json.dumps({"signature_name": "numeric", "instances": [{"x": [1, "a"], "k": 1}]}).encode(), 400, "expected numbers"),
    (json.dumps({"signature_name": "numeric", "instances": [{"x": [1, 2], "k": 1.5}]}).encode(), 400, "not an integer"),
    (json.dumps({"signature_name": "numeric", "inputs": {"x": [1, 2], "k": [1]}}).encode(), 400, "signature 'numeric'"),
    (json.dumps({"signature_name": "numeric", "inputs": {"x": [[1, 2], [3]], "k": [1, 2]}}).encode(), 400, "ragged"),
    (json.dumps({"signature_name": "numeric", "inputs": {"x": [[1, 2]]}}).encode(), 400, "missing ['k']"),
    (json.dumps({"signature_name": "numeric", "inputs": {"x": [[1, 2]], "k": [1], "z": [1]}}).encode(), 400, "z"),
    (json.dumps({"signature_name": "echo", "inputs": {"data": [{"b64": "@@not base64@@"}]}}).encode(), 400, "base64"),
    (json.dumps({"signature_name": "echo", "inputs": {"data": [7]}}).encode(), 400, "string tensor"),
    (json.dumps({"signature_name": "nope", "instances": [1]}).encode(), 400, 'Serving signature key "nope" not found'),
    (json.dumps({"instances": [{"brief": "x"}]}).encode(), 400, "missing"),
])
def test_predict_errors(http, url, body, status, words):
    response = http.post(f"{url}/v1/models/toy_classifier:predict", data=body)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


@pytest.mark.parametrize("method, path, status, words", [
    ("GET", "/v1/models/nope", 404, "nope"),
    ("POST", "/v1/models/nope:predict", 404, "nope"),
    ("GET", "/v1/models/toy_classifier/versions/7", 404, "version 7"),
    ("POST", "/v1/models/toy_classifier/versions/7:predict", 404, "Specific(toy_classifier, 7)"),
    ("POST", "/v1/models/toy_classifier/labels/beta:predict", 400, "Unrecognized servable version label: beta"),
    ("GET", "/v1/models/toy_classifier/versions/x1", 400, "not a number"),
    ("GET", "/v2/whatever", 404, "Malformed request"),
    ("POST", "/v1/models/toy_classifier:classify", 400, "'examples' is expected"),
    ("GET", "/v1/models/toy_classifier:predict", 404, "use POST"),
])
def test_route_errors(http, url, method, path, status, words):
    response = http.request(method, url + path, json={"instances": [1]} if method == "POST" else None)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_oversized_body_is_refused_unread_and_server_keeps_serving(http, url):
    big = json.dumps({"signature_name": "echo", "inputs": {"data": ["x" * 300_000]}})
    response = requests.post(f"{url}/v1/models/toy_classifier:predict", data=big)
    assert response.status_code == 413 and "exceeds the limit" in response.json()["error"]
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as sock:  # no Content-Length
        sock.sendall(b"POST /v1/models/toy_classifier:predict HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b" 400 " in sock.recv(4096).split(b"\r\n", 1)[0] + b" "
    ok = http.post(f"{url}/v1/models/toy_classifier:predict", json={"signature_name": "echo", "inputs": {"data": ["ok"]}})
    assert ok.status_code == 200


def test_rest_client_helpers(server, url):
    client = RestClient(url)
    out = client.predict("toy_classifier", {"data": [b"\x00raw", b"x"]}, signature_name="echo")
    assert out["data_bytes"].tolist() == [b"\x00raw", b"x"] and out["length"].tolist() == [4, 1]
    recs = recommend(client, ["item001", "item002"], model="toy_recommender", history_length=3)
    assert len(recs) == 5 and all(isinstance(i, str) and isinstance(s, float) for i, s in recs)
    assert similar_items(client, "item007", model="toy_recommender")[0][0] == "item007"
    with pytest.raises(ServingClientError) as err:
        client.predict("nope", {"x": [1]})
    assert err.value.status == 404


def test_video_helpers_encode_classify_and_embed(server, url, reference, tmp_path):
    """The README's helpers: a real clip and cover in, the served model's answer equals the in-process one."""
    from data_download_tools.demo import encode_h264
    from data_interface_for_model.decoding import decode_jpeg, encode_jpeg

    clip = str(tmp_path / "clip.mp4")
    frames = np.stack([np.full((48, 64, 3), 40 * i, np.uint8) for i in range(6)])
    encode_h264(frames, clip, fps=6)
    cover = tmp_path / "cover.jpeg"
    cover.write_bytes(encode_jpeg(np.full((30, 50, 3), 200, np.uint8)))

    inputs = encode_video(clip, str(cover), "waves at sunset", num_frames=2, image_size=32)
    assert inputs["brief"] == ["waves at sunset"] and len(inputs["frames"][0]) == 2
    assert decode_jpeg(inputs["cover"][0]).shape == (32, 32, 3)
    assert [decode_jpeg(f).shape for f in inputs["frames"][0]] == [(32, 32, 3)] * 2
    brightness = [decode_jpeg(f).mean() for f in inputs["frames"][0]]
    assert brightness[0] < brightness[1]  # sampled across the clip, in order
    missing = encode_video(None, None, "", num_frames=2)
    assert missing == {"brief": [""], "cover": [b""], "frames": [[b"", b""]]}

    want = _expected(reference, 2, inputs=inputs)
    for client in (RestClient(url), GrpcClient(f"127.0.0.1:{server.grpc_port}")):
        try:
            result = classify_video(client, clip, str(cover), "waves at sunset", model="toy_classifier",
                                    num_frames=2, image_size=32)
            assert result.label == want["label"][0].decode() and result.label_id == want["label_id"][0]
            np.testing.assert_allclose(result.probabilities, want["probabilities"][0], rtol=1e-6)
            assert result.top(1)[0][1] == pytest.approx(float(want["probabilities"][0].max()))
            embedding = embed_video(client, clip, str(cover), "waves at sunset", model="toy_classifier",
                                    signature_name="embed", num_frames=2, image_size=32)
            assert embedding.dtype == np.float32
            np.testing.assert_allclose(embedding, _expected(reference, 2, "embed", inputs)["embedding"][0], rtol=1e-6)
        finally:
            client.close()


def test_prometheus_metrics_with_tf_serving_names(server, url, http, channel):
    from prometheus_client.parser import text_string_to_metric_families

    body = {"signature_name": "numeric", "inputs": {"x": [[1.0, 2.0]], "k": [1]}}
    assert http.post(f"{url}/v1/models/toy_classifier:predict", json=body).status_code == 200
    assert http.post(f"{url}/v1/models/toy_classifier:predict", json={"instances": []}).status_code == 400
    prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(_request(), timeout=30)
    page = http.get(f"{url}/monitoring/prometheus/metrics")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/plain")
    assert "# TYPE :tensorflow:serving:request_count counter" in page.text
    samples = {}
    for family in text_string_to_metric_families(page.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))

    def value(name, **labels):  # the parser reads a counter's samples as <name>_total
        found = samples.get(name, []) + samples.get(name + "_total", [])
        return sum(v for got, v in found if all(got.get(k) == w for k, w in labels.items()))

    assert value(":tensorflow:serving:request_count", model_name="toy_classifier", status="OK") >= 2
    assert value(":tensorflow:serving:request_count", model_name="toy_classifier", status="INVALID_ARGUMENT") >= 1
    for entrypoint in ("REST", "GRPC"):
        assert value(":tensorflow:serving:request_latency_count", model_name="toy_classifier", API="Predict",
                     entrypoint=entrypoint) >= 1
    assert value(":tensorflow:serving:request_latency_bucket", model_name="toy_classifier", le="+Inf") >= 3
    assert value(":tensorflow:serving:runtime_latency_count", model_name="toy_classifier") >= 2
    assert value(":tensorflow:cc:saved_model:load_attempt_count", model_path="toy_classifier/2", status="success") == 1
    assert value(":tensorflow:cc:saved_model:load_latency", model_path="toy_recommender/1") > 0


def test_labels_must_point_at_available_versions(model_base):
    models = [ModelConfig("toy_recommender", f"{model_base}/toy_recommender", version_labels={"stable": 9})]
    with pytest.raises(ValueError, match="version 9 of model toy_recommender"):
        ModelServer(models, ServerConfig(rest_port=None, grpc_port=None, poll_interval_s=0)).start()
    config = ServerConfig(rest_port=None, grpc_port=None, poll_interval_s=0,
                          allow_version_labels_for_unavailable_models=True)
    with ModelServer(models, config) as running:
        assert running.health() == {"toy_recommender": [1]}


# ----------------------------------------------------------------------------------------------- gRPC
def _request(version=None, label=None, signature=""):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toy_classifier"
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for name, value in EXAMPLES.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.array(value, dtype=object)))
    return request


def test_grpc_predict_with_official_stub(channel, reference):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    for kwargs, version in (({}, 2), ({"version": 1}, 1), ({"label": "stable"}, 1), ({"label": "canary"}, 2)):
        response = stub.Predict(_request(**kwargs), timeout=30)
        assert response.model_spec.version.value == version
        assert response.model_spec.signature_name == "serving_default"
        want = _expected(reference, version)
        np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]), want["probabilities"], rtol=1e-6)
        assert tf.make_ndarray(response.outputs["label"]).tolist() == want["label"].tolist()
    request = _request(signature="embed")
    request.output_filter.append("embedding")
    response = stub.Predict(request, timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["embedding"]), _expected(reference, 2, "embed")["embedding"],
                               rtol=1e-6)


def test_grpc_errors(channel):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    cases = []
    unknown = _request()
    unknown.model_spec.name = "nope"
    cases.append((unknown, grpc.StatusCode.NOT_FOUND))
    cases.append((_request(version=9), grpc.StatusCode.NOT_FOUND))
    cases.append((_request(label="beta"), grpc.StatusCode.INVALID_ARGUMENT))
    cases.append((_request(signature="nope"), grpc.StatusCode.FAILED_PRECONDITION))
    wrong_dtype = _request()
    wrong_dtype.inputs["brief"].CopyFrom(tf.make_tensor_proto(np.array([1.0, 2.0], np.float32)))
    cases.append((wrong_dtype, grpc.StatusCode.INVALID_ARGUMENT))
    wrong_shape = _request()
    wrong_shape.inputs["frames"].CopyFrom(tf.make_tensor_proto(np.array([b"a", b"b"], dtype=object)))  # rank 1
    cases.append((wrong_shape, grpc.StatusCode.INVALID_ARGUMENT))
    filtered = _request()
    filtered.output_filter.append("no_such_output")
    cases.append((filtered, grpc.StatusCode.INVALID_ARGUMENT))
    for request, code in cases:
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(request, timeout=30)
        assert err.value.code() == code, err.value.details()
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "toy_classifier"
    classify.input.example_list.examples.add()
    with pytest.raises(grpc.RpcError) as err:  # a predict signature is not a classify signature
        stub.Classify(classify, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "method_name" in err.value.details()


def test_grpc_metadata_and_status(channel):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "toy_classifier"
    request.model_spec.version_label = "stable"
    response = stub.GetModelMetadata(request, timeout=30)
    assert response.model_spec.version.value == 1
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    assert set(signature_map.signature_def["numeric"].inputs) == {"x", "k"}

    models = model_service_pb2_grpc.ModelServiceStub(channel)
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "toy_classifier"
    status = models.GetModelStatus(status_request, timeout=30)
    assert [(s.version, s.state) for s in status.model_version_status] == [
        (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE), (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
    status_request.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as err:
        models.GetModelStatus(status_request, timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_grpc_client_helpers(server):
    client = GrpcClient(f"127.0.0.1:{server.grpc_port}")
    try:
        assert similar_items(client, "item003", model="toy_recommender")[0][0] == "item003"
        out = client.predict("toy_classifier", {"x": np.array([[1, 2]], np.float32), "k": np.array([2], np.int32)},
                             signature_name="numeric", version=1)
        assert out["y"].tolist() == [7.0]
        assert client.status("toy_recommender").model_version_status[0].version == 1
        with pytest.raises(ServingClientError) as err:
            client.predict("toy_classifier", {"x": [[1.0, 2.0]]}, signature_name="numeric")
        assert err.value.status == "INVALID_ARGUMENT"
    finally:
        client.close()
