"""The feature cache is keyed by the prepared build it was computed from: a rebuilt dataset (another root in
the same data dir, another split seed) never reads features computed from the old one."""
import os
import shutil

import numpy as np
import pytest

from baseline_model.config import TrainConfig
from baseline_model.features import cache_key, feature_arrays
from baseline_model.kinds import Pretrained, PretrainedConfig
from baseline_model.models.fusion_head import FEATURE_KEYS

CONFIG = PretrainedConfig(num_frames=2, image_size=32)


class _CountingExtractor:
    """Stands for the frozen encoders: features derived from the pixels, and a count of items encoded."""

    def __init__(self):
        self.items = 0

    def predict_on_batch(self, batch):
        n = int(batch["text"].shape[0])
        self.items += n
        cover = np.asarray(batch["cover"]).reshape(n, -1).mean(axis=1, keepdims=True)
        frames = np.asarray(batch["frames"]).reshape(n, CONFIG.num_frames, -1).mean(axis=2, keepdims=True)
        return {"text_features": np.zeros((n, 4), np.float32), "cover_features": np.repeat(cover, 4, axis=1),
                "frame_features": np.repeat(frames, 4, axis=2), "presence": np.ones((n, 3), np.float32),
                "frame_mask": np.ones((n, CONFIG.num_frames), np.float32)}


def _prepare(root, data_dir, split_seed=0):
    from data_interface_for_model.prepare import prepare_dataset

    return prepare_dataset(root, data_dir, num_frames=CONFIG.num_frames, size=CONFIG.image_size, seed=split_seed,
                           workers=1, progress=False)


def _split_ids(data_dir, split):
    from baseline_model import data as data_lib

    train = TrainConfig(data_dir=data_dir)
    ids = []
    for features, _ in data_lib.raw_dataset(train, CONFIG, split, 64, shuffle=False, include_id=True):
        ids.extend(features["id"].numpy().astype(str).tolist())
    return ids


@pytest.mark.slow
def test_another_root_in_the_same_data_dir_gets_new_features(demo_root, tmp_path):
    data_dir = str(tmp_path / "tfds")
    kind, extractor = Pretrained(CONFIG), _CountingExtractor()
    train = TrainConfig(data_root=demo_root, data_dir=data_dir)
    _prepare(demo_root, data_dir)
    old_key = cache_key(CONFIG, data_dir)
    old = feature_arrays(kind, train, ("train", "test"), extractor=extractor)
    assert extractor.items == len(old["train"]["id"]) + len(old["test"]["id"])

    # another dataset: a third of the labels, with only their first item kept
    other = str(tmp_path / "other")
    labels = sorted(e for e in os.listdir(demo_root) if os.path.isdir(os.path.join(demo_root, e)))[:10]
    for label in labels:
        shutil.copytree(os.path.join(demo_root, label), os.path.join(other, label))
    report = _prepare(other, data_dir)
    assert not report.reused
    assert cache_key(CONFIG, data_dir) != old_key
    new = feature_arrays(kind, TrainConfig(data_root=other, data_dir=data_dir), ("train", "test"),
                         extractor=extractor)
    for split in ("train", "test"):
        assert new[split]["id"].tolist() == _split_ids(data_dir, split)
        assert len(new[split]["id"]) == report.split_counts[split]
        assert set(new[split]["label"].tolist()) <= set(range(31))
    assert report.num_examples == 20 and len(new["train"]["id"]) < len(old["train"]["id"])
    for key in FEATURE_KEYS:
        assert len(new["train"][key]) == len(new["train"]["id"])


@pytest.mark.slow
def test_a_new_split_seed_gives_new_splits_and_new_features(demo_root, tmp_path):
    data_dir = str(tmp_path / "tfds")
    kind, extractor = Pretrained(CONFIG), _CountingExtractor()
    _prepare(demo_root, data_dir, split_seed=0)
    first = feature_arrays(kind, TrainConfig(data_dir=data_dir), ("test",), extractor=extractor)["test"]
    first_key = cache_key(CONFIG, data_dir)
    _prepare(demo_root, data_dir, split_seed=1)
    assert cache_key(CONFIG, data_dir) != first_key
    before = extractor.items
    second = feature_arrays(kind, TrainConfig(data_dir=data_dir, split_seed=1), ("test",), extractor=extractor)["test"]
    assert extractor.items == before + len(second["id"])  # computed again, not read from the old cache
    assert second["id"].tolist() == _split_ids(data_dir, "test")
    assert sorted(second["id"].tolist()) != sorted(first["id"].tolist())


def test_the_key_changes_with_the_encoders(tmp_path, prepared_demo):
    config = PretrainedConfig()
    assert cache_key(config, prepared_demo) == cache_key(PretrainedConfig(), prepared_demo)
    assert cache_key(config, prepared_demo) != cache_key(PretrainedConfig(text_sequence_length=16), prepared_demo)
    assert cache_key(config, prepared_demo) != cache_key(PretrainedConfig(image_weights="imagenet"), prepared_demo)
