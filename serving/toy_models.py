"""Small SavedModels in TF Serving's layout, for tests and the benchmark (no training, seconds to build).

* :func:`build_toy_classifier`: the classifier contract on a few string ops (``brief``, ``cover``,
  ``frames`` -> ``probabilities``, ``label``, ``label_id``; ``embed``), plus a ``numeric`` multi-input
  signature (float32 + int32) and an ``echo`` signature with a ``_bytes`` output;
* :func:`build_toy_recommender`: the recommender contract (``history`` -> ``item_ids``, ``scores``;
  ``similar_items``) over a hashed item table;
* :func:`build_standin_classifier`: the classifier contract with the real work of one: JPEG decode of the
  cover and every frame, a 4-layer conv net per image, pooling over frames, a dense head (~0.1 GFLOP per
  image). The benchmark uses it until a real classifier export is given.

Each builder writes ``<model_base>/<name>/<version>/`` under a temporary name and renames it into place.
"""
from __future__ import annotations

import os
import shutil
from typing import Sequence

import numpy as np


def _save(module, signatures: dict, model_base: str, name: str, version: int) -> str:
    import tensorflow as tf

    target = os.path.join(model_base, name, str(version))
    tmp = os.path.join(model_base, name, f".{version}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tf.saved_model.save(module, tmp, signatures=signatures)
    os.replace(tmp, target)
    return target


def build_toy_classifier(model_base: str, version: int = 1, name: str = "toy_classifier",
                         labels: Sequence[str] = ("cat", "dog", "bird"), num_frames: int = 2) -> str:
    """Deterministic features = lengths of brief / cover / frames; weights depend on ``version``."""
    import tensorflow as tf

    n = len(labels)
    rng = np.random.default_rng(version)

    class ToyClassifier(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(rng.normal(size=(3, n)).astype("float32"))
            self.proj = tf.Variable(rng.normal(size=(3, 4)).astype("float32"))
            self.labels = tf.constant(list(labels))

        def features(self, brief, cover, frames):
            lengths = tf.stack([tf.strings.length(brief), tf.strings.length(cover),
                                tf.reduce_sum(tf.strings.length(frames), axis=1)], axis=1)
            return tf.math.log1p(tf.cast(lengths, tf.float32))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="brief"),
                                      tf.TensorSpec([None], tf.string, name="cover"),
                                      tf.TensorSpec([None, num_frames], tf.string, name="frames")])
        def classify(self, brief, cover, frames):
            logits = tf.matmul(self.features(brief, cover, frames), self.w)
            label_id = tf.argmax(logits, axis=1)
            return {"probabilities": tf.nn.softmax(logits), "label": tf.gather(self.labels, label_id),
                    "label_id": label_id}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="brief"),
                                      tf.TensorSpec([None], tf.string, name="cover"),
                                      tf.TensorSpec([None, num_frames], tf.string, name="frames")])
        def embed(self, brief, cover, frames):
            return {"embedding": tf.matmul(self.features(brief, cover, frames), self.proj)}

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x"),
                                      tf.TensorSpec([None], tf.int32, name="k")])
        def numeric(self, x, k):
            return {"y": tf.reduce_sum(x, axis=1) * tf.cast(k, tf.float32) + float(version)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="data")])
        def echo(self, data):
            return {"data_bytes": data, "length": tf.strings.length(data)}

    module = ToyClassifier()
    return _save(module, {"serving_default": module.classify, "embed": module.embed, "numeric": module.numeric,
                          "echo": module.echo}, model_base, name, version)


