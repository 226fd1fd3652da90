"""RunInference over our Keras 3 exports (DirectRunner): the same embeddings as the single-process `embed`,
the same predictions as the SavedModel called in one process; sharded parquet the recommender can read."""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest

# the Beam extra (pip install -e ".[beam]"; CI installs it): without it these tests skip, saying why
pytest.importorskip("apache_beam", reason="Apache Beam is an optional extra: pip install -e \".[beam]\"")

from baseline_model.beam_inference import (
    SavedModelHandler,
    call_signature,
    parse_example,
    read_output,
    run_beam_inference,
)
from data_interface_for_model.beam_prepare import BeamOptions


@pytest.fixture(scope="module")
def exported_run(demo_root, tmp_path_factory):
    """A tiny untrained seed-baseline run (4 frames of 32 px), exported, with the demo prepared for it and its
    single-process embeddings: ``(run_dir, paths, data_dir, (ids, labels, vectors))``."""
    from baseline_model.config import TrainConfig, save_run_config
    from baseline_model.embed import embed_dataset
    from baseline_model.export import export_run
    from baseline_model.kinds import SeedBaselineConfig
    from baseline_model.models import build_seed_baseline
    from baseline_model.run import load_run
    from data_interface_for_model.categories import LABELS

    run_dir = str(tmp_path_factory.mktemp("beam_run"))
    config = SeedBaselineConfig(num_frames=4, image_size=32, conv3d_blocks=2)
    model = build_seed_baseline(config, ["beach sand waves", "city skyline at night", "stars in the sky"])
    save_run_config(run_dir, config, TrainConfig(output=run_dir), LABELS)
    model.save(os.path.join(run_dir, "model.keras"))
    paths = export_run(run_dir)
    data_dir = str(tmp_path_factory.mktemp("beam_data"))
    single = embed_dataset(load_run(run_dir), demo_root, data_dir)
    return run_dir, paths, data_dir, single


@pytest.mark.slow
def test_beam_embed_matches_single_process_embed(exported_run, tmp_path):
    from data_interface_for_model.embeddings_file import read_embeddings

    _, paths, data_dir, (ids, labels, vectors) = exported_run
    report = run_beam_inference(paths["embedder"], data_dir, str(tmp_path / "out"), "embed", num_frames=4, size=32,
                                beam_options=BeamOptions(workers=2, running_mode="multi_processing"),
                                num_shards=2)
    assert report.items == len(ids) and len(report.shards) == 2
    frame = read_output(str(tmp_path / "out"), "embed")
    order = np.argsort(ids)
    assert frame["mp4_id"].tolist() == ids[order].tolist()
    assert frame["label"].tolist() == labels[order].tolist()
    assert sorted(set(frame["split"])) == ["test", "train", "validation"]
    beam_vectors = np.stack(frame["embedding"].to_numpy()).astype(np.float32)
    np.testing.assert_allclose(beam_vectors, vectors[order], rtol=1e-4, atol=1e-5)
    # every non-empty shard is a valid embedding file on its own (with two shards of ~60 items, Beam may
    # leave one empty)
    import pyarrow.parquet as pq

    filled = [shard for shard in report.shards if pq.ParquetFile(shard).metadata.num_rows]
    assert sum(len(read_embeddings(shard)) for shard in filled) == len(ids)
    with pytest.raises(FileExistsError):
        run_beam_inference(paths["embedder"], data_dir, str(tmp_path / "out"), "embed", num_frames=4, size=32,
                           beam_options=BeamOptions(workers=1, running_mode="in_memory"))


def test_beam_predict_matches_the_saved_model_in_one_process(exported_run, tmp_path):
    import tensorflow as tf

    _, paths, data_dir, (ids, _, _) = exported_run
    run_beam_inference(paths["classifier"], data_dir, str(tmp_path / "pred"), "predict", num_frames=4, size=32,
                       beam_options=BeamOptions(workers=1, running_mode="in_memory"), max_batch_size=16)
    frame = read_output(str(tmp_path / "pred"), "predict")
    assert frame["mp4_id"].tolist() == sorted(ids.tolist())

    keys, examples = [], []
    for shard in glob.glob(os.path.join(data_dir, "xinpianchang", "frames4_size32", "*", "*.tfrecord-*")):
        for record in tf.data.TFRecordDataset(shard).as_numpy_iterator():
            key, example = parse_example(record, "x")
            keys.append(key[0])
            examples.append(example)
    handler = SavedModelHandler(paths["classifier"])
    expected = call_signature(handler.load_model().signatures["serving_default"], examples)
    order = np.argsort(keys)
    np.testing.assert_allclose(np.stack(frame["probabilities"].to_numpy()), expected["probabilities"][order],
                               rtol=1e-4, atol=1e-6)
    assert frame["predicted_label_id"].tolist() == expected["label_id"][order].tolist()
    assert frame["predicted_label"].tolist() == [s.decode() for s in expected["label"][order]]
    np.testing.assert_allclose(frame["probability"], expected["probabilities"][order].max(axis=1), rtol=1e-5)


