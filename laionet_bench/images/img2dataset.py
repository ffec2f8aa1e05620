"""``--engine img2dataset``: let LAION's own downloader fetch, then adopt its output into our store.

img2dataset pins old pandas/webdataset, so it is not imported: its CLI runs as a subprocess (install
it in its own virtual environment and pass ``executable`` or put it on PATH). Its output is read
back, not trusted as is: every image goes through the same decode check, official filter, resize
and sha256 as our own fetcher, and is re-written into our shard layout (key = row id) so every
reader sees one format. Its per-sample parquet records (status, error_message) become manifest rows.

Safety note: img2dataset follows redirects itself. We check each URL's *first* host before handing
it over (private addresses are refused), but redirect hops are not re-checked by us; the native
engine re-checks every hop.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd

from .. import _io
from ..errors import DatasetError, MissingDependencyError
from ..index.load import LaionetIndex
from .download import DownloadOptions, DownloadReport, rows_to_fetch, verify_fetched
from .fetch import FetchPolicy, FetchResult, RefusedAddressError, resolve_checked
from .shards import iter_tar_index
from .store import ImageStore

__all__ = ["classify_error", "download_with_img2dataset", "find_img2dataset"]

logger = logging.getLogger(__name__)

_HTTP_ERROR = re.compile(r"HTTP Error (\d{3})")
#: img2dataset (urllib) error text -> manifest status; first match wins, default connection_error.
_ERROR_PATTERNS = (
    ("timeout", re.compile(r"timed? ?out", re.IGNORECASE)),
    ("no_such_host", re.compile(r"name or service not known|no address associated|nodename nor servname",
                                re.IGNORECASE)),
    ("too_large", re.compile(r"too large|image area", re.IGNORECASE)),
    ("decode_error", re.compile(r"decod|cannot identify|truncated", re.IGNORECASE)),
    ("refused", re.compile(r"unknown url type|unsupported", re.IGNORECASE)),
)


def find_img2dataset(executable: str | None = None) -> str:
    """The img2dataset executable: ``executable`` if given, else the one on PATH."""
    found = shutil.which(executable or "img2dataset")
    if not found:
        raise MissingDependencyError("img2dataset", "img2dataset", "--engine img2dataset")
    return found


def classify_error(message: str | None) -> tuple[str, int | None]:
    """Map an img2dataset ``error_message`` to our (status, http_code)."""
    text = message or ""
    match = _HTTP_ERROR.search(text)
    if match:
        return "http_error", int(match.group(1))
    for status, pattern in _ERROR_PATTERNS:
        if pattern.search(text):
            return status, None
    return "connection_error", None


def _refused_hosts(rows: list[dict], policy: FetchPolicy) -> dict[str, str]:
    """host -> reason for every first-hop host that resolves to a forbidden address.

    Checked with ``allow_private`` too: cloud metadata endpoints stay refused (see :mod:`.fetch`).
    """
    hosts = {urlsplit(r["url"]).hostname or "" for r in rows}

    def check(host: str) -> tuple[str, str | None]:
        try:
            resolve_checked(host, 80, allow_private=policy.allow_private, allow_networks=policy.allow_networks)
        except RefusedAddressError as exc:
            return host, str(exc)
        except Exception:  # noqa: BLE001 - unresolvable hosts are img2dataset's to report
            return host, None
        return host, None

    with ThreadPoolExecutor(16) as pool:
        return {host: reason for host, reason in pool.map(check, sorted(hosts)) if reason}


def _command(exe: str, url_list: Path, output: Path, policy: FetchPolicy, options: DownloadOptions) -> list[str]:
    return [
        exe, f"--url_list={url_list}", "--input_format=parquet", "--url_col=url", "--caption_col=caption",
        "--save_additional_columns=[row_id]", "--output_format=webdataset", f"--output_folder={output}",
        "--processes_count=1", f"--thread_count={options.workers}", "--resize_mode=no",
        "--disable_all_reencoding=True", f"--timeout={policy.timeout:g}", f"--retries={options.retries}",
        f"--number_sample_per_shard={options.shard_size}", "--enable_wandb=False",
        "--distributor=multiprocessing", "--user_agent_token=laionet-bench",
    ]


def _run_img2dataset(command: list[str], log_path: Path) -> None:
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
    with open(log_path, "w") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False).returncode
    if code != 0:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise DatasetError(f"img2dataset exited with status {code}; its log ends with:\n{tail}")


def _tar_images(path: Path) -> Iterator[tuple[str, bytes]]:
    """(img2dataset key, image bytes) for every image member of one of its shards."""
    with open(path, "rb") as handle:
        for member in iter_tar_index(path):
            key, _, ext = member.name.partition(".")
            if member.is_file and ext not in ("json", "txt"):
                yield key, member.read(handle)


def _adopt(output: Path, by_row: dict[int, dict], store: ImageStore, options: DownloadOptions,
           run_counts: dict[str, int]) -> None:
    """Read img2dataset's parquet records and tar shards into our store."""
    for parquet in sorted(output.glob("*.parquet")):
        records = pd.read_parquet(parquet)
        tar = parquet.with_suffix(".tar")
        images = dict(_tar_images(tar)) if tar.exists() else {}
        for rec in records.to_dict("records"):
            row = by_row[int(rec["row_id"])]
            if rec["status"] == "success" and rec["key"] in images:
                result = FetchResult("ok", row["url"], 200, None, images[rec["key"]])
            else:
                status, code = classify_error(rec.get("error_message"))
                result = FetchResult(status, row["url"], code, rec.get("error_message") or "failed")
            record, data, meta = verify_fetched(row, result, options)
            store.add(record, data, meta)
            run_counts[record["status"]] = run_counts.get(record["status"], 0) + 1
        store.flush()


