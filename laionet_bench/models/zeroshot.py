"""open_clip models as zero-shot ImageNet-1k classifiers (the paper's CLIP rows).

The head is open_clip's own :func:`open_clip.build_zero_shot_classifier` over one of two prompt sets:

* ``paper`` (default): the catalogue's synset texts (``"<name> which is <definition>"``), one template
  per class, as in the paper;
* ``openai``: OpenAI's 80 ImageNet templates over open_clip's class names, so numbers compare with
  CLIP_benchmark.

Both are in catalogue (timm) order, so the logit → wnid map is the catalogue itself. Preprocessing is
the eval transform open_clip itself applies for ``arch``/``tag`` (its :class:`~open_clip.transform.PreprocessCfg`
merged with the tag's config, as ``create_model_and_transforms`` does), written as a timm data config
with ``crop_pct = 1``: ``resize_mode`` ``shortest`` is timm's ``center`` crop, ``squash`` (SigLIP) is
timm's ``squash``; CLIP models then share decoding with timm models of the same input size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..catalog import load_catalog
from ..errors import ModelSpecError

__all__ = ["PROMPT_SETS", "build_zero_shot", "openclip_data_config"]

PROMPT_SETS = ("paper", "openai")

# open_clip's resize_mode → timm's crop_mode giving the same pixels at crop_pct 1; "longest" pads with
# open_clip's fill colour where timm's "border" pads with the mean, so it has no exact equivalent.
_CROP_MODES = {"shortest": "center", "squash": "squash"}


def openclip_data_config(arch: str, tag: str) -> dict[str, Any]:
    """The timm-style data config equivalent to open_clip's eval transform for ``arch``/``tag``."""
    import open_clip
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    model_cfg = open_clip.get_model_config(arch)
    if model_cfg is None:
        raise ModelSpecError(f"openclip:{arch}/{tag}: open_clip has no config for {arch}")
    cfg = merge_preprocess_dict(PreprocessCfg(), open_clip.get_pretrained_cfg(arch, tag) or {})
    size = model_cfg.get("vision_cfg", {}).get("image_size", cfg["size"])
    size = size if isinstance(size, int) else size[0]
    crop_mode = _CROP_MODES.get(cfg["resize_mode"])
    if crop_mode is None:
        raise ModelSpecError(f"openclip:{arch}/{tag}: open_clip resize_mode {cfg['resize_mode']!r} has no exact timm "
                             f"equivalent (supported: {', '.join(_CROP_MODES)}); pick another tag")
    return {"input_size": [3, size, size], "interpolation": cfg["interpolation"], "mean": list(cfg["mean"]),
            "std": list(cfg["std"]), "crop_pct": 1.0, "crop_mode": crop_mode}


def _prompts(prompts: str) -> tuple[list[str], tuple[Any, ...]]:
    """Class texts and templates of a prompt set, in catalogue order."""
    if prompts == "paper":
        return [c.query for c in load_catalog()], ("{}",)
    if prompts == "openai":
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

        return list(IMAGENET_CLASSNAMES), tuple(OPENAI_IMAGENET_TEMPLATES)
    raise ModelSpecError(f"zero-shot prompts {prompts!r} unknown: use one of {', '.join(PROMPT_SETS)}")


def _make_module(model, text_features):
    """Wrap ``model`` with a fixed text head; defined inside so torch is imported lazily."""
    import torch

    class ZeroShot(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.register_buffer("classifier", text_features)
            self.logit_scale = 100.0

        def forward(self, images):
            features = self.model.encode_image(images)
            features = features / features.norm(dim=-1, keepdim=True)
            return self.logit_scale * features @ self.classifier.to(features.dtype).T

    return ZeroShot()


def build_zero_shot(arch: str, tag: str, *, weights_path: str | Path | None, device: str,
                    prompts: str = "paper") -> tuple[Any, dict, dict]:
    """Build ``arch`` with ``tag`` (or a local weights file) and its 1000-way head from the ``prompts`` set."""
    import open_clip

    classnames, templates = _prompts(prompts)
    source = str(weights_path) if weights_path else tag
    try:
        model = open_clip.create_model(arch, pretrained=source, device=device, weights_only=True)
    except RuntimeError as exc:
        raise ModelSpecError(f"openclip:{arch}/{tag}: weights {source} do not fit {arch} ({str(exc)[:200]})") from None
    model.eval()
    classifier = open_clip.build_zero_shot_classifier(model, open_clip.get_tokenizer(arch), classnames, templates,
                                                      num_classes_per_batch=max(1, 2000 // len(templates)),
                                                      device=device)
    module = _make_module(model, classifier.T.float().contiguous()).to(device).eval()
    data_config = openclip_data_config(arch, tag)
    info = {"params": int(sum(p.numel() for p in model.parameters())), "crop_mode": data_config["crop_mode"],
            "prompts": prompts, "prompt_templates": len(templates)}
    return module, data_config, info
