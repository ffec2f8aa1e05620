#!/usr/bin/env python
"""Generate ``laionet_bench/_data/timm_footprints.json``: every architecture ``--models all`` can return, counted.

Each architecture is built once on the meta device (no weights, no memory, no download) through one of
its ImageNet-1k specs, and measured by :func:`laionet_bench.models.footprints.measure_counts`:
parameters, buffers and the activation ratio at that spec's test input size. Every tag of an
architecture has the same counts (checked when this table was first built), so the table is keyed by
architecture. Run it after a timm upgrade (``tests/test_planner.py`` fails when the table no longer
covers ``all`` or no longer matches meta builds); it takes ~10 minutes on 2 cores:

    python scripts/build_footprints.py [--out laionet_bench/_data/timm_footprints.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import timm
import torch

from laionet_bench._io import write_text_atomic
from laionet_bench.models import expand_model_specs
from laionet_bench.models.footprints import TABLE_FILE, measure_counts

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "laionet_bench" / "_data" / TABLE_FILE


def representative_specs() -> dict[str, str]:
    """Architecture → the first spec of ``all`` that uses it."""
    specs: dict[str, str] = {}
    for spec in expand_model_specs(["all"]):
        specs.setdefault(spec.partition(".")[0], spec)
    return specs


def render(counts: dict[str, dict], measured_with: dict[str, str]) -> str:
    """The JSON file, one architecture per line (so a regenerated table diffs line by line)."""
    header = {"generated_by": "scripts/build_footprints.py", "timm": timm.__version__, "torch": torch.__version__,
              "activation_ratio": "peak live activation bytes of one image's forward / its fp32 input bytes, "
                                  "on the meta device at the test input size of measured_with[arch]",
              "measured_with": measured_with}
    lines = [f"  {json.dumps(arch)}: {json.dumps(entry)}" for arch, entry in sorted(counts.items())]
    head = json.dumps(header, indent=1, sort_keys=True)[:-2]
    return head + ',\n "architectures": {\n' + ",\n".join(lines) + "\n }\n}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: %(default)s")
    args = parser.parse_args(argv)
    specs = representative_specs()
    counts: dict[str, dict] = {}
    start = time.monotonic()
    for number, (arch, spec) in enumerate(sorted(specs.items()), start=1):
        counts[arch] = measure_counts(spec).to_dict()
        if number % 50 == 0 or number == len(specs):
            print(f"{number}/{len(specs)} architectures, {time.monotonic() - start:.0f} s", file=sys.stderr)
    failed = sorted(a for a, c in counts.items() if c["activation_ratio"] is None)
    if failed:
        print(f"meta forward failed for {len(failed)} (default ratio applies): {', '.join(failed)}", file=sys.stderr)
    text = render(counts, dict(sorted(specs.items())))
    json.loads(text)  # the hand-assembled layout must stay valid JSON
    write_text_atomic(args.out, text)
    print(f"wrote {args.out}: {len(counts)} architectures", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
