"""A local HTTP file server for the downloader's tests and benchmark, with injectable faults.

``FaultServer(folder)`` serves ``folder`` on 127.0.0.1 (port 0: the OS picks one) from a thread, with
HTTP/1.1 keep-alive, strong ETags and single ``Range: bytes=N-[M]`` requests (206) honouring ``If-Range``.
Per path (relative to the folder, unquoted, e.g. ``"Beach/123/123.mp4"``) a :class:`Fault` makes it
misbehave: an error status N times, a dropped connection mid-body, a body shorter than its
Content-Length, a response slower than the client's timeout, garbage bytes, a permanent 404, no Range
support, a redirect, a wrong Content-Type or Content-Length, an endless body without a length, a body
dripped a byte at a time. ``latency_s`` delays every response and ``bytes_per_s`` throttles every body. Every answered
request is logged in :attr:`FaultServer.log` (and counted on arrival in :attr:`FaultServer.arrivals`).

Run it by hand: ``python -m tests.fault_server FOLDER [--latency 0.05]``.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import http.server
import os
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse
from typing import Dict, List, Optional

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclasses.dataclass
class Fault:
    """How one path misbehaves. Counters (``*_times``) are decremented as the faults fire."""

    status: Optional[int] = None  # always answer this status (404, 410...)
    fail_times: int = 0  # answer fail_status this many times first
    fail_status: int = 503
    retry_after: Optional[int] = None  # a Retry-After header on those failures
    drop_times: int = 0  # send drop_after body bytes, then reset the connection
    drop_after: int = 1024
    short_times: int = 0  # advertise the full Content-Length, send half, close cleanly
    sleep_times: int = 0  # sleep sleep_s before answering
    sleep_s: float = 0.0
    garbage_times: int = 0  # send random bytes of the right length (a file that fails verification)
    no_range: bool = False  # ignore Range (answer 200 with the whole file)
    redirect_to: Optional[str] = None  # answer 302 with this Location
    content_type: Optional[str] = None  # send this Content-Type instead of the file's
    declare_length: Optional[int] = None  # send this Content-Length (and the real body, then close)
    stream_bytes: Optional[int] = None  # send this many zero bytes without a Content-Length, then close
    drip_s: Optional[float] = None  # send the body one byte at a time, this many seconds apart


@dataclasses.dataclass(frozen=True)
class Request:
    """One logged request."""

    path: str
    range: Optional[str]
    status: int
    body_bytes: int


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def _log(self, path: str, status: int, sent: int) -> None:
        with self.server.owner.lock:
            self.server.owner.log.append(Request(path, self.headers.get("Range"), status, sent))

    def _status_only(self, path: str, status: int, retry_after: Optional[int] = None) -> None:
        body = f"HTTP {status}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.end_headers()
        self.wfile.write(body)
        self._log(path, status, 0)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        owner = self.server.owner
        with owner.lock:
            owner.active += 1
            owner.max_active = max(owner.max_active, owner.active)
        try:
            self._get(owner)
        finally:
            with owner.lock:
                owner.active -= 1

    def _get(self, owner: "FaultServer") -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        with owner.lock:
            owner.arrivals[path] = owner.arrivals.get(path, 0) + 1
        if owner.latency_s:
            time.sleep(owner.latency_s)
        full = os.path.realpath(os.path.join(owner.folder, path))
        with owner.lock:
            fault = owner.faults.get(path) or Fault()
        synthetic = fault.redirect_to is not None or fault.stream_bytes is not None or fault.status is not None
        if not synthetic and (not full.startswith(owner.folder + os.sep) or not os.path.isfile(full)):
            return self._status_only(path, 404)
        with owner.lock:
            action = None
            for name in ("fail", "drop", "short", "sleep", "garbage"):
                if getattr(fault, name + "_times") > 0:
                    setattr(fault, name + "_times", getattr(fault, name + "_times") - 1)
                    action = name
                    break
        if fault.status is not None:
            return self._status_only(path, fault.status)
        if fault.redirect_to is not None:
            self.send_response(302)
            self.send_header("Location", fault.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return self._log(path, 302, 0)
        if fault.stream_bytes is not None:
            self.send_response(200)
            self.send_header("Content-Type", fault.content_type or "video/mp4")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            sent = 0
            with contextlib.suppress(ConnectionError):
                while sent < fault.stream_bytes:
                    block = min(1 << 16, fault.stream_bytes - sent)
                    self.wfile.write(b"\0" * block)
                    sent += block
            return self._log(path, 200, sent)
        if action == "fail":
            return self._status_only(path, fault.fail_status, fault.retry_after)
        if action == "sleep":
            time.sleep(fault.sleep_s)
        with open(full, "rb") as handle:
            data = handle.read()
        stat = os.stat(full)
        etag = '"' + hashlib.md5(f"{stat.st_size}-{stat.st_mtime_ns}".encode()).hexdigest() + '"'
        start, end, status = 0, len(data) - 1, 200
        match = _RANGE.match(self.headers.get("Range", "") or "")
        if_range = self.headers.get("If-Range")
        if match and not fault.no_range and owner.range_support and (if_range is None or if_range == etag):
            start = int(match.group(1))
            end = min(int(match.group(2)), len(data) - 1) if match.group(2) else len(data) - 1
            if start >= len(data) or start > end:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return self._log(path, 416, 0)
            status = 206
        body = data[start:end + 1]
        if action == "garbage":
            body = os.urandom(len(body))
        self.send_response(status)
        media = "video/mp4" if path.endswith(".mp4") else "image/jpeg"
        length = fault.declare_length if fault.declare_length is not None else len(body)
        self.send_header("Content-Type", fault.content_type or media)
        self.send_header("Content-Length", str(length))
        if fault.declare_length is not None:
            self.close_connection = True
        self.send_header("ETag", etag)
        if owner.range_support and not fault.no_range:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if action == "drop":
            body = body[:min(fault.drop_after, len(body) // 2)]
        elif action == "short":
            body = body[:len(body) // 2]
        sent = self._drip(body, fault.drip_s) if fault.drip_s else self._send(body)
        if action in ("drop", "short"):
            self.wfile.flush()
            if action == "drop":  # a reset, not a clean close (after a pause, so the client reads what came)
                time.sleep(0.1)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
        self._log(path, status, sent)

    def _drip(self, body: bytes, every_s: float) -> int:
        sent = 0
        with contextlib.suppress(ConnectionError):
            for offset in range(len(body)):
                self.wfile.write(body[offset:offset + 1])
                self.wfile.flush()
                sent += 1
                time.sleep(every_s)
        return sent

    def _send(self, body: bytes) -> int:
        rate = self.server.owner.bytes_per_s
        if not rate:
            self.wfile.write(body)
            return len(body)
        chunk = max(1, int(rate / 20))  # 20 writes a second
        sent = 0
        for offset in range(0, len(body), chunk):
            self.wfile.write(body[offset:offset + chunk])
            self.wfile.flush()
            sent += len(body[offset:offset + chunk])
            time.sleep(0.05)
        return sent


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    owner: "FaultServer"

    def handle_error(self, request, client_address) -> None:
        """A client that hung up (it timed out, or was killed) is part of the tests, not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FaultServer:
    """Serve ``folder`` on 127.0.0.1 from a background thread; use as a context manager.

    Args:
      folder: what to serve.
      faults: per-path faults (mutable: tests may add faults while it runs).
      latency_s: added before every response.
      bytes_per_s: throttle on every body (None: as fast as possible).
      range_support: honour Range requests at all.
      port: 0 lets the OS choose.
    """

    def __init__(self, folder: str, faults: Optional[Dict[str, Fault]] = None, latency_s: float = 0.0,
                 bytes_per_s: Optional[float] = None, range_support: bool = True, port: int = 0):
        self.folder = os.path.realpath(folder)
        self.faults = faults if faults is not None else {}
        self.latency_s = latency_s
        self.bytes_per_s = bytes_per_s
        self.range_support = range_support
        self.lock = threading.Lock()
        self.log: List[Request] = []
        self.arrivals: Dict[str, int] = {}  # requests received per path (also those never answered)
        self.active = 0  # requests being answered now
        self.max_active = 0  # the most answered at once
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.owner = self
        self._thread: Optional[threading.Thread] = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FaultServer":
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FaultServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def requests_for(self, path: str) -> List[Request]:
        with self.lock:
            return [r for r in self.log if r.path == path]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="serve a folder on 127.0.0.1 with optional latency/throttle")
    parser.add_argument("folder")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every response")
    parser.add_argument("--bytes-per-s", type=float, default=None, help="throttle every body")
    parser.add_argument("--no-range", action="store_true", help="ignore Range requests")
    args = parser.parse_args(argv)
    server = FaultServer(args.folder, latency_s=args.latency, bytes_per_s=args.bytes_per_s,
                         range_support=not args.no_range, port=args.port)
    print(f"serving {server.folder} at {server.base_url}", flush=True)
    try:
        server._server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
