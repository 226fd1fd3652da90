"""Choices and defaults of the recommender, defined once; the command line and the config dataclasses read
them from here (no TensorFlow import, so ``--help`` stays light)."""
from __future__ import annotations

#: Query tower kinds (see :mod:`retrieval.towers`).
QUERY_TOWERS = ("bag", "gru", "sasrec")
#: The default query tower, chosen by measurement (docs/recommender.md, "Measured").
QUERY_TOWER = "bag"
#: How repeated user-item pairs are read (see :mod:`retrieval.interactions`).
REPEATS = ("keep", "first", "last")
#: The default for reading a user's log: keep the first interaction with each item.
REPEAT = "first"
#: Training objectives (see :class:`retrieval.train.TrainConfig`).
OBJECTIVES = ("every_position", "last_item")
#: The default objective, chosen by measurement (docs/recommender.md, "Measured").
OBJECTIVE = "every_position"
#: Catalog content: the titles' words are tokens too (see :func:`retrieval.catalog.catalog_features`).
TITLE_TOKENS = True
#: Catalog content: each title's MiniLM sentence embedding too (see :func:`retrieval.catalog.title_embeddings`);
#: an option, not the default: docs/recommender.md, "Title embeddings", says why.
TITLE_EMBEDDINGS = False
#: Catalog content: every column (the title's words one column) counts equally (see catalog_features).
BALANCE_COLUMNS = False
#: Training-time share of item ids replaced by the out-of-vocabulary vector (see retrieval.towers.TowerConfig).
ID_DROPOUT = 0.1
#: Id dropout applies to the query's history too, not only to the candidates (see retrieval.towers.TowerConfig).
ID_DROPOUT_HISTORY = True
#: Weight of the loss that scores in-batch candidates as cold items (see retrieval.model.TaskConfig).
COLD_LOSS_WEIGHT = 0.0
#: The cold loss scores cold encodings against the warm ones too (see retrieval.model.TaskConfig).
COLD_LOSS_MIXED = False
#: The candidate's appended content is scaled by a learned weight (see retrieval.towers.TowerConfig).
CANDIDATE_SKIP_WEIGHT = False
#: The content MLP's last layer starts at zero (see retrieval.towers.TowerConfig).
ZERO_INIT_CONTENT = False
#: Items without a trained id get a content encoder of their own (see retrieval.towers.TowerConfig).
COLD_ENCODER = False
#: Warm candidates are encoded with their content too, not by their id alone (see retrieval.towers.TowerConfig).
WARM_CANDIDATE_CONTENT = True
#: A user-feature value held by fewer users is "unknown" (see retrieval.users.feature_codes).
USER_FEATURE_MIN_USERS = 5
