"""Figure setup and saving shared by every module that draws (leaderboard, similarity).

One place so that every PNG the package writes has the same resolution and is written crash-safe.
Figures are :class:`matplotlib.figure.Figure` objects on the Agg canvas: no pyplot global state, no
display, safe in threads and headless runs. matplotlib is an optional dependency (the ``plots`` extra)
and heavy, so it is imported inside the functions: the CLI and the pytest plugin start without it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ._io import atomic_write
from .errors import MissingDependencyError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DPI", "new_figure", "save_figure"]

logger = logging.getLogger(__name__)

#: Resolution of every saved PNG. Figures are laid out at matplotlib's own figure DPI, as the leaderboard's
#: label placement was tuned there; only the written file uses this one.
DPI = 150


def new_figure(width: float, height: float, *, purpose: str) -> Figure:
    """A ``width`` × ``height`` inch figure with constrained layout on a headless Agg canvas.

    Args:
        width: figure width in inches.
        height: figure height in inches.
        purpose: what is being drawn, named in the error when matplotlib is missing.

    Raises:
        MissingDependencyError: matplotlib is not installed (the message names the ``plots`` extra).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("matplotlib", "plots", purpose) from None
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # headless renderer, also needed to measure text extents before saving
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at :data:`DPI` to ``path``, atomically; returns the path."""
    path = Path(path)
    with atomic_write(path) as handle:
        fig.savefig(handle, format="png", dpi=DPI)
    logger.info("wrote %s", path)
    return path
