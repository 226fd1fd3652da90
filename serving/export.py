"""``python -m serving export``: the trained runs as SavedModels in TF Serving's layout, plus its configs.

The classifier and retrieval packages own their exports (``baseline_model.export.export_run`` and
``retrieval.export.export_run``, each ``(run_dir, export_base, version=None) -> {model name: version dir}``);
this module calls them, then writes ``models.config``, the split configs and ``docker-compose.yml`` for
every model under the base (:func:`serving.layout.write_export_configs`).
"""
from __future__ import annotations

import importlib
import logging
import os
from typing import Callable, Dict, List, Optional, Sequence

from data_interface_for_model.cli import UsageError
from serving.batching import BatchingConfig
from serving.layout import list_versions, validate_model_name, write_export_configs

logger = logging.getLogger(__name__)

#: (module, function) of each exporter, imported only when used.
EXPORTERS = {
    "classifier": ("baseline_model.export", "export_run"),
    "retrieval": ("retrieval.export", "export_run"),
}


class ExportUnavailable(UsageError):
    """An exporter that this checkout does not have (yet)."""


def exporter(kind: str) -> Callable[..., Dict[str, str]]:
    """The ``export_run`` function for ``kind`` ("classifier" or "retrieval"), imported lazily."""
    module_name, function = EXPORTERS[kind]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ExportUnavailable(f"{module_name} does not exist in this checkout: cannot export the {kind} run "
                                    f"(it provides {function}(run_dir, export_base, version))") from None
        raise
    fn = getattr(module, function, None)
    if fn is None:
        raise ExportUnavailable(f"{module_name} has no {function}(run_dir, export_base, version): cannot export "
                                f"the {kind} run")
    return fn


def uses_scann_ops(version_dir: str) -> bool:
    """Does this SavedModel's graph use ScaNN's custom ops (``Scann>...``), which stock TF Serving lacks?"""
    path = os.path.join(version_dir, "saved_model.pb")
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as handle:
        return b"Scann>" in handle.read()


def models_in(base: str) -> List[str]:
    """Model folders under ``base`` holding at least one version."""
    names = []
    for entry in sorted(os.listdir(base)):
        full = os.path.join(base, entry)
        if os.path.isdir(full) and not entry.startswith(".") and list_versions(full):
            names.append(validate_model_name(entry))
    return names


def write_serving_configs(base: str, batching: Optional[BatchingConfig] = None,
                          version_labels: Optional[Dict[str, Dict[str, int]]] = None) -> Dict[str, str]:
    """models.config (+ split configs, batching parameters) and docker-compose.yml for every model in ``base``."""
    names = models_in(base)
    if not names:
        raise FileNotFoundError(f"{base}: no model folder holds a version (<name>/<digits>/saved_model.pb)")
    scann = [n for n in names if any(uses_scann_ops(p) for p in list_versions(os.path.join(base, n)).values())]
    params = None
    if batching:
        params = (batching.max_batch_size, batching.batch_timeout_micros, batching.num_batch_threads,
                  batching.max_enqueued_batches)
    return write_export_configs(base, names, scann_models=scann, version_labels=version_labels, batching=params)


def export_runs(base: str, classifier_run: Optional[str] = None, recommender_run: Optional[str] = None,
                version: Optional[int] = None, progress: Optional[Callable[[str], None]] = None) -> Dict[str, str]:
    """Export the given runs into ``base``; returns ``{model name: version dir}``.

    Raises:
      ExportUnavailable: an exporter is missing from this checkout.
      FileNotFoundError: a run folder does not exist.
    """
    jobs: Sequence = [(kind, run) for kind, run in (("classifier", classifier_run), ("retrieval", recommender_run)) if run]
    for kind, run in jobs:
        if not os.path.isdir(run):
            raise FileNotFoundError(f"{kind} run {run!r} is not a folder")
    functions = {kind: exporter(kind) for kind, _ in jobs}  # fail before exporting anything
    os.makedirs(base, exist_ok=True)
    written: Dict[str, str] = {}
    for kind, run in jobs:
        if progress:
            progress(kind)
        result = functions[kind](run, base, version=version)
        logger.info("%s run %s exported: %s", kind, run, result)
        written.update(result)
    return written
