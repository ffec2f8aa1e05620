"""Downloads from the Hugging Face Hub: LAIONet indexes, published results, LAION metadata parts.

Thin functions over ``huggingface_hub`` that follow its conventions (cache layout, revisions,
``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, tokens); its exceptions become :class:`HubError` messages that
say what to do (:func:`._errors.hub_error`, shared with :mod:`.upload`). A download pins and records
the resolved commit and verifies the file's sha256 against the repo's ``manifest.json`` when the repo
has one.

Repo layout this project publishes (see ``docs/index.md``)::

    README.md            dataset card
    manifest.json        {"files": {"data/clip_0.82.parquet": {"sha256": ..., "rows": ...}, ...}}
    data/<variant>.parquet
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from .. import constants
from .._io import sha256_file
from ..config import resolve_setting
from ..errors import HubError
from ..version import __version__
from ._errors import check_repo_id, hub_error, hub_offline

__all__ = [
    "HubDownload",
    "download_dataset_file",
    "download_index_file",
    "list_dataset_files",
    "manifest_files",
    "resolve_repo_id",
    "snapshot",
]

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_SNAPSHOT_RE = re.compile(r"/snapshots/([0-9a-f]{40})(?:/|$)")


@dataclass(frozen=True)
class HubDownload:
    """A file fetched from (or found in the cache of) a Hub dataset repo."""

    repo_id: str
    filename: str
    path: Path
    commit: str | None  # resolved commit sha (from the cache layout)
    sha256: str
    verified: bool = False  # the repo's manifest.json records this sha256 for the file


def resolve_repo_id(repo_id: str | None = None) -> str:
    """Explicit ``repo_id`` > ``LAIONET_BENCH_HUB_REPO`` > ``[tool.laionet-bench] hub_repo`` > default; an id the
    Hub cannot have is a ``ConfigError`` here, before any request."""
    return check_repo_id(resolve_setting("hub_repo", repo_id, env=constants.HUB_REPO),
                         source="--repo (or the hub_repo setting)")


def _commit_of(path: str) -> str | None:
    match = _SNAPSHOT_RE.search(Path(path).as_posix())
    return match.group(1) if match else None


def _hf_kwargs(cache_dir, local_files_only: bool) -> dict:
    return dict(
        repo_type="dataset",
        cache_dir=str(cache_dir) if cache_dir else None,
        local_files_only=local_files_only,
        library_name=constants.LIBRARY_NAME,
        library_version=__version__,
    )


def _expected_sha256(repo_id: str, filename: str, revision: str | None, kwargs: dict) -> str | None:
    """sha256 of ``filename`` as recorded in the repo's manifest, if the repo publishes one."""
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download

    try:
        manifest = hf_hub_download(repo_id, MANIFEST, revision=revision, **kwargs)
    except hf_errors.EntryNotFoundError:
        logger.debug("%s has no %s; skipping sha256 verification", repo_id, MANIFEST)
        return None
    entry = json.loads(Path(manifest).read_text("utf-8")).get("files", {}).get(filename)
    return entry.get("sha256") if entry else None


