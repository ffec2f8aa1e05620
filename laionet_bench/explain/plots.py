"""The explain experiments' figures, after the paper's Fig. 7 and Fig. 8 (set up and saved by
:mod:`laionet_bench._figures`: headless Agg figures, atomic writes, the package's one DPI)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from .._figures import new_figure, save_figure
from ..similarity.stats import too_few_classes_note

__all__ = ["plot_frequency", "plot_share_more_similar", "plot_similarity_distributions"]

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def plot_similarity_distributions(table: pd.DataFrame, path: str | Path, *, encoder: str,
                                  threshold: float | None = None) -> Path:
    """Fig. 8a: densities of text-to-own-synset similarity (one column of ``table`` per dataset)."""
    fig = new_figure(6.4, 4.2, purpose="explain plots")
    ax = fig.add_subplot()
    edges = np.append(table["bin_left"].to_numpy(), table["bin_right"].iloc[-1])
    names = [c for c in table.columns if c not in ("bin_left", "bin_right")]
    for color, name in zip(COLORS, names, strict=False):
        density = table[name].to_numpy(dtype=float)
        ax.stairs(density, edges, fill=True, alpha=0.35, color=color, label=name)
        ax.stairs(density, edges, color=color, linewidth=1.2)
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"LAIONet threshold {threshold:g}")
    ax.set_xlabel(f"text-to-synset-text similarity ({encoder})")
    ax.set_ylabel("density")
    ax.set_title("How well does the text name its class?", fontsize=10)
    ax.legend(loc="upper left", frameon=False)
    return save_figure(fig, path)


def plot_share_more_similar(bins: pd.DataFrame, path: str | Path, *, encoder: str, n_synsets: int) -> Path:
    """Fig. 8b: per similarity bin, the share of other synsets more similar than the own one, ±1.96 band."""
    fig = new_figure(6.4, 4.2, purpose="explain plots")
    ax = fig.add_subplot()
    mid = (bins["bin_left"] + bins["bin_right"]).to_numpy() / 2
    ax.fill_between(mid, bins["band_low"], bins["band_high"], color=COLORS[0], alpha=0.25, label="±1.96 binomial band")
    ax.plot(mid, bins["share"], marker="o", color=COLORS[0], label="ImageNet captions")
    ax.set_xlabel(f"caption-to-own-synset-text similarity\n({encoder})")
    ax.set_ylabel(f"share of the other {n_synsets - 1} synsets more similar")
    ax.set_title("ImageNet captions: how often another class's text fits better", fontsize=10)
    ax.legend(loc="upper right", frameon=False)
    return save_figure(fig, path)


def plot_frequency(table: pd.DataFrame, path: str | Path) -> Path:
    """Fig. 7b/c: per ImageNet-V2 variant against its MTurk selection frequency, (left) the mean
    intra-class similarity of the variant and of each reference set, (right) the share of classes where
    the reference is significantly less similar than the variant."""
    fig = new_figure(10.0, 4.0, purpose="explain plots")
    left, right = fig.subplots(1, 2)
    for color, (reference, rows) in zip(COLORS, table.groupby("reference", sort=False), strict=False):
        rows = rows.sort_values("selection_frequency")
        x = rows["selection_frequency"].to_numpy()
        left.plot(x, rows["reference_mean"], linestyle="--", color=color, label=f"{reference}")
        right.plot(x, rows["frac_lower"], marker="o", color=color, label=f"{reference} lower than V2")
        for xi, name in zip(x, rows["variant"], strict=True):
            right.annotate(name, (xi, rows.loc[rows["variant"] == name, "frac_lower"].iloc[0]), fontsize=7,
                           xytext=(3, 3), textcoords="offset points")
    first = table.drop_duplicates("variant").sort_values("selection_frequency")
    left.plot(first["selection_frequency"], first["variant_mean"], marker="o", color="black", label="ImageNet-V2 variant")
    left.set_xlabel("MTurk selection frequency of the V2 variant")
    left.set_ylabel("mean intra-class similarity")
    left.legend(frameon=False, fontsize=8)
    right.set_xlabel("MTurk selection frequency of the V2 variant")
    right.set_ylabel("share of classes significantly less similar")
    right.legend(frameon=False, fontsize=8)
    thin = table[table["too_few_classes"]]
    if len(thin):  # the shares of a handful of classes are not a finding: say so across the panel
        note = too_few_classes_note(int(thin["n_classes_tested"].min()))
        right.set_title(textwrap.fill(note, 70), fontsize=8, color="#d62728")
    return save_figure(fig, path)
