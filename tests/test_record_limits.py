"""Hostile records: oversized, deeply nested or huge-number info lines and .txt files are a named error for
that item, and every command that reads them goes on; fuzzing shows the parsers raise nothing else."""
from __future__ import annotations

import json
import os
import shutil
import string
import tempfile
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_download_tools.__main__ import main
from data_interface_for_model import LABELS, LayoutItem, LayoutProblem, LayoutReader, read_info_file
from data_interface_for_model.info_file import INFO_FILE_NAME, LineError, iter_info_file
from data_interface_for_model.item_txt import parse_item_text, read_item_txt
from data_interface_for_model.limits import ParseLimits, check_record_text
from data_interface_for_model.schema import RecordError, VideoRecord

GOOD = {"mp4_id": "80328682", "mp4_download_url": "https://x.invalid/a.mp4", "mp4_time": "0:16",
        "mp4_background_image_url": "https://x.invalid/a.jpeg", "mp4_txt_brief": " a beach", "video_label": "Beach"}
HUGE_INT = "1" * 5000  # Python refuses to parse ints over 4300 digits: ValueError, not a JSON error
DEEP_JSON = "[" * 5000 + "]" * 5000  # RecursionError in json and in literal_eval
HOSTILE_TEXTS = {
    "huge int (JSON)": '{"mp4_id": ' + HUGE_INT + "}",
    "huge int (literal)": "{'mp4_id': " + HUGE_INT + ", 'x': set()}",
    "deep (JSON)": '{"a": ' + DEEP_JSON + "}",
    "deep (literal)": "{'a': " + "(" * 5000 + ")" * 5000 + ", 'b': set()}",
    "NaN": '{"mp4_id": "1", "mp4_time": NaN}',
    "infinite duration": '{"mp4_id": "1", "mp4_time": 1e999, "video_label": "Beach"}',
}


def _write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
    return str(path)


@pytest.mark.parametrize("name", sorted(HOSTILE_TEXTS))
def test_a_hostile_info_line_is_a_line_error_and_reading_goes_on(name, tmp_path):
    path = _write_lines(tmp_path / "info.json", [HOSTILE_TEXTS[name], json.dumps(GOOD)])
    errors = []
    records = list(iter_info_file(path, on_error=errors.append))
    assert [r.mp4_id for r in records] == ["80328682"]
    assert [e.line_number for e in errors] == [1] and str(errors[0]).startswith(f"{path}:1: ")


@pytest.mark.parametrize("name", sorted(HOSTILE_TEXTS))
def test_a_hostile_txt_is_a_record_error_naming_the_file(name, tmp_path):
    path = tmp_path / "1.txt"
    path.write_text(HOSTILE_TEXTS[name], encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(RecordError, match=str(path)):
        read_item_txt(path, label="Beach")
    assert time.perf_counter() - started < 1.0


def test_an_oversized_info_line_is_refused_without_reading_it_into_memory(tmp_path):
    path = tmp_path / "info.json"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps({**GOOD, "mp4_txt_brief": "x" * (8 << 20)}) + "\n")  # valid JSON, 8 MiB
        handle.write(json.dumps(GOOD) + "\n")
    errors = []
    tracemalloc.start()
    try:
        records = list(iter_info_file(path, on_error=errors.append))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(records) == 1 and len(errors) == 1
    assert "more than the limit of 65536" in errors[0].message
    assert peak < 1 << 20  # one bounded line at a time, not the 8 MiB one


