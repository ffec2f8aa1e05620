"""Environment-derived settings, read in exactly one place.

Other modules read ``constants.X`` at call time (never ``from constants import X``) so tests can
redirect caches with ``monkeypatch.setattr``. Every variable is ``LAIONET_BENCH_*``; values are parsed
strictly so a typo fails loudly instead of being ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "CACHE_DIR",
    "DEBUG",
    "DEFAULT_HUB_REPO",
    "HUB_REPO",
    "HUB_REVISION",
    "LIBRARY_NAME",
    "RESULTS_DIR",
    "parse_bool",
]

LIBRARY_NAME = "laionet-bench"

#: The Hub dataset repo this project publishes LAIONet indexes to (see docs/index.md).
DEFAULT_HUB_REPO = "laionet-bench/laionet"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(name: str, value: str | None, default: bool = False) -> bool:
    """Parse a boolean environment value strictly (``1/true/yes/on`` or ``0/false/no/off``)."""
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{name}={value!r} is not a boolean: use 1/0, true/false, yes/no or on/off")


def _default_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "laionet-bench"


#: Root of everything this package caches (demo build, downloaded images, embeddings).
CACHE_DIR = Path(os.environ.get("LAIONET_BENCH_CACHE", _default_cache_dir())).expanduser()
#: Default results store for ``laionet-bench run`` and the pytest plugin.
RESULTS_DIR = Path(os.environ.get("LAIONET_BENCH_RESULTS", "results")).expanduser()
#: Hub dataset repo holding the LAIONet index (overridable per call and in pyproject).
HUB_REPO = os.environ.get("LAIONET_BENCH_HUB_REPO") or DEFAULT_HUB_REPO
#: Revision (branch, tag or commit) of the Hub index; ``None`` means ``main``.
HUB_REVISION = os.environ.get("LAIONET_BENCH_HUB_REVISION") or None
#: Show tracebacks from the CLI.
DEBUG = parse_bool("LAIONET_BENCH_DEBUG", os.environ.get("LAIONET_BENCH_DEBUG"))
