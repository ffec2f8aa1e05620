"""One rebuild step on one part: the run configuration, the step context, and the step function.

This is what both executors (:mod:`.executors`) and the driver (:mod:`.pipeline`) share, so it sits
below both: the executors call :func:`run_part_step` on their workers, the pipeline reads the same
records (:func:`part_done`, :func:`step_keys`) to build the report and the card.

Work-dir layout (one file pair per part and step; the ``.json`` record is written last and marks the
step done)::

    <work>/match/part-00003.parquet    single-synset rows + wnid
    <work>/match/part-00003.json       {"key": ..., "counts": {...}, "seconds": ...}
    <work>/textsim/...                 + similarity
    <work>/select/...                  rows kept by NSFW + threshold
    <work>/ocr/...                     + ocr_flag, x_recognized_text
    <work>/downloads/                  Hub parts while they are processed
    <work>/schemas/<hash>.arrows       the first Hub part's column schema (resolve_config)
    <work>/.lock                       held by the running rebuild (pipeline.work_lock)

Each record carries a key hashed from the step's parameters and the upstream step's key, so a rerun
skips exactly the (part, step) pairs whose inputs did not change and redoes the rest. Writes are
atomic, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .._io import atomic_write, write_text_atomic
from ..errors import ConfigError
from .parts import (
    ColumnMap,
    Part,
    column_type,
    fetch_part,
    first_part_schema,
    iter_part_batches,
    release_part,
    resolve_columns,
)
from .textsim import default_threshold

__all__ = [
    "DEFAULT_MAX_PUNSAFE",
    "PART_STEPS",
    "RebuildConfig",
    "StepContext",
    "part_done",
    "read_step",
    "resolve_config",
    "run_part_step",
    "step_keys",
]

logger = logging.getLogger(__name__)

#: The steps that run per part, in order (the card step runs once, on the driver: :mod:`.pipeline`).
PART_STEPS = ("match", "textsim", "select", "ocr")
#: Rows with ``punsafe`` at or below this are kept (``--max-punsafe``): the NSFW detector's own decision
#: boundary, so a row stays when the detector calls it safe rather than unsafe. LAION-400M's tag rule
#: (UNLIKELY only) came from another detector, so no value reproduces it; pass a lower one to be stricter.
DEFAULT_MAX_PUNSAFE = 0.5


@dataclass
class RebuildConfig:
    """Everything that defines a rebuild (recorded in the dataset card and manifest)."""

    # input
    parts: list[str]  # files, folders, globs, hf://datasets/<repo>[@rev][/glob]
    columns: ColumnMap | None = None  # a whole map instead of a schema preset (resolve_config fills it in)
    schema: str | None = None  # column preset: laion400m | relaion2b; None: detected from the first part
    column_overrides: dict[str, str | None] = field(default_factory=dict)  # field → column, over the map
    # method
    rules: str = "official"  # lemma rules: official | ours
    encoder: str = "openclip:ViT-B-32/openai"
    threshold: float | None = None  # None: the reference's value for the encoder
    top_per_class: int | None = None  # also write the top-N-per-class variant
    max_punsafe: float | None = None  # keep punsafe <= this (a punsafe column only); None: DEFAULT_MAX_PUNSAFE
    variant: str | None = None  # main variant name (default from encoder + threshold)
    ocr_engine: str = "none"  # none | tesseract[:LANG]
    images: str | None = None  # folder of <row_id>.<ext> images for OCR
    # where
    work_dir: str = "rebuild-work"
    out_dir: str | None = None  # default <work_dir>/dataset
    # running
    device: str | None = None
    batch_size: int = 256  # encoder batch
    batch_rows: int = 1_000_000  # rows per matching batch (bounds memory)
    delete_downloaded: bool = False  # delete Hub parts once matched

    def resolved_threshold(self) -> float:
        threshold = self.threshold if self.threshold is not None else default_threshold(self.encoder)
        if threshold is None:
            raise ConfigError(f"no reference threshold for encoder {self.encoder!r}: pass --threshold")
        return float(threshold)

    def column_map(self) -> ColumnMap:
        """The resolved columns (:func:`resolve_config` fills them in from the schema and the first part)."""
        if self.columns is None:
            raise ConfigError("the rebuild's columns are not resolved yet: pass the config through "
                              "resolve_config(config, first_part) (run_pipeline does)")
        return self.columns

    def punsafe_limit(self) -> float | None:
        """The ``punsafe`` a kept row may have at most, or ``None`` when no probability column is mapped."""
        if self.column_map().punsafe is None:
            return None
        return DEFAULT_MAX_PUNSAFE if self.max_punsafe is None else float(self.max_punsafe)

    def nsfw_rule(self) -> str:
        """The NSFW rule in words, for the card: what a kept row satisfies."""
        columns, limit = self.column_map(), self.punsafe_limit()
        rules = ([f"{columns.nsfw} == 'UNLIKELY'"] if columns.nsfw is not None else []) + (
            [f"{columns.punsafe} <= {limit:g}"] if limit is not None else [])
        return " and ".join(rules) or "none (no NSFW column)"

    @property
    def output_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else Path(self.work_dir) / "dataset"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["threshold"] = self.resolved_threshold()
        return data


def _hash(*items: Any) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()[:16]


def step_keys(part: Part, config: RebuildConfig, *, ocr_name: str | None = None) -> dict[str, str]:
    """The key each step's record must carry to count as done for ``part`` under ``config``."""
    columns, limit = config.column_map(), config.punsafe_limit()
    match = _hash("match", part.source, part.index, config.rules, columns.to_dict())
    textsim = _hash("textsim", match, config.encoder)
    # the punsafe limit only when there is one, so the keys of tag-rule work stay as they were
    select = _hash("select", textsim, config.resolved_threshold(), columns.nsfw is not None,
                   *([("punsafe", limit)] if limit is not None else []))
    ocr = _hash("ocr", select, ocr_name or config.ocr_engine, config.images)
    return {"match": match, "textsim": textsim, "select": select, "ocr": ocr}


