"""Keras 3 layers of the classifiers (each serialisable, registered under the package name)."""
from baseline_model.layers.fusion import GatedModalityFusion, ModalityDropout
from baseline_model.layers.presence import ModalityPresence
from baseline_model.layers.probe_ensemble import LinearProbeEnsemble
from baseline_model.layers.temporal_pooling import AttentionPooling, FrameEncoder

__all__ = ["AttentionPooling", "FrameEncoder", "GatedModalityFusion", "LinearProbeEnsemble", "ModalityDropout", "ModalityPresence"]
