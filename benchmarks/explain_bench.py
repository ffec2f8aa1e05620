"""Speed and memory of the explain experiments (results and commands in benchmarks/explain_results.md).

``captions``  the §4.3 stream (:func:`laionet_bench.explain.captions.caption_ranks`) over n captions × the
              1000 synset texts, for several n: time should grow linearly and the peak of traced memory
              (numpy allocations, tracemalloc) stay flat, set by the chunk, not by n.
``faiss``     :func:`~laionet_bench.explain.text_search.build_faiss_index` + search on synthetic unit vectors
              written as per-part embeddings (the same files the embedding step writes): build and search
              throughput and the process's peak RSS, one subprocess per index kind.
``imagetext`` :func:`~laionet_bench.explain.multimodal.image_text_similarities` through the engine's decoder
              with a random-init open_clip ViT-B-32 zero-shot head (registered as local weights, offline)
              on the built demo's LAIONet-demo images.

    python benchmarks/explain_bench.py captions --n 25000 50000 100000
    python benchmarks/explain_bench.py faiss --n 1000000 --dim 512 --kind flat
    python benchmarks/explain_bench.py faiss --n 1000000 --dim 512 --kind ivfpq --nlist 1024 --pq-m 64
    python benchmarks/explain_bench.py imagetext --limit 128
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class RandomEncoder:
    """Unit vectors drawn per call (cheap next to the similarity blocks being measured)."""

    name = "random"

    def __init__(self, dim: int):
        self.dim = dim
        self.rng = np.random.default_rng(0)

    def encode(self, texts):
        x = self.rng.standard_normal((len(texts), self.dim), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def bench_captions(ns: list[int], *, dim: int, chunk: int) -> list[dict]:
    from laionet_bench.catalog import load_catalog
    from laionet_bench.explain.captions import caption_ranks

    wnids = load_catalog().wnids
    out = []
    for n in ns:
        labels = [wnids[i % 1000] for i in range(n)]
        captions = ["x"] * n
        encoder = RandomEncoder(dim)
        tracemalloc.start()
        start = time.perf_counter()
        caption_ranks(captions, labels, encoder, chunk=chunk)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out.append({"n": n, "k": 1000, "dim": dim, "chunk": chunk, "seconds": round(seconds, 2),
                    "captions_per_s": round(n / seconds), "peak_traced_mib": round(peak / 2**20, 1),
                    "full_matrix_float64_mib": round(n * 1000 * 8 / 2**20, 1)})
        print(json.dumps(out[-1]), flush=True)
    return out


def bench_faiss(n: int, *, dim: int, kind: str, nlist: int | None, pq_m: int | None, parts: int, queries: int) -> dict:
    from laionet_bench._io import write_text_atomic
    from laionet_bench.explain.text_search import EmbedPartsConfig, build_faiss_index
    from laionet_bench.rebuild.parts import Part

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as work:
        config = EmbedPartsConfig(work_dir=work, encoder="random")
        folder = config.folder()
        folder.mkdir(parents=True)
        plist, per_part = [], n // parts
        for p in range(parts):
            part = Part(index=p, name=f"part-{p:05d}", path=f"synthetic-{p}")
            x = rng.standard_normal((per_part, dim), dtype=np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            np.save(folder / f"{part.name}.npy", x)
            np.save(folder / f"{part.name}.ids.npy", np.arange(p * 10**8, p * 10**8 + per_part, dtype=np.int64))
            write_text_atomic(folder / f"{part.name}.json", json.dumps(
                {"key": config.part_key(part), "rows": per_part, "dim": dim}))
            plist.append(part)
        del x
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        index = build_faiss_index(plist, config, kind=kind, nlist=nlist, pq_m=pq_m)
        build = time.perf_counter() - start
        q = rng.standard_normal((queries, dim), dtype=np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        start = time.perf_counter()
        index.search(q, k=1, nprobe=32)
        search = time.perf_counter() - start
        size = (Path(work) / "faiss" / "index.faiss").stat().st_size
    result = {"n": n, "dim": dim, "kind": kind, "factory": index.meta["factory"], "parts": parts,
              "build_s": round(build, 1), "build_vectors_per_s": round(n / build),
              "queries": queries, "search_s": round(search, 2), "queries_per_s": round(queries / search, 1),
              "index_file_mib": round(size / 2**20, 1), "peak_rss_mib_before_build": round(rss_before),
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    print(json.dumps(result), flush=True)
    return result


def bench_imagetext(limit: int, *, batch_size: int, workers: int) -> dict:
    import open_clip
    import torch

    from laionet_bench import models
    from laionet_bench.datasets import create_dataset
    from laionet_bench.demo.build import default_demo_dir
    from laionet_bench.explain.multimodal import image_text_similarities

    root = default_demo_dir()
    index = root / "laionet-demo" / "data" / "minilm_0.45.parquet"
    if not index.is_file():
        raise SystemExit(f"{index}: build the demo first (laionet-bench explain captions --demo)")
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        weights = Path(tmp) / "vitb32-random.pt"
        torch.save(open_clip.create_model("ViT-B-32").state_dict(), weights)
        spec = models.register_local_weights("openclip:ViT-B-32/random", weights)
        dataset = create_dataset("laionet", index=index, images=root / "pool_images", limit=limit)
        start = time.perf_counter()
        models.build_model(spec)  # the zero-shot head alone: 1000 synset texts through the text tower
        head = time.perf_counter() - start
        start = time.perf_counter()
        image_text_similarities(dataset, model=spec, batch_size=batch_size, workers=workers)
        seconds = time.perf_counter() - start
    result = {"images": len(dataset), "model": "ViT-B-32 (random init) zero-shot, 1000 synset texts",
              "batch_size": batch_size, "workers": workers, "head_s": round(head, 1), "total_s": round(seconds, 1),
              "images_per_s_excl_head": round(len(dataset) / max(seconds - head, 1e-9), 1),
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("captions")
    c.add_argument("--n", nargs="+", type=int, default=[25_000, 50_000, 100_000])
    c.add_argument("--dim", type=int, default=512)
    c.add_argument("--chunk", type=int, default=4096)
    f = sub.add_parser("faiss")
    f.add_argument("--n", type=int, default=1_000_000)
    f.add_argument("--dim", type=int, default=512)
    f.add_argument("--kind", choices=("flat", "ivfpq"), default="flat")
    f.add_argument("--nlist", type=int)
    f.add_argument("--pq-m", type=int)
    f.add_argument("--parts", type=int, default=4)
    f.add_argument("--queries", type=int, default=1000)
    i = sub.add_parser("imagetext")
    i.add_argument("--limit", type=int, default=128)
    i.add_argument("--batch-size", type=int, default=32)
    i.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.what == "captions":
        bench_captions(args.n, dim=args.dim, chunk=args.chunk)
    elif args.what == "faiss":
        bench_faiss(args.n, dim=args.dim, kind=args.kind, nlist=args.nlist, pq_m=args.pq_m, parts=args.parts,
                    queries=args.queries)
    else:
        bench_imagetext(args.limit, batch_size=args.batch_size, workers=args.workers)


if __name__ == "__main__":
    main()
