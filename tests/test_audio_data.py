"""Sound in the prepared shards: the audio builder config, and the same field in tf.data, numpy and PyTorch."""
from __future__ import annotations

import os

import numpy as np
import pytest

from data_interface_for_model import audio
from data_interface_for_model.item_txt import write_item_txt
from data_interface_for_model.schema import VideoRecord

PATCHES = 2
#: label/id -> what its sound is
ITEMS = {("Animals", "s1"): "tone", ("Animals", "s2"): "no audio stream", ("Aerial", "s3"): "silent"}


def _write_item(root, label: str, mp4_id: str, sound: str) -> None:
    from PIL import Image

    folder = os.path.join(root, label, mp4_id)
    os.makedirs(folder)
    path = os.path.join(folder, f"{mp4_id}.mp4")
    t = np.arange(int(3.5 * 16000)) / 16000
    samples = {"tone": 0.4 * np.sin(2 * np.pi * 440 * t), "silent": 0 * t}.get(sound)
    if samples is None:
        from tests.test_audio import write_video_only

        write_video_only(path)
    else:
        audio.write_audio(path, samples.astype(np.float32), 16000, video_size=(32, 32))
    Image.new("RGB", (40, 32), (200, 30, 30)).save(os.path.join(folder, f"{mp4_id}.jpeg"), quality=90)
    write_item_txt(os.path.join(folder, f"{mp4_id}.txt"),
                   VideoRecord(mp4_id, label, 3, "https://x/v.mp4", "https://x/c.jpeg", f" a {sound} clip"))


@pytest.fixture(scope="module")
def sound_build(tmp_path_factory):
    """Three clips (a tone, no audio stream, a silent track) prepared with and without audio."""
    from data_interface_for_model.prepare import prepare_dataset

    root = str(tmp_path_factory.mktemp("sound") / "root")
    for (label, mp4_id), sound in ITEMS.items():
        _write_item(root, label, mp4_id, sound)
    with open(os.path.join(root, "labels.txt"), "w") as handle:
        handle.write("Aerial\nAnimals\n")
    data_dir = str(tmp_path_factory.mktemp("sound_tfds"))
    common = dict(num_frames=2, size=32, splits=(1.0, 0.0, 0.0), workers=1, progress=False, isolate=False)
    report = prepare_dataset(root, data_dir, audio_patches=PATCHES, **common)
    plain = prepare_dataset(root, data_dir, **common)
    return root, data_dir, report, plain


def expected_log_mel(root: str, label: str, mp4_id: str) -> np.ndarray:
    clip = audio.sample_audio(os.path.join(root, label, mp4_id, f"{mp4_id}.mp4"), audio.AudioConfig(PATCHES))
    return audio.log_mel(clip.waveform).numpy()


def test_audio_config_carries_log_mel_and_presence(sound_build):
    from data_interface_for_model.numpy_dataset import PreparedNumpyDataset

    root, data_dir, report, plain = sound_build
    assert report.config_name == "frames2_size32_audio2" and report.split_counts == {"train": 3}
    assert plain.config_name == "frames2_size32" and plain.dataset_dir != report.dataset_dir
    examples = {ex["id"]: ex for ex in PreparedNumpyDataset(data_dir, "train", 2, 32, audio_patches=PATCHES)}
    assert {i: ex["audio_present"] for i, ex in examples.items()} == {"s1": True, "s2": False, "s3": False}
    tone = examples["s1"]["audio"]
    assert tone.shape == (PATCHES, audio.PATCH_FRAMES, audio.N_MELS) and tone.dtype == np.float32
    # stored as numpy computed it in the workers: tf.signal's values (what tf.data's raw path and serving use)
    np.testing.assert_allclose(tone, expected_log_mel(root, "Animals", "s1"), atol=1e-5)
    assert not examples["s2"]["audio"].any() and not examples["s3"]["audio"].any()
    # the plain config has no sound field; asking it for sound names the missing build
    without = PreparedNumpyDataset(data_dir, "train", 2, 32)[0]
    assert "audio" not in without and "audio_present" not in without
    with pytest.raises(FileNotFoundError, match="--audio --audio-windows 3"):
        PreparedNumpyDataset(data_dir, "train", 2, 32, audio_patches=3)


