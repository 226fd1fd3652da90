"""Fetch one URL into one file: streamed, resumable, retried, length-checked, verified, renamed when whole.

A download goes to ``<target>.part`` beside the target, with a small ``<target>.part.json`` sidecar that
remembers the URL and the server's validators (ETag / Last-Modified). An interrupted download (a dropped
connection, a short body, a killed process) leaves the ``.part``; the next attempt, in this run or the
next, asks for the rest with ``Range: bytes=N-`` (and ``If-Range``), appends on ``206 Partial Content``
and starts over on ``200``. The target name only ever holds a complete file that passed the length check
and the caller's verification (``os.replace`` of the finished ``.part``).

Errors are sorted into permanent (404, 410 and other client errors: recorded at once) and transient
(timeouts, connection resets, short bodies, 408/425/429 and 5xx): those are retried with exponential
backoff and jitter, honouring ``Retry-After``. A complete file that fails verification is fetched again
``verify_retries`` times at most (a server that keeps sending a bad file is not asked forever).

Bounds: each kind of file has a size cap, checked against Content-Length (and the Content-Range total) and
again while streaming; each attempt has a total deadline (``timeout_s`` bounds one wait, so a server
dripping a byte at a time would otherwise hold a worker for ever); redirects are followed by hand, only
to the URL's own host or an allowed one and never from https to http; a Content-Type that cannot be the
file's kind is refused. The ``.part`` file is opened without following links and locked (``flock``) for
the whole fetch, so two downloads never write it at once; a full disk (ENOSPC, EFBIG, EDQUOT) keeps the
``.part`` and is reported as such, not retried as a network error.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import random
import re
import threading
import time
import urllib.parse
from typing import Callable, Dict, FrozenSet, Iterator, Optional

import requests
import requests.adapters
import urllib3.exceptions

from data_download_tools.verify import VerificationError

logger = logging.getLogger(__name__)

PERMANENT_STATUSES = frozenset({404, 410})
RETRY_STATUSES = frozenset({408, 425, 429})
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
#: Content-Types that are never a video or a picture (an error page, an API answer).
_NEVER_MEDIA = ("text/", "application/json", "application/xml", "application/xhtml", "application/javascript")
#: Content-Types accepted without verification, per kind (a missing one is accepted too).
_KIND_TYPES = {"video": ("video/", "application/mp4", "application/octet-stream", "binary/octet-stream"),
               "cover": ("image/", "application/octet-stream", "binary/octet-stream")}


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
      deadline_s: the longest one attempt at one file may take in all (connect, headers and body).
      max_video_bytes, max_cover_bytes: the largest clip and cover accepted (Content-Length and stream).
      max_redirects: redirects followed per request.
      allowed_hosts: hosts a redirect may lead to besides the URL's own.
      verify_retries: how many times a complete file that fails verification is fetched again.
    """

    timeout_s: float = 30.0
    retries: int = 4
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    max_per_host: int = 8
    delay_s: float = 0.0
    chunk_bytes: int = 1 << 18
    user_agent: str = "xinpianchang-downloader/0.1 (+python-requests)"
    deadline_s: float = 600.0
    max_video_bytes: int = 1 << 30
    max_cover_bytes: int = 32 << 20
    max_redirects: int = 5
    allowed_hosts: FrozenSet[str] = frozenset()
    verify_retries: int = 1

    def max_bytes(self, kind: Optional[str]) -> Optional[int]:
        """The size cap of a ``"video"`` or ``"cover"`` (None for another kind)."""
        return {"video": self.max_video_bytes, "cover": self.max_cover_bytes}.get(kind or "")

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if self.retries < 0:
            raise ValueError("retries must be >= 0")
        if self.max_per_host < 1:
            raise ValueError("max_per_host must be at least 1")
        if self.delay_s < 0 or self.backoff_s < 0 or self.backoff_max_s < 0:
            raise ValueError("delays and backoffs must be >= 0")
        if self.deadline_s <= 0 or self.max_video_bytes < 1 or self.max_cover_bytes < 1:
            raise ValueError("deadline_s and the size caps must be positive")
        if self.max_redirects < 0 or self.verify_retries < 0:
            raise ValueError("max_redirects and verify_retries must be >= 0")
        object.__setattr__(self, "allowed_hosts", frozenset(h.lower() for h in self.allowed_hosts))


