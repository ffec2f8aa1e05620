"""Leaderboard figures (PNG, matplotlib, headless): the paper's Fig. 1 and Fig. 5, per-class recall vs
LAIONet class frequency, and intra-class similarity when summaries exist.

Figures are set up and saved by :mod:`laionet_bench._figures` (headless, atomic, one DPI for every
figure of the package). Each pretrain group keeps one colour in every figure.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .._figures import new_figure, save_figure
from ..models.groups import GROUPS
from ..similarity.stats import MIN_CLASSES_TESTED, too_few_classes
from .table import Leaderboard

__all__ = [
    "FIGURES",
    "plot_accuracy_scatter",
    "plot_per_class_frequency",
    "plot_shifts",
    "plot_similarity",
    "plot_weighting",
    "write_plots",
]

logger = logging.getLogger(__name__)

#: Figure file names, in the order pages show them.
FIGURES = {
    "accuracy": "fig1_imagenet_vs_laionet.png",
    "weighting": "fig5_laion_vs_equi_weighted.png",
    "per_class": "per_class_recall_vs_frequency.png",
    "similarity": "similarity.png",
}
_LABEL_LIMIT = 12  # annotate points with model names up to this many models


def _figure(width: float = 7.0, height: float = 5.5):
    return new_figure(width, height, purpose="drawing leaderboard plots")


#: One colour per group in every figure: ImageNet-trained groups in cool/earth tones, zero-shot CLIP in reds.
_COLOURS = {
    "in1k": "tab:blue", "in21k-ft": "tab:orange", "in12k-ft": "tab:olive", "clip-ft": "tab:purple",
    "ssl-ft": "tab:cyan", "semi-supervised": "tab:green", "weakly-supervised": "tab:pink", "distilled": "tab:brown",
    "in21k": "goldenrod", "in12k": "darkkhaki", "clip-zs-laion": "tab:red", "clip-zs-openai": "darkred",
    "clip-zs": "salmon", "backbone": "tab:gray", "other": "black",
}


def _colour(group: str) -> str:
    return _COLOURS.get(group, "black")


def _label_offsets() -> list[tuple[int, int]]:
    """Candidate label offsets from a point (points): beside it first, then further up and down."""
    return [(dx, dy) for dy in (0, 9, -9, 18, -18, 27, -27, 36, -36, 48, -48, 60, -60) for dx in (9, -9)]


def _annotate(ax, name: str, xy, offset: tuple[int, int]):
    dx, dy = offset
    arrow = {"arrowstyle": "-", "color": "0.6", "lw": 0.5, "shrinkB": 4} if dy else None
    label = ax.annotate(name, xy, xytext=offset, textcoords="offset points", fontsize=7, va="center",
                        ha="left" if dx > 0 else "right", arrowprops=arrow)
    label.set_in_layout(False)  # placed after the layout settled; must not move the axes again
    return label


def _place_labels(fig, ax, xs, ys, names) -> None:
    """Model names next to their points where they overlap no other label, point or the legend and stay
    inside the axes; a thin leader line when a label had to move away. A label with no free place is left
    out (the legend still identifies the group). Few models only."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    if len(names) > _LABEL_LIMIT:
        return
    fig.draw_without_rendering()  # settle the layout so display coordinates are final
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    points = ax.transData.transform(np.column_stack([np.asarray(xs, float), np.asarray(ys, float)]))
    taken = [Bbox.from_bounds(px - 9, py - 6, 18, 12) for px, py in points]  # marker and error bars
    if ax.get_legend() is not None:
        taken.append(ax.get_legend().get_window_extent(renderer))
    for x, y, name in sorted(zip(xs, ys, names, strict=True), key=lambda p: -p[1]):
        for offset in _label_offsets():
            label = _annotate(ax, name, (x, y), offset)
            label.update_positions(renderer)
            box = Text.get_window_extent(label, renderer)  # the text only, not the leader line
            fits = inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)
            if fits and not any(box.overlaps(t) for t in taken):
                taken.append(box)
                break
            label.remove()
        else:
            logger.debug("no free place for the label of %s", name)
    fig.set_layout_engine("none")  # keep the measured positions at save time


def _scatter_by_group(ax, table: pd.DataFrame, x: str, y: str, *, errors: bool = True, **style) -> None:
    order = {g: i for i, g in enumerate(GROUPS)}
    for group, part in sorted(table.groupby("group"), key=lambda item: order.get(item[0], len(order))):
        ax.errorbar(
            part[x], part[y],
            xerr=part[f"{x}_se"] if errors else None, yerr=part[f"{y}_se"] if errors else None,
            fmt="o", ms=6, capsize=2, elinewidth=0.8, color=_colour(group),
            label=GROUPS[group].label if group in GROUPS else group, **style,
        )


def _square_limits(ax, values: np.ndarray, pad: float = 3.0) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    lo, hi = max(0.0, finite.min() - pad), min(100.0, finite.max() + pad)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.plot([lo, hi], [lo, hi], ls="--", color="0.5", lw=1, label="y = x")
    return lo, hi


