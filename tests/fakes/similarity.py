"""Similarity test material: real on-disk datasets built from given images, a pixel encoder whose
similarities are known, clustered images, and a tiny open_clip model."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from laionet_bench.datasets import Dataset, create_dataset
from laionet_bench.index.schema import write_index
from laionet_bench.similarity.encoders import EncoderSpec

from ..conftest import make_index_frame

__all__ = [
    "TINY_CLIP",
    "PixelEncoder",
    "clustered_images",
    "imagenet_val",
    "make_tiny_clip",
    "write_imagenet_val",
    "write_laionet",
]

#: An image entry: a PIL image (saved as PNG, lossless), ``None`` (no file: a failed download) or raw bytes.
ImageEntry = Image.Image | bytes | None


def _file_bytes(entry: Image.Image | bytes) -> bytes:
    if isinstance(entry, bytes):
        return entry
    buffer = io.BytesIO()
    entry.save(buffer, format="PNG")
    return buffer.getvalue()


def write_laionet(folder: Path, rows: list[tuple[str, ImageEntry]]) -> tuple[Path, Path, list[str]]:
    """A LAIONet index (rows in this order, none OCR-flagged) and a ``<row_id>.png`` folder.

    Returns (index parquet, image folder, the row ids as keys in listing order).
    """
    frame = make_index_frame([wnid for wnid, _ in rows]).assign(ocr_flag=False)
    folder.mkdir(parents=True, exist_ok=True)
    write_index(frame, folder / "index.parquet")
    images = folder / "images"
    images.mkdir(exist_ok=True)
    for row_id, (_, entry) in zip(frame["row_id"], rows, strict=True):
        if entry is not None:
            (images / f"{row_id}.png").write_bytes(_file_bytes(entry))
    return folder / "index.parquet", images, [str(r) for r in frame["row_id"]]


def write_imagenet_val(folder: Path, rows: list[tuple[str, Image.Image | bytes]]) -> Path:
    """ImageNet-val as wnid folders of ``ILSVRC2012_val_NNNNNNNN.png`` files, numbered in row order."""
    for number, (wnid, entry) in enumerate(rows, start=1):
        (folder / wnid).mkdir(parents=True, exist_ok=True)
        (folder / wnid / f"ILSVRC2012_val_{number:08d}.png").write_bytes(_file_bytes(entry))
    return folder


def imagenet_val(folder: Path, rows: list[tuple[str, Image.Image | bytes]], **options) -> Dataset:
    """The real ImageNet-val reader over :func:`write_imagenet_val`'s files."""
    return create_dataset("imagenet-val", root=write_imagenet_val(folder, rows), **options)


class PixelEncoder:
    """Embeds an image as its centred pixel vector: near-identical images have cosine ≈ 1."""

    def __init__(self, fail_after_calls: int | None = None):
        self.spec = EncoderSpec("timm", "pixels")
        self.weights_id = "none"
        self.info = {"transform": "pixels-centred"}
        self.dtype = "float32"
        self.device = "cpu"
        self.calls = 0
        self.fail_after_calls = fail_after_calls

    @staticmethod
    def transform(image: Image.Image):
        import torch

        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0 - 0.5).permute(2, 0, 1)

    def encode(self, batch) -> np.ndarray:
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise KeyboardInterrupt("injected interruption")
        self.calls += 1
        flat = batch.reshape(len(batch), -1).numpy().astype(np.float64)
        return (flat / np.linalg.norm(flat, axis=1, keepdims=True)).astype(np.float32)


def clustered_images(rng: np.random.Generator, n: int, *, spread: bool, size: int = 6) -> list[Image.Image]:
    """``n`` images: small variations of one random pattern (tight) or independent noise (spread)."""
    base = rng.uniform(0, 255, size=(size, size, 3))
    images = []
    for _ in range(n):
        pixels = rng.uniform(0, 255, size=base.shape) if spread else base + rng.normal(0, 12, size=base.shape)
        images.append(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB"))
    return images


TINY_CLIP = "laionet-test-tiny-clip"


def make_tiny_clip(folder) -> tuple:
    """Register a 1-layer, 32-pixel open_clip config with open_clip; save random weights in ``folder``.

    Returns ``(weights path, the model those weights came from)``.
    """
    import json

    import open_clip
    import torch

    config = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1},
    }
    (folder / f"{TINY_CLIP}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder / f"{TINY_CLIP}.json")
    torch.manual_seed(3)
    model = open_clip.create_model(TINY_CLIP)
    path = folder / "tiny_clip.pt"
    torch.save(model.state_dict(), path)
    return path, model.eval()
