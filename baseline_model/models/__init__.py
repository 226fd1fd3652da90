"""The classifiers: ``seed_baseline`` (the original architecture) and ``pretrained`` (the default)."""
from baseline_model.models.fusion_head import FEATURE_KEYS, build_fusion_head
from baseline_model.models.seed_baseline import build_seed_baseline

__all__ = ["FEATURE_KEYS", "build_fusion_head", "build_seed_baseline"]
