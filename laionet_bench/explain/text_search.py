"""§4.4 Text-search recreation: rebuild ImageNet from LAION by searching with ImageNet's own captions.

If ImageNet's images were selectable from their texts, the LAION rows whose captions are nearest to
ImageNet's captions would form a dataset as homogeneous as ImageNet. The paper embeds all 413.9M
LAION captions with CLIP, searches a FAISS index with each ImageNet-Captions caption and keeps the
top-1 neighbour when its similarity exceeds 0.7: the result is again less similar within class
than ImageNet — text, even ImageNet's own, does not carry what image-based selection kept.

Three resumable stages, all under one work dir:

``embeddings/part-NNNNN.npy`` (+ ``.ids.npy``, ``.json`` written last)
    every caption of a LAION part embedded (:func:`embed_part`), one part per task on the rebuild
    executors (:func:`~laionet_bench.rebuild.executors.map_parts`, local or Ray); a part whose record
    carries the same key (part, columns, encoder) is skipped, unless its files cannot be read back (a torn
    write, a missing array): then it is embedded again.
``faiss/index.faiss`` + ``faiss/index.json``
    an inner-product FAISS index over all parts (:func:`build_faiss_index`): exact ``flat`` for small
    sets (the demo), ``ivfpq`` (IVF lists + product quantisation, trained on a sample) for hundreds of
    millions of vectors. ``index.json`` stores the encoder and dimension; :func:`load_faiss_index`
    refuses an index built with another encoder or dimension, or a file it cannot read (one line naming it);
    the work dir's own index is rebuilt instead.
``<out>/explain/text-search/``
    per caption its top-1 neighbour (``matches.parquet``), the kept rows as an index variant in our
    schema (``text_search_0.7.parquet``: ``wnid`` = the caption's class, ``similarity`` = caption to
    synset text as everywhere, ``x_search_similarity`` and ``x_imagenet_filename`` from the search; a
    LAION row found by several captions is kept once, for its most similar caption), ``summary.json``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from .._io import atomic_write, read_json, write_text_atomic
from ..errors import ConfigError, DatasetError, MissingDependencyError, StoreError
from ..rebuild.parts import ColumnMap, Part, fetch_part, iter_part_batches, resolve_parts
from ..rebuild.textsim import TextEncoder

__all__ = [
    "INDEX_KINDS",
    "SEARCH_THRESHOLD",
    "EmbedPartsConfig",
    "FaissIndex",
    "build_faiss_index",
    "embed_part",
    "embed_parts",
    "load_faiss_index",
    "run_text_search",
    "search_variant",
]

logger = logging.getLogger(__name__)

#: The paper's threshold on the caption-to-caption similarity of the top-1 neighbour.
SEARCH_THRESHOLD = 0.7
INDEX_KINDS = ("flat", "ivfpq")


def _faiss():
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError("faiss-cpu", "explain", "the text-search FAISS index") from None
    return faiss


def _key(*items: Any) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EmbedPartsConfig:
    """What the caption embeddings of the LAION parts depend on (their resume key) and where they go."""

    work_dir: str
    encoder: str  # text encoder name, as for the rebuild (e.g. openclip:ViT-B-32/openai)
    columns: ColumnMap = field(default_factory=ColumnMap)
    batch_rows: int = 100_000  # captions read and embedded at a time
    device: str | None = None

    def folder(self) -> Path:
        return Path(self.work_dir) / "embeddings"

    def part_key(self, part: Part) -> str:
        return _key("embed", part.source, part.index, self.columns.to_dict(), self.encoder)


def _npy_shape(path: Path) -> tuple[int, ...]:
    """The shape a ``.npy`` file declares, checked against the file's size (a torn write is shorter)."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(handle)
        expected = handle.tell() + math.prod(shape) * dtype.itemsize
        size = os.fstat(handle.fileno()).st_size
    if size != expected:
        raise ValueError(f"{size} bytes where its header promises {expected}")
    return shape


