"""The prediction store: per (model, dataset) and row, the top-5 wnids, their scores and the true rank.

Records are keyed by a *run key*, the sha256 of everything that decides a prediction: model spec,
weights (hub id, or a local file's sha256 alone, wherever the file lies), resolved data config, dtype,
dataset identity (index sha256 and revision, manifest or listing hash, limits) and the store format
version :data:`STORE_VERSION`. Not the harness version: a release that does not change what a
prediction means keeps every stored prediction. A different key is a different folder, so a changed
input never mixes with old records::

    <root>/<dataset slug>/<model slug>/<run key[:16]>/
        run.json               the run key's inputs, plus model_info once the model was built
        chunk-000000.parquet   RECORD_COLUMNS, CHUNK_ROWS rows each (the last may be shorter)
        .lock                  held by the one run writing here

Chunks are append-only and written atomically (temp file, fsync, rename): after ``kill -9`` the
store holds whole chunks only, and a re-run skips every key they contain. A file lock keeps two runs
from writing one folder; readers need no lock.

At the scale of ``--models all`` (~550k chunk files) two things matter: a run reads each chunk's keys once
per start (:func:`read_keys` re-reads only the chunks written since it last looked), and a store whose run
computed every row it lacked is *compacted* into one chunk when its writer closes (:meth:`PredictionStore.compact`:
the merged chunk is written before the old ones are removed, so a reader sees every record throughout).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .._io import atomic_write, slug, write_text_atomic
from ..errors import StoreError

if TYPE_CHECKING:
    from filelock import BaseFileLock

__all__ = ["CHUNK_ROWS", "RECORD_SCHEMA", "STORE_VERSION", "PredictionStore", "StoredKeys", "chunk_files", "read_keys",
           "read_predictions", "run_key", "store_dir"]

logger = logging.getLogger(__name__)

#: Records per chunk file: what a ``kill -9`` can lose at most, per model.
CHUNK_ROWS = 2048
#: The store format: bump when what a prediction means or how its run key is formed changes, and only then
#: (a new key recomputes every prediction). 2: keys no longer hash the harness version or a local weights
#: file's path, only its sha256.
STORE_VERSION = 2

RECORD_SCHEMA = pa.schema([
    pa.field("key", pa.string()),  # dataset sample key (LAIONet row id, ImageNet file stem ...)
    pa.field("wnid", pa.string()),  # true class
    pa.field("ok", pa.bool_()),  # False: image unreadable, nothing predicted
    pa.field("error", pa.string()),  # why not ok (null when ok)
    pa.field("top5", pa.list_(pa.string(), 5)),  # predicted wnids, best first (null when not ok)
    pa.field("scores", pa.list_(pa.float32(), 5)),  # their softmax probabilities
    pa.field("true_rank", pa.int32()),  # 0 = top-1 correct; < 5 = top-5 correct; -1 when not ok
])


def run_key(*, model: str, weights: Mapping[str, Any], data_config: Mapping[str, Any], dtype: str,
            dataset: Mapping[str, Any], label_rule: str | None = None) -> tuple[str, dict]:
    """The run key (hex sha256) and the plain dict it hashes.

    ``weights`` is :func:`~laionet_bench.models.registry.weights_identity`: a local file (one with a
    ``weights_sha256``) is keyed by its content only, so moving it or running from another folder
    recomputes nothing. ``label_rule`` (:func:`~laionet_bench.models.registry.label_rule`) is hashed only
    when the model has a protocol-dependent one (HF heads), so other models keep their keys.
    """
    weights = dict(weights)
    if weights.get("weights_sha256"):
        weights = {"weights_sha256": weights["weights_sha256"]}
    payload = {
        "model": model,
        "weights": weights,
        "data_config": dict(data_config),
        "dtype": dtype,
        "dataset": dict(dataset),
        "store_version": STORE_VERSION,
    }
    if label_rule is not None:
        payload["label_rule"] = label_rule
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest(), payload


def store_dir(root: str | Path, *, model: str, dataset: str, key: str) -> Path:
    """Folder of one run key's records."""
    return Path(root) / slug(dataset) / slug(model) / key[:16]


def chunk_files(folder: Path) -> list[Path]:
    """A run folder's chunk files, in the order they were written."""
    return sorted(folder.glob("chunk-*.parquet"))


def _read_tables(folder: Path, files: Sequence[Path], columns: list[str] | None) -> pa.Table:
    if not files:
        return RECORD_SCHEMA.empty_table().select(columns or RECORD_SCHEMA.names)
    try:
        return pa.concat_tables([pq.read_table(f, columns=columns) for f in files])
    except (pa.ArrowInvalid, OSError) as exc:
        raise StoreError(f"{folder}: unreadable chunk ({exc}); delete that chunk file and re-run to recompute it") from None


def _listed_and_read(folder: Path, read):
    """``read(chunk files)``, listed again once if a chunk vanished meanwhile (a compaction replaced it)."""
    try:
        return read(chunk_files(folder))
    except StoreError:
        if all(f.exists() for f in chunk_files(folder)):
            raise
        return read(chunk_files(folder))


