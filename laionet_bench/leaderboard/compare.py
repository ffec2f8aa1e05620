"""Diff two result sets metric by metric, and fail CI when a metric worsens by more than allowed.

Either side is a results folder (``laionet-bench run --out``), a ``leaderboard.json`` or a
``leaderboard.csv``. Rows are matched on (model, protocol, datasets), then a model left alone on each side is
matched by name (a changed protocol or dataset is warned about); a model with several rows is shown as
``model [protocol; datasets]``. Every registered metric on the board is compared,
with its direction from the metric registry (a falling gap is an improvement). Values, deltas and
standard errors are **fractions** (``0.025`` is 2.5 points), like results and the plugin's bounds; only
rendered text shows points.

A rule ``METRIC:+DELTA`` (``gap_top1:+0.01``, or in points ``gap_top1:+1pt``) is violated when METRIC
worsens by more than DELTA for a model present on both sides. With ``significance=k`` a worsening counts
only beyond ``k`` combined standard errors, the tolerance rule of the plugin's bounds
(:mod:`laionet_bench.checks.gap`): violated when ``worsening − k·sqrt(se_a² + se_b²) > DELTA``; an
unknown SE counts as violated. A model of A missing from B makes the comparison fail (``ok`` is false).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, ResultsError
from ..evaluation.metrics import Z95
from ..evaluation.results import read_results
from .columns import COLUMNS, DTYPES, METRICS, get_metric
from .render import csv_unescape
from .table import build_table

__all__ = ["COMPARED_METRICS", "KEY_COLUMNS", "POINTS", "Comparison", "FailRule", "compare_tables", "load_table",
           "resolve_metric"]

logger = logging.getLogger(__name__)

#: Registered metrics that are leaderboard columns, in registry order.
COMPARED_METRICS = tuple(m for m in METRICS if m in COLUMNS)
#: Short names accepted in rules.
ALIASES = {"gap": "gap_top1", "gap_lw": "gap_lw_top1", "er": "effective_robustness",
           "laionet": "laionet_top1", "imagenet": "imagenet_top1"}
_RULE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*:\s*\+?\s*([0-9]*\.?[0-9]+)\s*(pt|pp)?\s*$")
#: The leaderboard table holds percent points; compare's data are fractions.
POINTS = 100.0
#: The columns that identify a row (one result), as :func:`~laionet_bench.evaluation.results.result_key`.
KEY_COLUMNS = ("model", "protocol", "datasets")


def resolve_metric(name: str) -> str:
    """A comparable metric name from a name or alias (``gap`` → ``gap_top1``); unknown names get suggestions."""
    name = ALIASES.get(name.strip(), name.strip())
    get_metric(name)
    if name not in COMPARED_METRICS:
        raise ConfigError(f"metric {name!r} is not a leaderboard column; use one of {', '.join(COMPARED_METRICS)}")
    return name


@dataclass(frozen=True)
class FailRule:
    """Fail when ``metric`` worsens by more than ``max_worsening`` (a fraction: 0.01 is one point)."""

    metric: str
    max_worsening: float

    @classmethod
    def parse(cls, text: str) -> FailRule:
        """``"gap_top1:+0.01"`` or ``"gap_top1:+1pt"`` → FailRule("gap_top1", 0.01); metrics are checked.

        A bare DELTA of 1 or more is refused: it would be a worsening of 100 points, and is almost
        surely a value in points written before compare switched to fractions.
        """
        match = _RULE.match(text)
        if not match:
            raise ConfigError(f"--fail {text!r}: expected METRIC:+DELTA as a fraction or in points, "
                              "e.g. gap_top1:+0.01 or gap_top1:+1pt")
        metric, value = resolve_metric(match.group(1)), float(match.group(2))
        if match.group(3):
            value /= POINTS
        elif value >= 1:
            raise ConfigError(f"--fail {text!r}: DELTA is a fraction (0.01 = 1 point); "
                              f"write {metric}:+{value / POINTS:g} or {metric}:+{value:g}pt")
        return cls(metric, value)

    def __str__(self) -> str:
        return f"{self.metric}:+{self.max_worsening:g}"


@dataclass
class Comparison:
    """The per-model, per-metric diff and the rule violations it holds."""

    diff: pd.DataFrame  # model, metric, a, b, delta, delta_se, worsening, significant, status (fractions)
    violations: pd.DataFrame  # the diff rows breaking a rule, with the rule
    models_added: list[str]
    models_removed: list[str]  # in A, not in B: a gate cannot pass on a model it did not see
    allow_missing: bool = False

    @property
    def ok(self) -> bool:
        return self.violations.empty and (self.allow_missing or not self.models_removed)

    def changes(self) -> pd.DataFrame:
        """Only regressions and improvements."""
        return self.diff[self.diff["status"].isin(["regressed", "improved"])]


def _from_json(path: Path) -> pd.DataFrame:
    try:
        data = json.loads(path.read_text("utf-8"))
        return pd.DataFrame(data["models"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ResultsError(f"{path}: not a leaderboard.json ({exc}); pass a results folder instead") from None


def _keys(frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    """Each row's (model, protocol, datasets); a column a table does not have (older boards) reads as ""."""
    columns = [frame[c].astype("string").fillna("").tolist() if c in frame else [""] * len(frame) for c in KEY_COLUMNS]
    return list(zip(*columns, strict=True)) if len(frame) else []


