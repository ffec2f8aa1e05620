"""§4.2: image-to-synset-text similarity through the model registry and the engine's decoder, the
golden-section image threshold, A–D as index variants, and thresholds that leave classes (or all) empty."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from laionet_bench.catalog import load_catalog
from laionet_bench.datasets import create_dataset
from laionet_bench.explain import multimodal
from laionet_bench.explain.multimodal import (
    image_text_similarities,
    image_threshold_for,
    run_multimodal,
    threshold_table,
)
from laionet_bench.index.schema import read_index_file, write_index

from .conftest import make_index_frame

CATALOG = load_catalog()
WNIDS = CATALOG.wnids[:4]


@pytest.mark.parametrize("target", [0, 1, 7, 50, 99])
def test_golden_section_finds_the_threshold_keeping_target_rows(target):
    sims = np.linspace(0.1, 0.4, 100)  # distinct values: every count 0..100 is reachable
    t = image_threshold_for(sims, target)
    assert int((sims > t).sum()) == target


def test_no_image_threshold_when_too_few_rows_pass_the_text():
    assert image_threshold_for(np.array([0.2, 0.3]), 5) == -1.0
    assert image_threshold_for(np.array([0.2, np.nan, 0.3]), 2) == -1.0


def test_threshold_table_keeps_the_count_and_reports_empty_classes():
    rows = pd.DataFrame({"wnid": [WNIDS[0]] * 6 + [WNIDS[1]] * 4,
                         "similarity": [0.9, 0.85, 0.8, 0.75, 0.74, 0.73, 0.95, 0.9, 0.73, 0.72],
                         "x_image_similarity": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.05, 0.06, 0.07, 0.08]})
    pairs = {p.text_threshold: p for p in threshold_table(rows, [0.72, 0.8], target=4)}
    assert pairs[0.8].rows == 4 and pairs[0.8].image_threshold == -1.0 and pairs[0.8].empty_classes == 0
    # at 0.72 the four highest image similarities are all in class 0: class 1 is left empty, not an error
    assert pairs[0.72].rows == 4 and pairs[0.72].empty_classes == 1 and pairs[0.72].classes == 1


def test_run_multimodal_writes_variants_and_skips_an_empty_one(tmp_path, monkeypatch):
    frame = make_index_frame([WNIDS[i % 2] for i in range(8)]).assign(
        similarity=np.array([0.9, 0.88, 0.85, 0.8, 0.78, 0.76, 0.74, 0.73], np.float32), ocr_flag=False)
    image = dict(zip(frame["row_id"].astype(str), [0.3, 0.1, 0.35, 0.2, 0.4, 0.25, 0.5, np.nan], strict=True))

    def fake(dataset, **options):
        return pd.DataFrame({"key": list(image), "wnid": "x", "image_similarity": list(image.values()), "error": ""})

    monkeypatch.setattr(multimodal, "image_text_similarities", fake)
    result = run_multimodal(None, frame, out=tmp_path, text_thresholds=[0.72, 0.8], datasets={"A": 0.8, "D": 0.72,
                            "Z": 0.95}, target=3)
    folder = tmp_path / "explain" / "multimodal"
    assert result["datasets"]["A"]["rows"] == 3 and result["datasets"]["D"]["rows"] == 3
    assert "Z" in result["skipped"] and not (folder / "Z.parquet").exists()
    d = read_index_file(folder / "D.parquet")
    assert len(d) == result["datasets"]["D"]["rows"] and (d["variant"] == "multimodal_D").all()
    assert d["x_image_similarity"].min() > result["datasets"]["D"]["image_threshold"]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["skipped"]["Z"].startswith("text > 0.95")


def test_image_text_similarity_is_the_clip_cosine_to_the_synset_text(tmp_path):
    import open_clip
    import torch

    from laionet_bench import models

    config = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16,
                                              "head_width": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 1, "layers": 1}}
    (tmp_path / "laionet-explain-clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "laionet-explain-clip.json")
    torch.manual_seed(0)
    model = open_clip.create_model("laionet-explain-clip").eval()
    torch.save(model.state_dict(), tmp_path / "clip.pt")
    spec = models.register_local_weights("openclip:laionet-explain-clip/mine", tmp_path / "clip.pt")
    rng = np.random.default_rng(0)
    frame = make_index_frame([WNIDS[0], WNIDS[1], WNIDS[1]]).assign(ocr_flag=False)
    write_index(frame, tmp_path / "index.parquet")
    (tmp_path / "images").mkdir()
    pictures = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), "RGB") for _ in range(3)]
    for row_id, picture in zip(frame["row_id"], pictures, strict=True):
        picture.save(tmp_path / "images" / f"{row_id}.png")
    (tmp_path / "images" / f"{frame['row_id'].iloc[2]}.png").write_bytes(b"broken")
    dataset = create_dataset("laionet", index=tmp_path / "index.parquet", images=tmp_path / "images")
    sims = image_text_similarities(dataset, model=spec, cache=tmp_path / "cache.parquet")
    _, _, preprocess = open_clip.create_model_and_transforms("laionet-explain-clip", pretrained=str(tmp_path / "clip.pt"))
    tokenizer = open_clip.get_tokenizer("laionet-explain-clip")
    with torch.no_grad():
        img = torch.nn.functional.normalize(model.encode_image(torch.stack([preprocess(p) for p in pictures[:2]])), dim=-1)
        txt = torch.nn.functional.normalize(model.encode_text(tokenizer([CATALOG.get(w).query for w in WNIDS[:2]])), dim=-1)
    expected = (img * txt).sum(dim=1).numpy()
    np.testing.assert_allclose(sims["image_similarity"].to_numpy()[:2], expected, atol=1e-4)
    assert np.isnan(sims["image_similarity"].iloc[2]) and sims["error"].iloc[2]
    again = image_text_similarities(dataset, model=spec, cache=tmp_path / "cache.parquet")  # from the cache
    pd.testing.assert_frame_equal(again, sims)
