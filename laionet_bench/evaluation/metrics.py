"""The paper's accuracy metrics (SPEC §4), as pure functions over per-row correctness.

* per-class recall (top-1 / top-5) with the reference's Wilson standard error
  (95% Wilson interval half-width / 1.96);
* equi-weighted accuracy: unweighted mean of per-class recalls over a class set,
  SE = sqrt(Σ se²) / K;
* LAION-weighted accuracy: Σ w·recall / Σ w over the classes that have a recall (renormalised),
  SE = sqrt(Σ (w·se)²) / Σ w, with w = the class's share of LAIONet rows (before the OCR drop);
* the gap (ImageNet − LAIONet) with SE = sqrt(se_a² + se_b²);
* effective robustness: a linear fit of logit(LAIONet acc) on logit(ImageNet acc) over a reference
  model set; each model's residual, back in accuracy units.

Only the statistics live here. Which of them are leaderboard columns, and whether higher is better,
is declared next to the leaderboard, in :mod:`laionet_bench.leaderboard.columns`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..errors import ResultsError

__all__ = [
    "Z95",
    "Z95_LITERAL",
    "Estimate",
    "RobustnessFit",
    "equi_weighted",
    "fit_effective_robustness",
    "gap",
    "laion_weighted",
    "micro_accuracy",
    "per_class_recall",
    "wilson_se",
]

Z95 = 1.959963984540054
#: The reference divides the Wilson half-width by this literal (protocol ``official``).
Z95_LITERAL = 1.96


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its standard error (both plain floats; NaN when undefined)."""

    value: float
    se: float

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> Estimate:
        return cls(float(data["value"]), float(data["se"]))


def wilson_se(successes, n, *, protocol: str = "ours") -> np.ndarray:
    """Reference per-class SE: half-width of the 95% Wilson score interval divided by 1.96.

    ``ours`` divides by the exact z (:data:`Z95`), ``official`` by the reference's literal 1.96
    (:data:`Z95_LITERAL`). Vectorised; NaN where ``n == 0``.
    """
    k = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denom = 1 + Z95**2 / n
        half = Z95 * np.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2)) / denom
    return np.where(n > 0, half / (Z95_LITERAL if protocol == "official" else Z95), np.nan)


def _correctness(values: Iterable, name: str) -> np.ndarray:
    """Per-row correctness as bools; None or NaN is refused: a missing prediction is not a wrong one."""
    raw = pd.Series(list(values), dtype=object)
    missing = raw.isna().to_numpy()
    if missing.any():
        raise ResultsError(f"{name} correctness is None/NaN in {int(missing.sum())} of {len(raw)} rows (first at "
                           f"row {int(np.flatnonzero(missing)[0])}): drop the rows without a prediction first "
                           "(counting them as wrong changes the recall)")
    return raw.astype(bool).to_numpy()


def per_class_recall(wnids: Iterable[str], top1: Iterable[bool], top5: Iterable[bool], *,
                     protocol: str = "ours") -> pd.DataFrame:
    """Per-class recall table from per-row true labels and top-k correctness.

    Returns a frame indexed by wnid (sorted) with columns ``n``, ``top1_correct``, ``top5_correct``,
    ``top1``, ``top5``, ``se_top1``, ``se_top5``. ``protocol`` chooses the SE's divisor
    (:func:`wilson_se`). None or NaN correctness raises :class:`ResultsError`.
    """
    frame = pd.DataFrame({"wnid": list(wnids), "c1": _correctness(top1, "top-1"), "c5": _correctness(top5, "top-5")})
    if frame.empty:
        raise ResultsError("no evaluated rows: nothing to compute recall over")
    if (frame["c1"] & ~frame["c5"]).any():
        raise ResultsError("a row is top-1 correct but not top-5 correct: predictions are inconsistent")
    grouped = frame.groupby("wnid", sort=True).agg(n=("c1", "size"), top1_correct=("c1", "sum"), top5_correct=("c5", "sum"))
    grouped["top1"] = grouped["top1_correct"] / grouped["n"]
    grouped["top5"] = grouped["top5_correct"] / grouped["n"]
    grouped["se_top1"] = wilson_se(grouped["top1_correct"], grouped["n"], protocol=protocol)
    grouped["se_top5"] = wilson_se(grouped["top5_correct"], grouped["n"], protocol=protocol)
    return grouped.astype({"n": "int64", "top1_correct": "int64", "top5_correct": "int64"})


