"""SavedModels in TF Serving's layout and a server that speaks TF Serving's REST and gRPC APIs."""
import data_interface_for_model  # noqa: F401  (the project's one Keras 2/3 switch: see that package)
