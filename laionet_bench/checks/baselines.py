"""Per-class LAIONet recall baselines kept in the user's repo, and regression detection against them.

A baseline is one JSON file per model (``<dir>/<model slug>.json``, by default
``tests/laionet_baselines/``) holding every class's LAIONet recall, its standard error and its count,
plus a tolerance in standard errors. A class *regresses* when its recall fell by more than
``tolerance × sqrt(se_baseline² + se_now²)``. The file's ``tolerance`` applies to every class; a
class entry may carry its own ``"tolerance"`` to loosen or tighten just that class (kept when the
baseline is rewritten). Baselines are written by ``pytest --laionet-update-baseline`` or
:func:`write_baseline`.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from .._io import read_json, slug, write_text_atomic
from ..catalog import load_catalog
from ..errors import BaselineError, ConfigError, ResultsError, RobustnessError
from ..evaluation.results import ModelResult
from ..version import __version__
from .recorder import record
from .tolerance import METRIC_CHOICES, parse_tolerance

__all__ = [
    "BASELINE_SCHEMA",
    "DEFAULT_TOLERANCE",
    "Baseline",
    "BaselineComparison",
    "Regression",
    "assert_no_regression",
    "baseline_path",
    "compare_to_baseline",
    "read_baseline",
    "write_baseline",
]

BASELINE_SCHEMA = 1
#: Default regression tolerance, in standard errors of the per-class recall difference.
DEFAULT_TOLERANCE = 2.0
#: Most regressed classes listed in a failure message.
MAX_LISTED = 20

logger = logging.getLogger(__name__)


def baseline_path(directory: str | Path, model: str) -> Path:
    """Where the baseline of ``model`` lives inside ``directory``."""
    return Path(directory) / f"{slug(model)}.json"


@dataclass
class Baseline:
    """Per-class LAIONet recalls of one model at the time the baseline was written."""

    model: str
    dataset: str  # the LAIONet dataset spec the recalls were measured on
    tolerance: float  # standard errors
    classes: dict[str, dict]  # wnid -> {name, n, top1, se_top1, top5, se_top5[, tolerance]}
    created: str = ""
    harness_version: str = __version__
    schema_version: int = BASELINE_SCHEMA

    def to_dict(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "model": self.model,
            "dataset": self.dataset,
            "tolerance": self.tolerance,
            "created": self.created,
            "harness_version": self.harness_version,
            "classes": self.classes,
        }

    @classmethod
    def from_dict(cls, data: dict, *, path: str = "<baseline>") -> Baseline:
        """A baseline from its JSON, every field checked: a value that cannot be compared would switch the check off."""
        if not isinstance(data, dict):
            raise BaselineError(f"{path}: holds a JSON {type(data).__name__}, not a baseline object; {_REWRITE}")
        if data.get("schema_version") != BASELINE_SCHEMA:
            raise BaselineError(f"{path}: baseline schema {data.get('schema_version')!r} is not {BASELINE_SCHEMA}; "
                               "rewrite it with pytest --laionet-update-baseline")
        for name in ("model", "dataset"):
            _check(isinstance(data.get(name), str) and data[name], path, name, data.get(name), "a non-empty string")
        _check(isinstance(data.get("classes"), dict), path, "classes", data.get("classes"), "an object wnid → entry")
        for wnid, entry in data["classes"].items():
            _check_class(wnid, entry, path)
        return cls(model=data["model"], dataset=data["dataset"], tolerance=_tolerance(data.get("tolerance"), path,
                   "tolerance"), classes=dict(data["classes"]), created=data.get("created", ""),
                   harness_version=data.get("harness_version", ""))


#: What to do about a baseline file that cannot be used.
_REWRITE = "fix it or rewrite it with pytest --laionet-update-baseline"


def _bad(path: str, field: str, value: object, expected: str) -> BaselineError:
    return BaselineError(f"{path}: field {field!r} is {json.dumps(value)[:40]}, not {expected}; {_REWRITE}")


def _check(ok: object, path: str, field: str, value: object, expected: str) -> None:
    if not ok:
        raise _bad(path, field, value, expected)


def _tolerance(value: object, path: str, field: str) -> float:
    try:
        return parse_tolerance(value)
    except ConfigError:
        raise _bad(path, field, value, "'se' or a finite number of standard errors >= 0") from None


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_class(wnid: str, entry: object, path: str) -> None:
    """One class entry: a catalogue wnid, recalls in [0, 1], SEs >= 0, a positive count, its own tolerance if any."""
    _check(wnid in load_catalog(), path, f"classes.{wnid}", wnid, "keyed by an ImageNet-1k wnid")
    if not isinstance(entry, dict):
        raise _bad(path, f"classes.{wnid}", entry, "an object")
    n = entry.get("n")
    _check(_is_number(n) and n == int(n) and n >= 1, path, f"classes.{wnid}.n", n, "a count >= 1")
    for metric in METRIC_CHOICES:
        recall, se = entry.get(metric), entry.get(f"se_{metric}")
        _check(_is_number(recall) and 0 <= recall <= 1, path, f"classes.{wnid}.{metric}", recall, "a recall in [0, 1]")
        _check(_is_number(se) and se >= 0, path, f"classes.{wnid}.se_{metric}", se, "a standard error >= 0")
    if "tolerance" in entry:
        _tolerance(entry["tolerance"], path, f"classes.{wnid}.tolerance")


def read_baseline(path: str | Path) -> Baseline:
    """Read a baseline file (``BaselineError`` naming the file and the field when it is broken)."""
    return Baseline.from_dict(read_json(path, error=BaselineError, fix=_REWRITE), path=str(path))


def _class_entries(result: ModelResult) -> dict[str, dict]:
    table = result.per_class
    if table is None:
        raise ResultsError(f"result for {result.model!r} has no per-class table (per_class.parquet): "
                           "a baseline needs per-class recalls; re-run the evaluation")
    entries: dict[str, dict] = {}
    for row in table.to_dict("records"):
        if not row.get("laionet_n"):
            continue
        entries[row["wnid"]] = {
            "name": row["name"],
            "n": int(row["laionet_n"]),
            **{f"{p}{m}": float(row[f"laionet_{p}{m}"]) for m in METRIC_CHOICES for p in ("", "se_")},
        }
    return dict(sorted(entries.items()))


def _previous_baseline(path: Path) -> Baseline | None:
    """The baseline being rewritten, for its tolerances; a broken one is what the rewrite is for, so it is skipped."""
    try:
        return read_baseline(path)
    except FileNotFoundError:
        return None
    except BaselineError as exc:
        logger.warning("rewriting %s without its old tolerances: %s", path, exc)
        return None


def write_baseline(result: ModelResult, directory: str | Path, *, tolerance: float | None = None) -> Path:
    """Write (or rewrite) the baseline of ``result.model``; keeps the old file's tolerances."""
    path = baseline_path(directory, result.model)
    previous = _previous_baseline(path)
    classes = _class_entries(result)
    if previous is not None:
        for wnid, entry in previous.classes.items():
            if "tolerance" in entry and wnid in classes:
                classes[wnid]["tolerance"] = entry["tolerance"]
    chosen = tolerance if tolerance is not None else previous.tolerance if previous else DEFAULT_TOLERANCE
    baseline = Baseline(
        model=result.model, dataset=result.datasets["laionet"].dataset, tolerance=parse_tolerance(chosen),
        classes=classes, created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )
    write_text_atomic(path, json.dumps(baseline.to_dict(), indent=2, allow_nan=True) + "\n")
    return path


