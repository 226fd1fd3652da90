"""The downloader against hostile or broken servers and disks: redirects, size caps, deadlines, wrong
Content-Types, duplicate records, concurrent writers of one .part, a full disk, links in the tree."""
from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import time

import pytest

from data_download_tools import http_fetch
from data_download_tools.download import DownloadConfig, download, download_item
from data_download_tools.http_fetch import FetchConfig, FetchError, HttpFetcher, _Permanent
from data_download_tools.verify import verify_file
from tests.fault_server import Fault, FaultServer
from tests.test_download import assert_identical, demo_records, part_files, read_bytes, rel, write_info

QUICK = dict(timeout_s=2.0, retries=2, backoff_s=0.01, backoff_max_s=0.05)


@pytest.fixture
def served(demo_root):
    with FaultServer(demo_root) as running:
        yield running


def _clip(demo_root, served):
    (record,) = demo_records(demo_root, 1)
    url = f"{served.base_url}/{rel(record, '.mp4')}"
    record = dataclasses.replace(record, video_url=url, cover_url=f"{served.base_url}/{rel(record, '.jpeg')}")
    return record, rel(record, ".mp4"), url


def _verify_video(path):
    verify_file("video", path)


def test_redirects_only_to_the_same_host_or_an_allowed_one(demo_root, served, tmp_path):
    record, path, url = _clip(demo_root, served)
    port = served.base_url.rsplit(":", 1)[1]
    served.faults["hop"] = Fault(redirect_to=f"/{path}")  # same host: followed
    served.faults["away"] = Fault(redirect_to=f"http://localhost:{port}/{path}")  # same server, other host name
    fetcher = HttpFetcher(FetchConfig(**QUICK))
    fetcher.fetch(f"{served.base_url}/hop", str(tmp_path / "same.mp4"), verify=_verify_video, kind="video")
    assert read_bytes(tmp_path / "same.mp4") == read_bytes(os.path.join(demo_root, path))
    with pytest.raises(FetchError, match="redirect to another host refused: localhost") as caught:
        fetcher.fetch(f"{served.base_url}/away", str(tmp_path / "away.mp4"), kind="video")
    assert caught.value.permanent and caught.value.attempts == 1
    assert not os.path.exists(tmp_path / "away.mp4") and part_files(tmp_path) == []
    allowed = HttpFetcher(FetchConfig(**QUICK, allowed_hosts=frozenset({"LOCALHOST"})))
    allowed.fetch(f"{served.base_url}/away", str(tmp_path / "away.mp4"), kind="video")
    assert read_bytes(tmp_path / "away.mp4") == read_bytes(os.path.join(demo_root, path))
    served.faults["loop"] = Fault(redirect_to="/loop")
    with pytest.raises(FetchError, match="more than 5 redirects"):
        fetcher.fetch(f"{served.base_url}/loop", str(tmp_path / "loop.mp4"))


class _Redirect:
    status_code = 302

    def __init__(self, location):
        self.headers = {"Location": location}


def test_https_never_redirects_to_http():
    fetcher = HttpFetcher(FetchConfig(allowed_hosts=frozenset({"cdn.example"})))
    with pytest.raises(_Permanent, match="https to http"):
        fetcher._redirect_target("https://a.example/x", "https://a.example/x", _Redirect("http://a.example/x"))
    with pytest.raises(_Permanent, match="scheme 'file'"):
        fetcher._redirect_target("https://a.example/x", "https://a.example/x", _Redirect("file:///etc/passwd"))
    assert fetcher._redirect_target("https://a.example/x", "https://a.example/x",
                                    _Redirect("https://cdn.example/y")) == "https://cdn.example/y"
    assert fetcher._redirect_target("http://a.example/x", "http://a.example/x", _Redirect("https://a.example/z")) \
        == "https://a.example/z"


