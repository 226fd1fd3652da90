"""`serving export` wired to the real exporters: a tiny classifier run and a tiny recommender run exported in
one call into one model base, with TF Serving's configs beside them (no exporter is mocked)."""
from __future__ import annotations

import os

import pytest

from data_interface_for_model.tf_serving_format import list_versions
from serving.__main__ import main as serving_main
from serving.layout import parse_models_config
from tests.test_baseline_export import seed_run  # noqa: F401  (fixture)
from tests.test_retrieval_model import trained  # noqa: F401  (fixture)


@pytest.mark.slow
def test_serving_export_writes_classifier_and_recommender_versions(seed_run, trained, tmp_path, capsys):  # noqa: F811
    run_dir, _model, _config = seed_run
    base = str(tmp_path / "models")
    assert serving_main(["export", "--classifier-run", run_dir, "--recommender-run", trained["run"],
                         "--model-base", base, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "exported" in out
    names = sorted(entry for entry in os.listdir(base) if os.path.isdir(os.path.join(base, entry)))
    assert {"classifier", "embedder", "recommender_bruteforce", "recommender_scann"} <= set(names)
    for name in ("classifier", "embedder", "recommender_bruteforce", "recommender_scann"):
        assert sorted(list_versions(os.path.join(base, name))) == [1], name
    with open(os.path.join(base, "models.config"), encoding="utf-8") as handle:
        configured = {model.name for model in parse_models_config(handle.read(), relative_to=base)}
    assert {"classifier", "embedder", "recommender_bruteforce", "recommender_scann"} <= configured
    # Every exporter wrote TF Serving's warm-up file (PredictLog records of real examples for each signature:
    # the batch, then its first row), and the server replays it before the version serves.
    from data_interface_for_model.tf_serving_format import read_warmup_requests
    from serving.model_manager import ServableVersion, import_custom_ops

    import_custom_ops()
    expected = {"classifier": {"serving_default", "embed"}, "embedder": {"serving_default"},
                "recommender_bruteforce": {"serving_default", "similar_items"},
                "recommender_scann": {"serving_default", "similar_items"}}
    for name, signatures in expected.items():
        logs = read_warmup_requests(os.path.join(base, name, "1"))
        assert {log.predict_log.request.model_spec.signature_name for log in logs} == signatures, name
        assert len(logs) == 2 * len(signatures) and all(log.predict_log.request.model_spec.name == name for log in logs)
        if name in ("classifier", "recommender_scann"):  # (the other two load the same way)
            servable = ServableVersion(name, 1, os.path.join(base, name, "1"))
            servable.load(None)
            assert servable.warmup_records == len(logs), name
            servable.drain_and_unload(1)
    # A second export gets the next version of every model; nothing is overwritten.
    assert serving_main(["export", "--classifier-run", run_dir, "--model-base", base, "--quiet"]) == 0
    assert sorted(list_versions(os.path.join(base, "classifier"))) == [1, 2]