@dataclass(frozen=True)
class Regression:
    """One class whose recall fell beyond its tolerance."""

    wnid: str
    name: str
    baseline: float
    current: float
    se: float  # SE of the difference
    tolerance: float

    @property
    def drop_in_se(self) -> float:
        return (self.baseline - self.current) / self.se if self.se > 0 else math.inf


@dataclass(frozen=True)
class BaselineComparison:
    """The outcome of comparing a result with its baseline."""

    model: str
    metric: str
    path: str
    tolerance: float
    n_compared: int
    regressions: tuple[Regression, ...] = ()
    missing: tuple[str, ...] = ()  # baseline classes without a LAIONet recall now
    written: bool = False  # the baseline was (re)written instead of compared
    absent: bool = False  # there is no baseline file: nothing was compared, which is not a pass

    @classmethod
    def no_baseline(cls, model: str, metric: str, path: str, tolerance: float | None = None) -> BaselineComparison:
        """The failing outcome of a check whose baseline file does not exist (as in pytest-regressions).

        ``tolerance`` is the one a baseline written now would get (default :data:`DEFAULT_TOLERANCE`).
        """
        return cls(model=model, metric=metric, path=path, n_compared=0, absent=True,
                   tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance)

    @property
    def passed(self) -> bool:
        return not self.regressions and not self.missing and not self.absent

    @property
    def status(self) -> str:
        if self.written:
            return "written"
        if self.absent:
            return "no baseline"
        if self.passed:
            return f"ok ({self.n_compared} classes)"
        return f"{len(self.regressions) + len(self.missing)} regressed"

    def message(self) -> str:
        """Multi-line report listing the regressed classes, worst first."""
        if self.absent:
            return (f"no LAIONet per-class baseline for {self.model!r} at {self.path}: write it with "
                    "pytest --laionet-update-baseline and commit it (or set laionet_missing_baseline = skip, "
                    "or baseline=False on the marker)")
        lines = [f"LAIONet per-class {self.metric} regression for {self.model!r} against {self.path} "
                 f"(tolerance {self.tolerance:g} SE): {len(self.regressions)} of {self.n_compared} classes regressed"]
        if self.regressions:
            from tabulate import tabulate

            ranked = sorted(self.regressions, key=lambda r: -r.drop_in_se)
            rows = [[r.wnid, r.name, r.baseline, r.current, r.baseline - r.current, r.se, r.drop_in_se]
                    for r in ranked[:MAX_LISTED]]
            table = tabulate(rows, headers=["wnid", "class", "baseline", "now", "drop", "SE", "drop/SE"],
                             floatfmt=".4f")
            lines += ["  " + line for line in table.splitlines()]
            if len(ranked) > MAX_LISTED:
                lines.append(f"  ... and {len(ranked) - MAX_LISTED} more")
        if self.missing:
            lines.append(f"  classes in the baseline without a LAIONet recall now: {', '.join(self.missing)}")
        lines.append("if the change is intended, rewrite the baseline: pytest --laionet-update-baseline")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "kind": "baseline",
            "model": self.model,
            "metric": self.metric,
            "path": self.path,
            "tolerance": self.tolerance,
            "n_compared": self.n_compared,
            "written": self.written,
            "absent": self.absent,
            "passed": self.passed,
            "status": self.status,
            "regressions": [{**r.__dict__, "drop_in_se": r.drop_in_se} for r in self.regressions],
            "missing": list(self.missing),
        }


