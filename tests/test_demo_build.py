"""The demo builder on small real subsets of the installed packages (skipped only where a package is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from laionet_bench.catalog import load_catalog
from laionet_bench.cli import main
from laionet_bench.demo import build_demo, load_labels
from laionet_bench.demo import sources as demo_sources
from laionet_bench.demo.build import POOL_URL_PREFIX
from laionet_bench.demo.sources import openclipart_caption
from laionet_bench.errors import MissingSystemPackageError

LAION_COLUMNS = ["SAMPLE_ID", "URL", "TEXT", "HEIGHT", "WIDTH", "LICENSE", "NSFW"]


def needs(*names: str) -> None:
    """Skip the test when a source's Debian package is not installed (CI installs them: scripts/setup.sh)."""
    for name in names:
        try:
            demo_sources.check_source(name)
        except MissingSystemPackageError as exc:
            pytest.skip(str(exc))


def test_small_build_writes_laion_like_pool_and_imagenet_folder(tmp_path):
    needs("tuxpaint")
    build = build_demo(tmp_path / "d", sources=["tuxpaint", "samples"], limit=4, workers=1)
    pool = pd.read_parquet(tmp_path / "d" / "pool.parquet")
    assert list(pool.columns[:7]) == LAION_COLUMNS and {"source", "package", "path"} <= set(pool.columns)
    assert build.pool_rows == len(pool) == 8 and build.rendered == 8 and not build.failed
    assert pool["SAMPLE_ID"].tolist() == list(range(8))
    assert (pool["URL"] == [f"{POOL_URL_PREFIX}{i}.png" for i in range(8)]).all()
    assert set(pool["NSFW"]) == {"UNLIKELY"}
    for row in pool.itertuples():
        with Image.open(tmp_path / "d" / "pool_images" / f"{row.SAMPLE_ID}.png") as image:
            assert image.mode == "RGB" and image.size == (row.WIDTH, row.HEIGHT)
    # Tux Paint captions are line 1 of the stamp's .txt file
    first = pool[pool["source"] == "tuxpaint"].iloc[0]
    txt = (demo_sources.SYSTEM_ROOT / first["path"]).with_suffix(".txt")
    assert first["TEXT"] == txt.read_text(encoding="utf-8").splitlines()[0].strip()
    # sample photos: file-name captions; the reviewed ones (camera, chelsea, coffee) form ImageNet-demo
    assert {"astronaut", "chelsea"} <= set(pool["TEXT"])
    folders = sorted(p.name for p in (tmp_path / "d" / "imagenet-demo").iterdir())
    assert folders == ["n02123045", "n04485082", "n07920052"]
    assert all(len(list((tmp_path / "d" / "imagenet-demo" / f).glob("*.png"))) == 1 for f in folders)
    assert build.imagenet_images == 3


def test_build_is_deterministic_and_rebuilds_only_what_is_missing(tmp_path):
    needs("emoji")
    first = build_demo(tmp_path / "a", sources=["emoji", "samples"], limit=3, workers=1)
    again = build_demo(tmp_path / "b", sources=["emoji", "samples"], limit=3, workers=1)
    assert first.manifest_sha256 == again.manifest_sha256
    image = tmp_path / "a" / "pool_images" / "1.png"
    stamp = image.stat().st_mtime_ns
    image_2 = tmp_path / "a" / "pool_images" / "2.png"
    image_2.unlink()
    resumed = build_demo(tmp_path / "a", sources=["emoji", "samples"], limit=3, workers=1)
    assert (resumed.rendered, resumed.reused) == (1, 5)
    assert image.stat().st_mtime_ns == stamp and image_2.is_file()
    assert resumed.manifest_sha256 == first.manifest_sha256
    forced = build_demo(tmp_path / "a", sources=["emoji", "samples"], limit=3, force=True, workers=2)
    assert (forced.rendered, forced.reused) == (6, 0) and forced.manifest_sha256 == first.manifest_sha256


