"""LAION metadata parts: where they come from, how their columns map, and their global row ids.

A *part* is one parquet file of caption metadata (LAION-400M ships 32). Parts come from local paths,
globs, folders, or a Hub dataset (``hf://datasets/<owner>/<name>[@<revision>][/<glob>]``), in which case
each part is fetched on its own through ``huggingface_hub`` when it is processed and may be deleted
afterwards. Rows are read in record batches, so memory is bounded by the batch, not the part.

Global row id = part index · 10^8 + row position in the part, as the reference does. The part index
is the number in a ``part-NNNNN`` file name when every part has one (LAION's own naming), else the
position in sorted order.
"""

from __future__ import annotations

import glob
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import DatasetError
from ..hub import download as hub

__all__ = [
    "HUB_PREFIX",
    "PART_STRIDE",
    "ColumnMap",
    "Part",
    "fetch_part",
    "iter_part_batches",
    "release_part",
    "resolve_parts",
]

logger = logging.getLogger(__name__)

#: Row ids of part ``p`` are ``p * PART_STRIDE + row``.
PART_STRIDE = 10**8
HUB_PREFIX = "hf://datasets/"
_PART_NUMBER = re.compile(r"part-(\d+)")


@dataclass(frozen=True)
class ColumnMap:
    """Names of the source columns holding each field (LAION's names by default).

    ``text`` and ``url`` are required. The others may be ``None`` for datasets without them: the
    field is then null. ``nsfw=None`` also turns the NSFW filter off (there is nothing to filter on).
    """

    text: str = "TEXT"
    url: str = "URL"
    nsfw: str | None = "NSFW"
    sample_id: str | None = "SAMPLE_ID"
    width: str | None = "WIDTH"
    height: str | None = "HEIGHT"
    license: str | None = "LICENSE"

    def to_dict(self) -> dict:
        return asdict(self)

    def fields(self) -> dict[str, str | None]:
        """Our field name → source column name."""
        return {"caption": self.text, "url": self.url, "nsfw": self.nsfw, "sample_id": self.sample_id,
                "width": self.width, "height": self.height, "license": self.license}


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
    kind = {"width": pa.int32(), "height": pa.int32()}.get(field, pa.string())
    if source is None:
        return pa.nulls(n, kind)
    column = table.column(source)
    if field == "sample_id" and (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        column = pc.cast(column, pa.int64(), safe=False)  # LAION stores SAMPLE_ID as a number
    if kind == pa.int32() and not pa.types.is_integer(column.type):
        column = pc.cast(pc.cast(column, pa.float64(), safe=False), pa.int32(), safe=False)
    return pc.cast(column, kind, safe=False).combine_chunks()


def _check_columns(path: Path, schema: pa.Schema, columns: ColumnMap) -> None:
    flags = {"caption": "--text-col", "url": "--url-col", "nsfw": "--nsfw-col", "sample_id": "--sample-id-col",
             "width": "--width-col", "height": "--height-col", "license": "--license-col"}
    for field, source in columns.fields().items():
        if source is not None and source not in schema.names:
            optional = "" if field in ("caption", "url") else f", or {flags[field]} none if the data has no such field"
            raise DatasetError(
                f"{path}: no column {source!r} for the {field} field (columns: {schema.names}); "
                f"pass {flags[field]} NAME{optional}"
            )


def iter_part_batches(
    path: str | Path, part_index: int, columns: ColumnMap, *, batch_rows: int = 1_000_000
) -> Iterator[pa.Table]:
    """Read a part in record batches, as tables with our field names plus ``row_id``."""
    path = Path(path)
    try:
        reader = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DatasetError(f"{path}: cannot be read as parquet ({exc}); re-download the part") from None
    _check_columns(path, reader.schema_arrow, columns)
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

