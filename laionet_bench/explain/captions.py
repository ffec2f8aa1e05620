"""§4.3 ImageNet-Captions: how well does an ImageNet image's own text single out its class? (Fig. 8)

ImageNet was selected by looking at the image; LAIONet by looking at the caption. If ImageNet's own
texts (the Flickr title, tags and description of each train image, collected as ImageNet-Captions)
named their class as clearly as LAIONet's captions do, the caption would not be a bottleneck. The
paper finds the opposite: most ImageNet captions are far less similar to their synset text than
LAIONet's, and for many captions other synsets' texts are more similar than their own.

Input (:func:`read_imagenet_captions`): the ImageNet-Captions json as published, a list of objects
with ``filename``, ``title``, ``tags`` (list of str), ``description`` and ``wnid``; the caption is
``" ".join([title] + tags + [description])`` and entries are deduplicated by file name (first kept),
as the reference does (443,798 captions).

:func:`caption_ranks` streams the captions in chunks against the k synset texts (k = 1000): per chunk
one (chunk, k) similarity block, reduced at once to the own-synset similarity and the number of other
synsets that are more similar. Memory is O(chunk·k + k·d), time O(n·k·d): the n × k matrix (2.8 GB
for 444k × 1000 float64) never exists.

Fig. 8b (:func:`share_by_similarity`): captions binned by own similarity; per bin the mean share of
the other k − 1 synsets that are more similar, with a ±1.96 binomial band √(p(1 − p)/n) over the
bin's n captions (one Bernoulli "is beaten" rate per caption, the band of a share estimated from n).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..catalog import canonical_wnid, load_catalog
from ..errors import DatasetError
from ..rebuild.textsim import TextEncoder, synset_embeddings

__all__ = [
    "CAPTION_FIELDS",
    "Z_BAND",
    "CaptionsSummary",
    "caption_ranks",
    "caption_text",
    "read_imagenet_captions",
    "share_by_similarity",
    "similarity_histogram",
    "summarize_ranks",
]

logger = logging.getLogger(__name__)

#: The fields every ImageNet-Captions entry must have, with the type each must be.
CAPTION_FIELDS = {"filename": str, "title": str, "tags": list, "description": str, "wnid": str}
Z_BAND = 1.96


def caption_text(title: str, tags: Sequence[str], description: str) -> str:
    """The reference's caption of one image: ``" ".join([title] + tags + [description])``."""
    return " ".join([title, *tags, description])


def _check_entry(path: Path, i: int, entry: object) -> None:
    if not isinstance(entry, dict):
        raise DatasetError(f"{path}: entry {i} is a {type(entry).__name__}, not an object with fields "
                           f"{list(CAPTION_FIELDS)}; is this the ImageNet-Captions json?")
    for name, kind in CAPTION_FIELDS.items():
        if name not in entry:
            raise DatasetError(f"{path}: entry {i} has no field {name!r}; every entry needs "
                               f"{', '.join(CAPTION_FIELDS)} (fix or drop it)")
        if not isinstance(entry[name], kind):
            raise DatasetError(f"{path}: entry {i}: field {name!r} is a {type(entry[name]).__name__}, "
                               f"expected {kind.__name__} (fix or drop it)")
    if not all(isinstance(t, str) for t in entry["tags"]):
        raise DatasetError(f"{path}: entry {i}: field 'tags' must be a list of strings (fix or drop it)")


def read_imagenet_captions(path: str | Path) -> pd.DataFrame:
    """Read the ImageNet-Captions json → ``filename, wnid, caption``, one row per distinct file name.

    Raises:
        DatasetError: not a json list, or an entry lacks a field / has the wrong type (names the entry
            index and the field), or its wnid is not an ImageNet-1k class.
    """
    path = Path(path)
    try:
        entries = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such ImageNet-Captions file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid json ({exc}); give the ImageNet-Captions json") from None
    if not isinstance(entries, list) or not entries:
        raise DatasetError(f"{path}: expected a non-empty json list of caption objects")
    catalog = load_catalog()
    rows, seen = [], set()
    for i, entry in enumerate(entries):
        _check_entry(path, i, entry)
        if entry["filename"] in seen:
            continue
        seen.add(entry["filename"])
        wnid = canonical_wnid(entry["wnid"])
        if wnid not in catalog:
            raise DatasetError(f"{path}: entry {i}: field 'wnid' {entry['wnid']!r} is not an ImageNet-1k class")
        rows.append((entry["filename"], wnid, caption_text(entry["title"], entry["tags"], entry["description"])))
    logger.info("%s: %d captions (%d duplicate file names dropped)", path, len(rows), len(entries) - len(rows))
    frame = pd.DataFrame(rows, columns=["filename", "wnid", "caption"])
    frame.attrs["n_entries"] = len(entries)
    return frame


