"""The leaderboard frame: one row per evaluated model, numbers as numbers, accuracies in percent.

Built from :func:`laionet_bench.evaluation.results.read_results` records. Columns (declared in
:mod:`laionet_bench.leaderboard.columns`) hold the model's facts, equi- and LAION-weighted accuracies
with standard errors, the ImageNet − LAIONet gaps, effective robustness fitted over the models on the
board, ranks and the rank change between ImageNet and LAIONet, and evaluated image counts. The
intra-class similarity summaries written by ``laionet-bench similarity``
(``<results>/similarity/<encoder>/summary.json``) and a provenance footer travel with the table.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ResultsError
from ..evaluation.metrics import Estimate, RobustnessFit
from ..evaluation.results import ModelResult, datasets_label, fit_robustness, read_results, robustness_of
from ..models.groups import group_of
from .columns import COLUMNS, DTYPES, RANKED_METRICS, get_metric

__all__ = ["Leaderboard", "build_leaderboard", "build_table", "load_leaderboard", "read_similarity"]

logger = logging.getLogger(__name__)

_DATASETS = ("imagenet", "laionet")
_SUMMARY_FIELDS = ("top1", "top5", "lw_top1", "lw_top5")


@dataclass
class Leaderboard:
    """The board: the model table plus what is shown around it."""

    table: pd.DataFrame  # COLUMNS, one row per model, best LAIONet top-1 first
    similarity: pd.DataFrame  # encoder, dataset, then the summary's numeric fields (mean, n_classes …)
    similarity_tests: pd.DataFrame  # encoder, then per-encoder numeric fields (frac_lower, frac_higher …)
    provenance: dict[str, list[str]]  # footer: field → distinct values over the results
    fit: RobustnessFit | None  # the effective-robustness fit (None with fewer than two usable models)
    fit_models: list[str] = field(default_factory=list)  # the models the fit used
    per_class: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)  # model → per-class table
    generated: str = ""  # ISO 8601 UTC

    def meta(self) -> dict[str, Any]:
        """Everything but the tables, JSON-ready."""
        return {
            "generated": self.generated,
            "units": "accuracies, gaps, standard errors and effective robustness in percent points",
            "effective_robustness_fit": {**self.fit.to_dict(), "models": self.fit_models} if self.fit else None,
            "provenance": self.provenance,
        }


def _pct(value: float | None) -> float:
    return math.nan if value is None else float(value) * 100.0


def _estimate_cells(prefix: str, estimate: Estimate | None) -> dict[str, float]:
    if estimate is None:
        return {prefix: math.nan, f"{prefix}_se": math.nan}
    return {prefix: _pct(estimate.value), f"{prefix}_se": _pct(estimate.se)}


def _info_cells(model_info: Mapping[str, Any]) -> dict[str, Any]:
    input_size: Sequence[Any] = model_info.get("input_size") or ()
    params = model_info.get("params")
    crop = model_info.get("crop_pct")
    return {
        "params": int(params) if isinstance(params, int | float) and not math.isnan(params) else pd.NA,
        "img_size": int(input_size[1]) if len(input_size) >= 2 else pd.NA,
        "crop_pct": float(crop) if isinstance(crop, int | float) else math.nan,
        "interpolation": str(model_info.get("interpolation") or ""),
    }


def _row(result: ModelResult, fit: RobustnessFit | None) -> dict[str, Any]:
    row: dict[str, Any] = {"model": result.model, "group": group_of(result.model_info, result.model)}
    row.update(_info_cells(result.model_info))
    for key in _DATASETS:
        summary = result.datasets.get(key)
        for name in _SUMMARY_FIELDS:
            row.update(_estimate_cells(f"{key}_{name}", getattr(summary, name) if summary else None))
    gaps = result.gaps
    for name in _SUMMARY_FIELDS:
        row.update(_estimate_cells(f"gap_{name}", gaps.get(name)))
    laion, imagenet = result.datasets.get("laionet"), result.datasets.get("imagenet")
    row["effective_robustness"] = _pct(robustness_of(fit, result))  # the board's fit, not the run's
    row["n_classes"] = len(result.classes)
    row["n_laionet"] = laion.n_evaluated if laion else 0
    row["n_laionet_failed"] = laion.n_failed if laion else 0
    row["n_laionet_excluded"] = laion.n_excluded if laion else 0
    row["n_imagenet"] = imagenet.n_evaluated if imagenet else 0
    row["smoke"] = is_smoke_run(result)
    row["protocol"] = result.protocol
    row["datasets"] = datasets_label(result)
    return row


def is_smoke_run(result: ModelResult) -> bool:
    """Whether a dataset of ``result`` was cut by ``--limit``/``--limit-per-class`` (its identity records the limits)."""
    return any(any(v is not None for v in ((summary.identity or {}).get("limits") or {}).values())
               for summary in result.datasets.values())


def _add_ranks(table: pd.DataFrame) -> None:
    for metric in RANKED_METRICS:
        ascending = not get_metric(metric).higher_is_better
        values = table[metric].round(9)  # ties stay ties despite float noise (e.g. residuals of a 2-point fit)
        table[f"rank_{metric}"] = values.rank(ascending=ascending, method="min").astype("Int64")
    table["rank_change"] = (table["rank_imagenet_top1"] - table["rank_laionet_top1"]).astype("Int64")


def build_table(results: Iterable[ModelResult]) -> tuple[pd.DataFrame, RobustnessFit | None, list[str]]:
    """The model table (:data:`COLUMNS`), the effective-robustness fit and the models it used."""
    results = list(results)
    if not results:
        raise ResultsError("no model results to put on the leaderboard: run 'laionet-bench run' first")
    fit, fit_models = fit_robustness(results)
    table = pd.DataFrame([_row(r, fit) for r in results])
    _add_ranks(table)
    table = table.sort_values(["laionet_top1", "model", "protocol", "datasets"], ascending=[False, True, True, True],
                              na_position="last")
    table = table.reset_index(drop=True)[list(COLUMNS)]
    return table.astype(DTYPES), fit, fit_models


def _numeric_fields(data: Mapping[str, Any]) -> dict[str, float | int]:
    return {k: v for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def read_similarity(results_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Intra-class similarity summaries under ``<results>/similarity/<encoder>/summary.json``.

    Read defensively: a missing folder gives empty frames, an unreadable or oddly shaped file is
    logged and skipped. Returns (per encoder and dataset: mean, n_classes …; per encoder: the compared
    pair ``a`` − ``b`` and the per-class test of the summary's ``comparison``: frac_lower, frac_higher,
    mean_delta …), keeping whatever numeric fields the summary holds.
    """
    per_dataset: list[dict] = []
    per_encoder: list[dict] = []
    for path in sorted(Path(results_dir).glob("similarity/*/summary.json")):
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            logger.warning("skipping similarity summary %s: %s", path, exc)
            continue
        if not isinstance(data, dict):
            logger.warning("skipping similarity summary %s: not a JSON object", path)
            continue
        encoder = str(data.get("encoder") or path.parent.name)
        raw_datasets = data.get("datasets")
        datasets = raw_datasets if isinstance(raw_datasets, dict) else {}
        for name, stats in datasets.items():
            if isinstance(stats, dict):
                per_dataset.append({"encoder": encoder, "dataset": str(name), **_numeric_fields(stats)})
        comparison = data.get("comparison")
        if isinstance(comparison, dict) and _numeric_fields(comparison):
            pair = {k: str(comparison[k]) for k in ("a", "b") if k in comparison}
            per_encoder.append({"encoder": encoder, **pair, **_numeric_fields(comparison)})
    return pd.DataFrame(per_dataset), pd.DataFrame(per_encoder)


