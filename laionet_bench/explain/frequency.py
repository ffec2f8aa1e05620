"""§4.1 ImageNet-V2 selection frequency: does stricter image-based selection make classes more alike? (Fig. 7)

ImageNet-V2 was collected three times with the same candidates and three rules on the MTurk
*selection frequency* (the share of annotators who confirmed the image shows the class):
``threshold-0.7`` (mean frequency .85), ``matched-frequency`` (.73) and ``top-images`` (.93). If
selection that looks at the image is what makes ImageNet's classes homogeneous, the intra-class
similarity of a V2 variant should rise with its selection frequency, and LAIONet — selected on text
alone — should be less similar than every variant, more so than ImageNet-val is.

:func:`run_v2_frequency` runs :func:`~laionet_bench.similarity.compute_similarity` (the reference's
sampling, cached embeddings, the per-class test of SPEC §5) once with LAIONet and once with
ImageNet-val as the first dataset, each against every V2 variant given, sharing one embedding cache,
and tabulates the comparisons against the selection frequencies. :func:`v2_accuracy` reads stored
``run`` results and lists, per model and V2 variant, LAIONet's and the variant's equi-weighted top-1.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..evaluation.results import read_results
from ..similarity import DatasetLike, EmbedOptions, SimilaritySummary, compute_similarity

__all__ = ["SELECTION_FREQUENCY", "frequency_table", "run_v2_frequency", "v2_accuracy"]

logger = logging.getLogger(__name__)

#: Mean MTurk selection frequency of each ImageNet-V2 variant (paper §4.1, SPEC §6).
SELECTION_FREQUENCY = {"threshold-0.7": 0.85, "matched-frequency": 0.73, "top-images": 0.93}


def _variant(name: str) -> str:
    return name.partition(":")[2] or name


def frequency_table(summaries: Mapping[str, SimilaritySummary]) -> pd.DataFrame:
    """One row per (reference set, V2 variant) from the :class:`SimilaritySummary` of each reference.

    Columns: reference, variant, selection_frequency, reference_mean, variant_mean, n_classes_tested,
    n_lower, n_higher, frac_lower, frac_higher, mean_delta (reference − variant), too_few_classes.
    """
    rows = []
    for reference, summary in summaries.items():
        for comparison in summary.comparisons:
            variant = _variant(comparison["b"])
            rows.append({
                "reference": reference, "variant": variant,
                "selection_frequency": SELECTION_FREQUENCY.get(variant, float("nan")),
                "reference_mean": summary.datasets[comparison["a"]].mean,
                "variant_mean": summary.datasets[comparison["b"]].mean,
                **{k: comparison[k] for k in ("n_classes_tested", "n_lower", "n_higher", "frac_lower", "frac_higher",
                                              "mean_delta", "too_few_classes")},
            })
    return pd.DataFrame(rows)


def v2_accuracy(results_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Per model and V2 variant: LAIONet's and the variant's equi-weighted top-1 from stored results.

    A ``run`` result holds one V2 variant (its ``imagenet-v2`` dataset spec names it); give one results
    folder per variant. Columns: model, variant, selection_frequency, laionet_top1, imagenet_v2_top1,
    imagenet_top1 (NaN when absent), gap_v2_top1 (V2 − LAIONet).
    """
    rows = []
    for folder in results_dirs:
        for result in read_results(folder):
            v2 = result.datasets.get("imagenet-v2")
            laionet = result.datasets.get("laionet")
            if v2 is None or laionet is None:
                continue
            variant = _variant(v2.dataset)
            imagenet = result.datasets.get("imagenet")
            rows.append({"model": result.model, "variant": variant,
                         "selection_frequency": SELECTION_FREQUENCY.get(variant, float("nan")),
                         "laionet_top1": laionet.top1.value, "imagenet_v2_top1": v2.top1.value,
                         "imagenet_top1": imagenet.top1.value if imagenet else float("nan"),
                         "gap_v2_top1": v2.top1.value - laionet.top1.value})
    columns = ["model", "variant", "selection_frequency", "laionet_top1", "imagenet_v2_top1", "imagenet_top1",
               "gap_v2_top1"]
    return pd.DataFrame(rows, columns=columns).sort_values(["model", "selection_frequency"], ignore_index=True)


def run_v2_frequency(
    laionet: DatasetLike,
    variants: Mapping[str, DatasetLike],
    *,
    imagenet: DatasetLike | None = None,
    encoder="openclip:ViT-B-32/openai",
    out: str | Path | None = None,
    results_dirs: Sequence[str | Path] = (),
    embed: EmbedOptions | None = None,
    seed: int = 0,
    plot: bool = True,
) -> dict:
    """The §4.1 experiment; files in ``<out>/explain/v2-frequency/``.

    ``frequency.csv`` (:func:`frequency_table`), ``accuracy.csv`` (:func:`v2_accuracy`, when
    ``results_dirs`` are given), ``fig7_selection_frequency.png``, ``summary.json``, and under
    ``laionet/`` and ``imagenet-val/`` the full similarity outputs of each reference (one shared
    embedding cache in ``embeddings/``).

    Args:
        laionet: the LAIONet dataset.
        variants: V2 variant name (``threshold-0.7``, ``matched-frequency``, ``top-images``) → dataset.
        imagenet: ImageNet-val, the second reference (optional).
        encoder: image encoder spec or :class:`~laionet_bench.similarity.Encoder` (the paper's CLIP ViT-B/32).
    """
    from . import plots
    from ._output import experiment_dir, write_summary, write_table

    folder = experiment_dir(out, "v2-frequency")
    opts = embed or EmbedOptions()
    if isinstance(encoder, str):
        from ..similarity import create_encoder

        encoder = create_encoder(encoder, weights=opts.weights, device=opts.device, amp=opts.amp)
    shared = replace(opts, cache_dir=opts.cache_dir or folder / "embeddings")
    v2 = {f"imagenet-v2:{name}": data for name, data in variants.items()}
    references = {"laionet": laionet, **({"imagenet-val": imagenet} if imagenet is not None else {})}
    summaries = {}
    for name, data in references.items():
        summaries[name] = compute_similarity({name: data, **v2}, encoder=encoder, out=folder / name,
                                             results_dir=folder / name, seed=seed, embed=shared, plot=plot)
    table = frequency_table(summaries)
    files = write_table(table, folder, "frequency")
    accuracy = v2_accuracy(list(results_dirs)) if results_dirs else None
    if accuracy is not None:
        files |= write_table(accuracy, folder, "accuracy")
    if plot and len(table):
        files["fig7"] = str(plots.plot_frequency(table, folder / "fig7_selection_frequency.png"))
    result = {"experiment": "v2-frequency", "encoder": str(encoder.spec), "selection_frequency": SELECTION_FREQUENCY,
              "comparisons": table.to_dict(orient="records"),
              "accuracy": accuracy.to_dict(orient="records") if accuracy is not None else None, "files": files}
    files["summary"] = str(write_summary(folder, result, device=encoder.device, dtype=encoder.dtype))
    return result
