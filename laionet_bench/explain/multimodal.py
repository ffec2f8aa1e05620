"""§4.2 Image-linked datasets A–D: does letting the image into the selection make classes more alike?

LAIONet keeps a row when its caption is similar to the synset text. Datasets A–D lower the text
threshold and add a threshold on the CLIP similarity between the *image* and the synset text, chosen
so that every dataset keeps the same number of rows: (text, image) = (0.81, .2579), (0.79, .2828),
(0.76, .2959), (0.72, .3037), ≈535k rows each. The more the image decides, the higher the
intra-class similarity — closer to ImageNet, whose annotators looked at the image.

Steps (:func:`run_multimodal`):

1. :func:`image_text_similarities` — per row the cosine between its image and its synset text, from
   the CLIP zero-shot model exactly as ``run`` builds it (:func:`~laionet_bench.models.registry.build_model`,
   ``paper`` prompts: the logits are 100 × that cosine) on batches decoded once by the engine's
   decoder (:func:`~laionet_bench.evaluation.inference.decode_loader`, DataLoader workers). Cached in
   ``image_similarity.parquet`` under the dataset's identity and the model; unreadable images get NaN
   and are never kept.
2. :func:`image_threshold_for` — for each text threshold, the image threshold that keeps ``target``
   rows, by golden-section search on |rows − target| (rows is monotone in the image threshold).
3. The chosen (text, image) pairs become index variants in our schema (``x_image_similarity`` added);
   :func:`~._compare.compare_with_imagenet` compares each with ImageNet-val.

A threshold pair that leaves classes empty is reported (``empty_classes`` in ``thresholds.csv``,
a warning); a variant with no row at all is reported and not written, never a crash.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError

__all__ = [
    "PAPER_DATASETS",
    "TEXT_THRESHOLDS",
    "ThresholdPair",
    "image_text_similarities",
    "image_threshold_for",
    "run_multimodal",
    "threshold_table",
]

logger = logging.getLogger(__name__)

#: The text thresholds the paper scans, and its four datasets' text thresholds (SPEC §6).
TEXT_THRESHOLDS = tuple(round(0.72 + 0.01 * i, 2) for i in range(11))
PAPER_DATASETS = {"A": 0.81, "B": 0.79, "C": 0.76, "D": 0.72}
_GOLDEN = (math.sqrt(5) - 1) / 2


def image_text_similarities(dataset, *, model: str = "openclip:ViT-B-32/openai",
                            weights: dict[str, str | Path] | None = None, device: str = "cpu", batch_size: int = 64,
                            workers: int = 0, cache: str | Path | None = None) -> pd.DataFrame:
    """``key, wnid, image_similarity`` (NaN when the image is unreadable or the class has no logit, with
    ``error``) for every row of ``dataset``.

    ``model`` is built by the model registry as ``run`` builds it. An open_clip zero-shot spec (the
    paper's) gives the cosine between the image and the row's synset text (its logit / logit scale); any
    other classifier gives its softmax probability of the row's class, an image-to-class score standing in
    where no CLIP weights are at hand (the demo). Each image is decoded once (the engine's decoder).
    ``cache``: a parquet file reused when it was written for the same dataset identity and model.
    """
    import torch

    from ..evaluation.inference import DecodedBatch, decode_loader
    from ..evaluation.options import EngineOptions
    from ..models.registry import build_model, weights_identity

    identity = json.dumps({"dataset": dataset.identity(), "model": model, "weights": weights_identity(model, weights)},
                          sort_keys=True, default=str)
    if cache is not None and Path(cache).is_file() and _stored_identity(cache) == identity:
        return pd.read_parquet(cache)
    loaded = build_model(model, weights=weights, device=device)
    zero_shot = model.startswith("openclip:")
    column = {w: i for i, w in reversed(list(enumerate(loaded.label_map.wnids)))}
    mean = torch.tensor(loaded.data_config["mean"], device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(loaded.data_config["std"], device=device).view(1, 3, 1, 1) * 255
    loader = decode_loader(dataset, np.arange(len(dataset)), loaded.data_config,
                           options=EngineOptions(batch_size=batch_size, workers=workers), pin_memory=False)
    keys, wnids, sims, errors = [], [], [], []
    with torch.inference_mode():
        for raw in loader:
            batch = DecodedBatch.collated(raw, dataset)
            mapped = loaded.label_map.select(loaded.module((batch.images.to(device).float() - mean) / std).float())
            scores = (mapped / loaded.module.logit_scale if zero_shot else mapped.softmax(dim=1)).cpu().numpy()
            cols = np.array([column.get(str(w), -1) for w in batch.wnids])
            own = scores[np.arange(len(batch)), np.maximum(cols, 0)]
            sims.append(np.where(batch.ok & (cols >= 0), own, np.nan))
            keys += [str(k) for k in batch.keys]
            wnids += [str(w) for w in batch.wnids]
            errors += [e or ("" if c >= 0 else "class has no logit") for e, c in zip(batch.errors, cols, strict=True)]
    frame = pd.DataFrame({"key": keys, "wnid": wnids,
                          "image_similarity": np.concatenate(sims).astype(np.float32) if sims else [],
                          "error": errors})
    if cache is not None:
        _write_cache(frame, Path(cache), identity)
    return frame


def _write_cache(frame: pd.DataFrame, path: Path, identity: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .._io import atomic_write

    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"laionet_bench_identity": identity.encode()})
    with atomic_write(path) as handle:
        pq.write_table(table, handle)


def _stored_identity(path: str | Path) -> str | None:
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    value = meta.get(b"laionet_bench_identity")
    return value.decode() if value else None


def _rows_above(sorted_image: np.ndarray, threshold: float) -> int:
    return len(sorted_image) - int(np.searchsorted(sorted_image, threshold, side="right"))


def image_threshold_for(image_sims: np.ndarray, target: int, *, tol: float = 1e-7, max_iter: int = 200) -> float:
    """The image threshold t with #{image > t} closest to ``target``, by golden-section search.

    ``image_sims`` are the image similarities of the rows that pass the text threshold. The cost
    |#{image > t} − target| is unimodal in t but flat in steps, so equal costs are told apart by the
    sign of #{image > t} − target (the count falls as t rises). When no more than ``target`` rows pass
    the text threshold, no image threshold is needed: returns −1 (keep them all).
    """
    values = np.sort(np.asarray(image_sims, np.float64)[~np.isnan(image_sims)])
    if len(values) <= target or not len(values):
        return -1.0
    lo, hi = float(values[0]) - 1e-6, float(values[-1]) + 1e-6

    def excess(t: float) -> int:
        return _rows_above(values, t) - target

    def left_is_better(ea: int, eb: int) -> bool:  # keep [lo, b] rather than [a, hi]
        return abs(ea) < abs(eb) or (abs(ea) == abs(eb) and ea <= 0)

    a, b = lo + (1 - _GOLDEN) * (hi - lo), lo + _GOLDEN * (hi - lo)
    ea, eb = excess(a), excess(b)
    for _ in range(max_iter):
        if hi - lo < tol or ea == 0 or eb == 0:
            break
        if left_is_better(ea, eb):
            hi, b, eb = b, a, ea
            a = lo + (1 - _GOLDEN) * (hi - lo)
            ea = excess(a)
        else:
            lo, a, ea = a, b, eb
            b = lo + _GOLDEN * (hi - lo)
            eb = excess(b)
    return float(a if abs(ea) <= abs(eb) else b)


@dataclass(frozen=True)
class ThresholdPair:
    """One text threshold, its image threshold and what they keep."""

    text_threshold: float
    image_threshold: float
    rows: int
    target: int
    classes: int
    empty_classes: int  # classes of the pool with no row left
    short: bool  # fewer rows than the target pass the text threshold alone

    def to_dict(self) -> dict:
        return asdict(self)


def _keep(rows: pd.DataFrame, text: float, image: float) -> np.ndarray:
    img = rows["x_image_similarity"].to_numpy(np.float64)
    return (rows["similarity"].to_numpy() > text) & (np.nan_to_num(img, nan=-np.inf) > image)


def threshold_table(rows: pd.DataFrame, text_thresholds, *, target: int) -> list[ThresholdPair]:
    """For each text threshold the image threshold keeping ``target`` rows (``rows`` has ``similarity``
    (text), ``x_image_similarity`` and ``wnid``); classes left empty are counted, not fatal."""
    pool_classes = set(rows["wnid"])
    pairs = []
    for text in sorted(text_thresholds):
        passing = rows["similarity"].to_numpy() > text
        image = image_threshold_for(rows.loc[passing, "x_image_similarity"].to_numpy(np.float64), target)
        kept = rows[_keep(rows, text, image)]
        empty = len(pool_classes - set(kept["wnid"]))
        if empty:
            logger.warning("text > %g, image > %.4f leaves %d of %d classes empty", text, image, empty, len(pool_classes))
        pairs.append(ThresholdPair(text, image, len(kept), target, int(kept["wnid"].nunique()), empty,
                                   bool(passing.sum() < target)))
    return pairs


def run_multimodal(
    dataset,
    index: pd.DataFrame,
    *,
    out: str | Path | None = None,
    text_thresholds=TEXT_THRESHOLDS,
    datasets: dict[str, float] | None = None,
    target: int | None = None,
    model: str = "openclip:ViT-B-32/openai",
    weights: dict[str, str | Path] | None = None,
    device: str = "cpu",
    batch_size: int = 64,
    workers: int = 0,
) -> dict:
    """Steps 1–3 of the module docstring up to the variants; returns the summary (paths in ``files``).

    Args:
        dataset: the LAIONet dataset of ``index`` (its images), from :func:`~laionet_bench.datasets.create_dataset`.
        index: the candidate pool in our schema, selected at (or below) the lowest text threshold.
        datasets: name → text threshold of the variants to write (default: the paper's A–D).
        target: rows every dataset keeps (default: the rows passing the strictest text threshold alone;
            the paper fixed ≈535k).
    """
    from ..index.schema import write_index
    from ._output import experiment_dir, write_summary, write_table

    folder = experiment_dir(out, "multimodal")
    sims = image_text_similarities(dataset, model=model, weights=weights, device=device, batch_size=batch_size,
                                   workers=workers, cache=folder / "image_similarity.parquet")
    by_key = dict(zip(sims["key"], sims["image_similarity"], strict=True))
    rows = index.assign(x_image_similarity=[by_key.get(str(r), np.nan) for r in index["row_id"]]).astype(
        {"x_image_similarity": "float32"})
    datasets = dict(datasets or PAPER_DATASETS)
    strictest = max([*text_thresholds, *datasets.values()])
    target = target if target is not None else int((rows["similarity"] > strictest).sum())
    if target < 1:
        raise ConfigError(f"no row passes the text threshold {strictest:g}: lower the thresholds or pass --rows")
    pairs = threshold_table(rows, sorted({*text_thresholds, *datasets.values()}), target=target)
    table = pd.DataFrame([p.to_dict() for p in pairs])
    files = write_table(table, folder, "thresholds")
    by_text = {p.text_threshold: p for p in pairs}
    variants, skipped = {}, {}
    for name, text in datasets.items():
        pair = by_text[text]
        kept = rows[_keep(rows, pair.text_threshold, pair.image_threshold)]
        if kept.empty:
            skipped[name] = f"text > {text:g} and image > {pair.image_threshold:.4f} keep no row"
            logger.warning("dataset %s: %s; not written", name, skipped[name])
            continue
        path = folder / f"{name}.parquet"
        write_index(kept.assign(variant=f"multimodal_{name}"), path)
        variants[name] = str(path)
    result = {"experiment": "multimodal", "model": model, "target": target, "thresholds": table.to_dict("records"),
              "datasets": {n: {"text_threshold": t, "image_threshold": by_text[t].image_threshold,
                               "rows": by_text[t].rows, "classes": by_text[t].classes,
                               "empty_classes": by_text[t].empty_classes} for n, t in datasets.items()},
              "variants": variants, "skipped": skipped, "n_unreadable": int(sims["image_similarity"].isna().sum()),
              "files": files}
    files["summary"] = str(write_summary(folder, result, device=device))
    return result
