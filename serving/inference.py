"""Classify, Regress and MultiInference over tf.Example signatures, as TF Serving runs them.

A request carries ``tf.train.Example`` protos (gRPC ``Input``: ``example_list`` or ``example_list_with_context``;
REST: ``{"examples": [{feature: value|list}], "context": {...}}``). They are serialized and fed, as one
string tensor ``[N]``, to the signature's single input; the graph parses them. A classify signature
(method ``tensorflow/serving/classify``) answers ``classes`` (string ``[N, K]``) and/or ``scores`` (float
``[N, K]``); a regress signature (``tensorflow/serving/regress``) answers ``outputs`` (float ``[N]`` or
``[N, 1]``). Examples with a context are sent as TF Serving sends them: the serialized context followed by the
serialized example (protobuf merge: the example's features win).
"""
from __future__ import annotations

import base64
import binascii
from typing import Any, Dict, List

import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2

from serving.errors import ServingError, invalid
from serving.limits import Limits
from serving.signatures import CLASSIFY_METHOD, REGRESS_METHOD, Signature  # noqa: F401 (re-exported)

CLASSIFY_INPUTS, CLASSES, SCORES = "inputs", "classes", "scores"
REGRESS_INPUTS, REGRESS_OUTPUTS = "inputs", "outputs"


# ----- JSON -> Input -----

def _add_value(feature: feature_pb2.Feature, value: Any, name: str) -> None:
    kind = feature.WhichOneof("kind")

    def need(wanted: str) -> None:
        if kind not in (None, wanted):
            raise invalid(f"Unexpected element type in feature: {name} expecting type: "
                          f"{kind.replace('_list', '')}")

    if isinstance(value, bool):
        need("int64_list")
        feature.int64_list.value.append(int(value))
    elif isinstance(value, int):
        need("int64_list")
        if not -(2 ** 63) <= value < 2 ** 63:
            raise invalid(f"Feature: {name} has an integer out of int64 range")
        feature.int64_list.value.append(value)
    elif isinstance(value, float):
        need("float_list")
        feature.float_list.value.append(value)
    elif isinstance(value, str):
        need("bytes_list")
        feature.bytes_list.value.append(value.encode("utf-8"))
    elif isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        need("bytes_list")
        text = value["b64"]
        try:
            feature.bytes_list.value.append(base64.b64decode(text + "=" * (-len(text) % 4), validate=True))
        except (binascii.Error, ValueError) as exc:
            raise invalid(f"Feature: {name}: bad base64: {exc}") from None
    else:
        raise invalid(f"Feature: {name} has element with unexpected JSON type: {type(value).__name__}")


def example_from_json(value: Any) -> example_pb2.Example:
    """``{"x": 1.0, "tags": ["a", "b"], "img": {"b64": ...}}`` -> Example (TF Serving's typing rules: a JSON
    number with a decimal point is a float, a whole number an int64, strings and ``{"b64"}`` bytes)."""
    if not isinstance(value, dict):
        raise invalid(f"Example must be JSON object but got JSON {type(value).__name__}")
    example = example_pb2.Example()
    for name, content in value.items():
        feature = example.features.feature[name]
        for item in (content if isinstance(content, list) else [content]):
            _add_value(feature, item, name)
    return example