def _check_unique(frame: pd.DataFrame, where: object) -> None:
    """Refuse a table holding one result twice: its rows could not be told apart."""
    counts = Counter(_keys(frame))
    twice = [key for key, n in counts.items() if n > 1]
    if twice:
        model, protocol, datasets = twice[0]
        raise ResultsError(f"{where}: model {model!r} has {counts[twice[0]]} rows with the same protocol "
                           f"({protocol or 'none given'}) and datasets ({datasets or 'none given'}): keep one row per result")


def load_table(path: str | Path) -> pd.DataFrame:
    """The leaderboard frame of a results folder, a ``leaderboard.json`` or a ``leaderboard.csv``."""
    path = Path(path)
    if path.is_dir():
        return build_table(read_results(path))[0]
    if not path.is_file():
        raise ResultsError(f"{path}: no such results folder or leaderboard file")
    frame = _from_json(path) if path.suffix == ".json" else csv_unescape(pd.read_csv(path))
    missing = {"model", *COMPARED_METRICS} - set(frame.columns)
    if "model" in missing:
        raise ResultsError(f"{path}: no 'model' column; is this a leaderboard file?")
    for column in missing:
        frame[column] = math.nan
    _check_unique(frame, path)
    return frame.astype({c: t for c, t in DTYPES.items() if c in frame.columns})


def _pair_rows(a_keys: list[tuple[str, str, str]], b_keys: list[tuple[str, str, str]]) -> list[tuple[int, int]]:
    """Row pairs (position in A, position in B): the same (model, protocol, datasets) first, then a model left
    exactly once on each side whatever its protocol or datasets (the difference is warned about)."""
    b_at = {key: j for j, key in enumerate(b_keys)}
    pairs = [(i, b_at[key]) for i, key in enumerate(a_keys) if key in b_at]
    paired_a, paired_b = {i for i, _ in pairs}, {j for _, j in pairs}
    rest_a = [i for i in range(len(a_keys)) if i not in paired_a]
    rest_b = [j for j in range(len(b_keys)) if j not in paired_b]
    count_a, count_b = Counter(a_keys[i][0] for i in rest_a), Counter(b_keys[j][0] for j in rest_b)
    alone_b = {b_keys[j][0]: j for j in rest_b if count_b[b_keys[j][0]] == 1}
    return pairs + [(i, alone_b[a_keys[i][0]]) for i in rest_a
                    if count_a[a_keys[i][0]] == 1 and a_keys[i][0] in alone_b]


def _labels(keys: list[tuple[str, str, str]], several: set[str]) -> list[str]:
    """The model name, with protocol and datasets for a model that has several rows on either side."""
    return [f"{model} [{protocol}; {datasets}]" if model in several else model for model, protocol, datasets in keys]


def _metric_diff(a: pd.DataFrame, b: pd.DataFrame, metric: str, tolerance: float) -> pd.DataFrame:
    higher = get_metric(metric).higher_is_better
    va, vb = a[metric].astype(float) / POINTS, b[metric].astype(float) / POINTS
    se_col = f"{metric}_se"
    se_a = a[se_col].astype(float) / POINTS if se_col in a else pd.Series(np.nan, index=a.index)
    se_b = b[se_col].astype(float) / POINTS if se_col in b else pd.Series(np.nan, index=b.index)
    delta = vb - va
    delta_se = np.hypot(se_a, se_b)
    worsening = -delta if higher else delta
    status = np.select([delta.isna(), worsening > tolerance, worsening < -tolerance],
                       ["missing", "regressed", "improved"], "unchanged")
    return pd.DataFrame({
        "model": a.index, "metric": metric, "a": va.to_numpy(), "b": vb.to_numpy(), "delta": delta.to_numpy(),
        "delta_se": delta_se.to_numpy(), "worsening": worsening.to_numpy(),
        "significant": (delta.abs() > Z95 * delta_se).to_numpy(), "status": status,
    })


