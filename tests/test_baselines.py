"""Per-class baselines: write, compare, tolerances, messages."""

from __future__ import annotations

import json

import pytest

from laionet_bench.checks.baselines import (
    DEFAULT_TOLERANCE,
    assert_no_regression,
    baseline_path,
    compare_to_baseline,
    read_baseline,
    write_baseline,
)
from laionet_bench.errors import BaselineError, RobustnessError

from .fakes.results import DEFAULT_LAIONET, make_counted_result

WORSE_HUSKY = {**DEFAULT_LAIONET, "n02110185": (30, 100)}


def test_write_and_read_roundtrip(tmp_path):
    path = write_baseline(make_counted_result("resnet50.a1_in1k"), tmp_path)
    assert path == baseline_path(tmp_path, "resnet50.a1_in1k") == tmp_path / "resnet50.a1_in1k.json"
    baseline = read_baseline(path)
    assert baseline.tolerance == DEFAULT_TOLERANCE
    assert baseline.dataset == "laionet:clip_0.82"
    assert baseline.classes["n02110185"]["top1"] == pytest.approx(0.6)
    assert baseline.classes["n02110185"]["n"] == 100


def test_same_result_does_not_regress(tmp_path):
    result = make_counted_result("m")
    comparison = compare_to_baseline(result, read_baseline(write_baseline(result, tmp_path)))
    assert comparison.passed and comparison.n_compared == 3


def test_regression_lists_the_class(tmp_path):
    path = write_baseline(make_counted_result("m"), tmp_path)
    with pytest.raises(RobustnessError) as info:
        assert_no_regression(make_counted_result("m", WORSE_HUSKY), tmp_path)
    text = str(info.value)
    assert f"against {path}" in text and "1 of 3 classes regressed" in text
    assert "n02110185" in text and "siberian husky" in text and "--laionet-update-baseline" in text


def test_small_drop_within_tolerance(tmp_path):
    write_baseline(make_counted_result("m"), tmp_path)
    slightly = {**DEFAULT_LAIONET, "n02110185": (55, 100)}  # -0.05, about 0.7 SE of the difference
    assert assert_no_regression(make_counted_result("m", slightly), tmp_path).passed


def test_class_tolerance_in_file_wins_and_survives_rewrite(tmp_path):
    path = write_baseline(make_counted_result("m"), tmp_path, tolerance=1.5)
    data = json.loads(path.read_text())
    data["classes"]["n02110185"]["tolerance"] = 10
    path.write_text(json.dumps(data))
    assert compare_to_baseline(make_counted_result("m", WORSE_HUSKY), read_baseline(path)).passed
    # the class's own tolerance wins over an explicit one too
    assert compare_to_baseline(make_counted_result("m", WORSE_HUSKY), read_baseline(path), tolerance=0).passed
    write_baseline(make_counted_result("m"), tmp_path)
    rewritten = read_baseline(path)
    assert rewritten.tolerance == 1.5 and rewritten.classes["n02110185"]["tolerance"] == 10


def test_explicit_tolerance_replaces_file_tolerance(tmp_path):
    path = write_baseline(make_counted_result("m"), tmp_path)
    slightly = {**DEFAULT_LAIONET, "n02110185": (55, 100)}
    assert not compare_to_baseline(make_counted_result("m", slightly), read_baseline(path), tolerance=0.5).passed


def test_missing_class_is_a_regression(tmp_path):
    write_baseline(make_counted_result("m"), tmp_path)
    fewer = {w: c for w, c in DEFAULT_LAIONET.items() if w != "n04579432"}
    comparison = compare_to_baseline(make_counted_result("m", fewer), read_baseline(baseline_path(tmp_path, "m")))
    assert comparison.missing == ("n04579432",) and not comparison.passed


def test_broken_baseline_names_the_file(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{not json")
    with pytest.raises(BaselineError, match="m.json: not valid JSON"):
        read_baseline(path)
    path.write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(BaselineError, match="m.json: field 'model' is null, not a non-empty string"):
        read_baseline(path)
    with pytest.raises(BaselineError, match="no baseline for 'other'"):
        assert_no_regression(make_counted_result("other"), tmp_path)


def _edited(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, allow_nan=True))


HUSKY = "n02110185"


@pytest.mark.parametrize(("edit", "field", "problem"), [
    (lambda d: d["classes"][HUSKY].update(top1=float("nan")), f"classes.{HUSKY}.top1", "NaN, not a recall in [0, 1]"),
    (lambda d: d["classes"][HUSKY].update(top5=2.0), f"classes.{HUSKY}.top5", "2.0, not a recall in [0, 1]"),
    (lambda d: d["classes"][HUSKY].update(se_top1=-0.1), f"classes.{HUSKY}.se_top1", "-0.1, not a standard error"),
    (lambda d: d["classes"][HUSKY].pop("se_top5"), f"classes.{HUSKY}.se_top5", "null, not a standard error"),
    (lambda d: d["classes"][HUSKY].update(n=0), f"classes.{HUSKY}.n", "0, not a count >= 1"),
    (lambda d: d["classes"][HUSKY].update(tolerance=-1), f"classes.{HUSKY}.tolerance", "-1, not 'se' or"),
    (lambda d: d["classes"].update(n99999999=d["classes"][HUSKY]), "classes.n99999999", "\"n99999999\", not keyed by"),
    (lambda d: d.update(tolerance="lots"), "tolerance", "\"lots\", not 'se' or"),
    (lambda d: d.update(classes=[]), "classes", "[], not an object"),
])
def test_a_baseline_that_would_switch_the_check_off_is_refused_naming_the_field(tmp_path, edit, field, problem):
    path = write_baseline(make_counted_result("m"), tmp_path)
    _edited(path, edit)
    with pytest.raises(BaselineError) as info:
        assert_no_regression(make_counted_result("m", WORSE_HUSKY), tmp_path)
    message = str(info.value)
    assert message.startswith(f"{path}: field {field!r} is {problem}") and "--laionet-update-baseline" in message
    assert "\n" not in message


def test_another_models_baseline_is_refused(tmp_path):
    path = write_baseline(make_counted_result("m"), tmp_path)
    _edited(path, lambda d: d.update(model="other"))
    with pytest.raises(BaselineError, match=f"{path}: field 'model' is 'other', not 'm': this is another model's"):
        compare_to_baseline(make_counted_result("m", WORSE_HUSKY), read_baseline(path), path=str(path))


def test_a_baseline_that_is_no_utf8_text_or_a_folder_names_the_file(tmp_path):
    (tmp_path / "m.json").write_bytes(b'{"model": "caf\xe9"}')
    with pytest.raises(BaselineError, match="m.json: not UTF-8 text"):
        read_baseline(tmp_path / "m.json")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "m.json").mkdir()
    with pytest.raises(BaselineError, match="m.json: a folder, not a JSON file"):
        assert_no_regression(make_counted_result("m"), tmp_path / "folder")


def test_a_broken_baseline_can_be_rewritten(tmp_path, caplog):
    path = write_baseline(make_counted_result("m"), tmp_path)
    _edited(path, lambda d: d["classes"][HUSKY].update(top1=2.0))
    write_baseline(make_counted_result("m"), tmp_path)  # what the message says to do
    assert read_baseline(path).classes[HUSKY]["top1"] == pytest.approx(0.6)
    assert "rewriting" in caplog.text and "without its old tolerances" in caplog.text
