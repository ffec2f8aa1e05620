"""LAIONet among the other distribution shifts: the board's models joined with timm's published results.

``leaderboard --shifts timm`` (the snapshot shipped in ``laionet_bench/_data/timm_results``) or
``--shifts PATH`` (a folder in timm's ``results/`` format, e.g. a newer timm checkout) puts, per model and per
shift, the top-1 accuracy, the gap to ImageNet-val and the effective robustness next to LAIONet's own, so a
reader sees where LAIONet's shift sits among the known ones. No other benchmark has LAIONet, and timm has
no LAIONet: the join is the only way to see both.

Each gap is against the ImageNet-val top-1 *of the same source*: LAIONet's against this benchmark's ImageNet-val
run (the leaderboard's ``gap_top1``), a timm shift's against timm's own ``results-imagenet.csv``. Effective
robustness is the leaderboard's one rule (:func:`~laionet_bench.evaluation.results.fit_robustness_points`),
fitted per shift over the board's models that timm has. Numbers are percent points, as on the leaderboard.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from .._io import write_text_atomic
from ..errors import ConfigError
from ..evaluation.results import fit_robustness_points
from .render import _records, csv_safe
from .table import Leaderboard

__all__ = ["BUNDLED", "REFERENCE_FILE", "SHIFTS", "SHIFT_FILES", "Shift", "ShiftBoard", "build_shifts",
           "read_shift_folder", "resolve_shifts_folder", "shifts_markdown", "write_shifts"]

logger = logging.getLogger(__name__)

#: ``--shifts`` value that selects the snapshot shipped with the package.
BUNDLED = "timm"
#: timm's ImageNet-val file: every timm shift's gap is against its ``top1``.
REFERENCE_FILE = "results-imagenet.csv"
#: Output format → file name, next to the leaderboard's.
SHIFT_FILES = {"md": "shifts.md", "csv": "shifts.csv", "json": "shifts.json"}
SHIFT_FIGURE = "shifts.png"
_COLUMNS = ("model", "group", "shift", "source", "imagenet_top1", "top1", "top5", "gap_top1",
            "effective_robustness")


@dataclass(frozen=True)
class Shift:
    """One distribution shift: where its numbers come from and what its gap is against."""

    key: str
    label: str
    file: str | None  # timm's results file; None for LAIONet (this benchmark's own results)
    note: str  # what the gap is against, for the table's notes
    classes: int | None = None  # the shift's class count when it is a subset of ImageNet's 1000

    @property
    def legend(self) -> str:
        """The figure's name: a class subset says so, as its gap includes the change of class set."""
        return f"{self.label}, {self.classes} classes" if self.classes else self.label


#: Every shift, in the order tables and the figure show them. LAIONet first: it is what the reader compares.
SHIFTS: dict[str, Shift] = {s.key: s for s in (
    Shift("laionet", "LAIONet", None,
          "this benchmark's ImageNet-val run, both equi-weighted over the LAIONet classes (the leaderboard's gap)"),
    Shift("imagenetv2", "ImageNet-V2 (MF)", "results-imagenetv2-matched-frequency.csv",
          "timm's ImageNet-val top-1 (1000 classes)"),
    Shift("sketch", "ImageNet-Sketch", "results-sketch.csv", "timm's ImageNet-val top-1 (1000 classes)"),
    Shift("imagenet-r", "ImageNet-R", "results-imagenet-r.csv",
          "timm's ImageNet-val top-1 over all 1000 classes, while ImageNet-R has 200: the gap includes the change "
          "of class set (timm's own top1_diff is against a clean run on the 200 classes)", 200),
    Shift("imagenet-a", "ImageNet-A", "results-imagenet-a.csv",
          "timm's ImageNet-val top-1 over all 1000 classes, while ImageNet-A has 200: the gap includes the change "
          "of class set (timm's own top1_diff is against a clean run on the 200 classes)", 200),
    Shift("real", "ImageNet-ReaL", "results-imagenet-real.csv",
          "timm's ImageNet-val top-1: the same images with reassessed labels (a negative gap is a gain)"),
)}


