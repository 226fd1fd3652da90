"""Loading SavedModels from TF Serving's layout, version policy, polling and hot reload.

A :class:`ModelManager` polls each model's base path (every ``poll_interval_s``). A new numbered folder is
loaded once its files have stopped changing (same sizes and times on two polls in a row) and served once
loaded; only then are the versions the policy no longer wants taken out of service, and unloaded after the
requests already using them finish (in-flight draining). A version that fails to load is reported in the
model's status (state ``END`` with the error, as TF Serving does) and the versions already serving keep
serving; it is retried only when its files change.

``import scann`` and ``import tensorflow_text`` happen before the first load, so SavedModels holding a ScaNN
index or the pretrained classifier's tokenizer find their custom ops.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from serving.batching import Batcher, BatchingConfig
from serving.errors import ServingError, not_found, redact_paths, register_root
from serving.layout import ModelConfig, fingerprint, list_versions
from serving import warmup
from serving.signatures import Signature, session_signatures

logger = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"
STATES = ("START", "LOADING", "AVAILABLE", "UNLOADING", "END")


#: Modules whose import registers custom ops that exported models may hold: ScaNN's index ops, and the
#: TensorFlow Text ops of the pretrained classifier's tokenizer (RegexSplitWithOffsets & co.).
CUSTOM_OP_MODULES = ("scann", "tensorflow_text")


def import_custom_ops() -> List[str]:
    """Register the custom ops that exported models may hold. Returns the modules imported."""
    import importlib

    imported = []
    for module in CUSTOM_OP_MODULES:
        try:
            importlib.import_module(module)
            imported.append(module)
        except ImportError as exc:  # pragma: no cover - both are pinned dependencies
            logger.warning("%s is not importable (%s): SavedModels using its ops will not load", module, exc)
    return imported


class ServableVersion:
    """One version of one model: its state, signatures, signature_defs and in-flight request count."""

    def __init__(self, name: str, version: int, path: str):
        self.name = name
        self.version = version
        self.path = path
        self.state = "START"
        self.error: Optional[str] = None
        self.fingerprint: tuple = ()
        self.signatures: Dict[str, Signature] = {}
        self.signature_defs = None  # {key: tensorflow.core.protobuf.meta_graph_pb2.SignatureDef}
        self._session = None
        self.warmup_records, self.warmup_s = 0, 0.0
        self._batchers: Dict[str, Batcher] = {}
        self._batching: Optional[BatchingConfig] = None
        self._inflight = 0
        self._cond = threading.Condition()

    def load(self, batching: Optional[BatchingConfig], run_timeout_ms: Optional[int] = None) -> None:
        """Load the SavedModel into its own Graph and Session, as TF Serving's SavedModelBundle (slow); raises
        on failure."""
        import tensorflow as tf

        self.state = "LOADING"
        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph, config=tf.compat.v1.ConfigProto(allow_soft_placement=True))
        try:
            with graph.as_default():
                meta_graph = tf.compat.v1.saved_model.load(session, [tf.saved_model.SERVING], self.path)
            signatures = session_signatures(session, meta_graph.signature_def, run_timeout_ms)
            if not signatures:
                raise ValueError("the SavedModel has no signatures")
        except BaseException:
            session.close()
            raise
        self.signature_defs = {k: v for k, v in meta_graph.signature_def.items() if not k.startswith("__")}
        self._session = session
        self.signatures = signatures
        self._batching = batching
        started = time.monotonic()
        try:
            self.warmup_records = warmup.replay(self.path, self.signature)
        except BaseException:
            self.signatures, self._session = {}, None
            session.close()
            raise
        self.warmup_s = time.monotonic() - started

    def signature(self, name: Optional[str]) -> Signature:
        name = name or DEFAULT_SIGNATURE
        try:
            return self.signatures[name]
        except KeyError:
            # TF Serving's answer (predict_util.cc), over REST and gRPC alike
            raise ServingError("FAILED_PRECONDITION", f"Serving signature key \"{name}\" not found.") from None

    def run(self, signature: Signature, arrays):
        """Run ``signature`` on checked numpy inputs, through the batcher when batching is on."""
        if self._batching is None or not signature.batchable:
            return signature(arrays)
        with self._cond:
            batcher = self._batchers.get(signature.name)
            if batcher is None:
                batcher = Batcher(signature, self._batching, name=f"{self.name}/{self.version}/{signature.name}")
                self._batchers[signature.name] = batcher
        return batcher(arrays)

    # -- in-flight accounting --
    def enter(self) -> None:
        with self._cond:
            self._inflight += 1

    def leave(self) -> None:
        with self._cond:
            self._inflight -= 1
            if self._inflight == 0:
                self._cond.notify_all()

    @property
    def inflight(self) -> int:
        return self._inflight

    def drain_and_unload(self, timeout_s: float = 300.0) -> None:
        """Wait for in-flight requests (new ones can no longer reach this version), then free it."""
        with self._cond:
            deadline = time.monotonic() + timeout_s
            while self._inflight and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            if self._inflight:
                logger.warning("%s version %d: unloading with %d requests still running after %.0f s",
                               self.name, self.version, self._inflight, timeout_s)
            batchers, self._batchers = list(self._batchers.values()), {}
        for batcher in batchers:
            batcher.stop()
        self.signatures = {}
        if self._session is not None:
            self._session.close()
            self._session = None
        self.state = "END"
        logger.info("model %s version %d unloaded", self.name, self.version)


@dataclasses.dataclass
class VersionStatus:
    """What GetModelStatus reports for one version."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


