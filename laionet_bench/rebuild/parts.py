"""LAION metadata parts: where they come from, how their columns map, and their global row ids.

A *part* is one parquet file of caption metadata (LAION-400M ships 32). Parts come from local paths,
globs, folders, or a Hub dataset (``hf://datasets/<owner>/<name>[@<revision>][/<glob>]``), in which case
each part is fetched on its own through ``huggingface_hub`` when it is processed and may be deleted
afterwards. Rows are read in record batches, so memory is bounded by the batch, not the part.

Global row id = part index · 10^8 + row position in the part, as the reference does. The part index
is the number in a ``part-NNNNN`` file name when every part has one (LAION's own naming, and Re-LAION's
``part-NNNNN-<uuid>-c000.snappy.parquet``), else the position in sorted order.

Which column holds which field is a *schema preset* (:data:`SCHEMAS`: ``laion400m``, ``relaion2b``), named
or detected from the first part's columns, with single columns overridden on top (:func:`resolve_columns`).
LAION-400M was withdrawn; what can be had today is Re-LAION-5B's metadata, whose lower-case columns and
float ``punsafe`` would otherwise need seven flags, and whose ``punsafe`` read as a tag would drop every row.
"""

from __future__ import annotations

import difflib
import glob
import hashlib
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .._io import atomic_write
from ..errors import ConfigError, DatasetError, UnknownNameError
from ..hub import download as hub

__all__ = [
    "HUB_PREFIX",
    "PART_STRIDE",
    "SCHEMAS",
    "ColumnMap",
    "Part",
    "SchemaPreset",
    "check_part_columns",
    "column_type",
    "detect_schema",
    "fetch_part",
    "first_part_schema",
    "get_schema",
    "iter_part_batches",
    "list_schemas",
    "register_schema",
    "release_part",
    "resolve_columns",
    "resolve_parts",
]

logger = logging.getLogger(__name__)

#: Row ids of part ``p`` are ``p * PART_STRIDE + row``.
PART_STRIDE = 10**8
HUB_PREFIX = "hf://datasets/"
_PART_NUMBER = re.compile(r"part-(\d+)")


@dataclass(frozen=True)
class ColumnMap:
    """Names of the source columns holding each field (LAION-400M's names by default).

    ``text`` and ``url`` are required. The others may be ``None`` for datasets without them: the
    field is then null. Two NSFW fields, because LAION's releases differ in kind: ``nsfw`` is a *tag*
    column (LAION-400M's ``NSFW``: UNLIKELY / UNSURE / NSFW; rows tagged UNLIKELY are kept), ``punsafe``
    a *probability* column (Re-LAION-5B's ``punsafe``; rows at or below ``max_punsafe`` are kept). Each
    rule runs on the column mapped to it, and :func:`check_part_columns` refuses a column of the other
    kind; ``None`` for both turns the NSFW filter off (there is nothing to filter on).
    """

    text: str = "TEXT"
    url: str = "URL"
    nsfw: str | None = "NSFW"
    sample_id: str | None = "SAMPLE_ID"
    width: str | None = "WIDTH"
    height: str | None = "HEIGHT"
    license: str | None = "LICENSE"
    punsafe: str | None = None

    def to_dict(self) -> dict:
        """The mapping as step keys hash it. ``punsafe`` is left out while unmapped, so the keys of work
        done before it existed (and of every LAION-400M run) stay the same and nothing is redone."""
        data = asdict(self)
        if data["punsafe"] is None:
            del data["punsafe"]
        return data

    def fields(self) -> dict[str, str | None]:
        """Our field name → source column name.

        The probability is the index's extension column ``x_punsafe``, so it travels to the index as is;
        it is left out while unmapped, so LAION-400M's index gains no all-null column.
        """
        fields = {"caption": self.text, "url": self.url, "nsfw": self.nsfw, "sample_id": self.sample_id,
                  "width": self.width, "height": self.height, "license": self.license}
        return fields | ({PUNSAFE_FIELD: self.punsafe} if self.punsafe is not None else {})


#: The table field of the punsafe probability (an index extension column).
PUNSAFE_FIELD = "x_punsafe"
#: The CLI flag of each ColumnMap attribute, for messages.
COLUMN_FLAGS = {"text": "--text-col", "url": "--url-col", "nsfw": "--nsfw-col", "sample_id": "--sample-id-col",
                "width": "--width-col", "height": "--height-col", "license": "--license-col",
                "punsafe": "--punsafe-col"}


