"""Image encoders for intra-class similarity: open_clip image towers and timm pooled features.

An encoder spec names the source and the model in one string, parsed by :func:`parse_encoder_spec`:

* ``openclip:ARCH/TAG`` — the image tower of an open_clip model, e.g. ``openclip:ViT-B-32/openai``
  (the paper's encoder, SPEC §5); ``openclip:ARCH`` with ``weights=FILE`` loads a local checkpoint.
* ``timm:NAME`` — a timm model's pooled features (``num_classes=0``), e.g. ``timm:vit_base_patch16_224``
  (the paper's Appendix H); ``weights=FILE`` loads a local checkpoint through ``pretrained_cfg_overlay``.

Each encoder brings its own preprocessing (open_clip's eval transform; timm's
``resolve_model_data_config`` + ``create_transform``), and :meth:`Encoder.encode` returns
L2-normalised float32 rows. Checkpoints are read with ``torch.load(weights_only=True)`` by both
libraries; nothing is unpickled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import display_path, sha256_file
from ..errors import ConfigError, ModelSpecError
from ..evaluation.options import AMP_DTYPES
from ..hub.remote_code import refuse_open_clip_custom_code
from ..models.registry import check_weights_file

__all__ = ["DEFAULT_ENCODER", "Encoder", "EncoderSpec", "create_encoder", "parse_encoder_spec"]

logger = logging.getLogger(__name__)

#: The paper's encoder: CLIP ViT-B/32 with OpenAI weights (SPEC §5).
DEFAULT_ENCODER = "openclip:ViT-B-32/openai"
SOURCES = ("openclip", "timm")


@dataclass(frozen=True)
class EncoderSpec:
    """A parsed encoder spec: ``source:name[/tag]``."""

    source: str  # "openclip" or "timm"
    name: str  # open_clip architecture or timm model name (a timm ``.tag`` stays in the name)
    tag: str | None = None  # open_clip pretrained tag, e.g. "openai"

    def __str__(self) -> str:
        return f"{self.source}:{self.name}" + (f"/{self.tag}" if self.tag else "")


def parse_encoder_spec(spec: str) -> EncoderSpec:
    """Split ``openclip:ARCH[/TAG]`` or ``timm:NAME`` into an :class:`EncoderSpec`."""
    source, sep, rest = spec.partition(":")
    if not sep or source not in SOURCES or not rest:
        raise ModelSpecError(
            f"encoder {spec!r} is not 'openclip:ARCH/TAG' or 'timm:NAME' (e.g. {DEFAULT_ENCODER!r}, "
            "'timm:vit_base_patch16_224.augreg_in21k')"
        )
    if source == "timm" or rest.startswith("hf-hub:"):  # open_clip Hub models carry their weights
        return EncoderSpec(source, rest)
    name, _, tag = rest.partition("/")
    if not name:
        raise ModelSpecError(f"encoder {spec!r}: the open_clip architecture is empty")
    return EncoderSpec("openclip", name, tag or None)


@dataclass
class Encoder:
    """A ready image encoder: preprocessing, the network, and what identifies its weights."""

    spec: EncoderSpec
    model: Any  # torch.nn.Module mapping a (B, 3, H, W) batch to (B, D) features
    transform: Callable[[Any], Any]  # PIL.Image (RGB) -> (3, H, W) tensor
    weights_id: str  # sha256 of the local file, the pretrained tag, or "random-init"
    device: str = "cpu"
    amp: str | None = None  # None (float32), "bf16" or "fp16" autocast, as the evaluation engine's --amp
    info: dict[str, Any] = field(default_factory=dict)  # preprocessing and model facts, recorded in outputs

    @property
    def dtype(self) -> str:
        return {None: "float32", "bf16": "bfloat16-autocast", "fp16": "float16-autocast"}[self.amp]

    def encode(self, batch) -> np.ndarray:
        """Embed a preprocessed batch; rows are L2-normalised float32 (zero rows stay zero)."""
        import torch

        device_type = torch.device(self.device).type
        amp_dtype = torch.float16 if self.amp == "fp16" else torch.bfloat16
        with torch.inference_mode(), torch.autocast(device_type, dtype=amp_dtype, enabled=self.amp is not None):
            features = self.model(batch.to(self.device, non_blocking=True))
        features = features.float()
        features = torch.nn.functional.normalize(features, dim=-1)
        return features.cpu().numpy().astype(np.float32, copy=False)


def _weights_id(weights: Path | None, tag: str | None, random_init: bool) -> str:
    if random_init:
        return "random-init"
    if weights is not None:
        return "sha256:" + sha256_file(weights)
    return f"tag:{tag}"


def _create_openclip(spec: EncoderSpec, weights: Path | None, device: str, random_init: bool):
    import open_clip

    pretrained = None if random_init else (str(weights) if weights is not None else spec.tag)
    if pretrained is None and not random_init:
        raise ModelSpecError(
            f"encoder {spec}: no weights; give a tag (e.g. 'openclip:{spec.name}/openai') or weights=FILE"
        )
    refuse_open_clip_custom_code(spec.name, spec=f"encoder {spec}")  # an hf-hub: model may name an HF text tower
    try:
        model, _, transform = open_clip.create_model_and_transforms(spec.name, pretrained=pretrained, device=device)
    except RuntimeError as exc:
        raise ModelSpecError(
            f"encoder {spec}: open_clip could not build it ({exc}); see open_clip.list_pretrained()"
        ) from None
    visual = model.visual.eval()  # only the image tower is needed; the text tower is dropped
    image_size = open_clip.get_model_config(spec.name)["vision_cfg"].get("image_size")
    info = {"image_size": list(image_size) if isinstance(image_size, (list, tuple)) else image_size,
            "transform": repr(transform)}
    return visual, transform, info


def _create_timm(spec: EncoderSpec, weights: Path | None, device: str, random_init: bool):
    import timm
    from timm.data import create_transform, resolve_model_data_config

    kwargs: dict[str, Any] = {"num_classes": 0, "pretrained": not random_init}
    if weights is not None and not random_init:
        kwargs["pretrained_cfg_overlay"] = {"file": str(weights)}
    try:
        model = timm.create_model(spec.name, **kwargs)
    except (RuntimeError, ValueError) as exc:
        raise ModelSpecError(f"encoder {spec}: timm could not build it ({exc}); see timm.list_models()") from None
    model = model.to(device).eval()
    data_config = resolve_model_data_config(model)
    transform = create_transform(**data_config, is_training=False)
    info = {"data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()},
            "transform": repr(transform)}
    return model, transform, info


def create_encoder(
    spec: str = DEFAULT_ENCODER,
    *,
    weights: str | Path | None = None,
    device: str = "cpu",
    amp: str | None = None,
    random_init: bool = False,
) -> Encoder:
    """Build an :class:`Encoder` from a spec string.

    Args:
        spec: ``openclip:ARCH/TAG`` or ``timm:NAME``.
        weights: a local checkpoint; overrides the tag (open_clip) or the pretrained source (timm).
        device: torch device string.
        amp: ``"bf16"`` or ``"fp16"`` autocast (None: float32), as ``run --amp``; embeddings are still
            returned as float32.
        random_init: no pretrained weights (benchmarks only); the weights id says so.
    """
    import torch

    if amp not in (None, *AMP_DTYPES):
        raise ConfigError(f"amp must be one of {AMP_DTYPES} (or unset for float32), got {amp!r}")
    parsed = parse_encoder_spec(spec)
    weights_path = None if weights is None else check_weights_file(weights, what="encoder weights")
    if random_init:
        torch.manual_seed(0)  # a reproducible random network, so its cache key stays meaningful
    build = _create_openclip if parsed.source == "openclip" else _create_timm
    model, transform, info = build(parsed, weights_path, device, random_init)
    info["weights"] = display_path(weights_path) if weights_path else None  # no local absolute path in results
    logger.info("encoder %s ready on %s", parsed, device)
    return Encoder(
        spec=parsed,
        model=model,
        transform=transform,
        weights_id=_weights_id(weights_path, parsed.tag, random_init),
        device=device,
        amp=amp,
        info=info,
    )
