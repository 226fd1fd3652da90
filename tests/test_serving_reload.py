"""Hot reload: new versions served while clients keep sending, old ones drained, broken ones reported."""
from __future__ import annotations

import os
import shutil
import threading
import time

import numpy as np
import pytest
import requests

import serving  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from serving.batching import BatchingConfig
from serving.client import GrpcClient
from serving.errors import ServingError
from serving.layout import ModelConfig
from serving.model_manager import ModelManager
from serving.server import ModelServer, ServerConfig
from tests.serving_fixtures import build_toy_recommender

HISTORY = [["item001", "item002", ""]]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Versions 1 and 2 built once, copied into each test's model base as needed."""
    store = str(tmp_path_factory.mktemp("built"))
    for version in (1, 2):
        build_toy_recommender(store, version=version, name="rec")
    return os.path.join(store, "rec")


def _install(built, base, version, as_version=None):
    """Copy a built version in under a temporary name, then rename it into place (as exporters do)."""
    target = os.path.join(base, "rec", str(as_version or version))
    tmp = os.path.join(base, "rec", f".{as_version or version}.part")
    shutil.copytree(os.path.join(built, str(version)), tmp)
    os.replace(tmp, target)
    return target


def test_hot_reload_under_load_and_broken_version(built, tmp_path):
    base = str(tmp_path)
    _install(built, base, 1)
    config = ServerConfig(rest_port=0, grpc_port=0, poll_interval_s=0.2,
                          batching=BatchingConfig(max_batch_size=8, batch_timeout_micros=1000))
    with ModelServer([ModelConfig("rec", os.path.join(base, "rec"))], config) as server:
        url = f"http://127.0.0.1:{server.rest_port}/v1/models/rec:predict"
        failures, versions, stop = [], [], threading.Event()
        counts = {"rest": 0, "grpc": 0}

        def rest_loop():
            with requests.Session() as session:
                while not stop.is_set():
                    response = session.post(url, json={"instances": HISTORY})
                    counts["rest"] += 1
                    if response.status_code != 200 or len(response.json()["predictions"][0]["item_ids"]) != 5:
                        failures.append(response.text)

        def grpc_loop():
            client = GrpcClient(f"127.0.0.1:{server.grpc_port}")
            stub_request = {"history": np.array(HISTORY, dtype=object)}
            from tensorflow_serving.apis import predict_pb2
            import tensorflow as tf
            while not stop.is_set():
                request = predict_pb2.PredictRequest()
                request.model_spec.name = "rec"
                request.inputs["history"].CopyFrom(tf.make_tensor_proto(stub_request["history"]))
                try:
                    response = client.prediction.Predict(request, timeout=30)
                    versions.append(response.model_spec.version.value)
                except Exception as exc:  # noqa: BLE001 - every failure is counted
                    failures.append(repr(exc))
                counts["grpc"] += 1
            client.close()

        threads = [threading.Thread(target=rest_loop) for _ in range(2)] + [threading.Thread(target=grpc_loop)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(0.5)
            _install(built, base, 2)
            assert server.manager.wait_until_available("rec", 2, timeout_s=60)
            deadline = time.monotonic() + 30
            while server.manager.version_state("rec", 1)[0] != "END" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.manager.version_state("rec", 1) == ("END", None)  # drained and unloaded
            time.sleep(0.5)

            # a corrupt version 3: reported, and version 2 keeps serving
            broken = os.path.join(base, "rec", "3")
            os.makedirs(os.path.join(broken, "variables"))
            with open(os.path.join(broken, "saved_model.pb"), "wb") as handle:
                handle.write(b"this is not a SavedModel")
            deadline = time.monotonic() + 30
            while server.manager.version_state("rec", 3)[0] != "END" and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)

        assert failures == [], failures[:3]
        assert counts["rest"] > 20 and counts["grpc"] > 10, counts
        assert versions[0] == 1 and versions[-1] == 2 and sorted(set(versions)) == [1, 2]
        assert versions == sorted(versions)  # once version 2 served, version 1 never answered again
        status = requests.get(f"http://127.0.0.1:{server.rest_port}/v1/models/rec").json()["model_version_status"]
        by_version = {s["version"]: s for s in status}
        assert by_version["3"]["state"] == "END" and by_version["3"]["status"]["error_code"] != "OK"
        assert by_version["3"]["status"]["error_message"]
        assert by_version["2"]["state"] == "AVAILABLE" and by_version["1"]["state"] == "END"
        assert requests.post(url, json={"instances": HISTORY}).status_code == 200
        assert requests.get(f"http://127.0.0.1:{server.rest_port}/healthz").json()["models"] == {"rec": ["2"]}


def test_in_flight_requests_finish_before_unload_and_half_copied_versions_wait(built, tmp_path):
    base = str(tmp_path)
    _install(built, base, 1)
    manager = ModelManager([ModelConfig("rec", os.path.join(base, "rec"))], poll_interval_s=0)
    manager.start()
    try:
        with manager.acquire("rec") as held:  # a request in flight on version 1
            assert held.version == 1
            shutil.copytree(os.path.join(built, "2"), os.path.join(base, "rec", "2"))  # copied in place
            manager.poll_once()
            assert manager.version_state("rec", 2) == (None, None)  # seen once: maybe still copying
            manager.poll_once()
            assert manager.version_state("rec", 2)[0] == "AVAILABLE"
            with manager.acquire("rec") as fresh:
                assert fresh.version == 2  # new requests go to the new version at once
            assert manager.version_state("rec", 1)[0] == "UNLOADING"  # ...the old one waits for us
            signature = held.signature("serving_default")
            out = held.run(signature, {"history": np.array(HISTORY, dtype=object)})
            assert out["item_ids"].shape == (1, 5)
        deadline = time.monotonic() + 10
        while manager.version_state("rec", 1)[0] != "END" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert manager.version_state("rec", 1)[0] == "END"

        shutil.rmtree(os.path.join(base, "rec", "2"))  # roll back by deleting: version 1 is the latest again
        manager.poll_once()
        with manager.acquire("rec") as again:
            assert again.version == 1
        shutil.rmtree(os.path.join(base, "rec", "1"))  # nothing left on disk: nothing served
        manager.poll_once()
        with pytest.raises(ServingError):
            with manager.acquire("rec"):
                pass
    finally:
        manager.stop()
