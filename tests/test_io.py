"""Atomic writes (permissions, durability, clean failure), file hashes, the paths records may show, and JSON reads."""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import stat
from pathlib import Path

import pytest

from laionet_bench import _io
from laionet_bench._io import read_json
from laionet_bench.errors import ConfigError, DiskWriteError, ResultsError

from .fakes.disk import full_disk_under


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


def test_a_full_disk_names_the_file_and_leaves_no_empty_folder(tmp_path, monkeypatch):
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")  # a failed write or fsync names no file

    monkeypatch.setattr(os, "fsync", no_space)
    target = tmp_path / "results" / "resnet50" / "result.json"
    with pytest.raises(DiskWriteError) as info:
        _io.write_text_atomic(target, "{}\n")
    assert str(info.value) == f"{target}: no space left on device: free space and re-run; finished work is kept"
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []  # neither the model folder nor results/ is left behind, empty
    again = pickle.loads(pickle.dumps(info.value))  # travels back from a Ray worker intact
    assert str(again) == str(info.value)


def test_a_read_only_file_system_keeps_what_the_folder_holds(tmp_path, monkeypatch):
    full_disk_under(monkeypatch, "index.parquet", errno.EROFS)
    (tmp_path / "old.json").write_text("kept")
    with pytest.raises(DiskWriteError, match=r"index.parquet: read-only file system: make it writable \(or write "
                       r"elsewhere\) and re-run; finished work is kept$"):
        _io.write_bytes_atomic(tmp_path / "index.parquet", b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]


def test_writing_names_its_folder_when_the_os_names_no_file(tmp_path):
    with pytest.raises(DiskWriteError, match=r"^.*store: disk quota exceeded: free space \(or raise the quota\)"), \
            _io.writing(tmp_path / "store"):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")
    inner = DiskWriteError(tmp_path / "store" / "manifest.parquet", errno.ENOSPC)
    with pytest.raises(DiskWriteError) as info, _io.writing(tmp_path / "store"):
        raise inner
    assert info.value is inner  # the more precise path wins
    with pytest.raises(PermissionError), _io.writing(tmp_path):  # any other error passes unchanged
        raise PermissionError(errno.EACCES, "Permission denied")


def test_an_output_file_that_is_a_folder_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"--out .* is a folder; pass the path of the file to write"):
        _io.check_output_file(tmp_path)
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ConfigError, match=r"taken is a file, not a folder"):
        _io.check_output_file(tmp_path / "taken" / "index.parquet")
    assert _io.check_output_file(tmp_path / "new" / "index.parquet") == tmp_path / "new" / "index.parquet"


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
