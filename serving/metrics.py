"""Prometheus metrics with TF Serving's names, exposed through prometheus-client.

TF Serving records TensorFlow monitoring metrics and its Prometheus exporter writes ``/a/b/c`` as ``:a:b:c``;
the same names, labels and buckets here keep dashboards and alerts written for ``tensorflow_model_server``
working:

=================================================  =========  =====================================
``:tensorflow:serving:request_count``              counter    model_name, status
``:tensorflow:serving:request_latency``            histogram  model_name, API, entrypoint (us)
``:tensorflow:serving:runtime_latency``            histogram  model_name, API, runtime (us)
``:tensorflow:serving:request_example_counts``     histogram  model
``:tensorflow:serving:request_example_count_total``  counter  model
``:tensorflow:cc:saved_model:load_attempt_count``  counter    model_path, status
``:tensorflow:cc:saved_model:load_latency``        counter    model_path (us, successful loads)
``:tensorflow:serving:model_warmup_latency``       histogram  model_path (us)
=================================================  =========  =====================================

``model_path`` is ``<model>/<version>`` (TF Serving prints the server's folder; the page is served on the
API's port, so it names the model instead). Latencies are in microseconds, with TF Serving's buckets
(exponential: 10 us x 1.8^i, 33 buckets).
"""
from __future__ import annotations

import threading
from collections import defaultdict
from typing import Dict, Iterable, List, Tuple

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric

LATENCY_BUCKETS: Tuple[float, ...] = tuple(10 * 1.8 ** i for i in range(33))
EXAMPLE_BUCKETS: Tuple[float, ...] = tuple(float(2 ** i) for i in range(15))


class _Histogram:
    def __init__(self, bounds: Tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def add(self, value: float) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.sum += value


class ServingMetrics:
    """Thread-safe counters and histograms; :meth:`exposition` is the Prometheus text page."""

    _COUNTERS = {
        ":tensorflow:serving:request_count": ("The total number of requests.", ("model_name", "status")),
        ":tensorflow:serving:request_example_count_total": ("The total number of tensorflow.Examples.", ("model",)),
        ":tensorflow:cc:saved_model:load_attempt_count": ("The number of times a SavedModel was successfully "
                                                          "loaded.", ("model_path", "status")),
        ":tensorflow:cc:saved_model:load_latency": ("Latency in microseconds for SavedModels that were "
                                                    "successfully loaded.", ("model_path",)),
    }
    _HISTOGRAMS = {
        ":tensorflow:serving:request_latency": ("Distribution of wall time (in microseconds) for Tensorflow "
                                                "Serving request.", ("model_name", "API", "entrypoint"),
                                                LATENCY_BUCKETS),
        ":tensorflow:serving:runtime_latency": ("Distribution of wall time (in microseconds) for Tensorflow "
                                                "runtime.", ("model_name", "API", "runtime"), LATENCY_BUCKETS),
        ":tensorflow:serving:request_example_counts": ("The number of tensorflow.Examples per request.",
                                                       ("model",), EXAMPLE_BUCKETS),
        ":tensorflow:serving:model_warmup_latency": ("Distribution of wall time (in microseconds) for warming up "
                                                     "the model.", ("model_path",), LATENCY_BUCKETS),
    }

    def __init__(self):
        self._lock = threading.Lock()
        self._counters: Dict[str, Dict[Tuple[str, ...], float]] = defaultdict(lambda: defaultdict(float))
        self._histograms: Dict[str, Dict[Tuple[str, ...], _Histogram]] = defaultdict(dict)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # -- recording --
    def _count(self, name: str, labels: Tuple[str, ...], by: float = 1.0) -> None:
        with self._lock:
            self._counters[name][labels] += by

    def _observe(self, name: str, labels: Tuple[str, ...], value: float) -> None:
        with self._lock:
            cells = self._histograms[name]
            if labels not in cells:
                cells[labels] = _Histogram(self._HISTOGRAMS[name][2])
            cells[labels].add(value)

    def request(self, model: str, api: str, entrypoint: str, status: str, seconds: float) -> None:
        """One request to ``model`` (``api``: Predict, Classify, Regress, MultiInference, GetModelMetadata...;
        ``entrypoint``: REST or GRPC; ``status``: a canonical code name such as OK)."""
        self._count(":tensorflow:serving:request_count", (model, status))
        self._observe(":tensorflow:serving:request_latency", (model, api, entrypoint), seconds * 1e6)

    def runtime(self, model: str, api: str, seconds: float, runtime: str = "TF1") -> None:
        self._observe(":tensorflow:serving:runtime_latency", (model, api, runtime), seconds * 1e6)

    def examples(self, model: str, count: int) -> None:
        self._observe(":tensorflow:serving:request_example_counts", (model,), count)
        self._count(":tensorflow:serving:request_example_count_total", (model,), count)

    def load(self, model_path: str, ok: bool, seconds: float) -> None:
        self._count(":tensorflow:cc:saved_model:load_attempt_count", (model_path, "success" if ok else "fail"))
        if ok:
            self._count(":tensorflow:cc:saved_model:load_latency", (model_path,), seconds * 1e6)

    def warmup(self, model_path: str, seconds: float) -> None:
        self._observe(":tensorflow:serving:model_warmup_latency", (model_path,), seconds * 1e6)

    # -- exposition (a prometheus-client collector) --
    def collect(self) -> Iterable[Metric]:
        with self._lock:
            counters = {name: dict(cells) for name, cells in self._counters.items()}
            histograms = {name: {k: (list(h.counts), h.sum) for k, h in cells.items()}
                          for name, cells in self._histograms.items()}
        for name, (doc, label_names) in self._COUNTERS.items():
            metric = Metric(name, doc, "counter")
            for labels, value in sorted(counters.get(name, {}).items()):
                metric.add_sample(name, dict(zip(label_names, labels)), value)
            yield metric
        for name, (doc, label_names, bounds) in self._HISTOGRAMS.items():
            metric = Metric(name, doc, "histogram")
            for labels, (counts, total) in sorted(histograms.get(name, {}).items()):
                base = dict(zip(label_names, labels))
                running = 0
                for bound, count in zip(list(bounds) + [float("inf")], counts):
                    running += count
                    metric.add_sample(name + "_bucket", {**base, "le": _le(bound)}, running)
                metric.add_sample(name + "_sum", base, total)
                metric.add_sample(name + "_count", base, running)
            yield metric

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric. prometheus-client names a counter family ``<name>_total``
        in its HELP/TYPE lines; TF Serving's counters have no such suffix, so those lines get the bare name."""
        text = generate_latest(self.registry)
        for name in self._COUNTERS:
            bare = name.encode()
            for kind in (b"# HELP ", b"# TYPE "):
                text = text.replace(kind + bare + b"_total ", kind + bare + b" ")
        return text

    def samples(self, name: str) -> List[Tuple[Dict[str, str], float]]:
        """Test helper: (labels, value) of every sample named ``name``."""
        return [(dict(s.labels), s.value) for m in self.collect() for s in m.samples if s.name == name]


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))
