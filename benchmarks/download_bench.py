"""Images/s of ``laionet-bench download`` against a loopback server with realistic latency.

The server runs in its own process (so neither client's GIL slows it) and answers every request after
a fixed delay, like a remote host. The same URL list is fetched by our native engine and, when
installed, by img2dataset at equal concurrency (one process, ``--workers`` threads):

* ``native``: :func:`download_images` (fetch, verify by full decode, sha256, shard).
* ``img2dataset (raw CLI)``: img2dataset's own command on the URL list (no resize, no re-encode);
  wall time of the subprocess, startup included, plus its own reported download duration.
* ``img2dataset engine``: our ``--engine img2dataset`` (the raw run plus adopting its output).

Usage::

    python benchmarks/download_bench.py --images 2000 --workers 32 --latency 0.075 \\
        [--img2dataset /work/venvs/img2dataset/bin/img2dataset]
"""

from __future__ import annotations

import argparse
import glob
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from laionet_bench.images.download import DownloadOptions, download_images
from laionet_bench.images.fetch import FetchPolicy
from laionet_bench.images.img2dataset import download_with_img2dataset
from tests.fakes.images import ImageServer, image_bytes  # noqa: E402


def _files(n: int) -> dict[str, bytes]:
    return {f"/img/{i}.jpg": image_bytes("RGB", "JPEG", (96 + i % 64, 72 + i % 48), quality=85) for i in range(n)}


def _serve(n: int, latency: float, port_queue) -> None:
    server = ImageServer.serving(_files(n), latency=latency).start()
    port_queue.put(server.base)
    while True:
        time.sleep(3600)


def _frame(base: str, n: int) -> pd.DataFrame:
    return pd.DataFrame({"row_id": range(n), "url": [f"{base}/img/{i}.jpg" for i in range(n)],
                         "caption": ["a photo"] * n})


def _native(frame, out, workers, timeout) -> dict:
    policy = FetchPolicy(timeout=timeout, allow_networks=("127.0.0.0/8",), per_host=workers)
    options = DownloadOptions(workers=workers, retries=0)
    start = time.perf_counter()
    report = download_images(frame, out, policy=policy, options=options, progress=False)
    seconds = time.perf_counter() - start
    return {"engine": "native", "ok": report.counts.get("ok", 0), "seconds": seconds}


def _img2dataset_raw(frame, out, workers, timeout, exe) -> dict:
    url_list = Path(out) / "urls.parquet"
    Path(out).mkdir(parents=True)
    frame.to_parquet(url_list, index=False)
    command = [exe, f"--url_list={url_list}", "--input_format=parquet", "--url_col=url", "--caption_col=caption",
               "--output_format=webdataset", f"--output_folder={out}/out", "--processes_count=1",
               f"--thread_count={workers}", "--resize_mode=no", "--disable_all_reencoding=True",
               f"--timeout={timeout}", "--retries=0", "--number_sample_per_shard=1000", "--enable_wandb=False",
               "--distributor=multiprocessing"]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1"))
    seconds = time.perf_counter() - start
    stats = [json.loads(Path(p).read_text()) for p in glob.glob(f"{out}/out/*_stats.json")]
    own = max(s["end_time"] for s in stats) - min(s["start_time"] for s in stats)
    ok = sum(s["successes"] for s in stats)
    return {"engine": "img2dataset (raw CLI)", "ok": ok, "seconds": seconds, "download_seconds": own}


def _img2dataset_engine(frame, out, workers, timeout, exe) -> dict:
    policy = FetchPolicy(timeout=timeout, allow_networks=("127.0.0.0/8",))
    options = DownloadOptions(workers=workers, retries=0)
    start = time.perf_counter()
    report = download_with_img2dataset(frame, out, policy=policy, options=options, executable=exe, progress=False)
    return {"engine": "img2dataset engine", "ok": report.counts.get("ok", 0), "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.075, help="seconds the server waits per response")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--img2dataset", help="img2dataset executable (its own venv); omitted: native only")
    args = parser.parse_args()

    queue = mp.Queue()
    server = mp.Process(target=_serve, args=(args.images, args.latency, queue), daemon=True)
    server.start()
    base = queue.get(timeout=120)
    frame = _frame(base, args.images)
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results.append(_native(frame, f"{tmp}/native", args.workers, args.timeout))
            if args.img2dataset:
                results.append(_img2dataset_raw(frame, f"{tmp}/raw", args.workers, args.timeout, args.img2dataset))
                results.append(_img2dataset_engine(frame, f"{tmp}/engine", args.workers, args.timeout, args.img2dataset))
    finally:
        server.terminate()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{args.images} images, {args.workers} workers, {args.latency * 1000:.0f} ms latency")
    print("| engine | ok | wall s | images/s (wall) | images/s (download only) |")
    print("|---|---|---|---|---|")
    for r in results:
        own = r.get("download_seconds")
        print(f"| {r['engine']} | {r['ok']} | {r['seconds']:.1f} | {r['ok'] / r['seconds']:.0f} | "
              f"{(r['ok'] / own) if own else r['ok'] / r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
