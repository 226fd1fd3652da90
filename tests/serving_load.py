"""Load while the model base changes: clients on REST and gRPC, and the version changes a deployment makes
(a new version copied in, a broken one dropped in, an old one deleted). Shared by the suite's bounded load
test (tests/test_serving_reload.py) and the longer ``benchmarks/soak.py``."""
from __future__ import annotations

import dataclasses
import os
import shutil
import threading
import time
from typing import Callable, Dict, List, Optional

import numpy as np

HISTORY = [["item001", "item002", ""]]


def rss_bytes(pid: Optional[int] = None) -> int:
    """Resident memory of a process (this one by default), from /proc."""
    with open(f"/proc/{pid or 'self'}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def install(built_version_dir: str, model_dir: str, version: int) -> str:
    """Copy a built version in under a hidden name, then rename it into place (what an exporter does)."""
    target = os.path.join(model_dir, str(version))
    tmp = os.path.join(model_dir, f".{version}.part")
    shutil.copytree(built_version_dir, tmp)
    os.replace(tmp, target)
    return target


def drop_broken(model_dir: str, version: int) -> str:
    """A version folder whose saved_model.pb is garbage (a failed copy, a wrong file)."""
    path = os.path.join(model_dir, str(version))
    os.makedirs(os.path.join(path, "variables"))
    with open(os.path.join(path, "saved_model.pb"), "wb") as handle:
        handle.write(b"this is not a SavedModel")
    return path


@dataclasses.dataclass
class LoadReport:
    """What the clients saw."""

    requests: int = 0
    failures: List[str] = dataclasses.field(default_factory=list)
    latencies_ms: List[float] = dataclasses.field(default_factory=list)
    versions: List[int] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> Dict[str, float]:
        lat = np.array(self.latencies_ms or [0.0])
        return {"requests": self.requests, "failed": len(self.failures),
                "requests_per_s": round(self.requests / max(self.seconds, 1e-9), 1),
                "p50_ms": round(float(np.percentile(lat, 50)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2)}


def run_clients(rest_url: str, grpc_target: str, model: str, clients: int, until: threading.Event,
                tail_requests: int, report: LoadReport) -> List[threading.Thread]:
    """Start ``clients`` threads (alternately REST and gRPC, one keep-alive connection each) that send the
    recommender's request until ``until`` is set, then ``tail_requests`` more each. Join the returned threads."""
    import grpc
    import requests
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    lock = threading.Lock()

    def record(started: float, failure: Optional[str], version: Optional[int]) -> None:
        with lock:
            report.requests += 1
            report.latencies_ms.append((time.perf_counter() - started) * 1000)
            if failure:
                report.failures.append(failure)
            if version is not None:
                report.versions.append(version)

    def loop(send: Callable[[], Optional[int]]) -> None:
        left = tail_requests
        while left > 0:
            if until.is_set():
                left -= 1
            started = time.perf_counter()
            try:
                record(started, None, send())
            except Exception as exc:  # noqa: BLE001 - every failure is counted, whatever it is
                record(started, repr(exc)[:300], None)

    def rest_client() -> None:
        with requests.Session() as session:
            def send() -> Optional[int]:
                response = session.post(f"{rest_url}/v1/models/{model}:predict", json={"instances": HISTORY},
                                        timeout=30)
                if response.status_code != 200 or len(response.json()["predictions"][0]["item_ids"]) < 1:
                    raise RuntimeError(f"{response.status_code} {response.text[:200]}")
                return None
            loop(send)

    def grpc_client() -> None:
        with grpc.insecure_channel(grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model
            request.inputs["history"].CopyFrom(tf.make_tensor_proto(np.array(HISTORY, dtype=object)))

            def send() -> int:
                return stub.Predict(request, timeout=30).model_spec.version.value
            loop(send)

    threads = [threading.Thread(target=rest_client if i % 2 == 0 else grpc_client, name=f"load-client-{i}")
               for i in range(clients)]
    for thread in threads:
        thread.start()
    return threads
