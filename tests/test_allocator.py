"""The tuned glibc allocator: its parameters really take effect, the engine's trim still returns memory, and
predictions do not change. Each side runs in a fresh process, so the pytest process keeps glibc's defaults."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laionet_bench import constants
from laionet_bench.errors import ConfigError
from laionet_bench.evaluation import allocator
from laionet_bench.evaluation.allocator import tune_allocator

from .fakes.eval_data import row_id_folder, tiny_index, tiny_weights

REPO = Path(__file__).resolve().parents[1]
GLIBC = platform.libc_ver()[0] == "glibc"
needs_glibc = pytest.mark.skipif(not GLIBC, reason="the tuning is glibc's; elsewhere it does nothing")

#: One 64 MiB block through the tuned (or untouched) allocator: is it mmapped (mallinfo2's ``hblkhd``), does
#: free give it back at once, and does the engine's release_memory return it? Byte counts, no timing.
PROBE = """
import ctypes, json, os, sys
import torch  # release_memory imports it: loaded before anything is measured
from laionet_bench.evaluation.allocator import tune_allocator
from laionet_bench.evaluation.inference import release_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
page = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page

tuned = tune_allocator(sys.argv[1])
size = 64 << 20
before = libc.mallinfo2().hblkhd
block = libc.malloc(size)
mmapped = libc.mallinfo2().hblkhd - before
ctypes.memset(block, 1, size)
touched = rss()
libc.free(block)
after_free = rss()
release_memory("cpu", collect=False)
print(json.dumps({"tuned": tuned, "size": size, "mmapped": mmapped, "freed_at_once": touched - after_free,
                  "released": touched - rss()}))
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAIONET_BENCH_")}
    return {**env, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **extra}


def _probe(mode: str) -> dict:
    run = subprocess.run([sys.executable, "-c", PROBE, mode], env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _has_mallinfo2() -> bool:
    import ctypes

    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


@needs_glibc
@pytest.mark.skipif(not _has_mallinfo2(), reason="mallinfo2 needs glibc >= 2.33")
def test_tuning_keeps_large_blocks_in_the_heap_and_release_memory_returns_them():
    tuned, default = _probe("tuned"), _probe("default")
    size = tuned["size"]
    # glibc's own: the block is mmapped and munmapped by free, every time (the waste on CPU forwards)
    assert not default["tuned"] and default["mmapped"] >= size and default["freed_at_once"] > size * 0.9
    # tuned: the block comes from the heap, free keeps it for the next batch, release_memory returns it
    assert tuned["tuned"] and tuned["mmapped"] == 0
    assert tuned["freed_at_once"] < size * 0.1
    assert tuned["released"] > size * 0.9


def _run_cli(root: Path, bench, *, mode: str) -> subprocess.CompletedProcess:
    """``run`` on the tiny bench in a fresh process with its own out and cache folders under ``root``."""
    args = [sys.executable, "-m", "laionet_bench", "--debug", "run", "--models", "test_resnet.r160_in1k",
            "--weights", f"test_resnet.r160_in1k={bench['weights']}", "--index", str(bench["index"]),
            "--images", str(bench["images"]), "--out", str(root / "out"), "--device", "cpu", "--workers", "0",
            "--batch-size", "4"]
    run = subprocess.run(args, env=_env(LAIONET_BENCH_CACHE=str(root / "cache"), LAIONET_BENCH_ALLOCATOR=mode),
                         capture_output=True, text=True, timeout=600, cwd=root)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _predictions(root: Path) -> pa.Table:
    """Every stored prediction under ``root`` (out and cache), sorted by key."""
    chunks = sorted(root.rglob("chunk-*.parquet"))
    assert chunks
    return pa.concat_tables([pq.read_table(c) for c in chunks]).sort_by("key")


@pytest.mark.slow  # two fresh processes import torch and timm
def test_predictions_are_bit_identical_with_and_without_the_tuning(tmp_path):
    path, frame = tiny_index(tmp_path, per_class=3)
    bench = {"index": path, "images": row_id_folder(tmp_path / "imgs", frame),
             "weights": tiny_weights(tmp_path, "test_resnet")}
    runs = {}
    for mode in ("tuned", "default"):
        (tmp_path / mode).mkdir()
        runs[mode] = _run_cli(tmp_path / mode, bench, mode=mode)
    assert ("glibc malloc tuned" in runs["tuned"].stderr) == GLIBC
    assert "glibc malloc tuned" not in runs["default"].stderr
    tuned, default = _predictions(tmp_path / "tuned"), _predictions(tmp_path / "default")
    assert tuned.num_rows == len(frame) - int(frame["ocr_flag"].sum())
    assert tuned.equals(default)  # scores included, bit for bit


def test_unknown_mode_is_a_one_line_config_error(monkeypatch):
    with pytest.raises(ConfigError, match="allocator mode 'fast' .*LAIONET_BENCH_ALLOCATOR.*tuned, default"):
        tune_allocator("fast")
    monkeypatch.setattr(constants, "ALLOCATOR", "jemalloc")
    with pytest.raises(ConfigError, match="'jemalloc'"):
        tune_allocator()


def test_default_mode_and_other_c_libraries_leave_the_allocator_alone(monkeypatch):
    assert tune_allocator("default") is False
    monkeypatch.setattr(allocator, "_glibc", lambda: None)  # musl, macOS: silently nothing
    assert tune_allocator("tuned") is False and allocator.trim() is False


def test_the_cli_tunes_before_any_handler_and_a_bad_setting_is_one_line(monkeypatch, capsys):
    from laionet_bench.cli import main

    calls = []
    with monkeypatch.context() as patched:
        patched.setattr("laionet_bench.cli.tune_allocator", lambda: calls.append("tuned"))
        assert main(["classes", "husky"]) == 0 and calls == ["tuned"]
    monkeypatch.setattr(constants, "ALLOCATOR", "fast")
    assert main(["classes", "husky"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("use one of tuned, default")
