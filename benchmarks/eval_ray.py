"""The Ray executor against the local one on the same plan: wall time, Ray's overhead, identical predictions.

    PYTHONPATH=$PWD HF_HUB_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled \\
        python benchmarks/eval_ray.py --images 64 --cluster two-nodes

Three ResNets of one preprocessing group (288 px, the ``a1`` tags; random weights saved to files) are planned
within a budget that needs two waves, over two devices, so that both executors run the same plan: one round
of two waves fed by one decode stream. Locally the devices are ``cpu:0,cpu:1`` (two threads of this
process); on Ray they are two CPU actors: a two-node local cluster (``ray start --head`` plus a second
``ray start --address``, one CPU each, ``--cluster two-nodes``) or a local Ray with two GPUs declared on
this CPU machine (``--cluster fake-gpus``). Reported: the cluster's start and connect times (not part of
the run), each executor's wall time of ``run_datasets``, their ratio, Ray's overhead per wave and per image,
and whether the stored predictions are bit-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _eval_common import Timer, image_folder, photo_jpegs, synthetic_index

from laionet_bench.datasets import create_dataset
from laionet_bench.evaluation.engine import EngineOptions, plan_run, run_datasets
from laionet_bench.evaluation.store import read_predictions
from laionet_bench.models.footprints import GIB, estimate_footprint

MODELS = ["resnet18.a1_in1k", "resnet34.a1_in1k", "resnet50.a1_in1k"]  # 288 px, bicubic, crop 1.0: one group
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0", "RAY_AUTH_MODE": "disabled"}


def _weights(folder: Path) -> dict[str, str]:
    import timm
    import torch

    out = {}
    for seed, spec in enumerate(MODELS):
        torch.manual_seed(seed)
        out[spec] = str(folder / f"{spec}.pth")
        torch.save(timm.create_model(spec.split(".")[0], pretrained=False).state_dict(), out[spec])
    return out


def _two_waves_budget(batch_size: int) -> float:
    """GiB that fit the largest model alone but not all three: two waves."""
    totals = [estimate_footprint(s, batch_size=batch_size).total_bytes for s in MODELS]
    return 1.02 * max(totals) / GIB


def _ray_start(*args: str) -> subprocess.Popen:
    command = [str(Path(sys.executable).with_name("ray")), "start", "--block", "--num-cpus", "1",
               "--disable-usage-stats", "--node-ip-address", "127.0.0.1", *args]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, **RAY_ENV})


def _start_cluster(kind: str) -> tuple[str | None, list[subprocess.Popen]]:
    """The address of a started cluster (None: ray.init'ed here) and the processes to stop."""
    import ray

    if kind == "fake-gpus":
        ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
        return None, []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    nodes = [_ray_start("--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", temp)]
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    nodes.append(_ray_start("--address", f"127.0.0.1:{port}"))
    ray.init(address=f"127.0.0.1:{port}", log_to_driver=False)
    while sum(n["Alive"] for n in ray.nodes()) < 2:
        time.sleep(0.2)
    return f"127.0.0.1:{port}", nodes


def _identical(a, b) -> bool:
    for name, by_spec in a.items():
        for spec, mine in by_spec.items():
            x = read_predictions(mine.store).sort_values("key", ignore_index=True)
            y = read_predictions(b[name][spec].store).sort_values("key", ignore_index=True)
            if not (x["key"].tolist() == y["key"].tolist() and x["top5"].map(list).tolist() == y["top5"].map(list).tolist()
                    and np.array_equal(np.stack(x["scores"]), np.stack(y["scores"]))):
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cluster", choices=["two-nodes", "fake-gpus"], default="two-nodes")
    parser.add_argument("--threads", type=int, help="torch threads of this process, hence of every actor "
                        "(default: torch's)")
    args = parser.parse_args()
    os.environ.update(RAY_ENV)
    import ray
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        index = synthetic_index(root, args.images, classes=min(args.images, 100))
        images = image_folder(root / "imgs", index, photo_jpegs(16, (320, 256)))
        weights = _weights(root)
        dataset = {"laionet": create_dataset("laionet", index=index, images=images)}
        budget = _two_waves_budget(args.batch_size)
        common = {"batch_size": args.batch_size, "workers": 1, "max_memory": budget}
        local = EngineOptions(device="cpu:0,cpu:1", **common)
        plan = plan_run(MODELS, options=local, devices=["cpu:0", "cpu:1"])
        with Timer() as t_local:
            local_out = run_datasets(MODELS, dataset, store_root=root / "local", weights=weights, options=local)

        with Timer() as t_start:
            address, nodes = _start_cluster(args.cluster)
        try:
            remote = EngineOptions(executor="ray", ray_address=address, **common)
            with Timer() as t_ray:
                ray_out = run_datasets(MODELS, dataset, store_root=root / "ray", weights=weights, options=remote)
        finally:
            ray.shutdown()
            for node in reversed(nodes):
                node.send_signal(signal.SIGTERM)
            for node in nodes:
                node.wait(60)
        ok = all(o.status == "ok" for by in (*local_out.values(), *ray_out.values()) for o in by.values())
        waves = len(plan.waves)
        print(json.dumps({
            "cluster": args.cluster, "images": args.images, "models": MODELS, "batch_size": args.batch_size,
            "budget_gib": round(budget, 3), "waves": waves, "rounds": len(plan.rounds),
            "torch_threads": torch.get_num_threads(), "all_ok": ok,
            "identical": _identical(local_out, ray_out),
            "cluster_start_s": round(t_start.seconds, 2), "local_s": round(t_local.seconds, 2),
            "ray_s": round(t_ray.seconds, 2), "ratio": round(t_ray.seconds / t_local.seconds, 3),
            "ray_overhead_per_wave_s": round((t_ray.seconds - t_local.seconds) / waves, 2),
            "ray_overhead_per_image_ms": round(1000 * (t_ray.seconds - t_local.seconds) / args.images, 1),
            "load_1min": os.getloadavg()[0],
        }, indent=1))


if __name__ == "__main__":
    main()
