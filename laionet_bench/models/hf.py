"""Hugging Face transformers image classifiers as models: ``hf:ORG/NAME[@REVISION]`` and ``hf:/local/dir``.

The reference evaluates 29 transformers checkpoints, each with its own image processor; this module lets
the same checkpoints run in the harness's engine beside timm and open_clip models:

* **Loading.** ``AutoModelForImageClassification`` and ``AutoImageProcessor`` (its PIL backend: the
  processors the reference ran were PIL-based). ``hf:ORG/NAME`` resolves through huggingface_hub's cache,
  so ``HF_HUB_OFFLINE=1`` works once a checkpoint is cached; a checkpoint that is not cached there fails
  with one line saying how to get it. Weights load through transformers (safetensors first; its
  ``torch.load`` is ``weights_only``). A checkpoint that brings its own code (an ``auto_map`` in
  ``config.json`` or ``preprocessor_config.json``) is refused before transformers reads it, and every load
  passes ``trust_remote_code=False`` (:mod:`laionet_bench.hub.remote_code`).
* **Preprocessing.** :func:`processor_data_config` translates the processor (resize, crop, resample,
  rescale, mean/std) into the engine's timm-style data config, so HF models decode once per group with
  every model whose pixels agree (:func:`~.registry.preprocess_key`). HF crops with floor offsets where
  torchvision rounds half to even; the config says ``crop_offset: floor`` and the engine's decoder crops
  that way, so the pixels are the processor's own. The processor's class and settings are recorded
  under ``hf_processor``.
* **Labels.** Two rules map ``config.id2label`` to wnids (:func:`hf_label_rule`):

  - ``reference-lemmas`` — the reference's rule: each label with ``_`` → space must equal a line of the
    reference's class file (``"tench, Tinca tinca"``) exactly; unmatched logits are dropped and top-k is
    taken over the matched ones (so ≤ 999 classes; both crane logits map to the bird crane, as there).
    Used under ``protocol == "official"``, and for every head that is not a 1000-way ImageNet head (the
    22k heads of the paper's ``pt22k`` group), which no other rule can score.
  - ``imagenet-1k`` — otherwise: a 1000-way head whose label ``i`` names catalogue class ``i`` (compared
    in :func:`~laionet_bench.catalog.normalize_text` form), checked label by label; a mismatch is refused.

  The rule is part of every run key, so predictions of the two rules never mix.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .. import _io
from ..catalog import canonical_wnid, load_catalog, normalize_text, read_class_file
from ..errors import MissingDependencyError, ModelSpecError
from ..hub._errors import hub_offline
from ..hub.remote_code import IMAGE_CLASSIFIER_FILES, refuse_custom_code

__all__ = ["HF_PREFIX", "HFSource", "build_hf", "cached_commit", "exact_crop_pct", "hf_data_config", "hf_label_map", "hf_label_rule",
           "hf_weights_identity", "meta_hf_model", "parse_hf_spec", "processor_data_config", "reference_lemma_columns"]

HF_PREFIX = "hf:"
#: PIL resample codes (``PILImageResampling``) → timm interpolation names.
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


@dataclass(frozen=True)
class HFSource:
    """Where an ``hf:`` spec's checkpoint lives: a Hub repo id (with revision) or a local folder."""

    spec: str
    location: str  # repo id, or the folder's absolute path
    revision: str | None = None
    local: bool = False


def parse_hf_spec(spec: str) -> HFSource:
    """``hf:ORG/NAME[@REVISION]`` or ``hf:/local/dir`` (``hf:./dir``, ``hf:~/dir``) → :class:`HFSource`.

    The one parser of ``hf:`` specs; a local folder is made absolute, so the canonical spec is the same
    from any working directory.
    """
    body = spec[len(HF_PREFIX):].strip()
    if body.startswith(("/", ".", "~")):
        folder = Path(body).expanduser().resolve()
        if not (folder / "config.json").is_file():
            raise ModelSpecError(f"{spec}: {folder} has no config.json; pass a folder written by "
                                 "save_pretrained (model + image processor) or a Hub id hf:ORG/NAME")
        return HFSource(f"{HF_PREFIX}{folder}", str(folder), None, True)
    repo, _, revision = body.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ModelSpecError(f"HF spec {spec!r} must look like 'hf:ORG/NAME', 'hf:ORG/NAME@REVISION' or "
                             "'hf:/local/dir', e.g. hf:microsoft/resnet-50")
    canonical = f"{HF_PREFIX}{repo}" + (f"@{revision}" if revision else "")
    return HFSource(canonical, repo, revision or None, False)


