"""k models sharing one preprocessing: the wave engine vs timm's own eval loop run once per model.

    PYTHONPATH=$PWD HF_HUB_OFFLINE=1 python benchmarks/eval_decode_once.py --images 240 --size 800x600 --repeat 5

The per-model side is timm's own evaluation loop, as ``timm/validate.py`` runs it, once per model: build
the model (``timm.create_model`` with the weights file), ``timm.data.create_dataset`` over the image
folder, ``timm.data.create_loader`` with the model's data config (every run decodes, resizes and crops
every image), then ``model(x)`` and top-5 per batch. The decode-once side is one ``run_models`` call of
the engine over the k models (one wave: builds, one decode, the k forwards, ranking and storing every
prediction). Both sides use the same images, weights files, batch size, workers and torch threads. The
CPU is shared with other jobs, so the sides are interleaved (alternating which goes first), each
repetition gives one paired speed-up, and the median is reported with every run and the load average;
CPU seconds per side (this process and its finished decoding workers) are reported as well, being less
sensitive to other jobs than wall time.
"""

from __future__ import annotations

import argparse
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
from laionet_bench.evaluation.engine import EngineOptions, run_models

#: One preprocessing group (160 px, bicubic, crop 0.95). The ViTs' forward is cheaper than decoding a
#: large JPEG — the regime of a GPU; ``--models`` with heavier CPU models shows the other regime.
DEFAULT_MODELS = ["test_vit.r160_in1k", "test_vit2.r160_in1k", "test_vit3.r160_in1k"]


def timm_eval(spec: str, folder: Path, weights: Path, *, batch_size: int, workers: int) -> None:
    """timm's own eval loop for one model (``validate.py`` on CPU, without its metrics bookkeeping)."""
    import timm
    import timm.data

    model = timm.create_model(spec, pretrained=True, pretrained_cfg_overlay={"file": str(weights)}).eval()
    config = timm.data.resolve_data_config(model=model, use_test_size=True)
    dataset = timm.data.create_dataset("", root=str(folder), split="validation")
    loader = timm.data.create_loader(dataset, input_size=config["input_size"], batch_size=batch_size,
                                     use_prefetcher=False, interpolation=config["interpolation"],
                                     mean=config["mean"], std=config["std"], num_workers=workers,
                                     crop_pct=config["crop_pct"], crop_mode=config.get("crop_mode"),
                                     persistent_workers=False, device=torch.device("cpu"))
    with torch.inference_mode():
        for images, _ in loader:
            model(images).softmax(dim=1).topk(5, dim=1)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the decoding workers): robust to a busy machine."""
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


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
        timm_eval(specs[0], folder, weights[specs[0]], batch_size=args.batch_size, workers=args.workers)
        load_before = os.getloadavg()
        loop_s, shared_s, loop_cpu, shared_cpu = [], [], [], []
        for rep in range(args.repeat):  # interleaved, alternating which side goes first
            for side in ("shared", "loop") if rep % 2 == 0 else ("loop", "shared"):
                cpu = cpu_seconds()
                with Timer() as timer:
                    if side == "shared":
                        run_models(specs, data, store_root=tmp / f"shared{rep}", weights=weights, options=options)
                    else:
                        for spec in specs:
                            timm_eval(spec, folder, weights[spec], batch_size=args.batch_size, workers=args.workers)
                (shared_s if side == "shared" else loop_s).append(timer.seconds)
                (shared_cpu if side == "shared" else loop_cpu).append(cpu_seconds() - cpu)
    speedups = [loop / shared for loop, shared in zip(loop_s, shared_s, strict=True)]
    print(json.dumps({"images": args.images, "size": args.size, "models": specs, "batch_size": args.batch_size,
                      "workers": args.workers, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                      "timm_eval_loop_s": [round(s, 2) for s in loop_s], "decode_once_s": [round(s, 2) for s in shared_s],
                      "speedup_per_repetition": [round(s, 2) for s in speedups],
                      "speedup_median_of_paired": round(statistics.median(speedups), 2),
                      "speedup_median_vs_median": round(statistics.median(loop_s) / statistics.median(shared_s), 2),
                      "cpu_s_timm_loop": [round(s, 2) for s in loop_cpu], "cpu_s_decode_once": [round(s, 2) for s in shared_cpu],
                      "cpu_ratio_median": round(statistics.median(loop_cpu) / statistics.median(shared_cpu), 2),
                      "load_average_before_after": [[round(x, 2) for x in load_before],
                                                    [round(x, 2) for x in os.getloadavg()]],
                      "finished": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1))


if __name__ == "__main__":
    main()