def download_index_file(
    filename: str,
    *,
    repo_id: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> HubDownload:
    """Fetch ``filename`` from the index dataset repo through the HF cache and verify it.

    The commit is resolved once and both the manifest and the file are read at that commit, so a
    push between the two requests cannot mix versions. When the Hub has no such index to give (no repo,
    no file, offline with an empty cache), the error goes on with the ways to an index without the Hub.
    """
    from huggingface_hub import hf_hub_download

    repo_id = resolve_repo_id(repo_id)
    revision = resolve_setting("hub_revision", revision, env=constants.HUB_REVISION, default=None)
    kwargs = _hf_kwargs(cache_dir, local_files_only)
    try:
        path = hf_hub_download(repo_id, filename, revision=revision, **kwargs)
        commit = _commit_of(path)
        expected = _expected_sha256(repo_id, filename, commit or revision, kwargs)
    except Exception as exc:  # huggingface_hub raises transport errors unwrapped (httpx2.*)
        raise hub_error(exc, direction="download", repo_id=repo_id, revision=revision, what=filename,
                        offline=local_files_only, index=True) from exc
    actual = sha256_file(path)
    if expected and expected != actual:
        raise HubError(
            f"{filename} from {repo_id!r}@{commit} has sha256 {actual[:12]}…, the manifest says {expected[:12]}…: "
            f"the cached copy is corrupt; delete {path} and download again"
        )
    logger.info("index %s from %s@%s (sha256 %s)", filename, repo_id, commit, actual[:12])
    return HubDownload(repo_id=repo_id, filename=filename, path=Path(path), commit=commit, sha256=actual,
                       verified=expected == actual)


def manifest_files(
    *,
    repo_id: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> dict[str, dict]:
    """The ``files`` table of the index repo's ``manifest.json`` (path → sha256, rows, ...); empty when the repo
    publishes no manifest. It says which variants a repo holds (a rebuilt one publishes its own, ``minilm_0.5``)."""
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download

    repo_id = resolve_repo_id(repo_id)
    revision = resolve_setting("hub_revision", revision, env=constants.HUB_REVISION, default=None)
    try:
        path = hf_hub_download(repo_id, MANIFEST, revision=revision, **_hf_kwargs(cache_dir, local_files_only))
    except hf_errors.RemoteEntryNotFoundError:  # the repo has none; one not cached offline is an error
        return {}
    except Exception as exc:
        raise hub_error(exc, direction="download", repo_id=repo_id, revision=revision, what=MANIFEST,
                        offline=local_files_only, index=True) from exc
    return dict(json.loads(Path(path).read_text("utf-8")).get("files", {}))


def snapshot(
    *,
    repo_id: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    allow_patterns: list[str] | None = None,
) -> tuple[Path, str | None]:
    """Fetch a whole repo revision (``snapshot_download``); returns (folder, resolved commit)."""
    from huggingface_hub import snapshot_download

    repo_id = resolve_repo_id(repo_id)
    kwargs = _hf_kwargs(cache_dir, local_files_only)
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=allow_patterns, **kwargs)
    except Exception as exc:
        raise hub_error(exc, direction="download", repo_id=repo_id, revision=revision,
                        what="the repo snapshot", offline=local_files_only) from exc
    return Path(folder), _commit_of(folder)


def list_dataset_files(
    repo_id: str, *, revision: str | None = None, pattern: str = "*.parquet", local_files_only: bool = False
) -> list[str]:
    """Paths in dataset repo ``repo_id`` matching ``pattern`` (fnmatch on the full path), sorted.

    Used by the rebuild to enumerate LAION metadata parts (e.g. ``laion/laion400m``) without
    downloading them; each part is then fetched on its own with :func:`download_dataset_file`.
    """
    from huggingface_hub import HfApi

    if local_files_only or hub_offline():
        raise HubError(
            f"cannot list the files of dataset repo {repo_id!r} offline: pass local parquet paths instead"
        )
    try:
        files = HfApi().list_repo_files(repo_id, repo_type="dataset", revision=revision)
    except Exception as exc:
        raise hub_error(exc, direction="download", repo_id=repo_id, revision=revision,
                        what="the file listing") from exc
    return sorted(f for f in files if fnmatch.fnmatch(f, pattern))


def download_dataset_file(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    local_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Path:
    """Fetch one file of dataset repo ``repo_id``; into ``local_dir`` when given (so it can be deleted
    after use), else into the HF cache. No manifest check: third-party repos publish none."""
    from huggingface_hub import hf_hub_download

    kwargs = _hf_kwargs(None, local_files_only)
    try:
        path = hf_hub_download(
            repo_id, filename, revision=revision, local_dir=str(local_dir) if local_dir else None, **kwargs
        )
    except Exception as exc:
        raise hub_error(exc, direction="download", repo_id=repo_id, revision=revision, what=filename,
                        offline=local_files_only) from exc
    return Path(path)
