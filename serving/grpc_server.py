"""TF Serving's gRPC API: PredictionService (Predict, GetModelMetadata) and ModelService (GetModelStatus).

Implemented on the servicer base classes and messages of ``tensorflow-serving-api``, so the official
stubs (``prediction_service_pb2_grpc.PredictionServiceStub``, ``model_service_pb2_grpc.ModelServiceStub``)
work unchanged. Classify, Regress and MultiInference run tf.Example signatures (serving.inference).
"""
from __future__ import annotations

import functools
import logging
import time
from concurrent import futures
from typing import Dict, Optional, Tuple

import grpc
import numpy as np
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     model_management_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc, regression_pb2)

from serving.errors import ServingError, invalid, to_serving_error
from serving.layout import configs_from_proto
from serving.limits import Limits
from serving.service import ServingCore
from serving.signatures import Signature
from serving.tensor_proto import array_to_proto, dtype_name, proto_to_array

logger = logging.getLogger(__name__)
access_log = logging.getLogger("serving.access")


def _spec_version(spec) -> Tuple[Optional[int], Optional[str]]:
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value, None
    if choice == "version_label":
        return None, spec.version_label
    return None, None


def _guarded(what: str):
    """Every failure of a servicer method becomes a gRPC status through :func:`to_serving_error` (the one
    mapping); methods raise, they never call ``context.abort`` themselves."""
    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, request, context):
            try:
                return method(self, request, context)
            except Exception as exc:  # noqa: BLE001 - mapped to the API's error format, never a stack trace
                error = to_serving_error(exc, what)
            context.abort(getattr(grpc.StatusCode, error.code), error.message)
        return wrapper
    return decorate


def tensor_protos_to_arrays(protos, signature: Signature, limits: Limits) -> Dict[str, np.ndarray]:
    """``map<string, TensorProto>`` -> numpy, checking each dtype against the signature and every size
    against ``limits`` before allocating."""
    arrays = {}
    for name, proto in protos.items():
        info = signature.inputs.get(name)
        if info is None:
            raise invalid(f"signature '{signature.name}' has no input '{name}'; it expects {signature.describe_inputs()}")
        got = dtype_name(proto.dtype)
        if got != info.dtype:
            raise invalid(f"input '{name}' expects dtype {info.dtype} but the TensorProto holds {got}")
        arrays[name] = proto_to_array(proto, name, limits)
    return arrays


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core: ServingCore, limits: Limits):
        self.core = core
        self.limits = limits

    @_guarded("Predict request")
    def Predict(self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext):  # noqa: N802
        started = time.perf_counter()
        code = "OK"
        try:
            version, label = _spec_version(request.model_spec)
            served, signature, outputs = self.core.predict(
                request.model_spec.name, version, label, request.model_spec.signature_name or None,
                lambda sig: tensor_protos_to_arrays(request.inputs, sig, self.limits), entrypoint="GRPC")
            wanted = list(request.output_filter) or sorted(outputs)
            unknown = sorted(set(wanted) - set(outputs))
            if unknown:
                raise invalid(f"output_filter names unknown output(s) {unknown}; outputs: {sorted(outputs)}")
            response = predict_pb2.PredictResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = served
            response.model_spec.signature_name = signature.name
            for name in wanted:
                array_to_proto(outputs[name], response.outputs[name])
            return response
        except ServingError as exc:
            code = exc.code
            raise
        except Exception:
            code = "ERROR"
            raise
        finally:
            access_log.info("grpc Predict %s %s %.1fms", request.model_spec.name, code,
                            (time.perf_counter() - started) * 1000)

    @_guarded("GetModelMetadata request")
    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest, context):  # noqa: N802
        fields = list(request.metadata_field)
        if fields != ["signature_def"]:
            raise invalid(f"metadata_field must be ['signature_def'] (the only metadata), got {fields}")
        version, label = _spec_version(request.model_spec)
        spec, signature_map = self.core.metadata(request.model_spec.name, version, label)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.CopyFrom(spec)
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def _infer(self, api: str, request, response, context):
        version, label = _spec_version(request.model_spec)
        served, signature, result = self.core.infer(api, request.model_spec.name, version, label,
                                                    request.model_spec.signature_name or None, request.input,
                                                    self.limits, "GRPC")
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = served
        response.model_spec.signature_name = signature.name
        response.result.CopyFrom(result)
        return response

    @_guarded("Classify request")
    def Classify(self, request, context):  # noqa: N802
        return self._infer("Classify", request, classification_pb2.ClassificationResponse(), context)

    @_guarded("Regress request")
    def Regress(self, request, context):  # noqa: N802
        return self._infer("Regress", request, regression_pb2.RegressionResponse(), context)

    @_guarded("MultiInference request")
    def MultiInference(self, request, context):  # noqa: N802
        return self.core.multi_inference(request, self.limits, "GRPC")


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core: ServingCore):
        self.core = core

    @_guarded("GetModelStatus request")
    def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest, context):  # noqa: N802
        version, label = _spec_version(request.model_spec)
        return self.core.status(request.model_spec.name, version, label)

    @_guarded("HandleReloadConfigRequest")
    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        """Serve exactly the request's ModelServerConfig from now on (models added, removed, changed)."""
        self.core.manager.reload_config(configs_from_proto(request.config))
        response = model_management_pb2.ReloadConfigResponse()
        response.status.error_code = 0
        return response


class GrpcServer:
    """The gRPC front end on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, core: ServingCore, host: str = "127.0.0.1", port: int = 8500, limits: Limits = Limits()):
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=limits.grpc_workers, thread_name_prefix="grpc"),
            options=[("grpc.max_receive_message_length", limits.max_request_bytes),
                     ("grpc.max_send_message_length", limits.max_request_bytes),
                     ("grpc.so_reuseport", 0)],
            maximum_concurrent_rpcs=limits.max_concurrent_rpcs)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(core, limits), self._server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core), self._server)
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.port = self._server.add_insecure_port(target)
        if not self.port:
            raise OSError(f"cannot bind gRPC to {target}")

    def start(self) -> None:
        self._server.start()

    def stop(self, grace_s: float = 2.0) -> None:
        self._server.stop(grace_s).wait()
