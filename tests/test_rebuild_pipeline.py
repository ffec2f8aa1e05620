import json

import numpy as np
import pandas as pd
import pytest

from laionet_bench.catalog import lemma_map
from laionet_bench.cli import main
from laionet_bench.errors import ConfigError, DatasetError, StoreError
from laionet_bench.index.schema import read_index_file
from laionet_bench.rebuild import ColumnMap, RebuildConfig, resolve_parts, run_pipeline
from laionet_bench.rebuild.select import select_rows, top_per_class

from .fakes.disk import full_disk_under
from .fakes.laion import write_laion_part

OFFICIAL = lemma_map("official").lemma_to_wnid
TENCH, LION, SEA_LION, GOLDFISH = OFFICIAL["tench"], OFFICIAL["lion"], OFFICIAL["sea lion"], OFFICIAL["goldfish"]


class TaggedEncoder:
    """Captions end in ``#<similarity>``; the synset text is e0, a caption (s, sqrt(1 - s²)): cosine = s."""

    name = "tagged"

    def __init__(self, fail_on: str | None = None):
        self.seen: list[str] = []
        self.fail_on = fail_on

    def encode(self, texts):
        if self.fail_on and any(self.fail_on in t for t in texts):
            raise KeyboardInterrupt("killed")
        self.seen.extend(texts)
        out = np.zeros((len(texts), 2), np.float32)
        for i, text in enumerate(texts):
            s = float(text.rpartition("#")[2]) if "#" in text else 1.0
            out[i] = (s, np.sqrt(max(0.0, 1 - s * s)))
        return out


PART0 = ["a tench #0.9", "a tench #0.9", "a sea lion #0.95", "lion #0.82", "lion #0.8200001",
         "goldfish #0.99", None, "nothing to see", "tench #0.91"]
NSFW0 = ["UNLIKELY", "UNLIKELY", "UNLIKELY", "UNLIKELY", "UNLIKELY", "UNSURE", "UNLIKELY", "UNLIKELY", None]
PART1 = ["goldfish bowl #0.97", "Goldfish #0.99", "tench, goldfish #0.99", "my goldfish #0.83"]


@pytest.fixture
def laion_parts(tmp_path):
    write_laion_part(tmp_path / "laion" / "part-00000-abc.snappy.parquet", PART0, nsfw=NSFW0)
    write_laion_part(tmp_path / "laion" / "part-00002-abc.snappy.parquet", PART1, nsfw="UNLIKELY")
    return str(tmp_path / "laion" / "part-*.parquet")


def config_for(parts, tmp_path, **kw):
    defaults = dict(parts=[parts], work_dir=str(tmp_path / "work"), encoder="sentence-transformers:tagged",
                    threshold=0.82, top_per_class=1)
    return RebuildConfig(**{**defaults, **kw})


def test_full_pipeline_counts_and_index(laion_parts, tmp_path):
    encoder = TaggedEncoder()
    report = run_pipeline(config_for(laion_parts, tmp_path), encoder=encoder)
    # part 0: 9 rows, 7 matched ("sea lion" = sea lion + lion → dropped), NaN and "nothing" unmatched
    # part 2: 4 rows, "Goldfish" misses (case-sensitive), "tench, goldfish" dropped (2 wnids)
    assert (report.rows, report.matched, report.multi_synset, report.single_synset) == (13, 10, 2, 8)
    assert (report.no_caption, report.no_lemma) == (1, 2)  # the NaN caption; "nothing to see", "Goldfish"
    assert report.nsfw_dropped == 1 + 1  # UNSURE, missing NSFW
    assert report.below_threshold == 1  # "lion #0.82": 0.82 itself is dropped
    assert report.kept == 5 and report.variants == {"tagged_0.82": 5, "tagged_top1": 3}
    frame = read_index_file(tmp_path / "work" / "dataset" / "data" / "tagged_0.82.parquet")
    assert frame["row_id"].tolist() == [0, 1, 4, 200_000_000, 200_000_003]
    assert frame["wnid"].tolist() == [TENCH, TENCH, LION, GOLDFISH, GOLDFISH]
    assert frame["sample_id"].tolist() == ["1000", "1001", "1004", "1000", "1003"]
    assert (frame["nsfw"] == "UNLIKELY").all() and not frame["ocr_flag"].any()
    assert report.class_counts == {GOLDFISH: 2, LION: 1, TENCH: 2}
    top = read_index_file(tmp_path / "work" / "dataset" / "data" / "tagged_top1.parquet")
    assert top["row_id"].tolist() == [0, 4, 200_000_000]  # tench tie → lower row id; goldfish 0.97 > 0.83
    assert sorted(t for t in encoder.seen if t.startswith("a tench")) == ["a tench #0.9"]  # duplicates once
    manifest = json.loads((tmp_path / "work" / "dataset" / "manifest.json").read_text())
    assert manifest["files"]["data/tagged_0.82.parquet"]["rows"] == 5
    card = (tmp_path / "work" / "dataset" / "README.md").read_text()
    assert "## Class histogram" in card and "goldfish" in card and "CC-BY 4.0" in card


