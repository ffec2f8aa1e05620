"""Every exception the package raises on purpose.

Each error inherits :class:`LaionetBenchError` and the builtin a caller would naturally catch, carries
structured fields, and says in its message what to do about it. The CLI maps these to one-line
messages (see ``laionet_bench.cli._errors``).
"""

from __future__ import annotations

import errno
from pathlib import Path

__all__ = [
    "BaselineError",
    "CatalogError",
    "ConfigError",
    "DatasetError",
    "DiskWriteError",
    "HubError",
    "IndexValidationError",
    "LaionetBenchError",
    "MissingDependencyError",
    "MissingResultError",
    "MissingSystemPackageError",
    "ModelSpecError",
    "ResultsError",
    "RobustnessError",
    "StoreError",
    "UnsafePickleError",
    "UnknownNameError",
]


class LaionetBenchError(Exception):
    """Base class of every error raised on purpose by laionet-bench."""


class ConfigError(LaionetBenchError, ValueError):
    """A setting (CLI flag, environment variable, ``[tool.laionet-bench]``) has a bad value."""


class UnknownNameError(LaionetBenchError, KeyError):
    """A registry lookup failed; the message lists close matches.

    Example message: ``unknown dataset 'laionet:clip_0.8'; did you mean: laionet:clip_0.82?``
    """

    def __init__(self, kind: str, name: str, suggestions: list[str] | None = None):
        self.kind = kind
        self.name = name
        self.suggestions = list(suggestions or [])
        super().__init__(name)

    def __str__(self) -> str:  # KeyError would repr() the message otherwise
        msg = f"unknown {self.kind} {self.name!r}"
        if self.suggestions:
            msg += "; did you mean: " + ", ".join(self.suggestions) + "?"
        return msg


class CatalogError(LaionetBenchError, ValueError):
    """The class catalogue or a class file is inconsistent."""


class IndexValidationError(LaionetBenchError, ValueError):
    """A LAIONet index file breaks the schema.

    Example message: ``index.parquet: column 'wnid': 2 rows with a wnid outside ImageNet-1k
    (row_id 100000007, 100000042): fix or drop these rows``
    """

    def __init__(self, path: str, problem: str, *, field: str | None = None, row_ids: list | None = None):
        self.path = str(path)
        self.problem = problem
        self.field = field
        self.row_ids = list(row_ids or [])
        where = f"{self.path}: " + (f"column {field!r}: " if field else "")
        super().__init__(where + problem)


class UnsafePickleError(LaionetBenchError, ValueError):
    """A pickle holds something other than plain dict/list/str/int data."""


class HubError(LaionetBenchError, OSError):
    """A Hugging Face Hub download or upload failed; the message says whether to retry or fix."""


class DiskWriteError(LaionetBenchError, OSError):
    """A file or folder could not be written: the disk or the quota is full, or the file system is read-only.

    Not a bug to report but the machine's state, so the message names the path and what to do. Every write
    already done is durable (atomic files, append-only stores), so a re-run resumes.

    Example message: ``results/resnet50.a1_in1k/result.json: no space left on device: free space and re-run;
    finished work is kept``
    """

    #: errno → (what the OS said, what to do); EDQUOT is missing on some platforms.
    ADVICE = {
        errno.ENOSPC: ("no space left on device", "free space"),
        errno.EROFS: ("read-only file system", "make it writable (or write elsewhere)"),
        **({errno.EDQUOT: ("disk quota exceeded", "free space (or raise the quota)")} if hasattr(errno, "EDQUOT") else {}),
    }

    def __init__(self, path: str | Path | None, code: int):
        what, self.fix = self.ADVICE[code]
        super().__init__(code, what, None if path is None else str(path))

    def __reduce__(self):  # OSError's own would call __init__ with (errno, strerror, filename)
        return type(self), (self.filename, self.errno)

    def __str__(self) -> str:
        where = f"{self.filename}: " if self.filename else ""
        return f"{where}{self.strerror}: {self.fix} and re-run; finished work is kept"

    @classmethod
    def of(cls, exc: BaseException, path: str | Path | None) -> DiskWriteError | None:
        """``exc`` as a :class:`DiskWriteError` naming ``path`` if it is a full disk, a full quota or a read-only
        file system (one that already is keeps its own, more precise path); None for any other error."""
        if isinstance(exc, cls):
            return exc
        if isinstance(exc, OSError) and exc.errno in cls.ADVICE:
            return cls(path, exc.errno)
        return None


class DatasetError(LaionetBenchError, ValueError):
    """A dataset (index rows, images, ImageNet layouts, LAION parts, demo sources) cannot be read or used."""


class ResultsError(LaionetBenchError, ValueError):
    """A results folder, result file or leaderboard file is missing or unreadable, or predictions disagree."""


class BaselineError(LaionetBenchError, ValueError):
    """A per-class baseline file is missing, unreadable or of another schema; the message says how to rewrite it."""


class ModelSpecError(LaionetBenchError, ValueError):
    """A model spec, weights file or classifier head cannot be used."""


class StoreError(LaionetBenchError, OSError):
    """A store (predictions, embedding cache) is locked by another run or holds unreadable files."""


class MissingDependencyError(LaionetBenchError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str, purpose: str):
        self.package = package
        self.extra = extra
        super().__init__(
            f"{purpose} needs {package!r}, which is not installed: pip install 'laionet-bench[{extra}]'"
        )


class MissingResultError(LaionetBenchError, LookupError):
    """No stored result for a model; the message names the command that produces it."""

    def __init__(self, model: str, *, searched: list[str], command: str):
        self.model = model
        self.searched = list(searched)
        self.command = command
        super().__init__(
            f"no LAIONet result for {model!r} (searched: {', '.join(searched) or 'nothing'}); "
            f"produce it with:\n    {command}"
        )


class RobustnessError(LaionetBenchError, AssertionError):
    """A robustness check failed: the gap, the accuracy or a per-class baseline is out of bounds.

    Example message: ``resnet50.a1_in1k: gap top1 (equi-weighted) = 0.1234 (SE 0.0051) > max_gap 0.1000
    + 1 SE = 0.1051`` followed by a table of the classes with the largest recall drops.
    """


class MissingSystemPackageError(LaionetBenchError, FileNotFoundError):
    """A Debian package whose files a feature reads (demo images, fonts, tools) is not installed."""

    def __init__(self, package: str, purpose: str, missing: str):
        self.package = package
        self.missing = missing
        super().__init__(
            f"{purpose} needs the Debian package {package!r} ({missing} not found): "
            f"sudo apt-get install {package} (or run scripts/setup.sh)"
        )
