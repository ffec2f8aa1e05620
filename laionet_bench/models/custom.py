"""A user's own ``torch.nn.Module`` as a model, as RobustBench's ``benchmark(model, ...)`` takes one.

Pass a :class:`CustomModel` (or a bare module with a 1000-way ImageNet head in timm/torchvision order)
among the models of :func:`~laionet_bench.evaluation.evaluator.evaluate` or the engine's ``run_models``.
It is registered for the session under a spec ``custom:NAME@HASH``, where ``HASH`` starts the sha256 of
its state dict and class list, and from then on it is a model like any other: same engine (its
preprocessing group, the decode once per group, its own mean/std), same store (the run key holds the
spec, so the state dict's hash, and the full digest as its weights identity).

* ``classes``: the wnids of its logits, in logit order (``classes[i]`` is logit ``i``); any subset of the
  1000 ImageNet-1k wnids. A row whose class the head lacks counts as wrong.
* ``transform``: a torchvision eval transform built from ``Resize`` / ``CenterCrop`` / ``ToTensor``
  (or ``PILToTensor`` + ``ConvertImageDtype``) / ``Normalize``, a timm-style data config mapping, or None
  (timm's ``resolve_data_config`` for the module: a timm model's own config, else timm's defaults). The
  transform is translated into the engine's data config (:func:`transform_data_config`), so its pixels
  come from the engine's decoder; a step the decoder cannot reproduce is refused by name.

The module is copied to each device it runs on (the caller's module is left where it is, in its mode).
Custom models live in this process: a remote executor cannot rebuild them from their spec.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._io import slug
from ..catalog import canonical_wnid, load_catalog
from ..errors import ModelSpecError

__all__ = ["CUSTOM_PREFIX", "CustomModel", "as_model_specs", "build_custom", "custom_data_config",
           "custom_counts", "custom_weights_identity", "register_custom_model", "state_dict_sha256", "transform_data_config"]

CUSTOM_PREFIX = "custom:"

_REGISTERED: dict[str, _Registered] = {}
_TO_TENSOR = {"ToTensor", "MaybeToTensor", "PILToTensor", "MaybePILToTensor", "ConvertImageDtype", "ToImage", "ToDtype"}


@dataclass
class CustomModel:
    """A user's classifier: the module, the wnid of each logit, and its eval preprocessing."""

    module: Any  # torch.nn.Module mapping (batch, 3, H, W) float images to (batch, ≥ len(classes)) logits
    classes: Sequence[str] | None = None  # wnids in logit order; None: the 1000 catalogue wnids (timm order)
    transform: Any = None  # torchvision transform, timm data config mapping, or None (timm defaults)
    name: str | None = None  # shown in results; default: the module's class name


@dataclass(frozen=True)
class _Registered:
    module: Any
    wnids: tuple[str, ...]
    data_config: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""


