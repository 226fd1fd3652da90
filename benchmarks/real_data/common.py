"""Helpers shared by the real-data builders: a staged output folder (written under a temporary name, renamed
into place only when complete) and the versions of the packages the data came from."""
from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import shutil
import subprocess
import tempfile
from typing import Iterator, Optional

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def staged_output(output: str, overwrite: bool = False) -> Iterator[str]:
    """Yield a fresh temporary folder beside ``output``; on success it replaces ``output``.

    An existing ``output`` is refused unless ``overwrite``; on failure the temporary folder is removed and
    ``output`` is left as it was, so a reader never sees a half-written dataset.
    """
    target = os.path.abspath(output)
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(f"{output} already exists (pass --overwrite to replace it)")
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(target) + ".", suffix=".partial", dir=parent)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700; give the folder the permissions makedirs would
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if os.path.exists(target):
        old = tempfile.mkdtemp(prefix="." + os.path.basename(target) + ".", suffix=".old", dir=parent)
        os.rmdir(old)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def debian_version(package: str) -> Optional[str]:
    """The installed version of a Debian package, or ``None`` (not installed, or no dpkg here)."""
    try:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                                check=False)
    except OSError:
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def pip_version(distribution: str) -> Optional[str]:
    """The installed version of a Python distribution, or ``None``."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def pip_file(distribution: str, relative: str) -> Optional[str]:
    """The absolute path of a file that an installed distribution ships, or ``None`` (not installed / absent).

    ``relative`` is the path inside site-packages, e.g. ``recbole/dataset_example/ml-100k/ml-100k.inter``.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = os.path.abspath(str(dist.locate_file(relative)))
    return path if os.path.isfile(path) else None
