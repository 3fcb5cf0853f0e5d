"""core/__init__.py: the cache folder and the atomic file writes every cache and result file uses."""

from __future__ import annotations

import threading

import pytest

import core


def test_write_atomically_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    core.write_atomically(path, lambda tmp: tmp.write_text("first"))
    core.write_atomically(path, lambda tmp: tmp.write_text("second"))
    assert path.read_text() == "second" and [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")

    def half(tmp):
        tmp.write_text("half of a fi")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        core.write_atomically(path, half)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_concurrent_writers_never_leave_a_mixed_file(tmp_path):
    path, texts = tmp_path / "out.txt", [str(k) * 200_000 for k in range(8)]
    threads = [threading.Thread(target=core.write_atomically, args=(path, lambda tmp, s=s: tmp.write_text(s)))
               for s in texts]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert path.read_text() in texts and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(tmp_path / "c"))
    assert core.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
