"""The shared prediction cache: where the store lives, what it holds, pruning it, adopting an old ``<out>/.store``.

A prediction depends on its run key alone (:func:`.store.run_key`: model, weights, data config, dtype, dataset
identity), never on the results folder, so the store lives once per machine, as the Hugging Face cache does:
``<cache>/predictions`` (the cache moves with ``LAIONET_BENCH_CACHE``), or wherever the ``predictions`` setting
points (``run --predictions``, ``LAIONET_BENCH_PREDICTIONS``, ``[tool.laionet-bench] predictions``: a shared
filesystem for shards on several machines). A second results folder then gets its results without a forward
pass, and ``--out`` holds the results only. Layout, locks and resume are the store's (:mod:`.store`).

Predictions used to live in ``<out>/.store``: :func:`adopt_store` copies the runs of such a folder that the cache
lacks into it, the first time a run uses that ``--out``, so an upgrade recomputes nothing.

Every run that uses a run folder touches its ``run.json`` (:func:`mark_used`), so ``prune --older-than`` removes
what no run has *used* for that long, not what was computed long ago.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from .. import constants
from .._io import atomic_write, write_bytes_atomic
from ..config import resolve_setting
from ..errors import ConfigError
from .store import STORE_VERSION, chunk_files

__all__ = ["CACHE_FOLDER", "LEGACY_STORE_FOLDER", "StoredRun", "adopt_store", "list_runs", "mark_used",
           "prediction_cache", "prune_runs"]

logger = logging.getLogger(__name__)

#: Folder of the prediction store under the cache (``constants.CACHE_DIR``) when no setting moves it.
CACHE_FOLDER = "predictions"
#: Sub-folder of a results folder that held its predictions before the shared cache (adopted on first use).
LEGACY_STORE_FOLDER = ".store"
_DAY = 86_400.0


def prediction_cache(explicit: str | Path | None = None) -> Path:
    """The prediction store: ``explicit`` > ``LAIONET_BENCH_PREDICTIONS`` > pyproject ``predictions`` >
    ``<cache>/predictions``."""
    return Path(resolve_setting("predictions", explicit, default=constants.CACHE_DIR / CACHE_FOLDER)).expanduser()


@dataclass(frozen=True)
class StoredRun:
    """One run key's folder in the cache, as ``cache info`` lists it."""

    folder: Path
    dataset: str  # the dataset's folder name (``laionet``, ``imagenet``, ``imagenet-v2``)
    model: str  # the spec, from run.json
    run_key: str  # the full key, from run.json
    records: int  # rows in its chunks
    bytes: int  # run.json and chunks
    last_used: float  # epoch seconds: the latest run that used it, or wrote to it

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "model": self.model, "run_key": self.run_key, "records": self.records,
                "bytes": self.bytes, "last_used": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.last_used)),
                "folder": str(self.folder)}


def mark_used(folder: Path) -> None:
    """Record that a run used ``folder`` now (``run.json``'s mtime); a read-only cache is left as it is."""
    with contextlib.suppress(OSError):
        os.utime(folder / "run.json")


def _run_folders(root: Path) -> Iterator[Path]:
    """Every run folder under ``root`` (``<dataset>/<model>/<key>/run.json``), in path order."""
    yield from sorted(path.parent for path in root.glob("*/*/*/run.json"))



def _describe(folder: Path) -> StoredRun:
    info = json.loads((folder / "run.json").read_text("utf-8"))
    chunks = chunk_files(folder)
    stats = [path.stat() for path in (folder / "run.json", *chunks)]
    return StoredRun(folder=folder, dataset=folder.parent.parent.name, model=str(info.get("model", folder.parent.name)),
                     run_key=str(info.get("run_key", folder.name)),
                     records=sum(pq.read_metadata(chunk).num_rows for chunk in chunks),
                     bytes=sum(s.st_size for s in stats), last_used=max(s.st_mtime for s in stats))


def list_runs(root: str | Path | None = None) -> list[StoredRun]:
    """Every run the cache holds (default: :func:`prediction_cache`), by dataset, model and key; without locks."""
    root = prediction_cache(root)
    return [_describe(folder) for folder in _run_folders(root)] if root.is_dir() else []


