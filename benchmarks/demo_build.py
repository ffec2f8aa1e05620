"""Time a full demo build, then a second (resume) run into the same folder.

    PYTHONPATH=. python benchmarks/demo_build.py [OUT_DIR]   # results: benchmarks/demo_build.md
"""

from __future__ import annotations

import logging
import sys
import time

from laionet_bench.demo.build import build_demo


def main(out: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    for run in ("first", "second"):
        start = time.perf_counter()
        build = build_demo(out)
        seconds = round(time.perf_counter() - start, 1)
        print(run, build.pool_rows, build.rendered, build.reused, len(build.failed), build.imagenet_images,
              build.manifest_sha256, seconds)
        for failure in build.failed:
            print("  failed:", failure)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/laionet-demo-benchmark")
