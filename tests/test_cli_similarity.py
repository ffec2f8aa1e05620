"""``laionet-bench similarity`` end to end through the real readers, joined to the results of ``evaluate``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from laionet_bench.cli import main
from laionet_bench.evaluation.engine import EngineOptions
from laionet_bench.evaluation.evaluator import evaluate
from laionet_bench.evaluation.results import read_results
from laionet_bench.leaderboard.table import load_leaderboard, read_similarity

from .fakes.eval_data import tiny_weights
from .fakes.similarity import clustered_images
from .test_similarity_pipeline import WNIDS, write_bench

MODEL = "test_resnet.r160_in1k"


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """LAIONet (one broken file, two failed downloads), ImageNet-val, ImageNet-V2 and a tiny model's results."""
    folder = tmp_path_factory.mktemp("bench")
    data = write_bench(folder, broken={(0, 0)}, missing={(1, 0), (1, 1)})
    rng = np.random.default_rng(5)
    for c in range(len(WNIDS)):  # ImageNet-V2: class-index folders, 3 images each
        (folder / "v2" / str(c)).mkdir(parents=True)
        for i, image in enumerate(clustered_images(rng, 3, spread=False)):
            image.save(folder / "v2" / str(c) / f"{i}.png")
    data.imagenet_v2 = folder / "v2"
    data.weights = tiny_weights(folder, "test_resnet")
    data.results = folder / "results"
    # module scope comes before the autouse fixture that moves the cache: an explicit store, not the user's
    data.evaluated = evaluate(["test_resnet"], index=data.index, images=data.images, imagenet=data.imagenet,
                              imagenet_v2=f"matched-frequency={data.imagenet_v2}", out=data.results,
                              weights={MODEL: data.weights}, predictions=folder / "predictions",
                              engine=EngineOptions(device="cpu", workers=0, batch_size=16))
    return data


def similarity(bench, out, *extra: str) -> int:
    return main(["similarity", "--index", str(bench.index), "--images", str(bench.images),
                 "--imagenet", str(bench.imagenet), "--encoder", "timm:test_vit", "--weights", str(bench.weights_vit),
                 "--device", "cpu", "--workers", "0", "--batch-size", "32", "--out", str(out), "--no-plots", *extra])


@pytest.fixture(scope="module", autouse=True)
def vit_weights(bench):
    import timm
    import torch

    torch.manual_seed(0)
    bench.weights_vit = bench.results.parent / "test_vit.pth"
    torch.save(timm.create_model("test_vit").state_dict(), bench.weights_vit)


def test_similarity_joins_the_stored_recall(tmp_path, bench, capsys):
    status = similarity(bench, tmp_path, "--results", str(bench.results))
    out = capsys.readouterr().out
    assert status == 0
    assert "laionet vs imagenet-val: 12 classes with >= 7 pairs in both" in out and "Pearson" in out
    folder = tmp_path / "similarity" / "timm_test_vit"
    summary = json.loads((folder / "summary.json").read_text())
    assert list(summary["datasets"]) == ["laionet", "imagenet-val"]
    laion = summary["datasets"]["laionet"]
    assert (laion["n_selected"], laion["n_missing"], laion["n_failed"], laion["n_images"]) == (144, 2, 3, 141)
    assert summary["datasets"]["imagenet-val"]["n_images"] == 96 and summary["correlation"]["n"] == 12

    table = pd.read_parquet(folder / "per_class.parquet").set_index("wnid")
    stored = read_results(bench.results)[0].per_class.set_index("wnid")
    assert table["laionet_recall_top1"].to_numpy() == pytest.approx(stored.loc[table.index, "laionet_top1"].to_numpy())
    assert table["delta_recall_top1"].to_numpy() == pytest.approx(
        (stored["laionet_top1"] - stored["imagenet_top1"]).loc[table.index].to_numpy())
    assert table["laionet_weight"].to_numpy() == pytest.approx(stored.loc[table.index, "laionet_weight"].to_numpy())
    assert table["delta_sim"].notna().all() and (table["laionet_n_images"] == [11, 10] + [12] * 10).all()

    selection = pd.read_parquet(folder / "selection.parquet")
    failed = selection[selection["status"] == "failed"]
    assert sorted(failed["key"]) == sorted(bench.keys[i] for i in (0, 12, 13))  # broken + 2 failed downloads


