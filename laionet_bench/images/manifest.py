"""The image manifest: one row per index row saying whether its image loaded, and where it is.

The manifest is the contract between ``laionet-bench download`` (which writes it) and the evaluation
readers (which only trust rows whose status is ``ok``). An image store folder looks like::

    <dir>/manifest.parquet     MANIFEST_COLUMNS, one row per index row
    <dir>/shards/00000.tar     webdataset shards: "<key>.<ext>" original image bytes + "<key>.json"

Its content hash (:func:`manifest_hash`) identifies the evaluated image set and is part of every
evaluation run key: same hash, same images.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from ..errors import DatasetError

__all__ = [
    "MANIFEST_COLUMNS",
    "MANIFEST_FILE",
    "OK",
    "PENDING",
    "PERMANENT_STATUSES",
    "RETRYABLE_HTTP_CODES",
    "RETRYABLE_STATUSES",
    "SHARDS_DIR",
    "STATUSES",
    "Manifest",
    "is_retryable",
    "manifest_hash",
    "read_manifest",
]

MANIFEST_FILE = "manifest.parquet"
SHARDS_DIR = "shards"
OK = "ok"
#: Not attempted yet (a run was interrupted before reaching the row).
PENDING = "pending"

#: Failures worth trying again later: the server or the network may behave next time.
RETRYABLE_STATUSES = ("timeout", "connection_error", "http_error")
#: Failures that depend on the URL's content, its host's existence or our policy: retried only with
#: ``--retry-failed``. ``no_such_host``: DNS says the name does not exist (NXDOMAIN), which a retry on
#: every resume would only ask again. ``filtered`` (the official RGB / >= 100 pixels rule) is re-decided
#: when the filter setting changes.
PERMANENT_STATUSES = (
    "not_image", "too_large", "refused", "no_such_host", "redirect_loop", "decode_error", "filtered", "bomb",
)
STATUSES = (OK, PENDING, *RETRYABLE_STATUSES, *PERMANENT_STATUSES)
#: HTTP answers that may well change (rate limits, overload, gateway trouble); other codes are permanent.
RETRYABLE_HTTP_CODES = frozenset({408, 425, 429, 500, 502, 503, 504})

#: column -> arrow type. ``status`` is ``ok`` or a failure kind (http_error, timeout, not_image, ...).
MANIFEST_COLUMNS: dict[str, pa.DataType] = {
    "row_id": pa.int64(),
    "url": pa.string(),
    "status": pa.string(),
    "http_code": pa.int32(),  # null when no HTTP answer
    "error": pa.string(),  # null when ok
    "bytes": pa.int64(),
    "sha256": pa.string(),  # of the stored bytes
    "width": pa.int32(),
    "height": pa.int32(),
    "mode": pa.string(),  # original PIL mode (RGB, RGBA, P, L, CMYK, I;16 ...)
    "format": pa.string(),  # PIL format (JPEG, PNG, WEBP ...)
    "shard": pa.string(),  # tar path relative to the store folder
    "key": pa.string(),  # webdataset __key__ inside the shard
}


def is_retryable(status: str, http_code: int | None = None) -> bool:
    """Whether a failed row is worth fetching again without ``--retry-failed``.

    Timeouts and connection errors are; ``http_error`` only for :data:`RETRYABLE_HTTP_CODES`
    (a 404 stays a 404). ``pending`` rows are always fetched; ``ok`` rows never.
    """
    if status == PENDING:
        return True
    if status == "http_error":
        return http_code is not None and not pd.isna(http_code) and int(http_code) in RETRYABLE_HTTP_CODES
    return status in RETRYABLE_STATUSES


def manifest_hash(frame: pd.DataFrame) -> str:
    """sha256 over (row_id, status, sha256) of every row, sorted by row_id: the evaluated set's identity."""
    rows = frame[["row_id", "status", "sha256"]].sort_values("row_id")
    digest = hashlib.sha256()
    for row_id, status, sha in rows.itertuples(index=False):
        digest.update(f"{int(row_id)}\t{status}\t{sha if isinstance(sha, str) else ''}\n".encode())
    return digest.hexdigest()


@dataclass
class Manifest:
    """A manifest table plus the folder it describes."""

    root: Path
    table: pd.DataFrame

    @property
    def sha256(self) -> str:
        return manifest_hash(self.table)

    def ok_rows(self) -> pd.DataFrame:
        return self.table[self.table["status"] == OK]

    def status_counts(self) -> pd.Series:
        return self.table["status"].value_counts()


def read_manifest(root: str | Path) -> Manifest:
    """Read ``<root>/manifest.parquet`` and check its columns."""
    root = Path(root)
    path = root / MANIFEST_FILE
    if not path.exists():
        raise DatasetError(f"{path}: no manifest; fetch the images with 'laionet-bench download --out {root}'")
    try:
        table = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DatasetError(f"{path}: unreadable manifest ({exc}); re-run 'laionet-bench download' to rebuild it") from None
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(f"{path}: manifest lacks column(s) {missing}")
    return Manifest(root=root, table=table)
