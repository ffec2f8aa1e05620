"""Pretrain groups from real timm tags, heads and open_clip tags."""

from __future__ import annotations

import pytest
import timm
from timm.models import get_pretrained_cfg

from laionet_bench.models.groups import GROUPS, group_of, is_zero_shot, pretrain_group

# (real timm pretrained name, expected group)
KNOWN = [
    ("resnet50.a1_in1k", "in1k"),
    ("resnet18.tv_in1k", "in1k"),
    ("tf_efficientnet_lite0.in1k", "in1k"),
    ("tf_efficientnet_b0.ap_in1k", "in1k"),
    ("vit_base_patch16_224.augreg_in21k_ft_in1k", "in21k-ft"),
    ("convnext_large.fb_in22k_ft_in1k_384", "in21k-ft"),
    ("beit_large_patch16_384.in22k_ft_in22k_in1k", "in21k-ft"),
    ("swin_base_patch4_window7_224.ms_in22k_ft_in1k", "in21k-ft"),
    ("vit_base_patch16_224.augreg_in21k", "in21k"),
    ("convnext_base.fb_in22k", "in21k"),
    ("swin_base_patch4_window7_224.ms_in22k", "in21k"),
    ("convnext_nano.in12k_ft_in1k", "in12k-ft"),
    ("convnext_nano.in12k", "in12k"),
    ("vit_base_patch16_clip_224.openai_ft_in1k", "clip-ft"),
    ("vit_base_patch16_clip_224.laion2b_ft_in12k_in1k", "clip-ft"),
    ("convnext_base.clip_laion2b_augreg_ft_in1k", "clip-ft"),
    ("vit_base_patch16_clip_224.openai", "backbone"),
    ("vit_base_patch14_dinov2.lvd142m", "backbone"),
    ("deit_base_distilled_patch16_224.fb_in1k", "distilled"),
    ("levit_128.fb_dist_in1k", "distilled"),
    ("resnet50.fb_ssl_yfcc100m_ft_in1k", "semi-supervised"),
    ("resnet50.fb_swsl_ig1b_ft_in1k", "semi-supervised"),
    ("tf_efficientnet_b0.ns_jft_in1k", "semi-supervised"),
    ("resnext101_32x8d.fb_wsl_ig1b_ft_in1k", "weakly-supervised"),
    ("vit_base_patch16_224.mae", "backbone"),
    ("convnextv2_base.fcmae_ft_in1k", "ssl-ft"),
    ("convnextv2_base.fcmae_ft_in22k_in1k", "ssl-ft"),
    ("regnety_320.seer_ft_in1k", "ssl-ft"),
]


@pytest.mark.parametrize(("name", "expected"), KNOWN)
def test_known_timm_tags(name, expected):
    assert name in timm.list_pretrained(name)  # the table uses real names
    arch, _, tag = name.partition(".")
    assert pretrain_group(arch, tag, num_classes=get_pretrained_cfg(name).num_classes) == expected


def test_every_timm_pretrained_tag_gets_a_consistent_group():
    heads = {"in21k", "in12k"}
    for name in timm.list_pretrained():
        arch, _, tag = name.partition(".")
        num_classes = get_pretrained_cfg(name).num_classes
        group = pretrain_group(arch, tag, num_classes=num_classes)
        assert group in GROUPS, name
        if num_classes == 1000:  # an ImageNet-1k classifier is never a bare backbone or a 21k/12k head
            assert group not in heads | {"backbone", "other"}, name
        elif group in heads:
            assert num_classes in (21841, 21842, 21843, 11221, 19168, 11821), name
        else:
            assert group in {"backbone", "clip-ft", "ssl-ft", "distilled"}, (name, group)


@pytest.mark.parametrize(("tag", "expected"), [
    ("laion2b_s34b_b79k", "clip-zs-laion"), ("laion400m_e32", "clip-zs-laion"), ("openai", "clip-zs-openai"),
    ("datacomp_xl_s13b_b90k", "clip-zs"), (None, "clip-zs"),
])
def test_open_clip_zero_shot_groups(tag, expected):
    assert pretrain_group("ViT-B-32", tag, kind="openclip", num_classes=1000) == expected
    assert is_zero_shot(expected)


def test_without_a_tag_the_head_size_decides():
    assert pretrain_group("my_resnet", None, num_classes=1000) == "in1k"
    assert pretrain_group("my_resnet", None, num_classes=21843) == "in21k"
    assert pretrain_group("my_resnet", None, num_classes=512) == "backbone"
    assert pretrain_group("my_resnet", None) == "other"


def test_group_of_model_info_prefers_an_explicit_group_then_derives():
    assert group_of({"pretrain_group": "distilled", "pretrained_tag": "a1_in1k"}, "resnet50.a1_in1k") == "distilled"
    assert group_of({"architecture": "resnet50", "pretrained_tag": "fb_swsl_ig1b_ft_in1k", "num_classes": 1000},
                    "resnet50.fb_swsl_ig1b_ft_in1k") == "semi-supervised"
    assert group_of({}, "vit_base_patch16_224.augreg_in21k_ft_in1k") == "in21k-ft"  # split from the spec
    assert group_of({"kind": "openclip", "pretrained_tag": "openai"}, "ViT-B-32/openai") == "clip-zs-openai"
    assert not is_zero_shot("in1k")