def resolve_config(config: RebuildConfig, first: Part) -> RebuildConfig:
    """``config`` with its columns resolved against the first part (:func:`~.parts.resolve_columns`) and its
    NSFW rule checked, before any work: ``--max-punsafe`` needs a probability column and a value in [0, 1]."""
    schema = first_part_schema(first, work_dir=config.work_dir)
    columns, preset = resolve_columns(schema, where=first.source, schema=config.schema, columns=config.columns,
                                      overrides=config.column_overrides)
    if config.max_punsafe is not None:
        if not 0 <= config.max_punsafe <= 1:
            raise ConfigError(f"--max-punsafe {config.max_punsafe:g}: punsafe is a probability; pass a value in [0, 1]")
        if columns.punsafe is None:
            tag = (f"the NSFW field is the {column_type(schema, columns.nsfw)} column {columns.nsfw!r}, a tag"
                   if columns.nsfw is not None else "no NSFW column is mapped")
            raise ConfigError(f"{first.source}: --max-punsafe {config.max_punsafe:g} is a rule on a probability "
                              f"column, but {tag}: pass --punsafe-col NAME (or --schema relaion2b), or drop --max-punsafe")
    return replace(config, columns=columns, schema=preset or config.schema, column_overrides={})


def _paths(config: RebuildConfig, step: str, part: Part) -> tuple[Path, Path]:
    folder = Path(config.work_dir) / step
    return folder / f"{part.name}.parquet", folder / f"{part.name}.json"


def part_done(config: RebuildConfig, step: str, part: Part, key: str) -> dict | None:
    """The record of ``step`` for ``part`` when it is done with ``key``, else ``None``."""
    data_path, record_path = _paths(config, step, part)
    if not (record_path.is_file() and data_path.is_file()):
        return None
    record = json.loads(record_path.read_text("utf-8"))
    return record if record.get("key") == key else None


