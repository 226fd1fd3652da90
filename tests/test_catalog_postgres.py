"""The catalog on a real PostgreSQL, started by the test in a temporary folder (Debian's postgresql package:
initdb + pg_ctl on 127.0.0.1 and a free port). Skips, saying why, where the server binaries are missing."""
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading

import pytest
from fastapi.testclient import TestClient

from data_interface_for_model.layout import iter_layout
from serving.catalog.app import create_app
from serving.catalog.config import CatalogConfig
from serving.catalog.fake import FakeEmbedder
from serving.catalog.service import CatalogService


def _postgres_bin():
    for name in ("initdb", "pg_ctl"):
        if not shutil.which(name) and not glob.glob(f"/usr/lib/postgresql/*/bin/{name}"):
            return None
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else os.path.dirname(shutil.which("initdb"))


def _as_server_user():
    """PostgreSQL refuses to run as root: run its binaries as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return [runuser, "-u", "postgres", "--"] if runuser else None


@pytest.fixture(scope="module")
def postgres_url():
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    prefix = _as_server_user()
    if prefix is None:
        pytest.skip("running as root without a 'postgres' user and runuser: PostgreSQL cannot start as root")
    folder = tempfile.mkdtemp(prefix="catalog-pg-")
    os.chmod(folder, 0o755)
    if prefix:
        shutil.chown(folder, "postgres", "postgres")
    data, log = os.path.join(folder, "data"), os.path.join(folder, "server.log")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def run(*args, timeout=120):
        return subprocess.run(prefix + list(args), capture_output=True, text=True, timeout=timeout, check=True)

    try:
        run(os.path.join(bindir, "initdb"), "-D", data, "-U", "catalog", "--auth=trust", "-E", "UTF8", "--no-sync",
            "--no-instructions")
        run(os.path.join(bindir, "pg_ctl"), "-D", data, "-l", log, "-w", "-t", "60", "-o",
            f"-h 127.0.0.1 -p {port} -k {folder} -F", "start")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {exc.stderr or exc.stdout}")
    try:
        yield f"postgresql://catalog@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(prefix + [os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def test_catalog_on_postgresql(postgres_url, demo_root, tmp_path):
    items = list(iter_layout(demo_root))[:10]
    config = CatalogConfig(store=postgres_url, media_dir=str(tmp_path / "media"), rebuild_min_changes=3,
                           rebuild_fraction=0.0)
    service = CatalogService(config, FakeEmbedder())
    try:
        assert service.store.kind == "postgresql"
        with TestClient(create_app(service)) as client:
            assert client.get("/health").json()["storage"] == "postgresql"
            # concurrent indexing of the same items: each id stored once, the losers get 409
            statuses = []

            def index(item):
                statuses.append(client.post("/index", json={"video_id": item.mp4_id, "video_path": item.video_path,
                                                            "title": item.brief[:30], "label": item.label}).status_code)

            threads = [threading.Thread(target=index, args=(item,)) for item in items for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert sorted(statuses) == [201] * 10 + [409] * 10
            response = client.post("/recommend", json={"video_id": items[0].mp4_id, "top_k": 4}).json()
            assert len(response["recommendations"]) == 4 and response["query_title"] == items[0].brief[:30]
            assert client.delete(f"/index/{items[1].mp4_id}").status_code == 200
            assert client.get("/index/list").json()["total"] == 9
            found = client.get("/search", params={"q": items[2].brief}).json()["results"]
            assert found[0]["video_id"] == items[2].mp4_id
    finally:
        service.close()
    again = CatalogService(config, FakeEmbedder())  # what PostgreSQL kept
    try:
        assert len(again.index) == 9 and items[1].mp4_id not in again.index
        assert again.recommend(items[0].mp4_id, top_k=3)["recommendations"]
    finally:
        again.close()
