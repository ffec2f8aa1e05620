"""Engine: decode-once grouping gives per-model predictions; failures and corrupt images are contained."""

from __future__ import annotations

import numpy as np
import pytest

from laionet_bench.datasets import create_dataset
from laionet_bench.errors import ConfigError
from laionet_bench.evaluation.engine import EngineOptions, make_decoder, run_models
from laionet_bench.evaluation.store import read_predictions
from laionet_bench.index.schema import write_index
from laionet_bench.models.registry import build_model, preprocess_key, resolve_data_config

from .conftest import make_index_frame
from .fakes.eval_data import row_id_folder, tiny_index, tiny_weights

# one preprocessing group (160 px bicubic, crop 0.95) with two different mean/std; test_resnet is bilinear
SPECS = ["test_efficientnet.r160_in1k", "test_nfnet.r160_in1k", "test_convnext.r160_in1k"]
OTHER_GROUP = "test_resnet.r160_in1k"


@pytest.fixture
def laionet(tmp_path):
    path, frame = tiny_index(tmp_path, per_class=4)
    folder = row_id_folder(tmp_path / "imgs", frame)
    (folder / f"{frame['row_id'][1]}.jpg").write_bytes(b"not an image")
    return create_dataset("laionet", index=path, images=folder)


@pytest.fixture
def weights(tmp_path):
    return {spec: tiny_weights(tmp_path, spec.split(".")[0], seed=i) for i, spec in enumerate([*SPECS, OTHER_GROUP])}


def _reference_predictions(spec, dataset, weights):
    """What one model predicts when it decodes every image itself with timm's own eval transform."""
    import torch
    from timm.data import create_transform

    loaded = build_model(spec, weights=weights)
    transform = create_transform(**loaded.data_config)
    out = {}
    for sample in dataset.samples():
        try:
            image = dataset.open(sample)
        except Exception:  # noqa: BLE001
            continue
        with torch.no_grad():
            probs = loaded.module(transform(image)[None])[0].softmax(0)
        out[sample.key] = dict(zip(loaded.label_map.wnids, probs.tolist(), strict=True))
    return out


def test_models_share_one_preprocessing_group():
    keys = {preprocess_key(resolve_data_config(s)) for s in SPECS}
    assert len(keys) == 1 and preprocess_key(resolve_data_config(OTHER_GROUP)) not in keys


def test_decode_once_equals_per_model_runs(tmp_path, laionet, weights):
    outcomes = run_models([*SPECS, OTHER_GROUP], laionet, store_root=tmp_path / "store", weights=weights,
                          options=EngineOptions(batch_size=4, workers=0))
    for spec in [*SPECS, OTHER_GROUP]:
        assert outcomes[spec].status == "ok" and outcomes[spec].computed == len(laionet)
        records = read_predictions(outcomes[spec].store).set_index("key")
        expected = _reference_predictions(spec, laionet, weights)
        ok = records[records["ok"]]
        assert set(ok.index) == set(expected)
        for key, row in ok.iterrows():  # batched vs single-image floats may swap near-ties, nothing more
            reference = expected[key]
            np.testing.assert_allclose(row["scores"], [reference[w] for w in row["top5"]], atol=1e-5)
            np.testing.assert_allclose(row["scores"], sorted(reference.values(), reverse=True)[:5], atol=1e-5)
        ranks = ok["true_rank"].to_numpy()
        assert ((ranks >= 0) & (ranks < 1000)).all()


def test_decoder_is_timm_transform_without_normalisation(laionet):
    import torch
    from timm.data import create_transform

    config = resolve_data_config(SPECS[0])
    image = laionet.open(laionet.sample(0))
    mean = torch.tensor(config["mean"]).view(3, 1, 1)
    std = torch.tensor(config["std"]).view(3, 1, 1)
    mine = (make_decoder(config)(image).float() / 255 - mean) / std
    torch.testing.assert_close(mine, create_transform(**config)(image))


def test_corrupt_image_is_recorded_once_and_skipped(tmp_path, laionet, weights):
    outcome = run_models(SPECS[:1], laionet, store_root=tmp_path / "s", weights=weights,
                         options=EngineOptions(batch_size=3, workers=1))[SPECS[0]]
    records = read_predictions(outcome.store)
    bad = records[~records["ok"]]
    assert len(bad) == 1 and "UnidentifiedImageError" in bad["error"].iloc[0]
    assert bad["true_rank"].iloc[0] == -1 and len(records) == len(laionet)


def test_a_failing_model_does_not_stop_the_others(tmp_path, laionet, weights):
    broken = dict(weights)
    broken["test_nfnet.r160_in1k"] = weights["test_convnext.r160_in1k"]  # wrong architecture
    outcomes = run_models(SPECS, laionet, store_root=tmp_path / "s", weights=broken,
                          options=EngineOptions(batch_size=4, workers=0))
    assert outcomes["test_nfnet.r160_in1k"].status == "failed"
    assert "does not fit" in outcomes["test_nfnet.r160_in1k"].reason
    assert outcomes["test_efficientnet.r160_in1k"].status == outcomes["test_convnext.r160_in1k"].status == "ok"