def plot_accuracy_scatter(board: Leaderboard, path: str | Path) -> Path | None:
    """Fig. 1: ImageNet-val vs LAIONet equi-weighted top-1, y = x, SE bars, fit line; None without ImageNet."""
    table = board.table.dropna(subset=["imagenet_top1", "laionet_top1"])
    if table.empty:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    lo, hi = _square_limits(ax, table[["imagenet_top1", "laionet_top1"]].to_numpy(float))
    if board.fit is not None:
        grid = np.linspace(lo, hi, 200)
        ax.plot(grid, board.fit.predict(grid / 100) * 100, color="0.2", lw=1.2,
                label=f"effective-robustness fit ({board.fit.n_models} models)")
    _scatter_by_group(ax, table, "imagenet_top1", "laionet_top1")
    ax.set_xlabel("ImageNet-val top-1 (%), equi-weighted over LAIONet classes")
    ax.set_ylabel("LAIONet top-1 (%), equi-weighted")
    ax.set_title("ImageNet-val vs LAIONet accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    _place_labels(fig, ax, table["imagenet_top1"], table["laionet_top1"], table["model"].tolist())
    return save_figure(fig, path)


def plot_weighting(board: Leaderboard, path: str | Path) -> Path | None:
    """Fig. 5: LAION-weighted vs equi-weighted top-1 on LAIONet (filled) and ImageNet-val (hollow control)."""
    table = board.table.dropna(subset=["laionet_top1", "laionet_lw_top1"])
    if table.empty:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    columns = ["laionet_top1", "laionet_lw_top1", "imagenet_top1", "imagenet_lw_top1"]
    _square_limits(ax, table[columns].to_numpy(float))
    _scatter_by_group(ax, table, "laionet_top1", "laionet_lw_top1")
    control = table.dropna(subset=["imagenet_top1", "imagenet_lw_top1"])
    if not control.empty:
        ax.scatter(control["imagenet_top1"], control["imagenet_lw_top1"], s=36, facecolors="none",
                   edgecolors=[_colour(g) for g in control["group"]], label="ImageNet-val, same weights (control)")
    ax.set_xlabel("equi-weighted top-1 (%)")
    ax.set_ylabel("LAION-weighted top-1 (%)")
    ax.set_title("LAION-weighted vs equi-weighted accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    _place_labels(fig, ax, table["laionet_top1"], table["laionet_lw_top1"], table["model"].tolist())
    return save_figure(fig, path)


def _mean_per_class(board: Leaderboard) -> pd.DataFrame:
    """wnid → LAION weight and LAIONet/ImageNet top-1 recall averaged over the board's models."""
    frames = [f.set_index("wnid") for f in board.per_class.values() if f is not None and not f.empty]
    if not frames:
        return pd.DataFrame()
    stacked = pd.concat(frames)
    columns = [c for c in ("laionet_weight", "laionet_top1", "imagenet_top1") if c in stacked.columns]
    return stacked[columns].groupby(level=0).mean()


def plot_per_class_frequency(board: Leaderboard, path: str | Path) -> Path | None:
    """Per-class top-1 recall (mean over models) against the class's share of LAIONet, log x."""
    per_class = _mean_per_class(board)
    if per_class.empty or "laionet_weight" not in per_class or not (per_class["laionet_weight"] > 0).any():
        return None
    per_class = per_class[per_class["laionet_weight"] > 0]
    fig = _figure()
    ax = fig.add_subplot()
    share = per_class["laionet_weight"] * 100
    for column, label, colour in (("imagenet_top1", "ImageNet-val", "tab:blue"), ("laionet_top1", "LAIONet", "tab:red")):
        if column not in per_class or per_class[column].isna().all():
            continue
        ax.scatter(share, per_class[column] * 100, s=12, alpha=0.5, color=colour, label=f"{label} recall per class")
        _binned_mean(ax, share, per_class[column] * 100, colour, label)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter("{x:g}")
    ax.set_xlabel("class share of LAIONet rows (%, log scale)")
    ax.set_ylabel(f"top-1 recall (%), mean over {len(board.per_class)} model(s)")
    ax.set_ylim(-3, 103)
    ax.set_title("Per-class recall vs LAIONet class frequency")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncol=2, fontsize=8)  # below the axes: the points fill the plot
    return save_figure(fig, path)


def _binned_mean(ax, x: pd.Series, y: pd.Series, colour, label: str, bins: int = 8) -> None:
    valid = np.isfinite(y.to_numpy(float))
    if valid.sum() < 2 or x[valid].nunique() < 2:
        return
    edges = np.geomspace(x[valid].min(), x[valid].max() * 1.0001, min(bins, int(valid.sum())) + 1)
    which = np.digitize(x[valid], edges) - 1
    frame = pd.DataFrame({"bin": which, "x": x[valid].to_numpy(), "y": y[valid].to_numpy()})
    means = frame.groupby("bin").agg(x=("x", "median"), y=("y", "mean"))
    ax.plot(means["x"], means["y"], color=colour, lw=2, marker="s", ms=4, label=f"{label}, binned mean")


def plot_similarity(board: Leaderboard, path: str | Path) -> Path | None:
    """Mean intra-class similarity per dataset, one bar group per encoder (when summaries exist)."""
    sim = board.similarity
    if sim.empty or "mean" not in sim:
        return None
    pivot = sim.pivot_table(index="encoder", columns="dataset", values="mean", aggfunc="first")
    fig = _figure(7.0, 1.5 + 0.9 * len(pivot))
    ax = fig.add_subplot()
    height = 0.8 / max(1, len(pivot.columns))
    positions = np.arange(len(pivot))
    for i, dataset in enumerate(pivot.columns):
        bars = ax.barh(positions + i * height, pivot[dataset], height=height, label=str(dataset))
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    ax.set_yticks(positions + height * (len(pivot.columns) - 1) / 2, _encoder_labels(board, pivot.index), fontsize=8)
    ax.set_xlabel("mean pairwise cosine similarity within a class")
    ax.set_xlim(0, min(1.0, float(np.nanmax(pivot.to_numpy(float))) * 1.15))
    ax.set_title("Intra-class similarity")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title="dataset", title_fontsize=8)
    return save_figure(fig, path)