class FetchError(Exception):
    """A URL that could not be fetched; ``permanent`` says whether retrying later could help;
    ``disk_full`` that the local disk (not the network) failed, the ``.part`` kept for a later run."""

    def __init__(self, url: str, reason: str, permanent: bool, attempts: int = 1, disk_full: bool = False):
        super().__init__(f"{reason} ({url})")
        self.url = url
        self.reason = reason
        self.permanent = permanent
        self.attempts = attempts
        self.disk_full = disk_full


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: Optional[float] = None, discard_part: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.discard_part = discard_part


class _Permanent(Exception):
    pass


class _DiskFull(Exception):
    pass


def _write_chunk(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _local_error(what: str, exc: OSError) -> Exception:
    """A local disk error: disk full (the .part is kept) or any other (permanent)."""
    if exc.errno in DISK_FULL_ERRNOS:
        return _DiskFull(f"disk full: cannot {what}: {exc.strerror or exc}")
    return _Permanent(f"cannot {what}: {exc.strerror or exc}")


def _host(url: str) -> str:
    return (urllib.parse.urlsplit(url).hostname or "").lower()


def _content_type_error(kind: Optional[str], content_type: str, strict: bool) -> Optional[str]:
    """Why a response of this Content-Type cannot be a file of ``kind`` (None when it can)."""
    media = content_type.split(";")[0].strip().lower()
    if not media or kind not in _KIND_TYPES:
        return None
    if media.startswith(_NEVER_MEDIA) or (strict and not media.startswith(_KIND_TYPES[kind])):
        return f"Content-Type {media} is not a {kind}"
    return None


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

    def fetch(self, url: str, target: str, verify: Optional[Callable[[str], None]] = None,
              kind: Optional[str] = None) -> FetchResult:
        """Download ``url`` to ``target`` (its folder must exist); ``verify(path)`` may raise
        :class:`VerificationError` for a complete file that is not what it should be. ``kind``
        (``"video"`` or ``"cover"``) selects the size cap and the Content-Type check.

        Raises :class:`FetchError` when the URL cannot be fetched: at once for a permanent error or a full
        disk, after ``retries`` retries for a transient one (the ``.part`` is then kept for a later resume).
        """
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise FetchError(url, f"unsupported URL scheme {scheme!r}", permanent=True)
        part, meta = target + ".part", target + ".part.json"
        try:
            fd = os.open(part, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            error = _local_error(f"open {part}", exc)
            raise FetchError(url, str(error), permanent=isinstance(error, _Permanent),
                             disk_full=isinstance(error, _DiskFull)) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FetchError(url, f"{part} is being written by another download", permanent=False) from None
            return self._fetch_locked(url, target, part, meta, fd, verify, kind)
        finally:
            with contextlib.suppress(OSError):  # an empty .part left here has nothing to resume: remove it
                if os.fstat(fd).st_size == 0 and os.path.samestat(os.lstat(part), os.fstat(fd)):
                    os.remove(part)
            os.close(fd)

    def _fetch_locked(self, url: str, target: str, part: str, meta: str, fd: int,
                      verify: Optional[Callable[[str], None]], kind: Optional[str]) -> FetchResult:
        received = 0
        resumed = False
        attempt = 0
        bad_files = 0
        while True:
            attempt += 1
            try:
                got, was_resumed = self._attempt(url, part, meta, fd, kind, strict_type=verify is None)
                received += got
                resumed = resumed or was_resumed
                try:
                    os.fsync(fd)
                except OSError as exc:
                    raise _local_error(f"write {part}", exc) from None
                if verify is not None:
                    try:
                        verify(part)
                    except VerificationError as exc:
                        bad_files += 1
                        if bad_files > self.config.verify_retries:
                            raise _Permanent(f"downloaded file failed verification {bad_files} times: {exc}")
                        raise _Transient(f"downloaded file failed verification: {exc}", discard_part=True)
                os.replace(part, target)
                _remove(meta)
                return FetchResult(received, attempt, resumed)
            except _Permanent as exc:
                _remove(part, meta)
                raise FetchError(url, str(exc), permanent=True, attempts=attempt) from None
            except _DiskFull as exc:  # keep the .part: a later run resumes once there is room
                raise FetchError(url, str(exc), permanent=False, attempts=attempt, disk_full=True) from None
            except _Transient as exc:
                if exc.discard_part:
                    os.ftruncate(fd, 0)
                    _remove(meta)
                if attempt > self.config.retries:
                    raise FetchError(url, exc.reason, permanent=False, attempts=attempt) from None
                wait = self.backoff(attempt, exc.retry_after)
                logger.info("%s: %s; retry %d/%d in %.2f s", url, exc.reason, attempt, self.config.retries, wait)
                self._sleep(wait)
            except OSError as exc:  # renaming into place or verifying failed on the local disk
                error = _local_error(f"finish {target}", exc)
                if isinstance(error, _DiskFull):
                    raise FetchError(url, str(error), permanent=False, attempts=attempt, disk_full=True) from None
                _remove(part, meta)
                raise FetchError(url, str(error), permanent=True, attempts=attempt) from None

    def _resume_state(self, url: str, fd: int, meta: str) -> "tuple[int, Optional[str]]":
        """(bytes already in the ``.part`` for this URL, the validator to send with If-Range)."""
        size = os.fstat(fd).st_size
        if size == 0:
            _remove(meta)
            return 0, None
        try:
            with open(meta, "r", encoding="utf-8") as handle:
                state = json.load(handle)
        except (OSError, ValueError):
            state = None
        if not isinstance(state, dict) or state.get("url") != url:
            os.ftruncate(fd, 0)
            _remove(meta)
            return 0, None
        etag = state.get("etag")
        validator = etag if isinstance(etag, str) and not etag.startswith("W/") else state.get("last_modified")
        return size, validator if isinstance(validator, str) else None

    def _redirect_target(self, url: str, current: str, response: requests.Response) -> str:
        """Where a redirect leads, if the policy allows it: the URL's own host or an allowed one, never
        from https to http."""
        location = response.headers.get("Location")
        if not location:
            raise _Permanent(f"HTTP {response.status_code} without a Location")
        target = urllib.parse.urljoin(current, location)
        scheme = urllib.parse.urlsplit(target).scheme
        if scheme not in ("http", "https"):
            raise _Permanent(f"redirect to an unsupported URL scheme {scheme!r}")
        if urllib.parse.urlsplit(current).scheme == "https" and scheme == "http":
            raise _Permanent(f"redirect from https to http refused ({_short(target)})")
        host = _host(target)
        if host != _host(url) and host not in self.config.allowed_hosts:
            raise _Permanent(f"redirect to another host refused: {host} (allow it with --allow-host)")
        return target

    def _attempt(self, url: str, part: str, meta: str, fd: int, kind: Optional[str] = None,
                 strict_type: bool = False) -> "tuple[int, bool]":
        """One request (redirects followed by policy); returns (bytes received, whether it resumed).
        Raises _Transient / _Permanent / _DiskFull."""
        offset, validator = self._resume_state(url, fd, meta)
        headers = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if validator:
                headers["If-Range"] = validator
        host = urllib.parse.urlsplit(url).netloc
        timeout = self.config.timeout_s
        deadline = time.monotonic() + self.config.deadline_s
        try:
            with self.limiter.slot(host):
                current = url
                for _ in range(self.config.max_redirects + 1):
                    response = self._session().get(current, headers=headers, stream=True,
                                                   timeout=(timeout, timeout), allow_redirects=False)
                    with response:
                        if response.status_code in REDIRECT_STATUSES:
                            current = self._redirect_target(url, current, response)
                            continue
                        return self._receive(response, url, part, meta, fd, offset, kind, strict_type, deadline)
                raise _Permanent(f"more than {self.config.max_redirects} redirects")
        except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError):
            raise _Transient(f"timed out after {timeout:g} s") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                urllib3.exceptions.HTTPError) as exc:
            raise _Transient(f"connection error: {_short(exc)}") from None
        except requests.exceptions.RequestException as exc:  # an invalid URL...
            raise _Permanent(f"request failed: {_short(exc)}") from None
        except OSError as exc:  # a socket error that requests did not wrap (local disk errors are mapped)
            raise _Transient(f"network error: {_short(exc)}") from None

    def _receive(self, response: requests.Response, url: str, part: str, meta: str, fd: int, offset: int,
                 kind: Optional[str] = None, strict_type: bool = False,
                 deadline: Optional[float] = None) -> "tuple[int, bool]":
        status = response.status_code
        if status in PERMANENT_STATUSES:
            raise _Permanent(f"HTTP {status}")
        if status in RETRY_STATUSES or status >= 500:
            raise _Transient(f"HTTP {status}", retry_after=_retry_after(response))
        if status == 416 and offset:
            raise _Transient("HTTP 416 for the resumed range; starting over", discard_part=True)
        if status not in (200, 206):
            raise _Permanent(f"HTTP {status}")
        wrong_type = _content_type_error(kind, response.headers.get("Content-Type", ""), strict_type)
        if wrong_type:
            raise _Permanent(wrong_type)
        cap = self.config.max_bytes(kind)
        encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        length = response.headers.get("Content-Length")
        body_length = int(length) if length and length.isdigit() and not encoded else None
        if status == 206 and offset:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise _Transient(f"bad Content-Range {response.headers.get('Content-Range')!r} for offset {offset}",
                                 discard_part=True)
            total = None if match.group(3) == "*" else int(match.group(3))
            resumed = True
        elif status == 200:
            total, resumed, offset = body_length, False, 0
        else:
            raise _Permanent(f"HTTP {status} without a requested range")
        for size in (total, None if body_length is None else offset + body_length):
            if cap is not None and size is not None and size > cap:
                raise _Permanent(f"the server declares {size} bytes, more than the {cap}-byte cap for a {kind}")
        if status == 200:
            try:
                os.ftruncate(fd, 0)
            except OSError as exc:
                raise _local_error(f"write {part}", exc) from None
            state = {"url": url, "etag": response.headers.get("ETag"),
                     "last_modified": response.headers.get("Last-Modified")}
            try:  # a plain write: a torn sidecar (a kill right here) fails to parse and the .part starts over
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC
                with os.fdopen(os.open(meta, flags, 0o666), "w", encoding="utf-8") as handle:
                    json.dump(state, handle)
            except OSError as exc:
                raise _local_error(f"write {meta}", exc) from None
        got = 0
        os.lseek(fd, 0, os.SEEK_END)
        # read1 returns what has arrived (at most chunk_bytes): bytes received before a reset are kept
        # in the .part, where a buffered read of a whole chunk would lose them with the exception.
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise _Transient(f"the attempt took longer than {self.config.deadline_s:g} s")
            chunk = response.raw.read1(self.config.chunk_bytes)
            if not chunk:
                break
            if cap is not None and offset + got + len(chunk) > cap:
                raise _Permanent(f"the body exceeds the {cap}-byte cap for a {kind}")
            try:
                _write_chunk(fd, chunk)
            except OSError as exc:
                raise _local_error(f"write {part}", exc) from None
            got += len(chunk)
        if body_length is not None and got != body_length:
            raise _Transient(f"body of {got} bytes, Content-Length says {body_length}", discard_part=got > body_length)
        if total is not None and offset + got != total:
            raise _Transient(f"file of {offset + got} bytes, the server says {total}", discard_part=offset + got > total)
        return got, resumed


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:197] + "..."
