"""Where converted pretrained weights live: ``$XINPIANCHANG_CACHE`` or ``~/.cache/xinpianchang``."""
from __future__ import annotations

import os
from typing import Optional, Union

PathLike = Union[str, "os.PathLike[str]"]

#: Environment variable that overrides the default cache folder.
CACHE_ENV = "XINPIANCHANG_CACHE"
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "xinpianchang")


def cache_dir(override: Optional[PathLike] = None) -> str:
    """The cache folder (created if missing): ``override``, else ``$XINPIANCHANG_CACHE``, else the default."""
    folder = os.fspath(override) if override else os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR
    folder = os.path.abspath(os.path.expanduser(folder))
    os.makedirs(folder, exist_ok=True)
    return folder


def cached_file(name: str, override: Optional[PathLike] = None) -> str:
    """The path of ``name`` inside the cache folder (the file itself may not exist yet)."""
    if os.path.basename(name) != name or name in ("", ".", ".."):
        raise ValueError(f"cache file name must be a plain file name, got {name!r}")
    return os.path.join(cache_dir(override), name)
