"""Soak test: clients on REST and gRPC for a long while against ``python -m serving serve`` (its own process)
while the model base keeps changing: every ``--swap-every`` seconds a new version is copied in, every other
time a broken version is dropped in as well, and the oldest version folder is deleted.

    python benchmarks/soak.py                                  # 120 s, 8 clients
    python benchmarks/soak.py --duration 1800 --clients 16     # the long version

Prints one line per swap (requests so far, failures, the server's memory and threads) and a summary:
requests/s, p50/p99 latency, failed requests (the goal is 0), the server's resident memory at start, peak and
end, and its thread count (bounded by the connection and RPC limits whatever the load).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load (default 120)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients, half REST, half gRPC (default 8)")
    parser.add_argument("--swap-every", type=float, default=10.0, help="seconds between version changes (default 10)")
    parser.add_argument("--work-dir", help="where the model base is built (default: a temporary folder)")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import serving  # noqa: F401  (the project's Keras switch before TensorFlow)
    from tests.serving_fixtures import build_toy_recommender
    from tests.serving_load import LoadReport, drop_broken, install, rss_bytes, run_clients

    work = args.work_dir or tempfile.mkdtemp(prefix="soak-")
    store, base = os.path.join(work, "built"), os.path.join(work, "models")
    for version in (1, 2):
        build_toy_recommender(store, version=version, name="rec")
    model_dir = os.path.join(base, "rec")
    os.makedirs(model_dir, exist_ok=True)
    install(os.path.join(store, "rec", "1"), model_dir, 1)

    server = subprocess.Popen([sys.executable, "-m", "serving", "serve", "--model-base", base, "--rest-port", "0",
                               "--grpc-port", "0", "--poll-interval", "0.5", "--access-log", ""],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ports = None
        for line in server.stdout:
            ports = re.search(r"REST http://127\.0\.0\.1:(\d+)\s+gRPC 127\.0\.0\.1:(\d+)", line)
            if ports:
                break
        if not ports:
            print("error: the server did not start", file=sys.stderr)
            return 1
        rest, grpc_port = int(ports.group(1)), int(ports.group(2))
        rss_start, rss_peak, threads_peak = rss_bytes(server.pid), 0, 0
        done, report = threading.Event(), LoadReport()
        started = time.perf_counter()
        clients = run_clients(f"http://127.0.0.1:{rest}", f"127.0.0.1:{grpc_port}", "rec", args.clients, done,
                              tail_requests=10, report=report)
        version, swaps = 1, 0
        while time.perf_counter() - started < args.duration:
            time.sleep(min(args.swap_every, max(0.0, args.duration - (time.perf_counter() - started))))
            swaps += 1
            version += 1
            install(os.path.join(store, "rec", str(1 + version % 2)), model_dir, version)
            if swaps % 2 == 0:
                version += 1
                drop_broken(model_dir, version)
            oldest = min(int(v) for v in os.listdir(model_dir) if v.isdigit())
            if oldest < version - 2:
                shutil.rmtree(os.path.join(model_dir, str(oldest)))
            rss_peak = max(rss_peak, rss_bytes(server.pid))
            threads_peak = max(threads_peak, _threads(server.pid))
            print(f"{time.perf_counter() - started:7.1f}s  swap {swaps}: version {version}  requests "
                  f"{report.requests}  failed {len(report.failures)}  server RSS {rss_bytes(server.pid) >> 20} MiB  "
                  f"threads {_threads(server.pid)}", flush=True)
        done.set()
        for thread in clients:
            thread.join(timeout=120)
        report.seconds = time.perf_counter() - started
        rss_end = rss_bytes(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    summary = report.summary() | {"clients": args.clients, "swaps": swaps, "seconds": round(report.seconds, 1),
                                  "server_rss_mib": {"start": rss_start >> 20, "peak": max(rss_peak, rss_end) >> 20,
                                                     "end": rss_end >> 20},
                                  "server_threads_peak": threads_peak}
    for failure in report.failures[:5]:
        print(f"failure: {failure}", file=sys.stderr)
    print(json.dumps(summary))
    return 0 if not report.failures else 1


if __name__ == "__main__":
    sys.exit(main())
