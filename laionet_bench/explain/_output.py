"""Where an explain experiment writes, and how: ``<out>/explain/<experiment>/`` with atomic files.

Every experiment writes its tables as CSV (and parquet where rows are many) and one ``summary.json``
holding its numbers, its settings and the provenance, so each of the four folders reads the same way.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import constants
from .._io import atomic_write, write_text_atomic
from ..evaluation.results import Provenance

__all__ = ["SUMMARY_FILE", "experiment_dir", "write_summary", "write_table"]

SUMMARY_FILE = "summary.json"


def experiment_dir(out: str | Path | None, experiment: str) -> Path:
    """``<out>/explain/<experiment>`` (``out`` default: the results root)."""
    root = Path(out) if out is not None else constants.RESULTS_DIR
    folder = root / "explain" / experiment
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_table(frame: pd.DataFrame, folder: Path, stem: str, *, parquet: bool = False) -> dict[str, str]:
    """``<stem>.csv`` (and ``<stem>.parquet``), atomically; returns the paths written by kind."""
    files = {}
    with atomic_write(folder / f"{stem}.csv", "w") as handle:
        frame.to_csv(handle, index=False)
    files[f"{stem}_csv"] = str(folder / f"{stem}.csv")
    if parquet:
        with atomic_write(folder / f"{stem}.parquet") as handle:
            frame.to_parquet(handle, index=False)
        files[stem] = str(folder / f"{stem}.parquet")
    return files


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None  # JSON has no NaN: a missing number is null
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_summary(folder: Path, summary: dict, *, device: str = "cpu", dtype: str = "float32") -> Path:
    """``summary.json``: ``summary`` plus the provenance (versions, device, date, git hash)."""
    data = {**summary, "provenance": asdict(Provenance.collect(device=device, dtype=dtype))}
    path = folder / SUMMARY_FILE
    write_text_atomic(path, json.dumps(_plain(data), indent=2) + "\n")
    return path
