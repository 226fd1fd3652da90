"""The registry of model kinds: ``--model NAME`` -> a :class:`~baseline_model.kinds.base.ModelKind` class.

Importing it needs no TensorFlow (the command line reads names, configs and defaults from here)."""
from __future__ import annotations

from typing import Dict, Tuple, Type

from baseline_model.config import ClassifierConfig
from baseline_model.kinds.base import ModelKind, TrainingPlan
from baseline_model.kinds.pretrained import Pretrained, PretrainedConfig
from baseline_model.kinds.seed_baseline import SeedBaseline, SeedBaselineConfig

_REGISTRY: Dict[str, Type[ModelKind]] = {}
#: The kind trained when none is named.
DEFAULT_KIND = "pretrained"


def register(kind: Type[ModelKind]) -> Type[ModelKind]:
    """Add a kind to the registry (usable as a class decorator)."""
    if not kind.name or kind.name in _REGISTRY:
        raise ValueError(f"model kind name {kind.name!r} is empty or already registered")
    _REGISTRY[kind.name] = kind
    return kind


def kind_names() -> Tuple[str, ...]:
    return tuple(_REGISTRY)


def get_kind(name: str) -> Type[ModelKind]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; expected one of {kind_names()}") from None


def kind_for(config: ClassifierConfig) -> ModelKind:
    """The kind instance for a config (its class says which)."""
    return get_kind(config.kind)(config)


register(Pretrained)
register(SeedBaseline)

__all__ = ["DEFAULT_KIND", "ModelKind", "Pretrained", "PretrainedConfig", "SeedBaseline", "SeedBaselineConfig",
           "TrainingPlan", "get_kind", "kind_for", "kind_names", "register"]
