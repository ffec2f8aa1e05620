"""Crash safety of shards and the store: torn shards are repaired, never read as good; the tar index."""

from __future__ import annotations

import hashlib
import json
import tarfile

import pytest

from laionet_bench.images.manifest import MANIFEST_FILE
from laionet_bench.images.shards import (
    PARTIAL_SUFFIX,
    ShardWriter,
    iter_shard_samples,
    iter_tar_index,
    seal_partial,
)
from laionet_bench.images.store import JOURNAL_FILE, ImageStore

from .fakes.images import image_bytes


def _sample(i: int) -> tuple[bytes, dict]:
    data = image_bytes("RGB", "JPEG", (16 + i, 16))
    return data, {"row_id": i, "url": f"http://x/{i}.jpg", "sha256": hashlib.sha256(data).hexdigest(),
                  "width": 16 + i, "height": 16, "mode": "RGB", "format": "JPEG", "bytes": len(data)}


def _write(writer: ShardWriter, ids) -> None:
    for i in ids:
        data, meta = _sample(i)
        writer.write(str(i), "jpg", data, meta)


def _crash(writer: ShardWriter) -> None:
    """What kill -9 leaves: the open shard's file as it is, never sealed."""
    if writer._file is not None:
        writer._file.close()


def test_writer_seals_full_shards_and_hides_open_ones(tmp_path):
    writer = ShardWriter(tmp_path, max_samples=3)
    _write(writer, range(3))
    assert writer.is_full and writer.current == "shards/00000.tar"
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["00000.tar" + PARTIAL_SUFFIX]
    assert writer.seal() == "shards/00000.tar"
    _write(writer, [3])
    assert writer.current == "shards/00001.tar"
    _crash(writer)
    with tarfile.open(tmp_path / "shards/00000.tar") as tar:
        assert tar.getnames() == ["0.jpg", "0.json", "1.jpg", "1.json", "2.jpg", "2.json"]
    assert [s.key for s in iter_shard_samples(tmp_path / "shards/00000.tar")] == ["0", "1", "2"]


@pytest.mark.parametrize("cut", ["mid_image", "mid_json", "between_members", "header"])
def test_seal_partial_keeps_complete_samples_and_cuts_the_tear(tmp_path, cut):
    writer = ShardWriter(tmp_path, max_samples=100)
    _write(writer, range(4))
    _crash(writer)
    partial = tmp_path / ("shards/00000.tar" + PARTIAL_SUFFIX)
    with tarfile.open(partial) as tar:  # a still-open shard has no end blocks yet; reading still works
        members = tar.getmembers()
    last_image, last_json = members[-2], members[-1]
    offset = {"mid_image": last_image.offset_data + 10, "mid_json": last_json.offset_data + 5,
              "between_members": last_json.offset, "header": last_image.offset + 100}[cut]
    with open(partial, "r+b") as handle:
        handle.truncate(offset)
    final, samples = seal_partial(partial)
    assert final.name == "00000.tar" and not partial.exists()
    assert [s.key for s in samples] == ["0", "1", "2"]
    with tarfile.open(final) as tar:  # a proper archive again, readable to the end
        assert tar.getnames() == ["0.jpg", "0.json", "1.jpg", "1.json", "2.jpg", "2.json"]
    assert [s.data for s in iter_shard_samples(final)] == [_sample(i)[0] for i in range(3)]


def test_a_sample_with_a_wrong_checksum_ends_the_good_part(tmp_path):
    writer = ShardWriter(tmp_path)
    _write(writer, [0])
    data, meta = _sample(1)
    writer.write("1", "jpg", data, dict(meta, sha256="0" * 64))
    _write(writer, [2])
    _crash(writer)
    final, samples = seal_partial(tmp_path / ("shards/00000.tar" + PARTIAL_SUFFIX))
    assert [s.key for s in samples] == ["0"]


def test_a_member_named_unlike_its_json_row_id_is_refused(tmp_path, caplog):
    writer = ShardWriter(tmp_path)
    _write(writer, [0])
    data, meta = _sample(1)
    writer.write("7", "jpg", data, meta)  # json says row 1, members say 7
    _write(writer, [2])
    _crash(writer)
    final, samples = seal_partial(tmp_path / ("shards/00000.tar" + PARTIAL_SUFFIX))
    assert [s.key for s in samples] == ["0"]
    assert "member 7.json says row_id 1" in caplog.text
    with tarfile.open(final) as tar:
        assert tar.getnames() == ["0.jpg", "0.json"]


