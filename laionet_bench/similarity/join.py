"""The joined per-class view: similarity on each dataset, the test, recall from the evaluation store,
LAIONet class frequency, and how Δrecall follows Δsimilarity across classes.

Recall comes from ``results.read_results`` (``<results>/<model>/per_class.parquet``): per dataset
``<key>_top1`` / ``<key>_top5`` with ``key`` ∈ {laionet, imagenet, imagenet-v2}. With several models the
recalls are averaged per class over the models that have them (``n_models`` says how many), unless one
model is named. Δ's are always first dataset − second dataset, for similarity and recall alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..catalog import load_catalog
from ..errors import ResultsError
from ..evaluation.results import read_results

__all__ = ["column_prefix", "correlation", "join_per_class", "recall_table", "result_key"]


def result_key(name: str) -> str:
    """The evaluation store's dataset key for a dataset spec (``laionet:clip_0.82`` → ``laionet``)."""
    base = name.split(":")[0]
    if base.startswith("imagenet-v2"):
        return "imagenet-v2"
    if base in ("imagenet", "imagenet-val"):
        return "imagenet"
    return base


def column_prefix(name: str) -> str:
    """A column-safe prefix for a dataset spec (``imagenet-val`` → ``imagenet_val``)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()


def recall_table(results_dir: str | Path, *, model: str | None = None, metric: str = "top1") -> pd.DataFrame:
    """Per-class recall (``<key>_<metric>`` columns), ``laionet_weight`` and ``n_models``, indexed by wnid.

    Averaged over every model under ``results_dir`` (or only ``model``). Empty when nothing is there.
    """
    results = [r for r in read_results(results_dir) if r.per_class is not None and (model is None or r.model == model)]
    if model is not None and not results:
        raise ResultsError(f"{results_dir}: no per-class result for model {model!r}; run 'laionet-bench run' first")
    frames = []
    for result in results:
        if result.per_class is None:  # filtered out above
            continue
        table = result.per_class.set_index("wnid")
        cols = [c for c in table.columns if c.endswith(f"_{metric}") and "_se_" not in c and not c.startswith("drop_")]
        frames.append(table[cols + (["laionet_weight"] if "laionet_weight" in table else [])].assign(n_models=1))
    if not frames:
        return pd.DataFrame(columns=["n_models"]).rename_axis("wnid")
    stacked = pd.concat(frames)
    out = stacked.drop(columns="n_models").groupby(level=0).mean()
    out["n_models"] = stacked.groupby(level=0)["n_models"].sum()
    return out.rename_axis("wnid")


def join_per_class(
    stats: Mapping[str, pd.DataFrame],
    *,
    comparison: pd.DataFrame | None = None,
    recalls: pd.DataFrame | None = None,
    weights: pd.Series | None = None,
    metric: str = "top1",
) -> pd.DataFrame:
    """One row per class seen in any dataset: similarity per dataset, the test, recall, weight.

    Args:
        stats: dataset name → :func:`~laionet_bench.similarity.stats.per_class_stats` table; the first two
            names are the compared pair (A, B).
        comparison: :func:`~laionet_bench.similarity.stats.compare_classes` frame for (A, B).
        recalls: :func:`recall_table` output.
        weights: LAIONet class share (overrides the recall table's ``laionet_weight``).
    """
    names = list(stats)
    catalog = load_catalog()
    wnids = list(dict.fromkeys(w for table in stats.values() for w in table.index))
    wnids.sort(key=lambda w: catalog.get(w).index if w in catalog else math.inf)
    out = pd.DataFrame({"wnid": wnids})
    out["class_index"] = [catalog.get(w).index if w in catalog else -1 for w in wnids]
    out["name"] = [catalog.get(w).name if w in catalog else "" for w in wnids]
    for name, table in stats.items():
        part = table.reindex(wnids)
        prefix = column_prefix(name)
        out[f"{prefix}_n_images"] = part["n_images"].fillna(0).astype("int64").to_numpy()
        out[f"{prefix}_n_pairs"] = part["n_pairs"].fillna(0).astype("int64").to_numpy()
        for col in ("mean", "std", "half_width"):
            out[f"{prefix}_sim_{col}"] = part[col].to_numpy(dtype=float)
    if comparison is not None:
        part = comparison.reindex(wnids)
        for col in ("delta", "delta_half_width", "delta_low", "delta_high"):
            out[col.replace("delta", "delta_sim", 1)] = part[col].to_numpy(dtype=float)
        out["tested"] = part["tested"].fillna(False).astype(bool).to_numpy()
        out["significance"] = part["significance"].fillna("").to_numpy()
    _add_recall(out, names, recalls, metric)
    if weights is None and recalls is not None and "laionet_weight" in recalls:
        weights = recalls["laionet_weight"]
    out["laionet_weight"] = weights.reindex(wnids).to_numpy(dtype=float) if weights is not None else np.nan
    return out


def _add_recall(out: pd.DataFrame, names: list[str], recalls: pd.DataFrame | None, metric: str) -> None:
    if recalls is None:
        return
    rows = recalls.reindex(out["wnid"])
    found = []
    for name in names:
        source = f"{result_key(name)}_{metric}"
        if source in rows:
            out[f"{column_prefix(name)}_recall_{metric}"] = rows[source].to_numpy(dtype=float)
            found.append(name)
    if len(names) >= 2 and names[0] in found and names[1] in found:
        a, b = (f"{column_prefix(n)}_recall_{metric}" for n in names[:2])
        out[f"delta_recall_{metric}"] = out[a] - out[b]
    if "n_models" in rows:
        out["n_models"] = rows["n_models"].fillna(0).astype("int64").to_numpy()


def correlation(frame: pd.DataFrame, *, x: str = "delta_sim", y: str = "delta_recall_top1") -> dict:
    """Pearson and Spearman correlation of two columns over the classes where both are finite."""
    if x not in frame or y not in frame:
        return {"x": x, "y": y, "n": 0, "pearson": math.nan, "spearman": math.nan}
    both = frame[[x, y]].replace([np.inf, -np.inf], np.nan).dropna()
    enough = len(both) >= 3 and both[x].nunique() > 1 and both[y].nunique() > 1
    return {
        "x": x,
        "y": y,
        "n": int(len(both)),
        "pearson": float(both[x].corr(both[y], method="pearson")) if enough else math.nan,
        "spearman": float(both[x].corr(both[y], method="spearman")) if enough else math.nan,
    }