#: Per key column but the model: how a pair that differs in it is described in the warning.
_MIXED = {"protocol": "scored under different metric protocols", "datasets": "evaluated on different datasets"}
_MIXED_NOTE = {"protocol": "the protocol's (docs/evaluation.md, Protocols)", "datasets": "the datasets'"}


def _warn_on_mixed(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """A model matched across protocols (``ours`` vs ``official``) or datasets differs by those too."""
    for column, what in _MIXED.items():
        if column not in a or column not in b:
            continue  # tables written before the column existed
        mixed = a.index[(a[column].astype(str) != b[column].astype(str)).to_numpy()]
        if len(mixed):
            logger.warning("%d model(s) were %s (e.g. %s: %s vs %s): their differences include %s", len(mixed), what,
                           mixed[0], a.at[mixed[0], column], b.at[mixed[0], column], _MIXED_NOTE[column])


def compare_tables(
    a: pd.DataFrame,
    b: pd.DataFrame,
    *,
    rules: Iterable[FailRule] = (),
    metrics: Sequence[str] = COMPARED_METRICS,
    tolerance: float = 1e-9,
    significance: float | None = None,
    allow_missing: bool = False,
) -> Comparison:
    """Compare leaderboard frames ``a`` (baseline) and ``b`` (candidate) over the models in both.

    ``significance``: ``k`` standard errors a worsening must exceed to break a rule (None:
    any worsening beyond DELTA breaks it). ``allow_missing``: a model of ``a`` absent from ``b`` does not
    make the comparison fail.
    """
    rules = list(rules)
    k = significance
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, int | float) or not math.isfinite(k) or k < 0:
            raise ConfigError(f"significance {k!r} must be a finite number of standard errors >= 0")
        for rule in rules:
            if f"{rule.metric}_se" not in COLUMNS:
                raise ConfigError(f"--fail {rule}: {rule.metric} has no standard error, so --significant "
                                  "cannot judge it; drop the rule or --significant")
    _check_unique(a, "table A")
    _check_unique(b, "table B")
    a_keys, b_keys = _keys(a), _keys(b)
    several = {m for keys in (a_keys, b_keys) for m, n in Counter(k[0] for k in keys).items() if n > 1}
    a_labels, b_labels = _labels(a_keys, several), _labels(b_keys, several)
    pairs = sorted(_pair_rows(a_keys, b_keys), key=lambda pair: a_labels[pair[0]])
    common = [a_labels[i] for i, _ in pairs]
    a_idx = a.iloc[[i for i, _ in pairs]].set_axis(common)
    b_idx = b.iloc[[j for _, j in pairs]].set_axis(common)
    _warn_on_mixed(a_idx, b_idx)
    parts = [_metric_diff(a_idx, b_idx, m, tolerance) for m in metrics if m in a_idx and m in b_idx]
    diff = pd.concat(parts, ignore_index=True) if parts and common else pd.DataFrame(
        columns=["model", "metric", "a", "b", "delta", "delta_se", "worsening", "significant", "status"])
    broken = []
    for rule in rules:
        rows = diff[diff["metric"] == rule.metric]
        worsening = rows["worsening"].astype(float)
        if k is not None:
            worsening = (worsening - k * rows["delta_se"].astype(float)).fillna(math.inf)
        rows = rows[(worsening > rule.max_worsening + tolerance) & rows["worsening"].notna()]
        broken.append(rows.assign(rule=str(rule)))
    violations = pd.concat(broken, ignore_index=True) if broken else diff.iloc[0:0].assign(rule="")
    paired_a, paired_b = {i for i, _ in pairs}, {j for _, j in pairs}
    return Comparison(diff=diff, violations=violations,
                      models_added=sorted(label for j, label in enumerate(b_labels) if j not in paired_b),
                      models_removed=sorted(label for i, label in enumerate(a_labels) if i not in paired_a),
                      allow_missing=allow_missing)