def _encoder_labels(board: Leaderboard, encoders) -> list[str]:
    """Encoder names, with the per-class test's share of classes significantly lower/higher on LAIONet.

    A test over fewer than :data:`~laionet_bench.similarity.stats.MIN_CLASSES_TESTED` classes shows no share:
    "lower: 100%" from one class would read as a finding.
    """
    tests = board.similarity_tests.set_index("encoder") if "encoder" in board.similarity_tests else pd.DataFrame()
    labels = []
    for encoder in encoders:
        label = str(encoder)
        if encoder in tests.index and {"frac_lower", "frac_higher"} <= set(tests.columns):
            row = tests.loc[encoder]
            pair = f"{row['a']} vs {row['b']}" if {"a", "b"} <= set(tests.columns) else "LAIONet"
            tested = int(row["n_classes_tested"]) if "n_classes_tested" in tests.columns else None
            if tested is not None and too_few_classes(tested):
                label += f"\n{pair}: {tested} class(es) tested, too few to conclude (minimum {MIN_CLASSES_TESTED})"
            else:
                label += f"\n{pair} lower: {row['frac_lower']:.0%}, higher: {row['frac_higher']:.0%}"
        labels.append(label)
    return labels


#: One colour and marker per distribution shift (``leaderboard --shifts``); LAIONet stands out in black.
_SHIFT_STYLES = {
    "laionet": ("black", "*"), "imagenetv2": ("tab:blue", "o"), "sketch": ("tab:orange", "s"),
    "imagenet-r": ("tab:green", "^"), "imagenet-a": ("tab:red", "v"), "real": ("tab:purple", "D"),
}


def plot_shifts(table: pd.DataFrame, labels: dict[str, str], path: str | Path) -> Path:
    """Gap to ImageNet-val vs ImageNet-val top-1, one colour and marker per shift (``shifts.png``).

    ``table`` is :class:`~laionet_bench.leaderboard.shifts.ShiftBoard`'s (``shift``, ``imagenet_top1``,
    ``gap_top1`` in points), ``labels`` the shifts' display names in legend order. Each point's x is the
    ImageNet-val its gap is against, so LAIONet and timm's shifts are read the same way.
    """
    fig = _figure(7.5, 5.5)
    ax = fig.add_subplot()
    for key, label in labels.items():
        part = table[table["shift"] == key].dropna(subset=["imagenet_top1", "gap_top1"])
        if part.empty:
            continue
        colour, marker = _SHIFT_STYLES.get(key, ("tab:gray", "x"))
        size = 140 if key == "laionet" else 40
        ax.scatter(part["imagenet_top1"], part["gap_top1"], s=size, c=colour, marker=marker, alpha=0.85,
                   edgecolors="white", linewidths=0.5, zorder=3 if key == "laionet" else 2,
                   label=f"{label} (n={len(part)})")
    ax.axhline(0, color="0.5", lw=0.8, ls="--")
    ax.set_xlabel("ImageNet-val top-1 (%): this benchmark's run for LAIONet, timm's for the others")
    ax.set_ylabel("gap: ImageNet-val − shift top-1 (points)")
    ax.set_title("LAIONet among the distribution shifts")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title="shift", title_fontsize=8)
    return save_figure(fig, path)


def write_plots(board: Leaderboard, out_dir: str | Path) -> list[Path]:
    """Every figure the board has data for, under ``out_dir``; returns the files written."""
    out = Path(out_dir)
    drawers = {"accuracy": plot_accuracy_scatter, "weighting": plot_weighting,
               "per_class": plot_per_class_frequency, "similarity": plot_similarity}
    written = [drawers[key](board, out / name) for key, name in FIGURES.items()]
    return [p for p in written if p is not None]
