"""The downloader against a local fault-injecting server (127.0.0.1, started by the tests)."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from data_download_tools.__main__ import main
from data_download_tools.bounded import bounded_map
from data_download_tools.demo import DEFAULT_BASE_URL
from data_download_tools.download import DownloadConfig, download
from data_download_tools.http_fetch import FetchConfig, FetchError, HostLimiter, HttpFetcher
from data_interface_for_model import INFO_FILE_NAME, LayoutReader, iter_info_file, read_info_file, read_item_txt
from data_interface_for_model.layout import item_paths
from tests.fault_server import Fault, FaultServer

FAST = FetchConfig(timeout_s=0.5, retries=3, backoff_s=0.01, backoff_max_s=0.05)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def server(demo_root):
    with FaultServer(demo_root) as running:
        yield running


def write_info(path, records, base_url, extra_lines=()):
    """An info file for ``records`` whose URLs point at ``base_url`` (the demo's point at demo.invalid)."""
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            data = record.to_dict()
            for key in ("mp4_download_url", "mp4_background_image_url"):
                data[key] = data[key].replace(DEFAULT_BASE_URL, base_url)
            handle.write(json.dumps(data) + "\n")
        for line in extra_lines:
            handle.write(line + "\n")
    return str(path)


def demo_records(demo_root, count=None):
    records, errors = read_info_file(os.path.join(demo_root, INFO_FILE_NAME))
    assert not errors
    return records[:count] if count else records


def rel(record, extension):
    return f"{record.label}/{record.mp4_id}/{record.mp4_id}{extension}"


def read_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def assert_identical(demo_root, out, record):
    for extension in (".mp4", ".jpeg"):
        assert read_bytes(os.path.join(out, rel(record, extension))) == read_bytes(
            os.path.join(demo_root, rel(record, extension))), rel(record, extension)
    assert read_item_txt(os.path.join(out, rel(record, ".txt")), label=record.label).mp4_id == record.mp4_id


def part_files(root):
    return [os.path.join(folder, name) for folder, _, names in os.walk(root) for name in names
            if ".part" in name]


def part_sizes(root):
    """``.mp4.part`` path -> size, of the ones still there when looked at: while a download runs, a part
    listed by :func:`part_files` may be renamed to its final name before its size is read."""
    sizes = {}
    for path in part_files(root):
        if path.endswith(".mp4.part"):
            try:
                sizes[path] = os.path.getsize(path)
            except FileNotFoundError:
                pass
    return sizes


def test_faults_are_retried_resumed_or_recorded_and_a_rerun_fetches_nothing(demo_root, server, tmp_path):
    records = demo_records(demo_root, 8)
    r = records
    server.faults.update({
        rel(r[0], ".mp4"): Fault(fail_times=2, fail_status=503),
        rel(r[1], ".mp4"): Fault(drop_times=1, drop_after=2000),
        rel(r[2], ".mp4"): Fault(short_times=1),
        rel(r[3], ".jpeg"): Fault(sleep_times=1, sleep_s=1.5),
        rel(r[4], ".mp4"): Fault(status=404),
        rel(r[5], ".mp4"): Fault(garbage_times=1),
        rel(r[6], ".mp4"): Fault(drop_times=1, drop_after=2000, no_range=True),
        rel(r[7], ".jpeg"): Fault(fail_times=1, fail_status=500),
    })
    info = write_info(tmp_path / "info.json", records, server.base_url)
    out = str(tmp_path / "out")
    summary = download(info, out, DownloadConfig(workers=4, fetch=FAST))

    assert (summary.downloaded, summary.skipped, summary.failed) == (7, 0, 1)
    assert not summary.ok
    for record in records[:4] + records[5:]:
        assert_identical(demo_root, out, record)
    # 503 twice, then the file; the 404 once only (permanent at once), and its cover still fetched
    assert [q.status for q in server.requests_for(rel(r[0], ".mp4"))] == [503, 503, 200]
    assert [q.status for q in server.requests_for(rel(r[4], ".mp4"))] == [404]
    assert not os.path.exists(os.path.join(out, rel(r[4], ".mp4")))
    assert os.path.exists(os.path.join(out, rel(r[4], ".jpeg")))
    # the dropped and the short body were resumed with a Range request from where they stopped
    for record in (r[1], r[2]):
        first, second = server.requests_for(rel(record, ".mp4"))
        assert first.status == 200 and second.status == 206
        assert second.range == f"bytes={first.body_bytes}-" and first.body_bytes > 0
    # without Range support the retry starts over with a full 200
    statuses = [(q.status, q.range) for q in server.requests_for(rel(r[6], ".mp4"))]
    assert statuses[0][0] == 200 and statuses[1][0] == 200 and statuses[1][1] is not None
    # the timed-out cover and the garbage clip (failed verification) were fetched again
    assert server.arrivals[rel(r[3], ".jpeg")] == 2
    assert len(server.requests_for(rel(r[5], ".mp4"))) == 2
    assert part_files(out) == []

    failures = summary.failures_path
    assert failures == os.path.join(out, "download_failures.json")
    with open(failures, encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    assert [line["mp4_id"] for line in lines] == [r[4].mp4_id]
    assert "HTTP 404" in lines[0]["reason"] and lines[0]["permanent"] is True
    assert [rec.mp4_id for rec in iter_info_file(failures)] == [r[4].mp4_id]  # --info accepts it

    # a second run downloads nothing new and asks the server only for the missing clip
    before = len(server.log)
    again = download(info, out, DownloadConfig(workers=4, fetch=FAST))
    assert (again.downloaded, again.skipped, again.failed) == (0, 7, 1)
    assert [q.path for q in server.log[before:]] == [rel(r[4], ".mp4")]

    # retry from the failures file once the server has the clip: done, and the failures file goes away
    del server.faults[rel(r[4], ".mp4")]
    retry = download(failures, out, DownloadConfig(workers=2, fetch=FAST))
    assert (retry.downloaded, retry.failed) == (1, 0) and retry.ok
    assert not os.path.exists(failures)
    assert_identical(demo_root, out, r[4])
    assert len(list(LayoutReader(out))) == len(records)


def test_retries_give_up_on_persistent_5xx_and_keep_the_partial_file(demo_root, server, tmp_path):
    (record,) = demo_records(demo_root, 1)
    server.faults[rel(record, ".mp4")] = Fault(drop_times=10, drop_after=1000)
    sleeps = []
    fetcher = HttpFetcher(FetchConfig(timeout_s=0.5, retries=2, backoff_s=0.01), sleep=sleeps.append)
    target = str(tmp_path / "clip.mp4")
    with pytest.raises(FetchError) as caught:
        fetcher.fetch(record.video_url.replace(DEFAULT_BASE_URL, server.base_url), target)
    assert not caught.value.permanent and caught.value.attempts == 3
    assert len(sleeps) == 2
    assert not os.path.exists(target)
    served = server.requests_for(rel(record, ".mp4"))
    assert [q.status for q in served] == [200, 206, 206]
    offsets = [0]
    for q in served:
        offsets.append(offsets[-1] + q.body_bytes)
    assert [q.range for q in served] == [None, f"bytes={offsets[1]}-", f"bytes={offsets[2]}-"]
    assert os.path.getsize(target + ".part") == offsets[-1]  # kept for a later run to resume


def test_backoff_grows_exponentially_with_jitter_and_honours_retry_after():
    fetcher = HttpFetcher(FetchConfig(backoff_s=1.0, backoff_max_s=10.0), rng=random.Random(0))
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)):
        waits = [fetcher.backoff(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 1  # jitter
    assert fetcher.backoff(1, retry_after=7) == 7
    assert fetcher.backoff(1, retry_after=500) == 10.0


def test_status_codes_are_sorted_into_permanent_and_retried(demo_root, server, tmp_path):
    (record,) = demo_records(demo_root, 1)
    url = record.video_url.replace(DEFAULT_BASE_URL, server.base_url)
    path = rel(record, ".mp4")
    sleeps = []
    fetcher = HttpFetcher(FetchConfig(timeout_s=0.5, retries=3, backoff_s=0.01, backoff_max_s=0.5),
                          sleep=sleeps.append)
    for status in (410, 403):
        server.faults[path] = Fault(status=status)
        with pytest.raises(FetchError) as caught:
            fetcher.fetch(url, str(tmp_path / "clip.mp4"))
        assert caught.value.permanent and caught.value.attempts == 1 and f"HTTP {status}" in caught.value.reason
    assert sleeps == []
    server.faults[path] = Fault(fail_times=2, fail_status=429, retry_after=3)
    result = fetcher.fetch(url, str(tmp_path / "clip.mp4"))
    assert result.attempts == 3 and sleeps == [0.5, 0.5]  # Retry-After: 3, capped by backoff_max_s
    assert read_bytes(tmp_path / "clip.mp4") == read_bytes(os.path.join(demo_root, path))
    with pytest.raises(FetchError, match="unsupported URL scheme"):
        fetcher.fetch("file:///etc/passwd", str(tmp_path / "x"))


def test_the_host_limiter_spaces_request_starts_per_host():
    now = [100.0]
    waits = []
    limiter = HostLimiter(max_per_host=4, delay_s=2.0, clock=lambda: now[0], sleep=waits.append)
    for host in ("a", "a", "a", "b"):
        with limiter.slot(host):
            pass
    assert waits == [2.0, 4.0]  # the 2nd and 3rd start on host a wait their turn; host b does not


def test_the_per_host_limit_caps_concurrent_requests(demo_root, tmp_path):
    records = demo_records(demo_root, 12)
    with FaultServer(demo_root, latency_s=0.05) as slow:
        info = write_info(tmp_path / "info.json", records, slow.base_url)
        fetch = FetchConfig(timeout_s=2, max_per_host=2, backoff_s=0.01)
        assert download(info, str(tmp_path / "a"), DownloadConfig(workers=8, fetch=fetch)).ok
        assert slow.max_active == 2
        slow.max_active = 0
        fetch = FetchConfig(timeout_s=2, max_per_host=8, backoff_s=0.01)
        assert download(info, str(tmp_path / "b"), DownloadConfig(workers=8, fetch=fetch)).ok
        assert slow.max_active > 2


def test_a_corrupt_file_on_disk_is_fetched_again_and_a_good_one_is_not(demo_root, server, tmp_path):
    records = demo_records(demo_root, 2)
    out = str(tmp_path / "out")
    for record in records:
        paths = item_paths(out, record.label, record.mp4_id)
        os.makedirs(os.path.dirname(paths["video"]))
    good, bad = records
    good_paths, bad_paths = (item_paths(out, x.label, x.mp4_id) for x in records)
    with open(good_paths["video"], "wb") as handle:
        handle.write(read_bytes(os.path.join(demo_root, rel(good, ".mp4"))))
    with open(bad_paths["video"], "wb") as handle:
        handle.write(read_bytes(os.path.join(demo_root, rel(bad, ".mp4")))[:500])  # truncated
    with open(bad_paths["cover"], "wb") as handle:
        handle.write(b"<html>not a jpeg</html>")
    info = write_info(tmp_path / "info.json", records, server.base_url)
    summary = download(info, out, DownloadConfig(workers=2, fetch=FAST))
    assert summary.ok and summary.downloaded == 2
    assert server.requests_for(rel(good, ".mp4")) == []
    assert len(server.requests_for(rel(bad, ".mp4"))) == 1 and len(server.requests_for(rel(bad, ".jpeg"))) == 1
    for record in records:
        assert_identical(demo_root, out, record)


def test_hostile_ids_and_labels_are_refused_and_the_rest_downloaded(demo_root, server, tmp_path, capsys):
    (record,) = demo_records(demo_root, 1)
    url = f"{server.base_url}/{rel(record, '.mp4')}"
    hostile = [
        json.dumps({**record.to_dict(), "mp4_id": "../../escaped", "mp4_download_url": url}),
        json.dumps({**record.to_dict(), "mp4_id": "a/b", "mp4_download_url": url}),
        json.dumps({**record.to_dict(), "video_label": "../Beach"}),
        "{not json",
    ]
    info = write_info(tmp_path / "info.json", [record], server.base_url, extra_lines=hostile)
    out = tmp_path / "root" / "out"
    code = main(["download", "--info", info, "--output", str(out), "--quiet", "--timeout", "0.5", "--backoff", "0.01"])
    captured = capsys.readouterr()
    assert code == 1  # invalid lines count as a failed run
    assert "1 downloaded, 0 skipped, 0 failed, 4 invalid lines" in captured.out
    assert "info.json:2:" in captured.err and "contains a path separator or '..'" in captured.err
    assert "info.json:5:" in captured.err and "invalid JSON" in captured.err
    assert sorted(os.listdir(tmp_path / "root")) == ["out"]
    assert not os.path.exists(tmp_path / "escaped")
    assert_identical(demo_root, str(out), record)


def test_cli_download_succeeds_with_a_summary_and_categories(demo_root, server, tmp_path, capsys):
    records = demo_records(demo_root)
    info = write_info(tmp_path / "info.json", records, server.base_url)
    out = str(tmp_path / "out")
    code = main(["download", "--info", info, "--output", out, "--categories", "Beach", "Alpha Channel",
                 "--workers", "4", "--quiet"])
    assert code == 0
    assert "4 downloaded, 0 skipped, 0 failed" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["Alpha Channel", "Beach"]
    assert main(["fetch", "--info", info, "--out", out, "--limit", "3", "--quiet"]) == 0
    assert "3 downloaded, 0 skipped, 0 failed" in capsys.readouterr().out
    with pytest.raises(SystemExit) as caught:
        main(["download", "--help"])
    assert caught.value.code == 0


def test_bounded_map_keeps_memory_bounded_and_propagates_errors():
    pulled = 0
    in_flight_seen = []

    def source():
        nonlocal pulled
        for i in range(200):
            pulled += 1
            yield i

    consumed = 0
    for value in bounded_map(lambda x: x * 2, source(), workers=3, max_in_flight=5):
        consumed += 1
        in_flight_seen.append(pulled - consumed)
        assert value % 2 == 0
    assert consumed == 200 and max(in_flight_seen) <= 5

    def boom(x):
        if x == 7:
            raise RuntimeError("boom")
        return x

    with pytest.raises(RuntimeError, match="boom"):
        list(bounded_map(boom, range(20), workers=2))


def test_a_killed_run_resumes_where_it_stopped(demo_root, tmp_path):
    records = demo_records(demo_root, 6)
    out = tmp_path / "out"
    with FaultServer(demo_root, bytes_per_s=15000) as slow:
        info = write_info(tmp_path / "info.json", records, slow.base_url)
        command = [sys.executable, "-m", "data_download_tools", "download", "--info", info, "--output", str(out),
                   "--workers", "2", "--quiet", "--timeout", "5"]
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        partial = {}
        full = {os.path.join(str(out), rel(r, ".mp4")) + ".part":
                os.path.getsize(os.path.join(demo_root, rel(r, ".mp4"))) for r in records}
        try:
            while time.monotonic() < deadline:
                done = [r for r in records if os.path.exists(out / rel(r, ".mp4"))]
                parts = part_sizes(out)
                # kill while a clip is well short of its end (a nearly finished one could finish first)
                if done and any(0 < size < full[p] - 3000 for p, size in parts.items()):
                    break
                time.sleep(0.02)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == -signal.SIGKILL
        partial = part_sizes(out)
        finished = [r for r in records if os.path.exists(out / rel(r, ".mp4"))]
        assert finished and partial and len(finished) < len(records)
        # nothing under a final name is partial
        for record in finished:
            assert read_bytes(out / rel(record, ".mp4")) == read_bytes(os.path.join(demo_root, rel(record, ".mp4")))

        slow.bytes_per_s = None
        before = len(slow.log)
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "0 failed" in result.stdout
        rerun = slow.log[before:]
    requested = {q.path for q in rerun}
    for record in finished:  # finished clips were not asked for again
        assert rel(record, ".mp4") not in requested
    resumed = 0
    for path, size in partial.items():  # partial clips were resumed from where the kill left them
        relative = os.path.relpath(path, out)[: -len(".part")].replace(os.sep, "/")
        if 0 < size < full[path]:
            # (the log is in completion order: a request of the killed run may still end after `before`)
            assert (206, f"bytes={size}-") in [(q.status, q.range) for q in rerun if q.path == relative]
            assert not [q for q in rerun if q.path == relative and q.status == 206 and q.range != f"bytes={size}-"]
            resumed += 1
    assert resumed >= 1
    for record in records:
        assert_identical(demo_root, str(out), record)
    assert part_files(out) == []
