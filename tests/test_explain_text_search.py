"""§4.4: caption embeddings per part (resumable), the FAISS index and its refusal of another encoder or
dimension, the top-1 search, and the found rows written as an index variant in our schema."""

from __future__ import annotations

import json

import pytest

from laionet_bench.catalog import lemma_map
from laionet_bench.cli import main
from laionet_bench.errors import ConfigError, DatasetError
from laionet_bench.explain.text_search import (
    EmbedPartsConfig,
    build_faiss_index,
    embed_parts,
    load_faiss_index,
    run_text_search,
)
from laionet_bench.index.schema import read_index_file
from laionet_bench.rebuild.parts import resolve_parts

from .fakes.laion import write_laion_part
from .test_explain_captions import HashEncoder, entry, write_json

pytest.importorskip("faiss", reason="faiss-cpu is the explain extra: pip install 'laionet-bench[explain]'")

OFFICIAL = lemma_map("official").lemma_to_wnid
TENCH, GOLDFISH, LION = OFFICIAL["tench"], OFFICIAL["goldfish"], OFFICIAL["lion"]
PART0 = ["a tench in a net", "goldfish bowl on a table", None, "sunset over the sea"]
PART1 = ["a lion at the zoo", "my red car", "blue sky"]


class RecordingEncoder(HashEncoder):
    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen.extend(texts)
        return super().encode(texts)


@pytest.fixture
def bench(tmp_path):
    write_laion_part(tmp_path / "laion" / "part-00000.parquet", PART0)
    write_laion_part(tmp_path / "laion" / "part-00001.parquet", PART1, sample_start=2000)
    captions = write_json(tmp_path / "imagenet_captions.json", [
        entry("n01440764_1.JPEG", TENCH, "a tench in a net", [], ""),   # "<title> " ≠ the LAION text...
        entry("n01443537_1.JPEG", GOLDFISH, "goldfish", ["bowl", "on", "a"], "table"),  # ...this one equals it
        entry("n02129165_1.JPEG", LION, "a", ["lion", "at", "the"], "zoo"),
        entry("n02129165_0.JPEG", TENCH, "a", ["lion", "at", "the"], "zoo"),  # same text, other class
    ])
    return tmp_path, str(tmp_path / "laion" / "part-*.parquet"), captions


def brute_force(encoder, captions_texts, laion_texts):
    sims = encoder.encode(captions_texts) @ encoder.encode(laion_texts).T
    return sims.max(axis=1)


def test_search_keeps_top1_above_threshold_as_an_index_variant(bench):
    tmp_path, parts, captions = bench
    encoder = RecordingEncoder()
    report = run_text_search(captions, [parts], encoder="hash", work_dir=tmp_path / "work", out=tmp_path,
                             text_encoder=encoder, threshold=0.7)
    laion_texts = [("None" if c is None else c) for c in PART0 + PART1]
    queries = ["a tench in a net ", "goldfish bowl on a table", "a lion at the zoo", "a lion at the zoo"]
    best = brute_force(HashEncoder(), queries, laion_texts)
    assert report.n_captions == 4 and report.n_above_threshold == int((best > 0.7).sum())
    frame = read_index_file(tmp_path / "explain" / "text-search" / "text_search_0.7.parquet")
    by_row = frame.set_index("row_id")
    assert by_row.loc[1, "wnid"] == GOLDFISH and by_row.loc[1, "x_search_similarity"] == pytest.approx(1.0)
    # two captions found LAION row 1e8 (part 1, row 0) equally well: kept once, for the first file name
    assert by_row.loc[10**8, "x_imagenet_filename"] == "n02129165_0.JPEG" and by_row.loc[10**8, "wnid"] == TENCH
    assert frame["row_id"].is_unique and set(frame["variant"]) == {"text_search_0.7"}
    assert (frame["similarity_encoder"] == "hash").all() and not frame["ocr_flag"].any()
    summary = json.loads((tmp_path / "explain" / "text-search" / "summary.json").read_text())
    assert summary["n_rows"] == len(frame) and summary["index"]["kind"] == "flat" and summary["index"]["dim"] == 16


def test_embeddings_resume_and_the_index_is_reused(bench):
    tmp_path, parts, captions = bench
    first = RecordingEncoder()
    run_text_search(captions, [parts], encoder="hash", work_dir=tmp_path / "work", out=tmp_path, text_encoder=first)
    assert "my red car" in first.seen
    again = RecordingEncoder()
    run_text_search(captions, [parts], encoder="hash", work_dir=tmp_path / "work", out=tmp_path, text_encoder=again)
    assert "my red car" not in again.seen  # parts not re-embedded; only the queries and the kept rows' texts


def test_index_built_with_another_encoder_or_dimension_is_refused(bench):
    work = _built(bench)
    with pytest.raises(ConfigError, match="built with encoder 'hash', not 'openclip:ViT-B-32/openai'"):
        load_faiss_index(work / "faiss", encoder="openclip:ViT-B-32/openai")
    with pytest.raises(ConfigError, match="16-dimensional vectors, the queries are 8-dimensional"):
        load_faiss_index(work / "faiss", encoder="hash", dim=8)