def caption_ranks(
    captions: Sequence[str], wnids: Sequence[str], encoder: TextEncoder, *, classes: Sequence[str] | None = None,
    chunk: int = 4096,
) -> pd.DataFrame:
    """Per caption: ``similarity`` to its own synset text and how many other synset texts beat it.

    Args:
        captions, wnids: one caption and its (ImageNet-1k) wnid per row.
        encoder: a text encoder (L2-normalised rows), e.g. :func:`~laionet_bench.rebuild.load_encoder`.
        classes: the synset texts to rank against (default: all 1000 classes of the catalogue).
        chunk: captions per block; memory is O(chunk · len(classes)).
    Returns:
        ``similarity`` (float32), ``n_more_similar`` (other synsets strictly more similar),
        ``share_more_similar`` = n_more_similar / (k − 1), ``rank`` (1 = own synset is the most similar).
    """
    classes = list(classes) if classes is not None else load_catalog().wnids
    position = {w: i for i, w in enumerate(classes)}
    missing = sorted({w for w in wnids if w not in position})
    if missing:
        raise DatasetError(f"caption wnids {missing[:5]} are not among the {len(classes)} classes ranked against")
    embedded = synset_embeddings(encoder, classes)
    synsets = np.stack([embedded[w] for w in classes]).astype(np.float32)  # (k, d)
    own_col = np.fromiter((position[w] for w in wnids), np.int64, count=len(wnids))
    n = len(captions)
    own = np.empty(n, np.float32)
    beaten = np.empty(n, np.int64)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        block = encoder.encode(list(captions[start:stop])) @ synsets.T  # (c, k), freed each chunk
        rows = np.arange(stop - start)
        own[start:stop] = block[rows, own_col[start:stop]]
        beaten[start:stop] = (block > own[start:stop, None]).sum(axis=1)
    k = len(classes)
    return pd.DataFrame({"similarity": own, "n_more_similar": beaten,
                         "share_more_similar": beaten / max(k - 1, 1), "rank": beaten + 1})


def share_by_similarity(ranks: pd.DataFrame, *, bins: int = 20) -> pd.DataFrame:
    """Fig. 8b: captions binned by own similarity (equal width over their range), non-empty bins only.

    Columns ``bin_left, bin_right, n, share`` (mean share of other synsets more similar),
    ``band_low, band_high`` (share ∓ 1.96·√(share(1 − share)/n), clipped to [0, 1]).
    """
    sims = ranks["similarity"].to_numpy(np.float64)
    if not len(sims):
        return pd.DataFrame(columns=["bin_left", "bin_right", "n", "share", "band_low", "band_high"])
    edges = np.histogram_bin_edges(sims, bins=bins)
    which = np.clip(np.searchsorted(edges, sims, side="right") - 1, 0, bins - 1)
    n = np.bincount(which, minlength=bins)
    total = np.bincount(which, weights=ranks["share_more_similar"].to_numpy(np.float64), minlength=bins)
    keep = n > 0
    share = total[keep] / n[keep]
    half = Z_BAND * np.sqrt(share * (1 - share) / n[keep])
    return pd.DataFrame({"bin_left": edges[:-1][keep], "bin_right": edges[1:][keep], "n": n[keep], "share": share,
                         "band_low": np.clip(share - half, 0, 1), "band_high": np.clip(share + half, 0, 1)})


def similarity_histogram(samples: dict[str, np.ndarray], *, bins: int = 50) -> pd.DataFrame:
    """Fig. 8a: one density column per named sample of similarities, on shared equal-width bins."""
    values = [np.asarray(v, np.float64) for v in samples.values() if len(v)]
    low = min((v.min() for v in values), default=0.0)
    high = max((v.max() for v in values), default=1.0)
    edges = np.linspace(low, high if high > low else low + 1e-6, bins + 1)
    table = pd.DataFrame({"bin_left": edges[:-1], "bin_right": edges[1:]})
    for name, v in samples.items():
        table[name] = np.histogram(v, bins=edges, density=len(v) > 0)[0] if len(v) else 0.0
    return table


@dataclass(frozen=True)
class CaptionsSummary:
    """What Fig. 8 says in numbers."""

    n_entries: int  # json entries read
    n_captions: int  # after deduplication by file name
    n_classes: int
    n_synsets: int  # synset texts ranked against (k)
    mean_similarity: float  # own-synset similarity, mean over captions
    median_similarity: float
    laionet_median_similarity: float  # NaN without a LAIONet index
    frac_above_threshold: float  # captions that would pass the LAIONet threshold (NaN without one)
    threshold: float | None
    mean_share_more_similar: float
    frac_not_top1: float  # captions with at least one other synset more similar than their own

    def to_dict(self) -> dict:
        return asdict(self)


