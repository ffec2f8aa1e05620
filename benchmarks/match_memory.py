"""Peak RSS of the rebuild's match step against the part's size (issue 24, item 3).

    PYTHONPATH=$PWD python benchmarks/match_memory.py [--rows 1000 1000000 12000000] [--batch-rows 100000]

Writes LAION-400M-like parts (the real column names, row groups of 100,000, ~50-character URLs, synthetic
captions of which ~8% name a catalogue lemma) and runs ``rebuild match`` on each in a fresh process
(``POLARS_MAX_THREADS=1``), reporting its peak RSS (``VmHWM``). The 1,000-row part gives the floor: the
interpreter and libraries.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from match_bench import lemma_map, synthetic_captions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def write_part(path: Path, rows: int) -> None:
    captions = synthetic_captions(rows, list(lemma_map("official").lemma_to_wnid))
    table = pa.table({
        "SAMPLE_ID": pa.array(range(rows), pa.int64()),
        "URL": [f"https://images.example-cdn.com/photos/{i:09d}/large.jpg" for i in range(rows)],
        "TEXT": captions, "HEIGHT": pa.array([375] * rows, pa.int32()), "WIDTH": pa.array([500] * rows, pa.int32()),
        "LICENSE": ["?"] * rows, "NSFW": ["UNLIKELY"] * rows, "similarity": pa.array([0.31] * rows, pa.float64()),
    })
    pq.write_table(table, path, row_group_size=100_000)


def peak_rss_kib(part: Path, work: Path, batch_rows: int) -> int:
    # VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child forked from this (large) process would report it
    code = (
        "import re\nfrom laionet_bench.rebuild import RebuildConfig, run_pipeline\n"
        f"run_pipeline(RebuildConfig(parts=[{str(part)!r}], work_dir={str(work)!r}, threshold=0.5, "
        f"batch_rows={batch_rows}), steps=['match'])\n"
        "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"
    )
    env = {**os.environ, "POLARS_MAX_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return int(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000, 1_000_000, 12_000_000])
    parser.add_argument("--batch-rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            folder = Path(tmp) / str(rows)
            folder.mkdir()
            write_part(folder / "part-00000.parquet", rows)
            kib = peak_rss_kib(folder / "part-00000.parquet", folder / "work", args.batch_rows)
            print(f"{rows:>10,} rows, batch {args.batch_rows:,}: peak RSS {kib / 1024:,.0f} MiB", flush=True)
            (folder / "part-00000.parquet").unlink()


if __name__ == "__main__":
    main()