@dataclass
class ShiftBoard:
    """The joined table and what a reader needs around it."""

    table: pd.DataFrame  # _COLUMNS, one row per (model, shift) with numbers; percent points
    source: str  # the folder the timm results came from
    matched: list[str]  # board models found in timm's ImageNet-val results
    unmatched: list[str]  # board models timm has no results for (LAIONet rows only)
    fits: dict[str, dict[str, Any]] = field(default_factory=dict)  # shift → fit (slope, intercept, n, models)

    def meta(self) -> dict[str, Any]:
        """Everything but the table, JSON-ready."""
        return {
            "units": "accuracies, gaps and effective robustness in percent points",
            "timm_results": self.source,
            "gap": "ImageNet-val top-1 minus the shift's top-1; each against the ImageNet-val of its own source",
            "shifts": {k: {"label": s.label, "file": s.file, "gap_against": s.note} for k, s in SHIFTS.items()},
            "effective_robustness_fits": self.fits,
            "matched": self.matched,
            "unmatched": self.unmatched,
        }


def resolve_shifts_folder(value: str | Path) -> Path:
    """The folder of timm results that ``--shifts value`` names: ``timm`` (the shipped snapshot) or a path.

    Raises:
        ConfigError: the value is neither ``timm`` nor a folder, or the folder lacks one of timm's files.
    """
    if str(value) == BUNDLED:
        folder = Path(str(resources.files("laionet_bench") / "_data" / "timm_results"))
    else:
        folder = Path(value)
        if not folder.is_dir():
            raise ConfigError(f"--shifts {value}: not 'timm' nor a folder; pass 'timm' (the shipped snapshot) or "
                              "the results/ folder of a timm checkout")
    needed = [REFERENCE_FILE] + [s.file for s in SHIFTS.values() if s.file]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise ConfigError(f"--shifts {value}: {folder} lacks {', '.join(missing)}; pass the results/ folder of a "
                          "timm checkout (or 'timm' for the shipped snapshot)")
    return folder


def read_shift_folder(folder: Path) -> dict[str, pd.DataFrame]:
    """timm's results per shift key (``imagenet`` for the reference): ``top1``, ``top5`` (percent) by model."""
    files = {"imagenet": REFERENCE_FILE, **{k: s.file for k, s in SHIFTS.items() if s.file}}
    frames = {}
    for key, name in files.items():
        path = folder / name
        try:
            frame = pd.read_csv(path, usecols=["model", "top1", "top5"])
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: not a timm results file with model, top1 and top5 columns ({exc}); "
                              "pass the results/ folder of a timm checkout") from None
        frames[key] = frame.drop_duplicates("model").set_index("model").astype(float)
    return frames


def _board_models(board: Leaderboard) -> pd.DataFrame:
    return board.table.drop_duplicates("model").set_index("model")


def _laionet_rows(board: Leaderboard) -> list[dict[str, Any]]:
    return [{"model": r.model, "group": r.group, "shift": "laionet", "source": "laionet-bench",
             "imagenet_top1": r.imagenet_top1, "top1": r.laionet_top1, "top5": r.laionet_top5,
             "gap_top1": r.gap_top1, "effective_robustness": r.effective_robustness}
            for r in board.table.itertuples(index=False)]


