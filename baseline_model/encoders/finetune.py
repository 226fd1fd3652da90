"""Fine-tune only the top blocks of the pretrained encoders inside a model (everything else stays frozen).

Blocks: MobileNetV2's torchvision blocks ``features.0`` .. ``features.18`` (plus the ImageNet ``logits``
layer when present); a keras-hub transformer backbone's ``transformer_layers`` (embeddings below them are
one more block at the bottom). BatchNormalization layers always stay frozen (inference statistics), the
usual practice when fine-tuning with small batches.
"""
from __future__ import annotations

from typing import Dict, List

import keras

from .mobilenet_v2 import block_index


def _sublayers(model: keras.layers.Layer) -> List[keras.layers.Layer]:
    return list(model._flatten_layers(include_self=True, recursive=True))


def _is_transformer_backbone(layer: keras.layers.Layer) -> bool:
    return hasattr(layer, "transformer_layers") and isinstance(layer, keras.Model)


def _is_mobilenet(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.Model) and any(sub.name == "features_0_conv" for sub in layer.layers)


def encoder_blocks(model: keras.layers.Layer) -> Dict[str, List[List[keras.layers.Layer]]]:
    """``{encoder name: [block, ...]}`` bottom to top, each block a list of layers, for every encoder inside."""
    found: Dict[str, List[List[keras.layers.Layer]]] = {}
    for layer in _sublayers(model):
        if _is_transformer_backbone(layer):
            stack = list(layer.transformer_layers)
            in_stack = {id(sub) for block in stack for sub in _sublayers(block)}
            embeddings = [sub for sub in layer.layers if id(sub) not in in_stack and sub.weights
                          and "pooled" not in sub.name]
            found[layer.name] = [embeddings] + [[block] for block in stack]
        elif _is_mobilenet(layer) and layer.name not in found:
            groups: Dict[int, List[keras.layers.Layer]] = {}
            for sub in layer.layers:
                index = block_index(sub.name)
                if index is not None:
                    groups.setdefault(index, []).append(sub)
            blocks = [groups[i] for i in sorted(groups)]
            head = [sub for sub in layer.layers if sub.name == "logits"]
            found[layer.name] = blocks + ([head] if head else [])
    return found


def freeze_top_layers(model: keras.layers.Layer, trainable_top_n: int) -> Dict[str, int]:
    """Freeze every encoder in ``model`` except its top ``trainable_top_n`` blocks; returns blocks unfrozen.

    ``trainable_top_n=0`` freezes the encoders entirely. Layers outside the encoders are left as they are.
    Call before ``compile``; setting ``trainable`` on an enclosing layer afterwards overrides this.
    Raises ``ValueError`` if ``model`` contains no encoder.
    """
    if trainable_top_n < 0:
        raise ValueError(f"trainable_top_n must be >= 0, got {trainable_top_n}")
    encoders = encoder_blocks(model)
    if not encoders:
        raise ValueError(f"{model.name} contains no MobileNetV2 or transformer encoder")
    by_name = {layer.name: layer for layer in _sublayers(model)}
    # Enclosing layers (a text-encoder wrapper, the MobileNet model) must be trainable for their children
    # to be: Keras only collects trainable weights through trainable parents.
    for layer in _sublayers(model):
        if any(e in by_name and _contains(layer, by_name[e]) for e in encoders) and trainable_top_n > 0:
            layer._trainable = True
    summary = {}
    for name, blocks in encoders.items():
        encoder = by_name[name]
        encoder.trainable = False
        top = blocks[len(blocks) - trainable_top_n:] if trainable_top_n else []
        if top:
            encoder._trainable = True  # itself only; children stay frozen unless in ``top``
            for block in top:
                for layer in block:
                    layer.trainable = True
                    for sub in _sublayers(layer):
                        if isinstance(sub, keras.layers.BatchNormalization):
                            sub.trainable = False
        summary[name] = len(top)
    return summary


def _contains(outer: keras.layers.Layer, inner: keras.layers.Layer) -> bool:
    return outer is not inner and any(sub is inner for sub in _sublayers(outer))