def read_step(config: RebuildConfig, step: str, part: Part) -> pd.DataFrame:
    """The rows ``step`` wrote for ``part``."""
    return pq.read_table(_paths(config, step, part)[0]).to_pandas()


_STRING_FIELDS = ("sample_id", "url", "caption", "nsfw", "license", "wnid", "x_recognized_text")


def _normalized(rows: pa.Table | pd.DataFrame) -> pa.Table:
    """``rows`` as a table whose string fields are strings: the same types in every part, even all-null columns."""
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
    for i, name in enumerate(table.column_names):
        if name in _STRING_FIELDS and not pa.types.is_string(table.schema.field(name).type):
            table = table.set_column(i, name, table.column(name).cast(pa.string()))
    return table


def _write_rows(config: RebuildConfig, step: str, part: Part, rows: pa.Table | pd.DataFrame | Iterable[pa.Table]) -> None:
    """The step's rows, written atomically; an iterable of tables (at least one) is written as it comes, so a
    step that streams (match) never holds its whole output."""
    tables = [rows] if isinstance(rows, pa.Table | pd.DataFrame) else rows
    with atomic_write(_paths(config, step, part)[0]) as handle:
        writer = None
        for table in map(_normalized, tables):
            writer = writer or pq.ParquetWriter(handle, table.schema, compression="zstd")
            writer.write_table(table)
        if writer is None:
            raise RuntimeError(f"{step} {part.name}: the step produced no table")  # a bug of the step, not bad input
        writer.close()


def _write_record(config: RebuildConfig, step: str, part: Part, record: dict) -> None:
    write_text_atomic(_paths(config, step, part)[1], json.dumps(record, sort_keys=True) + "\n")


@dataclass
class StepContext:
    """Heavy objects a step needs, created on first use (a resumed run may need none of them)."""

    config: RebuildConfig
    encoder: Any = None  # TextEncoder, or a zero-argument factory of one (called where the step runs)
    ocr_engine: Any = None  # OcrEngine | None (None with ocr_engine="none")
    images: Any = None  # ImageSource | None
    _matcher: Any = None
    _ocr_loaded: bool = False

    def __post_init__(self) -> None:
        if self.encoder is not None and not (hasattr(self.encoder, "encode") or callable(self.encoder)):
            raise ConfigError(f"encoder={self.encoder!r}: pass a text encoder (with encode(texts)) or a "
                              "zero-argument factory that returns one")
        #: The OCR engine's name in step keys: an injected engine's own name, else the configured one.
        self.ocr_label = self.ocr_engine.name if self.ocr_engine is not None else self.config.ocr_engine

    def matcher(self):
        if self._matcher is None:
            from .match import LemmaMatcher

            self._matcher = LemmaMatcher(self.config.rules)
        return self._matcher

    def text_encoder(self):
        """The encoder: the one passed in, built by the factory passed in, or loaded by the configured name.

        A factory (a class, or any callable without ``encode``) is called here, in the process that runs
        the step, so a Ray actor builds its own encoder on its own device.
        """
        if self.encoder is None:
            from .textsim import load_encoder

            self.encoder = load_encoder(self.config.encoder, device=self.config.device,
                                        batch_size=self.config.batch_size)
        elif isinstance(self.encoder, type) or not hasattr(self.encoder, "encode"):
            self.encoder = self.encoder()
        return self.encoder

    def ocr(self):
        if self.ocr_engine is None and not self._ocr_loaded:
            from .ocr import FolderImages, load_ocr_engine

            self.ocr_engine = load_ocr_engine(self.config.ocr_engine)
            if self.images is None and self.config.images:
                self.images = FolderImages(self.config.images)
        self._ocr_loaded = True
        return self.ocr_engine, self.images


