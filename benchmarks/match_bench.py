"""Lemma-matching throughput: laionet-bench's Aho-Corasick pass vs the reference's method vs a regex.

All three run on the same synthetic LAION-like captions in one run, with every lemma of the catalogue
(official rules: 1,825 lemmas). ``ours`` runs on all captions on ONE core (POLARS_MAX_THREADS=1 is set
before polars is imported); the reference method (every padded lemma tested with ``in``) and the Python
regex alternation are too slow for that, so they run on a subsample and are extrapolated per caption.
Their results are checked equal to ours on the subsample.

Peak memory: a part is matched in record batches, so peak RSS follows the batch size, not the part size;
``--memory`` runs the pipeline's match step in subprocesses on parts of two sizes to show it.

    python benchmarks/match_bench.py --captions 1000000 --subsample 2000 --repeats 5 --memory
"""

from __future__ import annotations

import os

os.environ["POLARS_MAX_THREADS"] = "1"  # per-core numbers  # noqa: E402

import argparse
import json
import platform
import random
import re
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from laionet_bench.catalog import lemma_map
from laionet_bench.rebuild.match import LemmaMatcher

LAION_400M = 413_900_000
FILLERS = ("photo of a", "vintage", "for sale", "cheap", "new", "best", "the", "my", "on white background",
           "stock image", "2019", "HD wallpaper", "free shipping", "size M", "with", "and", "in the garden",
           "| Etsy", "close-up", "beautiful", "cute", "men's", "women's", "set of 4", "(large)", "- Image")


