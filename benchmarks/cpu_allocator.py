"""The one-model demo run with glibc's default allocator vs the tuned one (issue 23), side by side in one run.

    PYTHONPATH=$PWD HF_HUB_OFFLINE=1 python benchmarks/cpu_allocator.py --repeat 3 [--tcmalloc /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4]

Each repetition runs ``laionet-bench run --demo --models tf_efficientnet_lite0.in1k --out NEW -q`` once per
side, each in a fresh process: ``default`` (``LAIONET_BENCH_ALLOCATOR=default``: glibc's own settings) and
``tuned`` (the CLI's ``mallopt``, the default), and with ``--tcmalloc LIB`` a third side that preloads tcmalloc
with glibc left alone. Every run gets a new ``--out`` and a new prediction store (``LAIONET_BENCH_PREDICTIONS``),
so each one predicts and embeds every image; the demo build and its rebuild stay in the cache (an untimed
warm-up run makes them first). The sides are interleaved, rotating which goes first, as the CPU may be shared.
Per run, from ``os.wait4`` (the process and the children it waited for, i.e. its decoding workers): wall
seconds, user and system CPU seconds, minor and major page faults, peak RSS; and the load average before it.
Reported: every run, per side the medians, and the medians of the paired default/tuned ratios (wall, system).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: What each side sets in the environment of its run (the tcmalloc side is added by --tcmalloc).
SIDES: dict[str, dict[str, str]] = {
    "default": {"LAIONET_BENCH_ALLOCATOR": "default"},
    "tuned": {"LAIONET_BENCH_ALLOCATOR": "tuned"},
}


def demo_command(model: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "laionet_bench", "run", "--demo", "--models", model, "--out", str(out), "-q"]


def measure(command: list[str], env: dict[str, str], logs: Path) -> dict:
    """Run ``command`` to its end; its wall time and the resource usage of its process tree."""
    load = os.getloadavg()[0]
    with open(logs / "stdout.txt", "wb") as stdout, open(logs / "stderr.txt", "wb") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr, cwd=logs)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        tail = (logs / "stderr.txt").read_text(errors="replace")[-2000:]
        raise SystemExit(f"{' '.join(command)} exited {proc.returncode}:\n{tail}")
    return {"wall_s": round(wall, 2), "user_s": round(usage.ru_utime, 2), "system_s": round(usage.ru_stime, 2),
            "minor_faults": usage.ru_minflt, "major_faults": usage.ru_majflt,
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "load_before": round(load, 2)}


def side_env(side: dict[str, str], predictions: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LAIONET_BENCH_ALLOCATOR", "LD_PRELOAD")}
    pythonpath = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return {**env, "PYTHONPATH": pythonpath, "HF_HUB_OFFLINE": "1", "LAIONET_BENCH_PREDICTIONS": str(predictions),
            **side}


def _median(runs: list[dict], field: str) -> float:
    return round(statistics.median(r[field] for r in runs), 2)


def summary(runs: dict[str, list[dict]]) -> dict:
    """Per side the medians; per repetition and in median the default/tuned ratios of wall and system time."""
    fields = ("wall_s", "user_s", "system_s", "minor_faults", "peak_rss_mib")
    medians = {side: {f: _median(rs, f) for f in fields} for side, rs in runs.items()}
    paired = {f: [round(d[f] / t[f], 2) if t[f] else None for d, t in zip(runs["default"], runs["tuned"], strict=True)]
              for f in ("wall_s", "system_s", "minor_faults")}
    return {"medians": medians, "default_over_tuned_per_repetition": paired,
            "default_over_tuned_median_of_paired": {f: round(statistics.median(v for v in vs if v is not None), 2)
                                                    for f, vs in paired.items() if any(v is not None for v in vs)}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tf_efficientnet_lite0.in1k")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tcmalloc", metavar="LIB", help="also run a side with LD_PRELOAD=LIB (glibc left alone)")
    parser.add_argument("--no-warmup", action="store_true", help="the demo is built and its rebuild cached already")
    args = parser.parse_args()
    sides = dict(SIDES)
    if args.tcmalloc:
        sides["tcmalloc"] = {"LAIONET_BENCH_ALLOCATOR": "default", "LD_PRELOAD": args.tcmalloc}
    names = list(sides)
    runs: dict[str, list[dict]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="cpu-allocator-") as tmp:
        tmp = Path(tmp)
        if not args.no_warmup:  # builds the demo and caches its rebuild; not timed
            (tmp / "warmup").mkdir()
            measure(demo_command(args.model, tmp / "warmup" / "out"), side_env(sides["tuned"], tmp / "warmup" / "p"),
                    tmp / "warmup")
        for rep in range(args.repeat):
            order = names[rep % len(names):] + names[: rep % len(names)]  # rotate which side goes first
            for name in order:
                folder = tmp / f"{name}-{rep}"
                folder.mkdir()
                result = measure(demo_command(args.model, folder / "out"), side_env(sides[name], folder / "predictions"),
                                 folder)
                runs[name].append({"repetition": rep, **result})
                print(f"rep {rep} {name}: {json.dumps(result)}", file=sys.stderr, flush=True)
    print(json.dumps({"command": " ".join(demo_command(args.model, Path("NEW"))[1:]), "sides": sides,
                      "repeat": args.repeat, "cpu_count": os.cpu_count(), "runs": runs, **summary(runs),
                      "finished": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1))


if __name__ == "__main__":
    main()
