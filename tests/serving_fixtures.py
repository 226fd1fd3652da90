"""Test fixtures: small SavedModels in TF Serving's layout for the serving tests and benchmarks (no training,
seconds to build).

* :func:`build_toy_classifier`: the classifier contract on a few string ops (``brief``, ``cover``,
  ``frames`` -> ``probabilities``, ``label``, ``label_id``; ``embed``), plus a ``numeric`` multi-input
  signature (float32 + int32), an ``echo`` signature with a ``_bytes`` output and ``image_size`` (decodes
  JPEGs: a corrupt one fails in the graph);
* :func:`build_toy_recommender`: the recommender contract (``history`` -> ``item_ids``, ``scores``;
  ``similar_items``) over a hashed item table;
* :func:`build_half_plus_two`: TF Serving's own test model (predict, classify and regress signatures);
* :func:`build_standin_classifier`: the classifier contract with the image work of the real one: JPEG
  decode of the cover and every frame, MobileNetV2 (random weights) on each, pooling over frames, a dense
  head. The benchmark uses it until a real classifier export is given.

Each builder writes ``<model_base>/<name>/<version>/`` through ``tf_serving_format.write_version``.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from typing import Sequence

import numpy as np

from data_interface_for_model.tf_serving_format import version_path, write_version


def _classifier_inputs(num_frames: int) -> list:
    """The classifier contract's inputs: ``brief`` [B], ``cover`` [B] (JPEG bytes), ``frames`` [B, T]."""
    import tensorflow as tf

    return [tf.TensorSpec([None], tf.string, name="brief"), tf.TensorSpec([None], tf.string, name="cover"),
            tf.TensorSpec([None, num_frames], tf.string, name="frames")]