def test_resume_after_a_killed_run_recomputes_nothing_done(laion_parts, tmp_path):
    config = config_for(laion_parts, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(config, encoder=TaggedEncoder(fail_on="goldfish bowl"))  # dies in part 2's textsim
    work = tmp_path / "work"
    assert (work / "ocr" / "part-00000.json").exists() and (work / "match" / "part-00002.json").exists()
    assert not (work / "textsim" / "part-00002.json").exists()
    assert not list(work.rglob("*.tmp"))
    (work / "textsim" / "part-00002.parquet").write_bytes(b"half written")  # killed before its record
    stamps = {p: p.stat().st_mtime_ns for p in work.rglob("part-00000.*")}
    encoder = TaggedEncoder()
    report = run_pipeline(config, encoder=encoder)
    assert {p: p.stat().st_mtime_ns for p in work.rglob("part-00000.*")} == stamps
    assert not any("tench" in t for t in encoder.seen)  # part 0 not re-embedded
    assert report.kept == 5 and report.rows == 13


def test_changed_threshold_redoes_only_downstream_steps(laion_parts, tmp_path):
    run_pipeline(config_for(laion_parts, tmp_path), encoder=TaggedEncoder())
    match_stamp = (tmp_path / "work" / "match" / "part-00000.json").stat().st_mtime_ns
    encoder = TaggedEncoder()
    report = run_pipeline(config_for(laion_parts, tmp_path, threshold=0.95), encoder=encoder)
    assert encoder.seen == [] and report.kept == 1  # only "goldfish bowl #0.97" is safe and > 0.95
    assert (tmp_path / "work" / "match" / "part-00000.json").stat().st_mtime_ns == match_stamp


def test_steps_run_alone_in_order(laion_parts, tmp_path):
    config = config_for(laion_parts, tmp_path)
    with pytest.raises(ConfigError, match="run 'laionet-bench rebuild match'"):
        run_pipeline(config, steps=["textsim"], encoder=TaggedEncoder())
    report = run_pipeline(config, steps=["match"])
    assert report.matched == 10 and report.kept == 0
    for step in ("textsim", "select", "ocr", "card"):
        report = run_pipeline(config, steps=[step], encoder=TaggedEncoder())
    assert report.variants["tagged_0.82"] == 5


def test_select_threshold_is_strict_and_nsfw_exact():
    frame = pd.DataFrame({"similarity": np.array([0.82, 0.82, 0.8200001, 0.9, 0.9, 0.9, 0.95], np.float64),
                          "nsfw": ["UNLIKELY", "UNLIKELY", "UNLIKELY", "unlikely", "NSFW", None, "UNLIKELY"]})
    frame["url"] = [f"https://example.org/{i}.jpg" for i in range(6)] + ["data:image/png;base64,AAAA"]
    frame.loc[1, "similarity"] = np.float32(0.82)
    kept, counts = select_rows(frame, threshold=0.82)
    assert kept["similarity"].tolist() == [0.8200001]
    assert (counts.nsfw_dropped, counts.below_threshold, counts.bad_url, counts.kept) == (3, 2, 1, 1)
    kept, counts = select_rows(frame, threshold=0.82, nsfw_filter=False)
    assert counts.kept == 4 and counts.bad_url == 1


def test_top_per_class_drops_ocr_flagged_first():
    frame = pd.DataFrame({"row_id": [1, 2, 3, 4], "wnid": ["a", "a", "a", "b"], "similarity": [0.9, 0.95, 0.85, 0.5],
                          "ocr_flag": [False, True, False, False]})
    assert top_per_class(frame, 1)["row_id"].tolist() == [1, 4]


def test_column_mapping_for_other_caption_datasets(tmp_path):
    pd.DataFrame({"caption": ["a tench #0.9", "a lion #0.3"], "link": ["http://127.0.0.1/0.jpg", "http://127.0.0.1/1.jpg"]}).to_parquet(tmp_path / "c.parquet")
    columns = ColumnMap(text="caption", url="link", nsfw=None, sample_id=None, width=None, height=None, license=None)
    report = run_pipeline(config_for(str(tmp_path / "c.parquet"), tmp_path, columns=columns, variant="mine"),
                          encoder=TaggedEncoder())
    frame = read_index_file(tmp_path / "work" / "dataset" / "data" / "mine.parquet")
    assert report.kept == 1 and frame["url"].tolist() == ["http://127.0.0.1/0.jpg"] and frame["nsfw"].isna().all()
    with pytest.raises(DatasetError, match="--nsfw-col none"):
        run_pipeline(config_for(str(tmp_path / "c.parquet"), tmp_path / "x",
                                columns=ColumnMap(text="caption", url="link")), encoder=TaggedEncoder())


def test_parts_from_the_hub_are_fetched_and_deleted(fake_hub, tmp_path):
    src = tmp_path / "src"
    files = {f"data/part-0000{i}-x.parquet": write_laion_part(src / f"{i}.parquet", PART1).read_bytes()
             for i in (0, 1)}
    fake_hub.commit("laion/tiny-laion", {**files, "README.md": b"# tiny"})
    parts = resolve_parts(["hf://datasets/laion/tiny-laion"])
    assert [(p.index, p.filename) for p in parts] == [(0, "data/part-00000-x.parquet"), (1, "data/part-00001-x.parquet")]
    report = run_pipeline(config_for("hf://datasets/laion/tiny-laion/data/*.parquet", tmp_path, delete_downloaded=True),
                          encoder=TaggedEncoder())
    assert report.rows == 8 and report.variants["tagged_0.82"] == 4
    frame = read_index_file(tmp_path / "work" / "dataset" / "data" / "tagged_0.82.parquet")
    assert frame["row_id"].tolist() == [0, 3, 100_000_000, 100_000_003]
    assert not list((tmp_path / "work" / "downloads").rglob("*.parquet"))


def test_part_numbering_and_bad_specs(tmp_path):
    write_laion_part(tmp_path / "a.parquet", ["x"])
    write_laion_part(tmp_path / "b.parquet", ["y"])
    assert [p.index for p in resolve_parts([str(tmp_path / "b.parquet"), str(tmp_path / "a.parquet")])] == [0, 1]
    with pytest.raises(DatasetError, match="no file matches"):
        resolve_parts([str(tmp_path / "nope-*.parquet")])
    with pytest.raises(DatasetError, match="listed twice"):
        resolve_parts([str(tmp_path / "a.parquet"), str(tmp_path / "*.parquet")])


def test_cli_runs_a_step_and_reports(laion_parts, tmp_path, capsys):
    assert main(["rebuild", "match", "--parts", laion_parts, "--work", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    assert "matched" in out and "10" in out
    assert main(["rebuild", "all", "--parts", laion_parts, "--work", str(tmp_path / "w"),
                 "--encoder", "sentence-transformers:all-MiniLM-L6-v2"]) == 1
    assert "pass --threshold" in capsys.readouterr().err


def test_cli_on_a_full_disk_names_the_file_and_keeps_the_parts_done(laion_parts, tmp_path, capsys, monkeypatch):
    work = tmp_path / "w"
    with monkeypatch.context() as patch:
        full_disk_under(patch, "part-00002")  # the disk fills up at the second part
        assert main(["rebuild", "match", "--parts", laion_parts, "--work", str(work), "-q"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {work / 'match'}/part-00002") and line.endswith(
        ": no space left on device: free space and re-run; finished work is kept")
    done = {p: p.stat().st_mtime_ns for p in (work / "match").iterdir()}
    assert done and all("part-00000" in p.name for p in done)
    assert main(["rebuild", "match", "--parts", laion_parts, "--work", str(work), "-q"]) == 0
    assert {p: p.stat().st_mtime_ns for p in done} == done  # the first part is not redone


def test_cli_publishes_the_rebuilt_index_through_the_hub(laion_parts, tmp_path, fake_hub, capsys):
    from laionet_bench.index.load import load_index

    args = ["rebuild", "all", "--parts", laion_parts, "--work", str(tmp_path / "w"), "--rules", "ours",
            "--encoder", "sentence-transformers:all-MiniLM-L6-v2", "--threshold", "0.1", "--variant", "minilm_0.1",
            "--publish-repo", "me/laionet-rebuilt"]
    assert main(args) == 0
    assert "published" in capsys.readouterr().out
    assert {"README.md", "manifest.json", "data/minilm_0.1.parquet"} <= set(fake_hub.files("me/laionet-rebuilt"))
    index = load_index("laionet:minilm_0.1", repo_id="me/laionet-rebuilt")
    local = read_index_file(tmp_path / "w" / "dataset" / "data" / "minilm_0.1.parquet")
    assert index.revision and len(index) == len(local) > 0
    assert index.table["similarity_encoder"].iloc[0] == "sentence-transformers:all-MiniLM-L6-v2"


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    """A real ``kill -9`` mid-run: finished parts are kept as they are, the rerun completes the rest, and the
    index equals the one an uninterrupted run writes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from .fakes.laion import make_tiny_openclip

    encoder = make_tiny_openclip(tmp_path / "tiny")
    lemmas = sorted(OFFICIAL)[:400]
    for part in range(8):  # distinct captions per part, so every part has real text-encoder work
        captions = [f"a photo of my {lemmas[(i + part) % len(lemmas)]} number {part}-{i}" for i in range(3000)]
        write_laion_part(tmp_path / "laion" / f"part-{part:05d}.parquet", captions)
    args = ["rebuild", "all", "--parts", str(tmp_path / "laion" / "part-*.parquet"), "--encoder", encoder,
            "--threshold", "-1", "--variant", "tiny", "--batch-size", "64"]
    command = [sys.executable, "-m", "laionet_bench", "-q", *args]
    work = tmp_path / "killed"
    proc = subprocess.Popen([*command, "--work", str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 120
    while not (work / "textsim" / "part-00000.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    done = {p: p.stat().st_mtime_ns for p in work.rglob("part-*.json")}
    assert (work / "textsim" / "part-00000.json") in done
    assert not (work / "textsim" / "part-00007.json").exists()  # killed mid-run, not after it

    assert main([*args, "--work", str(work)]) == 0
    assert {p: p.stat().st_mtime_ns for p in done} == done  # nothing finished was redone
    assert main([*args, "--work", str(tmp_path / "clean")]) == 0
    resumed = read_index_file(work / "dataset" / "data" / "tiny.parquet")
    clean = read_index_file(tmp_path / "clean" / "dataset" / "data" / "tiny.parquet")
    pd.testing.assert_frame_equal(resumed, clean)


def test_a_rerun_with_new_options_removes_the_old_variant_files(laion_parts, tmp_path):
    run_pipeline(config_for(laion_parts, tmp_path), encoder=TaggedEncoder())
    out = tmp_path / "work" / "dataset"
    (out / "data" / "mine.parquet").write_bytes(b"not the rebuild's")  # never listed: left alone
    run_pipeline(config_for(laion_parts, tmp_path, threshold=0.9, top_per_class=None), encoder=TaggedEncoder())
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == {"data/tagged_0.9.parquet"}
    assert sorted(p.name for p in (out / "data").iterdir()) == ["mine.parquet", "tagged_0.9.parquet"]


def test_index_info_refuses_a_parquet_the_manifest_lacks(laion_parts, tmp_path, capsys):
    run_pipeline(config_for(laion_parts, tmp_path, top_per_class=None), encoder=TaggedEncoder())
    data = tmp_path / "work" / "dataset" / "data"
    assert main(["index", "info", str(data)]) == 0
    capsys.readouterr()
    (data / "tagged_0.5.parquet").write_bytes((data / "tagged_0.82.parquet").read_bytes())  # an earlier variant
    assert main(["index", "info", str(data)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert str(data / "tagged_0.5.parquet") in line and "not listed in" in line and "manifest.json" in line


def test_card_and_manifest_record_no_absolute_path(laion_parts, tmp_path):
    encoder = f"openclip:local-dir:{tmp_path / 'models' / 'tiny'}"  # a name only: TaggedEncoder embeds
    run_pipeline(config_for(laion_parts, tmp_path, encoder=encoder), encoder=TaggedEncoder())
    out = tmp_path / "work" / "dataset"
    for name in ("README.md", "manifest.json"):
        text = (out / name).read_text()
        assert str(tmp_path) not in text and "/tmp" not in text, name
    parameters = json.loads((out / "manifest.json").read_text())["parameters"]
    assert parameters["parts"] == ["part-*.parquet"] and parameters["encoder"] == "openclip:local-dir:tiny"


def test_a_second_rebuild_of_the_same_work_dir_is_refused(laion_parts, tmp_path, capsys):
    from filelock import FileLock

    work = tmp_path / "work"
    work.mkdir()
    with FileLock(str(work / ".lock")):  # another rebuild holds it
        with pytest.raises(StoreError, match="another laionet-bench rebuild"):
            run_pipeline(config_for(laion_parts, tmp_path), encoder=TaggedEncoder())
        assert main(["rebuild", "match", "--parts", laion_parts, "--work", str(work), "-q"]) == 1
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert str(work) in line and "pass another --work" in line
        assert not (work / "match").exists()
    assert main(["rebuild", "match", "--parts", laion_parts, "--work", str(work), "-q"]) == 0
