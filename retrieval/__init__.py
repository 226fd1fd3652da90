"""A TFRS two-tower recommender over the classifier's item embeddings, with BruteForce and ScaNN indexes."""
import data_interface_for_model  # noqa: F401  (the project's one Keras 2/3 switch: see that package)
