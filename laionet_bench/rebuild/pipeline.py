"""The rebuild pipeline: every part through the per-part steps, then the report and the final index + card.

:func:`run_pipeline` resolves the parts, hands them to an executor (:mod:`.executors`, local or Ray),
which runs :func:`~laionet_bench.rebuild.steps.run_part_step` on each (part, step), then sums the
records into a :class:`RebuildReport` and writes the dataset folder. The work-dir layout and how a
rerun resumes are described in :mod:`.steps`. A run holds the work dir's lock (``<work>/.lock``): two
rebuilds writing the same per-part files would overwrite each other's records.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ConfigError, StoreError
from .parts import HUB_PREFIX, Part
from .steps import PART_STEPS, RebuildConfig, StepContext, part_done, read_step, resolve_config, step_keys

__all__ = [
    "DROP_REASONS",
    "STEPS",
    "RebuildReport",
    "build_card",
    "collect_report",
    "run_pipeline",
]

logger = logging.getLogger(__name__)

STEPS = (*PART_STEPS, "card")

#: Why rows leave the funnel: report field → (reason, what to check when it takes every row). The card, the
#: manifest and the error of a rebuild that keeps nothing all read it, so each names the real cause.
DROP_REASONS: dict[str, tuple[str, str]] = {
    "no_caption": ("no caption", "check --text-col, or --schema"),
    "no_lemma": ("no class lemma in the caption", "check --text-col and --rules"),
    "multi_synset": ("lemmas of several classes", "--rules ours drops a lemma inside a longer one"),
    "nsfw_dropped": ("NSFW rule", "the rule kept {rule} only: check --nsfw-col / --punsafe-col / --max-punsafe, "
                     "or --schema"),
    "below_threshold": ("similarity at or below the threshold", "lower --threshold (now {threshold:g})"),
    "bad_url": ("URL not http(s)://host", "check --url-col"),
    "ocr_flagged": ("OCR flag (kept, excluded at evaluation)", "see --ocr-engine"),
}


@dataclass
class RebuildReport:
    """The funnel of a rebuild, summed over parts, plus what the card step wrote."""

    parts: int = 0
    rows: int = 0  # captions read
    no_caption: int = 0  # missing or blank caption
    no_lemma: int = 0  # a caption without any class lemma
    matched: int = 0  # with at least one lemma
    multi_synset: int = 0  # dropped: lemmas of several wnids
    single_synset: int = 0
    nsfw_dropped: int = 0
    below_threshold: int = 0
    bad_url: int = 0  # dropped: a URL that is not http(s)://host
    kept: int = 0  # passed the NSFW rule, similarity > threshold, an http(s) URL
    ocr_flagged: int = 0
    no_image: int = 0  # OCR could not see the image
    class_counts: dict[str, int] = field(default_factory=dict)  # main variant, before the OCR drop
    variants: dict[str, int] = field(default_factory=dict)  # variant → rows written
    out_dir: str | None = None

    def funnel(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("rows", "no_caption", "no_lemma", "matched", "multi_synset",
                                              "single_synset", "nsfw_dropped", "below_threshold", "bad_url", "kept",
                                              "ocr_flagged", "no_image")}

    def dropped(self) -> dict[str, int]:
        """Rows that left the funnel, per reason (:data:`DROP_REASONS`), in pipeline order."""
        return {reason: getattr(self, name) for name, (reason, _) in DROP_REASONS.items()}

    def nothing_kept(self, config: RebuildConfig) -> str:
        """Why no row survived, in one line: every reason's count, and what to check for the largest."""
        if not self.rows:
            return "the parts hold no row: check --parts"
        counts = {name: getattr(self, name) for name in DROP_REASONS}
        worst = max(counts, key=lambda name: counts[name])
        reason, fix = DROP_REASONS[worst]
        spelled = ", ".join(f"{DROP_REASONS[name][0]} {n:,}" for name, n in counts.items() if n)
        return (f"of {self.rows:,} rows read, dropped: {spelled}; most went at '{reason}': "
                + fix.format(rule=config.nsfw_rule(), threshold=config.resolved_threshold()))

    def to_dict(self) -> dict:
        return asdict(self)


def collect_report(parts: list[Part], config: RebuildConfig, *, ocr_name: str | None = None) -> RebuildReport:
    """Sum the records of every step that is done for ``parts`` under ``config``."""
    report = RebuildReport(parts=len(parts))
    for part in parts:
        keys = step_keys(part, config, ocr_name=ocr_name)
        if (match := part_done(config, "match", part, keys["match"])) is not None:
            c = match["counts"]
            report.rows += c["rows"]
            report.no_caption += c.get("no_caption", 0)  # records written before 0.2 lack it
            report.no_lemma += c["rows"] - c["matched"] - c.get("no_caption", 0)
            report.matched += c["matched"]
            report.multi_synset += c["multi_synset"]
            report.single_synset += c["kept"]
        if (select := part_done(config, "select", part, keys["select"])) is not None:
            report.nsfw_dropped += select["counts"]["nsfw_dropped"]
            report.below_threshold += select["counts"]["below_threshold"]
            report.bad_url += select["counts"].get("bad_url", 0)  # select records older than the bad_url count lack it
            report.kept += select["counts"]["kept"]
        if (ocr := part_done(config, "ocr", part, keys["ocr"])) is not None:
            report.ocr_flagged += ocr["counts"]["flagged"]
            report.no_image += ocr["counts"]["no_image"]
    return report


