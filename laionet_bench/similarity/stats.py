"""Intra-class similarity statistics and the two-dataset comparison, exactly as SPEC §5 defines them.

Per class, over the n L2-normalised embeddings x_1..x_n, the statistics are those of the P = n(n−1)/2
off-diagonal (unordered) pair cosines, as the reference computes them from the strict lower triangle:

* mean = Σ_{i≠j} x_i·x_j / (n(n−1)), with Σ_{i≠j} x_i·x_j = ‖Σ x_i‖² − Σ‖x_i‖²  — O(n·d);
* std (population, like ``np.std``) from Σ_{i≠j} (x_i·x_j)² = ‖XᵀX‖_F² − Σ‖x_i‖⁴. ‖XᵀX‖_F = ‖XXᵀ‖_F,
  so the cheaper Gram is used: d×d when n > d (O(n·d²)), n×n when n ≤ d (O(n²·d)); memory is never
  more than min(n, d)² numbers, and the pairs themselves are never listed.

The comparison of dataset A with dataset B (A − B, e.g. LAIONet − ImageNet):

* pooled histogram (Fig. 6a): for each class with at least one pair in both, draw min(P, 100) pair
  similarities with replacement (seeded per dataset and class), pool them, 70 bins on [0, 0.99];
* per-class test (Fig. 6b): classes with ≥ 7 pairs in both; half-width h = 1.96·std/√(P − 1);
  Δ = mean_A − mean_B with half-width √(h_A² + h_B²); A is significantly lower when Δ + h < 0 and
  higher when Δ − h > 0. Reference: 502/872 = 57.6 % lower, 27.9 % higher (CLIP ViT-B/32).
* a test over fewer than ``MIN_CLASSES_TESTED`` classes is flagged ``too_few_classes``: its shares are
  shares of a handful (the demo's 1 tested class reads "100 % lower") and say nothing about the datasets,
  so the tables and figures print :func:`too_few_classes_note` beside them instead of letting them read as
  a finding.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

__all__ = [
    "HIST_BINS",
    "HIST_RANGE",
    "MIN_CLASSES_TESTED",
    "MIN_PAIRS",
    "SAMPLES_PER_CLASS",
    "Z_REFERENCE",
    "ClassStats",
    "ComparisonSummary",
    "class_stats",
    "class_stats_naive",
    "common_classes",
    "compare_classes",
    "pair_similarities",
    "per_class_stats",
    "pooled_histogram",
    "sample_pair_similarities",
    "too_few_classes",
    "too_few_classes_note",
]

#: The reference's constants (SPEC §5).
Z_REFERENCE = 1.96
MIN_PAIRS = 7
SAMPLES_PER_CLASS = 100
HIST_BINS = 70
HIST_RANGE = (0.0, 0.99)
#: Fewest tested classes from which the per-class test's shares are reported as a result. Ours, not the
#: reference's (it tests 872 classes): below ten, one class moves a share by more than ten points.
MIN_CLASSES_TESTED = 10


@dataclass(frozen=True)
class ClassStats:
    """Off-diagonal pair-cosine statistics of one class (NaN when it has no pair)."""

    n_images: int
    n_pairs: int
    mean: float
    std: float

    @property
    def half_width(self) -> float:
        """95 % half-width of the mean as the reference computes it: 1.96·std/√(P − 1)."""
        if self.n_pairs < 2:
            return math.nan
        return Z_REFERENCE * self.std / math.sqrt(self.n_pairs - 1)


def _sum_squared_gram(x: np.ndarray) -> float:
    """‖XᵀX‖_F² = ‖XXᵀ‖_F², through the smaller of the two Gram matrices."""
    gram = x @ x.T if x.shape[0] <= x.shape[1] else x.T @ x
    return float(np.einsum("ij,ij->", gram, gram))


def class_stats(embeddings: np.ndarray) -> ClassStats:
    """Fast statistics of one class's (n, d) embeddings (see the module docstring)."""
    x = np.asarray(embeddings, dtype=np.float64)
    n = x.shape[0]
    pairs = n * (n - 1) // 2
    if n < 2:
        return ClassStats(n, 0, math.nan, math.nan)
    norms_sq = np.einsum("ij,ij->i", x, x)
    total = x.sum(axis=0)
    ordered = n * (n - 1)
    mean = (float(total @ total) - float(norms_sq.sum())) / ordered
    if n == 2:  # one pair: no spread (the closed form would leave rounding noise of ~1e-8)
        return ClassStats(n, pairs, mean, 0.0)
    mean_sq = (_sum_squared_gram(x) - float(norms_sq @ norms_sq)) / ordered
    return ClassStats(n, pairs, mean, math.sqrt(max(mean_sq - mean * mean, 0.0)))