class _Model:
    def __init__(self, config: ModelConfig):
        self.config = config
        self.serving: Dict[int, ServableVersion] = {}      # AVAILABLE versions, routable
        self.history: Dict[int, ServableVersion] = {}      # every version seen (status), incl. failed/ended
        self.seen: Dict[int, tuple] = {}                   # version -> fingerprint at last poll
        self.failed: Dict[int, tuple] = {}                 # version -> fingerprint that failed to load


class ModelManager:
    """Serves the versions of a set of models from TF Serving's layout; see the module docstring.

    Usage::

        manager = ModelManager(configs, poll_interval_s=1.0, batching=BatchingConfig())
        manager.start()                       # first load (blocking), then the polling thread
        with manager.acquire("classifier") as servable:
            signature = servable.signature("serving_default")
            outputs = servable.run(signature, {"brief": ..., "cover": ..., "frames": ...})
        manager.stop()
    """

    def __init__(self, configs: Sequence[ModelConfig], poll_interval_s: float = 1.0,
                 batching: Optional[BatchingConfig] = None, drain_timeout_s: float = 300.0,
                 on_event: Optional[Callable[[str, str, int, str], None]] = None, metrics=None,
                 allow_unavailable_labels: bool = False, run_timeout_ms: Optional[int] = None):
        names = [c.name for c in configs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate model names in {names}")
        self._models: Dict[str, _Model] = {c.name: _Model(c) for c in configs}
        for config in configs:  # error messages name the model, never the server's folders
            register_root(config.base_path, config.name)
        self.poll_interval_s = poll_interval_s
        self.batching = batching
        self.drain_timeout_s = drain_timeout_s
        self._on_event = on_event
        self.metrics = metrics  # serving.metrics.ServingMetrics or None
        self.allow_unavailable_labels = allow_unavailable_labels
        self.run_timeout_ms = run_timeout_ms  # a signature run longer than this fails with DEADLINE_EXCEEDED
        self._lock = threading.RLock()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._unloaders: List[threading.Thread] = []
        self.custom_ops = import_custom_ops()

    @property
    def model_names(self) -> List[str]:
        return sorted(self._models)

    def start(self) -> None:
        """Load what is on disk now (versions present at start count as complete), then poll in the background."""
        self.poll_once(initial=True)
        if self.poll_interval_s > 0:
            self._thread = threading.Thread(target=self._poll_loop, name="model-poller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=60)
        with self._lock:
            doomed = [v for m in self._models.values() for v in m.serving.values()]
            for model in self._models.values():
                model.serving.clear()
        for servable in doomed:
            servable.drain_and_unload(timeout_s=10)
        for thread in self._unloaders:
            thread.join(timeout=10)

    def reload_config(self, configs: Sequence[ModelConfig]) -> None:
        """Serve exactly ``configs`` from now on (HandleReloadConfigRequest, a changed --model_config_file):
        new models are loaded, removed ones drained and unloaded, changed policies, labels and paths applied.
        Raises ValueError (bad config, a label on a version that is not serving) after applying what it could."""
        names = [c.name for c in configs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate model names in {names}")
        with self._poll_lock:
            with self._lock:
                removed = [self._models.pop(n) for n in list(self._models) if n not in names]
                for config in configs:
                    register_root(config.base_path, config.name)
                    if config.name in self._models:
                        model = self._models[config.name]
                        if model.config.base_path != config.base_path:
                            model.seen.clear()
                            model.failed.clear()
                        model.config = config
                    else:
                        self._models[config.name] = _Model(config)
                doomed = [v for model in removed for v in model.serving.values()]
                for model in removed:
                    model.serving.clear()
            for servable in doomed:
                servable.state = "UNLOADING"
                self._start_unload(servable)
            for model in list(self._models.values()):
                self._poll_model(model, initial=True)
        self.check_labels()

    def _start_unload(self, servable: ServableVersion) -> None:
        self._event("unloading", servable.name, servable.version, f"{servable.inflight} requests in flight")
        thread = threading.Thread(target=servable.drain_and_unload, args=(self.drain_timeout_s,),
                                  name=f"unload-{servable.name}-{servable.version}", daemon=True)
        thread.start()
        self._unloaders = [t for t in self._unloaders if t.is_alive()] + [thread]

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - keep polling whatever one pass hit
                logger.exception("model poll failed")

    def _event(self, kind: str, name: str, version: int, detail: str = "") -> None:
        log = logger.error if kind == "load_failed" else logger.info
        log("model %s version %d: %s%s", name, version, kind, f" ({detail})" if detail else "")
        if self._on_event:
            self._on_event(kind, name, version, detail)

    def poll_once(self, initial: bool = False) -> None:
        """One pass over every model's base path: load new versions, retire unwanted ones."""
        with self._poll_lock:
            for model in self._models.values():
                self._poll_model(model, initial)

    def _poll_model(self, model: _Model, initial: bool) -> None:
        on_disk = list_versions(model.config.base_path)
        ready: Dict[int, str] = {}
        for version, path in on_disk.items():
            print_ = fingerprint(path)
            stable = initial or model.seen.get(version) == print_
            model.seen[version] = print_
            if stable and model.failed.get(version) != print_:
                ready[version] = path
            elif version in model.failed and model.failed[version] != print_:
                model.failed.pop(version)  # its files changed: try again once they settle
        for version in list(model.seen):
            if version not in on_disk:
                model.seen.pop(version)
        candidates = (set(ready) | set(model.serving)) & set(on_disk)
        wanted = set(model.config.version_policy.select(candidates))
        for version in sorted(wanted - set(model.serving)):
            if version in ready:
                self._load(model, version, ready[version], model.seen[version])
        with self._lock:
            available_wanted = wanted & set(model.serving)
            if available_wanted or not wanted:
                retire = [v for v in model.serving if v not in wanted]
            else:
                retire = []  # nothing the policy wants is loaded: keep serving what we have
            if not on_disk:
                retire = list(model.serving)  # the folders are gone
            doomed = [model.serving.pop(v) for v in retire]
            for servable in doomed:
                servable.state = "UNLOADING"
        for servable in doomed:
            self._start_unload(servable)

    def _load(self, model: _Model, version: int, path: str, print_: tuple) -> None:
        servable = ServableVersion(model.config.name, version, path)
        servable.fingerprint = print_
        with self._lock:
            model.history[version] = servable
        started = time.monotonic()
        try:
            servable.load(self.batching, self.run_timeout_ms)
        except Exception as exc:  # noqa: BLE001 - any failure to load is reported, never fatal
            servable.state = "END"
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            servable.error = redact_paths(f"{type(exc).__name__}: {first_line}")[:1000]
            model.failed[version] = print_
            if self.metrics:
                self.metrics.load(f"{model.config.name}/{version}", False, time.monotonic() - started)
            self._event("load_failed", model.config.name, version, servable.error)
            return
        if self.metrics:
            self.metrics.load(f"{model.config.name}/{version}", True, time.monotonic() - started)
            if servable.warmup_records:
                self.metrics.warmup(f"{model.config.name}/{version}", servable.warmup_s)
        with self._lock:
            servable.state = "AVAILABLE"
            model.serving[version] = servable
        self._event("available", model.config.name, version, f"loaded in {time.monotonic() - started:.1f} s")

    # ----- request side -----

    def _model(self, name: str) -> _Model:
        try:
            return self._models[name]
        except KeyError:
            raise not_found(f"Servable not found for request: Latest({name})") from None

    def resolve_version(self, name: str, version: Optional[int] = None, label: Optional[str] = None) -> Optional[int]:
        """The version a request names (a label resolves through the model's labels map; an unknown label is
        INVALID_ARGUMENT, as in TF Serving)."""
        model = self._model(name)
        if label is not None:
            labels = model.config.version_labels
            if label not in labels:
                raise ServingError("INVALID_ARGUMENT", f"Unrecognized servable version label: {label}")
            return labels[label]
        return version

    def check_labels(self) -> None:
        """TF Serving refuses a label that points at a version which is not serving (unless
        ``--allow_version_labels_for_unavailable_models``): raise ValueError naming it."""
        if self.allow_unavailable_labels:
            return
        with self._lock:
            for name, model in self._models.items():
                for label, version in sorted(model.config.version_labels.items()):
                    if version not in model.serving:
                        raise ValueError(f"Request to assign label to version {version} of model {name}, which is "
                                         f"not currently available for inference (label '{label}')")

    @contextlib.contextmanager
    def acquire(self, name: str, version: Optional[int] = None, label: Optional[str] = None) -> Iterator[ServableVersion]:
        """Hold a serving version for the duration of a request (it will not unload under you)."""
        wanted = self.resolve_version(name, version, label)
        with self._lock:
            model = self._model(name)
            if wanted is None:
                if not model.serving:
                    raise ServingError("UNAVAILABLE" if model.history else "NOT_FOUND",
                                       f"Servable not found for request: Latest({name}): no version is available")
                servable = model.serving[max(model.serving)]
            else:
                servable = model.serving.get(wanted)
                if servable is None:
                    raise not_found(f"Servable not found for request: Specific({name}, {wanted})"
                                    + (f" (label '{label}')" if label else ""))
            servable.enter()
        try:
            yield servable
        finally:
            servable.leave()

    def status(self, name: str, version: Optional[int] = None, label: Optional[str] = None) -> List[VersionStatus]:
        """As GetModelStatus: the version asked for, else every known version newest first (a label does not
        narrow it, as in TF Serving)."""
        with self._lock:
            model = self._models.get(name)
            versions = [] if model is None else [model.history[v] for v in sorted(model.history, reverse=True)
                                                 if version is None or v == version]
        if not versions:
            what = f"version {version} of model {name}" if version is not None else f"any versions of model {name}"
            raise not_found(f"Could not find {what}")
        return [VersionStatus(s.version, s.state, "UNKNOWN" if s.error else "OK", s.error or "") for s in versions]

    def health(self) -> Dict[str, List[int]]:
        """``{model: [available versions]}``."""
        with self._lock:
            return {name: sorted(model.serving) for name, model in self._models.items()}

    def wait_until_available(self, name: str, version: int, timeout_s: float = 60.0) -> bool:
        """Test helper: block until ``version`` of ``name`` serves (True) or the timeout passes (False)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if version in self._model(name).serving:
                    return True
            time.sleep(0.05)
        return False

    def version_state(self, name: str, version: int) -> Tuple[Optional[str], Optional[str]]:
        with self._lock:
            servable = self._model(name).history.get(version)
            return (servable.state, servable.error) if servable else (None, None)
