"""Clients for TF Serving's REST and gRPC APIs (this project's server or a real TF Serving), and helpers.

Both clients offer ``predict(model, inputs, signature_name=None, version=None, label=None)`` with columnar
inputs (``{name: array-like}``; Python ``bytes`` are binary strings) returning ``{output: numpy array}``,
plus ``status`` and ``metadata``. The helpers build on that:

* :func:`encode_video` - a clip (+ cover, + brief) as the classifier's inputs (frames sampled across the
  clip, JPEG-encoded; a missing cover or clip becomes ""),
* :func:`classify_video` -> :class:`Classification`, :func:`embed_video` -> float32 ``[D]``,
* :func:`recommend` (a viewing history) and :func:`similar_items` (one item) -> ``[(item_id, score)]``.

Example::

    client = RestClient("http://127.0.0.1:8501")          # or GrpcClient("127.0.0.1:8500")
    result = classify_video(client, "clip.mp4", cover_path="clip.jpeg", brief="waves at sunset")
    result.label, result.top(3)
    recommend(client, ["123", "456"])                      # [(item_id, score), ...]
"""
from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np


class ServingClientError(RuntimeError):
    """The server answered with an error (``status`` is the HTTP status or the gRPC code name)."""

    def __init__(self, status: Any, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


# ----------------------------------------------------------------------------------------------- REST
def to_json_value(value: Any) -> Any:
    """numpy / lists / bytes -> JSON values; ``bytes`` become ``{"b64": ...}``."""
    if isinstance(value, np.ndarray):
        if value.dtype == object or value.dtype.kind in "SU":
            return [to_json_value(v) for v in value.tolist()] if value.ndim else to_json_value(value.item())
        return value.tolist()
    if isinstance(value, (bytes, bytearray)):
        return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def from_json_value(value: Any) -> Any:
    """``{"b64": ...}`` -> bytes, recursively."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [from_json_value(v) for v in value]
    return value


def _as_array(value: Any) -> np.ndarray:
    value = from_json_value(value)
    array = np.array(value, dtype=object) if _has_text(value) else np.array(value)
    return array


def _has_text(value: Any) -> bool:
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, (str, bytes))


class RestClient:
    """TF Serving's REST API at ``base_url`` (``http://HOST:8501``)."""

    def __init__(self, base_url: str = "http://127.0.0.1:8501", timeout_s: float = 60.0):
        import requests

        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = requests.Session()

    def _url(self, model: str, version: Optional[int], label: Optional[str]) -> str:
        url = f"{self.base_url}/v1/models/{model}"
        if version is not None:
            url += f"/versions/{int(version)}"
        elif label is not None:
            url += f"/labels/{label}"
        return url

    def _check(self, response) -> Any:
        try:
            payload = response.json()
        except ValueError:
            payload = {"error": response.text[:500]}
        if response.status_code != 200:
            raise ServingClientError(response.status_code, payload.get("error", str(payload)))
        return payload

    def status(self, model: str, version: Optional[int] = None, label: Optional[str] = None) -> Dict[str, Any]:
        return self._check(self._session.get(self._url(model, version, label), timeout=self.timeout_s))

    def metadata(self, model: str, version: Optional[int] = None, label: Optional[str] = None) -> Dict[str, Any]:
        return self._check(self._session.get(self._url(model, version, label) + "/metadata", timeout=self.timeout_s))

    def predict_json(self, model: str, body: Mapping[str, Any], version: Optional[int] = None,
                     label: Optional[str] = None) -> Dict[str, Any]:
        """POST a raw ``:predict`` body; returns the raw JSON answer."""
        data = json.dumps(body).encode("utf-8")
        response = self._session.post(self._url(model, version, label) + ":predict", data=data,
                                      headers={"Content-Type": "application/json"}, timeout=self.timeout_s)
        return self._check(response)

    def predict(self, model: str, inputs: Mapping[str, Any], signature_name: Optional[str] = None,
                version: Optional[int] = None, label: Optional[str] = None) -> Dict[str, np.ndarray]:
        """Columnar predict; returns ``{output name: array}`` (strings as str, ``_bytes`` outputs as bytes)."""
        body: Dict[str, Any] = {"inputs": {k: to_json_value(v) for k, v in inputs.items()}}
        if signature_name:
            body["signature_name"] = signature_name
        outputs = self.predict_json(model, body, version, label)["outputs"]
        if not isinstance(outputs, dict):  # a single output comes back bare: name it from the metadata
            names = self.output_names(model, signature_name, version, label)
            outputs = {names[0]: outputs}
        return {name: _as_array(value) for name, value in outputs.items()}

    def output_names(self, model: str, signature_name: Optional[str] = None, version: Optional[int] = None,
                     label: Optional[str] = None) -> List[str]:
        signature_defs = self.metadata(model, version, label)["metadata"]["signature_def"]["signature_def"]
        return sorted(signature_defs[signature_name or "serving_default"]["outputs"])

    def close(self) -> None:
        self._session.close()


# ----------------------------------------------------------------------------------------------- gRPC
class GrpcClient:
    """TF Serving's gRPC API at ``target`` (``HOST:8500``), through the official stubs."""

    def __init__(self, target: str = "127.0.0.1:8500", timeout_s: float = 60.0, max_message_bytes: int = 32 << 20):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self.timeout_s = timeout_s
        self._channel = grpc.insecure_channel(target, options=[
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes)])
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    @staticmethod
    def _spec(spec, model: str, version: Optional[int], label: Optional[str], signature_name: Optional[str] = None):
        spec.name = model
        if version is not None:
            spec.version.value = int(version)
        elif label is not None:
            spec.version_label = label
        if signature_name:
            spec.signature_name = signature_name

    def _call(self, method, request):
        import grpc

        try:
            return method(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise ServingClientError(exc.code().name, exc.details()) from None

    def predict(self, model: str, inputs: Mapping[str, Any], signature_name: Optional[str] = None,
                version: Optional[int] = None, label: Optional[str] = None,
                output_filter: Sequence[str] = ()) -> Dict[str, np.ndarray]:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, model, version, label, signature_name)
        for name, value in inputs.items():
            array = np.array(value, dtype=object) if _has_text(value) else np.asarray(value)
            request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
        request.output_filter.extend(output_filter)
        response = self._call(self.prediction.Predict, request)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def metadata(self, model: str, version: Optional[int] = None, label: Optional[str] = None):
        """The model's SignatureDefMap proto."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, model, version, label)
        response = self._call(self.prediction.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return signature_map

    def status(self, model: str, version: Optional[int] = None, label: Optional[str] = None):
        """The GetModelStatusResponse proto."""
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, model, version, label)
        return self._call(self.models.GetModelStatus, request)

    def close(self) -> None:
        self._channel.close()


# ----------------------------------------------------------------------------------------------- helpers
@dataclasses.dataclass
class Classification:
    """One classified item: the label, its id, and every label's probability."""

    label: str
    label_id: int
    probabilities: np.ndarray  # float32 [num_classes], in label-id order

    def top(self, k: int = 5) -> List[Tuple[str, float]]:
        from data_interface_for_model.categories import LABELS

        order = np.argsort(-self.probabilities)[:k]
        return [(LABELS[i] if len(LABELS) == len(self.probabilities) else str(i), float(self.probabilities[i]))
                for i in order]


