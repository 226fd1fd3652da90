"""TF Serving layout, models.config / docker-compose writers, the export verb's wiring, batching, JSON tensors."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import __main__ as cli
from serving import export as export_module
from serving.batching import Batcher, BatchingConfig
from serving.errors import ServingError
from serving.layout import (LayoutError, ModelConfig, VersionPolicy, list_versions, load_model_base,
                            models_config_text, parse_models_config, parse_version_labels)
from serving.signatures import Signature, TensorInfo
from serving.tensor_json import decode_request, encode_response


def _fake_version(base, name, version, scann=False):
    path = os.path.join(base, name, str(version))
    os.makedirs(os.path.join(path, "variables"), exist_ok=True)
    with open(os.path.join(path, "saved_model.pb"), "wb") as handle:
        handle.write(b"\x08\x01graph" + (b"Scann>ScannSearchBatched" if scann else b"MatMul"))
    return path


def test_versions_and_policies(tmp_path):
    base = str(tmp_path)
    for version in (1, 3, 12):
        _fake_version(base, "m", version)
    os.makedirs(os.path.join(base, "m", "7"))            # no saved_model.pb: not a version
    os.makedirs(os.path.join(base, "m", ".13.part"))      # temporary name: ignored
    _fake_version(base, "m", "2x")                        # not all digits: ignored
    assert sorted(list_versions(os.path.join(base, "m"))) == [1, 3, 12]
    assert VersionPolicy().select([1, 3, 12]) == [12]
    assert VersionPolicy.parse("latest:2").select([1, 3, 12]) == [3, 12]
    assert VersionPolicy.parse("all").select([3, 1]) == [1, 3]
    assert VersionPolicy.parse("specific:1,12").select([1, 3, 12]) == [1, 12]
    for bad in ("newest", "latest:0", "specific:", "latest:x"):
        with pytest.raises(LayoutError):
            VersionPolicy.parse(bad)
    assert parse_version_labels("stable=1, canary=2") == {"stable": 1, "canary": 2}
    with pytest.raises(LayoutError):
        parse_version_labels("stable")
    with pytest.raises(LayoutError):
        ModelConfig("../escape", base)


def test_models_config_round_trip_is_a_model_server_config():
    configs = [ModelConfig("classifier", "/models/classifier", VersionPolicy("all"), {"stable": 1, "canary": 2}),
               ModelConfig("recommender_scann", "/models/recommender_scann", VersionPolicy("specific", versions=(4,)))]
    text = models_config_text(configs)
    proto = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())  # what tensorflow_model_server reads
    entries = proto.model_config_list.config
    assert [(e.name, e.base_path, e.model_platform) for e in entries] == [
        ("classifier", "/models/classifier", "tensorflow"), ("recommender_scann", "/models/recommender_scann", "tensorflow")]
    assert dict(entries[0].version_labels) == {"stable": 1, "canary": 2}
    assert list(entries[1].model_version_policy.specific.versions) == [4]
    assert parse_models_config(text) == configs
    with pytest.raises(LayoutError):
        parse_models_config("model_config_list { config { nme: 'x' } }")


def test_export_configs_and_compose(tmp_path):
    base = str(tmp_path)
    for name in ("classifier", "embedder", "recommender_bruteforce"):
        _fake_version(base, name, 1)
    _fake_version(base, "recommender_scann", 1, scann=True)
    written = export_module.write_serving_configs(base, BatchingConfig(max_batch_size=16))
    assert set(written) == {"models.config", "models.stock.config", "models.scann.config", "batching_parameters.txt",
                            "docker-compose.yml"}
    stock = parse_models_config(open(written["models.stock.config"]).read())
    scann = parse_models_config(open(written["models.scann.config"]).read())
    assert [c.name for c in stock] == ["classifier", "embedder", "recommender_bruteforce"]
    assert [(c.name, c.base_path) for c in scann] == [("recommender_scann", "/models/recommender_scann")]
    compose = open(written["docker-compose.yml"]).read()
    services = re.findall(r"^  (\S+):\n    image: (\S+)$", compose, flags=re.M)
    assert services == [("tf-serving", "tensorflow/serving"), ("tf-serving-scann", "google/tf-serving-scann")]
    assert "--model_config_file=/models/models.scann.config" in compose and "--enable_batching=true" in compose
    ports = re.findall(r'^      - "(\S+:\d+:\d+)"$', compose, flags=re.M)
    assert len(ports) == 4 and all(p.startswith("127.0.0.1:") for p in ports)  # never all interfaces
    assert "max_batch_size { value: 16 }" in open(written["batching_parameters.txt"]).read()
    # this project's server reads the same models.config: container paths map onto the model base
    assert [(c.name, c.base_path) for c in load_model_base(base)][-1] == (
        "recommender_scann", os.path.join(base, "recommender_scann"))


def test_export_verb_wiring(tmp_path, monkeypatch, capsys):
    base, run = str(tmp_path / "models"), str(tmp_path / "run")
    os.makedirs(run)
    assert cli.main(["export", "--model-base", base]) == 2  # no run given
    assert "--classifier-run" in capsys.readouterr().err
    monkeypatch.setitem(export_module.EXPORTERS, "retrieval", ("retrieval.no_such_module", "export_run"))
    assert cli.main(["export", "--recommender-run", run, "--model-base", base, "--quiet"]) == 2
    assert "does not exist in this checkout" in capsys.readouterr().err

    calls = []

    def fake_export_run(run_dir, export_base, version=None):
        calls.append((run_dir, export_base, version))
        return {"recommender_scann": _fake_version(export_base, "recommender_scann", version or 1, scann=True)}

    monkeypatch.setattr(export_module, "exporter", lambda kind: fake_export_run)
    # the old spellings (--retrieval, --base) are hidden aliases of --recommender-run and --model-base
    assert cli.main(["export", "--retrieval", run, "--base", base, "--version", "5", "--quiet"]) == 0
    assert calls == [(run, base, 5)]
    assert "google/tf-serving-scann" in open(os.path.join(base, "docker-compose.yml")).read()
    assert "exported 1 model version(s)" in capsys.readouterr().out


def test_serve_verb_refuses_bad_input(tmp_path, capsys):
    assert cli.main(["serve", "--model-base", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "m").mkdir()
    assert cli.main(["serve", "--model-base", str(tmp_path), "--version-labels", "other:stable=1"]) == 2
    assert "unknown model 'other'" in capsys.readouterr().err


def test_serve_reads_the_batching_parameters_that_export_wrote(tmp_path):
    from serving.__main__ import _serve_batching, build_parser
    from serving.batching import BatchingConfig
    from serving.export import write_serving_configs

    base = str(tmp_path)
    os.makedirs(os.path.join(base, "m", "1"))
    open(os.path.join(base, "m", "1", "saved_model.pb"), "wb").close()
    serve = lambda *flags: _serve_batching(build_parser().parse_args(["serve", "--model-base", base, *flags]))  # noqa: E731
    assert serve() is None
    assert serve("--enable-batching", "--max-batch-size", "4") == BatchingConfig(max_batch_size=4)
    write_serving_configs(base, BatchingConfig(max_batch_size=16, batch_timeout_micros=500))
    assert serve("--enable-batching").max_batch_size == 16  # MODELS/batching_parameters.txt, from export
    assert serve("--enable-batching").batch_timeout_micros == 500
    assert serve() is None  # the file alone does not turn batching on


# ----------------------------------------------------------------------------------------------- batching
def test_batcher_merges_concurrent_requests_and_isolates_failures():
    calls = []

    def fn(inputs):
        calls.append(len(inputs["x"]))
        if (inputs["x"] < 0).any():
            raise ValueError("negative input")
        time.sleep(0.01)
        return {"y": inputs["x"] * 2}

    batcher = Batcher(fn, BatchingConfig(max_batch_size=8, batch_timeout_micros=50_000, num_batch_threads=1))
    results, errors = {}, {}

    def request(i):
        try:
            results[i] = batcher({"x": np.array([i, i + 100] if i != 5 else [-1, -1])})["y"].tolist()
        except ValueError as exc:
            errors[i] = str(exc)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    batcher.stop()
    assert results == {i: [2 * i, 2 * i + 200] for i in range(12) if i != 5}
    assert errors == {5: "negative input"}          # the bad request fails alone
    assert max(calls) > 2 and max(calls) <= 8        # requests were merged, never beyond max_batch_size
    assert sum(calls) >= 24


def test_batcher_queue_limit():
    release = threading.Event()
    batcher = Batcher(lambda inputs: (release.wait(5), inputs)[1],
                      BatchingConfig(max_batch_size=2, batch_timeout_micros=0, num_batch_threads=1,
                                     max_enqueued_batches=1))
    threads = [threading.Thread(target=lambda: batcher({"x": np.zeros((2, 1))})) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.2)  # first runs (blocked), second waits in the queue
    with pytest.raises(ServingError) as err:
        batcher({"x": np.zeros((2, 1))})
    assert err.value.code == "UNAVAILABLE"
    release.set()
    for thread in threads:
        thread.join()
    batcher.stop()


# ----------------------------------------------------------------------------------------------- JSON tensors
SIG = Signature("s", {"a": TensorInfo("float32", (None, 2)), "b": TensorInfo("string", (None,))},
                {"out_bytes": TensorInfo("string", (None,)), "n": TensorInfo("int64", (None,))}, fn=None)


def test_json_rows_and_columns_agree():
    rows, row_format = decode_request({"instances": [{"a": [1, 2], "b": {"b64": "AP8="}}, {"a": [3, 4], "b": "x"}]}, SIG)
    cols, col_format = decode_request({"inputs": {"a": [[1, 2], [3, 4]], "b": [{"b64": "AP8="}, "x"]}}, SIG)
    assert row_format and not col_format
    for name in ("a", "b"):
        assert rows[name].tolist() == cols[name].tolist()
    assert rows["b"].tolist() == [b"\x00\xff", b"x"] and rows["a"].dtype == np.float32
    outputs = {"out_bytes": np.array([b"\x00", b"ok"], dtype=object), "n": np.array([1, 2])}
    assert encode_response(outputs, True) == {"predictions": [{"out_bytes": {"b64": "AA=="}, "n": 1},
                                                             {"out_bytes": {"b64": "b2s="}, "n": 2}]}
    assert encode_response(outputs, False) == {"outputs": {"out_bytes": [{"b64": "AA=="}, {"b64": "b2s="}], "n": [1, 2]}}


@pytest.mark.parametrize("body, words", [
    ({"instances": [{"a": [1, 2]}]}, "missing"),
    ({"instances": [[1, 2]]}, "object keyed by input name"),
    ({"inputs": {"a": [[1, True]], "b": ["x"]}}, "expected numbers"),
    ({"inputs": {"a": [[1, 2]], "b": [{"b64": 5}]}}, "must hold a string"),
    ({"inputs": [1], "extra": 1}, "unknown request field"),
])
def test_json_errors(body, words):
    with pytest.raises(ServingError) as err:
        decode_request(body, SIG)
    assert err.value.code == "INVALID_ARGUMENT" and words in err.value.message


def test_serve_cli_end_to_end_with_a_scann_index(tmp_path):
    """``python -m serving serve`` in a fresh process: loads a ScaNN index (custom ops: the server imports
    scann first), answers like the model loaded in-process, writes the access log, stops on SIGINT."""
    import requests
    import tensorflow as tf

    from serving.client import RestClient, recommend, similar_items
    from tests.serving_fixtures import build_toy_recommender

    path = build_toy_recommender(str(tmp_path / "models"), name="recommender_scann", scann=True)
    assert export_module.uses_scann_ops(path)
    want = tf.saved_model.load(path).signatures["similar_items"](item_id=tf.constant(["item004"]))
    log = tmp_path / "access.log"
    process = subprocess.Popen([sys.executable, "-m", "serving", "serve", "--model-base", str(tmp_path / "models"),
                                "--rest-port", "0", "--grpc-port", "0", "--enable-batching", "--access-log", str(log)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in process.stdout:
            match = re.search(r"REST http://127\.0\.0\.1:(\d+)", line)
            if match:
                port = int(match.group(1))
                break
        assert port, process.stderr.read()
        client = RestClient(f"http://127.0.0.1:{port}")
        got = similar_items(client, "item004", model="recommender_scann")
        assert [i for i, _ in got] == [i.decode() for i in want["item_ids"].numpy()[0]]
        np.testing.assert_allclose([s for _, s in got], want["scores"].numpy()[0], rtol=1e-5)
        assert len(recommend(client, ["item001", "item002"], "recommender_scann")) == 5
        assert requests.get(f"http://127.0.0.1:{port}/v1/models/nope").status_code == 404
    finally:
        process.send_signal(2)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "server stopped" in out
    lines = log.read_text().splitlines()
    assert any('"POST /v1/models/recommender_scann:predict" 200' in line for line in lines)
    assert any('"GET /v1/models/nope" 404' in line for line in lines)

