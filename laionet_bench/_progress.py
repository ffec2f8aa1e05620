"""Every progress bar of the package, behind one switch, so ``-q`` and ``--no-progress`` silence them all.

Bars are tqdm's; they write to stderr and hide themselves when it is not a terminal (``disable=None``)
unless a caller asks otherwise. :func:`set_progress` is the CLI's switch (``-q``/``--quiet`` or
``--no-progress`` on any subcommand): once off, no bar of any module, executor or step draws.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["progress_bar", "progress_enabled", "set_progress"]

_STATE = {"enabled": True}


def set_progress(enabled: bool) -> None:
    """Turn every progress bar of this process on or off."""
    _STATE["enabled"] = bool(enabled)


def progress_enabled() -> bool:
    return _STATE["enabled"]


def progress_bar(iterable: Iterable | None = None, **kwargs: Any):
    """``tqdm(iterable, **kwargs)``, disabled when the switch is off; ``disable`` defaults to None (terminal only)."""
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", None)
    kwargs.setdefault("dynamic_ncols", True)
    if not _STATE["enabled"]:
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)
