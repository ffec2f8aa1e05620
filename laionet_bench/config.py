"""Setting precedence in one place: explicit argument > environment > ``[tool.laionet-bench]`` > default.

``[tool.laionet-bench]`` is read from the nearest ``pyproject.toml`` at or above the working directory,
so a research repo can pin its Hub repo, results folder or device once for every command and for the
pytest plugin. A ``LAIONET_BENCH_*`` variable (:data:`~laionet_bench.constants.SETTING_VARIABLES`) beats
the committed file, as in pip and pytest, so CI can override a project setting without editing it.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import constants
from .errors import ConfigError

__all__ = ["find_pyproject", "project_settings", "resolve_setting"]

#: Keys accepted in ``[tool.laionet-bench]``; anything else is a typo and an error. The cache folder is
#: not one: it belongs to a machine (``LAIONET_BENCH_CACHE``), not to a project.
KNOWN_KEYS = set(constants.SETTING_VARIABLES)


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
    """Pick ``name``'s value: ``explicit`` > its ``LAIONET_BENCH_*`` variable > pyproject > ``env`` > ``default``.

    Args:
        name: a key of :data:`KNOWN_KEYS`.
        explicit: a command-line flag or function argument; ``None`` means not given.
        env: the setting's value in :mod:`constants` as callers pass it (``constants.RESULTS_DIR``). When the
            variable is set that value already won above; otherwise it is the built-in default the
            constant carries, so it comes after pyproject.
        default: the value when nothing else gives one.
    """
    if name not in KNOWN_KEYS:
        raise ConfigError(f"unknown setting {name!r}")
    if explicit is not None:
        return explicit
    if constants.ENV_SETTINGS.get(name) is not None:
        return constants.ENV_SETTINGS[name]
    settings = project_settings()
    if settings.get(name) is not None:
        return settings[name]
    return env if env is not None else default