def test_a_one_mib_txt_is_refused_before_parsing(tmp_path):
    path = tmp_path / "1.txt"
    path.write_text("{'mp4_txt_brief': '" + "x" * (1 << 20) + "'}", encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(RecordError, match="more than the limit of 65536"):
        read_item_txt(path, label="Beach")
    assert time.perf_counter() - started < 0.2
    roomy = ParseLimits(max_txt_bytes=2 << 20)  # the limit is configuration
    with pytest.raises(RecordError, match="missing key 'mp4_id'"):
        read_item_txt(path, label="Beach", limits=roomy)


def test_limits_are_configuration():
    text = '{"a": [[[1]]], "b": 123456}'
    check_record_text(text)
    with pytest.raises(ValueError, match="deeper than 3"):
        check_record_text(text, ParseLimits(max_depth=3))
    with pytest.raises(ValueError, match="longer than 5 digits"):
        check_record_text(text, ParseLimits(max_number_digits=5))
    check_record_text('{"a": "[[[[[[ 123456789"}', ParseLimits(max_depth=1, max_number_digits=2))  # in strings
    with pytest.raises(ValueError):
        ParseLimits(max_depth=0)


def _hostile_root(demo_copy):
    """Put a hostile .txt into three items of a dataset copy; return their paths."""
    paths = []
    for item, name in zip(list(LayoutReader(demo_copy))[:3], ("huge int (literal)", "deep (JSON)", "NaN")):
        with open(item.txt_path, "w", encoding="utf-8") as handle:
            handle.write(HOSTILE_TEXTS[name])
        paths.append(item.txt_path)
    big = list(LayoutReader(demo_copy))[3].txt_path  # a 1 MiB .txt
    with open(big, "w", encoding="utf-8") as handle:
        handle.write('{"mp4_txt_brief": "' + "x" * (1 << 20) + '"}')
    return paths + [big]


def test_stats_check_and_aggregate_name_each_hostile_txt_and_go_on(demo_copy, tmp_path, capsys):
    hostile = _hostile_root(demo_copy)
    assert main(["stats", "--data-root", demo_copy, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "stats: 62 items (58 complete), 4 problems" in captured.out
    for path in hostile:
        assert f"problem: malformed_txt: {path}" in captured.err
    assert main(["check", "--data-root", demo_copy, "--quiet"]) == 1  # incomplete items: exit 1, not a crash
    captured = capsys.readouterr()
    assert "check: 62 items, 58 complete, 4 incomplete, 4 problems" in captured.out
    out = str(tmp_path / "info.json")
    assert main(["aggregate", "--data-root", demo_copy, "--output", out, "--quiet"]) == 0
    assert "58 records written" in capsys.readouterr().out
    assert len(read_info_file(out)[0]) == 58


def test_download_reports_hostile_lines_and_downloads_the_rest(demo_root, tmp_path, capsys):
    from tests.fault_server import FaultServer

    records, _ = read_info_file(os.path.join(demo_root, INFO_FILE_NAME))
    with FaultServer(demo_root) as server:
        url = lambda r, ext: f"{server.base_url}/{r.label}/{r.mp4_id}/{r.mp4_id}{ext}"  # noqa: E731
        lines = [json.dumps({**r.to_dict(), "mp4_download_url": url(r, ".mp4"),
                             "mp4_background_image_url": url(r, ".jpeg")}) for r in records[:2]]
        info = _write_lines(tmp_path / "info.json", [HOSTILE_TEXTS["huge int (JSON)"], lines[0],
                                                     HOSTILE_TEXTS["deep (JSON)"], "x" * 70_000, lines[1]])
        code = main(["download", "--info", info, "--output", str(tmp_path / "out"), "--quiet", "--workers", "2"])
    captured = capsys.readouterr()
    assert code == 1  # invalid lines make the run fail, after everything else was done
    assert "2 downloaded, 0 skipped, 0 failed, 3 invalid lines" in captured.out
    assert "info.json:1: a number longer than 64 digits" in captured.err
    assert "info.json:3: nested deeper than 16 levels" in captured.err
    assert "info.json:4: line of 70001 bytes" in captured.err


# ------------------------------------------------------------------------------------------------- fuzz
_FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30)
_adversarial = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="[]{}()'\",:0123456789-.eE \\nNaIfity", max_size=400),
    st.builds(lambda n, c: c * n, st.integers(0, 3000), st.sampled_from(["[", "{", "(", "{'a':", '{"a":'])),
    st.builds(lambda n: '{"mp4_id": ' + "9" * n + "}", st.integers(0, 6000)),
    st.builds(json.dumps, _json_values),
    st.builds(repr, _json_values),
    st.builds(lambda d: json.dumps({**GOOD, **d}), st.dictionaries(st.sampled_from(sorted(GOOD)), _json_values)),
)


