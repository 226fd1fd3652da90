"""A data dir that is a URL (``gs://bucket/tfds`` in production): the finished build there is reused (its report
read with tf.io.gfile, the root compared as written), its TFRecord shards read by tf.data, and the feature cache
kept beside them. Tested without a network on TensorFlow's in-memory file system ``ram://``, which tf.io.gfile
serves like a bucket; TFDS's paths (etils.epath) know only gs/s3/az/hf URLs, so the test teaches epath the
``ram`` scheme with the same tf.io.gfile backend it uses for ``gs://``."""
from __future__ import annotations

import json
import os
import uuid

import numpy as np
import pytest

LOCAL_CONFIG = os.path.join("xinpianchang", "frames8_size112", "1.0.0")


@pytest.fixture
def ram_scheme(monkeypatch):
    from etils.epath import backend, gpath, register

    monkeypatch.setattr(gpath, "_URI_PREFIXES", gpath._URI_PREFIXES + ("ram://",))
    monkeypatch.setattr(gpath, "_URI_SCHEMES", gpath._URI_SCHEMES | {"ram"})
    monkeypatch.setitem(gpath._URI_MAP_ROOT, "ram://", "/ram/")
    monkeypatch.setitem(gpath._PREFIX_TO_BACKEND, "ram", backend.tf_backend)
    monkeypatch.setitem(register._URI_PREFIXES_TO_CLS, "ram://", gpath.PosixGPath)


@pytest.fixture
def bucket_build(prepared_demo, ram_scheme):
    """The demo's build copied to ``ram://`` as a Beam build writes a bucket (TFRecord shards, no ArrayRecord);
    ``(url data dir, local data dir)``."""
    import tensorflow as tf

    url = f"ram://bucket-{uuid.uuid4().hex}/tfds"
    source = os.path.join(prepared_demo, LOCAL_CONFIG)
    target = f"{url}/{LOCAL_CONFIG}"
    tf.io.gfile.makedirs(target)
    for name in os.listdir(source):
        if ".array_record-" not in name and os.path.isfile(os.path.join(source, name)):
            tf.io.gfile.copy(os.path.join(source, name), f"{target}/{name}")
    return url, prepared_demo


def _ids(dataset):
    return sorted(i.decode() for features, _ in dataset for i in features["id"].numpy())


def test_url_data_dir_reuses_the_build_and_reads_its_shards(bucket_build, demo_root):
    from data_interface_for_model.prepare import prepare_dataset, prepared_labels
    from data_interface_for_model.tf_dataset import make_dataset

    url, local = bucket_build
    report = prepare_dataset(demo_root, url, num_frames=8, size=112)
    assert report.reused and report.root == os.path.abspath(demo_root)
    assert report.split_counts == prepare_dataset(demo_root, local, num_frames=8, size=112).split_counts
    assert prepared_labels(url, 8, 112) == prepared_labels(local, 8, 112)
    read = dict(num_frames=8, size=112, shuffle=False, deterministic=True, include_id=True)
    assert _ids(make_dataset(url, "validation", 16, **read)) == _ids(make_dataset(local, "validation", 16, **read))
    # never rebuilt in-process: another seed, a forced rebuild or no build at all name the Beam command
    with pytest.raises(ValueError, match="seed 0.*--runner direct"):
        prepare_dataset(demo_root, url, num_frames=8, size=112, seed=5)
    with pytest.raises(ValueError, match="--force"):
        prepare_dataset(demo_root, url, num_frames=8, size=112, force=True)
    with pytest.raises(FileNotFoundError, match="no prepared build.*--runner direct"):
        prepare_dataset(demo_root, url + "-empty", num_frames=8, size=112)


def test_url_build_of_a_bucket_root_is_compared_as_written(bucket_build):
    import tensorflow as tf

    from data_interface_for_model.prepare import REPORT_NAME, prepare_dataset

    url, _ = bucket_build
    path = f"{url}/{LOCAL_CONFIG}/{REPORT_NAME}"
    with tf.io.gfile.GFile(path) as handle:
        record = json.load(handle)
    record.update(root="gs://videos/xinpianchang", labels=[])  # as a Dataflow build records a bucket root
    tf.io.gfile.remove(path)  # (ram:// does not truncate a file opened for writing)
    with tf.io.gfile.GFile(path, "w") as handle:
        json.dump(record, handle)
    assert prepare_dataset("gs://videos/xinpianchang", url, num_frames=8, size=112).reused  # no such root here
    with pytest.raises(ValueError, match="gs://videos/xinpianchang"):
        prepare_dataset("gs://videos/other", url, num_frames=8, size=112)


def test_feature_cache_beside_a_url_build(bucket_build):
    from baseline_model.features import build_fingerprint, load_or_compute

    url, local = bucket_build
    remote, here = build_fingerprint(url, 8, 112), build_fingerprint(local, 8, 112)
    assert remote["folder"] == f"{url}/{LOCAL_CONFIG}" and remote["report"] == here["report"]
    assert [s[:2] for s in remote["shards"]] == [s[:2] for s in here["shards"] if ".tfrecord-" in s[0]]
    path, calls = f"{url}/feature_cache/key/train.npz", []

    def compute():
        calls.append(1)
        return {"label": np.arange(3), "text": np.ones((3, 2), np.float32)}

    first, second = load_or_compute(path, compute), load_or_compute(path, compute)
    assert len(calls) == 1 and all(np.array_equal(first[k], second[k]) for k in first)
