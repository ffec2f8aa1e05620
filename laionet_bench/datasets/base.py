"""The dataset registry: every evaluation set as a list of samples labelled by wnid.

``create_dataset(spec, **options)`` dispatches on the spec:

``laionet[:variant]``
    An index (``index=``: a :class:`~laionet_bench.index.LaionetIndex`, a parquet path, or the Hub
    variant) plus an image store (``images=``): a shards + manifest folder written by
    ``laionet-bench download`` (``manifest.parquet`` + webdataset tars holding ``<key>.<ext>``) or a
    folder of ``<row_id>.<ext>`` files. OCR-flagged rows are excluded (counted in ``n_excluded``); rows
    whose image is missing or failed to download are excluded and counted in ``n_failed`` (they stay in
    :meth:`Dataset.listed_rows`, which keeps the index's listing order).
``imagenet-val``
    ``root=`` in any layout of ``_imagenet.py`` (wnid folders, flat + devkit, ``wds/``, ``hfds/``).
``imagenet-v2[:variant]``
    ``root=``: class-index folders ``0`` … ``999`` mapped to wnids numerically.

A :class:`Dataset` keeps its listing in a compact table (arrow-backed strings, no per-row Python
objects) so 800k-row sets stay small and fork cheaply into DataLoader workers; images are read
lazily by :meth:`Dataset.open`. Labels are always wnids, never folder order.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DatasetError, UnknownNameError
from ..index.load import LaionetIndex, load_index

__all__ = [
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "Dataset",
    "Sample",
    "apply_limits",
    "create_dataset",
    "decode_image",
    "listing_frame",
    "listing_sha256",
    "parse_dataset_spec",
    "restrict_classes",
    "scan_tar",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")

#: Registered dataset kinds (the part of a spec before ``:``).
DATASETS = ("laionet", "imagenet-val", "imagenet-v2")


@dataclass(frozen=True)
class Sample:
    """One image to evaluate: its key (row id or file stem), true wnid and where its bytes are."""

    key: str
    wnid: str
    path: str  # image file, or tar shard holding it
    offset: int = -1  # byte offset of the image inside the tar; -1 for a plain file
    size: int = -1  # byte length inside the tar; -1 for a plain file


def decode_image(data: bytes) -> Any:
    """Decode image bytes to an RGB PIL image (transparency flattened, palette expanded)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


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
        return decode_image(self.read_bytes(sample))

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


def scan_tar(path: str | Path) -> dict[str, tuple[int, int]]:
    """``{member name: (data offset, size)}`` of a tar, read from its headers only."""
    try:
        with tarfile.open(path, "r:") as archive:
            return {m.name: (m.offset_data, m.size) for m in archive if m.isfile()}
    except (tarfile.TarError, OSError) as exc:
        raise DatasetError(f"{path}: unreadable tar shard ({exc}); re-download it") from None


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


# -------------------------------------------------------------------------------------------- LAIONet
def _image_files_by_id(folder: Path) -> dict[int, tuple[str, int]]:
    found: dict[int, tuple[str, int]] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, dot, ext = entry.name.rpartition(".")
            if dot and "." + ext.lower() in IMAGE_EXTENSIONS and stem.isdigit() and entry.is_file():
                found[int(stem)] = (entry.path, entry.stat().st_size)
    return found


def _laionet_from_folder(rows: pd.DataFrame, folder: Path) -> tuple[pd.DataFrame, dict]:
    files = _image_files_by_id(folder)
    have = rows["row_id"].isin(list(files)).to_numpy()
    ok = rows[have]
    located = [files[int(r)] for r in ok["row_id"]]
    table = listing_frame(ok["row_id"], ok["wnid"], [p for p, _ in located], sizes=[s for _, s in located])
    source = {"images": {"layout": "folder", "root": str(folder.resolve()), "listing_sha256": listing_sha256(table)}}
    return table, source


