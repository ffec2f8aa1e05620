"""``--shard i/N`` balance for ``--models all``: each shard's forward GPU-hours, priced with the shipped RTX 4090 table.

    python benchmarks/shard_balance.py [N]    # default 8; ImageNet-val (50,000) + LAIONet (800,000) images

Prints each shard's GPU-hours (one GPU per shard) and the slowest shard over the mean (issue 22: ≤ 1.2).
"""

from __future__ import annotations

import sys

from laionet_bench.evaluation.estimate import load_throughput
from laionet_bench.evaluation.work import shard_pairs
from laionet_bench.models import expand_model_specs
from laionet_bench.models.footprints import model_counts
from laionet_bench.models.registry import resolve_data_config


def main(count: int = 8) -> None:
    specs = expand_model_specs(["all"])
    datasets = {"imagenet-val": range(50_000), "laionet": range(800_000)}
    table = load_throughput()
    seconds = {s: 1 / table.images_per_second(s, resolve_data_config(s)["input_size"][-1],
                                              model_counts(s).parameters)[0] for s in specs}
    hours = [sum(len(datasets[n]) * seconds[s] for s, n in shard_pairs(specs, datasets, (i, count))) / 3600
             for i in range(1, count + 1)]
    mean = sum(hours) / count
    print(f"{len(specs)} models, {count} shards, GPU-hours per shard: {', '.join(f'{h:.1f}' for h in hours)}")
    print(f"slowest / mean = {max(hours) / mean:.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