def encode_video(video_path: Optional[str] = None, cover_path: Optional[str] = None, brief: str = "",
                 num_frames: int = 8, image_size: int = 224) -> Dict[str, Any]:
    """One item as the classifier's batch-of-one inputs: ``brief`` [1], ``cover`` [1], ``frames`` [1, T].

    Frames are sampled uniformly across the clip and the cover is read with the same short-side resize +
    centre crop as training (``data_interface_for_model.decoding``), then JPEG-encoded; a missing clip or
    cover is sent as "" (the models treat it as a missing modality).

    Raises:
      DecodeError: the clip or cover exists but cannot be decoded (the message names the file).
    """
    from data_interface_for_model.decoding import encode_jpeg, load_cover, sample_frames

    frames = [b""] * num_frames
    if video_path:
        clip, _num_real = sample_frames(video_path, num_frames, image_size)
        frames = [encode_jpeg(frame) for frame in clip]
    cover = encode_jpeg(load_cover(cover_path, image_size)) if cover_path else b""
    return {"brief": [brief], "cover": [cover], "frames": [frames]}


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def classify_video(client, video_path: Optional[str] = None, cover_path: Optional[str] = None, brief: str = "",
                   model: str = "classifier", num_frames: int = 8, image_size: int = 224,
                   version: Optional[int] = None, label: Optional[str] = None) -> Classification:
    """Classify one clip (+ cover, + brief) with the served classifier's ``serving_default``."""
    inputs = encode_video(video_path, cover_path, brief, num_frames, image_size)
    out = client.predict(model, inputs, version=version, label=label)
    return Classification(_text(out["label"][0]), int(out["label_id"][0]),
                          np.asarray(out["probabilities"][0], dtype=np.float32))


def embed_video(client, video_path: Optional[str] = None, cover_path: Optional[str] = None, brief: str = "",
                model: str = "embedder", signature_name: Optional[str] = None, num_frames: int = 8,
                image_size: int = 224) -> np.ndarray:
    """float32 ``[D]``: the item's embedding (``embedder`` model, or ``classifier`` with signature ``embed``)."""
    inputs = encode_video(video_path, cover_path, brief, num_frames, image_size)
    out = client.predict(model, inputs, signature_name=signature_name)
    return np.asarray(out["embedding"][0], dtype=np.float32)


def _pairs(out: Mapping[str, np.ndarray]) -> List[Tuple[str, float]]:
    return [(_text(i), float(s)) for i, s in zip(out["item_ids"][0], out["scores"][0])]


def recommend(client, history: Sequence[str], model: str = "recommender_bruteforce",
              history_length: Optional[int] = None) -> List[Tuple[str, float]]:
    """Top items for a viewing history (oldest first); padded with "" to ``history_length`` if given."""
    items = [str(h) for h in history]
    if history_length is not None:
        items = (items[-history_length:] + [""] * history_length)[:history_length]
    if not items:
        items = [""]
    return _pairs(client.predict(model, {"history": [items]}))


def similar_items(client, item_id: str, model: str = "recommender_bruteforce") -> List[Tuple[str, float]]:
    """Items nearest to ``item_id`` (signature ``similar_items``)."""
    return _pairs(client.predict(model, {"item_id": [str(item_id)]}, signature_name="similar_items"))