def _save(module, signatures: dict, model_base: str, name: str, version: int) -> str:
    import tensorflow as tf

    with write_version(model_base, name, version) as tmp:
        tf.saved_model.save(module, tmp, signatures=signatures)
    return version_path(model_base, name, version)


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

        @tf.function(input_signature=_classifier_inputs(num_frames))
        def classify(self, brief, cover, frames):
            logits = tf.matmul(self.features(brief, cover, frames), self.w)
            label_id = tf.argmax(logits, axis=1)
            return {"probabilities": tf.nn.softmax(logits), "label": tf.gather(self.labels, label_id),
                    "label_id": label_id}

        @tf.function(input_signature=_classifier_inputs(num_frames))
        def embed(self, brief, cover, frames):
            return {"embedding": tf.matmul(self.features(brief, cover, frames), self.proj)}

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x"),
                                      tf.TensorSpec([None], tf.int32, name="k")])
        def numeric(self, x, k):
            return {"y": tf.reduce_sum(x, axis=1) * tf.cast(k, tf.float32) + float(version)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="data")])
        def echo(self, data):
            return {"data_bytes": data, "length": tf.strings.length(data)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image")])
        def image_size(self, image):
            shapes = tf.map_fn(lambda jpeg: tf.shape(tf.io.decode_jpeg(jpeg, channels=3))[:2], image,
                               fn_output_signature=tf.int32)
            return {"height": shapes[:, 0], "width": shapes[:, 1]}

    module = ToyClassifier()
    return _save(module, {"serving_default": module.classify, "embed": module.embed, "numeric": module.numeric,
                          "echo": module.echo, "image_size": module.image_size}, model_base, name, version)


def build_toy_recommender(model_base: str, version: int = 1, name: str = "toy_recommender",
                          num_items: int = 50, dim: int = 8, k: int = 5, scann: bool = False) -> str:
    """Items ``item000``.. with random embeddings; a history scores by its mean embedding (padding "").

    With ``scann``, the top-k comes from a TFRS ScaNN index (custom ``Scann>`` ops: loading the SavedModel
    needs ``import scann`` first), as the real ``recommender_scann`` export.
    """
    import tensorflow as tf

    rng = np.random.default_rng(100 + version)
    ids = [f"item{i:03d}" for i in range(num_items)]
    index = None
    if scann:
        import tensorflow_recommenders as tfrs

        vectors = tf.constant(np.random.default_rng(100 + version).normal(size=(num_items, dim)).astype("float32"))
        index = tfrs.layers.factorized_top_k.ScaNN(k=k, num_leaves=4, num_leaves_to_search=4,
                                                   num_reordering_candidates=num_items)
        index.index(vectors, tf.constant(ids))
        index(vectors[:1])  # a TFRS index must be called once before saving

    class ToyRecommender(tf.Module):
        def __init__(self):
            super().__init__()
            self.ids = tf.constant(ids)
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(self.ids, tf.range(num_items, dtype=tf.int64)), default_value=-1)
            self.emb = tf.Variable(rng.normal(size=(num_items, dim)).astype("float32"))
            self.index = index

        def _top(self, query):
            if self.index is not None:
                scores, item_ids = self.index(query)
                return {"item_ids": item_ids, "scores": scores}
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
    """The classifier contract at the image cost of the real one.

    In the graph: JPEG decode of the cover and every frame, Keras' MobileNetV2 (the real classifier's image
    encoder; random weights here) on all of them, mean over frames, a hashed bag of words for the brief,
    a dense fusion and a 31-way softmax. The real model's MiniLM text encoder is not included.
    """
    import keras
    import tensorflow as tf

    from data_interface_for_model.categories import LABELS

    keras.utils.set_random_seed(version)
    rng = np.random.default_rng(version)
    labels = list(LABELS)[:num_classes]
    width = 1280  # MobileNetV2's pooled feature size

    def decode(jpeg):
        def real():
            image = tf.io.decode_jpeg(jpeg, channels=3)
            return tf.image.resize(tf.cast(image, tf.float32) / 127.5 - 1.0, [image_size, image_size])
        return tf.cond(tf.strings.length(jpeg) > 0, real, lambda: tf.zeros([image_size, image_size, 3]))

    class StandIn(tf.Module):
        def __init__(self):
            super().__init__()
            self.encoder = keras.applications.MobileNetV2(input_shape=(image_size, image_size, 3), include_top=False,
                                                          weights=None, pooling="avg")
            self.text = tf.Variable(rng.normal(0, 0.1, size=(1000, 64)).astype("float32"))
            self.proj = tf.Variable(rng.normal(0, 0.02, size=(2 * width + 64, embedding_dim)).astype("float32"))
            self.head = tf.Variable(rng.normal(0, 0.05, size=(embedding_dim, num_classes)).astype("float32"))
            self.labels = tf.constant(labels)

        def embedding(self, brief, cover, frames):
            batch = tf.shape(frames)[0]
            flat = tf.reshape(frames, [-1])
            images = tf.map_fn(decode, tf.concat([cover, flat], 0), fn_output_signature=tf.float32)
            pooled = self.encoder(images, training=False)
            cover_vec = pooled[:batch]
            frame_vec = tf.reduce_mean(tf.reshape(pooled[batch:], [batch, -1, width]), axis=1)
            words = tf.strings.to_hash_bucket_fast(tf.strings.split(brief).to_tensor(""), 1000)
            text_vec = tf.reduce_mean(tf.gather(self.text, words), axis=1)
            joint = tf.concat([cover_vec, frame_vec, text_vec], axis=1)
            return tf.nn.l2_normalize(tf.matmul(joint, self.proj), axis=1)

        @tf.function(input_signature=_classifier_inputs(num_frames))
        def classify(self, brief, cover, frames):
            logits = tf.matmul(self.embedding(brief, cover, frames), self.head) * 10.0
            label_id = tf.argmax(logits, axis=1)
            return {"probabilities": tf.nn.softmax(logits), "label": tf.gather(self.labels, label_id),
                    "label_id": label_id}

        @tf.function(input_signature=_classifier_inputs(num_frames))
        def embed(self, brief, cover, frames):
            return {"embedding": self.embedding(brief, cover, frames)}

    module = StandIn()
    return _save(module, {"serving_default": module.classify, "embed": module.embed}, model_base, name, version)


