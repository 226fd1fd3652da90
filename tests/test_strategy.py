"""tf.distribute: MirroredStrategy over two logical CPUs matches the default strategy; two local workers
with TF_CONFIG train together. Each job runs in its own process."""
import json
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(strategy, out, env_extra=None, wait=True):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})}
    env.pop("TF_CONFIG", None) if not env_extra else None
    process = subprocess.Popen([sys.executable, "-m", "tests.strategy_job", strategy, str(out)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if wait:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output[-3000:]
    return process


def _read(path):
    with open(path) as handle:
        return json.load(handle)


def test_mirrored_matches_default_first_step(tmp_path):
    _run("default", tmp_path / "default.json")
    _run("mirrored", tmp_path / "mirrored.json")
    default, mirrored = _read(tmp_path / "default.json"), _read(tmp_path / "mirrored.json")
    assert default["replicas"] == 1 and mirrored["replicas"] == 2
    assert mirrored["first_loss"] == pytest.approx(default["first_loss"], rel=1e-5)
    assert mirrored["losses"][0] == pytest.approx(default["losses"][0], rel=1e-3)
    assert mirrored["losses"][-1] < mirrored["first_loss"]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_workers_train_together(tmp_path):
    workers = [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        processes.append(_run("multi_worker", tmp_path / f"w{index}.json", {"TF_CONFIG": tf_config}, wait=False))
    for process in processes:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output[-3000:]
    w0, w1 = _read(tmp_path / "w0.json"), _read(tmp_path / "w1.json")
    assert w0["replicas"] == w1["replicas"] == 2
    assert w0["checksum"] == pytest.approx(w1["checksum"], rel=1e-6)  # synchronised weights
    assert w0["losses"] == pytest.approx(w1["losses"], rel=1e-6)
