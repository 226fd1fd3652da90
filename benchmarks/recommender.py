"""Recommender benchmark: the query towers and every baseline on one log, and train + evaluate wall time.

Quality (one log; towers compared on the validation split, every row on the test split of the same run)::

    python benchmarks/recommender.py quality --interactions LOG [--items CATALOG] [--embeddings EMB] \\
        --towers bag,gru,sasrec --output OUT

trains one run per tower (no ID-only model), picks the tower with the best validation NDCG@10, retrains it
with the ID-only baseline, evaluates every method on the test split, and prints Markdown tables (also in
OUT/report.md and OUT/report.json).

Over seeds (the seed draws the cold items, the initialisation and the batches; the split's last items stay)::

    python benchmarks/recommender.py quality ... --seeds 0,1,2 --output OUT
    python benchmarks/recommender.py summarize --reports OUT_A,OUT_B,OUT_C --output OUT

runs the whole quality benchmark once per seed (OUT/seed<N>), or reads finished quality folders, and writes
OUT/seeds.md and OUT/seeds.json: each method's mean and standard deviation over the seeds, the model's lead
over each method in every seed, and in how many seeds its paired 95% interval is above or below zero.

Simulated data::

    python benchmarks/recommender.py simulate --items 1000 --users 3000 --output OUT/sim

writes OUT/sim/items.npz (clustered 32-d content embeddings over the 31 categories) and
OUT/sim/interactions.csv (the simulator's sessions, transitions and popularity drift).

Cold items in warm lists::

    python benchmarks/recommender.py crowding --runs RUN_A,RUN_B [--split validation] [--k 10] --output OUT

for each trained run folder (``train``'s output, or a quality folder's ``best``): the share of the top k held
by the run's cold (held-out) items, over the split's cases whose target is warm, for the model and the ID-only
model, beside the cold items' share of the catalog; OUT/crowding.md and crowding.json. A model that never
learnt the cold items' scale against the warm ones shows it here (too many cold items, or none).

Scaling::

    python benchmarks/recommender.py scale --logs A.inter,B.inter [--sizes 10000] --output OUT/scale

times train (fixed epochs, bag tower by default, ID-only baseline included) and evaluate (every baseline, test
split) on each real log (RecBole .inter, with its .item catalog) and on simulated logs of about ``--sizes``
interactions; wall and CPU seconds and the load average beside them.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data_interface_for_model import LABELS  # noqa: E402
from data_interface_for_model.cli import positive_int  # noqa: E402
from data_interface_for_model.embeddings_file import write_embeddings  # noqa: E402


def simulated_items(n_items: int, dim: int = 32, seed: int = 0):
    """(ids, labels, vectors): items spread over the 31 categories, clustered content vectors."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((len(LABELS), dim))
    labels = rng.integers(0, len(LABELS), n_items)
    vectors = (centers[labels] + 0.5 * rng.standard_normal((n_items, dim))).astype(np.float32)
    ids = [f"{10_000_000 + n}" for n in range(n_items)]
    return ids, [LABELS[i] for i in labels], vectors


def simulate(folder: str, items: int, users: int, seed: int = 0, min_length: int = 6,
             max_length: int = 30) -> dict:
    from data_interface_for_model.embeddings_file import read_embeddings
    from retrieval.interactions import SimulationConfig, simulate_interactions, write_interactions

    os.makedirs(folder, exist_ok=True)
    emb = os.path.join(folder, "items.npz")
    ids, labels, vectors = simulated_items(items, seed=seed)
    write_embeddings(emb, ids, labels, vectors)
    sequences = simulate_interactions(read_embeddings(emb), SimulationConfig(
        users=users, min_length=min_length, max_length=max_length, seed=seed))
    inter = os.path.join(folder, "interactions.csv")
    write_interactions(inter, sequences)
    return {"embeddings": emb, "interactions": inter,
            "interactions_count": sum(len(v) for v in sequences.values()), "users": users, "items": items}