def pair_similarities(embeddings: np.ndarray) -> np.ndarray:
    """All P off-diagonal cosines, strict lower triangle in row-major order (the reference's ``vec``)."""
    x = np.asarray(embeddings, dtype=np.float64)
    rows, cols = np.tril_indices(x.shape[0], k=-1)
    return (x @ x.T)[rows, cols]


def class_stats_naive(embeddings: np.ndarray) -> ClassStats:
    """The reference's way: the n×n similarity matrix, its strict lower triangle, ``np.mean``/``np.std``."""
    n = len(embeddings)
    if n < 2:
        return ClassStats(n, 0, math.nan, math.nan)
    sims = pair_similarities(embeddings)
    return ClassStats(n, len(sims), float(np.mean(sims)), float(np.std(sims)))


def per_class_stats(by_class: Mapping[str, np.ndarray], *, naive: bool = False) -> pd.DataFrame:
    """One row per wnid: ``n_images``, ``n_pairs``, ``mean``, ``std``, ``half_width``."""
    compute = class_stats_naive if naive else class_stats
    rows = {}
    for wnid, emb in by_class.items():
        stats = compute(emb)
        rows[wnid] = {**asdict(stats), "half_width": stats.half_width}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["n_images", "n_pairs", "mean", "std", "half_width"])
    frame.index.name = "wnid"
    return frame.astype({"n_images": "int64", "n_pairs": "int64"})


def _pair_index_to_ij(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear index into the strict lower triangle (row-major) → (row i, column j), j < i."""
    i = np.floor((1.0 + np.sqrt(1.0 + 8.0 * t)) / 2.0).astype(np.int64)
    i -= (i * (i - 1) // 2 > t).astype(np.int64)  # guard against float rounding, both ways
    i += ((i + 1) * i // 2 <= t).astype(np.int64)
    return i, t - i * (i - 1) // 2


def sample_pair_similarities(embeddings: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` pair cosines drawn uniformly with replacement, without listing all pairs (O(size·d))."""
    n = len(embeddings)
    pairs = n * (n - 1) // 2
    if pairs == 0 or size <= 0:
        return np.zeros(0)
    i, j = _pair_index_to_ij(rng.integers(0, pairs, size=size, dtype=np.int64))
    x = np.asarray(embeddings, dtype=np.float64)
    return np.einsum("ij,ij->i", x[i], x[j])


def _rng(seed: int, dataset: str, wnid: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(dataset.encode()), zlib.crc32(wnid.encode())])


def common_classes(by_class: Mapping[str, Mapping[str, np.ndarray]]) -> set[str]:
    """Classes with at least one pair (two images) in every dataset."""
    return set.intersection(*({w for w, e in classes.items() if len(e) >= 2} for classes in by_class.values()))


