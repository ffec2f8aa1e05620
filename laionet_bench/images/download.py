"""``download_images``: fetch every index row's URL into a resumable image store.

Worker threads (a bounded number of requests in flight) fetch, retry retryable failures with
exponential backoff and jitter (and at least as long as a 429/503 answer's ``Retry-After`` asks, up
to a cap), decode to verify, apply the official filter and the optional resize; the
calling thread alone writes shards, the journal and manifest snapshots (:class:`~.store.ImageStore`),
so there is no shared mutable state besides the connection pool.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

import pandas as pd

from .. import _io
from .._progress import progress_bar
from ..index.load import LaionetIndex
from .decode import (
    DEFAULT_MAX_PIXELS,
    ImageRejectedError,
    inspect_image,
    passes_official_filter,
    resize_image,
)
from .fetch import Fetcher, FetchPolicy, FetchResult, check_options
from .manifest import OK, Manifest, is_retryable
from .store import ImageStore

__all__ = [
    "DownloadOptions",
    "DownloadReport",
    "download_images",
    "fetch_with_retries",
    "process_row",
    "retry_delay",
    "rows_to_fetch",
    "verify_fetched",
]

logger = logging.getLogger(__name__)

#: A retry waits its delay times 1 + up to this fraction, at random: workers that failed together
#: (one overloaded host) do not all come back at the same instant.
RETRY_JITTER = 0.5
_RNG = random.Random()


@dataclass(frozen=True)
class DownloadOptions:
    """What ``download_images`` does beyond a single fetch (that is :class:`~.fetch.FetchPolicy`).

    Selection:
        retry_failed: also re-fetch rows whose earlier failure is permanent (404, not an image ...).
        official_filter: keep only mode RGB images of >= 100 pixels, as the reference (others: ``filtered``).
        limit: fetch at most this many rows this run (for trials).
    Images:
        resize: shrink so the shorter side is at most this many pixels (re-encodes); ``None`` keeps bytes.
        max_pixels: width * height above which an image is a decompression bomb.
    Work:
        workers: fetching threads (and requests in flight).
        retries: extra attempts for retryable failures within this run.
        retry_backoff: seconds before the first retry, doubled each time (see :func:`retry_delay`).
        max_retry_after: most seconds one retry waits for a 429/503 answer's ``Retry-After``.
        shard_size: samples per shard.
        checkpoint_seconds: how often the manifest snapshot is rewritten.

    Bad values raise :class:`~laionet_bench.errors.ConfigError` here, before any work starts.
    """

    retry_failed: bool = False
    official_filter: bool = False
    limit: int | None = None
    resize: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    workers: int = 32
    retries: int = 2
    retry_backoff: float = 1.0
    max_retry_after: float = 60.0
    shard_size: int = 1000
    checkpoint_seconds: float = 30.0

    def __post_init__(self):
        check_options(self, (
            ("limit", "--limit", lambda v: v is None or v >= 1, "must be at least 1 (or None for every row)"),
            ("resize", "--resize", lambda v: v is None or v >= 1, "must be at least 1 pixel (or None to keep bytes)"),
            ("max_pixels", "--max-pixels", lambda v: v >= 1, "must be at least 1"),
            ("workers", "--concurrency", lambda v: v >= 1, "must be at least 1"),
            ("retries", "--retries", lambda v: v >= 0, "must be 0 or more"),
            ("retry_backoff", None, lambda v: v >= 0, "must be 0 seconds or more"),
            ("max_retry_after", None, lambda v: v >= 0, "must be 0 seconds or more"),
            ("shard_size", "--shard-size", lambda v: v >= 1, "must be at least 1"),
            ("checkpoint_seconds", "--checkpoint-seconds", lambda v: v >= 0, "must be 0 seconds or more"),
        ))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DownloadReport:
    """The outcome of one ``download_images`` call."""

    manifest: Manifest
    attempted: int
    seconds: float
    run_counts: dict[str, int] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.attempted / self.seconds if self.seconds > 0 else 0.0

    @property
    def counts(self) -> dict[str, int]:
        """Rows per status over the whole manifest."""
        return {str(k): int(v) for k, v in self.manifest.status_counts().items()}


def retry_delay(attempt: int, result: FetchResult, options: DownloadOptions, rng: random.Random = _RNG) -> float:
    """Seconds before retry number ``attempt`` (0 for the first) after the failed ``result``.

    ``retry_backoff * 2**attempt``, or the server's ``Retry-After`` when longer (capped at
    ``max_retry_after``), then stretched by a random factor in [1, 1 + :data:`RETRY_JITTER`).
    """
    delay = options.retry_backoff * 2**attempt
    if result.retry_after is not None:
        delay = max(delay, min(result.retry_after, options.max_retry_after))
    return delay * (1 + RETRY_JITTER * rng.random())


def fetch_with_retries(fetcher: Fetcher, url: str, options: DownloadOptions, *,
                       sleep: Callable[[float], None] = time.sleep, rng: random.Random = _RNG) -> FetchResult:
    """Fetch ``url``, retrying retryable failures ``options.retries`` times after :func:`retry_delay`."""
    result = fetcher.fetch(url)
    for attempt in range(options.retries):
        if result.status == OK or not is_retryable(result.status, result.http_code):
            break
        sleep(retry_delay(attempt, result, options, rng))
        result = fetcher.fetch(url)
    return result


def process_row(fetcher: Fetcher, row: dict, options: DownloadOptions) -> tuple[dict, bytes | None, dict | None]:
    """Fetch and verify one index row: its manifest record, plus bytes and sample json when ``ok``."""
    return verify_fetched(row, fetch_with_retries(fetcher, row["url"], options), options)


def verify_fetched(row: dict, result: FetchResult, options: DownloadOptions) -> tuple[dict, bytes | None, dict | None]:
    """Turn a fetch result into a manifest record: decode check, official filter, resize, sha256."""
    row_id = int(row["row_id"])
    record = {"row_id": row_id, "url": row["url"], "key": None}
    record.update(status=result.status, http_code=result.http_code, error=result.error)
    if result.status != OK:
        return record, None, None
    data = cast(bytes, result.data)  # an ok fetch brings its bytes
    try:
        info = inspect_image(data, max_pixels=options.max_pixels)
        if options.official_filter and not passes_official_filter(info):
            raise ImageRejectedError("filtered", f"official filter: mode {info.mode}, {info.width}x{info.height}")
        if options.resize:
            data, info = resize_image(data, info, options.resize)
    except ImageRejectedError as exc:
        record.update(status=exc.status, error=str(exc), bytes=len(data))
        return record, None, None
    sha = hashlib.sha256(data).hexdigest()
    key = str(row_id)
    record.update(bytes=len(data), sha256=sha, width=info.width, height=info.height, mode=info.mode,
                  format=info.format, key=key)
    meta = {
        "row_id": row_id, "url": row["url"], "wnid": row.get("wnid"), "class_index": row.get("class_index"),
        "caption": row.get("caption"), "sha256": sha, "width": info.width, "height": info.height,
        "mode": info.mode, "format": info.format, "bytes": len(data), "http_code": result.http_code,
        "_ext": info.ext,
    }
    return record, data, meta


def rows_to_fetch(table: pd.DataFrame, store: ImageStore, options: DownloadOptions) -> list[dict]:
    """The index rows this run fetches, as plain dicts (``--limit`` applied)."""
    columns = [c for c in ("row_id", "url", "wnid", "class_index", "caption") if c in table.columns]
    todo = [row for row in table[columns].to_dict("records")
            if store.needs_fetch(int(row["row_id"]), retry_failed=options.retry_failed,
                                 official_filter=options.official_filter)]
    todo = todo[: options.limit] if options.limit is not None else todo
    return [_plain(row) for row in todo]


def _plain(row: dict) -> dict:
    """numpy scalars to Python ones, for the json sidecar."""
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def download_images(
    index: LaionetIndex | pd.DataFrame,
    out: str | Path,
    *,
    policy: FetchPolicy | None = None,
    options: DownloadOptions | None = None,
    progress: bool = True,
) -> DownloadReport:
    """Fetch the images of ``index`` into the store at ``out``, resuming whatever is already there.

    Args:
        index: a loaded index, or any frame with ``row_id`` and ``url`` (``wnid``, ``class_index`` and
            ``caption`` go into each sample's json when present).
        out: the store folder: ``manifest.parquet`` + ``shards/NNNNN.tar``.
        policy: how each URL is fetched (timeouts, byte cap, address safety, per-host limit).
        options: selection, image handling and concurrency (:class:`DownloadOptions`).
        progress: show a tqdm bar with ok / failed counts and images/s.

    Returns:
        A :class:`DownloadReport`; its manifest has one row per index row.
    """
    policy = policy or FetchPolicy()
    options = options or DownloadOptions()
    table = index.table if isinstance(index, LaionetIndex) else index
    index_rows = table[["row_id", "url"]]
    with _io.writing(out):  # a full disk names the store; every sealed shard and the journal are kept
        store = ImageStore.open(out, shard_size=options.shard_size, checkpoint_seconds=options.checkpoint_seconds)
        todo = rows_to_fetch(table, store, options)
        logger.info("%s: %d of %d rows to fetch", out, len(todo), len(table))
        started = time.monotonic()
        run_counts: dict[str, int] = {}
        try:
            _run(store, todo, index_rows, policy, options, run_counts, progress)
        finally:
            manifest = store.finish(index_rows)
    return DownloadReport(manifest=manifest, attempted=sum(run_counts.values()),
                          seconds=time.monotonic() - started, run_counts=run_counts)


def _run(store, todo, index_rows, policy, options, run_counts, progress) -> None:
    bar = progress_bar(total=len(todo), unit="img", disable=not progress, desc="download")
    rows = iter(todo)
    in_flight: set[Future] = set()
    with bar, Fetcher(policy, max_connections=options.workers) as fetcher, \
            ThreadPoolExecutor(options.workers, thread_name_prefix="fetch") as pool:
        try:
            while True:
                for row in rows:
                    in_flight.add(pool.submit(process_row, fetcher, row, options))
                    if len(in_flight) >= 2 * options.workers:
                        break
                if not in_flight:
                    break
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    record, data, meta = future.result()
                    store.add(record, data, meta)
                    run_counts[record["status"]] = run_counts.get(record["status"], 0) + 1
                store.flush()
                bar.update(len(done))
                ok = run_counts.get(OK, 0)
                bar.set_postfix(ok=ok, failed=sum(run_counts.values()) - ok, refresh=False)
                store.checkpoint(index_rows)
        finally:
            for future in in_flight:
                future.cancel()