def _train_eval(source, out: str, config, splits=("validation", "test")) -> dict:
    from retrieval.evaluate import evaluate_run
    from retrieval.rundir import load_run
    from retrieval.train import train_run

    start = time.perf_counter()
    summary = train_run(source, out, config, progress=False, overwrite=True)
    trained = time.perf_counter()
    run = load_run(out)
    results = {split: evaluate_run(run, split, progress=False) for split in splits}
    return {"summary": summary, "train_s": trained - start, "evaluate_s": time.perf_counter() - trained,
            "results": results}


def parse_grid(text: str) -> List[dict]:
    """``"tower=bag,gru;temperature=0.05,0.1"`` -> every combination as ``{field: value}`` (values parsed as
    int, float, bool or str; fields of TowerConfig, TaskConfig or TrainConfig, or a DataSource setting in
    SOURCE_SETTINGS)."""
    import itertools

    def value(v: str):
        for cast in (int, float):
            try:
                return cast(v)
            except ValueError:
                pass
        return {"true": True, "false": False}.get(v.lower(), v)

    axes = []
    for part in [p for p in text.split(";") if p.strip()]:
        key, _, values = part.partition("=")
        axes.append([(key.strip(), value(v.strip())) for v in values.split(",") if v.strip()])
    return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


#: Grid settings that belong to the data source (how content is built), not to the model.
SOURCE_SETTINGS = ("title_tokens", "balance_columns", "title_embeddings", "users")


def with_source(source, settings: dict):
    """``source`` (a DataSource) with the grid's data-source settings applied."""
    return dataclasses.replace(source, **{k: v for k, v in settings.items() if k in SOURCE_SETTINGS})


def configure(base, settings: dict):
    """``base`` (a TrainConfig) with ``settings`` applied to whichever config owns each field."""
    from retrieval.model import TaskConfig
    from retrieval.towers import TowerConfig

    tower, task, train = {}, {}, {}
    for key, val in settings.items():
        if key in SOURCE_SETTINGS:
            continue
        key = "query" if key == "tower" else key
        if key == "user_features" and isinstance(val, str):  # a grid value holds no comma: columns joined by +
            val = tuple(val.split("+"))
        for owner, fields in ((tower, TowerConfig), (task, TaskConfig), (train, type(base))):
            if key in {f.name for f in dataclasses.fields(fields)} and key not in ("tower", "task"):
                owner[key] = val
                break
        else:
            raise SystemExit(f"--grid: unknown setting {key!r}")
    return dataclasses.replace(base, tower=dataclasses.replace(base.tower, **tower),
                               task=dataclasses.replace(base.task, **task), **train)


def _label(settings: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in settings.items()) or "defaults"


SEED_METRICS = ("HR@10", "NDCG@10")
MODEL_ROW = "the model (tower picked per seed)"


