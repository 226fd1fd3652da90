"""Export in TF Serving's layout; the SavedModel, loaded in a fresh process, matches the Keras model."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from baseline_model.config import TrainConfig, save_run_config
from baseline_model.export import decode_inputs, export_run
from baseline_model.kinds import PretrainedConfig, SeedBaselineConfig
from baseline_model.models import build_seed_baseline
from baseline_model.models.submodels import embedding_submodel
from data_interface_for_model.categories import LABELS
from data_interface_for_model.tf_serving_format import next_version

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOADER = r"""
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the TF Text ops a pretrained export's tokenizer uses
inputs = np.load(sys.argv[2], allow_pickle=True)
model = tf.saved_model.load(sys.argv[1])
args = dict(brief=tf.constant(inputs["brief"].astype(object)), cover=tf.constant(inputs["cover"].astype(object)),
            frames=tf.constant(inputs["frames"].astype(object)))
out = model.signatures["serving_default"](**args)
emb = model.signatures["embed"](**args)
np.savez(sys.argv[3], probabilities=out["probabilities"].numpy(), label=out["label"].numpy().astype(str),
         label_id=out["label_id"].numpy(), embedding=emb["embedding"].numpy(),
         signatures=np.array(sorted(model.signatures.keys())))
"""


def _jpeg(seed, shape=(48, 64)):
    pixels = np.random.default_rng(seed).integers(0, 255, size=shape + (3,), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("run"))
    config = SeedBaselineConfig(num_frames=4, image_size=32, conv3d_blocks=2)
    model = build_seed_baseline(config, ["beach sand waves", "city skyline at night", "stars in the sky"])
    save_run_config(run_dir, config, TrainConfig(output=run_dir), LABELS)
    model.save(os.path.join(run_dir, "model.keras"))
    return run_dir, model, config


def test_decode_inputs_resamples_frames_and_marks_missing():
    brief = tf.constant(["a", ""])
    cover = tf.constant([_jpeg(0), b""])
    frames = tf.constant([[_jpeg(i) for i in range(6)], [b""] * 6])
    out = decode_inputs(brief, cover, frames, num_frames=4, size=16)
    assert out["cover"].shape == (2, 16, 16, 3) and out["frames"].shape == (2, 4, 16, 16, 3)
    assert float(tf.reduce_max(out["cover"][1])) == 0.0 and float(tf.reduce_max(out["frames"][1])) == 0.0
    assert 0.0 <= float(tf.reduce_min(out["cover"][0])) and float(tf.reduce_max(out["cover"][0])) <= 1.0
    none = decode_inputs(brief, cover, tf.zeros([2, 0], tf.string), num_frames=4, size=16)
    assert none["frames"].shape == (2, 4, 16, 16, 3) and float(tf.reduce_max(none["frames"])) == 0.0


def test_export_loads_in_a_fresh_process_and_matches(seed_run, tmp_path):
    run_dir, model, config = seed_run
    base = str(tmp_path / "models")
    paths = export_run(run_dir, base)
    assert paths == {"classifier": os.path.join(base, "classifier", "1"),
                     "embedder": os.path.join(base, "embedder", "1")}
    assert os.path.isfile(os.path.join(paths["classifier"], "saved_model.pb"))
    assert next_version(base, ["classifier", "embedder"]) == 2

    embedder = embedding_submodel(model)
    _compare_in_fresh_process(paths, model, embedder, config, tmp_path)


def _compare_in_fresh_process(paths, model, embedder, config, tmp_path):
    brief = np.array(["beach sand waves", "", "stars"], dtype=object)
    cover = np.array([_jpeg(1), _jpeg(2), b""], dtype=object)
    frames = np.array([[_jpeg(10 + i) for i in range(5)], [_jpeg(20 + i) for i in range(5)], [b""] * 5], dtype=object)
    np.savez(tmp_path / "inputs.npz", brief=brief, cover=cover, frames=frames)
    subprocess.run([sys.executable, "-c", LOADER, paths["classifier"], str(tmp_path / "inputs.npz"),
                    str(tmp_path / "out.npz")], check=True, cwd=ROOT, timeout=300,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    got = np.load(tmp_path / "out.npz")
    decoded = decode_inputs(tf.constant(brief.astype(str)), tf.constant(list(cover)), tf.constant(frames.tolist()),
                            config.num_frames, config.image_size)
    expected = np.asarray(model(decoded, training=False))
    np.testing.assert_allclose(got["probabilities"], expected, rtol=1e-4, atol=1e-5)
    assert got["label"].tolist() == [LABELS[i] for i in expected.argmax(axis=1)]
    np.testing.assert_allclose(got["embedding"], np.asarray(embedder(decoded, training=False)), rtol=1e-4, atol=1e-4)
    assert {"serving_default", "embed"} <= set(got["signatures"].tolist())


def test_pretrained_export_runs_end_to_end_from_raw_inputs(tmp_path):
    """MiniLM + MobileNetV2 + the fusion head, exported with in-graph JPEG decoding and tokenisation."""
    from baseline_model.models.pretrained import build_encoders, build_pretrained_classifier

    run_dir = str(tmp_path / "run")
    config = PretrainedConfig(num_frames=2, image_size=32, embedding_dim=16, fusion_dim=16)
    models = build_pretrained_classifier(config, build_encoders(config))
    save_run_config(run_dir, config, TrainConfig(output=run_dir), LABELS)
    models.head.save(os.path.join(run_dir, "model.keras"))
    paths = export_run(run_dir, str(tmp_path / "models"))
    _compare_in_fresh_process(paths, models.classifier, models.embedder, config, tmp_path)


def test_versions_are_immutable(seed_run, tmp_path):
    run_dir, _, _ = seed_run
    base = str(tmp_path / "models")
    export_run(run_dir, base, version=7)
    with pytest.raises(FileExistsError):
        export_run(run_dir, base, version=7)
    assert sorted(os.listdir(os.path.join(base, "classifier"))) == ["7"]
