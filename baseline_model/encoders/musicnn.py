"""musicnn (Pons & Serra, ISMIR 2019) as a Keras 3 model, with the weights of ``musicnn==0.1.0``'s TF1 checkpoints.

The ``musicnn`` wheel (ISC licence; install with ``--no-deps``, its metadata pins numpy<1.17) ships TF1
checkpoints of the models trained on MagnaTagATune (``MTT_musicnn``, 50 tags) and the Million Song Dataset
(``MSD_musicnn``, 50 tags). :func:`build_musicnn` rebuilds the same network layer by layer (same padding,
same batch-normalisation epsilon, the same interleaved max/mean pooling before the penultimate layer) and
:func:`assign_checkpoint_weights` copies every variable across by its TF1 name. The first build converts the
checkpoint into a Keras ``.weights.h5`` file in the cache folder (written atomically); later builds only load
it. :func:`original_forward` runs the package's own TF1 graph (``musicnn.models.define_model``) restored from
the checkpoint, the reference the port is checked against.

Input: log-mel patches ``[batch, frames, 96]`` from ``data_interface_for_model.audio.log_mel`` (16 kHz mono,
FFT 512, hop 256, 96 Slaney bands, ``log10(10000 x + 1)``; trained on 187-frame = 3 s patches; any length
of at least 32 frames runs). Outputs (a dict): ``logits`` and ``tags`` (sigmoid) ``[batch, 50]``,
``penultimate`` ``[batch, 200]`` (the embedding used for music matching), ``mean_pool`` and ``max_pool``
``[batch, 753]``.
"""
from __future__ import annotations

import logging
import os
import time
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np

from data_interface_for_model.atomic import atomic_output_path

from .offline_files import OfflineWeightsMissing, find_package_file
from .weights_cache import PathLike, cached_file

logger = logging.getLogger(__name__)

MODELS = ("MTT_musicnn", "MSD_musicnn")
DEFAULT_MODEL = "MTT_musicnn"
N_MELS = 96
EMBEDDING_DIM = 200
POOL_DIM = 753
_CACHE_VERSION = 1
_BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default, as the checkpoint was trained

#: musicnn.configuration's tag lists (copied so that tagging needs no import of the package).
MTT_LABELS = (
    'guitar', 'classical', 'slow', 'techno', 'strings', 'drums', 'electronic', 'rock', 'fast', 'piano', 'ambient',
    'beat', 'violin', 'vocal', 'synth', 'female', 'indian', 'opera', 'male', 'singing', 'vocals', 'no vocals',
    'harpsichord', 'loud', 'quiet', 'flute', 'woman', 'male vocal', 'no vocal', 'pop', 'soft', 'sitar', 'solo',
    'man', 'classic', 'choir', 'voice', 'new age', 'dance', 'male voice', 'female vocal', 'beats', 'harp',
    'cello', 'no voice', 'weird', 'country', 'metal', 'female voice', 'choral')
MSD_LABELS = (
    'rock', 'pop', 'alternative', 'indie', 'electronic', 'female vocalists', 'dance', '00s', 'alternative rock',
    'jazz', 'beautiful', 'metal', 'chillout', 'male vocalists', 'classic rock', 'soul', 'indie rock', 'Mellow',
    'electronica', '80s', 'folk', '90s', 'chill', 'instrumental', 'punk', 'oldies', 'blues', 'hard rock',
    'ambient', 'acoustic', 'experimental', 'female vocalist', 'guitar', 'Hip-Hop', '70s', 'party', 'country',
    'easy listening', 'sexy', 'catchy', 'funk', 'electro', 'heavy metal', 'Progressive rock', '60s', 'rnb',
    'indie pop', 'sad', 'House', 'happy')


def labels_for(model: str = DEFAULT_MODEL) -> Sequence[str]:
    _check_model(model)
    return MTT_LABELS if model.startswith("MTT") else MSD_LABELS


def _check_model(model: str) -> None:
    if model not in MODELS:
        raise ValueError(f"unknown musicnn model {model!r}: choose from {', '.join(MODELS)}")


def checkpoint_prefix(model: str = DEFAULT_MODEL) -> str:
    """The TF1 checkpoint prefix inside the installed ``musicnn`` wheel (found without importing it).

    The files are ``<folder>/.index`` and ``.data-00000-of-00001``, so the prefix is the folder plus ``/``
    (the ``checkpoint`` file beside them holds the author's absolute path and is not used).
    """
    _check_model(model)
    index = find_package_file("musicnn", os.path.join(model, ".index"), "musicnn==0.1.0",
                              "no hub copy of musicnn is known")
    return os.path.dirname(index) + os.sep


