"""``check`` (figures, incomplete items, corrupt files) and ``aggregate`` (info file / DataFrame from folders)."""
from __future__ import annotations

import json
import os

from PIL import Image

from data_download_tools.__main__ import main
from data_download_tools.aggregate import aggregate_dataframe, aggregate_info_file
from data_download_tools.check import check_dataset
from data_interface_for_model import INFO_FILE_NAME, LABELS, read_info_file
from data_interface_for_model.item_txt import format_original_txt
from data_interface_for_model.schema import INFO_KEYS
from tests.conftest import SMALL_DEMO

ITEMS = 31 * SMALL_DEMO.per_category


def _items(root):
    records, errors = read_info_file(os.path.join(root, INFO_FILE_NAME))
    assert not errors
    return records


def _path(root, record, extension):
    return os.path.join(root, record.label, record.mp4_id, record.mp4_id + extension)


def test_check_of_a_clean_dataset_passes_with_figures_json_and_plot(demo_root, tmp_path, capsys):
    out_json, out_png = str(tmp_path / "check.json"), str(tmp_path / "items.png")
    code = main(["check", "--data-root", demo_root, "--deep", "--json", out_json, "--plot", out_png, "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"check: {ITEMS} items, {ITEMS} complete, 0 incomplete, 0 problems, 0 corrupt files" in printed
    with open(out_json, encoding="utf-8") as handle:
        report = json.load(handle)
    assert report["items"] == ITEMS and report["deep"] is True and report["corrupt"] == []
    assert list(report["categories"]) == list(LABELS)
    records = _items(demo_root)
    beach = [r for r in records if r.label == "Beach"]
    assert report["categories"]["Beach"]["items"] == len(beach)
    assert report["categories"]["Beach"]["total_duration_s"] == sum(r.duration_s for r in beach)
    assert report["total_duration_s"] == sum(r.duration_s for r in records)
    on_disk = sum(os.path.getsize(_path(demo_root, r, e)) for r in records for e in (".mp4", ".jpeg", ".txt"))
    assert report["bytes"] == on_disk
    with Image.open(out_png) as image:
        assert image.format == "PNG" and image.width > 300


def test_check_lists_missing_and_corrupt_files_and_fails(demo_copy, capsys):
    records = _items(demo_copy)
    missing_video, truncated_mp4, not_a_jpeg, missing_txt = records[0], records[5], records[9], records[20]
    os.remove(_path(demo_copy, missing_video, ".mp4"))
    mp4 = _path(demo_copy, truncated_mp4, ".mp4")
    with open(mp4, "rb") as handle:
        head = handle.read(300)
    with open(mp4, "wb") as handle:
        handle.write(head)
    Image.new("RGB", (8, 8)).save(_path(demo_copy, not_a_jpeg, ".jpeg"), format="PNG")  # a PNG named .jpeg
    os.remove(_path(demo_copy, missing_txt, ".txt"))
    with open(_path(demo_copy, records[30], ".mp4") + ".part", "wb") as handle:
        handle.write(b"partial")

    shallow = check_dataset(demo_copy)
    assert not shallow.ok and shallow.corrupt == [] and shallow.partial_downloads == 1
    assert shallow.statistics.complete == ITEMS - 2
    assert shallow.statistics.categories[missing_video.label].missing == {"video": 1}
    assert shallow.statistics.categories[missing_txt.label].missing == {"text": 1}

    deep = check_dataset(demo_copy, deep=True, workers=2)
    assert sorted((c.kind, c.path) for c in deep.corrupt) == sorted([
        ("video", mp4), ("cover", _path(demo_copy, not_a_jpeg, ".jpeg"))])
    assert "not a JPEG" in [c for c in deep.corrupt if c.kind == "cover"][0].message

    code = main(["check", "--data-root", demo_copy, "--deep", "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    assert f"incomplete {missing_video.label}: 1 without video" in captured.out
    assert "2 corrupt files" in captured.out and "1 partial downloads" in captured.out
    assert f"corrupt video: {mp4}" in captured.err


def test_aggregate_rebuilds_the_info_file_and_the_dataframe(demo_copy, tmp_path, capsys):
    records = _items(demo_copy)
    out = str(tmp_path / "rebuilt.json")
    assert main(["aggregate", "--data-root", demo_copy, "--output", out]) == 0
    assert f"{ITEMS} records written" in capsys.readouterr().out
    rebuilt, errors = read_info_file(out)
    assert not errors
    key = lambda r: (r.label, r.mp4_id)  # noqa: E731
    assert sorted(rebuilt, key=key) == sorted(records, key=key) and rebuilt == sorted(rebuilt, key=key)

    frame = aggregate_dataframe(demo_copy)
    assert list(frame.columns) == list(INFO_KEYS) and len(frame) == ITEMS
    first = frame.iloc[0].to_dict()
    assert first == sorted(records, key=key)[0].to_dict()

    # an original-style .txt (Python dict repr, no label) is read safely; an item without its clip is
    # kept unless --complete-only; an item without a .txt has no record and is counted
    original = records[3]
    with open(_path(demo_copy, original, ".txt"), "w", encoding="utf-8") as handle:
        handle.write(format_original_txt(original))
    os.remove(_path(demo_copy, records[4], ".mp4"))
    os.remove(_path(demo_copy, records[6], ".txt"))
    summary = aggregate_info_file(demo_copy, out)
    assert (summary.written, summary.without_record, summary.incomplete_left_out) == (ITEMS - 1, 1, 0)
    assert original in read_info_file(out)[0]
    summary = aggregate_info_file(demo_copy, out, complete_only=True)
    assert (summary.written, summary.without_record, summary.incomplete_left_out) == (ITEMS - 2, 1, 1)
    assert len(aggregate_dataframe(demo_copy, complete_only=True)) == ITEMS - 2

    # default output: ROOT/multimodal_data_info.json, which the layout reader does not take for an item
    os.remove(os.path.join(demo_copy, INFO_FILE_NAME))
    assert main(["aggregate", demo_copy, "--complete-only"]) == 0  # the old positional root
    assert len(read_info_file(os.path.join(demo_copy, INFO_FILE_NAME))[0]) == ITEMS - 2
