"""Typed result records with provenance, how they are built from per-class tables, and their files.

One model's evaluation is a :class:`ModelResult`: a summary per dataset (equi- and LAION-weighted
accuracy with standard errors, counts), the gap, effective robustness when known, model facts and
provenance. Its per-class table travels beside it. Records carry no local absolute path: every path in a dataset identity
or in the model facts is kept as :func:`~laionet_bench._io.display_path` gives it (relative or ``~/...``),
since result folders get published. On disk (``<results>/<model slug>/``)::

    result.json       ModelResult.to_dict() — plain keys, numbers as numbers
    per_class.parquet one row per class: recall, SE and n on each dataset, LAIONet weight, drop
    per_class.csv     the same, for spreadsheets

The leaderboard, ``compare`` and the pytest plugin read these files through :func:`read_results`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .._io import atomic_write, display_path, read_json, slug, write_text_atomic
from ..catalog import load_catalog
from ..errors import DatasetError, ResultsError
from ..models.groups import group_of, is_zero_shot
from ..version import __version__
from .metrics import (
    Estimate,
    RobustnessFit,
    equi_weighted,
    fit_effective_robustness,
    gap,
    laion_weighted,
    micro_accuracy,
)

__all__ = [
    "SCHEMA_VERSION",
    "DatasetSummary",
    "ModelResult",
    "Provenance",
    "build_model_result",
    "datasets_label",
    "fit_robustness",
    "fit_robustness_points",
    "read_result",
    "read_results",
    "result_key",
    "robustness_of",
    "summarize_dataset",
    "write_result",
]

SCHEMA_VERSION = 1
RESULT_FILE = "result.json"
PER_CLASS_FILE = "per_class.parquet"


def _version(module: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return None


def _shareable(value: Any) -> Any:
    """``value`` with every absolute path string (in nested dicts and lists too) as :func:`display_path` gives it."""
    if isinstance(value, dict):
        return {key: _shareable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_shareable(item) for item in value)
    if isinstance(value, str) and os.path.isabs(value):
        return display_path(value)
    return value


def _git_hash() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


@dataclass(frozen=True)
class Provenance:
    """Where and with what a result was computed."""

    harness_version: str
    timm_version: str | None
    torch_version: str | None
    open_clip_version: str | None
    python_version: str
    platform: str
    device: str
    dtype: str
    date: str  # ISO 8601, UTC
    git_hash: str | None

    @classmethod
    def collect(cls, *, device: str, dtype: str) -> Provenance:
        return cls(
            harness_version=__version__,
            timm_version=_version("timm"),
            torch_version=_version("torch"),
            open_clip_version=_version("open_clip_torch"),
            python_version=platform.python_version(),
            platform=platform.platform(),
            device=device,
            dtype=dtype,
            date=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            git_hash=_git_hash(),
        )


@dataclass(frozen=True)
class DatasetSummary:
    """One model on one dataset. Accuracies are equi-weighted over the result's class set."""

    dataset: str  # dataset spec, e.g. "laionet:clip_0.82", "imagenet-val"
    identity: dict[str, Any]  # index/manifest provenance that identifies the evaluated set
    n_listed: int  # rows the dataset lists for the class set
    n_evaluated: int  # rows with a prediction
    n_failed: int  # rows whose image was missing or undecodable
    n_excluded: int  # rows dropped on purpose (OCR flag)
    n_classes: int  # classes with at least one evaluated row
    top1: Estimate
    top5: Estimate
    lw_top1: Estimate  # LAION-weighted (NaN without weights)
    lw_top5: Estimate
    micro_top1: float
    micro_top5: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "identity", _shareable(self.identity))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DatasetSummary:
        data = dict(data)
        for key in ("top1", "top5", "lw_top1", "lw_top5"):
            data[key] = Estimate.from_dict(data[key])
        return cls(**data)


