"""Crash-safe file writes, content hashes, path-safe names and shareable paths, for every writer in the package;
and the one reader of the JSON files the package keeps (results, baselines, caches), which says in one line why
a file cannot be read."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "check_output_file", "display_path", "output_folder_writable", "read_json", "sha256_file",
           "slug", "write_bytes_atomic", "write_text_atomic", "writing"]

#: Mode a new file is created with before the umask applies, as ``open(path, "w")`` does.
_FILE_MODE = 0o666


def _create_temp(target: Path) -> tuple[int, Path]:
    """A new, unique hidden file beside ``target``, opened for writing.

    Not ``tempfile.mkstemp``: that creates 0600 files, and the rename would give every result,
    leaderboard and manifest private permissions. ``os.open`` with 0666 lets the umask decide, as for
    any file the user writes.
    """
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), _FILE_MODE), tmp
        except FileExistsError:
            continue


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable: without this a power cut can lose the new directory entry."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a directory; its renames need no directory fsync
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a directory; the data itself was synced
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Make a full disk, a full quota or a read-only file system in the block a one-line
    :class:`~laionet_bench.errors.DiskWriteError` naming ``path`` (the OS names no file when a write or an
    fsync fails), unless one raised inside already names a more precise path."""
    from .errors import DiskWriteError

    try:
        yield
    except OSError as exc:
        error = DiskWriteError.of(exc, path)
        if error is None or error is exc:
            raise
        raise error from exc


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` with its parents; returns the folders this created, deepest first."""
    created = []
    missing = folder
    while not missing.exists() and missing != missing.parent:
        created.append(missing)
        missing = missing.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except BaseException:
        _remove_empty(created)
        raise
    return created


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) as far as they are empty: another writer's files are left alone."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a unique temp file beside ``path``; on success fsync it, rename it into place and fsync the folder.

    A crash or exception leaves ``path`` untouched (old content or absent), and no temp file nor folder this
    call created behind (no empty model folder after a full disk), so a reader never sees a half-written
    file. The file gets the permissions the umask gives a new file. A full disk, a full quota or a read-only
    file system is a :class:`~laionet_bench.errors.DiskWriteError` naming ``path``.
    """
    target = Path(path)
    with writing(target):
        created = _make_folder(target.parent)
        try:
            fd, tmp = _create_temp(target)
            try:
                with os.fdopen(fd, mode) as handle:
                    yield handle
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        except BaseException:
            _remove_empty(created)
            raise
        _fsync_dir(target.parent)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def output_folder_writable(path: str | Path, *, flag: str = "--out") -> bool:
    """Whether files can be written in the folder ``path`` (created if missing); a file there is an error.

    Checked by writing: permission bits say nothing about a read-only mount, or about root. A read-only
    folder is not an error here, because reading what it already holds is a valid use: the caller decides.
    A full disk or quota is (:class:`~laionet_bench.errors.DiskWriteError`): "read-only" would mislead.
    """
    from .errors import DiskWriteError

    path = Path(path)
    _refuse_file_in_the_way(path, path, flag)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(path / "write-check")
    except OSError as exc:
        full = DiskWriteError.of(exc, path)
        if full is not None and full.errno != errno.EROFS:
            raise full from exc
        return False
    os.close(fd)
    tmp.unlink()
    return True


def check_output_file(path: str | Path, *, flag: str = "--out") -> Path:
    """Refuse, before any work, an output file ``path`` that is a folder or lies under a file (a one-line
    :class:`~laionet_bench.errors.ConfigError` naming ``flag``); returns it as a Path."""
    from .errors import ConfigError

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; pass the path of the file to write (a new file, or one to "
                          "replace)")
    _refuse_file_in_the_way(path.parent, path, flag)
    return path


def _refuse_file_in_the_way(folder: Path, path: Path, flag: str) -> None:
    """A ConfigError if the nearest existing one of ``folder`` and its parents is a file, not a folder."""
    from .errors import ConfigError

    blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise ConfigError(f"{flag} {path}: {blocker} is a file, not a folder; pass another {flag}")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, streamed by :func:`hashlib.file_digest`."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def display_path(path: str | Path) -> str:
    """``path`` as results and published files record it: never the user's absolute local path.

    A path under the working directory becomes relative to it (``results/x``), else one under the home
    directory starts with ``~`` (``~/.cache/laionet-bench/weights/...``); any other path (``/data/imagenet``)
    is kept absolute, since it names no user. Paths use ``/`` on every platform. Records keep
    identities (sha256, commits) for matching; this string only tells a reader where a file was.
    """
    absolute = Path(os.path.abspath(Path(path).expanduser()))
    for base, prefix in ((Path.cwd(), None), (Path.home(), "~")):
        for root in dict.fromkeys((base, base.resolve())):
            if absolute == root or root in absolute.parents:
                relative = absolute.relative_to(root).as_posix()
                if prefix is None:
                    return relative
                return prefix if relative == "." else f"{prefix}/{relative}"
    return absolute.as_posix()


def slug(name: str) -> str:
    """A file-system-safe path component for a spec: a model, a dataset (``laionet:clip_0.82``), an encoder.

    Keeps letters, digits, ``.``, ``_`` and ``-``; every other run of characters becomes one ``_``.
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


def read_json(path: str | Path, *, error: Callable[[str], Exception], fix: str) -> Any:
    """The parsed content of the JSON file ``path``.

    A folder, an unreadable file, bytes that are not UTF-8 or text that is not JSON raise
    ``error("<path>: <what is wrong>; <fix>")``, one line. A missing file raises ``FileNotFoundError``: whether
    that is an error is the caller's call.
    """
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        problem = "a folder, not a JSON file"
    except OSError as exc:
        problem = f"not readable ({exc.strerror or type(exc).__name__})"
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text (byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r})"
    except json.JSONDecodeError as exc:
        problem = f"not valid JSON ({exc})"
    raise error(f"{path}: {problem}; {fix}")