def test_size_caps_are_checked_against_content_length_and_while_streaming(demo_root, served, tmp_path):
    record, path, url = _clip(demo_root, served)
    size = os.path.getsize(os.path.join(demo_root, path))
    fetcher = HttpFetcher(FetchConfig(**QUICK, max_video_bytes=size - 1))
    with pytest.raises(FetchError, match=f"declares {size} bytes, more than the {size - 1}-byte cap") as caught:
        fetcher.fetch(url, str(tmp_path / "a.mp4"), kind="video")
    assert caught.value.permanent and part_files(tmp_path) == []
    # no Content-Length and 16 MiB of body: stopped at the cap, nothing kept
    served.faults["endless"] = Fault(stream_bytes=16 << 20)
    small = HttpFetcher(FetchConfig(**QUICK, max_video_bytes=1 << 20))
    started = time.monotonic()
    with pytest.raises(FetchError, match="exceeds the 1048576-byte cap") as caught:
        small.fetch(f"{served.base_url}/endless", str(tmp_path / "b.mp4"), kind="video")
    assert caught.value.permanent and time.monotonic() - started < 10
    assert not os.path.exists(tmp_path / "b.mp4") and part_files(tmp_path) == []
    # a Content-Length beyond the cap on a cover: refused before the body is read
    cover = rel(record, ".jpeg")
    served.faults[cover] = Fault(declare_length=64 << 20)
    with pytest.raises(FetchError, match="cap for a cover"):
        HttpFetcher(FetchConfig(**QUICK)).fetch(record.cover_url, str(tmp_path / "c.jpeg"), kind="cover")


def test_each_attempt_has_a_total_deadline(demo_root, served, tmp_path):
    record, path, url = _clip(demo_root, served)
    served.faults[path] = Fault(drip_s=0.2)  # a byte every 0.2 s: never a read timeout, never done
    fetcher = HttpFetcher(FetchConfig(timeout_s=1.0, retries=0, deadline_s=1.5))
    started = time.monotonic()
    with pytest.raises(FetchError, match="longer than 1.5 s") as caught:
        fetcher.fetch(url, str(tmp_path / "a.mp4"), kind="video")
    assert time.monotonic() - started < 5 and not caught.value.permanent
    assert 0 < os.path.getsize(tmp_path / "a.mp4.part") < 100  # what came is kept for a resume


def test_content_types_that_cannot_be_media_are_refused(demo_root, served, tmp_path):
    record, path, url = _clip(demo_root, served)
    served.faults[path] = Fault(content_type="text/html; charset=utf-8")
    fetcher = HttpFetcher(FetchConfig(**QUICK))
    for verify in (None, _verify_video):
        with pytest.raises(FetchError, match="Content-Type text/html is not a video") as caught:
            fetcher.fetch(url, str(tmp_path / "a.mp4"), verify=verify, kind="video")
        assert caught.value.permanent
    # without verification the type must say video (or octet-stream); with it, the decoder decides
    served.faults[path] = Fault(content_type="application/x-unknown")
    with pytest.raises(FetchError, match="is not a video"):
        fetcher.fetch(url, str(tmp_path / "a.mp4"), kind="video")
    fetcher.fetch(url, str(tmp_path / "a.mp4"), verify=_verify_video, kind="video")
    served.faults[path] = Fault(content_type="application/octet-stream")
    fetcher.fetch(url, str(tmp_path / "b.mp4"), kind="video")
    assert read_bytes(tmp_path / "b.mp4") == read_bytes(os.path.join(demo_root, path))


def test_a_file_that_keeps_failing_verification_is_not_fetched_for_ever(demo_root, served, tmp_path):
    record, path, url = _clip(demo_root, served)
    served.faults[path] = Fault(garbage_times=10)
    fetcher = HttpFetcher(FetchConfig(**{**QUICK, "retries": 4}))
    with pytest.raises(FetchError, match="failed verification 2 times") as caught:
        fetcher.fetch(url, str(tmp_path / "a.mp4"), verify=_verify_video, kind="video")
    assert caught.value.permanent and caught.value.attempts == 2
    assert len(served.requests_for(path)) == 2


