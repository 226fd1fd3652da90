"""Exporting a run as SavedModels in TF Serving's layout: ``EXPORT_BASE/<name>/<version>/``.

``classifier``: signature ``serving_default`` and ``embed``; ``embedder``: ``serving_default`` = embed.
Inputs (every one may be empty for a missing modality):

* ``brief``: tf.string ``[batch]``, the one-line description ("" = none);
* ``cover``: tf.string ``[batch]``, JPEG bytes of the cover ("" = none);
* ``frames``: tf.string ``[batch, n]``, JPEG bytes of n frames sampled across the clip ("" = missing frame;
  any n >= 0: the model resamples to its own frame count);
* ``audio`` (audio runs only): float32 ``[batch, n, 187, 96]``, musicnn log-mel windows of the sound track
  (n = 0 or all zeros = no sound; other n resampled to the run's window count).

Outputs: ``serving_default`` -> ``probabilities`` float32 ``[batch, C]``, ``label`` tf.string ``[batch]``,
``label_id`` int64 ``[batch]``; ``embed`` -> ``embedding`` float32 ``[batch, D]``.

Images are decoded in the graph: resize the short side to the model's size, centre-crop, scale to [0, 1],
as the data pipeline does. ``label`` names come from the run's own label set. Version folders follow
:mod:`data_interface_for_model.tf_serving_format` (next version, atomic write), so a polling server never
sees half a model.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from baseline_model.run import LoadedRun, load_run
from data_interface_for_model.tf_serving_format import next_version, sample_jpeg, write_version, write_warmup_requests

logger = logging.getLogger(__name__)


def decode_image(jpeg: tf.Tensor, size: int) -> tf.Tensor:
    """Scalar JPEG string -> float32 ``[size, size, 3]`` in [0, 1]; an empty string gives zeros."""

    def decode():
        image = tf.io.decode_image(jpeg, channels=3, expand_animations=False)
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        scale = tf.cast(size, tf.float32) / tf.reduce_min(shape)
        new = tf.cast(tf.math.ceil(shape * scale), tf.int32)
        new = tf.maximum(new, size)
        image = tf.image.resize(image, new, antialias=True)
        top, left = (new[0] - size) // 2, (new[1] - size) // 2
        image = image[top:top + size, left:left + size, :]
        return tf.clip_by_value(tf.reshape(image, [size, size, 3]) / 255.0, 0.0, 1.0)

    return tf.cond(tf.strings.length(jpeg) > 0, decode, lambda: tf.zeros([size, size, 3], tf.float32))


def decode_inputs(brief: tf.Tensor, cover: tf.Tensor, frames: tf.Tensor, num_frames: int, size: int) -> dict:
    """Raw serving inputs -> the model's ``{"text", "cover", "frames"}``."""
    batch = tf.shape(brief)[0]
    available = tf.shape(frames)[1]
    positions = (tf.range(num_frames, dtype=tf.float32) + 0.5) * tf.cast(available, tf.float32) / num_frames
    indices = tf.minimum(tf.cast(positions, tf.int32), tf.maximum(available - 1, 0))
    frames = tf.cond(available > 0, lambda: tf.gather(frames, indices, axis=1),
                     lambda: tf.fill([batch, num_frames], ""))
    spec = tf.TensorSpec([size, size, 3], tf.float32)
    covers = tf.map_fn(lambda x: decode_image(x, size), cover, fn_output_signature=spec)
    flat = tf.map_fn(lambda x: decode_image(x, size), tf.reshape(frames, [-1]), fn_output_signature=spec)
    return {"text": brief, "cover": covers, "frames": tf.reshape(flat, [batch, num_frames, size, size, 3])}


