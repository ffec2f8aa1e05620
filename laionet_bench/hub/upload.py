"""Uploads to the Hugging Face Hub: publish a folder (a leaderboard, results, a rebuilt index) to a dataset repo.

:func:`publish_folder` is generic — it creates the repo (and branch) when asked and uploads every file
of the folder in one ``upload_folder`` call; hidden files (``.name``, e.g. temp files of an
interrupted write) are skipped. :func:`dataset_card` writes a dataset card (README.md with YAML front
matter) for callers that want one; the leaderboard's own card is ``leaderboard.publish.leaderboard_card``.

The token comes from ``token=`` or, when that is None, from huggingface_hub's usual sources
(``HF_TOKEN``, the token file of ``hf auth login``). It is never logged, and error messages are built
from the Hub's answer, never from the request (:func:`._errors.hub_error`, shared with :mod:`.download`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import constants
from .._io import write_text_atomic
from ..errors import ConfigError
from ..version import __version__
from ._errors import check_repo_id, hub_error

__all__ = ["IGNORE_PATTERNS", "PublishResult", "dataset_card", "publish_folder"]

logger = logging.getLogger(__name__)

#: Never uploaded: hidden files and folders (atomic-write temp files, caches, .git).
IGNORE_PATTERNS = [".*", "**/.*", "**/.*/**", "__pycache__/**"]


@dataclass(frozen=True)
class PublishResult:
    """Where a folder went: repo, branch, the commit made (None when nothing changed), files sent."""

    repo_id: str
    revision: str
    commit: str | None
    commit_url: str | None
    files: list[str] = field(default_factory=list)


def _files(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") or part == "__pycache__"
                                   for part in p.relative_to(folder).parts)
    )


def publish_folder(
    folder: str | Path,
    *,
    repo_id: str,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str = "Publish with laionet-bench",
    create: bool = True,
    private: bool | None = None,
    card: str | None = None,
) -> PublishResult:
    """Upload every (non-hidden) file under ``folder`` to the dataset repo ``repo_id`` in one commit.

    Args:
        folder: the folder to publish; its layout becomes the repo's layout.
        repo_id: ``owner/name`` of the Hub dataset repo.
        revision: branch to commit to (created from ``main`` when missing); None means ``main``.
        token: a Hub token; None uses huggingface_hub's usual sources (HF_TOKEN, ``hf auth login``).
        commit_message: the commit's summary.
        create: create the repo first when it does not exist (``exist_ok``); False fails on a missing repo.
        private: visibility of a newly created repo (None: the Hub's default).
        card: dataset card text; written to ``folder/README.md`` before the upload when given.
    """
    from huggingface_hub import HfApi

    check_repo_id(repo_id)
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder to publish; build it first (e.g. 'laionet-bench leaderboard')")
    if card is not None:
        write_text_atomic(root / "README.md", card)
    files = _files(root)
    if not files:
        raise ConfigError(f"{root}: nothing to publish (the folder holds no files)")
    branch = revision or "main"
    api = HfApi(token=token, library_name=constants.LIBRARY_NAME, library_version=__version__)
    logger.info("publishing %d file(s) from %s to dataset %s@%s", len(files), root, repo_id, branch)
    try:
        if create:
            api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private)
        if branch != "main":
            api.create_branch(repo_id, branch=branch, repo_type="dataset", exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=root, repo_type="dataset", revision=branch,
                                 commit_message=commit_message, ignore_patterns=IGNORE_PATTERNS)
    except Exception as exc:  # huggingface_hub raises transport errors unwrapped (httpx2.*)
        # from None: no chained request, its headers hold the token
        raise hub_error(exc, direction="upload", repo_id=repo_id, revision=branch) from None
    logger.info("published %s@%s: commit %s", repo_id, branch, info.oid)
    return PublishResult(repo_id=repo_id, revision=branch, commit=info.oid, commit_url=info.commit_url, files=files)


def dataset_card(
    body: str,
    *,
    pretty_name: str,
    tags: Iterable[str] = (),
    data_files: Mapping[str, str] | None = None,
    license: str | None = None,
    **extra: Any,
) -> str:
    """A dataset card: YAML front matter (``pretty_name``, ``tags``, ``configs`` from ``data_files`` as
    {config name: file pattern}, ``license``, anything in ``extra``) followed by the Markdown ``body``."""
    from huggingface_hub import DatasetCardData

    configs = [{"config_name": name, "data_files": pattern} for name, pattern in (data_files or {}).items()]
    data = DatasetCardData(pretty_name=pretty_name, tags=list(tags) or None, license=license,
                           configs=configs or None, **extra)
    return f"---\n{data.to_yaml()}\n---\n\n{body.strip()}\n"
