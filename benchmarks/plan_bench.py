"""The real plan: ``run --models all --plan`` at several budgets, and where the time of such a run would go.

    PYTHONPATH=$PWD HF_HUB_OFFLINE=1 python benchmarks/plan_bench.py --budgets 24 80 --devices 1 4

For each budget (GiB per device) and device count it plans every model of ``--models all`` through the same
functions ``run --plan`` calls (``estimate_footprint`` at ``--batch-size``, fp32, ``plan_waves``) and prints:
waves, decodes per image (rounds), the total weights, the largest wave and the models planned at a smaller
micro-batch.

Then it estimates the split between decoding and the forward passes of one image through the whole plan:

* decode: the CPU time of the engine's decoder (JPEG decode, RGB, resize, crop, uint8 tensor:
  ``make_decoder``) measured here on ``--images`` JPEGs of ``--size`` cut from scikit-image photos, per
  preprocessing group, summed over the plan's rounds (each round decodes each image once);
* forward: every model's FLOPs for one image at its test size, counted on the meta device
  (``torch.utils.flop_counter.FlopCounterMode``: 2 per multiply-add; no weights, no compute), divided by an
  assumed sustained GPU throughput (``--tflops``, a plain assumption, not a measurement).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from functools import partial

from _eval_common import photo_jpegs

from laionet_bench.evaluation.planner import GIB, plan_waves
from laionet_bench.models import expand_model_specs, preprocess_key, resolve_data_config
from laionet_bench.models.footprints import estimate_footprint


def plan_rows(specs, budgets, device_counts, batch_size):
    rows, plans = [], {}
    for budget in budgets:
        for count in device_counts:
            devices = [f"cuda:{i}" for i in range(count)]
            start = time.perf_counter()
            plan = plan_waves(specs, footprint=partial(estimate_footprint, batch_size=batch_size), devices=devices,
                              budgets=dict.fromkeys(devices, int(budget * GIB)))
            seconds = time.perf_counter() - start
            plans[budget, count] = plan
            largest = max(plan.waves, key=lambda w: w.memory_bytes)
            most = max(plan.waves, key=lambda w: len(w.models))
            rows.append(f"| {budget} | {count} | {len(plan.waves)} | {plan.decodes_per_image} | "
                        f"{plan.weights_bytes / GIB:.1f} | {largest.memory_bytes / GIB:.2f} GiB ({len(largest.models)} models) | "
                        f"{len(most.models)} | {len(plan.micro_batches)} | {seconds:.2f} |")
    return rows, plans


def decode_ms(configs: dict[tuple, dict], jpegs: list[bytes], repeat: int) -> dict[tuple, float]:
    """Median CPU milliseconds of one decode per preprocessing group."""
    from PIL import Image

    from laionet_bench.evaluation.engine import make_decoder

    out = {}
    for key, config in configs.items():
        decoder = make_decoder(config)
        times = []
        for _ in range(repeat):
            for data in jpegs:
                start = time.process_time()
                decoder(Image.open(io.BytesIO(data)).convert("RGB"))
                times.append(time.process_time() - start)
        out[key] = 1000 * statistics.median(times)
    return out


def forward_gflops(specs: list[str]) -> dict[str, float]:
    """GFLOPs of one image's forward pass per spec, counted on the meta device."""
    import timm
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    flops = {}
    for number, spec in enumerate(specs, start=1):
        with torch.device("meta"):
            model = timm.create_model(spec, pretrained=False).eval().requires_grad_(False)
        image = torch.empty(1, *resolve_data_config(spec)["input_size"], device="meta")
        try:  # no_grad and no grads: the counter's module tracker hooks autograd under inference_mode
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                model(image)
        except Exception as exc:  # noqa: BLE001 - reported; the model is left out of the FLOP total
            print(f"FLOPs: {spec} not counted ({type(exc).__name__}: {str(exc)[:80]})", file=sys.stderr)
            continue
        flops[spec] = counter.get_total_flops() / 1e9
        if number % 100 == 0:
            print(f"FLOPs: {number}/{len(specs)}", file=sys.stderr)
    return flops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[24, 80], metavar="GIB")
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 4], metavar="N")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=8, help="JPEGs per group for the decode timing")
    parser.add_argument("--size", default="800x600", help="JPEG size WxH")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tflops", type=float, nargs="+", default=[30, 100],
                        help="assumed sustained GPU TFLOP/s (fp32-ish, bf16-ish)")
    parser.add_argument("--decode-cores", type=int, default=16, help="CPU cores decoding for one GPU")
    args = parser.parse_args()

    specs = expand_model_specs(["all"])
    print(f"{len(specs)} models; batch {args.batch_size}, fp32\n")
    rows, plans = plan_rows(specs, args.budgets, args.devices, args.batch_size)
    print("| budget (GiB/device) | devices | waves | decodes per image | weights (GiB) | largest wave | "
          "most models in a wave | micro-batched models | planning (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    for (budget, count), plan in plans.items():
        if count == args.devices[0] and plan.micro_batches:
            print(f"\nmicro-batches at {budget} GiB: " + ", ".join(f"{s} {n}" for s, n in sorted(plan.micro_batches.items())))

    width, height = (int(v) for v in args.size.split("x"))
    configs = {}
    for spec in specs:
        config = resolve_data_config(spec)
        configs.setdefault(preprocess_key(config), config)
    per_group = decode_ms(configs, photo_jpegs(args.images, (width, height)), args.repeat)
    flops = forward_gflops(specs)
    total_gflops = sum(flops.values())
    print(f"\ndecode (this CPU, {args.size} JPEG): median {statistics.median(per_group.values()):.1f} ms per decode "
          f"(groups: {min(per_group.values()):.1f}–{max(per_group.values()):.1f} ms)")
    print(f"forward: {total_gflops:.0f} GFLOP per image over {len(flops)} of {len(specs)} models "
          f"(median model {statistics.median(flops.values()):.1f}, largest {max(flops.values()):.0f})\n")
    print("| budget | devices | decodes/image | decode CPU ms/image | decode wall ms/image on "
          f"{args.decode_cores} cores | " + " | ".join(f"forward ms/image at {t:g} TFLOP/s" for t in args.tflops) + " |")
    print("|---|---|---|---|---|" + "---|" * len(args.tflops))
    for (budget, count), plan in plans.items():
        cpu = sum(per_group[plan.waves[r[0]].preprocess] for r in plan.rounds)
        forward = [total_gflops / (t * 1e3) / count * 1e3 for t in args.tflops]  # ms, shared by the devices
        print(f"| {budget:g} | {count} | {plan.decodes_per_image} | {cpu:.0f} | {cpu / args.decode_cores:.1f} | "
              + " | ".join(f"{f:.1f}" for f in forward) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
