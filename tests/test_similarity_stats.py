"""Intra-class statistics against the naive pairwise computation; histogram; the per-class test."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from laionet_bench.similarity.stats import (
    MIN_CLASSES_TESTED,
    ClassStats,
    class_stats,
    class_stats_naive,
    compare_classes,
    pair_similarities,
    per_class_stats,
    pooled_histogram,
    sample_pair_similarities,
)


def unit_rows(rng, n, d, *, center=None, spread=1.0):
    x = rng.normal(size=(n, d)) * spread + (0 if center is None else center)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(("n", "d"), [(2, 16), (3, 16), (7, 4), (40, 8), (50, 512), (130, 32)])
def test_fast_statistics_equal_the_naive_pairwise_matrix(n, d):
    rng = np.random.default_rng(n * 1000 + d)
    x = unit_rows(rng, n, d, center=rng.normal(size=d), spread=0.7).astype(np.float32)  # both n ≤ d and n > d paths
    fast, naive = class_stats(x), class_stats_naive(x)
    assert (fast.n_images, fast.n_pairs) == (naive.n_images, naive.n_pairs) == (n, n * (n - 1) // 2)
    assert fast.mean == pytest.approx(naive.mean, abs=1e-12)
    assert fast.std == pytest.approx(naive.std, abs=1e-7)


def test_one_image_has_no_pairs_and_two_images_have_one():
    rng = np.random.default_rng(0)
    one = class_stats(unit_rows(rng, 1, 8))
    assert (one.n_images, one.n_pairs) == (1, 0) and math.isnan(one.mean) and math.isnan(one.std)
    x = unit_rows(rng, 2, 8)
    two = class_stats(x)
    assert two.n_pairs == 1 and two.mean == pytest.approx(float(x[0] @ x[1])) and two.std == 0.0
    assert math.isnan(two.half_width)  # √(P − 1) = 0


def test_pair_similarities_follow_the_reference_lower_triangle_order():
    rng = np.random.default_rng(1)
    x = unit_rows(rng, 5, 6)
    sims = pair_similarities(x)
    mask = np.tril(np.eye(5) < 0.5)  # the reference's vec()
    np.testing.assert_allclose(sims, (x @ x.T)[mask])


def test_sampled_pairs_are_real_pairs_and_cover_the_triangle():
    rng = np.random.default_rng(2)
    x = unit_rows(rng, 9, 5)
    draws = sample_pair_similarities(x, np.random.default_rng(0), 5000)
    exact = pair_similarities(x)
    assert np.isin(np.round(draws, 10), np.round(exact, 10)).all()
    assert len(np.unique(np.round(draws, 10))) == len(exact)  # all 36 pairs reachable, none outside


def test_half_width_is_the_reference_formula():
    stats = ClassStats(n_images=10, n_pairs=45, mean=0.7, std=0.12)
    assert stats.half_width == pytest.approx(1.96 * 0.12 / math.sqrt(44))


def by_class_of(rng, counts, *, spread):
    return {w: unit_rows(rng, n, 16, center=rng.normal(size=16) * 3, spread=spread) for w, n in counts.items()}


def test_pooled_histogram_is_seeded_uses_common_classes_and_caps_draws():
    rng = np.random.default_rng(3)
    data = {
        "a": by_class_of(rng, {"n01": 30, "n02": 3, "n03": 1, "n04": 10}, spread=0.5),
        "b": by_class_of(rng, {"n01": 12, "n02": 5, "n03": 6}, spread=0.5),
    }
    table, pooled = pooled_histogram(data, seed=7)
    again, pooled_again = pooled_histogram(data, seed=7)
    other, _ = pooled_histogram(data, seed=8)
    pd.testing.assert_frame_equal(table, again)
    np.testing.assert_array_equal(pooled["a"], pooled_again["a"])
    assert not table.equals(other)
    # common classes with a pair in both: n01, n02 (n03 has one image in a; n04 missing in b)
    assert len(pooled["a"]) == min(435, 100) + 3 and len(pooled["b"]) == min(66, 100) + 10
    assert len(table) == 70 and table["bin_left"].iloc[0] == 0.0 and table["bin_right"].iloc[-1] == pytest.approx(0.99)
    inside = ((pooled["a"] >= 0) & (pooled["a"] <= 0.99)).sum()
    assert table["a"].sum() == inside


def test_per_class_test_finds_the_tighter_dataset_and_exact_fractions():
    rng = np.random.default_rng(4)
    wnids = [f"n{i:08d}" for i in range(10)]
    tight = {w: unit_rows(rng, 20, 32, center=rng.normal(size=32) * 4, spread=0.3) for w in wnids}
    spread = {w: unit_rows(rng, 20, 32) for w in wnids[:6]}  # near-orthogonal: mean ≈ 0
    spread.update({w: tight[w] for w in wnids[6:8]})  # identical sets: Δ = 0 → not significant
    spread.update({w: unit_rows(rng, 4, 32) for w in wnids[8:]})  # 6 pairs < 7: not tested
    a, b = per_class_stats(tight), per_class_stats(spread)
    frame, summary = compare_classes(a, b, a="tight", b="spread")
    assert summary.n_classes_tested == 8 and summary.n_classes_common == 10
    assert summary.n_higher == 6 and summary.n_lower == 0
    assert summary.frac_higher == pytest.approx(6 / 8) and summary.frac_lower == 0.0
    assert list(frame.loc[wnids[6:8], "significance"]) == ["none", "none"]
    assert list(frame.loc[wnids[8:], "significance"]) == ["", ""]
    assert summary.mean_delta == pytest.approx(frame.loc[wnids[:8], "delta"].mean())
    reverse_frame, reverse = compare_classes(b, a, a="spread", b="tight")
    assert (reverse.n_lower, reverse.n_higher, reverse.frac_lower) == (6, 0, pytest.approx(0.75))
    assert reverse.frac_delta_negative == pytest.approx(6 / 8)
    row = frame.loc[wnids[0]]
    assert row["delta_half_width"] == pytest.approx(math.hypot(a.loc[wnids[0], "half_width"], b.loc[wnids[0], "half_width"]))


def test_per_class_stats_fast_and_naive_tables_agree():
    rng = np.random.default_rng(5)
    data = by_class_of(rng, {"n01": 1, "n02": 2, "n03": 25}, spread=0.8)
    fast, naive = per_class_stats(data), per_class_stats(data, naive=True)
    assert list(fast.columns) == ["n_images", "n_pairs", "mean", "std", "half_width"]
    pd.testing.assert_frame_equal(fast, naive, atol=1e-7)


def test_a_test_over_too_few_classes_is_flagged_and_the_figure_says_so(monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    from laionet_bench.similarity import plots

    rng = np.random.default_rng(6)
    tight = {f"n{i:08d}": unit_rows(rng, 20, 32, center=rng.normal(size=32) * 4, spread=0.3) for i in range(12)}
    spread = {w: unit_rows(rng, 20, 32) for w in tight}
    a, b = per_class_stats(tight), per_class_stats(spread)
    one = ["n00000000"]
    frame, thin = compare_classes(a.loc[one], b.loc[one], a="tight", b="spread")
    assert (thin.n_classes_tested, thin.frac_higher, thin.too_few_classes) == (1, 1.0, True)
    assert thin.to_dict()["min_classes_tested"] == MIN_CLASSES_TESTED == 10
    assert not compare_classes(a, b, a="tight", b="spread")[1].too_few_classes
    assert compare_classes(a, b, a="tight", b="spread", min_classes=13)[1].too_few_classes

    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: drawn.append(fig) or path)
    plots.plot_class_intervals(frame, tmp_path / "thin.png", a="tight", b="spread")
    plots.plot_class_intervals(compare_classes(a, b, a="tight", b="spread")[0], tmp_path / "ok.png", a="tight",
                               b="spread")
    texts = [" ".join(t.get_text() for t in fig.texts) for fig in drawn]
    assert "too few classes to conclude: 1 tested, fewer than the minimum of 10" in texts[0]
    assert "too few" not in texts[1]
