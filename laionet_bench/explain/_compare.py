"""Intra-class similarity of rebuilt index variants against ImageNet-val (§4.2 and §4.4 share it).

Each variant is read exactly as ``run`` reads LAIONet (its image store, ImageNet-val restricted to its
classes) and handed to :func:`~laionet_bench.similarity.compute_similarity`. All variants share one
embedding cache folder (keyed per selection, as everywhere), so a rerun embeds nothing again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..similarity import EmbedOptions, compute_similarity

__all__ = ["compare_with_imagenet"]


def compare_with_imagenet(variants: Mapping[str, str | Path], *, images: str | Path, imagenet: str | Path, encoder,
                          folder: Path, embed: EmbedOptions | None = None, plot: bool = True) -> pd.DataFrame:
    """One row per variant: its and ImageNet's mean intra-class similarity (equi-weighted over classes) and
    the per-class test of SPEC §5 (variant − ImageNet): classes tested, share significantly lower/higher,
    share with Δ < 0, mean Δ, and whether too few classes were tested to conclude."""
    from ..evaluation.evaluator import load_datasets

    opts = embed or EmbedOptions()
    shared = replace(opts, cache_dir=opts.cache_dir or folder / "embeddings")
    rows = []
    for name, path in variants.items():
        index, sets = load_datasets(index=path, images=images, imagenet=imagenet)
        summary = compute_similarity({"laionet": sets["laionet"], "imagenet-val": sets["imagenet"]}, encoder=encoder,
                                     out=folder / name, results_dir=folder / name, embed=shared, plot=plot,
                                     class_weights=index.class_weights())
        c = summary.comparisons[0]
        rows.append({"variant": name, "rows": len(index), "classes": int(index.table["wnid"].nunique()),
                     "variant_mean": summary.datasets["laionet"].mean,
                     "imagenet_mean": summary.datasets["imagenet-val"].mean,
                     **{k: c[k] for k in ("n_classes_tested", "frac_lower", "frac_higher", "frac_delta_negative",
                                          "mean_delta", "too_few_classes")}})
    return pd.DataFrame(rows)
