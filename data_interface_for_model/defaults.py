"""Defaults shared by more than one package, defined once: the command lines and the config dataclasses
read them from here.

Frames and picture size are fixed when a dataset is prepared (the shards hold pictures of that size) and
every model trained or served on those shards uses the same values.
"""
from __future__ import annotations

#: Frames sampled uniformly from each clip.
FRAMES = 8
#: Side in pixels of the square frames and cover stored in the prepared shards and fed to the models.
IMAGE_SIZE = 112
#: The split names, everywhere (files, flags, reports).
SPLITS = ("train", "validation", "test")
#: Fractions of train / validation / test in a prepared build.
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
#: Where things go when no flag says otherwise (relative to the working directory).
DATA_ROOT = "data/demo"
DATA_DIR = "data/tfds"
RUN = "runs/latest"
MODEL_BASE = "models"
