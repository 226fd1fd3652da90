"""TF Serving's on-disk layout and its configuration files.

A *model base* holds one folder per model, each holding numbered version folders::

    MODELS/<model_name>/<version>/saved_model.pb + variables/     (version: digits only, e.g. 1, 2, 1700000000)
    MODELS/models.config                                          (ModelServerConfig, protobuf text format)
    MODELS/docker-compose.yml                                     (the production path: real TF Serving)

The version folders themselves (names, numbering, atomic writes) belong to
:mod:`data_interface_for_model.tf_serving_format`; this module finds models, describes them
(:class:`ModelConfig`, :class:`VersionPolicy`), and reads and writes ``models.config`` (with the protos that ship in ``tensorflow-serving-api``) and the
``docker-compose.yml`` that runs them under ``tensorflow/serving`` and ``google/tf-serving-scann``.
No TensorFlow import here.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from data_interface_for_model.atomic import atomic_write
from data_interface_for_model.tf_serving_format import (  # noqa: F401  (re-exported: the server's view of the format)
    LayoutError, is_saved_model_dir, list_versions, validate_model_name)

CONFIG_FILE_NAME = "models.config"
COMPOSE_FILE_NAME = "docker-compose.yml"
#: Where the containers see the model base (``docker run -v MODELS:/models``, TF Serving's convention).
CONTAINER_MODEL_BASE = "/models"
STOCK_IMAGE = "tensorflow/serving"
SCANN_IMAGE = "google/tf-serving-scann"
#: Version labels and model names: one path component of letters, digits, ``_ . -``.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def fingerprint(version_path: str) -> Tuple[Tuple[str, int, int], ...]:
    """(relative path, size, mtime) of every file under a version folder: equal twice in a row = copy done."""
    items = []
    for root, _dirs, files in os.walk(version_path):
        for name in files:
            full = os.path.join(root, name)
            try:
                st = os.stat(full)
            except FileNotFoundError:
                continue
            items.append((os.path.relpath(full, version_path), st.st_size, st.st_mtime_ns))
    return tuple(sorted(items))


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """Which versions to serve, as TF Serving's ``model_version_policy``: ``latest`` N, ``all`` or ``specific``."""

    kind: str = "latest"
    num_versions: int = 1
    versions: Tuple[int, ...] = ()

    def __post_init__(self):
        if self.kind not in ("latest", "all", "specific"):
            raise LayoutError(f"unknown version policy {self.kind!r} (latest, all, specific)")
        if self.kind == "latest" and self.num_versions < 1:
            raise LayoutError("version policy latest needs num_versions >= 1")
        if self.kind == "specific" and not self.versions:
            raise LayoutError("version policy specific needs at least one version")

    @classmethod
    def parse(cls, text: str) -> "VersionPolicy":
        """``latest``, ``latest:2``, ``all``, ``specific:1,3``."""
        kind, _, arg = text.strip().partition(":")
        try:
            if kind == "latest":
                return cls("latest", int(arg) if arg else 1)
            if kind == "specific":
                return cls("specific", versions=tuple(sorted(int(v) for v in arg.split(",") if v.strip())))
        except ValueError as exc:
            raise LayoutError(f"bad version policy {text!r}: {exc}") from None
        if kind == "all" and not arg:
            return cls("all")
        raise LayoutError(f"bad version policy {text!r} (latest[:N], all, specific:V1,V2)")

    def select(self, versions: Iterable[int]) -> List[int]:
        """The versions this policy wants served, out of those on disk."""
        ordered = sorted(set(versions))
        if self.kind == "latest":
            return ordered[-self.num_versions:]
        if self.kind == "all":
            return ordered
        return [v for v in ordered if v in self.versions]


@dataclasses.dataclass
class ModelConfig:
    """One ``config { ... }`` entry of a ModelServerConfig."""

    name: str
    base_path: str
    version_policy: VersionPolicy = dataclasses.field(default_factory=VersionPolicy)
    version_labels: Dict[str, int] = dataclasses.field(default_factory=dict)
    model_platform: str = "tensorflow"

    def __post_init__(self):
        validate_model_name(self.name)
        for label, version in self.version_labels.items():
            if not _NAME_RE.match(label) or not isinstance(version, int) or version < 0:
                raise LayoutError(f"model {self.name}: bad version label {label!r} -> {version!r}")


def parse_version_labels(text: str) -> Dict[str, int]:
    """``stable=1,canary=2`` -> ``{"stable": 1, "canary": 2}``."""
    labels: Dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        label, sep, version = part.partition("=")
        if not sep or not version.strip().isdigit() or not _NAME_RE.match(label.strip()):
            raise LayoutError(f"bad version label {part!r}: expected LABEL=VERSION, e.g. stable=1")
        labels[label.strip()] = int(version)
    return labels