def summarize_ranks(captions: pd.DataFrame, ranks: pd.DataFrame, *, n_synsets: int,
                    laionet: np.ndarray | None = None, threshold: float | None = None) -> CaptionsSummary:
    """Reduce the per-caption table (and LAIONet's similarities) to :class:`CaptionsSummary`."""
    sims = ranks["similarity"].to_numpy(np.float64)
    nan = math.nan
    return CaptionsSummary(
        n_entries=int(captions.attrs.get("n_entries", len(captions))),
        n_captions=len(captions),
        n_classes=int(captions["wnid"].nunique()),
        n_synsets=n_synsets,
        mean_similarity=float(sims.mean()) if len(sims) else nan,
        median_similarity=float(np.median(sims)) if len(sims) else nan,
        laionet_median_similarity=float(np.median(laionet)) if laionet is not None and len(laionet) else nan,
        frac_above_threshold=float((sims > threshold).mean()) if threshold is not None and len(sims) else nan,
        threshold=threshold,
        mean_share_more_similar=float(ranks["share_more_similar"].mean()) if len(ranks) else nan,
        frac_not_top1=float((ranks["n_more_similar"] > 0).mean()) if len(ranks) else nan,
    )


def laionet_similarities(index: pd.DataFrame, encoder: TextEncoder) -> np.ndarray:
    """LAIONet's caption-to-own-synset similarities under ``encoder``: the index's own column when it was
    computed with that encoder, else recomputed (OCR-flagged rows included: selection saw them too)."""
    from ..rebuild.textsim import caption_similarities

    same = index["similarity_encoder"].astype(str) == encoder.name
    if same.all():
        return index["similarity"].to_numpy(np.float32)
    logger.info("LAIONet similarities recomputed with %s (the index has %s)", encoder.name,
                sorted(index["similarity_encoder"].astype(str).unique()))
    return caption_similarities(index["caption"].tolist(), index["wnid"].tolist(), encoder)


def run_captions(
    captions: str | Path,
    *,
    encoder: TextEncoder | str,
    out: str | Path | None = None,
    laionet: pd.DataFrame | None = None,
    threshold: float | None = None,
    chunk: int = 4096,
    bins: int = 20,
    device: str | None = None,
    plot: bool = True,
) -> dict:
    """The whole §4.3 experiment: read, rank, bin, compare with LAIONet, write (see the module docstring).

    Files in ``<out>/explain/captions/``: ``captions.parquet`` (+ csv; per caption: filename, wnid,
    similarity, n_more_similar, share_more_similar, rank), ``share_by_similarity.csv`` (Fig. 8b),
    ``similarity_histogram.csv`` (Fig. 8a), ``summary.json``, ``fig8a_similarity.png``,
    ``fig8b_share_more_similar.png``. Returns the summary dict.

    Args:
        captions: the ImageNet-Captions json.
        encoder: a text encoder or its name (``openclip:ViT-B-32/openai``, the paper's).
        laionet: a LAIONet index table (our schema) to compare with (Fig. 8a), or ``None``.
        threshold: the LAIONet selection threshold drawn in Fig. 8a and counted in the summary.
    """
    from . import plots
    from ._output import experiment_dir, write_summary, write_table

    table = read_imagenet_captions(captions)
    if isinstance(encoder, str):
        from ..rebuild.textsim import load_encoder

        encoder = load_encoder(encoder, device=device)
    classes = load_catalog().wnids
    ranks = caption_ranks(table["caption"].tolist(), table["wnid"].tolist(), encoder, classes=classes, chunk=chunk)
    per_caption = pd.concat([table[["filename", "wnid"]], ranks], axis=1)
    laion = laionet_similarities(laionet, encoder) if laionet is not None else None
    binned = share_by_similarity(ranks, bins=bins)
    samples = {"ImageNet-Captions": ranks["similarity"].to_numpy()}
    if laion is not None:
        samples["LAIONet"] = laion
    histogram = similarity_histogram(samples)
    folder = experiment_dir(out, "captions")
    files = write_table(per_caption, folder, "captions", parquet=True)
    files |= write_table(binned, folder, "share_by_similarity") | write_table(histogram, folder, "similarity_histogram")
    if plot:
        files["fig8a"] = str(plots.plot_similarity_distributions(histogram, folder / "fig8a_similarity.png",
                                                                 encoder=encoder.name, threshold=threshold))
        files["fig8b"] = str(plots.plot_share_more_similar(binned, folder / "fig8b_share_more_similar.png",
                                                           encoder=encoder.name, n_synsets=len(classes)))
    summary = summarize_ranks(table, ranks, n_synsets=len(classes), laionet=laion, threshold=threshold)
    result = {"experiment": "captions", "encoder": encoder.name, "captions": str(captions), "chunk": chunk,
              "bins": bins, **summary.to_dict(), "files": files}
    files["summary"] = str(write_summary(folder, result))
    return result
