"""Prediction store: run keys, atomic chunks, resume after a crash or kill -9, locking."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from laionet_bench.datasets import create_dataset
from laionet_bench.errors import StoreError
from laionet_bench.evaluation.engine import EngineOptions, run_models
from laionet_bench.evaluation.store import PredictionStore, read_keys, read_predictions, run_key

from .fakes.eval_data import row_id_folder, tiny_index, tiny_weights

SPEC = "test_resnet.r160_in1k"


@pytest.fixture
def setup(tmp_path):
    path, frame = tiny_index(tmp_path, per_class=6)
    folder = row_id_folder(tmp_path / "imgs", frame)
    return {"index": path, "images": folder, "weights": {SPEC: tiny_weights(tmp_path, "test_resnet")}}


def _record(key):
    return {"key": key, "wnid": "n01440764", "ok": True, "error": None, "top5": ["n01440764"] * 5,
            "scores": [0.2] * 5, "true_rank": 0}


def test_run_key_changes_with_every_input():
    base = {"model": "m", "weights": {"weights": "w", "weights_sha256": None}, "data_config": {"a": 1},
            "dtype": "fp32", "dataset": {"sha256": "x", "limits": {}}}
    key = run_key(**base)[0]
    for field, value in [("model", "m2"), ("dtype", "bf16"), ("data_config", {"a": 2}),
                         ("dataset", {"sha256": "x", "limits": {"limit": 5}}),
                         ("weights", {"weights": "w", "weights_sha256": "abc"})]:
        assert run_key(**{**base, field: value})[0] != key


def test_run_key_follows_the_store_format_not_the_release_nor_the_weights_path(monkeypatch):
    from laionet_bench.evaluation import store

    base = {"model": "m", "weights": {"weights": "/home/a/w.safetensors", "weights_sha256": "abc"},
            "data_config": {"a": 1}, "dtype": "fp32", "dataset": {"sha256": "x", "limits": {}}}
    key, payload = run_key(**base)
    assert payload["store_version"] == store.STORE_VERSION and "harness_version" not in payload
    monkeypatch.setattr(store, "__version__", "9.9.9", raising=False)  # a patch release
    moved = {**base, "weights": {"weights": "~/elsewhere/w.safetensors", "weights_sha256": "abc"}}
    assert run_key(**moved)[0] == key  # same file content, another place or working folder
    monkeypatch.setattr(store, "STORE_VERSION", store.STORE_VERSION + 1)
    assert run_key(**base)[0] != key


def test_chunks_are_whole_and_second_writer_is_locked_out(tmp_path):
    with PredictionStore(tmp_path, model="m", dataset="d", key="k" * 64, payload={}, chunk_rows=3) as store:
        store.append([_record(str(i)) for i in range(7)])
        assert len(read_predictions(store.folder)) == 6  # two full chunks visible, one record buffered
        with pytest.raises(StoreError, match="another laionet-bench run"):
            with PredictionStore(tmp_path, model="m", dataset="d", key="k" * 64, payload={}, lock_timeout=0.1):
                pass
    assert sorted(read_predictions(store.folder)["key"], key=int) == [str(i) for i in range(7)]
    assert not list(store.folder.glob("*.tmp"))


def _dataset(setup):
    return create_dataset("laionet", index=setup["index"], images=setup["images"])


def test_resume_after_a_crash_recomputes_nothing_completed(tmp_path, setup, monkeypatch):
    data = _dataset(setup)
    options = EngineOptions(batch_size=2, workers=0, chunk_rows=2)
    real = PredictionStore._write_chunk
    calls = {"n": 0}

    def crash_after_two_chunks(self, records):
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated crash")
        calls["n"] += 1
        real(self, records)

    monkeypatch.setattr(PredictionStore, "_write_chunk", crash_after_two_chunks)
    with pytest.raises(KeyboardInterrupt):
        run_models([SPEC], data, store_root=tmp_path / "s", weights=setup["weights"], options=options)
    monkeypatch.setattr(PredictionStore, "_write_chunk", real)
    first = run_models([SPEC], data, store_root=tmp_path / "s", weights=setup["weights"], options=options)[SPEC]
    assert first.computed == len(data) - 4
    assert sorted(read_predictions(first.store)["key"]) == sorted(data.table["key"])
    again = run_models([SPEC], data, store_root=tmp_path / "s", weights=setup["weights"], options=options)[SPEC]
    assert again.computed == 0 and again.model_info["kind"] == "timm"


def test_resume_after_kill_minus_nine(tmp_path, setup):
    script = textwrap.dedent(f"""
        import os, signal
        from laionet_bench.datasets import create_dataset
        from laionet_bench.evaluation.engine import EngineOptions, run_models
        from laionet_bench.evaluation.store import PredictionStore
        real = PredictionStore._write_chunk
        count = [0]
        def write_then_maybe_die(self, records):
            real(self, records)
            count[0] += 1
            if count[0] == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        PredictionStore._write_chunk = write_then_maybe_die
        data = create_dataset("laionet", index={str(setup['index'])!r}, images={str(setup['images'])!r})
        run_models([{SPEC!r}], data, store_root={str(tmp_path / 's')!r},
                   weights={{{SPEC!r}: {str(setup['weights'][SPEC])!r}}},
                   options=EngineOptions(batch_size=2, workers=0, chunk_rows=2))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    data = _dataset(setup)
    options = EngineOptions(batch_size=2, workers=0, chunk_rows=2)
    folder = next((tmp_path / "s").glob("*/*/*"))
    before = read_predictions(folder)
    assert len(list(folder.glob("chunk-*.parquet"))) == 3 and len(before) == 6
    outcome = run_models([SPEC], data, store_root=tmp_path / "s", weights=setup["weights"], options=options)[SPEC]
    assert outcome.store == folder and outcome.computed == len(data) - 6
    records = read_predictions(folder)
    assert len(records) == len(data) and records["key"].is_unique
    pd.testing.assert_frame_equal(records.iloc[:6], before)  # what was stored before the kill, kept as it was
    assert len(list(folder.glob("chunk-*.parquet"))) == 1  # complete: compacted into one chunk