def summarize_seeds(reports: Dict[str, dict]) -> Tuple[dict, str]:
    """Quality reports (``report.json`` of ``quality``) of one log under different seeds -> a summary dict and
    its Markdown.

    The model's row is each report's picked model (its tower may differ between seeds); every other method
    is kept where all reports have it. Per method and metric (HR@10, NDCG@10): the per-seed values, mean and
    sample standard deviation; per method the model's lead in each seed with its paired 95% interval, and the
    count of seeds where that interval is above zero (``ahead``) or below zero (``behind``). Cold start: the
    model's HR@10 and HR@50 on the held-out items, per seed."""
    if len(reports) < 2:
        raise ValueError(f"a summary over seeds needs two reports or more, got {len(reports)}")
    tests = {}
    for name, report in reports.items():
        test = report.get("test") if isinstance(report, dict) else None
        if not test or test.get("main") not in test.get("all", {}):
            raise ValueError(f"{name}: not a quality report (no test results with the model's row)")
        tests[name] = test
    first = next(iter(tests.values()))
    logs = {(t.get("items"), t["all"][t["main"]].get("users")) for t in tests.values()}
    if len(logs) > 1:  # a summary over seeds of different logs would average unlike things
        raise ValueError("the reports are not of one log (items, users differ: "
                         + "; ".join(f"{n}: {t.get('items')}, {t['all'][t['main']].get('users')}"
                                     for n, t in tests.items()) + ")")
    others = [m for m in first["all"] if m != first["main"]
              and all(m in t["all"] and m != t["main"] for t in tests.values())]
    summary: dict = {"seeds": list(tests), "picked": {n: t["main"] for n, t in tests.items()},
                     "methods": {}, "leads": {}, "cold_start": {}}
    for method in [MODEL_ROW] + others:
        summary["methods"][method] = {}
        for metric in SEED_METRICS:
            values = [float(t["all"][t["main"] if method == MODEL_ROW else method][metric]) for t in tests.values()]
            summary["methods"][method][metric] = {"values": values, "mean": float(np.mean(values)),
                                                  "sd": float(np.std(values, ddof=1))}
    summary["leads"] = _leads_over_seeds(tests, "all", others)
    if all("warm" in t.get("intervals", {}) for t in tests.values()):  # reports written before it: none
        summary["warm_leads"] = _leads_over_seeds(tests, "warm", others)
    for name, t in tests.items():
        cold = (t.get("cold_start") or {}).get(t["main"])
        if cold:
            summary["cold_start"][name] = {k: float(cold[k]) for k in ("HR@10", "HR@50")} | {"users": cold["users"]}
    n = len(tests)
    lines = [f"{n} seeds ({', '.join(tests)}); picked: " + "; ".join(f"{k}: {v}" for k, v in summary["picked"].items()),
             "", "| method | " + " | ".join(f"{m} mean ± sd | {m} per seed" for m in SEED_METRICS) + " |",
             "|---|" + "---:|---|" * len(SEED_METRICS)]
    for method, values in summary["methods"].items():
        lines.append(f"| {method} | " + " | ".join(
            f"{v['mean']:.4f} ± {v['sd']:.4f} | {' / '.join(f'{x:.4f}' for x in v['values'])}"
            for v in (values[m] for m in SEED_METRICS)) + " |")
    head = ["| over | " + " | ".join(f"{m} mean lead | {m} per seed | ahead / behind" for m in SEED_METRICS) + " |",
            "|---|" + "---:|---|---:|" * len(SEED_METRICS)]
    lines += ["", "The model's lead (paired, per seed; ahead / behind: seeds whose 95% interval is above / below 0):",
              ""] + head + [_lead_row(method, values, n) for method, values in summary["leads"].items()]
    if summary.get("warm_leads"):
        lines += ["", "Warm (targets seen in training, ranked among the training items only), the model's lead:",
                  ""] + head + [_lead_row(method, values, n) for method, values in summary["warm_leads"].items()]
    if summary["cold_start"]:
        lines += ["", "Cold start, the model: " + "; ".join(
            f"{k}: HR@10 {v['HR@10']:.3f}, HR@50 {v['HR@50']:.3f} ({v['users']} users)"
            for k, v in summary["cold_start"].items())]
    return summary, "\n".join(lines)


def _leads_over_seeds(tests: Dict[str, dict], population: str, others: List[str]) -> dict:
    """method -> metric -> the model's per-seed lead in ``population``, its mean, and the counts of seeds whose
    paired 95% interval is above (ahead) or below (behind) zero."""
    leads = {}
    for method in others:
        leads[method] = {}
        for metric in SEED_METRICS:
            entries = [t["intervals"][population][metric][method] for t in tests.values()]
            leads[method][metric] = {"values": [float(x["difference"]) for x in entries],
                                     "mean": float(np.mean([x["difference"] for x in entries])),
                                     "ahead": sum(x["difference_interval"][0] > 0 for x in entries),
                                     "behind": sum(x["difference_interval"][1] < 0 for x in entries)}
    return leads


def _lead_row(method: str, values: dict, seeds: int) -> str:
    return f"| {method} | " + " | ".join(
        f"{v['mean']:+.4f} | {' / '.join(f'{x:+.4f}' for x in v['values'])} | {v['ahead']} / {v['behind']} of {seeds}"
        for v in (values[m] for m in SEED_METRICS)) + " |"


def _write_report(output: str, stem: str, text: str, data: dict) -> None:
    """Print ``text`` and write OUT/<stem>.md and OUT/<stem>.json (each under a temporary name, then renamed)."""
    print(text)
    for path, content in ((os.path.join(output, stem + ".md"), text + "\n"),
                          (os.path.join(output, stem + ".json"), json.dumps(data, indent=2, default=str))):
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(content)
        os.replace(path + ".tmp", path)


