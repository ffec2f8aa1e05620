"""download_images against a real loopback server: every failure kind, byte-identical shards, resume."""

from __future__ import annotations

import errno
import glob
import io
import json
import os

import pytest
import webdataset as wds
from PIL import Image

from laionet_bench.images.download import DownloadOptions, download_images
from laionet_bench.images.fetch import FetchPolicy
from laionet_bench.images.manifest import read_manifest
from laionet_bench.images.store import INFO_FILE, JOURNAL_FILE

from .conftest import make_index_frame
from .fakes.images import ImageServer, Reply, huge_png_header, image_bytes, redirect

# webdataset 1.0.2 leaves its tar file handles to the garbage collector.
pytestmark = pytest.mark.filterwarnings("ignore:unclosed file .*shards:ResourceWarning")

LOOPBACK = ("127.0.0.0/8",)
POLICY = FetchPolicy(timeout=0.5, total_timeout=5.0, allow_networks=LOOPBACK)
OPTIONS = DownloadOptions(workers=4, retries=1, retry_backoff=0.0, shard_size=4, checkpoint_seconds=0.0)

JPEG = image_bytes("RGB", "JPEG", (40, 30))
GOOD = {
    "/good.jpg": (Reply(JPEG), "ok", "RGB"),
    "/good.png": (Reply(image_bytes("RGB", "PNG"), content_type="image/png"), "ok", "RGB"),
    "/good.webp": (Reply(image_bytes("RGB", "WEBP"), content_type="image/webp"), "ok", "RGB"),
    "/cmyk.jpg": (Reply(image_bytes("CMYK", "JPEG")), "ok", "CMYK"),
    "/palette.png": (Reply(image_bytes("P", "PNG"), content_type="image/png"), "ok", "P"),
    "/sixteen.png": (Reply(image_bytes("I;16", "PNG"), content_type="image/png"), "ok", "I;16"),
    "/gray.jpg": (Reply(image_bytes("L", "JPEG")), "ok", "L"),
    "/flaky.jpg": ([Reply(b"overloaded", status=500, content_type="text/plain"), Reply(JPEG)], "ok", "RGB"),
}
BAD = {
    "/truncated.jpg": (Reply(JPEG[: len(JPEG) * 2 // 3]), "decode_error"),
    "/empty.jpg": (Reply(b""), "not_image"),
    "/page.jpg": (Reply(b"<!DOCTYPE html><html><body>gone</body></html>", content_type="text/html"), "not_image"),
    "/missing.jpg": (Reply(b"no", status=404, content_type="text/plain"), "http_error"),
    "/slow.jpg": (Reply(JPEG, delay=2.0), "timeout"),
    "/reset.jpg": (Reply(JPEG, reset_after=100), "connection_error"),
    "/loop.jpg": (redirect("/loop2.jpg"), "redirect_loop"),
    "/private.jpg": (redirect("http://10.0.0.1/x.jpg"), "refused"),
    "/bomb.png": (Reply(huge_png_header(), content_type="image/png"), "bomb"),
    "/ftp.jpg": (redirect("ftp://127.0.0.1/x.jpg"), "refused"),
}


def _routes() -> dict:
    routes = {path: reply for path, (reply, *_) in {**GOOD, **BAD}.items()}
    routes["/loop2.jpg"] = redirect("/loop.jpg")
    return routes


def _index(server: ImageServer, paths: list[str]):
    frame = make_index_frame(["n01440764"] * len(paths))
    frame["url"] = [server.url(p) for p in paths]
    return frame


@pytest.fixture
def server():
    with ImageServer(_routes()) as srv:
        yield srv


def _shard_samples(root) -> dict[int, dict]:
    files = sorted(glob.glob(str(root / "shards" / "*.tar")))
    dataset = wds.WebDataset(files, shardshuffle=False)
    return {int(s["__key__"]): s for s in dataset}


def test_every_case_ends_in_its_status_and_good_bytes_are_identical(server, tmp_path):
    paths = list(GOOD) + list(BAD)
    frame = _index(server, paths)
    report = download_images(frame, tmp_path / "store", policy=POLICY, options=OPTIONS, progress=False)
    table = read_manifest(tmp_path / "store").table.set_index("row_id")
    expected = {**{p: v[1] for p, v in GOOD.items()}, **{p: v[1] for p, v in BAD.items()}}
    got = {path: table.loc[rid, "status"] for path, rid in zip(paths, frame["row_id"], strict=True)}
    assert got == expected
    assert len(table) == len(frame) and report.attempted == len(frame)
    assert table.loc[frame["row_id"][paths.index("/missing.jpg")], "http_code"] == 404
    assert server.requests["/flaky.jpg"] == 2  # the 500 was retried within the run
    assert server.requests["/missing.jpg"] == 1  # a 404 was not

    samples = _shard_samples(tmp_path / "store")
    assert set(samples) == {int(frame["row_id"][paths.index(p)]) for p in GOOD}
    for path, (reply, _, mode) in GOOD.items():
        rid = int(frame["row_id"][paths.index(path)])
        body = (reply[-1] if isinstance(reply, list) else reply).body
        ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[Image.open(io.BytesIO(body)).format]
        assert samples[rid][ext] == body, path
        meta = json.loads(samples[rid]["json"])
        assert (meta["row_id"], meta["mode"], meta["wnid"]) == (rid, mode, "n01440764")
        assert table.loc[rid, "mode"] == mode and table.loc[rid, "shard"].startswith("shards/")
    assert not (tmp_path / "store" / JOURNAL_FILE).exists()
    info = json.loads((tmp_path / "store" / INFO_FILE).read_text())
    assert info["splits"]["laionet"]["num_samples"] == len(GOOD)


def test_refusal_happens_before_any_connection(server, tmp_path, monkeypatch):
    import httpcore2._backends.sync as sync_backend

    real = sync_backend.socket.create_connection
    targets = []

    def recording(address, *args, **kwargs):
        targets.append(address[0])
        return real(address, *args, **kwargs)

    monkeypatch.setattr(sync_backend.socket, "create_connection", recording)
    frame = _index(server, ["/private.jpg"])
    download_images(frame, tmp_path / "store", policy=POLICY, options=OPTIONS, progress=False)
    assert read_manifest(tmp_path / "store").table["status"].tolist() == ["refused"]
    assert targets and set(targets) == {"127.0.0.1"}


def test_official_filter_keeps_only_rgb_of_100_pixels(tmp_path):
    files = {"/rgb.jpg": image_bytes("RGB", "JPEG", (10, 10)), "/tiny.jpg": image_bytes("RGB", "JPEG", (9, 11)),
             "/gray.jpg": image_bytes("L", "JPEG"), "/cmyk.jpg": image_bytes("CMYK", "JPEG")}
    with ImageServer.serving(files) as srv:
        frame = _index(srv, list(files))
        opts = DownloadOptions(workers=2, official_filter=True, checkpoint_seconds=0.0)
        download_images(frame, tmp_path / "s", policy=POLICY, options=opts, progress=False)
        assert read_manifest(tmp_path / "s").table["status"].tolist() == ["ok", "filtered", "filtered", "filtered"]
        # without the filter, filtered rows are decided again (and kept)
        download_images(frame, tmp_path / "s", policy=POLICY, options=DownloadOptions(workers=2), progress=False)
        assert read_manifest(tmp_path / "s").table["status"].tolist() == ["ok"] * 4
        assert srv.requests["/rgb.jpg"] == 1 and srv.requests["/gray.jpg"] == 2


def test_resume_refetches_only_what_is_not_ok(server, tmp_path):
    paths = ["/good.jpg", "/missing.jpg", "/reset.jpg", "/page.jpg"]
    frame = _index(server, paths)
    store = tmp_path / "store"
    download_images(frame, store, policy=POLICY, options=OPTIONS, progress=False)
    first = read_manifest(store)
    download_images(frame, store, policy=POLICY, options=OPTIONS, progress=False)
    assert server.requests["/good.jpg"] == 1  # ok: never again
    assert server.requests["/missing.jpg"] == 1 and server.requests["/page.jpg"] == 1  # permanent
    assert server.requests["/reset.jpg"] == 4  # retryable: 2 attempts per run
    assert read_manifest(store).sha256 == first.sha256
    server.add("/missing.jpg", Reply(JPEG))
    retry = DownloadOptions(workers=2, retry_failed=True, retries=0)
    report = download_images(frame, store, policy=POLICY, options=retry, progress=False)
    assert report.run_counts == {"ok": 1, "not_image": 1, "connection_error": 1}
    table = read_manifest(store).table
    assert table["status"].tolist() == ["ok", "ok", "connection_error", "not_image"]
    assert len(_shard_samples(store)) == 2


def test_limit_leaves_the_rest_pending(tmp_path):
    files = {f"/{i}.jpg": image_bytes("RGB", "JPEG", (12, 12 + i)) for i in range(5)}
    with ImageServer.serving(files) as srv:
        frame = _index(srv, list(files))
        report = download_images(frame, tmp_path / "s", policy=POLICY,
                                 options=DownloadOptions(workers=2, limit=2), progress=False)
    statuses = report.manifest.table["status"].tolist()
    assert statuses.count("ok") == 2 and statuses.count("pending") == 3


def test_resize_shrinks_the_shorter_side(tmp_path):
    files = {"/big.jpg": image_bytes("RGB", "JPEG", (300, 200)), "/small.png": image_bytes("P", "PNG", (40, 30))}
    with ImageServer.serving(files) as srv:
        frame = _index(srv, list(files))
        opts = DownloadOptions(workers=2, resize=64)
        download_images(frame, tmp_path / "s", policy=POLICY, options=opts, progress=False)
    table = read_manifest(tmp_path / "s").table
    assert table[["width", "height", "mode"]].values.tolist() == [[96, 64, "RGB"], [40, 30, "P"]]
    samples = _shard_samples(tmp_path / "s")
    assert samples[int(frame["row_id"][1])]["png"] == files["/small.png"]  # small enough: bytes kept


def test_too_large_is_cut_off_by_header_or_while_streaming(tmp_path):
    noise = io.BytesIO()
    Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3)).save(noise, format="PNG")
    routes = {"/declared.png": Reply(noise.getvalue(), content_type="image/png"),
              "/streamed.png": Reply(noise.getvalue(), content_type="image/png", send_length=False),
              "/fits.png": Reply(image_bytes("RGB", "PNG", (8, 8)), content_type="image/png", send_length=False)}
    with ImageServer(routes) as srv:
        policy = FetchPolicy(timeout=0.5, allow_networks=LOOPBACK, max_bytes=4096)
        download_images(_index(srv, list(routes)), tmp_path / "s", policy=policy, options=OPTIONS, progress=False)
    assert read_manifest(tmp_path / "s").table["status"].tolist() == ["too_large", "too_large", "ok"]


def test_timm_wds_reader_reads_the_store(tmp_path):
    from timm.data import create_dataset

    files = {f"/{i}.jpg": image_bytes("RGB", "JPEG", (20, 20 + i)) for i in range(3)}
    with ImageServer.serving(files) as srv:
        frame = _index(srv, list(files))
        download_images(frame, tmp_path / "s", policy=POLICY, options=OPTIONS, progress=False)
    dataset = create_dataset("wds/laionet", root=str(tmp_path / "s"), split="laionet", target_key="class_index")
    items = list(dataset)
    assert len(items) == 3 and {t for _, t in items} == {0}
    assert sorted(img.size for img, _ in items) == [(20, 20), (20, 21), (20, 22)]


def test_kill_9_mid_run_then_resume_loses_nothing_and_refetches_only_in_flight(tmp_path):
    import signal
    import subprocess
    import sys
    import threading
    from pathlib import Path

    from laionet_bench.images.store import ImageStore
    from laionet_bench.index.schema import write_index

    files = {f"/{i}.jpg": image_bytes("RGB", "JPEG", (16 + i % 7, 16 + i)) for i in range(60)}
    workers = 3
    with ImageServer.serving(files, latency=0.03) as srv:
        frame = _index(srv, list(files))
        write_index(frame, tmp_path / "idx.parquet")
        store = tmp_path / "store"
        reached = threading.Event()
        original = srv._next_reply

        def counting(path, headers):  # kill once a good part of the run is done
            if sum(srv.requests.values()) >= 25:
                reached.set()
            return original(path, headers)

        srv._next_reply = counting
        cmd = [sys.executable, "-m", "laionet_bench", "-q", "download", "--index", str(tmp_path / "idx.parquet"),
               "--out", str(store), "--allow-network", "127.0.0.0/8", "--concurrency", str(workers),
               "--shard-size", "7", "--checkpoint-seconds", "0.1", "--no-progress"]
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert reached.wait(60), proc.stderr.read().decode() if proc.poll() is not None else "no progress"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stderr.close()
        srv._next_reply = original
        assert proc.returncode == -signal.SIGKILL

        recovered = ImageStore.open(store)  # what survived the kill (repairs the torn shard)
        durable = {rid for rid, r in recovered.records.items() if r["status"] == "ok"}
        recovered.finish(frame[["row_id", "url"]])
        before = dict(srv.requests)
        assert len(durable) >= 10 and len(durable) < len(files)

        report = download_images(frame, store, policy=POLICY, options=OPTIONS, progress=False)

    assert report.counts == {"ok": len(files)}
    path_of = dict(zip(frame["row_id"].tolist(), files, strict=True))
    assert all(srv.requests[path_of[rid]] == 1 for rid in durable)  # kept images are not fetched again
    refetched = [p for p in files if srv.requests[p] == 2]
    assert all(srv.requests[p] <= 2 for p in files)
    assert len(refetched) <= 2 * workers + 1  # only what was in flight (or being written) at the kill
    assert all(before.get(p, 0) == 1 for p in refetched)
    samples = _shard_samples(store)
    assert len(samples) == len(files)
    assert all(samples[rid]["jpg"] == files[path_of[rid]] for rid in samples)
    assert not list((store / "shards").glob("*.partial"))


def test_cli_prints_a_summary_by_status(server, tmp_path, capsys):
    from laionet_bench.cli import main
    from laionet_bench.index.schema import write_index

    frame = _index(server, ["/good.jpg", "/missing.jpg"])
    write_index(frame, tmp_path / "idx.parquet")
    code = main(["download", "--index", str(tmp_path / "idx.parquet"), "--out", str(tmp_path / "s"),
                 "--allow-network", "127.0.0.0/8", "--workers", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    rows = {line.split("|")[1].strip(): line.split("|")[2:4] for line in out.splitlines() if line.startswith("| ")}
    assert [v.strip() for v in rows["ok"]] == ["1", "1"] and [v.strip() for v in rows["http_error"]] == ["1", "1"]
    assert read_manifest(tmp_path / "s").sha256 in out


def test_cli_on_a_full_disk_names_the_store_and_keeps_what_was_done(server, tmp_path, capsys, monkeypatch):
    from laionet_bench.cli import main
    from laionet_bench.images.shards import ShardWriter
    from laionet_bench.index.schema import write_index

    write_index(_index(server, ["/good.jpg", "/good.png"]), tmp_path / "idx.parquet")
    command = ["download", "--index", str(tmp_path / "idx.parquet"), "--out", str(tmp_path / "s"), "--shard-size", "1",
               "--allow-network", "127.0.0.0/8", "--concurrency", "1", "--no-progress", "-q"]
    write = ShardWriter.write
    writes = []

    def first_then_full(self, *args):
        writes.append(args[0])
        if len(writes) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")  # a write to an open shard names no file
        return write(self, *args)

    with monkeypatch.context() as patch:
        patch.setattr(ShardWriter, "write", first_then_full)
        assert main(command) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path / 's'}: no space left on device: free space and re-run; finished work is kept"]
    assert main(command) == 0  # the first image's sealed shard was kept: only the other is fetched again
    assert server.requests["/good.jpg"] + server.requests["/good.png"] == 3
    assert read_manifest(tmp_path / "s").status_counts().to_dict() == {"ok": 2}
