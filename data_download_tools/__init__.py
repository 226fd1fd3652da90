"""Tools around the raw dataset: the demo-data generator, statistics, and (per issue 3) the downloader,
checker and aggregator."""
