"""``compute_similarity``: select → embed (cached, resumable) → statistics → compare → join → files.

Everything lands in ``<out>/similarity/<encoder slug>/``::

    summary.json        SimilaritySummary.to_dict(): per-dataset and comparison numbers, provenance
    per_class.parquet   one row per class (also per_class.csv): similarity per dataset, Δ and its
                        interval, significance, recall per dataset and Δrecall when the store has them,
                        LAIONet class share
    selection.parquet   every chosen row: dataset, key, wnid, has_image, status (ok/failed), error
    histogram.csv       the Fig. 6a bins with one count column per dataset
    fig6a_histogram.png, fig6b_class_intervals.png, recall_vs_similarity.png
    embeddings/         the embedding cache (see ``embed.py``)
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import constants
from .._io import atomic_write, slug, write_text_atomic
from ..errors import ConfigError
from ..evaluation.results import Provenance
from . import plots
from .embed import Embeddings, embed_selection
from .encoders import DEFAULT_ENCODER, Encoder, create_encoder
from .join import correlation, join_per_class, recall_table
from .sampling import DatasetLike, Selection, select_samples
from .stats import (
    HIST_BINS,
    HIST_RANGE,
    SAMPLES_PER_CLASS,
    common_classes,
    compare_classes,
    per_class_stats,
    pooled_histogram,
)

__all__ = ["SUMMARY_FILE", "DatasetSimilarity", "EmbedOptions", "SimilaritySummary", "compute_similarity"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SUMMARY_FILE = "summary.json"
#: ``selection.parquet`` error of a chosen row whose image is not in the store.
MISSING_IMAGE = "no image: the download failed or the file is missing"


@dataclass(frozen=True)
class EmbedOptions:
    """How embeddings are computed; none of these change which images are used."""

    weights: str | Path | None = None  # local encoder checkpoint
    device: str = "cpu"
    amp: str | None = None  # "bf16" or "fp16" autocast (None: float32), as run --amp
    batch_size: int = 64
    workers: int = 0  # image decoding threads
    chunk_size: int = 1024  # rows per resumable cache file
    cache_dir: str | Path | None = None  # default: <out>/similarity/<encoder>/embeddings
    progress: bool = True


@dataclass(frozen=True)
class DatasetSimilarity:
    """One dataset's similarity summary (equi-weighted over classes with at least one pair)."""

    n_classes: int  # classes with ≥ 1 embedded image
    n_classes_with_pairs: int
    n_images: int  # embedded images
    n_selected: int  # rows chosen, with or without an image
    n_failed: int  # chosen rows left out: no image (failed download) or unreadable
    n_missing: int  # chosen rows without an image in the store (part of n_failed)
    mean: float  # mean over classes of the class's mean pair similarity
    std: float  # mean over classes of the class's pair-similarity std
    std_of_class_means: float
    identity: dict[str, Any]
    selection: dict[str, Any]
    cache_dir: str


@dataclass
class SimilaritySummary:
    """What ``compute_similarity`` found; ``to_dict`` is ``summary.json``."""

    encoder: str
    encoder_info: dict[str, Any]
    datasets: dict[str, DatasetSimilarity]
    comparisons: list[dict[str, Any]]  # ComparisonSummary dicts, first dataset vs each other
    correlation: dict[str, Any] | None
    histogram: dict[str, Any]
    options: dict[str, Any]
    files: dict[str, str]
    provenance: Provenance
    per_class: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def comparison(self) -> dict[str, Any] | None:
        return self.comparisons[0] if self.comparisons else None

    def to_dict(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "encoder": self.encoder,
            "encoder_info": self.encoder_info,
            "datasets": {k: asdict(v) for k, v in self.datasets.items()},
            "comparison": self.comparison,
            "comparisons": self.comparisons,
            "correlation": self.correlation,
            "histogram": self.histogram,
            "options": self.options,
            "files": self.files,
            "provenance": asdict(self.provenance),
        }


