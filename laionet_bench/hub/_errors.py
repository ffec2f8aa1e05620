"""One translator from huggingface_hub failures to :class:`HubError` messages, for downloads and uploads.

Every Hub call of this package ends in :func:`hub_error`: the caller says what it was doing (downloading
a file from ``repo@rev``, or uploading to ``repo@rev``) and gets one line that names the cause and the fix.
The failure is classified once (:func:`_causes`); the message table is keyed by (cause, direction), so a
cause that means something else in the other direction (a missing revision is a branch that could not be
created on upload) gets its own words, and a cause without words for a direction falls through to the
next, more general one.

A LAIONet index is the one file whose absence is no typo: nothing is published at the default repo yet, so
a download of an index (``index=True``) that the Hub cannot give (the repo or the file missing, offline
with an empty cache, the Hub out of reach) goes on with the ways to get one without the Hub
(:data:`INDEX_ROUTES`), each with its command: a user who meets the 404 first learns where indexes come from.

A repo id the Hub cannot have (``../../etc``) is no Hub failure: :func:`check_repo_id` refuses it with
huggingface_hub's own validator before any request, in both directions.

Messages are token-free: upload messages never quote the exception (its request carries the
``Authorization`` header, and callers raise ``from None``), download messages quote the Hub's answer with
anything shaped like a Hub token masked, and every message is folded onto one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from ..errors import ConfigError, HubError

__all__ = ["INDEX_ROUTES", "Direction", "check_repo_id", "hub_error", "hub_offline"]

Direction = Literal["download", "upload"]

_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{8,}")
#: huggingface_hub's validator advises an argument our commands do not have.
_REPO_TYPE_ADVICE = re.compile(r"\s*Use `repo_type` argument if needed\.")


def check_repo_id(repo_id: str, *, source: str = "--repo") -> str:
    """``repo_id`` if huggingface_hub's own validator accepts it; else a one-line :class:`ConfigError` naming
    ``source``, before any request: a bad id (``../../etc``) is the user's to fix, not a connection failure."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        rule = _REPO_TYPE_ADVICE.sub("", " ".join(str(exc).split()))
        raise ConfigError(f"{source}: not a Hub repo id: {rule} Pass owner/name, e.g. me/laionet-leaderboard") from None
    return repo_id

#: (cause, direction) → message template; fields: repo_id, rev, what, status, error, detail, cause.
_MESSAGES: dict[tuple[str, Direction], str] = {
    ("no_access", "download"): "dataset repo {repo_id!r} not found on the Hub: check --repo / LAIONET_BENCH_HUB_REPO, "
                               "or log in (hf auth login) if it is private",
    ("no_access", "upload"): "cannot write to dataset repo {repo_id!r}: it does not exist or your token may not write "
                             "to it; log in with 'hf auth login', set HF_TOKEN to a token with write access, "
                             "or pass --repo",
    ("no_revision", "download"): "revision {rev!r} not found in dataset repo {repo_id!r}: check --revision",
    ("no_revision", "upload"): "branch {rev!r} of {repo_id!r} does not exist and could not be created: "
                               "check --revision",
    ("no_entry", "download"): "{what} not found in dataset repo {repo_id!r} at revision {rev!r}: "
                              "check the variant name",
    ("offline", "download"): "{what} of {repo_id!r} is not in the local Hugging Face cache and offline mode is on "
                             "(--offline or HF_HUB_OFFLINE=1): download it once online, or pass a local parquet path",
    ("unreachable", "download"): "could not reach the Hub for {what} of {repo_id!r} and it is not cached{cause}: "
                                 "retry later, or pass a local parquet path",
    ("http", "download"): "the Hub answered an error for {what} of {repo_id!r}: {detail}; retry later",
    ("http", "upload"): "the Hub refused the upload to {repo_id!r}@{rev} (HTTP {status}); retry, or check the files",
    ("other", "download"): "download of {what} from {repo_id!r} failed ({error}: {detail}); retry the command",
    ("other", "upload"): "upload to {repo_id!r}@{rev} failed ({error}); check your connection and retry",
}


