"""A dataset's own label set: labels.txt wins, else the 31 categories, else the folders found."""
import glob
import json
import os
import shutil

import pytest

from data_interface_for_model.categories import LABELS
from data_interface_for_model.label_set import discover_labels, read_labels_file


def _custom_root(demo_root, target, names):
    """The first items of a few demo categories, renamed to labels of our own."""
    for source, name in zip(sorted(LABELS), names):
        shutil.copytree(os.path.join(demo_root, source), os.path.join(target, name))
        for path in glob.glob(os.path.join(target, name, "*", "*.txt")):
            with open(path, encoding="utf-8") as handle:
                record = json.load(handle)
            record.pop("video_label")  # the original .txt format: the folder gives the label
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(record, handle)
    return target


def test_rules_in_order(demo_root, tmp_path):
    assert discover_labels(demo_root).names == LABELS
    partial = tmp_path / "partial"
    for name in ("Beach", "City"):
        (partial / name).mkdir(parents=True)
    assert discover_labels(partial).source == "xinpianchang" and len(discover_labels(partial)) == 31
    own = tmp_path / "own"
    for name in ("dogs", "Beach", "cats"):
        (own / name).mkdir(parents=True)
    assert discover_labels(own).names == ("Beach", "cats", "dogs")
    (own / "labels.txt").write_text("# mine\ncats\n\ndogs\n", encoding="utf-8")
    found = discover_labels(own)
    assert found.names == ("cats", "dogs") and found.source == "labels.txt"


@pytest.mark.parametrize("text", ["cats\ncats\n", "a/b\n", "..\n", "\n# nothing\n"])
def test_bad_labels_files_are_refused_naming_the_file(tmp_path, text):
    path = tmp_path / "labels.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="labels.txt"):
        read_labels_file(path)


@pytest.mark.slow
def test_prepare_keeps_the_own_label_set_and_skips_unlisted_folders(demo_root, tmp_path):
    from data_interface_for_model.prepare import load_builder, prepare_dataset

    root = _custom_root(demo_root, str(tmp_path / "root"), ["alpha", "beta", "gamma", "delta", "zeta"])
    with open(os.path.join(root, "labels.txt"), "w", encoding="utf-8") as handle:
        handle.write("gamma\nalpha\nbeta\ndelta\n")  # zeta is not listed
    report = prepare_dataset(root, str(tmp_path / "tfds"), num_frames=2, size=32, workers=1, progress=False)
    assert report.labels == ["gamma", "alpha", "beta", "delta"] and report.label_source == "labels.txt"
    assert report.num_examples == 8
    assert [s["kind"] for s in report.skipped] == ["unknown_label"] and "zeta" in report.skipped[0]["path"]
    builder = load_builder(str(tmp_path / "tfds"), 2, 32)
    assert builder.info.features["label"].names == report.labels
