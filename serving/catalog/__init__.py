"""A live video catalog: index clips as they arrive, recommend similar ones at once, browse them on a page.

Modules, one job each:

* :mod:`serving.catalog.config`   ``CatalogConfig``, the service's settings;
* :mod:`serving.catalog.embedder` the one adapter to the classifier (embeddings + label probabilities);
* :mod:`serving.catalog.media`    clips and covers -> the embedder's inputs;
* :mod:`serving.catalog.store`    SQLAlchemy storage (SQLite WAL by default, PostgreSQL by URL);
* :mod:`serving.catalog.index`    the live nearest-neighbour index (ScaNN or brute force + interim search);
* :mod:`serving.catalog.sources`  bulk sources: a dataset folder, an info file, a MicroLens items file;
* :mod:`serving.catalog.service`  the operations (index, delete, recommend, classify, search, export);
* :mod:`serving.catalog.app`      the FastAPI app; :mod:`serving.catalog.page` its web page;
* :mod:`serving.catalog.export`   a TF Serving recommender version from the current catalog;
* :mod:`serving.catalog.cli`      ``xinpianchang serving catalog`` and ``catalog-export``.

Nothing here imports TensorFlow at import time.
"""