def input_from_json(body: Any) -> input_pb2.Input:
    """A ``:classify`` / ``:regress`` body -> the gRPC ``Input`` it stands for."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object with \"examples\"")
    examples = body.get("examples")
    if examples is None:
        raise invalid("When method is classify, key 'examples' is expected and was not found")
    if not isinstance(examples, list):
        raise invalid("Expecting 'examples' value to be an list/array")
    if not examples:
        raise invalid("'examples' value is an empty array")
    request_input = input_pb2.Input()
    if "context" in body:
        target = request_input.example_list_with_context
        target.context.CopyFrom(example_from_json(body["context"]))
    else:
        target = request_input.example_list
    for value in examples:
        target.examples.add().CopyFrom(example_from_json(value))
    return request_input


def serialized_examples(request_input: input_pb2.Input, limits: Limits) -> np.ndarray:
    """``Input`` -> string ``[N]`` of serialized Examples (context + example bytes when there is a context)."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        items = [e.SerializeToString() for e in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        context = request_input.example_list_with_context.context.SerializeToString()
        items = [context + e.SerializeToString() for e in request_input.example_list_with_context.examples]
    else:
        raise invalid("Input is empty.")
    if not items:
        raise invalid("Input is empty.")
    if len(items) > limits.max_tensor_elements:
        raise ServingError("RESOURCE_EXHAUSTED", f"{len(items)} examples: over the limit of "
                                                 f"{limits.max_tensor_elements}")
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


# ----- running -----

def _check_method(signature: Signature, method: str, what: str) -> None:
    if signature.method_name != method:
        raise invalid(f"Expected {what} signature method_name to be {method}. Was: {signature.method_name}")
    if len(signature.inputs) != 1:
        raise invalid("Expected one input Tensor.")


def run_examples(signature: Signature, run, serialized: np.ndarray) -> Dict[str, np.ndarray]:
    name = next(iter(signature.inputs))
    return run(signature, {name: serialized})


def classify(signature: Signature, run, serialized: np.ndarray) -> classification_pb2.ClassificationResult:
    """Run a classify signature on serialized Examples; TF Serving's ClassificationResult."""
    _check_method(signature, CLASSIFY_METHOD, "classification")
    if CLASSES not in signature.outputs and SCORES not in signature.outputs:
        raise invalid(f"Expected classification signature outputs to contain at least one of {CLASSES} or "
                      f"{SCORES}")
    outputs = run_examples(signature, run, serialized)
    n = len(serialized)
    classes, scores = outputs.get(CLASSES), outputs.get(SCORES)
    for label, tensor in ((CLASSES, classes), (SCORES, scores)):
        if tensor is not None and (tensor.ndim != 2 or tensor.shape[0] != n):
            raise invalid(f"Expected Tensor shape: [{n} num_classes] but got {list(tensor.shape)} ({label})")
    if classes is not None and scores is not None and classes.shape != scores.shape:
        raise invalid(f"Tensors class and score should match in shape: {list(classes.shape)} vs "
                      f"{list(scores.shape)}")
    result = classification_pb2.ClassificationResult()
    width = (classes if classes is not None else scores).shape[1]
    for i in range(n):
        classifications = result.classifications.add()
        for j in range(width):
            item = classifications.classes.add()
            if classes is not None:
                value = classes[i, j]
                item.label = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            if scores is not None:
                item.score = float(scores[i, j])
    return result


def regress(signature: Signature, run, serialized: np.ndarray) -> regression_pb2.RegressionResult:
    """Run a regress signature on serialized Examples; TF Serving's RegressionResult."""
    _check_method(signature, REGRESS_METHOD, "regression")
    if REGRESS_OUTPUTS not in signature.outputs:
        raise invalid(f"No {REGRESS_OUTPUTS} output in the regression signature")
    values = run_examples(signature, run, serialized)[REGRESS_OUTPUTS]
    n = len(serialized)
    if not (values.shape == (n,) or values.shape == (n, 1)):
        raise invalid(f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
                      f"{list(values.shape)}")
    result = regression_pb2.RegressionResult()
    for value in values.reshape(-1):
        result.regressions.add().value = float(value)
    return result


# ----- results -> JSON -----

def _float32(value: float) -> float:
    return float(str(np.float32(value)))  # shortest text that reads back as the same float32


def classification_json(result: classification_pb2.ClassificationResult) -> Dict[str, List]:
    return {"results": [[[c.label, _float32(c.score)] for c in item.classes] for item in result.classifications]}


def regression_json(result: regression_pb2.RegressionResult) -> Dict[str, List]:
    return {"results": [_float32(r.value) for r in result.regressions]}
