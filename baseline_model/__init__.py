"""Keras 3 multimodal video classifiers: the seed's baseline and a pretrained-encoder model."""
import data_interface_for_model  # noqa: F401  (the project's one Keras 2/3 switch: see that package)