def test_the_leaderboard_reads_what_similarity_writes(bench):
    assert similarity(bench, bench.results, "--format", "json") == 0
    per_dataset, per_encoder = read_similarity(bench.results)
    assert sorted(per_dataset["dataset"]) == ["imagenet-val", "laionet"]
    assert {"mean", "n_classes", "n_images", "n_failed"} <= set(per_dataset.columns)
    (row,) = per_encoder.to_dict("records")
    assert (row["encoder"], row["a"], row["b"], row["n_classes_tested"]) == ("timm:test_vit", "laionet", "imagenet-val", 12)
    assert 0 <= row["frac_lower"] <= 1 and "schema_version" not in row
    board = load_leaderboard(bench.results)
    assert board.table["model"].tolist() == [MODEL] and len(board.similarity) == 2


def test_three_datasets_and_a_laionet_variant(tmp_path, bench, capsys):
    status = similarity(bench, tmp_path, "--datasets", "laionet:clip_0.82", "imagenet-val", "imagenet-v2",
                        "--imagenet-v2", f"matched-frequency={bench.imagenet_v2}", "--per-class", "5",
                        "--results", str(bench.results), "--model", MODEL)
    assert status == 0
    summary = json.loads((tmp_path / "similarity" / "timm_test_vit" / "summary.json").read_text())
    assert list(summary["datasets"]) == ["laionet", "imagenet-val", "imagenet-v2"]
    assert [(c["a"], c["b"]) for c in summary["comparisons"]] == [("laionet", "imagenet-val"), ("laionet", "imagenet-v2")]
    assert summary["datasets"]["laionet"]["n_selected"] == 60 and summary["datasets"]["imagenet-v2"]["n_images"] == 36
    table = pd.read_parquet(tmp_path / "similarity" / "timm_test_vit" / "per_class.parquet")
    assert {"imagenet_v2_sim_mean", "imagenet_v2_n_pairs", "imagenet_val_recall_top1"} <= set(table.columns)
    assert "imagenet_v2_recall_top1" not in table  # the evaluation stores no per-class ImageNet-V2 recall
    assert "laionet vs imagenet-v2: no class with >= 7 pairs in both" in capsys.readouterr().out  # 3 images: 3 pairs


@pytest.mark.parametrize(("extra", "message"), [
    (["--encoder", "clip:ViT-B-32"], "error: encoder 'clip:ViT-B-32' is not 'openclip:ARCH/TAG'"),
    (["--datasets", "laionet", "imagenet-v2"], "error: --datasets imagenet-v2 needs --imagenet-v2"),
    (["--datasets", "laionet", "imagenet-v2:top-images"], "error: --datasets imagenet-v2:top-images: only laionet"),
    (["--datasets", "laionet", "laionet"], "error: --datasets names laionet twice"),
    (["--datasets", "laionet", "imagenet"], "error: unknown dataset"),
])
def test_bad_options_fail_in_one_line_before_any_work(tmp_path, bench, capsys, extra, message):
    assert similarity(bench, tmp_path, *extra) == 1
    assert capsys.readouterr().err.startswith(message)
    assert not (tmp_path / "similarity").exists()


def test_dataset_means_what_it_means_in_run():
    """``similarity --dataset`` names the LAIONet as ``run --dataset`` does (a variant or a local parquet)."""
    from laionet_bench.cli.similarity import parse_dataset_names
    from laionet_bench.errors import ConfigError

    assert parse_dataset_names(["laionet", "imagenet-val"], imagenet="val", imagenet_v2=None,
                               dataset="mine.parquet") == ("mine.parquet", ["laionet", "imagenet-val"])
    assert parse_dataset_names(["laionet:clip_top50"], imagenet=None, imagenet_v2=None)[0] == "laionet:clip_top50"
    with pytest.raises(ConfigError, match="name two LAIONets"):
        parse_dataset_names(["laionet:clip_top50"], imagenet=None, imagenet_v2=None, dataset="laionet:mpnet_top50")
