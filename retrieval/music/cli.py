"""Verbs of background-music matching: ``index | train | evaluate | recommend | export``.

``python -m retrieval.music VERB`` (and ``xinpianchang music VERB`` once the front door lists this module).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

from data_interface_for_model.cli import (
    UsageError,
    add_common_arguments,
    add_model_base,
    add_output,
    add_run,
    add_split,
    positive_int,
    verb_main,
)


def _progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False)


def _index(args: argparse.Namespace) -> int:
    import time

    from retrieval.music.library import embed_library, immich_library_dir, save_index, scan_library

    if not args.output.endswith(".npz"):  # checked before the long embedding pass
        raise UsageError(f"index: --output {args.output}: a music index is a .npz file")
    if args.demo_pairs and not args.pairs_output:
        raise UsageError("index: --demo-pairs needs --pairs-output FILE")
    if args.demo_pairs and not os.path.isfile(args.demo_pairs):
        raise FileNotFoundError(f"index: --demo-pairs {args.demo_pairs}: no such file")
    folder = args.library or immich_library_dir()
    started = time.perf_counter()
    tracks = scan_library(folder)
    index = embed_library(tracks, model=args.model, progress=_progress(args), max_seconds=args.max_seconds)
    save_index(args.output, index)
    seconds = time.perf_counter() - started
    moods = sorted({m for m in index.moods.tolist() if m})
    left_out = len(tracks) - len(index)
    print(f"index: {len(index)} tracks ({left_out} left out) from {folder}, {args.model} "
          f"{index.vectors.shape[1]}-d, moods: {', '.join(moods) or 'none'}, {seconds:.1f} s -> {args.output}")
    if args.demo_pairs:
        from data_interface_for_model.embeddings_file import read_embeddings
        from retrieval.music.pairs import DemoPairsConfig, simulate_pairs, usage_counts, write_pairs

        videos = read_embeddings(args.demo_pairs)
        pairs = simulate_pairs(videos.ids, videos.labels, videos.vectors, index.ids, index.moods, index.vectors,
                               index.genres, DemoPairsConfig(seed=args.seed))
        write_pairs(args.pairs_output, pairs)
        used = usage_counts(pairs)
        print(f"index: {len(pairs)} demo pairs over {len(used)} tracks (most used: {max(used.values())} videos) "
              f"-> {args.pairs_output}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from retrieval.music.config import MatcherConfig
    from retrieval.music.run import train_run

    config = MatcherConfig(epochs=args.epochs, batch_size=args.batch_size, embedding_dim=args.embedding_dim,
                           temperature=args.temperature, seed=args.seed, label_dim=args.label_dim,
                           prior_beta=args.prior_beta)
    path, info = train_run(args.index, args.embeddings, args.pairs, args.output, config, negatives=args.negatives,
                           split_seed=args.seed, overwrite=args.overwrite, progress=_progress(args))
    sizes = info["sizes"]
    print(f"train: {sizes['train']}/{sizes['validation']}/{sizes['test']} pairs (train/validation/test), "
          f"{info['tracks']} tracks, best epoch {info['best_epoch']} of {config.epochs}, "
          f"prior weight {info['prior_beta']:g}, {info['train_seconds']:.1f} s -> {path}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from retrieval.music.metrics import format_table
    from retrieval.music.run import evaluate_run, load_run

    run = load_run(args.run)
    result = evaluate_run(run, args.split)
    n = result["deccm"]["two-tower"]["n"]
    print(f"DecCM protocol: the positive among {result['negatives']} sampled negatives ({args.split}, {n} videos)")
    print(format_table(result["deccm"]))
    print(f"\nfull ranking over the library ({len(run.index)} tracks)")
    print(format_table(result["full"]))
    if args.json:
        from data_interface_for_model.atomic import atomic_write

        with atomic_write(args.json, "w", encoding="utf-8") as handle:
            json.dump({"split": args.split, **result}, handle, indent=2)
    model, prior = result["full"]["two-tower"], result["full"]["category-prior"]
    print(f"evaluate: {args.split} full-ranking R@10 {model['R@10']:.3f} (category prior {prior['R@10']:.3f}), "
          f"MedR {model['MedR']:.1f} (prior {prior['MedR']:.1f}), {result['seconds']:.2f} s")
    return 0


def _recommend(args: argparse.Namespace) -> int:
    from retrieval.music.run import load_run, recommend

    run = load_run(args.run)
    table = run.videos
    if args.embeddings:
        from data_interface_for_model.embeddings_file import read_embeddings

        table = read_embeddings(args.embeddings)
    row = table.index_of()
    if args.video not in row:
        source = args.embeddings or os.path.join(args.run, "video_embeddings.npz")
        raise KeyError(f"video {args.video!r} is not in {source}")
    ids, scores = recommend(run, table.vectors[[row[args.video]]], table.labels[[row[args.video]]], k=args.k)
    moods = run.index.mood_of()
    for rank, (music, score) in enumerate(zip(ids[0], scores[0]), start=1):
        print(f"{rank:3d}  {music}  {score:7.4f}  {moods.get(str(music), '')}")
    print(f"recommend: {len(ids[0])} tracks for video {args.video} ({table.labels[row[args.video]]})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from retrieval.music.export import SIGNATURE, export_run

    path = export_run(args.run, args.model_base, version=args.version, k=args.k)
    print(f"export: {SIGNATURE} (k={args.k}) -> {path}")
    return 0


def add_verbs(verbs) -> None:
    """Add ``index``, ``train``, ``evaluate``, ``recommend`` and ``export`` to a subparsers action."""
    p = verbs.add_parser("index", help="embed a music library with musicnn (default: the real demo tracks)",
                         description="Decode every track of a music library folder (one folder per mood, or a "
                                     "library.csv), embed it with the pretrained musicnn encoder and write a music "
                                     "index (.npz). Optionally simulate demo (video, music) pairs for videos.")
    p.add_argument("--library", metavar="DIR",
                   help="music library folder (default: the 28 tracks of immich-memories-music)")
    add_output(p, default="music_index.npz", help="music index to write (.npz)", metavar="FILE")
    p.add_argument("--model", default="MTT_musicnn", choices=("MTT_musicnn", "MSD_musicnn"),
                   help="musicnn checkpoint (default MTT_musicnn)")
    p.add_argument("--max-seconds", type=float, default=600.0,
                   help="embed at most this much of each track (default 600)")
    p.add_argument("--demo-pairs", metavar="EMBEDDINGS",
                   help="also simulate one background track per video of this embedding file (see docs/audio.md)")
    p.add_argument("--pairs-output", metavar="FILE", help="pairs csv to write with --demo-pairs")
    p.add_argument("--seed", type=int, default=0, help="seed of the demo pairs (default 0)")
    add_common_arguments(p)
    p.set_defaults(func=_index)

    p = verbs.add_parser("train", help="train the video -> music two-tower matcher (TFRS) into a run folder",
                         description="Split the pairs 80/10/10 by video, train the two towers contrastively, keep "
                                     "the epoch with the best validation R@10, choose the weight of the category "
                                     "log-prior on validation, and write a run folder with DecCM's "
                                     "evaluation files (sampled negatives, inverse-popularity weights).")
    p.add_argument("--index", required=True, metavar="FILE", help="music index from `index`")
    p.add_argument("--embeddings", required=True, metavar="FILE", help="video content embeddings (.parquet or .npz)")
    p.add_argument("--pairs", required=True, metavar="FILE", help="pairs csv: video_id,music_id")
    add_output(p, help="run folder to write", metavar="RUN")
    p.add_argument("--epochs", type=positive_int, default=40, help="epochs (default 40)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="batch size (default 64)")
    p.add_argument("--embedding-dim", type=positive_int, default=64, help="tower output size (default 64)")
    p.add_argument("--temperature", type=float, default=0.1, help="softmax temperature (default 0.1)")
    p.add_argument("--label-dim", type=int, default=0,
                   help="size of a learned category embedding beside the content in the video tower; 0 = content "
                        "only (default 0, the demo's validation choice: docs/audio.md)")
    p.add_argument("--prior-beta", type=float, default=None,
                   help="weight of log P(track | category) (fitted on the training pairs) added to the towers' "
                        "logit; default: chosen on the validation split from 0, 0.25, 0.5, 1, 2, 4, 8")
    p.add_argument("--negatives", type=positive_int, default=100,
                   help="sampled negatives per evaluation video, DecCM's protocol (default 100; at most tracks - 1)")
    p.add_argument("--seed", type=int, default=0, help="split and training seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    add_common_arguments(p)
    p.set_defaults(func=_train)

    p = verbs.add_parser("evaluate", help="DecCM's protocol and full ranking, beside random / most-used / prior",
                         description="Rank each video's background track among its sampled negatives (DecCM: "
                                     "Recall@1/5/10, MedR, inverse-popularity weighted) and among the whole library, "
                                     "for the model and the random, most-used and category mood-prior baselines.")
    add_run(p, help="music run folder to read")
    add_split(p)
    p.add_argument("--json", metavar="FILE", help="also write the metrics as JSON")
    add_common_arguments(p)
    p.set_defaults(func=_evaluate)

    p = verbs.add_parser("recommend", help="background music for a video",
                         description="Print the top tracks for one video of the run's (or another) embedding file.")
    add_run(p, help="music run folder to read")
    p.add_argument("--video", required=True, help="video id")
    p.add_argument("--embeddings", metavar="FILE", help="video embeddings holding the video (default: the run's)")
    p.add_argument("--k", type=positive_int, default=10, help="tracks to list (default 10)")
    add_common_arguments(p)
    p.set_defaults(func=_recommend)

    p = verbs.add_parser("export", help="export a TF Serving model with a recommend_music signature",
                         description="Write MODELS/music_matcher/<version>/ (atomic): video_embedding [B, D] "
                                     "(and video_label str [B], the video's category, when the run uses it) -> "
                                     "music_ids, scores, moods [B, k].")
    add_run(p, help="music run folder to read")
    add_model_base(p)
    p.add_argument("--version", type=positive_int, help="version number (default: the next free one)")
    p.add_argument("--k", type=positive_int, default=10, help="tracks per video (default 10)")
    add_common_arguments(p)
    p.set_defaults(func=_export)


def build_parser(prog: str = "python -m retrieval.music") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_verbs(parser.add_subparsers(dest="verb", required=True, metavar="VERB"))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    return verb_main(build_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