def test_keys_are_read_once_per_chunk_and_again_only_for_new_chunks(tmp_path, monkeypatch):
    store = PredictionStore(tmp_path, model="m", dataset="d", key="k" * 64, payload={}, chunk_rows=2)
    with store:
        store.append([_record(str(i)) for i in range(4)])
    reads = []
    real = pq.read_table
    monkeypatch.setattr(pq, "read_table", lambda path, **kw: reads.append(Path(path).name) or real(path, **kw))
    first = read_keys(store.folder)
    assert sorted(first.keys) == ["0", "1", "2", "3"] and reads == ["chunk-000000.parquet", "chunk-000001.parquet"]
    assert read_keys(store.folder, first) is first and len(reads) == 2  # nothing new: nothing read
    with store:
        store.append([_record("4")])
    again = read_keys(store.folder, first)
    assert sorted(again.keys) == ["0", "1", "2", "3", "4"] and reads[2:] == ["chunk-000002.parquet"]


def test_compaction_keeps_every_record_and_a_reader_never_misses_one(tmp_path):
    store = PredictionStore(tmp_path, model="m", dataset="d", key="k" * 64, payload={}, chunk_rows=2)
    with store:
        store.append([_record(str(i)) for i in range(5)])
    before = read_predictions(store.folder)
    stale = read_keys(store.folder)
    with store:
        store.compact_on_exit = True
    assert [p.name for p in store.folder.glob("chunk-*.parquet")] == ["chunk-000003.parquet"]  # numbered after the rest
    pd.testing.assert_frame_equal(read_predictions(store.folder), before)
    assert sorted(read_keys(store.folder, stale).keys) == sorted(before["key"])  # merged chunks: read again in full