def discover_models(model_base: str) -> List[ModelConfig]:
    """Every sub-folder of ``model_base`` with a valid name is a model (versions may appear later)."""
    if not os.path.isdir(model_base):
        raise LayoutError(f"model base {model_base!r} is not a folder")
    configs = []
    for entry in sorted(os.listdir(model_base)):
        full = os.path.join(model_base, entry)
        if os.path.isdir(full) and _NAME_RE.match(entry) and not entry.startswith("."):
            configs.append(ModelConfig(entry, os.path.abspath(full)))
    return configs


# ----- models.config (ModelServerConfig text format) -----

def to_proto(configs: Sequence[ModelConfig]) -> model_server_config_pb2.ModelServerConfig:
    server_config = model_server_config_pb2.ModelServerConfig()
    for config in configs:
        entry = server_config.model_config_list.config.add()
        entry.name = config.name
        entry.base_path = config.base_path
        entry.model_platform = config.model_platform
        policy = config.version_policy
        if policy.kind == "latest" and policy.num_versions != 1:
            entry.model_version_policy.latest.num_versions = policy.num_versions
        elif policy.kind == "all":
            entry.model_version_policy.all.SetInParent()
        elif policy.kind == "specific":
            entry.model_version_policy.specific.versions.extend(policy.versions)
        for label, version in sorted(config.version_labels.items()):
            entry.version_labels[label] = version
    return server_config


def models_config_text(configs: Sequence[ModelConfig]) -> str:
    """The ModelServerConfig text that ``tensorflow_model_server --model_config_file`` reads."""
    return text_format.MessageToString(to_proto(configs))


def parse_models_config(text: str, relative_to: Optional[str] = None) -> List[ModelConfig]:
    """Parse a ModelServerConfig text; relative ``base_path`` values are taken relative to ``relative_to``."""
    try:
        message = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as exc:
        raise LayoutError(f"models.config is not a ModelServerConfig: {exc}") from None
    return configs_from_proto(message, relative_to)


def configs_from_proto(message: model_server_config_pb2.ModelServerConfig,
                       relative_to: Optional[str] = None) -> List[ModelConfig]:
    """A ModelServerConfig message (a file's, or a HandleReloadConfigRequest's) -> ModelConfig list."""
    if message.WhichOneof("config") != "model_config_list":
        raise LayoutError("the model server config has no model_config_list")
    configs = []
    for entry in message.model_config_list.config:
        if entry.model_platform not in ("", "tensorflow"):
            raise LayoutError(f"model {entry.name}: platform {entry.model_platform!r} is not supported")
        which = entry.model_version_policy.WhichOneof("policy_choice")
        if which == "all":
            policy = VersionPolicy("all")
        elif which == "specific":
            policy = VersionPolicy("specific", versions=tuple(sorted(entry.model_version_policy.specific.versions)))
        elif which == "latest":
            policy = VersionPolicy("latest", entry.model_version_policy.latest.num_versions or 1)
        else:
            policy = VersionPolicy()
        base_path = entry.base_path
        if not base_path:
            raise LayoutError(f"model {entry.name}: no base_path")
        if relative_to and not os.path.isabs(base_path):
            base_path = os.path.join(relative_to, base_path)
        configs.append(ModelConfig(entry.name, base_path, policy, dict(entry.version_labels)))
    return configs


