"""In-memory stand-ins for the dataset readers and encoders the similarity step is coded against."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from laionet_bench.similarity.encoders import EncoderSpec

__all__ = ["TINY_CLIP", "FakeSample", "ListDataset", "PixelEncoder", "clustered_images", "make_tiny_clip"]


@dataclass(frozen=True)
class FakeSample:
    key: str
    wnid: str


@dataclass
class ListDataset:
    """``samples()`` / ``open()`` / ``identity()`` over a list of (key, wnid, PIL image or None = broken)."""

    name: str
    rows: list[tuple[str, str, Image.Image | None]]
    opened: list[str] = field(default_factory=list)

    def samples(self) -> list[FakeSample]:
        return [FakeSample(key, wnid) for key, wnid, _ in self.rows]

    def open(self, sample: FakeSample) -> Image.Image:
        self.opened.append(sample.key)
        image = {key: img for key, _, img in self.rows}[sample.key]
        if image is None:
            raise OSError(f"cannot identify image file {sample.key!r}")
        return image

    def identity(self) -> dict:
        return {"name": self.name, "n": len(self.rows)}


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
