"""Which modalities an example has, read off its raw inputs (TensorFlow backend)."""
from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="xinpianchang")
class ModalityPresence(keras.layers.Layer):
    """``(text [B] string, cover [B,S,S,3], frames [B,T,S,S,3])`` -> ``(presence [B,3], frame_mask [B,T])``.

    The convention for a missing modality, used by the data pipeline, evaluation and export alike: an empty
    brief, an all-zero cover, an all-zero frame. Presence columns are (text, cover, video); video is
    present when any frame is.
    """

    def call(self, inputs):
        text, cover, frames = inputs
        text_present = tf.cast(tf.strings.length(tf.strings.strip(text)) > 0, tf.float32)
        cover_present = tf.cast(tf.reduce_max(tf.abs(cover), axis=[1, 2, 3]) > 0, tf.float32)
        frame_mask = tf.cast(tf.reduce_max(tf.abs(frames), axis=[2, 3, 4]) > 0, tf.float32)
        video_present = tf.cast(tf.reduce_max(frame_mask, axis=1) > 0, tf.float32)
        return tf.stack([text_present, cover_present, video_present], axis=1), frame_mask
