"""The server's limits on hostile or broken input: one dataclass, one flag each (see docs/serving.md, "Limits").

Every limit is checked before the work or memory it bounds: a body's size before it is read, a tensor's
declared shape x dtype size before anything is allocated for it, JSON depth and number lengths before the
JSON is parsed.
"""
from __future__ import annotations

import argparse
import dataclasses
import os


@dataclasses.dataclass(frozen=True)
class Limits:
    """Safe defaults for one CPU host; every field has a ``serve`` flag of the same name (``--max-...``)."""

    #: REST request body / gRPC message, in bytes (before gzip decompression, and after it).
    max_request_bytes: int = 32 << 20
    #: Elements of one input tensor, from its declared shape (gRPC) or its JSON lists (REST).
    max_tensor_elements: int = 16 << 20
    #: Bytes of one decoded numeric input tensor (elements x dtype size).
    max_tensor_bytes: int = 256 << 20
    #: Nesting depth of a JSON body (objects and lists).
    max_json_depth: int = 64
    #: Characters of one JSON number literal.
    max_json_number_chars: int = 64
    #: Open REST connections; beyond it a new connection gets 503 and is closed.
    max_connections: int = 64
    #: Seconds to receive a request line and headers once the first byte arrived (and on a new connection).
    header_timeout_s: float = 10.0
    #: Seconds an idle keep-alive connection stays open.
    idle_timeout_s: float = 60.0
    #: Seconds to receive a whole request body (and to send a response).
    body_timeout_s: float = 60.0
    #: gRPC calls running or queued at once; beyond it RESOURCE_EXHAUSTED.
    max_concurrent_rpcs: int = 64
    #: gRPC worker threads.
    grpc_workers: int = min(16, 4 * (os.cpu_count() or 1))

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if getattr(self, field.name) <= 0:
                raise ValueError(f"limit {field.name} must be positive, got {getattr(self, field.name)!r}")


_HELP = {
    "max_request_bytes": "largest REST body / gRPC message in bytes",
    "max_tensor_elements": "most elements in one input tensor (checked from its declared shape)",
    "max_tensor_bytes": "most bytes in one decoded input tensor",
    "max_json_depth": "deepest JSON nesting",
    "max_json_number_chars": "longest JSON number literal",
    "max_connections": "open REST connections (beyond: 503)",
    "header_timeout_s": "seconds to receive a request's headers",
    "idle_timeout_s": "seconds an idle keep-alive connection stays open",
    "body_timeout_s": "seconds to receive a request body or send a response",
    "max_concurrent_rpcs": "gRPC calls at once (beyond: RESOURCE_EXHAUSTED)",
    "grpc_workers": "gRPC worker threads",
}


def flag_name(field: str) -> str:
    """``header_timeout_s`` -> ``--header-timeout``; ``max_connections`` -> ``--max-connections``."""
    return "--" + field.removesuffix("_s").replace("_", "-")


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`Limits` field, defaults from the dataclass."""
    group = parser.add_argument_group("limits (checked before any allocation; see docs/serving.md)")
    defaults = Limits()
    for field in dataclasses.fields(Limits):
        default = getattr(defaults, field.name)
        group.add_argument(flag_name(field.name), dest=f"limit_{field.name}", type=type(default), default=default,
                           metavar="S" if field.name.endswith("_s") else "N",
                           help=f"{_HELP[field.name]} (default {default})")


def limits_from_args(args: argparse.Namespace) -> Limits:
    return Limits(**{f.name: getattr(args, f"limit_{f.name}") for f in dataclasses.fields(Limits)})
