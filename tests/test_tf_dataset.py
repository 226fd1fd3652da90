"""tf.data from prepared shards and from a raw layout root: shapes, dtypes, ranges, sharding, order."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from data_interface_for_model.tf_dataset import make_dataset, make_raw_dataset


def _ids(ds):
    return [i.decode() for features, _ in ds for i in features["id"].numpy()]


def test_prepared_batches_shapes_dtypes_ranges(prepared_demo):
    ds = make_dataset(prepared_demo, "train", 8, include_id=True, include_num_frames=True)
    spec_features, spec_label = ds.element_spec
    assert spec_features["frames"].shape.as_list() == [None, 8, 112, 112, 3]
    assert spec_features["cover"].shape.as_list() == [None, 112, 112, 3]
    assert spec_features["text"].dtype == tf.string and spec_label.dtype in (tf.int32, tf.int64)
    total = 0
    for features, label in ds:
        assert features["frames"].dtype == tf.float32 and features["cover"].dtype == tf.float32
        frames = features["frames"].numpy()
        assert 0.0 <= frames.min() and frames.max() <= 1.0 and frames.std() > 0.01
        assert set(label.numpy()) <= set(range(31))
        assert all(t.decode().strip() for t in features["text"].numpy())
        assert np.all((features["num_frames"].numpy() >= 1) & (features["num_frames"].numpy() <= 8))
        total += int(label.shape[0])
    ids = _ids(ds)
    assert total == len(ids) == len(set(ids)) and total >= 40


def test_drop_remainder_gives_static_batches(prepared_demo):
    ds = make_dataset(prepared_demo, "train", 16, drop_remainder=True, shuffle=False)
    assert ds.element_spec[0]["frames"].shape.as_list() == [16, 8, 112, 112, 3]
    assert "id" not in ds.element_spec[0]


def test_sharding_under_an_input_context(prepared_demo):
    everything = _ids(make_dataset(prepared_demo, "train", 4, shuffle=False, include_id=True))
    parts = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline,
                                             num_replicas_in_sync=2)
        ds = make_dataset(prepared_demo, "train", 8, include_id=True, input_context=context)
        for features, _ in ds:
            assert features["frames"].shape[0] <= 4  # global batch 8 over 2 replicas
        parts.append(_ids(ds))
    assert not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == sorted(everything)
    assert abs(len(parts[0]) - len(parts[1])) <= 1


def test_deterministic_order_and_shuffling(prepared_demo):
    def order(seed):
        return _ids(make_dataset(prepared_demo, "train", 8, include_id=True, deterministic=True, seed=seed))

    first, second, other = order(3), order(3), order(4)
    assert first == second
    assert first != other and sorted(first) == sorted(other)
    unshuffled = _ids(make_dataset(prepared_demo, "train", 8, include_id=True, shuffle=False, deterministic=True))
    assert unshuffled != first


def test_repeat_runs_past_one_epoch(prepared_demo):
    one_epoch = sum(1 for _ in make_dataset(prepared_demo, "validation", 2))
    batches = list(make_dataset(prepared_demo, "validation", 2, repeat=True).take(one_epoch * 3))
    assert len(batches) == one_epoch * 3


def test_raw_path_matches_prepared_pictures(prepared_demo, demo_root):
    prepared = {}
    for features, label in make_dataset(prepared_demo, "test", 8, include_id=True, shuffle=False):
        for i, id_ in enumerate(features["id"].numpy()):
            prepared[id_.decode()] = (features["frames"][i].numpy(), features["cover"][i].numpy(), int(label[i]))
    raw = make_raw_dataset(demo_root, 4, 8, 112, shuffle=False, include_id=True)
    seen = 0
    for features, label in raw:
        for i, id_ in enumerate(features["id"].numpy()):
            if id_.decode() in prepared:
                frames, cover, prepared_label = prepared[id_.decode()]
                assert int(label[i]) == prepared_label
                # the same frames and cover, up to JPEG compression
                assert np.abs(features["frames"][i].numpy() - frames).mean() < 0.03
                assert np.abs(features["cover"][i].numpy() - cover).mean() < 0.03
                seen += 1
    assert seen == len(prepared) > 0


def test_raw_path_drops_corrupt_clips_and_splits(demo_copy):
    from data_interface_for_model import LayoutReader

    items = list(LayoutReader(demo_copy))
    open(items[0].video_path, "wb").write(b"not an mp4 at all" * 10)
    ds = make_raw_dataset(demo_copy, 16, 4, 32, include_id=True)
    ids = _ids(ds)
    assert len(ids) == len(items) - 1 and items[0].mp4_id not in ids
    test_ids = _ids(make_raw_dataset(demo_copy, 16, 4, 32, split="test", include_id=True))
    assert 0 < len(test_ids) < 12
    with pytest.raises(ValueError):
        make_raw_dataset(demo_copy, 4, split="dev")


def test_missing_preparation_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="prepare"):
        make_dataset(str(tmp_path), "train", 4)
