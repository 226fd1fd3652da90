"""The catalog's operations, independent of HTTP: index, delete, list, recommend, classify, search.

Consistency: the store and the live index change together under one write lock (store first, in one
transaction; then the index), so a reader never finds an id in one and not the other for longer than that
lock is held, and an item is searchable as soon as its ``index`` call returns. Embedding (the slow part)
runs outside the lock, so concurrent requests embed in parallel.
"""
from __future__ import annotations

import collections
import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from data_interface_for_model.decoding import DecodeError
from data_interface_for_model.schema import RecordError, validate_mp4_id

from serving.catalog.config import CatalogConfig
from serving.catalog.embedder import Clip, Embedder, TextEncoder
from serving.catalog.index import LiveIndex, normalise
from serving.catalog.media import DecodedItem, decode_item
from serving.catalog.sources import SourceItem, iter_source
from serving.catalog.store import CatalogStore, DuplicateItemError, Item

logger = logging.getLogger(__name__)

MAX_TITLE = 500
MAX_BRIEF = 5000
MAX_LABEL = 64


class CatalogError(Exception):
    """A request the catalog refuses; ``status`` is the HTTP status, the message names the item."""

    status = 400

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class NotFound(CatalogError):
    status = 404


class Conflict(CatalogError):
    status = 409


class TooLarge(CatalogError):
    status = 413


class Unavailable(CatalogError):
    status = 503


def check_id(video_id: object) -> str:
    try:
        return validate_mp4_id(video_id)
    except RecordError as exc:
        raise CatalogError(f"bad video_id: {exc}") from None


def _text(value: Optional[str], name: str, limit: int) -> str:
    value = "" if value is None else str(value)
    if len(value) > limit:
        raise CatalogError(f"{name} is longer than {limit} characters")
    return value


