"""Peak RSS of a streaming evaluation on a large synthetic index (tiny images, one fast model).

    PYTHONPATH=$PWD python benchmarks/eval_memory.py --rows 20000 100000 200000

Each size runs in a fresh process: build a synthetic index and a folder of tiny ``<row_id>.jpg``
files, then evaluate ``test_vit`` through ``run_models`` and read the predictions back for metrics.
If the engine held all images (3x160x160 uint8) or all logits (1000 float32) per row, peak RSS would
grow by ~77 kB or ~4 kB per row; streaming keeps the growth to the listing and the stored top-5.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from _eval_common import Timer, image_folder, photo_jpegs, synthetic_index


def one(rows: int, workers: int) -> dict:
    import timm
    import torch

    from laionet_bench.datasets import create_dataset
    from laionet_bench.evaluation.engine import EngineOptions, run_models
    from laionet_bench.evaluation.metrics import per_class_recall
    from laionet_bench.evaluation.store import read_predictions

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        index = synthetic_index(tmp, rows, classes=1000)
        folder = image_folder(tmp / "imgs", index, photo_jpegs(64, (24, 18)))
        weights = tmp / "vit.pth"
        torch.save(timm.create_model("test_vit").state_dict(), weights)
        spec = "test_vit.r160_in1k"
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with Timer() as timer:
            data = create_dataset("laionet", index=index, images=folder)
            outcome = run_models([spec], data, store_root=tmp / "store", weights={spec: weights},
                                 options=EngineOptions(batch_size=256, workers=workers))[spec]
            records = read_predictions(outcome.store, ["wnid", "ok", "true_rank"])
            per_class_recall(records["wnid"], records["true_rank"] == 0, records["true_rank"] < 5)
    return {"rows": rows, "seconds": round(timer.seconds, 1),
            "peak_rss_main_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_before_eval_mib": round(before / 1024, 1),
            "peak_rss_worker_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 100_000, 200_000])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(args.child, args.workers)))
        return
    for rows in args.rows:
        out = subprocess.run([sys.executable, __file__, "--child", str(rows), "--workers", str(args.workers)],
                             capture_output=True, text=True, check=True)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
