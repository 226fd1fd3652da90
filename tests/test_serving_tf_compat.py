"""TF Serving's documented behaviour on TF Serving's own test model (half_plus_two, recreated by its testdata
script's recipe): the answers below are those of TF Serving's docs and of its http_rest_api_handler_test."""
from __future__ import annotations

import os

import grpc
import numpy as np
import pytest
import requests

import serving  # noqa: F401  (the project's Keras switch before TensorFlow)
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (classification_pb2, inference_pb2, predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2)

from serving.layout import ModelConfig, VersionPolicy
from serving.server import ModelServer, ServerConfig
from tests.serving_fixtures import build_half_plus_two

MODEL = "half_plus_two"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("models"))
    build_half_plus_two(base, version=123)
    models = [ModelConfig(MODEL, os.path.join(base, MODEL), VersionPolicy("all"), {"stable": 123})]
    with ModelServer(models, ServerConfig(rest_port=0, grpc_port=0, poll_interval_s=0)) as running:
        yield running


@pytest.fixture(scope="module")
def url(server):
    return f"http://127.0.0.1:{server.rest_port}/v1/models/{MODEL}"


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.mark.parametrize("body, answer", [
    ({"instances": [1.0, 2.0, 5.0]}, {"predictions": [2.5, 3.0, 4.5]}),               # the quickstart
    ({"instances": [[1.0, 2.0], [3.0, 4.0]]}, {"predictions": [[2.5, 3.0], [3.5, 4.0]]}),
    ({"signature_name": "serving_default", "instances": [3.0, 4.0]}, {"predictions": [3.5, 4.0]}),
    ({"signature_name": "serving_default", "inputs": [3.0, 4.0]}, {"outputs": [3.5, 4.0]}),
    ({"inputs": {"x": [[1.2]]}}, {"outputs": [[2.6]]}),                                 # float32, shortest text
])
def test_rest_predict_lets_the_graph_decide(url, body, answer):
    response = requests.post(f"{url}:predict", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == answer
    assert requests.post(f"{url}/labels/stable:predict", json=body).json() == answer


@pytest.mark.parametrize("body, words", [
    ("", "JSON parse error"),
    ("instances = [1, 2]", "JSON parse error"),
    ('{"instances": ["x", "y"]}', "not of expected type: float"),
    ('{"signature_name": 100}', "'signature_name' key must be a string value."),
    ('{"signature_name": "nope", "instances": [1.0]}', 'Serving signature key "nope" not found.'),
])
def test_rest_predict_errors_as_tf_serving(url, body, words):
    response = requests.post(f"{url}:predict", data=body)
    assert response.status_code == 400 and words in response.json()["error"], response.text
    label = requests.post(f"{url}/labels/beta:predict", json={"instances": [1.0]})
    assert label.status_code == 400 and "Unrecognized servable version label" in label.json()["error"]


def test_rest_classify_and_regress(url):
    regress = requests.post(f"{url}:regress", json={"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]})
    assert regress.json() == {"results": [42]}
    classify = requests.post(f"{url}:classify", json={"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}]})
    assert classify.json() == {"results": [[["", 12]]]}
    context = requests.post(f"{url}/versions/123:regress", json={
        "signature_name": "regress_x_to_y2", "context": {"x": 1.0}, "examples": [{}, {"x": 4.0}]})
    assert context.json() == {"results": [3.5, 5.0]}  # the example's features win over the context's
    wrong = requests.post(f"{url}:classify", json={"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}]})
    assert wrong.status_code == 400 and "method_name to be tensorflow/serving/classify" in wrong.json()["error"]
    empty = requests.post(f"{url}:regress", json={"signature_name": "regress_x_to_y", "examples": []})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]
    typed = requests.post(f"{url}:regress", json={"signature_name": "regress_x_to_y", "examples": [{"x": [1, 2.5]}]})
    assert typed.status_code == 400 and "expecting type: int64" in typed.json()["error"]


def _example(**features):
    example = example_pb2.Example()
    for name, value in features.items():
        example.features.feature[name].float_list.value.append(value)
    return example


def test_grpc_predict_typed_fields(stub):
    for shape in ([3], [3, 1]):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1.0, 2.0, 5.0], np.float32).reshape(shape)))
        response = stub.Predict(request, timeout=30)
        y = response.outputs["y"]
        assert list(y.float_val) == [2.5, 3.0, 4.5] and not y.tensor_content  # what TF Serving's clients read
        assert [d.size for d in y.tensor_shape.dim] == shape
        assert response.model_spec.version.value == 123 and response.model_spec.signature_name == "serving_default"


def test_grpc_classify_regress_and_multi_inference(stub):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "classify_x_to_y"
    request.input.example_list.examples.extend([_example(x=20.0), _example(x=10.0)])
    result = stub.Classify(request, timeout=30).result
    assert [[(c.label, c.score) for c in item.classes] for item in result.classifications] == [[("", 12.0)],
                                                                                               [("", 7.0)]]
    regression = regression_pb2.RegressionRequest()
    regression.model_spec.name = MODEL
    regression.model_spec.signature_name = "regress_x_to_y2"
    regression.input.example_list_with_context.context.CopyFrom(_example(x=2.0))
    regression.input.example_list_with_context.examples.add()
    response = stub.Regress(regression, timeout=30)
    assert [r.value for r in response.result.regressions] == [4.0] and response.model_spec.version.value == 123

    multi = inference_pb2.MultiInferenceRequest()
    for key, method in (("classify_x_to_y", "tensorflow/serving/classify"),
                        ("regress_x_to_y2", "tensorflow/serving/regress")):
        task = multi.tasks.add()
        task.model_spec.name = MODEL
        task.model_spec.signature_name = key
        task.method_name = method
    multi.input.example_list.examples.extend([_example(x=2.0)])
    results = stub.MultiInference(multi, timeout=30).results
    assert results[0].classification_result.classifications[0].classes[0].score == 3.0
    assert results[1].regression_result.regressions[0].value == 4.0
    request.model_spec.signature_name = "nope"
    with pytest.raises(grpc.RpcError) as err:
        stub.Classify(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
