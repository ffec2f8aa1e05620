"""Every column of the leaderboard frame: what it holds, its dtype, and for metric columns their direction.

A new leaderboard column takes two edits: its value, computed where the frame is built
(:mod:`laionet_bench.leaderboard.table`), and its declaration here: its description in :data:`COLUMNS` (the
JSON ``columns`` block and the HTML header tooltips show it), and, when it is a metric that can get
better or worse, a :func:`register_metric` call with ``higher_is_better`` so ranks (``table``) and
``compare`` know which way is an improvement. The statistics behind the numbers live in
:mod:`laionet_bench.evaluation.metrics`; this module only names and orders them.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from ..errors import UnknownNameError

__all__ = [
    "COLUMNS",
    "DTYPES",
    "METRICS",
    "RANKED_METRICS",
    "MetricInfo",
    "get_metric",
    "register_metric",
]


@dataclass(frozen=True)
class MetricInfo:
    """A registered metric: its name, direction and meaning."""

    name: str
    higher_is_better: bool
    doc: str


METRICS: dict[str, MetricInfo] = {}


def register_metric(name: str, *, higher_is_better: bool, doc: str) -> MetricInfo:
    """Declare a metric column (used by tables, ranks and ``compare``)."""
    info = MetricInfo(name, higher_is_better, doc)
    METRICS[name] = info
    return info


def get_metric(name: str) -> MetricInfo:
    """The registered metric ``name``; unknown names get suggestions."""
    if name not in METRICS:
        raise UnknownNameError("metric", name, difflib.get_close_matches(name, METRICS))
    return METRICS[name]


for _k in ("top1", "top5"):
    register_metric(f"imagenet_{_k}", higher_is_better=True, doc=f"ImageNet-val {_k}, equi-weighted over LAIONet classes")
    register_metric(f"laionet_{_k}", higher_is_better=True, doc=f"LAIONet {_k}, equi-weighted")
    register_metric(f"laionet_lw_{_k}", higher_is_better=True, doc=f"LAIONet {_k}, LAION-weighted")
    register_metric(f"imagenet_lw_{_k}", higher_is_better=True, doc=f"ImageNet-val {_k}, LAION-weighted (control)")
    register_metric(f"gap_{_k}", higher_is_better=False, doc=f"ImageNet-val minus LAIONet {_k}, equi-weighted")
    register_metric(f"gap_lw_{_k}", higher_is_better=False, doc=f"ImageNet-val minus LAIONet {_k}, LAION-weighted")
register_metric("effective_robustness", higher_is_better=True, doc="LAIONet top-1 above the logit-linear fit")

#: Metric columns that get a ``rank_<metric>`` column (direction from the metric registry).
RANKED_METRICS = ("imagenet_top1", "laionet_top1", "laionet_lw_top1", "gap_top1", "effective_robustness")

#: Every column of the leaderboard frame and what it holds. Accuracies, gaps and SEs are in percent points.
COLUMNS: dict[str, str] = {
    "model": "model spec (timm arch.tag, or open_clip model/tag)",
    "group": "pretrain group (see laionet_bench.models.groups.GROUPS)",
    "params": "number of parameters",
    "img_size": "input height in pixels",
    "crop_pct": "centre-crop fraction of the eval transform",
    "interpolation": "resize interpolation of the eval transform",
    **{
        f"{ds}_{lw}{k}{se}": f"{name} {k}, {weighting}{' standard error' if se else ''} (%)"
        for ds, name in (("imagenet", "ImageNet-val"), ("laionet", "LAIONet"))
        for lw, weighting in (("", "equi-weighted"), ("lw_", "LAION-weighted"))
        for k in ("top1", "top5")
        for se in ("", "_se")
    },
    **{
        f"gap_{lw}{k}{se}": f"ImageNet-val minus LAIONet {k}, {weighting}{' standard error' if se else ''} (points)"
        for lw, weighting in (("", "equi-weighted"), ("lw_", "LAION-weighted"))
        for k in ("top1", "top5")
        for se in ("", "_se")
    },
    "effective_robustness": "LAIONet top1 above the logit-linear fit over the board's models (points)",
    **{f"rank_{m}": f"rank by {m} (1 = best)" for m in RANKED_METRICS},
    "rank_change": "rank_imagenet_top1 minus rank_laionet_top1 (positive: climbs on LAIONet)",
    "n_classes": "classes averaged over (present in LAIONet)",
    "n_laionet": "LAIONet images evaluated",
    "n_laionet_failed": "LAIONet images missing or undecodable",
    "n_laionet_excluded": "LAIONet images excluded on purpose (OCR flag)",
    "n_imagenet": "ImageNet-val images evaluated",
    "smoke": "a smoke run: a dataset was cut by --limit or --limit-per-class, so it is not comparable with full runs",
    "protocol": "metric protocol the result was scored under: ours, or official (the reference's exact rules)",
    "datasets": "the datasets evaluated, each with a short hash of its identity (index revision, images, limits): "
                "rows of one model differ in it or in protocol",
}

_INT_COLUMNS = ("params", "img_size", "n_classes", "n_laionet", "n_laionet_failed", "n_laionet_excluded",
                "n_imagenet", *(f"rank_{m}" for m in RANKED_METRICS), "rank_change")
_STRING_COLUMNS = ("model", "group", "interpolation", "protocol", "datasets")
_BOOL_COLUMNS = ("smoke",)
#: pandas dtype of every column: nullable integers for counts and ranks, strings, floats for the rest.
DTYPES: dict[str, str] = {
    name: "Int64" if name in _INT_COLUMNS else "string" if name in _STRING_COLUMNS
    else "boolean" if name in _BOOL_COLUMNS else "float64"
    for name in COLUMNS
}
