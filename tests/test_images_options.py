"""Download options are checked when they are made (Python API) and before any work starts (CLI)."""

from __future__ import annotations

import pytest

from laionet_bench.errors import ConfigError
from laionet_bench.images.download import DownloadOptions
from laionet_bench.images.fetch import FetchPolicy


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_host": 0}, r"per_host=0 \(--per-host\) must be at least 1"),
        ({"timeout": 0}, r"timeout=0 \(--timeout\) must be more than 0 seconds"),
        ({"timeout": -1.5}, r"timeout=-1.5 \(--timeout\)"),
        ({"timeout": float("nan")}, r"timeout=nan \(--timeout\)"),
        ({"total_timeout": 0}, r"total_timeout=0 must be more than 0"),
        ({"max_bytes": 0}, r"max_bytes=0 \(--max-bytes\) must be at least 1 byte"),
        ({"max_bytes": -10}, r"max_bytes=-10 \(--max-bytes\)"),
        ({"max_redirects": -1}, r"max_redirects=-1 \(--max-redirects\) must be 0"),
        ({"allow_networks": ("127.0.0.0/33",)}, r"allow_networks=\('127.0.0.0/33',\) \(--allow-network\) must be"),
        ({"allow_networks": ("localhost",)}, r"\(--allow-network\) must be a list of CIDR networks"),
        ({"allow_networks": "127.0.0.0/8"}, r"\(--allow-network\) must be a list of CIDR"),  # a str, not a tuple
        ({"timeout": float("inf")}, r"timeout=inf \(--timeout\) must be more than 0 seconds and at most a day"),
        ({"timeout": 1e10}, r"timeout=10000000000.0 \(--timeout\)"),  # sockets overflow near here
        ({"total_timeout": float("inf")}, r"total_timeout=inf must be more than 0 seconds and at most a week"),
        ({"user_agent": "bot\r\nX-Injected: 1"}, r"\(--user-agent\) must be one line of printable text"),
    ],
)
def test_bad_fetch_policies_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        FetchPolicy(**kwargs)


def test_good_fetch_policies_pass():
    FetchPolicy(max_redirects=0, allow_networks=("127.0.0.0/8", "::1/128", "10.1.2.3"), per_host=1, max_bytes=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, r"limit=0 \(--limit\) must be at least 1"),
        ({"limit": -3}, r"limit=-3 \(--limit\)"),
        ({"workers": 0}, r"workers=0 \(--concurrency\) must be at least 1"),  # --workers is the old name
        ({"retries": -1}, r"retries=-1 \(--retries\) must be 0 or more"),
        ({"resize": 0}, r"resize=0 \(--resize\)"),
        ({"shard_size": 0}, r"shard_size=0 \(--shard-size\)"),
        ({"max_pixels": 0}, r"max_pixels=0 \(--max-pixels\)"),
        ({"retry_backoff": -1.0}, r"retry_backoff=-1.0 must be 0 seconds or more"),
        ({"max_retry_after": -1.0}, r"max_retry_after=-1.0 must be"),
        ({"checkpoint_seconds": -1.0}, r"checkpoint_seconds=-1.0 \(--checkpoint-seconds\)"),
    ],
)
def test_bad_download_options_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DownloadOptions(**kwargs)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--per-host", "0"], "--per-host"),
        (["--timeout", "0"], "--timeout"),
        (["--timeout", "-2"], "--timeout"),
        (["--max-bytes", "0"], "--max-bytes"),
        (["--max-redirects", "-1"], "--max-redirects"),
        (["--limit", "0"], "--limit"),
        (["--allow-network", "10.0.0.0/40"], "--allow-network"),
        (["--allow-network", "not-a-network"], "--allow-network"),
        (["--timeout", "inf"], "--timeout"),
        (["--user-agent", "bot\r\nX-Injected: 1"], "--user-agent"),
        (["--concurrency", "0"], "--concurrency"),
    ],
)
def test_cli_refuses_bad_flags_in_one_line_before_reading_the_index(tmp_path, capsys, flags, named):
    from laionet_bench.cli import main

    missing_index = tmp_path / "never-read.parquet"  # the flags are checked first: no "no such file" error
    code = main(["download", "--index", str(missing_index), "--out", str(tmp_path / "s"), "--no-progress", *flags])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith("error: download option ") and f"({named})" in err and "\n" not in err
    assert "never-read" not in err and not (tmp_path / "s").exists()


def test_an_out_that_is_a_file_or_read_only_is_refused_before_reading_the_index(tmp_path, capsys, monkeypatch):
    from laionet_bench import _io
    from laionet_bench.cli import main

    (tmp_path / "taken").write_text("x")
    command = ["download", "--index", str(tmp_path / "never-read.parquet"), "--no-progress", "--out"]
    assert main([*command, str(tmp_path / "taken")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: --out {tmp_path / 'taken'}: {tmp_path / 'taken'} is a file, not a folder; pass another --out"]
    monkeypatch.setattr(_io, "output_folder_writable", lambda path, flag="--out": False)  # root ignores chmod: say it
    assert main([*command, str(tmp_path / "ro")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: --out {tmp_path / 'ro'} is read-only: pass a writable folder for the image store"]


def test_the_library_refuses_a_store_that_is_a_file_before_fetching(tmp_path):
    from laionet_bench.images.download import download_images

    from .conftest import make_index_frame

    (tmp_path / "taken").write_text("x")
    with pytest.raises(ConfigError, match="taken is a file, not a folder"):
        download_images(make_index_frame(["n01440764"]), tmp_path / "taken" / "images", progress=False)
