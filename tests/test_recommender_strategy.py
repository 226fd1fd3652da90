"""Recommender training under tf.distribute: MirroredStrategy over two logical CPUs gives the same first-step
loss as the default strategy (the in-batch softmax gathers the global batch's items), and a whole run (main
model and ID-only baseline) trains under it. Both strategies run in one child process (logical devices must be set
before TensorFlow starts): ``python -m tests.test_recommender_strategy OUT.json``."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mirrored_matches_default_first_step_and_the_cli_trains(tmp_path):
    out = tmp_path / "losses.json"
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    done = subprocess.run([sys.executable, "-m", "tests.test_recommender_strategy", str(out)], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    result = json.loads(out.read_text())
    assert result["replicas"] == {"default": 1, "mirrored": 2}
    assert result["mirrored"] == pytest.approx(result["default"], rel=1e-5)
    assert result["mirrored_second"] == pytest.approx(result["default_second"], rel=1e-3)  # same update
    assert result["cli_replicas"] == 2 and result["cli_written"] and result["cli_strategy"] == "mirrored"


def _job(out: str) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import tempfile

    import numpy as np

    from baseline_model.strategy import make_strategy
    from data_interface_for_model.embeddings_file import write_embeddings
    from retrieval.__main__ import build_parser
    from retrieval.interactions import write_interactions
    from retrieval.model import TaskConfig
    from retrieval.splits import training_examples
    from retrieval.towers import ContentLookup, TowerConfig
    from retrieval.train import DataSource, TrainConfig, fit_two_tower, train_run

    rng = np.random.default_rng(0)
    items = [f"i{n}" for n in range(40)]
    vectors = rng.normal(size=(40, 8)).astype(np.float32)
    train = {f"u{u}": [items[j] for j in rng.choice(40, 8, replace=False)] for u in range(12)}
    examples = training_examples(train, 5)
    tower = TowerConfig(embedding_dim=8, hidden_dims=(8,), query="bag", id_dropout=0.0)  # no randomness
    result = {"replicas": {}}
    for name in ("default", "mirrored"):
        strategy = make_strategy(name)
        with strategy.scope():
            content = ContentLookup(items, vectors)
        # Two steps: the first step's loss, then the second step's (after one update).
        _, history = fit_two_tower(tower, TaskConfig(), content, examples, items, sorted(train), epochs=2,
                                   batch_size=16, learning_rate=0.05, warmup_fraction=0.0, seed=3,
                                   progress=False, strategy=strategy, steps_per_epoch=1)
        losses = history["loss"]
        result["replicas"][name] = strategy.num_replicas_in_sync
        result[name], result[name + "_second"] = losses
    # The whole run under the same strategy (a second MirroredStrategy in one process trips TensorFlow's
    # collective keys; the CLI makes one per process): main model and ID-only baseline, chief writes the run.
    folder = tempfile.mkdtemp()
    emb, inter, run = (os.path.join(folder, n) for n in ("emb.npz", "inter.csv", "run"))
    write_embeddings(emb, items, [""] * 40, vectors)
    write_interactions(inter, train)
    config = TrainConfig(tower=TowerConfig(embedding_dim=8, hidden_dims=(8,), query="bag"), epochs=1,
                         batch_size=16, max_history=5)
    summary = train_run(DataSource(inter, embeddings=emb), run, config, progress=False, strategy=strategy)
    result["cli_replicas"] = summary["replicas"]
    result["cli_written"] = all(os.path.isdir(os.path.join(run, m)) for m in ("two_tower", "id_only"))
    args = build_parser().parse_args(["train", "--interactions", inter, "--output", run, "--strategy", "mirrored"])
    result["cli_strategy"] = args.strategy
    with open(out, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    _job(sys.argv[1])