def _selected(run: StoredRun, *, older_than: float | None, run_key: str | None) -> bool:
    return (older_than is None or run.last_used < older_than) and (run_key is None or run.run_key.startswith(run_key))


def prune_runs(root: str | Path | None = None, *, older_than_days: float | None = None, run_key: str | None = None,
               everything: bool = False, dry_run: bool = False, now: float | None = None) -> list[StoredRun]:
    """Remove the runs that match every criterion given; returns them (with ``dry_run``, what would go).

    Args:
        root: the cache (default: :func:`prediction_cache`).
        older_than_days: runs no run has used for more than this many days.
        run_key: runs whose key starts with this (``cache info`` shows keys).
        everything: every run (needed when no other criterion is given, so a bare prune removes nothing).
        dry_run: remove nothing.
        now: the time ages are counted from (default: now).

    A run being written by another process (its lock held) is left in place, with a warning.
    """
    if older_than_days is None and run_key is None and not everything:
        raise ConfigError("cache prune: say what to remove: --older-than DAYS, --run-key KEY or --all")
    if older_than_days is not None and older_than_days < 0:
        raise ConfigError(f"--older-than {older_than_days:g}: days must be >= 0")
    if run_key is not None and not re.fullmatch(r"[0-9a-f]+", run_key):
        raise ConfigError(f"--run-key {run_key!r}: a run key is hexadecimal (cache info lists them)")
    older_than = None if older_than_days is None else (time.time() if now is None else now) - older_than_days * _DAY
    chosen = [run for run in list_runs(root) if _selected(run, older_than=older_than, run_key=run_key)]
    return chosen if dry_run else [run for run in chosen if _remove(run.folder)]


def _remove(folder: Path) -> bool:
    """Delete one run folder under its store lock; False (and a warning) when a run is writing it."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(folder / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.warning("%s is being written by a laionet-bench run; left in place", folder)
        return False
    try:
        for path in folder.iterdir():
            if path.name != ".lock":
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    finally:
        lock.release()
    with contextlib.suppress(OSError):  # the empty folder, then its model and dataset folders once empty
        (folder / ".lock").unlink()
        for empty in (folder, folder.parent, folder.parent.parent):
            empty.rmdir()
    return True


def adopt_store(legacy: str | Path, root: str | Path) -> int:
    """Copy the runs of an old results folder's store (``<out>/.store``) that the cache lacks into the cache.

    A run is adopted when the cache has no ``run.json`` for its key and it was written by this store format
    (:data:`~.store.STORE_VERSION`; older keys can never match again). Its chunks are copied atomically under
    the cache folder's lock, ``run.json`` last, so an interrupted adoption is simply redone. The old folder is
    left as it was. Returns the number of runs adopted.
    """
    from filelock import FileLock, Timeout

    legacy, root = Path(legacy), Path(root)
    if not legacy.is_dir() or legacy.resolve() == root.resolve():
        return 0
    adopted = 0
    for folder in _run_folders(legacy):
        target = root / folder.relative_to(legacy)
        if (target / "run.json").is_file():
            continue
        if json.loads((folder / "run.json").read_text("utf-8")).get("store_version") != STORE_VERSION:
            continue
        target.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(target / ".lock"), timeout=5):
                adopted += _copy_run(folder, target)
        except Timeout:  # a run is computing this key in the cache right now: it is the cache's, not ours
            continue
    if adopted:
        logger.info("adopted %d prediction run(s) from %s into the prediction cache %s: the cache serves them from "
                    "now on, and %s can be deleted", adopted, legacy, root, legacy)
    return adopted


def _copy_run(folder: Path, target: Path) -> int:
    """Copy one run's chunks, then its ``run.json``; 0 when the target got a ``run.json`` meanwhile."""
    if (target / "run.json").is_file():
        return 0
    for chunk in chunk_files(folder):
        with chunk.open("rb") as source, atomic_write(target / chunk.name) as copy:
            shutil.copyfileobj(source, copy)
    write_bytes_atomic(target / "run.json", (folder / "run.json").read_bytes())
    return 1