# ------------------------------------------------------------------------------------------ the network
def build_musicnn(model: str = DEFAULT_MODEL, weights: Optional[str] = "offline",
                  cache_dir: Optional[PathLike] = None, name: Optional[str] = None):
    """musicnn as a Keras 3 functional model: log-mel ``[batch, frames, 96]`` -> dict of outputs.

    Args:
      model: ``MTT_musicnn`` or ``MSD_musicnn`` (which checkpoint; the architecture is the same).
      weights: ``"offline"`` (the wheel's checkpoint, converted once and cached) or None (random).
      cache_dir: the cache folder (default ``$XINPIANCHANG_CACHE`` or ``~/.cache/xinpianchang``).
    """
    import keras
    from keras import layers

    _check_model(model)
    if weights not in ("offline", None):
        raise ValueError(f"weights must be 'offline' or None, got {weights!r}")
    num_classes = len(labels_for(model))

    def bn(name_):
        return layers.BatchNormalization(epsilon=_BN_EPSILON, name=name_)

    def squeeze_freq(x, name_):  # [B, T, 1, C] -> [B, T, C]
        return layers.Reshape((-1, x.shape[-1]), name=name_)(x)

    x_in = keras.Input((None, N_MELS), name="log_mel")
    x = layers.Reshape((-1, N_MELS, 1), name="expand")(x_in)
    x = bn("batch_normalization")(x)
    # front end: two timbral (7 x 38, 7 x 67 over frequency, time padded 3 + 3) and three temporal blocks
    padded = layers.ZeroPadding2D(((3, 3), (0, 0)), name="pad_timbral")(x)
    front = []
    for i, (kernel, filters, pad_in) in enumerate([((7, 38), 204, True), ((7, 67), 204, True), ((128, 1), 51, False),
                                                   ((64, 1), 51, False), ((32, 1), 51, False)]):
        conv = layers.Conv2D(filters, kernel, padding="valid" if pad_in else "same", activation="relu",
                             name="conv2d" if i == 0 else f"conv2d_{i}")(padded if pad_in else x)
        conv = bn(f"batch_normalization_{i + 1}")(conv)
        pooled = layers.MaxPooling2D((1, conv.shape[2]), name=f"front_pool_{i}")(conv)
        front.append(squeeze_freq(pooled, f"front_squeeze_{i}"))
    front_features = layers.Concatenate(axis=2, name="front_concat")(front)  # [B, T, 561]
    # mid end: three 7 x full-width convolutions with residual connections
    mid_in = layers.Reshape((-1, front_features.shape[-1], 1), name="mid_expand")(front_features)
    mids = [mid_in]
    h = mid_in
    for j in range(3):
        conv = layers.ZeroPadding2D(((3, 3), (0, 0)), name=f"mid_pad_{j}")(h)
        conv = layers.Conv2D(64, (7, h.shape[2]), padding="valid", activation="relu", name=f"conv2d_{5 + j}")(conv)
        conv = bn(f"batch_normalization_{6 + j}")(conv)
        conv = layers.Permute((1, 3, 2), name=f"mid_transpose_{j}")(conv)  # [B, T, 64, 1]
        h = conv if j == 0 else layers.Add(name=f"mid_residual_{j}")([conv, h])
        mids.append(h)
    mid_features = layers.Concatenate(axis=2, name="mid_concat")(mids)  # [B, T, 753, 1]
    mid_features = layers.Reshape((-1, POOL_DIM), name="mid_squeeze")(mid_features)
    # back end: temporal max and mean pooling, interleaved per feature as tf.concat(..., 2) + flatten did
    max_pool = layers.GlobalMaxPooling1D(name="max_pool")(mid_features)
    mean_pool = layers.GlobalAveragePooling1D(name="mean_pool")(mid_features)
    stacked = layers.Concatenate(axis=-1, name="pool_interleave")(
        [layers.Reshape((POOL_DIM, 1), name="max_pool_col")(max_pool),
         layers.Reshape((POOL_DIM, 1), name="mean_pool_col")(mean_pool)])
    flat = layers.Flatten(name="pool_flatten")(stacked)  # [B, 1506]: max_0, mean_0, max_1, mean_1, ...
    flat = bn("batch_normalization_9")(flat)
    flat = layers.Dropout(0.5, name="dropout")(flat)
    dense = layers.Dense(EMBEDDING_DIM, activation="relu", name="dense")(flat)
    penultimate = bn("batch_normalization_10")(dense)
    logits = layers.Dense(num_classes, name="dense_1")(layers.Dropout(0.5, name="dropout_1")(penultimate))
    tags = layers.Activation("sigmoid", name="tags")(logits)
    net = keras.Model(x_in, {"logits": logits, "tags": tags, "penultimate": penultimate,
                             "mean_pool": mean_pool, "max_pool": max_pool}, name=name or model.lower())
    if weights == "offline":
        _load_cached(net, model, cache_dir)
    return net


def _trainable_layers(net) -> List:
    return [layer for layer in net.layers if layer.name.startswith(("conv2d", "batch_normalization", "dense"))]


