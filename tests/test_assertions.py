"""assert_robustness_gap: bounds, the tolerance rule, failure messages."""

from __future__ import annotations

import pytest

import laionet_bench
from laionet_bench.checks.gap import (
    assert_robustness_gap,
    check_robustness,
    format_worst_classes,
    worst_classes,
)
from laionet_bench.checks.recorder import recording
from laionet_bench.checks.tolerance import metric_key, parse_tolerance
from laionet_bench.errors import ConfigError, RobustnessError

from .fakes.results import make_counted_result


@pytest.fixture(scope="module")
def result():
    return make_counted_result("resnet50.a1_in1k")


def test_exported_from_package():
    assert laionet_bench.assert_robustness_gap is assert_robustness_gap


@pytest.mark.parametrize(("text", "k"), [("se", 1.0), ("SE", 1.0), ("0", 0.0), ("2.5", 2.5), (3, 3.0)])
def test_parse_tolerance(text, k):
    assert parse_tolerance(text) == k


@pytest.mark.parametrize("bad", ["-1", "two", float("nan"), True, -0.5])
def test_parse_tolerance_rejects(bad):
    with pytest.raises(ConfigError, match="tolerance"):
        parse_tolerance(bad)


def test_metric_key():
    assert metric_key("top5", "equi") == "top5"
    assert metric_key("top1", "laion") == "lw_top1"
    with pytest.raises(ConfigError, match="weighting"):
        metric_key("top1", "uniform")


@pytest.mark.parametrize(("tolerance", "passed"), [(0, False), (0.4, False), ("se", True), (0.6, True)])
def test_gap_tolerance_is_in_standard_errors(result, tolerance, passed):
    gap = result.gaps["top1"]
    bound = gap.value - 0.5 * gap.se  # measured gap sits half an SE above the bound
    check = check_robustness(result, max_gap=bound, tolerance=tolerance)
    assert check.passed is passed


@pytest.mark.parametrize(("tolerance", "passed"), [(0, False), (1.9, False), (2.1, True)])
def test_accuracy_tolerance_is_in_standard_errors(result, tolerance, passed):
    acc = result.datasets["laionet"].top5
    bound = acc.value + 2 * acc.se  # measured accuracy sits two SEs below the bound
    assert check_robustness(result, min_accuracy=bound, metric="top5", tolerance=tolerance).passed is passed


def test_failure_message_names_value_bound_se_and_worst_classes(result):
    with pytest.raises(RobustnessError) as info:
        assert_robustness_gap(result, max_gap=0.1, min_accuracy=0.8, tolerance=0)
    text = str(info.value)
    assert "gap = 0.2000 (SE 0.0358) exceeds max_gap 0.1000 + 0 SE = 0.1000" in text
    assert "LAIONet accuracy = 0.7000 (SE 0.0257) is below min_accuracy 0.8000" in text
    lines = text.splitlines()
    first_class = next(i for i, line in enumerate(lines) if "n0" in line)
    assert "siberian husky" in lines[first_class] and "0.3200" in lines[first_class]  # largest drop first
    assert isinstance(info.value, AssertionError)


def test_laion_weighting_and_top5_are_read(result):
    check = assert_robustness_gap(result, max_gap=0.2, metric="top5", weighting="laion", tolerance=0)
    assert check.gap == result.gaps["lw_top5"]
    assert check.accuracy == result.datasets["laionet"].lw_top5


def test_gap_needs_imagenet():
    laion_only = make_counted_result("vit_tiny", imagenet=None)
    check = check_robustness(laion_only, max_gap=0.5)
    assert not check.passed and "--imagenet" in check.failures[0]
    assert check_robustness(laion_only, min_accuracy=0.5).passed  # accuracy alone still works
    assert "lowest LAIONet top1 recall" in check_robustness(laion_only, min_accuracy=0.9, tolerance=0).message()


def test_bad_bound_is_a_config_error(result):
    with pytest.raises(ConfigError, match="max_gap"):
        check_robustness(result, max_gap="0.1")


def test_checks_reach_the_active_recorder(result):
    seen = []
    with recording(seen.append):
        assert_robustness_gap(result, max_gap=0.5)
    assert_robustness_gap(result, max_gap=0.5)  # outside: not recorded
    assert [c.model for c in seen] == ["resnet50.a1_in1k"]


def test_worst_classes_rank_by_significance_not_by_the_drop_of_a_one_image_class():
    # husky: 1 LAIONet image, missed (drop 1.0 on no evidence); tabby: 200 images, 40 points lost
    laionet = {"n02110185": (0, 1), "n02123045": (100, 200), "n01440764": (45, 50)}
    imagenet = {"n02110185": (50, 50), "n02123045": (45, 50), "n01440764": (45, 50)}
    rows = worst_classes(make_counted_result("m", laionet, imagenet), limit=3)
    assert [r["wnid"] for r in rows] == ["n02123045", "n02110185", "n01440764"]
    assert rows[1]["drop_top1"] == pytest.approx(1.0) and rows[0]["drop_top1"] == pytest.approx(0.4)
    assert rows[0]["drop_in_se"] > rows[1]["drop_in_se"] > rows[2]["drop_in_se"]
    assert "drop/SE" in format_worst_classes(rows, "top1")