def _write_archive(run: LoadedRun, path: str, with_classifier: bool) -> None:
    config = run.model_config
    num_frames, size, windows = config.num_frames, config.image_size, config.audio_windows
    signature = [tf.TensorSpec([None], tf.string, name="brief"), tf.TensorSpec([None], tf.string, name="cover"),
                 tf.TensorSpec([None, None], tf.string, name="frames")]
    if windows:  # an audio run also takes the clip's log-mel windows (none: no sound), docs/audio.md
        from data_interface_for_model.audio import N_MELS, PATCH_FRAMES

        signature.append(tf.TensorSpec([None, None, PATCH_FRAMES, N_MELS], tf.float32, name="audio"))
    label_names = tf.constant(list(run.labels))
    archive = keras.export.ExportArchive()
    archive.track(run.embedder)

    def model_inputs(brief, cover, frames, audio):
        inputs = decode_inputs(brief, cover, frames, num_frames, size)
        if windows:
            from baseline_model.models.audio_branch import AUDIO_INPUT, serving_audio

            inputs[AUDIO_INPUT] = serving_audio(audio, windows)
        return inputs

    def embed_all(brief, cover, frames, audio=None):
        inputs = model_inputs(brief, cover, frames, audio)
        return {"embedding": tf.cast(run.embedder(inputs, training=False), tf.float32)}

    def classify_all(brief, cover, frames, audio=None):
        probabilities = tf.cast(run.classifier(model_inputs(brief, cover, frames, audio), training=False),
                                tf.float32)
        label_id = tf.argmax(probabilities, axis=-1)
        return {"probabilities": probabilities, "label_id": label_id, "label": tf.gather(label_names, label_id)}

    # an endpoint's arguments are its signature's inputs, one each
    if windows:
        def embed(brief, cover, frames, audio):
            return embed_all(brief, cover, frames, audio)

        def classify(brief, cover, frames, audio):
            return classify_all(brief, cover, frames, audio)
    else:
        def embed(brief, cover, frames):
            return embed_all(brief, cover, frames)

        def classify(brief, cover, frames):
            return classify_all(brief, cover, frames)

    if with_classifier:
        archive.track(run.classifier)

        archive.add_endpoint("serving_default", classify, input_signature=signature)
        archive.add_endpoint("embed", embed, input_signature=signature)
    else:
        archive.add_endpoint("serving_default", embed, input_signature=signature)
    archive.write_out(path, verbose=False)


#: The models a run exports: name -> with the classifier's signature (else the embedder alone).
EXPORTED_MODELS = {"classifier": True, "embedder": False}


def export_run(run_dir: str, export_base: Optional[str] = None, version: Optional[int] = None,
               run: Optional[LoadedRun] = None) -> Dict[str, str]:
    """Export ``classifier`` and ``embedder`` under ``export_base`` (default ``RUN/export``); return
    name -> version folder. ``version`` defaults to the next free number (the same for both models)."""
    run = run or load_run(run_dir)
    export_base = export_base or os.path.join(run_dir, "export")
    version = version if version is not None else next_version(export_base, list(EXPORTED_MODELS))
    paths = {}
    for name, with_classifier in EXPORTED_MODELS.items():
        with write_version(export_base, name, version) as tmp:
            _write_archive(run, tmp, with_classifier)
            jpeg = sample_jpeg(run.model_config.image_size)  # TF Serving warm-up: a full and an empty example
            example = {"brief": ["waves on a beach at sunset", ""], "cover": [jpeg, b""],
                       "frames": [[jpeg, jpeg], [b"", b""]]}
            if run.model_config.audio_windows:
                from data_interface_for_model.audio import N_MELS, PATCH_FRAMES

                example["audio"] = np.zeros((2, 0, PATCH_FRAMES, N_MELS), np.float32)  # no sound
            keys = ("serving_default", "embed") if with_classifier else ("serving_default",)
            write_warmup_requests(tmp, name, {key: example for key in keys})
        paths[name] = os.path.join(export_base, name, str(version))
        logger.info("exported %s to %s", name, paths[name])
    return paths
