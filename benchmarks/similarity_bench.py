"""Statistics time vs embedding time for the intra-class similarity step (issue 7).

Statistics: 1,000 classes x 100 images, d = 512 (random unit vectors around a class centre), through
the fast path (``per_class_stats``: O(n·d) mean, smaller-Gram std), the naive path (n×n matrix, lower
triangle, np.mean/np.std as the reference), the pooled histogram and the per-class test.

Embedding: the throughput of open_clip ViT-B-32 (random init, 224 px; the paper's architecture) on a
few batches of 500x375 photos-sized images, preprocessing included, extrapolated to 100,000 images.

    PYTHONPATH=$PWD python benchmarks/similarity_bench.py [--batches 3] [--batch-size 32] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def make_classes(n_classes: int, n: int, d: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for c in range(n_classes):
        x = rng.normal(size=(n, d)).astype(np.float32) * 0.8 + rng.normal(size=d).astype(np.float32)
        out[f"n{c:08d}"] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def bench_statistics(n_classes: int, n: int, d: int) -> dict:
    from laionet_bench.similarity.stats import compare_classes, per_class_stats, pooled_histogram

    a, b = make_classes(n_classes, n, d, 0), make_classes(n_classes, n, d, 1)
    fast, t_fast = timed(per_class_stats, a)
    naive, t_naive = timed(per_class_stats, a, naive=True)
    stats_b = per_class_stats(b)
    _, t_hist = timed(pooled_histogram, {"a": a, "b": b}, seed=0)
    _, t_test = timed(compare_classes, fast, stats_b, a="a", b="b")
    return {
        "classes": n_classes, "images_per_class": n, "dim": d,
        "fast_per_dataset_s": t_fast, "naive_per_dataset_s": t_naive,
        "histogram_s": t_hist, "per_class_test_s": t_test,
        "total_two_datasets_s": 2 * t_fast + t_hist + t_test,
        "max_abs_diff_mean": float((fast["mean"] - naive["mean"]).abs().max()),
        "max_abs_diff_std": float((fast["std"] - naive["std"]).abs().max()),
    }


def bench_embedding(batches: int, batch_size: int, total_images: int) -> dict:
    import torch
    from PIL import Image

    from laionet_bench.similarity.encoders import create_encoder

    encoder = create_encoder("openclip:ViT-B-32", random_init=True)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8), "RGB") for _ in range(batch_size)]
    encoder.encode(torch.stack([encoder.transform(i) for i in images[:4]]))  # warm-up
    start = time.perf_counter()
    for _ in range(batches):
        encoder.encode(torch.stack([encoder.transform(i) for i in images]))
    seconds = time.perf_counter() - start
    per_image = seconds / (batches * batch_size)
    return {"encoder": "openclip:ViT-B-32 (random init, 224 px)", "images_measured": batches * batch_size,
            "batch_size": batch_size, "images_per_s": 1 / per_image, "extrapolated_images": total_images,
            "extrapolated_s": per_image * total_images, "torch_threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    stats = bench_statistics(args.classes, args.per_class, args.dim)
    embed = bench_embedding(args.batches, args.batch_size, args.classes * args.per_class)
    share = stats["total_two_datasets_s"] / embed["extrapolated_s"]
    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "statistics": stats, "embedding": embed, "statistics_share_of_embedding": share}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
