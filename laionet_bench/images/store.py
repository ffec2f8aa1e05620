"""The image store folder as a resumable, crash-safe state: manifest snapshot, failure journal, shards.

What is true after ``kill -9`` at any instant:

* ``ok`` rows live in shards: each sample's json carries its row id and sha256. Sealed shards named in
  the manifest are trusted; sealed shards it does not name yet are scanned; ``.partial`` shards are
  repaired (:func:`~.shards.seal_partial`), keeping every complete sample.
* failures are appended to ``journal.jsonl`` as they happen (a torn last line is ignored).
* ``manifest.parquet`` is an atomic snapshot of both, rewritten every ``checkpoint_seconds`` and at
  the end; after a snapshot the journal is emptied.

So a restart loses at most the samples being written at the instant of the kill, and never
reads a torn shard as good.

One process writes a store at a time: :meth:`ImageStore.open` takes ``<dir>/.lock`` (a file lock, as the
prediction store does) *before* it looks at anything, so a second ``download`` on the same folder stops
with :class:`~laionet_bench.errors.StoreError` instead of "repairing" the ``.partial`` shard the first is
still writing. The operating system drops the lock when its holder dies, ``kill -9`` included. Readers
(the datasets, timm) need no lock.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import _io, constants
from ..config import resolve_setting
from ..errors import ConfigError, StoreError
from .manifest import MANIFEST_COLUMNS, MANIFEST_FILE, OK, PENDING, SHARDS_DIR, Manifest, is_retryable
from .shards import PARTIAL_SUFFIX, ShardSample, ShardWriter, iter_shard_samples, seal_partial

if TYPE_CHECKING:
    from filelock import BaseFileLock

__all__ = ["INFO_FILE", "JOURNAL_FILE", "LOCK_FILE", "ImageStore", "check_store_folder", "default_image_store",
           "record_from_sample"]

logger = logging.getLogger(__name__)

JOURNAL_FILE = "journal.jsonl"
#: Held by the one process writing the store.
LOCK_FILE = ".lock"
#: timm's ``wds/`` reader looks for this split description beside the shards.
INFO_FILE = "_info.json"
_SCHEMA = pa.schema([pa.field(name, dtype) for name, dtype in MANIFEST_COLUMNS.items()])


def record_from_sample(sample: ShardSample, shard: str) -> dict:
    """The manifest row of a sample read back from a shard."""
    meta = sample.meta
    return {
        "row_id": int(meta["row_id"]), "url": meta["url"], "status": OK, "http_code": meta.get("http_code"),
        "error": None, "bytes": meta.get("bytes"), "sha256": meta["sha256"], "width": meta["width"],
        "height": meta["height"], "mode": meta["mode"], "format": meta.get("format"), "shard": shard,
        "key": sample.key,
    }


def _merge(records: dict[int, dict], record: dict) -> None:
    """Later facts win, except that nothing replaces an ``ok`` row."""
    current = records.get(record["row_id"])
    if current is None or current["status"] != OK:
        records[record["row_id"]] = record


class ImageStore:
    """Open with :meth:`open` (which recovers from any crash), :meth:`add` results, then :meth:`finish`."""

    def __init__(self, root: str | Path, *, shard_size: int = 1000, checkpoint_seconds: float = 30.0):
        self.root = Path(root)
        self.checkpoint_seconds = checkpoint_seconds
        self.records: dict[int, dict] = {}
        self._unsealed: list[dict] = []
        self._last_checkpoint = time.monotonic()
        self._journal: TextIO | None = None
        self._lock: BaseFileLock | None = None
        self._shard_size = shard_size
        self.writer: ShardWriter | None = None

    @classmethod
    def open(cls, root: str | Path, *, shard_size: int = 1000, checkpoint_seconds: float = 30.0) -> ImageStore:
        """Lock the store at ``root`` (created if absent) and repair what a crash left behind.

        Raises :class:`~laionet_bench.errors.StoreError` at once, touching nothing, when another
        process holds the store's lock, and a ``ConfigError`` when ``root`` is a file or read-only.
        """
        store = cls(check_store_folder(root), shard_size=shard_size, checkpoint_seconds=checkpoint_seconds)
        (store.root / SHARDS_DIR).mkdir(parents=True, exist_ok=True)
        store._acquire()
        try:
            store._recover()
            store.writer = ShardWriter(store.root, max_samples=shard_size)
            store._journal = open(store.root / JOURNAL_FILE, "a", encoding="utf-8")  # noqa: SIM115 - closed in finish()
        except BaseException:
            store._release()
            raise
        return store

    def _acquire(self) -> None:
        from filelock import FileLock, Timeout

        lock = self._lock = FileLock(str(self.root / LOCK_FILE))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise StoreError(
                f"{self.root} is being written by another laionet-bench download (lock {lock.lock_file}); "
                "wait for it to finish or use another --out"
            ) from None

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def _opened(self) -> tuple[ShardWriter, TextIO]:
        """The shard writer and the journal, which :meth:`open` sets."""
        if self.writer is None or self._journal is None:
            raise StoreError(f"{self.root}: the image store is not open (use ImageStore.open)")
        return self.writer, self._journal

    # --- recovery -------------------------------------------------------------------------------
    def _recover(self) -> None:
        manifest_path = self.root / MANIFEST_FILE
        if manifest_path.exists():
            from .manifest import read_manifest

            table = read_manifest(self.root).table
            for record in table[table["status"] != PENDING].to_dict("records"):
                _merge(self.records, {k: (None if _isna(v) else v) for k, v in record.items() if k in MANIFEST_COLUMNS})
        self._replay_journal()
        for partial in sorted((self.root / SHARDS_DIR).glob("*.tar" + PARTIAL_SUFFIX)):
            final, samples = seal_partial(partial)
            for sample in samples:
                _merge(self.records, record_from_sample(sample, f"{SHARDS_DIR}/{final.name}"))
        self._scan_unknown_shards()

    def _replay_journal(self) -> None:
        path = self.root / JOURNAL_FILE
        if not path.exists():
            return
        for line in path.read_text("utf-8").splitlines():
            try:
                _merge(self.records, json.loads(line))
            except json.JSONDecodeError:  # the line being written at the crash
                logger.debug("%s: ignoring a torn line", path)

    def _scan_unknown_shards(self) -> None:
        on_disk = {f"{SHARDS_DIR}/{p.name}" for p in (self.root / SHARDS_DIR).glob("*.tar")}
        known = {r["shard"] for r in self.records.values() if r["status"] == OK}
        for shard in sorted(on_disk - known):
            for sample in iter_shard_samples(self.root / shard):
                _merge(self.records, record_from_sample(sample, shard))
        lost = [rid for rid, r in self.records.items() if r["status"] == OK and r["shard"] not in on_disk]
        if lost:
            logger.warning("%d ok rows point at missing shards; they will be fetched again", len(lost))
            for rid in lost:
                del self.records[rid]

    # --- planning ---------------------------------------------------------------------------------
    def needs_fetch(self, row_id: int, *, retry_failed: bool = False, official_filter: bool = False) -> bool:
        """Whether ``row_id`` should be fetched in this run (see :func:`~.manifest.is_retryable`)."""
        record = self.records.get(row_id)
        if record is None:
            return True
        status = record["status"]
        if status == OK:
            return False
        if status == "filtered" and not official_filter:
            return True
        return retry_failed or is_retryable(status, record.get("http_code"))

    # --- writing --------------------------------------------------------------------------------
    def add(self, record: dict, data: bytes | None = None, meta: dict | None = None) -> None:
        """Record one result; ``ok`` results bring their bytes and sample metadata."""
        writer, journal = self._opened()
        if record["status"] == OK:
            if data is None or meta is None:
                raise TypeError("an ok result brings its bytes (data) and its sample metadata (meta)")
            record["shard"] = writer.write(record["key"], meta["_ext"], data,
                                           {k: v for k, v in meta.items() if k != "_ext"})
            self._unsealed.append(record)
            if writer.is_full:
                self._seal()
            return
        _merge(self.records, record)
        journal.write(json.dumps(record) + "\n")

    def flush(self) -> None:
        """Hand everything added so far to the OS (survives ``kill -9``; call after each batch)."""
        writer, journal = self._opened()
        writer.flush()
        journal.flush()

    def _seal(self) -> None:
        writer, _ = self._opened()
        if writer.seal() is not None:
            for record in self._unsealed:
                _merge(self.records, record)
            self._unsealed = []

    def checkpoint(self, index_rows: pd.DataFrame, *, force: bool = False) -> bool:
        """Rewrite the manifest if ``checkpoint_seconds`` passed (or ``force``); returns whether it did."""
        if not force and time.monotonic() - self._last_checkpoint < self.checkpoint_seconds:
            return False
        frame = self.manifest_frame(index_rows)
        table = pa.Table.from_pandas(frame, schema=_SCHEMA, preserve_index=False)
        with _io.atomic_write(self.root / MANIFEST_FILE) as handle:
            pq.write_table(table, handle, compression="zstd")
        _, journal = self._opened()
        journal.truncate(0)
        journal.seek(0)
        self._last_checkpoint = time.monotonic()
        return True

    def manifest_frame(self, index_rows: pd.DataFrame) -> pd.DataFrame:
        """One row per index row (``row_id``, ``url``): its record, or ``pending``."""
        rows = []
        for row_id, url in zip(index_rows["row_id"].tolist(), index_rows["url"].tolist(), strict=True):
            record = self.records.get(int(row_id))
            rows.append(dict(record, url=url) if record else {"row_id": int(row_id), "url": url, "status": PENDING})
        frame = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)).sort_values("row_id", kind="stable")
        return frame.reset_index(drop=True)

    def finish(self, index_rows: pd.DataFrame) -> Manifest:
        """Seal the open shard, write the manifest and timm's ``_info.json``; the store is closed."""
        try:
            self._seal()
            self.checkpoint(index_rows, force=True)
            self._opened()[1].close()
            (self.root / JOURNAL_FILE).unlink(missing_ok=True)
            frame = self.manifest_frame(index_rows)
            self._write_info(frame)
        finally:
            self._release()
        return Manifest(root=self.root, table=frame)

    def _write_info(self, frame: pd.DataFrame) -> None:
        lengths = Counter(frame.loc[frame["status"] == OK, "shard"])
        shards = sorted(lengths)
        split = {"name": "laionet", "num_samples": int(sum(lengths.values())), "filenames": shards,
                 "shard_lengths": [int(lengths[s]) for s in shards]}
        info = {"name": "laionet", "splits": {"laionet": split}}
        _io.write_text_atomic(self.root / INFO_FILE, json.dumps(info, indent=1))

    def status_counts(self) -> Counter:
        counts = Counter(r["status"] for r in self.records.values())
        counts[OK] += len(self._unsealed)
        return counts


def check_store_folder(root: str | Path) -> Path:
    """``root`` as a Path if images can be written there (created if missing); a file or a read-only folder is
    a one-line :class:`~laionet_bench.errors.ConfigError`, before any index row is fetched."""
    root = Path(root)
    if not _io.output_folder_writable(root):
        raise ConfigError(f"--out {root} is read-only: pass a writable folder for the image store")
    return root


def _isna(value) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def default_image_store(index, images: str | Path | None = None) -> Path:
    """Where ``download`` writes and ``run`` / ``similarity`` read an index's images, so the flow never
    repeats a path: ``images`` if given, else the ``images`` setting (``LAIONET_BENCH_IMAGES``,
    ``[tool.laionet-bench] images``), else ``<cache>/images/<variant>`` (``index-<sha256[:12]>`` for an
    index without a variant)."""
    chosen = resolve_setting("images", images)
    if chosen is not None:
        return Path(chosen).expanduser()
    name = index.variant or "index-" + (index.sha256 or "local")[:12]
    return constants.CACHE_DIR / "images" / name
