"""Result records: building from per-class tables, gaps, files, provenance."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from laionet_bench.errors import DatasetError, ResultsError
from laionet_bench.evaluation.metrics import per_class_recall
from laionet_bench.evaluation.results import Provenance, build_model_result, read_results, write_result


def _table(spec: dict[str, tuple[int, int, int]]) -> pd.DataFrame:
    """wnid -> (n, top1 correct, top5 correct) as a per-class recall table."""
    wnids, c1, c5 = [], [], []
    for wnid, (n, k1, k5) in spec.items():
        wnids += [wnid] * n
        c1 += [True] * k1 + [False] * (n - k1)
        c5 += [True] * k5 + [False] * (n - k5)
    return per_class_recall(wnids, c1, c5)


def _result(model="m.tag"):
    laion = _table({"n01440764": (10, 5, 8), "n01443537": (20, 10, 15)})
    imagenet = _table({"n01440764": (50, 40, 48), "n01443537": (50, 45, 50), "n01484850": (50, 50, 50)})
    weights = pd.Series({"n01440764": 0.25, "n01443537": 0.75})
    return build_model_result(
        model=model,
        run_key="k" * 16,
        model_info={"architecture": "m", "params": 10},
        provenance=Provenance.collect(device="cpu", dtype="float32"),
        laionet=(laion, {"dataset": "laionet:clip_0.82", "identity": {"sha256": "x"}, "n_listed": 32, "n_failed": 2}),
        imagenet=(imagenet, {"dataset": "imagenet-val", "identity": {}, "n_listed": 150, "n_failed": 0}),
        weights=weights,
    )


def test_imagenet_is_restricted_to_laionet_classes_and_gap_is_the_difference():
    result = _result()
    assert result.classes == ["n01440764", "n01443537"]
    imagenet = result.datasets["imagenet"]
    assert imagenet.n_classes == 2 and imagenet.n_evaluated == 100  # n01484850 is not in LAIONet
    assert imagenet.top1.value == pytest.approx((0.8 + 0.9) / 2)
    laion = result.datasets["laionet"]
    assert laion.top1.value == pytest.approx(0.5)
    assert laion.lw_top1.value == pytest.approx(0.25 * 0.5 + 0.75 * 0.5)
    assert laion.micro_top1 == pytest.approx(15 / 30)
    gap = result.gaps["top1"]
    assert gap.value == pytest.approx(0.85 - 0.5)
    assert gap.se == pytest.approx(math.hypot(imagenet.top1.se, laion.top1.se))
    per_class = result.per_class.set_index("wnid")
    assert per_class.loc["n01440764", "drop_top1"] == pytest.approx(0.8 - 0.5)
    assert per_class.loc["n01443537", "laionet_weight"] == pytest.approx(0.75)


def test_write_read_roundtrip_keeps_numbers_numbers(tmp_path):
    result = _result("resnet50.a1_in1k")
    folder = write_result(result, tmp_path / "results")
    data = json.loads((folder / "result.json").read_text())
    assert isinstance(data["datasets"]["laionet"]["top1"]["value"], float)
    assert isinstance(data["gaps"]["top1"]["se"], float)
    assert data["provenance"]["harness_version"] and data["provenance"]["device"] == "cpu"
    back = read_results(tmp_path / "results")
    assert [r.model for r in back] == ["resnet50.a1_in1k"]
    assert back[0].datasets == result.datasets
    pd.testing.assert_frame_equal(back[0].per_class, result.per_class)
    csv = pd.read_csv(folder / "per_class.csv")
    assert np.issubdtype(csv["laionet_top1"].dtype, np.floating)


def test_disjoint_classes_and_missing_results_are_clear(tmp_path):
    with pytest.raises(DatasetError, match="share no class"):
        build_model_result(
            model="m", run_key="k", model_info={}, provenance=Provenance.collect(device="cpu", dtype="float32"),
            laionet=(_table({"n01440764": (3, 1, 2)}), {"dataset": "l", "identity": {}, "n_listed": 3, "n_failed": 0}),
            imagenet=(_table({"n01443537": (3, 1, 2)}), {"dataset": "i", "identity": {}, "n_listed": 3, "n_failed": 0}),
        )
    with pytest.raises(ResultsError, match="run 'laionet-bench run --out"):
        read_results(tmp_path / "nothing")
    (tmp_path / "r" / "m").mkdir(parents=True)
    (tmp_path / "r" / "m" / "result.json").write_text("{not json")
    with pytest.raises(ResultsError, match="not valid JSON"):
        read_results(tmp_path / "r")


def test_result_files_carry_no_local_absolute_paths(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    data_root = tmp_path / "work" / "laionet_images"
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    weights = home / ".cache" / "laionet-bench" / "weights" / "m.safetensors"
    result = build_model_result(
        model="m.tag", run_key="k" * 16,
        model_info={"architecture": "m", "weights": str(weights), "input_size": (3, 224, 224)},
        provenance=Provenance.collect(device="cpu", dtype="float32"),
        laionet=(_table({"n01440764": (3, 1, 2)}),
                 {"dataset": "laionet", "n_listed": 3, "n_failed": 0,
                  "identity": {"index": {"source": "/srv/shared/index.parquet"},
                               "images": {"root": str(data_root), "manifest_sha256": "abc"}}}),
    )
    text = (write_result(result, tmp_path / "results") / "result.json").read_text()
    assert str(tmp_path) not in text
    data = json.loads(text)
    assert data["model_info"]["weights"] == "~/.cache/laionet-bench/weights/m.safetensors"
    assert data["model_info"]["input_size"] == [3, 224, 224]
    identity = data["datasets"]["laionet"]["identity"]
    assert identity["images"] == {"root": "laionet_images", "manifest_sha256": "abc"}
    assert identity["index"]["source"] == "/srv/shared/index.parquet"  # names no user: kept
    assert result.model_info["weights"].startswith("~/")  # in memory as on disk: the leaderboard reads either


def _break_datasets(folder):
    data = json.loads((folder / "result.json").read_text())
    (folder / "result.json").write_text(json.dumps({**data, "datasets": "oops"}))


def _result_json_a_folder(folder):
    (folder / "result.json").unlink()
    (folder / "result.json").mkdir()


def _missing_estimate(folder):
    data = json.loads((folder / "result.json").read_text())
    del data["datasets"]["laionet"]["top1"]
    (folder / "result.json").write_text(json.dumps(data))


def _corrupt_parquet(folder):
    (folder / "per_class.parquet").write_bytes(b"PAR1 not really parquet")


def _not_per_class(folder):
    pd.DataFrame({"x": [1]}).to_parquet(folder / "per_class.parquet")


@pytest.mark.parametrize(("damage", "file", "problem"), [
    (_break_datasets, "result.json", "field 'datasets' is \"oops\", not an object"),
    (_result_json_a_folder, "result.json", "a folder, not a JSON file"),
    (lambda folder: (folder / "result.json").write_text("[1, 2]"), "result.json", "holds a JSON list"),
    (_missing_estimate, "result.json", "not a laionet-bench result (KeyError: 'top1')"),
    (_corrupt_parquet, "per_class.parquet", "not a readable parquet file"),
    (_not_per_class, "per_class.parquet", "no 'wnid' column"),
])
def test_a_malformed_result_is_one_line_naming_the_file(tmp_path, capsys, damage, file, problem):
    from laionet_bench.cli import main

    folder = write_result(_result(), tmp_path / "results")
    write_result(_result("other.tag"), tmp_path / "results")
    damage(folder)
    with pytest.raises(ResultsError) as info:
        read_results(tmp_path / "results")
    assert str(info.value).startswith(f"{folder / file}: {problem}") and "run the evaluation again" in str(info.value)
    for argv in (["leaderboard", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "lb")],
                 ["compare", str(tmp_path / "results"), str(tmp_path / "results")]):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(folder / file) in err[0] and "unexpected" not in err[0], err