def _provenance(results: list[ModelResult]) -> dict[str, list[str]]:
    """Distinct provenance values over the results (versions, device, dates, metric protocol, dataset identity)."""
    values: dict[str, set[str]] = {}

    def add(key: str, value: Any) -> None:
        if value is not None and not isinstance(value, dict | list):
            values.setdefault(key, set()).add(str(value))

    for result in results:
        prov = result.provenance
        for key in ("harness_version", "timm_version", "torch_version", "open_clip_version",
                    "python_version", "device", "dtype", "git_hash", "date"):
            add(key, getattr(prov, key))
        add("protocol", result.protocol)
        for name, summary in result.datasets.items():
            add(f"{name}.dataset", summary.dataset)
            for key, value in (summary.identity or {}).items():
                add(f"{name}.{key}", value)
    footer = {key: sorted(found) for key, found in sorted(values.items())}
    if len(footer.get("date", [])) > 2:  # first and last evaluation date are enough
        footer["date"] = [footer["date"][0], footer["date"][-1]]
    return footer


def build_leaderboard(results: list[ModelResult], *, results_dir: str | Path | None = None) -> Leaderboard:
    """The leaderboard of ``results``; similarity summaries are read from ``results_dir`` when given."""
    table, fit, fit_models = build_table(results)
    similarity, tests = read_similarity(results_dir) if results_dir is not None else (pd.DataFrame(), pd.DataFrame())
    return Leaderboard(
        table=table,
        similarity=similarity,
        similarity_tests=tests,
        provenance=_provenance(results),
        fit=fit,
        fit_models=fit_models,
        per_class={r.model: r.per_class for r in results if r.per_class is not None},
        generated=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )


def load_leaderboard(results_dir: str | Path) -> Leaderboard:
    """Read every result under ``results_dir`` and build its leaderboard."""
    return build_leaderboard(read_results(results_dir), results_dir=results_dir)
