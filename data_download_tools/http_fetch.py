"""Fetch one URL into one file: streamed, resumable, retried, length-checked, verified, renamed when whole.

A download goes to ``<target>.part`` beside the target, with a small ``<target>.part.json`` sidecar that
remembers the URL and the server's validators (ETag / Last-Modified). An interrupted download (a dropped
connection, a short body, a killed process) leaves the ``.part``; the next attempt, in this run or the
next, asks for the rest with ``Range: bytes=N-`` (and ``If-Range``), appends on ``206 Partial Content``
and starts over on ``200``. The target name only ever holds a complete file that passed the length check
and the caller's verification (``os.replace`` of the finished ``.part``).

Errors are sorted into permanent (404, 410 and other client errors: recorded at once) and transient
(timeouts, connection resets, short bodies, 408/425/429 and 5xx, a file that fails verification): those
are retried with exponential backoff and jitter, honouring ``Retry-After``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import re
import threading
import time
import urllib.parse
from typing import Callable, Dict, Iterator, Optional

import requests
import requests.adapters
import urllib3.exceptions

from data_download_tools.verify import VerificationError

logger = logging.getLogger(__name__)

PERMANENT_STATUSES = frozenset({404, 410})
RETRY_STATUSES = frozenset({408, 425, 429})
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


@dataclasses.dataclass(frozen=True)
class FetchConfig:
    """How to fetch.

    Attributes:
      timeout_s: connect timeout and the longest wait for any byte of the response.
      retries: attempts after the first for a transient error (so ``retries + 1`` attempts in all).
      backoff_s: the first backoff; it doubles each retry, up to ``backoff_max_s``, with jitter (each wait
        is uniform in [d/2, d]).
      backoff_max_s: the longest wait between attempts (also caps a server's ``Retry-After``).
      max_per_host: requests in flight to one host at a time.
      delay_s: the least time between the starts of two requests to one host (politeness; 0 for none).
      chunk_bytes: read size while streaming to disk.
      user_agent: the ``User-Agent`` header.
    """

    timeout_s: float = 30.0
    retries: int = 4
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    max_per_host: int = 8
    delay_s: float = 0.0
    chunk_bytes: int = 1 << 18
    user_agent: str = "xinpianchang-downloader/0.1 (+python-requests)"

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if self.retries < 0:
            raise ValueError("retries must be >= 0")
        if self.max_per_host < 1:
            raise ValueError("max_per_host must be at least 1")
        if self.delay_s < 0 or self.backoff_s < 0 or self.backoff_max_s < 0:
            raise ValueError("delays and backoffs must be >= 0")


class FetchError(Exception):
    """A URL that could not be fetched; ``permanent`` says whether retrying later could help."""

    def __init__(self, url: str, reason: str, permanent: bool, attempts: int = 1):
        super().__init__(f"{reason} ({url})")
        self.url = url
        self.reason = reason
        self.permanent = permanent
        self.attempts = attempts


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: Optional[float] = None, discard_part: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.discard_part = discard_part


class _Permanent(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class FetchResult:
    """What one :meth:`HttpFetcher.fetch` did: bytes received over the network, attempts, resumed or not."""

    bytes_received: int
    attempts: int
    resumed: bool


class HostLimiter:
    """At most ``max_per_host`` requests in flight per host, and starts at least ``delay_s`` apart."""

    def __init__(self, max_per_host: int, delay_s: float = 0.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.max_per_host = max_per_host
        self.delay_s = delay_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._semaphores: Dict[str, threading.BoundedSemaphore] = {}
        self._next_start: Dict[str, float] = {}

    @contextlib.contextmanager
    def slot(self, host: str) -> Iterator[None]:
        with self._lock:
            semaphore = self._semaphores.setdefault(host, threading.BoundedSemaphore(self.max_per_host))
        with semaphore:
            if self.delay_s > 0:
                with self._lock:
                    now = self._clock()
                    start = max(now, self._next_start.get(host, now))
                    self._next_start[host] = start + self.delay_s
                if start > now:
                    self._sleep(start - now)
            yield


def _retry_after(response: requests.Response) -> Optional[float]:
    value = response.headers.get("Retry-After")
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def _remove(*paths: str) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


class HttpFetcher:
    """Fetches URLs into files; thread-safe (one ``requests.Session`` per thread, shared host limits).

    Args:
      config: timeouts, retries, backoff, per-host limits.
      sleep: how to wait between attempts (tests pass a recorder).
      rng: jitter source.
    """

    def __init__(self, config: FetchConfig = FetchConfig(), sleep: Callable[[float], None] = time.sleep,
                 rng: Optional[random.Random] = None):
        self.config = config
        self.limiter = HostLimiter(config.max_per_host, config.delay_s)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=4, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update({"User-Agent": self.config.user_agent, "Accept-Encoding": "identity"})
            self._local.session = session
        return session

    def backoff(self, attempt: int, retry_after: Optional[float] = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` >= 1): exponential with jitter."""
        ceiling = min(self.config.backoff_max_s, self.config.backoff_s * (2 ** (attempt - 1)))
        with self._rng_lock:
            wait = ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.config.backoff_max_s))
        return wait

    def fetch(self, url: str, target: str, verify: Optional[Callable[[str], None]] = None) -> FetchResult:
        """Download ``url`` to ``target`` (its folder must exist); ``verify(path)`` may raise
        :class:`VerificationError` for a complete file that is not what it should be.

        Raises :class:`FetchError` when the URL cannot be fetched: at once for a permanent error, after
        ``retries`` retries for a transient one (the ``.part`` is then kept for a later resume).
        """
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise FetchError(url, f"unsupported URL scheme {scheme!r}", permanent=True)
        part, meta = target + ".part", target + ".part.json"
        received = 0
        resumed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                got, was_resumed = self._attempt(url, part, meta)
                received += got
                resumed = resumed or was_resumed
                if verify is not None:
                    try:
                        verify(part)
                    except VerificationError as exc:
                        raise _Transient(f"downloaded file failed verification: {exc}", discard_part=True)
                os.replace(part, target)
                _remove(meta)
                return FetchResult(received, attempt, resumed)
            except _Permanent as exc:
                _remove(part, meta)
                raise FetchError(url, str(exc), permanent=True, attempts=attempt) from None
            except _Transient as exc:
                if exc.discard_part:
                    _remove(part, meta)
                if attempt > self.config.retries:
                    raise FetchError(url, exc.reason, permanent=False, attempts=attempt) from None
                wait = self.backoff(attempt, exc.retry_after)
                logger.info("%s: %s; retry %d/%d in %.2f s", url, exc.reason, attempt, self.config.retries, wait)
                self._sleep(wait)
            except OSError as exc:  # renaming into place or verifying failed on the local disk
                _remove(part, meta)
                raise FetchError(url, f"cannot finish {target}: {exc}", permanent=True, attempts=attempt) from None

    def _resume_state(self, url: str, part: str, meta: str) -> "tuple[int, Optional[str]]":
        """(bytes already in a ``.part`` for this URL, the validator to send with If-Range)."""
        if not os.path.isfile(part):
            _remove(meta)
            return 0, None
        try:
            with open(meta, "r", encoding="utf-8") as handle:
                state = json.load(handle)
        except (OSError, ValueError):
            state = None
        if not isinstance(state, dict) or state.get("url") != url:
            _remove(part, meta)
            return 0, None
        etag = state.get("etag")
        validator = etag if isinstance(etag, str) and not etag.startswith("W/") else state.get("last_modified")
        return os.path.getsize(part), validator if isinstance(validator, str) else None

    def _attempt(self, url: str, part: str, meta: str) -> "tuple[int, bool]":
        """One request; returns (bytes received, whether it resumed). Raises _Transient / _Permanent."""
        offset, validator = self._resume_state(url, part, meta)
        headers = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if validator:
                headers["If-Range"] = validator
        host = urllib.parse.urlsplit(url).netloc
        timeout = self.config.timeout_s
        try:
            with self.limiter.slot(host):
                with self._session().get(url, headers=headers, stream=True, timeout=(timeout, timeout)) as response:
                    return self._receive(response, url, part, meta, offset)
        except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError):
            raise _Transient(f"timed out after {timeout:g} s") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                urllib3.exceptions.HTTPError) as exc:
            raise _Transient(f"connection error: {_short(exc)}") from None
        except requests.exceptions.RequestException as exc:  # an invalid URL, too many redirects...
            raise _Permanent(f"request failed: {_short(exc)}") from None
        except OSError as exc:  # a socket error that requests did not wrap (local disk errors are _Permanent)
            raise _Transient(f"network error: {_short(exc)}") from None

    def _receive(self, response: requests.Response, url: str, part: str, meta: str, offset: int) -> "tuple[int, bool]":
        status = response.status_code
        if status in PERMANENT_STATUSES:
            raise _Permanent(f"HTTP {status}")
        if status in RETRY_STATUSES or status >= 500:
            raise _Transient(f"HTTP {status}", retry_after=_retry_after(response))
        if status == 416 and offset:
            raise _Transient("HTTP 416 for the resumed range; starting over", discard_part=True)
        encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        length = response.headers.get("Content-Length")
        body_length = int(length) if length and length.isdigit() and not encoded else None
        if status == 206 and offset:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise _Transient(f"bad Content-Range {response.headers.get('Content-Range')!r} for offset {offset}",
                                 discard_part=True)
            total = None if match.group(3) == "*" else int(match.group(3))
            mode, resumed = "ab", True
        elif status == 200:
            total, mode, resumed, offset = body_length, "wb", False, 0
            state = {"url": url, "etag": response.headers.get("ETag"),
                     "last_modified": response.headers.get("Last-Modified")}
            try:  # a plain write: a torn sidecar (a kill right here) fails to parse and the .part starts over
                with open(meta, "w", encoding="utf-8") as handle:
                    json.dump(state, handle)
            except OSError as exc:
                raise _Permanent(f"cannot write {meta}: {exc}") from None
        else:
            raise _Permanent(f"HTTP {status}")
        got = 0
        try:
            handle = open(part, mode)
        except OSError as exc:
            raise _Permanent(f"cannot write {part}: {exc}") from None
        with handle:
            # read1 returns what has arrived (at most chunk_bytes): bytes received before a reset are kept
            # in the .part, where a buffered read of a whole chunk would lose them with the exception.
            while True:
                chunk = response.raw.read1(self.config.chunk_bytes)
                if not chunk:
                    break
                try:
                    handle.write(chunk)
                except OSError as exc:
                    raise _Permanent(f"cannot write {part}: {exc}") from None
                got += len(chunk)
        if body_length is not None and got != body_length:
            raise _Transient(f"body of {got} bytes, Content-Length says {body_length}", discard_part=got > body_length)
        if total is not None and offset + got != total:
            raise _Transient(f"file of {offset + got} bytes, the server says {total}", discard_part=offset + got > total)
        return got, resumed


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:197] + "..."
