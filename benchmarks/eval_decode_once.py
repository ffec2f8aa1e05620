"""k models sharing one preprocessing: the wave engine vs timm's own eval loop run once per model.

    PYTHONPATH=$PWD HF_HUB_OFFLINE=1 python benchmarks/eval_decode_once.py --images 240 --size 800x600 --repeat 5

The per-model side is timm's own evaluation loop, as ``timm/validate.py`` runs it, once per model: build
the model (``timm.create_model`` with the weights file), ``timm.data.create_dataset`` over the image
folder, ``timm.data.create_loader`` with the model's data config (every run decodes, resizes and crops
every image), then ``model(x)`` and top-5 per batch. The decode-once side is one ``run_models`` call of
the engine over the k models (one wave: builds, one decode, the k forwards, ranking and storing every
prediction). Both sides use the same images, weights files, batch size, workers and torch threads. The
CPU is shared with other jobs, so the sides are interleaved (rotating which goes first), each
repetition gives one paired speed-up, and the median is reported with every run and the load average;
CPU seconds per side (its process and its finished decoding workers) are reported as well, being less
sensitive to other jobs than wall time.

glibc's allocator is set per process (``evaluation.allocator``), so each side runs in a worker process that
lives for the whole benchmark (warmed up once, as the in-process sides were) with its allocator: the engine
with ``--engine-allocator`` (default ``tuned``, what the CLI sets), timm's loop with glibc's ``default``
settings (timm as users run it: ``speedup_median_of_paired``, the ratio recorded so far) and with the
engine's setting (``speedup_same_allocator_median_of_paired``: the decode-once gain alone).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
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
#: Prefix of a worker's result lines on its stdout.
RESULT = "@result "


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


def worker(allocator: str, setup_file: str) -> None:
    """One side's process: set the allocator, warm up, then time each ``shared``/``loop`` line read from stdin."""
    from laionet_bench.evaluation.allocator import tune_allocator

    tune_allocator(allocator)
    setup = json.loads(Path(setup_file).read_text())
    specs, folder, tmp = setup["specs"], Path(setup["folder"]), Path(setup["tmp"])
    weights = {spec: Path(path) for spec, path in setup["weights"].items()}
    data = create_dataset("laionet", index=setup["index"], images=folder)
    options = EngineOptions(batch_size=setup["batch_size"], workers=setup["workers"])
    loop = {"batch_size": setup["batch_size"], "workers": setup["workers"]}
    run_models(specs[:1], data, store_root=tmp / f"warm-{allocator}", weights=weights, options=options)  # warm caches
    timm_eval(specs[0], folder, weights[specs[0]], **loop)
    print(RESULT + json.dumps({"ready": allocator, "torch_threads": torch.get_num_threads()}), flush=True)
    for number, line in enumerate(sys.stdin):
        cpu = cpu_seconds()
        with Timer() as timer:
            if line.strip() == "shared":
                run_models(specs, data, store_root=tmp / f"shared-{allocator}-{number}", weights=weights, options=options)
            else:
                for spec in specs:
                    timm_eval(spec, folder, weights[spec], **loop)
        print(RESULT + json.dumps({"seconds": timer.seconds, "cpu": cpu_seconds() - cpu}), flush=True)


class Side:
    """A worker process for one (side, allocator); ``run()`` times one repetition of its side."""

    def __init__(self, side: str, allocator: str, setup_file: Path):
        self.side, self.allocator = side, allocator
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", allocator, "--setup", str(setup_file)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self._read()
        self.seconds: list[float] = []
        self.cpu: list[float] = []

    def _read(self) -> dict:
        """The worker's next result line (anything a library prints to stdout is skipped)."""
        for line in self.proc.stdout:
            if line.startswith(RESULT):
                return json.loads(line[len(RESULT):])
        raise SystemExit(f"the {self.side} worker ({self.allocator}) exited with {self.proc.wait()}")

    def run(self) -> None:
        self.proc.stdin.write(self.side + "\n")
        self.proc.stdin.flush()
        result = self._read()
        self.seconds.append(result["seconds"])
        self.cpu.append(result["cpu"])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def _ratios(loop: Side, shared: Side, prefix: str) -> dict:
    """timm's loop over the decode-once engine: per repetition, medians, CPU seconds."""
    speedups = [a / b for a, b in zip(loop.seconds, shared.seconds, strict=True)]
    return {f"timm_eval_loop{prefix}_s": [round(s, 2) for s in loop.seconds],
            f"speedup{prefix}_per_repetition": [round(s, 2) for s in speedups],
            f"speedup{prefix}_median_of_paired": round(statistics.median(speedups), 2),
            f"speedup{prefix}_median_vs_median": round(statistics.median(loop.seconds) / statistics.median(shared.seconds), 2),
            f"cpu_s_timm_loop{prefix}": [round(s, 2) for s in loop.cpu],
            f"cpu_ratio{prefix}_median": round(statistics.median(loop.cpu) / statistics.median(shared.cpu), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--size", default="800x600")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--engine-allocator", choices=["tuned", "default"], default="tuned",
                        help="the engine side's allocator (default: %(default)s, as the CLI runs it)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one side with this allocator
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.setup)
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
            weights[spec] = str(path)
        setup = tmp / "setup.json"
        setup.write_text(json.dumps({"specs": specs, "folder": str(folder), "tmp": str(tmp), "index": str(index),
                                     "weights": weights, "batch_size": args.batch_size, "workers": args.workers}))
        shared = Side("shared", args.engine_allocator, setup)
        loop = Side("loop", "default", setup)
        same = Side("loop", args.engine_allocator, setup) if args.engine_allocator != "default" else loop
        sides = list(dict.fromkeys([shared, loop, same]))
        load_before = os.getloadavg()
        for rep in range(args.repeat):  # interleaved, rotating which side goes first
            for side in sides[rep % len(sides):] + sides[: rep % len(sides)]:
                side.run()
        for side in sides:
            side.close()
    print(json.dumps({"images": args.images, "size": args.size, "models": specs, "batch_size": args.batch_size,
                      "workers": args.workers, "torch_threads": shared.info["torch_threads"], "cpu_count": os.cpu_count(),
                      "engine_allocator": args.engine_allocator, "timm_loop_allocator": "default",
                      "decode_once_s": [round(s, 2) for s in shared.seconds],
                      "cpu_s_decode_once": [round(s, 2) for s in shared.cpu],
                      **_ratios(loop, shared, ""), **_ratios(same, shared, "_same_allocator"),
                      "load_average_before_after": [[round(x, 2) for x in load_before],
                                                    [round(x, 2) for x in os.getloadavg()]],
                      "finished": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1))


if __name__ == "__main__":
    main()
