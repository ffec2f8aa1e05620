"""Synthetic LAION-like metadata parts (LAION-400M's and Re-LAION-5B's columns) and a tiny open_clip model for
rebuild tests."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

__all__ = ["RELAION_UUID", "make_tiny_openclip", "relaion_part_name", "write_laion_part", "write_relaion_part"]

#: The one job uuid in every part name of a Re-LAION release (Spark writes one per job).
RELAION_UUID = "5f0bd3d5-0b6c-4d43-9a4e-1b7b4c0e2c11"


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


def relaion_part_name(index: int) -> str:
    """Re-LAION's part file name: ``part-NNNNN-<uuid>-c000.snappy.parquet``."""
    return f"part-{index:05d}-{RELAION_UUID}-c000.snappy.parquet"


def write_relaion_part(folder: Path, index: int, captions: list, *, punsafe: list | float = 0.01) -> Path:
    """Write part ``index`` of a Re-LAION-5B-like release into ``folder``, under Re-LAION's file name, with its
    lower-case columns (``url, caption, key, similarity, hash, pwatermark, punsafe, status, original_width,
    original_height``), snappy-compressed; one row per caption (``None`` = missing caption)."""
    n = len(captions)
    frame = pd.DataFrame({
        "url": [f"http://127.0.0.1/img/{index}-{i}.jpg" for i in range(n)],
        "caption": captions,
        "key": [f"{index:05d}{i:04d}" for i in range(n)],
        "similarity": [0.31] * n,
        "hash": [hash((index, i)) & 0x7FFF_FFFF_FFFF_FFFF for i in range(n)],
        "pwatermark": [0.05] * n,
        "punsafe": [None if v is None else float(v) for v in (punsafe if isinstance(punsafe, list) else [punsafe] * n)],
        "status": ["success"] * n,
        "original_width": [640] * n,
        "original_height": [480] * n,
    })
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / relaion_part_name(index)
    frame.to_parquet(path, compression="snappy", index=False)
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
