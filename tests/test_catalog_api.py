"""The catalog API over SQLite with a deterministic fake classifier: index, recommend, delete, bulk, bad
input, concurrency, persistence and export."""
import contextlib
import csv
import json
import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest
import requests
import uvicorn
from fastapi.testclient import TestClient

from data_interface_for_model.layout import iter_layout
from serving.catalog.app import create_app
from serving.catalog.config import CatalogConfig
from serving.catalog.fake import FakeEmbedder
from serving.catalog.service import CatalogService


def _items(root, n):
    return list(iter_layout(root))[:n]


def _config(tmp_path, **overrides):
    settings = dict(store=f"sqlite:///{tmp_path / 'catalog.sqlite'}", media_dir=str(tmp_path / "media"),
                    max_upload_bytes=2 << 20, rebuild_min_changes=4, rebuild_fraction=0.0, ann_min_size=20_000)
    settings.update(overrides)
    return CatalogConfig(**settings)


@pytest.fixture
def service(tmp_path):
    service = CatalogService(_config(tmp_path), FakeEmbedder())
    yield service
    service.close()


@pytest.fixture
def client(service):
    with TestClient(create_app(service)) as client:
        yield client


def _index(client, item, **extra):
    body = {"video_id": item.mp4_id, "video_path": item.video_path, "title": item.brief.strip()[:40],
            "brief": item.brief, "label": item.label, "cover_path": item.cover_path, **extra}
    response = client.post("/index", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _exact(service, query_id, exclude=()):
    """Exact cosine ranking over the store's embeddings (the reference for the live index)."""
    ids, _, vectors = service.store.all_embeddings()
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    query = vectors[ids.index(query_id)]
    order = np.argsort(-(vectors @ query), kind="stable")
    return [ids[i] for i in order if ids[i] != query_id and ids[i] not in exclude]


def test_index_recommend_page_filter_and_delete(client, service, demo_root):
    items = _items(demo_root, 12)
    for item in items:
        body = _index(client, item)
        assert body["video_id"] == item.mp4_id and body["label"] == item.label and body["label_source"] == "given"
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model_loaded"] and health["index_size"] == 12
    assert health["storage"] == "sqlite"

    query = items[0].mp4_id
    response = client.post("/recommend", json={"video_id": query, "top_k": 5}).json()
    got = [r["video_id"] for r in response["recommendations"]]
    assert response["query_video_id"] == query and response["query_title"] == items[0].brief.strip()[:40]
    assert got == _exact(service, query)[:5]
    assert all(r["title"] and r["label"] for r in response["recommendations"])
    scores = [r["score"] for r in response["recommendations"]]
    assert scores == sorted(scores, reverse=True)

    page2 = client.post("/recommend", json={"video_id": query, "top_k": 3, "offset": 3}).json()
    assert [r["video_id"] for r in page2["recommendations"]] == _exact(service, query)[3:6]

    label = items[5].label
    filtered = client.post("/recommend", json={"video_id": query, "top_k": 10, "labels": [label]}).json()
    assert filtered["recommendations"] and {r["label"] for r in filtered["recommendations"]} == {label}

    history = [items[1].mp4_id, items[2].mp4_id]
    by_history = client.post("/recommend", json={"history": history, "top_k": 20}).json()
    assert by_history["query_history"] == history
    assert not set(history) & {r["video_id"] for r in by_history["recommendations"]}
    assert len(by_history["recommendations"]) == 10  # 12 items less the 2 of the history

    listed = client.get("/index/list", params={"limit": 5, "offset": 10}).json()
    assert listed["total"] == 12 and len(listed["items"]) == 2
    assert client.get("/index/list", params={"label": label}).json()["total"] == sum(i.label == label for i in items)

    victim = got[0]
    assert client.delete(f"/index/{victim}").json() == {"deleted": victim, "total_in_index": 11}
    after = client.post("/recommend", json={"video_id": query, "top_k": 20}).json()
    assert victim not in {r["video_id"] for r in after["recommendations"]}
    assert len(after["recommendations"]) == 10
    assert client.post("/recommend", json={"video_id": victim}).status_code == 404
    assert client.delete(f"/index/{victim}").status_code == 404
    assert client.get(f"/items/{query}/cover").headers["content-type"] == "image/jpeg"
    assert client.get(f"/items/{query}/video").content == open(items[0].video_path, "rb").read()


def test_upload_index_classify_and_cold_start(client, service, demo_root):
    items = _items(demo_root, 6)
    for item in items[1:]:
        _index(client, item)
    target = items[0]
    with open(target.video_path, "rb") as handle:
        clip = handle.read()
    response = client.post("/index/upload", data={"video_id": "upload_1", "title": "uploaded", "brief": target.brief},
                           files={"file": ("clip.mp4", clip, "video/mp4")})
    assert response.status_code == 201, response.text
    assert response.json()["label_source"] == "predicted" and response.json()["label"]
    stored = client.get("/items/upload_1/video")
    assert stored.status_code == 200 and stored.content == clip
    assert not [n for n in os.listdir(service.config.media_dir) if n.startswith(".upload-")]

    files = {"file": ("same.mp4", clip, "video/mp4")}
    classified = client.post("/classify", data={"brief": target.brief}, files=files).json()
    assert classified["label"] == response.json()["label"]
    assert abs(sum(p["probability"] for p in classified["probabilities"]) - 1) < 0.5
    calls = service.embedder.calls
    cold = client.post("/recommend/upload", data={"brief": target.brief, "top_k": "3"}, files=files).json()
    assert service.embedder.calls == calls  # the upload's analysis is cached
    assert cold["recommendations"][0]["video_id"] == "upload_1"
    assert cold["recommendations"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert client.delete("/index/upload_1").status_code == 200
    assert not os.path.exists(os.path.join(service.config.media_dir, "upload_1.mp4"))


def test_bulk_from_folder_info_file_and_microlens_items(client, service, demo_root, tmp_path):
    first = client.post("/index/bulk", json={"source": demo_root, "max_videos": 5}).json()
    assert first["indexed"] == 5 and first["skipped"] == 0 and first["total_in_index"] == 5
    info = client.post("/index/bulk", json={"source": os.path.join(demo_root, "multimodal_data_info.json"),
                                            "max_videos": 8}).json()
    assert info["indexed"] + info["skipped"] == 8 and info["total_in_index"] == 5 + info["indexed"]

    folder = tmp_path / "microlens"
    (folder / "videos").mkdir(parents=True)
    with open(folder / "MicroLens-50k_titles.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item", "title"])
        for n, item in enumerate(_items(demo_root, 3)):
            shutil.copy(item.video_path, folder / "videos" / f"{9000 + n}.mp4")
            writer.writerow([9000 + n, f"microlens title {n}"])
        writer.writerow([9999, "no clip for this one"])
    app = create_app(service, default_source=str(folder))
    with TestClient(app) as other:
        result = other.post("/index/microlens", json={"max_videos": 10}).json()
        assert (result["indexed"], result["failed"]) == (3, 1) and "9999" in result["errors"][0]
        again = other.post("/index/microlens", json={}).json()
        assert (again["indexed"], again["skipped"]) == (0, 3)
    assert client.get("/items/9001").json()["title"] == "microlens title 1"
    assert client.post("/index/microlens", json={}).status_code == 400  # this app has no default source


def test_bad_input_gets_clear_json_errors(client, service, demo_root, tmp_path):
    item = _items(demo_root, 1)[0]
    _index(client, item)
    checks = [
        (client.post("/index", json={"video_id": item.mp4_id, "video_path": item.video_path}), 409, "already"),
        (client.post("/index", json={"video_id": "../x", "video_path": item.video_path}), 400, "video_id"),
        (client.post("/index", json={"video_id": "n1", "video_path": "/nonexistent.mp4"}), 400, "not found"),
        (client.post("/index", json={"video_id": "n1", "video_path": item.txt_path}), 400, "not a readable video"),
        (client.post("/index", content=b'{"video_id": "n1",', headers={"content-type": "application/json"}),
         400, "malformed JSON"),
        (client.post("/index", json={"video_id": "n1"}), 422, "video_path"),
        (client.post("/index", json={"video_id": "n1", "video_path": "x", "colour": 1}), 422, "colour"),
        (client.post("/recommend", json={"video_id": "nope"}), 404, "nope"),
        (client.post("/recommend", json={"video_id": item.mp4_id, "top_k": 0}), 422, "top_k"),
        (client.post("/recommend", json={"video_id": item.mp4_id, "top_k": 5000}), 400, "top_k"),
        (client.post("/recommend", json={}), 400, "exactly one"),
        (client.post("/recommend", json={"history": ["a", 3]}), 422, "history"),
        (client.delete("/index/unknown"), 404, "unknown"),
        (client.get("/items/unknown/cover"), 404, "unknown"),
        (client.post("/index/bulk", json={"source": str(tmp_path / "none")}), 404, "not found"),
        (client.post("/index/upload", data={"video_id": "t1"},
                     files={"file": ("notes.mp4", b"this is not a video", "video/mp4")}), 400, "notes.mp4"),
        (client.post("/index/upload", data={"video_id": "t2"},
                     files={"file": ("big.mp4", b"\0" * (3 << 20), "video/mp4")}), 413, "larger"),
        (client.post("/classify", files={"file": ("empty.mp4", b"", "video/mp4")}), 400, "empty"),
        (client.get("/no/such/route"), 404, "Not Found"),
    ]
    for response, status, words in checks:
        body = response.json()
        assert response.status_code == status, (response.request.url, response.text)
        assert body["status"] == status and words in body["error"], body
    assert client.get("/health").json()["index_size"] == 1 == service.store.count()
    assert not [n for n in os.listdir(service.config.media_dir) if n.startswith(".upload-")]


def test_paths_outside_the_allowed_folders_are_refused(tmp_path, demo_root):
    service = CatalogService(_config(tmp_path, allowed_roots=(str(tmp_path),)), FakeEmbedder())
    try:
        with TestClient(create_app(service)) as client:
            item = _items(demo_root, 1)[0]
            response = client.post("/index", json={"video_id": "a", "video_path": item.video_path})
            assert response.status_code == 403 and "outside" in response.json()["error"]
    finally:
        service.close()


def test_items_survive_a_restart(tmp_path, demo_root):
    config = _config(tmp_path)
    first = CatalogService(config, FakeEmbedder())
    with TestClient(create_app(first)) as client:
        for item in _items(demo_root, 4):
            _index(client, item)
        before = client.post("/recommend", json={"video_id": _items(demo_root, 1)[0].mp4_id}).json()
    first.close()
    second = CatalogService(config, FakeEmbedder())
    try:
        with TestClient(create_app(second)) as client:
            assert client.get("/health").json()["index_size"] == 4
            after = client.post("/recommend", json={"video_id": _items(demo_root, 1)[0].mp4_id}).json()
            assert after["recommendations"] == before["recommendations"]
    finally:
        second.close()


@contextlib.contextmanager
def serve(app):
    """Run ``app`` with uvicorn on 127.0.0.1 and a free port in a thread; yield its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_concurrent_index_delete_recommend_keep_the_store_consistent(tmp_path, demo_root):
    service = CatalogService(_config(tmp_path, rebuild_min_changes=3), FakeEmbedder())
    items = _items(demo_root, 16)
    errors = []
    try:
        with serve(create_app(service)) as url:
            for item in items[:4]:
                assert requests.post(f"{url}/index", json={"video_id": item.mp4_id, "video_path": item.video_path},
                                     timeout=30).status_code == 201

            def worker(n):
                session = requests.Session()
                for round_ in range(3):
                    for item in items[4 + n::4]:
                        # two workers race for each id: exactly one 201, the other 409
                        for _ in range(2):
                            r = session.post(f"{url}/index", json={"video_id": item.mp4_id,
                                                                   "video_path": item.video_path}, timeout=30)
                            if r.status_code not in (201, 409):
                                errors.append(r.text)
                        r = session.post(f"{url}/recommend", json={"video_id": items[0].mp4_id, "top_k": 5},
                                         timeout=30)
                        if r.status_code != 200 or len(r.json()["recommendations"]) < 3:
                            errors.append(r.text)
                        if round_ < 2:
                            r = session.delete(f"{url}/index/{item.mp4_id}", timeout=30)
                            if r.status_code not in (200, 404):
                                errors.append(r.text)

            threads = [threading.Thread(target=worker, args=(n % 4,)) for n in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
        service.index.wait_for_rebuild()
        assert not errors, errors[:3]
        stored, _, _ = service.store.all_embeddings()
        assert sorted(stored) == sorted(i.mp4_id for i in items)  # the last round indexes and keeps every item
        assert len(service.index) == len(stored) and all(i in service.index for i in stored)
        for item in items:
            result = service.recommend(item.mp4_id, top_k=20)
            assert [r["video_id"] for r in result["recommendations"]] == _exact(service, item.mp4_id)[:20]
    finally:
        service.close()


@pytest.mark.slow
def test_export_writes_a_recommender_version_that_matches_the_api(client, service, demo_root, tmp_path):
    import tensorflow as tf

    items = _items(demo_root, 8)
    for item in items:
        _index(client, item)
    base = str(tmp_path / "models")
    first = client.post("/export", json={"model_base": base, "top_k": 3}).json()
    second = client.post("/export", json={"model_base": base, "top_k": 3}).json()
    assert first["exported"].endswith("catalog_recommender/1") and second["exported"].endswith("/2")
    model = tf.saved_model.load(first["exported"])
    out = model.signatures["serving_default"](item_id=tf.constant([items[0].mp4_id, "unknown"]))
    got = [i.decode() for i in out["item_ids"].numpy()[0]]
    api = client.post("/recommend", json={"video_id": items[0].mp4_id, "top_k": 3}).json()
    assert got == [r["video_id"] for r in api["recommendations"]]
    np.testing.assert_allclose(out["scores"].numpy()[0], [r["score"] for r in api["recommendations"]], atol=1e-4)
    assert [i.decode() for i in out["item_ids"].numpy()[1]] == ["", "", ""]
    history = model.signatures["recommend"](history=tf.constant([[items[1].mp4_id, items[2].mp4_id, ""]]))
    api = client.post("/recommend", json={"history": [items[1].mp4_id, items[2].mp4_id], "top_k": 3}).json()
    assert [i.decode() for i in history["item_ids"].numpy()[0]] == [r["video_id"] for r in api["recommendations"]]


    # a stand-in classifier SavedModel (embed: the one-hot of the brief's hash bucket) wrapped in with
    # tensorflow_hub.KerasLayer: recommend_clip answers for a new clip in one call, as the live index does
    class Classifier(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="brief"),
                                      tf.TensorSpec([None], tf.string, name="cover"),
                                      tf.TensorSpec([None, None], tf.string, name="frames")])
        def embed(self, brief, cover, frames):
            return {"embedding": tf.one_hot(tf.strings.to_hash_bucket_fast(brief, 64), 64)}

    classifier, stand_in = str(tmp_path / "classifier"), Classifier()
    tf.saved_model.save(stand_in, classifier, signatures={"embed": stand_in.embed.get_concrete_function()})
    from serving.catalog.export import export_catalog

    path = export_catalog(service.store, base, 3, classifier_path=classifier)
    # TF Serving's warm-up records (every signature: 2 examples, then the first alone), replayed on load
    from data_interface_for_model.tf_serving_format import read_warmup_requests
    from serving.model_manager import ServableVersion

    for version_dir, signatures in ((first["exported"], 4), (path, 5)):
        logs = read_warmup_requests(version_dir)
        assert len(logs) == 2 * signatures and {log.WhichOneof("log_type") for log in logs} == {"predict_log"}
        servable = ServableVersion("catalog_recommender", 1, version_dir)
        servable.load(None)
        assert servable.warmup_records == len(logs)
        servable.drain_and_unload(1)
    clip = tf.saved_model.load(path).signatures["recommend_clip"](
        brief=tf.constant(["a new clip"]), cover=tf.constant([b""]), frames=tf.constant([[b""]]))
    bucket = int(tf.strings.to_hash_bucket_fast(["a new clip"], 64).numpy()[0])
    expected = [i for i, _ in service.index.search(np.eye(64, dtype=np.float32)[bucket], 3)]
    assert [i.decode() for i in clip["item_ids"].numpy()[0]] == expected


def test_cli_verbs_parse(tmp_path):
    import argparse

    from serving.catalog.cli import add_catalog_verb

    parser = argparse.ArgumentParser(prog="serving")
    add_catalog_verb(parser.add_subparsers(dest="verb", required=True))
    args = parser.parse_args(["catalog", "--run", "RUN", "--port", "0", "--allow-path", "/a", "--allow-path", "/b"])
    assert (args.run, args.store, args.host, args.port, args.allow_path) == (
        "RUN", "sqlite:///catalog.sqlite", "127.0.0.1", 0, ["/a", "/b"])
    args = parser.parse_args(["catalog-export", "--store", "sqlite:///x.sqlite", "--model-base", "m"])
    assert (args.model_base, args.top_k) == ("m", 10)
    with pytest.raises(SystemExit):
        parser.parse_args(["catalog"])  # --run is required


def test_text_search_by_embeddings_follows_adds_and_deletes(tmp_path, demo_root):
    from serving.catalog.fake import FakeTextEncoder

    items = _items(demo_root, 10)
    service = CatalogService(_config(tmp_path), FakeEmbedder(), FakeTextEncoder())
    try:
        with TestClient(create_app(service)) as client:
            for item in items[:8]:
                _index(client, item)
            client.post("/index/bulk", json={"source": demo_root, "max_videos": 10})  # the last two, batched
            assert service.text_encoder.calls == 10 and client.get("/health").json()["text_search"] == "embeddings"
            target = items[9]
            found = client.get("/search", params={"q": target.brief}).json()
            assert found["mode"] == "embeddings" and found["results"][0]["video_id"] == target.mp4_id
            assert found["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
            by_label = client.get("/search", params={"q": target.brief, "label": items[0].label}).json()
            assert {r["label"] for r in by_label["results"]} == {items[0].label}
            client.delete(f"/index/{target.mp4_id}")
            after = client.get("/search", params={"q": target.brief}).json()["results"]
            assert target.mp4_id not in {r["video_id"] for r in after}
        keyword = CatalogService(_config(tmp_path), FakeEmbedder())  # an item indexed without text search
        keyword.index_path("late", items[9].video_path, "a late arrival", "zebra crossing")
        keyword.close()
        again = CatalogService(_config(tmp_path), FakeEmbedder(), FakeTextEncoder())  # reloaded + backfilled
        try:
            assert len(again.text_index) == 10 and again.text_encoder.calls == 1
            assert again.search(items[0].brief)["results"][0]["video_id"] == items[0].mp4_id
            assert again.search("zebra crossing")["results"][0]["video_id"] == "late"
        finally:
            again.close()
    finally:
        service.close()
