"""Result-set diffs and --fail rules (library and CLI exit codes)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from laionet_bench.cli import main
from laionet_bench.errors import ConfigError, ResultsError, UnknownNameError
from laionet_bench.evaluation.results import write_result
from laionet_bench.leaderboard import build_leaderboard, write_leaderboard
from laionet_bench.leaderboard.compare import FailRule, compare_tables, load_table
from laionet_bench.leaderboard.table import build_table

from .fakes.results import make_result


def _write(folder, laionet_resnet50: float, extra: str | None = None):
    results = [
        make_result("resnet18.tv_in1k", imagenet=0.7, laionet=0.6),
        make_result("resnet50.a1_in1k", imagenet=0.8, laionet=laionet_resnet50),
        make_result("vit_base_patch16_224.augreg_in21k_ft_in1k", imagenet=0.9, laionet=0.775),
    ]
    if extra:
        results.append(make_result(extra, imagenet=0.75, laionet=0.6))
    for result in results:
        write_result(result, folder)
    return results


def test_rule_parsing():
    assert FailRule.parse("gap_top1:+0.01") == FailRule("gap_top1", 0.01)
    assert FailRule.parse("gap:2pt") == FailRule("gap_top1", 0.02)
    assert FailRule.parse(" laionet_lw_top1 : +0.25 pp ") == FailRule("laionet_lw_top1", 0.0025)
    assert str(FailRule.parse("gap:+0.015")) == "gap_top1:+0.015"
    with pytest.raises(ConfigError, match="write gap_top1:\\+0.01 or gap_top1:\\+1pt"):
        FailRule.parse("gap_top1:+1.0")  # a value in points without its unit
    with pytest.raises(ConfigError, match="METRIC:\\+DELTA"):
        FailRule.parse("gap_top1>1")
    with pytest.raises(UnknownNameError, match="gap_top1"):
        FailRule.parse("gap_topp1:+1")


def test_directions_regressions_and_improvements(tmp_path):
    _write(tmp_path / "a", 0.65)
    _write(tmp_path / "b", 0.625)  # resnet50 loses 2.5 points on LAIONet: its gap grows by 2.5
    result = compare_tables(load_table(tmp_path / "a"), load_table(tmp_path / "b"),
                            rules=[FailRule("gap_top1", 0.01), FailRule("laionet_top1", 0.03)])
    diff = result.diff.set_index(["model", "metric"])
    gap = diff.loc[("resnet50.a1_in1k", "gap_top1")]
    assert gap["delta"] == pytest.approx(0.025) and gap["status"] == "regressed"  # fractions, like results
    assert gap["b"] == pytest.approx(0.8 - 0.625)
    laion = diff.loc[("resnet50.a1_in1k", "laionet_top1")]
    assert laion["delta"] == pytest.approx(-0.025) and laion["status"] == "regressed"
    assert diff.loc[("resnet50.a1_in1k", "imagenet_top1"), "status"] == "unchanged"
    assert not result.ok
    assert result.violations[["model", "metric", "rule"]].values.tolist() == [
        ["resnet50.a1_in1k", "gap_top1", "gap_top1:+0.01"]]
    better = compare_tables(load_table(tmp_path / "b"), load_table(tmp_path / "a"), rules=[FailRule("gap_top1", 0)])
    assert better.ok
    changes = better.changes()
    accuracy_changes = changes[changes["metric"] != "effective_robustness"]  # the fit moves every model's ER
    assert set(accuracy_changes["model"]) == {"resnet50.a1_in1k"}
    assert set(accuracy_changes["status"]) == {"improved"}


def test_a_model_missing_from_the_candidate_fails_unless_allowed(tmp_path):
    _write(tmp_path / "a", 0.65, extra="old.model")
    _write(tmp_path / "b", 0.65, extra="new.model")
    a, b = load_table(tmp_path / "a"), load_table(tmp_path / "b")
    result = compare_tables(a, b, rules=[FailRule("gap_top1", 0)])
    assert not result.ok and result.violations.empty
    assert result.models_added == ["new.model"] and result.models_removed == ["old.model"]
    assert "old.model" not in set(result.diff["model"])
    assert compare_tables(a, b, rules=[FailRule("gap_top1", 0)], allow_missing=True).ok
    assert not compare_tables(a, a[a["model"] != "old.model"]).ok  # no rule needed
    assert compare_tables(b, b).ok  # an added model alone never fails


def test_significant_counts_a_worsening_only_beyond_k_combined_ses(tmp_path):
    _write(tmp_path / "a", 0.65)
    _write(tmp_path / "b", 0.625)  # resnet50's gap grows by 0.025
    a, b = load_table(tmp_path / "a"), load_table(tmp_path / "b")
    row = compare_tables(a, b).diff.set_index(["model", "metric"]).loc[("resnet50.a1_in1k", "gap_top1")]
    se = row["delta_se"]
    assert se > 0
    k_below, k_above = 0.9 * 0.025 / se, 1.1 * 0.025 / se
    rules = [FailRule("gap_top1", 0)]
    assert not compare_tables(a, b, rules=rules).ok
    assert not compare_tables(a, b, rules=rules, significance=k_below).ok
    assert compare_tables(a, b, rules=rules, significance=k_above).ok
    unknown = b.assign(gap_top1_se=float("nan"))  # an unknown SE cannot clear a worsening
    assert not compare_tables(a, unknown, rules=rules, significance=k_above).ok
    with pytest.raises(ConfigError, match="effective_robustness has no standard error"):
        compare_tables(a, b, rules=[FailRule("effective_robustness", 0)], significance=1.0)
    with pytest.raises(ConfigError, match="standard errors"):
        compare_tables(a, b, rules=rules, significance=-1)


def test_leaderboard_json_and_csv_load_like_the_results_folder(tmp_path):
    results = _write(tmp_path / "res", 0.65)
    write_leaderboard(build_leaderboard(results), tmp_path / "lb", formats=["json", "csv"], plots=False)
    from_dir = build_table(results)[0]
    for path in (tmp_path / "lb" / "leaderboard.json", tmp_path / "lb" / "leaderboard.csv"):
        result = compare_tables(from_dir, load_table(path))
        assert result.changes().empty, path
        assert len(result.diff) > 0
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(ResultsError, match="not a leaderboard.json"):
        load_table(tmp_path / "bad.json")
    with pytest.raises(ResultsError, match="no such"):
        load_table(tmp_path / "missing")


def test_cli_exit_codes(tmp_path, capsys):
    _write(tmp_path / "a", 0.65)
    _write(tmp_path / "b", 0.625)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert main(["compare", a, a, "--fail", "gap_top1:+0"]) == 0
    assert "no metric changed" in capsys.readouterr().out
    assert main(["compare", a, b, "--fail", "gap_top1:+1pt"]) == 1
    captured = capsys.readouterr()
    assert "resnet50.a1_in1k" in captured.out and "regressed" in captured.out
    assert "2.50" in captured.out  # the rendered table shows points
    assert "FAIL gap_top1:+0.01" in captured.err and "worse by 2.50 points" in captured.err
    assert main(["compare", a, b, "--fail", "gap:+0.03"]) == 0  # within the allowance
    assert main(["compare", a, b, "--fail", "gap:+0", "--significant", "1000"]) == 0  # not significant
    assert main(["compare", a, b, "--fail", "gap:+0", "--significant", "0"]) == 1
    assert main(["compare", a, b, "--metrics", "imagenet_top1", "--fail", "gap:+0"]) == 0  # gap not compared
    capsys.readouterr()
    assert main(["compare", a, b, "--fail", "nonsense"]) == 1
    assert "METRIC:+DELTA" in capsys.readouterr().err
    assert main(["compare", a, b, "--format", "csv", "--all"]) == 0
    assert capsys.readouterr().out.startswith("model,metric,a,b,delta")
    _write(tmp_path / "c", 0.65, extra="old.model")
    assert main(["compare", str(tmp_path / "c"), a]) == 1
    assert "missing from" in (err := capsys.readouterr().err) and "old.model" in err and "--allow-missing" in err
    assert main(["compare", str(tmp_path / "c"), a, "--allow-missing"]) == 0


def test_models_scored_under_different_protocols_are_flagged(tmp_path, caplog):
    ours = make_result("resnet50.a1_in1k", imagenet=0.8, laionet=0.7)
    official = make_result("resnet50.a1_in1k", imagenet=0.8, laionet=0.7)
    official.protocol = "official"
    for folder, result in (("a", ours), ("b", official), ("c", ours)):
        write_result(result, tmp_path / folder)
    assert load_table(tmp_path / "b")["protocol"].tolist() == ["official"]
    compare_tables(load_table(tmp_path / "a"), load_table(tmp_path / "c"))
    assert "protocol" not in caplog.text
    compare_tables(load_table(tmp_path / "a"), load_table(tmp_path / "b"))
    assert "1 model(s) were scored under different metric protocols (e.g. resnet50.a1_in1k: ours vs official)" in caplog.text


def test_a_result_copied_into_a_second_folder_is_refused_naming_both(tmp_path, capsys):
    import shutil

    _write(tmp_path / "a", 0.65)
    shutil.copytree(tmp_path / "a" / "resnet50.a1_in1k", tmp_path / "a" / "resnet50-backup")
    for argv in (["leaderboard", "--results", str(tmp_path / "a"), "--out", str(tmp_path / "lb")],
                 ["compare", str(tmp_path / "a"), str(tmp_path / "a")]):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "hold the same result (resnet50.a1_in1k, protocol ours" in err[0]
        assert str(tmp_path / "a" / "resnet50-backup") in err[0] and str(tmp_path / "a" / "resnet50.a1_in1k") in err[0]
    assert not (tmp_path / "lb").exists()


def _official(result):
    result.protocol = "official"
    return result


def test_results_of_one_model_under_two_protocols_are_two_rows_matched_by_key(tmp_path, caplog):
    _write(tmp_path / "a", 0.65)
    official = write_result(_official(make_result("resnet50.a1_in1k", imagenet=0.8, laionet=0.6)), tmp_path / "o")
    official.rename(tmp_path / "a" / "resnet50-official")  # both results of the model in one folder
    _write(tmp_path / "b", 0.625)  # resnet50 under ours only
    a, b = load_table(tmp_path / "a"), load_table(tmp_path / "b")
    rows = a[a["model"] == "resnet50.a1_in1k"]
    assert sorted(rows["protocol"]) == ["official", "ours"] and rows["datasets"].nunique() == 1
    assert re.fullmatch(r"imagenet-val@[0-9a-f]{8} laionet:clip_0\.82@[0-9a-f]{8}", rows["datasets"].iloc[0])
    result = compare_tables(a, b)  # crashed: "Can only compare identically-labeled Series"
    ours = "resnet50.a1_in1k [ours; " + rows["datasets"].iloc[0] + "]"
    gap = result.diff.set_index(["model", "metric"]).loc[(ours, "gap_top1")]
    assert gap["delta"] == pytest.approx(0.025)  # ours against ours, not against the official row
    assert result.models_removed == ["resnet50.a1_in1k [official; " + rows["datasets"].iloc[0] + "]"]
    assert not result.ok and "protocol" not in caplog.text
    assert compare_tables(a, a).ok


def test_a_model_evaluated_on_other_datasets_is_matched_by_name_with_a_warning(tmp_path, caplog):
    _write(tmp_path / "a", 0.65)
    moved = make_result("resnet50.a1_in1k", imagenet=0.8, laionet=0.65)
    moved.datasets["laionet"] = dataclasses.replace(moved.datasets["laionet"], identity={"revision": "new"})
    write_result(moved, tmp_path / "b")
    result = compare_tables(load_table(tmp_path / "a"), load_table(tmp_path / "b"), allow_missing=True)
    assert "resnet50.a1_in1k" in set(result.diff["model"])
    assert "1 model(s) were evaluated on different datasets (e.g. resnet50.a1_in1k" in caplog.text


def test_a_leaderboard_file_holding_one_result_twice_is_refused(tmp_path):
    results = _write(tmp_path / "res", 0.65)
    write_leaderboard(build_leaderboard(results), tmp_path / "lb", formats=["csv"], plots=False)
    path = tmp_path / "lb" / "leaderboard.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1]]) + "\n")
    with pytest.raises(ResultsError, match=f"{path}: model '.*' has 2 rows with the same protocol"):
        load_table(path)
