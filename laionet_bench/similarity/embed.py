"""Embed a selection of images once, cache the result on disk, resume after interruption.

The cache key is built like a prediction run key: encoder spec + weights identity + preprocessing +
autocast dtype + dataset identity + the selection fingerprint (every chosen key, in order). Under
``<cache_root>/<dataset>-<key[:16]>/`` the work is split into fixed chunks of rows; each finished
chunk is one ``chunk-NNNNNN.npz`` written atomically (temp file, fsync, rename), so a killed run loses
at most the chunk in flight and a re-run embeds only the chunks that are missing. ``meta.json`` pins
the chunk size of a cache so resuming with another ``chunk_size`` still lines up.

Images that fail to open (``OSError``/``ValueError`` from ``dataset.open``) are recorded with the
reason and left out of the statistics, as the reference drops failed downloads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._io import atomic_write, slug, write_text_atomic
from .._progress import progress_bar
from ..errors import StoreError
from .sampling import DatasetLike, Selection

__all__ = ["EMBED_FORMAT_VERSION", "Embeddings", "embed_selection", "embedding_cache_key"]

logger = logging.getLogger(__name__)

EMBED_FORMAT_VERSION = 1
META_FILE = "meta.json"


@dataclass
class Embeddings:
    """The embeddings of one selection: loaded rows only, plus the rows that failed and why."""

    dataset: str
    keys: list[str]  # loaded rows, in selection order
    wnids: np.ndarray  # (n,) str
    vectors: np.ndarray  # (n, d) float32, L2-normalised
    failed: pd.DataFrame  # key, wnid, error
    cache_dir: Path
    cache_key: str

    def by_class(self) -> dict[str, np.ndarray]:
        """wnid → (n_c, d) embeddings, classes in order of first appearance."""
        codes, uniques = pd.factorize(self.wnids)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
        return {str(w): self.vectors[order[bounds[i]:bounds[i + 1]]] for i, w in enumerate(uniques)}


def embedding_cache_key(encoder: Any, identity: dict, selection: Selection) -> str:
    """sha256 over everything that changes the vectors of this selection."""
    import hashlib

    payload = {
        "format": EMBED_FORMAT_VERSION,
        "encoder": str(encoder.spec),
        "weights": encoder.weights_id,
        "preprocess": encoder.info.get("transform"),
        "dtype": encoder.dtype,
        "dataset": identity,
        "selection": selection.fingerprint(),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _load_one(dataset: DatasetLike, transform, sample) -> tuple[Any, str | None]:
    try:
        image = dataset.open(sample)
        if getattr(image, "mode", "RGB") != "RGB":  # a PIL image in another mode; arrays pass as they are
            from ..images.decode import to_rgb

            image = to_rgb(image)
        return transform(image), None
    except (OSError, ValueError) as exc:  # unreadable image: recorded, never fatal
        return None, f"{type(exc).__name__}: {exc}"


def _embed_chunk(dataset, samples: Sequence, encoder, batch_size: int, pool,
                 advance: Callable[[int], object]) -> dict[str, np.ndarray]:
    """Load, preprocess and embed one chunk; failed rows get a zero vector and ok=False.

    ``advance(n)`` is called after every batch (and once for the failed rows), so a progress bar moves
    per batch, not per chunk of thousands of images.
    """
    import torch

    mapper = pool.map if pool is not None else map
    loaded = list(mapper(lambda s: _load_one(dataset, encoder.transform, s), samples))
    ok = np.array([tensor is not None for tensor, _ in loaded], dtype=bool)
    vectors: np.ndarray | None = None
    good = [tensor for tensor, _ in loaded if tensor is not None]
    parts = []
    for i in range(0, len(good), batch_size):
        parts.append(encoder.encode(torch.stack(good[i:i + batch_size])))
        advance(len(parts[-1]))
    advance(len(samples) - len(good))
    if parts:
        dense = np.concatenate(parts).astype(np.float32, copy=False)
        vectors = np.zeros((len(samples), dense.shape[1]), dtype=np.float32)
        vectors[ok] = dense
    return {
        "keys": np.array([str(s.key) for s in samples], dtype=str),
        "wnids": np.array([s.wnid for s in samples], dtype=str),
        "ok": ok,
        "errors": np.array([err or "" for _, err in loaded], dtype=str),
        "vectors": vectors if vectors is not None else np.zeros((len(samples), 0), dtype=np.float32),
    }


def _read_chunk(path: Path, expected_keys: list[str]) -> dict[str, np.ndarray] | None:
    """A finished chunk, or None when it is missing, unreadable or for other keys."""
    try:
        with np.load(path, allow_pickle=False) as data:
            chunk = {name: data[name] for name in data.files}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError) as exc:
        logger.warning("%s: unreadable chunk (%s); embedding it again", path, exc)
        return None
    if chunk.get("keys") is None or chunk["keys"].tolist() != expected_keys:
        logger.warning("%s: holds other rows than expected; embedding it again", path)
        return None
    return chunk


def _chunk_size_for(folder: Path, meta: dict, chunk_size: int) -> int:
    path = folder / META_FILE
    if path.exists():
        try:
            stored = json.loads(path.read_text("utf-8"))
        except json.JSONDecodeError:
            stored = {}
        if stored.get("cache_key") == meta["cache_key"] and int(stored.get("chunk_size", 0)) > 0:
            return int(stored["chunk_size"])
    write_text_atomic(path, json.dumps({**meta, "chunk_size": chunk_size}, indent=1, default=str) + "\n")
    return chunk_size


def _assemble(name: str, chunks: list[dict], folder: Path, key: str) -> Embeddings:
    ok = np.concatenate([c["ok"] for c in chunks]) if chunks else np.zeros(0, bool)
    keys = np.concatenate([c["keys"] for c in chunks]) if chunks else np.zeros(0, str)
    wnids = np.concatenate([c["wnids"] for c in chunks]) if chunks else np.zeros(0, str)
    errors = np.concatenate([c["errors"] for c in chunks]) if chunks else np.zeros(0, str)
    dims = {c["vectors"].shape[1] for c in chunks if c["ok"].any()}
    if len(dims) > 1:
        raise StoreError(f"{folder}: chunks disagree on the embedding size {sorted(dims)}; delete the folder")
    dim = dims.pop() if dims else 0
    vectors = np.concatenate([c["vectors"][c["ok"]] for c in chunks if c["ok"].any()]) if dim else np.zeros((0, 0), np.float32)
    failed = pd.DataFrame({"key": keys[~ok], "wnid": wnids[~ok], "error": errors[~ok]})
    return Embeddings(name, keys[ok].tolist(), wnids[ok], vectors, failed, folder, key)


def embed_selection(
    dataset: DatasetLike,
    selection: Selection,
    encoder: Any,
    *,
    cache_root: str | Path,
    identity: dict | None = None,
    batch_size: int = 64,
    chunk_size: int = 1024,
    workers: int = 0,
    progress: bool = True,
) -> Embeddings:
    """Embed ``selection`` with ``encoder``, reusing and extending the on-disk cache.

    Args:
        dataset: opens the images (``dataset.open(sample)``).
        selection: from :func:`~laionet_bench.similarity.sampling.select_samples`.
        encoder: an :class:`~laionet_bench.similarity.encoders.Encoder` (or anything with ``spec``,
            ``weights_id``, ``info``, ``dtype``, ``transform`` and ``encode``).
        cache_root: folder holding one sub-folder per cache key.
        identity: the dataset identity (default ``dataset.identity()``).
        batch_size: images per forward pass.
        chunk_size: rows per resumable unit written to disk.
        workers: threads decoding and preprocessing images (0 = in the calling thread).
    """
    identity = dataset.identity() if identity is None else identity
    key = embedding_cache_key(encoder, identity, selection)
    folder = Path(cache_root) / f"{slug(selection.dataset)}-{key[:16]}"
    meta = {"cache_key": key, "dataset": selection.dataset, "encoder": str(encoder.spec),
            "weights": encoder.weights_id, "identity": identity, "selection": selection.describe()}
    size = _chunk_size_for(folder, meta, chunk_size)
    samples = list(selection.samples)
    starts = range(0, len(samples), size)
    chunks: list[dict] = []
    bar = progress_bar(total=len(samples), desc=f"embed {selection.dataset}", unit="img", disable=not progress)
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 0 else None
    try:
        for index, start in enumerate(starts):
            part = samples[start:start + size]
            path = folder / f"chunk-{index:06d}.npz"
            chunk = _read_chunk(path, [str(s.key) for s in part])
            if chunk is None:
                chunk = _embed_chunk(dataset, part, encoder, batch_size, pool, bar.update)
                with atomic_write(path) as handle:
                    # numpy's stub reads **arrays as possibly the bool allow_pickle; the keys are column names
                    np.savez(handle, **chunk)  # type: ignore[arg-type]
            else:
                bar.update(len(part))
            chunks.append(chunk)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
    embeddings = _assemble(selection.dataset, chunks, folder, key)
    logger.info("%s: %d embedded, %d failed (%s)", selection.dataset, len(embeddings.keys), len(embeddings.failed), folder)
    return embeddings
