import json
import os

import pytest

from data_interface_for_model import (
    LABELS,
    LABEL_TO_ID,
    VIDEO_TYPE_DICT,
    InfoFileError,
    RecordError,
    VideoRecord,
    format_duration,
    iter_info_file,
    parse_duration,
    parse_item_text,
    read_info_file,
    read_item_txt,
    write_info_file,
    write_item_txt,
)
from data_interface_for_model.item_txt import format_original_txt

RECORD = {"mp4_id": "80328682", "mp4_download_url": "https://p5-v1.xpccdn.com/080328682_main_xl.mp4",
          "mp4_time": "0:16", "mp4_background_image_url": "https://p5-i1.xpccdn.com/080328682_iconl.jpeg",
          "mp4_txt_brief": " Woman in swimsuit and cover up walking at the beach", "video_label": "Beach"}


def test_categories_match_the_original():
    assert len(LABELS) == 31
    assert LABELS[0] == "360VR" and LABELS[1] == "4k" and LABELS[29] == "space" and LABELS[30] == "stars"
    assert LABEL_TO_ID["Beach"] == 8 and LABEL_TO_ID["Wedding"] == 28
    assert VIDEO_TYPE_DICT["Underwater"] == "水下摄影"
    assert list(LABELS) == sorted(VIDEO_TYPE_DICT)


@pytest.mark.parametrize("text,seconds", [("0:16", 16), ("1:02:03", 3723), ("12:05", 725), ("16", 16), (" 0:03 ", 3)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1:75", "1:-2", "1::2", None])
def test_parse_duration_rejects(text):
    with pytest.raises(RecordError):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [0, 16, 725, 3723])
def test_duration_round_trip(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


def test_record_round_trip():
    record = VideoRecord.from_dict(RECORD)
    assert record.duration_s == 16 and record.label_id == 8 and record.mp4_time == "0:16"
    assert record.to_dict() == RECORD


@pytest.mark.parametrize("bad_id", ["../etc", "a/b", "a\\b", "..", ".hidden", "", "x" * 200, "a b"])
def test_hostile_ids_are_refused(bad_id):
    with pytest.raises(RecordError):
        VideoRecord.from_dict({**RECORD, "mp4_id": bad_id})


@pytest.mark.parametrize("bad_label", ["../Beach", "Beach/..", "Cats", "beach"])
def test_bad_labels_are_refused(bad_label):
    with pytest.raises(RecordError):
        VideoRecord.from_dict({**RECORD, "video_label": bad_label})


def test_info_file_round_trip_and_streaming(tmp_path):
    path = tmp_path / "info.json"
    records = [VideoRecord.from_dict({**RECORD, "mp4_id": str(1000 + i), "video_label": LABELS[i % 31]})
               for i in range(50)]
    assert write_info_file(path, records) == 50
    read_back = list(iter_info_file(path))
    assert read_back == records
    assert not [p for p in os.listdir(tmp_path) if p != "info.json"]  # no temporary file left


def test_malformed_lines_are_reported_with_line_numbers(tmp_path):
    good = json.dumps(RECORD)
    lines = [
        good,
        "{not json",
        json.dumps({k: v for k, v in RECORD.items() if k != "mp4_txt_brief"}),
        json.dumps({**RECORD, "mp4_time": 3.5, "mp4_txt_brief": 7}),
        json.dumps({**RECORD, "video_label": "Cats"}),
        json.dumps({**RECORD, "mp4_id": "../../x"}),
        "",
        json.dumps([1, 2]),
        json.dumps({**RECORD, "mp4_id": "2"}),
    ]
    path = tmp_path / "info.json"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records, errors = read_info_file(path)
    assert [r.mp4_id for r in records] == ["80328682", "2"]
    assert [e.line_number for e in errors] == [2, 3, 4, 5, 6, 8]
    messages = [e.message for e in errors]
    assert "invalid JSON" in messages[0]
    assert "mp4_txt_brief" in messages[1]
    assert "must be a string" in messages[2]
    assert "Cats" in messages[3]
    assert "path separator" in messages[4]
    assert "JSON object" in messages[5]
    assert str(path) in str(errors[0]) and ":2:" in str(errors[0])
    with pytest.raises(InfoFileError) as info:
        list(iter_info_file(path, strict=True))
    assert info.value.error.line_number == 2


def test_txt_in_both_formats(tmp_path):
    record = VideoRecord.from_dict(RECORD)
    legacy = tmp_path / "legacy.txt"
    legacy.write_text(format_original_txt(record), encoding="utf-8")
    assert "'mp4_id'" in legacy.read_text()  # really the Python repr, not JSON
    assert read_item_txt(legacy, label="Beach") == record
    modern = tmp_path / "modern.txt"
    write_item_txt(modern, record)
    assert json.loads(modern.read_text())["video_label"] == "Beach"
    assert read_item_txt(modern) == record


def test_txt_label_must_match_folder(tmp_path):
    path = tmp_path / "x.txt"
    write_item_txt(path, VideoRecord.from_dict(RECORD))
    with pytest.raises(RecordError, match="does not match"):
        read_item_txt(path, label="Sea")


def test_hostile_txt_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    payloads = [
        f"__import__('os').system('touch {marker}')",
        f"{{'mp4_id': __import__('os').system('touch {marker}')}}",
        f"(lambda: open('{marker}', 'w'))()",
    ]
    for i, payload in enumerate(payloads):
        path = tmp_path / f"{i}.txt"
        path.write_text(payload, encoding="utf-8")
        with pytest.raises(RecordError) as info:
            read_item_txt(path, label="Beach")
        assert str(path) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("text", ["", "   ", "[1, 2]", "'just a string'", "{'mp4_id': '1'"])
def test_parse_item_text_rejects(text):
    with pytest.raises(RecordError):
        parse_item_text(text)
