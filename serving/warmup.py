"""SavedModel warm-up, as TF Serving does it: ``assets.extra/tf_serving_warmup_requests`` is a TFRecord file of
``PredictionLog`` records; each request is replayed against a version after it loads and before it serves,
so the first real request does not pay for lazy initialisation. A failing record fails the load (the
version is reported, the previous one keeps serving). At most 1000 records are read, as in TF Serving.

:func:`write_warmup_requests` writes such a file, for exporters.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable

from tensorflow_serving.apis import prediction_log_pb2

from serving import inference
from serving.limits import Limits
from serving.signatures import Signature
from serving.tensor_proto import proto_to_array

WARMUP_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_RECORDS = 1000


def warmup_file(version_dir: str) -> str:
    return os.path.join(version_dir, WARMUP_PATH)


def write_warmup_requests(version_dir: str, logs: Iterable[prediction_log_pb2.PredictionLog]) -> str:
    """Write PredictionLog records to ``version_dir/assets.extra/tf_serving_warmup_requests`` (for a version
    being exported, before it is renamed into place)."""
    import tensorflow as tf

    path = warmup_file(version_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def replay(version_dir: str, signature: Callable[[str], Signature], limits: Limits = Limits()) -> int:
    """Replay the warm-up records of ``version_dir`` (``signature(name)`` resolves a signature key); returns
    the number replayed (0 without a file). Raises ValueError naming the record that failed."""
    import tensorflow as tf

    path = warmup_file(version_dir)
    if not os.path.isfile(path):
        return 0
    count = 0
    for count, record in enumerate(tf.compat.v1.io.tf_record_iterator(path), start=1):
        if count > MAX_RECORDS:
            return MAX_RECORDS
        log = prediction_log_pb2.PredictionLog.FromString(record)
        try:
            _replay_one(log, signature, limits)
        except Exception as exc:  # noqa: BLE001 - any failure fails the load, with the record named
            raise ValueError(f"warm-up record {count} ({log.WhichOneof('log_type')}) failed: "
                             f"{getattr(exc, 'message', None) or exc}") from None
    return count


def _key(spec) -> str:
    return spec.signature_name or "serving_default"


def _replay_one(log, signature: Callable[[str], Signature], limits: Limits) -> None:
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        request = log.predict_log.request
        sig = signature(_key(request.model_spec))
        arrays = {name: proto_to_array(proto, name, limits) for name, proto in request.inputs.items()}
        sig.check_inputs(arrays)
        sig(arrays)
    elif kind in ("classify_log", "regress_log"):
        request = getattr(log, kind).request
        run = inference.classify if kind == "classify_log" else inference.regress
        run(signature(_key(request.model_spec)), lambda sig, arrays: sig(arrays),
            inference.serialized_examples(request.input, limits))
    elif kind == "multi_inference_log":
        request = log.multi_inference_log.request
        serialized = inference.serialized_examples(request.input, limits)
        for task in request.tasks:
            run = inference.classify if task.method_name == inference.CLASSIFY_METHOD else inference.regress
            run(signature(_key(task.model_spec)), lambda sig, arrays: sig(arrays), serialized)
    else:
        raise ValueError(f"unsupported warm-up record type {kind}")
