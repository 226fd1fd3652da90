"""Views of a built model that share its layers."""
from __future__ import annotations

import keras


def embedding_submodel(model: keras.Model) -> keras.Model:
    """The model from the same inputs to its layer named ``embedding`` (the penultimate embedding)."""
    return keras.Model(model.inputs, model.get_layer("embedding").output, name=f"{model.name}_embedder")
