"""SavedModel warm-up, as TF Serving does it: ``assets.extra/tf_serving_warmup_requests`` is a TFRecord file of
``PredictionLog`` records; each request is replayed against a version after it loads and before it serves,
so the first real request does not pay for lazy initialisation. A failing record fails the load (the
version is reported, the previous one keeps serving). At most 1000 records are read, as in TF Serving.

Exporters write the file with :func:`data_interface_for_model.tf_serving_format.write_warmup_requests` (the one
writer; re-exported here).
"""
from __future__ import annotations

from typing import Callable

from data_interface_for_model.tf_serving_format import (  # noqa: F401  (write_warmup_requests re-exported)
    MAX_WARMUP_RECORDS as MAX_RECORDS, read_warmup_requests, warmup_path as warmup_file, write_warmup_requests)
from serving import inference
from serving.limits import Limits
from serving.signatures import Signature
from serving.tensor_proto import proto_to_array


def replay(version_dir: str, signature: Callable[[str], Signature], limits: Limits = Limits()) -> int:
    """Replay the warm-up records of ``version_dir`` (``signature(name)`` resolves a signature key); returns
    the number replayed (0 without a file). Raises ValueError naming the record that failed."""
    count = 0
    for count, log in enumerate(read_warmup_requests(version_dir), start=1):
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
