"""The original repository's public names keep working, with its argument names."""
from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest

import data_interface_for_model as package
from data_interface_for_model import compat


def test_names_are_exported_lazily_from_the_package():
    code = ("import sys, data_interface_for_model as p; assert 'data_interface_for_model.compat' not in sys.modules; "
            "f = p.multimodal_data_path_generator; assert 'tensorflow' not in sys.modules and 'av' not in sys.modules; "
            "print(f.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "multimodal_data_path_generator"
    assert package.video_label_to_id["Abstract"] == 2 and package.video_label_to_id["stars"] == 30
    with pytest.raises(AttributeError):
        package.no_such_name


def test_original_argument_names():
    expected = {
        "multimodal_data_path_generator": ["data_root", "shuffle_data"],
        "multimodal_encode_data_generator": ["data_root", "shuffle_data", "txt_maxlen", "max_video_frame_number",
                                             "video_width", "video_height"],
        "multimodal_tensorflow_dataset": ["data_root", "shuffle_data", "BATCH_SIZE", "REPEAT_DATASET", "txt_maxlen",
                                          "image_height", "image_width", "max_video_frame_number", "video_height",
                                          "video_width"],
        "multimodel_numpy_data_interface": ["data_root", "shuffle_data", "BATCH_SIZE", "REPEAT_DATASET",
                                            "txt_maxlen", "image_height", "image_width", "max_video_frame_number",
                                            "video_height", "video_width"],
    }
    for name, arguments in expected.items():
        assert list(inspect.signature(getattr(package, name)).parameters) == arguments


def test_path_generator(demo_root):
    rows = list(package.multimodal_data_path_generator(demo_root, False))
    assert len(rows) == 62
    mp4, jpeg, txt, label = rows[0]
    assert mp4.endswith(".mp4") and jpeg.endswith(".jpeg") and txt.endswith(".txt") and label == "360VR"
    shuffled = list(package.multimodal_data_path_generator(demo_root, True))
    assert sorted(shuffled) == sorted(rows)
    assert package.get_multimodal_data_path_list(demo_root)[0] == rows[0][:3]


def test_encode_generator_samples_across_the_clip(demo_root):
    video, image_path, text, label = next(package.multimodal_encode_data_generator(demo_root, False, 12, 6, 40, 24))
    assert video.shape == (6, 24, 40, 3) and video.dtype == np.uint8
    assert image_path.endswith(".jpeg") and text.shape == (12,) and text.dtype == np.int32 and label == 0
    assert text[0] > 0  # the brief's first token
    every, *_ = next(package.multimodal_encode_data_generator(demo_root, False, 12, None, 40, 24))
    assert every.shape[0] >= 8  # max_video_frame_number=None keeps every frame (1-2 s at 8 fps)


def test_brief_encoder_is_deterministic():
    encoder = compat.BriefEncoder.from_texts(["a beach, at dusk", "Sea_waves at dusk"])
    assert encoder.vocabulary == ["Sea", "a", "at", "beach", "dusk", "waves"]
    assert list(encoder.encode_padded("beach at night", 5)) == [4, 3, 7, 0, 0]
    assert encoder.vocab_size == 8


def test_tensorflow_dataset_feeds_the_original_model_inputs(demo_root):
    import tensorflow as tf

    ds = package.multimodal_tensorflow_dataset(demo_root, True, 4, 1, 10, 24, 40, 5, 36, 64)
    batches = list(ds)
    assert sum(int(label.shape[0]) for _, label in batches) == 62
    features, label = batches[0]
    assert set(features) == {"video", "image", "text"}
    assert features["video"].shape == (4, 5, 36, 64, 3) and features["video"].dtype == tf.float32
    assert features["image"].shape == (4, 24, 40, 3) and features["text"].shape == (4, 10)
    for key in ("video", "image"):
        values = features[key].numpy()
        assert values.min() >= -1.0 and values.max() <= 1.0 and values.min() < 0 < values.max()
    assert label.dtype == tf.int32


def test_numpy_interface_repeats_like_the_original(demo_root):
    one_pass = list(package.multimodel_numpy_data_interface(demo_root, False, 25, 1, 10, 24, 40, 3, 36, 64))
    assert [len(b[3]) for b in one_pass] == [25, 25, 12]
    video, image, text, label = one_pass[0]
    assert video.shape == (25, 3, 36, 64, 3) and image.shape == (25, 24, 40, 3) and text.shape == (25, 10)
    forever = package.multimodel_numpy_data_interface(demo_root, True, 25, None, 10, 24, 40, 3, 36, 64)
    assert sum(len(next(forever)[3]) for _ in range(4)) == 25 + 25 + 12 + 25  # REPEAT_DATASET=None: no end
