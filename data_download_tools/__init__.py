"""Tools around the raw dataset: the downloader, the checker and aggregator, statistics and the demo-data
generator."""
import data_interface_for_model  # noqa: F401  (the project's one Keras 2/3 switch: see that package)
