"""Fine-tune only the top blocks of the pretrained encoders inside a model (everything else stays frozen).

Blocks: MobileNetV2's torchvision blocks ``features.0`` .. ``features.18`` (plus the ImageNet ``logits``
layer when present); a keras-hub transformer backbone's ``transformer_layers`` (embeddings below them are
one more block at the bottom). BatchNormalization layers always stay frozen (inference statistics), the
usual practice when fine-tuning with small batches.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import keras

from .mobilenet_v2 import block_index

Blocks = List[List[keras.layers.Layer]]


def _sublayers(model: keras.layers.Layer) -> List[keras.layers.Layer]:
    return list(model._flatten_layers(include_self=True, recursive=True))


def _is_transformer_backbone(layer: keras.layers.Layer) -> bool:
    return hasattr(layer, "transformer_layers") and isinstance(layer, keras.Model)


def _is_mobilenet(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.Model) and any(sub.name == "features_0_conv" for sub in layer.layers)


def _find_encoders(model: keras.layers.Layer) -> List[Tuple[keras.layers.Layer, Blocks]]:
    found: List[Tuple[keras.layers.Layer, Blocks]] = []
    for layer in _sublayers(model):
        if _is_transformer_backbone(layer):
            stack = list(layer.transformer_layers)
            in_stack = {id(sub) for block in stack for sub in _sublayers(block)}
            embeddings = [sub for sub in layer.layers if id(sub) not in in_stack and sub.weights
                          and "pooled" not in sub.name]
            found.append((layer, [embeddings] + [[block] for block in stack]))
        elif _is_mobilenet(layer):
            groups: Dict[int, List[keras.layers.Layer]] = {}
            for sub in layer.layers:
                index = block_index(sub.name)
                if index is not None:
                    groups.setdefault(index, []).append(sub)
            head = [sub for sub in layer.layers if sub.name == "logits"]
            found.append((layer, [groups[i] for i in sorted(groups)] + ([head] if head else [])))
    return found


def encoder_blocks(model: keras.layers.Layer) -> Dict[str, Blocks]:
    """``{encoder name: [block, ...]}`` bottom to top, each block a list of layers, for every encoder inside."""
    return {encoder.name: blocks for encoder, blocks in _find_encoders(model)}


def freeze_top_layers(model: keras.layers.Layer, trainable_top_n: int) -> Dict[str, int]:
    """Freeze every encoder in ``model`` except its top ``trainable_top_n`` blocks; returns blocks unfrozen.

    ``trainable_top_n=0`` freezes the encoders entirely. Layers outside the encoders are left as they are,
    except that the layers enclosing an encoder are marked trainable themselves (not their other children)
    when ``trainable_top_n > 0``: Keras only collects trainable weights through trainable parents.
    Call before ``compile``; setting ``trainable`` on an enclosing layer afterwards overrides this.
    Raises ``ValueError`` if ``model`` contains no encoder.
    """
    if trainable_top_n < 0:
        raise ValueError(f"trainable_top_n must be >= 0, got {trainable_top_n}")
    encoders = _find_encoders(model)
    if not encoders:
        raise ValueError(f"{model.name} contains no MobileNetV2 or transformer encoder")
    if trainable_top_n > 0:
        for layer in _sublayers(model):
            if any(_contains(layer, encoder) for encoder, _ in encoders):
                layer._trainable = True
    summary = {}
    for encoder, blocks in encoders:
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
        summary[encoder.name] = len(top)
    return summary


def _contains(outer: keras.layers.Layer, inner: keras.layers.Layer) -> bool:
    return outer is not inner and any(sub is inner for sub in _sublayers(outer))
