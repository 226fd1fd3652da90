"""Sound tracks as a modality: decode with PyAV, sample fixed windows like the frames, log-mel in TensorFlow.

The front end is musicnn's (the pretrained audio encoder, ``baseline_model.encoders.musicnn``), so the same
spectrograms feed it without conversion:

* **decode**: the first audio stream, any sample rate, any channel layout, any sample format, is resampled
  by FFmpeg (``av.AudioResampler``) to float32 at 16 kHz and its channels averaged to **mono** (librosa's
  downmix, as musicnn was trained);
* **windows** are sampled *like the frames* (``decoding.sample_clip``): the track's duration ``D`` is cut
  into ``P`` equal segments and a window of ``PATCH_SAMPLES`` samples (3 s, one musicnn patch) is centred
  on each, ``(i + 0.5) * D / P``, shifted inside the track where it would overrun an end; a track shorter
  than one window is repeated to fill it (musicnn's own ``repeat-pad``);
* **log-mel** (:func:`log_mel`, pure ``tf.signal``): centred STFT (reflect padding) with a periodic Hann
  window of 512, hop 256, power 2, 96 **Slaney** mel bands (librosa's default filterbank, built here in
  numpy), then ``log10(10000 * mel + 1)``; each window gives ``PATCH_FRAMES = 187`` frames.

A clip with no audio stream, or whose windows are silent (RMS below ``silence_dbfs``), has *no audio*:
:func:`sample_audio` returns a :class:`SampledAudio` with ``present=False`` and zero arrays, exactly like a
missing cover is a missing modality. A file that cannot be decoded raises :class:`AudioDecodeError` (a
:class:`~data_interface_for_model.decoding.DecodeError`) naming the file. Very long tracks are read only up
to the end of the last window (and at most ``max_seconds`` when the container states no duration).

Importing this module needs neither TensorFlow nor PyAV.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from data_interface_for_model.decoding import DecodeError

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

#: musicnn's input parameters (``musicnn.configuration``; extractor: 3 s patches of 187 frames).
SAMPLE_RATE = 16000
FFT_SIZE = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187
#: Samples in one window: a centred STFT of ``(PATCH_FRAMES - 1) * HOP`` samples gives ``PATCH_FRAMES`` frames.
PATCH_SAMPLES = (PATCH_FRAMES - 1) * HOP
#: Windows (3 s patches) per clip by default.
DEFAULT_PATCHES = 2
#: RMS below this (dB relative to full scale) is silence: the clip has no audio.
DEFAULT_SILENCE_DBFS = -60.0
#: Longest stretch decoded when the container states no duration.
DEFAULT_MAX_SECONDS = 600.0


class AudioDecodeError(DecodeError):
    """An audio track that cannot be decoded (missing, empty, truncated or corrupt file)."""


@dataclasses.dataclass(frozen=True)
class AudioConfig:
    """How a clip's sound is sampled. ``patches`` windows of ``PATCH_SAMPLES`` samples at 16 kHz."""

    patches: int = DEFAULT_PATCHES
    silence_dbfs: float = DEFAULT_SILENCE_DBFS
    max_seconds: float = DEFAULT_MAX_SECONDS

    def __post_init__(self) -> None:
        if self.patches < 1:
            raise ValueError(f"patches must be at least 1, got {self.patches}")
        if not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be positive, got {self.max_seconds}")


@dataclasses.dataclass(frozen=True)
class SampledAudio:
    """What :func:`sample_audio` returns.

    Attributes:
      waveform: float32 ``[P, PATCH_SAMPLES]`` mono 16 kHz windows in [-1, 1] (zeros when absent).
      present: whether the clip has a non-silent audio track.
      reason: why it is absent (``"no audio stream"``, ``"silent"``), else ``""``.
      duration_s: the track's duration in seconds (0 when absent).
      source_rate, source_channels: the stream's own sample rate and channel count (0 when none).
    """

    waveform: np.ndarray
    present: bool
    reason: str = ""
    duration_s: float = 0.0
    source_rate: int = 0
    source_channels: int = 0


def window_starts(num_samples: int, patches: int, window: int = PATCH_SAMPLES) -> List[int]:
    """Start sample of each of ``patches`` windows centred at ``(i + 0.5) * N / P``, kept inside the track.

    A track shorter than ``window`` gives starts of 0 (the caller repeats it to fill the window).
    """
    starts = []
    for i in range(patches):
        centre = (i + 0.5) * num_samples / patches
        start = int(round(centre - window / 2))
        starts.append(max(0, min(start, num_samples - window)))
    return starts


