"""The base types every dataset reader builds on: :class:`Sample`, :class:`Dataset` and their helpers.

A :class:`Dataset` keeps its listing in a compact table (arrow-backed strings, no per-row Python
objects) so 800k-row sets stay small and fork cheaply into DataLoader workers; images are read
lazily by :meth:`Dataset.open`. Labels are always wnids, never folder order.

This module imports no reader: the readers (``laionet.py``, ``imagenet.py``) import it, and the
registry (the package ``__init__``) imports them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DatasetError

__all__ = [
    "IMAGE_EXTENSIONS",
    "Dataset",
    "Sample",
    "apply_limits",
    "listing_frame",
    "listing_sha256",
    "restrict_classes",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class Sample:
    """One image to evaluate: its key (row id or file stem), true wnid and where its bytes are."""

    key: str
    wnid: str
    path: str  # image file, or tar shard holding it
    offset: int = -1  # byte offset of the image inside the tar; -1 for a plain file
    size: int = -1  # byte length inside the tar; -1 for a plain file


@dataclass
class Dataset:
    """A listed evaluation set. ``table`` columns: key, wnid, path, offset, size (one row per sample)."""

    name: str
    table: pd.DataFrame
    source: dict[str, Any]  # what identifies the underlying data (index/manifest/listing hashes)
    n_listed: int = 0  # rows the dataset lists (after class restriction, before image availability)
    n_failed: int = 0  # listed rows without a usable image (missing / failed download)
    n_excluded: int = 0  # rows dropped on purpose (OCR flag)
    failed_keys: tuple[str, ...] = ()
    limits: dict[str, Any] | None = None
    listing: pd.DataFrame | None = None  # key, wnid of every listed row, image or not (LAIONet); None = table

    def __len__(self) -> int:
        return len(self.table)

    def sample(self, position: int) -> Sample:
        t = self.table
        return Sample(str(t["key"].iat[position]), str(t["wnid"].iat[position]), str(t["path"].iat[position]),
                      int(t["offset"].iat[position]), int(t["size"].iat[position]))

    def samples(self) -> Iterator[Sample]:
        """Every sample, in listing order."""
        columns = [self.table[c].to_numpy() for c in ("key", "wnid", "path", "offset", "size")]
        for key, wnid, path, offset, size in zip(*columns, strict=True):
            yield Sample(str(key), str(wnid), str(path), int(offset), int(size))

    def read_bytes(self, sample: Sample) -> bytes:
        with open(sample.path, "rb") as handle:
            if sample.offset < 0:
                return handle.read()
            handle.seek(sample.offset)
            return handle.read(sample.size)

    def open(self, sample: Sample) -> Any:
        """The sample's image as an RGB PIL image (raises on unreadable data; the engine counts those)."""
        from ..images.decode import decode_rgb

        return decode_rgb(self.read_bytes(sample))

    def listed_rows(self) -> pd.DataFrame:
        """Every listed row in listing order: ``key``, ``wnid`` and ``position`` in :attr:`table` (-1: no image).

        For LAIONet these are the index's evaluated rows in index order, including the rows whose image is
        missing or failed to download (the reference's "first 100 listed rows per class" counts them before
        dropping them); rows cut by ``limits`` are left out. Other datasets list exactly their samples.
        """
        positions = np.arange(len(self.table), dtype=np.int64)
        if self.listing is None:
            return pd.DataFrame({"key": self.table["key"], "wnid": self.table["wnid"], "position": positions})
        found = pd.Series(positions, index=self.table["key"].to_numpy()).reindex(self.listing["key"].to_numpy())
        position = found.fillna(-1).to_numpy(dtype=np.int64)
        keep = (position >= 0) | self.listing["key"].isin(self.failed_keys).to_numpy(dtype=bool)
        rows = self.listing[keep].reset_index(drop=True)
        return rows.assign(position=position[keep])

    def wnids(self) -> list[str]:
        """Classes with at least one sample."""
        return sorted(self.table["wnid"].unique())

    def identity(self) -> dict[str, Any]:
        """Plain-dict identity of the evaluated set (part of every run key and result)."""
        return {"dataset": self.name, **self.source, "limits": self.limits or {}, "samples": len(self.table)}


# ------------------------------------------------------------------------------------------- helpers
def listing_frame(keys, wnids, paths, offsets=None, sizes=None) -> pd.DataFrame:
    """The canonical sample table (arrow-backed strings keep 800k rows compact)."""
    n = len(keys)
    return pd.DataFrame({
        "key": pd.array([str(k) for k in keys], dtype="string[pyarrow]"),
        "wnid": pd.array(list(wnids), dtype="string[pyarrow]"),
        "path": pd.array(list(paths), dtype="string[pyarrow]"),
        "offset": np.asarray(offsets if offsets is not None else np.full(n, -1), dtype=np.int64),
        "size": np.asarray(sizes if sizes is not None else np.full(n, -1), dtype=np.int64),
    })


def listing_sha256(table: pd.DataFrame) -> str:
    """Hash of (key, wnid, size) over a sample table: same listing, same hash."""
    digest = hashlib.sha256()
    for key, wnid, size in zip(table["key"], table["wnid"], table["size"], strict=True):
        digest.update(f"{key}\t{wnid}\t{size}\n".encode())
    return digest.hexdigest()


def apply_limits(table: pd.DataFrame, *, limit_per_class: int | None, limit: int | None) -> pd.DataFrame:
    """First ``limit_per_class`` samples of each class, then the first ``limit`` overall (listing order)."""
    for name, value in (("limit_per_class", limit_per_class), ("limit", limit)):
        if value is not None and value < 1:
            raise DatasetError(f"{name} must be a positive number of images, got {value}")
    if limit_per_class is not None:
        table = table[table.groupby("wnid", sort=False).cumcount().to_numpy() < limit_per_class]
    if limit is not None:
        table = table.iloc[:limit]
    return table.reset_index(drop=True)


def restrict_classes(table: pd.DataFrame, classes: Iterable[str] | None, name: str) -> pd.DataFrame:
    """Keep only samples of ``classes``; an empty overlap is an error that names both sides."""
    if classes is None:
        return table
    wanted = set(classes)
    kept = table[table["wnid"].isin(wanted).to_numpy()]
    if kept.empty:
        raise DatasetError(f"{name}: none of its {table['wnid'].nunique()} classes is among the {len(wanted)} "
                           "requested classes; check that both datasets use ImageNet-1k wnids")
    return kept