def _match(part: Part, ctx: StepContext) -> tuple[Iterator[pa.Table], Callable[[], dict]]:
    """The part's single-synset rows, batch by batch as they are matched (written as they come), and its counts
    once they are all read."""
    from .match import MatchCounts

    config, matcher = ctx.config, ctx.matcher()
    total = MatchCounts()

    def kept() -> Iterator[pa.Table]:
        local = fetch_part(part, download_dir=Path(config.work_dir) / "downloads")
        empty = True
        for batch in iter_part_batches(local, part.index, config.column_map(), batch_rows=config.batch_rows):
            rows, counts = matcher.match_table(batch)
            total.add(counts)
            empty = False
            yield rows
        release_part(part, local, delete_downloaded=config.delete_downloaded)
        if empty:
            yield pa.schema([("row_id", pa.int64()), ("caption", pa.string()), ("wnid", pa.string())]).empty_table()

    return kept(), total.to_dict


def _textsim(part: Part, ctx: StepContext) -> tuple[pd.DataFrame, dict]:
    from .textsim import caption_similarities

    rows = read_step(ctx.config, "match", part)
    encoder = ctx.text_encoder()
    rows["similarity"] = caption_similarities(rows["caption"].tolist(), rows["wnid"].tolist(), encoder,
                                              desc=f"textsim {part.name}") \
        if len(rows) else pd.Series([], dtype="float32")
    return rows, {"rows": len(rows), "distinct_captions": int(rows["caption"].nunique(dropna=False))}


def _select(part: Part, ctx: StepContext) -> tuple[pd.DataFrame, dict]:
    from .select import select_rows

    rows = read_step(ctx.config, "textsim", part)
    kept, counts = select_rows(rows, threshold=ctx.config.resolved_threshold(),
                               nsfw_filter=ctx.config.column_map().nsfw is not None,
                               max_punsafe=ctx.config.punsafe_limit())
    return kept, counts.to_dict()


def _ocr(part: Part, ctx: StepContext) -> tuple[pd.DataFrame, dict]:
    from .ocr import flag_rows

    engine, images = ctx.ocr()
    flagged, counts = flag_rows(read_step(ctx.config, "select", part), engine, images, desc=f"ocr {part.name}")
    return flagged, counts.to_dict()


#: step → runner: ``(rows, counts)``, rows a table or frame (or, streamed, an iterable of tables) and counts a dict
#: (or, streamed, a callable that gives it once the rows are consumed).
_RUNNERS: dict[str, Callable[[Part, StepContext], tuple[Any, Any]]] = {
    "match": _match, "textsim": _textsim, "select": _select, "ocr": _ocr}


def run_part_step(step: str, part: Part, ctx: StepContext) -> dict:
    """Run ``step`` on ``part`` unless its record is current; returns the step's record.

    This is the one step function both executors call.
    """
    keys = step_keys(part, ctx.config, ocr_name=ctx.ocr_label)
    done = part_done(ctx.config, step, part, keys[step])
    if done is not None:
        logger.debug("%s %s: done, skipped", step, part.name)
        return done
    upstream = PART_STEPS[PART_STEPS.index(step) - 1] if step != "match" else None
    if upstream and part_done(ctx.config, upstream, part, keys[upstream]) is None:
        raise ConfigError(f"{step} {part.name}: the {upstream} step has not run for this part with these "
                          f"settings: run 'laionet-bench rebuild {upstream}' (or 'all') first")
    start = time.perf_counter()
    rows, counted = _RUNNERS[step](part, ctx)
    _write_rows(ctx.config, step, part, rows)  # a streaming step (match) does its work here
    counts: dict = counted() if callable(counted) else counted
    seconds = time.perf_counter() - start
    record = {"key": keys[step], "step": step, "part": part.name, "source": part.source, "counts": counts,
              "seconds": round(seconds, 3)}
    _write_record(ctx.config, step, part, record)
    n = counts.get("rows", 0)
    logger.info("%s %s: %s rows in %.2f s (%s rows/s)", step, part.name, f"{n:,}", seconds,
                f"{n / seconds:,.0f}" if seconds > 0 else "-")
    return record
