"""Synthetic LAION-like metadata parts (LAION-400M's columns) and a tiny open_clip model for rebuild tests."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

__all__ = ["make_tiny_openclip", "write_laion_part"]


def write_laion_part(path: Path, captions: list, *, nsfw: list | str = "UNLIKELY", sample_start: int = 1000) -> Path:
    """Write a parquet part with LAION's columns; one row per caption (``None`` = NaN caption)."""
    n = len(captions)
    frame = pd.DataFrame({
        "SAMPLE_ID": range(sample_start, sample_start + n),
        "URL": [f"http://127.0.0.1/img/{sample_start + i}.jpg" for i in range(n)],
        "TEXT": captions,
        "HEIGHT": 480,
        "WIDTH": 640,
        "LICENSE": "?",
        "NSFW": nsfw if isinstance(nsfw, list) else [nsfw] * n,
        "similarity": 0.31,
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path)
    return path


def make_tiny_openclip(folder: Path, *, seed: int = 0) -> str:
    """A tiny open_clip CLIP (random weights made here) in a ``local-dir:`` folder; returns the encoder name."""
    import open_clip
    import torch

    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    torch.manual_seed(seed)
    model = open_clip.CLIP(**cfg)
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return f"openclip:local-dir:{folder}"
