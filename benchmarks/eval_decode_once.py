"""k models sharing one preprocessing: decode-once engine vs the per-model loop (each model decodes itself).

    PYTHONPATH=$PWD python benchmarks/eval_decode_once.py --images 240 --size 800x600 --repeat 5

The per-model loop runs the same engine once per model (what running timm's validate.py per model
does: every run decodes every image). Both sides use the same images, batch size and workers. The CPU
is shared with other jobs, so the sides are interleaved (alternating which goes first), each repetition
gives one paired speed-up, and the median is reported with every run and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _eval_common import Timer, image_folder, photo_jpegs, synthetic_index

from laionet_bench.datasets import create_dataset
from laionet_bench.evaluation.engine import EngineOptions, run_models

#: One preprocessing group (160 px, bicubic, crop 0.95). The ViTs' forward is cheaper than decoding a
#: large JPEG — the regime of a GPU; ``--models`` with heavier CPU models shows the other regime.
DEFAULT_MODELS = ["test_vit.r160_in1k", "test_vit2.r160_in1k", "test_vit3.r160_in1k"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--size", default="800x600")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    specs = args.models
    size = tuple(int(s) for s in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        index = synthetic_index(tmp, args.images, classes=20)
        folder = image_folder(tmp / "imgs", index, photo_jpegs(48, size))
        weights = {}
        for spec in specs:
            import timm

            path = tmp / f"{spec}.pth"
            torch.save(timm.create_model(spec.split(".")[0]).state_dict(), path)
            weights[spec] = path
        data = create_dataset("laionet", index=index, images=folder)
        options = EngineOptions(batch_size=args.batch_size, workers=args.workers)
        run_models(specs[:1], data, store_root=tmp / "warm", weights=weights, options=options)  # warm caches
        load_before = os.getloadavg()
        loop_s, shared_s = [], []
        for rep in range(args.repeat):  # interleaved, alternating which side goes first
            for side in ("shared", "loop") if rep % 2 == 0 else ("loop", "shared"):
                with Timer() as timer:
                    if side == "shared":
                        run_models(specs, data, store_root=tmp / f"shared{rep}", weights=weights, options=options)
                    else:
                        for spec in specs:
                            run_models([spec], data, store_root=tmp / f"loop{rep}", weights=weights, options=options)
                (shared_s if side == "shared" else loop_s).append(timer.seconds)
    speedups = [loop / shared for loop, shared in zip(loop_s, shared_s, strict=True)]
    print(json.dumps({"images": args.images, "size": args.size, "models": specs, "batch_size": args.batch_size,
                      "workers": args.workers, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                      "per_model_loop_s": [round(s, 2) for s in loop_s], "decode_once_s": [round(s, 2) for s in shared_s],
                      "speedup_per_repetition": [round(s, 2) for s in speedups],
                      "speedup_median_of_paired": round(statistics.median(speedups), 2),
                      "speedup_median_vs_median": round(statistics.median(loop_s) / statistics.median(shared_s), 2),
                      "load_average_before_after": [[round(x, 2) for x in load_before],
                                                    [round(x, 2) for x in os.getloadavg()]],
                      "finished": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1))

if __name__ == "__main__":
    main()