def _laionet_from_shards(rows: pd.DataFrame, folder: Path) -> tuple[pd.DataFrame, dict]:
    from ..images.manifest import read_manifest

    manifest = read_manifest(folder)
    ok = manifest.ok_rows()[["row_id", "shard", "key"]]
    joined = rows[["row_id", "wnid"]].merge(ok, on="row_id", how="inner", sort=False)
    keys, wnids, paths, offsets, sizes = [], [], [], [], []
    for shard, part in joined.groupby("shard", sort=True):
        members = scan_tar(folder / shard)
        by_key = {name.rpartition(".")[0]: (name, loc) for name, loc in members.items()
                  if "." + name.rpartition(".")[2].lower() in IMAGE_EXTENSIONS}
        for row_id, wnid, key in zip(part["row_id"], part["wnid"], part["key"], strict=True):
            if key in by_key:
                keys.append(int(row_id))
                wnids.append(wnid)
                paths.append(str(folder / shard))
                offsets.append(by_key[key][1][0])
                sizes.append(by_key[key][1][1])
    table = listing_frame(keys, wnids, paths, offsets, sizes)
    order = pd.Series(range(len(rows)), index=rows["row_id"].to_numpy())
    table = table.iloc[np.argsort(order.loc[table["key"].astype("int64")].to_numpy(), kind="stable")]
    source = {"images": {"layout": "shards", "root": str(folder.resolve()), "manifest_sha256": manifest.sha256}}
    return table.reset_index(drop=True), source


def _load_laionet(variant: str | None, *, images: str | Path | None, index: Any = None,
                  classes: Iterable[str] | None = None, limit_per_class: int | None = None,
                  limit: int | None = None, **hub_options: Any) -> Dataset:
    if images is None:
        raise DatasetError("LAIONet needs its images: pass images=DIR (a shards + manifest folder from "
                           "'laionet-bench download', or a folder of <row_id>.<ext> files)")
    if not isinstance(index, LaionetIndex):
        index = load_index(index if index is not None else f"laionet:{variant}" if variant else "laionet", **hub_options)
    rows = index.evaluation_rows()
    n_excluded = len(index.table) - len(rows)
    rows = restrict_classes(rows, classes, "LAIONet index")
    folder = Path(images)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such image folder; pass the output folder of 'laionet-bench download'")
    reader = _laionet_from_shards if (folder / "manifest.parquet").exists() else _laionet_from_folder
    table, source = reader(rows, folder)
    failed = rows.loc[~rows["row_id"].isin(table["key"].astype("int64")).to_numpy(), "row_id"]
    if table.empty:
        raise DatasetError(f"{folder}: none of the {len(rows)} index rows has an image here; check that the "
                           "folder belongs to this index (file names / manifest row ids are index row_ids)")
    limited = apply_limits(table, limit_per_class=limit_per_class, limit=limit)
    name = f"laionet:{index.variant}" if index.variant else "laionet"
    return Dataset(
        name=name, table=limited, source={"index": index.provenance(), **source},
        n_listed=len(rows), n_failed=len(failed), n_excluded=n_excluded,
        failed_keys=tuple(str(r) for r in failed), limits={"limit_per_class": limit_per_class, "limit": limit},
        listing=pd.DataFrame({"key": pd.array(rows["row_id"].astype(str), dtype="string[pyarrow]"),
                              "wnid": pd.array(rows["wnid"], dtype="string[pyarrow]")}),
    )


# ------------------------------------------------------------------------------------------- registry
def parse_dataset_spec(spec: str) -> tuple[str, str | None]:
    """``"laionet:clip_top50"`` → ``("laionet", "clip_top50")``; unknown kinds get suggestions."""
    kind, _, variant = spec.partition(":")
    if kind not in DATASETS:
        raise UnknownNameError("dataset", spec, difflib.get_close_matches(kind, DATASETS))
    return kind, variant or None


def create_dataset(spec: str, **options: Any) -> Dataset:
    """Create a dataset from its spec (see the module docstring for the options of each kind).

    Common options: ``classes`` (restrict to these wnids), ``limit_per_class``, ``limit``.
    """
    kind, variant = parse_dataset_spec(spec)
    if kind == "laionet":
        return _load_laionet(variant, **options)
    from . import imagenet as _imagenet

    if kind == "imagenet-val":
        if variant is not None:
            raise DatasetError(f"imagenet-val has no variants (got {spec!r}); give the layout through root=")
        return _imagenet.load_imagenet_val(**options)
    return _imagenet.load_imagenet_v2(variant, **options)
