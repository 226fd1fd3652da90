"""Training, evaluating and reloading a music-matching run.

Run folder (written under a temporary name, renamed into place when complete)::

    RUN/run.json                 configuration, standardisation statistics, training categories, the fitted
                                 category log-prior and its weight chosen on validation, training summary
    RUN/music_index.npz          the music index the run was trained with (ids, moods, musicnn vectors)
    RUN/video_embeddings.npz     the video content embeddings (ids, labels, vectors)
    RUN/pairs_<split>.csv        the pairs of each split (train, validation, test)
    RUN/<split>_negatives.npy    DecCM's file: per validation/test pair, the sampled negative tracks (rows)
    RUN/video_popularity_<split>.npy   DecCM's inverse-popularity weights of those videos
    RUN/towers.weights.h5        both towers' weights
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

from data_interface_for_model.embeddings_file import EmbeddingTable, read_embeddings, write_embeddings
from retrieval.music import metrics
from retrieval.music.config import BETA_GRID
from retrieval.music.library import MusicIndex, load_index, save_index
from retrieval.music.pairs import (DEFAULT_NEGATIVES, inverse_popularity, read_pairs, sample_negatives,
                                   split_pairs, write_pairs)

logger = logging.getLogger(__name__)

RUN_JSON = "run.json"
INDEX = "music_index.npz"
VIDEOS = "video_embeddings.npz"
WEIGHTS = "towers.weights.h5"
EVAL_SPLITS = ("validation", "test")


@dataclasses.dataclass
class MusicRun:
    path: str
    info: dict
    index: MusicIndex
    videos: EmbeddingTable
    splits: Dict[str, List[Tuple[str, str]]]
    negatives: Dict[str, np.ndarray]
    weights: Dict[str, np.ndarray]
    model: object  # MusicMatcher

    @property
    def beta(self) -> float:
        return float(self.info.get("prior_beta", 0.0))

    @property
    def uses_label(self) -> bool:
        """Whether scoring needs the video's category (the video tower reads it, or the prior is weighted in)."""
        return bool(self.model.uses_label) or self.beta != 0.0

    def prior_table(self) -> Tuple[List[str], np.ndarray]:
        prior = self.info["prior"]
        return prior["categories"], np.asarray(prior["log_prior"], np.float32)

    def scores(self, vectors: np.ndarray, labels=None, beta: Optional[float] = None) -> np.ndarray:
        """``[N, M]`` matcher scores: ``cos / temperature + beta * log P(track | category)`` (beta: the run's)."""
        from retrieval.music.model import score_matrix

        beta = self.beta if beta is None else beta
        if (self.model.uses_label or beta) and labels is None:
            raise ValueError(f"music run {self.path}: scoring needs the videos' categories (labels)")
        out = score_matrix(self.model, vectors, self.index.vectors,
                           labels if self.model.uses_label else None) / self.info["config"]["temperature"]
        if beta:
            out = out + beta * metrics.log_prior_scores(labels, *self.prior_table())
        return out

    def rows(self, split: str) -> Tuple[np.ndarray, np.ndarray]:
        """(video rows ``[N]`` in the video table, positive track rows ``[N]``) of a split."""
        vrow, mrow = self.videos.index_of(), self.index.row()
        pairs = self.splits[split]
        return (np.array([vrow[v] for v, _ in pairs], np.int64), np.array([mrow[m] for _, m in pairs], np.int64))


def _stats(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=0), x.std(axis=0)


def _fit(config, videos: EmbeddingTable, index: MusicIndex, splits, progress: bool):
    from tqdm import tqdm

    from retrieval.music.model import build_matcher, pair_dataset, score_matrix

    vrow, mrow = videos.index_of(), index.row()
    train_v = np.array([vrow[v] for v, _ in splits["train"]])
    train_m = np.array([mrow[m] for _, m in splits["train"]])
    val_v = np.array([vrow[v] for v, _ in splits["validation"]])
    val_m = np.array([mrow[m] for _, m in splits["validation"]])
    video_stats = _stats(videos.vectors[train_v])
    music_stats = _stats(index.vectors)
    categories = sorted({str(c) for c in videos.labels[train_v]})
    model = build_matcher(videos.dimension, index.vectors.shape[1], config, video_stats, music_stats, categories)
    labels = videos.labels.astype(str) if model.uses_label else None
    data = pair_dataset(videos.vectors[train_v], index.vectors[train_m], index.ids[train_m], config,
                        labels=None if labels is None else labels[train_v])
    best, best_weights, best_epoch, history = -1.0, None, 0, []
    for epoch in tqdm(range(config.epochs), desc="training music matcher", unit="epoch", disable=not progress):
        loss = model.fit(data, epochs=1, verbose=0).history["loss"][-1]
        if len(val_v):
            ranks = metrics.full_ranks(score_matrix(model, videos.vectors[val_v], index.vectors,
                                                    None if labels is None else labels[val_v]), val_m)
            score = _criterion(ranks)
        else:
            score = -loss
        history.append({"epoch": epoch + 1, "loss": float(loss), "validation_score": score})
        if score > best:
            best, best_weights, best_epoch = score, model.get_weights(), epoch + 1
    model.set_weights(best_weights)
    return model, video_stats, music_stats, categories, best_epoch, history