@dataclass
class ModelResult:
    """A model's evaluation: per-dataset summaries, gaps, and the per-class table."""

    model: str  # canonical spec, e.g. "tf_efficientnet_lite0.in1k"
    run_key: str
    model_info: dict[str, Any]  # params, pretrain group, data config (input size, crop pct, interpolation ...)
    classes: list[str]  # wnids the equi-weighted numbers average over
    datasets: dict[str, DatasetSummary]  # "laionet", "imagenet", "imagenet-v2"
    provenance: Provenance
    effective_robustness: float | None = None
    per_class: pd.DataFrame | None = field(default=None, repr=False)
    protocol: str = "ours"  # metric protocol (evaluation.options.PROTOCOLS): "ours" or "official"
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        self.model_info = _shareable(self.model_info)

    @property
    def gaps(self) -> dict[str, Estimate]:
        """ImageNet − LAIONet for top1/top5 (equi) and lw_top1/lw_top5 (LAION-weighted)."""
        if "imagenet" not in self.datasets or "laionet" not in self.datasets:
            return {}
        a, b = self.datasets["imagenet"], self.datasets["laionet"]
        return {k: gap(getattr(a, k), getattr(b, k)) for k in ("top1", "top5", "lw_top1", "lw_top5")}

    def to_dict(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "model": self.model,
            "run_key": self.run_key,
            "protocol": self.protocol,
            "model_info": self.model_info,
            "classes": self.classes,
            "datasets": {k: v.to_dict() for k, v in self.datasets.items()},
            "gaps": {k: v.to_dict() for k, v in self.gaps.items()},
            "effective_robustness": self.effective_robustness,
            "provenance": asdict(self.provenance),
        }

    @classmethod
    def from_dict(cls, data: dict, per_class: pd.DataFrame | None = None) -> ModelResult:
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ResultsError(
                f"result schema version {data.get('schema_version')!r} is not {SCHEMA_VERSION}: re-run the evaluation"
            )
        return cls(
            model=data["model"],
            run_key=data["run_key"],
            model_info=data["model_info"],
            classes=list(data["classes"]),
            datasets={k: DatasetSummary.from_dict(v) for k, v in data["datasets"].items()},
            provenance=Provenance(**data["provenance"]),
            effective_robustness=data.get("effective_robustness"),
            per_class=per_class,
            protocol=data.get("protocol", "ours"),  # results written before protocols existed are "ours"
        )


def summarize_dataset(
    per_class: pd.DataFrame,
    *,
    dataset: str,
    identity: dict,
    classes: list[str],
    weights: pd.Series | None,
    n_listed: int,
    n_failed: int,
    n_excluded: int = 0,
) -> DatasetSummary:
    """Reduce a per-class recall table (:func:`metrics.per_class_recall`) to a summary."""
    table = per_class.loc[per_class.index.intersection(classes)]
    nan = Estimate(math.nan, math.nan)
    return DatasetSummary(
        dataset=dataset,
        identity=identity,
        n_listed=int(n_listed),
        n_evaluated=int(table["n"].sum()),
        n_failed=int(n_failed),
        n_excluded=int(n_excluded),
        n_classes=len(table),
        top1=equi_weighted(table, "top1"),
        top5=equi_weighted(table, "top5"),
        lw_top1=laion_weighted(table, weights, "top1") if weights is not None else nan,
        lw_top5=laion_weighted(table, weights, "top5") if weights is not None else nan,
        micro_top1=micro_accuracy(table, "top1"),
        micro_top5=micro_accuracy(table, "top5"),
    )


def build_model_result(
    *,
    model: str,
    run_key: str,
    model_info: dict,
    provenance: Provenance,
    laionet: tuple[pd.DataFrame, dict],
    imagenet: tuple[pd.DataFrame, dict] | None = None,
    weights: pd.Series | None = None,
    classes: list[str] | None = None,
    protocol: str = "ours",
) -> ModelResult:
    """Assemble a :class:`ModelResult` from per-class tables.

    ``laionet`` / ``imagenet`` are ``(per_class_recall table, summarize_dataset kwargs)`` where the
    kwargs hold ``dataset``, ``identity``, ``n_listed``, ``n_failed`` (and ``n_excluded``). The
    class set is ``classes`` when given (the official protocol's: every label-pickle key found in
    val, empty LAIONet classes included), else the classes present in LAIONet (SPEC §4); every
    dataset is averaged over it, so a class with no LAIONet row counts on ImageNet-val only.
    """
    laion_table, laion_kw = laionet
    present = set(laion_table.index) if classes is None else set(classes)
    classes = [w for w in load_catalog().wnids if w in present]
    if imagenet is not None and not set(classes) & set(imagenet[0].index):
        raise DatasetError("ImageNet-val and LAIONet share no class: check the datasets' wnids")
    datasets = {"laionet": summarize_dataset(laion_table, classes=classes, weights=weights, **laion_kw)}
    frames = {"laionet": laion_table}
    if imagenet is not None:
        datasets["imagenet"] = summarize_dataset(imagenet[0], classes=classes, weights=weights, **imagenet[1])
        frames["imagenet"] = imagenet[0]
    return ModelResult(
        model=model,
        run_key=run_key,
        model_info=model_info,
        classes=classes,
        datasets=datasets,
        provenance=provenance,
        per_class=per_class_frame(frames, classes, weights),
        protocol=protocol,
    )


