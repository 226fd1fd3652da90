"""TF Serving's on-disk format for model versions: the one place every exporter and the server use.

A *model base* holds one folder per model, each holding numbered version folders::

    MODELS/<model_name>/<version>/saved_model.pb + variables/ [+ assets.extra/]

TF Serving only loads folders whose names are all digits and that hold a SavedModel, and it treats a
version as immutable. So a writer builds the SavedModel under a hidden, non-numeric name beside its target
and renames it into place (:func:`write_version`): a server polling the folder never sees half a version.

This module lives in the base package (which every other package imports) so that the classifier's and the
recommender's exporters and the server share it without importing one another. No TensorFlow import here.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from typing import Dict, Iterator, Sequence

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
_VERSION_RE = re.compile(r"^[0-9]{1,18}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class LayoutError(ValueError):
    """A model base, name, version or config file that does not follow TF Serving's layout."""


def validate_model_name(name: str) -> str:
    """A model name is one path component of letters, digits, ``_ . -`` (it appears in URLs and paths)."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
        raise LayoutError(f"invalid model name {name!r}: use letters, digits, '_', '.', '-'")
    return name


def validate_version(version: int) -> int:
    """A version is a positive integer of at most 18 digits (TF Serving parses it as int64)."""
    if isinstance(version, bool) or not isinstance(version, int) or not 0 < version < 10 ** 18:
        raise LayoutError(f"invalid model version {version!r}: a positive integer below 10**18")
    return version


def is_saved_model_dir(path: str) -> bool:
    return any(os.path.isfile(os.path.join(path, f)) for f in SAVED_MODEL_FILES)


def list_versions(model_path: str) -> Dict[int, str]:
    """``{version: folder}`` for the numbered sub-folders of ``model_path`` that hold a SavedModel.

    Names that are not all digits (``.export-1a2b``, ``1.tmp``) are ignored, as TF Serving ignores them.
    """
    versions: Dict[int, str] = {}
    try:
        entries = os.listdir(model_path)
    except (FileNotFoundError, NotADirectoryError):
        return versions
    for entry in entries:
        full = os.path.join(model_path, entry)
        if _VERSION_RE.match(entry) and os.path.isdir(full) and is_saved_model_dir(full):
            versions[int(entry)] = full
    return versions


def next_version(model_base: str, names: Sequence[str]) -> int:
    """1 + the highest numbered folder under ``model_base/<name>/`` for any of ``names`` (1 if none).

    Every numbered folder counts, complete or not, so a new export never reuses a number that a half-copied
    or broken version already holds. Exporting several models with one call and one number keeps their
    versions in step (a classifier and its embedder, or the recommender's indexes).
    """
    highest = 0
    for name in names:
        folder = os.path.join(model_base, validate_model_name(name))
        try:
            entries = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if _VERSION_RE.match(entry) and os.path.isdir(os.path.join(folder, entry)):
                highest = max(highest, int(entry))
    return highest + 1


def version_path(model_base: str, name: str, version: int) -> str:
    return os.path.join(model_base, validate_model_name(name), str(validate_version(version)))


@contextlib.contextmanager
def write_version(model_base: str, name: str, version: int) -> Iterator[str]:
    """Yields an empty temporary folder to save a SavedModel into; on success it becomes
    ``model_base/name/version`` by one rename, on any error it is removed. The target must not exist
    (TF Serving versions are immutable: export a new version instead)::

        with write_version("models", "classifier", 3) as tmp:
            tf.saved_model.save(module, tmp)
    """
    target = version_path(model_base, name, version)
    if os.path.lexists(target):
        raise FileExistsError(f"{name} version {version} already exists in {model_base}; TF Serving versions "
                              f"are immutable, export a new version")
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)  # hidden and not numeric: TF Serving ignores it
    try:
        yield tmp
        if not is_saved_model_dir(tmp):
            raise LayoutError(f"{name} version {version}: nothing was saved (no saved_model.pb)")
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
