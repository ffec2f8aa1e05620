"""Setting precedence in one place: explicit argument > ``[tool.laionet-bench]`` > environment > default.

``[tool.laionet-bench]`` is read from the nearest ``pyproject.toml`` at or above the working directory,
so a research repo can pin its Hub repo, results folder or device once for every command and for the
pytest plugin.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["find_pyproject", "project_settings", "resolve_setting"]

#: Keys accepted in ``[tool.laionet-bench]``; anything else is a typo and an error.
KNOWN_KEYS = {"hub_repo", "hub_revision", "results_dir", "device", "dataset", "imagenet", "cache_dir"}


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start`` (default: the working directory)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=8)
def _read_settings(path: Path, mtime: float) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    settings = data.get("tool", {}).get("laionet-bench", {})
    unknown = sorted(set(settings) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown} in [tool.laionet-bench]; known: {sorted(KNOWN_KEYS)}")
    return settings


def project_settings(start: Path | None = None) -> dict[str, Any]:
    """The ``[tool.laionet-bench]`` table of the nearest pyproject (empty when there is none)."""
    path = find_pyproject(start)
    return dict(_read_settings(path, path.stat().st_mtime)) if path else {}


def resolve_setting(name: str, explicit: Any = None, *, env: Any = None, default: Any = None) -> Any:
    """Pick ``name``'s value: ``explicit`` > pyproject > ``env`` (from :mod:`constants`) > ``default``."""
    if name not in KNOWN_KEYS:
        raise ConfigError(f"unknown setting {name!r}")
    if explicit is not None:
        return explicit
    settings = project_settings()
    if settings.get(name) is not None:
        return settings[name]
    return env if env is not None else default
