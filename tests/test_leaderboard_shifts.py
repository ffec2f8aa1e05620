"""``leaderboard --shifts``: the board's models joined with timm-format results on other distribution shifts."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from laionet_bench.cli import main
from laionet_bench.errors import ConfigError
from laionet_bench.evaluation.metrics import fit_effective_robustness
from laionet_bench.evaluation.results import write_result
from laionet_bench.leaderboard import build_leaderboard
from laionet_bench.leaderboard.shifts import (
    REFERENCE_FILE,
    SHIFT_FIGURE,
    SHIFT_FILES,
    SHIFTS,
    build_shifts,
    resolve_shifts_folder,
    shifts_markdown,
    write_shifts,
)

from .fakes.results import make_result

ZS = {"kind": "openclip", "pretrained_tag": "laion2b_s34b_b79k"}
MODELS = ("resnet18.tv_in1k", "resnet50.a1_in1k", "vit_base_patch16_224.augreg_in21k_ft_in1k")
#: timm's ImageNet-val top-1 (percent) per model; each shift subtracts a model-dependent drop from it.
TIMM_IMAGENET = {"resnet18.tv_in1k": 69.8, "resnet50.a1_in1k": 80.4,
                 "vit_base_patch16_224.augreg_in21k_ft_in1k": 84.5, "other_model.in1k": 70.0}
DROPS = {"imagenetv2": (12.0, 11.0, 9.0), "sketch": (50.0, 45.0, 40.0), "imagenet-r": (40.0, 38.0, 30.0),
         "imagenet-a": (68.0, 60.0, 50.0), "real": (-7.0, -6.0, -5.0)}


def _results():
    return [
        make_result("resnet18.tv_in1k", imagenet=0.7, laionet=0.6),
        make_result("resnet50.a1_in1k", imagenet=0.8, laionet=0.65),
        make_result("vit_base_patch16_224.augreg_in21k_ft_in1k", imagenet=0.9, laionet=0.775),
        make_result("ViT-B-32/laion2b_s34b_b79k", imagenet=0.6, laionet=0.625, model_info=ZS),  # not in timm
    ]


def _timm_file(path, top1: dict[str, float]) -> None:
    """A timm results file: every column timm writes, so the reader is tested on the real layout."""
    rows = [{"model": m, "img_size": 224, "top1": v, "top1_err": 100 - v, "top5": min(v + 15, 100.0),
             "top5_err": max(85 - v, 0.0), "param_count": 11.7, "crop_pct": 0.875, "interpolation": "bicubic"}
            for m, v in top1.items()]
    pd.DataFrame(rows).to_csv(path, index=False)


@pytest.fixture
def timm_folder(tmp_path):
    folder = tmp_path / "timm-results"
    folder.mkdir()
    _timm_file(folder / REFERENCE_FILE, TIMM_IMAGENET)
    for key, drops in DROPS.items():
        _timm_file(folder / SHIFTS[key].file, {m: TIMM_IMAGENET[m] - d for m, d in zip(MODELS, drops, strict=True)})
    return folder


@pytest.fixture
def board():
    return build_leaderboard(_results())


def _rows(shifts, key):
    return shifts.table[shifts.table["shift"] == key].set_index("model")


def test_join_matches_models_by_name_and_lists_the_others(board, timm_folder):
    shifts = build_shifts(board, timm_folder)
    assert sorted(shifts.matched) == sorted(MODELS)
    assert shifts.unmatched == ["ViT-B-32/laion2b_s34b_b79k"]
    laionet = _rows(shifts, "laionet")
    assert len(laionet) == 4  # the unmatched model keeps its LAIONet row
    for key in DROPS:
        assert sorted(_rows(shifts, key).index) == sorted(MODELS)
    assert "other_model.in1k" not in set(shifts.table["model"])  # timm's models not on the board stay out


def test_gap_is_against_the_imagenet_val_of_its_own_source(board, timm_folder):
    shifts = build_shifts(board, timm_folder)
    sketch = _rows(shifts, "sketch").loc["resnet50.a1_in1k"]
    assert sketch["imagenet_top1"] == pytest.approx(80.4)  # timm's results-imagenet.csv
    assert sketch["top1"] == pytest.approx(35.4)
    assert sketch["top5"] == pytest.approx(50.4)
    assert sketch["gap_top1"] == pytest.approx(45.0)
    assert sketch["source"] == "timm"
    assert _rows(shifts, "real").loc["resnet18.tv_in1k", "gap_top1"] == pytest.approx(-7.0)
    laionet = _rows(shifts, "laionet").loc["vit_base_patch16_224.augreg_in21k_ft_in1k"]
    board_row = board.table.set_index("model").loc["vit_base_patch16_224.augreg_in21k_ft_in1k"]
    assert (laionet["imagenet_top1"], laionet["top1"], laionet["gap_top1"]) == pytest.approx((90.0, 77.5, 12.5))
    assert laionet["effective_robustness"] == pytest.approx(board_row["effective_robustness"])


def test_effective_robustness_is_the_leaderboards_rule_per_shift(board, timm_folder):
    shifts = build_shifts(board, timm_folder)
    rows = _rows(shifts, "imagenet-a").loc[list(MODELS)]
    x = [TIMM_IMAGENET[m] / 100 for m in MODELS]
    y = [(TIMM_IMAGENET[m] - d) / 100 for m, d in zip(MODELS, DROPS["imagenet-a"], strict=True)]
    fit = fit_effective_robustness(x, y)
    assert rows["effective_robustness"].tolist() == pytest.approx(list(fit.residual(x, y) * 100))
    assert shifts.fits["imagenet-a"]["n_models"] == 3 and sorted(shifts.fits["imagenet-a"]["models"]) == sorted(MODELS)
    assert shifts.fits["laionet"]["models"] == board.fit_models


def test_files_are_written_with_numbers_as_numbers(board, timm_folder, tmp_path):
    shifts = build_shifts(board, timm_folder)
    written = write_shifts(shifts, tmp_path / "out")
    assert sorted(p.name for p in written) == sorted([*SHIFT_FILES.values(), SHIFT_FIGURE])
    png = tmp_path / "out" / SHIFT_FIGURE
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    csv = pd.read_csv(tmp_path / "out" / "shifts.csv")
    assert len(csv) == 4 + 3 * len(DROPS)
    assert csv.set_index(["model", "shift"]).loc[("resnet50.a1_in1k", "sketch"), "gap_top1"] == pytest.approx(45.0)
    data = json.loads((tmp_path / "out" / "shifts.json").read_text())
    assert data["meta"]["unmatched"] == ["ViT-B-32/laion2b_s34b_b79k"]
    assert "200" in data["meta"]["shifts"]["imagenet-r"]["gap_against"]
    assert all(isinstance(r["top1"], float) for r in data["rows"])
    md = (tmp_path / "out" / "shifts.md").read_text()
    assert "3 of 4 model(s) have timm results" in md and "+45.0" in md
    assert "No timm results (LAIONet only): `ViT-B-32/laion2b_s34b_b79k`" in md
    assert md == shifts_markdown(shifts)


def test_shipped_snapshot_is_timms_format_with_attribution():
    folder = resolve_shifts_folder("timm")
    assert "Apache" in (folder / "SOURCE.md").read_text() and "aa4b5850" in (folder / "SOURCE.md").read_text()
    sketch = pd.read_csv(folder / SHIFTS["sketch"].file)
    assert list(sketch.columns) == ["model", "img_size", "top1", "top5"]
    assert "resnet50.a1_in1k" in set(sketch["model"])


def test_unknown_value_and_incomplete_folder_are_one_line_errors(tmp_path, timm_folder):
    with pytest.raises(ConfigError, match="--shifts nope: not 'timm' nor a folder") as info:
        resolve_shifts_folder("nope")
    assert "\n" not in str(info.value)
    (timm_folder / SHIFTS["imagenet-a"].file).unlink()
    with pytest.raises(ConfigError, match="lacks results-imagenet-a.csv") as info:
        resolve_shifts_folder(timm_folder)
    assert "\n" not in str(info.value)


def test_a_file_without_timms_columns_is_named(board, timm_folder):
    (timm_folder / SHIFTS["sketch"].file).write_text("name,acc\nx,1\n")
    with pytest.raises(ConfigError, match="results-sketch.csv: not a timm results file"):
        build_shifts(board, timm_folder)


def test_cli_writes_shifts_next_to_the_leaderboard(tmp_path, timm_folder, capsys):
    for result in _results():
        write_result(result, tmp_path / "res")
    status = main(["-q", "leaderboard", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "lb"),
                   "--formats", "csv,json", "--no-plots", "--shifts", str(timm_folder)])
    out = capsys.readouterr().out
    assert status == 0
    assert "shifts: 3 of 4 model(s) have timm results; none for ViT-B-32/laion2b_s34b_b79k" in out
    assert sorted(p.name for p in (tmp_path / "lb").iterdir()) == [
        "leaderboard.csv", "leaderboard.json", "shifts.csv", "shifts.json"]


def test_cli_bad_shifts_fails_in_one_line_before_writing(tmp_path, capsys):
    for result in _results():
        write_result(result, tmp_path / "res")
    assert main(["leaderboard", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "lb"),
                 "--shifts", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip()
    assert "--shifts" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "lb").exists()


def test_cli_shifts_timm_uses_the_shipped_snapshot(tmp_path, capsys):
    for result in _results():
        write_result(result, tmp_path / "res")
    assert main(["-q", "leaderboard", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "lb"),
                 "--formats", "csv", "--shifts", "timm"]) == 0
    assert "shifts: 3 of 4 model(s) have timm results" in capsys.readouterr().out  # resnet18/50, vit_base are timm's
    table = pd.read_csv(tmp_path / "lb" / "shifts.csv")
    assert set(table["shift"]) == set(SHIFTS)
    assert (tmp_path / "lb" / SHIFT_FIGURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_class_subsets_say_so_in_the_figure_legend():
    assert SHIFTS["imagenet-r"].legend == "ImageNet-R, 200 classes"
    assert SHIFTS["sketch"].legend == "ImageNet-Sketch"