def _top1_pair(result: ModelResult) -> tuple[float, float] | None:
    """(ImageNet-val, LAIONet) equi-weighted top-1 when the result has both, finite."""
    imagenet, laionet = result.datasets.get("imagenet"), result.datasets.get("laionet")
    if imagenet is None or laionet is None:
        return None
    pair = (imagenet.top1.value, laionet.top1.value)
    return pair if all(math.isfinite(v) for v in pair) else None


def fit_robustness(results: Sequence[ModelResult]) -> tuple[RobustnessFit | None, list[str]]:
    """The effective-robustness fit over ``results`` and the models it used: the one rule of the package.

    ``logit(LAIONet top-1) = a·logit(ImageNet top-1) + b`` is fitted by :func:`fit_robustness_points` on the
    results with both numbers. ``evaluate()`` fits it over a run's models for ``result.json``, the leaderboard
    over the board's (docs/leaderboard.md), so both give a model the same number over the same models.
    """
    points = [(r.model, group_of(r.model_info, r.model), *pair) for r in results
              if (pair := _top1_pair(r)) is not None]
    return fit_robustness_points(points)


def fit_robustness_points(
    points: Sequence[tuple[str, str, float, float]],
) -> tuple[RobustnessFit | None, list[str]]:
    """The rule behind :func:`fit_robustness` on ``(model, group, ImageNet top-1, other top-1)`` points.

    The line is fitted on the points that are not CLIP zero-shot classifiers
    (:func:`~laionet_bench.models.groups.is_zero_shot`), or on all of them when fewer than two such differ in
    ImageNet accuracy; None when no two points differ. Apart from LAIONet, the leaderboard's other
    distribution shifts (``leaderboard --shifts``) use it, so every shift's effective robustness is the same rule.
    """
    usable = [p for p in points if all(math.isfinite(v) for v in p[2:])]
    reference = [p for p in usable if not is_zero_shot(p[1])]
    for candidates in (reference, usable):
        imagenet = [p[2] for p in candidates]
        if len(set(imagenet)) >= 2:
            fit = fit_effective_robustness(imagenet, [p[3] for p in candidates])
            return fit, [p[0] for p in candidates]
    return None, []


def robustness_of(fit: RobustnessFit | None, result: ModelResult) -> float | None:
    """``result``'s effective robustness under ``fit`` (a fraction); None without a fit or without both numbers."""
    pair = _top1_pair(result)
    if fit is None or pair is None:
        return None
    return float(fit.residual([pair[0]], [pair[1]])[0])


def per_class_frame(frames: dict[str, pd.DataFrame], classes: list[str], weights: pd.Series | None) -> pd.DataFrame:
    """Join per-dataset recall tables into one row per class (prefix = dataset key)."""
    catalog = load_catalog()
    out = pd.DataFrame({"wnid": classes})
    out["class_index"] = [catalog.get(w).index for w in classes]
    out["name"] = [catalog.get(w).name for w in classes]
    for key, table in frames.items():
        part = table.reindex(classes)[["n", "top1", "top5", "se_top1", "se_top5"]]
        part = part.fillna({"n": 0}).astype({"n": "int64"})
        for col in part.columns:
            out[f"{key}_{col}"] = part[col].to_numpy()
    out["laionet_weight"] = weights.reindex(classes).to_numpy(dtype=float) if weights is not None else math.nan
    if "imagenet" in frames and "laionet" in frames:  # a val-only (imported) result has no drop
        out["drop_top1"] = out["imagenet_top1"] - out["laionet_top1"]
        out["drop_top5"] = out["imagenet_top5"] - out["laionet_top5"]
    return out


def write_result(result: ModelResult, results_dir: str | Path) -> Path:
    """Write ``result.json`` + per-class parquet/CSV atomically; returns the model's folder."""
    folder = Path(results_dir) / slug(result.model)
    if result.per_class is not None:
        with atomic_write(folder / PER_CLASS_FILE) as handle:
            result.per_class.to_parquet(handle, index=False)
        with atomic_write(folder / "per_class.csv", "w") as handle:
            result.per_class.to_csv(handle, index=False)
    write_text_atomic(folder / RESULT_FILE, json.dumps(result.to_dict(), indent=2, allow_nan=True) + "\n")
    return folder


