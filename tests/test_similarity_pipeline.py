"""compute_similarity end to end on in-memory datasets: files, summary, join to recall, plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from laionet_bench.catalog import load_catalog
from laionet_bench.metrics import per_class_recall
from laionet_bench.results import Provenance, build_model_result, write_result
from laionet_bench.similarity import EmbedOptions, compute_similarity
from laionet_bench.similarity.join import correlation, recall_table, result_key

from .fakes.datasets import ListDataset, PixelEncoder, clustered_images

WNIDS = load_catalog().wnids[:12]
SPREAD = set(WNIDS[:8])  # LAIONet is diverse in these classes, tight in the other four; ImageNet tight everywhere


def build_datasets(broken=()):
    rng = np.random.default_rng(11)
    laion, imagenet = [], []
    for w in WNIDS:
        for i, image in enumerate(clustered_images(rng, 12, spread=w in SPREAD)):
            key = f"l-{w}-{i}"
            laion.append((key, w, None if key in broken else image))
        imagenet += [(f"i-{w}-{i}", w, image) for i, image in enumerate(clustered_images(rng, 8, spread=False))]
    return {"laionet": ListDataset("laionet", laion), "imagenet-val": ListDataset("imagenet-val", imagenet)}


def recall_frame(recall, offset: float) -> pd.DataFrame:
    wnids, top1 = [], []
    for w in WNIDS:
        hits = int(round(10 * min(recall(w) + offset, 1.0)))
        wnids += [w] * 10
        top1 += [True] * hits + [False] * (10 - hits)
    return per_class_recall(wnids, top1, [True] * len(top1))


def write_store(root):
    """Two models' results: LAIONet recall drops in the diverse classes."""
    for model, offset in (("model-a", 0.0), ("model-b", 0.1)):
        laion = recall_frame(lambda w: 0.3 if w in SPREAD else 0.8, offset)
        imagenet = recall_frame(lambda w: 0.8, offset)
        kw = {"identity": {}, "n_listed": 120, "n_failed": 0}
        weights = pd.Series(np.linspace(1, 2, len(WNIDS)), index=WNIDS)
        result = build_model_result(
            model=model, run_key=model, model_info={}, provenance=Provenance.collect(device="cpu", dtype="float32"),
            laionet=(laion, {"dataset": "laionet", **kw}), imagenet=(imagenet, {"dataset": "imagenet-val", **kw}),
            weights=weights / weights.sum(),
        )
        write_result(result, root)


def test_result_keys():
    assert [result_key(n) for n in ("laionet:clip_0.82", "imagenet-val", "imagenet-v2:matched-frequency")] == [
        "laionet", "imagenet", "imagenet-v2"]


def test_recall_table_averages_models(tmp_path):
    write_store(tmp_path)
    both, only_b = recall_table(tmp_path), recall_table(tmp_path, model="model-b")
    assert both.loc[WNIDS[0], "laionet_top1"] == pytest.approx(0.35) and only_b.loc[WNIDS[0], "laionet_top1"] == 0.4
    assert both.loc[WNIDS[0], "n_models"] == 2 and "laionet_se_top1" not in both


def test_compute_similarity_end_to_end(tmp_path):
    write_store(tmp_path)
    datasets = build_datasets(broken={f"l-{WNIDS[0]}-0"})
    summary = compute_similarity(datasets, encoder=PixelEncoder(), out=tmp_path,
                                 embed=EmbedOptions(chunk_size=50, progress=False))
    folder = tmp_path / "similarity" / "timm_pixels"
    data = json.loads((folder / "summary.json").read_text())
    assert data["encoder"] == "timm:pixels"
    assert set(data["datasets"]) == {"laionet", "imagenet-val"}
    laion = data["datasets"]["laionet"]
    assert (laion["n_classes"], laion["n_images"], laion["n_failed"], laion["n_selected"]) == (12, 143, 1, 144)
    assert data["datasets"]["imagenet-val"]["mean"] > laion["mean"]
    comparison = data["comparison"]
    assert (comparison["a"], comparison["b"], comparison["n_classes_tested"]) == ("laionet", "imagenet-val", 12)
    assert comparison["n_lower"] >= 8 and comparison["frac_lower"] == comparison["n_lower"] / 12
    assert comparison["mean_delta"] < 0
    assert data["provenance"]["harness_version"] and data["histogram"]["n_classes"] == 12

    table = pd.read_parquet(folder / "per_class.parquet")
    assert list(table["wnid"]) == WNIDS
    assert set(table.loc[table["wnid"].isin(SPREAD), "significance"]) == {"lower"}
    assert table.loc[0, "laionet_n_images"] == 11 and table.loc[0, "laionet_n_pairs"] == 55
    assert table.loc[0, "laionet_recall_top1"] == pytest.approx(0.35)
    assert table["delta_recall_top1"].to_numpy() == pytest.approx(table["laionet_recall_top1"] - table["imagenet_val_recall_top1"])
    assert table["laionet_weight"].sum() == pytest.approx(1.0) and table["n_models"].eq(2).all()
    assert data["correlation"]["n"] == 12 and data["correlation"]["pearson"] > 0.8
    assert data["correlation"] == pytest.approx(correlation(table))

    selection = pd.read_parquet(folder / "selection.parquet")
    assert len(selection) == 144 + 96 and (selection["status"] == "failed").sum() == 1
    histogram = pd.read_csv(folder / "histogram.csv")
    assert list(histogram.columns) == ["bin_left", "bin_right", "laionet", "imagenet-val"] and len(histogram) == 70
    for key in ("fig6a", "fig6b", "recall_vs_similarity"):
        png = Path(summary.files[key]).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000, key


def test_without_a_store_the_class_share_comes_from_the_listed_rows(tmp_path):
    datasets = build_datasets()
    datasets["laionet"].rows = datasets["laionet"].rows[:-4]  # last class has 8 listed rows
    summary = compute_similarity(datasets, encoder=PixelEncoder(), out=tmp_path, plot=False,
                                 embed=EmbedOptions(progress=False))
    table = summary.per_class
    assert summary.correlation is None and "delta_recall_top1" not in table
    assert table["laionet_weight"].iloc[-1] == pytest.approx(8 / 140)
    assert set(summary.files) == {"per_class", "selection", "histogram"}


def test_timm_encoder_from_a_local_file_runs_through(tmp_path):
    import timm
    import torch

    torch.save(timm.create_model("test_vit").state_dict(), tmp_path / "w.pth")
    datasets = build_datasets()
    small = {k: ListDataset(k, v.rows[:26]) for k, v in datasets.items()}
    summary = compute_similarity(small, encoder="timm:test_vit", out=tmp_path, per_class=3, plot=False,
                                 embed=EmbedOptions(weights=tmp_path / "w.pth", progress=False, batch_size=8))
    assert summary.encoder == "timm:test_vit" and summary.encoder_info["weights_id"].startswith("sha256:")
    laion = summary.datasets["laionet"]
    assert (laion.n_classes, laion.n_images) == (3, 8)  # 26 rows: 12 + 12 + 2 listed, at most 3 per class