def _criterion(ranks: np.ndarray) -> float:
    """Validation choice: R@10, MedR breaks ties (the epoch and the prior weight alike)."""
    return float(np.mean(ranks <= 10)) - 1e-3 * float(np.median(ranks))


def _choose_beta(config, towers: np.ndarray, prior: np.ndarray, positives: np.ndarray) -> Tuple[float, list]:
    """The prior weight: ``config.prior_beta`` when set, else the best of ``BETA_GRID`` on the validation
    split (the smallest on ties). ``towers`` are the validation logits, ``prior`` their log-prior rows."""
    search: list = []
    if not len(positives):  # no validation split: nothing to choose on
        return float(config.prior_beta or 0.0), search
    for beta in BETA_GRID:
        ranks = metrics.full_ranks(towers + beta * prior, positives)
        search.append({"beta": beta, "R@10": float(np.mean(ranks <= 10)), "MedR": float(np.median(ranks)),
                       "score": _criterion(ranks)})
    if config.prior_beta is not None:
        return float(config.prior_beta), search
    return max(search, key=lambda row: (row["score"], -row["beta"]))["beta"], search


def train_run(index_path: str, embeddings_path: str, pairs_path: str, output: str, config=None,
              negatives: int = DEFAULT_NEGATIVES, split_seed: int = 0, overwrite: bool = False,
              progress: bool = True) -> Tuple[str, dict]:
    """Train on the pairs' train split (best epoch by validation full-ranking R@10); write the run folder."""
    from retrieval.music.config import MatcherConfig

    config = config or MatcherConfig()
    index = load_index(index_path)
    videos = read_embeddings(embeddings_path)
    pairs = read_pairs(pairs_path, videos.ids.tolist(), index.ids.tolist())
    splits = split_pairs(pairs, seed=split_seed)
    if not splits["train"]:
        raise ValueError(f"{pairs_path}: too few pairs to train ({len(pairs)})")
    from retrieval.rundir import staged_folder, write_json  # TensorFlow: only once the inputs are valid

    started = time.perf_counter()
    model, video_stats, music_stats, categories, best_epoch, history = _fit(config, videos, index, splits, progress)
    seconds = time.perf_counter() - started
    mrow, vrow = index.row(), videos.index_of()
    train_rows = [mrow[m] for _, m in splits["train"]]
    keys = index.moods if any(index.moods) else index.genres
    prior_categories, prior_table = metrics.category_log_prior(
        [videos.labels[vrow[v]] for v, _ in splits["train"]], train_rows, keys, len(index))
    val_v = np.array([vrow[v] for v, _ in splits["validation"]], np.int64)
    val_m = np.array([mrow[m] for _, m in splits["validation"]], np.int64)
    from retrieval.music.model import score_matrix

    towers = score_matrix(model, videos.vectors[val_v], index.vectors,
                          videos.labels[val_v] if model.uses_label else None) / config.temperature
    beta, beta_search = _choose_beta(config, towers, metrics.log_prior_scores(
        videos.labels[val_v], prior_categories, prior_table), val_m)
    logger.info("music matcher: prior weight %.2f (validation search %s)", beta,
                ", ".join(f"{r['beta']}: R@10 {r['R@10']:.3f}" for r in beta_search))
    with staged_folder(output, overwrite=overwrite) as folder:
        save_index(os.path.join(folder, INDEX), index)
        write_embeddings(os.path.join(folder, VIDEOS), videos.ids.tolist(), videos.labels.tolist(), videos.vectors)
        for name, split in splits.items():
            write_pairs(os.path.join(folder, f"pairs_{name}.csv"), split)
        for offset, name in enumerate(EVAL_SPLITS):
            positives = [mrow[m] for _, m in splits[name]]
            np.save(os.path.join(folder, f"{name}_negatives.npy"),
                    sample_negatives(positives, len(index), negatives, seed=split_seed + 1 + offset)
                    if positives else np.zeros((0, 0), np.int64))
            np.save(os.path.join(folder, f"video_popularity_{name}.npy"),
                    inverse_popularity(positives, train_rows, len(index)))
        model.save_weights(os.path.join(folder, WEIGHTS))
        info = {"config": dataclasses.asdict(config), "negatives": negatives, "split_seed": split_seed,
                "video_dim": videos.dimension, "music_dim": int(index.vectors.shape[1]),
                "video_stats": [s.tolist() for s in video_stats], "music_stats": [s.tolist() for s in music_stats],
                "categories": categories, "prior_beta": beta, "beta_search": beta_search,
                "prior": {"categories": prior_categories, "log_prior": prior_table.tolist()},
                "sizes": {k: len(v) for k, v in splits.items()}, "tracks": len(index),
                "best_epoch": best_epoch, "train_seconds": round(seconds, 2), "history": history,
                "sources": {"index": os.path.abspath(index_path), "embeddings": os.path.abspath(embeddings_path),
                            "pairs": os.path.abspath(pairs_path)}}
        write_json(os.path.join(folder, RUN_JSON), info)
    return output, info


