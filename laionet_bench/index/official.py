"""Import the reference's published LAIONet parquet (+ its pickled label dict) into our index schema.

The reference (github.com/alishiraliGit/eval-on-laion) publishes, per variant, a parquet with columns
``URL, TEXT, name_def_wnid, wnid_is_in_recognized_text, SAMPLE_ID, HEIGHT, WIDTH, LICENSE, NSFW,
similarity, text_to_name_def_wnid_similarity_<encoder>, recognized_text, top_{1,5}_is_correct_<model>``
whose index is the global LAION row id, and the labels separately as a pickled ``{wnid: [row id]}``.

The pickle is downloaded data, so it is never ``pickle.load``-ed plainly: :func:`load_label_dict`
uses an unpickler that resolves no global at all (dict, list, str and int need none) and then
checks the structure, refusing anything else with :class:`UnsafePickleError`.
"""

from __future__ import annotations

import io
import logging
import pickle
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from ..catalog import canonical_wnid, load_catalog
from ..errors import IndexValidationError, UnsafePickleError

__all__ = ["ENCODER_SUFFIXES", "convert_official", "load_label_dict"]

logger = logging.getLogger(__name__)

#: Suffix of the reference's ``text_to_name_def_wnid_similarity_<suffix>`` column → our encoder name.
ENCODER_SUFFIXES = {
    "clip": "openclip:ViT-B-32/openai",
    "mpnet": "sentence-transformers:all-mpnet-base-v2",
}
_SIM_PREFIX = "text_to_name_def_wnid_similarity_"


class _PlainDataUnpickler(pickle.Unpickler):
    """Admits only objects built without globals (dict, list, tuple, str, int, float, bool, None)."""

    def find_class(self, module: str, name: str):
        raise UnsafePickleError(
            f"the label pickle references {module}.{name}; only plain dict/list/str/int data is accepted. "
            "Re-save it as {wnid: [int row ids]} with plain Python types, or pass --labels none to use the "
            "parquet's name_def_wnid column"
        )

    def persistent_load(self, pid):
        raise UnsafePickleError("the label pickle uses persistent ids; only plain dict/list/str/int data is accepted")


def load_label_dict(path: str | Path) -> dict[str, list[int]]:
    """Safely read the reference's ``{wnid: [row id, ...]}`` pickle."""
    try:
        data = _PlainDataUnpickler(io.BytesIO(Path(path).read_bytes())).load()
    except UnsafePickleError:
        raise
    except Exception as exc:
        raise UnsafePickleError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise UnsafePickleError(f"{path}: expected a dict {{wnid: [row ids]}}, got {type(data).__name__}")
    for key, rows in data.items():
        if not isinstance(key, str) or not isinstance(rows, (list, tuple)):
            raise UnsafePickleError(f"{path}: entry {key!r} is not wnid -> list of row ids")
        if not all(isinstance(r, int) and not isinstance(r, bool) for r in rows):
            raise UnsafePickleError(f"{path}: entry {key!r} holds row ids that are not plain ints")
    return {k: list(v) for k, v in data.items()}


def _similarity_column(columns: list[str], path: str) -> tuple[str, str]:
    found = [c for c in columns if c.startswith(_SIM_PREFIX)]
    if len(found) != 1:
        raise IndexValidationError(path, f"expected exactly one {_SIM_PREFIX}<encoder> column, found {found}")
    suffix = found[0][len(_SIM_PREFIX):]
    return found[0], ENCODER_SUFFIXES.get(suffix, suffix)


def convert_official(
    parquet: str | Path, labels: str | Path | None, *, variant: str
) -> pd.DataFrame:
    """Convert the reference parquet (and optional label pickle) to a frame in our index schema.

    Labels come from the pickle when given (checked against ``name_def_wnid`` when both exist),
    else from ``name_def_wnid``. The non-standard husky wnid is translated; ``recognized_text`` and
    LAION's own image-text ``similarity`` are kept as ``x_recognized_text`` / ``x_laion_similarity``.
    """
    path = str(parquet)
    try:
        frame = pq.read_table(parquet).to_pandas()
    except Exception as exc:
        raise IndexValidationError(path, f"cannot be read as parquet: {exc}") from None
    required = ["URL", "TEXT", "SAMPLE_ID", "NSFW", "wnid_is_in_recognized_text"]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise IndexValidationError(path, f"missing reference column(s) {missing}; is this the reference parquet?")
    sim_col, encoder = _similarity_column(list(frame.columns), path)
    row_ids = pd.Series(frame.index.to_numpy(), index=frame.index).astype("int64")
    wnid = _labels(frame, row_ids, labels, path)
    catalog = load_catalog()
    index_of = {c.wnid: c.index for c in catalog}
    out = pd.DataFrame(
        {
            "row_id": row_ids.to_numpy(),
            "sample_id": frame["SAMPLE_ID"].astype("string").to_numpy(),
            "url": frame["URL"].to_numpy(),
            "caption": frame["TEXT"].to_numpy(),
            "wnid": wnid.to_numpy(),
            "class_index": wnid.map(index_of).astype("Int32").to_numpy(),
            "similarity": frame[sim_col].astype("float32").to_numpy(),
            "similarity_encoder": encoder,
            "nsfw": frame["NSFW"].to_numpy(),
            "ocr_flag": frame["wnid_is_in_recognized_text"].fillna(False).astype(bool).to_numpy(),
            "width": frame["WIDTH"].astype("Int32").to_numpy() if "WIDTH" in frame else pd.NA,
            "height": frame["HEIGHT"].astype("Int32").to_numpy() if "HEIGHT" in frame else pd.NA,
            "license": frame["LICENSE"].to_numpy() if "LICENSE" in frame else None,
            "variant": variant,
        }
    )
    if "recognized_text" in frame:
        out["x_recognized_text"] = frame["recognized_text"].to_numpy()
    if "similarity" in frame:
        out["x_laion_similarity"] = frame["similarity"].astype("float32").to_numpy()
    return out


def _labels(frame: pd.DataFrame, row_ids: pd.Series, labels, path: str) -> pd.Series:
    from_column = frame["name_def_wnid"].map(canonical_wnid) if "name_def_wnid" in frame else None
    if labels is None:
        if from_column is None:
            raise IndexValidationError(path, "no name_def_wnid column and no label pickle: pass --labels")
        return from_column.reset_index(drop=True)
    by_row: dict[int, str] = {}
    for wnid, rows in load_label_dict(labels).items():
        for row in rows:
            if row in by_row and by_row[row] != canonical_wnid(wnid):
                raise IndexValidationError(str(labels), f"row id {row} is labelled {by_row[row]} and {wnid}",
                                           field="wnid", row_ids=[row])
            by_row[row] = canonical_wnid(wnid)
    wnid = row_ids.map(by_row)
    unlabelled = wnid.isna().to_numpy()
    if unlabelled.any():
        raise IndexValidationError(
            str(labels), f"{int(unlabelled.sum())} parquet row(s) have no label, e.g. row id {int(row_ids[unlabelled].iloc[0])}",
            field="wnid", row_ids=[int(r) for r in row_ids[unlabelled].iloc[:5]],
        )
    if from_column is not None:
        disagree = (from_column.to_numpy() != wnid.to_numpy())
        if disagree.any():
            logger.warning("%d rows: label pickle disagrees with name_def_wnid; using the pickle", int(disagree.sum()))
    return wnid.reset_index(drop=True)
