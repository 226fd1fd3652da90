"""The catalog service's settings, in one dataclass that the command line fills."""
from __future__ import annotations

import dataclasses
from typing import Tuple

#: The default store: an SQLite file in the working directory (WAL mode; no server needed).
DEFAULT_STORE = "sqlite:///catalog.sqlite"
#: Where uploaded clips are kept (relative to the working directory).
DEFAULT_MEDIA_DIR = "catalog_media"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


@dataclasses.dataclass
class CatalogConfig:
    """Settings of one catalog service.

    Attributes:
      store: SQLAlchemy URL (``sqlite:///file.sqlite``, ``postgresql+psycopg://user@host:port/db``).
      media_dir: folder for uploaded clips (served back to the page).
      max_upload_bytes: the largest accepted upload (413 above).
      max_top_k: the largest ``top_k`` + ``offset`` of one recommendation request.
      ann_min_size: below this many items the main index is exact brute force, above it ScaNN.
      rebuild_min_changes, rebuild_fraction: the main index is rebuilt in the background once the items
        added or deleted since the last build reach ``max(rebuild_min_changes, rebuild_fraction * size)``.
      allowed_roots: server-side paths given to ``POST /index`` and bulk indexing must lie under one of these
        folders (empty = any path the server can read).
      bulk_batch: clips embedded per classifier call in bulk indexing.
    """

    store: str = DEFAULT_STORE
    media_dir: str = DEFAULT_MEDIA_DIR
    max_upload_bytes: int = 64 << 20
    max_top_k: int = 1000
    ann_min_size: int = 20_000
    rebuild_min_changes: int = 1_000
    rebuild_fraction: float = 0.05
    allowed_roots: Tuple[str, ...] = ()
    bulk_batch: int = 16
