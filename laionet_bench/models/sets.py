"""Named model sets: ``paper`` is the reference's 29 HF checkpoints plus CLIP ViT-B/32 zero-shot.

Each entry records the reference's predictor name (the ``<model>`` of its ``top_1_is_correct_<model>``
columns), the harness spec that names the same model, and its Fig.-1 group (SPEC §4): ``1k`` (trained on
ImageNet-1k), ``pt22k-ft1k`` (pre-trained on ImageNet-22k, fine-tuned on 1k), ``pt22k`` (22k heads, scored
over the logits whose labels match a class lemma) and ``zero-shot`` (CLIP). ``import-results`` names its
results by these specs, so imported and re-computed results of one model meet in one leaderboard row.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MODEL_SETS", "PAPER_MODELS", "PaperModel", "paper_model_for_predictor", "paper_model_for_spec"]


@dataclass(frozen=True)
class PaperModel:
    """One model of the paper: the reference's predictor name, our spec, its Fig.-1 group."""

    predictor: str
    spec: str
    group: str


def _hf(org: str, names: str, group: str) -> list[PaperModel]:
    return [PaperModel(n, f"hf:{org}/{n}", group) for n in names.split()]


PAPER_MODELS: tuple[PaperModel, ...] = (
    *_hf("microsoft", "resnet-18 resnet-34 resnet-50 resnet-101 resnet-152", "1k"),
    *_hf("facebook", "convnext-tiny-224 convnext-small-224 convnext-base-224 convnext-large-224 "
                     "convnext-base-384 convnext-large-384", "1k"),
    *_hf("google", "vit-base-patch16-224 vit-base-patch16-384 vit-base-patch32-384 vit-large-patch16-224 "
                   "vit-large-patch16-384 vit-large-patch32-384", "pt22k-ft1k"),
    *_hf("facebook", "convnext-base-224-22k-1k convnext-large-224-22k-1k convnext-base-384-22k-1k "
                     "convnext-large-384-22k-1k", "pt22k-ft1k"),
    *_hf("microsoft", "beit-base-patch16-224 beit-base-patch16-384 beit-large-patch16-224 "
                      "beit-large-patch16-384", "pt22k-ft1k"),
    *_hf("facebook", "convnext-base-224-22k convnext-large-224-22k", "pt22k"),
    *_hf("microsoft", "beit-base-patch16-224-pt22k-ft22k beit-large-patch16-224-pt22k-ft22k", "pt22k"),
    PaperModel("clip-vit-base-patch32", "openclip:ViT-B-32/openai", "zero-shot"),
)

#: Set name → its specs, in the paper's order; ``expand_model_specs`` expands these names.
MODEL_SETS: dict[str, tuple[str, ...]] = {"paper": tuple(m.spec for m in PAPER_MODELS)}

_BY_PREDICTOR = {m.predictor: m for m in PAPER_MODELS}
_BY_SPEC = {m.spec: m for m in PAPER_MODELS}


def paper_model_for_predictor(name: str) -> PaperModel | None:
    """The paper model behind the reference's predictor ``name`` (``resnet-50``), or None."""
    return _BY_PREDICTOR.get(name)


def paper_model_for_spec(spec: str) -> PaperModel | None:
    """The paper model a canonical spec names (``hf:microsoft/resnet-50``), or None: its Fig.-1 group."""
    return _BY_SPEC.get(spec)