@dataclass(frozen=True)
class SchemaPreset:
    """A LAION release's column names, mapped to ours (``--schema NAME``)."""

    name: str
    columns: ColumnMap
    doc: str  # which release, where to get it


#: Schema presets by name, in detection order (see :func:`detect_schema`).
SCHEMAS: dict[str, SchemaPreset] = {}


def register_schema(preset: SchemaPreset) -> SchemaPreset:
    """Add a schema preset (``--schema``); a later one with the same name replaces it."""
    SCHEMAS[preset.name] = preset
    return preset


def list_schemas() -> list[str]:
    return list(SCHEMAS)


def get_schema(name: str) -> SchemaPreset:
    """The preset ``name``; an unknown name gets suggestions."""
    if name not in SCHEMAS:
        raise UnknownNameError("--schema", name, difflib.get_close_matches(name, SCHEMAS) or list(SCHEMAS))
    return SCHEMAS[name]


register_schema(SchemaPreset("laion400m", ColumnMap(), "LAION-400M's parts (laion/laion400m, withdrawn): upper-case "
                             "columns, the NSFW tag"))
register_schema(SchemaPreset(
    "relaion2b",
    ColumnMap(text="caption", url="url", nsfw=None, sample_id="key", width="original_width",
              height="original_height", license=None, punsafe="punsafe"),
    "Re-LAION-5B's English parts (laion/relaion2B-en-research[-safe]): lower-case columns, part-NNNNN-<uuid>-"
    "c000.snappy.parquet, the punsafe probability instead of a tag",
))


def _with_overrides(columns: ColumnMap, overrides: Mapping[str, str | None]) -> ColumnMap:
    unknown = sorted(set(overrides) - set(COLUMN_FLAGS))
    if unknown:
        raise ConfigError(f"column override(s) {unknown}: the fields are {sorted(COLUMN_FLAGS)}")
    return replace(columns, **overrides)  # type: ignore[arg-type]  # None clears an optional field; mypy types **kwargs by the first field


def detect_schema(names: Sequence[str], overrides: Mapping[str, str | None] | None = None) -> SchemaPreset | None:
    """The first preset whose columns (after ``overrides``) are all in ``names``; ``None`` if none is."""
    present = set(names)
    for preset in SCHEMAS.values():
        mapped = _with_overrides(preset.columns, overrides or {}).fields().values()
        if all(column is None or column in present for column in mapped):
            return preset
    return None


@dataclass(frozen=True)
class Part:
    """One metadata part: a local file, or a file of a Hub dataset repo fetched when needed."""

    index: int  # part number p in row ids p * 10**8 + row
    name: str  # stable label used for work-dir files, e.g. "part-00003"
    path: str | None = None  # local file
    repo_id: str | None = None  # Hub dataset repo
    filename: str | None = None  # path inside the repo
    revision: str | None = None

    @property
    def source(self) -> str:
        if self.path is not None:
            return self.path
        return f"{HUB_PREFIX}{self.repo_id}{'@' + self.revision if self.revision else ''}/{self.filename}"


def _expand_local(spec: str) -> list[str]:
    if glob.has_magic(spec):
        found = sorted(str(Path(p).resolve()) for p in glob.glob(spec, recursive=True))
        if not found:
            raise DatasetError(f"no file matches {spec!r}: check the --parts pattern")
        return found
    path = Path(spec)
    if path.is_dir():
        found = sorted(str(p.resolve()) for p in path.glob("*.parquet"))
        if not found:
            raise DatasetError(f"folder {spec} holds no *.parquet part")
        return found
    if not path.is_file():
        raise DatasetError(f"part {spec} does not exist: pass parquet files, folders, globs or {HUB_PREFIX}<repo>")
    return [str(path.resolve())]


def _expand_hub(spec: str) -> list[tuple[str, str, str | None]]:
    """``hf://datasets/owner/name[@rev][/glob]`` → [(repo_id, filename, revision)]."""
    rest = spec[len(HUB_PREFIX):]
    pieces = rest.split("/", 2)
    if len(pieces) < 2 or not pieces[0] or not pieces[1]:
        raise DatasetError(f"{spec!r}: expected {HUB_PREFIX}<owner>/<name>[@<revision>][/<glob>]")
    name, _, revision = pieces[1].partition("@")
    repo_id = f"{pieces[0]}/{name}"
    pattern = pieces[2] if len(pieces) == 3 and pieces[2] else "*.parquet"
    files = hub.list_dataset_files(repo_id, revision=revision or None, pattern=pattern)
    if not files:
        raise DatasetError(f"dataset repo {repo_id!r} has no file matching {pattern!r}")
    return [(repo_id, f, revision or None) for f in files]


