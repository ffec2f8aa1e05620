"""The LAIONet index schema: its columns, validation, and reading and writing index parquet files.

An index is a table of LAION rows, each labelled with exactly one ImageNet-1k wnid (the columns are
:data:`INDEX_COLUMNS`, documented in ``docs/index.md``). Every file read or written goes through
:func:`validate_index_table`, so a bad row is reported with its file, column and row ids before any
evaluation sees it. Where an index comes from (Hub, local files, variants) is :mod:`.load`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import _io
from ..catalog import load_catalog
from ..errors import DatasetError, IndexValidationError

__all__ = [
    "DATASET_MANIFEST",
    "EXTENSION_PREFIX",
    "INDEX_COLUMNS",
    "INDEX_SCHEMA",
    "LABEL_KEYS_METADATA",
    "Column",
    "index_files",
    "read_index_file",
    "read_label_keys",
    "row_error",
    "validate_index_table",
    "write_index",
]

#: Extra columns are allowed only under this prefix (e.g. ``x_recognized_text``).
EXTENSION_PREFIX = "x_"
#: Parquet schema-metadata key of the reference label pickle's keys (a JSON list of str), recorded by
#: ``index import-official --labels``: the reference scores ImageNet-val over these classes.
LABEL_KEYS_METADATA = b"laionet_bench.label_keys"
#: What the downloader fetches: an http(s) URL with a host.
_WEB_URL = r"(?i)https?://[^/?#\s]+"


@dataclass(frozen=True)
class Column:
    """One index column: arrow type, whether nulls are allowed, and what it holds."""

    name: str
    dtype: pa.DataType
    nullable: bool
    doc: str


INDEX_COLUMNS: tuple[Column, ...] = (
    Column("row_id", pa.int64(), False, "global LAION row id = part * 10**8 + row within the part; unique"),
    Column("sample_id", pa.string(), True, "LAION SAMPLE_ID as a string"),
    Column("url", pa.string(), False, "image URL"),
    Column("caption", pa.string(), False, "LAION caption (alt text)"),
    Column("wnid", pa.string(), False, "the one ImageNet-1k wnid this row is labelled with"),
    Column("class_index", pa.int32(), False, "timm class index of wnid (0..999)"),
    Column("similarity", pa.float32(), False, "cosine(caption, synset text) under similarity_encoder"),
    Column("similarity_encoder", pa.string(), False, "text encoder, e.g. openclip:ViT-B-32/openai"),
    Column("nsfw", pa.string(), True, "LAION NSFW tag (UNLIKELY / UNSURE / NSFW)"),
    Column("ocr_flag", pa.bool_(), False, "synset name found in text rendered in the image; excluded at evaluation"),
    Column("width", pa.int32(), True, "image width from LAION metadata"),
    Column("height", pa.int32(), True, "image height from LAION metadata"),
    Column("license", pa.string(), True, "LAION LICENSE field"),
    Column("variant", pa.string(), False, "index variant, e.g. clip_0.82"),
)
INDEX_SCHEMA = pa.schema([pa.field(c.name, c.dtype, nullable=c.nullable) for c in INDEX_COLUMNS])


def _is_compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    if pa.types.is_integer(expected):
        return pa.types.is_integer(actual)
    if pa.types.is_floating(expected):
        return pa.types.is_floating(actual) or pa.types.is_integer(actual)
    if pa.types.is_string(expected):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual) or pa.types.is_null(actual)
    if pa.types.is_dictionary(actual):
        return _is_compatible(actual.value_type, expected)
    return actual.equals(expected)


def _row_ids(frame: pd.DataFrame, mask, limit: int = 5) -> list:
    ids = frame.loc[mask, "row_id"] if "row_id" in frame else frame.index[mask]
    return [int(i) if isinstance(i, (int, np.integer)) else i for i in list(ids[:limit])]


def row_error(path: str, count: int, ids: list, field_name: str, what: str, fix: str) -> IndexValidationError:
    """The one message form for bad rows: ``<file>: column 'x': N row(s) <what> (row_id a, b, ...): <fix>``."""
    more = ", ..." if count > len(ids) else ""
    shown = ", ".join(str(i) for i in ids)
    return IndexValidationError(path, f"{count} row(s) {what} (row_id {shown}{more}): {fix}", field=field_name,
                                row_ids=ids)


def _fail_rows(path: str, frame: pd.DataFrame, mask, field_name: str, what: str, fix: str):
    raise row_error(path, int(np.count_nonzero(mask)), _row_ids(frame, mask), field_name, what, fix)


def _check_integer_ranges(table: pa.Table, path: str) -> None:
    """Integer values that do not fit their column's type (int32 sizes, int64 row ids from uint64 ...).

    Checked on the arrow table, before the cast that would otherwise fail with a bare ``ArrowInvalid``.
    """
    for col in INDEX_COLUMNS:
        values = table.column(col.name)
        if not pa.types.is_integer(col.dtype) or not pa.types.is_integer(values.type):
            continue
        want, have = _int_bounds(col.dtype), _int_bounds(values.type)
        checks = []
        if have[0] < want[0]:
            checks.append(pc.less(values, pa.scalar(want[0], values.type)))
        if have[1] > want[1]:
            checks.append(pc.greater(values, pa.scalar(want[1], values.type)))
        if not checks:
            continue
        outside = pc.fill_null(checks[0] if len(checks) == 1 else pc.or_(*checks), False)
        count = pc.sum(outside.cast(pa.int64())).as_py() or 0
        if count:
            ids = table.filter(outside).column("row_id").slice(0, 5).to_pylist()
            raise row_error(path, count, ids, col.name, f"with a value outside the {col.dtype} range {want[0]}..{want[1]}",
                            "fix or drop these rows")


def _check_utf8(table: pa.Table, path: str) -> None:
    """Text that is not valid UTF-8 (a parquet writer can store any bytes as a string).

    Checked on the arrow table: pandas' conversion would fail later with a bare ``ArrowException`` that
    names neither the column nor the row.
    """
    for name in table.column_names:
        values = table.column(name)
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            continue
        try:
            values.validate(full=True)
        except pa.ArrowInvalid:
            binary = values.cast(pa.large_binary()).to_pylist()
            bad = np.array([v is not None and not _is_utf8(v) for v in binary])
            ids = table.filter(pa.array(bad)).column("row_id").slice(0, 5).to_pylist()
            raise row_error(path, int(bad.sum()), ids, name, "with text that is not valid UTF-8",
                            "fix the file's encoding or drop these rows") from None


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _int_bounds(dtype: pa.DataType) -> tuple[int, int]:
    info = np.iinfo(dtype.to_pandas_dtype())
    return int(info.min), int(info.max)


def validate_index_table(table: pa.Table, path: str = "<table>") -> pd.DataFrame:
    """Check ``table`` against the schema and return it as a typed DataFrame.

    Raises :class:`IndexValidationError` naming the file, the column and the offending row ids for:
    an empty table, missing or unknown columns, wrong dtypes, integers outside their column's type
    (an int32 width of 3e9), text that is not valid UTF-8, nulls where none are allowed (NaN captions
    included), negative or duplicate row ids, empty captions, URLs that are not http(s), several wnids in one row, wnids
    outside ImageNet-1k, class indices that disagree with the wnid, similarities outside [-1, 1].
    """
    names = set(table.column_names)
    expected = [c.name for c in INDEX_COLUMNS]
    missing = [n for n in expected if n not in names]
    if missing:
        raise IndexValidationError(path, f"missing column(s) {missing}; the schema is in docs/index.md")
    extra = [n for n in table.column_names if n not in expected and not n.startswith(EXTENSION_PREFIX)]
    if extra:
        raise IndexValidationError(
            path, f"unknown column(s) {extra}: drop them or rename them with the {EXTENSION_PREFIX!r} prefix"
        )
    for col in INDEX_COLUMNS:
        actual = table.schema.field(col.name).type
        if not _is_compatible(actual, col.dtype):
            raise IndexValidationError(path, f"has type {actual}, expected {col.dtype}", field=col.name)
    if table.num_rows == 0:
        raise IndexValidationError(path, "the index has no rows")
    _check_integer_ranges(table, path)
    _check_utf8(table, path)
    table = table.select(expected + [n for n in table.column_names if n.startswith(EXTENSION_PREFIX)])
    # cast with every field nullable: null checks below report them with row ids
    frame = table.cast(
        pa.schema([
            INDEX_SCHEMA.field(n).with_nullable(True) if n in expected else table.schema.field(n)
            for n in table.column_names
        ])
    ).to_pandas()
    for col in INDEX_COLUMNS:
        if col.nullable and pa.types.is_integer(col.dtype):  # keep ints ints when some are missing
            frame[col.name] = frame[col.name].astype("Int32")
        if not col.nullable:
            nulls = frame[col.name].isna().to_numpy()
            if nulls.any():
                what = "with an empty (NaN) caption" if col.name == "caption" else "with a missing value"
                _fail_rows(path, frame, nulls, col.name, what, "fill or drop these rows")
    _check_rows(frame, path)
    return frame


def web_urls(urls: pd.Series) -> np.ndarray:
    """Per URL, whether the downloader can fetch it (``http(s)://host...``); missing values are not."""
    return urls.astype("string").str.strip().str.match(_WEB_URL).fillna(False).to_numpy(dtype=bool)


def _check_values(frame: pd.DataFrame, path: str) -> None:
    """Row ids, captions and URLs a download and an evaluation can use."""
    negative = (frame["row_id"] < 0).to_numpy()
    if negative.any():
        _fail_rows(path, frame, negative, "row_id", "with a negative row_id",
                   "row ids are LAION's part * 10**8 + row, never negative")
    empty = (frame["caption"].str.strip() == "").to_numpy()
    if empty.any():
        _fail_rows(path, frame, empty, "caption", "with an empty caption", "fill or drop these rows")
    web = web_urls(frame["url"])
    if not web.all():
        _fail_rows(path, frame, ~web, "url", "with a URL that is not http(s)://host/...",
                   "only http and https images can be downloaded; fix or drop these rows")


def _check_rows(frame: pd.DataFrame, path: str) -> None:
    _check_values(frame, path)
    duplicated = frame["row_id"].duplicated(keep=False).to_numpy()
    if duplicated.any():
        by_id = frame.loc[duplicated].groupby("row_id")["wnid"].nunique()
        several = frame["row_id"].isin(by_id[by_id > 1].index).to_numpy()
        if several.any():
            _fail_rows(path, frame, several, "wnid", "labelled with several wnids", "keep one wnid per row")
        _fail_rows(path, frame, duplicated, "row_id", "with a duplicated row_id", "row ids must be unique")
    wnids = frame["wnid"].astype(str)
    multi = wnids.str.contains(r"[,;\s|]", regex=True).to_numpy()
    if multi.any():
        _fail_rows(path, frame, multi, "wnid", "labelled with several wnids", "keep one wnid per row")
    catalog = load_catalog()
    known = wnids.isin(catalog.wnids).to_numpy()
    if not known.all():
        _fail_rows(path, frame, ~known, "wnid", "with a wnid outside ImageNet-1k", "fix or drop these rows")
    index_of = {c.wnid: c.index for c in catalog}
    wrong = (wnids.map(index_of).to_numpy() != frame["class_index"].to_numpy())
    if wrong.any():
        _fail_rows(path, frame, wrong, "class_index", "whose class_index disagrees with the wnid",
                   "class_index must be the timm index of wnid")
    sims = frame["similarity"].to_numpy()
    bad_sim = ~((sims >= -1.0001) & (sims <= 1.0001))
    if bad_sim.any():
        _fail_rows(path, frame, bad_sim, "similarity", "with a similarity outside [-1, 1]", "recompute it")


#: The dataset folder's list of its files (``rebuild``'s and the Hub layout's ``manifest.json``).
DATASET_MANIFEST = "manifest.json"


def index_files(path: str | Path) -> list[Path]:
    """The parquet file(s) an index path stands for: the file itself, or a folder's ``*.parquet``, sorted.

    A folder of a dataset folder (``manifest.json`` in it or in its parent, as ``rebuild`` writes
    ``data/<variant>.parquet``) may hold only the files its manifest lists: the manifest is the truth, and a
    file it lacks (left by an earlier rebuild, copied in by hand) would be read as part of the index.
    """
    path = Path(path)
    if not path.is_dir():
        return [path]
    files = sorted(path.glob("*.parquet"))
    for root in (path, path.parent):
        listed = _manifest_files(root / DATASET_MANIFEST)
        if listed is None:
            continue
        for file in files:
            if file.relative_to(root).as_posix() not in listed:
                raise IndexValidationError(str(file), f"not listed in {root / DATASET_MANIFEST}, which says what the "
                                           "folder holds (a variant of an earlier rebuild?): delete or move the file")
        break
    return files


def _manifest_files(manifest: Path) -> set[str] | None:
    """The file names a dataset manifest lists; ``None`` without one (or for a JSON file of another kind)."""
    try:
        data = _io.read_json(manifest, error=DatasetError, fix="fix or delete it (rebuild card writes it again)")
    except FileNotFoundError:
        return None
    files = data.get("files") if isinstance(data, dict) else None
    return set(files) if isinstance(files, dict) else None


def read_index_file(path: str | Path) -> pd.DataFrame:
    """Read and validate one parquet file (or every ``*.parquet`` in a folder, concatenated)."""
    path = Path(path)
    files = index_files(path)
    if not files:
        raise IndexValidationError(str(path), "folder holds no *.parquet files")
    tables = []
    for file in files:
        if not file.exists():
            raise IndexValidationError(str(file), "no such file")
        try:
            tables.append(pq.read_table(file))
        except (pa.ArrowInvalid, OSError) as exc:
            raise IndexValidationError(
                str(file), f"cannot be read as parquet (truncated or corrupt?): {exc}; re-download or regenerate it"
            ) from None
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowInvalid as exc:
        raise IndexValidationError(str(path), f"parquet parts have incompatible schemas: {exc}") from None
    return validate_index_table(table, str(path))


def read_label_keys(path: str | Path) -> tuple[str, ...] | None:
    """The label-pickle keys an index file (or every part of a folder) records, or ``None`` if it records none.

    Kept in the schema metadata rather than a column because they are a class set, not a property of a
    row: they include the classes with no row at all, which the reference still scores on ImageNet-val.
    """
    found: dict[tuple[str, ...] | None, Path] = {}
    for file in index_files(path):
        raw = (pq.read_schema(file).metadata or {}).get(LABEL_KEYS_METADATA)
        found.setdefault(None if raw is None else _parse_label_keys(raw, file), file)
    if len(found) > 1:
        parts = ", ".join(f"{f.name} ({'none' if k is None else len(k)})" for k, f in found.items())
        raise IndexValidationError(str(path), f"its parts record different label keys ({parts}); import the "
                                   "reference parquet as one file, or give every part the same label pickle")
    return next(iter(found), None)


def _parse_label_keys(raw: bytes, file: Path) -> tuple[str, ...]:
    try:
        keys = json.loads(raw)
    except ValueError:
        keys = None
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise IndexValidationError(str(file), f"schema metadata {LABEL_KEYS_METADATA.decode()} is not a JSON list "
                                   "of wnids; re-run 'laionet-bench index import-official' with --labels")
    return tuple(keys)


def write_index(frame: pd.DataFrame, path: str | Path, *, label_keys: Sequence[str] | None = None) -> str:
    """Validate ``frame`` and write it atomically as parquet; returns the file's sha256.

    ``label_keys`` (the reference label pickle's keys, as given) is recorded in the schema metadata
    under :data:`LABEL_KEYS_METADATA`, where :func:`read_label_keys` finds it.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    validated = validate_index_table(table, str(path))
    schema = _schema_for(validated)
    if label_keys is not None:
        schema = schema.with_metadata({LABEL_KEYS_METADATA: json.dumps(list(label_keys)).encode()})
    out = pa.Table.from_pandas(validated, schema=schema, preserve_index=False)
    with _io.atomic_write(path) as handle:
        pq.write_table(out, handle, compression="zstd")
    return _io.sha256_file(path)


def _schema_for(frame: pd.DataFrame) -> pa.Schema:
    extra = [pa.field(n, pa.Table.from_pandas(frame[[n]], preserve_index=False).schema.field(n).type)
             for n in frame.columns if n.startswith(EXTENSION_PREFIX)]
    return pa.schema(list(INDEX_SCHEMA) + extra)
