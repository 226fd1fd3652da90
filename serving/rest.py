"""TF Serving's REST API (g3doc/api_rest.md) on the standard library's threading HTTP server.

Routes::

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]              model status
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata     model spec + signature_def map
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict      row ("instances") or columnar ("inputs")
    POST ...:classify | ...:regress                                tf.Example signatures ("examples", "context")
    GET  /monitoring/prometheus/metrics                            Prometheus text format (when enabled)
    GET  /healthz                                                  200 when every model serves a version, else 503

Every answer, errors included, is JSON: ``{"error": "..."}`` with the HTTP status TF Serving uses (also for
malformed request lines, unsupported methods and oversized headers, which the standard library would answer
in HTML). Hostile clients are bounded by :class:`~serving.limits.Limits`: a cap on open connections (503
beyond it), deadlines for headers, idle keep-alive and bodies, the body size (checked from Content-Length,
while reading chunked bodies and while inflating gzip bodies, and before answering ``Expect: 100-continue``),
JSON depth and number length. A declared body that is not read closes the connection, so a second request
hidden in it is never answered. Each request is logged on the ``serving.access`` logger.
"""
from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
import time
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Tuple

from google.protobuf import json_format

from serving import inference, tensor_json
from serving.errors import ServingError, invalid, to_serving_error
from serving.limits import Limits
from serving.service import ServingCore

access_log = logging.getLogger("serving.access")
logger = logging.getLogger(__name__)

_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<tail>/metadata|:predict|:classify|:regress)?/?$")
METRICS_PATH = "/monitoring/prometheus/metrics"
_MAX_CHUNK_LINE = 1024
_MAX_TRAILERS = 64


def parse_route(path: str) -> Tuple[str, Optional[int], Optional[str], str]:
    """``/v1/models/m/versions/2:predict`` -> ("m", 2, None, ":predict"). Raises NOT_FOUND for other paths."""
    match = _ROUTE.match(path.split("?", 1)[0])
    if not match:
        raise ServingError("NOT_FOUND", f"Malformed request: no route for {path[:200]!r}")
    version = match.group("version")
    if version is not None:
        if not version.isdigit() or len(version) > 18:
            raise invalid(f"Malformed request: version {version[:40]!r} is not a number")
        version = int(version)
    return match.group("name"), version, match.group("label"), match.group("tail") or ""


def _signature_name(body: Any) -> Optional[str]:
    if isinstance(body, dict) and "signature_name" in body:
        if not isinstance(body["signature_name"], str):
            raise invalid("'signature_name' key must be a string value.")
        return body["signature_name"]
    return None


def _message_to_dict(message) -> Any:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


class _DeadlineReader(io.RawIOBase):
    """The socket as a raw stream whose reads share one deadline (a per-read timeout lets a client that
    sends a byte every few seconds hold a thread forever). ``arm(first_s, then_s)``: the first byte must come
    within ``first_s``; once it has, the rest within ``then_s`` of it."""

    def __init__(self, sock: socket.socket):
        super().__init__()
        self._sock = sock
        self._deadline: Optional[float] = None
        self._then_s: Optional[float] = None

    def arm(self, first_s: float, then_s: Optional[float] = None) -> None:
        self._deadline = time.monotonic() + first_s
        self._then_s = then_s

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._deadline is not None:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("deadline passed")
            self._sock.settimeout(remaining)
        received = self._sock.recv_into(buffer)
        if received and self._then_s is not None:
            self._deadline, self._then_s = time.monotonic() + self._then_s, None
        return received