class CatalogService:
    """A live catalog over a store, an embedder and a :class:`LiveIndex`.

    Args:
      config: the settings.
      embedder: the classifier adapter (None: a read-only catalog that cannot embed new clips).
      text_encoder: embeds titles + briefs for text search (None: keyword search in the store).
    """

    def __init__(self, config: CatalogConfig, embedder: Optional[Embedder],
                 text_encoder: Optional[TextEncoder] = None) -> None:
        self.config = config
        self.embedder = embedder
        self.text_encoder = text_encoder
        self.store = CatalogStore(config.store)
        self.index = LiveIndex(config.ann_min_size, config.rebuild_min_changes, config.rebuild_fraction)
        ids, labels, vectors = self.store.all_embeddings()
        self.index.reset(ids, labels, vectors)
        self.text_index = LiveIndex(config.ann_min_size, config.rebuild_min_changes, config.rebuild_fraction)
        if text_encoder is not None:
            self._backfill_text_embeddings()
            self.text_index.reset(*self.store.all_embeddings(text=True))
        self._write_lock = threading.RLock()
        self._cache: "collections.OrderedDict[str, Tuple[np.ndarray, np.ndarray]]" = collections.OrderedDict()
        self._cache_lock = threading.Lock()
        os.makedirs(config.media_dir, exist_ok=True)
        logger.info("catalog of %d items from %s", len(ids), self.store.kind)

    def _backfill_text_embeddings(self, batch: int = 64) -> None:
        """Embed the text of items stored without a text embedding (indexed with keyword search)."""
        missing = self.store.ids_without_text_embedding()
        for start in range(0, len(missing), batch):
            items = list(self.store.get_many(missing[start:start + batch]).values())
            self._text_vectors(items)
            self.store.set_text_embeddings({i.video_id: i.text_embedding for i in items})
        if missing:
            logger.info("embedded the text of %d items stored without it", len(missing))

    def close(self) -> None:
        self.index.wait_for_rebuild()
        self.text_index.wait_for_rebuild()
        self.store.close()

    # ------------------------------------------------------------------------------------------ status
    def health(self) -> Dict[str, object]:
        return {"status": "ok", "model_loaded": self.embedder is not None, "index_size": len(self.index),
                "device": getattr(self.embedder, "device", "none"), "storage": self.store.kind,
                "text_search": "keyword" if self.text_encoder is None else "embeddings",
                "index": self.index.stats()}

    def labels(self) -> Dict[str, object]:
        known = list(getattr(self.embedder, "labels", []) or [])
        return {"labels": known, "counts": self.store.label_counts()}

    # ---------------------------------------------------------------------------------------- embedding
    def _require_embedder(self) -> Embedder:
        if self.embedder is None:
            raise Unavailable("no classifier loaded: this catalog cannot embed new clips")
        return self.embedder

    def _decode(self, video_path: str, brief: str, cover: Optional[bytes] = None,
                cover_path: Optional[str] = None, name: Optional[str] = None) -> DecodedItem:
        embedder = self._require_embedder()
        try:
            return decode_item(video_path, brief, embedder.num_frames, embedder.image_size, cover, cover_path)
        except DecodeError as exc:
            message = str(exc).replace(video_path, name) if name else str(exc)
            raise CatalogError(f"not a readable video: {message}") from None

    def _analyse(self, clips: Sequence[Clip]) -> Tuple[np.ndarray, np.ndarray]:
        embeddings, probabilities = self._require_embedder().analyse(list(clips))
        return normalise(embeddings), probabilities

    def _analyse_cached(self, key: str, clip: Clip) -> Tuple[np.ndarray, np.ndarray]:
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        embeddings, probabilities = self._analyse([clip])
        result = (embeddings[0], probabilities[0])
        with self._cache_lock:
            self._cache[key] = result
            while len(self._cache) > 64:
                self._cache.popitem(last=False)
        return result

    def _predicted_label(self, probabilities: np.ndarray) -> Optional[str]:
        labels = list(getattr(self.embedder, "labels", []) or [])
        return labels[int(np.argmax(probabilities))] if labels and len(probabilities) else None

    # ------------------------------------------------------------------------------------------- writes
    def _check_path(self, path: str, what: str = "video_path") -> str:
        if not path or not isinstance(path, str):
            raise CatalogError(f"{what} is empty")
        real = os.path.realpath(path)
        roots = [os.path.realpath(r) for r in self.config.allowed_roots]
        if roots and not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
            raise CatalogError(f"{what} {path!r} is outside the folders this server may read", status=403)
        if not os.path.exists(real):
            raise CatalogError(f"{what} {path!r} not found", status=404 if what == "source" else 400)
        return real

    def _text_vectors(self, items: Sequence[Item]) -> None:
        """Set the text embedding (of title + brief) of ``items`` that lack one, in one call."""
        todo = [i for i in items if i.text_embedding is None]
        if self.text_encoder is not None and todo:
            vectors = normalise(self.text_encoder.encode([f"{i.title}. {i.brief}" for i in todo]))
            for item, vector in zip(todo, vectors):
                item.text_embedding = vector

    def _insert(self, item: Item) -> None:
        self._text_vectors([item])
        with self._write_lock:
            try:
                self.store.add(item)
            except DuplicateItemError as exc:
                raise Conflict(str(exc)) from None
            self.index.add(item.video_id, item.label, item.embedding)
            if item.text_embedding is not None:
                self.text_index.add(item.video_id, item.label, item.text_embedding)

    def _make_item(self, video_id: str, title: str, brief: str, label: Optional[str], video_path: str,
                   decoded: DecodedItem, embedding: np.ndarray, probabilities: np.ndarray) -> Tuple[Item, str]:
        source = "given" if label else "predicted"
        label = label or self._predicted_label(probabilities)
        return Item(video_id, title, brief, label, decoded.duration_s, video_path, decoded.thumbnail,
                    embedding), source

    def _fields(self, video_id, title, brief, label) -> Tuple[str, str, str, Optional[str]]:
        video_id = check_id(video_id)
        title = _text(title, "title", MAX_TITLE)
        brief = _text(brief, "brief", MAX_BRIEF) or title
        label = _text(label, "label", MAX_LABEL).strip() or None
        if self.store.exists([video_id]):
            raise Conflict(f"video_id {video_id!r} already in the catalog")
        return video_id, title, brief, label

    def index_path(self, video_id: str, video_path: str, title: str = "", brief: str = "",
                   label: Optional[str] = None, cover_path: Optional[str] = None) -> Dict[str, object]:
        """Index a clip the server can read at ``video_path``; searchable when this returns."""
        start = time.perf_counter()
        video_id, title, brief, label = self._fields(video_id, title, brief, label)
        path = self._check_path(video_path)
        cover = self._check_path(cover_path, "cover_path") if cover_path else None
        decoded = self._decode(path, brief, cover_path=cover)
        embeddings, probabilities = self._analyse([decoded.clip])
        item, source = self._make_item(video_id, title, brief, label, path, decoded, embeddings[0], probabilities[0])
        self._insert(item)
        return {**item.summary(), "label_source": source, "total_in_index": len(self.index),
                "seconds": round(time.perf_counter() - start, 4)}

    def index_upload(self, video_id: str, upload_path: str, filename: str, title: str = "", brief: str = "",
                     label: Optional[str] = None, cover: Optional[bytes] = None) -> Dict[str, object]:
        """Index an uploaded clip (already saved at ``upload_path``, which this takes over)."""
        start = time.perf_counter()
        try:
            video_id, title, brief, label = self._fields(video_id, title, brief, label)
            decoded = self._decode(upload_path, brief, cover=cover or None, name=filename)
            embeddings, probabilities = self._analyse([decoded.clip])
            target = os.path.join(self.config.media_dir, f"{video_id}.mp4")
            item, source = self._make_item(video_id, title, brief, label, os.path.abspath(target), decoded,
                                           embeddings[0], probabilities[0])
            self._text_vectors([item])
            with self._write_lock:
                if self.store.exists([video_id]):
                    raise Conflict(f"video_id {video_id!r} already in the catalog")
                os.replace(upload_path, target)
                try:
                    self._insert(item)
                except BaseException:
                    os.unlink(target)
                    raise
        finally:
            if os.path.exists(upload_path):
                os.unlink(upload_path)
        return {**item.summary(), "label_source": source, "total_in_index": len(self.index),
                "seconds": round(time.perf_counter() - start, 4)}

    def delete(self, video_id: str) -> Dict[str, object]:
        video_id = check_id(video_id)
        with self._write_lock:
            item = self.store.delete(video_id)
            if item is None:
                raise NotFound(f"video_id {video_id!r} is not in the catalog")
            self.index.remove(video_id)
            self.text_index.remove(video_id)
        media = os.path.realpath(self.config.media_dir)
        if item.video_path and os.path.dirname(os.path.realpath(item.video_path)) == media:
            try:
                os.unlink(item.video_path)
            except FileNotFoundError:
                pass
        return {"deleted": video_id, "total_in_index": len(self.index)}

    def bulk(self, source: str, max_videos: Optional[int] = None) -> Dict[str, object]:
        """Index every new item of a folder, info file or MicroLens items file (see :mod:`sources`)."""
        embedder = self._require_embedder()
        path = self._check_path(source, "source")
        try:
            items = iter_source(path)
        except ValueError as exc:
            raise CatalogError(str(exc)) from None
        indexed = skipped = failed = 0
        errors: List[str] = []
        batch: List[Tuple[SourceItem, DecodedItem]] = []

        def flush() -> None:
            nonlocal indexed, skipped
            if not batch:
                return
            embeddings, probabilities = self._analyse([d.clip for _, d in batch])
            items = [self._make_item(s.video_id, s.title, s.brief, s.label, s.video_path, decoded, vector, probs)[0]
                     for (s, decoded), vector, probs in zip(batch, embeddings, probabilities)]
            self._text_vectors(items)
            for item in items:
                try:
                    self._insert(item)
                    indexed += 1
                except Conflict:
                    skipped += 1
            batch.clear()

        seen = 0
        for source_item in items:
            if max_videos is not None and seen >= max_videos:
                break
            seen += 1
            try:
                check_id(source_item.video_id)
            except CatalogError as exc:
                failed += 1
                errors.append(str(exc))
                continue
            if self.store.exists([source_item.video_id]):
                skipped += 1
                continue
            if source_item.video_path is None:
                failed += 1
                errors.append(f"{source_item.video_id}: no local clip")
                continue
            try:
                decoded = decode_item(source_item.video_path, source_item.brief, embedder.num_frames,
                                      embedder.image_size, cover_path=source_item.cover_path)
            except DecodeError as exc:
                try:  # a bad cover should not lose the clip
                    decoded = decode_item(source_item.video_path, source_item.brief, embedder.num_frames,
                                          embedder.image_size)
                except DecodeError:
                    failed += 1
                    errors.append(f"{source_item.video_id}: {exc}")
                    continue
            batch.append((source_item, decoded))
            if len(batch) >= self.config.bulk_batch:
                flush()
        flush()
        total = len(self.index)
        return {"indexed": indexed, "skipped": skipped, "failed": failed, "errors": errors[:20],
                "total_in_index": total,
                "message": f"Indexed {indexed} videos, skipped {skipped} (already in the catalog), failed {failed}"}

    # -------------------------------------------------------------------------------------------- reads
    def item(self, video_id: str, with_thumbnail: bool = False) -> Item:
        item = self.store.get(check_id(video_id), with_thumbnail=with_thumbnail)
        if item is None:
            raise NotFound(f"video_id {video_id!r} is not in the catalog")
        return item

    def list(self, offset: int = 0, limit: int = 50, label: Optional[str] = None) -> Dict[str, object]:
        total, items = self.store.list(offset, limit, label)
        return {"total": total, "offset": offset, "limit": limit, "label": label,
                "items": [i.summary() for i in items]}

    def _check_paging(self, top_k: int, offset: int) -> None:
        if top_k < 1 or offset < 0:
            raise CatalogError("top_k must be at least 1 and offset at least 0")
        if top_k + offset > self.config.max_top_k:
            raise CatalogError(f"top_k + offset must be at most {self.config.max_top_k}")

    def _results(self, query: np.ndarray, top_k: int, offset: int, exclude: Sequence[str],
                 labels: Optional[Sequence[str]], also: Sequence[str] = ()) -> Tuple[List[Dict[str, object]],
                                                                                     Dict[str, Item]]:
        """The page ``[offset, offset + top_k)`` of the results, and the items of ``also`` (one store read)."""
        want = top_k + offset
        found = self.index.search(query, want + 8, exclude=exclude, labels=labels)
        items = self.store.get_many([i for i, _ in found] + list(also))
        rows = [{"video_id": i, "score": round(s, 6), "title": items[i].title, "label": items[i].label,
                 "duration_s": round(items[i].duration_s, 2)} for i, s in found if i in items]  # deleted meanwhile
        return rows[offset:want], items

    def recommend(self, video_id: Optional[str] = None, history: Optional[Sequence[str]] = None, top_k: int = 10,
                  offset: int = 0, labels: Optional[Sequence[str]] = None) -> Dict[str, object]:
        """Items like one item (``video_id``) or like a viewing history (mean of its items' embeddings)."""
        self._check_paging(top_k, offset)
        if (video_id is None) == (not history):
            raise CatalogError("give exactly one of video_id or history")
        ids = [check_id(video_id)] if video_id is not None else [check_id(i) for i in history]
        vectors = [self.index.vector(i) for i in ids]
        unknown = [i for i, v in zip(ids, vectors) if v is None]
        if unknown:
            raise NotFound(f"video_id {unknown[0]!r} is not in the catalog" if len(unknown) == 1 else
                           f"video_ids not in the catalog: {unknown}")
        query = np.mean(np.stack(vectors), axis=0)
        results, items = self._results(query, top_k, offset, ids, labels, also=ids[:1] if video_id else ())
        response: Dict[str, object] = {"top_k": top_k, "offset": offset, "recommendations": results}
        if video_id is not None:
            item = items.get(ids[0])
            response.update(query_video_id=ids[0], query_title=item.title if item else "")
        else:
            response.update(query_history=ids)
        return response

    def _analyse_upload(self, upload_path: str, filename: str, brief: str) -> Tuple[np.ndarray, np.ndarray]:
        digest = hashlib.sha256()
        with open(upload_path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(brief.encode("utf-8"))
        key = digest.hexdigest()
        with self._cache_lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        decoded = self._decode(upload_path, brief, name=filename)
        return self._analyse_cached(key, decoded.clip)

    def recommend_upload(self, upload_path: str, filename: str, brief: str = "", top_k: int = 10,
                         offset: int = 0, labels: Optional[Sequence[str]] = None) -> Dict[str, object]:
        """Cold start: items like a clip that is not in the catalog (embedded on the fly)."""
        self._check_paging(top_k, offset)
        embedding, _ = self._analyse_upload(upload_path, filename, _text(brief, "brief", MAX_BRIEF))
        return {"query_file": filename, "top_k": top_k, "offset": offset,
                "recommendations": self._results(embedding, top_k, offset, (), labels)[0]}

    def classify_upload(self, upload_path: str, filename: str, brief: str = "", top: int = 5) -> Dict[str, object]:
        """The classifier's label probabilities for a clip, best first (``top`` of them)."""
        _, probabilities = self._analyse_upload(upload_path, filename, _text(brief, "brief", MAX_BRIEF))
        labels = list(self._require_embedder().labels)
        order = np.argsort(-probabilities)[:max(1, top)]
        return {"query_file": filename, "label": labels[int(order[0])],
                "probabilities": [{"label": labels[int(n)], "probability": round(float(probabilities[n]), 6)}
                                  for n in order]}

    def search(self, query: str, top_k: int = 20, label: Optional[str] = None) -> Dict[str, object]:
        """Text search over titles and briefs: by text embedding (cosine) when a text encoder is loaded, else
        items ranked by how many query words they contain."""
        terms = [t for t in re.findall(r"\w+", _text(query, "q", 500).lower()) if len(t) > 1][:20]
        if not terms:
            raise CatalogError("q has no words to search for")
        if self.text_encoder is not None:
            vector = normalise(self.text_encoder.encode([query]))[0]
            found = self.text_index.search(vector, top_k + 8, labels=[label] if label is not None else None)
            items = self.store.get_many([i for i, _ in found])
            results = [{**items[i].summary(), "score": round(s, 4)} for i, s in found if i in items][:top_k]
            return {"query": query, "mode": "embeddings", "results": results}
        found = self.store.search_text(terms, limit=max(200, top_k * 10))
        if label is not None:
            found = [i for i in found if i.label == label]

        def score(item: Item) -> float:
            words = set(re.findall(r"\w+", f"{item.title} {item.brief}".lower()))
            return sum(1.0 for t in terms if t in words) + 0.1 * sum(1 for t in terms if t not in words)

        ranked = sorted(found, key=lambda i: -score(i))[:top_k]
        return {"query": query, "mode": "keyword",
                "results": [{**i.summary(), "score": round(score(i), 3)} for i in ranked]}


def save_upload(stream, media_dir: str, max_bytes: int, filename: str) -> str:
    """Copy an uploaded file object to a temporary file in ``media_dir``; refuse more than ``max_bytes``."""
    os.makedirs(media_dir, exist_ok=True)
    handle, path = tempfile.mkstemp(prefix=".upload-", suffix=".mp4", dir=media_dir)
    total = 0
    try:
        with os.fdopen(handle, "wb") as out:
            while True:
                block = stream.read(1 << 20)
                if not block:
                    break
                total += len(block)
                if total > max_bytes:
                    raise TooLarge(f"upload {filename!r} is larger than {max_bytes} bytes")
                out.write(block)
        if total == 0:
            raise CatalogError(f"upload {filename!r} is empty")
    except BaseException:
        os.unlink(path)
        raise
    return path

