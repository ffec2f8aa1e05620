"""Robustness assertions over a :class:`~laionet_bench.evaluation.results.ModelResult`, with one tolerance rule.

A check compares a measured quantity with a bound chosen per test:

* ``max_gap``: the gap (ImageNet-val − LAIONet accuracy over LAIONet's classes) must not exceed it;
* ``min_accuracy``: the LAIONet accuracy must reach it.

**Tolerance.** Both numbers are estimates with a standard error (SE, ``metrics``). A tolerance of
``k`` standard errors moves the measured value ``k`` SEs in the model's favour before comparing::

    gap passes       when  gap.value − k·gap.se ≤ max_gap
    accuracy passes  when  acc.value + k·acc.se ≥ min_accuracy

``tolerance="se"`` means ``k = 1``; a number means ``k`` SEs (``0`` is the strict bound). The SE of the
gap combines both datasets' SEs (``metrics.gap``). A bound on an undefined (NaN) value fails.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, RobustnessError
from ..evaluation.metrics import Estimate
from ..evaluation.results import ModelResult
from .recorder import record
from .tolerance import metric_key, parse_tolerance

__all__ = [
    "RobustnessCheck",
    "assert_robustness_gap",
    "check_robustness",
    "format_worst_classes",
    "worst_classes",
]

#: How many classes a failure message lists.
WORST_CLASSES = 5


def worst_classes(result: ModelResult, metric: str = "top1", *, limit: int = WORST_CLASSES) -> list[dict]:
    """The classes whose recall drop is most significant (or, without ImageNet-val, the lowest LAIONet recall).

    Ranked by ``drop / sqrt(se_imagenet² + se_laionet²)``, not by the raw drop: a 1-image class that
    lost its one image drops by 1.0 on no evidence, while a 100-image class that lost 30 points is a
    finding. Ties keep wnid order, so the list is the same on every machine.
    """
    table = result.per_class
    if table is None or table.empty:
        return []
    drop = f"drop_{metric}"
    columns = ["wnid", "name", f"imagenet_{metric}", f"laionet_{metric}", drop, "drop_in_se", "laionet_n"]
    if drop in table.columns:
        se = np.hypot(table[f"imagenet_se_{metric}"].astype(float), table[f"laionet_se_{metric}"].astype(float))
        ranked = table.assign(drop_in_se=table[drop].astype(float) / se).dropna(subset=[drop, "drop_in_se"])
        picked = ranked.sort_values(["drop_in_se", "wnid"], ascending=[False, True]).head(limit)
    else:
        ranked = table.dropna(subset=[f"laionet_{metric}"])
        picked = ranked.sort_values([f"laionet_{metric}", "wnid"]).head(limit)
    picked = picked[[c for c in columns if c in picked.columns]]
    return [{k: _plain(v) for k, v in row.items()} for row in picked.to_dict("records")]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def format_worst_classes(rows: list[dict], metric: str) -> str:
    """A fixed-width table of :func:`worst_classes` rows for a CI log."""
    if not rows:
        return "  (no per-class table in this result)"
    from tabulate import tabulate

    drop = f"drop_{metric}" in rows[0]
    title = (f"classes with the most significant {metric} recall drop (ImageNet-val − LAIONet, "
             "ranked by drop/SE):" if drop
             else f"classes with the lowest LAIONet {metric} recall:")
    headers = {"wnid": "wnid", "name": "class", f"imagenet_{metric}": "imagenet", f"laionet_{metric}": "laionet",
               f"drop_{metric}": "drop", "drop_in_se": "drop/SE", "laionet_n": "n laionet"}
    table = tabulate([[r[k] for k in headers if k in r] for r in rows],
                     headers=[v for k, v in headers.items() if k in rows[0]], floatfmt=".4f")
    return title + "\n" + "\n".join("  " + line for line in table.splitlines())


@dataclass(frozen=True)
class RobustnessCheck:
    """The outcome of one check: what was measured, against which bounds, and what failed."""

    model: str
    metric: str  # "top1" | "top5"
    weighting: str  # "equi" | "laion"
    tolerance: float  # in standard errors
    accuracy: Estimate  # LAIONet accuracy
    gap: Estimate | None  # ImageNet-val − LAIONet; None without ImageNet-val
    max_gap: float | None
    min_accuracy: float | None
    failures: tuple[str, ...] = ()
    worst: list[dict] = field(default_factory=list, compare=False)

    @property
    def passed(self) -> bool:
        return not self.failures

    def message(self) -> str:
        """Multi-line report: measured values, bounds, SEs and (on failure) the worst classes."""
        state = "failed" if self.failures else "passed"
        head = (f"LAIONet robustness check {state} for {self.model!r} "
                f"({self.metric}, {self.weighting}-weighted, tolerance {self.tolerance:g} SE):")
        lines = [head, *(f"  {f}" for f in self.failures)]
        if self.failures:
            lines.append(format_worst_classes(self.worst, self.metric))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "kind": "gap",
            "model": self.model,
            "metric": self.metric,
            "weighting": self.weighting,
            "tolerance": self.tolerance,
            "accuracy": self.accuracy.to_dict(),
            "gap": self.gap.to_dict() if self.gap else None,
            "max_gap": self.max_gap,
            "min_accuracy": self.min_accuracy,
            "passed": self.passed,
            "failures": list(self.failures),
            "worst_classes": self.worst,
        }


def _gap_failure(gap: Estimate | None, max_gap: float, k: float) -> str | None:
    if gap is None:
        return (f"max_gap {max_gap:.4f} needs ImageNet-val results: re-run the evaluation with "
                "--imagenet PATH so the result holds both datasets")
    limit = max_gap + k * gap.se
    if math.isnan(gap.value) or math.isnan(limit):
        return f"gap is undefined (NaN, SE {gap.se:.4f}); bound max_gap {max_gap:.4f}"
    if gap.value <= limit:
        return None
    return (f"gap = {gap.value:.4f} (SE {gap.se:.4f}) exceeds max_gap {max_gap:.4f}"
            f" + {k:g} SE = {limit:.4f}")


def _accuracy_failure(acc: Estimate, min_accuracy: float, k: float) -> str | None:
    limit = min_accuracy - k * acc.se
    if math.isnan(acc.value) or math.isnan(limit):
        return f"LAIONet accuracy is undefined (NaN, SE {acc.se:.4f}); bound min_accuracy {min_accuracy:.4f}"
    if acc.value >= limit:
        return None
    return (f"LAIONet accuracy = {acc.value:.4f} (SE {acc.se:.4f}) is below min_accuracy {min_accuracy:.4f}"
            f" − {k:g} SE = {limit:.4f}")


def check_robustness(
    result: ModelResult,
    *,
    max_gap: float | None = None,
    min_accuracy: float | None = None,
    metric: str = "top1",
    weighting: str = "equi",
    tolerance: str | float = "se",
) -> RobustnessCheck:
    """Measure ``result`` against the bounds without raising (see the module doc for the rule)."""
    key = metric_key(metric, weighting)
    k = parse_tolerance(tolerance)
    for name, bound in (("max_gap", max_gap), ("min_accuracy", min_accuracy)):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | float)):
            raise ConfigError(f"{name}={bound!r} must be a number (an accuracy in [0, 1])")
    if "laionet" not in result.datasets:
        raise ConfigError(f"result for {result.model!r} has no LAIONet summary: it is not a LAIONet evaluation")
    accuracy: Estimate = getattr(result.datasets["laionet"], key)
    gaps: Mapping[str, Estimate] = result.gaps
    gap = gaps.get(key)
    failures = [
        msg for msg in (
            _gap_failure(gap, max_gap, k) if max_gap is not None else None,
            _accuracy_failure(accuracy, min_accuracy, k) if min_accuracy is not None else None,
        ) if msg
    ]
    return RobustnessCheck(
        model=result.model, metric=metric, weighting=weighting, tolerance=k, accuracy=accuracy, gap=gap,
        max_gap=max_gap, min_accuracy=min_accuracy, failures=tuple(failures),
        worst=worst_classes(result, metric) if failures else [],
    )


def assert_robustness_gap(
    result: ModelResult,
    *,
    max_gap: float | None = None,
    min_accuracy: float | None = None,
    metric: str = "top1",
    weighting: str = "equi",
    tolerance: str | float = "se",
) -> RobustnessCheck:
    """Fail (``RobustnessError``, an ``AssertionError``) unless ``result`` is within the bounds.

    Args:
        result: a model's evaluation (``laionet`` fixture, :func:`laionet_bench.read_results` ...).
        max_gap: largest acceptable ImageNet-val − LAIONet accuracy gap, e.g. ``0.08``.
        min_accuracy: smallest acceptable LAIONet accuracy.
        metric: ``"top1"`` or ``"top5"``.
        weighting: ``"equi"`` (mean of per-class recalls) or ``"laion"`` (weighted by LAIONet class share).
        tolerance: ``"se"`` (1 standard error) or a number of standard errors; ``0`` is strict.

    Returns:
        The passed :class:`RobustnessCheck` (measured values, for further assertions).
    """
    check = check_robustness(result, max_gap=max_gap, min_accuracy=min_accuracy, metric=metric,
                             weighting=weighting, tolerance=tolerance)
    record(check)
    if not check.passed:
        raise RobustnessError(check.message())
    return check
