"""Atomic file writes: write to a temporary name in the same folder, then rename over the target."""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


def temporary_path_for(path: PathLike, suffix: str = ".part") -> str:
    """A unique temporary name beside ``path`` (same file system, so the final rename is atomic)."""
    target = os.fspath(path)
    folder = os.path.dirname(target) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(target) + ".", suffix=suffix, dir=folder)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the permissions open() would
    return tmp


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb", encoding: Optional[str] = None) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync and rename it to ``path``, else delete it."""
    target = os.fspath(path)
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    tmp = temporary_path_for(target)
    try:
        with open(tmp, mode, encoding=encoding) as handle:
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