#: What to do about a result folder that cannot be read: its predictions are stored, so a re-run is cheap.
_REWRITE = "delete this model's folder and run the evaluation again (stored predictions are reused)"
#: The fields a ``result.json`` must hold, and their JSON type.
_FIELDS: dict[str, type] = {"model": str, "run_key": str, "model_info": dict, "classes": list, "datasets": dict,
                            "provenance": dict}
_JSON_NAMES: dict[type, str] = {str: "a string", list: "a list", dict: "an object"}


def _shape_problem(data: Any) -> str | None:
    """What is wrong with a parsed ``result.json`` (None when it has a result's shape)."""
    if not isinstance(data, dict):
        return f"holds a JSON {type(data).__name__}, not a result object"
    if data.get("schema_version") != SCHEMA_VERSION:
        return f"result schema version {data.get('schema_version')!r} is not {SCHEMA_VERSION}"
    fields = [(name, data.get(name), kind) for name, kind in _FIELDS.items()]
    if isinstance(data.get("datasets"), dict):
        fields += [(f"datasets.{key}", value, dict) for key, value in data["datasets"].items()]
    for name, value, kind in fields:
        if not isinstance(value, kind):
            return f"field {name!r} is {json.dumps(value)[:40]}, not {_JSON_NAMES[kind]}"
    return None


def _read_per_class(path: Path) -> pd.DataFrame | None:
    """``per_class.parquet`` (None when there is none), checked to be a per-class table."""
    if not path.exists():
        return None
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # pyarrow's errors: ArrowInvalid is a ValueError, ArrowIOError an OSError
        raise ResultsError(f"{path}: not a readable parquet file ({type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:200]}); {_REWRITE}") from None
    if "wnid" not in table:
        raise ResultsError(f"{path}: no 'wnid' column, so not a per-class table; {_REWRITE}")
    return table


def read_result(folder: str | Path) -> ModelResult:
    """Read one model folder written by :func:`write_result`; a malformed file is a one-line ``ResultsError``."""
    folder = Path(folder)
    path = folder / RESULT_FILE
    try:
        data = read_json(path, error=ResultsError, fix=_REWRITE)
    except FileNotFoundError:
        raise ResultsError(f"{path}: no result here; run 'laionet-bench run' first") from None
    problem = _shape_problem(data)
    if problem is None:
        per_class = _read_per_class(folder / PER_CLASS_FILE)
        try:
            return ModelResult.from_dict(data, per_class)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a field's content: missing keys, types
            problem = f"not a laionet-bench result ({type(exc).__name__}: {exc})"
    raise ResultsError(f"{path}: {problem}; {_REWRITE}")


def datasets_label(result: ModelResult) -> str:
    """The datasets of ``result``, each with a short hash of its identity: ``imagenet-val@1a2b3c4d laionet@…``.

    Two results of one model and protocol are the same result exactly when this is the same (same index
    revision, images, limits …): the ``datasets`` column of the leaderboard, and part of :func:`result_key`.
    """
    def short(identity: dict) -> str:
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]

    return " ".join(f"{summary.dataset}@{short(summary.identity)}" for _, summary in sorted(result.datasets.items()))


def result_key(result: ModelResult) -> tuple[str, str, str]:
    """What identifies a result: (model, metric protocol, :func:`datasets_label`)."""
    return result.model, result.protocol, datasets_label(result)


def read_results(results_dir: str | Path) -> list[ModelResult]:
    """Every model result under ``results_dir`` (one folder each), sorted by folder name.

    Two folders holding the same result (:func:`result_key`: a copied folder, say) are refused, naming both:
    boards and comparisons would count the model twice. Results of one model under another protocol or on
    other datasets are different results.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise ResultsError(f"{root}: no such results folder; run 'laionet-bench run --out {root}' first")
    results: list[ModelResult] = []
    folders: dict[tuple[str, str, str], Path] = {}
    for path in sorted(root.glob(f"*/{RESULT_FILE}")):
        result = read_result(path.parent)
        key = result_key(result)
        if key in folders:
            raise ResultsError(f"{folders[key]} and {path.parent} hold the same result ({result.model}, protocol "
                               f"{result.protocol}, the same datasets): move one of the two folders out of {root}")
        folders[key] = path.parent
        results.append(result)
    return results
