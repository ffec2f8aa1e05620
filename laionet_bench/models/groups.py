"""Pretrain groups: what data and recipe a model saw before it was evaluated.

The leaderboard colours and splits models by group because the paper's findings depend on it (CLIP
zero-shot models lose far less on LAIONet than ImageNet-trained ones). Groups are read from the timm
pretrained tag (``arch.tag``: ``in21k_ft_in1k``, ``fb_swsl_ig1b_ft_in1k``, ``laion2b_ft_in12k_in1k`` …),
the architecture name (``deit_base_distilled_patch16_224``) and, when the tag says nothing about the
data, the number of classes of the pretrained head (``pretrained_cfg.num_classes``).

Rules, first match wins:

0. a model of the paper (:data:`~laionet_bench.models.sets.PAPER_MODELS`, by its spec) → its Fig.-1 group:
   ``1k``, ``pt22k-ft1k``, ``pt22k`` or ``zero-shot``, so evaluated and imported results of the paper's
   models show the paper's grouping;
1. open_clip zero-shot classifiers → ``clip-zs-laion`` / ``clip-zs-openai`` / ``clip-zs`` by pretrain tag;
   a timm head that is not an ImageNet head (0, 512, 768 … classes) → ``backbone``;
2. semi-supervised tags (``ssl``, ``swsl``, ``ssld``, Noisy Student ``ns_jft``) → ``semi-supervised``;
3. distillation (``dist`` tag token, ``distilled`` in the architecture) → ``distilled``;
4. weak supervision (``wsl``, ``swag``, ``ig1b``) → ``weakly-supervised``;
5. image–text pre-training (``clip``, ``openai``, ``laion*``, ``datacomp*``, ``dfn*``, ``metaclip*``,
   ``webli`` …) → ``clip-ft`` when fine-tuned, else ``backbone``;
6. self-supervised pre-training (``mae``, ``fcmae``, ``mim``, ``seer``, ``dino`` …) → ``ssl-ft`` / ``backbone``;
7. ImageNet-12k → ``in12k-ft`` when fine-tuned to 1k, else ``in12k`` (its own head);
8. ImageNet-21k/22k → ``in21k-ft`` when fine-tuned to 1k, else ``in21k`` (its own head);
9. ``in1k`` anywhere in the tag → ``in1k``;
10. otherwise by head size: 1000 → ``in1k``, an ImageNet-21k/12k head → ``in21k``/``in12k``, unknown
    → ``other``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .sets import paper_model_for_spec

__all__ = ["GROUPS", "PretrainGroup", "group_of", "is_zero_shot", "pretrain_group"]


@dataclass(frozen=True)
class PretrainGroup:
    """A pretrain group: short id used in every artefact, a label for legends, and what it means."""

    name: str
    label: str
    doc: str


#: Every group, in legend order.
GROUPS: dict[str, PretrainGroup] = {
    g.name: g
    for g in (
        PretrainGroup("1k", "paper: ImageNet-1k", "the paper's Fig.-1 group: HF checkpoints trained on ImageNet-1k"),
        PretrainGroup("pt22k-ft1k", "paper: ImageNet-22k → 1k",
                      "the paper's Fig.-1 group: HF checkpoints pre-trained on ImageNet-22k, fine-tuned on 1k"),
        PretrainGroup("pt22k", "paper: ImageNet-22k head", "the paper's Fig.-1 group: HF 22k heads, scored over the "
                      "logits whose label matches a class-file line"),
        PretrainGroup("zero-shot", "paper: CLIP zero-shot", "the paper's Fig.-1 group: CLIP ViT-B/32 zero-shot"),
        PretrainGroup("in1k", "ImageNet-1k", "trained on ImageNet-1k only"),
        PretrainGroup("in21k-ft", "ImageNet-21k → 1k", "pre-trained on ImageNet-21k/22k, fine-tuned on 1k"),
        PretrainGroup("in12k-ft", "ImageNet-12k → 1k", "pre-trained on timm's ImageNet-12k, fine-tuned on 1k"),
        PretrainGroup("clip-ft", "CLIP → fine-tuned", "image-text (CLIP-style) pre-training, fine-tuned on ImageNet"),
        PretrainGroup("ssl-ft", "self-supervised → fine-tuned", "MAE/MIM/SEER/DINO-style pre-training, fine-tuned"),
        PretrainGroup("semi-supervised", "semi-supervised", "SSL/SWSL (YFCC/IG), Noisy Student (JFT), SSLD"),
        PretrainGroup("weakly-supervised", "weakly supervised", "hashtag supervision (IG-1B WSL, SWAG), fine-tuned"),
        PretrainGroup("distilled", "distilled", "trained with a teacher (DeiT distillation, timm/Apple dist tags)"),
        PretrainGroup("in21k", "ImageNet-21k head", "ImageNet-21k/22k classifier, its head mapped onto 1k wnids"),
        PretrainGroup("in12k", "ImageNet-12k head", "ImageNet-12k classifier, its head mapped onto 1k wnids"),
        PretrainGroup("clip-zs-laion", "CLIP zero-shot (LAION)", "open_clip zero-shot, pre-trained on LAION"),
        PretrainGroup("clip-zs-openai", "CLIP zero-shot (OpenAI)", "open_clip zero-shot, OpenAI weights"),
        PretrainGroup("clip-zs", "CLIP zero-shot (other data)", "open_clip zero-shot, other image-text data"),
        PretrainGroup("backbone", "no ImageNet head", "feature extractor without an ImageNet classifier"),
        PretrainGroup("other", "other", "the tag and head size do not say"),
    )
}

_SEMI = {"ssl", "swsl", "ssld", "semi"}
_WEAK = {"wsl", "swag", "ig1b", "ig3b"}
_IMAGE_TEXT_PREFIXES = ("clip", "openai", "laion", "datacomp", "dfn", "metaclip", "webli", "merged2b", "mclip",
                        "siglip", "yfcc15m", "cc12m")
_SELF_SUP_PREFIXES = ("mae", "fcmae", "mim", "seer", "dino", "ijepa", "lvd", "eupe", "beitv2")
_IN21K = ("in21k", "in22k", "inw21k")
_IN21K_HEADS = {21841, 21842, 21843, 11221, 19168}
_IN12K_HEADS = {11821}
_IMAGENET_HEADS = {1000} | _IN21K_HEADS | _IN12K_HEADS


def _tokens(tag: str) -> list[str]:
    return [t for t in tag.lower().replace("-", "_").split("_") if t]


def _fine_tuned_to_in1k(tokens: list[str]) -> bool:
    """``…_ft_…in1k…``: the classifier after the last fine-tune is the 1k head."""
    if "ft" not in tokens:
        return False
    last_ft = len(tokens) - 1 - tokens[::-1].index("ft")
    return "in1k" in tokens[last_ft + 1:]


def _any_prefix(tokens: list[str], prefixes: tuple[str, ...]) -> bool:
    return any(t.startswith(prefixes) for t in tokens)


def _zero_shot_group(pretrained_tag: str) -> str:
    tokens = _tokens(pretrained_tag)
    if "openai" in tokens:
        return "clip-zs-openai"
    if _any_prefix(tokens, ("laion",)):
        return "clip-zs-laion"
    return "clip-zs"


def _by_head_size(num_classes: int | None) -> str:
    if num_classes == 1000:
        return "in1k"
    if num_classes in _IN21K_HEADS:
        return "in21k"
    if num_classes in _IN12K_HEADS:
        return "in12k"
    return "other"


def _has_classifier(tokens: list[str], num_classes: int | None) -> bool:
    """A non-ImageNet pre-training fine-tuned to an ImageNet classifier (else a bare backbone)."""
    return num_classes is not None or "ft" in tokens


def pretrain_group(
    architecture: str,
    tag: str | None = None,
    *,
    kind: str = "timm",
    num_classes: int | None = None,
) -> str:
    """The pretrain group id (a key of :data:`GROUPS`) of a model.

    Args:
        architecture: timm architecture (``resnet50``) or open_clip model name (``ViT-B-32``).
        tag: timm pretrained tag (``fb_swsl_ig1b_ft_in1k``) or open_clip pretrained tag (``laion2b_s34b_b79k``).
        kind: ``"timm"`` or ``"openclip"`` (open_clip models are zero-shot classifiers).
        num_classes: classes of the pretrained head, used when the tag names no dataset.
    """
    if kind == "openclip":
        return _zero_shot_group(tag or "")
    if num_classes is not None and num_classes not in _IMAGENET_HEADS:
        return "backbone"
    tokens = _tokens(tag or "")
    if _SEMI & set(tokens) or ("ns" in tokens and "jft" in tokens):
        return "semi-supervised"
    if "dist" in tokens or "distilled" in tokens or "distilled" in architecture.lower():
        return "distilled"
    if _WEAK & set(tokens):
        return "weakly-supervised"
    if _any_prefix(tokens, _IMAGE_TEXT_PREFIXES):
        return "clip-ft" if _has_classifier(tokens, num_classes) else "backbone"
    if _any_prefix(tokens, _SELF_SUP_PREFIXES):
        return "ssl-ft" if _has_classifier(tokens, num_classes) else "backbone"
    if "in12k" in tokens:
        return "in12k-ft" if _fine_tuned_to_in1k(tokens) else "in12k"
    if any(t.startswith(_IN21K) for t in tokens):
        return "in21k-ft" if _fine_tuned_to_in1k(tokens) else "in21k"
    if "in1k" in tokens:
        return "in1k"
    return _by_head_size(num_classes)


def group_of(model_info: Mapping[str, Any], model: str = "") -> str:
    """The group of an evaluated model from its result's ``model_info``.

    An explicit ``model_info["pretrain_group"]`` wins (a user can override a wrong guess); otherwise
    the group is derived from ``architecture`` / ``pretrained_tag`` / ``kind`` / ``num_classes``, falling
    back to splitting ``model`` (``arch.tag``).
    """
    explicit = model_info.get("pretrain_group")
    if explicit in GROUPS:
        return explicit
    paper = paper_model_for_spec(model)
    if paper is not None:
        return paper.group
    arch, _, tag = model.partition(".")
    architecture = model_info.get("architecture") or arch
    pretrained_tag = model_info.get("pretrained_tag") or tag or None
    num_classes = model_info.get("num_classes")
    return pretrain_group(
        architecture,
        pretrained_tag,
        kind=model_info.get("kind") or "timm",
        num_classes=int(num_classes) if isinstance(num_classes, int | float) else None,
    )


def is_zero_shot(group: str) -> bool:
    """Zero-shot CLIP groups are left out of the effective-robustness reference fit."""
    return group.startswith("clip-zs") or group == "zero-shot"