def synthetic_captions(n: int, lemmas: list[str], *, seed: int = 0, lemma_share: float = 0.08) -> list[str]:
    """LAION-like alt texts (~55 chars); ``lemma_share`` of them name a catalogue lemma (LAION: ~5%)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = rng.choices(FILLERS, k=rng.randint(3, 8))
        if rng.random() < lemma_share:
            lemma = rng.choice(lemmas)
            words.insert(rng.randint(0, len(words)), lemma if rng.random() < 0.7 else lemma.lower())
        out.append(" ".join(words))
    return out


def reference_method(captions: list[str], lemmas: dict[str, str]) -> list[set[str]]:
    """SPEC §2.1 as the reference does it: for each caption, every padded lemma tested with ``in``."""
    table = str.maketrans({c: " " for c in string.punctuation})
    padded = [(f" {lemma} ", wnid) for lemma, wnid in lemmas.items()]
    out = []
    for caption in captions:
        text = f" {caption.translate(table)} "
        out.append({wnid for lemma, wnid in padded if lemma in text})
    return out


def regex_method(captions: list[str], lemmas: dict[str, str]) -> list[set[str]]:
    """One Python regex alternation, lookarounds for the padding spaces (overlapping lemmas still missed)."""
    table = str.maketrans({c: " " for c in string.punctuation})
    alternation = "|".join(re.escape(lemma) for lemma in sorted(lemmas, key=len, reverse=True))
    pattern = re.compile(rf"(?<= )(?:{alternation})(?= )")
    return [{lemmas[m] for m in pattern.findall(f" {c.translate(table)} ")} for c in captions]


def timed(fn, *args):
    """(wall seconds, CPU seconds of this process, result): CPU time is what one core spends, even when
    other jobs share the machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def timed_median(repeats: int, fn, *args):
    """``timed`` repeated: the run with the median CPU time (noise from other jobs only adds time)."""
    runs = sorted((timed(fn, *args) for _ in range(repeats)), key=lambda run: run[1])
    return runs[len(runs) // 2]


def _as_sets(hits: pl.DataFrame, n: int) -> list[set[str]]:
    found = {r["position"]: set(r["wnids"]) for r in hits.to_dicts()}
    return [found.get(i, set()) for i in range(n)]


def write_part(folder: Path, captions: list[str]) -> Path:
    import pandas as pd

    path = folder / "part-00000.parquet"
    pd.DataFrame({"TEXT": captions, "URL": "http://example.com/x.jpg", "NSFW": "UNLIKELY", "SAMPLE_ID": 1,
                  "WIDTH": 1, "HEIGHT": 1, "LICENSE": "?"}).to_parquet(path)
    return path


def memory_probe(part: Path, batch_rows: int) -> int:
    """Peak RSS (KiB) of a fresh process running the pipeline's match step on ``part``."""
    code = f"""
import os, resource
os.environ["POLARS_MAX_THREADS"] = "1"
from laionet_bench.rebuild import RebuildConfig, run_pipeline
run_pipeline(RebuildConfig(parts=[{str(part)!r}], work_dir={str(part.parent / f"w{batch_rows}")!r}, threshold=0.5,
                           batch_rows={batch_rows}), steps=["match"])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=tempfile.gettempdir(), check=True)
    return int(done.stdout.strip().splitlines()[-1])


def memory_table(captions: list[str]) -> dict[str, int]:
    """Peak RSS for a small and a large part at one batch size, and the large part in one batch."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rows, batch in ((len(captions) // 5, 100_000), (len(captions), 100_000), (len(captions), len(captions))):
            folder = Path(tmp) / f"{rows}"
            folder.mkdir(exist_ok=True)
            part = folder / "part-00000.parquet"
            if not part.exists():
                write_part(folder, captions[:rows])
            out[f"{rows} rows, batch {batch}"] = memory_probe(part, batch)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captions", type=int, default=1_000_000)
    parser.add_argument("--subsample", type=int, default=2_000, help="captions for the two slow baselines")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each of our passes; the median is kept")
    parser.add_argument("--memory", action="store_true", help="also probe peak RSS vs part size")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()

    lemmas = lemma_map("official").lemma_to_wnid
    captions = synthetic_captions(args.captions, list(lemmas))
    matcher = LemmaMatcher("official")
    ours_matcher = LemmaMatcher("ours")
    series = pl.Series("c", captions, dtype=pl.String)
    matcher.matches(series[:10_000])  # warm up
    load_before = os.getloadavg()
    wall, cpu, hits = timed_median(args.repeats, matcher.matches, series)
    ours_wall, ours_cpu, _ = timed_median(args.repeats, ours_matcher.matches, series)
    sub = captions[: args.subsample]
    ref_wall, ref_cpu, reference = timed(reference_method, sub, lemmas)
    regex_wall, regex_cpu, regex = timed(regex_method, sub, lemmas)
    ours_sub = _as_sets(hits.filter(pl.col("position") < len(sub)), len(sub))
    per_s = args.captions / cpu
    ref_per_s, regex_per_s = len(sub) / ref_cpu, len(sub) / regex_cpu
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), python {platform.python_version()}, "
                   f"polars {pl.__version__}, POLARS_MAX_THREADS=1",
        "load_average_1_5_15_min": {"before": load_before, "after": os.getloadavg()},
        "repeats_median_of": args.repeats,
        "captions": args.captions, "lemmas": len(lemmas), "matched": hits.height,
        "ours_official_wall_s": wall, "ours_official_cpu_s": cpu, "ours_official_captions_per_cpu_s": per_s,
        "ours_rules_wall_s": ours_wall, "ours_rules_cpu_s": ours_cpu,
        "ours_rules_captions_per_cpu_s": args.captions / ours_cpu,
        "baseline_subsample": len(sub),
        "reference_cpu_s": ref_cpu, "reference_captions_per_cpu_s": ref_per_s,
        "regex_cpu_s": regex_cpu, "regex_captions_per_cpu_s": regex_per_s,
        "speedup_vs_reference": per_s / ref_per_s, "speedup_vs_regex": per_s / regex_per_s,
        "reference_equal_to_ours": reference == ours_sub,
        "regex_equal_to_ours": regex == ours_sub,
        "regex_captions_differing": sum(a != b for a, b in zip(regex, ours_sub, strict=True)),
        "laion400m_minutes_16_cores_official": LAION_400M / per_s / 16 / 60,
        "laion400m_minutes_16_cores_ours_rules": LAION_400M / (args.captions / ours_cpu) / 16 / 60,
    }
    if args.memory:
        results["peak_rss_kib"] = memory_table(captions)
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
