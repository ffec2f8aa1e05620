"""Peak RSS of a budgeted run: one preprocessing group whose weights total ≥ 3x ``--max-memory``.

    PYTHONPATH=$PWD HF_HUB_OFFLINE=1 python benchmarks/eval_wave_memory.py --max-memory 0.25 --images 32

Ten ~22M-parameter models of the 224 px / bicubic / 0.9 group (random weights saved to files, ~0.82 GiB of
fp32 weights) are planned into waves within the budget by the real footprints, and run on CPU through
``run_datasets``. Measured in the main process, where the models live (``/proc/self/status``):

* **overhead**: RSS when the first model starts building: imports, the dataset listing, the decode worker
  already started; what any run holds besides its models;
* **per wave**: RSS when the wave starts (the previous wave released), its peak (``VmHWM``, reset through
  ``/proc/self/clear_refs`` at each wave start) and RSS after it released its models;
* **decodes**: every ``Dataset.open`` call, counted in the decode worker through an append-only file,
  against the number of waves.

The target: every wave's peak ≤ overhead + budget. Also reported: the largest checkpoint, which a model's
build holds beside the freshly initialised model until ``load_state_dict`` is done (the builds' peak is the
wave's peak on CPU), and each wave's peak while building (``build_peak_mib``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _eval_common import Timer, image_folder, photo_jpegs, synthetic_index

#: 224 px, bicubic, crop 0.9: one group; ~22M parameters each (88 MiB of fp32 weights).
MODELS = ["deit_small_patch16_224.fb_in1k", "deit3_small_patch16_224.fb_in1k",
          "deit_small_distilled_patch16_224.fb_in1k", "vit_small_patch16_224.augreg_in1k",
          "vit_small_patch16_224.augreg_in21k_ft_in1k", "vit_small_patch32_224.augreg_in21k_ft_in1k",
          "vit_relpos_small_patch16_224.sw_in1k", "vit_srelpos_small_patch16_224.sw_in1k", "pit_s_224.in1k",
          "levit_256.fb_dist_in1k"]
MIB = 1024**2


def _status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, bytes."""
    lines = Path("/proc/self/status").read_text().splitlines()
    return {k: int(v.split()[0]) * 1024 for k, _, v in (line.partition(":") for line in lines) if k in ("VmRSS", "VmHWM")}


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-memory", type=float, default=0.25, help="GiB")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--allocator", choices=["tuned", "default"], default="tuned",
                        help="glibc's allocator as the CLI sets it (tuned), or left alone (default)")
    args = parser.parse_args()

    import timm
    import torch

    from laionet_bench import tune_allocator
    from laionet_bench.datasets import create_dataset
    from laionet_bench.evaluation import inference, waves
    from laionet_bench.evaluation.engine import EngineOptions, plan_run, run_datasets
    from laionet_bench.evaluation.planner import GIB

    tune_allocator(args.allocator)
    options = EngineOptions(max_memory=args.max_memory, batch_size=args.batch_size, workers=args.workers)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        index = synthetic_index(tmp, args.images, classes=10)
        folder = image_folder(tmp / "imgs", index, photo_jpegs(16, (500, 375)))
        weights = {}
        for spec in MODELS:
            weights[spec] = tmp / f"{spec}.pth"
            torch.save(timm.create_model(spec.partition(".")[0]).state_dict(), weights[spec])
        weights_bytes = sum(p.stat().st_size for p in weights.values())
        largest = max(p.stat().st_size for p in weights.values())  # a build holds its checkpoint and its model
        data = create_dataset("laionet", index=index, images=folder)
        log = tmp / "decodes.log"
        real_open = data.open

        def counting_open(sample):
            with open(log, "a") as handle:  # one short O_APPEND write per decode, from the worker process
                handle.write(sample.key + "\n")
            return real_open(sample)

        data.open = counting_open
        plan = plan_run(MODELS, options=options, devices=["cpu"])
        marks: dict[str, object] = {"first_build": None, "waves": []}
        real_build, real_round = inference.build_model, waves.run_round

        def build(spec, **kw):
            if marks["first_build"] is None:
                marks["first_build"] = _status()["VmRSS"]
            loaded = real_build(spec, **kw)
            marks["build_peak"] = _status()["VmHWM"]  # the wave's peak so far: its builds only
            return loaded

        def run_round(round_waves, numbers, ctx):
            start = _status()["VmRSS"]
            _reset_peak()
            real_round(round_waves, numbers, ctx)
            end = _status()
            marks["waves"].append({"models": sum(len(w.models) for w in round_waves),
                                   "build_peak_mib": round(marks["build_peak"] / MIB, 1),
                                   "planned_mib": round(sum(w.memory_bytes for w in round_waves) / MIB, 1),
                                   "rss_start_mib": round(start / MIB, 1), "peak_mib": round(end["VmHWM"] / MIB, 1),
                                   "rss_end_mib": round(end["VmRSS"] / MIB, 1)})

        inference.build_model, waves.run_round = build, run_round
        with Timer() as timer:
            outcomes = run_datasets(MODELS, {"laionet": data}, store_root=tmp / "store",
                                    weights={k: str(v) for k, v in weights.items()}, options=options)
        decodes = log.read_text().split()
    assert all(o.status == "ok" and o.computed == args.images for o in outcomes["laionet"].values())
    overhead = marks["first_build"]
    budget = int(args.max_memory * GIB)
    per_image = {key: decodes.count(key) for key in set(decodes)}
    import resource

    print(json.dumps({
        "models": len(MODELS), "weights_on_disk_gib": round(weights_bytes / GIB, 3),
        "planned_weights_gib": round(plan.weights_bytes / GIB, 3), "budget_gib": args.max_memory,
        "weights_over_budget": round(plan.weights_bytes / budget, 2), "waves": len(plan.waves),
        "decodes_per_image": sorted(set(per_image.values())), "images": args.images, "batch_size": args.batch_size,
        "workers": args.workers, "seconds": round(timer.seconds, 1), "overhead_mib": round(overhead / MIB, 1),
        "max_peak_over_overhead_mib": round(max(w["peak_mib"] for w in marks["waves"]) - overhead / MIB, 1),
        "budget_mib": round(budget / MIB, 1),
        "within_budget": max(w["peak_mib"] for w in marks["waves"]) * MIB <= overhead + budget,
        "largest_checkpoint_mib": round(largest / MIB, 1),
        "within_budget_plus_one_checkpoint": max(w["peak_mib"] for w in marks["waves"]) * MIB <= overhead + budget + largest,
        "per_wave": marks["waves"],
        "peak_rss_worker_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()], "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }, indent=1))


if __name__ == "__main__":
    main()