def summarize(args: argparse.Namespace) -> int:
    reports = {}
    for folder in [f for f in args.reports.split(",") if f]:
        path = os.path.join(folder, "report.json")
        if not os.path.isfile(path):
            print(f"error: {folder}: no report.json (a folder written by `quality`)", file=sys.stderr)
            return 2
        try:
            with open(path, encoding="utf-8") as handle:
                reports[folder] = json.load(handle)
        except (OSError, ValueError) as error:
            print(f"error: {path}: not readable as JSON ({error})", file=sys.stderr)
            return 2
    try:
        summary, text = summarize_seeds(reports)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _write_report(args.output, "seeds", text, summary)
    return 0


def crowding(args: argparse.Namespace) -> int:
    """The cold items' share of the top ``--k`` over each run's warm-target cases (history masked), for the
    model and the ID-only model, beside their share of the catalog -> OUT/crowding.md and crowding.json."""
    from retrieval.evaluate import TowerScorer, main_method, scored_chunks
    from retrieval.metrics import share_in_top_k
    from retrieval.rundir import load_run

    rows, lines = [], [f"cold items in the top {args.k} of the {args.split} cases whose target is warm:", "",
                       "| run | model | cold share of the top | cold share of the catalog | cases |",
                       "|---|---|---:|---:|---:|"]
    folders = [f for f in args.runs.split(",") if f]
    if not folders:
        print("error: --runs names no run folder", file=sys.stderr)
        return 2
    for folder in folders:
        try:
            run = load_run(folder)
        except (OSError, ValueError, KeyError) as error:
            print(f"error: {folder}: not a trained run folder ({error})", file=sys.stderr)
            return 2
        catalog = run.table.ids.astype(str).tolist()
        if args.k > len(catalog):
            print(f"error: {folder}: --k {args.k} is more than its {len(catalog)} items", file=sys.stderr)
            return 2
        row = {item: n for n, item in enumerate(catalog)}
        cold = np.asarray([item in run.split.cold_items for item in catalog])
        cases = [c for c in getattr(run.split, args.split) if c.target not in run.split.cold_items]
        models = [(main_method(run), run.model)] + ([("id-only two-tower", run.id_only)] if run.id_only else [])
        for name, towers in models:
            scorer = TowerScorer(name, towers, run.content, catalog, run.max_history)
            shares = [share_in_top_k(scores, cold, args.k, exclude)
                      for scores, _, exclude in scored_chunks(scorer, cases, row)]
            share = float(np.concatenate(shares).mean()) if cases else float("nan")
            rows.append({"run": folder, "model": name, "share": share, "catalog_share": float(cold.mean()),
                         "cases": len(cases)})
            lines.append(f"| {folder} | {name} | {share:.3f} | {cold.mean():.3f} | {len(cases)} |")
    _write_report(args.output, "crowding", "\n".join(lines), {"split": args.split, "k": args.k, "rows": rows})
    return 0


def quality(args: argparse.Namespace) -> int:
    if not args.seeds:
        quality_report(args)
        return 0
    reports = {}
    for seed in args.seeds:
        folder = os.path.join(args.output, f"seed{seed}")
        os.makedirs(folder, exist_ok=True)
        reports[f"seed {seed}"] = quality_report(argparse.Namespace(**{**vars(args), "seed": seed, "output": folder}))
    summary, text = summarize_seeds(reports)
    _write_report(args.output, "seeds", text, summary)
    return 0


