"""Atomic file writes: write to a temporary name in the same folder, then rename over the target.

The temporary file is created exclusively (never through a symbolic link) with the permissions the umask
gives, without reading or changing the process's umask; the final rename replaces a link at the target
rather than writing where it points.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import stat
from typing import IO, Iterator, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


class UnsafePathError(ValueError):
    """A path inside an output tree that is a symbolic link (or not a folder) where a folder must be."""


def create_exclusive(path: PathLike, mode: int = 0o666) -> int:
    """Create ``path`` as a new, empty file and return its descriptor (open for writing).

    Fails (``FileExistsError``) if anything exists under that name, a symbolic link included, so it never
    writes through a link. The permissions are ``mode`` less the process's umask, applied by the kernel: the
    umask is never read or changed (changing it is process-wide and races with other threads).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.open(os.fspath(path), flags, mode)


def _new_temporary(path: PathLike, suffix: str) -> "tuple[int, str]":
    """(descriptor, name) of a new, empty file with a unique name beside ``path``."""
    target = os.fspath(path)
    folder = os.path.dirname(target) or "."
    prefix = "." + os.path.basename(target) + "."
    for _ in range(100):
        tmp = os.path.join(folder, prefix + secrets.token_hex(6) + suffix)
        try:
            return create_exclusive(tmp), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


def temporary_path_for(path: PathLike, suffix: str = ".part") -> str:
    """A new, empty file with a unique name beside ``path`` (same file system, so the final rename is
    atomic), with the permissions ``open()`` would give."""
    fd, tmp = _new_temporary(path, suffix)
    os.close(fd)
    return tmp


def safe_makedirs(root: PathLike, *parts: str) -> str:
    """Create ``root/part/...`` folder by folder and return it; refuses (:class:`UnsafePathError`) a
    component under ``root`` that is a symbolic link or not a folder, so that writes into the tree can
    never be sent outside it. ``root`` itself may be a link (a dataset on another disk)."""
    folder = os.fspath(root)
    os.makedirs(folder, exist_ok=True)
    for part in parts:
        if not part or part in (".", "..") or os.sep in part or (os.altsep and os.altsep in part):
            raise UnsafePathError(f"{part!r} is not a plain folder name")
        folder = os.path.join(folder, part)
        try:
            os.mkdir(folder)
        except FileExistsError:
            pass
        info = os.lstat(folder)
        if stat.S_ISLNK(info.st_mode):
            raise UnsafePathError(f"{folder} is a symbolic link; refusing to write through it")
        if not stat.S_ISDIR(info.st_mode):
            raise UnsafePathError(f"{folder} exists and is not a folder")
    return folder


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb", encoding: Optional[str] = None) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync and rename it to ``path``, else delete it."""
    target = os.fspath(path)
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    fd, tmp = _new_temporary(target, ".part")
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)


@contextlib.contextmanager
def atomic_output_path(path: PathLike, suffix: str = ".part") -> Iterator[str]:
    """Yield a temporary path for a writer that takes a file name (an encoder, a muxer); rename on success."""
    target = os.fspath(path)
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    tmp = temporary_path_for(target, suffix=suffix)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
