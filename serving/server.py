"""The model server: a ModelManager plus the REST and gRPC front ends, started and stopped together."""
from __future__ import annotations

import dataclasses
import logging
from typing import Dict, Optional, Sequence

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


class ModelServer:
    """``with ModelServer(configs, ServerConfig(rest_port=0, grpc_port=0)) as server: server.rest_port ...``"""

    def __init__(self, models: Sequence[ModelConfig], config: ServerConfig = ServerConfig()):
        self.config = config
        self.metrics = ServingMetrics() if config.metrics_path else None
        self.manager = ModelManager(models, poll_interval_s=config.poll_interval_s, batching=config.batching,
                                    drain_timeout_s=config.drain_timeout_s, metrics=self.metrics)
        self.core = ServingCore(self.manager, self.metrics)
        self.rest: Optional[RestServer] = None
        self.grpc: Optional[GrpcServer] = None

    def start(self) -> "ModelServer":
        self.manager.start()
        try:
            self.manager.check_labels(self.config.allow_version_labels_for_unavailable_models)
            if self.config.rest_port is not None:
                self.rest = RestServer(self.core, self.config.host, self.config.rest_port, self.config.limits,
                                       metrics=self.metrics, metrics_path=self.config.metrics_path or METRICS_PATH)
                self.rest.start()
            if self.config.grpc_port is not None:
                self.grpc = GrpcServer(self.core, self.config.host, self.config.grpc_port, self.config.limits)
                self.grpc.start()
        except BaseException:
            self.stop()
            raise
        logger.info("serving %s: REST %s, gRPC %s", self.manager.model_names, self.rest_port, self.grpc_port)
        return self

    @property
    def rest_port(self) -> Optional[int]:
        return self.rest.port if self.rest else None

    @property
    def grpc_port(self) -> Optional[int]:
        return self.grpc.port if self.grpc else None

    def health(self) -> Dict[str, list]:
        return self.manager.health()

    def stop(self) -> None:
        if self.rest:
            self.rest.stop()
        if self.grpc:
            self.grpc.stop()
        self.manager.stop()

    def __enter__(self) -> "ModelServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
