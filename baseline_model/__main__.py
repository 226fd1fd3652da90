"""`python -m baseline_model VERB`: train, evaluate, export, embed."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from data_interface_for_model.cli import add_common_arguments, configure_logging, run_verb


def _cmd_train(args: argparse.Namespace) -> int:
    import train_multimodal_baseline_model as main_job

    return main_job.main(args.rest)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from baseline_model.evaluate import evaluate_run

    report = evaluate_run(args.run, split=args.split, json_out=args.json)
    for name in ("text_only", "cover_only", "video_only"):
        print(f"  {name:<11} accuracy {report[name]['accuracy']:.3f}  macro-F1 {report[name]['macro_f1']:.3f}")
    print(f"evaluate: {report['model']} on {args.split} ({report['examples']} items): accuracy "
          f"{report['accuracy']:.3f}, top-5 {report['top5_accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}; "
          f"report {report['report_json']}, confusion matrix {report['confusion_matrix_png']}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from baseline_model.export import export_run

    paths = export_run(args.run, args.export_base, args.version)
    print("export: " + ", ".join(f"{name} -> {path}" for name, path in paths.items()))
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    from baseline_model.embed import embed_run

    count = embed_run(args.run, args.data_root, args.out, args.data_dir)
    print(f"embed: wrote {count} item embeddings to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m baseline_model", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    train = verbs.add_parser("train", help="train (same as train_multimodal_baseline_model.py; see its --help)",
                             add_help=False)
    train.add_argument("rest", nargs=argparse.REMAINDER)
    train.set_defaults(func=_cmd_train)

    evaluate = verbs.add_parser("evaluate", help="accuracy, top-5, macro-F1, per-class P/R, confusion matrix, "
                                                  "single-modality results")
    evaluate.add_argument("--run", required=True, help="the training run folder")
    evaluate.add_argument("--split", default="test", choices=("train", "validation", "test"))
    evaluate.add_argument("--json", help="write the report here (default RUN/report.json)")
    add_common_arguments(evaluate)
    evaluate.set_defaults(func=_cmd_evaluate)

    export = verbs.add_parser("export", help="SavedModels in TF Serving's layout (classifier, embedder)")
    export.add_argument("--run", required=True, help="the training run folder")
    export.add_argument("--export-base", help="model base folder (default RUN/export)")
    export.add_argument("--version", type=int, help="version number (default: the next free one)")
    add_common_arguments(export)
    export.set_defaults(func=_cmd_export)

    embed = verbs.add_parser("embed", help="the embedding of every item, for the recommender")
    embed.add_argument("--run", required=True, help="the training run folder")
    embed.add_argument("--data-root", required=True, help="dataset root in the xinpianchang layout")
    embed.add_argument("--out", required=True, help="output file, .parquet or .npz")
    embed.add_argument("--data-dir", help="where to prepare the root's shards (default: the run's or RUN/embed_data)")
    add_common_arguments(embed)
    embed.set_defaults(func=_cmd_embed)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verb != "train":
        configure_logging(args)
    return run_verb(args)


if __name__ == "__main__":
    sys.exit(main())