def quality_report(args: argparse.Namespace) -> dict:
    """One quality run (``args.seed``) into ``args.output``: the report (also OUT/report.md, report.json)."""
    from retrieval.interactions import Columns
    from retrieval.metrics import format_intervals, format_markdown
    from retrieval.model import TaskConfig
    from retrieval.towers import TowerConfig
    from retrieval.train import DataSource, TrainConfig

    source = DataSource(interactions=args.interactions, embeddings=args.embeddings, catalog=args.items,
                        columns=Columns(args.user_col, args.item_col, args.time_col), users=args.users)
    report: dict = {"grid": {}, "command": " ".join(sys.argv)}
    lines: List[str] = []
    grid = parse_grid(args.grid or f"tower={args.towers}")
    base = TrainConfig(tower=TowerConfig(embedding_dim=args.embedding_dim), epochs=args.epochs,
                       task=TaskConfig(global_negatives=args.global_negatives), max_history=args.max_history,
                       batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed)
    lines += ["| setting | validation NDCG@10 | validation HR@10 | epochs | train s |", "|---|---:|---:|---:|---:|"]

    def record(settings: dict, out: dict) -> None:
        val = out["summary"]["validation"]  # the best epoch's full-ranking validation figures
        report["grid"][_label(settings)] = {"settings": settings, "validation": val, "train_s": out["train_s"],
                                            "epochs": out["summary"]["epochs"]}
        lines.append(f"| {_label(settings)} | {val['NDCG@10']:.4f} | {val['HR@10']:.4f} | "
                     f"{out['summary']['epochs']} | {out['train_s']:.0f} |")
        print(lines[-1], flush=True)

    if len(grid) > 1:  # one setting: nothing to choose, so it is trained once, in the "best" run below
        for n, settings in enumerate(grid):
            config = dataclasses.replace(configure(base, settings), id_only_baseline=False)
            record(settings, _train_eval(with_source(source, settings), os.path.join(args.output, f"grid{n}"),
                                         config, splits=()))
    best = max(grid, key=lambda s: report["grid"][_label(s)]["validation"]["NDCG@10"]) if len(grid) > 1 else grid[0]
    report["best"] = best
    config = dataclasses.replace(configure(base, best), id_only_baseline=True)
    out = _train_eval(with_source(source, best), os.path.join(args.output, "best"), config, splits=("test",))
    if len(grid) == 1:
        record(best, out)
    test = out["results"]["test"]
    report["test"] = test
    report["best_train_s"], report["best_evaluate_s"] = out["train_s"], out["evaluate_s"]
    lines += ["", f"best on validation: {_label(best)}; test split, every method in the same run "
                  f"({test['items']} items, {test['all'][test['main']]['users']} users; the ID-only two-tower "
                  f"with the same settings):", "", format_markdown(test["all"])]
    lines += ["", "95% bootstrap intervals over the users; the model's lead with its paired interval "
                  "(* it leads at 95%, - it trails):", "",
              format_intervals(test["intervals"]["all"], test["all"], test["main"], markdown=True)]
    for population, title in (("cold_start", f"cold start ({test['cold_items']} items held out of training):"),
                              ("warm", "warm (targets seen in training, ranked among the training items only):")):
        if test.get(population):
            lines += ["", title, "", format_markdown(test[population]), "",
                      format_intervals(test["intervals"][population], test[population], test["main"], markdown=True)]
    _write_report(args.output, "report", "\n".join(lines), report)
    return report


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def scale(args: argparse.Namespace) -> int:
    """Train + evaluate wall and CPU time by log size: real logs (``--logs``: RecBole ``.inter`` files, their
    sibling ``.item`` catalog used when present) and/or simulated logs of about ``--sizes`` interactions."""
    from retrieval.towers import TowerConfig
    from retrieval.train import DataSource, TrainConfig

    sources = []
    for path in [p for p in (args.logs or "").split(",") if p]:
        item = os.path.splitext(path)[0] + ".item"
        sources.append((os.path.basename(os.path.splitext(path)[0]),
                        DataSource(interactions=path, catalog=item if os.path.isfile(item) else None), None))
    for size in [int(s) for s in (args.sizes or "").split(",") if s]:
        users = max(size // 18, 10)  # the simulator's mean sequence length is 18
        items = max(min(size // 50, 5000), 200)
        data = simulate(os.path.join(args.output, f"sim{size}"), items, users, seed=args.seed)
        sources.append((f"simulated {size}", DataSource(interactions=data["interactions"],
                                                        embeddings=data["embeddings"]), None))
    config = TrainConfig(tower=TowerConfig(query=args.tower), epochs=args.epochs, patience=0)
    rows = ["| log | interactions | users | items | train s (2 models) | s / epoch / model | evaluate s | "
            "CPU s | load avg | test HR@10 (model / best baseline) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    report = []
    for name, source, _ in sources:
        load_before = os.getloadavg()[0]
        cpu = _cpu_seconds()
        out = _train_eval(source, os.path.join(args.output, f"run_{len(report)}"), config, splits=("test",))
        cpu = _cpu_seconds() - cpu
        load = (load_before + os.getloadavg()[0]) / 2
        summary, test = out["summary"], out["results"]["test"]
        main = test["all"][test["main"]]["HR@10"]
        best = max((v["HR@10"], k) for k, v in test["all"].items() if k != test["main"])
        per_epoch = out["train_s"] / (2 * summary["epochs"])
        report.append({"log": name, "summary": summary, "train_s": out["train_s"], "evaluate_s": out["evaluate_s"],
                       "cpu_s": cpu, "load": load, "test": test})
        rows.append(f"| {name} | {summary['interactions']:,} | {summary['users']:,} | {summary['items']:,} | "
                    f"{out['train_s']:.0f} | {per_epoch:.0f} | {out['evaluate_s']:.0f} | {cpu:.0f} | {load:.1f} | "
                    f"{main:.4f} / {best[0]:.4f} ({best[1]}) |")
        print(rows[-1], flush=True)
    _write_report(args.output, "scale", "\n".join(rows), report)
    return 0


def _seed_list(text: str) -> List[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) < 2 or not all(p.isdigit() for p in parts) or len(set(parts)) != len(parts):
        raise argparse.ArgumentTypeError(f"expected two or more distinct integers separated by commas, got {text!r}")
    return [int(p) for p in parts]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("quality", help="towers and baselines on one log")
    p.add_argument("--interactions", required=True)
    p.add_argument("--items", help="item catalog (.item, .csv, .parquet)")
    p.add_argument("--users", help="user table (.user, .csv, .tsv, .parquet): user features for the model, as "
                                   "train --users (the grid setting users=FILE does the same per setting)")
    p.add_argument("--embeddings", help="item embeddings (.npz, .parquet)")
    p.add_argument("--user-col", default="user_id")
    p.add_argument("--item-col", default="item_id")
    p.add_argument("--time-col", default="timestamp")
    p.add_argument("--towers", default="bag,gru,sasrec", help="query towers compared (without --grid)")
    p.add_argument("--grid", help="settings tried on validation, e.g. 'tower=bag,gru;temperature=0.05,0.1' "
                                  "(fields of TowerConfig, TaskConfig, TrainConfig, or the catalog content settings "
                                  f"{', '.join(SOURCE_SETTINGS)}; every combination)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--embedding-dim", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--learning-rate", type=float, default=0.01)
    p.add_argument("--global-negatives", type=int, default=0)
    p.add_argument("--max-history", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=_seed_list, help="comma-separated seeds: the whole benchmark once per seed "
                   "(OUT/seed<N>), then a summary over them (OUT/seeds.md, seeds.json); replaces --seed")
    p.add_argument("--output", required=True)
    p.set_defaults(func=quality)

    p = verbs.add_parser("summarize", help="a summary over seeds of finished quality folders")
    p.add_argument("--reports", required=True, help="comma-separated folders written by quality (2 or more)")
    p.add_argument("--output", required=True)
    p.set_defaults(func=summarize)
    p = verbs.add_parser("crowding", help="share of cold items in warm cases' top k, per trained run")
    p.add_argument("--runs", required=True, help="comma-separated run folders (train's output, a quality best/)")
    p.add_argument("--split", choices=("validation", "test"), default="validation", help="default validation")
    p.add_argument("--k", type=positive_int, default=10, help="list length (default 10)")
    p.add_argument("--output", required=True)
    p.set_defaults(func=crowding)
    p = verbs.add_parser("simulate", help="a simulated catalog and log")
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--users", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", required=True)
    p.set_defaults(func=lambda a: print(json.dumps(simulate(a.output, a.items, a.users, a.seed))) or 0)
    p = verbs.add_parser("scale", help="train + evaluate wall time by log size")
    p.add_argument("--logs", help="comma-separated RecBole .inter files (their .item catalogs when present)")
    p.add_argument("--sizes", default="", help="simulated logs of about these many interactions")
    p.add_argument("--tower", default="bag", help="query tower (default bag)")
    p.add_argument("--epochs", type=int, default=2, help="fixed epochs (no early stopping; default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", required=True)
    p.set_defaults(func=scale)
    args = parser.parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
