"""TF Serving's ``--batching_parameters_file`` and ``--monitoring_config_file`` (protobuf text format).

``tensorflow-serving-api`` ships neither ``BatchingParameters`` (session_bundle_config.proto) nor
``MonitoringConfig`` (monitoring_config.proto), so their descriptors are declared here with TF Serving's field
names and numbers and the files are parsed with protobuf's own text-format parser: a file that
``tensorflow_model_server`` accepts is read the same way, and a misspelt field is an error naming it.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Optional, Tuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2

from serving.batching import BatchingConfig

logger = logging.getLogger(__name__)

_F = descriptor_pb2.FieldDescriptorProto


def _build_messages():
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(name="xinpianchang_tf_serving_configs.proto",
                                               package="tensorflow.serving", syntax="proto3",
                                               dependency=["google/protobuf/wrappers.proto"])

    def message(name, fields):
        msg = proto.message_type.add(name=name)
        for field_name, number, kind, type_name, label in fields:
            field = msg.field.add(name=field_name, number=number, type=kind,
                                  label=label or _F.LABEL_OPTIONAL)
            if type_name:
                field.type_name = type_name

    int64_value, bool_value = ".google.protobuf.Int64Value", ".google.protobuf.BoolValue"
    message("BatchingParameters", [
        ("max_batch_size", 1, _F.TYPE_MESSAGE, int64_value, None),
        ("batch_timeout_micros", 2, _F.TYPE_MESSAGE, int64_value, None),
        ("max_enqueued_batches", 3, _F.TYPE_MESSAGE, int64_value, None),
        ("num_batch_threads", 4, _F.TYPE_MESSAGE, int64_value, None),
        ("thread_pool_name", 5, _F.TYPE_MESSAGE, ".google.protobuf.StringValue", None),
        ("allowed_batch_sizes", 6, _F.TYPE_INT64, None, _F.LABEL_REPEATED),
        ("pad_variable_length_inputs", 7, _F.TYPE_BOOL, None, None),
        ("enable_large_batch_splitting", 8, _F.TYPE_MESSAGE, bool_value, None),
        ("max_execution_batch_size", 9, _F.TYPE_MESSAGE, int64_value, None),
    ])
    message("PrometheusConfig", [("enable", 1, _F.TYPE_BOOL, None, None), ("path", 2, _F.TYPE_STRING, None, None)])
    message("MonitoringConfig", [("prometheus_config", 1, _F.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig",
                                  None)])
    pool.Add(proto)
    get = message_factory.GetMessageClass
    return (get(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")),
            get(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig")))


BatchingParameters, MonitoringConfig = _build_messages()


def _parse(text: str, message_class, what: str):
    try:
        return text_format.Parse(text, message_class())
    except text_format.ParseError as exc:
        raise ValueError(f"{what} is not a {message_class.DESCRIPTOR.name}: {exc}") from None


def read_batching_parameters(path: str) -> BatchingConfig:
    """A ``--batching_parameters_file`` -> BatchingConfig (TF Serving's defaults for absent fields)."""
    with open(path, encoding="utf-8") as handle:
        params = _parse(handle.read(), BatchingParameters, f"batching parameters file {path!r}")
    defaults = BatchingConfig()

    def value(field: str, default: int) -> int:
        return int(getattr(params, field).value) if params.HasField(field) else default

    allowed: Tuple[int, ...] = tuple(int(v) for v in params.allowed_batch_sizes)
    config = BatchingConfig(max_batch_size=value("max_batch_size", defaults.max_batch_size),
                            batch_timeout_micros=value("batch_timeout_micros", defaults.batch_timeout_micros),
                            num_batch_threads=value("num_batch_threads", defaults.num_batch_threads),
                            max_enqueued_batches=value("max_enqueued_batches", defaults.max_enqueued_batches),
                            allowed_batch_sizes=allowed,
                            pad_variable_length_inputs=bool(params.pad_variable_length_inputs))
    for ignored in ("thread_pool_name", "enable_large_batch_splitting", "max_execution_batch_size"):
        if params.HasField(ignored):
            logger.warning("batching parameter %s is read but has no effect in this server", ignored)
    return config


@dataclasses.dataclass(frozen=True)
class Monitoring:
    """What a ``--monitoring_config_file`` asks for: the Prometheus page's path, or None (no page)."""

    prometheus_path: Optional[str] = None


def read_monitoring_config(path: str) -> Monitoring:
    with open(path, encoding="utf-8") as handle:
        config = _parse(handle.read(), MonitoringConfig, f"monitoring config file {path!r}")
    prometheus = config.prometheus_config
    if not prometheus.enable:
        return Monitoring(None)
    route = prometheus.path or "/monitoring/prometheus/metrics"
    if not route.startswith("/"):
        raise ValueError(f"monitoring config file {path!r}: the Prometheus path must start with '/'")
    return Monitoring(route)
