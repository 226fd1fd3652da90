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

from serving import inference
from serving.errors import ERROR_CODE_NUMBERS, ServingError
from serving.limits import Limits
from serving.model_manager import DEFAULT_SIGNATURE, ModelManager
from serving.signatures import CLASSIFY_METHOD, REGRESS_METHOD, Signature


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

    def infer(self, api: str, name: str, version: Optional[int], label: Optional[str],
              signature_name: Optional[str], request_input, limits: Limits, entrypoint: str = "REST"):
        """Classify or Regress (``api``) the Examples of a gRPC ``Input``; (version served, signature, result)."""
        with self.recorded(name, api, entrypoint):
            with self.manager.acquire(name, version, label) as servable:
                signature = servable.signature(signature_name or DEFAULT_SIGNATURE)
                serialized = inference.serialized_examples(request_input, limits)
                if self.metrics is not None:
                    self.metrics.examples(name, len(serialized))
                run = inference.classify if api == "Classify" else inference.regress
                return servable.version, signature, run(signature, servable.run, serialized)

    def multi_inference(self, request, limits: Limits, entrypoint: str = "GRPC"):
        """MultiInference: several classify/regress signatures of one model version on the same Examples."""
        from tensorflow_serving.apis import inference_pb2

        tasks = list(request.tasks)
        if not tasks:
            raise ServingError("INVALID_ARGUMENT", "Tasks is empty")
        name = tasks[0].model_spec.name
        with self.recorded(name, "MultiInference", entrypoint):
            specs = {(t.model_spec.name, t.model_spec.WhichOneof("version_choice"),
                      t.model_spec.version.value, t.model_spec.version_label) for t in tasks}
            if len(specs) != 1:
                raise ServingError("INVALID_ARGUMENT", "All ModelSpecs in a MultiInferenceRequest must access "
                                                       "the same model name and version")
            keys = [t.model_spec.signature_name or DEFAULT_SIGNATURE for t in tasks]
            if len(set(keys)) != len(keys):
                raise ServingError("INVALID_ARGUMENT", "Duplicate evaluation of signature")
            spec = tasks[0].model_spec
            choice = spec.WhichOneof("version_choice")
            version = spec.version.value if choice == "version" else None
            label = spec.version_label if choice == "version_label" else None
            response = inference_pb2.MultiInferenceResponse()
            with self.manager.acquire(name, version, label) as servable:
                serialized = inference.serialized_examples(request.input, limits)
                for task, key in zip(tasks, keys):
                    signature = servable.signature(key)
                    result = response.results.add()
                    result.model_spec.name = name
                    result.model_spec.version.value = servable.version
                    result.model_spec.signature_name = key
                    if task.method_name == CLASSIFY_METHOD:
                        result.classification_result.CopyFrom(
                            inference.classify(signature, servable.run, serialized))
                    elif task.method_name == REGRESS_METHOD:
                        result.regression_result.CopyFrom(inference.regress(signature, servable.run, serialized))
                    else:
                        raise ServingError("UNIMPLEMENTED", f"Unsupported signature method_name: "
                                                            f"{task.method_name}")
            return response