def _cache_problem(config: EmbedPartsConfig, part: Part, record: object) -> str | None:
    """Why a part's cached embeddings cannot be used (None when they can)."""
    if not isinstance(record, dict) or not isinstance(record.get("rows"), int) or not isinstance(record.get("dim"), int):
        return f"{config.folder() / f'{part.name}.json'}: not a part record"
    for name, shape in ((f"{part.name}.npy", (record["rows"], record["dim"]) if record["rows"] else None),
                        (f"{part.name}.ids.npy", (record["rows"],))):
        path = config.folder() / name
        try:
            found = _npy_shape(path)
        except (OSError, ValueError) as exc:  # missing, unreadable, not .npy, torn
            return f"{path}: {' '.join(str(exc).split())[:160]}"
        if shape is not None and found != shape:
            return f"{path}: shape {found}, its record says {shape}"
    return None


def _part_record(config: EmbedPartsConfig, part: Part) -> dict | None:
    """The record of ``part``'s cached embeddings when they are current and readable; else None (recomputed)."""
    path = config.folder() / f"{part.name}.json"
    try:
        record = read_json(path, error=StoreError, fix="recomputing")
    except FileNotFoundError:
        return None
    except StoreError as exc:
        logger.warning("%s", exc)
        return None
    if not isinstance(record, dict) or record.get("key") != config.part_key(part):
        return None
    problem = _cache_problem(config, part, record)
    if problem is not None:
        logger.warning("%s: recomputing the embeddings of %s", problem, part.name)
        return None
    return record


def _save_array(path: Path, array: np.ndarray) -> None:
    with atomic_write(path) as handle:
        np.save(handle, array, allow_pickle=False)


def embed_part(part: Part, config: EmbedPartsConfig, encoder: TextEncoder | None = None) -> dict:
    """Embed every caption of ``part`` (NaN → "None", as the reference) unless its record is current.

    Writes ``<part>.npy`` (float32, L2-normalised), ``<part>.ids.npy`` (row ids) and, last, the record.
    """
    done = _part_record(config, part)
    if done is not None:
        return done
    if encoder is None:
        from ..rebuild.textsim import load_encoder

        encoder = load_encoder(config.encoder, device=config.device)
    local = fetch_part(part, download_dir=Path(config.work_dir) / "downloads")
    vectors, ids = [], []
    for batch in iter_part_batches(local, part.index, config.columns, batch_rows=config.batch_rows):
        texts = ["None" if c is None else c for c in batch.column("caption").to_pylist()]
        vectors.append(np.asarray(encoder.encode(texts), np.float32))
        ids.append(batch.column("row_id").to_numpy())
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32)
    folder = config.folder()
    _save_array(folder / f"{part.name}.npy", matrix)
    _save_array(folder / f"{part.name}.ids.npy", np.concatenate(ids) if ids else np.zeros(0, np.int64))
    record = {"key": config.part_key(part), "part": part.name, "encoder": config.encoder, "rows": len(matrix),
              "dim": int(matrix.shape[1]) if matrix.size else 0}
    write_text_atomic(folder / f"{part.name}.json", json.dumps(record, sort_keys=True) + "\n")
    return record


def embed_parts(parts: list[Part], config: EmbedPartsConfig, *, executor: str = "local", address: str | None = None,
                num_gpus: float = 0, encoder: TextEncoder | None = None) -> list[dict]:
    """:func:`embed_part` over ``parts`` on the rebuild executors (``local`` or ``ray``); part records."""
    from ..rebuild.executors import map_parts

    if executor == "local" and encoder is None:  # one encoder for every part, loaded only if one needs it
        pending = [p for p in parts if _part_record(config, p) is None]
        if pending:
            from ..rebuild.textsim import load_encoder

            encoder = load_encoder(config.encoder, device=config.device)
    fn = functools.partial(embed_part, config=config, encoder=encoder)
    return map_parts(fn, parts, executor=executor, address=address, num_gpus=num_gpus, desc="embed captions")


