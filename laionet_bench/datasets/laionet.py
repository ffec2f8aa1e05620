"""The LAIONet reader: index rows joined with the images ``laionet-bench download`` stored.

``images`` is either a shards + manifest folder (``manifest.parquet`` + webdataset tars holding
``<key>.<ext>``; only manifest rows with status ``ok`` count, each image located by its offset inside
its tar) or a folder of ``<row_id>.<ext>`` files. OCR-flagged rows are excluded (counted in
``n_excluded``); rows whose image is missing or failed to download are excluded and counted in
``n_failed`` (they stay in :meth:`~.base.Dataset.listed_rows`, which keeps the index's listing order).
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import DatasetError
from ..index.load import LaionetIndex, load_index
from .base import IMAGE_EXTENSIONS, Dataset, apply_limits, listing_frame, listing_sha256, restrict_classes

if TYPE_CHECKING:
    from ..images.shards import TarMember

__all__ = ["load_laionet"]


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


def _shard_images(path: Path) -> dict[str, TarMember]:
    """The image members of one shard by sample key; an unreadable shard says to re-download it."""
    from ..images.shards import iter_tar_index

    try:
        members = {m.name: m for m in iter_tar_index(path) if m.is_file}
    except (tarfile.TarError, OSError) as exc:
        raise DatasetError(f"{path}: unreadable tar shard ({exc}); re-download it") from None
    return {name.rpartition(".")[0]: m for name, m in members.items()
            if "." + name.rpartition(".")[2].lower() in IMAGE_EXTENSIONS}


def _laionet_from_shards(rows: pd.DataFrame, folder: Path) -> tuple[pd.DataFrame, dict]:
    from ..images.manifest import read_manifest

    manifest = read_manifest(folder)
    ok = manifest.ok_rows()[["row_id", "shard", "key"]]
    joined = rows[["row_id", "wnid"]].merge(ok, on="row_id", how="inner", sort=False)
    keys, wnids, paths, offsets, sizes = [], [], [], [], []
    for shard, part in joined.groupby("shard", sort=True):
        by_key = _shard_images(folder / shard)
        for row_id, wnid, key in zip(part["row_id"], part["wnid"], part["key"], strict=True):
            if key in by_key:
                keys.append(int(row_id))
                wnids.append(wnid)
                paths.append(str(folder / shard))
                offsets.append(by_key[key].offset)
                sizes.append(by_key[key].size)
    table = listing_frame(keys, wnids, paths, offsets, sizes)
    order = pd.Series(range(len(rows)), index=rows["row_id"].to_numpy())
    table = table.iloc[np.argsort(order.loc[table["key"].astype("int64")].to_numpy(), kind="stable")]
    source = {"images": {"layout": "shards", "root": str(folder.resolve()), "manifest_sha256": manifest.sha256}}
    return table.reset_index(drop=True), source


def load_laionet(variant: str | None, *, images: str | Path | None, index: Any = None,
                 classes: Iterable[str] | None = None, limit_per_class: int | None = None,
                 limit: int | None = None, **hub_options: Any) -> Dataset:
    """LAIONet ``variant`` from ``index`` plus the image folder ``images`` (see the module docstring).

    ``index`` is a :class:`~laionet_bench.index.load.LaionetIndex`, a parquet path, or ``None`` for the
    Hub variant; ``hub_options`` (``repo_id``, ``revision``, ``cache_dir``, ``local_files_only``) go to
    :func:`~laionet_bench.index.load.load_index`.
    """
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
