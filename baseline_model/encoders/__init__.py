"""Offline pretrained encoders (Keras 3): torchvision's ImageNet MobileNetV2 and a keras-hub BERT text encoder.

- ``build_image_encoder(weights="offline"|"imagenet"|None, input_size=224, include_top=False, pooling="avg")``:
  float32 RGB in [0, 1] ``[batch, H, W, 3]`` -> ``[batch, 1280]`` (or 1000 ImageNet logits with include_top).
- ``build_text_encoder(preset="offline-minilm", sequence_length=32, trainable=False)``: tf.string ``[batch]``
  -> mean-pooled float32 ``[batch, 384]`` (tokenizer inside, so exported SavedModels take raw strings).
- ``freeze_top_layers(model, trainable_top_n)``: fine-tune only the top blocks of every encoder in a model.
"""
from .finetune import encoder_blocks, freeze_top_layers
from .mobilenet_v2 import build_image_encoder, convert_offline_weights, offline_weights_path
from .offline_files import OfflineWeightsMissing
from .text_encoder import MeanPooledTextEncoder, build_text_encoder, resolve_text_preset
from .weights_cache import CACHE_ENV, cache_dir

__all__ = [
    "CACHE_ENV", "MeanPooledTextEncoder", "OfflineWeightsMissing", "build_image_encoder", "build_text_encoder", "cache_dir",
    "convert_offline_weights", "encoder_blocks", "freeze_top_layers", "offline_weights_path",
    "resolve_text_preset",
]
