"""HF transformers classifiers: processor → data config, the two label rules, the engine, the offline cache."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import laionet_bench
from laionet_bench.catalog import load_catalog
from laionet_bench.datasets import create_dataset
from laionet_bench.errors import ModelSpecError
from laionet_bench.evaluation.engine import EngineOptions, make_decoder, run_models
from laionet_bench.evaluation.store import read_predictions
from laionet_bench.models.hf import processor_data_config, reference_lemma_columns
from laionet_bench.models.registry import (
    build_model,
    expand_model_specs,
    label_rule,
    preprocess_key,
    resolve_data_config,
)

from .fakes.custom_code import add_custom_code
from .fakes.eval_data import row_id_folder, tiny_index

transformers = pytest.importorskip("transformers")
#: transformers 5 names its PIL processors ``*Pil``; in 4.x the plain classes are the PIL ones
PIL_BACKEND = {"backend": "pil"} if hasattr(transformers, "ViTImageProcessorPil") else {"use_fast": False}


def _pil(name: str):
    return getattr(transformers, f"{name}Pil", None) or getattr(transformers, name)


CATALOG = list(load_catalog())
LABELS_1K = [", ".join(c.lemmas) for c in CATALOG]  # what HF ImageNet-1k checkpoints carry ("tench, Tinca tinca")
# a 21k-style head: matched labels written with "_", the two crane logits, and labels no class-file line has
LABELS_22K = ["organism, being", "tench,_Tinca_tinca", "crane", "Siberian_husky", "whistle", "person,_individual",
              "crane", "fall webworm, Hyphantria cunea", "goldfish,_Carassius_auratus", "Tinca"]


def _save(folder, config, processor):
    import torch

    torch.manual_seed(len(str(folder)))
    transformers.AutoModelForImageClassification.from_config(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return f"hf:{folder}"


def _head(labels):
    return {"num_labels": len(labels), "id2label": dict(enumerate(labels)), "label2id": {}}


def _tiny_vit(folder, labels=LABELS_1K):
    config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=32, **_head(labels))
    return _save(folder, config, _pil("ViTImageProcessor")(size={"height": 32, "width": 32}))


def _tiny_convnext(folder, labels=LABELS_1K):
    config = transformers.ConvNextConfig(patch_size=4, num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], **_head(labels))
    return _save(folder, config, _pil("ConvNextImageProcessor")(size={"shortest_edge": 32}, crop_pct=0.875))


def _tiny_resnet(folder, labels=LABELS_1K):
    config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic",
                                       **_head(labels))
    processor = _pil("ConvNextImageProcessor")(size={"shortest_edge": 32}, crop_pct=0.875, resample=2,
                                                       image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    return _save(folder, config, processor)


def _tiny_beit(folder, labels=LABELS_1K):
    config = transformers.BeitConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, use_mean_pooling=True, **_head(labels))
    processor = _pil("BeitImageProcessor")(size={"height": 36, "width": 36}, do_center_crop=True,
                                                   crop_size={"height": 32, "width": 32})
    return _save(folder, config, processor)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {"vit": _tiny_vit(root / "vit"), "convnext": _tiny_convnext(root / "convnext"),
            "resnet": _tiny_resnet(root / "resnet"), "beit": _tiny_beit(root / "beit"),
            "convnext-22k": _tiny_convnext(root / "convnext-22k", LABELS_22K)}


@pytest.fixture
def laionet(tmp_path):
    path, frame = tiny_index(tmp_path, per_class=3)
    return create_dataset("laionet", index=path, images=row_id_folder(tmp_path / "imgs", frame))


# ------------------------------------------------------------------------------- processor → decoder
def _photo():
    from PIL import Image
    from skimage import data

    return Image.fromarray(data.rocket())  # 427 × 640: after resize to 256 the crop margin is 3 mod 4


PROCESSORS = {  # the reference checkpoints' processors (their preprocessor_config.json settings)
    "vit (resize 224, no crop)": lambda: _pil("ViTImageProcessor")(size={"height": 224, "width": 224}, resample=2),
    "convnext-224 (crop_pct 224/256)": lambda: _pil("ConvNextImageProcessor")(
        size={"shortest_edge": 224}, crop_pct=224 / 256, resample=3, image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225]),
    "convnext-384 (squash)": lambda: _pil("ConvNextImageProcessor")(size={"shortest_edge": 384}, resample=3),
    "resnet (crop_pct 0.875, bilinear)": lambda: _pil("ConvNextImageProcessor")(
        size={"shortest_edge": 224}, crop_pct=0.875, resample=2, image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225]),
    "beit (resize 256, crop 224)": lambda: _pil("BeitImageProcessor")(
        size={"height": 256, "width": 256}, do_center_crop=True, crop_size={"height": 224, "width": 224}),
}


@pytest.mark.parametrize("name", list(PROCESSORS))
def test_engine_decode_matches_the_hf_processor_on_a_photo(name):
    import torch

    processor = PROCESSORS[name]()
    image = _photo()
    expected = processor(images=image, return_tensors="pt")["pixel_values"][0]
    config = processor_data_config(processor)
    decoded = make_decoder(config)(image)
    mean = torch.tensor(config["mean"]).view(3, 1, 1) * 255
    std = torch.tensor(config["std"]).view(3, 1, 1) * 255
    ours = (decoded.float() - mean) / std  # what the engine's Predictor feeds the model
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), atol=2e-5)


def test_processors_that_agree_share_one_decode_group(models):
    keys = {name: preprocess_key(resolve_data_config(spec)) for name, spec in models.items()}
    assert keys["convnext"] == keys["convnext-22k"] and keys["convnext"] != keys["resnet"]  # resample differs
    assert keys["vit"] != keys["beit"]


# ---------------------------------------------------------------------------------------- label rules
def test_reference_rule_matches_class_file_lines_only():
    columns, wnids = reference_lemma_columns(LABELS_22K)
    crane = "n02012849"  # the class file has the bird crane only: both crane logits map to it
    assert columns == (1, 2, 3, 4, 6, 8)
    assert wnids == ("n01440764", crane, "n02110185", "n04579432", crane, "n01443537")


def test_rule_follows_protocol_for_1k_heads_and_is_fixed_for_22k_heads(models):
    assert label_rule(models["resnet"], "ours") == "imagenet-1k"
    assert label_rule(models["resnet"], "official") == "reference-lemmas"
    assert label_rule(models["convnext-22k"], "ours") == label_rule(models["convnext-22k"], "official") == "reference-lemmas"
    assert label_rule("resnet18.a1_in1k", "official") is None


def test_a_1k_head_with_other_labels_is_refused_under_ours(tmp_path):
    labels = list(LABELS_1K)
    labels[0], labels[1] = labels[1], labels[0]
    spec = _tiny_resnet(tmp_path / "swapped", labels)
    with pytest.raises(ModelSpecError, match=r"2 of 1000 head labels.*--protocol official"):
        build_model(spec)
    assert build_model(spec, protocol="official").label_map.wnids[:2] == (CATALOG[1].wnid, CATALOG[0].wnid)


def _reference_top5(spec, dataset, rule):
    """What the reference computes: its processor on each image, top-5 over the kept logits → wnids."""
    import torch

    folder = spec[len("hf:"):]
    processor = transformers.AutoImageProcessor.from_pretrained(folder, **PIL_BACKEND)
    model = transformers.AutoModelForImageClassification.from_pretrained(folder).eval()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    columns, wnids = reference_lemma_columns(labels) if rule == "reference-lemmas" else (range(1000), load_catalog().wnids)
    out = {}
    for sample in dataset.samples():
        with torch.no_grad():
            logits = model(**processor(images=dataset.open(sample), return_tensors="pt")).logits[0, list(columns)]
        out[sample.key] = [wnids[j] for j in logits.argsort(descending=True)[:5].tolist()]
    return out


@pytest.mark.parametrize("protocol", ["ours", "official"])
def test_hf_models_run_in_the_engine_with_correct_top5(tmp_path, models, laionet, protocol):
    specs = list(models.values())
    outcomes = run_models(specs, laionet, store_root=tmp_path / "store",
                          options=EngineOptions(batch_size=4, workers=0, protocol=protocol))
    for name, spec in models.items():
        outcome = outcomes[spec]
        assert outcome.status == "ok", outcome.reason
        rule = label_rule(spec, protocol)
        assert outcome.model_info["label_map"] == rule and outcome.model_info["kind"] == "hf"
        records = read_predictions(outcome.store).set_index("key")
        expected = _reference_top5(spec, laionet, rule)
        assert {k: list(v) for k, v in records["top5"].items()} == expected, name
        for _, row in records.iterrows():  # the rank is that of the true wnid's best kept logit
            assert (row["true_rank"] == 0) == (row["top5"][0] == row["wnid"])
            assert (row["true_rank"] < 5) == (row["wnid"] in list(row["top5"]))
    kept = set(reference_lemma_columns(LABELS_22K)[1])  # a 22k head predicts only the classes its labels match
    assert set(read_predictions(outcomes[models["convnext-22k"]].store)["top5"].explode()) <= kept


def test_the_label_rule_is_part_of_the_run_key(tmp_path, models, laionet):
    spec = models["resnet"]
    keys = {p: run_models([spec], laionet, store_root=tmp_path / "store",
                          options=EngineOptions(batch_size=8, workers=0, protocol=p))[spec].run_key
            for p in ("ours", "official")}
    assert keys["ours"] != keys["official"]
    again = run_models([spec], laionet, store_root=tmp_path / "store", options=EngineOptions(batch_size=8, workers=0))
    assert again[spec].run_key == keys["ours"] and again[spec].computed == 0


# -------------------------------------------------------------------------------------- specs, offline
def test_spec_forms(tmp_path, models, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = models["vit"][len("hf:"):]
    assert expand_model_specs([f"hf:{folder}", "hf:microsoft/resnet-50"]) == [f"hf:{folder}", "hf:microsoft/resnet-50"]
    with pytest.raises(ModelSpecError, match="hf:ORG/NAME"):
        expand_model_specs(["hf:resnet-50"])
    with pytest.raises(ModelSpecError, match="no config.json"):
        expand_model_specs(["hf:./missing"])


def test_not_cached_offline_is_one_clear_line():
    with pytest.raises(ModelSpecError, match=r"hf:someorg/missing: it is not in the Hugging Face cache and HF_HUB_OFFLINE"):
        resolve_data_config("hf:someorg/missing")


def test_a_broken_config_json_is_named(tmp_path, capsys):
    """transformers' JSONDecodeError names no file (it was "unexpected JSONDecodeError")."""
    from laionet_bench.cli import main

    (tmp_path / "config.json").write_text('{"model_type": "vit",\n')
    spec = f"hf:{tmp_path}"
    with pytest.raises(ModelSpecError, match=rf"{spec}: {tmp_path / 'config.json'} is not valid JSON \(.*line 2"):
        resolve_data_config(spec)
    assert main(["models", spec]) == 0  # listed without a data config, as an uncached checkpoint is
    assert f"{tmp_path / 'config.json'} is not valid JSON" in capsys.readouterr().out


