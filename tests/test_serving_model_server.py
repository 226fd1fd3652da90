"""``serving model-server``: tensorflow_model_server's command line, config reloads (gRPC and file polling),
its batching and monitoring config files."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
import requests
from google.protobuf import text_format

import serving  # noqa: F401  (the project's Keras switch before TensorFlow)
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from serving.batching import Batcher, BatchingConfig
from serving.layout import ModelConfig, VersionPolicy, models_config_text
from serving.server import ModelServer, ServerConfig
from serving.tf_serving_configs import read_batching_parameters, read_monitoring_config
from tests.serving_fixtures import build_half_plus_two

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("models"))
    build_half_plus_two(base, version=123)
    return base


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_docker_style_invocation(base, tmp_path):
    """MODEL_NAME / MODEL_BASE_PATH as in TF Serving's image, TF Serving's flags, its config files."""
    (tmp_path / "batching.txt").write_text("max_batch_size { value: 4 }\nbatch_timeout_micros { value: 1000 }\n"
                                           "allowed_batch_sizes: 2\nallowed_batch_sizes: 4\n")
    (tmp_path / "monitoring.txt").write_text('prometheus_config { enable: true, path: "/metrics" }\n')
    rest = _free_port()
    env = dict(os.environ, MODEL_NAME="half_plus_two", MODEL_BASE_PATH=base, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", "model-server", "--port=0", f"--rest_api_port={rest}", "--enable_batching",
         f"--batching_parameters_file={tmp_path / 'batching.txt'}", "--file_system_poll_wait_seconds=0",
         f"--monitoring_config_file={tmp_path / 'monitoring.txt'}", "--rest_api_timeout_in_ms=5000",
         "--rest_api_enable_cors_support=true", "--host=127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        for line in process.stdout:
            if re.search(r"REST http://127\.0\.0\.1:\d+", line):
                break
        url = f"http://127.0.0.1:{rest}"
        answer = requests.post(f"{url}/v1/models/half_plus_two:predict", json={"instances": [1.0, 2.0, 5.0]})
        assert answer.json() == {"predictions": [2.5, 3.0, 4.5]}
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
        assert requests.options(f"{url}/v1/models/half_plus_two:predict").status_code == 200
        metrics = requests.get(f"{url}/metrics").text
        assert ':tensorflow:serving:request_count{model_name="half_plus_two",status="OK"}' in metrics
        assert requests.get(f"{url}/monitoring/prometheus/metrics").status_code == 404  # the config moved it
    finally:
        process.send_signal(2)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]


def test_model_server_binds_all_interfaces_as_tf_serving_and_serve_stays_local():
    from serving.__main__ import build_parser

    parser = build_parser()
    tf_serving_way = parser.parse_args(["model-server", "--model_name=m", "--model_base_path=/models/m",
                                        "--rest_api_num_threads=8"])
    assert tf_serving_way.host == "0.0.0.0" and tf_serving_way.port == 8500 and tf_serving_way.rest_api_num_threads == 8
    assert parser.parse_args(["serve", "--model-base", "models"]).host == "127.0.0.1"


def test_model_server_refuses_bad_flags(tmp_path):
    from serving import __main__ as cli

    assert cli.main(["model-server", "--model_config_file", str(tmp_path / "nope.config")]) == 2
    (tmp_path / "batching.txt").write_text("max_batch_sise { value: 4 }\n")
    with pytest.raises(ValueError, match="max_batch_sise"):
        read_batching_parameters(str(tmp_path / "batching.txt"))
    (tmp_path / "batching.txt").write_text("max_batch_size { value: 8 }\nallowed_batch_sizes: 4\n")
    with pytest.raises(ValueError, match="end with max_batch_size"):
        read_batching_parameters(str(tmp_path / "batching.txt"))
    (tmp_path / "monitoring.txt").write_text("prometheus_config { enable: false }\n")
    assert read_monitoring_config(str(tmp_path / "monitoring.txt")).prometheus_path is None


def _config(*models):
    return text_format.Parse(models_config_text(list(models)), model_server_config_pb2.ModelServerConfig())


def test_reload_config_over_grpc_and_by_polling_the_file(base, tmp_path):
    model = os.path.join(base, "half_plus_two")
    config_file = tmp_path / "models.config"
    config_file.write_text(models_config_text([ModelConfig("a", model)]))
    from serving.__main__ import _read_model_config

    config = ServerConfig(rest_port=0, grpc_port=0, poll_interval_s=0, model_config_file=str(config_file),
                          model_config_poll_s=0.2, read_model_config=_read_model_config)
    with ModelServer(_read_model_config(str(config_file)), config) as server:
        url = f"http://127.0.0.1:{server.rest_port}/v1/models"
        assert requests.post(f"{url}/a:predict", json={"instances": [2.0]}).json() == {"predictions": [3.0]}
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = model_service_pb2_grpc.ModelServiceStub(channel)
            request = model_management_pb2.ReloadConfigRequest(config=_config(ModelConfig("b", model)))
            assert stub.HandleReloadConfigRequest(request, timeout=60).status.error_code == 0
            assert requests.post(f"{url}/b:predict", json={"instances": [2.0]}).status_code == 200
            assert requests.get(f"{url}/a").status_code == 404  # removed
            bad = model_management_pb2.ReloadConfigRequest(config=_config(ModelConfig("b", model,
                                                                                      version_labels={"x": 9})))
            with pytest.raises(grpc.RpcError) as err:
                stub.HandleReloadConfigRequest(bad, timeout=60)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "version 9" in err.value.details()
        config_file.write_text(models_config_text([ModelConfig("c", model)]))  # the poller applies it
        deadline = time.monotonic() + 30
        while server.health().get("c") != [123] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.health() == {"c": [123]}


def test_allowed_batch_sizes_and_variable_lengths_are_padded():
    seen = []

    def fn(inputs):
        seen.append(inputs["x"].shape)
        return {"n": np.array([row.size for row in inputs["x"]]), "first": inputs["x"][:, 0]}

    config = BatchingConfig(max_batch_size=4, batch_timeout_micros=200_000, num_batch_threads=1,
                            allowed_batch_sizes=(2, 4), pad_variable_length_inputs=True)
    batcher = Batcher(fn, config)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda n: batcher({"x": np.arange(1, n + 1, dtype=np.int64)[None]}), (1, 2, 3)))
    batcher.stop()
    assert seen == [(4, 3)]  # 3 requests merged, lengths padded to 3, batch padded to the allowed size 4
    assert [r["first"].tolist() for r in results] == [[1], [1], [1]] and all(len(r["n"]) == 1 for r in results)


def test_warmup_records_are_replayed_before_serving(base, tmp_path):
    import shutil

    import tensorflow as tf
    from tensorflow.core.example import example_pb2
    from tensorflow_serving.apis import prediction_log_pb2

    from serving.metrics import ServingMetrics
    from serving.model_manager import ModelManager
    from serving.warmup import write_warmup_requests

    predict = prediction_log_pb2.PredictionLog()
    predict.predict_log.request.model_spec.name = "m"
    predict.predict_log.request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1.0], np.float32)))
    regress = prediction_log_pb2.PredictionLog()
    regress.regress_log.request.model_spec.signature_name = "regress_x_to_y"
    example = example_pb2.Example()
    example.features.feature["x"].float_list.value.append(2.0)
    regress.regress_log.request.input.example_list.examples.append(example)
    broken = prediction_log_pb2.PredictionLog()
    broken.predict_log.request.model_spec.signature_name = "nope"

    for version, logs in ((1, [predict, regress]), (2, [predict, broken])):
        target = tmp_path / "m" / str(version)
        shutil.copytree(os.path.join(base, "half_plus_two", "123"), target)
        write_warmup_requests(str(target), "m", logs)
    metrics = ServingMetrics()
    manager = ModelManager([ModelConfig("m", str(tmp_path / "m"), VersionPolicy("all"))], poll_interval_s=0,
                           metrics=metrics)
    manager.start()
    try:
        assert manager.health() == {"m": [1]}
        state, error = manager.version_state("m", 2)
        assert state == "END" and "warm-up record 2 (predict_log)" in error and "nope" in error
        assert metrics.samples(":tensorflow:serving:model_warmup_latency_count") == [({"model_path": "m/1"}, 1.0)]
    finally:
        manager.stop()


def test_exporter_warmup_records_are_typed_checked_and_replayed(base, tmp_path):
    """The exporters' writer: {signature: example inputs} -> PredictLog records in the SignatureDef's dtypes
    (a Python float list becomes float32), the whole batch then its first row; the server replays them."""
    import shutil

    from data_interface_for_model.tf_serving_format import LayoutError, read_warmup_requests, write_warmup_requests
    import tensorflow as tf

    from serving.model_manager import ServableVersion

    target = str(tmp_path / "m" / "1")
    shutil.copytree(os.path.join(base, "half_plus_two", "123"), target)
    with pytest.raises(LayoutError, match="no signature 'nope'"):
        write_warmup_requests(target, "m", {"nope": {"x": [[1.0]]}})
    with pytest.raises(LayoutError, match=r"takes inputs \['x'\], got \['y'\]"):
        write_warmup_requests(target, "m", {"serving_default": {"y": [[1.0]]}})
    write_warmup_requests(target, "m", {"serving_default": {"x": [[1.0], [3.0]]}})
    logs = read_warmup_requests(target)
    assert [log.predict_log.request.model_spec.name for log in logs] == ["m", "m"]
    arrays = [tf.make_ndarray(log.predict_log.request.inputs["x"]) for log in logs]
    assert [a.dtype for a in arrays] == [np.float32] * 2 and [a.tolist() for a in arrays] == [[[1.0], [3.0]], [[1.0]]]
    servable = ServableVersion("m", 1, target)
    servable.load(None)
    try:
        assert servable.warmup_records == 2
    finally:
        servable.drain_and_unload(1)


def test_model_runs_past_the_timeout_get_504(tmp_path):
    from tests.serving_fixtures import build_spinner

    build_spinner(str(tmp_path))
    config = ServerConfig(rest_port=0, grpc_port=None, poll_interval_s=0, run_timeout_ms=300)
    with ModelServer([ModelConfig("spinner", str(tmp_path / "spinner"))], config) as server:
        url = f"http://127.0.0.1:{server.rest_port}/v1/models/spinner:predict"
        assert requests.post(url, json={"instances": [10]}).json() == {"predictions": [10]}
        started = time.monotonic()
        slow = requests.post(url, json={"instances": [10 ** 15]})
        assert slow.status_code == 504 and "Timed out" in slow.json()["error"]
        assert time.monotonic() - started < 5
