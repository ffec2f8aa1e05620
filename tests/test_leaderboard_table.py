"""The leaderboard frame, its renderers and figures, from constructed results."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from laionet_bench.cli import main
from laionet_bench.errors import ConfigError, ResultsError, UnknownNameError
from laionet_bench.evaluation.metrics import fit_effective_robustness
from laionet_bench.evaluation.results import write_result
from laionet_bench.leaderboard import build_leaderboard, load_leaderboard, write_leaderboard
from laionet_bench.leaderboard.columns import COLUMNS, DTYPES, METRICS, RANKED_METRICS, get_metric
from laionet_bench.leaderboard.export import FORMATS
from laionet_bench.leaderboard.plots import FIGURES
from laionet_bench.leaderboard.render import to_csv, to_html, to_json, to_markdown
from laionet_bench.leaderboard.table import read_similarity

from .fakes.results import make_result

ZS = {"kind": "openclip", "pretrained_tag": "laion2b_s34b_b79k"}


def _results():
    return [
        make_result("resnet18.tv_in1k", imagenet=0.7, laionet=0.6),
        make_result("resnet50.a1_in1k", imagenet=0.8, laionet=0.65),
        make_result("vit_base_patch16_224.augreg_in21k_ft_in1k", imagenet=0.9, laionet=0.775),
        make_result("ViT-B-32/laion2b_s34b_b79k", imagenet=0.6, laionet=0.625, model_info=ZS),
    ]


@pytest.fixture
def board():
    return build_leaderboard(_results())


def _row(board, model):
    return board.table.set_index("model").loc[model]


def test_accuracies_gaps_and_groups(board):
    vit = _row(board, "vit_base_patch16_224.augreg_in21k_ft_in1k")
    assert vit["group"] == "in21k-ft"
    assert _row(board, "ViT-B-32/laion2b_s34b_b79k")["group"] == "clip-zs-laion"
    assert vit["imagenet_top1"] == pytest.approx(90.0)
    assert vit["laionet_top1"] == pytest.approx(77.5)
    assert vit["gap_top1"] == pytest.approx(12.5)
    assert vit["gap_top1_se"] == pytest.approx(math.hypot(vit["imagenet_top1_se"], vit["laionet_top1_se"]))
    assert vit["gap_top1_se"] > 0
    assert (vit["params"], vit["img_size"], vit["crop_pct"], vit["interpolation"]) == (5_000_000, 224, 0.875, "bicubic")
    assert (vit["n_laionet"], vit["n_imagenet"], vit["n_laionet_failed"], vit["n_classes"]) == (160, 200, 3, 4)
    assert list(board.table.columns) == list(COLUMNS)


def test_laion_weighted_accuracy_uses_class_shares():
    # weights 0.4/0.3/0.2/0.1; recalls 1, .5, .5, 0 → equi 50, LAION-weighted 65
    board = build_leaderboard([make_result("resnet50.a1_in1k", imagenet=0.8, laionet=[1.0, 0.5, 0.5, 0.0])])
    row = _row(board, "resnet50.a1_in1k")
    assert row["laionet_top1"] == pytest.approx(50.0)
    assert row["laionet_lw_top1"] == pytest.approx(65.0)


def test_ranks_follow_metric_direction_and_rank_change(board):
    table = board.table.set_index("model")
    assert table["rank_laionet_top1"].to_dict() == {
        "vit_base_patch16_224.augreg_in21k_ft_in1k": 1, "resnet50.a1_in1k": 2,
        "ViT-B-32/laion2b_s34b_b79k": 3, "resnet18.tv_in1k": 4}
    assert table.loc["ViT-B-32/laion2b_s34b_b79k", "rank_imagenet_top1"] == 4
    assert table.loc["ViT-B-32/laion2b_s34b_b79k", "rank_change"] == 1  # 4th on ImageNet, 3rd on LAIONet
    assert table.loc["resnet18.tv_in1k", "rank_change"] == -1
    # a smaller gap ranks better: zero-shot -2.5 < resnet18 10 < vit 12.5 < resnet50 15
    assert table["rank_gap_top1"].to_dict() == {
        "ViT-B-32/laion2b_s34b_b79k": 1, "resnet18.tv_in1k": 2, "vit_base_patch16_224.augreg_in21k_ft_in1k": 3,
        "resnet50.a1_in1k": 4}
    assert board.table["model"].iloc[0] == "vit_base_patch16_224.augreg_in21k_ft_in1k"  # best LAIONet first


def test_every_registered_metric_is_a_typed_column_with_a_direction():
    assert set(METRICS) <= set(COLUMNS) and set(RANKED_METRICS) <= set(METRICS)
    assert set(DTYPES) == set(COLUMNS)
    assert get_metric("laionet_top1").higher_is_better and not get_metric("gap_top1").higher_is_better
    with pytest.raises(UnknownNameError, match="gap_top1"):
        get_metric("gap_top")


def test_effective_robustness_is_fitted_without_zero_shot_models(board):
    supervised = board.table[board.table["group"] != "clip-zs-laion"]
    fit = fit_effective_robustness(supervised["imagenet_top1"] / 100, supervised["laionet_top1"] / 100)
    assert (board.fit.slope, board.fit.intercept) == pytest.approx((fit.slope, fit.intercept))
    assert board.fit.n_models == 3
    assert sorted(board.fit_models) == sorted(supervised["model"])
    zs = _row(board, "ViT-B-32/laion2b_s34b_b79k")
    expected = (0.625 - fit.predict(0.6)) * 100
    assert zs["effective_robustness"] == pytest.approx(float(expected))
    assert zs["effective_robustness"] > 5  # zero-shot CLIP sits well above the ImageNet-trained line
    assert zs["rank_effective_robustness"] == 1


def test_single_model_and_missing_imagenet_leave_gaps_and_robustness_empty():
    board = build_leaderboard([make_result("resnet50.a1_in1k", imagenet=None, laionet=0.5)])
    row = _row(board, "resnet50.a1_in1k")
    assert board.fit is None
    assert math.isnan(row["gap_top1"]) and math.isnan(row["effective_robustness"]) and math.isnan(row["imagenet_top1"])
    assert row["n_imagenet"] == 0
    assert pd.isna(row["rank_imagenet_top1"]) and row["rank_laionet_top1"] == 1
    assert "–" in to_markdown(board)


def test_no_results_is_an_error(tmp_path):
    with pytest.raises(ResultsError, match="no model results"):
        build_leaderboard([])


def test_similarity_summaries_are_read_defensively(tmp_path, caplog):
    good = tmp_path / "similarity" / "openclip_ViT-B-32" / "summary.json"
    good.parent.mkdir(parents=True)
    good.write_text(json.dumps({"datasets": {"laionet": {"mean": 0.71, "n_classes": 3, "note": "x"},
                                             "imagenet-val": {"mean": 0.76, "n_classes": 4}, "odd": 5},
                                "schema_version": 1, "comparison": {"a": "laionet", "b": "imagenet-val",
                                                                    "frac_lower": 0.6, "frac_higher": 0.2, "flag": True}}))
    broken = tmp_path / "similarity" / "broken" / "summary.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    (tmp_path / "similarity" / "list" ).mkdir()
    (tmp_path / "similarity" / "list" / "summary.json").write_text("[1, 2]")
    with caplog.at_level(logging.WARNING):
        per_dataset, per_encoder = read_similarity(tmp_path)
    assert sorted(per_dataset["dataset"]) == ["imagenet-val", "laionet"]
    assert set(per_dataset.columns) == {"encoder", "dataset", "mean", "n_classes"}
    assert per_encoder.to_dict("records") == [{"encoder": "openclip_ViT-B-32", "a": "laionet", "b": "imagenet-val",
                                               "frac_lower": 0.6, "frac_higher": 0.2}]
    assert "broken" in caplog.text and "list" in caplog.text
    empty = read_similarity(tmp_path / "nowhere")
    assert empty[0].empty and empty[1].empty


def test_provenance_footer_collects_distinct_values():
    results = [make_result(f"resnet{i}.a1_in1k", imagenet=0.8, laionet=0.6, date=f"2025-01-0{i}T00:00:00+00:00")
               for i in range(1, 5)]
    board = build_leaderboard(results)
    assert board.provenance["date"] == ["2025-01-01T00:00:00+00:00", "2025-01-04T00:00:00+00:00"]
    assert board.provenance["laionet.revision"] == ["0123abcd"]
    assert board.provenance["laionet.manifest_sha256"] == ["feedbeef"]
    assert board.provenance["timm_version"] == ["1.0.31"]
    markdown = to_markdown(board)
    assert "laionet.manifest_sha256: feedbeef" in markdown and "## Provenance" in markdown


def test_csv_reads_back_with_numeric_dtypes(board):
    frame = pd.read_csv(io.StringIO(to_csv(board)))
    for column in ("imagenet_top1", "laionet_top1", "gap_top1", "gap_top1_se", "effective_robustness", "crop_pct"):
        assert frame[column].dtype == np.float64, column
    for column in ("params", "img_size", "n_laionet", "n_imagenet", "rank_laionet_top1", "rank_change"):
        assert frame[column].dtype == np.int64, column
    assert frame.set_index("model").loc["resnet50.a1_in1k", "gap_top1"] == pytest.approx(15.0)
    assert "+" not in to_csv(board)  # no signed strings, no formatting


def test_json_holds_numbers_and_nulls():
    board = build_leaderboard(_results() + [make_result("tiny.x", imagenet=None, laionet=0.5)])
    payload = json.loads(to_json(board))
    models = {m["model"]: m for m in payload["models"]}
    vit = models["vit_base_patch16_224.augreg_in21k_ft_in1k"]
    assert isinstance(vit["laionet_top1"], float) and vit["laionet_top1"] == pytest.approx(77.5)
    assert isinstance(vit["params"], int) and isinstance(vit["rank_change"], int) and isinstance(vit["n_laionet"], int)
    assert models["tiny.x"]["gap_top1"] is None and models["tiny.x"]["rank_imagenet_top1"] is None
    assert payload["meta"]["effective_robustness_fit"]["n_models"] == 3
    assert set(payload["columns"]) == set(COLUMNS)


class _TableParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.headers: list[str] = []
        self.tags: list[str] = []
        self._in = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._in = tag

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in = None

    def handle_data(self, data):
        if self._in == "th":
            self.headers.append(data)
        elif self._in == "td":
            self.rows[-1].append(data)


def test_html_parses_holds_rows_and_escapes_text():
    results = _results() + [make_result("evil<b>model</b>", imagenet=0.5, laionet=0.4)]
    page = to_html(build_leaderboard(results), figures=["fig1.png"])
    parser = _TableParser()
    parser.feed(page)
    parser.close()
    body_rows = [r for r in parser.rows if r]
    models = {row[1] for row in body_rows}
    assert {"resnet18.tv_in1k", "evil<b>model</b>", "ViT-B-32/laion2b_s34b_b79k"} <= models
    assert "b" not in parser.tags  # the name was escaped, not turned into markup
    assert "LAIONet top-1" in parser.headers and "script" in parser.tags and "img" in parser.tags
    assert 'data-value="77.5"' in page  # exact numbers for the sorter


def test_write_leaderboard_writes_tables_and_nonempty_pngs(tmp_path):
    for result in _results():
        write_result(result, tmp_path / "results")
    board = load_leaderboard(tmp_path / "results")
    assert set(board.per_class) == {r.model for r in _results()}
    written = write_leaderboard(board, tmp_path / "out")
    names = {p.name for p in written}
    assert set(FORMATS.values()) <= names
    assert {FIGURES["accuracy"], FIGURES["weighting"], FIGURES["per_class"]} <= names
    assert FIGURES["similarity"] not in names  # no similarity summary in these results
    for name in FIGURES.values():
        path = tmp_path / "out" / name
        if path.exists():
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert FIGURES["accuracy"] in (tmp_path / "out" / "index.html").read_text()
    assert not list((tmp_path / "out").glob(".*"))  # no temp files left


def test_similarity_figure_when_summaries_exist(tmp_path):
    summary = tmp_path / "similarity" / "enc" / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"datasets": {"laionet": {"mean": 0.7, "n_classes": 3},
                                                "imagenet-val": {"mean": 0.75, "n_classes": 3}},
                                   "comparison": {"a": "laionet", "b": "imagenet-val", "frac_lower": 0.5,
                                                  "frac_higher": 0.25}}))
    board = build_leaderboard(_results(), results_dir=tmp_path)
    written = write_leaderboard(board, tmp_path / "out", formats=["md"])
    assert FIGURES["similarity"] in {p.name for p in written}
    assert "## Intra-class similarity" in (tmp_path / "out" / "leaderboard.md").read_text()


def test_unknown_format_is_rejected_before_writing(tmp_path, board):
    with pytest.raises(ConfigError, match="xlsx"):
        write_leaderboard(board, tmp_path / "out", formats=["md", "xlsx"], plots=False)
    assert not (tmp_path / "out").exists()


def test_cli_leaderboard_prints_markdown_and_writes_files(tmp_path, capsys):
    for result in _results():
        write_result(result, tmp_path / "res")
    status = main(["-q", "leaderboard", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "lb"),
                   "--formats", "csv,json", "--no-plots"])
    out = capsys.readouterr().out
    assert status == 0
    assert "| model" in out and "resnet50.a1_in1k" in out
    assert sorted(p.name for p in (tmp_path / "lb").iterdir()) == ["leaderboard.csv", "leaderboard.json"]


def test_cli_leaderboard_without_results_says_what_to_do(tmp_path, capsys):
    assert main(["leaderboard", "--results", str(tmp_path / "none")]) == 1
    assert "laionet-bench run" in capsys.readouterr().err


def test_similarity_test_over_too_few_classes_carries_a_note(tmp_path):
    for encoder, tested in (("thin", 1), ("enough", 40)):
        summary = tmp_path / "similarity" / encoder / "summary.json"
        summary.parent.mkdir(parents=True)
        summary.write_text(json.dumps({"encoder": encoder, "datasets": {"laionet": {"mean": 0.7}},
                                       "comparison": {"a": "laionet", "b": "imagenet-val", "n_classes_tested": tested,
                                                      "frac_lower": 1.0, "frac_higher": 0.0}}))
    board = build_leaderboard(_results(), results_dir=tmp_path)
    note = "thin (laionet vs imagenet-val): too few classes to conclude: 1 tested, fewer than the minimum of 10"
    markdown, page = to_markdown(board), to_html(board)
    assert f"> **Note** {note}" in markdown and note in page
    assert "enough (laionet" not in markdown and "enough (laionet" not in page
    from laionet_bench.leaderboard.plots import _encoder_labels

    thin, enough = _encoder_labels(board, ["thin", "enough"])
    assert "too few to conclude" in thin and "lower: 100%" not in thin  # the figure's labels say it too
    assert "lower: 100%" in enough


def test_smoke_runs_are_marked_in_every_rendering(tmp_path):
    results = _results()
    limited = results[0]
    laion = limited.datasets["laionet"]
    limited.datasets["laionet"] = dataclasses.replace(
        laion, identity={**(laion.identity or {}), "limits": {"limit_per_class": 2, "limit": None}})
    board = build_leaderboard(results, results_dir=tmp_path)
    smoke = board.table.set_index("model")["smoke"]
    assert bool(smoke[limited.model]) and not smoke.drop(limited.model).any()
    markdown, page = to_markdown(board), to_html(board)
    assert f"{limited.model} (smoke run)" in markdown and f"{limited.model} (smoke run)" in page
    assert "not comparable with full runs" in markdown and "not comparable with full runs" in page
    others = [r.model for r in results[1:]]
    assert all(f"{m} (smoke run)" not in markdown for m in others)


#: Model names a result file may hold that a spreadsheet would run, or that would break a Markdown row.
HOSTILE = ['=HYPERLINK("http://127.0.0.1/x","click")', "+1+2", "-2+3", "@SUM(A1:A2)", "'quoted", "pipe|model"]


def test_text_cells_are_neither_formulas_in_csv_nor_row_breakers_in_markdown(tmp_path, capsys):
    import csv

    from laionet_bench.leaderboard.compare import compare_tables, load_table
    from laionet_bench.leaderboard.table import build_table

    results = [make_result(name, imagenet=0.6 + 0.05 * i, laionet=0.5 + 0.02 * i) for i, name in enumerate(HOSTILE)]
    board = build_leaderboard(results)
    rows = list(csv.DictReader(io.StringIO(to_csv(board))))
    assert sorted(row["model"] for row in rows) == sorted([f"'{name}" for name in HOSTILE[:5]] + ["pipe|model"])
    assert any(row["effective_robustness"].startswith("-") for row in rows)  # numbers are left alone
    write_leaderboard(board, tmp_path / "lb", formats=["csv", "md"], plots=False)
    again = compare_tables(build_table(results)[0], load_table(tmp_path / "lb" / "leaderboard.csv"))
    assert again.changes().empty and not again.models_added and not again.models_removed  # read back exactly
    table = [line for line in to_markdown(board).splitlines() if line.startswith("|")]
    assert len({len(line.replace("\\|", "").split("|")) for line in table}) == 1  # every row has as many cells
    assert any("pipe\\|model" in line for line in table)
    for result in results:
        write_result(result, tmp_path / "results")
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "results"), str(tmp_path / "results"), "--format", "csv", "--all"]) == 0
    diff = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {row["model"] for row in diff} == {row["model"] for row in rows}
