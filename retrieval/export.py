"""Export a trained run as TF Serving SavedModels: query tower + content lookup + top-k index.

Contract (the serving package codes against it)::

    export_run(run_dir, export_base, version=None, indexes=("bruteforce", "scann"), k=10,
               embeddings=None, max_history=None, scann=None) -> dict[str, str]

writes ``EXPORT_BASE/recommender_bruteforce/<version>/`` and ``EXPORT_BASE/recommender_scann/<version>/``
(TF Serving layout: a numbered folder holding ``saved_model.pb`` + ``variables/``, plus
``assets.extra/recommender.json`` describing it) and returns ``{"recommender_bruteforce": path, ...}``.
``version`` defaults to the next integer after the highest numbered folder under any of the exported model
names (so the indexes of one export share a version). Version numbers and the atomic write (temporary
name, then one rename, so a polling server never sees half a model) are
:mod:`data_interface_for_model.tf_serving_format`'s.

Signatures of every export:

* ``serving_default``: input ``history`` tf.string ``[batch, L]``: item ids of the user's recent items,
  oldest first; ``""`` is padding (either side) and ids unknown to the catalog are ignored; only the last
  ``max_history`` (default: the run's, 20) are used, and those are never recommended back. Outputs
  ``item_ids`` tf.string ``[batch, k]``, ``scores`` tf.float32 ``[batch, k]`` (best first) and ``titles``
  tf.string ``[batch, k]`` (from the run's item catalog; ``""`` without one).
* ``similar_items``: input ``item_id`` tf.string ``[batch]`` -> the same outputs (item-to-item: the query is
  a one-item history; the item itself is excluded).
* ``recommend_for_user`` (only when the run's query tower reads the user: ``--user-id`` or ``--users``):
  inputs ``history`` as ``serving_default``'s and ``user_id`` tf.string ``[batch]`` -> the same outputs, the
  query with the user's term (their id embedding, their user-table features; a user the run does not know
  gets the unknown vectors). ``serving_default`` and ``similar_items`` leave the user's term out.

``k`` is fixed at export time (a saved TFRS index cannot change it). If the catalog has fewer than ``k``
items, ``k`` is the catalog size.

Loading: the BruteForce export uses stock TensorFlow ops only (stock TF Serving runs it;
``tf.saved_model.load(path)`` works without scann). The ScaNN export holds ScaNN's custom ops
(``Scann>ScannSearchBatched``...): a Python process must ``import scann`` before ``tf.saved_model.load``,
and TF Serving needs the ScaNN-enabled build (google/tf-serving-scann).

``embeddings`` (optional) is an item-embedding file whose items are added to (or replace those in) the run's
catalog: new items are indexed from their content embedding alone, without retraining.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, Optional, Sequence

import tensorflow as tf

from data_interface_for_model.atomic import atomic_write
from data_interface_for_model.embeddings_file import read_embeddings
from data_interface_for_model.tf_serving_format import (next_version, validate_version, version_path, write_version,
                                                        write_warmup_requests)
from retrieval.indexes import INDEX_KINDS, RecommenderModule, ScannParams
from retrieval.rundir import Run, load_run

logger = logging.getLogger(__name__)

MODEL_NAME_PREFIX = "recommender_"


def model_name(kind: str) -> str:
    """``"bruteforce"`` -> ``"recommender_bruteforce"``."""
    return MODEL_NAME_PREFIX + kind


def build_module(run: Run, kind: str, k: int = 10, embeddings: Optional[str] = None,
                 max_history: Optional[int] = None, scann: Optional[ScannParams] = None) -> RecommenderModule:
    """The recommender module of a loaded run (catalog: the run's items, plus ``embeddings``' if given)."""
    module = RecommenderModule(run.model, run.table.ids, run.table.vectors, kind=kind, k=k,
                               max_history=max_history or run.max_history, scann=scann, titles=run.titles())
    if embeddings:
        extra = read_embeddings(embeddings)
        if extra.dimension != run.table.dimension:
            raise ValueError(f"{embeddings}: {extra.dimension}-d embeddings, the run was trained on "
                             f"{run.table.dimension}-d")
        module = module.with_items(extra.ids, extra.vectors)
    return module


def save_module(module: RecommenderModule, folder: str) -> None:
    """Save into the (empty) ``folder`` with the ``serving_default`` and ``similar_items`` signatures and
    ``assets.extra/recommender.json``. Exporters call it inside :func:`write_version`, which makes the write
    atomic."""
    module.similar_items(tf.constant([""]))  # trace once (and call the index) before saving
    module.recommend(tf.constant([[""]]))
    signatures = {"serving_default": module.recommend.get_concrete_function(),
                  "similar_items": module.similar_items.get_concrete_function()}
    outputs = {"item_ids": "string [batch, k]", "scores": "float32 [batch, k]", "titles": "string [batch, k]"}
    described = {"serving_default": {"inputs": {"history": "string [batch, L]"}, "outputs": outputs},
                 "similar_items": {"inputs": {"item_id": "string [batch]"}, "outputs": outputs}}
    if module.recommend_for_user is not None:
        module.recommend_for_user(tf.constant([[""]]), tf.constant([""]))
        signatures["recommend_for_user"] = module.recommend_for_user.get_concrete_function()
        described["recommend_for_user"] = {"inputs": {"history": "string [batch, L]", "user_id": "string [batch]"},
                                           "outputs": outputs}
    tf.saved_model.save(module, folder, signatures=signatures)
    meta = {"index": module.kind, "k": module.k, "max_history": module.max_history,
            "items": int(len(module.catalog_ids)), "needs_scann": module.kind == "scann",
            "signatures": described}
    with atomic_write(os.path.join(folder, "assets.extra", "recommender.json"), "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=2)


def export_run(run_dir: str, export_base: str, version: Optional[int] = None,
               indexes: Sequence[str] = INDEX_KINDS, k: int = 10, embeddings: Optional[str] = None,
               max_history: Optional[int] = None, scann: Optional[ScannParams] = None) -> Dict[str, str]:
    """Export ``run_dir`` once per index kind; returns model name -> version folder. See the module docstring."""
    unknown = [kind for kind in indexes if kind not in INDEX_KINDS]
    if unknown or not indexes:
        raise ValueError(f"unknown index kinds {unknown} (expected some of {INDEX_KINDS})")
    run = load_run(run_dir)
    names = [model_name(kind) for kind in indexes]
    if version is None:
        version = next_version(export_base, names)
    validate_version(version)
    for name in names:  # check every target before writing any, so a clash leaves nothing half-exported
        if os.path.lexists(version_path(export_base, name, version)):
            raise FileExistsError(f"{name} version {version} already exists in {export_base}; TF Serving "
                                  f"versions are immutable, export a new version")
    written: Dict[str, str] = {}
    for kind, name in zip(indexes, names):
        module = build_module(run, kind, k, embeddings, max_history, scann)
        with write_version(export_base, name, version) as tmp:
            save_module(module, tmp)
            ids = module.catalog_ids[:3].tolist()  # TF Serving warm-up: real catalog ids, and an empty history
            requests = {"serving_default": {"history": [ids, [""] * len(ids)]}, "similar_items": {"item_id": ids}}
            if module.recommend_for_user is not None:
                users = (run.user_vocabulary[:1] or [""]) + [""]  # a known user (if any) and an unknown one
                requests["recommend_for_user"] = {"history": [ids, [""] * len(ids)], "user_id": users}
            write_warmup_requests(tmp, name, requests)
        written[name] = version_path(export_base, name, version)
        logger.info("exported %s to %s", name, written[name])
    return written