def _not_available(source: HFSource, exc: Exception) -> ModelSpecError:
    how = ("it is not in the Hugging Face cache and HF_HUB_OFFLINE is set: download it once online "
           f"(`hf download {source.location}`) or pass its save_pretrained folder as hf:/path"
           if hub_offline() else f"the Hub has no such image classifier or it cannot be reached ({str(exc)[:160]})")
    return ModelSpecError(f"{source.spec}: {how}")


def _pretrained_kwargs(source: HFSource) -> dict[str, Any]:
    return {"revision": source.revision} if source.revision else {}


def _from_pretrained(auto_class, source: HFSource, **kwargs: Any):
    """``auto_class.from_pretrained`` of ``source``; a checkpoint that cannot be had, or one with a JSON file
    that does not parse (transformers' JSONDecodeError names no file), is a one-line ModelSpecError."""
    try:
        return auto_class.from_pretrained(source.location, trust_remote_code=False, **kwargs, **_pretrained_kwargs(source))
    except OSError as exc:
        raise _not_available(source, exc) from None
    except json.JSONDecodeError as exc:
        raise ModelSpecError(f"{source.spec}: {_broken_json_file(source)} is not valid JSON ({exc}); fix it, or save "
                             "or download the checkpoint again") from None


def _broken_json_file(source: HFSource) -> str:
    """The first JSON file of a local checkpoint folder that does not parse; for a Hub id, where to look."""
    if source.local:
        for path in sorted(Path(source.location).glob("*.json")):
            try:
                json.loads(path.read_bytes())
            except ValueError:  # JSONDecodeError and UnicodeDecodeError
                return str(path)
    return f"a JSON file of {source.location} (config.json or preprocessor_config.json)"


@lru_cache(maxsize=64)
def _source(spec: str) -> HFSource:
    """``spec`` parsed, once its checkpoint is known to bring no code of its own (``hub.remote_code``).

    Every loader below goes through here, so a folder or repo with an ``auto_map`` is refused with one line
    before transformers reads it; their ``trust_remote_code=False`` is the second lock.
    """
    source = parse_hf_spec(spec)
    refuse_custom_code(source.spec, source.location, IMAGE_CLASSIFIER_FILES, revision=source.revision)
    return source


@lru_cache(maxsize=64)
def _config(spec: str):
    """The checkpoint's ``PretrainedConfig`` (cached per canonical spec)."""
    return _from_pretrained(_transformers().AutoConfig, _source(spec))


def _transformers():
    """transformers, or a one-line error naming the extra that installs it."""
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError("transformers", "hf", "hf: models") from None
    return transformers


def _pil_backend() -> dict[str, Any]:
    """The PIL image processors the reference ran: transformers 5 names them by backend, 4.x by ``use_fast``."""
    return {"backend": "pil"} if int(_transformers().__version__.split(".")[0]) >= 5 else {"use_fast": False}


@lru_cache(maxsize=64)
def _processor(spec: str):
    from transformers import AutoImageProcessor

    return _from_pretrained(AutoImageProcessor, _source(spec), **_pil_backend())


# ------------------------------------------------------------------------------------- preprocessing
def _size(value: Any) -> dict[str, int]:
    if isinstance(value, int):
        return {"height": value, "width": value}
    return {k: int(v) for k, v in dict(value or {}).items() if v is not None}


def exact_crop_pct(crop: int, scaled: int, spec: str) -> float:
    """The crop_pct with which timm's ``floor(crop / crop_pct)`` gives back ``scaled`` exactly."""
    pct = crop / scaled
    if math.floor(crop / pct) != scaled:
        pct = math.nextafter(pct, 0.0)
    if math.floor(crop / pct) != scaled:
        raise ModelSpecError(f"{spec}: cannot express resize {scaled} → crop {crop} as a timm crop_pct")
    return pct


