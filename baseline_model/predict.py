"""Classify (and embed) any videos with a trained run, no labels and no preparation needed.

Inputs are folders (searched recursively), glob patterns, single videos, or list files (``.txt``/``.lst``: one
path per line; ``.csv``: a ``path`` column and optionally ``id`` and ``brief`` columns). Videos are
``.mp4 .mov .webm .mkv``. For a video ``clip.mp4``:

* the cover is a sidecar picture ``clip.jpeg|.jpg|.png|.webp`` when there is one, else a frame from the clip
  (the middle sampled frame);
* the brief is the CSV's ``brief`` column, else a sidecar ``clip.txt`` (plain text, or an item record with
  ``mp4_txt_brief``) or ``clip.json`` (``mp4_txt_brief`` or ``brief``), else none (an empty brief: the model
  treats the text as missing);
* the id is the CSV's ``id`` column, else the file name without its extension.

Items stream through in batches (bounded memory whatever the number of videos): decoded in a few threads,
classified, and written at once as CSV or JSON lines (by the extension of the output), optionally with a
parquet of embeddings (the embeddings file format, label ""). A video that cannot be decoded is named on
stderr, skipped and counted; the command then exits 1 once everything else is written.
"""
from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import glob
import io
import json
import logging
import os
import sys
import time
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv")
COVER_EXTENSIONS = (".jpeg", ".jpg", ".png", ".webp")
LIST_EXTENSIONS = (".txt", ".lst", ".csv")
#: How many bytes of a sidecar brief are read (a brief is one line of text).
MAX_BRIEF_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True)
class VideoInput:
    """One video to classify: where it is, its id, its cover file (None: a frame) and brief (None: look for a
    sidecar)."""

    path: str
    item_id: str
    cover: Optional[str] = None
    brief: Optional[str] = None


def _is_video(path: str) -> bool:
    return path.lower().endswith(VIDEO_EXTENSIONS)


def _sidecar(path: str, extensions: Sequence[str]) -> Optional[str]:
    stem = os.path.splitext(path)[0]
    for ext in extensions:
        for candidate in (stem + ext, stem + ext.upper()):
            if os.path.isfile(candidate):
                return candidate
    return None


def _from_list_file(path: str) -> Iterator[VideoInput]:
    folder = os.path.dirname(os.path.abspath(path))

    def resolve(entry: str) -> str:
        return entry if os.path.isabs(entry) else os.path.join(folder, entry)

    with open(path, encoding="utf-8", newline="") as handle:
        if path.lower().endswith(".csv"):
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "path" not in reader.fieldnames:
                raise ValueError(f"{path}: a CSV list needs a 'path' column (and optionally 'id', 'brief')")
            for row in reader:
                video = resolve(row["path"].strip())
                item_id = (row.get("id") or "").strip() or os.path.splitext(os.path.basename(video))[0]
                yield VideoInput(video, item_id, _sidecar(video, COVER_EXTENSIONS), row.get("brief"))
        else:
            for line in handle:
                entry = line.strip()
                if entry and not entry.startswith("#"):
                    video = resolve(entry)
                    yield VideoInput(video, os.path.splitext(os.path.basename(video))[0],
                                     _sidecar(video, COVER_EXTENSIONS))


def iter_inputs(specs: Sequence[str]) -> Iterator[VideoInput]:
    """Every video named by ``specs`` (folders, globs, videos, list files), in order, each once.

    Raises FileNotFoundError naming a spec that matches nothing."""
    seen = set()
    for spec in specs:
        if os.path.isdir(spec):
            paths = sorted(os.path.join(d, f) for d, _, files in os.walk(spec) for f in files if _is_video(f))
            found = (VideoInput(p, os.path.splitext(os.path.basename(p))[0], _sidecar(p, COVER_EXTENSIONS))
                     for p in paths)
        elif os.path.isfile(spec) and spec.lower().endswith(LIST_EXTENSIONS) and not _is_video(spec):
            found = _from_list_file(spec)
        elif os.path.isfile(spec):
            found = iter([VideoInput(spec, os.path.splitext(os.path.basename(spec))[0],
                                     _sidecar(spec, COVER_EXTENSIONS))])
        else:
            matches = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p) and _is_video(p))
            if not matches:
                raise FileNotFoundError(f"--input {spec!r}: no such file or folder, and no video matches it")
            found = (VideoInput(p, os.path.splitext(os.path.basename(p))[0], _sidecar(p, COVER_EXTENSIONS))
                     for p in matches)
        for item in found:
            key = os.path.abspath(item.path)
            if key not in seen:
                seen.add(key)
                yield item