@dataclass
class FaissIndex:
    """A FAISS inner-product index over LAION caption embeddings, with what built it."""

    index: Any  # faiss.Index; ids are LAION row ids
    encoder: str
    dim: int
    kind: str
    meta: dict

    def search(self, queries: np.ndarray, *, k: int = 1, nprobe: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, row ids), each (n, k); an IVF index looks at ``nprobe`` lists."""
        faiss = _faiss()
        if self.kind == "ivfpq":
            faiss.extract_index_ivf(self.index).nprobe = nprobe
        return self.index.search(np.ascontiguousarray(queries, np.float32), k)


def _divisor_at_most(d: int, limit: int) -> int:
    return max(m for m in range(1, min(d, limit) + 1) if d % m == 0)


def _new_index(kind: str, dim: int, n: int, nlist: int | None, pq_m: int | None, pq_bits: int):
    faiss = _faiss()
    if kind == "flat":
        return faiss.IndexIDMap(faiss.IndexFlatIP(dim)), "IDMap,FlatIP"
    nlist = nlist or max(1, min(65_536, int(4 * math.sqrt(n))))
    pq_m = pq_m or _divisor_at_most(dim, 64)
    if dim % pq_m:
        raise ConfigError(f"--pq-m {pq_m} must divide the embedding dimension {dim}")
    factory = f"IVF{nlist},PQ{pq_m}" + (f"x{pq_bits}" if pq_bits != 8 else "")
    return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT), factory


def _training_sample(arrays: list[Path], n_total: int, size: int) -> np.ndarray:
    """Evenly spaced rows of every part, ``size`` in all (deterministic), read part by part."""
    take = []
    for path in arrays:
        part = np.load(path, mmap_mode="r")
        count = max(1, round(size * len(part) / max(n_total, 1))) if len(part) else 0
        take.append(np.asarray(part[np.linspace(0, len(part) - 1, num=min(count, len(part)), dtype=np.int64)]))
    return np.concatenate(take).astype(np.float32)


def build_faiss_index(parts: list[Part], config: EmbedPartsConfig, *, kind: str = "flat", nlist: int | None = None,
                      pq_m: int | None = None, pq_bits: int = 8, train_size: int = 100_000) -> FaissIndex:
    """An inner-product index over every part's embeddings, written to ``<work>/faiss/`` (reused when current).

    Vectors are added part by part (memory: one part plus the index). ``ivfpq`` trains its ``nlist``
    lists and its ``pq_m`` codebooks of 2^``pq_bits`` centroids on ``train_size`` evenly spaced vectors first.
    """
    faiss = _faiss()
    if kind not in INDEX_KINDS:
        raise ConfigError(f"index kind {kind!r}: use one of {INDEX_KINDS}")
    found = [_part_record(config, p) for p in parts]
    missing = [p.name for p, r in zip(parts, found, strict=True) if r is None]
    if missing:
        raise ConfigError(f"parts {missing[:5]} have no current caption embeddings for {config.encoder}: "
                          "embed them first (explain text-search does it)")
    records = [r for r in found if r is not None]
    dims = {r["dim"] for r in records if r["rows"]}
    if len(dims) != 1:
        raise DatasetError(f"{config.folder()}: parts have embedding dimensions {sorted(dims)}; re-embed them")
    dim, n = dims.pop(), sum(r["rows"] for r in records)
    folder = Path(config.work_dir) / "faiss"
    key = _key("faiss", [r["key"] for r in records], kind, nlist, pq_m, pq_bits, train_size)
    meta_path = folder / "index.json"
    try:
        if meta_path.is_file() and _index_meta(meta_path).get("key") == key:
            return load_faiss_index(folder, encoder=config.encoder, dim=dim)
    except DatasetError as exc:  # this folder is the work dir's cache: a broken index is built again
        logger.warning("rebuilding the FAISS index in %s: %s", folder, exc)
    index, factory = _new_index(kind, dim, n, nlist, pq_m, pq_bits)
    arrays = [config.folder() / f"{p.name}.npy" for p in parts]
    if kind == "ivfpq":
        index.train(_training_sample(arrays, n, train_size))
    for path in arrays:
        vectors = np.load(path)
        if len(vectors):
            index.add_with_ids(vectors, np.load(path.with_suffix(".ids.npy")))
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "index.faiss") as handle:  # streamed: no in-memory copy of the index
        faiss.write_index(index, faiss.PyCallbackIOWriter(handle.write))
    meta = {"key": key, "encoder": config.encoder, "dim": dim, "kind": kind, "factory": factory, "ntotal": int(n),
            "parts": [p.name for p in parts]}
    write_text_atomic(meta_path, json.dumps(meta, indent=2) + "\n")
    return FaissIndex(index, config.encoder, dim, kind, meta)


#: What to do about a FAISS index folder that cannot be used.
_REBUILD = "rebuild it: explain text-search without --faiss-index builds one in its --work folder"


def _index_meta(path: Path) -> dict:
    """``index.json``, checked to hold what the search needs."""
    meta = read_json(path, error=DatasetError, fix=_REBUILD)
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: holds a JSON {type(meta).__name__}, not the index's record; {_REBUILD}")
    for name, ok in (("encoder", isinstance(meta.get("encoder"), str)),
                     ("dim", isinstance(meta.get("dim"), int) and meta["dim"] > 0),
                     ("kind", meta.get("kind") in INDEX_KINDS)):
        if not ok:
            raise DatasetError(f"{path}: field {name!r} is {json.dumps(meta.get(name))[:40]}, not what "
                               f"build_faiss_index writes; {_REBUILD}")
    return meta


def _read_index(path: Path, dim: int) -> Any:
    """``index.faiss`` as FAISS reads it, holding ``dim``-dimensional vectors."""
    try:
        index = _faiss().read_index(str(path))
    except RuntimeError as exc:  # FAISS says "Error in <function> at <file>:<line>: <what>"
        what = re.sub(r"^Error in .*? at \S+:\d+: ", "", " ".join(str(exc).split()))
        raise DatasetError(f"{path}: FAISS cannot read it ({what[:160]}); {_REBUILD}") from None
    if index.d != dim:
        raise DatasetError(f"{path}: holds {index.d}-dimensional vectors, index.json beside it says {dim}; {_REBUILD}")
    return index


def load_faiss_index(folder: str | Path, *, encoder: str, dim: int | None = None) -> FaissIndex:
    """Read ``index.faiss`` + ``index.json``; refuses an index built with another encoder or dimension.

    A file that cannot be read or holds something else is a one-line ``DatasetError`` naming it.
    """
    folder = Path(folder)
    meta_path = folder / "index.json"
    if not meta_path.is_file() or not (folder / "index.faiss").is_file():
        raise DatasetError(f"{folder}: no index.faiss + index.json; build the index first")
    meta = _index_meta(meta_path)
    if meta.get("encoder") != encoder:
        raise ConfigError(f"{folder}: the FAISS index was built with encoder {meta.get('encoder')!r}, not {encoder!r}: "
                          "its vectors are not comparable; search with that encoder or rebuild the index")
    if dim is not None and meta.get("dim") != dim:
        raise ConfigError(f"{folder}: the FAISS index holds {meta.get('dim')}-dimensional vectors, the queries are "
                          f"{dim}-dimensional; rebuild the index with the same encoder")
    index = _read_index(folder / "index.faiss", meta["dim"])
    return FaissIndex(index, encoder, meta["dim"], meta["kind"], meta)


def _laion_rows(parts: list[Part], config: EmbedPartsConfig, row_ids: np.ndarray) -> pd.DataFrame:
    """The LAION metadata of ``row_ids``, read part by part in batches."""
    wanted = set(int(r) for r in row_ids)
    frames = []
    for part in parts:
        local = fetch_part(part, download_dir=Path(config.work_dir) / "downloads")
        for batch in iter_part_batches(local, part.index, config.columns, batch_rows=config.batch_rows):
            frame = batch.to_pandas()
            frames.append(frame[frame["row_id"].isin(wanted)])
    return pd.concat(frames, ignore_index=True)


def search_variant(matches: pd.DataFrame, rows: pd.DataFrame, *, encoder: TextEncoder, variant: str) -> pd.DataFrame:
    """Kept matches (one per LAION row: its most similar caption) + LAION metadata → an index-schema frame."""
    from ..rebuild.card import index_frame
    from ..rebuild.textsim import caption_similarities

    best = matches.sort_values(["search_similarity", "filename"], ascending=[False, True]).drop_duplicates("row_id")
    joined = rows.merge(best, on="row_id", how="inner")
    joined = joined[joined["caption"].notna() & (joined["caption"].str.strip() != "")].reset_index(drop=True)
    joined["similarity"] = caption_similarities(joined["caption"].tolist(), joined["wnid"].tolist(), encoder)
    joined["ocr_flag"] = False
    joined = joined.rename(columns={"search_similarity": "x_search_similarity", "filename": "x_imagenet_filename"})
    return index_frame(joined, variant=variant, encoder=encoder.name)


@dataclass
class TextSearchReport:
    """What ``run_text_search`` found; ``to_dict`` is the body of ``summary.json``."""

    n_captions: int
    n_above_threshold: int  # captions whose top-1 neighbour is more similar than the threshold
    n_rows: int  # distinct LAION rows in the variant
    n_classes: int
    threshold: float
    variant: str
    index: dict
    files: dict[str, str]

    def to_dict(self) -> dict:
        return asdict(self)


def run_text_search(
    captions: str | Path,
    parts: list[str],
    *,
    encoder: str,
    work_dir: str | Path,
    out: str | Path | None = None,
    threshold: float = SEARCH_THRESHOLD,
    kind: str = "flat",
    nlist: int | None = None,
    pq_m: int | None = None,
    pq_bits: int = 8,
    nprobe: int = 32,
    index_dir: str | Path | None = None,
    columns: ColumnMap | None = None,
    executor: str = "local",
    address: str | None = None,
    device: str | None = None,
    text_encoder: TextEncoder | None = None,
    chunk: int = 4096,
) -> TextSearchReport:
    """Embed the parts → FAISS index → top-1 per ImageNet caption → the variant (see the module docstring).

    ``index_dir``: search a FAISS index built before (``index.faiss`` + ``index.json``) instead of embedding
    the parts and building one; it is refused when its encoder or dimension is not the queries'. The
    parts are then read only for the metadata of the rows found.
    """
    from ..index.schema import write_index
    from ..rebuild.textsim import load_encoder
    from ._output import experiment_dir, write_summary, write_table
    from .captions import read_imagenet_captions

    resolved = resolve_parts(parts)
    config = EmbedPartsConfig(work_dir=str(work_dir), encoder=encoder, columns=columns or ColumnMap(), device=device)
    prebuilt = load_faiss_index(index_dir, encoder=encoder) if index_dir is not None else None  # refuse early
    table = read_imagenet_captions(captions)
    given = text_encoder is not None  # an object of the caller's: shipped to Ray workers too
    text_encoder = text_encoder or load_encoder(encoder, device=device)
    if prebuilt is None:
        embed_parts(resolved, config, executor=executor, address=address,
                    encoder=text_encoder if executor == "local" or given else None)
        faiss_index = build_faiss_index(resolved, config, kind=kind, nlist=nlist, pq_m=pq_m, pq_bits=pq_bits)
        index_dir = Path(work_dir) / "faiss"
    else:
        faiss_index = prebuilt
    sims, ids = [], []
    for start in range(0, len(table), chunk):
        queries = np.asarray(text_encoder.encode(table["caption"].iloc[start:start + chunk].tolist()), np.float32)
        if queries.shape[1] != faiss_index.dim:
            # index_dir: given with the prebuilt index, or the one built above
            load_faiss_index(cast("str | Path", index_dir), encoder=encoder, dim=queries.shape[1])  # raises with the reason
        s, i = faiss_index.search(queries, k=1, nprobe=nprobe)
        sims.append(s[:, 0])
        ids.append(i[:, 0])
    matches = table[["filename", "wnid"]].assign(row_id=np.concatenate(ids), search_similarity=np.concatenate(sims))
    folder = experiment_dir(out, "text-search")
    files = write_table(matches, folder, "matches", parquet=True)
    kept = matches[(matches["search_similarity"] > threshold) & (matches["row_id"] >= 0)]
    variant = f"text_search_{threshold:g}"
    n_rows = n_classes = 0
    if len(kept):
        frame = search_variant(kept, _laion_rows(resolved, config, kept["row_id"].to_numpy()), encoder=text_encoder,
                               variant=variant)
        write_index(frame, folder / f"{variant}.parquet")
        files["variant"] = str(folder / f"{variant}.parquet")
        n_rows, n_classes = len(frame), int(frame["wnid"].nunique())
    else:
        logger.warning("no caption's top-1 neighbour is more similar than %g: no variant written", threshold)
    report = TextSearchReport(n_captions=len(table), n_above_threshold=len(kept), n_rows=n_rows, n_classes=n_classes,
                              threshold=threshold, variant=variant,
                              index={k: v for k, v in faiss_index.meta.items() if k != "parts"}, files=files)
    files["summary"] = str(write_summary(folder, {"experiment": "text-search", **report.to_dict()}))
    return report