def _geometry(processor: Any, spec: str) -> tuple[list[int], float, str]:
    """(input_size, crop_pct, crop_mode) of the processor's resize and crop."""
    size = _size(getattr(processor, "size", None))
    crop = _size(getattr(processor, "crop_size", None)) if getattr(processor, "do_center_crop", False) else {}
    if not getattr(processor, "do_resize", True):
        raise ModelSpecError(f"{spec}: the image processor does not resize; images of different sizes cannot be batched")
    if "shortest_edge" in size and hasattr(processor, "crop_pct") and "height" not in size:
        edge = size["shortest_edge"]  # ConvNeXt's rule: below 384 resize to edge / crop_pct and crop, else squash
        if edge < 384:
            return [3, edge, edge], float(processor.crop_pct), "center"
        return [3, edge, edge], 1.0, "squash"
    if "height" in size and "width" in size:
        if not crop:
            return [3, size["height"], size["width"]], 1.0, "squash"
        ratio_h, ratio_w = crop["height"] / size["height"], crop["width"] / size["width"]
        if not math.isclose(ratio_h, ratio_w):
            raise ModelSpecError(f"{spec}: resize {size} then crop {crop} crops height and width by different "
                                 "fractions, which the engine's decoder cannot reproduce")
        pct = exact_crop_pct(crop["height"], size["height"], spec)
        if math.floor(crop["width"] / pct) != size["width"]:
            raise ModelSpecError(f"{spec}: cannot express resize {size} → crop {crop} as a timm crop_pct")
        return [3, crop["height"], crop["width"]], pct, "squash"
    if "shortest_edge" in size and crop and crop["height"] == crop["width"]:
        return [3, crop["height"], crop["width"]], exact_crop_pct(crop["height"], size["shortest_edge"], spec), "center"
    raise ModelSpecError(f"{spec}: image processor {type(processor).__name__} with size {size} and crop {crop} gives "
                         "images of varying size; only fixed-size processors can be evaluated")


def processor_data_config(processor: Any, *, spec: str = "model") -> dict[str, Any]:
    """The engine's data config equal to a transformers image processor's eval pipeline.

    The engine decodes to uint8 (resize + crop) and normalises as ``(x - 255·mean) / (255·std)``; the
    processor computes ``(x·rescale_factor - image_mean) / image_std``, so mean and std are the
    processor's divided by ``255·rescale_factor`` (identical for the usual factor 1/255).
    """
    input_size, crop_pct, crop_mode = _geometry(processor, spec)
    resample = getattr(processor, "resample", 2)
    interpolation = _RESAMPLE.get(int(resample) if resample is not None else 2)
    if interpolation is None:
        raise ModelSpecError(f"{spec}: image processor resample {resample!r} has no timm equivalent")
    factor = float(processor.rescale_factor) if getattr(processor, "do_rescale", True) else 1.0
    normalize = getattr(processor, "do_normalize", True)
    mean = [float(m) for m in processor.image_mean] if normalize else [0.0, 0.0, 0.0]
    std = [float(s) for s in processor.image_std] if normalize else [1.0, 1.0, 1.0]
    scale = 255.0 * factor
    record = {k: v for k, v in processor.to_dict().items() if not k.startswith("_") and k != "processor_class"}
    return {"input_size": input_size, "interpolation": interpolation, "crop_pct": crop_pct, "crop_mode": crop_mode,
            "crop_offset": "floor", "mean": [m / scale for m in mean], "std": [s / scale for s in std],
            "hf_processor": record}


def hf_data_config(spec: str) -> dict[str, Any]:
    """The data config of an ``hf:`` spec, from its checkpoint's own image processor."""
    return processor_data_config(_processor(spec), spec=spec)


# -------------------------------------------------------------------------------------------- labels
def _labels(config: Any) -> list[str]:
    return [str(config.id2label[i]) for i in range(int(config.num_labels))]


def _is_1k_head(labels: list[str]) -> bool:
    return len(labels) == 1000


def hf_label_rule(spec: str, protocol: str) -> str:
    """``reference-lemmas`` under the official protocol or for a head that is not 1000-way; else ``imagenet-1k``."""
    if protocol == "official" or not _is_1k_head(_labels(_config(spec))):
        return "reference-lemmas"
    return "imagenet-1k"


def reference_lemma_columns(labels: list[str]) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The reference's matching: logits whose label (``_`` → space) equals a class-file line, and their wnids."""
    lines = {", ".join(lemmas): canonical_wnid(wnid) for wnid, lemmas in read_class_file().items()}
    matched = [(i, lines[label.replace("_", " ")]) for i, label in enumerate(labels) if label.replace("_", " ") in lines]
    return tuple(i for i, _ in matched), tuple(w for _, w in matched)


