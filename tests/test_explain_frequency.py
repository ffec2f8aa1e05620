"""§4.1: LAIONet and ImageNet-val against each ImageNet-V2 variant through the real readers and the
similarity pipeline, tabulated against the selection frequencies; V2 accuracies from stored results."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from laionet_bench.catalog import load_catalog
from laionet_bench.datasets import create_dataset
from laionet_bench.evaluation.results import summarize_dataset, write_result
from laionet_bench.explain.frequency import SELECTION_FREQUENCY, run_v2_frequency, v2_accuracy
from laionet_bench.similarity import EmbedOptions

from .fakes.results import WNIDS as RESULT_WNIDS
from .fakes.results import _table, make_result
from .fakes.similarity import PixelEncoder, clustered_images, write_imagenet_val, write_laionet

CATALOG = load_catalog()
WNIDS = CATALOG.wnids[:10]


def write_v2(folder, images_by_wnid):
    for wnid, images in images_by_wnid.items():
        (folder / str(CATALOG.get(wnid).index)).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            image.save(folder / str(CATALOG.get(wnid).index) / f"{i}.png")
    return folder


def test_laionet_is_less_similar_than_every_variant(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(5)
    index, images, _ = write_laionet(tmp_path / "laionet", [(w, im) for w in WNIDS
                                                            for im in clustered_images(rng, 6, spread=True)])
    val = write_imagenet_val(tmp_path / "val", [(w, im) for w in WNIDS for im in clustered_images(rng, 6, spread=False)])
    laionet = create_dataset("laionet", index=index, images=images)
    variants = {name: create_dataset(f"imagenet-v2:{name}", root=write_v2(
        tmp_path / name, {w: clustered_images(rng, 5, spread=False) for w in WNIDS}), classes=WNIDS)
        for name in SELECTION_FREQUENCY}
    result = run_v2_frequency(laionet, variants, imagenet=create_dataset("imagenet-val", root=val, classes=WNIDS),
                              encoder=PixelEncoder(), out=tmp_path / "out", embed=EmbedOptions(progress=False))
    folder = tmp_path / "out" / "explain" / "v2-frequency"
    table = pd.read_csv(folder / "frequency.csv")
    assert len(table) == 6 and set(table["reference"]) == {"laionet", "imagenet-val"}
    assert dict(zip(table["variant"], table["selection_frequency"], strict=False)) == SELECTION_FREQUENCY
    laion = table[table["reference"] == "laionet"]
    assert (laion["n_classes_tested"] == 10).all() and (laion["frac_lower"] == 1.0).all()
    assert (laion["mean_delta"] < table[table["reference"] == "imagenet-val"]["mean_delta"].min()).all()
    assert not laion["too_few_classes"].any()
    assert (folder / "fig7_selection_frequency.png").stat().st_size and (folder / "embeddings").is_dir()
    assert json.loads((folder / "summary.json").read_text())["comparisons"] == json.loads(
        json.dumps(result["comparisons"]))


def test_v2_accuracy_reads_one_variant_per_results_folder(tmp_path):
    for variant, v2_recall in (("matched-frequency", 0.6), ("top-images", 0.8)):
        result = make_result("resnet50.a1_in1k", imagenet=0.9, laionet=0.5)
        result.datasets["imagenet-v2"] = summarize_dataset(
            _table([v2_recall] * len(RESULT_WNIDS), 10), dataset=f"imagenet-v2:{variant}", identity={},
            classes=list(RESULT_WNIDS), weights=None, n_listed=40, n_failed=0)
        write_result(result, tmp_path / variant)
    table = v2_accuracy([tmp_path / "matched-frequency", tmp_path / "top-images"])
    assert table["variant"].tolist() == ["matched-frequency", "top-images"]
    assert table["selection_frequency"].tolist() == [0.73, 0.93]
    np.testing.assert_allclose(table["imagenet_v2_top1"], [0.6, 0.8])
    np.testing.assert_allclose(table["gap_v2_top1"], [0.1, 0.3])
