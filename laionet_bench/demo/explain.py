"""Offline inputs for the explain experiments, made from the demo's own material.

The demo has no ImageNet-Captions and no ImageNet-V2, so it makes stand-ins in their real formats and
hands them to the same ``explain`` functions a real run uses:

* ImageNet-Captions-like json (:func:`write_demo_captions`): one entry per reviewed label of
  ``labels.csv``, in the ImageNet-Captions schema (``filename`` ``<wnid>_<n>.JPEG``, ``title`` = the
  source's own text, ``tags`` = [], ``description`` = "", ``wnid``) — texts written for the image by
  its source, as Flickr titles are for ImageNet's;
* ImageNet-V2-like class-index folders (:func:`write_demo_v2`): the labelled pool images split per class
  into three disjoint folds named after the V2 variants. They are *not* selected by any selection
  frequency: the folds only exercise the pipeline, and their figure says nothing about the paper's claim;
* §4.2 thresholds on MiniLM's scale (:data:`DEMO_TEXT_THRESHOLDS`, :data:`DEMO_DATASETS`), and
  EfficientNet-Lite0's probability of the row's class as the image link, since no CLIP weights are
  installed offline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from .._io import write_text_atomic
from ..catalog import load_catalog
from .labels import load_labels

__all__ = ["DEMO_DATASETS", "DEMO_TEXT_THRESHOLDS", "V2_STANDINS", "write_demo_captions", "write_demo_v2"]

#: §4.2 on the demo: MiniLM's scale (selection at 0.45, docs/demo.md) in place of CLIP's 0.72...0.82.
DEMO_TEXT_THRESHOLDS = tuple(round(0.45 + 0.02 * i, 2) for i in range(8))
DEMO_DATASETS = {"A": 0.57, "B": 0.53, "C": 0.49, "D": 0.45}
#: The V2 variant names the demo's three folds stand in for.
V2_STANDINS = ("threshold-0.7", "matched-frequency", "top-images")


def write_demo_captions(path: str | Path) -> Path:
    """The labelled demo texts as an ImageNet-Captions json at ``path``."""
    labels = load_labels()
    entries = [{"filename": f"{row.wnid}_{n}.JPEG", "title": row.caption, "tags": [], "description": "",
                "wnid": row.wnid} for n, row in enumerate(labels.itertuples())]
    write_text_atomic(Path(path), json.dumps(entries, indent=0) + "\n")
    return Path(path)


def _labelled_rows(root: Path) -> pd.DataFrame:
    pool = pd.read_parquet(root / "pool.parquet", columns=["source", "path"]).reset_index(drop=True)
    pool["row_id"] = pool.index.astype("int64")  # part 0: row id = position (docs/demo.md)
    labels = load_labels()[["source", "path", "wnid"]]
    return labels.merge(pool, on=["source", "path"], how="inner").sort_values(["wnid", "row_id"])


def write_demo_v2(root: str | Path, out: str | Path) -> dict[str, Path]:
    """Three ImageNet-V2-layout folders (``<class index>/<row_id>.png`` links to pool images) under ``out``."""
    root, out = Path(root), Path(out)
    rows = _labelled_rows(root)
    index_of = {c.wnid: c.index for c in load_catalog()}
    rows["fold"] = rows.groupby("wnid").cumcount() % len(V2_STANDINS)
    folders = {}
    for fold, name in enumerate(V2_STANDINS):
        folder = out / f"imagenetv2-{name}"
        for row in rows[rows["fold"] == fold].itertuples():
            image = root / "pool_images" / f"{row.row_id}.png"
            target = folder / str(index_of[row.wnid]) / f"{row.row_id}.png"
            if image.is_file() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(image.resolve(), target)
        folders[name] = folder
    return folders
