"""Constructed model results with known accuracies, built through the real result path.

Per-row correctness is generated so each class's recall is exactly as requested, then goes through
:func:`metrics.per_class_recall` → :func:`results.build_model_result`. ``make_result`` takes recalls
per class (leaderboard/compare tests); ``make_counted_result`` takes (correct, n) counts per class
(plugin, assertion and baseline tests).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from laionet_bench.evaluation.metrics import per_class_recall
from laionet_bench.evaluation.results import ModelResult, Provenance, build_model_result

__all__ = ["DEFAULT_IMAGENET", "DEFAULT_LAIONET", "WNIDS", "make_counted_result", "make_result", "provenance", "recall_table"]

#: Four classes in catalogue order; LAIONet weights 0.4/0.3/0.2/0.1.
WNIDS = ("n01440764", "n01443537", "n02110185", "n04579432")
WEIGHTS = pd.Series([0.4, 0.3, 0.2, 0.1], index=list(WNIDS))


def provenance(date: str = "2025-01-02T03:04:05+00:00") -> Provenance:
    return Provenance(
        harness_version="0.1.0", timm_version="1.0.31", torch_version="2.14.1", open_clip_version="3.3.0",
        python_version="3.11.9", platform="Linux", device="cpu", dtype="float32", date=date, git_hash="abc1234",
    )


def _table(recalls: Sequence[float], n: int) -> pd.DataFrame:
    """Per-class table where class i has top-1 recall ``recalls[i]`` and top-5 = min(1, top-1 + 0.2)."""
    wnids, top1, top5 = [], [], []
    for wnid, recall in zip(WNIDS, recalls, strict=True):
        k1 = round(recall * n)
        k5 = min(n, k1 + round(0.2 * n))
        wnids += [wnid] * n
        top1 += [i < k1 for i in range(n)]
        top5 += [i < k5 for i in range(n)]
    return per_class_recall(wnids, top1, top5)


def _per_class(value: float | Sequence[float]) -> list[float]:
    return [value] * len(WNIDS) if isinstance(value, int | float) else list(value)


def make_result(
    model: str,
    *,
    imagenet: float | Sequence[float] | None,
    laionet: float | Sequence[float],
    n_imagenet: int = 50,
    n_laionet: int = 40,
    model_info: dict | None = None,
    date: str = "2025-01-02T03:04:05+00:00",
) -> ModelResult:
    """A result whose every class has the given recall (a number, or one per class of :data:`WNIDS`)."""
    arch, _, tag = model.partition(".")
    info = {
        "architecture": arch, "pretrained_tag": tag or None, "params": 5_000_000, "input_size": [3, 224, 224],
        "crop_pct": 0.875, "interpolation": "bicubic", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
        "num_classes": 1000, "weights": None, "weights_sha256": None, "label_map": "imagenet-1k", "kind": "timm",
        **(model_info or {}),
    }
    laion_kw = {"dataset": "laionet:clip_0.82", "identity": {"revision": "0123abcd", "manifest_sha256": "feedbeef"},
                "n_listed": n_laionet * len(WNIDS) + 3, "n_failed": 3, "n_excluded": 1}
    imagenet_arg = None
    if imagenet is not None:
        imagenet_kw = {"dataset": "imagenet-val", "identity": {"root": "/data/imagenet"},
                       "n_listed": n_imagenet * len(WNIDS), "n_failed": 0}
        imagenet_arg = (_table(_per_class(imagenet), n_imagenet), imagenet_kw)
    return build_model_result(
        model=model, run_key=f"key-{model}", model_info=info, provenance=provenance(date),
        laionet=(_table(_per_class(laionet), n_laionet), laion_kw), imagenet=imagenet_arg, weights=WEIGHTS,
    )


#: wnid -> (top-1 correct, images). Gap ≈ 0.90 − 0.70 = 0.20; husky has the largest drop.
DEFAULT_LAIONET = {"n01440764": (70, 100), "n02110185": (60, 100), "n04579432": (80, 100)}
DEFAULT_IMAGENET = {"n01440764": (45, 50), "n02110185": (46, 50), "n04579432": (44, 50)}


def recall_table(counts: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """A per-class recall table; top-5 gets half of the top-1 misses back."""
    wnids, top1, top5 = [], [], []
    for wnid, (correct, n) in counts.items():
        wnids += [wnid] * n
        top1 += [True] * correct + [False] * (n - correct)
        rescued = (n - correct) // 2
        top5 += [True] * (correct + rescued) + [False] * (n - correct - rescued)
    return per_class_recall(wnids, top1, top5)


def make_counted_result(
    model: str,
    laionet: dict[str, tuple[int, int]] | None = None,
    imagenet: dict[str, tuple[int, int]] | None = DEFAULT_IMAGENET,
    *,
    dataset: str = "laionet:clip_0.82",
    identity: dict | None = None,
) -> ModelResult:
    """A result for ``model`` (LAIONet weights proportional to the LAIONet counts); ``identity`` is the LAIONet
    side's, e.g. ``{"index": {"sha256": ...}}`` as a run records the index it read."""
    laionet = laionet or DEFAULT_LAIONET
    weights = pd.Series({w: n for w, (_, n) in laionet.items()}, dtype=float)
    laion_kw = {"dataset": dataset, "identity": identity or {}, "n_listed": int(weights.sum()), "n_failed": 0}
    image_kw = None
    if imagenet is not None:
        image_kw = (recall_table(imagenet),
                    {"dataset": "imagenet-val", "identity": {}, "n_listed": sum(n for _, n in imagenet.values()),
                     "n_failed": 0})
    return build_model_result(
        model=model, run_key=f"test-{model}", model_info={}, provenance=provenance("2025-01-01T00:00:00+00:00"),
        laionet=(recall_table(laionet), laion_kw), imagenet=image_kw, weights=weights / weights.sum(),
    )