def _dataset_summary(stats: pd.DataFrame, emb: Embeddings, selection: Selection, identity: dict) -> DatasetSimilarity:
    with_pairs = stats[stats["n_pairs"] >= 1]
    empty = with_pairs.empty
    return DatasetSimilarity(
        n_classes=int((stats["n_images"] >= 1).sum()),
        n_classes_with_pairs=len(with_pairs),
        n_images=len(emb.keys),
        n_selected=len(selection),
        n_failed=len(emb.failed) + len(selection.missing),
        n_missing=len(selection.missing),
        mean=math.nan if empty else float(with_pairs["mean"].mean()),
        std=math.nan if empty else float(with_pairs["std"].mean()),
        std_of_class_means=math.nan if empty else float(with_pairs["mean"].std(ddof=0)),
        identity=identity,
        selection=selection.describe(),
        cache_dir=str(emb.cache_dir),
    )


def _selection_frame(selection: Selection, emb: Embeddings) -> pd.DataFrame:
    frame = selection.to_frame()
    errors = dict(zip(emb.failed["key"], emb.failed["error"], strict=True))
    errors.update((key, MISSING_IMAGE) for key, _ in selection.missing)
    frame["status"] = ["failed" if k in errors else "ok" for k in frame["key"]]
    frame["error"] = [errors.get(k, "") for k in frame["key"]]
    return frame


def _listed_weights(datasets: Mapping[str, DatasetLike]) -> pd.Series | None:
    """LAIONet class share from the listed rows, when no evaluation result carries ``laionet_weight``."""
    for name, dataset in datasets.items():
        if name.split(":")[0] == "laionet":
            counts = dataset.listed_rows()["wnid"].astype(str).value_counts()
            return counts / counts.sum()
    return None


def _write_table(frame: pd.DataFrame, folder: Path, stem: str, csv: bool = True) -> None:
    with atomic_write(folder / f"{stem}.parquet") as handle:
        frame.to_parquet(handle, index=False)
    if csv:
        with atomic_write(folder / f"{stem}.csv", "w") as handle:
            frame.to_csv(handle, index=False)


def _analyse(dataset: DatasetLike, selection: Selection, encoder, cache_root: Path, opts: EmbedOptions):
    """Embed one dataset's selection and reduce it to per-class statistics and a summary."""
    identity = dataset.identity()
    emb = embed_selection(dataset, selection, encoder, cache_root=cache_root, identity=identity,
                          batch_size=opts.batch_size, chunk_size=opts.chunk_size, workers=opts.workers,
                          progress=opts.progress)
    by_class = emb.by_class()
    stats = per_class_stats(by_class)
    return by_class, stats, _dataset_summary(stats, emb, selection, identity), _selection_frame(selection, emb)


def _write_tables(folder: Path, joined: pd.DataFrame, selection: pd.DataFrame, histogram: pd.DataFrame) -> dict:
    _write_table(joined, folder, "per_class")
    _write_table(selection, folder, "selection", csv=False)
    with atomic_write(folder / "histogram.csv", "w") as handle:
        histogram.to_csv(handle, index=False)
    return {"per_class": str(folder / "per_class.parquet"), "selection": str(folder / "selection.parquet"),
            "histogram": str(folder / "histogram.csv")}


def _draw_plots(folder: Path, *, encoder: str, histogram: pd.DataFrame, n_common: int, comparison, joined, corr,
                names: list[str]) -> dict[str, str]:
    files = {"fig6a": str(plots.plot_histograms(histogram, folder / "fig6a_histogram.png", encoder=encoder,
                                                n_classes=n_common))}
    if comparison is not None and comparison["tested"].any():
        files["fig6b"] = str(plots.plot_class_intervals(comparison, folder / "fig6b_class_intervals.png",
                                                        a=names[0], b=names[1]))
    if corr is not None and corr["n"] >= 3:
        files["recall_vs_similarity"] = str(plots.plot_recall_vs_similarity(
            joined, folder / "recall_vs_similarity.png", x=corr["x"], y=corr["y"], correlation=corr,
            a=names[0], b=names[1]))
    return files


