"""A TFRS two-tower recommender over the classifier's item embeddings, with BruteForce and ScaNN indexes."""
import os
import sys

# TFRS 0.7.7 needs Keras 2 (tf-keras): TensorFlow picks tf.keras' implementation when it is first imported,
# so the variable must be set before that; Keras 3 (`import keras`) is unaffected.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    raise ImportError("retrieval needs TF_USE_LEGACY_KERAS=1 set before TensorFlow is imported "
                      "(import retrieval first, or export the variable)")