def test_one_target_per_label_and_id(demo_root, served, tmp_path):
    first, second = demo_records(demo_root, 2)
    info = write_info(tmp_path / "info.json", [first, second], served.base_url)
    with open(info, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    again = json.loads(lines[0])
    again["mp4_download_url"] = f"{served.base_url}/{rel(second, '.mp4')}"  # same (label, id), other URL
    elsewhere = json.loads(lines[1])
    elsewhere["video_label"] = "City" if second.label != "City" else "Sea"  # same id under another label
    with open(info, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(again) + "\n" + json.dumps(elsewhere) + "\n")
    out = str(tmp_path / "out")
    summary = download(info, out, DownloadConfig(workers=4, fetch=FetchConfig(**QUICK)))
    assert (summary.downloaded, summary.failed, summary.duplicate_count, summary.conflict_count) == (3, 0, 1, 1)
    assert "listed again" in summary.duplicates[0] and first.mp4_id in summary.duplicates[0]
    assert second.mp4_id in summary.conflicts[0] and "two splits" in summary.conflicts[0]
    assert "1 duplicate records, 1 ids under two labels" in summary.line()
    assert_identical(demo_root, out, first)  # the first record won; the duplicate never raced it
    assert len(served.requests_for(rel(first, ".mp4"))) == 1


def test_a_part_file_locked_by_another_download_is_not_written(demo_root, served, tmp_path):
    record, path, url = _clip(demo_root, served)
    target = str(tmp_path / "a.mp4")
    with open(target + ".part", "wb") as other:
        other.write(b"someone else's bytes")
        other.flush()
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        with pytest.raises(FetchError, match="being written by another download") as caught:
            HttpFetcher(FetchConfig(**QUICK)).fetch(url, target, kind="video")
        assert not caught.value.permanent
    assert read_bytes(target + ".part") == b"someone else's bytes" and served.requests_for(path) == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG])
def test_a_full_disk_keeps_the_part_and_is_not_retried(demo_root, served, tmp_path, monkeypatch, code):
    record, path, url = _clip(demo_root, served)
    written = []

    def full_after_the_first_chunk(fd, data):
        if written:
            raise OSError(code, os.strerror(code))
        os.write(fd, data[:1000])
        written.append(1000)
        raise OSError(code, os.strerror(code))

    working = http_fetch._write_chunk
    monkeypatch.setattr(http_fetch, "_write_chunk", full_after_the_first_chunk)
    sleeps = []
    fetcher = HttpFetcher(FetchConfig(**{**QUICK, "chunk_bytes": 4096}), sleep=sleeps.append)
    target = str(tmp_path / "a.mp4")
    with pytest.raises(FetchError, match="disk full") as caught:
        fetcher.fetch(url, target, kind="video")
    assert caught.value.disk_full and not caught.value.permanent and caught.value.attempts == 1 and sleeps == []
    assert os.path.getsize(target + ".part") == 1000 and os.path.exists(target + ".part.json")
    # through download_item: a failure, not permanent, marked as disk full
    written.clear()
    result = download_item(record, str(tmp_path / "root"), fetcher, verify=False)
    assert result.status == "failed" and result.disk_full and not result.permanent and "disk full" in result.reason
    # with room again, the next run resumes the kept .part
    monkeypatch.setattr(http_fetch, "_write_chunk", working)
    fetcher.fetch(url, target, kind="video")
    assert read_bytes(target) == read_bytes(os.path.join(demo_root, path))
    assert served.requests_for(path)[-1].range == "bytes=1000-"


def test_links_in_the_output_tree_are_not_followed(demo_root, served, tmp_path):
    record, path, url = _clip(demo_root, served)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / record.label).symlink_to(elsewhere, target_is_directory=True)
    result = download_item(record, str(root), HttpFetcher(FetchConfig(**QUICK)), verify=False)
    assert result.status == "failed" and "symbolic link" in result.reason and result.permanent
    assert list(elsewhere.iterdir()) == []
    # a link planted where the .part goes: refused, the file it points to untouched
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    target = tmp_path / "a.mp4"
    (tmp_path / "a.mp4.part").symlink_to(victim)
    with pytest.raises(FetchError, match="cannot open"):
        HttpFetcher(FetchConfig(**QUICK)).fetch(url, str(target), kind="video")
    assert victim.read_bytes() == b"keep"
