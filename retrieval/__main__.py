"""`python -m retrieval VERB`: simulate interactions, train the two-tower recommender, evaluate it against
baselines, recommend, and export TF Serving SavedModels."""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from data_interface_for_model.cli import add_common_arguments, configure_logging, run_verb



def _make_interactions(args: argparse.Namespace) -> int:
    from data_interface_for_model.embeddings_file import read_embeddings
    from retrieval.interactions import SimulationConfig, simulate_interactions, write_interactions

    table = read_embeddings(args.embeddings)
    config = SimulationConfig(users=args.users, min_length=args.min_length, max_length=args.max_length,
                              noise=args.noise, seed=args.seed)
    sequences = simulate_interactions(table, config)
    write_interactions(args.out, sequences)
    total = sum(len(v) for v in sequences.values())
    print(f"make-interactions: {len(sequences)} users, {total} interactions over {len(table)} items -> {args.out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from retrieval.model import TaskConfig
    from retrieval.towers import TowerConfig
    from retrieval.train import TrainConfig, train_run

    tower = TowerConfig(embedding_dim=args.embedding_dim, use_item_id=not args.no_item_id,
                        use_user_id=args.user_id)
    config = TrainConfig(tower=tower, task=TaskConfig(temperature=args.temperature), epochs=args.epochs,
                         batch_size=args.batch_size, learning_rate=args.learning_rate, patience=args.patience,
                         max_history=args.max_history, cold_fraction=args.cold_fraction,
                         id_only_baseline=not args.no_id_only_baseline, seed=args.seed)
    summary = train_run(args.embeddings, args.interactions, args.out, config, progress=not args.quiet,
                        overwrite=args.overwrite)
    val = summary["validation"]
    top10 = next((v for k, v in val.items() if k.endswith("top_10_categorical_accuracy")), float("nan"))
    print(f"train: {summary['cleaning']}; {summary['training_examples']} examples, {summary['cold_items']} cold "
          f"items; {summary['epochs']} epochs, loss {summary['loss_first_epoch']:.1f} -> "
          f"{summary['loss_last_epoch']:.1f}; best validation "
          f"top-10 accuracy {top10:.3f}; {summary['seconds']} s -> {args.out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from data_interface_for_model.atomic import atomic_write
    from retrieval.evaluate import evaluate_run
    from retrieval.metrics import format_table
    from retrieval.rundir import load_run

    result = evaluate_run(load_run(args.run), args.split, progress=not args.quiet)
    print(f"{args.split} split, full ranking over {result['items']} items, history masked:")
    print(format_table(result["all"]))
    if result["cold_start"]:
        print(f"\ncold start (targets among the {result['cold_items']} items held out of training):")
        print(format_table(result["cold_start"]))
    if args.json:
        with atomic_write(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
    main_row = result["all"]["two-tower (content + id)"]
    print(f"\nevaluate: two-tower HR@10 {main_row['HR@10']:.4f} NDCG@10 {main_row['NDCG@10']:.4f} over "
          f"{main_row['users']} users" + (f" -> {args.json}" if args.json else ""))
    return 0


def _recommend(args: argparse.Namespace) -> int:
    import tensorflow as tf

    from retrieval.export import build_module
    from retrieval.rundir import load_run

    run = load_run(args.run)
    module = build_module(run, args.index, k=args.k, embeddings=args.embeddings)
    known = set(module.catalog_ids.tolist())
    if args.item:
        if args.item not in known:
            raise KeyError(f"item {args.item!r} is not in the catalog")
        out = module.similar_items(tf.constant([args.item]))
        what = f"items like {args.item}"
    else:
        if args.user:
            if args.user not in run.sequences:
                raise KeyError(f"user {args.user!r} is not in the run's interactions")
            history = run.sequences[args.user]
            what = f"user {args.user} ({len(history)} items)"
        else:
            history = [h.strip() for h in args.history.split(",") if h.strip()]
            unknown = [h for h in history if h not in known]
            if unknown:
                print(f"warning: ignoring {len(unknown)} unknown items: {', '.join(unknown[:5])}", file=sys.stderr)
            what = f"history of {len(history) - len(unknown)} known items"
        out = module.recommend(tf.constant([history or [""]]))
    labels = dict(zip(run.table.ids.tolist(), run.table.labels.tolist()))
    ids = out["item_ids"].numpy()[0].astype(str)
    scores = out["scores"].numpy()[0]
    for rank, (item, score) in enumerate(zip(ids, scores), start=1):
        print(f"{rank:3d}  {item}  {score:7.4f}  {labels.get(item, '(added)')}")
    print(f"recommend: {len(ids)} items for {what} ({args.index})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from retrieval.export import export_run
    from retrieval.indexes import ScannParams

    kinds = tuple(k.strip() for k in args.index.split(",") if k.strip())
    scann = None
    if args.scann_leaves:
        scann = ScannParams(num_leaves=args.scann_leaves, num_leaves_to_search=args.scann_search or args.scann_leaves,
                            num_reordering_candidates=args.scann_reorder)
    written = export_run(args.run, args.export_base, version=args.version, indexes=kinds, k=args.k,
                         embeddings=args.embeddings, max_history=args.max_history, scann=scann)
    for name, path in written.items():
        print(f"{name}: {path}")
    print(f"export: {len(written)} SavedModels (k={args.k}) under {args.export_base}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m retrieval", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("make-interactions", help="simulate users over an item-embedding file")
    p.add_argument("--embeddings", required=True, help="item embeddings (.parquet or .npz)")
    p.add_argument("--out", required=True, help="interactions file: .tsv/.txt (pairs), .csv or .parquet")
    p.add_argument("--users", type=int, default=500)
    p.add_argument("--min-length", type=int, default=6)
    p.add_argument("--max-length", type=int, default=20)
    p.add_argument("--noise", type=float, default=0.1, help="probability of a uniformly random interaction")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_make_interactions)

    p = verbs.add_parser("train", help="train the two-tower model (and the ID-only baseline)")
    p.add_argument("--embeddings", required=True, help="item embeddings (.parquet or .npz)")
    p.add_argument("--interactions", required=True, help="pairs (.tsv/.txt), .csv or .parquet")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--epochs", type=int, default=20, help="at most (early stopping on the validation cases)")
    p.add_argument("--patience", type=int, default=3, help="early-stopping patience in epochs (0: off)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--learning-rate", type=float, default=0.02)
    p.add_argument("--embedding-dim", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--max-history", type=int, default=20)
    p.add_argument("--cold-fraction", type=float, default=0.1, help="items held out of training")
    p.add_argument("--user-id", action="store_true", help="add a user-id embedding to the query tower")
    p.add_argument("--no-item-id", action="store_true", help="content only: no item-id embedding")
    p.add_argument("--no-id-only-baseline", action="store_true", help="skip training the ID-only baseline")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.set_defaults(func=_train)

    p = verbs.add_parser("evaluate", help="HR@K / NDCG@K, full ranking, against baselines and cold start")
    p.add_argument("--run", required=True)
    p.add_argument("--split", choices=("test", "valid"), default="test")
    p.add_argument("--json", help="also write the metrics here")
    p.set_defaults(func=_evaluate)

    p = verbs.add_parser("recommend", help="top-k items for a user, a history or an item")
    p.add_argument("--run", required=True)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a user of the run's interactions")
    who.add_argument("--item", help="item-to-item: items to watch after this one")
    who.add_argument("--history", help="comma-separated item ids, oldest first")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--index", choices=("bruteforce", "scann"), default="bruteforce")
    p.add_argument("--embeddings", help="extra items to add to the catalog (content only, no retraining)")
    p.set_defaults(func=_recommend)

    p = verbs.add_parser("export", help="TF Serving SavedModels: EXPORT_BASE/recommender_<index>/<version>/")
    p.add_argument("--run", required=True)
    p.add_argument("--export-base", required=True)
    p.add_argument("--version", type=int, help="default: the next integer after the highest existing")
    p.add_argument("--index", default="bruteforce,scann", help="comma-separated: bruteforce, scann")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--max-history", type=int, help="recent items used per query (default: the run's)")
    p.add_argument("--embeddings", help="extra items to add to the catalog (content only, no retraining)")
    p.add_argument("--scann-leaves", type=int, help="ScaNN tree leaves (default: from the catalog size)")
    p.add_argument("--scann-search", type=int, help="ScaNN leaves searched per query (default: all)")
    p.add_argument("--scann-reorder", type=int, default=100, help="ScaNN exact reordering candidates")
    p.set_defaults(func=_export)

    for sub in verbs.choices.values():
        add_common_arguments(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    return run_verb(args)


if __name__ == "__main__":
    sys.exit(main())