def _timm_rows(key: str, models: pd.DataFrame, reference: pd.DataFrame, shift: pd.DataFrame,
               fits: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One shift's rows over the matched models, with its effective-robustness fit recorded in ``fits``."""
    names = [m for m in models.index if m in shift.index]
    points = [(m, str(models.at[m, "group"]), reference.at[m, "top1"] / 100, shift.at[m, "top1"] / 100)
              for m in names]
    fit, fit_models = fit_robustness_points(points)
    if fit is not None:
        fits[key] = {**fit.to_dict(), "models": fit_models}
    rows = []
    for model, _, x, y in points:
        er = float(fit.residual([x], [y])[0]) * 100 if fit is not None else math.nan
        rows.append({"model": model, "group": models.at[model, "group"], "shift": key, "source": "timm",
                     "imagenet_top1": x * 100, "top1": y * 100, "top5": shift.at[model, "top5"],
                     "gap_top1": (x - y) * 100, "effective_robustness": er})
    return rows


def build_shifts(board: Leaderboard, shifts: str | Path = BUNDLED) -> ShiftBoard:
    """``board``'s models on LAIONet and on timm's shifts (``shifts``: ``timm`` or a timm results folder).

    Models are matched by exact name (timm's ``arch.tag``); the ones timm has no results for keep their
    LAIONet row and are listed in :attr:`ShiftBoard.unmatched`.
    """
    folder = resolve_shifts_folder(shifts)
    frames = read_shift_folder(folder)
    models = _board_models(board)
    matched = [m for m in models.index if m in frames["imagenet"].index]
    unmatched = [m for m in models.index if m not in frames["imagenet"].index]
    fits: dict[str, dict[str, Any]] = {}
    if board.fit is not None:
        fits["laionet"] = {**board.fit.to_dict(), "models": board.fit_models}
    rows = _laionet_rows(board)
    for key, shift in SHIFTS.items():
        if shift.file:
            rows += _timm_rows(key, models.loc[matched], frames["imagenet"], frames[key], fits)
    table = pd.DataFrame(rows, columns=list(_COLUMNS))
    table["order"] = table["shift"].map({k: i for i, k in enumerate(SHIFTS)})
    table = table.sort_values(["model", "order"], kind="stable").drop(columns="order").reset_index(drop=True)
    logger.info("shifts: %d of %d model(s) have timm results in %s", len(matched), len(models), folder)
    return ShiftBoard(table=table, source=str(folder), matched=matched, unmatched=unmatched, fits=fits)


def _fmt(value: Any, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def shifts_markdown(shifts: ShiftBoard) -> str:
    """The human table: percent, gaps and effective robustness in points, with what each gap is against."""
    from tabulate import tabulate

    headers = ["model", "shift", "ImageNet-val top-1 (%)", "top-1 (%)", "gap (pt)", "eff. robustness (pt)"]
    body = [[r.model, SHIFTS[r.shift].label, _fmt(r.imagenet_top1), _fmt(r.top1), _fmt(r.gap_top1, True),
             _fmt(r.effective_robustness, True)] for r in shifts.table.itertuples(index=False)]
    total = len(shifts.matched) + len(shifts.unmatched)
    lines = ["# LAIONet among the distribution shifts", "",
             f"{len(shifts.matched)} of {total} model(s) have timm results (matched by exact name).", "",
             tabulate(body, headers=headers, tablefmt="github", disable_numparse=True), "",
             "Gap = ImageNet-val top-1 − the shift's top-1, in points; each is against:", ""]
    lines += [f"- {s.label}: {s.note}." for s in SHIFTS.values()]
    lines += ["", "Effective robustness: the leaderboard's logit-linear fit, per shift, over the models above "
              "(CLIP zero-shot models left out when enough others remain)."]
    if shifts.unmatched:
        lines += ["", "No timm results (LAIONet only): " + ", ".join(f"`{m}`" for m in shifts.unmatched) + "."]
    lines += ["", f"timm results: {shifts.source} (huggingface/pytorch-image-models, Apache-2.0)."]
    return "\n".join(lines) + "\n"


def _shifts_csv(shifts: ShiftBoard) -> str:
    return csv_safe(shifts.table).to_csv(index=False)


def _shifts_json(shifts: ShiftBoard) -> str:
    return json.dumps({"meta": shifts.meta(), "rows": _records(shifts.table)}, indent=2) + "\n"


def write_shifts(shifts: ShiftBoard, out_dir: str | Path, *, formats: Iterable[str] = tuple(SHIFT_FILES),
                 plots: bool = True) -> list[Path]:
    """Write ``shifts.{md,csv,json}`` (the ``formats`` among them) and ``shifts.png`` under ``out_dir``."""
    out = Path(out_dir)
    renderers = {"md": shifts_markdown, "csv": _shifts_csv, "json": _shifts_json}
    written = []
    for name in dict.fromkeys(formats):
        if name in renderers:  # the leaderboard's html has no shifts page
            path = out / SHIFT_FILES[name]
            write_text_atomic(path, renderers[name](shifts))
            written.append(path)
    if plots:
        from .plots import plot_shifts

        labels = {k: s.legend for k, s in SHIFTS.items()}
        written.append(plot_shifts(shifts.table, labels, out / SHIFT_FIGURE))
    return written