def assign_checkpoint_weights(net, variables: Dict[str, np.ndarray]) -> None:
    """Copy TF1 variables (``conv2d_3/kernel``, ``batch_normalization_9/moving_mean``...) onto ``net``."""
    for layer in _trainable_layers(net):
        if layer.name.startswith("batch_normalization"):
            names = ("gamma", "beta", "moving_mean", "moving_variance")
        else:
            names = ("kernel", "bias")
        values = []
        for n in names:
            key = f"{layer.name}/{n}"
            if key not in variables:
                raise KeyError(f"musicnn checkpoint has no variable {key}")
            values.append(np.asarray(variables[key], np.float32))
        for have, value in zip(layer.get_weights(), values):
            if have.shape != value.shape:
                raise ValueError(f"musicnn {layer.name}: Keras shape {have.shape} != checkpoint {value.shape}")
        layer.set_weights(values)


def read_checkpoint(model: str = DEFAULT_MODEL) -> Dict[str, np.ndarray]:
    """Every non-optimizer variable of the wheel's TF1 checkpoint, by name."""
    import tensorflow as tf

    # NewCheckpointReader takes the prefix itself (tf.train.load_checkpoint would follow the `checkpoint` file)
    reader = tf.compat.v1.train.NewCheckpointReader(checkpoint_prefix(model))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if "Adam" not in name and not name.endswith("_power")}


def cache_file_name(model: str) -> str:
    return f"musicnn_{model}_v{_CACHE_VERSION}.weights.h5"


def converted_weights_path(model: str = DEFAULT_MODEL, cache: Optional[PathLike] = None) -> str:
    """The Keras weights converted from the wheel's checkpoint, converting first if not cached yet."""
    target = cached_file(cache_file_name(model), cache)
    if not os.path.isfile(target):
        convert_checkpoint(model, target)
    return target


def convert_checkpoint(model: str, target: PathLike) -> str:
    """Read the TF1 checkpoint, assign it to the Keras network and save ``target`` atomically."""
    started = time.perf_counter()
    net = build_musicnn(model, weights=None)
    assign_checkpoint_weights(net, read_checkpoint(model))
    with atomic_output_path(target, suffix=".weights.h5") as tmp:
        net.save_weights(tmp)
    logger.info("converted musicnn %s to %s in %.1f s", model, os.fspath(target), time.perf_counter() - started)
    return os.fspath(target)


def _load_cached(net, model: str, cache: Optional[PathLike]) -> None:
    path = converted_weights_path(model, cache)
    try:
        net.load_weights(path)
    except Exception as err:  # a cache from another Keras version or a damaged disk: convert again
        logger.warning("cached weights %s unreadable (%s); converting again", path, err)
        convert_checkpoint(model, path)
        net.load_weights(path)


# ------------------------------------------------------------------------------------------- reference
def original_forward(log_mel: np.ndarray, model: str = DEFAULT_MODEL) -> Dict[str, np.ndarray]:
    """The package's own TF1 graph (``musicnn.models.define_model``), restored from its checkpoint.

    The reference the Keras port is checked against (graph mode, inference: ``is_training=False``).

    Args:
      log_mel: float32 ``[batch, frames, 96]``.

    Returns:
      ``logits``, ``penultimate``, ``mean_pool``, ``max_pool`` as numpy arrays.
    """
    import tensorflow as tf

    try:
        from musicnn import models as original
    except ImportError as err:  # pragma: no cover - the wheel is a requirement
        raise OfflineWeightsMissing("the reference needs the wheel 'musicnn==0.1.0' (pip install --no-deps)") from err
    log_mel = np.asarray(log_mel, np.float32)
    graph = tf.Graph()
    with graph.as_default(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.compat.v1.layers deprecation notices, one per layer
        with tf.name_scope("model"):
            x = tf.compat.v1.placeholder(tf.float32, [None, log_mel.shape[1], N_MELS])
            is_training = tf.compat.v1.placeholder(tf.bool)
            outputs = original.define_model(x, is_training, model, len(labels_for(model)))
        logits, mean_pool, max_pool, penultimate = outputs[0], outputs[6], outputs[7], outputs[8]
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as session:
            saver.restore(session, checkpoint_prefix(model))
            values = session.run([logits, penultimate, mean_pool, max_pool], {x: log_mel, is_training: False})
    return dict(zip(("logits", "penultimate", "mean_pool", "max_pool"), values))


# -------------------------------------------------------------------------------------------- helpers
def track_patches(log_mel: np.ndarray, frames: int = 187) -> np.ndarray:
    """Cut a whole track's log-mel ``[T, 96]`` into non-overlapping ``[P, frames, 96]`` patches, as musicnn's
    extractor does (a track shorter than one patch is repeated to fill it)."""
    log_mel = np.asarray(log_mel, np.float32)
    if log_mel.shape[0] == 0:
        raise ValueError("empty spectrogram")
    if log_mel.shape[0] < frames:
        log_mel = np.tile(log_mel, (int(np.ceil(frames / log_mel.shape[0])), 1))[:frames]
    count = (log_mel.shape[0] - frames) // frames + 1
    return np.stack([log_mel[i * frames:(i + 1) * frames] for i in range(count)])


def top_tags(tags: np.ndarray, model: str = DEFAULT_MODEL, k: int = 5) -> List[str]:
    """The ``k`` most likely tag names of one ``[50]`` score vector."""
    names = labels_for(model)
    return [names[i] for i in np.argsort(-np.asarray(tags))[:k]]