def read_predictions(folder: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Every complete record under ``folder`` (duplicates of a key keep the first), without locking."""
    folder = Path(folder)
    frame = _listed_and_read(folder, lambda files: _read_tables(folder, files, columns)).to_pandas()
    return frame.drop_duplicates("key", keep="first", ignore_index=True) if "key" in frame else frame


@dataclass(frozen=True)
class StoredKeys:
    """The keys of a store's complete records, and the chunk files they were read from."""

    keys: pd.Series
    chunks: frozenset[str]


def read_keys(folder: str | Path, previous: StoredKeys | None = None) -> StoredKeys:
    """The keys stored under ``folder``; given what an earlier call read, only the chunks written since.

    Chunks never change once written, so the keys of a chunk already read stand; when one of them is gone
    (a compaction merged it), everything is read again.
    """
    folder = Path(folder)

    def read(files: list[Path]) -> StoredKeys:
        names = frozenset(f.name for f in files)
        if previous is not None and previous.chunks <= names:
            new = [f for f in files if f.name not in previous.chunks]
            if not new:
                return previous
            keys = pd.concat([previous.keys, _read_tables(folder, new, ["key"]).to_pandas()["key"]], ignore_index=True)
        else:
            keys = _read_tables(folder, files, ["key"]).to_pandas()["key"]
        return StoredKeys(keys.drop_duplicates(ignore_index=True), names)

    return _listed_and_read(folder, read)


class PredictionStore:
    """Append-only, locked writer of one run key's records. Use as a context manager."""

    def __init__(self, root: str | Path, *, model: str, dataset: str, key: str, payload: Mapping[str, Any],
                 chunk_rows: int | None = None, lock_timeout: float = 5.0):
        self.folder = store_dir(root, model=model, dataset=dataset, key=key)
        self.key = key
        self.payload = dict(payload)
        self.chunk_rows = chunk_rows or CHUNK_ROWS
        self.lock_timeout = lock_timeout
        self._buffer: list[dict] = []
        self._lock: BaseFileLock | None = None
        self._next = 0
        self.compact_on_exit = False  # set by the writer once every row it lacked is computed

    def __enter__(self) -> PredictionStore:
        from filelock import FileLock, Timeout

        self.folder.mkdir(parents=True, exist_ok=True)
        lock = self._lock = FileLock(str(self.folder / ".lock"))
        try:
            lock.acquire(timeout=self.lock_timeout)
        except Timeout:
            raise StoreError(f"{self.folder} is being written by another laionet-bench run (lock {lock.lock_file}); "
                             "wait for it to finish or use another --out") from None
        if not (self.folder / "run.json").exists():
            self._write_run({"run_key": self.key, **self.payload})
        existing = chunk_files(self.folder)
        self._next = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.flush()
                if self.compact_on_exit:
                    self.compact()
        finally:
            if self._lock is not None:
                self._lock.release()

    def _write_run(self, data: dict) -> None:
        write_text_atomic(self.folder / "run.json", json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")

    def run_info(self) -> dict:
        return json.loads((self.folder / "run.json").read_text("utf-8"))

    def set_model_info(self, info: Mapping[str, Any]) -> None:
        """Record the built model's facts (params, label map ...) for results of later cached runs."""
        self._write_run({**self.run_info(), "model_info": dict(info)})

    def done_keys(self, previous: StoredKeys | None = None) -> StoredKeys:
        """Keys with a complete record; given an earlier :func:`read_keys` of this folder, only new chunks are read."""
        return read_keys(self.folder, previous)

    def compact(self) -> None:
        """Merge the chunks into one (the records deduplicated, in chunk order), then remove the old chunks.

        Called with the lock held. The merged chunk is numbered after the others and written atomically before
        any is removed, so an unlocked reader sees every record at any moment (at worst twice, which reading
        deduplicates), and a ``kill -9`` in between leaves duplicates, never a gap.
        """
        files = chunk_files(self.folder)
        if len(files) < 2:
            return
        table = _read_tables(self.folder, files, None)
        frame = table.to_pandas().drop_duplicates("key", keep="first", ignore_index=True)
        self._write_table(pa.Table.from_pandas(frame, schema=RECORD_SCHEMA, preserve_index=False))
        for path in files:
            path.unlink()
        logger.debug("compacted %d chunks of %s into one", len(files), self.folder)

    def append(self, records: list[dict]) -> None:
        """Queue records; every full chunk is written atomically."""
        self._buffer.extend(records)
        while len(self._buffer) >= self.chunk_rows:
            self._write_chunk(self._buffer[: self.chunk_rows])
            self._buffer = self._buffer[self.chunk_rows:]

    def flush(self) -> None:
        """Write whatever is queued as a (short) final chunk."""
        if self._buffer:
            self._write_chunk(self._buffer)
            self._buffer = []

    def _write_chunk(self, records: list[dict]) -> None:
        self._write_table(pa.Table.from_pylist(records, schema=RECORD_SCHEMA))

    def _write_table(self, table: pa.Table) -> None:
        path = self.folder / f"chunk-{self._next:06d}.parquet"
        with atomic_write(path) as handle:
            pq.write_table(table, handle)
        self._next += 1
        logger.debug("wrote %s (%d records)", path, table.num_rows)
