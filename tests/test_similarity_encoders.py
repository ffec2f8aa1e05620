"""open_clip and timm encoders built offline from weights made in the test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from laionet_bench.errors import ConfigError, ModelSpecError
from laionet_bench.similarity.encoders import EncoderSpec, create_encoder, parse_encoder_spec

from .fakes.similarity import TINY_CLIP, make_tiny_clip


@pytest.fixture(scope="module")
def tiny_clip_weights(tmp_path_factory):
    """A 1-layer open_clip config registered with open_clip, and random weights saved to a file."""
    return make_tiny_clip(tmp_path_factory.mktemp("openclip"))


@pytest.fixture(scope="module")
def photos():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, size=(40 + 7 * i, 48, 3), dtype=np.uint8), "RGB") for i in range(3)]


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("openclip:ViT-B-32/openai", EncoderSpec("openclip", "ViT-B-32", "openai")),
        ("openclip:ViT-B-32", EncoderSpec("openclip", "ViT-B-32", None)),
        ("openclip:hf-hub:timm/ViT-B-16-SigLIP", EncoderSpec("openclip", "hf-hub:timm/ViT-B-16-SigLIP")),
        ("timm:vit_base_patch16_224.augreg_in21k", EncoderSpec("timm", "vit_base_patch16_224.augreg_in21k")),
    ],
)
def test_parse_encoder_spec(spec, parsed):
    assert parse_encoder_spec(spec) == parsed and str(parsed) == spec


@pytest.mark.parametrize("spec", ["ViT-B-32", "clip:ViT-B-32", "timm:", "openclip:/openai"])
def test_bad_encoder_specs_say_what_to_type(spec):
    with pytest.raises(ModelSpecError, match="openclip:ARCH/TAG|architecture is empty"):
        parse_encoder_spec(spec)


def test_openclip_local_weights_give_the_image_tower_normalised(tiny_clip_weights, photos):
    path, reference = tiny_clip_weights
    encoder = create_encoder(f"openclip:{TINY_CLIP}", weights=path)
    batch = torch.stack([encoder.transform(p) for p in photos])
    assert batch.shape == (3, 3, 32, 32)
    emb = encoder.encode(batch)
    assert emb.dtype == np.float32 and emb.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(reference.encode_image(batch), dim=-1).numpy()
    np.testing.assert_allclose(emb, expected, atol=1e-5)
    assert encoder.weights_id.startswith("sha256:") and len(encoder.weights_id) == 7 + 64


def test_openclip_without_tag_or_weights_is_refused(tiny_clip_weights):
    with pytest.raises(ModelSpecError, match="no weights"):
        create_encoder(f"openclip:{TINY_CLIP}")


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(ModelSpecError, match="does not exist"):
        create_encoder("timm:test_vit", weights=tmp_path / "nope.pt")


@pytest.mark.parametrize("name", ["test_vit", "test_efficientnet"])
def test_timm_pooled_features_from_a_local_file(tmp_path, photos, name):
    import timm

    torch.manual_seed(1)
    source = timm.create_model(name, pretrained=False).eval()  # with its classifier, as a checkpoint has
    path = tmp_path / f"{name}.pth"
    torch.save(source.state_dict(), path)
    encoder = create_encoder(f"timm:{name}", weights=path)
    size = encoder.info["data_config"]["input_size"]
    batch = torch.stack([encoder.transform(p) for p in photos])
    assert tuple(batch.shape[1:]) == tuple(size)
    emb = encoder.encode(batch)
    with torch.no_grad():
        pooled = source.forward_head(source.forward_features(batch), pre_logits=True)
    expected = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    assert emb.shape == (3, source.num_features)
    np.testing.assert_allclose(emb, expected, atol=1e-5)


def test_timm_amp_still_returns_float32_unit_rows(tmp_path, photos):
    encoder = create_encoder("timm:test_vit", random_init=True, amp="bf16")
    emb = encoder.encode(torch.stack([encoder.transform(p) for p in photos]))
    assert emb.dtype == np.float32 and encoder.weights_id == "random-init" and encoder.dtype == "bfloat16-autocast"
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-3)


def test_amp_takes_run_dtypes_only():
    with pytest.raises(ConfigError, match="amp must be one of"):
        create_encoder("timm:test_vit", random_init=True, amp=True)
