"""Serving benchmark: latency (p50/p95/p99) and requests/s for classify and recommend over REST and gRPC, at
several concurrencies, with and without batching, against the in-process call of the same model; client and
server on this machine.

    python benchmarks/serving.py                          # stand-in models built here (says so)
    python benchmarks/serving.py --model-base MODELS      # real exports (classifier, recommender_bruteforce)
    python benchmarks/serving.py --model-base MODELS --recommender recommender_scann --protocol rest,grpc
    python benchmarks/serving.py --protocol grpc --tasks recommend   # the official gRPC stub alone

The server runs as its own process (``python -m serving serve``), started once without and once with
``--enable-batching``; each client is a thread with its own connection (keep-alive REST session or gRPC
channel) sending one example per request. The in-process rows run the same load driver against the model
loaded in this process exactly as the server loads it (TF1 Session callable, and the server's batcher when
batching is on): the transport-free ceiling. The goal is batched >= 3x unbatched throughput for classify at
concurrency 32.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional

import numpy as np
import requests

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _jpeg(seed: int, size: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, size, dtype=np.float32)
    image = (base[None, :, None] * rng.uniform(0.3, 1, 3) + base[:, None, None] * rng.uniform(0, 0.7, 3)) % 256
    image += rng.normal(0, 12, image.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _b64(data: bytes) -> dict:
    import base64

    return {"b64": base64.b64encode(data).decode("ascii")}


def build_standins(base: str, num_frames: int, image_size: int, num_items: int, classifier: bool = True) -> None:
    from tests.serving_fixtures import build_standin_classifier, build_toy_recommender

    if classifier:
        build_standin_classifier(base, num_frames=num_frames, image_size=image_size)
    build_toy_recommender(base, name="recommender_bruteforce", num_items=num_items, dim=64, k=10)


def _signature_inputs(url: str, model: str) -> Dict[str, list]:
    meta = requests.get(f"{url}/v1/models/{model}/metadata", timeout=30).json()
    inputs = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    return {name: [int(d["size"]) for d in info["tensor_shape"].get("dim", [])] for name, info in inputs.items()}


def payloads(url: str, classifier: Optional[str], recommender: str, image_size: int) -> Dict[str, bytes]:
    classify = None
    if classifier:
        shapes = _signature_inputs(url, classifier)
        frames = shapes["frames"][1] if len(shapes.get("frames", [])) > 1 and shapes["frames"][1] > 0 else 8
        classify = {"instances": [{"brief": "aerial view of waves breaking on a sunny beach",
                                   "cover": _b64(_jpeg(0, image_size)),
                                   "frames": [_b64(_jpeg(i + 1, image_size)) for i in range(frames)]}]}
    shapes = _signature_inputs(url, recommender)
    length = shapes["history"][1] if len(shapes["history"]) > 1 and shapes["history"][1] > 0 else 20
    ids = requests.post(f"{url}/v1/models/{recommender}:predict", json={"instances": [[""] * length]},
                        timeout=60).json()["predictions"][0]["item_ids"]
    history = (ids * length)[:length // 2] + [""] * (length - length // 2)
    return {"classify": json.dumps(classify).encode(), "recommend": json.dumps({"instances": [history]}).encode()}


def process_cpu_seconds(pid: Optional[int] = None) -> float:
    """User + system CPU seconds of a process so far (``/proc``; this process by default)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drive(open_client, concurrency: int, seconds: float, cpu=process_cpu_seconds) -> Dict[str, float]:
    """``concurrency`` clients, each ``with open_client() as send:`` (the client warms itself up before it
    yields; ``send()`` -> True on success), released at once, sending until ``seconds`` have passed.
    ``cpu()`` -> CPU seconds of the process serving them: its growth per request is reported as ``cpu_ms``
    (the honest cost on a shared machine, where wall-clock rates depend on the other jobs)."""
    latencies: List[float] = []
    errors = [0]
    lock = threading.Lock()
    start_gate = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def worker():
        with open_client() as send:
            start_gate.wait()
            mine = []
            while time.perf_counter() < deadline[0]:
                started = time.perf_counter()
                ok = send()
                mine.append(time.perf_counter() - started)
                if not ok:
                    with lock:
                        errors[0] += 1
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + 1e9
    start_gate.wait()
    began, cpu_before = time.perf_counter(), cpu()
    deadline[0] = began + seconds
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    cpu_ms = (cpu() - cpu_before) * 1000 / max(len(latencies), 1)
    ms = np.array(latencies) * 1000
    return {"rps": len(latencies) / elapsed, "cpu_ms": cpu_ms, "p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99)), "n": len(latencies), "errors": errors[0]}


def run_load(url: str, body: bytes, concurrency: int, seconds: float, warmup: int = 3,
             cpu=process_cpu_seconds) -> Dict[str, float]:
    @contextlib.contextmanager
    def open_client():
        with requests.Session() as session:
            for _ in range(warmup):
                session.post(url, data=body, timeout=120)
            yield lambda: session.post(url, data=body, timeout=120).status_code == 200

    return _drive(open_client, concurrency, seconds, cpu)


def grpc_request(model: str, body: bytes):
    """The same single example as a gRPC PredictRequest (typed fields, as TF Serving clients send them)."""
    import base64

    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    instance = json.loads(body)["instances"][0]
    items = instance.items() if isinstance(instance, dict) else [("history", instance)]
    for name, value in items:
        def decode(v):
            return base64.b64decode(v["b64"]) if isinstance(v, dict) else v.encode() if isinstance(v, str) else v
        value = [decode(v) for v in value] if isinstance(value, list) else decode(value)
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.array([value], dtype=object)))
    return request


