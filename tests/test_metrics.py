"""metrics.py cross-checked against independent implementations (scikit-learn, statsmodels, numpy)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score
from statsmodels.stats.proportion import proportion_confint

from laionet_bench.errors import ResultsError
from laionet_bench.evaluation import metrics


@pytest.fixture
def rows():
    rng = np.random.default_rng(7)
    classes = [f"n{10000000 + i:08d}" for i in range(12)]
    truth = rng.choice(classes, size=600, p=rng.dirichlet(np.ones(12)))
    predicted = np.where(rng.random(600) < 0.6, truth, rng.choice(classes, size=600))
    top5 = (predicted == truth) | (rng.random(600) < 0.5)
    return truth, predicted, top5


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")  # predictions outside the class set
def test_equi_weighted_is_balanced_accuracy(rows):
    truth, predicted, top5 = rows
    table = metrics.per_class_recall(truth, predicted == truth, top5)
    # sklearn averages recall over the classes present in y_true — exactly the equi-weighted accuracy
    assert metrics.equi_weighted(table).value == pytest.approx(balanced_accuracy_score(truth, predicted), abs=1e-12)


def test_per_class_se_is_wilson_half_width_over_1_96(rows):
    truth, predicted, top5 = rows
    table = metrics.per_class_recall(truth, predicted == truth, top5)
    low, high = proportion_confint(table["top1_correct"], table["n"], alpha=0.05, method="wilson")
    np.testing.assert_allclose(table["se_top1"], (high - low) / 2 / metrics.Z95, rtol=1e-10)
    low5, high5 = proportion_confint(table["top5_correct"], table["n"], alpha=0.05, method="wilson")
    np.testing.assert_allclose(table["se_top5"], (high5 - low5) / 2 / metrics.Z95, rtol=1e-10)


def test_wilson_se_at_the_edges_matches_statsmodels():
    for k, n in [(0, 5), (5, 5), (1, 1), (49, 50)]:
        low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert metrics.wilson_se(k, n) == pytest.approx((high - low) / 2 / metrics.Z95)
    assert np.isnan(metrics.wilson_se(0, 0))


def test_laion_weighted_is_a_weighted_mean_renormalised(rows):
    truth, predicted, top5 = rows
    table = metrics.per_class_recall(truth, predicted == truth, top5)
    weights = pd.Series(np.arange(1, len(table) + 3, dtype=float), index=[*table.index, "n99999998", "n99999999"])
    got = metrics.laion_weighted(table, weights)
    w = weights.loc[table.index]
    assert got.value == pytest.approx(np.average(table["top1"], weights=w))
    # micro accuracy is the same as weighting classes by their row counts
    assert metrics.laion_weighted(table, table["n"]).value == pytest.approx(np.mean(predicted == truth))
    assert metrics.micro_accuracy(table) == pytest.approx(np.mean(predicted == truth))
    assert got.se == pytest.approx(np.sqrt(np.sum((w * table["se_top1"]) ** 2)) / w.sum())


def test_equi_weighted_se_and_class_restriction(rows):
    truth, predicted, top5 = rows
    table = metrics.per_class_recall(truth, predicted == truth, top5)
    subset = list(table.index[:5]) + ["n99999999"]  # an absent class is skipped, as in the reference
    got = metrics.equi_weighted(table, "top5", classes=subset)
    part = table.loc[subset[:5]]
    assert got.value == pytest.approx(part["top5"].mean())
    assert got.se == pytest.approx(np.sqrt((part["se_top5"] ** 2).sum()) / 5)


def test_gap_and_effective_robustness():
    g = metrics.gap(metrics.Estimate(0.8, 0.03), metrics.Estimate(0.7, 0.04))
    assert g.value == pytest.approx(0.1) and g.se == pytest.approx(0.05)
    imagenet = np.array([0.6, 0.7, 0.8, 0.9])
    logit = np.log(imagenet / (1 - imagenet))
    laionet = 1 / (1 + np.exp(-(0.9 * logit - 0.4)))
    fit = metrics.fit_effective_robustness(imagenet, laionet)
    assert fit.slope == pytest.approx(0.9) and fit.intercept == pytest.approx(-0.4)
    np.testing.assert_allclose(fit.residual(imagenet, laionet), 0, atol=1e-9)
    with pytest.raises(ResultsError, match="at least two models"):
        metrics.fit_effective_robustness([0.5], [0.4])


def test_inconsistent_rows_are_refused():
    with pytest.raises(ResultsError, match="top-1 correct but not top-5"):
        metrics.per_class_recall(["n01440764"], [True], [False])


def test_official_protocol_divides_the_wilson_half_width_by_the_literal_1_96(rows):
    truth, predicted, top5 = rows
    ours = metrics.per_class_recall(truth, predicted == truth, top5)
    official = metrics.per_class_recall(truth, predicted == truth, top5, protocol="official")
    low, high = proportion_confint(official["top1_correct"], official["n"], alpha=0.05, method="wilson")
    np.testing.assert_allclose(official["se_top1"], (high - low) / 2 / 1.96, rtol=1e-10)
    pd.testing.assert_frame_equal(official.drop(columns=["se_top1", "se_top5"]), ours.drop(columns=["se_top1", "se_top5"]))


@pytest.mark.parametrize("missing", [None, np.nan])
def test_missing_correctness_is_refused_not_counted_as_wrong(missing):
    top1 = pd.Series([True, missing, False, True], dtype=object)
    with pytest.raises(ResultsError, match=r"top-1 correctness is None/NaN in 1 of 4 rows \(first at row 1\)"):
        metrics.per_class_recall(["a", "a", "b", "b"], top1, [True, True, True, True])
    table = metrics.per_class_recall(["a", "b", "b"], top1.dropna(), [True, True, True])
    assert table["top1"].to_dict() == {"a": 1.0, "b": 0.5}
