"""Model registry: expansion on timm's real registry, label maps, local/bundled weights, open_clip zero-shot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from laionet_bench.catalog import load_catalog
from laionet_bench.errors import ModelSpecError, UnknownNameError
from laionet_bench.models import registry as models

from .fakes.eval_data import tiny_weights


@pytest.fixture(autouse=True)
def clean_local_registry(monkeypatch):
    monkeypatch.setattr(models, "_LOCAL_WEIGHTS", {})


def test_untagged_name_gets_default_tag_and_order_is_kept():
    assert models.expand_model_specs(["resnet18", "resnet50.tv_in1k", "resnet18.a1_in1k"]) == [
        "resnet18.a1_in1k", "resnet50.tv_in1k"]


def test_wildcard_keeps_only_imagenet_1k_heads_and_exclude_applies():
    got = models.expand_model_specs(["vit_base_patch16_224.*"], exclude=["*sam*"])
    assert got and all(n.startswith("vit_base_patch16_224.") for n in got)
    assert "vit_base_patch16_224.augreg_in21k" not in got  # 21k head
    assert "vit_base_patch16_224.augreg2_in21k_ft_in1k" in got
    assert not any("sam" in n for n in got)


def test_all_is_decided_by_head_not_name():
    from timm.models import get_pretrained_cfg

    everything = models.expand_model_specs(["all"])
    assert len(everything) > 1000
    assert "resnet50.a1_in1k" in everything and "vit_base_patch16_224.augreg_in21k" not in everything
    assert all(get_pretrained_cfg(n).num_classes == 1000 for n in everything[::50])
    assert "convnext_tiny.in12k" not in everything  # 11821-class head even though it is a convnext


def test_spec_file_and_comments(tmp_path):
    (tmp_path / "m.txt").write_text("# mine\nresnet18  # small\n\nconvnext_atto\n")
    assert models.expand_model_specs(["@m.txt"]) == ["resnet18.a1_in1k", "convnext_atto.d2_in1k"]


@pytest.mark.parametrize(("spec", "suggestion"), [("resnt50", "resnet50"), ("resnet50.a1_in1kk", "resnet50.a1_in1k")])
def test_unknown_names_suggest_close_ones(spec, suggestion):
    with pytest.raises(UnknownNameError) as info:
        models.expand_model_specs([spec])
    assert any(s.startswith(suggestion) for s in info.value.suggestions)


def test_non_1k_head_is_refused_with_a_clear_message():
    with pytest.raises(ModelSpecError, match="21843 classes.*not ImageNet-1k"):
        models.expand_model_specs(["vit_base_patch16_224.augreg_in21k"])


def test_label_maps_are_explicit_and_checked():
    assert models.resolve_label_map(1000).wnids == tuple(load_catalog().wnids)
    assert models.resolve_label_map(1001, label_offset=1).offset == 1
    with pytest.raises(ModelSpecError, match="label names"):
        models.resolve_label_map(1000, label_names=list(reversed(load_catalog().wnids)))
    with pytest.raises(ModelSpecError):
        models.resolve_label_map(10)


def test_data_config_matches_timm_model_config(tmp_path):
    from timm.data import resolve_model_data_config

    loaded = models.build_model("test_convnext.r160_in1k", weights={"test_convnext.r160_in1k": tiny_weights(tmp_path, "test_convnext")})
    expected = {k: list(v) if isinstance(v, tuple) else v for k, v in resolve_model_data_config(loaded.module, use_test_size=True).items()}
    assert loaded.data_config == expected == models.resolve_data_config("test_convnext.r160_in1k")
    info = loaded.model_info
    assert info["kind"] == "timm" and info["label_map"] == "imagenet-1k" and info["params"] > 0
    assert len(info["weights_sha256"]) == 64


def test_local_weights_load_and_wrong_weights_are_refused(tmp_path):
    import torch

    path = tiny_weights(tmp_path, "test_resnet", seed=3)
    loaded = models.build_model("test_resnet.r160_in1k", weights={"test_resnet.r160_in1k": path})
    assert torch.equal(loaded.module.fc.weight, torch.load(path, weights_only=True)["fc.weight"])
    wrong = tiny_weights(tmp_path, "test_convnext")
    with pytest.raises(ModelSpecError, match="does not fit architecture test_resnet"):
        models.build_model("test_resnet.r160_in1k", weights={"test_resnet.r160_in1k": wrong})


def test_registered_local_weights_make_up_all_in_local_context(tmp_path):
    spec = models.register_local_weights("test_resnet", tiny_weights(tmp_path, "test_resnet"))
    assert spec == "test_resnet.r160_in1k"
    with models.only_local_weights():
        assert models.expand_model_specs(["all"]) == [spec]
    assert len(models.expand_model_specs(["all"])) > 1000


def test_bundled_efficientnet_lite0_classifies_real_photos():
    import torch
    from timm.data import create_transform

    from laionet_bench.models.bundled import register_bundled_weights

    from .fakes.photos import real_photo

    assert "tf_efficientnet_lite0.in1k" in register_bundled_weights()
    loaded = models.build_model("tf_efficientnet_lite0.in1k")
    transform = create_transform(**loaded.data_config)
    catalog = load_catalog()
    photos = {"chelsea": {"n02123045", "n02123159", "n02124075"},  # tabby / tiger cat / Egyptian cat
              "coffee": {"n07920052", "n03063599", "n07930864"}}  # espresso / coffee mug / cup
    for name, accepted in photos.items():
        with torch.no_grad():
            logits = loaded.module(transform(real_photo(name))[None])[0]
        top = loaded.label_map.wnids[int(logits.argmax())]
        assert top in accepted, f"{name}: predicted {catalog.get(top).name}"


def _tiny_clip_config(tmp_path):
    config = {"embed_dim": 16,
              "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 1, "layers": 1}}
    path = tmp_path / "laionet-tiny-clip.json"
    path.write_text(json.dumps(config))
    return path


def test_openclip_zero_shot_uses_catalog_prompts(tmp_path):
    import open_clip
    import torch

    open_clip.add_model_config(_tiny_clip_config(tmp_path))
    torch.manual_seed(0)
    weights = tmp_path / "tiny.pt"
    torch.save(open_clip.create_model("laionet-tiny-clip").state_dict(), weights)
    spec = models.register_local_weights("openclip:laionet-tiny-clip/mine", weights)
    assert models.expand_model_specs([spec]) == [spec]
    loaded = models.build_model(spec)
    assert loaded.model_info["kind"] == "openclip" and loaded.label_map.name == "catalog-zero-shot"
    assert loaded.data_config["crop_pct"] == 1.0 and loaded.data_config["input_size"] == [3, 32, 32]
    model = open_clip.create_model("laionet-tiny-clip", pretrained=str(weights))
    tokenizer = open_clip.get_tokenizer("laionet-tiny-clip")
    with torch.no_grad():
        text = model.encode_text(tokenizer([c.query for c in load_catalog()][:3]))
        image = torch.randn(2, 3, 32, 32)
        expected = torch.nn.functional.normalize(model.encode_image(image), dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T
        got = loaded.module(image)
    assert got.shape == (2, 1000)
    np.testing.assert_allclose(got[:, :3].numpy() / 100, expected.numpy(), atol=1e-5)


def _tiny_clip(tmp_path, monkeypatch, **tag_cfg):
    """The tiny open_clip config with random weights, registered as a local tag ``laionet-tiny-clip/mine``."""
    import open_clip
    import torch

    open_clip.add_model_config(_tiny_clip_config(tmp_path))
    torch.manual_seed(0)
    weights = tmp_path / "tiny.pt"
    torch.save(open_clip.create_model("laionet-tiny-clip").state_dict(), weights)
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "laionet-tiny-clip", {"mine": {"file": str(weights), **tag_cfg}})
    return weights


@pytest.mark.parametrize("prompts", ["paper", "openai"])
def test_openclip_head_is_open_clips_own_zero_shot_classifier(tmp_path, monkeypatch, prompts):
    import open_clip
    import torch
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

    weights = _tiny_clip(tmp_path, monkeypatch)
    spec = models.with_prompts(models.expand_model_specs(["openclip:laionet-tiny-clip/mine"])[0], prompts)
    loaded = models.build_model(spec)
    model = open_clip.create_model("laionet-tiny-clip", pretrained=str(weights)).eval()
    names, templates = (([c.query for c in load_catalog()], ["{}"]) if prompts == "paper"
                        else (IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES))
    expected = open_clip.build_zero_shot_classifier(model, open_clip.get_tokenizer("laionet-tiny-clip"), names, templates)
    torch.testing.assert_close(loaded.module.classifier, expected.T, rtol=0, atol=1e-6)
    assert loaded.model_info["prompts"] == prompts and loaded.model_info["prompt_templates"] == len(templates)


def test_prompt_choice_is_part_of_the_run_identity(tmp_path, monkeypatch):
    from laionet_bench.evaluation.store import run_key

    _tiny_clip(tmp_path, monkeypatch)
    paper = models.expand_model_specs(["openclip:laionet-tiny-clip/mine@paper"])[0]
    openai = models.expand_model_specs(["openclip:laionet-tiny-clip/mine@openai"])[0]
    assert paper == "openclip:laionet-tiny-clip/mine" == models.with_prompts(paper, "paper")
    assert openai == "openclip:laionet-tiny-clip/mine@openai" == models.with_prompts(paper, "openai")
    assert models.with_prompts(openai, "paper") == openai and models.with_prompts("resnet18.a1_in1k", "openai") == "resnet18.a1_in1k"
    keys = {run_key(model=s, weights=models.weights_identity(s), data_config=models.resolve_data_config(s),
                    dtype="float32", dataset={"name": "x"})[0] for s in (paper, openai)}
    assert len(keys) == 2
    assert models.build_model(paper).label_map.name != models.build_model(openai).label_map.name
    with pytest.raises(ModelSpecError, match="prompts 'fancy' unknown"):
        models.expand_model_specs(["openclip:laionet-tiny-clip/mine@fancy"])


@pytest.mark.parametrize("resize_mode", ["squash", "shortest"])
def test_openclip_decoding_equals_open_clips_eval_transform(tmp_path, monkeypatch, resize_mode):
    import open_clip
    import torch
    from PIL import Image

    from laionet_bench.evaluation.inference import make_decoder

    _tiny_clip(tmp_path, monkeypatch, resize_mode=resize_mode, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    config = models.resolve_data_config("openclip:laionet-tiny-clip/mine")
    assert config["crop_mode"] == ("squash" if resize_mode == "squash" else "center")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 90, 3), dtype=np.uint8))
    expected = open_clip.create_model_and_transforms("laionet-tiny-clip", pretrained="mine")[2](image)
    pixels = make_decoder(config)(image).float() / 255
    got = (pixels - torch.tensor(config["mean"])[:, None, None]) / torch.tensor(config["std"])[:, None, None]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_openclip_resize_mode_without_timm_equivalent_is_refused(tmp_path, monkeypatch):
    _tiny_clip(tmp_path, monkeypatch, resize_mode="longest")
    with pytest.raises(ModelSpecError, match="resize_mode 'longest'"):
        models.resolve_data_config("openclip:laionet-tiny-clip/mine")
