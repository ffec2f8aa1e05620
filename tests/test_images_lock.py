"""The image store is locked: a second download on one folder stops, and never touches the first's shard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from laionet_bench.errors import StoreError
from laionet_bench.images.download import download_images
from laionet_bench.images.fetch import FetchPolicy
from laionet_bench.images.shards import PARTIAL_SUFFIX
from laionet_bench.images.store import ImageStore
from laionet_bench.index.schema import write_index

from .conftest import make_index_frame

#: A download in another process, stopped mid-shard: it has written one sample and holds the store.
_HOLDER = """
import hashlib, sys
from laionet_bench.images.store import ImageStore
store = ImageStore.open(sys.argv[1], shard_size=100)
data = b"\\xff\\xd8\\xff not decoded here"
meta = {"row_id": 100000000, "url": "http://127.0.0.1/x.jpg", "sha256": hashlib.sha256(data).hexdigest(),
        "width": 1, "height": 1, "mode": "RGB", "format": "JPEG", "bytes": len(data), "_ext": "jpg"}
store.add({"row_id": 100000000, "url": meta["url"], "status": "ok", "key": "100000000"}, data, meta)
store.flush()
print("holding", flush=True)
sys.stdin.read()  # until the test closes stdin; then exit without finish(), like a killed process
"""


class _Holder:
    """A download in a second, real process that is writing the store at ``out`` and holds its lock."""

    def __init__(self, out: Path):
        self.out = out
        self.partial = out / "shards" / ("00000.tar" + PARTIAL_SUFFIX)
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        self.process = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.process.stdout.readline()
        assert line == "holding\n", self.process.stderr.read()

    def stop(self) -> None:
        """End the process without finish(), as a kill would."""
        if self.process.returncode is None:
            self.process.stdin.close()
            self.process.wait()
            self.process.stdout.close()
            self.process.stderr.close()


@pytest.fixture
def holder(tmp_path):
    running = _Holder(tmp_path / "store")
    try:
        yield running
    finally:
        running.stop()


def test_second_download_is_refused_and_leaves_the_open_shard_alone(holder):
    out, partial = holder.out, holder.partial
    before = partial.read_bytes()
    frame = make_index_frame(["n01440764"] * 2)
    with pytest.raises(StoreError, match="being written by another laionet-bench download.*use another --out"):
        download_images(frame, out, policy=FetchPolicy(allow_networks=("127.0.0.0/8",)), progress=False)
    with pytest.raises(StoreError):
        ImageStore.open(out)
    assert partial.read_bytes() == before  # not "repaired" (truncated, sealed, renamed) under the writer
    assert sorted(p.name for p in (out / "shards").iterdir()) == [partial.name]
    assert not (out / "manifest.parquet").exists()


def test_cli_second_download_prints_one_line(holder, tmp_path, capsys):
    from laionet_bench.cli import main

    out, partial = holder.out, holder.partial
    write_index(make_index_frame(["n01440764"] * 2), tmp_path / "idx.parquet")
    code = main(["download", "--index", str(tmp_path / "idx.parquet"), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err
    assert err.startswith("error: ") and str(out) in err and "another laionet-bench download" in err
    assert partial.exists()


def test_the_lock_goes_with_its_process_and_the_next_run_repairs(holder):
    holder.stop()
    store = ImageStore.open(holder.out)
    assert store.records[100000000]["shard"] == "shards/00000.tar"
    assert not holder.partial.exists() and (holder.out / "shards" / "00000.tar").exists()
    store._journal.close()
    store._lock.release()


def test_a_finished_store_opens_again(tmp_path):
    frame = make_index_frame(["n01440764"])
    store = ImageStore.open(tmp_path / "s")
    store.finish(frame[["row_id", "url"]])
    again = ImageStore.open(tmp_path / "s")  # finish() released the lock
    again.finish(frame[["row_id", "url"]])