def state_dict_sha256(module: Any) -> str:
    """sha256 over the module's state dict: every entry's name, dtype, shape and bytes, in name order."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        value = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{value.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _wnids(classes: Sequence[str] | None) -> tuple[str, ...]:
    catalog = load_catalog()
    if classes is None:
        return tuple(catalog.wnids)
    if isinstance(classes, str) or not len(classes):
        raise ModelSpecError("custom model classes must be a non-empty list of wnids, one per logit in logit order")
    wnids = tuple(canonical_wnid(str(w)) for w in classes)
    unknown = [w for w in wnids if w not in catalog]
    if unknown:
        raise ModelSpecError(f"custom model classes: {', '.join(unknown[:3])} {'is' if len(unknown) == 1 else 'are'} not "
                             "ImageNet-1k wnids; give the wnid of each logit (e.g. n01440764), in logit order")
    if len(set(wnids)) != len(wnids):
        raise ModelSpecError("custom model classes name a wnid twice; give each logit's wnid once, in logit order")
    return wnids


def _interpolation(mode: Any) -> str:
    return str(getattr(mode, "value", mode)).lower()


def transform_data_config(transform: Any, *, module: Any = None) -> dict[str, Any]:
    """The engine data config equal to ``transform`` (see the module docstring for what is accepted)."""
    if transform is None:
        from timm.data import resolve_data_config

        config = resolve_data_config({}, model=module, use_test_size=True)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
    if isinstance(transform, Mapping):
        missing = {"input_size", "interpolation", "crop_pct", "mean", "std"} - set(transform)
        if missing:
            raise ModelSpecError(f"custom model data config lacks {', '.join(sorted(missing))}")
        return {"crop_mode": "center", **{k: list(v) if isinstance(v, tuple) else v for k, v in transform.items()}}
    return _from_steps(list(getattr(transform, "transforms", [transform])))


def _from_steps(steps: list[Any]) -> dict[str, Any]:
    from .hf import exact_crop_pct

    resize = crop = None
    mean, std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    for step in steps:
        kind = type(step).__name__
        if kind == "Resize" and resize is None and crop is None:
            resize = step
        elif kind == "CenterCrop" and crop is None:
            crop = step
        elif kind == "Normalize":
            mean, std = [float(m) for m in step.mean], [float(s) for s in step.std]
        elif kind not in _TO_TENSOR:
            raise ModelSpecError(f"custom model transform step {step!r} cannot be reproduced by the engine's decoder; "
                                 "use Resize, CenterCrop, ToTensor and Normalize, or pass a timm data config")
    if resize is None:
        raise ModelSpecError("custom model transform has no Resize: images of different sizes cannot be batched")
    size = [resize.size] if isinstance(resize.size, int) else list(resize.size)
    crop_size = None if crop is None else [int(s) for s in crop.size] * (3 - len(crop.size))  # (s,) means (s, s)
    if len(size) == 1:  # shortest edge, then a square crop
        if crop_size is None or crop_size[0] != crop_size[1]:
            raise ModelSpecError("custom model transform resizes the shortest edge without a square CenterCrop: "
                                 "the images would vary in size")
        geometry = (crop_size, exact_crop_pct(crop_size[0], size[0], "custom model"), "center")
    else:
        crop_size = crop_size or size
        pct = exact_crop_pct(crop_size[0], size[0], "custom model")
        if int(crop_size[1] / pct) != size[1]:
            raise ModelSpecError(f"custom model transform crops {crop_size} out of {size}: height and width by different fractions")
        geometry = (crop_size, pct, "squash")
    return {"input_size": [3, *geometry[0]], "interpolation": _interpolation(resize.interpolation), "crop_pct": geometry[1],
            "crop_mode": geometry[2], "mean": mean, "std": std}


def register_custom_model(model: CustomModel | Any, *, classes: Sequence[str] | None = None, transform: Any = None,
                          name: str | None = None) -> str:
    """Register ``model`` (a :class:`CustomModel` or a module) for this session; returns its spec ``custom:NAME@HASH``."""
    import torch

    if not isinstance(model, CustomModel):
        model = CustomModel(model, classes=classes, transform=transform, name=name)
    if not isinstance(model.module, torch.nn.Module):
        raise ModelSpecError(f"a custom model must be a torch.nn.Module, got {type(model.module).__name__}")
    wnids = _wnids(model.classes)
    data_config = transform_data_config(model.transform, module=model.module)
    weights = state_dict_sha256(model.module)
    key = hashlib.sha256(f"{weights}|{','.join(wnids)}".encode()).hexdigest()
    spec = f"{CUSTOM_PREFIX}{slug(model.name or type(model.module).__name__.lower())}@{key[:12]}"
    _REGISTERED[spec] = _Registered(model.module, wnids, data_config, weights)
    return spec


def as_model_specs(models: Sequence[Any]) -> list[Any]:
    """``models`` with every :class:`CustomModel` or ``torch.nn.Module`` replaced by its registered spec."""
    if isinstance(models, str):
        return [models]
    out = []
    for model in models:
        if isinstance(model, str):
            out.append(model)
        else:
            out.append(register_custom_model(model))
    return out


def _registered(spec: str) -> _Registered:
    entry = _REGISTERED.get(spec)
    if entry is None:
        raise ModelSpecError(f"{spec}: no custom model with this spec in this process; pass the module itself "
                             "(CustomModel(module, classes=..., transform=...)) to evaluate() or run_models()")
    return entry


def custom_data_config(spec: str) -> dict[str, Any]:
    return dict(_registered(spec).data_config)


def custom_weights_identity(spec: str) -> dict[str, Any]:
    """The state dict's full sha256: the same weights give the same run key, any change a new one."""
    return {"weights": spec.partition("@")[0], "weights_sha256": _registered(spec).sha256}


def custom_counts(spec: str) -> tuple[int, int]:
    """(parameters, buffers) of the registered module, for memory footprints."""
    module = _registered(spec).module
    return int(sum(p.numel() for p in module.parameters())), int(sum(b.numel() for b in module.buffers()))


def build_custom(spec: str, *, device: str) -> tuple[Any, tuple[str, ...], dict[str, Any], dict[str, Any]]:
    """``(module copy on device in eval mode, wnids, data_config, model_info)`` of a registered spec."""
    entry = _registered(spec)
    module = copy.deepcopy(entry.module).to(device).eval()
    params, _ = custom_counts(spec)
    info = {"architecture": type(entry.module).__name__, "pretrained_tag": None, "kind": "custom", "params": params,
            "num_classes": len(entry.wnids), "crop_mode": entry.data_config.get("crop_mode", "center")}
    return module, entry.wnids, dict(entry.data_config), info