def load_run(path: str) -> MusicRun:
    info_path = os.path.join(path, RUN_JSON)
    if not os.path.isfile(info_path):
        raise FileNotFoundError(f"music run {path}: no {RUN_JSON} (train one with `music train`)")
    from retrieval.music.config import MatcherConfig
    from retrieval.music.model import build_matcher

    with open(info_path, encoding="utf-8") as handle:
        info = json.load(handle)
    index = load_index(os.path.join(path, INDEX))
    videos = read_embeddings(os.path.join(path, VIDEOS))
    splits = {name: read_pairs(os.path.join(path, f"pairs_{name}.csv"), videos.ids.tolist(), index.ids.tolist())
              if info["sizes"].get(name) else [] for name in ("train", "validation", "test")}
    negatives = {name: np.load(os.path.join(path, f"{name}_negatives.npy")) for name in EVAL_SPLITS}
    weights = {name: np.load(os.path.join(path, f"video_popularity_{name}.npy")) for name in EVAL_SPLITS}
    config = MatcherConfig(**info["config"])
    stats = lambda key: tuple(np.asarray(s, np.float32) for s in info[key])  # noqa: E731
    model = build_matcher(info["video_dim"], info["music_dim"], config, stats("video_stats"), stats("music_stats"),
                          info.get("categories"))
    model.query(np.zeros((1, info["video_dim"]), np.float32), np.array([""]) if model.uses_label else None)
    model.music_tower(np.zeros((1, info["music_dim"]), np.float32))
    model.load_weights(os.path.join(path, WEIGHTS))
    return MusicRun(path, info, index, videos, splits, negatives, weights, model)


def evaluate_run(run: MusicRun, split: str = "test", seed: int = 0) -> Dict[str, Dict[str, Dict[str, float]]]:
    """``{"deccm": {scorer: metrics}, "full": {scorer: metrics}}`` for the model and the baselines, one split.

    ``two-tower`` is the matcher as chosen (with its prior term when the run weighted one in); then
    ``towers only`` (the same towers without the prior) when the weight is not 0."""
    if split not in EVAL_SPLITS:
        raise ValueError(f"evaluate the validation or test split, not {split!r}")
    video_rows, positives = run.rows(split)
    if not len(positives):
        raise ValueError(f"music run {run.path}: the {split} split is empty")
    _, train_rows = run.rows("train")
    m = len(run.index)
    keys = run.index.moods if any(run.index.moods) else run.index.genres
    labels = run.videos.labels
    started = time.perf_counter()
    scorers = {"two-tower": run.scores(run.videos.vectors[video_rows], labels[video_rows])}
    if run.beta:
        scorers["towers only"] = run.scores(run.videos.vectors[video_rows], labels[video_rows], beta=0.0)
    scorers.update({
        "random": metrics.random_scores(len(positives), m, seed),
        "most-used": metrics.most_used_scores(len(positives), train_rows, m),
        "category-prior": metrics.category_prior_scores(labels[video_rows], labels[run.rows("train")[0]],
                                                        train_rows, keys, m),
    })
    out: Dict[str, Dict[str, Dict[str, float]]] = {"deccm": {}, "full": {}}
    for name, scores in scorers.items():
        out["deccm"][name] = metrics.summarize(metrics.sampled_ranks(scores, positives, run.negatives[split]),
                                               run.weights[split])
        out["full"][name] = metrics.summarize(metrics.full_ranks(scores, positives), run.weights[split])
    out["seconds"] = round(time.perf_counter() - started, 3)  # type: ignore[assignment]
    out["negatives"] = int(run.negatives[split].shape[1])  # type: ignore[assignment]
    return out


def recommend(run: MusicRun, vectors: np.ndarray, labels=None, k: int = 10) -> Tuple[np.ndarray, np.ndarray]:
    """Top-``k`` track ids ``[N, k]`` and scores for video content embeddings ``[N, D]`` and, when the run
    uses them (``run.uses_label``), the videos' categories ``[N]``."""
    vectors = np.asarray(vectors, np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != run.info["video_dim"]:
        raise ValueError(f"video embeddings must be [N, {run.info['video_dim']}], got {vectors.shape}")
    if labels is not None and len(labels) != len(vectors):
        raise ValueError(f"{len(labels)} labels for {len(vectors)} video embeddings")
    scores = run.scores(vectors, None if labels is None else np.asarray(labels).astype(str))
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return run.index.ids[top], np.take_along_axis(scores, top, axis=1)
