"""The LAIONet index: its schema, its variants, validation, and loading from the Hub or local parquet.

An index is a table of LAION rows, each labelled with exactly one ImageNet-1k wnid (schema in
:data:`INDEX_COLUMNS`, documented in ``docs/index.md``). Images are not part of it: they are fetched
by ``laionet-bench download`` and identified by ``row_id``.

Class weights for LAION-weighted accuracy are counted over *all* rows (before the OCR-flag drop);
the OCR drop happens at evaluation time (:meth:`LaionetIndex.evaluation_rows`), as in the reference.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import _io
from ..catalog import load_catalog
from ..errors import IndexValidationError, UnknownNameError

__all__ = [
    "INDEX_COLUMNS",
    "EXTENSION_PREFIX",
    "Column",
    "LaionetIndex",
    "Variant",
    "get_variant",
    "list_variants",
    "load_index",
    "read_index_file",
    "validate_index_table",
    "write_index",
]

#: Extra columns are allowed only under this prefix (e.g. ``x_recognized_text``).
EXTENSION_PREFIX = "x_"


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


@dataclass(frozen=True)
class Variant:
    """A published LAIONet variant (package data ``_data/variants.json``)."""

    name: str
    encoder: str
    threshold: float
    top_per_class: int | None
    reference_rows: int | None  # rows in the reference's published parquet
    reference_classes: int | None
    description: str

    @property
    def filename(self) -> str:
        """Path of this variant's parquet inside a Hub dataset repo (see :func:`load_index`)."""
        return f"data/{self.name}.parquet"


@lru_cache(maxsize=1)
def _variant_table() -> tuple[str, dict[str, Variant]]:
    raw = json.loads(resources.files("laionet_bench").joinpath("_data/variants.json").read_text("utf-8"))
    return raw["default"], {name: Variant(name=name, **cfg) for name, cfg in raw["variants"].items()}


def list_variants() -> list[str]:
    """Names of the known variants, the default first."""
    default, table = _variant_table()
    return [default] + sorted(set(table) - {default})


def get_variant(name: str | None = None) -> Variant:
    """The variant called ``name`` (default: ``clip_0.82``); unknown names get suggestions."""
    default, table = _variant_table()
    name = name or default
    if name not in table:
        raise UnknownNameError("LAIONet variant", name, difflib.get_close_matches(name, table))
    return table[name]


@dataclass
class LaionetIndex:
    """A validated index table plus where it came from.

    ``source`` is a local path or ``hf://datasets/<repo>``; ``revision`` the resolved Hub commit
    (``None`` for local files); ``sha256`` the content hash of the parquet file(s), which identifies
    the index in run keys.
    """

    table: pd.DataFrame
    source: str
    variant: str | None = None
    revision: str | None = None
    sha256: str | None = None
    files: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.table)

    def class_counts(self) -> pd.Series:
        """Rows per wnid over the whole index (before the OCR drop), catalogue order."""
        present = set(self.table["wnid"])
        order = [w for w in load_catalog().wnids if w in present]
        return self.table["wnid"].value_counts().reindex(order)

    def class_weights(self) -> pd.Series:
        """Each class's share of index rows, counted before the OCR drop (SPEC §4)."""
        counts = self.class_counts()
        return counts / counts.sum()

    def evaluation_rows(self) -> pd.DataFrame:
        """The rows evaluated: OCR-flagged rows dropped."""
        return self.table[~self.table["ocr_flag"].to_numpy(dtype=bool)]

    def provenance(self) -> dict:
        """Plain-dict identity of this index for result records."""
        return {
            "source": self.source,
            "variant": self.variant,
            "revision": self.revision,
            "sha256": self.sha256,
            "rows": len(self.table),
        }


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


def _fail_rows(path: str, frame: pd.DataFrame, mask, field_name: str, what: str, fix: str):
    count = int(np.count_nonzero(mask))
    ids = _row_ids(frame, mask)
    more = ", ..." if count > len(ids) else ""
    shown = ", ".join(str(i) for i in ids)
    raise IndexValidationError(
        path, f"{count} row(s) {what} (row_id {shown}{more}): {fix}", field=field_name, row_ids=ids
    )