def test_tf_data_prepared_and_raw_give_the_same_sound(sound_build):
    from data_interface_for_model.tf_dataset import make_dataset, make_raw_dataset

    root, data_dir, _, _ = sound_build
    common = dict(batch_size=3, shuffle=False, deterministic=True, include_id=True, audio_patches=PATCHES)
    features, _ = next(iter(make_dataset(data_dir, "train", num_frames=2, size=32, **common)))
    raw, _ = next(iter(make_raw_dataset(root, num_frames=2, size=32, splits=(1.0, 0.0, 0.0), **common)))
    assert features["audio"].shape == (3, PATCHES, audio.PATCH_FRAMES, audio.N_MELS)
    assert features["audio_present"].dtype.name == "bool"
    order = {i: n for n, i in enumerate(raw["id"].numpy().astype(str))}
    for n, mp4_id in enumerate(features["id"].numpy().astype(str)):
        assert bool(features["audio_present"][n]) == bool(raw["audio_present"][order[mp4_id]]) == (mp4_id == "s1")
        np.testing.assert_allclose(features["audio"][n], raw["audio"][order[mp4_id]], atol=1e-5)


def test_raw_numpy_and_torch_give_the_same_sound(sound_build):
    import torch

    from data_interface_for_model.numpy_dataset import RawNumpyDataset
    from data_interface_for_model.torch_dataset import TorchVideoDataset, collate_batch

    root, _, _, _ = sound_build
    dataset = TorchVideoDataset(RawNumpyDataset(root, 2, 32, audio_patches=PATCHES))
    batch = collate_batch([dataset[i] for i in range(len(dataset))])
    assert batch["audio"].shape == (3, PATCHES, audio.PATCH_FRAMES, audio.N_MELS)
    assert batch["audio"].dtype == torch.float32 and batch["audio_present"].dtype == torch.bool
    tone = batch["id"].index("s1")
    assert batch["audio_present"].tolist() == [i == tone for i in range(3)]
    np.testing.assert_allclose(batch["audio"][tone].numpy(), expected_log_mel(root, "Animals", "s1"), atol=1e-5)


def test_undecodable_sound_is_a_missing_modality(tmp_path, caplog):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with caplog.at_level("WARNING", logger="data_interface_for_model.audio"):
        sampled = audio.sample_audio_or_missing(garbage, audio.AudioConfig(patches=1))
    assert not sampled.present and sampled.reason.startswith("undecodable") and "garbage.mp4" in caplog.text
    assert sampled.waveform.shape == (1, audio.PATCH_SAMPLES) and not sampled.waveform.any()
    mel, present, reason = next(audio.map_clips(audio.clip_log_mel, [garbage], audio.AudioConfig(1), workers=1))
    assert not present and reason.startswith("undecodable") and mel.shape == (1, 187, 96) and not mel.any()


def test_prepare_flags(tmp_path, capsys):
    from data_interface_for_model.__main__ import build_parser, main
    from data_interface_for_model.cli import audio_windows

    parser = build_parser()
    assert audio_windows(parser.parse_args(["prepare"])) == 0
    assert audio_windows(parser.parse_args(["prepare", "--audio"])) == audio.DEFAULT_PATCHES
    assert audio_windows(parser.parse_args(["prepare", "--audio", "--audio-windows", "3"])) == 3
    assert main(["prepare", "--data-root", str(tmp_path), "--audio", "--runner", "direct"]) == 2
    assert "--runner" in capsys.readouterr().err


def test_predict_reads_the_sound_as_preparation_stores_it(sound_build):
    """``predict``'s decoding of an audio run gives the prepared shards' log-mel (zeros without sound)."""
    from baseline_model.predict import iter_inputs, load_item
    from data_interface_for_model.numpy_dataset import PreparedNumpyDataset

    root, data_dir, _, _ = sound_build
    stored = {ex["id"]: ex for ex in PreparedNumpyDataset(data_dir, "train", 2, 32, audio_patches=PATCHES)}
    items = list(iter_inputs([root]))
    assert len(items) == len(ITEMS)
    for item in items:
        loaded = load_item(item, 2, 32, audio_windows=PATCHES)
        assert loaded["audio"].shape == (PATCHES, 187, 96)
        np.testing.assert_allclose(loaded["audio"], stored[item.item_id]["audio"], atol=1e-4)
        assert bool(np.any(loaded["audio"])) == (item.item_id == "s1")
        assert "audio" not in load_item(item, 2, 32)
