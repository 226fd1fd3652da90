"""The catalog's storage through SQLAlchemy: items' metadata, cover thumbnails and embeddings.

One table, ``catalog_items``; an embedding is stored as little-endian float32 bytes (no database extension
needed, so the same schema runs on SQLite and PostgreSQL). SQLite is opened in WAL mode (readers never block
the writer) with a busy timeout; PostgreSQL through any SQLAlchemy URL (``postgresql+psycopg://...``).

Every write is one transaction: an item is stored whole or not at all.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from sqlalchemy import (Float, Integer, LargeBinary, String, Text, create_engine, delete, event, func, or_,
                        select, update)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

logger = logging.getLogger(__name__)


class DuplicateItemError(ValueError):
    """An id that is already in the catalog."""


class StoreError(ValueError):
    """A store that cannot be opened (bad URL, unreachable server, unwritable file)."""


class Base(DeclarativeBase):
    pass


class ItemRow(Base):
    __tablename__ = "catalog_items"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    video_id: Mapped[str] = mapped_column(String(128), unique=True, index=True, nullable=False)
    title: Mapped[str] = mapped_column(Text, default="")
    brief: Mapped[str] = mapped_column(Text, default="")
    label: Mapped[Optional[str]] = mapped_column(String(64), index=True, nullable=True)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    video_path: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    thumbnail: Mapped[Optional[bytes]] = mapped_column(LargeBinary, nullable=True)
    embedding: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    text_embedding: Mapped[Optional[bytes]] = mapped_column(LargeBinary, nullable=True)  # of title + brief
    created_at: Mapped[float] = mapped_column(Float, nullable=False)


@dataclasses.dataclass
class Item:
    """One catalog item (``embedding`` float32 ``[D]``, L2-normalised by the service)."""

    video_id: str
    title: str = ""
    brief: str = ""
    label: Optional[str] = None
    duration_s: float = 0.0
    video_path: Optional[str] = None
    thumbnail: Optional[bytes] = None
    embedding: Optional[np.ndarray] = None
    text_embedding: Optional[np.ndarray] = None

    def summary(self) -> Dict[str, object]:
        """The JSON fields of an item (no thumbnail, no embedding)."""
        return {"video_id": self.video_id, "title": self.title, "brief": self.brief, "label": self.label,
                "duration_s": round(float(self.duration_s), 2), "has_video": bool(self.video_path)}


def _to_item(row: ItemRow, with_embedding: bool = False, with_thumbnail: bool = False) -> Item:
    return Item(row.video_id, row.title or "", row.brief or "", row.label, row.duration_s or 0.0, row.video_path,
                row.thumbnail if with_thumbnail else None,
                np.frombuffer(row.embedding, dtype="<f4").copy() if with_embedding else None)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get WAL mode, a busy timeout and cross-thread connections."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)


class CatalogStore:
    """Items in a database. Thread-safe: each call uses its own session."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        try:
            Base.metadata.create_all(self.engine)
        except OperationalError as exc:
            self.engine.dispose()
            safe = make_url(url).render_as_string(hide_password=True)
            raise StoreError(f"cannot open the catalog store {safe}: {exc.orig}") from None
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def kind(self) -> str:
        """``sqlite`` or ``postgresql`` (or another SQLAlchemy backend name)."""
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------------------------------ writes
    def add(self, item: Item) -> None:
        """Insert one item; raise :class:`DuplicateItemError` if its id exists."""
        self.add_many([item])

    def add_many(self, items: Sequence[Item]) -> None:
        """Insert items in one transaction (all or none); a duplicate id raises :class:`DuplicateItemError`."""
        now = dt.datetime.now(dt.timezone.utc).timestamp()
        rows = [ItemRow(video_id=i.video_id, title=i.title, brief=i.brief, label=i.label, duration_s=i.duration_s,
                        video_path=i.video_path, thumbnail=i.thumbnail, created_at=now,
                        embedding=np.asarray(i.embedding, dtype="<f4").tobytes(),
                        text_embedding=None if i.text_embedding is None else
                        np.asarray(i.text_embedding, dtype="<f4").tobytes()) for i in items]
        try:
            with self._session.begin() as session:
                session.add_all(rows)
        except IntegrityError:
            ids = [i.video_id for i in items]
            raise DuplicateItemError(f"video_id {ids[0] if len(ids) == 1 else ids} already in the catalog") from None

    def delete(self, video_id: str) -> Optional[Item]:
        """Delete one item; return it (without embedding), or None if it was not there."""
        with self._session.begin() as session:
            row = session.scalar(select(ItemRow).where(ItemRow.video_id == video_id))
            if row is None:
                return None
            item = _to_item(row)
            session.execute(delete(ItemRow).where(ItemRow.video_id == video_id))
        return item

    def set_text_embeddings(self, vectors: Dict[str, np.ndarray]) -> None:
        """Store text embeddings of existing items (one transaction; ids no longer there are ignored)."""
        with self._session.begin() as session:
            for video_id, vector in vectors.items():
                session.execute(update(ItemRow).where(ItemRow.video_id == video_id).values(
                    text_embedding=np.asarray(vector, dtype="<f4").tobytes()))

    def ids_without_text_embedding(self) -> List[str]:
        with self._session() as session:
            return list(session.scalars(select(ItemRow.video_id).where(ItemRow.text_embedding.is_(None))
                                        .order_by(ItemRow.seq)))

    # ------------------------------------------------------------------------------------------- reads
    def get(self, video_id: str, with_embedding: bool = False, with_thumbnail: bool = False) -> Optional[Item]:
        with self._session() as session:
            row = session.scalar(select(ItemRow).where(ItemRow.video_id == video_id))
            return None if row is None else _to_item(row, with_embedding, with_thumbnail)

    def get_many(self, video_ids: Sequence[str]) -> Dict[str, Item]:
        """``{id: item}`` (without embeddings) for the ids that exist."""
        found: Dict[str, Item] = {}
        ids = list(dict.fromkeys(video_ids))
        with self._session() as session:
            for start in range(0, len(ids), 500):
                for row in session.scalars(select(ItemRow).where(ItemRow.video_id.in_(ids[start:start + 500]))):
                    found[row.video_id] = _to_item(row)
        return found

    def exists(self, video_ids: Sequence[str]) -> set:
        """The subset of ``video_ids`` already in the catalog."""
        found = set()
        ids = list(dict.fromkeys(video_ids))
        with self._session() as session:
            for start in range(0, len(ids), 500):
                found.update(session.scalars(select(ItemRow.video_id).where(
                    ItemRow.video_id.in_(ids[start:start + 500]))))
        return found

    def count(self, label: Optional[str] = None) -> int:
        with self._session() as session:
            query = select(func.count()).select_from(ItemRow)
            if label is not None:
                query = query.where(ItemRow.label == label)
            return int(session.scalar(query) or 0)

    def list(self, offset: int = 0, limit: int = 50, label: Optional[str] = None) -> Tuple[int, List[Item]]:
        """``(total, items)``: a page of items, oldest first, optionally of one label."""
        with self._session() as session:
            query = select(ItemRow)
            if label is not None:
                query = query.where(ItemRow.label == label)
            rows = session.scalars(query.order_by(ItemRow.seq).offset(offset).limit(limit)).all()
            return self.count(label), [_to_item(r) for r in rows]

    def label_counts(self) -> Dict[str, int]:
        with self._session() as session:
            rows = session.execute(select(ItemRow.label, func.count()).group_by(ItemRow.label)).all()
        return {str(label): int(n) for label, n in rows if label is not None}

    def search_text(self, terms: Sequence[str], limit: int = 200) -> List[Item]:
        """Items whose title or brief contains any of ``terms`` (case-insensitive), up to ``limit``."""
        if not terms:
            return []
        with self._session() as session:
            conditions = [or_(func.lower(ItemRow.title).contains(t.lower(), autoescape=True),
                              func.lower(ItemRow.brief).contains(t.lower(), autoescape=True)) for t in terms]
            rows = session.scalars(select(ItemRow).where(or_(*conditions)).order_by(ItemRow.seq).limit(limit)).all()
            return [_to_item(r) for r in rows]

    def iter_embeddings(self, batch: int = 5000, text: bool = False
                        ) -> Iterator[Tuple[List[str], List[Optional[str]], np.ndarray]]:
        """Every item's ``(ids, labels, embeddings [n, D])`` in batches, in insertion order (``text``: the
        text embeddings instead, of the items that have one)."""
        column = ItemRow.text_embedding if text else ItemRow.embedding
        last = 0
        while True:
            with self._session() as session:
                rows = session.execute(select(ItemRow.seq, ItemRow.video_id, ItemRow.label, column)
                                       .where(ItemRow.seq > last).order_by(ItemRow.seq).limit(batch)).all()
            if not rows:
                return
            last = rows[-1][0]
            rows = [r for r in rows if r[3] is not None]
            if not rows:
                continue
            yield ([r[1] for r in rows], [r[2] for r in rows],
                   np.stack([np.frombuffer(r[3], dtype="<f4") for r in rows]))

    def all_embeddings(self, text: bool = False) -> Tuple[List[str], List[Optional[str]], np.ndarray]:
        """``(ids, labels, embeddings float32 [N, D])`` of the whole catalog (``text``: text embeddings)."""
        ids: List[str] = []
        labels: List[Optional[str]] = []
        parts = []
        for batch_ids, batch_labels, vectors in self.iter_embeddings(text=text):
            ids += batch_ids
            labels += batch_labels
            parts.append(vectors)
        return ids, labels, (np.concatenate(parts) if parts else np.zeros((0, 0), np.float32))
