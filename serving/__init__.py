"""SavedModels in TF Serving's layout and a server that speaks TF Serving's REST and gRPC APIs."""
import os

# The server loads retrieval SavedModels built with TFRS on tf-keras; TensorFlow reads this variable when it
# is first imported, so set it before (Keras 3 models load either way).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