def download_with_img2dataset(
    index: LaionetIndex | pd.DataFrame,
    out: str | Path,
    *,
    policy: FetchPolicy | None = None,
    options: DownloadOptions | None = None,
    executable: str | None = None,
    progress: bool = True,
) -> DownloadReport:
    """Like :func:`~.download.download_images`, with img2dataset doing the HTTP part.

    Resumes the same way (only rows not ok are handed to img2dataset), writes the same store layout
    and manifest. ``progress`` is accepted for symmetry; img2dataset's own output goes to a log file.
    """
    policy = policy or FetchPolicy()
    options = options or DownloadOptions()
    exe = find_img2dataset(executable)
    table = index.table if isinstance(index, LaionetIndex) else index
    index_rows = table[["row_id", "url"]]
    with _io.writing(out):  # a full disk names the store, as in download_images
        store = ImageStore.open(out, shard_size=options.shard_size, checkpoint_seconds=options.checkpoint_seconds)
        started = time.monotonic()
        run_counts: dict[str, int] = {}
        try:
            todo = rows_to_fetch(table, store, options)
            refused = _refused_hosts(todo, policy)
            fetchable = []
            for row in todo:
                reason = refused.get(urlsplit(row["url"]).hostname or "")
                if reason:
                    store.add({"row_id": row["row_id"], "url": row["url"], "status": "refused", "error": reason})
                    run_counts["refused"] = run_counts.get("refused", 0) + 1
                else:
                    fetchable.append(row)
            if fetchable:
                with tempfile.TemporaryDirectory(prefix=".img2dataset-", dir=store.root) as work:
                    work_dir = Path(work)
                    frame = pd.DataFrame({"url": [r["url"] for r in fetchable], "row_id": [r["row_id"] for r in fetchable],
                                          "caption": [r.get("caption") or "" for r in fetchable]})
                    frame.to_parquet(work_dir / "urls.parquet", index=False)
                    logger.info("running img2dataset on %d urls (log: %s)", len(frame), work_dir / "img2dataset.log")
                    _run_img2dataset(_command(exe, work_dir / "urls.parquet", work_dir / "out", policy, options),
                                     work_dir / "img2dataset.log")
                    _adopt(work_dir / "out", {r["row_id"]: r for r in fetchable}, store, options, run_counts)
        finally:
            manifest = store.finish(index_rows)
    return DownloadReport(manifest=manifest, attempted=sum(run_counts.values()),
                          seconds=time.monotonic() - started, run_counts=run_counts)