def compare_to_baseline(
    result: ModelResult, baseline: Baseline, *, metric: str = "top1", tolerance: float | None = None,
    path: str = "<baseline>",
) -> BaselineComparison:
    """Compare per-class LAIONet recalls with ``baseline``.

    ``tolerance`` (standard errors) replaces the file's tolerance; a class's own ``tolerance`` wins over both.
    """
    if metric not in METRIC_CHOICES:
        raise ConfigError(f"metric {metric!r} is not one of {METRIC_CHOICES}")
    if baseline.model != result.model:
        raise BaselineError(f"{path}: field 'model' is {baseline.model!r}, not {result.model!r}: this is another "
                            f"model's baseline; {_REWRITE}")
    default = parse_tolerance(tolerance) if tolerance is not None else baseline.tolerance
    current = _class_entries(result)
    regressions, missing = [], []
    for wnid, before in baseline.classes.items():
        now = current.get(wnid)
        if now is None or math.isnan(now[metric]):
            missing.append(wnid)
            continue
        k = parse_tolerance(before.get("tolerance", default))
        se = math.hypot(before[f"se_{metric}"], now[f"se_{metric}"])
        if before[metric] - now[metric] > k * se:
            regressions.append(Regression(wnid, before.get("name", ""), before[metric], now[metric], se, k))
    return BaselineComparison(model=result.model, metric=metric, path=path, tolerance=default,
                              n_compared=len(baseline.classes) - len(missing),
                              regressions=tuple(regressions), missing=tuple(missing))


def assert_no_regression(
    result: ModelResult, baseline: str | Path, *, metric: str = "top1", tolerance: float | None = None,
) -> BaselineComparison:
    """Fail (``RobustnessError``) when a class regressed against the baseline file (or folder) ``baseline``."""
    path = Path(baseline)
    if path.is_dir() or not path.suffix:
        path = baseline_path(path, result.model)
    if not path.exists():
        raise BaselineError(f"{path}: no baseline for {result.model!r}; write it with pytest --laionet-update-baseline")
    comparison = compare_to_baseline(result, read_baseline(path), metric=metric, tolerance=tolerance, path=str(path))
    record(comparison)
    if not comparison.passed:
        raise RobustnessError(comparison.message())
    return comparison