@contextlib.contextmanager
def _tf1_version(model_base: str, name: str, version: int):
    """(SavedModelBuilder, Session in a fresh Graph) for a TF1-style version; saved when the block ends."""
    import tensorflow as tf

    v1 = tf.compat.v1
    with write_version(model_base, name, version) as tmp:
        export_dir = os.path.join(tmp, "model")
        builder = v1.saved_model.builder.SavedModelBuilder(export_dir)
        graph = tf.Graph()
        with graph.as_default(), v1.Session(graph=graph) as session:
            yield builder, session
        builder.save()
        # SavedModelBuilder insists on creating its folder: move its contents up into the version folder
        for entry in os.listdir(export_dir):
            shutil.move(os.path.join(export_dir, entry), os.path.join(tmp, entry))
        os.rmdir(export_dir)


def build_half_plus_two(model_base: str, version: int = 123, name: str = "half_plus_two") -> str:
    """TF Serving's own test model, recreated as its testdata script builds it (a TF1 graph and
    SavedModelBuilder): ``y = 0.5 * x + 2`` with signatures ``serving_default`` (predict ``x`` -> ``y``,
    ``x`` declared ``[-1, 1]``), ``classify_x_to_y``, ``regress_x_to_y``, ``regress_x_to_y2`` (``+ 3``) and
    ``regress_x2_to_y3`` over tf.Examples with float features ``x`` and ``x2`` (default 0)."""
    import tensorflow as tf

    v1 = tf.compat.v1
    with _tf1_version(model_base, name, version) as (builder, session):
        a, b, c = v1.Variable(0.5, name="a"), v1.Variable(2.0, name="b"), v1.Variable(3.0, name="c")
        serialized = v1.placeholder(tf.string, name="tf_example", shape=[None])
        features = v1.parse_example(serialized, {
            "x": tf.io.FixedLenFeature([1], tf.float32),
            "x2": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0])})
        x = tf.identity(features["x"], name="x")
        y = tf.identity(a * x + b, name="y")
        y2 = tf.identity(a * x + c, name="y2")
        x2 = tf.identity(features["x2"], name="x2")
        y3 = tf.identity(a * x2 + c, name="y3")
        info = v1.saved_model.utils.build_tensor_info
        build = v1.saved_model.signature_def_utils.build_signature_def
        consts = v1.saved_model.signature_constants

        def regress(inputs, outputs):
            return build({consts.REGRESS_INPUTS: info(inputs)}, {consts.REGRESS_OUTPUTS: info(outputs)},
                         consts.REGRESS_METHOD_NAME)

        signatures = {
            "serving_default": build({"x": info(x)}, {"y": info(y)}, consts.PREDICT_METHOD_NAME),
            "regress_x_to_y": regress(serialized, y),
            "regress_x_to_y2": regress(serialized, y2),
            "regress_x2_to_y3": regress(x2, y3),
            "classify_x_to_y": build({consts.CLASSIFY_INPUTS: info(serialized)},
                                     {consts.CLASSIFY_OUTPUT_SCORES: info(y)}, consts.CLASSIFY_METHOD_NAME),
        }
        session.run(v1.global_variables_initializer())
        builder.add_meta_graph_and_variables(session, [v1.saved_model.tag_constants.SERVING],
                                             signature_def_map=signatures)
    return version_path(model_base, name, version)


def build_spinner(model_base: str, version: int = 1, name: str = "spinner") -> str:
    """A TF1 graph that counts to its input ``n`` (int64 [1]) in a while loop: as slow as asked, for timeouts."""
    import tensorflow as tf

    v1 = tf.compat.v1
    with _tf1_version(model_base, name, version) as (builder, session):
        n = v1.placeholder(tf.int64, [None], name="n")
        count = tf.while_loop(lambda i: i < n[0], lambda i: i + 1, [tf.constant(0, tf.int64)])
        signature = v1.saved_model.signature_def_utils.predict_signature_def(
            {"n": n}, {"i": tf.reshape(count, [1])})
        builder.add_meta_graph_and_variables(session, [v1.saved_model.tag_constants.SERVING],
                                             signature_def_map={"serving_default": signature})
    return version_path(model_base, name, version)
