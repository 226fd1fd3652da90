"""Sound tracks: decode to 16 kHz mono, windows like the frames, musicnn's log-mel in tf.signal, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from data_interface_for_model import audio
from data_interface_for_model.decoding import DecodeError


def tone(seconds: float, rate: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_band(waveform: np.ndarray) -> int:
    return int(np.argmax(audio.log_mel_numpy(waveform).mean(axis=0)))


def test_log_mel_tf_matches_numpy_reference():
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal((2, audio.PATCH_SAMPLES))).astype(np.float32)
    got = audio.log_mel(x).numpy()
    assert got.shape == (2, audio.PATCH_FRAMES, audio.N_MELS)
    np.testing.assert_allclose(got[1], audio.log_mel_numpy(x[1]), atol=2e-4)
    # shorter input is zero-padded to the patch, longer is cropped
    assert audio.log_mel(x[:, :1000]).shape == (2, audio.PATCH_FRAMES, audio.N_MELS)
    assert audio.log_mel(np.zeros(10 * audio.HOP * 300, np.float32), patch_frames=None).shape[0] == 1 + 3000


def test_slaney_filterbank():
    weights = audio.slaney_mel_matrix()
    assert weights.shape == (audio.FFT_SIZE // 2 + 1, audio.N_MELS)
    assert (weights >= 0).all() and (weights.max(axis=0) > 0).all()  # every band covers some bins
    centres = np.argmax(weights, axis=0)
    assert (np.diff(centres) >= 0).all()
    # Slaney's scale is linear (66.7 Hz per mel) below 1 kHz and the round trip is exact
    np.testing.assert_allclose(audio.hz_to_mel([0, 200 / 3, 1000]), [0, 1, 15])
    hz = np.array([30.0, 440.0, 999.0, 1000.0, 4000.0, 7999.0])
    np.testing.assert_allclose(audio.mel_to_hz(audio.hz_to_mel(hz)), hz, rtol=1e-9)


def test_window_starts_are_centred_like_frames_and_inside():
    assert audio.window_starts(100, 2, window=10) == [20, 70]
    assert audio.window_starts(100, 1, window=10) == [45]
    assert audio.window_starts(25, 3, window=10) == [0, 8, 15]  # the ends are pulled inside
    short = audio.cut_windows(np.arange(4, dtype=np.float32), 2, window=10)
    np.testing.assert_array_equal(short[0], [0, 1, 2, 3, 0, 1, 2, 3, 0, 1])  # repeat-pad


@pytest.mark.parametrize("name,rate,channels", [("stereo44k.wav", 44100, 2), ("mono22k.mp4", 22050, 1),
                                                ("opus48k.opus", 48000, 1), ("flac8k.flac", 8000, 1)])
def test_unusual_rates_and_channels_are_resampled(tmp_path, name, rate, channels):
    x = tone(4.0, rate, 440.0)
    path = tmp_path / name
    audio.write_audio(path, np.stack([x, x], 1) if channels == 2 else x, rate)
    sampled = audio.sample_audio(path, audio.AudioConfig(patches=2))
    assert sampled.present and sampled.reason == ""
    assert (sampled.source_rate, sampled.source_channels) == (rate, channels)
    assert sampled.waveform.shape == (2, audio.PATCH_SAMPLES) and sampled.waveform.dtype == np.float32
    assert abs(sampled.duration_s - 4.0) < 0.1
    # the tone is still a 440 Hz tone at 16 kHz: the loudest band is the one the filterbank puts 440 Hz in
    assert peak_band(sampled.waveform[0]) == peak_band(tone(3.0, audio.SAMPLE_RATE, 440.0))
    assert peak_band(sampled.waveform[0]) != peak_band(tone(3.0, audio.SAMPLE_RATE, 2000.0))


def test_clip_with_video_and_audio(tmp_path):
    path = tmp_path / "clip.mp4"
    audio.write_audio(path, tone(2.0, 16000), 16000, video_size=(32, 32))
    sampled = audio.sample_audio(path)
    assert sampled.present and abs(sampled.duration_s - 2.0) < 0.1


def write_video_only(path) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for _ in range(8):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_no_audio_stream_and_silence_are_missing(tmp_path, caplog):
    video_only = tmp_path / "video_only.mp4"
    write_video_only(video_only)
    result = audio.sample_audio(video_only)
    assert not result.present and result.reason == "no audio stream"
    assert result.waveform.shape == (audio.DEFAULT_PATCHES, audio.PATCH_SAMPLES) and not result.waveform.any()
    silent = tmp_path / "silent.wav"
    audio.write_audio(silent, np.zeros(16000 * 2, np.float32), 16000)
    with caplog.at_level("INFO", logger="data_interface_for_model.audio"):
        result = audio.sample_audio(silent)
    assert not result.present and result.reason == "silent" and str(silent) in caplog.text
    quiet_hiss = tmp_path / "hiss.wav"  # -70 dBFS: below the default threshold, above a lower one
    audio.write_audio(quiet_hiss, tone(2.0, 16000, amp=10 ** (-70 / 20) * np.sqrt(2)), 16000)
    assert not audio.sample_audio(quiet_hiss).present
    assert audio.sample_audio(quiet_hiss, audio.AudioConfig(silence_dbfs=-80)).present


def test_corrupt_empty_and_missing_files_raise_named_errors(tmp_path):
    good = tmp_path / "good.mp4"
    audio.write_audio(good, tone(2.0, 16000), 16000)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    for path in (garbage, empty, tmp_path / "missing.wav"):
        with pytest.raises(audio.AudioDecodeError, match=str(path.name)):
            audio.sample_audio(path)
    assert issubclass(audio.AudioDecodeError, DecodeError)


def test_long_track_reads_only_what_the_windows_need(tmp_path):
    path = tmp_path / "long.wav"
    audio.write_audio(path, tone(12.0, 16000), 16000)
    samples, _, _ = audio.decode_track(path, max_seconds=2.0)
    assert samples.size == 2 * 16000
    sampled = audio.sample_audio(path, audio.AudioConfig(patches=1, max_seconds=5.0))
    assert sampled.present and sampled.duration_s <= 6.5  # windows placed in the first 5 s (+1 s margin)


def test_write_audio_rejects_bad_channels(tmp_path):
    with pytest.raises(ValueError, match="channels"):
        audio.write_audio(tmp_path / "x.wav", np.zeros((10, 3), np.float32), 16000)
    assert not list(tmp_path.iterdir())  # nothing half-written
    with pytest.raises(ValueError, match="patches"):
        audio.AudioConfig(patches=0)
