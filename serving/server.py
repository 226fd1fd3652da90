"""The model server: a ModelManager plus the REST and gRPC front ends, started and stopped together."""
from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Callable, Dict, Optional, Sequence

from serving.batching import BatchingConfig
from serving.grpc_server import GrpcServer
from serving.layout import ModelConfig
from serving.limits import Limits
from serving.model_manager import ModelManager
from serving.metrics import ServingMetrics
from serving.rest import METRICS_PATH, RestServer
from serving.service import ServingCore

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ServerConfig:
    """Where and how to serve. Port 0 picks a free port; ``grpc_port=None`` / ``rest_port=None`` turn one off."""

    host: str = "127.0.0.1"
    rest_port: Optional[int] = 8501
    grpc_port: Optional[int] = 8500
    poll_interval_s: float = 1.0
    batching: Optional[BatchingConfig] = None
    drain_timeout_s: float = 300.0
    limits: Limits = dataclasses.field(default_factory=Limits)
    #: where the REST port serves Prometheus metrics (TF Serving's path); None = no metrics page
    metrics_path: Optional[str] = METRICS_PATH
    #: TF Serving refuses labels that point at a version which is not serving, unless this is set
    allow_version_labels_for_unavailable_models: bool = False
    #: a signature run longer than this fails with DEADLINE_EXCEEDED (REST 504); None = no limit
    run_timeout_ms: Optional[int] = None
    #: CORS headers on REST answers and 200 for preflight OPTIONS (TF Serving's --rest_api_enable_cors_support)
    cors: bool = False
    #: re-read this ModelServerConfig file every ``model_config_poll_s`` seconds and apply changes (0 = never)
    model_config_file: Optional[str] = None
    model_config_poll_s: float = 0.0
    #: maps a config file's models to ModelConfigs (what ``serve`` and ``model-server`` read at start)
    read_model_config: Optional[Callable[[str], Sequence[ModelConfig]]] = None


class ModelServer:
    """``with ModelServer(configs, ServerConfig(rest_port=0, grpc_port=0)) as server: server.rest_port ...``"""

    def __init__(self, models: Sequence[ModelConfig], config: ServerConfig = ServerConfig()):
        self.config = config
        self.metrics = ServingMetrics() if config.metrics_path else None
        self.manager = ModelManager(models, poll_interval_s=config.poll_interval_s, batching=config.batching,
                                    drain_timeout_s=config.drain_timeout_s, metrics=self.metrics,
                                    allow_unavailable_labels=config.allow_version_labels_for_unavailable_models,
                                    run_timeout_ms=config.run_timeout_ms)
        self.core = ServingCore(self.manager, self.metrics)
        self.rest: Optional[RestServer] = None
        self.grpc: Optional[GrpcServer] = None
        self._stopping = threading.Event()
        self._config_thread: Optional[threading.Thread] = None

    def start(self) -> "ModelServer":
        self.manager.start()
        try:
            self.manager.check_labels()
            if self.config.rest_port is not None:
                self.rest = RestServer(self.core, self.config.host, self.config.rest_port, self.config.limits,
                                       metrics=self.metrics, metrics_path=self.config.metrics_path or METRICS_PATH,
                                       cors=self.config.cors)
                self.rest.start()
            if self.config.grpc_port is not None:
                self.grpc = GrpcServer(self.core, self.config.host, self.config.grpc_port, self.config.limits)
                self.grpc.start()
        except BaseException:
            self.stop()
            raise
        if self.config.model_config_file and self.config.model_config_poll_s > 0:
            self._config_thread = threading.Thread(target=self._watch_config, name="model-config-poller", daemon=True)
            self._config_thread.start()
        logger.info("serving %s: REST %s, gRPC %s", self.manager.model_names, self.rest_port, self.grpc_port)
        return self

    def _watch_config(self) -> None:
        """Re-read the model config file; apply it when its text changed (TF Serving's config polling)."""
        path, last = self.config.model_config_file, None
        try:
            with open(path, encoding="utf-8") as handle:
                last = handle.read()
        except OSError:
            pass
        while not self._stopping.wait(self.config.model_config_poll_s):
            try:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
                if text == last:
                    continue
                last = text
                self.manager.reload_config(self.config.read_model_config(path))
                logger.info("model config %s reloaded: %s", path, self.manager.model_names)
            except Exception:  # noqa: BLE001 - a bad edit is logged; the models already served keep serving
                logger.exception("model config %s could not be applied", path)

    @property
    def rest_port(self) -> Optional[int]:
        return self.rest.port if self.rest else None

    @property
    def grpc_port(self) -> Optional[int]:
        return self.grpc.port if self.grpc else None

    def health(self) -> Dict[str, list]:
        return self.manager.health()

    def stop(self) -> None:
        self._stopping.set()
        if self._config_thread:
            self._config_thread.join(timeout=10)
        if self.rest:
            self.rest.stop()
        if self.grpc:
            self.grpc.stop()
        self.manager.stop()

    def __enter__(self) -> "ModelServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
