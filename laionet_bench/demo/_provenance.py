"""Versions of everything a demo build reads, recorded in its manifest (renders depend on them)."""

from __future__ import annotations

import shutil
import subprocess
import unicodedata
from importlib import metadata

__all__ = ["package_versions"]

DEBIAN_PACKAGES = (
    "tuxpaint-stamps-default", "openclipart-svg", "gcompris-qt-data", "fonts-noto-color-emoji", "librsvg2-bin",
)
PYTHON_PACKAGES = ("pillow", "fonttools", "pyarrow", "scikit-image", "scikit-learn", "matplotlib")


def _debian_version(package: str) -> str | None:
    if shutil.which("dpkg-query") is None:
        return None
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def _python_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, dict[str, str | None]]:
    """``{"debian": {...}, "python": {...}, "unicode": {"unidata": ...}}``; ``None`` where not installed."""
    return {
        "debian": {p: _debian_version(p) for p in DEBIAN_PACKAGES},
        "python": {p: _python_version(p) for p in PYTHON_PACKAGES},
        "unicode": {"unidata": unicodedata.unidata_version},
    }
