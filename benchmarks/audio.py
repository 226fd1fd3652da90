"""Audio and background-music matching, measured on real music (the immich-memories-music tracks).

    python benchmarks/audio.py port [--patches 2]            # Keras port vs musicnn's own TF1 graph, tags
    python benchmarks/audio.py decode [--clips 20]           # decode rate: real tracks, clips with sound
    python benchmarks/audio.py prepare --data-root data/demo_audio --data-dir /tmp/bench_tfds   # with/without sound
    python benchmarks/audio.py classifier --data-root data/demo_audio --data-dir /tmp/bench_tfds   # with/without sound
    python benchmarks/audio.py video-embeddings --data-root data/demo --output videos.npz
    python benchmarks/audio.py matching --index music_index.npz --embeddings videos.npz --output runs/music

``port``: every library track's first ``--patches`` 3 s patches through the Keras port and through
``musicnn.models.define_model`` restored from the wheel's checkpoint (max abs difference per output, top-3
tags per track and whether both agree). ``decode``: PyAV decode + resample to 16 kHz mono of every library
track (x real time), and ``sample_audio`` on short mp4 clips with an AAC track (clips/s), log-mel per patch.
``prepare``: ``prepare_dataset`` of one layout root without and with ``--audio`` (forced rebuilds, in
alternating order), wall time, items/s and CPU seconds per item of the whole build (worker processes
included), shard bytes per example; then the sound pass alone (``audio.map_clips`` in as many worker
processes: PyAV decode and windows, then with the log-mel too).
``classifier``: the pretrained classifier's fusion head with and without the audio branch, trained on the
same cached encoder features and evaluated out of fold by stratified K-fold cross-validation over every
item (each fold: one K-th is the test set, one more part the validation set for early stopping): accuracy
with its Wilson 95% interval of the fusion head alone with every modality and with one alone (audio alone
included: the presence masks make the head single-modality), of the default probe ensemble (all
modalities), and of the linear probe on the same features (plus the windows' mean musicnn embedding for the
audio variant); and the CPU cost per example of the raw-input feature extraction (encoders).
``video-embeddings``: zero-shot video content embeddings of a dataset (pretrained MobileNetV2 on 4 frames,
mean-pooled, beside MiniLM on the brief; each half L2-normalised), the query side of the matcher.
``matching``: demo pairs (``retrieval.music.pairs.simulate_pairs``); one run per ``--label-dims`` value
(each choosing its prior weight on validation), all evaluated on validation with the baselines; the best
on validation is then evaluated once on test, with the baselines, with wall times. The machine is shared: the load average is printed beside the timings.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import data_interface_for_model  # noqa: E402,F401  (the Keras 2/3 switch before TensorFlow)


def load() -> str:
    return "load average %.1f %.1f %.1f" % os.getloadavg()


def port(args: argparse.Namespace) -> int:
    from baseline_model.encoders import musicnn
    from data_interface_for_model import audio
    from retrieval.music.library import immich_library_dir, scan_library

    tracks = scan_library(immich_library_dir())
    patches, owners = [], []
    for track in tracks:
        samples, _, _ = audio.decode_track(track.path, max_seconds=3.0 * args.patches + 1)
        p = musicnn.track_patches(audio.log_mel(samples, patch_frames=None).numpy())[:args.patches]
        patches.append(p)
        owners += [track.music_id] * len(p)
    batch = np.concatenate(patches)
    net = musicnn.build_musicnn(args.model)
    started = time.perf_counter()
    ours = net.predict(batch, batch_size=32, verbose=0)
    keras_s = time.perf_counter() - started
    started = time.perf_counter()
    reference = musicnn.original_forward(batch, args.model)
    reference_s = time.perf_counter() - started
    print(f"{len(tracks)} real tracks x {args.patches} patches = {batch.shape[0]} patches of {batch.shape[1]} frames")
    for key in ("logits", "penultimate", "mean_pool", "max_pool"):
        diff = np.abs(ours[key] - reference[key])
        print(f"  {key:12s} max abs diff {diff.max():.2e}   (largest |value| {np.abs(reference[key]).max():.1f})")
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    owners = np.array(owners)
    agree = 0
    for track in tracks:
        rows = owners == track.music_id
        mine = musicnn.top_tags(ours["tags"][rows].mean(0), args.model, 3)
        theirs = musicnn.top_tags(sigmoid(reference["logits"][rows]).mean(0), args.model, 3)
        agree += mine == theirs
        verdict = "same" if mine == theirs else "original: " + ", ".join(theirs)
        print(f"  {track.music_id:28s} {', '.join(mine):34s} {verdict}")
    print(f"top-3 tags identical on {agree}/{len(tracks)} tracks; forward: Keras {keras_s:.2f} s, original TF1 graph "
          f"(incl. building and restoring) {reference_s:.2f} s; {load()}")
    return 0


def decode(args: argparse.Namespace) -> int:
    import tempfile

    from data_interface_for_model import audio
    from retrieval.music.library import immich_library_dir, scan_library

    tracks = scan_library(immich_library_dir())
    started, seconds = time.perf_counter(), 0.0
    for track in tracks:
        samples, _, _ = audio.decode_track(track.path)
        seconds += samples.size / audio.SAMPLE_RATE
    spent = time.perf_counter() - started
    print(f"decode: {len(tracks)} Opus 48 kHz stereo tracks, {seconds:.0f} s of audio in {spent:.1f} s "
          f"({seconds / spent:.0f}x real time, {len(tracks) / spent:.1f} tracks/s)")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.clips):
            t = np.arange(int(8 * 44100)) / 44100
            wave = 0.3 * np.sin(2 * np.pi * (200 + 40 * i) * t) + 0.05 * rng.standard_normal(t.size)
            path = os.path.join(tmp, f"clip{i}.mp4")
            audio.write_audio(path, np.stack([wave, wave], 1), 44100, video_size=(96, 160), fps=12)
            paths.append(path)
        started = time.perf_counter()
        waves = [audio.sample_audio(p).waveform for p in paths]
        spent = time.perf_counter() - started
        print(f"sample_audio: {args.clips} 8 s clips (H.264 + AAC 44.1 kHz stereo), {audio.DEFAULT_PATCHES} windows "
              f"each: {args.clips / spent:.1f} clips/s ({1000 * spent / args.clips:.0f} ms/clip)")
    batch = np.concatenate(waves)
    audio.log_mel(batch[:2])  # trace
    started = time.perf_counter()
    for _ in range(5):
        audio.log_mel(batch)
    spent = (time.perf_counter() - started) / 5
    per_patch = 1000 * spent / batch.shape[0]
    print(f"log_mel (tf.signal): {batch.shape[0]} patches in {1000 * spent:.0f} ms ({per_patch:.1f} ms/patch); {load()}")
    return 0


def _cpu_seconds() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _shard_bytes(folder: str) -> int:
    import glob

    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(folder, "*.array_record-*")))


def prepare(args: argparse.Namespace) -> int:
    from data_interface_for_model import audio
    from data_interface_for_model.layout import LayoutReader
    from data_interface_for_model.prepare import prepare_dataset

    results = {0: [], args.audio_windows: []}
    for round_ in range(args.repeats):
        for patches in ((0, args.audio_windows) if round_ % 2 == 0 else (args.audio_windows, 0)):
            cpu, started = _cpu_seconds(), time.perf_counter()
            report = prepare_dataset(args.data_root, args.data_dir, num_frames=args.frames, size=args.image_size,
                                     workers=args.workers, progress=False, force=True, audio_patches=patches)
            results[patches].append((time.perf_counter() - started, _cpu_seconds() - cpu, report))
    for patches, runs in results.items():
        wall, cpu, report = min(runs, key=lambda run: run[0])
        n = report.num_examples
        print(f"prepare {report.config_name}: {n} items, best of {len(runs)}: {wall:.1f} s wall "
              f"({n / wall:.2f} items/s), {cpu / n:.3f} CPU s/item, {_shard_bytes(report.dataset_dir) / n / 1024:.0f} "
              f"KiB/example (array_record)")
    paths = [item.video_path for item in LayoutReader(args.data_root)]
    config = audio.AudioConfig(patches=args.audio_windows)
    for name, function in (("decode + windows", audio.sample_audio_or_missing),
                           ("decode + windows + log-mel", audio.clip_log_mel)):
        cpu, started = _cpu_seconds(), time.perf_counter()
        clips = list(audio.map_clips(function, paths, config, workers=args.workers))
        wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
        print(f"sound pass ({name}): {len(paths)} clips in {wall:.1f} s with {args.workers} workers: "
              f"{len(paths) / wall:.1f} clips/s, {1000 * cpu / len(paths):.0f} CPU ms/clip")
    present = [c for c in clips if c[1]]
    print(f"{len(present)} of {len(paths)} clips have sound; {load()}")
    return 0


CONDITIONS = {"all": (1, 1, 1, 1), "text only": (1, 0, 0, 0), "cover only": (0, 1, 0, 0),
              "video only": (0, 0, 1, 0), "audio only": (0, 0, 0, 1), "all but audio": (1, 1, 1, 0)}


def _pooled_arrays(kind, train, splits) -> dict:
    from baseline_model.features import feature_arrays

    parts = feature_arrays(kind, train, splits)
    arrays = {key: np.concatenate([parts[s][key] for s in splits]) for key in parts[splits[0]]}
    order = np.argsort(arrays["id"])
    return {key: value[order] for key, value in arrays.items()}


def _extraction_cpu(kind, train, count: int = 64) -> float:
    """CPU seconds per example of raw inputs -> the head's features (the frozen encoders), batches of 32."""
    from data_interface_for_model.tf_dataset import make_dataset

    extractor = kind.feature_extractor()
    dataset = make_dataset(train.data_dir, "train", 32, num_frames=kind.config.num_frames,
                           size=kind.config.image_size, shuffle=False, audio_patches=kind.config.audio_windows)
    batches = [features for features, _ in dataset.take(count // 32)]
    keys = ("text", "cover", "frames") + (("audio",) if kind.config.audio_windows else ())
    extractor.predict_on_batch({k: batches[0][k] for k in keys})  # trace
    cpu = _cpu_seconds()
    for features in batches:
        extractor.predict_on_batch({k: features[k] for k in keys})
    return (_cpu_seconds() - cpu) / sum(int(f["text"].shape[0]) for f in batches)


def classifier(args: argparse.Namespace) -> int:
    import dataclasses

    import keras
    from sklearn.model_selection import StratifiedKFold

    from baseline_model.config import TrainConfig
    from baseline_model.features import features_dataset
    from baseline_model.kinds.pretrained import Pretrained, PretrainedConfig
    from baseline_model.metrics import wilson_interval
    from baseline_model.probe import fit_probe, probe_inputs
    from data_interface_for_model.prepare import prepare_dataset, prepared_labels

    splits = ("train", "validation", "test")
    train = TrainConfig(data_root=args.data_root, data_dir=args.data_dir, epochs=args.epochs, seed=args.seed,
                        learning_rate=2e-3)
    for windows in (0, args.audio_windows):
        prepare_dataset(args.data_root, args.data_dir, num_frames=args.frames, size=args.image_size,
                        audio_patches=windows, progress=False)
    labels = prepared_labels(args.data_dir, args.frames, args.image_size)
    # the fusion head alone (presence masks make it single-modality) and the default probe ensemble
    kinds = {name: Pretrained(PretrainedConfig(num_frames=args.frames, image_size=args.image_size,
                                               audio_windows=windows, probe_ensemble=False))
             for name, windows in (("without audio", 0), ("with audio", args.audio_windows))}
    arrays = {name: _pooled_arrays(kind, train, splits) for name, kind in kinds.items()}
    ids = arrays["without audio"]["id"]
    assert (arrays["with audio"]["id"] == ids).all(), "the two caches hold other items"
    y = arrays["without audio"]["label"].astype(int)
    sound = arrays["with audio"]["presence"][:, 3]
    outer = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
    predicted = {}  # (model, condition) -> out-of-fold predicted labels
    started = time.perf_counter()
    for fold, (rest, test) in enumerate(outer.split(y, y)):
        inner = StratifiedKFold(n_splits=args.folds - 1, shuffle=True, random_state=args.seed + 1 + fold)
        train_at, val_at = next(inner.split(y[rest], y[rest]))
        fit_at, val = rest[train_at], rest[val_at]
        for name, kind in kinds.items():
            part = lambda index: {k: v[index] for k, v in arrays[name].items()}  # noqa: E731
            keras.utils.set_random_seed(args.seed + fold)
            head = kind.fit_on_features(train, part(fit_at), part(val), len(labels))
            for condition, mask in CONDITIONS.items():
                if name == "without audio" and condition in ("audio only", "all but audio"):
                    continue
                presence = mask if name == "with audio" else mask[:3]
                probs = head.predict(features_dataset(part(test), 64, shuffle=False, presence_override=presence),
                                     verbose=0)
                predicted.setdefault((name, condition), np.zeros(len(y), int))[test] = probs.argmax(1)
            ensemble = Pretrained(dataclasses.replace(kind.config, probe_ensemble=True))
            keras.utils.set_random_seed(args.seed + fold)
            model = ensemble.fit_on_features(train, part(fit_at), part(val), len(labels))
            predicted.setdefault((name, "probe ensemble"), np.zeros(len(y), int))[test] = model.predict(
                features_dataset(part(test), 64, shuffle=False), verbose=0).argmax(1)
            x = probe_inputs(arrays[name])  # with audio: the mean sound embedding too
            probe = fit_probe(x[fit_at], y[fit_at], x[val], y[val], len(labels), seed=args.seed)
            predicted.setdefault((name, "linear probe"), np.zeros(len(y), int))[test] = \
                probe.predict_proba(x[test]).argmax(1)
            if name == "with audio":  # the simple reference for sound alone: the probe on the mean embedding
                xa = np.concatenate([arrays[name]["audio_features"].mean(1), arrays[name]["presence"][:, 3:]], 1)
                probe = fit_probe(xa[fit_at], y[fit_at], xa[val], y[val], len(labels), seed=args.seed)
                predicted.setdefault((name, "linear probe, audio only"), np.zeros(len(y), int))[test] = \
                    probe.predict_proba(xa[test]).argmax(1)
        print(f"fold {fold + 1}/{args.folds} done ({time.perf_counter() - started:.0f} s)", flush=True)
    columns = list(CONDITIONS) + ["probe ensemble", "linear probe", "linear probe, audio only"]
    print(f"{len(y)} items, {len(labels)} classes, {int(sound.sum())} with sound; {args.folds}-fold out-of-fold "
          f"accuracy [Wilson 95%] (fusion head alone under the masks; then the default probe ensemble, all "
          f"modalities, and the linear probe):")
    print("| model | " + " | ".join(columns) + " |")
    for name in kinds:
        cells = []
        for condition in columns:
            if (name, condition) not in predicted:
                cells.append("–")
                continue
            correct = int((predicted[(name, condition)] == y).sum())
            low, high = wilson_interval(correct, len(y))
            cells.append(f"{correct / len(y):.3f} [{low:.2f}–{high:.2f}]")
        print(f"| {name} | " + " | ".join(cells) + " |")
    silent = sound == 0
    for name in kinds:
        right = predicted[(name, "all")] == y
        print(f"{name} (head, all): accuracy on the {int(silent.sum())} silent clips {right[silent].mean():.3f}, "
              f"on the {int((~silent).sum())} with sound {right[~silent].mean():.3f}")
    if args.extraction_cpu:
        for name, kind in kinds.items():
            print(f"{name}: raw inputs -> head features, {1000 * _extraction_cpu(kind, train):.0f} CPU ms/example "
                  f"(frozen encoders, batches of 32; decoding is counted in `prepare`)")
    print(load())
    return 0


def video_embeddings(args: argparse.Namespace) -> int:
    import tensorflow as tf
    from tqdm import tqdm

    from baseline_model.encoders import build_image_encoder, build_text_encoder
    from data_interface_for_model.decoding import sample_clip
    from data_interface_for_model.embeddings_file import write_embeddings
    from data_interface_for_model.layout import iter_layout

    items = list(iter_layout(args.data_root))
    image = build_image_encoder(input_size=args.image_size)
    text = build_text_encoder()
    started = time.perf_counter()
    frames = np.stack([sample_clip(item.video_path, args.frames, args.image_size).frames
                       for item in tqdm(items, desc="decoding", unit="clip")])
    pictures = image.predict(frames.reshape((-1,) + frames.shape[2:]).astype(np.float32) / 255.0, batch_size=64,
                             verbose=0).reshape(len(items), args.frames, -1).mean(axis=1)
    briefs = text.predict(tf.constant([item.brief for item in items]), batch_size=64, verbose=0)
    unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)  # noqa: E731
    vectors = np.concatenate([unit(pictures), unit(briefs)], axis=1).astype(np.float32)
    write_embeddings(args.output, [i.mp4_id for i in items], [i.label for i in items], vectors)
    print(f"video-embeddings: {len(items)} videos x {vectors.shape[1]} (MobileNetV2 frames + MiniLM brief) in "
          f"{time.perf_counter() - started:.1f} s -> {args.output}; {load()}")
    return 0


def matching(args: argparse.Namespace) -> int:
    from data_interface_for_model.embeddings_file import read_embeddings
    from retrieval.music.config import MatcherConfig
    from retrieval.music.library import load_index
    from retrieval.music.metrics import format_table
    from retrieval.music.pairs import DemoPairsConfig, simulate_pairs, usage_counts, write_pairs
    from retrieval.music.run import evaluate_run, load_run, train_run

    index = load_index(args.index)
    videos = read_embeddings(args.embeddings)
    pairs = simulate_pairs(videos.ids, videos.labels, videos.vectors, index.ids, index.moods, index.vectors,
                           index.genres, DemoPairsConfig(seed=args.seed))
    os.makedirs(os.path.abspath(args.output), exist_ok=True)
    pairs_path = os.path.join(args.output, "pairs.csv")
    write_pairs(pairs_path, pairs)
    used = usage_counts(pairs)
    print(f"pairs: {len(pairs)} videos over {len(used)} of {len(index)} tracks (most used {max(used.values())})")
    label_dims = [int(d) for d in args.label_dims.split(",")]
    chosen, best, results = None, None, {}
    for label_dim in label_dims:  # every variant trained and judged on validation; the prior weight is chosen
        folder = os.path.join(args.output, f"label{label_dim}")  # inside train_run, on validation too
        started = time.perf_counter()
        _, info = train_run(args.index, args.embeddings, pairs_path, folder,
                            MatcherConfig(epochs=args.epochs, seed=args.seed, label_dim=label_dim),
                            split_seed=args.seed, overwrite=True)
        train_s = time.perf_counter() - started
        run = load_run(folder)
        result = evaluate_run(run, "validation")
        full = result["full"]["two-tower"]
        score = full["R@10"] - 1e-3 * full["MedR"]
        search = ", ".join(f"{r['beta']:g}: {r['R@10']:.3f}/{r['MedR']:.0f}" for r in info["beta_search"])
        print(f"\nvariant label_dim={label_dim}: training {train_s:.1f} s ({info['train_seconds']:.1f} s fitting, "
              f"best epoch {info['best_epoch']} of {args.epochs}), sizes {info['sizes']}")
        print(f"  validation prior-weight search (beta: R@10/MedR): {search}; chosen {info['prior_beta']:g}")
        print(f"validation: full ranking over {len(index)} tracks (DecCM: {result['negatives']} sampled negatives)")
        print(format_table(result["full"]))
        results[label_dim] = result
        if best is None or score > best:
            chosen, best = label_dim, score
    print(f"\nchosen on validation (R@10, MedR breaks ties): label_dim={chosen}")
    run = load_run(os.path.join(args.output, f"label{chosen}"))
    result = evaluate_run(run, "test")  # the test split, once, for the chosen variant
    print(f"\ntest: DecCM protocol, positive among {result['negatives']} sampled negatives")
    print(format_table(result["deccm"]))
    print(f"test: full ranking over {len(index)} tracks")
    print(format_table(result["full"]))
    print(f"evaluation {result['seconds']:.2f} s; {load()}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("port", help="Keras port vs the original TF1 graph on real tracks")
    p.add_argument("--patches", type=int, default=2)
    p.add_argument("--model", default="MTT_musicnn")
    p.set_defaults(func=port)
    p = verbs.add_parser("decode", help="decode and log-mel rates")
    p.add_argument("--clips", type=int, default=20)
    p.set_defaults(func=decode)
    prepared = argparse.ArgumentParser(add_help=False)  # what the prepare and classifier verbs both read
    prepared.add_argument("--data-root", required=True)
    prepared.add_argument("--data-dir", required=True)
    prepared.add_argument("--frames", type=int, default=8)
    prepared.add_argument("--image-size", type=int, default=112)
    prepared.add_argument("--audio-windows", type=int, default=2)
    p = verbs.add_parser("prepare", parents=[prepared],
                         help="prepare throughput with and without sound, sound decode rate")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.set_defaults(func=prepare)
    p = verbs.add_parser("classifier", parents=[prepared],
                         help="the classifier with and without the audio branch (cross-validated)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--no-extraction-cpu", dest="extraction_cpu", action="store_false",
                   help="skip the encoders' CPU cost per example")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=classifier)
    p = verbs.add_parser("video-embeddings", help="zero-shot video content embeddings of a dataset")
    p.add_argument("--data-root", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--image-size", type=int, default=112)
    p.set_defaults(func=video_embeddings)
    p = verbs.add_parser("matching", help="demo pairs, train, evaluate with baselines")
    p.add_argument("--index", required=True)
    p.add_argument("--embeddings", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label-dims", default="0,16",
                   help="video-tower category embedding sizes to train, comma-separated; the best on validation "
                        "is reported on test (default 0,16)")
    p.set_defaults(func=matching)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