def read_brief(item: VideoInput) -> str:
    """The item's brief: given, or from a sidecar .txt/.json, else ""."""
    if item.brief is not None:
        return item.brief.strip()
    path = _sidecar(item.path, (".txt", ".json"))
    if path is None:
        return ""
    with open(path, "rb") as handle:
        text = handle.read(MAX_BRIEF_BYTES).decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        from data_interface_for_model.item_txt import parse_item_text

        try:
            record = parse_item_text(text)
        except ValueError:
            return text.splitlines()[0] if text else ""
        return str(record.get("mp4_txt_brief") or record.get("brief") or "").strip()
    return text.splitlines()[0] if text else ""


def decode_item(item: VideoInput, num_frames: int, size: int) -> Tuple[str, np.ndarray, np.ndarray]:
    """Decode one video (and its cover): ``(brief, cover uint8 [S,S,3], frames uint8 [T,S,S,3])``.

    Raises DecodeError (a ValueError) naming the file when the clip or the cover cannot be read."""
    from data_interface_for_model.decoding import load_cover, sample_clip

    clip = sample_clip(item.path, num_frames, size)
    if item.cover is not None:
        cover = load_cover(item.cover, size, require_jpeg=False)
    else:
        cover = clip.frames[max(clip.num_real - 1, 0) // 2]
    return read_brief(item), cover, clip.frames


def load_item(item: VideoInput, num_frames: int, size: int, audio_windows: int = 0) -> Dict[str, np.ndarray]:
    """:func:`decode_item` as the model's inputs: ``{"text", "cover" [S,S,3], "frames" [T,S,S,3]}`` in [0, 1],
    and for an audio run ``"audio" [P,187,96]``: the sound track's log-mel windows as preparation computes
    them (zeros when the clip has no sound or silence: a missing modality, never an error)."""
    brief, cover, frames = decode_item(item, num_frames, size)
    scale = np.float32(1.0 / 255.0)
    loaded = {"text": brief, "cover": cover.astype(np.float32) * scale, "frames": frames.astype(np.float32) * scale}
    if audio_windows:
        from data_interface_for_model.audio import AudioConfig, clip_log_mel

        loaded["audio"] = clip_log_mel(item.path, AudioConfig(patches=audio_windows))[0]
    return loaded


def batch_inputs(decoded: Sequence[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """:func:`load_item` results -> one batch of the model's inputs (``audio`` too when they carry it)."""
    batch = {"text": np.asarray([d["text"] for d in decoded], dtype=object)}
    for key in ("cover", "frames", "audio"):
        if key in decoded[0]:
            batch[key] = np.stack([d[key] for d in decoded])
    return batch


#: The CSV output's columns.
CSV_COLUMNS = ("id", "path", "label", "probability", "top_labels", "top_probabilities")


def format_row(item: VideoInput, labels: Sequence[str], probabilities: Sequence[float], jsonl: bool) -> str:
    """One output row (no line end): a JSON line, or a CSV line of :data:`CSV_COLUMNS`."""
    if jsonl:
        return json.dumps({"id": item.item_id, "path": item.path, "label": labels[0],
                           "probability": probabilities[0],
                           "top_k": [{"label": l, "probability": p} for l, p in zip(labels, probabilities)]},
                          ensure_ascii=False)
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(
        [item.item_id, item.path, labels[0], f"{probabilities[0]:.6f}", ";".join(labels),
         ";".join(f"{p:.6f}" for p in probabilities)])
    return line.getvalue()


class _Writer:
    """Rows out as CSV or JSON lines (by extension), written atomically when closed successfully."""

    def __init__(self, path: str, top_k: int):
        from data_interface_for_model.atomic import atomic_write

        self.path, self.top_k = path, top_k
        self.jsonl = path.lower().endswith((".jsonl", ".json", ".ndjson"))
        self._context = atomic_write(path, "w", encoding="utf-8")
        self._handle = self._context.__enter__()
        self._end = "\n" if self.jsonl else "\r\n"
        if not self.jsonl:
            csv.writer(self._handle).writerow(CSV_COLUMNS)

    def write(self, item: VideoInput, labels: List[str], probabilities: List[float]) -> None:
        self._handle.write(format_row(item, labels, probabilities, self.jsonl) + self._end)

    def close(self, ok: bool) -> None:
        exc = None if ok else RuntimeError("predict failed")
        self._context.__exit__(type(exc) if exc else None, exc, None)


class _EmbeddingWriter:
    """Embeddings appended batch by batch to a parquet file (the embeddings file format), atomically."""

    def __init__(self, path: str):
        import pyarrow as pa
        import pyarrow.parquet as pq

        from data_interface_for_model.atomic import atomic_output_path

        if not path.endswith(".parquet"):
            raise ValueError(f"--embeddings {path!r}: write embeddings as .parquet")
        self._pa = pa
        self.schema = pa.schema([("mp4_id", pa.string()), ("label", pa.string()),
                                 ("embedding", pa.list_(pa.float32()))])
        self._context = atomic_output_path(path, suffix=".parquet")
        self._writer = pq.ParquetWriter(self._context.__enter__(), self.schema)

    def write(self, ids: List[str], vectors: np.ndarray) -> None:
        pa = self._pa
        self._writer.write_table(pa.table({"mp4_id": pa.array(ids, pa.string()),
                                           "label": pa.array([""] * len(ids), pa.string()),
                                           "embedding": pa.array(list(vectors.astype(np.float32)),
                                                                 pa.list_(pa.float32()))}, schema=self.schema))

    def close(self, ok: bool) -> None:
        self._writer.close()
        exc = None if ok else RuntimeError("predict failed")
        self._context.__exit__(type(exc) if exc else None, exc, None)


@dataclasses.dataclass
class PredictSummary:
    written: int
    failed: List[Tuple[str, str]]
    seconds: float

    @property
    def clips_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def _batches(items: Iterable[VideoInput], size: int) -> Iterator[List[VideoInput]]:
    batch: List[VideoInput] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict_videos(run_dir: str, inputs: Sequence[str], output: Optional[str], top_k: int = 5,
                   embeddings: Optional[str] = None, batch_size: int = 16, threads: int = 2,
                   progress: bool = True) -> PredictSummary:
    """Classify every video of ``inputs`` with the run; write rows to ``output`` (CSV or JSON lines) and,
    when asked, embeddings to ``embeddings`` (.parquet). Unreadable videos are skipped and returned."""
    from tqdm import tqdm

    from baseline_model.run import load_run

    if output is None and embeddings is None:
        raise ValueError("nothing to write: give --output FILE and/or --embeddings FILE.parquet")
    items = list(iter_inputs(inputs))  # paths only: the pixels stream below
    if not items:
        raise FileNotFoundError(f"no video ({', '.join(VIDEO_EXTENSIONS)}) found in {', '.join(inputs)}")
    run = load_run(run_dir)
    num_frames, size = run.model_config.num_frames, run.model_config.image_size
    windows = run.model_config.audio_windows
    top_k = max(1, min(top_k, len(run.labels)))
    model = run.predictor(with_embedding=embeddings is not None)
    writer = _Writer(output, top_k) if output else None
    vectors_out = _EmbeddingWriter(embeddings) if embeddings else None
    failed: List[Tuple[str, str]] = []
    written, ok, start = 0, False, time.perf_counter()
    try:
        with concurrent.futures.ThreadPoolExecutor(max(1, threads)) as pool, \
                tqdm(total=len(items), desc="predict", unit="clip", disable=not progress) as bar:
            for batch in _batches(items, batch_size):
                decoded, kept = [], []
                for item, result in zip(batch, pool.map(lambda i: _try_load(i, num_frames, size, windows), batch)):
                    if isinstance(result, str):
                        failed.append((item.path, result))
                        print(f"skipped {item.path}: {result}", file=sys.stderr)
                    else:
                        decoded.append(result)
                        kept.append(item)
                bar.update(len(batch))
                if not kept:
                    continue
                outputs = model.predict_on_batch(batch_inputs(decoded))
                probabilities = np.asarray(outputs[0] if isinstance(outputs, (list, tuple)) else outputs)
                if writer:
                    order = np.argsort(-probabilities, axis=1)[:, :top_k]
                    for item, row, best in zip(kept, probabilities, order):
                        writer.write(item, [run.labels[i] for i in best], [float(row[i]) for i in best])
                if vectors_out:
                    vectors_out.write([i.item_id for i in kept], np.asarray(outputs[1]))
                written += len(kept)
        ok = True
    finally:
        for sink in (writer, vectors_out):
            if sink is not None:
                sink.close(ok)
    return PredictSummary(written, failed, time.perf_counter() - start)


#: What a video or cover that cannot be read raises (DecodeError is a ValueError).
UNREADABLE = (OSError, ValueError)


def _try_load(item: VideoInput, num_frames: int, size: int, audio_windows: int = 0):
    """The decoded item, or the reason it cannot be read (never raises for a bad file)."""
    try:
        return load_item(item, num_frames, size, audio_windows)
    except UNREADABLE as exc:
        return str(exc) or type(exc).__name__