def pooled_histogram(
    by_class: Mapping[str, Mapping[str, np.ndarray]],
    *,
    seed: int = 0,
    per_class: int = SAMPLES_PER_CLASS,
    bins: int = HIST_BINS,
    value_range: tuple[float, float] = HIST_RANGE,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Fig. 6a: per class common to all datasets, min(P, ``per_class``) pair cosines with replacement.

    Args:
        by_class: dataset name → (wnid → embeddings).
    Returns:
        (table with ``bin_left``, ``bin_right`` and one count column per dataset, the pooled samples).
    """
    order = sorted(common_classes(by_class))
    pooled: dict[str, np.ndarray] = {}
    edges = np.linspace(value_range[0], value_range[1], bins + 1)
    table = pd.DataFrame({"bin_left": edges[:-1], "bin_right": edges[1:]})
    for name, classes in by_class.items():
        draws = []
        for wnid in order:
            emb = classes[wnid]
            size = min(len(emb) * (len(emb) - 1) // 2, per_class)
            draws.append(sample_pair_similarities(emb, _rng(seed, name, wnid), size))
        pooled[name] = np.concatenate(draws) if draws else np.zeros(0)
        table[name] = np.histogram(pooled[name], bins=edges)[0]
    return table, pooled


@dataclass(frozen=True)
class ComparisonSummary:
    """The per-class test of dataset ``a`` against ``b`` (Δ = a − b)."""

    a: str
    b: str
    n_classes_common: int  # classes with at least one pair in both
    n_classes_tested: int  # classes with ≥ MIN_PAIRS pairs in both
    n_lower: int  # Δ's upper bound < 0: a significantly less similar within class
    n_higher: int  # Δ's lower bound > 0
    frac_lower: float
    frac_higher: float
    frac_delta_negative: float  # share of tested classes with Δ < 0 (the paper's "almost two-thirds")
    mean_delta: float  # unweighted mean Δ over tested classes
    min_pairs: int = MIN_PAIRS
    min_classes_tested: int = MIN_CLASSES_TESTED
    too_few_classes: bool = False  # n_classes_tested < min_classes_tested: too thin to conclude

    def to_dict(self) -> dict:
        return asdict(self)


def too_few_classes(n_tested: int, minimum: int = MIN_CLASSES_TESTED) -> bool:
    """Whether a per-class test over ``n_tested`` classes is too thin to conclude anything."""
    return n_tested < minimum


def too_few_classes_note(n_tested: int, minimum: int = MIN_CLASSES_TESTED) -> str:
    """The one-line caveat printed next to a too-thin test's shares (tables and figures share it)."""
    return (f"too few classes to conclude: {n_tested} tested, fewer than the minimum of {minimum}; "
            "the shares lower/higher are not evidence either way")


def compare_classes(
    stats_a: pd.DataFrame, stats_b: pd.DataFrame, *, a: str, b: str, min_pairs: int = MIN_PAIRS,
    min_classes: int = MIN_CLASSES_TESTED,
) -> tuple[pd.DataFrame, ComparisonSummary]:
    """Per-class test (Fig. 6b) between two :func:`per_class_stats` tables.

    ``min_classes``: below this many tested classes the summary is flagged ``too_few_classes``.

    Returns the per-class frame (``delta``, ``delta_half_width``, ``delta_low``, ``delta_high``,
    ``tested``, ``significance`` ∈ {"lower", "higher", "none", ""}) over the classes in both, and the summary.
    """
    both = stats_a.index.intersection(stats_b.index)
    left, right = stats_a.loc[both], stats_b.loc[both]
    frame = pd.DataFrame(index=both)
    frame["delta"] = left["mean"] - right["mean"]
    frame["delta_half_width"] = np.sqrt(left["half_width"] ** 2 + right["half_width"] ** 2)
    frame["delta_low"] = frame["delta"] - frame["delta_half_width"]
    frame["delta_high"] = frame["delta"] + frame["delta_half_width"]
    frame["tested"] = (left["n_pairs"] >= min_pairs) & (right["n_pairs"] >= min_pairs)
    frame["significance"] = np.where(
        ~frame["tested"], "", np.where(frame["delta_high"] < 0, "lower", np.where(frame["delta_low"] > 0, "higher", "none"))
    )
    tested = frame[frame["tested"]]
    k = len(tested)
    n_lower = int((tested["significance"] == "lower").sum())
    n_higher = int((tested["significance"] == "higher").sum())
    summary = ComparisonSummary(
        a=a,
        b=b,
        n_classes_common=int(((left["n_pairs"] >= 1) & (right["n_pairs"] >= 1)).sum()),
        n_classes_tested=k,
        n_lower=n_lower,
        n_higher=n_higher,
        frac_lower=n_lower / k if k else math.nan,
        frac_higher=n_higher / k if k else math.nan,
        frac_delta_negative=float((tested["delta"] < 0).mean()) if k else math.nan,
        mean_delta=float(tested["delta"].mean()) if k else math.nan,
        min_pairs=min_pairs,
        min_classes_tested=min_classes,
        too_few_classes=too_few_classes(k, min_classes),
    )
    return frame, summary