def test_hub_id_resolves_through_the_offline_cache(tmp_path, models):
    """A checkpoint laid out as huggingface_hub caches it loads offline, keyed by its commit."""
    import shutil

    import huggingface_hub.constants as hf_constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--tiny-org--tiny-vit"
    assert str(repo.parent) == hf_constants.HF_HUB_CACHE
    shutil.copytree(models["vit"][len("hf:"):], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    spec = "hf:tiny-org/tiny-vit"
    loaded = build_model(spec)
    assert loaded.data_config["input_size"] == [3, 32, 32] and loaded.label_map.name == "imagenet-1k"
    assert loaded.model_info["weights"] == "tiny-org/tiny-vit" and loaded.model_info["revision"] == commit


# ---------------------------------------------------------------------------- a folder's own code (issue 21)
REFUSAL = "has 'auto_map' (custom model code); laionet-bench never runs a model's own code"
PROMPT_WORDS = ("trust_remote_code", "[y/N]")


@pytest.fixture
def own_code(tmp_path):
    """A tiny ViT folder whose config.json and preprocessor_config.json name a modeling_evil.py: (spec, marker)."""
    spec = _tiny_vit(tmp_path / "own-code")
    return spec, add_custom_code(tmp_path / "own-code", ("config.json", "preprocessor_config.json"))


def _refused(spec: str, name: str = "config.json") -> str:
    return re.escape(f"{spec}: {name} {REFUSAL}")


def test_a_folder_with_its_own_code_is_refused_with_one_line(own_code):
    spec, marker = own_code
    for load in (build_model, resolve_data_config, lambda s: label_rule(s, "ours")):
        with pytest.raises(ModelSpecError, match=_refused(spec)) as info:
            load(spec)
        assert "\n" not in str(info.value)
    assert not marker.exists()


def test_the_image_processor_file_is_checked_too(tmp_path):
    spec = _tiny_vit(tmp_path / "processor-code")
    marker = add_custom_code(tmp_path / "processor-code", ("preprocessor_config.json",))
    with pytest.raises(ModelSpecError, match=_refused(spec, "preprocessor_config.json")):
        resolve_data_config(spec)
    assert not marker.exists()


def test_a_hub_repo_with_its_own_code_is_refused_from_the_cache(tmp_path, own_code):
    import shutil

    folder, marker = Path(own_code[0][len("hf:"):]), own_code[1]
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--evil-org--tiny-vit"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    with pytest.raises(ModelSpecError, match=_refused("hf:evil-org/tiny-vit")):
        build_model("hf:evil-org/tiny-vit")
    assert not marker.exists()


def test_trust_remote_code_false_holds_without_the_precheck(own_code, monkeypatch):
    """The second lock: with the pre-check gone, transformers refuses on its own and never prompts."""
    import builtins

    from laionet_bench.models import hf

    spec, marker = own_code
    monkeypatch.setattr(hf, "refuse_custom_code", lambda *args, **kwargs: None)
    monkeypatch.setattr(builtins, "input", lambda *args: pytest.fail("transformers prompted"))
    with pytest.raises(ValueError, match="custom code"):
        label_rule(spec, "ours")
    assert not marker.exists()


@pytest.mark.parametrize("stdin", ["devnull", "closed", "answers y"])
def test_the_cli_never_asks_to_run_a_folders_code(tmp_path, own_code, stdin):
    """``models hf:DIR`` in a fresh process, offline: the refusal is listed, no prompt, the code never runs —
    whether stdin is empty, closed, or would answer ``y``."""
    spec, marker = own_code
    env = {**os.environ, "PYTHONPATH": str(Path(laionet_bench.__file__).parents[1]), "HF_HUB_OFFLINE": "1",
           "HOME": str(tmp_path / "home"), "HF_HOME": str(tmp_path / "hf-home"),
           "LAIONET_BENCH_CACHE": str(tmp_path / "cache")}
    feed = {"devnull": {"stdin": subprocess.DEVNULL}, "closed": {"preexec_fn": lambda: os.close(0)},
            "answers y": {"input": "y\n"}}[stdin]
    run = subprocess.run([sys.executable, "-m", "laionet_bench", "models", spec], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=300, **feed)
    assert not marker.exists()
    assert not any(word in run.stdout + run.stderr for word in PROMPT_WORDS), run.stdout + run.stderr
    assert run.returncode == 0, run.stderr
    assert f"the first: {spec}: config.json {REFUSAL}" in run.stdout