class RestHandler(BaseHTTPRequestHandler):
    """One HTTP/1.1 connection; ``self.server`` is a :class:`RestServer`."""

    protocol_version = "HTTP/1.1"
    server_version = "xinpianchang-serving"
    error_content_type = "application/json"
    server: "RestServer"

    def setup(self) -> None:
        super().setup()
        # one segment per response and no Nagle delay: small keep-alive answers otherwise wait ~40 ms for
        # the client's delayed ACK
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader, 65536)
        self._sent = (0, 0)
        self._body_read = False

    def handle(self) -> None:
        limits = self.server.limits
        self.close_connection = True
        self._reader.arm(limits.header_timeout_s, limits.header_timeout_s)
        self.handle_one_request()
        while not self.close_connection:
            self._reader.arm(limits.idle_timeout_s, limits.header_timeout_s)
            self.handle_one_request()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        logger.debug("%s - %s", self.address_string(), format % args)

    def parse_request(self) -> bool:
        self._sent, self._body_read = (0, 0), False
        if len(self.raw_requestline.split()) == 2:  # "GET /path": HTTP/0.9, which has no status line
            self.command, self.path, self.request_version = None, "", "HTTP/1.1"
            self.requestline = str(self.raw_requestline[:200], "iso-8859-1").rstrip("\r\n")
            self.send_error(HTTPStatus.BAD_REQUEST, "Malformed request: HTTP/0.9 requests are not supported")
            return False
        return super().parse_request()

    # -- responses --
    def _send_json(self, status: int, payload: Any, with_body: bool = True) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        self.connection.settimeout(self.server.limits.body_timeout_s)  # a client that never reads is dropped
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self._common_headers()
        self._headers_buffer.append(b"\r\n" + (body if with_body else b""))  # headers and body in one write
        self.flush_headers()
        self._sent = (status, len(body))

    def _common_headers(self) -> None:
        if self.close_connection:
            self.send_header("Connection", "close")
        if self.server.cors:  # TF Serving's --rest_api_enable_cors_support
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Methods", "POST, GET")
            self.send_header("Access-Control-Allow-Headers", "Content-Type")

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """The standard library's error page, as TF Serving's JSON (never HTML); the connection closes."""
        self.close_connection = True
        text = message or HTTPStatus(code).phrase
        if not str(getattr(self, "request_version", "")).startswith("HTTP/1."):
            self.request_version = "HTTP/1.1"  # a status line and headers, whatever the request looked like
        try:
            self._send_json(int(code), {"error": text}, with_body=getattr(self, "command", "") != "HEAD")
        except OSError:
            pass
        self._log(getattr(self, "command", "") or "-", time.perf_counter())

    def _log(self, method: str, started: float) -> None:
        access_log.info('%s "%s %s" %d %d %.1fms', self.client_address[0], method,
                        (getattr(self, "path", "") or "-")[:200], self._sent[0], self._sent[1],
                        (time.perf_counter() - started) * 1000)

    def _handle(self, method: str, route: Callable[[str], Tuple[int, Any]]) -> None:
        started = time.perf_counter()
        try:
            status, payload = route(method)
        except Exception as exc:  # noqa: BLE001 - the one mapping of every failure to {"error": ...}
            error = to_serving_error(exc, f"{method} request")
            status, payload = error.http_status, {"error": error.message}
            if error.code in ("RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED") and not self._body_read:
                self.close_connection = True
        if self._declares_body() and not self._body_read:
            self.close_connection = True  # an unread body would be taken for the next request
        try:
            if isinstance(payload, bytes):  # the metrics page
                self._send_raw(status, payload)
            else:
                self._send_json(status, payload, with_body=method != "HEAD")
        except OSError:
            self.close_connection = True
        self._log(method, started)

    def _send_raw(self, status: int, body: bytes) -> None:
        self.connection.settimeout(self.server.limits.body_timeout_s)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self._common_headers()
        self._headers_buffer.append(b"\r\n" + body)
        self.flush_headers()
        self._sent = (status, len(body))

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle("GET", self._route)

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST", self._route)

    def _refuse(self, method: str) -> Tuple[int, Any]:
        raise ServingError("UNIMPLEMENTED", f"Malformed request: method {method} is not supported (use GET or POST)",
                           http_status=405)

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle("HEAD", self._refuse)

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT", self._refuse)

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE", self._refuse)

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH", self._refuse)

    def do_OPTIONS(self) -> None:  # noqa: N802
        self._handle("OPTIONS", (lambda method: (200, {})) if self.server.cors else self._refuse)


    # -- routing --
    def _route(self, method: str) -> Tuple[int, Any]:
        core = self.server.core
        path = self.path.split("?", 1)[0]
        if path in ("/healthz", "/v1/healthz"):
            if method != "GET":
                raise ServingError("NOT_FOUND", f"Malformed request: {method} {path}")
            models = core.manager.health()
            ok = bool(models) and all(models.values())
            return (200 if ok else 503), {"status": "ok" if ok else "unavailable",
                                          "models": {n: [str(v) for v in vs] for n, vs in models.items()}}
        if path == self.server.metrics_path and self.server.metrics is not None and method == "GET":
            return 200, self.server.metrics.exposition()
        name, version, label, tail = parse_route(path)
        if method == "GET":
            if tail == "":
                return 200, _message_to_dict(core.status(name, version, label))
            if tail == "/metadata":
                spec, signature_map = core.metadata(name, version, label)
                return 200, {"model_spec": _message_to_dict(spec),
                             "metadata": {"signature_def": _message_to_dict(signature_map)}}
            raise ServingError("NOT_FOUND", f"Malformed request: GET {path} (use POST for {tail})")
        if tail not in (":predict", ":classify", ":regress"):
            raise ServingError("NOT_FOUND", f"Malformed request: POST {path}")
        limits = self.server.limits
        body = tensor_json.loads(self._read_body(), limits)
        signature_name = _signature_name(body)
        if tail != ":predict":
            api = "Classify" if tail == ":classify" else "Regress"
            _, _, result = core.infer(api, name, version, label, signature_name, inference.input_from_json(body),
                                      limits, "REST")
            return 200, (inference.classification_json(result) if api == "Classify"
                         else inference.regression_json(result))
        _, signature, outputs = core.predict(
            name, version, label, signature_name,
            lambda signature: tensor_json.decode_request(body, signature, limits)[0])
        row_format = isinstance(body, dict) and "instances" in body
        return 200, tensor_json.encode_response(outputs, row_format)

    # -- bodies --
    def _declares_body(self) -> bool:
        headers = getattr(self, "headers", None)
        if headers is None:
            return False
        return bool(headers.get("Transfer-Encoding")) or headers.get("Content-Length", "0").strip() not in ("", "0")

    def _content_length(self) -> Optional[int]:
        """The declared body length (None: chunked); refuses ambiguous framing before anything is read."""
        encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if encodings:
            self.close_connection = True
            if lengths:
                raise invalid("Malformed request: both Transfer-Encoding and Content-Length")
            if ",".join(encodings).strip().lower() != "chunked":
                raise ServingError("UNIMPLEMENTED", f"Transfer-Encoding {','.join(encodings)[:100]!r} is not "
                                                    "supported (plain chunked or Content-Length only)")
            return None
        if not lengths:
            self.close_connection = True
            raise invalid("a POST needs a Content-Length header (or Transfer-Encoding: chunked)")
        values = {value.strip() for value in lengths}
        text = values.pop()
        if values or not text.isdigit() or len(text) > 18:
            self.close_connection = True
            raise invalid(f"Malformed request: bad Content-Length {', '.join(lengths)[:100]!r}")
        length = int(text)
        if length > self.server.limits.max_request_bytes:
            self.close_connection = True  # do not read (or wait for) the oversized body
            raise self._too_large(length)
        return length

    def _too_large(self, length: Optional[int] = None) -> ServingError:
        limit = self.server.limits.max_request_bytes
        what = f"request body of {length} bytes" if length is not None else "request body"
        return ServingError("RESOURCE_EXHAUSTED", f"{what} exceeds the limit of {limit} bytes", http_status=413)

    def handle_expect_100(self) -> bool:
        """``Expect: 100-continue``: the declared size is checked before the client is invited to send it."""
        try:
            self._content_length()
        except ServingError as error:
            self.close_connection = True
            self._send_json(error.http_status, {"error": error.message})
            self._log(self.command, time.perf_counter())
            return False
        return super().handle_expect_100()

    def _read_body(self) -> bytes:
        limits = self.server.limits
        length = self._content_length()
        self._reader.arm(limits.body_timeout_s)
        try:
            data = self._read_exactly(length) if length is not None else self._read_chunked()
        except TimeoutError:
            self.close_connection = True
            raise ServingError("DEADLINE_EXCEEDED", f"request body not received within {limits.body_timeout_s:g} s",
                               http_status=408) from None
        self._body_read = True
        return self._decode_content(data)

    def _read_exactly(self, length: int) -> bytes:
        data = self.rfile.read(length)
        if len(data) != length:
            self.close_connection = True
            raise invalid(f"request body ended after {len(data)} of {length} bytes")
        return data

    def _read_chunked(self) -> bytes:
        limit, parts, total = self.server.limits.max_request_bytes, [], 0
        while True:
            line = self.rfile.readline(_MAX_CHUNK_LINE + 1)
            size_text = line.split(b";", 1)[0].strip()
            if len(line) > _MAX_CHUNK_LINE or not size_text or len(size_text) > 16 or \
                    not all(c in b"0123456789abcdefABCDEF" for c in size_text):
                self.close_connection = True
                raise invalid("Malformed request: bad chunk size line")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > limit:
                self.close_connection = True
                raise self._too_large()
            parts.append(self._read_exactly(size))
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                self.close_connection = True
                raise invalid("Malformed request: chunk not followed by CRLF")
        for _ in range(_MAX_TRAILERS):
            if self.rfile.readline(_MAX_CHUNK_LINE + 1) in (b"\r\n", b"\n", b""):
                return b"".join(parts)
        self.close_connection = True
        raise invalid("Malformed request: too many trailer lines")

    def _decode_content(self, data: bytes) -> bytes:
        """``Content-Encoding: gzip`` / ``deflate`` bodies, inflated no further than the body limit."""
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding == "identity":
            return data
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise invalid(f"Content-Encoding {encoding[:40]!r} is not supported (gzip, deflate or none)")
        limit = self.server.limits.max_request_bytes
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 32 if encoding != "deflate" else zlib.MAX_WBITS)
        try:
            out = inflater.decompress(data, limit + 1)
        except zlib.error as exc:
            raise invalid(f"request body is not valid {encoding}: {exc}") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise ServingError("RESOURCE_EXHAUSTED", f"inflated request body exceeds the limit of {limit} bytes",
                               http_status=413)
        return out


class RestServer(ThreadingHTTPServer):
    """The REST front end; ``serve_forever`` in a thread via :meth:`start`. At most
    ``limits.max_connections`` connections are served at once; a connection beyond that gets 503 and is closed."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, core: ServingCore, host: str = "127.0.0.1", port: int = 8501, limits: Limits = Limits(),
                 metrics=None, metrics_path: str = METRICS_PATH, cors: bool = False):
        self.core = core
        self.cors = cors
        self.limits = limits
        self.metrics = metrics
        self.metrics_path = metrics_path
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self._thread: Optional[threading.Thread] = None
        super().__init__((host, port), RestHandler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self._turn_away(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _turn_away(self, request: socket.socket) -> None:
        body = json.dumps({"error": f"too many connections (limit {self.limits.max_connections}); retry later"})
        response = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: "
                    f"{len(body)}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{body}").encode()
        try:
            request.settimeout(0.5)
            request.sendall(response)
        except OSError:
            pass
        self.shutdown_request(request)
        access_log.info("connection refused: %d connections open", self.limits.max_connections)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="rest-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread:
            self._thread.join(timeout=10)
