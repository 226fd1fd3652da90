"""Keras 3 multimodal classifiers for the 31 categories: the seed's baseline and a pretrained-encoder model."""
