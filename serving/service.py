"""What the REST and gRPC front ends share: status, metadata and predict on top of a ModelManager.

Answers are built as the ``tensorflow_serving.apis`` protos, so both front ends report the same thing in
the same shape (REST prints them with protobuf's JSON mapping, as TF Serving does).
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable, Dict, Iterator, Optional, Tuple

import numpy as np
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from serving.errors import ERROR_CODE_NUMBERS, ServingError
from serving.model_manager import DEFAULT_SIGNATURE, ModelManager
from serving.signatures import Signature


class ServingCore:
    """Model status, metadata and predict, independent of the wire format."""

    def __init__(self, manager: ModelManager, metrics=None):
        self.manager = manager
        self.metrics = metrics  # serving.metrics.ServingMetrics or None

    @contextlib.contextmanager
    def recorded(self, model: str, api: str, entrypoint: str) -> Iterator[None]:
        """Count the request and its latency under TF Serving's metric names (status: the canonical code)."""
        started, status = time.perf_counter(), "OK"
        try:
            yield
        except ServingError as exc:
            status = exc.code
            raise
        except Exception:
            status = "UNKNOWN"
            raise
        finally:
            if self.metrics is not None:
                self.metrics.request(model, api, entrypoint, status, time.perf_counter() - started)

    def status(self, name: str, version: Optional[int] = None,
               label: Optional[str] = None) -> get_model_status_pb2.GetModelStatusResponse:
        response = get_model_status_pb2.GetModelStatusResponse()
        for entry in self.manager.status(name, version, label):
            status = response.model_version_status.add()
            status.version = entry.version
            status.state = get_model_status_pb2.ModelVersionStatus.State.Value(entry.state)
            status.status.error_code = ERROR_CODE_NUMBERS.get(entry.error_code, 2)
            status.status.error_message = entry.error_message
        return response

    def metadata(self, name: str, version: Optional[int] = None, label: Optional[str] = None
                 ) -> Tuple[model_pb2.ModelSpec, get_model_metadata_pb2.SignatureDefMap]:
        with self.manager.acquire(name, version, label) as servable:
            spec = model_pb2.ModelSpec(name=name)
            spec.version.value = servable.version
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, signature_def in servable.signature_defs.items():
                signature_map.signature_def[key].CopyFrom(signature_def)
        return spec, signature_map

    def predict(self, name: str, version: Optional[int], label: Optional[str], signature_name: Optional[str],
                decode: Callable[[Signature], Dict[str, np.ndarray]], entrypoint: str = "REST"
                ) -> Tuple[int, Signature, Dict[str, np.ndarray]]:
        """Resolve the model version and signature, ``decode`` the request for it, run it.

        Returns (version served, signature, outputs). ``decode`` raises ServingError on bad input.
        """
        with self.recorded(name, "Predict", entrypoint):
            if signature_name is not None and not isinstance(signature_name, str):
                raise ServingError("INVALID_ARGUMENT", "\"signature_name\" must be a string")
            with self.manager.acquire(name, version, label) as servable:
                signature = servable.signature(signature_name or DEFAULT_SIGNATURE)
                arrays = decode(signature)
                signature.check_inputs(arrays)
                started = time.perf_counter()
                outputs = servable.run(signature, arrays)
                if self.metrics is not None:
                    self.metrics.runtime(name, "Predict", time.perf_counter() - started)
                return servable.version, signature, outputs
