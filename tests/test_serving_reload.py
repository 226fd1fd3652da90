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
from serving.errors import ServingError
from serving.layout import ModelConfig
from serving.model_manager import ModelManager
from serving.server import ModelServer, ServerConfig
from tests.serving_fixtures import build_toy_recommender
from tests.serving_load import HISTORY, LoadReport, install, drop_broken, rss_bytes, run_clients

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Versions 1 and 2 built once, copied into each test's model base as needed."""
    store = str(tmp_path_factory.mktemp("built"))
    for version in (1, 2):
        build_toy_recommender(store, version=version, name="rec")
    return os.path.join(store, "rec")


def _install(built, base, version, as_version=None):
    return install(os.path.join(built, str(version)), os.path.join(base, "rec"), as_version or version)


def _wait(condition, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


#: The stated bound: serving a second small version and the load itself add less than this to the process.
RSS_BOUND = 300 << 20


def test_bounded_load_while_versions_change(built, tmp_path):
    """4 clients (2 REST, 2 gRPC) send requests while version 2 is copied in, a broken version 3 dropped in and
    version 1 deleted, then 25 more each: no request fails, versions never go backwards, memory stays bounded."""
    base = str(tmp_path)
    _install(built, base, 1)
    config = ServerConfig(rest_port=0, grpc_port=0, poll_interval_s=0.2,
                          batching=BatchingConfig(max_batch_size=8, batch_timeout_micros=1000))
    with ModelServer([ModelConfig("rec", os.path.join(base, "rec"))], config) as server:
        manager, rss_start, rss_peak = server.manager, rss_bytes(), [0]
        done, report = threading.Event(), LoadReport()
        started = time.perf_counter()
        clients = run_clients(f"http://127.0.0.1:{server.rest_port}", f"127.0.0.1:{server.grpc_port}", "rec",
                              clients=4, until=done, tail_requests=25, report=report)
        sampler_stop = threading.Event()

        def sample():
            while not sampler_stop.wait(0.05):
                rss_peak[0] = max(rss_peak[0], rss_bytes())
        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            assert _wait(lambda: report.requests >= 20)
            _install(built, base, 2)                                              # hot swap
            assert manager.wait_until_available("rec", 2, timeout_s=60)
            assert _wait(lambda: manager.version_state("rec", 1)[0] == "END")     # drained and unloaded
            drop_broken(os.path.join(base, "rec"), 3)                             # a broken version
            assert _wait(lambda: manager.version_state("rec", 3)[0] == "END")
            shutil.rmtree(os.path.join(base, "rec", "1"))                         # the old one deleted
            during = report.requests
        finally:
            done.set()
            for thread in clients:
                thread.join(timeout=60)
            sampler_stop.set()
            sampler.join()
        report.seconds = time.perf_counter() - started

        assert report.failures == [], report.failures[:3]
        assert during >= 40 and report.requests >= during + 4 * 25, (during, report.requests)
        assert report.versions[0] == 1 and report.versions[-1] == 2
        assert report.versions == sorted(report.versions)  # once version 2 served, version 1 never answered again
        status = requests.get(f"http://127.0.0.1:{server.rest_port}/v1/models/rec").json()["model_version_status"]
        by_version = {s["version"]: s for s in status}
        assert by_version["3"]["state"] == "END" and by_version["3"]["status"]["error_code"] != "OK"
        assert base not in by_version["3"]["status"]["error_message"]
        assert by_version["2"]["state"] == "AVAILABLE" and by_version["1"]["state"] == "END"
        assert requests.get(f"http://127.0.0.1:{server.rest_port}/healthz").json()["models"] == {"rec": ["2"]}
        assert rss_peak[0] - rss_start < RSS_BOUND, (rss_start, rss_peak[0], report.summary())


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
