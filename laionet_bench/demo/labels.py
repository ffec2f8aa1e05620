"""The reviewed label manifest of the demo: which pool images a person confirmed show which class.

``labels.csv`` (package data) has one row per labelled image: ``source, package, path, wnid, caption,
photo_like, note``. ``photo_like`` rows (Tux Paint photo cut-outs, GCompris photos, sample photos) form
ImageNet-demo; the others (clipart, cartoons, emoji) are the drawn images a caption-selected pool is full
of. The file is derived by ``scripts/derive_demo_labels.py`` and reviewed on contact sheets (docs/demo.md).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from .._io import sha256_file
from ..catalog import load_catalog
from ..errors import DatasetError

__all__ = ["LABEL_COLUMNS", "label_manifest_path", "load_labels"]

LABEL_COLUMNS = ("source", "package", "path", "wnid", "caption", "photo_like", "note")


def label_manifest_path() -> Path:
    """The committed ``labels.csv`` inside the installed package."""
    return Path(str(resources.files(__package__) / "labels.csv"))


def load_labels(path: str | Path | None = None) -> pd.DataFrame:
    """Read and check the label manifest (default: the packaged one).

    Raises:
        DatasetError: a column is missing, a wnid is not an ImageNet-1k class, ``photo_like`` is not 0/1,
            or a (source, path) pair is listed twice.
    """
    path = Path(path) if path is not None else label_manifest_path()
    frame = pd.read_csv(path, dtype={"photo_like": "int64"}, keep_default_na=False)
    missing = [c for c in LABEL_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(f"{path}: label manifest lacks column(s) {missing}")
    catalog = load_catalog()
    unknown = sorted({w for w in frame["wnid"] if w not in catalog})
    if unknown:
        raise DatasetError(f"{path}: column 'wnid': {unknown[:5]} are not ImageNet-1k classes; fix those rows")
    bad_flag = frame.loc[~frame["photo_like"].isin([0, 1]), "path"].tolist()
    if bad_flag:
        raise DatasetError(f"{path}: column 'photo_like' must be 0 or 1 (rows {bad_flag[:5]})")
    duplicated = frame.loc[frame.duplicated(["source", "path"]), "path"].tolist()
    if duplicated:
        raise DatasetError(f"{path}: (source, path) listed twice: {duplicated[:5]}; keep one label per image")
    return frame


def label_manifest_sha256(path: str | Path | None = None) -> str:
    """Content hash of the label manifest, recorded in every demo build."""
    return sha256_file(Path(path) if path is not None else label_manifest_path())
