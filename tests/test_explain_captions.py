"""§4.3: the ImageNet-Captions reader (real schema), the streamed ranks against a brute-force matrix, Fig. 8
tables, and the run's files."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from laionet_bench.catalog import load_catalog
from laionet_bench.cli import main
from laionet_bench.errors import DatasetError
from laionet_bench.explain.captions import (
    caption_ranks,
    read_imagenet_captions,
    run_captions,
    share_by_similarity,
)

CATALOG = load_catalog()
WNIDS = CATALOG.wnids


class HashEncoder:
    """Deterministic ±1/4 sign vectors (16-d, unit norm) from each text's sha256: every dot product is a
    multiple of 1/8 computed exactly, whatever the summation order, so ranks have no rounding ties."""

    name = "hash"

    def __init__(self):
        self.calls = []

    def encode(self, texts):
        self.calls.append(len(texts))
        bits = np.unpackbits(np.array([list(hashlib.sha256(t.encode()).digest()[:2]) for t in texts], np.uint8)
                             .reshape(-1, 2), axis=1)
        return (bits.astype(np.float32) - 0.5) / 2


def entry(filename, wnid, title="a photo", tags=("tag",), description="desc"):
    """One ImageNet-Captions object exactly as the published json has it."""
    return {"filename": filename, "title": title, "tags": list(tags), "description": description, "wnid": wnid}


def write_json(path, entries):
    path.write_text(json.dumps(entries))
    return path


def test_reader_joins_title_tags_description_and_dedupes_by_file_name(tmp_path):
    path = write_json(tmp_path / "imagenet_captions.json", [
        entry("n01440764_10026.JPEG", WNIDS[0], "Tench", ["fish", "lake"], "caught today"),
        entry("n01440764_10026.JPEG", WNIDS[0], "a duplicate", [], "dropped"),
        entry("n01443537_1.JPEG", WNIDS[1], "Goldfish", [], ""),
    ])
    table = read_imagenet_captions(path)
    assert table["caption"].tolist() == ["Tench fish lake caught today", "Goldfish "]
    assert table["filename"].tolist() == ["n01440764_10026.JPEG", "n01443537_1.JPEG"]
    assert table.attrs["n_entries"] == 3


@pytest.mark.parametrize("field", ["filename", "title", "tags", "description", "wnid"])
def test_reader_names_the_entry_and_the_missing_field(tmp_path, field):
    bad = entry("b.JPEG", WNIDS[1])
    del bad[field]
    path = write_json(tmp_path / "c.json", [entry("a.JPEG", WNIDS[0]), bad])
    with pytest.raises(DatasetError, match=rf"entry 1 has no field '{field}'"):
        read_imagenet_captions(path)


def test_reader_rejects_wrong_types_and_unknown_wnids(tmp_path):
    with pytest.raises(DatasetError, match="entry 0: field 'tags' is a str, expected list"):
        read_imagenet_captions(write_json(tmp_path / "a.json", [{**entry("a", WNIDS[0]), "tags": "fish"}]))
    with pytest.raises(DatasetError, match="entry 0: field 'wnid' 'n99999999'"):
        read_imagenet_captions(write_json(tmp_path / "b.json", [entry("a", "n99999999")]))
    with pytest.raises(DatasetError, match="json list"):
        read_imagenet_captions(write_json(tmp_path / "c.json", {"filename": "a"}))


def test_cli_reports_a_missing_field_in_one_line(tmp_path, capsys):
    bad = entry("b.JPEG", WNIDS[1])
    del bad["description"]
    path = write_json(tmp_path / "c.json", [bad])
    assert main(["explain", "captions", "--captions", str(path), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "entry 0 has no field 'description'" in err[0]


def test_cli_lists_the_experiments_and_asks_for_the_captions(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in ("captions", "v2-frequency", "text-search", "multimodal"))
    assert main(["explain", "captions", "--out", str(tmp_path)]) == 1
    assert "needs --captions (or --demo)" in capsys.readouterr().err


def test_streamed_ranks_equal_the_full_matrix_for_any_chunk():
    rng = np.random.default_rng(0)
    wnids = [WNIDS[i] for i in rng.integers(0, 1000, size=37)]
    captions = [f"caption {i}" for i in range(37)]
    encoder = HashEncoder()
    full = encoder.encode(captions) @ np.stack(encoder.encode([CATALOG.get(w).query for w in WNIDS])).T
    own = full[np.arange(37), [WNIDS.index(w) for w in wnids]]
    expected = (full > own[:, None]).sum(axis=1)
    for chunk in (1, 5, 1000):
        ranks = caption_ranks(captions, wnids, encoder, chunk=chunk)
        np.testing.assert_array_equal(ranks["n_more_similar"], expected)
        np.testing.assert_array_equal(ranks["similarity"], own)
        np.testing.assert_allclose(ranks["share_more_similar"], expected / 999)
    assert max(encoder.calls[-3:]) <= 37  # captions are encoded chunk by chunk


def test_share_by_similarity_bins_and_binomial_band():
    ranks = pd.DataFrame({"similarity": [0.1, 0.1, 0.9, 0.9], "share_more_similar": [0.5, 0.3, 0.0, 0.1]})
    bins = share_by_similarity(ranks, bins=2)
    assert bins["n"].tolist() == [2, 2]
    np.testing.assert_allclose(bins["share"], [0.4, 0.05])
    half = 1.96 * np.sqrt(0.4 * 0.6 / 2)
    assert bins["band_low"].iloc[0] == pytest.approx(max(0.0, 0.4 - half))
    assert bins["band_high"].iloc[0] == pytest.approx(min(1.0, 0.4 + half))


def test_run_captions_writes_tables_summary_and_figures(tmp_path):
    pytest.importorskip("matplotlib")
    wnids = WNIDS[:6]
    entries = [entry(f"{w}_{i}.JPEG", w, f"photo {w} {i}", [], "")
               for w in wnids for i in range(3)]
    path = write_json(tmp_path / "captions.json", entries)
    laionet = pd.DataFrame({"caption": ["x", "y"], "wnid": wnids[:2], "similarity": [0.9, 0.95],
                            "similarity_encoder": "hash"})
    result = run_captions(path, encoder=HashEncoder(), out=tmp_path, laionet=laionet, threshold=0.5, chunk=4)
    folder = tmp_path / "explain" / "captions"
    per_caption = pd.read_parquet(folder / "captions.parquet")
    assert len(per_caption) == 18 and set(per_caption.columns) >= {"filename", "wnid", "similarity", "rank"}
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["n_captions"] == 18 and summary["n_classes"] == 6 and summary["n_synsets"] == 1000
    assert summary["laionet_median_similarity"] == pytest.approx(0.925)
    assert summary["frac_not_top1"] == pytest.approx(float((per_caption["n_more_similar"] > 0).mean()))
    assert result["files"]["fig8a"].endswith(".png") and (folder / "fig8b_share_more_similar.png").stat().st_size
    histogram = pd.read_csv(folder / "similarity_histogram.csv")
    assert {"ImageNet-Captions", "LAIONet"} <= set(histogram.columns)