def write_models_config(path: str, configs: Sequence[ModelConfig]) -> str:
    """Write ``models.config`` atomically; returns ``path``."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(models_config_text(configs))
    return path


def load_model_base(model_base: str, config_file: Optional[str] = None) -> List[ModelConfig]:
    """The models to serve from ``model_base``.

    With ``config_file`` (or ``MODEL_BASE/models.config`` when it exists), the models it lists; a
    ``base_path`` under the container path ``/models/`` (what :func:`write_export_configs` writes for the
    Docker images) maps to ``MODEL_BASE/<name>``, so one file serves both TF Serving in Docker and this
    server. Otherwise every sub-folder is a model, with the default policy (latest version).
    """
    path = config_file or os.path.join(model_base, CONFIG_FILE_NAME)
    if not os.path.isfile(path):
        if config_file:
            raise LayoutError(f"model config file {config_file!r} does not exist")
        return discover_models(model_base)
    with open(path, encoding="utf-8") as handle:
        configs = parse_models_config(handle.read(), relative_to=os.path.dirname(os.path.abspath(path)))
    for config in configs:
        if config.base_path.startswith(CONTAINER_MODEL_BASE + "/") and not os.path.isdir(config.base_path):
            config.base_path = os.path.join(os.path.abspath(model_base), config.base_path[len(CONTAINER_MODEL_BASE) + 1:])
    return configs


# ----- docker-compose.yml: the production path -----

@dataclasses.dataclass
class ComposeService:
    """One TF Serving container: the image, the models it serves, and the host ports it publishes."""

    name: str
    image: str
    config_file: str  # relative to the model base
    grpc_port: int = 8500
    rest_port: int = 8501


def docker_compose_text(services: Sequence[ComposeService], batching_file: Optional[str] = None) -> str:
    """A compose file running each service's ``tensorflow_model_server`` on the mounted model base.

    Both images' entrypoints start ``tensorflow_model_server --port=8500 --rest_api_port=8501`` and append
    the container's arguments, so ``--model_config_file`` selects the models.
    """
    lines = [
        "# TF Serving for the exported models: the production path (needs a Docker engine; not runnable on the",
        "# build machine). Run from this folder:  docker compose up",
        "# The ScaNN index holds custom ops that stock TF Serving cannot run: it is served by the ScaNN-enabled",
        f"# image {SCANN_IMAGE} (CPU with AVX2 + FMA). Ports are published on 127.0.0.1 only: put an",
        "# authenticating proxy in front before exposing them further.",
        "services:",
    ]
    for service in services:
        command = [f"--model_config_file={CONTAINER_MODEL_BASE}/{service.config_file}",
                   "--model_config_file_poll_wait_seconds=60", "--file_system_poll_wait_seconds=1"]
        if batching_file:
            command += ["--enable_batching=true", f"--batching_parameters_file={CONTAINER_MODEL_BASE}/{batching_file}"]
        lines += [
            f"  {service.name}:",
            f"    image: {service.image}",
            "    restart: unless-stopped",
            "    ports:",
            f'      - "127.0.0.1:{service.grpc_port}:8500"',
            f'      - "127.0.0.1:{service.rest_port}:8501"',
            "    volumes:",
            f"      - ./:{CONTAINER_MODEL_BASE}:ro",
            "    command:",
        ]
        lines += [f'      - "{arg}"' for arg in command]
    return "\n".join(lines) + "\n"


def batching_parameters_text(max_batch_size: int, batch_timeout_micros: int, num_batch_threads: int,
                             max_enqueued_batches: int) -> str:
    """TF Serving's ``--batching_parameters_file`` (BatchingParameters text format)."""
    return (f"max_batch_size {{ value: {max_batch_size} }}\n"
            f"batch_timeout_micros {{ value: {batch_timeout_micros} }}\n"
            f"num_batch_threads {{ value: {num_batch_threads} }}\n"
            f"max_enqueued_batches {{ value: {max_enqueued_batches} }}\n")


def write_text(path: str, text: str) -> str:
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def write_export_configs(model_base: str, model_names: Sequence[str], scann_models: Iterable[str] = (),
                         version_labels: Optional[Mapping[str, Mapping[str, int]]] = None,
                         batching: Optional[Tuple[int, int, int, int]] = None) -> Dict[str, str]:
    """Write the TF Serving configuration for the models under ``model_base``.

    Files: ``models.config`` (every model; what this project's server and a ScaNN-enabled TF Serving read),
    ``models.stock.config`` and ``models.scann.config`` (the split the two containers serve),
    ``batching_parameters.txt`` when ``batching`` = (max_batch_size, batch_timeout_micros,
    num_batch_threads, max_enqueued_batches), and ``docker-compose.yml``. Base paths are container
    paths (``/models/<name>``). Returns ``{kind: path}``.
    """
    scann = set(scann_models)
    labels = version_labels or {}

    def configs(names):
        return [ModelConfig(n, f"{CONTAINER_MODEL_BASE}/{n}", version_labels=dict(labels.get(n, {})),
                            version_policy=VersionPolicy("all") if labels.get(n) else VersionPolicy())
                for n in names]

    stock_names = [n for n in model_names if n not in scann]
    scann_names = [n for n in model_names if n in scann]
    written = {"models.config": write_models_config(os.path.join(model_base, CONFIG_FILE_NAME), configs(model_names))}
    services = []
    if stock_names:
        written["models.stock.config"] = write_models_config(
            os.path.join(model_base, "models.stock.config"), configs(stock_names))
        services.append(ComposeService("tf-serving", STOCK_IMAGE, "models.stock.config", 8500, 8501))
    if scann_names:
        written["models.scann.config"] = write_models_config(
            os.path.join(model_base, "models.scann.config"), configs(scann_names))
        services.append(ComposeService("tf-serving-scann", SCANN_IMAGE, "models.scann.config", 8510, 8511))
    batching_file = None
    if batching:
        batching_file = "batching_parameters.txt"
        written[batching_file] = write_text(os.path.join(model_base, batching_file), batching_parameters_text(*batching))
    written["docker-compose.yml"] = write_text(os.path.join(model_base, COMPOSE_FILE_NAME),
                                               docker_compose_text(services, batching_file))
    return written