def test_changed_plan_never_reuses_another_items_image(tmp_path):
    needs("emoji")
    build_demo(tmp_path / "d", sources=["samples"], limit=2, workers=1)
    build = build_demo(tmp_path / "d", sources=["emoji", "samples"], limit=2, workers=1)
    assert build.rendered == 4  # row ids 0-1 now hold emoji: the sample renders there are stale
    pool = pd.read_parquet(tmp_path / "d" / "pool.parquet")
    manifest = json.loads((tmp_path / "d" / "demo_manifest.json").read_text())
    with Image.open(tmp_path / "d" / "pool_images" / "0.png") as image:
        assert image.size == (136, 128)  # an emoji canvas, not the astronaut photo
    assert pool.loc[0, "source"] == "emoji" and pool.loc[0, "TEXT"] == pool.loc[0, "TEXT"].lower()
    assert manifest["counts"]["per_source"] == {"emoji": 2, "samples": 2}


def test_gcompris_images_come_out_of_qt_resource_archives(tmp_path):
    needs("gcompris")
    build = build_demo(tmp_path / "d", sources=["gcompris"], limit=3, workers=1)
    pool = pd.read_parquet(tmp_path / "d" / "pool.parquet")
    assert build.rendered == 3 and not build.failed
    assert all(p.startswith("gcompris/src/") for p in pool["path"])


def test_missing_debian_package_names_the_install_command(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(demo_sources, "SYSTEM_ROOT", tmp_path / "empty-root")
    with pytest.raises(MissingSystemPackageError, match="apt-get install tuxpaint-stamps-default"):
        build_demo(tmp_path / "d", sources=["tuxpaint", "samples"], limit=1, workers=1)
    assert not (tmp_path / "d" / "pool.parquet").exists()
    build = build_demo(tmp_path / "d", sources=["tuxpaint", "samples"], limit=1, workers=1, allow_missing=True)
    assert build.skipped_sources == ["tuxpaint"] and build.pool_rows == 1
    assert "skipping demo source 'tuxpaint'" in caplog.text


def test_label_manifest_is_reviewed_and_in_the_catalogue():
    labels = load_labels()
    catalog = load_catalog()
    assert all(w in catalog for w in labels["wnid"])
    assert set(labels["source"]) <= set(demo_sources.SOURCES)
    # the known wrong candidates are gone
    assert not labels["caption"].str.contains("hedgehog|Hair\\.|Roundabout|lollipop|kick scooter").any()
    assert not labels["path"].str.contains("dreydl-hay").any()
    photo = labels[labels["photo_like"] == 1]
    assert len(photo) >= 100 and photo["wnid"].nunique() >= 70


@pytest.mark.parametrize("source", ["tuxpaint", "openclipart", "gcompris", "emoji", "samples"])
def test_every_label_names_an_image_of_the_pool_with_the_pool_caption(source):
    needs(source)
    listed = {item.path: item for item in demo_sources.list_items(source)}
    labels = load_labels()
    rows = labels[labels["source"] == source]
    missing = sorted(set(rows["path"]) - set(listed))
    assert not missing, f"labelled paths not in the {source} pool: {missing[:5]}"
    assert all(listed[r.path].caption == r.caption for r in rows.itertuples())


def test_openclipart_caption_reads_title_and_keywords():
    svg = (
        "<svg><metadata><rdf:RDF><cc:Work><dc:title>Tiger &amp; Cub</dc:title><dc:subject><rdf:Bag>"
        "<rdf:li>animal</rdf:li><rdf:li></rdf:li><rdf:li>feline</rdf:li></rdf:Bag></dc:subject>"
        "</cc:Work></rdf:RDF></metadata></svg>"
    )
    assert openclipart_caption(svg, "tiger_01") == "Tiger & Cub (animal, feline)"
    assert openclipart_caption("<svg/>", "polar_bear_02") == "polar bear"


def test_cli_demo_build(tmp_path, capsys):
    code = main(["demo", "build", "--out", str(tmp_path / "d"), "--sources", "samples", "--limit", "2",
                 "--workers", "1", "--format", "json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["pool_rows"] == 2 and summary["rendered"] == 2
    assert Path(summary["out"]) == tmp_path / "d"
    assert main(["demo", "build", "--sources", "nope"]) == 1
    assert "unknown demo source 'nope'" in capsys.readouterr().err
