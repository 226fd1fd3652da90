"""`prepare` through Apache Beam (DirectRunner, multi_processing, 2 workers): the same examples, splits and
skipped items as the in-process build; corrupt items counted, never fatal; bucket paths scanned alike."""
from __future__ import annotations

import dataclasses
import glob
import json
import os

import numpy as np
import pytest

# the Beam extra (pip install -e ".[beam]"; CI installs it): without it these tests skip, saying why
pytest.importorskip("apache_beam", reason="Apache Beam is an optional extra: pip install -e \".[beam]\"")

from data_interface_for_model import LayoutReader, read_item_txt, write_item_txt
from data_interface_for_model.beam_prepare import (
    BeamOptions,
    add_runner_arguments,
    decode_task,
    options_from_args,
    pipeline_option,
    prepare_with_beam,
    scan_root,
)

BUCKET = "testbucket://"


def _damage(root: str) -> dict:
    """A truncated clip, a PNG cover, an empty brief and an unknown label folder; the damaged items."""
    from PIL import Image

    items = list(LayoutReader(root))
    data = open(items[0].video_path, "rb").read()
    open(items[0].video_path, "wb").write(data[: len(data) // 3])
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(items[5].cover_path, format="PNG")
    record = read_item_txt(items[9].txt_path, label=items[9].label)
    write_item_txt(items[9].txt_path, dataclasses.replace(record, brief="  "))
    os.makedirs(os.path.join(root, "Cats", "123"))
    open(os.path.join(root, "Cats", "123", "123.mp4"), "wb").write(data)  # (a bucket has no empty folders)
    return {"truncated": items[0], "png_cover": items[5], "empty_brief": items[9]}


def _examples(dataset_dir: str, split: str) -> list:
    """The split's examples, deterministically serialized, sorted (shard count and order do not matter)."""
    import tensorflow as tf

    from data_interface_for_model.prepare import _array_records

    records = []
    for shard in sorted(glob.glob(os.path.join(dataset_dir, f"xinpianchang-{split}.array_record-*"))):
        records += [tf.train.Example.FromString(r).SerializeToString(deterministic=True)
                    for r in _array_records(shard)]
    return sorted(records)


@pytest.mark.slow
def test_beam_prepare_matches_in_process_and_counts_corrupt_items(demo_copy, tmp_path):
    from data_interface_for_model.prepare import load_builder, prepare_dataset

    damaged = _damage(demo_copy)
    local = prepare_dataset(demo_copy, str(tmp_path / "local"), workers=2, progress=False)
    beam = prepare_with_beam(demo_copy, str(tmp_path / "beam"),
                             beam_options=BeamOptions(runner="direct", workers=2, running_mode="multi_processing"))

    assert beam.split_counts == local.split_counts and beam.found == local.found
    assert beam.skipped == local.skipped  # same items, kinds, messages and order
    kinds = {s["path"]: s["kind"] for s in beam.skipped}
    assert kinds[damaged["truncated"].folder] == "decode_error"
    assert kinds[damaged["png_cover"].folder] == "decode_error"
    assert kinds[damaged["empty_brief"].txt_path] == "empty_brief"
    # the extra folder is reported: an unknown label, or (a root with its own label set) an incomplete item
    assert any(path.startswith(os.path.join(demo_copy, "Cats")) for path in kinds)
    for split in ("train", "validation", "test"):
        assert _examples(beam.dataset_dir, split) == _examples(local.dataset_dir, split), split

    with open(os.path.join(beam.dataset_dir, "prepare_report.json"), encoding="utf-8") as handle:
        report = json.load(handle)
    assert report["runner"] == "DirectRunner"
    assert "--direct_num_workers=2" in report["pipeline_options"]
    assert report["counters"] == {"decode_error": 2, "decoded": beam.num_examples}
    # the TFRecord copy is there and tf.data reads it
    builder = load_builder(str(tmp_path / "beam"), 8, 112, file_format="tfrecord")
    assert sum(1 for _ in builder.as_dataset(split="test")) == beam.split_counts["test"]
    # same arguments: reused, not rebuilt
    again = prepare_with_beam(demo_copy, str(tmp_path / "beam"), beam_options=BeamOptions(workers=2))
    assert again.reused and again.split_counts == beam.split_counts


# ------------------------------------------------------------------------------------------ bucket paths
@pytest.fixture
def test_bucket():
    """Beam file system ``testbucket://<local path>``: a bucket stand-in the launcher's scan reads."""
    from apache_beam.io import filesystem
    from apache_beam.io.localfilesystem import LocalFileSystem

    class TestBucket(LocalFileSystem):
        @classmethod
        def scheme(cls):
            return "testbucket"

        def _local(self, path):
            return path[len(BUCKET):] if path.startswith(BUCKET) else path

        def match(self, patterns, limits=None):
            results = super().match([self._local(p) for p in patterns], limits)
            return [filesystem.MatchResult(BUCKET + r.pattern, [
                filesystem.FileMetadata(BUCKET + m.path, m.size_in_bytes) for m in r.metadata_list])
                for r in results]

        def open(self, path, *args, **kwargs):
            return super().open(self._local(path), *args, **kwargs)

    yield TestBucket
    del TestBucket  # (the class stays registered for the session; the scheme is test-only)


def test_bucket_scan_matches_local_scan_and_decodes_through_a_local_copy(demo_copy, test_bucket):
    _damage(demo_copy)
    items = list(LayoutReader(demo_copy))
    open(items[20].txt_path, "w").write("{[")  # malformed
    open(items[30].cover_path, "wb").close()  # empty
    os.makedirs(os.path.join(demo_copy, "Zebras", "9"))
    open(os.path.join(demo_copy, "Zebras", "9", "9.txt"), "w").write("{}")
    tasks, skipped, found = scan_root(demo_copy)
    remote_tasks, remote_skipped, remote_found = scan_root(BUCKET + demo_copy)

    def unprefixed(value):
        return value.replace(BUCKET, "") if isinstance(value, str) else value

    assert remote_found == found
    assert [{k: unprefixed(v) for k, v in dataclasses.asdict(t).items()} for t in remote_tasks] == \
        [dataclasses.asdict(t) for t in tasks]
    assert [{k: unprefixed(v) for k, v in s.items()} for s in remote_skipped] == skipped
    assert {"unknown_label", "malformed_txt", "empty_file", "empty_brief"} <= {s["kind"] for s in skipped}

    from data_interface_for_model.decoding import encode_item

    good = remote_tasks[1]
    (task, encoded), = list(decode_task(good, 4, 32, 90))
    assert task == good
    assert encoded == encode_item(tasks[1].video_path, tasks[1].cover_path, 4, 32, 90)
    broken, = list(decode_task(remote_tasks[0], 4, 32, 90))  # the truncated clip
    row = json.loads(broken.value)
    assert broken.tag == "skipped" and row["kind"] == "decode_error" and row["path"] == remote_tasks[0].folder
    assert row["message"].startswith(remote_tasks[0].video_path + ": cannot decode video")  # the bucket file


# ------------------------------------------------------------------------------------------ options
def test_runner_flags_and_pipeline_options():
    import argparse

    parser = argparse.ArgumentParser()
    add_runner_arguments(parser)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args(["--runner", "dataflow", "--pipeline-option", "project=p",
                              "--pipeline-option=--region=europe-west4", "--pipeline-option", "streaming"])
    options = options_from_args(args)
    assert options.flags() == ["--runner=DataflowRunner", "--project=p", "--region=europe-west4", "--streaming"]
    assert options.pipeline_options().get_all_options()["project"] == "p"
    direct = BeamOptions(workers=2).flags()
    assert direct == ["--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    assert parser.parse_args([]).runner is None  # in-process unless asked
    with pytest.raises(SystemExit):
        parser.parse_args(["--runner", "local"])
    with pytest.raises(argparse.ArgumentTypeError):
        pipeline_option("=x")
    with pytest.raises(ValueError, match="unknown runner"):
        BeamOptions(runner="samza")