def validate_index_table(table: pa.Table, path: str = "<table>") -> pd.DataFrame:
    """Check ``table`` against the schema and return it as a typed DataFrame.

    Raises :class:`IndexValidationError` naming the file, the column and the offending row ids for:
    an empty table, missing or unknown columns, wrong dtypes, nulls where none are allowed (NaN
    captions included), duplicate row ids, several wnids in one row, wnids outside ImageNet-1k,
    class indices that disagree with the wnid, similarities outside [-1, 1].
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


def _check_rows(frame: pd.DataFrame, path: str) -> None:
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


def read_index_file(path: str | Path) -> pd.DataFrame:
    """Read and validate one parquet file (or every ``*.parquet`` in a folder, concatenated)."""
    path = Path(path)
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
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


def _files_sha256(files: list[Path]) -> str:
    if len(files) == 1:
        return _io.sha256_file(files[0])
    joined = "\n".join(f"{f.name}:{_io.sha256_file(f)}" for f in files)
    return hashlib.sha256(joined.encode()).hexdigest()


def load_index(
    spec: str | Path | None = None,
    *,
    repo_id: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> LaionetIndex:
    """Load a LAIONet index.

    Args:
        spec: ``laionet`` or ``laionet:<variant>`` (from the Hub), or a local parquet file / folder
            (``file://`` prefix optional). ``None`` means ``laionet``.
        repo_id: Hub dataset repo (default: ``constants.HUB_REPO``).
        revision: branch, tag or commit to pin; the resolved commit is recorded.
        cache_dir: huggingface_hub cache directory (default: the HF cache).
        local_files_only: never touch the network (``HF_HUB_OFFLINE=1`` has the same effect).
    """
    kind, value = parse_index_spec(spec)
    if kind == "file":
        path = Path(value)
        files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
        frame = read_index_file(path)
        variants = frame["variant"].unique()
        return LaionetIndex(
            table=frame,
            source=str(path.resolve()),
            variant=str(variants[0]) if len(variants) == 1 else None,
            sha256=_files_sha256(files),
            files=[str(f) for f in files],
        )
    from ..hub import download as hub

    # a rebuilt repo may publish variants of its own (e.g. minilm_0.45): any name maps to data/<name>.parquet
    variant = value or list_variants()[0]
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", variant):
        raise UnknownNameError("LAIONet variant", variant, difflib.get_close_matches(variant, list_variants()))
    download = hub.download_index_file(
        f"data/{variant}.parquet", repo_id=repo_id, revision=revision, cache_dir=cache_dir,
        local_files_only=local_files_only,
    )
    frame = read_index_file(download.path)
    return LaionetIndex(
        table=frame,
        source=f"hf://datasets/{download.repo_id}",
        variant=variant,
        revision=download.commit,
        sha256=download.sha256,
        files=[str(download.path)],
    )


def parse_index_spec(spec: str | Path | None) -> tuple[str, str | None]:
    """Split an index spec into ``("hub", variant)`` or ``("file", path)``."""
    if spec is None:
        return "hub", None
    text = str(spec)
    if text.startswith("file://"):
        return "file", text[len("file://"):]
    if text == "laionet" or text.startswith("laionet:"):
        return "hub", text.partition(":")[2] or None
    if isinstance(spec, Path) or text.endswith(".parquet") or Path(text).exists() or "/" in text:
        return "file", text
    raise UnknownNameError(
        "index", text, ["laionet", *(f"laionet:{v}" for v in list_variants())] if "laion" in text else None
    )


def write_index(frame: pd.DataFrame, path: str | Path) -> str:
    """Validate ``frame`` and write it atomically as parquet; returns the file's sha256."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    validated = validate_index_table(table, str(path))
    out = pa.Table.from_pandas(validated, schema=_schema_for(validated), preserve_index=False)
    with _io.atomic_write(path) as handle:
        pq.write_table(out, handle, compression="zstd")
    return _io.sha256_file(path)


def _schema_for(frame: pd.DataFrame) -> pa.Schema:
    extra = [pa.field(n, pa.Table.from_pandas(frame[[n]], preserve_index=False).schema.field(n).type)
             for n in frame.columns if n.startswith(EXTENSION_PREFIX)]
    return pa.schema(list(INDEX_SCHEMA) + extra)
