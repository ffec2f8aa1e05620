"""One model whose forward dominates: engine time vs pure forward on pre-decoded tensors.

    PYTHONPATH=$PWD python benchmarks/eval_forward_overhead.py \
        --model vit_base_patch16_224.augreg2_in21k_ft_in1k --images 96 --repeat 3

The pure side decodes and normalises every image up front, then times only ``model(batch)`` with the
same batch size, torch threads, dtype and memory format as the engine. The engine side is a full
``run_models`` call, timed end to end (model build, DataLoader workers decoding while the model runs,
ranking and storing the predictions). It is compared with the forward alone (strict) and with model
build + forward (what the data pipeline and bookkeeping add; building is a fixed cost both sides pay).
Both sides use the same random-init weights file. The CPU is shared with other jobs, so the sides are
interleaved (alternating which goes first), each repetition gives one paired ratio, and the medians
are reported; CPU seconds (this process + its decoding workers) are reported too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _eval_common import Timer, image_folder, photo_jpegs, synthetic_index

from laionet_bench.datasets import create_dataset
from laionet_bench.evaluation.engine import EngineOptions, make_decoder, run_models
from laionet_bench.models.registry import build_model


def pure_forward(spec: str, data, weights: dict, options: EngineOptions) -> tuple[float, float, float]:
    """(wall, CPU) seconds of ``model(batch)`` alone over all images, pre-decoded and normalised, same settings,
    and the wall seconds of building the model (which the engine's end-to-end time includes)."""
    with Timer() as build:
        loaded = build_model(spec, weights=weights)
    module = loaded.module.to(memory_format=torch.channels_last) if options.channels_last else loaded.module
    decoder = make_decoder(loaded.data_config)
    mean = torch.tensor(loaded.data_config["mean"]).view(1, 3, 1, 1) * 255
    std = torch.tensor(loaded.data_config["std"]).view(1, 3, 1, 1) * 255
    images = (torch.stack([decoder(data.open(s)) for s in data.samples()]).float() - mean) / std
    if options.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    batches = list(images.split(options.batch_size))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if options.amp == "bf16" else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        module(batches[0])  # warm-up (the engine's kernels are warm too after the first repetition)
        cpu = cpu_seconds()
        with Timer() as timer:
            for batch in batches:
                module(batch)
    return timer.seconds, cpu_seconds() - cpu, build.seconds


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the DataLoader workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def engine_run(spec: str, data, weights: dict, options: EngineOptions, store: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one end-to-end ``run_models`` call."""
    cpu = cpu_seconds()
    with Timer() as timer:
        run_models([spec], data, store_root=store, weights=weights, options=options)
    return timer.seconds, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--size", default="500x375", help="JPEG size")
    parser.add_argument("--model", default="resnet50.tv_in1k")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--amp", choices=["bf16"], default=None)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    options = EngineOptions(batch_size=args.batch_size, workers=args.workers, amp=args.amp,
                            channels_last=args.channels_last)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        import timm

        torch.manual_seed(0)
        weights = {args.model: tmp / "weights.pth"}
        torch.save(timm.create_model(args.model.split(".")[0]).state_dict(), weights[args.model])
        index = synthetic_index(tmp, args.images, classes=20)
        size = tuple(int(s) for s in args.size.split("x"))
        data = create_dataset("laionet", index=index, images=image_folder(tmp / "imgs", index, photo_jpegs(48, size)))
        engine_run(args.model, data, weights, options, tmp / "warm")  # imports, page cache, kernels
        pure, engine = [], []
        for rep in range(args.repeat):  # interleaved, alternating which side goes first
            for side in ("pure", "engine") if rep % 2 == 0 else ("engine", "pure"):
                if side == "pure":
                    pure.append(pure_forward(args.model, data, weights, options))
                else:
                    engine.append(engine_run(args.model, data, weights, options, tmp / f"s{rep}"))
    median = statistics.median
    print(json.dumps({
        "model": args.model, "images": args.images, "size": args.size, "batch_size": args.batch_size,
        "workers": args.workers, "amp": args.amp, "channels_last": args.channels_last,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "pure_forward_wall_s": [round(p[0], 2) for p in pure], "model_build_wall_s": [round(p[2], 2) for p in pure],
        "engine_wall_s": [round(e[0], 2) for e in engine],
        "pure_forward_cpu_s": [round(p[1], 2) for p in pure], "engine_cpu_s": [round(e[1], 2) for e in engine],
        "pure_ms_per_image_median": round(1000 * median(p[0] for p in pure) / args.images, 1),
        "overhead_vs_forward_median_of_paired": round(median(e[0] / p[0] for p, e in zip(pure, engine, strict=True)) - 1, 3),
        "overhead_vs_build_and_forward_median_of_paired":
            round(median(e[0] / (p[0] + p[2]) for p, e in zip(pure, engine, strict=True)) - 1, 3),
        "cpu_overhead_vs_forward_median_of_paired":
            round(median(e[1] / p[1] for p, e in zip(pure, engine, strict=True)) - 1, 3),
        "load_average_before_after": [[round(x, 2) for x in load_before], [round(x, 2) for x in os.getloadavg()]],
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }))

if __name__ == "__main__":
    main()
