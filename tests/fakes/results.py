"""Model results with chosen per-class counts, built through the real ``results.build_model_result``."""

from __future__ import annotations

import pandas as pd

from laionet_bench.metrics import per_class_recall
from laionet_bench.results import ModelResult, Provenance, build_model_result

__all__ = ["DEFAULT_IMAGENET", "DEFAULT_LAIONET", "make_result", "recall_table"]

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


def make_result(
    model: str,
    laionet: dict[str, tuple[int, int]] | None = None,
    imagenet: dict[str, tuple[int, int]] | None = DEFAULT_IMAGENET,
    *,
    dataset: str = "laionet:clip_0.82",
) -> ModelResult:
    """A result for ``model`` (LAIONet weights proportional to the LAIONet counts)."""
    laionet = laionet or DEFAULT_LAIONET
    weights = pd.Series({w: n for w, (_, n) in laionet.items()}, dtype=float)
    laion_kw = {"dataset": dataset, "identity": {}, "n_listed": int(weights.sum()), "n_failed": 0}
    image_kw = None
    if imagenet is not None:
        image_kw = (recall_table(imagenet),
                    {"dataset": "imagenet-val", "identity": {}, "n_listed": sum(n for _, n in imagenet.values()),
                     "n_failed": 0})
    return build_model_result(
        model=model, run_key=f"test-{model}", model_info={},
        provenance=Provenance(harness_version="0.1.0", timm_version=None, torch_version=None, open_clip_version=None,
                              python_version="3", platform="test", device="cpu", dtype="float32",
                              date="2025-01-01T00:00:00+00:00", git_hash=None),
        laionet=(recall_table(laionet), laion_kw), imagenet=image_kw, weights=weights / weights.sum(),
    )
