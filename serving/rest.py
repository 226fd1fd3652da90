"""TF Serving's REST API (g3doc/api_rest.md) on the standard library's threading HTTP server.

Routes::

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]              model status
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata     model spec + signature_def map
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict      row ("instances") or columnar ("inputs")
    POST ...:classify | ...:regress                                501: not implemented by this server
    GET  /healthz                                                  200 when every model serves a version, else 503

Errors are an HTTP status with ``{"error": "..."}``. Bodies over ``max_request_bytes`` get 413 without
being read. Each request is logged on the ``serving.access`` logger (method, path, status, bytes, ms).
"""
from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional, Tuple

from google.protobuf import json_format

from serving import tensor_json
from serving.errors import ServingError, invalid
from serving.limits import Limits
from serving.service import ServingCore

access_log = logging.getLogger("serving.access")
logger = logging.getLogger(__name__)

_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<tail>/metadata|:predict|:classify|:regress)?/?$")


def parse_route(path: str) -> Tuple[str, Optional[int], Optional[str], str]:
    """``/v1/models/m/versions/2:predict`` -> ("m", 2, None, ":predict"). Raises NOT_FOUND for other paths."""
    match = _ROUTE.match(path.split("?", 1)[0])
    if not match:
        raise ServingError("NOT_FOUND", f"Malformed request: no route for {path!r}")
    version = match.group("version")
    if version is not None:
        if not version.isdigit():
            raise invalid(f"Malformed request: version {version!r} is not a number")
        version = int(version)
    return match.group("name"), version, match.group("label"), match.group("tail") or ""


def _message_to_dict(message) -> Any:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


class RestHandler(BaseHTTPRequestHandler):
    """One HTTP/1.1 connection; ``self.server`` is a :class:`RestServer`."""

    protocol_version = "HTTP/1.1"
    server_version = "xinpianchang-serving"
    server: "RestServer"

    def setup(self) -> None:
        super().setup()
        # one segment per response and no Nagle delay: small keep-alive answers otherwise wait ~40 ms for
        # the client's delayed ACK
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        logger.debug("%s - %s", self.address_string(), format % args)

    # -- responses --
    def _send_json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self._headers_buffer.append(b"\r\n" + body)  # headers and body in one write
        self.flush_headers()
        self._sent = (status, len(body))

    def _handle(self, method: str) -> None:
        started = time.perf_counter()
        self._sent = (0, 0)
        self._body_read = False
        try:
            status, payload = self._route(method)
        except ServingError as exc:
            status, payload = exc.http_status, {"error": exc.message}
        except Exception as exc:  # noqa: BLE001 - never let a request take the server down
            logger.exception("internal error on %s %s", method, self.path)
            status, payload = 500, {"error": f"internal error: {type(exc).__name__}: {exc}"}
        if method == "POST" and not self._body_read:
            self.close_connection = True  # an unread body would be taken for the next request
        try:
            self._send_json(status, payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        access_log.info('%s "%s %s" %d %d %.1fms', self.client_address[0], method, self.path, self._sent[0],
                        self._sent[1], (time.perf_counter() - started) * 1000)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._refuse("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._refuse("DELETE")

    def _refuse(self, method: str) -> None:
        self.close_connection = True  # the body (if any) is not read
        self._sent = (0, 0)
        self._send_json(405, {"error": f"method {method} is not supported"})

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
        name, version, label, tail = parse_route(path)
        if method == "GET":
            if tail == "":
                return 200, _message_to_dict(core.status(name, version, label))
            if tail == "/metadata":
                spec, signature_map = core.metadata(name, version, label)
                return 200, {"model_spec": _message_to_dict(spec),
                             "metadata": {"signature_def": _message_to_dict(signature_map)}}
            raise ServingError("NOT_FOUND", f"Malformed request: GET {path} (use POST for {tail})")
        if tail in (":classify", ":regress"):
            self._read_body()
            raise ServingError("UNIMPLEMENTED", f"{tail} is not implemented by this server (the exported models "
                                                "have predict signatures): use :predict")
        if tail != ":predict":
            raise ServingError("NOT_FOUND", f"Malformed request: POST {path}")
        body = self._read_json()
        _, signature, outputs = core.predict(
            name, version, label, body.get("signature_name") if isinstance(body, dict) else None,
            lambda signature: tensor_json.decode_request(body, signature)[0])
        row_format = isinstance(body, dict) and "instances" in body
        return 200, tensor_json.encode_response(outputs, row_format)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise ServingError("INVALID_ARGUMENT", "chunked request bodies are not supported: send Content-Length")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self.close_connection = True
            raise ServingError("INVALID_ARGUMENT", "a POST needs a Content-Length header")
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise invalid(f"bad Content-Length {length_text!r}") from None
        limit = self.server.max_request_bytes
        if length > limit:
            self.close_connection = True  # do not read (or wait for) the oversized body
            raise ServingError("RESOURCE_EXHAUSTED", f"request body of {length} bytes exceeds the limit of {limit} bytes")
        data = self.rfile.read(length)
        self._body_read = True
        return data

    def _read_json(self) -> Any:
        data = self._read_body()
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise invalid(f"JSON parse error: {exc}") from None
        except RecursionError:
            raise invalid("JSON parse error: nested too deeply") from None


class RestServer(ThreadingHTTPServer):
    """The REST front end; ``serve_forever`` in a thread via :meth:`start`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, core: ServingCore, host: str = "127.0.0.1", port: int = 8501, limits: Limits = Limits()):
        self.core = core
        self.limits = limits
        self.max_request_bytes = limits.max_request_bytes
        self._thread: Optional[threading.Thread] = None
        super().__init__((host, port), RestHandler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="rest-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread:
            self._thread.join(timeout=10)