def _restrict(per_class: pd.DataFrame, classes: Iterable[str] | None) -> pd.DataFrame:
    if classes is None:
        return per_class
    wanted = list(dict.fromkeys(classes))
    present = per_class.index.intersection(wanted)
    return per_class.loc[present]


def equi_weighted(per_class: pd.DataFrame, metric: str = "top1", classes: Iterable[str] | None = None) -> Estimate:
    """Unweighted mean of per-class recalls over ``classes`` (default: every class in the table).

    Classes of ``classes`` absent from ``per_class`` are skipped, as the reference skips classes
    with no evaluated image.
    """
    table = _restrict(per_class, classes)
    if table.empty:
        return Estimate(math.nan, math.nan)
    k = len(table)
    return Estimate(float(table[metric].mean()), float(np.sqrt(np.sum(table[f"se_{metric}"] ** 2)) / k))


def laion_weighted(per_class: pd.DataFrame, weights: Mapping[str, float] | pd.Series, metric: str = "top1") -> Estimate:
    """Σ w·recall / Σ w over classes with both a weight and a recall (weights renormalised)."""
    w = pd.Series(weights, dtype=float)
    common = per_class.index.intersection(w.index[w > 0])
    if common.empty:
        return Estimate(math.nan, math.nan)
    w = w.loc[common]
    recall = per_class.loc[common, metric]
    se = per_class.loc[common, f"se_{metric}"]
    total = w.sum()
    return Estimate(float((w * recall).sum() / total), float(np.sqrt(((w * se) ** 2).sum()) / total))


def micro_accuracy(per_class: pd.DataFrame, metric: str = "top1", classes: Iterable[str] | None = None) -> float:
    """Plain accuracy over all evaluated rows of ``classes``."""
    table = _restrict(per_class, classes)
    return float(table[f"{metric}_correct"].sum() / table["n"].sum()) if len(table) else math.nan


def gap(imagenet: Estimate, laionet: Estimate) -> Estimate:
    """ImageNet minus LAIONet, independent standard errors combined."""
    return Estimate(imagenet.value - laionet.value, math.hypot(imagenet.se, laionet.se))


def _logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class RobustnessFit:
    """logit(LAIONet) = slope · logit(ImageNet) + intercept, fitted on ``n_models`` models."""

    slope: float
    intercept: float
    n_models: int

    def predict(self, imagenet_acc) -> np.ndarray:
        z = self.slope * _logit(imagenet_acc) + self.intercept
        return 1 / (1 + np.exp(-z))

    def residual(self, imagenet_acc, laionet_acc) -> np.ndarray:
        """Effective robustness: measured LAIONet accuracy minus the fit's prediction."""
        return np.asarray(laionet_acc, dtype=float) - self.predict(imagenet_acc)

    def to_dict(self) -> dict:
        return asdict(self)


def fit_effective_robustness(imagenet_acc, laionet_acc) -> RobustnessFit:
    """Least-squares line in logit space over a reference model set (needs ≥ 2 distinct models)."""
    x = _logit(imagenet_acc)
    y = _logit(laionet_acc)
    if len(x) < 2 or np.ptp(x) == 0:
        raise ResultsError("effective robustness needs at least two models with different ImageNet accuracy")
    slope, intercept = np.polyfit(x, y, 1)
    return RobustnessFit(float(slope), float(intercept), len(x))