@_FUZZ
@given(_adversarial)
def test_fuzz_parse_item_text_returns_a_dict_or_raises_record_error(text):
    try:
        assert isinstance(parse_item_text(text), dict)
    except RecordError:
        pass


@_FUZZ
@given(st.lists(st.one_of(_adversarial, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))), max_size=6))
def test_fuzz_info_file_yields_records_or_line_errors_only(lines):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "info.json")
        with open(path, "wb") as handle:
            handle.write("\n".join(lines).encode("utf-8", errors="surrogatepass"))
        errors = []
        records = list(iter_info_file(path, on_error=errors.append, limits=ParseLimits(max_line_bytes=2000)))
    assert all(isinstance(r, VideoRecord) for r in records) and all(isinstance(e, LineError) for e in errors)
    assert len(records) + len(errors) <= len(lines) + sum(line.count("\n") + line.count("\r") for line in lines)


@_FUZZ
@given(st.binary(max_size=400) | _adversarial.map(lambda t: t.encode("utf-8", errors="surrogatepass")))
def test_fuzz_read_item_txt_returns_a_record_or_raises_record_error(data):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "1.txt")
        with open(path, "wb") as handle:
            handle.write(data)
        try:
            assert isinstance(read_item_txt(path, label="Beach"), VideoRecord)
        except RecordError as exc:
            assert path in str(exc)


_names = st.one_of(st.sampled_from(list(LABELS[:3]) + ["Cats", ".hidden", "..", "a b"]),
                   st.text(alphabet=string.ascii_letters + string.digits + "._- ", min_size=1, max_size=12))
_entries = st.lists(st.tuples(
    _names,                                                   # label folder
    st.one_of(st.just("123"), _names),                        # item folder
    st.sampled_from(["{id}.mp4", "{id}.jpeg", "{id}.txt", "other.txt", "{id}", "{id}.txt/"]),
    st.one_of(st.binary(max_size=50), _adversarial.map(lambda t: t.encode("utf-8", errors="surrogatepass"))),
    st.sampled_from(["file", "dir", "symlink", "dangling"]),
), max_size=12)


def _build_tree(root, entries):
    for label, item, pattern, data, kind in entries:
        name = pattern.format(id=item).rstrip("/")
        folder = os.path.join(root, label, item)
        try:
            os.makedirs(folder, exist_ok=True)
            target = os.path.join(folder, name)
            if kind == "dir" or pattern.endswith("/"):
                os.makedirs(target, exist_ok=True)
            elif kind == "symlink":
                os.symlink(root, target)
            elif kind == "dangling":
                os.symlink(os.path.join(root, "nowhere"), target)
            else:
                with open(target, "wb") as handle:
                    handle.write(data)
        except OSError:  # a name the file system refuses, a file where a folder was: not a reader case
            pass


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_entries, st.sets(st.sampled_from(["video", "cover", "text"])))
def test_fuzz_layout_reader_yields_items_and_problems_only(entries, allow_missing):
    documented = {"unknown_label", "stray_file", "unsafe_id", "missing_video", "missing_cover", "missing_text",
                  "empty_file", "malformed_txt", "id_mismatch"}
    root = tempfile.mkdtemp()
    try:
        _build_tree(root, entries)
        reader = LayoutReader(root, allow_missing=allow_missing)
        items = list(reader)
        assert all(isinstance(item, LayoutItem) for item in items)
        assert all(isinstance(p, LayoutProblem) and p.kind in documented for p in reader.problems)
        for item in items:
            assert item.label in LABELS and not (item.missing - allow_missing)
    finally:
        shutil.rmtree(root, ignore_errors=True)
