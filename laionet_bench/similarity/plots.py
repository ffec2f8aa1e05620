"""PNG figures of the similarity study: Fig. 6a-style histograms, Fig. 6b-style per-class intervals,
and Δrecall against Δsimilarity. Set up and saved by :mod:`laionet_bench._figures` (headless Agg
figures, atomic writes, the package's one DPI).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .._figures import new_figure, save_figure
from .stats import MIN_CLASSES_TESTED, MIN_PAIRS, too_few_classes, too_few_classes_note

__all__ = ["plot_class_intervals", "plot_histograms", "plot_recall_vs_similarity"]

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
SIGNIFICANCE_COLORS = {"lower": "#d62728", "higher": "#1f77b4", "none": "#7f7f7f"}


def _figure(width: float = 6.4, height: float = 4.2):
    fig = new_figure(width, height, purpose="similarity plots")
    return fig, fig.add_subplot()


def plot_histograms(table: pd.DataFrame, path: str | Path, *, encoder: str, n_classes: int) -> Path:
    """Fig. 6a: overlaid density histograms of the pooled pair similarities, one per dataset."""
    fig, ax = _figure()
    edges = np.append(table["bin_left"].to_numpy(), table["bin_right"].iloc[-1])
    widths = np.diff(edges)
    names = [c for c in table.columns if c not in ("bin_left", "bin_right")]
    for color, name in zip(COLORS, names, strict=False):
        counts = table[name].to_numpy(dtype=float)
        total = counts.sum()
        density = counts / (total * widths) if total else counts
        ax.stairs(density, edges, fill=True, alpha=0.35, color=color, label=f"{name} ({int(total):,} pairs)")
        ax.stairs(density, edges, color=color, linewidth=1.2)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel(f"intra-class image–image similarity ({encoder})")
    ax.set_ylabel("density")
    ax.set_title(f"Pooled pair similarities, {n_classes} common classes (≤100 pairs each)", fontsize=10)
    ax.legend(loc="upper left", frameon=False)
    return save_figure(fig, path)


def plot_class_intervals(
    comparison: pd.DataFrame, path: str | Path, *, a: str, b: str, min_classes: int = MIN_CLASSES_TESTED
) -> Path:
    """Fig. 6b: per-class Δ = a − b sorted, with 95 % intervals, coloured by significance.

    Under ``min_classes`` tested classes the figure says, across it, that it is too thin to conclude.
    """
    tested = comparison[comparison["tested"]].sort_values("delta")
    fig, ax = _figure(7.2, 4.2)
    rank = np.arange(len(tested))
    ax.vlines(rank, tested["delta_low"], tested["delta_high"], color="#b0b0b0", linewidth=1.0, label="95% interval")
    for kind, color in SIGNIFICANCE_COLORS.items():
        mask = (tested["significance"] == kind).to_numpy()
        label = {"lower": f"{a} significantly lower", "higher": f"{a} significantly higher", "none": "not significant"}[kind]
        share = mask.sum() / len(tested) if len(tested) else 0.0
        ax.scatter(rank[mask], tested["delta"].to_numpy()[mask], s=8, color=color, zorder=3,
                   label=f"{label}: {mask.sum()} ({share:.1%})")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(f"classes sorted by Δ ({len(tested)} classes with ≥ {MIN_PAIRS} pairs in both)")
    ax.set_ylabel(f"Δ mean similarity ({a} − {b})")
    ax.set_title(f"Per-class intra-class similarity: {a} vs {b}", fontsize=10)
    ax.legend(loc="upper left", frameon=False, fontsize=8)
    if too_few_classes(len(tested), min_classes):
        fig.text(0.5, 0.5, too_few_classes_note(len(tested), min_classes).replace("; ", ";\n"), ha="center",
                 va="center", fontsize=10, color="#d62728", wrap=True,
                 bbox={"facecolor": "white", "edgecolor": "#d62728", "alpha": 0.9})
    return save_figure(fig, path)


def plot_recall_vs_similarity(
    frame: pd.DataFrame, path: str | Path, *, x: str, y: str, correlation: dict, a: str, b: str
) -> Path:
    """Δrecall against Δsimilarity per class, marker area ∝ LAIONet class share, with an OLS line."""
    both = frame[[x, y] + (["laionet_weight"] if "laionet_weight" in frame else [])].dropna(subset=[x, y])
    fig, ax = _figure(6.0, 4.6)
    weights = both["laionet_weight"].fillna(0).to_numpy() if "laionet_weight" in both else np.zeros(len(both))
    sizes = 6 + 300 * weights / weights.max() if weights.max() > 0 else np.full(len(both), 10.0)
    ax.scatter(both[x], both[y], s=sizes, alpha=0.5, color=COLORS[0], edgecolor="none",
               label="class (area ∝ LAIONet share)" if weights.max() > 0 else "class")
    if len(both) >= 3 and both[x].nunique() > 1:
        slope, intercept = np.polyfit(both[x], both[y], 1)
        grid = np.linspace(both[x].min(), both[x].max(), 50)
        ax.plot(grid, slope * grid + intercept, color=COLORS[1], linewidth=1.5, label=f"OLS slope {slope:.2f}")
    ax.legend(loc="upper left", frameon=False, fontsize=8)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel(f"Δ intra-class similarity ({a} − {b})")
    ax.set_ylabel(f"Δ recall ({a} − {b})")
    ax.set_title(
        f"{correlation['n']} classes: Pearson {correlation['pearson']:.2f}, Spearman {correlation['spearman']:.2f}",
        fontsize=10,
    )
    return save_figure(fig, path)
