"""open_clip models as zero-shot ImageNet-1k classifiers (the paper's CLIP rows).

The class prompts are the catalogue's synset texts (``"<name> which is <definition>"``), as in the
paper; the head is the L2-normalised text embeddings of the 1000 prompts in catalogue (timm) order,
so the logit → wnid map is the catalogue itself. Preprocessing (resize shortest side + center crop,
bicubic, the model's mean/std) is expressed as a timm data config with ``crop_pct = 1`` so CLIP
models share decoding with timm models of the same input size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..catalog import load_catalog
from ..errors import ModelSpecError

__all__ = ["build_zero_shot", "openclip_data_config"]


def openclip_data_config(arch: str, tag: str) -> dict[str, Any]:
    """The timm-style data config equivalent to open_clip's eval transform for ``arch``/``tag``."""
    import open_clip

    model_cfg = open_clip.get_model_config(arch)
    if model_cfg is None:
        raise ModelSpecError(f"openclip:{arch}/{tag}: open_clip has no config for {arch}")
    vision = model_cfg.get("vision_cfg", {})
    size = vision.get("image_size", 224)
    size = size if isinstance(size, int) else size[0]
    pretrained = open_clip.get_pretrained_cfg(arch, tag) or {}
    mean = pretrained.get("mean") or open_clip.OPENAI_DATASET_MEAN
    std = pretrained.get("std") or open_clip.OPENAI_DATASET_STD
    interpolation = pretrained.get("interpolation") or "bicubic"
    return {"input_size": [3, size, size], "interpolation": interpolation, "mean": list(mean),
            "std": list(std), "crop_pct": 1.0, "crop_mode": "center"}


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


def build_zero_shot(arch: str, tag: str, *, weights_path: str | Path | None, device: str) -> tuple[Any, dict, dict]:
    """Build ``arch`` with ``tag`` (or a local weights file) and its 1000-way prompt head."""
    import open_clip
    import torch

    source = str(weights_path) if weights_path else tag
    try:
        model = open_clip.create_model(arch, pretrained=source, device=device, weights_only=True)
    except RuntimeError as exc:
        raise ModelSpecError(f"openclip:{arch}/{tag}: weights {source} do not fit {arch} ({str(exc)[:200]})") from None
    model.eval()
    tokenizer = open_clip.get_tokenizer(arch)
    prompts = [c.query for c in load_catalog()]
    with torch.no_grad():
        chunks = [model.encode_text(tokenizer(prompts[i:i + 250]).to(device)) for i in range(0, len(prompts), 250)]
        text = torch.cat(chunks).float()
        text = text / text.norm(dim=-1, keepdim=True)
    module = _make_module(model, text).to(device).eval()
    info = {"params": int(sum(p.numel() for p in model.parameters())), "crop_mode": "center",
            "prompts": "catalog synset texts"}
    return module, openclip_data_config(arch, tag), info
