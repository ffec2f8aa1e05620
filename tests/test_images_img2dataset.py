"""--engine img2dataset: its output adopted into our store (runs only where img2dataset is installed)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from laionet_bench.errors import MissingDependencyError
from laionet_bench.images.download import DownloadOptions
from laionet_bench.images.fetch import FetchPolicy
from laionet_bench.images.img2dataset import classify_error, download_with_img2dataset, find_img2dataset
from laionet_bench.images.manifest import read_manifest

from .conftest import make_index_frame
from .fakes.images import ImageServer, Reply, image_bytes
from .test_images_download import _shard_samples

#: img2dataset lives in its own venv (it pins old pandas/webdataset); IMG2DATASET_BIN overrides.
IMG2DATASET = os.environ.get("IMG2DATASET_BIN") or shutil.which("img2dataset") or next(
    (str(p) for p in [Path(__file__).resolve().parents[1] / ".venv-img2dataset" / "bin" / "img2dataset"] if p.exists()),
    None)

pytestmark = pytest.mark.filterwarnings("ignore:unclosed file .*shards:ResourceWarning")


@pytest.mark.parametrize(
    ("message", "expected"),
    [("HTTP Error 404: Not Found", ("http_error", 404)), ("The read operation timed out", ("timeout", None)),
     ("<urlopen error [Errno 111] Connection refused>", ("connection_error", None)),
     ("<urlopen error unknown url type: ftp>", ("refused", None)), (None, ("connection_error", None)),
     ("<urlopen error [Errno -2] Name or service not known>", ("no_such_host", None))],
)
def test_classify_error(message, expected):
    assert classify_error(message) == expected


def test_missing_executable_names_the_extra():
    with pytest.raises(MissingDependencyError, match=r"laionet-bench\[img2dataset\]"):
        find_img2dataset("/nonexistent/img2dataset")


@pytest.mark.slow
@pytest.mark.skipif(IMG2DATASET is None, reason="img2dataset is not installed (pip install it into its own venv "
                    "and set IMG2DATASET_BIN); the engine is optional")
def test_img2dataset_output_is_adopted_into_our_layout(tmp_path):
    good = {"/a.jpg": image_bytes("RGB", "JPEG", (30, 20)), "/b.png": image_bytes("P", "PNG", (12, 12))}
    routes = {p: Reply(d, content_type="image/png" if p.endswith(".png") else "image/jpeg") for p, d in good.items()}
    routes["/gone.jpg"] = Reply(b"no", status=404, content_type="text/plain")
    routes["/page.jpg"] = Reply(b"<html>login</html>", content_type="text/html")
    with ImageServer(routes) as srv:
        frame = make_index_frame(["n01440764"] * 4 + ["n02110185"])
        frame["url"] = [srv.url(p) for p in routes] + ["http://10.0.0.1/never.jpg"]
        policy = FetchPolicy(timeout=2, allow_networks=("127.0.0.0/8",))
        opts = DownloadOptions(workers=2, retries=0)
        report = download_with_img2dataset(frame, tmp_path / "s", policy=policy, options=opts, executable=IMG2DATASET)
        again = download_with_img2dataset(frame, tmp_path / "s", policy=policy, options=opts, executable=IMG2DATASET)
    table = read_manifest(tmp_path / "s").table
    assert table["status"].tolist() == ["ok", "ok", "http_error", "not_image", "refused"]
    assert table["mode"].tolist()[:2] == ["RGB", "P"]
    assert report.run_counts["ok"] == 2 and again.attempted == 0  # nothing retryable left
    samples = _shard_samples(tmp_path / "s")
    rows = frame["row_id"].tolist()
    assert samples[rows[0]]["jpg"] == good["/a.jpg"] and samples[rows[1]]["png"] == good["/b.png"]