def resolve_parts(specs: Sequence[str | Path]) -> list[Part]:
    """Expand part specs (files, folders, globs, ``hf://datasets/...``) into numbered :class:`Part` s."""
    entries: list[dict] = []
    for spec in specs:
        text = str(spec)
        if text.startswith(HUB_PREFIX):
            entries += [dict(repo_id=r, filename=f, revision=v) for r, f, v in _expand_hub(text)]
        else:
            entries += [dict(path=p) for p in _expand_local(text)]
    if not entries:
        raise DatasetError("no parts given: pass --parts with parquet files, folders, globs or hf://datasets/<repo>")
    basenames = [Path(e.get("path") or e["filename"]).name for e in entries]
    numbers = [m for m in (_PART_NUMBER.search(b) for b in basenames) if m is not None]
    if len(numbers) == len(basenames) and len({int(m.group(1)) for m in numbers}) == len(numbers):
        indices = [int(m.group(1)) for m in numbers]
    else:
        indices = list(range(len(entries)))
    sources = [e.get("path") or e["filename"] for e in entries]
    if len(set(sources)) != len(sources):
        raise DatasetError("the same part is listed twice: check overlapping --parts patterns")
    parts = [Part(index=i, name=f"part-{i:05d}", **e) for i, e in zip(indices, entries, strict=True)]
    return sorted(parts, key=lambda p: p.index)


def fetch_part(part: Part, *, download_dir: str | Path) -> Path:
    """The local file of ``part``, downloading it from the Hub into ``download_dir`` when needed."""
    if part.path is not None:
        return Path(part.path)
    if part.repo_id is None or part.filename is None:
        raise DatasetError(f"{part.name}: neither a local path nor a Hub file")
    logger.info("fetching %s from %s", part.filename, part.repo_id)
    return hub.download_dataset_file(part.repo_id, part.filename, revision=part.revision, local_dir=download_dir)


def release_part(part: Part, local: Path, *, delete_downloaded: bool) -> None:
    """Delete a downloaded Hub part after use when asked (local input files are never touched)."""
    if delete_downloaded and part.path is None:
        local.unlink(missing_ok=True)


def _typed_column(table: pa.Table, source: str | None, field: str, n: int) -> pa.Array:
    kind = {"width": pa.int32(), "height": pa.int32(), PUNSAFE_FIELD: pa.float64()}.get(field, pa.string())
    if source is None:
        return pa.nulls(n, kind)
    column = table.column(source)
    if field == "sample_id" and (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        column = pc.cast(column, pa.int64(), safe=False)  # LAION stores SAMPLE_ID as a number
    if kind == pa.int32() and not pa.types.is_integer(column.type):
        column = pc.cast(pc.cast(column, pa.float64(), safe=False), pa.int32(), safe=False)
    return pc.cast(column, kind, safe=False).combine_chunks()


def _is_tag(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)


def _is_probability(kind: pa.DataType) -> bool:
    return pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_null(kind)


def column_type(schema: pa.Schema, name: str) -> str:
    """The type of column ``name`` as messages name it: ``string`` for every string encoding (pandas writes
    ``large_string``, Spark dictionaries), else arrow's name (``double``, ``int64``)."""
    kind = schema.field(name).type
    return "string" if _is_tag(kind) and not pa.types.is_null(kind) else str(kind)


def check_part_columns(where: str | Path, schema: pa.Schema, columns: ColumnMap) -> None:
    """Refuse, in one line naming the column, a mapped column ``schema`` lacks, or an NSFW column of the other
    kind than its rule reads: a tag rule on a number compares it with ``"UNLIKELY"`` and drops every row, a
    probability rule on a tag cannot be computed. Run on the first part before any work, then on every part."""
    presets = ", ".join(SCHEMAS)
    for field, source in asdict(columns).items():
        if source is not None and source not in schema.names:
            optional = "" if field in ("text", "url") else f", or {COLUMN_FLAGS[field]} none if the data has no such field"
            raise DatasetError(
                f"{where}: no column {source!r} for the {field} field (columns: {schema.names}); "
                f"pass {COLUMN_FLAGS[field]} NAME{optional}, or --schema ({presets})"
            )
    if columns.nsfw is not None and not _is_tag(schema.field(columns.nsfw).type):
        raise DatasetError(
            f"{where}: --nsfw-col {columns.nsfw!r} is a {column_type(schema, columns.nsfw)} column, not an NSFW tag (UNLIKELY / UNSURE / NSFW): "
            f"the tag rule would drop every row; for a probability of being unsafe pass --nsfw-col none "
            f"--punsafe-col {columns.nsfw} --max-punsafe P (or --schema relaion2b)"
        )
    if columns.punsafe is not None and not _is_probability(schema.field(columns.punsafe).type):
        raise DatasetError(
            f"{where}: --punsafe-col {columns.punsafe!r} is a {column_type(schema, columns.punsafe)} column, not a "
            f"probability: --max-punsafe needs numbers in [0, 1]; for an NSFW tag column pass --nsfw-col {columns.punsafe} and no "
            "--punsafe-col / --max-punsafe (or --schema laion400m)"
        )


def first_part_schema(part: Part, *, work_dir: str | Path) -> pa.Schema:
    """The arrow schema of ``part`` (the first one), read from its parquet footer.

    A Hub part is fetched into ``<work_dir>/downloads`` (where its match step finds it), and its schema is
    kept in ``<work_dir>/schemas/`` under a hash of its source (repo, revision, file): a resumed run whose
    parts are done (and deleted) fetches nothing to know its columns again.
    """
    cached = Path(work_dir) / "schemas" / f"{hashlib.sha256(part.source.encode()).hexdigest()[:16]}.arrows"
    if part.path is None and cached.is_file():
        with pa.ipc.open_stream(cached.read_bytes()) as reader:
            return reader.schema
    local = fetch_part(part, download_dir=Path(work_dir) / "downloads")
    try:
        schema = pq.read_schema(local)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DatasetError(f"{local}: cannot be read as parquet ({exc}); re-download the part") from None
    if part.path is None:
        with atomic_write(cached) as handle:
            handle.write(_schema_bytes(schema))
    return schema


def _schema_bytes(schema: pa.Schema) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema):
        pass
    return sink.getvalue().to_pybytes()