def test_handler_pads_ragged_frames_and_names_a_missing_signature(exported_run):
    _, paths, _, _ = exported_run
    handler = SavedModelHandler(paths["embedder"], max_batch_size=8)
    model = handler.load_model()
    batch = [{"brief": "a", "cover": b"", "frames": []}, {"brief": "", "cover": b"", "frames": [b"", b""]}]
    results = list(handler.run_inference(batch, model))
    assert [r.example for r in results] == batch and results[0].inference["embedding"].ndim == 1
    assert handler.batch_elements_kwargs() == {"min_batch_size": 1, "max_batch_size": 8}
    with pytest.raises(KeyError, match="no signature 'embed'"):
        SavedModelHandler(paths["embedder"], "embed").load_model()
    with pytest.raises(FileNotFoundError, match="saved_model.pb"):
        run_beam_inference(os.path.dirname(paths["embedder"]), "x", "y")


def test_verb_needs_a_model_and_an_output(tmp_path):
    import argparse

    from baseline_model.beam_inference import inference_verb
    from data_interface_for_model.cli import UsageError

    args = argparse.Namespace(runner="direct", pipeline_options=[], data_dir=str(tmp_path), output=str(tmp_path))
    with pytest.raises(UsageError, match="--run RUN"):
        inference_verb(args, "embed")
    with pytest.raises(FileNotFoundError, match="run_config.json"):
        inference_verb(argparse.Namespace(**vars(args), run=str(tmp_path)), "predict")


# ------------------------------------------------------------------------------------------ predict over videos
from tests.test_predict import videos  # noqa: E402,F401  pylint: disable=unused-import  (3 clips + a corrupt one)


def _csv_rows(paths):
    import csv

    rows = []
    for path in paths:
        with open(path, newline="", encoding="utf-8") as handle:
            rows += list(csv.DictReader(handle))
    return {row["id"]: row for row in rows}


def test_beam_predict_over_videos_matches_single_process_predict(exported_run, videos, tmp_path, capsys):
    import json

    from baseline_model.__main__ import main as baseline_cli

    run_dir = exported_run[0]
    single = str(tmp_path / "single.csv")
    assert baseline_cli(["predict", "--run", run_dir, "--input", videos, "--output", single, "--top-k", "3",
                         "--quiet"]) == 1
    capsys.readouterr()
    out = str(tmp_path / "beam.csv")
    rc = baseline_cli(["predict", "--run", run_dir, "--input", videos, "--output", out, "--top-k", "3",
                       "--runner", "direct", "--pipeline-option", "direct_running_mode=in_memory",
                       "--pipeline-option", "direct_num_workers=1", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 1  # the corrupt clip: named, skipped, counted; the pipeline itself succeeded
    assert "broken.mp4" in captured.err and "predict: 3 clips" in captured.out and "1 unreadable" in captured.out
    expected = _csv_rows([single])
    got = _csv_rows(sorted(glob.glob(str(tmp_path / "beam-*-of-*.csv"))))
    assert sorted(got) == sorted(expected) == ["full", "nobrief", "nocover"]
    for item_id, row in expected.items():
        assert got[item_id]["path"] == row["path"]
        assert got[item_id]["top_labels"] == row["top_labels"]
        np.testing.assert_allclose([float(p) for p in got[item_id]["top_probabilities"].split(";")],
                                   [float(p) for p in row["top_probabilities"].split(";")], atol=2e-6)
    with open(str(tmp_path / "beam.report.json"), encoding="utf-8") as handle:
        report = json.load(handle)
    assert report["counters"] == {"decode_error": 1, "decoded": 3} and report["written"] == 3
    assert [os.path.basename(row["path"]) for row in report["failed"]] == ["broken.mp4"]
    assert report["failed"][0]["message"]
    # the parquet rows of a folder output (the same RunInference results through another sink; checked
    # without a second pipeline): the top-k, every class's probability, the sink's schema, the report's name
    import pyarrow as pa
    from apache_beam.ml.inference.base import PredictionResult

    from baseline_model.beam_inference import _output_layout, _video_row, video_schema
    from baseline_model.predict import iter_inputs
    from data_interface_for_model.categories import LABELS

    probabilities = np.random.default_rng(0).dirichlet(np.ones(31)).astype(np.float32)
    item = next(i for i in iter_inputs([videos]) if i.item_id == "full")
    row = _video_row(((0, item), PredictionResult({}, {"probabilities": probabilities})), LABELS, 3)
    best = np.argsort(-probabilities)[:3]
    assert row["top_labels"] == [LABELS[i] for i in best] and row["label"] == LABELS[best[0]]
    assert row["probability"] == pytest.approx(float(probabilities.max())) and row["path"] == item.path
    assert pa.Table.from_pylist([row], schema=video_schema()).column("id").to_pylist() == ["full"]
    assert _output_layout("/x/out")[1:3] == (".parquet", "/x/out/_predict_report.json")  # "_": pyarrow skips it
    # never mixes two runs' shards: refused before the pipeline starts
    assert baseline_cli(["predict", "--run", run_dir, "--input", videos, "--output", out, "--runner", "direct"]) == 2
    assert "already exist" in capsys.readouterr().err
