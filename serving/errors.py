"""One error type for both front ends, and the one place that maps every failure to the API's error format.

A :class:`ServingError` holds a canonical status code (as in gRPC / TF Serving) and a message. The REST server
answers it with the HTTP status TF Serving uses and ``{"error": message}``; the gRPC server aborts the call
with the matching ``grpc.StatusCode``. Anything else raised while serving a request goes through
:func:`to_serving_error`, so no request ever gets a stack trace, an HTML page or a server path.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
from typing import Iterable, Optional

logger = logging.getLogger(__name__)

#: Canonical code name -> HTTP status, as TF Serving's REST front end maps them (http_server.cc).
HTTP_STATUS = {
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}

#: tensorflow/core/protobuf/error_codes.proto numbering (what StatusProto.error_code holds).
ERROR_CODE_NUMBERS = {"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
                      "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
                      "FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
                      "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16}


class ServingError(Exception):
    """A request that cannot be served; ``code`` is a canonical status name such as ``"NOT_FOUND"``.

    ``http_status`` overrides the code's HTTP status for transport-level answers (413 for a body over the
    limit, 408 for a body that never arrived, 405 for an unsupported method).
    """

    def __init__(self, code: str, message: str, http_status: Optional[int] = None):
        if code not in HTTP_STATUS:
            raise ValueError(f"unknown status code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = redact_paths(message)
        self._http_status = http_status

    @property
    def http_status(self) -> int:
        return self._http_status or HTTP_STATUS[self.code]


def invalid(message: str) -> ServingError:
    return ServingError("INVALID_ARGUMENT", message)


def not_found(message: str) -> ServingError:
    return ServingError("NOT_FOUND", message)


def to_serving_error(exc: BaseException, what: str = "request") -> ServingError:
    """Any exception raised while serving -> a ServingError with a message fit for a client.

    Bad input that slipped past the explicit checks (ValueError, OverflowError, RecursionError...) is
    INVALID_ARGUMENT; MemoryError is RESOURCE_EXHAUSTED; anything else is INTERNAL with no detail (the
    traceback goes to the server's log, never to the client).
    """
    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, RecursionError):
        return invalid(f"{what} is nested too deeply")
    if isinstance(exc, (ValueError, OverflowError, TypeError, UnicodeError)):
        return invalid(f"{what}: {type(exc).__name__}: {str(exc)[:300]}")
    if isinstance(exc, MemoryError):
        return ServingError("RESOURCE_EXHAUSTED", f"{what} needs more memory than the server has")
    if isinstance(exc, TimeoutError):
        return ServingError("DEADLINE_EXCEEDED", f"{what} timed out")
    logger.error("internal error serving a %s", what, exc_info=exc)
    return ServingError("INTERNAL", f"internal error ({type(exc).__name__}); the server log has the details")


# ----- paths never reach a client -----

_roots_lock = threading.Lock()
_roots: dict = {}


def register_root(path: str, placeholder: str) -> None:
    """Messages naming anything under ``path`` show ``placeholder`` instead (e.g. a model's base path -> its name)."""
    with _roots_lock:
        for variant in {os.path.abspath(path), os.path.realpath(path)}:
            if len(variant) > 1:
                _roots[variant.rstrip(os.sep)] = placeholder


def _default_roots() -> Iterable[tuple]:
    yield os.getcwd(), "."
    yield tempfile.gettempdir(), "<tmp>"
    yield sys.prefix, "<python>"
    yield os.path.expanduser("~"), "~"


def redact_paths(message: str) -> str:
    """Replace registered roots (model base paths, the working and temporary folders, the Python prefix and
    home) and any remaining absolute path of three or more components by placeholders."""
    if not message or "/" not in message:
        return message
    with _roots_lock:
        roots = sorted(list(_roots.items()) + [(p.rstrip(os.sep), r) for p, r in _default_roots() if len(p) > 1],
                       key=lambda item: -len(item[0]))
    for root, placeholder in roots:
        message = message.replace(root, placeholder)
    return _ABSOLUTE_PATH.sub(lambda m: "<path>/" + m.group(1), message)


# an absolute path of 3+ components not preceded by a word character, a dot or a colon; URLs and API routes stay
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/<>~-])/(?!v1/|monitoring/)(?:[\w.@+-]+/){2,}([\w.@+-]+)")
