"""The main command end to end on the small demo dataset: prepare, train, evaluate, embed."""
import dataclasses
import json
import os

import keras
import pytest

import train_multimodal_baseline_model as main_job
from baseline_model.__main__ import main as baseline_cli
from data_interface_for_model.embeddings_file import read_embeddings

TINY = ["--frames", "2", "--image-size", "32", "--batch-size", "16", "--quiet"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def _check_report(run_dir, kind):
    with open(os.path.join(run_dir, "report.json")) as handle:
        report = json.load(handle)
    assert report["model"] == kind and report["split"] == "test" and report["examples"] > 0
    for key in ("accuracy", "top5_accuracy", "macro_f1"):
        assert 0.0 <= report[key] <= 1.0
    for condition in ("text_only", "cover_only", "video_only"):
        assert set(report[condition]) == {"accuracy", "top5_accuracy", "macro_f1"}
    assert len(report["per_class"]) == 31 and len(report["confusion_matrix"]) == 31
    assert os.path.getsize(report["confusion_matrix_png"]) > 1000
    return report


def test_seed_baseline_trains_evaluates_and_embeds(demo_root, data_dir, tmp_path, capsys):
    run_dir = str(tmp_path / "seed_run")
    rc = main_job.main(["--data-root", demo_root, "--data-dir", data_dir, "--output", run_dir, "--model",
                        "seed_baseline", "--epochs", "2", "--no-export", *TINY])
    assert rc == 0
    assert "test accuracy" in capsys.readouterr().out
    assert os.path.isfile(os.path.join(run_dir, "model.keras"))
    assert os.path.isdir(os.path.join(run_dir, "logs"))
    _check_report(run_dir, "seed_baseline")

    out_json = str(tmp_path / "val.json")
    assert baseline_cli(["evaluate", "--run", run_dir, "--split", "validation", "--json", out_json]) == 0
    with open(out_json) as handle:
        validation = json.load(handle)
    with open(os.path.join(run_dir, "history.json")) as handle:
        history = json.load(handle)
    # The saved model is the best checkpoint, and evaluation pairs every prediction with its own label.
    assert validation["split"] == "validation"
    assert validation["accuracy"] == pytest.approx(max(history["val_accuracy"]), abs=1e-6)

    embeddings = str(tmp_path / "items.npz")
    assert baseline_cli(["embed", "--run", run_dir, "--data-root", demo_root, "--out", embeddings]) == 0
    table = read_embeddings(embeddings)
    assert len(table) == 62 and table.dimension == 100 and len(set(table.labels.tolist())) == 31


def test_pretrained_trains_on_cached_features(demo_root, data_dir, tmp_path):
    run_dir = str(tmp_path / "pre_run")
    rc = main_job.main(["--data-root", demo_root, "--data-dir", data_dir, "--output", run_dir, "--epochs", "3",
                        "--no-export", *TINY])
    assert rc == 0
    report = _check_report(run_dir, "pretrained")
    caches = [f for _, _, files in os.walk(os.path.join(data_dir, "feature_cache")) for f in files]
    assert sorted(caches) == ["test.npz", "train.npz", "validation.npz"]
    with open(os.path.join(run_dir, "run_config.json")) as handle:
        assert json.load(handle)["model"]["embedding_dim"] == 256
    assert report["examples"] > 0


def test_pretrained_fine_tunes_end_to_end(demo_root, data_dir, tmp_path):
    """--fine-tune-top-layers trains from pixels (no feature cache) and the run reloads for evaluation."""
    run_dir = str(tmp_path / "fine_tuned")
    rc = main_job.main(["--data-root", demo_root, "--data-dir", data_dir, "--output", run_dir, "--epochs", "1",
                        "--fine-tune-top-layers", "1", "--no-export", *TINY])
    assert rc == 0
    assert os.path.isfile(os.path.join(run_dir, "classifier.weights.h5"))
    assert not os.path.exists(os.path.join(run_dir, "model.keras"))
    _check_report(run_dir, "pretrained")
    out_json = str(tmp_path / "val.json")
    assert baseline_cli(["evaluate", "--run", run_dir, "--split", "validation", "--json", out_json]) == 0
    with open(out_json) as handle, open(os.path.join(run_dir, "history.json")) as history:
        assert json.load(handle)["accuracy"] == pytest.approx(max(json.load(history)["val_accuracy"]), abs=1e-6)


def test_bad_arguments_fail_cleanly(tmp_path, capsys):
    assert main_job.main(["--data-root", str(tmp_path / "missing"), "--quiet"]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert baseline_cli(["evaluate", "--run", str(tmp_path)]) == 2
    assert "run_config.json" in capsys.readouterr().err


class _KilledAfterFirstEpoch(keras.callbacks.Callback):
    """Stands for a run killed after its first epoch was backed up."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt("killed")


def test_resume_continues_from_the_last_epoch(demo_root, data_dir, tmp_path):
    from baseline_model.config import TrainConfig
    from baseline_model.data import prepare
    from baseline_model.kinds import SeedBaselineConfig
    from baseline_model.train import train_run

    model = SeedBaselineConfig(num_frames=2, image_size=32, conv3d_blocks=1)
    train = TrainConfig(data_root=demo_root, data_dir=data_dir, output=str(tmp_path / "run"), epochs=3,
                        batch_size=16)
    prepare(train, model)
    with pytest.raises(KeyboardInterrupt):
        train_run(model, train, verbose=0, extra_callbacks=[_KilledAfterFirstEpoch()])
    assert os.path.isdir(os.path.join(train.output, "backup"))
    resumed = train_run(model, dataclasses.replace(train, resume=True), verbose=0)
    assert resumed.epochs_run == 2  # epochs 2 and 3 only
    assert not os.path.isdir(os.path.join(train.output, "backup"))  # removed once training finished
    fresh = train_run(model, train, verbose=0)  # without --resume a run starts over
    assert fresh.epochs_run == 3


@pytest.mark.slow
def test_own_labels_train_evaluate_export_and_embed_end_to_end(demo_root, tmp_path, capsys):
    """A dataset with five labels of its own: the run, its report, its export and its embeddings use them."""
    import tensorflow as tf

    from tests.test_label_set import _custom_root

    names = ["alpha", "beta", "gamma", "delta", "epsilon"]
    root = _custom_root(demo_root, str(tmp_path / "own"), names)
    run_dir, models = str(tmp_path / "run"), str(tmp_path / "models")
    rc = main_job.main(["--data-root", root, "--data-dir", str(tmp_path / "tfds"), "--output", run_dir, "--model",
                        "seed_baseline", "--epochs", "1", "--model-base", models, *TINY])
    assert rc == 0
    out = capsys.readouterr().out
    assert "vs linear probe" in out and "warning:" in out  # 2 test items: far below a reliable count
    with open(os.path.join(run_dir, "run_config.json")) as handle:
        assert json.load(handle)["labels"] == sorted(names)
    with open(os.path.join(run_dir, "report.json")) as handle:
        report = json.load(handle)
    assert sorted(report["per_class"]) == sorted(names) and len(report["confusion_matrix"]) == 5
    assert report["linear_probe"]["examples"] == report["examples"]
    lo, hi = report["accuracy_interval"]
    assert 0.0 <= lo <= report["accuracy"] <= hi <= 1.0

    exported = tf.saved_model.load(os.path.join(models, "classifier", "1"))
    result = exported.signatures["serving_default"](brief=tf.constant(["a clip"]), cover=tf.constant([b""]),
                                                     frames=tf.zeros([1, 0], tf.string))
    assert result["probabilities"].shape == (1, 5)
    assert result["label"].numpy()[0].decode() in names

    embeddings = str(tmp_path / "items.parquet")
    assert baseline_cli(["embed", "--run", run_dir, "--data-root", root, "--output", embeddings]) == 0
    table = read_embeddings(embeddings)
    assert len(table) == 10 and set(table.labels.tolist()) == set(names)