def test_models_failing_to_build_with_workers_already_decoding(tmp_path, laionet, weights):
    """The decoding workers start before the models are built; when every build fails the run still ends."""
    broken = {spec: weights["test_convnext.r160_in1k"] for spec in SPECS[:2]}  # wrong architectures
    outcomes = run_models([*SPECS[:2], OTHER_GROUP], laionet, store_root=tmp_path / "s",
                          weights={**broken, OTHER_GROUP: weights[OTHER_GROUP]},
                          options=EngineOptions(batch_size=4, workers=1))
    assert [outcomes[s].status for s in SPECS[:2]] == ["failed", "failed"]
    assert all(outcomes[s].computed == 0 and "does not fit" in outcomes[s].reason for s in SPECS[:2])
    assert outcomes[OTHER_GROUP].status == "ok" and outcomes[OTHER_GROUP].computed == len(laionet)
    assert len(read_predictions(outcomes[OTHER_GROUP].store)) == len(laionet)


def test_out_of_memory_halves_the_batch(tmp_path, laionet, weights, monkeypatch):
    import torch

    from laionet_bench.evaluation import inference

    real = inference.build_model
    seen = []

    def flaky_build(spec, **kw):
        loaded = real(spec, **kw)
        inner = loaded.module

        def forward(x):
            seen.append(len(x))
            if len(x) > 2:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return inner(x)

        loaded.module = forward
        return loaded

    monkeypatch.setattr(inference, "build_model", flaky_build)
    outcome = run_models(SPECS[:1], laionet, store_root=tmp_path / "s", weights=weights,
                         options=EngineOptions(batch_size=8, workers=0))[SPECS[0]]
    assert outcome.status == "ok" and seen[0] > 2 and max(seen[-3:]) <= 2
    assert len(read_predictions(outcome.store)) == len(laionet)


@pytest.fixture
def real_photos(tmp_path):
    """The packages' real photos and their mirror images as a LAIONet dataset (<row_id>.png folder)."""
    from PIL import ImageOps

    from .fakes.photos import PHOTOS, real_photo

    names = list(PHOTOS)
    frame = make_index_frame([PHOTOS[name][2] for name in names for _ in range(2)]).assign(ocr_flag=False)
    path = tmp_path / "photos.parquet"
    write_index(frame, path)
    folder = tmp_path / "photos"
    folder.mkdir()
    row_ids = iter(frame["row_id"])
    for name in names:
        photo = real_photo(name)
        for view in (photo, ImageOps.mirror(photo)):
            view.save(folder / f"{next(row_ids)}.png")
    return create_dataset("laionet", index=path, images=folder)


def test_bf16_channels_last_agree_with_fp32_top1(tmp_path, real_photos):
    """Real ImageNet weights on real photos: bf16 autocast may move a probability by a few hundredths (how
    much depends on the CPU's kernels), so every photo whose fp32 top-1 leads by 0.15 keeps its top-1."""
    from laionet_bench.models.bundled import bundled_weights_file

    spec = "tf_efficientnet_lite0.in1k"
    weights = {spec: bundled_weights_file(spec)}
    fast = run_models([spec], real_photos, store_root=tmp_path / "a", weights=weights,
                      options=EngineOptions(batch_size=8, workers=0, amp="bf16", channels_last=True))[spec]
    exact = run_models([spec], real_photos, store_root=tmp_path / "b", weights=weights,
                       options=EngineOptions(batch_size=8, workers=0))[spec]
    assert fast.status == exact.status == "ok" and fast.computed == exact.computed == len(real_photos)
    assert fast.run_key != exact.run_key  # dtype is part of the run key
    a = read_predictions(fast.store).set_index("key").sort_index()
    b = read_predictions(exact.store).set_index("key").loc[a.index]
    assert not np.allclose(np.stack(a["scores"]), np.stack(b["scores"]), atol=1e-6)  # bf16 did run
    margin = np.array([scores[0] - scores[1] for scores in b["scores"]])
    confident = margin >= 0.15
    assert confident.sum() >= 8  # fp32 alone decides this: the check cannot pass on an empty set
    top1_fast = np.array([top5[0] for top5 in a["top5"]])
    top1_exact = np.array([top5[0] for top5 in b["top5"]])
    assert (top1_fast[confident] == top1_exact[confident]).all(), list(a.index[confident & (top1_fast != top1_exact)])


def test_bad_engine_options_are_refused(tmp_path, laionet):
    with pytest.raises(ConfigError, match="amp"):
        run_models(SPECS[:1], laionet, store_root=tmp_path, options=EngineOptions(amp="int4"))