def cut_windows(track: np.ndarray, patches: int, window: int = PATCH_SAMPLES) -> np.ndarray:
    """``[P, window]`` windows of a mono ``track`` (see :func:`window_starts`); a short track is tiled."""
    track = np.asarray(track, dtype=np.float32).reshape(-1)
    if track.size == 0:
        return np.zeros((patches, window), np.float32)
    if track.size < window:
        track = np.tile(track, int(math.ceil(window / track.size)))[:window]
    return np.stack([track[s:s + window] for s in window_starts(track.size, patches, window)])


def rms_dbfs(x: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale (``-inf`` for digital silence)."""
    rms = float(np.sqrt(np.mean(np.square(np.asarray(x, np.float64))))) if np.size(x) else 0.0
    return 20.0 * math.log10(rms) if rms > 0 else float("-inf")


def _absent(patches: int, reason: str, rate: int = 0, channels: int = 0, duration: float = 0.0) -> SampledAudio:
    return SampledAudio(np.zeros((patches, PATCH_SAMPLES), np.float32), False, reason, duration, rate, channels)


def decode_track(path: PathLike, *, max_seconds: Optional[float] = None) -> Tuple[Optional[np.ndarray], int, int]:
    """The first audio stream of ``path`` as mono float32 at 16 kHz.

    Returns:
      ``(samples [N] or None when the file has no audio stream, source rate, source channels)``.

    Raises:
      AudioDecodeError: the file is missing, empty, corrupt or truncated before any audio.
    """
    import av  # PyAV, imported on use

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioDecodeError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise AudioDecodeError(f"{path}: empty file")
    limit = None if max_seconds is None else int(max_seconds * SAMPLE_RATE)
    chunks: List[np.ndarray] = []
    total = 0
    try:
        with av.open(path, mode="r") as container:
            if not container.streams.audio:
                return None, 0, 0
            stream = container.streams.audio[0]
            rate = int(stream.rate or 0)
            channels = int(getattr(stream, "channels", 0) or 0)
            # resample every channel, then average them (librosa's downmix, which musicnn was trained on;
            # FFmpeg's own stereo->mono downmix is 3 dB louder)
            # 1 s output frames: fewer Python round trips than one per (20 ms Opus) input frame
            resampler = av.AudioResampler(format="fltp", rate=SAMPLE_RATE, frame_size=SAMPLE_RATE)
            try:
                for frame in container.decode(stream):
                    for out in resampler.resample(frame):
                        chunk = out.to_ndarray().mean(axis=0)
                        chunks.append(chunk)
                        total += chunk.size
                    if limit is not None and total >= limit:
                        break
                else:
                    for out in resampler.resample(None):
                        chunks.append(out.to_ndarray().mean(axis=0))
            except av.FFmpegError as exc:
                if not chunks:
                    raise
                logger.warning("%s: audio truncated after %.1f s (%s); using what decoded", path,
                               total / SAMPLE_RATE, exc)
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise AudioDecodeError(f"{path}: cannot decode audio: {exc}") from None
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if limit is not None:
        samples = samples[:limit]
    return samples, rate, channels


def _stated_duration(path: str) -> Optional[float]:
    import av

    try:
        with av.open(path, mode="r") as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / 1_000_000
    except (av.FFmpegError, OSError, ValueError):
        return None
    return None


def sample_audio(path: PathLike, config: AudioConfig = AudioConfig()) -> SampledAudio:
    """Sample ``config.patches`` windows of the sound track of ``path`` (see the module docstring).

    Returns:
      a :class:`SampledAudio`; ``present`` is False (and the waveform zeros) when the clip has no audio
      stream or is silent.

    Raises:
      AudioDecodeError: the file cannot be decoded.
    """
    path = os.fspath(path)
    stated = _stated_duration(path) if os.path.isfile(path) and os.path.getsize(path) else None
    # read up to the end of the last window only: the windows depend on the duration alone
    limit = config.max_seconds if stated is None else min(stated, config.max_seconds) + 1.0
    samples, rate, channels = decode_track(path, max_seconds=limit)
    if samples is None:
        logger.info("%s: no audio stream (missing modality)", path)
        return _absent(config.patches, "no audio stream")
    if stated is not None and stated > config.max_seconds:
        logger.info("%s: %.0f s track, windows placed in its first %.0f s", path, stated, config.max_seconds)
    if samples.size == 0:
        logger.info("%s: audio stream without samples (missing modality)", path)
        return _absent(config.patches, "silent", rate, channels)
    windows = cut_windows(samples, config.patches)
    duration = samples.size / SAMPLE_RATE
    if rms_dbfs(windows) < config.silence_dbfs:
        logger.info("%s: silent audio (missing modality)", path)
        return _absent(config.patches, "silent", rate, channels, duration)
    return SampledAudio(np.clip(windows, -1.0, 1.0), True, "", duration, rate, channels)


def write_audio(path: PathLike, samples: np.ndarray, rate: int, *, codec: Optional[str] = None,
                video_size: Optional[Tuple[int, int]] = None, fps: int = 10) -> None:
    """Encode float samples in [-1, 1] (``[N]`` mono or ``[N, C]``, C = 1 or 2) to ``path`` atomically.

    The codec follows the extension when not given (``.wav`` PCM, ``.mp4``/``.m4a`` AAC, ``.opus`` Opus,
    ``.flac`` FLAC). ``video_size=(h, w)`` adds a black H.264 video stream of the same length (a clip).
    """
    import av

    from data_interface_for_model.atomic import atomic_output_path

    samples = np.asarray(samples, np.float32)
    samples = samples[:, None] if samples.ndim == 1 else samples
    channels = samples.shape[1]
    if channels not in (1, 2):
        raise ValueError(f"{path}: 1 or 2 channels, got {channels}")
    ext = os.path.splitext(os.fspath(path))[1].lower()
    codec = codec or {".wav": "pcm_s16le", ".mp4": "aac", ".m4a": "aac", ".opus": "libopus",
                      ".flac": "flac"}.get(ext)
    if codec is None:
        raise ValueError(f"{path}: no default audio codec for {ext!r}")
    layout = "mono" if channels == 1 else "stereo"
    with atomic_output_path(path, suffix=ext) as tmp:
        with av.open(tmp, "w") as container:
            video = None
            if video_size is not None:
                video = container.add_stream("libx264", rate=fps)
                video.height, video.width = video_size
                video.pix_fmt = "yuv420p"
            stream = container.add_stream(codec, rate=rate, layout=layout)
            planar = not stream.format.name.startswith("s16") or stream.format.is_planar
            step = 1024
            for start in range(0, samples.shape[0], step):
                chunk = np.clip(samples[start:start + step], -1.0, 1.0)
                if stream.format.name == "s16":  # packed int16
                    frame = av.AudioFrame.from_ndarray((chunk.reshape(1, -1) * 32767).astype(np.int16),
                                                       format="s16", layout=layout)
                elif planar and stream.format.name == "s16p":
                    frame = av.AudioFrame.from_ndarray((chunk.T * 32767).astype(np.int16), format="s16p",
                                                       layout=layout)
                else:
                    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk.T), format="fltp", layout=layout)
                frame.rate, frame.pts = rate, start
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
            if video is not None:
                black = np.zeros((video_size[0], video_size[1], 3), np.uint8)
                for _ in range(max(1, int(round(samples.shape[0] / rate * fps)))):
                    for packet in video.encode(av.VideoFrame.from_ndarray(black, format="rgb24")):
                        container.mux(packet)
                for packet in video.encode(None):
                    container.mux(packet)


def demo_soundtrack(category_index: int, seconds: float, rng: np.random.Generator,
                    rate: int = SAMPLE_RATE) -> np.ndarray:
    """A synthetic sound track whose character depends on the category: float32 ``[seconds * rate]``.

    Each category has its own pitch (a note in two octaves above 110 Hz), tempo (1 to 3 pulses per second)
    and timbre (1 to 4 harmonics); each clip jitters the pitch by up to 3 % and the tempo by up to 10 %,
    starts at a random phase and carries a little noise. Used by the demo generator (``make-demo --audio``).
    """
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    f0 = 110.0 * 2 ** (((category_index * 5) % 24) / 12) * (1 + rng.uniform(-0.03, 0.03))
    tempo = (1.0 + 0.5 * (category_index % 5)) * (1 + rng.uniform(-0.1, 0.1))
    harmonics = 1 + category_index % 4
    phase = rng.uniform(0, 2 * np.pi)
    tone = sum(np.sin(2 * np.pi * f0 * h * t + phase * h) / h for h in range(1, harmonics + 1))
    envelope = 0.55 + 0.45 * np.cos(2 * np.pi * tempo * t + phase)
    wave = 0.25 * tone / harmonics ** 0.5 * envelope + 0.01 * rng.standard_normal(n)
    return np.clip(wave, -1.0, 1.0).astype(np.float32)


#: Background music of demo clips (``make-demo --audio --music``): each track's first this many seconds are
#: decoded once per process and kept (at most 7.7 MB a track at 16 kHz float32).
DEMO_MUSIC_MAX_SECONDS = 120.0
#: Loudness of a demo music segment: RMS 0.1 (-20 dBFS), peaks clipped to [-1, 1].
DEMO_MUSIC_RMS = 0.1


@functools.lru_cache(maxsize=32)
def demo_music_track(path: str) -> np.ndarray:
    """The first :data:`DEMO_MUSIC_MAX_SECONDS` of a music track as 16 kHz mono float32, decoded once per process
    (an LRU cache of 32 tracks bounds the memory).

    Raises:
      AudioDecodeError: the track cannot be decoded, has no audio stream or no samples (the error names it).
    """
    samples, _, _ = decode_track(path, max_seconds=DEMO_MUSIC_MAX_SECONDS)
    if samples is None or samples.size == 0:
        raise AudioDecodeError(f"{path}: demo music track without audio")
    samples.setflags(write=False)
    return samples


def demo_music_segment(track: np.ndarray, seconds: float, rng: np.random.Generator,
                       rate: int = SAMPLE_RATE) -> np.ndarray:
    """``seconds`` of ``track`` from an offset drawn with ``rng`` (the track repeated when shorter), scaled to
    :data:`DEMO_MUSIC_RMS`: float32 ``[seconds * rate]`` in [-1, 1]."""
    n = int(round(seconds * rate))
    if track.size < n:
        track = np.tile(track, -(-n // track.size))
    start = int(rng.integers(0, track.size - n + 1))
    segment = np.asarray(track[start:start + n], np.float64)
    rms = float(np.sqrt(np.mean(segment * segment))) if n else 0.0
    if rms > 1e-6:  # a silent passage stays silent
        segment = segment * (DEMO_MUSIC_RMS / rms)
    return np.clip(segment, -1.0, 1.0).astype(np.float32)


def mix_demo_sound(music: np.ndarray, tone: np.ndarray, tone_weight: float = 0.0) -> np.ndarray:
    """``(1 - tone_weight) * music + tone_weight * tone``, clipped to [-1, 1] (weight 0: the music alone)."""
    if not 0.0 <= tone_weight <= 1.0:
        raise ValueError(f"tone_weight must be in [0, 1], got {tone_weight}")
    if tone_weight == 0.0:
        return np.asarray(music, np.float32)
    mixed = (1.0 - tone_weight) * np.asarray(music, np.float32) + tone_weight * np.asarray(tone, np.float32)
    return np.clip(mixed, -1.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------------- log-mel


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's ``htk=False``): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep,
                    hz / f_sp)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def slaney_mel_matrix(sample_rate: int = SAMPLE_RATE, fft_size: int = FFT_SIZE, n_mels: int = N_MELS,
                      fmin: float = 0.0, fmax: Optional[float] = None) -> np.ndarray:
    """librosa's default mel filterbank (Slaney scale, Slaney area normalisation), ``[fft_size // 2 + 1, n_mels]``."""
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_freqs = np.linspace(0, sample_rate / 2, 1 + fft_size // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.T.astype(np.float32)


def log_mel(waveform, *, patch_frames: Optional[int] = PATCH_FRAMES):
    """musicnn's log-mel spectrogram of 16 kHz mono audio, in TensorFlow.

    Args:
      waveform: float ``[..., N]`` samples (a tensor or an array).
      patch_frames: crop or zero-pad the time axis to this many frames (None keeps ``1 + N // HOP``).

    Returns:
      float32 ``[..., frames, N_MELS]``: ``log10(10000 * mel_power + 1)``.
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(waveform, tf.float32)
    pad = FFT_SIZE // 2
    rank = x.shape.rank
    paddings = [[0, 0]] * (rank - 1) + [[pad, pad]]
    x = tf.pad(x, paddings, mode="REFLECT")  # librosa's centred STFT
    stft = tf.signal.stft(x, frame_length=FFT_SIZE, frame_step=HOP, fft_length=FFT_SIZE,
                          window_fn=tf.signal.hann_window, pad_end=False)
    power = tf.math.square(tf.math.abs(stft))
    mel = tf.tensordot(power, tf.constant(slaney_mel_matrix()), axes=1)
    logmel = tf.math.log(10000.0 * mel + 1.0) / tf.math.log(10.0)
    if patch_frames is not None:
        frames = tf.shape(logmel)[-2]
        logmel = logmel[..., :patch_frames, :]
        short = tf.maximum(0, patch_frames - frames)
        logmel = tf.pad(logmel, [[0, 0]] * (rank - 1) + [[0, short], [0, 0]])
        logmel = tf.ensure_shape(logmel, [None] * (rank - 1) + [patch_frames, N_MELS])
    return logmel


def log_mel_numpy(waveform: np.ndarray) -> np.ndarray:
    """:func:`log_mel` in numpy (float64 inside), ``[..., N]`` -> ``[..., 1 + N // HOP, N_MELS]`` float32.

    The reference the tests check the TF version against, and the log-mel of the paths that run without
    TensorFlow (``RawNumpyDataset``); a ``PATCH_SAMPLES`` window gives ``PATCH_FRAMES`` frames."""
    x = np.asarray(waveform, np.float64)
    x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(FFT_SIZE // 2, FFT_SIZE // 2)], mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(x, FFT_SIZE, axis=-1)[..., ::HOP, :]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FFT_SIZE) / FFT_SIZE)  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2
    return np.log10(10000.0 * power @ slaney_mel_matrix().astype(np.float64) + 1.0).astype(np.float32)


# ------------------------------------------------------------------------------ many clips (preparation)


def sample_audio_or_missing(path: PathLike, config: AudioConfig = AudioConfig()) -> SampledAudio:
    """:func:`sample_audio`, with a track that cannot be decoded reported as missing (``reason`` starts
    with ``"undecodable"``, a warning names the file) instead of raised: a clip whose pictures decode keeps
    its place in a dataset when its sound is corrupt."""
    try:
        return sample_audio(path, config)
    except AudioDecodeError as exc:
        logger.warning("audio treated as missing: %s", exc)
        return _absent(config.patches, f"undecodable: {exc}")


def clip_log_mel(path: PathLike, config: AudioConfig = AudioConfig()) -> Tuple[np.ndarray, bool, str]:
    """What preparation stores for a clip: ``(log-mel [P, PATCH_FRAMES, N_MELS] float32, present, reason)``.

    :func:`sample_audio_or_missing`, then :func:`log_mel_numpy` of the windows (the same values as
    :func:`log_mel` within 1e-5; it runs in the worker processes, which never import TensorFlow); a missing
    track gives zeros, which is also the log-mel of silence."""
    sampled = sample_audio_or_missing(path, config)
    if not sampled.present:
        return np.zeros((config.patches, PATCH_FRAMES, N_MELS), np.float32), False, sampled.reason
    return log_mel_numpy(sampled.waveform), True, ""


def _single_threaded_blas() -> None:
    """Worker initialiser: one BLAS thread per process (with a process per core, more only contend: the mel
    product of one clip took 20 ms with OpenBLAS's threads on a loaded 2-core machine, 1.5 ms without)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def map_clips(function, paths: Sequence[PathLike], config: AudioConfig = AudioConfig(), workers: int = 0,
              block: int = 64) -> Iterator:
    """``function(path, config)`` of every path, in order, in ``workers`` spawned processes (0: one per core,
    1: here), e.g. :func:`clip_log_mel` or :func:`sample_audio_or_missing`. Paths are handed out ``block``
    at a time, so memory stays bounded; the workers import this module's dependencies only (no TensorFlow)."""
    import concurrent.futures
    import functools
    import multiprocessing

    from data_interface_for_model.parallel import resolve_workers, spawn_is_safe

    from threadpoolctl import threadpool_limits

    paths = [os.fspath(p) for p in paths]
    workers = resolve_workers(workers)
    one = functools.partial(function, config=config)
    if workers == 1 or len(paths) <= 1 or not spawn_is_safe():
        for path in paths:
            with threadpool_limits(1, user_api="blas"):  # the small mel products: threads only contend
                result = one(path)
            yield result
        return
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=min(workers, len(paths)), mp_context=context,
                                                initializer=_single_threaded_blas) as pool:
        for start in range(0, len(paths), block):
            part = paths[start:start + block]
            yield from pool.map(one, part, chunksize=max(1, len(part) // (4 * workers)))
