"""`python -m baseline_model VERB` (also `xinpianchang classifier VERB`): train, evaluate, export, embed, predict."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from data_interface_for_model import cli


def _check_run(run: str) -> None:
    """Refuse a folder that is not a run before TensorFlow is imported (a clear one-line error, fast)."""
    from baseline_model.config import load_run_config

    load_run_config(run)


def _cmd_train(args: argparse.Namespace) -> int:
    from baseline_model.train_job import run_train

    return run_train(args)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    _check_run(args.run)
    from baseline_model.evaluate import comparison_line, evaluate_run

    report = evaluate_run(args.run, split=args.split, json_out=args.output, cv=args.cv)
    for name in ("text_only", "cover_only", "video_only"):
        print(f"  {name:<11} accuracy {report[name]['accuracy']:.3f}  macro-F1 {report[name]['macro_f1']:.3f}")
    print(f"evaluate: {report['model']} on {args.split} ({report['examples']} items): accuracy "
          f"{report['accuracy']:.3f}, top-5 {report['top5_accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}; "
          f"report {report['report_json']}, confusion matrix {report['confusion_matrix_png']}")
    print(comparison_line(report))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    _check_run(args.run)
    from baseline_model.export import export_run

    paths = export_run(args.run, args.model_base, args.version)
    print("export: " + ", ".join(f"{name} -> {path}" for name, path in paths.items()))
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    if not args.output:
        raise cli.UsageError("embed needs --output FILE (.parquet or .npz)")
    if sum(map(bool, (args.data_root, args.input, args.items))) != 1:
        raise cli.UsageError("embed needs one of --data-root ROOT (a prepared layout), --input PATH... (any "
                             "videos) or --items ITEMS.csv (catalog items with a title and/or a cover, no video)")
    if args.runner and not args.data_root:
        raise cli.UsageError("embed --runner runs over a prepared layout (--data-root ROOT); --input and --items "
                             "embed in this process (drop --runner)")
    _check_run(args.run)
    if args.items:
        from baseline_model.embed import embed_items

        count = embed_items(args.run, args.items, args.output, batch_size=args.batch_size, progress=not args.quiet)
        print(f"embed: wrote {count} item embeddings (title and cover, no video) to {args.output}")
        return 0
    if args.input:
        return _stream(args, output=None, embeddings=args.output, verb="embed")
    if args.runner:  # Apache Beam RunInference over the run's exported embedder (docs/beam.md)
        from baseline_model.beam_inference import inference_verb

        return inference_verb(args, "embed")
    from baseline_model.embed import embed_run

    count = embed_run(args.run, args.data_root, args.output, args.data_dir)
    print(f"embed: wrote {count} item embeddings to {args.output}")
    return 0


def _stream(args: argparse.Namespace, output: Optional[str], embeddings: Optional[str], verb: str) -> int:
    from baseline_model.predict import predict_videos

    summary = predict_videos(args.run, args.input, output, top_k=getattr(args, "top_k", 1), embeddings=embeddings,
                             batch_size=args.batch_size, progress=not args.quiet)
    where = ", ".join(p for p in (output, embeddings) if p)
    print(f"{verb}: {summary.written} clips -> {where}; {len(summary.failed)} unreadable skipped; "
          f"{summary.clips_per_second:.1f} clips/s")
    return 1 if summary.failed else 0


def _cmd_predict(args: argparse.Namespace) -> int:
    if args.runner:  # Apache Beam RunInference over the run's exported classifier (docs/beam.md)
        _check_run(args.run)
        from baseline_model.config import load_run_config

        if load_run_config(args.run)[0].audio_windows:
            raise cli.UsageError(f"predict --runner does not decode sound yet; {args.run} is an audio run: "
                                 "predict it in this process (drop --runner)")
        from baseline_model.beam_inference import predict_verb

        return predict_verb(args)
    if not args.output.lower().endswith((".csv", ".jsonl", ".json", ".ndjson")):
        raise cli.UsageError(f"--output {args.output!r}: write predictions as .csv or .jsonl")
    _check_run(args.run)
    return _stream(args, output=args.output, embeddings=args.embeddings, verb="predict")


def add_verbs(verbs) -> None:
    """Add the classifier's verbs to an argparse subparsers action."""
    from baseline_model.train_job import DESCRIPTION, add_train_arguments

    train = verbs.add_parser("train", help="prepare, train, evaluate on the test split and export (the main job)",
                             description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(train)  # includes the common --quiet/--verbose
    train.set_defaults(func=_cmd_train)

    evaluate = verbs.add_parser(
        "evaluate", help="accuracy, top-5, macro-F1, per-class P/R, confusion matrix, single-modality results",
        description="Evaluate a run on a prepared split: accuracy with its 95% (Wilson) interval, top-5, "
                    "macro-F1, per-class precision and recall, the confusion matrix as a PNG, each modality "
                    "alone, and a linear probe on the same frozen features and split; writes a JSON report.")
    cli.add_run(evaluate, help="the training run folder")
    cli.add_split(evaluate)
    cli.add_output(evaluate, required=False, help="write the report here (default RUN/report.json)",
                   metavar="FILE.json", aliases=("--json",))
    evaluate.add_argument("--cv", type=cli.positive_int, default=0, metavar="K",
                          help="also run stratified K-fold cross-validation over every item (model and linear "
                               "probe retrained on each fold from the cached features)")
    cli.add_common_arguments(evaluate)
    evaluate.set_defaults(func=_cmd_evaluate)

    export = verbs.add_parser(
        "export", help="SavedModels in TF Serving's layout (classifier, embedder)",
        description="Export a run's classifier and embedder as SavedModels taking raw briefs and JPEG bytes, "
                    "in TF Serving's layout MODELS/<name>/<version>/.")
    cli.add_run(export, help="the training run folder")
    cli.add_model_base(export, default=None, help="TF Serving model base (default RUN/export)",
                       aliases=("--export-base",))
    export.add_argument("--version", type=cli.positive_int, help="version number (default: the next free one)")
    cli.add_common_arguments(export)
    export.set_defaults(func=_cmd_export)

    embed = verbs.add_parser(
        "embed", help="the embedding of every item, for the recommender",
        description="Write the penultimate embedding of every item of a dataset (all splits) with its id and "
                    "label, as .parquet or .npz, for the recommender.")
    cli.add_run(embed, help="the training run folder")
    cli.add_data_root(embed, required=False, help="dataset root in the xinpianchang layout (prepared, all splits)")
    embed.add_argument("--input", nargs="+", metavar="PATH",
                       help="instead of --data-root: videos, folders, globs or list files (as predict; "
                            "incomplete and unlabelled items welcome; .parquet output)")
    embed.add_argument("--items", metavar="ITEMS.csv",
                       help="instead of --data-root: catalog items without video, a CSV with id, title and/or "
                            "cover (a picture path, relative to the CSV) and optionally label; embedded with the "
                            "run's text and image encoders, the video missing")
    embed.add_argument("--batch-size", type=cli.positive_int, default=16,
                       help="clips (or --items rows) per batch with --input or --items")
    # not required=True: argparse would then refuse the hidden alias --out; checked in the verb instead
    cli.add_output(embed, required=False, help="output file, .parquet or .npz (required)", metavar="FILE",
                   aliases=("--out",))
    cli.add_data_dir(embed, help="where to prepare the root's shards (default: the run's or RUN/embed_data)")
    from data_interface_for_model.beam_prepare import add_runner_arguments

    add_runner_arguments(embed, what="the embedding (--output is then a folder of parquet shards)")
    cli.add_common_arguments(embed)
    embed.set_defaults(func=_cmd_embed)

    predict = verbs.add_parser(
        "predict", help="classify any videos (folders, globs, list files) with a run; CSV or JSON lines out",
        description="Classify every video (.mp4 .mov .webm .mkv) of folders, globs, videos or list files "
                    "(.txt: one path a line; .csv: path[,id][,brief]) with a trained run. The cover is a "
                    "sidecar picture or a frame of the clip; the brief a CSV column, a sidecar .txt/.json, or "
                    "none. Streams in batches; an unreadable video is named, skipped and counted (exit 1).")
    cli.add_run(predict, help="the training run folder")
    predict.add_argument("--input", nargs="+", required=True, metavar="PATH",
                         help="videos, folders (recursive), glob patterns or list files")
    cli.add_output(predict, help="predictions: .csv or .jsonl (id, path, top-k labels and probabilities); with "
                                 "--runner a folder of parquet shards, or OUT.csv/.jsonl for shards OUT-*-of-*.csv",
                   metavar="FILE")
    predict.add_argument("--top-k", type=cli.positive_int, default=5, help="labels per clip (default 5)")
    predict.add_argument("--embeddings", metavar="FILE.parquet", help="also write each clip's embedding here")
    predict.add_argument("--batch-size", type=cli.positive_int, default=16, help="clips per batch (default 16)")
    from data_interface_for_model.beam_prepare import add_runner_arguments

    add_runner_arguments(predict, what="the prediction with RunInference over the run's exported classifier")
    cli.add_common_arguments(predict)
    predict.set_defaults(func=_cmd_predict)


def build_parser(prog: str = "python -m baseline_model") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    add_verbs(parser.add_subparsers(dest="verb", required=True, metavar="VERB"))
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    return cli.verb_main(build_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
