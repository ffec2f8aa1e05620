"""Atomic writes (permissions, durability, clean failure), file hashes, the paths records may show, and JSON reads."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from laionet_bench import _io
from laionet_bench._io import read_json
from laionet_bench.errors import ResultsError


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_write_gives_the_permissions_the_umask_gives(tmp_path, umask):
    previous = os.umask(umask)
    try:
        _io.write_text_atomic(tmp_path / "result.json", "{}\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "result.json").stat().st_mode) == 0o666 & ~umask


def test_atomic_write_fsyncs_the_folder_after_the_rename(tmp_path, monkeypatch):
    target = tmp_path / "out" / "leaderboard.json"
    synced: list[tuple[bool, bool]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append((stat.S_ISDIR(os.fstat(fd).st_mode), target.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    _io.write_bytes_atomic(target, b"x")
    assert synced == [(False, False), (True, True)]  # the data before the rename, the folder after it


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "manifest.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), _io.atomic_write(target, "w") as handle:
        handle.write("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_sha256_file_uses_hashlib_file_digest(tmp_path, monkeypatch):
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(3 << 20))
    calls = []
    real = hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda f, name: calls.append(name) or real(f, name))
    assert _io.sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert calls == ["sha256"]


def test_display_path_is_relative_home_based_or_left_alone(tmp_path, monkeypatch):
    home, work = tmp_path / "home" / "me", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    assert _io.display_path(work / "results" / "m") == "results/m"
    assert _io.display_path("results/m") == "results/m"
    assert _io.display_path(work) == "."
    assert _io.display_path(home / ".cache" / "laionet-bench" / "w.pth") == "~/.cache/laionet-bench/w.pth"
    assert _io.display_path("~/data") == "~/data" and _io.display_path(home) == "~"
    assert _io.display_path(Path("/srv/imagenet/val")) == "/srv/imagenet/val"
    assert _io.display_path(tmp_path / "home" / "other") == (tmp_path / "home" / "other").as_posix()


def test_read_json_says_in_one_line_why_a_file_cannot_be_read(tmp_path):
    fix = "rewrite it"
    (tmp_path / "ok.json").write_text('{"a": [1]}', "utf-8")
    assert read_json(tmp_path / "ok.json", error=ResultsError, fix=fix) == {"a": [1]}
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "latin1.json").write_bytes('{"name": "café"}'.encode("latin-1"))
    (tmp_path / "broken.json").write_text("{not json", "utf-8")
    for name, problem in (("folder.json", "a folder, not a JSON file"), ("latin1.json", "not UTF-8 text (byte 13"),
                          ("broken.json", "not valid JSON (Expecting property name")):
        with pytest.raises(ResultsError) as info:
            read_json(tmp_path / name, error=ResultsError, fix=fix)
        message = str(info.value)
        assert message.startswith(f"{tmp_path / name}: {problem}") and message.endswith("; rewrite it")
        assert "\n" not in message
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "missing.json", error=ResultsError, fix=fix)
