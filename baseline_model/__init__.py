"""Keras 3 multimodal classifiers for the 31 categories: the seed's baseline and a pretrained-encoder model."""

import data_interface_for_model as _data  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
