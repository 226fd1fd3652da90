"""The xinpianchang TFDS builder and `prepare`: splits, skipped items, idempotency, the CLI."""
from __future__ import annotations

import collections
import dataclasses
import os

import numpy as np
import pytest

from data_interface_for_model import LABELS, LayoutReader, read_item_txt, write_item_txt
from data_interface_for_model.splits import stratified_split


# ------------------------------------------------------------------------------------------------ splits
def test_stratified_split_is_proportional_per_label_and_deterministic():
    items = [(f"{label}/{i}", label) for label in LABELS for i in range(20)]
    assignment = stratified_split(items, (0.8, 0.1, 0.1), seed=0)
    per_label = collections.Counter((key.split("/")[0], split) for key, split in assignment.items())
    for label in LABELS:
        assert (per_label[label, "train"], per_label[label, "validation"], per_label[label, "test"]) == (16, 2, 2)
    assert stratified_split(list(reversed(items)), (0.8, 0.1, 0.1), seed=0) == assignment  # order-free
    assert stratified_split(items, (0.8, 0.1, 0.1), seed=1) != assignment


def test_stratified_split_small_labels_keep_global_shares():
    items = [(f"{label}/{i}", label) for label in LABELS for i in range(3)]  # 93 items, 3 per label
    counts = collections.Counter(stratified_split(items, (0.8, 0.1, 0.1), seed=5).values())
    assert sum(counts.values()) == 93
    for name, share in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
        assert abs(counts[name] - 93 * share) <= 1
    per_label = collections.Counter(k.split("/")[0] for k, s in stratified_split(items, seed=5).items()
                                    if s == "train")
    assert all(per_label[label] >= 2 for label in LABELS)  # floor(3 * 0.8) = 2 at least


def test_stratified_split_rejects_bad_fractions():
    with pytest.raises(ValueError):
        stratified_split([("a", "Beach")], (0.5, 0.2, 0.2))
    with pytest.raises(ValueError):
        stratified_split([("a", "Beach"), ("a", "Sea")])