def build_toy_recommender(model_base: str, version: int = 1, name: str = "toy_recommender",
                          num_items: int = 50, dim: int = 8, k: int = 5) -> str:
    """Items ``item000``.. with random embeddings; a history scores by its mean embedding (padding "")."""
    import tensorflow as tf

    rng = np.random.default_rng(100 + version)
    ids = [f"item{i:03d}" for i in range(num_items)]

    class ToyRecommender(tf.Module):
        def __init__(self):
            super().__init__()
            self.ids = tf.constant(ids)
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(self.ids, tf.range(num_items, dtype=tf.int64)), default_value=-1)
            self.emb = tf.Variable(rng.normal(size=(num_items, dim)).astype("float32"))

        def _top(self, query):
            scores = tf.matmul(query, self.emb, transpose_b=True)
            top = tf.math.top_k(scores, k=k)
            return {"item_ids": tf.gather(self.ids, top.indices), "scores": top.values}

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="history")])
        def recommend(self, history):
            index = self.table.lookup(history)
            mask = tf.cast(index >= 0, tf.float32)[..., None]
            vectors = tf.gather(self.emb, tf.maximum(index, 0)) * mask
            query = tf.reduce_sum(vectors, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
            return self._top(query)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="item_id")])
        def similar_items(self, item_id):
            index = self.table.lookup(item_id)
            mask = tf.cast(index >= 0, tf.float32)[:, None]
            return self._top(tf.gather(self.emb, tf.maximum(index, 0)) * mask)

    module = ToyRecommender()
    return _save(module, {"serving_default": module.recommend, "similar_items": module.similar_items},
                 model_base, name, version)


def build_standin_classifier(model_base: str, version: int = 1, name: str = "classifier", num_frames: int = 8,
                             image_size: int = 112, num_classes: int = 31, embedding_dim: int = 256) -> str:
    """The classifier contract at a real classifier's cost (decode + conv net on cover and frames)."""
    import tensorflow as tf

    from data_interface_for_model.categories import LABELS

    rng = np.random.default_rng(version)
    channels = [3, 32, 64, 128, 256]
    labels = list(LABELS)[:num_classes]

    def decode(jpeg):
        def real():
            image = tf.io.decode_jpeg(jpeg, channels=3)
            return tf.image.resize(tf.cast(image, tf.float32) / 255.0, [image_size, image_size])
        return tf.cond(tf.strings.length(jpeg) > 0, real, lambda: tf.zeros([image_size, image_size, 3]))

    class StandIn(tf.Module):
        def __init__(self):
            super().__init__()
            self.kernels = [tf.Variable(rng.normal(0, (2.0 / (9 * a)) ** 0.5, size=(3, 3, a, b)).astype("float32"))
                            for a, b in zip(channels[:-1], channels[1:])]
            self.text = tf.Variable(rng.normal(0, 0.1, size=(1000, 64)).astype("float32"))
            self.proj = tf.Variable(rng.normal(0, 0.05, size=(2 * channels[-1] + 64, embedding_dim)).astype("float32"))
            self.head = tf.Variable(rng.normal(0, 0.05, size=(embedding_dim, num_classes)).astype("float32"))
            self.labels = tf.constant(labels)

        def conv(self, images):
            x = images
            for kernel in self.kernels:
                x = tf.nn.relu(tf.nn.conv2d(x, kernel, strides=2, padding="SAME"))
            return tf.reduce_mean(x, axis=[1, 2])

        def embedding(self, brief, cover, frames):
            batch = tf.shape(frames)[0]
            flat = tf.reshape(frames, [-1])
            images = tf.map_fn(decode, tf.concat([cover, flat], 0), fn_output_signature=tf.float32)
            pooled = self.conv(images)
            cover_vec = pooled[:batch]
            frame_vec = tf.reduce_mean(tf.reshape(pooled[batch:], [batch, -1, channels[-1]]), axis=1)
            words = tf.strings.to_hash_bucket_fast(tf.strings.split(brief).to_tensor(""), 1000)
            text_vec = tf.reduce_mean(tf.gather(self.text, words), axis=1)
            joint = tf.concat([cover_vec, frame_vec, text_vec], axis=1)
            return tf.nn.l2_normalize(tf.matmul(joint, self.proj), axis=1)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="brief"),
                                      tf.TensorSpec([None], tf.string, name="cover"),
                                      tf.TensorSpec([None, num_frames], tf.string, name="frames")])
        def classify(self, brief, cover, frames):
            logits = tf.matmul(self.embedding(brief, cover, frames), self.head) * 10.0
            label_id = tf.argmax(logits, axis=1)
            return {"probabilities": tf.nn.softmax(logits), "label": tf.gather(self.labels, label_id),
                    "label_id": label_id}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="brief"),
                                      tf.TensorSpec([None], tf.string, name="cover"),
                                      tf.TensorSpec([None, num_frames], tf.string, name="frames")])
        def embed(self, brief, cover, frames):
            return {"embedding": self.embedding(brief, cover, frames)}

    module = StandIn()
    return _save(module, {"serving_default": module.classify, "embed": module.embed}, model_base, name, version)