def run_grpc_load(target: str, request, concurrency: int, seconds: float, warmup: int = 3,
                  cpu=process_cpu_seconds) -> Dict[str, float]:
    """As :func:`run_load`, over gRPC: one channel per client, the official stub."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    @contextlib.contextmanager
    def open_client():
        with grpc.insecure_channel(target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for _ in range(warmup):
                stub.Predict(request, timeout=120)

            def send() -> bool:
                try:
                    stub.Predict(request, timeout=120)
                    return True
                except grpc.RpcError:
                    return False

            yield send

    return _drive(open_client, concurrency, seconds, cpu)


@contextlib.contextmanager
def loaded_in_process(model_dir: str, body: bytes, batching):
    """The newest version of ``model_dir`` loaded in this process exactly as the server loads it (Session
    callable, warm-up, the server's batcher when ``batching`` is given); yields ``send() -> bool`` for
    :func:`_drive`, one example (``body``, a row-format JSON request) per call."""
    from serving.layout import list_versions
    from serving.model_manager import ServableVersion, import_custom_ops
    from serving.tensor_json import decode_request, loads

    import_custom_ops()
    versions = list_versions(model_dir)
    servable = ServableVersion(os.path.basename(model_dir), max(versions), versions[max(versions)])
    servable.load(batching)
    try:
        signature = servable.signature("serving_default")
        arrays, _ = decode_request(loads(body), signature)

        def send() -> bool:
            try:
                return bool(servable.run(signature, arrays))
            except Exception:  # noqa: BLE001 - counted as a failed request, as the transports count theirs
                return False

        yield send
    finally:
        servable.drain_and_unload(5)


def run_inprocess_load(send, concurrency: int, seconds: float, warmup: int = 3) -> Dict[str, float]:
    """As :func:`run_load`, calling the model in this process (``send`` from :func:`loaded_in_process`)."""
    @contextlib.contextmanager
    def open_client():
        for _ in range(warmup):
            send()
        yield send

    return _drive(open_client, concurrency, seconds)


def model_cost(model_dir: str, body: bytes, batch_sizes=(1, 8, 32), seconds: float = 3.0) -> Dict[int, float]:
    """In-process ms per example of the classifier's serving_default at each batch size (no server)."""
    import base64

    import tensorflow as tf

    from serving.layout import list_versions
    from serving.model_manager import import_custom_ops

    import_custom_ops()  # the pretrained classifier holds TF Text ops, a recommender ScaNN ops
    versions = list_versions(model_dir)
    fn = tf.saved_model.load(versions[max(versions)]).signatures["serving_default"]
    example = json.loads(body)["instances"][0]
    decoded = {k: (base64.b64decode(v["b64"]) if isinstance(v, dict) else
                   [base64.b64decode(x["b64"]) for x in v] if isinstance(v, list) else v) for k, v in example.items()}
    costs = {}
    for n in batch_sizes:
        feed = {k: tf.constant([v] * n) for k, v in decoded.items()}
        fn(**feed)
        began, calls = time.perf_counter(), 0
        while time.perf_counter() - began < seconds:
            fn(**feed)
            calls += 1
        costs[n] = (time.perf_counter() - began) / calls / n * 1000
    return costs


class ServerProcess:
    def __init__(self, model_base: str, batching: bool, max_batch_size: int, timeout_us: int, threads: int):
        self.port, self.grpc_port = _free_port(), _free_port()
        command = [sys.executable, "-m", "serving", "serve", "--model-base", model_base, "--rest-port", str(self.port),
                   "--grpc-port", str(self.grpc_port), "--poll-interval", "0", "--access-log", ""]
        if batching:
            command += ["--enable-batching", "--max-batch-size", str(max_batch_size), "--batch-timeout-micros",
                        str(timeout_us), "--num-batch-threads", str(threads)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise RuntimeError("server did not become healthy in 300 s")

    def stop(self) -> None:
        self.process.send_signal(2)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-base", help="real exports (default: build stand-in models in a temporary folder)")
    parser.add_argument("--classifier", default="classifier", help="classifier model name")
    parser.add_argument("--recommender", default="recommender_bruteforce", help="recommender model name")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts (default 1,8,32)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per cell (default 8)")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-timeout-micros", type=int, default=2000)
    parser.add_argument("--num-batch-threads", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=112, help="frame/cover size sent and of the stand-in")
    parser.add_argument("--num-frames", type=int, default=8, help="frames of the stand-in classifier")
    parser.add_argument("--num-items", type=int, default=10_000, help="catalogue size of the stand-in recommender")
    parser.add_argument("--protocol", default="rest",
                        help="comma-separated client protocols: rest, grpc (default rest)")
    parser.add_argument("--no-in-process", action="store_true",
                        help="skip the in-process rows (the model called in this process, no server)")
    parser.add_argument("--tasks", default="classify,recommend", help="comma-separated: classify, recommend")
    parser.add_argument("--no-model-cost", action="store_true",
                        help="skip the in-process ms/example of the classifier at batch sizes 1, 8, 32")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    levels = [int(c) for c in args.concurrency.split(",")]
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    protocols = [p.strip() for p in args.protocol.split(",") if p.strip()]
    if not protocols or set(protocols) - {"rest", "grpc"}:
        parser.error(f"--protocol: comma-separated rest, grpc (got {args.protocol!r})")
    paths = protocols + ([] if args.no_in_process else ["in-process"])
    models = {"classify": args.classifier, "recommend": args.recommender}

    tmp = None
    base = args.model_base
    if base is None:
        tmp = tempfile.TemporaryDirectory(prefix="serving-bench-")
        base = tmp.name
        print(f"no --model-base: building STAND-IN models (classifier: JPEG decode + MobileNetV2, random weights, on the "
              f"cover and {args.num_frames} frames at {args.image_size}px, hashed words for the brief (no MiniLM); "
              f"recommender: "
              f"brute-force top-10 over {args.num_items} items x 64 dims)", flush=True)
        build_standins(base, args.num_frames, args.image_size, args.num_items, classifier="classify" in tasks)
    results: Dict[tuple, Dict[str, float]] = {}
    bodies = None

    def report(task, path, concurrency, batching, cell):
        results[(task, path, concurrency, batching)] = cell
        print(f"  {task:9s} {path:10s} c={concurrency:<3d} batching={'on ' if batching else 'off'} "
              f"{cell['rps']:8.1f} req/s  p50 {cell['p50']:7.1f} ms  p99 {cell['p99']:7.1f} ms  "
              f"CPU {cell['cpu_ms']:7.2f} ms/req  errors {cell['errors']}", flush=True)

    try:
        for batching in (False, True):
            server = ServerProcess(base, batching, args.max_batch_size, args.batch_timeout_micros, args.num_batch_threads)
            try:
                if bodies is None:
                    bodies = payloads(server.url, args.classifier if "classify" in tasks else None, args.recommender,
                                      args.image_size)
                for task in tasks:
                    for protocol in protocols:
                        for concurrency in levels:
                            cpu = functools.partial(process_cpu_seconds, server.process.pid)
                            if protocol == "grpc":
                                cell = run_grpc_load(f"127.0.0.1:{server.grpc_port}",
                                                     grpc_request(models[task], bodies[task]), concurrency, args.seconds,
                                                     cpu=cpu)
                            else:
                                cell = run_load(f"{server.url}/v1/models/{models[task]}:predict", bodies[task],
                                                concurrency, args.seconds, cpu=cpu)
                            report(task, protocol, concurrency, batching, cell)
            finally:
                server.stop()
            if not args.no_in_process:  # the server is stopped: the machine is this process's alone
                from serving.batching import BatchingConfig

                config = BatchingConfig(args.max_batch_size, args.batch_timeout_micros, args.num_batch_threads) \
                    if batching else None
                for task in tasks:
                    with loaded_in_process(os.path.join(base, models[task]), bodies[task], config) as send:
                        for concurrency in levels:
                            report(task, "in-process", concurrency, batching,
                                   run_inprocess_load(send, concurrency, args.seconds))
        costs = None if args.no_model_cost or "classify" not in tasks else model_cost(
            os.path.join(base, args.classifier), bodies["classify"])
    finally:
        if tmp:
            tmp.cleanup()

    print()
    print(f"{', '.join(paths)}; 1 example per request, {args.seconds:g} s per cell, {os.cpu_count()} CPU(s); "
          f"batching: max_batch_size {args.max_batch_size}, batch_timeout_micros {args.batch_timeout_micros}, "
          f"{args.num_batch_threads} batch thread(s)"
          + ("; STAND-IN models" if tmp else f"; models from {args.model_base}: "
             + ", ".join(models[t] for t in tasks)))
    print("| task | path | clients | unbatched req/s | p50 / p99 ms | CPU ms/req | batched req/s | p50 / p99 ms "
          "| CPU ms/req | batched / unbatched req/s |")
    print("|" + "---|" * 10)
    for task in tasks:
        for path in paths:
            for concurrency in levels:
                off, on = results[(task, path, concurrency, False)], results[(task, path, concurrency, True)]
                print(f"| {task} | {path} | {concurrency} | {off['rps']:.1f} | {off['p50']:.1f} / {off['p99']:.1f} "
                      f"| {off['cpu_ms']:.2f} | {on['rps']:.1f} | {on['p50']:.1f} / {on['p99']:.1f} | {on['cpu_ms']:.2f} "
                      f"| {on['rps'] / off['rps']:.2f}x |")
    print("CPU ms/req: the server process's CPU time per request (REST, gRPC), or this process's (in-process)")
    if costs:
        print("\nclassifier in-process, no server: " + ", ".join(
            f"batch {n}: {ms:.1f} ms/example" for n, ms in costs.items())
              + " (what batching can save at most on this machine)")
    errors = sum(cell["errors"] for cell in results.values())
    top = max(levels)
    if "classify" in tasks:
        ratio = results[("classify", paths[0], top, True)]["rps"] / results[("classify", paths[0], top, False)]["rps"]
        verdict = "met" if ratio >= 3 else "NOT met"
        print(f"\nclassify at concurrency {top} ({paths[0]}): batched {ratio:.2f}x unbatched (goal >= 3x: {verdict})")
    print(f"{errors} failed requests")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