def resolve_columns(
    first: pa.Schema,
    *,
    where: str,
    schema: str | None = None,
    columns: ColumnMap | None = None,
    overrides: Mapping[str, str | None] | None = None,
) -> tuple[ColumnMap, str | None]:
    """The column map of a rebuild and the preset it came from, checked against the first part's schema.

    Precedence: ``columns`` (a whole map) > the preset ``schema`` > the preset whose columns the first part
    has (logged in one line, so a wrong guess is seen) > ``laion400m``; ``overrides`` (field → column,
    ``None`` for a field the data lacks: the CLI's ``--text-col`` ...) apply on top. The preset's name is
    ``None`` when ``columns`` were given.
    """
    overrides = dict(overrides or {})
    if columns is not None:
        base, name = columns, None
    elif schema is not None:
        base, name = get_schema(schema).columns, schema
    else:
        detected = detect_schema(first.names, overrides)
        name = detected.name if detected else "laion400m"
        base = SCHEMAS[name].columns
        if detected:
            logger.info("%s: columns of the %s schema (%s); pass --schema to choose another", where, name,
                        detected.doc.partition(":")[0])
    chosen = _with_overrides(base, overrides)
    check_part_columns(where, first, chosen)
    return chosen, name


def iter_part_batches(
    path: str | Path, part_index: int, columns: ColumnMap, *, batch_rows: int = 1_000_000
) -> Iterator[pa.Table]:
    """Read a part in record batches, as tables with our field names plus ``row_id``."""
    path = Path(path)
    try:
        # streamed column reads, nothing pre-buffered: pyarrow otherwise keeps the row groups read so far
        reader = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DatasetError(f"{path}: cannot be read as parquet ({exc}); re-download the part") from None
    check_part_columns(path, reader.schema_arrow, columns)
    if reader.metadata.num_rows > PART_STRIDE:
        raise DatasetError(f"{path}: {reader.metadata.num_rows} rows exceed the {PART_STRIDE} row ids of a part")
    wanted = sorted({c for c in columns.fields().values() if c is not None})
    offset = part_index * PART_STRIDE
    for batch in reader.iter_batches(batch_size=batch_rows, columns=wanted):
        table = pa.Table.from_batches([batch])
        n = table.num_rows
        arrays = {"row_id": pa.array(range(offset, offset + n), pa.int64())}
        arrays |= {f: _typed_column(table, s, f, n) for f, s in columns.fields().items()}
        offset += n
        yield pa.table(arrays)
        del table, batch, arrays
        pa.default_memory_pool().release_unused()  # the batch's buffers back to the OS, not kept by the pool