def test_cli_refuses_a_prebuilt_index_of_another_encoder_in_one_line(bench, capsys):
    tmp_path, parts, captions = bench
    config = EmbedPartsConfig(work_dir=str(tmp_path / "work"), encoder="hash")
    resolved = resolve_parts([parts])
    embed_parts(resolved, config, encoder=HashEncoder())
    build_faiss_index(resolved, config)
    capsys.readouterr()  # the embedding's progress bars
    code = main(["explain", "text-search", "--captions", str(captions), "--parts", parts, "--out", str(tmp_path),
                 "--faiss-index", str(tmp_path / "work" / "faiss"), "--encoder", "sentence-transformers:other"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "built with encoder 'hash', not 'sentence-transformers:other'" in err[0]


def test_ivfpq_index_trains_and_holds_every_vector(tmp_path):
    write_laion_part(tmp_path / "part-00000.parquet", [f"caption number {i}" for i in range(300)])
    config = EmbedPartsConfig(work_dir=str(tmp_path / "work"), encoder="hash")
    parts = resolve_parts([str(tmp_path / "part-00000.parquet")])
    embed_parts(parts, config, encoder=HashEncoder())
    index = build_faiss_index(parts, config, kind="ivfpq", nlist=2, pq_m=4, pq_bits=4)
    assert index.meta["factory"] == "IVF2,PQ4x4" and index.index.ntotal == 300
    _, ids = index.search(HashEncoder().encode(["caption number 5"]), k=3, nprobe=2)
    assert ((ids >= 0) & (ids < 300)).all()
    with pytest.raises(ConfigError, match="must divide"):
        build_faiss_index(parts, config, kind="ivfpq", nlist=2, pq_m=5)


def test_missing_embeddings_say_what_to_run(tmp_path):
    write_laion_part(tmp_path / "part-00000.parquet", ["x"])
    config = EmbedPartsConfig(work_dir=str(tmp_path / "work"), encoder="hash")
    with pytest.raises(ConfigError, match="no current caption embeddings"):
        build_faiss_index(resolve_parts([str(tmp_path / "part-00000.parquet")]), config)


def _built(bench):
    tmp_path, parts, _ = bench
    config = EmbedPartsConfig(work_dir=str(tmp_path / "work"), encoder="hash")
    resolved = resolve_parts([parts])
    embed_parts(resolved, config, encoder=HashEncoder())
    build_faiss_index(resolved, config)
    return tmp_path / "work"


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("index.faiss", b"garbage, not an index", "FAISS cannot read it (Index type"),
    ("index.json", b"{not json", "not valid JSON"),
    ("index.json", b"\xff\xfe", "not UTF-8 text"),
    ("index.json", b'{"encoder": "hash", "dim": "16", "kind": "flat"}', "field 'dim' is \"16\""),
])
def test_a_corrupt_prebuilt_index_is_one_line_naming_the_file(bench, capsys, name, content, problem):
    tmp_path, parts, captions = bench
    work = _built(bench)
    (work / "faiss" / name).write_bytes(content)
    with pytest.raises(DatasetError) as info:
        load_faiss_index(work / "faiss", encoder="hash")
    assert str(info.value).startswith(f"{work / 'faiss' / name}: {problem}")
    capsys.readouterr()
    code = main(["explain", "text-search", "--captions", str(captions), "--parts", parts, "--out", str(tmp_path),
                 "--faiss-index", str(work / "faiss"), "--encoder", "hash"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and str(work / "faiss" / name) in err[0] and "unexpected" not in err[0]


def _torn(path):
    path.write_bytes(path.read_bytes()[:-8])


@pytest.mark.parametrize("damage", [
    lambda folder: _torn(folder / "part-00000.npy"),
    lambda folder: (folder / "part-00000.ids.npy").unlink(),
    lambda folder: (folder / "part-00000.ids.npy").write_bytes(b"not npy"),
    lambda folder: (folder / "part-00000.json").write_text("{torn", "utf-8"),
    lambda folder: (folder / "part-00000.json").write_text("[]", "utf-8"),
])
def test_unreadable_cached_embeddings_are_recomputed(bench, damage):
    tmp_path, parts, captions = bench
    run_text_search(captions, [parts], encoder="hash", work_dir=tmp_path / "work", out=tmp_path,
                    text_encoder=HashEncoder())
    damage(tmp_path / "work" / "embeddings")
    again = RecordingEncoder()
    report = run_text_search(captions, [parts], encoder="hash", work_dir=tmp_path / "work", out=tmp_path,
                             text_encoder=again)
    assert "sunset over the sea" in again.seen and "my red car" not in again.seen  # part 0 only, embedded again
    assert report.n_rows > 0


def test_a_corrupt_index_in_the_work_folder_is_rebuilt(bench, caplog):
    tmp_path, parts, captions = bench
    work = _built(bench)
    (work / "faiss" / "index.faiss").write_bytes(b"torn")
    report = run_text_search(captions, [parts], encoder="hash", work_dir=work, out=tmp_path, text_encoder=HashEncoder())
    assert report.n_rows > 0 and "rebuilding the FAISS index" in caplog.text
    assert load_faiss_index(work / "faiss", encoder="hash").index.ntotal == len(PART0) + len(PART1)