def build_card(parts: list[Part], config: RebuildConfig, report: RebuildReport, *, ocr_name: str | None = None) -> None:
    """Concatenate every part's OCR output and write the index variants, card and manifest."""
    from .card import index_frame, variant_name, write_dataset
    from .select import top_per_class

    missing = [p.name for p in parts
               if part_done(config, "ocr", p, step_keys(p, config, ocr_name=ocr_name)["ocr"]) is None]
    if missing:
        raise ConfigError(f"card: parts {missing[:5]} have no current ocr output: run 'laionet-bench rebuild ocr' "
                          "(or 'all') first")
    rows = pd.concat([read_step(config, "ocr", p) for p in parts], ignore_index=True)
    if rows.empty:
        raise ConfigError(f"card: no row survived, so there is no index to write: {report.nothing_kept(config)}")
    threshold = config.resolved_threshold()
    main = config.variant or variant_name(config.encoder, threshold)
    variants = {main: index_frame(rows, variant=main, encoder=config.encoder)}
    if config.top_per_class:
        top = variant_name(config.encoder, threshold, top_per_class=config.top_per_class)
        if config.variant:
            top = f"{config.variant}_top{config.top_per_class}"
        variants[top] = index_frame(top_per_class(rows, config.top_per_class), variant=top, encoder=config.encoder)
    report.class_counts = {str(k): int(v) for k, v in variants[main]["wnid"].value_counts().sort_index().items()}
    report.variants = {name: len(frame) for name, frame in variants.items()}
    report.out_dir = str(config.output_dir)
    write_dataset(config.output_dir, variants, parameters=_card_parameters(config, ocr_name), funnel=report.funnel(),
                  dropped=report.dropped())


def _card_parameters(config: RebuildConfig, ocr_name: str | None) -> dict:
    """The settings the card and manifest record; paths by name only (:func:`~.card.public_name`)."""
    from .card import public_name

    columns = config.column_map()
    return {"parts": [p if str(p).startswith(HUB_PREFIX) else Path(p).name for p in map(str, config.parts)],
            "rules": config.rules, "encoder": public_name(config.encoder), "threshold": config.resolved_threshold(),
            "top_per_class": config.top_per_class, "schema": config.schema,
            "nsfw_filter": columns.nsfw is not None or columns.punsafe is not None, "nsfw_rule": config.nsfw_rule(),
            "ocr_engine": public_name(ocr_name or config.ocr_engine), "columns": columns.to_dict()}


@contextlib.contextmanager
def work_lock(work_dir: str | Path) -> Iterator[None]:
    """Hold ``<work_dir>/.lock`` for a rebuild (as ``download`` and ``run`` hold their stores'); a second
    rebuild of the same work dir is a one-line :class:`~laionet_bench.errors.StoreError` at once."""
    from filelock import FileLock, Timeout

    folder = Path(work_dir)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise StoreError(f"{folder} is being used by another laionet-bench rebuild (lock {lock.lock_file}); wait for "
                         "it to finish or pass another --work") from None
    try:
        yield
    finally:
        lock.release()


def run_pipeline(
    config: RebuildConfig,
    *,
    steps: tuple[str, ...] | list[str] = STEPS,
    executor: str = "local",
    address: str | None = None,
    workers: int = 1,
    cpu_actors: int = 1,
    encoder: Any = None,
    ocr_engine: Any = None,
    images: Any = None,
) -> RebuildReport:
    """Run ``steps`` of the rebuild over ``config.parts`` and return the report.

    Args:
        config: what to rebuild (see :class:`RebuildConfig`).
        steps: any of ``match``, ``textsim``, ``select``, ``ocr``, ``card`` (in pipeline order);
            finished (part, step) pairs are skipped.
        executor: ``local`` (processes on this machine) or ``ray`` (Ray tasks and actors; ``address`` of
            the cluster, ``None`` for a local Ray instance).
        workers: parallel processes for the matching step of the local executor.
        cpu_actors: text-encoder actors of the Ray executor on a cluster without GPUs (with GPUs it
            starts one per GPU).
        encoder, ocr_engine, images: objects replacing the ones ``config`` names (e.g. an EAST+TrOCR
            engine, a URL fetcher). ``encoder`` may also be a zero-argument factory (e.g. the encoder's
            class), called once in each process that embeds, so each Ray actor builds its own. The Ray
            executor ships them to its workers, so they must pickle.
    """
    from .executors import run_local, run_ray
    from .parts import resolve_parts

    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ConfigError(f"unknown rebuild step(s) {unknown}; steps are {list(STEPS)}")
    config.resolved_threshold()  # fail before any work on a missing threshold
    if cpu_actors < 1:
        raise ConfigError(f"--cpu-actors {cpu_actors}: the Ray executor needs at least 1 text-encoder actor")
    if executor not in ("local", "ray"):
        raise ConfigError(f"unknown executor {executor!r}: use local or ray")
    with work_lock(config.work_dir):
        parts = resolve_parts(config.parts)
        config = resolve_config(config, parts[0])  # columns and NSFW rule checked before any work
        ctx = StepContext(config, encoder=encoder, ocr_engine=ocr_engine, images=images)
        part_steps = [s for s in PART_STEPS if s in steps]
        if part_steps and executor == "local":
            run_local(parts, ctx, part_steps, workers=workers)
        elif part_steps:
            run_ray(parts, ctx, part_steps, address=address, cpu_actors=cpu_actors)
        report = collect_report(parts, config, ocr_name=ctx.ocr_label)
        if "card" in steps:
            build_card(parts, config, report, ocr_name=ctx.ocr_label)
        elif "select" in steps and not report.kept:
            logger.warning("select: no row survived: %s", report.nothing_kept(config))
    return report