def _checked_1k(labels: list[str], spec: str) -> tuple[str, ...]:
    catalog = list(load_catalog())
    wrong = [(i, label) for i, (label, c) in enumerate(zip(labels, catalog, strict=True))
             if label != c.wnid and normalize_text(label) != normalize_text(", ".join(c.lemmas))]
    if wrong:
        shown = "; ".join(f"{i}: {label!r} (expected {', '.join(catalog[i].lemmas)!r})" for i, label in wrong[:3])
        raise ModelSpecError(f"{spec}: {len(wrong)} of 1000 head labels are not the ImageNet-1k classes in catalogue "
                             f"order ({shown}); refusing to guess — run with --protocol official to use the "
                             "reference's lemma matching")
    return tuple(c.wnid for c in catalog)


def hf_label_map(spec: str, protocol: str) -> tuple[str, tuple[str, ...], tuple[int, ...] | None]:
    """``(rule, wnids, columns)`` of ``spec``'s head under ``protocol`` (:func:`hf_label_rule`); ``columns``
    are the kept logits (None: all 1000, in order); the registry turns them into its ``LabelMap``."""
    labels = _labels(_config(spec))
    rule = hf_label_rule(spec, protocol)
    if rule == "imagenet-1k":
        return rule, _checked_1k(labels, spec), None
    columns, wnids = reference_lemma_columns(labels)
    if not columns:
        raise ModelSpecError(f"{spec}: none of the head's {len(labels)} labels equals a line of the reference's class "
                             "file (e.g. 'tench, Tinca tinca'); this head cannot be scored on ImageNet-1k classes")
    return rule, wnids, columns


# ----------------------------------------------------------------------------------------- identity
def cached_commit(repo_id: str, revision: str | None = None) -> str | None:
    """The commit of a repo's cached ``config.json`` (``…/snapshots/<commit>/``), so an updated repo gets a new
    run key; ``revision`` when the cache cannot say. Call it after the config was resolved (and downloaded)."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    return Path(path).parent.name if isinstance(path, str) else revision


def hf_weights_identity(spec: str) -> dict[str, Any]:
    """A Hub checkpoint is identified by repo id and resolved commit; a local folder by its weights' sha256."""
    source = parse_hf_spec(spec)
    if not source.local:
        _config(spec)  # resolves the config first, so the cache knows the commit
        return {"weights": source.location, "revision": cached_commit(source.location, source.revision),
                "weights_sha256": None}
    folder = Path(source.location)
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))  # every shard of a sharded one
    if not files:
        raise ModelSpecError(f"{spec}: no weights file (*.safetensors or *.bin) in {folder}")
    digest = ",".join(_io.sha256_file(f) for f in files)
    return {"weights": _io.display_path(source.location), "weights_sha256": digest}


# -------------------------------------------------------------------------------------------- build
def _logits_module(model: Any):
    """``model`` as a module from pixel values to logits (torch imported lazily)."""
    import torch

    class HFLogits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, images):
            return self.model(pixel_values=images).logits

    return HFLogits()


def meta_hf_model(spec: str):
    """The architecture on the meta device (shapes only, no weights): for memory footprints."""
    import torch
    from transformers import AutoModelForImageClassification

    with torch.device("meta"):
        model = AutoModelForImageClassification.from_config(_config(spec), trust_remote_code=False)
    return _logits_module(model.eval())


def build_hf(spec: str, *, protocol: str, device: str) -> tuple[Any, tuple, dict[str, Any], dict[str, Any]]:
    """``(module, hf_label_map(...), data_config, model_info)`` of an ``hf:`` spec, in eval mode on ``device``."""
    from transformers import AutoModelForImageClassification

    source = _source(spec)
    label_map = hf_label_map(spec, protocol)
    data_config = hf_data_config(spec)
    try:
        model = AutoModelForImageClassification.from_pretrained(source.location, trust_remote_code=False,
                                                                **_pretrained_kwargs(source))
    except OSError as exc:
        raise _not_available(source, exc) from None
    except ValueError as exc:
        raise ModelSpecError(f"{spec}: not an image classifier transformers can load ({str(exc)[:200]})") from None
    module = _logits_module(model).to(device).eval()
    config = _config(spec)
    info = {"architecture": type(model).__name__, "pretrained_tag": None, "kind": "hf", "hf_model": source.location,
            "params": int(sum(p.numel() for p in model.parameters())), "num_classes": int(config.num_labels),
            "label_map_size": len(label_map[1]), "crop_mode": data_config["crop_mode"]}
    return module, label_map, data_config, info