# ------------------------------------------------------------------------------------------------ builder
def _damage(root):
    """Break five items in five ways and add an unknown label folder; return the broken item folders."""
    from data_download_tools.demo import encode_jpeg
    from PIL import Image

    items = list(LayoutReader(root))
    broken = {}
    # a truncated clip
    data = open(items[0].video_path, "rb").read()
    open(items[0].video_path, "wb").write(data[: len(data) // 3])
    broken["truncated"] = items[0]
    # a zero-byte cover
    open(items[2].cover_path, "wb").close()
    broken["zero_cover"] = items[2]
    # a cover that is a PNG
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(items[4].cover_path, format="PNG")
    broken["png_cover"] = items[4]
    # an empty brief
    record = read_item_txt(items[6].txt_path, label=items[6].label)
    write_item_txt(items[6].txt_path, dataclasses.replace(record, brief="   "))
    broken["empty_brief"] = items[6]
    # a clip with no video stream (a JPEG renamed .mp4 would be an image stream; write an audio-only mp4)
    import av

    with av.open(items[8].video_path, mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        for _ in range(3):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 8000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    broken["no_video"] = items[8]
    # a label folder that is not one of the 31 (the root's labels.txt says which labels it has; without it
    # every folder found would be a label)
    with open(os.path.join(root, "labels.txt"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(LABELS) + "\n")
    stray = os.path.join(root, "Cats", "123")
    os.makedirs(stray)
    open(os.path.join(stray, "123.jpeg"), "wb").write(encode_jpeg(np.zeros((8, 8, 3), np.uint8)))
    return items, broken


@pytest.fixture(scope="module")
def damaged_build(tmp_path_factory, demo_root):
    import shutil

    from data_interface_for_model.prepare import prepare_dataset

    root = str(tmp_path_factory.mktemp("damaged") / "root")
    shutil.copytree(demo_root, root)
    items, broken = _damage(root)
    data_dir = str(tmp_path_factory.mktemp("tfds_damaged"))
    report = prepare_dataset(root, data_dir, num_frames=4, size=32, workers=2, progress=False)
    return root, data_dir, items, broken, report


def test_bad_items_are_skipped_and_listed(damaged_build):
    _, _, items, broken, report = damaged_build
    assert report.found == len(items) - 1  # the zero-byte cover is already refused by the layout reader
    assert report.num_examples == len(items) - len(broken)
    assert report.skipped_by_kind == {"decode_error": 3, "empty_brief": 1, "empty_file": 1, "unknown_label": 1}
    messages = "\n".join(f"{s['path']} {s['message']}" for s in report.skipped)
    for item in broken.values():
        assert item.mp4_id in messages
    assert "not a JPEG" in messages and "no video stream" in messages and "Cats" in messages
    assert "skipped 6" in report.summary() and "decode_error 3" in report.summary()


def test_splits_are_stratified_and_disjoint(damaged_build):
    from data_interface_for_model.prepare import load_builder

    _, data_dir, items, broken, report = damaged_build
    builder = load_builder(data_dir, 4, 32)
    ids = {}
    for split in ("train", "validation", "test"):
        source = builder.as_data_source(split=split)
        assert len(source) == report.split_counts[split] > 0
        ids[split] = [(LABELS[int(source[i]["label"])], source[i]["id"].decode()) for i in range(len(source))]
    everything = [x for split in ids.values() for x in split]
    assert len(everything) == len(set(everything)) == report.num_examples
    bad = {(item.label, item.mp4_id) for item in broken.values()}
    assert set(everything) == {(i.label, i.mp4_id) for i in items} - bad
    per_label = collections.Counter(label for label, _ in everything)
    train_labels = collections.Counter(label for label, _ in ids["train"])
    for label, count in per_label.items():
        if count == 2:  # floor(2 * 0.8) = 1 item of every intact label goes to train
            assert train_labels[label] >= 1
    assert report.split_counts["validation"] >= 4 and report.split_counts["test"] >= 4


def test_examples_have_the_documented_features(damaged_build):
    from data_interface_for_model.prepare import load_builder

    _, data_dir, _, _, _ = damaged_build
    builder = load_builder(data_dir, 4, 32)
    assert builder.builder_config.name == "frames4_size32"
    assert builder.info.features["label"].names == list(LABELS)
    example = builder.as_data_source(split="train")[0]
    assert example["cover"].shape == (32, 32, 3) and example["cover"].dtype == np.uint8
    assert len(example["frames"]) == 4 and example["frames"][0].shape == (32, 32, 3)
    assert 1 <= int(example["num_frames"]) <= 4
    assert 0.5 < float(example["duration"]) < 2.5
    assert example["brief"].decode().strip()
    shards = os.listdir(builder.data_dir)
    assert any(".array_record-" in s for s in shards) and any(".tfrecord-" in s for s in shards)


def test_second_prepare_reuses_and_other_arguments_rebuild(damaged_build, tmp_path):
    import shutil

    from data_interface_for_model.prepare import prepare_dataset

    root, shared_data_dir, _, _, first = damaged_build
    data_dir = str(tmp_path / "tfds")  # a private copy: the rebuild below must not change the shared build
    shutil.copytree(shared_data_dir, data_dir)
    version_dir = os.path.join(data_dir, os.path.relpath(first.dataset_dir, shared_data_dir))
    shard = next(os.path.join(version_dir, s) for s in os.listdir(version_dir) if "train.array" in s)
    mtime = os.stat(shard).st_mtime_ns
    again = prepare_dataset(root, data_dir, num_frames=4, size=32, workers=2, progress=False)
    assert again.reused and again.split_counts == first.split_counts
    assert os.stat(shard).st_mtime_ns == mtime
    other = prepare_dataset(root, data_dir, num_frames=4, size=32, splits=(0.6, 0.2, 0.2), workers=1,
                            isolate=False, progress=False)
    assert not other.reused and other.split_counts["train"] < first.split_counts["train"]
    assert other.num_examples == first.num_examples


def test_predefined_config_through_tfds_builder(prepared_demo):
    import tensorflow_datasets as tfds

    import data_interface_for_model.xinpianchang  # noqa: F401  (registers the builder)

    builder = tfds.builder("xinpianchang", data_dir=prepared_demo)
    assert builder.builder_config.name == "frames8_size112"
    assert sum(s.num_examples for s in builder.info.splits.values()) == 62
    assert {c.name for c in builder.BUILDER_CONFIGS} >= {"frames8_size112", "frames16_size224"}
    source = builder.as_data_source(split="validation")
    assert len(source[0]["frames"]) == 8 and source[0]["cover"].shape == (112, 112, 3)


def test_cli_prepare_builds_then_reuses_and_names_a_missing_root(demo_root, capsys, tmp_path):
    import shutil

    from PIL import Image

    from data_interface_for_model.__main__ import main

    root, data_dir = str(tmp_path / "root"), str(tmp_path / "tfds")
    for label in ("Beach", "City", "Sea"):
        shutil.copytree(os.path.join(demo_root, label), os.path.join(root, label))
    png_cover = next(iter(LayoutReader(root))).cover_path
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(png_cover, format="PNG")
    command = ["prepare", "--data-root", root, "--data-dir", data_dir, "--frames", "2", "--image-size", "16",
               "--splits", "0.6", "0.2", "0.2", "--workers", "1", "--quiet"]
    assert main(command) == 0
    out = capsys.readouterr()
    assert "prepare: frames2_size16: train " in out.out and "built in" in out.out
    assert "skipped decode_error" in out.err and "not a JPEG" in out.err
    assert main(command) == 0
    assert "reused" in capsys.readouterr().out
    assert main(["prepare", str(tmp_path / "nowhere"), "--data-dir", data_dir, "--size", "16", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere" in err and "is not a folder" in err
    with pytest.raises(SystemExit) as exc:
        main(["prepare", "--help"])
    assert exc.value.code == 0


def test_tfrecord_writer_is_read_by_tensorflow(tmp_path):
    import tensorflow as tf

    from data_interface_for_model.prepare import _masked_crc32c, write_tfrecord

    records = [b"", b"a", bytes(range(256)) * 40]
    path = str(tmp_path / "x.tfrecord")
    assert write_tfrecord(path, records) == 3
    assert [r.numpy() for r in tf.data.TFRecordDataset(path)] == records
    data = bytearray(open(path, "rb").read())
    data[-5] ^= 0xFF  # corrupt the last record's data: TensorFlow's checksum check must notice
    open(path, "wb").write(bytes(data))
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(path))
    assert len(_masked_crc32c(b"123456789")) == 4
