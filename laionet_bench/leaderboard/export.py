"""Write a leaderboard folder: tables in every requested format, figures, and nothing half-written."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from .._io import write_text_atomic
from ..errors import ConfigError
from .render import to_csv, to_html, to_json, to_markdown
from .table import Leaderboard

__all__ = ["FORMATS", "write_leaderboard"]

logger = logging.getLogger(__name__)

#: Format name → file name in the leaderboard folder.
FORMATS = {"md": "leaderboard.md", "csv": "leaderboard.csv", "json": "leaderboard.json", "html": "index.html"}


def _check_formats(formats: Iterable[str]) -> list[str]:
    wanted = list(dict.fromkeys(formats))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise ConfigError(f"unknown leaderboard format(s) {unknown}: choose from {', '.join(FORMATS)}")
    return wanted


def write_leaderboard(
    board: Leaderboard,
    out_dir: str | Path,
    *,
    formats: Iterable[str] = tuple(FORMATS),
    plots: bool = True,
) -> list[Path]:
    """Write ``board`` under ``out_dir`` (tables as :data:`FORMATS`, figures when ``plots``); returns the files.

    Figures are drawn first so the HTML page can show them.
    """
    wanted = _check_formats(formats)
    out = Path(out_dir)
    written: list[Path] = []
    if plots:
        from .plots import write_plots

        written += write_plots(board, out)
    figures = [p.name for p in written]
    renderers = {"md": to_markdown, "csv": to_csv, "json": to_json,
                 "html": lambda b: to_html(b, figures=figures)}
    for name in wanted:
        path = out / FORMATS[name]
        write_text_atomic(path, renderers[name](board))
        written.append(path)
    logger.info("leaderboard of %d model(s) written to %s", len(board.table), out)
    return written