def compute_similarity(
    datasets: Mapping[str, DatasetLike],
    *,
    encoder: str | Encoder = DEFAULT_ENCODER,
    out: str | Path | None = None,
    per_class: int | None = None,
    sample: str = "reference",
    seed: int = 0,
    results_dir: str | Path | None = None,
    model: str | None = None,
    class_weights: pd.Series | None = None,
    embed: EmbedOptions | None = None,
    plot: bool = True,
) -> SimilaritySummary:
    """Intra-class similarity of each dataset and the comparison of the first with the others (SPEC §5).

    Args:
        datasets: name → dataset, in comparison order (A first: Δ = A − B), e.g. ``{"laionet": ..., "imagenet-val": ...}``.
        encoder: ``openclip:ARCH/TAG`` / ``timm:NAME`` spec, or a ready :class:`Encoder`.
        out: results root (default: ``constants.RESULTS_DIR``); files go to ``<out>/similarity/<encoder>/``.
        per_class, sample, seed: see :func:`~laionet_bench.similarity.sampling.select_samples`.
        results_dir: evaluation store to read per-class recall from (default: ``out``); skipped when absent.
        model: use this model's recall only (default: the mean over all models in the store).
        class_weights: LAIONet class share (default: the store's ``laionet_weight``, else the listed rows).
        embed: :class:`EmbedOptions`.
        plot: draw the PNG figures.
    """
    if not datasets:
        raise ConfigError("compute_similarity needs at least one dataset")
    opts = embed or EmbedOptions()
    if isinstance(encoder, str):
        encoder = create_encoder(encoder, weights=opts.weights, device=opts.device, amp=opts.amp)
    spec = str(encoder.spec)
    root = Path(out) if out is not None else constants.RESULTS_DIR
    folder = root / "similarity" / slug(spec)
    cache_root = Path(opts.cache_dir) if opts.cache_dir else folder / "embeddings"
    names = list(datasets)
    stats, by_class, summaries, selections = {}, {}, {}, []
    for name, dataset in datasets.items():
        selection = select_samples(dataset, name=name, per_class=per_class, sample=sample, seed=seed)
        by_class[name], stats[name], summaries[name], frame = _analyse(dataset, selection, encoder, cache_root, opts)
        selections.append(frame)
    comparisons, first_frame = [], None
    for other in names[1:]:
        frame, summary = compare_classes(stats[names[0]], stats[other], a=names[0], b=other)
        comparisons.append(summary.to_dict())
        first_frame = frame if first_frame is None else first_frame
    histogram, pooled = pooled_histogram(by_class, seed=seed)
    recalls = _recalls(results_dir if results_dir is not None else root, model)
    weights = class_weights if class_weights is not None else (
        None if recalls is not None and "laionet_weight" in recalls else _listed_weights(datasets))
    joined = join_per_class(stats, comparison=first_frame, recalls=recalls, weights=weights)
    corr = correlation(joined) if len(names) >= 2 and "delta_recall_top1" in joined else None
    files = _write_tables(folder, joined, pd.concat(selections, ignore_index=True), histogram)
    n_common = len(common_classes(by_class))
    if plot:
        files.update(_draw_plots(folder, encoder=spec, histogram=histogram, n_common=n_common,
                                 comparison=first_frame, joined=joined, corr=corr, names=names))
    result = SimilaritySummary(
        encoder=spec,
        encoder_info={"weights_id": encoder.weights_id, **encoder.info},
        datasets=summaries,
        comparisons=comparisons,
        correlation=corr,
        histogram={"bins": HIST_BINS, "range": list(HIST_RANGE), "per_class": SAMPLES_PER_CLASS, "seed": seed,
                   "n_classes": n_common, "n_samples": {k: int(len(v)) for k, v in pooled.items()}},
        options={"per_class": per_class, "sample": sample, "seed": seed, "model": model},
        files=files,
        provenance=Provenance.collect(device=encoder.device, dtype=encoder.dtype),
        per_class=joined,
    )
    write_text_atomic(folder / SUMMARY_FILE, json.dumps(result.to_dict(), indent=2, default=_json_default) + "\n")
    logger.info("similarity written to %s", folder)
    return result


def _recalls(results_dir: str | Path, model: str | None) -> pd.DataFrame | None:
    if not Path(results_dir).is_dir():
        return None
    table = recall_table(results_dir, model=model)
    return table if len(table) else None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