#: What a missing index's message adds: the ways to an index that need no Hub, each with its command.
INDEX_ROUTES = ("an index need not come from the Hub: convert the reference's published files with "
                "'laionet-bench index import-official REF.parquet --labels REF_labels.pkl --variant VARIANT "
                "--out FILE.parquet', or build one from LAION or Re-LAION metadata with 'laionet-bench rebuild all "
                "--parts PARTS --work WORK' (it writes WORK/dataset/data/VARIANT.parquet); then pass --index "
                "FILE.parquet (or the file as 'index info FILE.parquet'), or set it once as the dataset setting "
                "(LAIONET_BENCH_DATASET=FILE.parquet or dataset in [tool.laionet-bench]); docs/real-data.md")
#: The causes after which an index is simply not to be had from the Hub, so :data:`INDEX_ROUTES` follows.
_NO_INDEX_CAUSES = frozenset({"no_access", "no_entry", "offline", "unreachable"})


def hub_offline() -> bool:
    """huggingface_hub's offline mode (``HF_HUB_OFFLINE``), read at call time as the library does."""
    from huggingface_hub import constants as hf_constants

    return bool(hf_constants.is_offline_mode())


def _status(exc: BaseException) -> int | None:
    return getattr(getattr(exc, "response", None), "status_code", None)


def _causes(exc: BaseException, offline: bool) -> Iterator[str]:
    """What went wrong, most specific first; ``other`` always comes last."""
    from huggingface_hub import errors as hf_errors

    if isinstance(exc, hf_errors.RepositoryNotFoundError) or _status(exc) in (401, 403):
        yield "no_access"
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        yield "no_revision"
    if isinstance(exc, hf_errors.LocalEntryNotFoundError):
        yield "offline" if offline or hub_offline() else "unreachable"
    elif isinstance(exc, hf_errors.EntryNotFoundError):
        yield "no_entry"
    if isinstance(exc, hf_errors.HfHubHTTPError):
        yield "http"
    yield "other"


def _one_line(text: object) -> str:
    """``text`` on one line, with anything shaped like a Hub token masked."""
    return _TOKEN_RE.sub("hf_***", " ".join(str(text).split()))


def hub_error(
    exc: BaseException,
    *,
    direction: Direction,
    repo_id: str,
    revision: str | None = None,
    what: str = "the file",
    offline: bool = False,
    index: bool = False,
) -> HubError:
    """The :class:`HubError` to raise for ``exc``, raised while the caller was doing ``direction``.

    Args:
        exc: what huggingface_hub (or its transport) raised.
        direction: ``download`` (of ``what`` from ``repo_id@revision``) or ``upload`` (to ``repo_id@revision``).
        repo_id: the dataset repo.
        revision: branch, tag or commit; None means ``main``.
        what: the thing being downloaded (a file name, "the repo snapshot", "the file listing").
        offline: the caller asked for the local cache only (``local_files_only``, the CLI's ``--offline``),
            so a file missing from it is the offline message, not an unreachable Hub.
        index: ``what`` is a LAIONet index; when the Hub cannot give it, the message ends with
            :data:`INDEX_ROUTES`.
    """
    cause = exc.__cause__ or exc.__context__
    fields = {
        "repo_id": repo_id,
        "rev": revision or "main",
        "what": what,
        "status": _status(exc),
        "error": type(exc).__name__,
        "detail": _one_line(exc),
        "cause": f" ({type(cause).__name__}: {_one_line(cause)})" if cause else "",
    }
    cause_key = next(key for key in ((c, direction) for c in _causes(exc, offline)) if key in _MESSAGES)
    message = _MESSAGES[cause_key].format(**fields)
    if index and direction == "download" and cause_key[0] in _NO_INDEX_CAUSES:
        message += "; " + INDEX_ROUTES
    return HubError(message)