def test_store_does_not_adopt_a_misnamed_sample_from_an_unknown_shard(tmp_path):
    writer = ShardWriter(tmp_path)
    _write(writer, [0])
    data, meta = _sample(1)
    writer.write("2", "jpg", data, meta)
    writer.seal()
    store = ImageStore.open(tmp_path)
    assert sorted(store.records) == [0] and store.needs_fetch(1) and store.needs_fetch(2)
    store._journal.close()
    store._lock.release()


def test_tar_index_locates_every_member_of_a_webdataset_shard(tmp_path):
    import webdataset as wds

    keys = ["k" * 120, "000000001", "000000002"]  # a name over 100 characters needs an extra header
    samples = {key: _sample(i)[0] for i, key in enumerate(keys)}
    path = tmp_path / "wds.tar"
    with wds.TarWriter(str(path)) as sink:
        for i, (key, data) in enumerate(samples.items()):
            sink.write({"__key__": key, "jpg": data, "cls": str(i).encode()})
    members = list(iter_tar_index(path))
    with open(path, "rb") as handle:
        found = {m.name: m.read(handle) for m in members if m.is_file}
    labels = {f"{key}.cls": str(i).encode() for i, key in enumerate(keys)}
    assert found == {**{f"{key}.jpg": data for key, data in samples.items()}, **labels}
    with tarfile.open(path) as tar:  # data offsets, not header offsets; ``end``: where the next headers start
        infos = tar.getmembers()
    assert [(m.offset, m.size) for m in members] == [(t.offset_data, t.size) for t in infos]
    assert [m.end for m in members[:-1]] == [t.offset for t in infos[1:]]


def test_store_recovers_partial_unreferenced_shards_and_the_journal(tmp_path):
    index_rows = __import__("pandas").DataFrame({"row_id": range(8), "url": [f"http://x/{i}.jpg" for i in range(8)]})
    store = ImageStore.open(tmp_path, shard_size=3, checkpoint_seconds=3600)
    for i in range(5):  # shard 0 sealed (0-2), shard 1 open (3-4)
        data, meta = _sample(i)
        store.add({"row_id": i, "url": meta["url"], "status": "ok", "key": str(i), "bytes": len(data),
                   "sha256": meta["sha256"], "width": meta["width"], "height": 16, "mode": "RGB",
                   "format": "JPEG"}, data, dict(meta, _ext="jpg"))
    store.add({"row_id": 5, "url": "http://x/5.jpg", "status": "http_error", "http_code": 404, "error": "HTTP 404"})
    store.add({"row_id": 6, "url": "http://x/6.jpg", "status": "timeout", "error": "slow"})
    store.flush()  # the end of a batch
    with open(tmp_path / JOURNAL_FILE, "a") as handle:
        handle.write('{"row_id": 7, "sta')  # torn by the crash
    assert not (tmp_path / MANIFEST_FILE).exists()  # no snapshot yet: everything comes from shards + journal
    _crash(store.writer)  # the open store is abandoned without finish()
    store._journal.close()
    store._lock.release()  # as the operating system does when the process dies

    again = ImageStore.open(tmp_path, shard_size=3)
    assert {rid: r["status"] for rid, r in again.records.items()} == {
        0: "ok", 1: "ok", 2: "ok", 3: "ok", 4: "ok", 5: "http_error", 6: "timeout"}
    assert again.records[4]["shard"] == "shards/00001.tar"
    assert not again.needs_fetch(3) and not again.needs_fetch(5) and again.needs_fetch(6) and again.needs_fetch(7)
    assert again.needs_fetch(5, retry_failed=True)
    manifest = again.finish(index_rows)
    assert manifest.table["status"].tolist() == ["ok"] * 5 + ["http_error", "timeout", "pending"]
    info = json.loads((tmp_path / "_info.json").read_text())
    assert info["splits"]["laionet"]["shard_lengths"] == [3, 2]
    assert not list((tmp_path / "shards").glob("*" + PARTIAL_SUFFIX))
