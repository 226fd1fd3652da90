"""Atomic writes never touch the process-wide umask and never write through a symbolic link."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading

import pytest

from data_interface_for_model import atomic
from data_interface_for_model.atomic import (
    UnsafePathError,
    atomic_output_path,
    atomic_write,
    atomic_write_bytes,
    safe_makedirs,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_atomic_writes_never_change_the_umask(tmp_path, monkeypatch):
    def forbidden(mask):  # a umask change is process-wide: another thread's mkdir would get 0o777
        raise AssertionError("os.umask called")

    monkeypatch.setattr(os, "umask", forbidden)
    atomic_write_bytes(tmp_path / "a" / "x.bin", b"x")
    with atomic_output_path(tmp_path / "y.npz", suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            handle.write(b"y")
    assert (tmp_path / "a" / "x.bin").read_bytes() == b"x" and (tmp_path / "y.npz").read_bytes() == b"y"


def test_files_get_the_permissions_the_umask_gives(tmp_path):
    code = ("import os, sys\nos.umask(0o027)\nfrom data_interface_for_model.atomic import atomic_write_bytes\n"
            "atomic_write_bytes(sys.argv[1], b'x')\nprint(oct(os.stat(sys.argv[1]).st_mode & 0o777))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "f")], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.strip() == "0o640", result.stderr


def test_parallel_folders_keep_their_mode_while_files_are_written(tmp_path):
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            atomic_write_bytes(tmp_path / "files" / f"{i % 50}.bin", b"x")
            i += 1

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        modes = set()
        for i in range(2000):
            folder = tmp_path / "dirs" / str(i)
            os.makedirs(folder)
            modes.add(stat.S_IMODE(os.stat(folder).st_mode))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    umask = int(subprocess.run(["sh", "-c", "umask"], capture_output=True, text=True).stdout.strip(), 8)
    assert modes == {0o777 & ~umask}


def test_a_link_at_the_target_is_replaced_not_written_through(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep", encoding="utf-8")
    link = tmp_path / "tree" / "record.txt"
    link.parent.mkdir()
    link.symlink_to(outside)
    with atomic_write(link, "w", encoding="utf-8") as handle:
        handle.write("new")
    assert outside.read_text(encoding="utf-8") == "keep"
    assert not link.is_symlink() and link.read_text(encoding="utf-8") == "new"


def test_exclusive_creation_refuses_a_planted_link(tmp_path):
    outside = tmp_path / "outside"
    (tmp_path / "planted").symlink_to(outside)
    with pytest.raises(FileExistsError):
        atomic.create_exclusive(tmp_path / "planted")
    assert not outside.exists()


def test_safe_makedirs_refuses_links_inside_the_tree(tmp_path):
    root = tmp_path / "root"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert safe_makedirs(root, "Beach", "1") == os.path.join(str(root), "Beach", "1")
    (root / "City").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        safe_makedirs(root, "City", "2")
    (root / "Sea").write_text("x", encoding="utf-8")
    with pytest.raises(UnsafePathError, match="not a folder"):
        safe_makedirs(root, "Sea", "3")
    with pytest.raises(UnsafePathError):
        safe_makedirs(root, "..", "x")
    assert list(elsewhere.iterdir()) == []
    linked_root = tmp_path / "linked_root"  # the root itself may be a link
    linked_root.symlink_to(root, target_is_directory=True)
    assert os.path.isdir(safe_makedirs(linked_root, "Beach", "4"))
