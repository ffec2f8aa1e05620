"""Shared set-up of the evaluation benchmarks: a synthetic LAIONet index and JPEG image folder."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from laionet_bench.catalog import load_catalog
from laionet_bench.index.schema import write_index


def synthetic_index(folder: Path, rows: int, classes: int = 100) -> Path:
    """A valid index with ``rows`` rows spread over ``classes`` classes."""
    catalog = load_catalog()
    wnids = [catalog.wnids[i % classes] for i in range(rows)]
    frame = pd.DataFrame({
        "row_id": np.arange(100_000_000, 100_000_000 + rows, dtype=np.int64),
        "sample_id": [str(i) for i in range(rows)],
        "url": [f"http://example.invalid/{i}.jpg" for i in range(rows)],
        "caption": "a photo",
        "wnid": wnids,
        "class_index": np.array([catalog.get(w).index for w in wnids], dtype=np.int32),
        "similarity": np.full(rows, 0.85, dtype=np.float32),
        "similarity_encoder": "openclip:ViT-B-32/openai",
        "nsfw": "UNLIKELY",
        "ocr_flag": False,
        "width": np.full(rows, 64, dtype=np.int32),
        "height": np.full(rows, 48, dtype=np.int32),
        "license": "?",
        "variant": "clip_0.82",
    })
    path = folder / "index.parquet"
    write_index(frame, path)
    return path


def photo_jpegs(count: int, size: tuple[int, int], seed: int = 0) -> list[bytes]:
    """Distinct JPEGs cut from scikit-image sample photos (realistic decode cost), resized to ``size``."""
    import skimage.data

    sources = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut(), skimage.data.rocket()]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        image = Image.fromarray(sources[i % len(sources)]).resize(size)
        array = np.asarray(image).astype(np.int16) + rng.integers(-8, 8, (size[1], size[0], 3))
        buffer = io.BytesIO()
        Image.fromarray(array.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def image_folder(folder: Path, index: Path, jpegs: list[bytes]) -> Path:
    """``<row_id>.jpg`` for every index row, cycling through ``jpegs``."""
    folder.mkdir(parents=True, exist_ok=True)
    row_ids = pd.read_parquet(index, columns=["row_id"])["row_id"]
    for i, row_id in enumerate(row_ids):
        (folder / f"{row_id}.jpg").write_bytes(jpegs[i % len(jpegs)])
    return folder


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
