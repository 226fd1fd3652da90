import os
import shutil

import pytest

from data_interface_for_model import LayoutReader, VideoRecord, read_info_file
from data_interface_for_model.item_txt import format_original_txt, read_item_txt


def _first_items(root, count):
    items = list(LayoutReader(root))
    return items[:count]


def test_clean_demo_has_no_problems(demo_root):
    reader = LayoutReader(demo_root)
    items = list(reader)
    assert len(items) == 62 and reader.problems == []
    assert len({item.label for item in items}) == 31
    records, errors = read_info_file(os.path.join(demo_root, "multimodal_data_info.json"))
    assert errors == [] and {r.mp4_id for r in records} == {i.mp4_id for i in items}


def test_each_kind_of_defect_is_reported(demo_copy):
    items = _first_items(demo_copy, 8)
    os.remove(items[0].video_path)                                   # missing video
    os.remove(items[1].cover_path)                                   # missing cover
    os.remove(items[2].txt_path)                                     # missing text
    open(items[3].video_path, "wb").close()                          # empty file
    with open(items[4].txt_path, "w") as handle:                     # code in the .txt
        handle.write("__import__('os').system('echo hi')")
    record = read_item_txt(items[5].txt_path)                        # id mismatch
    with open(items[5].txt_path, "w") as handle:
        handle.write(format_original_txt(VideoRecord(**{**record.__dict__, "mp4_id": "999"})))
    os.makedirs(os.path.join(demo_copy, "Cats", "123"))              # unknown label folder
    os.makedirs(os.path.join(demo_copy, "Beach", "bad id"))          # unsafe id folder
    open(os.path.join(demo_copy, "Beach", "stray.bin"), "wb").close()  # stray file

    reader = LayoutReader(demo_copy)
    good = list(reader)
    kinds = sorted(p.kind for p in reader.problems)
    assert kinds == sorted(["missing_video", "missing_cover", "missing_text", "empty_file", "missing_video",
                            "malformed_txt", "missing_text", "id_mismatch", "missing_text", "unknown_label",
                            "unsafe_id", "stray_file"])
    assert len(good) == 62 - 6
    by_kind = {p.kind: p for p in reader.problems}
    assert items[4].txt_path in by_kind["malformed_txt"].path
    assert "Cats" in by_kind["unknown_label"].message


def test_missing_modalities_can_be_accepted(demo_copy):
    items = _first_items(demo_copy, 3)
    os.remove(items[0].video_path)
    os.remove(items[1].cover_path)
    os.remove(items[2].txt_path)
    reader = LayoutReader(demo_copy, allow_missing=True)
    got = {item.mp4_id: item for item in reader}
    assert len(got) == 62 and reader.problems == []
    assert got[items[0].mp4_id].missing == {"video"}
    assert got[items[1].mp4_id].missing == {"cover"}
    assert got[items[2].mp4_id].missing == {"text"} and got[items[2].mp4_id].brief == ""
    only_text = LayoutReader(demo_copy, allow_missing={"text"})
    assert len(list(only_text)) == 60
    assert sorted(p.kind for p in only_text.problems) == ["missing_cover", "missing_video"]


def test_unknown_modality_name_is_refused(demo_root):
    with pytest.raises(ValueError, match="unknown modalities"):
        LayoutReader(demo_root, allow_missing={"audio"})


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        LayoutReader(tmp_path / "nope")
