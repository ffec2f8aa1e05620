"""Environment-derived settings, read in exactly one place.

Other modules read ``constants.X`` at call time (never ``from constants import X``) so tests can
redirect caches with ``monkeypatch.setattr``. Every variable is ``LAIONET_BENCH_*``; values are parsed
strictly so a typo fails loudly instead of being ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "ALLOCATOR",
    "CACHE_DIR",
    "DEBUG",
    "DEFAULT_HUB_REPO",
    "ENV_SETTINGS",
    "HUB_REPO",
    "HUB_REVISION",
    "LIBRARY_NAME",
    "RESULTS_DIR",
    "SETTING_VARIABLES",
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


#: The variable of each ``[tool.laionet-bench]`` setting. :func:`laionet_bench.config.resolve_setting` puts a
#: variable above the committed pyproject, so CI can override a project's setting.
SETTING_VARIABLES: dict[str, str] = {
    "hub_repo": "LAIONET_BENCH_HUB_REPO",
    "hub_revision": "LAIONET_BENCH_HUB_REVISION",
    "results_dir": "LAIONET_BENCH_RESULTS",
    "device": "LAIONET_BENCH_DEVICE",
    "dataset": "LAIONET_BENCH_DATASET",
    "imagenet": "LAIONET_BENCH_IMAGENET",
    "images": "LAIONET_BENCH_IMAGES",
    "predictions": "LAIONET_BENCH_PREDICTIONS",
}
_PATH_SETTINGS = {"results_dir", "imagenet", "images", "predictions"}

#: The settings given in the environment: only variables that are set and not empty; paths ``~``-expanded.
ENV_SETTINGS: dict[str, str] = {
    name: os.path.expanduser(value) if name in _PATH_SETTINGS else value
    for name, variable in SETTING_VARIABLES.items()
    if (value := os.environ.get(variable, "").strip())
}

#: Root of everything this package caches (demo build, downloaded images, embeddings, predictions, converted weights).
#: A machine's cache, not a project's: set by ``LAIONET_BENCH_CACHE`` only, never in pyproject.
CACHE_DIR = Path(os.environ.get("LAIONET_BENCH_CACHE", _default_cache_dir())).expanduser()
#: Results store for ``laionet-bench run`` and the pytest plugin: the variable, else ``results``.
RESULTS_DIR = Path(ENV_SETTINGS.get("results_dir", "results"))
#: Hub dataset repo holding the LAIONet index: the variable, else the project's repo.
HUB_REPO = ENV_SETTINGS.get("hub_repo", DEFAULT_HUB_REPO)
#: Revision (branch, tag or commit) of the Hub index: the variable, else ``None`` (``main``).
HUB_REVISION = ENV_SETTINGS.get("hub_revision")
#: Show tracebacks from the CLI.
DEBUG = parse_bool("LAIONET_BENCH_DEBUG", os.environ.get("LAIONET_BENCH_DEBUG"))
#: How the CLI sets glibc's allocator for CPU inference (``evaluation.allocator.ALLOCATOR_MODES``): ``tuned``
#: (default) or ``default`` (glibc's own settings). A machine's choice, like the cache: the variable only.
ALLOCATOR = os.environ.get("LAIONET_BENCH_ALLOCATOR", "").strip().lower() or "tuned"
