"""Import of the reference's parquet + pickled labels, with a restricted, memory-bounded unpickler.

Fixtures follow the reference's published files as they really are (shared/notes/reference_files.md):
the pandas index is the row id, ``name_def_wnid`` holds the synset *text*, SAMPLE_ID/HEIGHT/WIDTH are
floats, similarity columns are named after the HF encoder, and the MPNet file carries three of them.
"""

import os
import pickle

import numpy as np
import pandas as pd
import pytest

import laionet_bench.index.official as official
from laionet_bench.catalog import load_catalog
from laionet_bench.cli import main
from laionet_bench.errors import IndexValidationError, UnsafePickleError
from laionet_bench.index.load import load_index
from laionet_bench.index.official import convert_official, load_label_dict

TENCH, GOLDFISH, HUSKY, HUSKY_REFERENCE = "n01440764", "n01443537", "n02110185", "n02112837"
ROWS = [100000001, 100000005, 300000002, 300000009]
WNIDS = [TENCH, GOLDFISH, HUSKY, HUSKY]
CLIP, MPNET, BERT = "clip-vit-base-patch32", "all-mpnet-base-v2", "bert-base-uncased"
SIM = "text_to_name_def_wnid_similarity_"


def _reference_frame(*, encoders=(CLIP,)) -> pd.DataFrame:
    catalog = load_catalog()
    frame = pd.DataFrame(
        {
            "name_def_wnid": [catalog.get(w).query for w in WNIDS],
            "wnid_is_in_recognized_text": [False, True, False, False],
            "recognized_text": ["", "goldfish", "", ""],
            "URL": [f"http://example.invalid/{r}.jpg" for r in ROWS],
            "TEXT": ["a tench on ice", "goldfish bowl", "my siberian husky", "Siberian husky puppy"],
            "SAMPLE_ID": np.array([11.0, 12.0, np.nan, 14.0]),
            "HEIGHT": np.array([100.0, 200.0, np.nan, 400.0]),
            "WIDTH": np.array([120.0, 220.0, 320.0, np.nan]),
            "LICENSE": ["?", "?", "?", "?"],
            "NSFW": ["UNLIKELY"] * 4,
            "similarity": [0.31, 0.32, 0.33, 0.34],
            "top_1_is_correct_resnet-50": [True, False, True, False],
            "top_5_is_correct_resnet-50": [True, True, True, False],
        },
        index=pd.Index(ROWS, dtype="int64"),
    )
    for i, encoder in enumerate(encoders):
        frame[SIM + encoder] = [0.83 + 0.1 * i, 0.84 + 0.1 * i, 0.85 + 0.1 * i, 0.86 + 0.1 * i]
    return frame


def _write(tmp_path, frame: pd.DataFrame, name: str = "ref.parquet"):
    path = tmp_path / name
    frame.to_parquet(path)
    return path


def _label_pickle(tmp_path, labels: dict) -> str:
    path = tmp_path / "labels.pkl"
    path.write_bytes(pickle.dumps(labels))
    return str(path)


def _reference_labels() -> dict:
    """As the reference saves it: every class a key (some with no rows), the husky under n02112837."""
    labels = {w: [] for w in load_catalog().wnids[:50] if w != HUSKY}
    labels.update({TENCH: [ROWS[0]], GOLDFISH: [ROWS[1]], HUSKY_REFERENCE: ROWS[2:]})
    return labels


def test_convert_with_label_pickle(tmp_path):
    path = _write(tmp_path, _reference_frame())
    frame = convert_official(path, _label_pickle(tmp_path, _reference_labels()), variant="clip_0.82")
    assert frame["row_id"].tolist() == ROWS
    assert frame["wnid"].tolist() == WNIDS  # husky translated
    assert frame["similarity_encoder"].iloc[0] == "openclip:ViT-B-32/openai"
    assert frame["similarity"].tolist() == pytest.approx([0.83, 0.84, 0.85, 0.86])
    assert frame["sample_id"].tolist()[:2] == ["11", "12"] and pd.isna(frame["sample_id"].iloc[2])  # not "11.0"
    assert frame["width"].tolist()[:3] == [120, 220, 320] and pd.isna(frame["width"].iloc[3])
    assert frame["ocr_flag"].tolist() == [False, True, False, False]
    assert "x_recognized_text" in frame and "x_laion_similarity" in frame
    assert not [c for c in frame if c.startswith("top_")]


def test_labels_come_from_the_synset_text_without_a_pickle(tmp_path):
    frame = convert_official(_write(tmp_path, _reference_frame()), None, variant="clip_0.82")
    assert frame["wnid"].tolist() == WNIDS


def test_mpnet_file_uses_the_variants_similarity_column(tmp_path):
    path = _write(tmp_path, _reference_frame(encoders=(MPNET, CLIP, BERT)))
    frame = convert_official(path, None, variant="mpnet_top50")
    assert frame["similarity_encoder"].iloc[0] == "sentence-transformers:all-mpnet-base-v2"
    assert frame["similarity"].tolist() == pytest.approx([0.83, 0.84, 0.85, 0.86])
    assert convert_official(path, None, variant="clip_top50")["similarity"].iloc[0] == pytest.approx(0.93)
    with pytest.raises(IndexValidationError, match=r"3 text_to_name_def_wnid_similarity_<encoder> columns .* clip_\*"):
        convert_official(path, None, variant="mine")


def test_cli_import_then_validate(tmp_path, capsys):
    path = _write(tmp_path, _reference_frame())
    out = tmp_path / "ours.parquet"
    assert main(["index", "import-official", str(path), "--variant", "clip_0.82", "--out", str(out)]) == 0
    assert "wrote 4 rows over 3 classes" in capsys.readouterr().out
    index = load_index(out)
    assert index.class_counts()[HUSKY] == 2
    assert main(["index", "validate", str(out)]) == 0


@pytest.mark.parametrize(
    ("change", "column", "message"),
    [
        (lambda f: f.assign(WIDTH=[120.0, 3e9, 320.0, np.nan]), "WIDTH",
         r"1 row\(s\) with a value outside the int32 range .* \(row_id 100000005\)"),
        (lambda f: f.assign(HEIGHT=[100.0, 200.5, np.nan, 1e30]), "HEIGHT",
         r"2 row\(s\) that are not whole numbers \(row_id 100000005, 300000009\)"),
        (lambda f: f.set_axis(pd.Index([-1] + ROWS[1:], dtype="int64")), "index (row id)",
         r"1 row\(s\) with a negative row_id \(row_id -1\)"),
        (lambda f: f.assign(TEXT=["a tench on ice", " ", "my siberian husky", "Siberian husky puppy"]), "TEXT",
         r"1 row\(s\) with an empty caption \(row_id 100000005\)"),
        (lambda f: f.assign(URL=["ftp://example.invalid/a.jpg"] + list(f["URL"][1:])), "URL",
         r"not http\(s\).* \(row_id 100000001\)"),
        (lambda f: f.assign(name_def_wnid=["a cat which is a cat"] + list(f["name_def_wnid"][1:])), "name_def_wnid",
         r"1 row\(s\) whose value is neither a class's synset text .* \(row_id 100000001\)"),
        (lambda f: f.assign(**{SIM + CLIP: [0.8, 7.0, 0.8, 0.8]}), SIM + CLIP, r"outside \[-1, 1\] \(row_id 100000005\)"),
    ],
)
def test_bad_reference_values_name_file_column_and_rows(tmp_path, change, column, message):
    path = _write(tmp_path, change(_reference_frame()))
    with pytest.raises(IndexValidationError, match=message) as info:
        convert_official(path, None, variant="clip_0.82")
    assert info.value.field == column and info.value.path == str(path)
    assert str(info.value).startswith(f"{path}: column {column!r}: ") and "\n" not in str(info.value)


def test_a_parquet_without_its_row_id_index_is_refused(tmp_path):
    path = _write(tmp_path, _reference_frame().reset_index(drop=True))
    with pytest.raises(IndexValidationError, match="is not the global LAION row ids"):
        convert_official(path, None, variant="clip_0.82")


def test_cli_reports_an_out_of_range_value_in_one_line(tmp_path, capsys):
    path = _write(tmp_path, _reference_frame().assign(WIDTH=[120.0, 3e9, 320.0, np.nan]))
    code = main(["index", "import-official", str(path), "--variant", "clip_0.82", "--out", str(tmp_path / "o.parquet")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith(f"error: {path}: column 'WIDTH': ") and "unexpected" not in err
    assert not (tmp_path / "o.parquet").exists()


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    "payload, message",
    [
        ({TENCH: [Evil()]}, "references posix.system|references os.system"),
        ({TENCH: np.array([1, 2])}, "references numpy"),
        ({TENCH: [1.5]}, "not plain ints"),
        ([1, 2, 3], "expected a dict"),
    ],
)
def test_unsafe_or_odd_pickles_are_refused(tmp_path, payload, message):
    with pytest.raises(UnsafePickleError, match=message) as info:
        load_label_dict(_label_pickle(tmp_path, payload))
    assert str(info.value).startswith(str(tmp_path / "labels.pkl"))
    assert "leave out --labels" in str(info.value) or message in ("not plain ints", "expected a dict")


def test_a_few_bytes_of_shared_references_are_refused_before_they_are_copied(tmp_path):
    shared = list(range(300_000_000, 300_010_000))
    labels = {w: shared for w in load_catalog().wnids}  # 1000 memo references to one 10,000-row list
    path = _label_pickle(tmp_path, labels)
    assert os.path.getsize(path) < 100_000  # would stand for 10 million row ids
    with pytest.raises(UnsafePickleError, match=r"entries 'n01440764' and 'n01443537' share one list of row ids"):
        load_label_dict(path)


def test_empty_lists_may_be_shared(tmp_path):
    empty = []
    labels = load_label_dict(_label_pickle(tmp_path, {TENCH: [1, 2], GOLDFISH: empty, HUSKY: empty}))
    assert labels == {TENCH: [1, 2], GOLDFISH: [], HUSKY: []}


@pytest.mark.parametrize(
    ("limit", "value", "message"),
    [("MAX_LABEL_PICKLE_BYTES", 64, "bytes is more than a label pickle needs"),
     ("MAX_LABEL_OBJECTS", 100, "holds more than 100 objects"),
     ("MAX_LABEL_CONTAINERS", 5, "or 5 lists/dicts")],
)
def test_pickles_beyond_the_limits_are_refused_before_loading(tmp_path, monkeypatch, limit, value, message):
    monkeypatch.setattr(official, limit, value)
    loaded = []
    monkeypatch.setattr(official._PlainDataUnpickler, "load", lambda self: loaded.append(1))
    with pytest.raises(UnsafePickleError, match=message):
        load_label_dict(_label_pickle(tmp_path, {w: [1, 2, 3] for w in load_catalog().wnids[:40]}))
    assert not loaded


def test_the_largest_real_label_pickle_loads(tmp_path):
    """mpnet_0.58's shape: 1.3 million row ids of up to 12 digits over 938 non-empty classes of 1000 keys."""
    wnids = [w for w in load_catalog().wnids if w != HUSKY] + [HUSKY_REFERENCE]
    ids = np.arange(1_300_000, dtype=np.int64) * 9_700 + 1_200_000_000  # parts 12 .. 138
    labels = {w: [] for w in wnids}
    for i, chunk in enumerate(np.array_split(ids, 938)):
        labels[wnids[i]] = chunk.tolist()
    path = _label_pickle(tmp_path, labels)
    loaded = load_label_dict(path)
    assert len(loaded) == 1000 and sum(len(v) for v in loaded.values()) == 1_300_000
    assert loaded[wnids[0]][:2] == [1_200_000_000, 1_200_009_700]


def test_truncated_pickle(tmp_path):
    path = tmp_path / "labels.pkl"
    path.write_bytes(pickle.dumps({TENCH: [1, 2, 3]})[:-3])
    with pytest.raises(UnsafePickleError, match="not a readable pickle"):
        load_label_dict(path)


def test_unlabelled_rows_are_named(tmp_path):
    path = _write(tmp_path, _reference_frame())
    with pytest.raises(IndexValidationError, match=r"3 parquet row\(s\) have no label, e.g. row id 100000005"):
        convert_official(path, _label_pickle(tmp_path, {TENCH: [ROWS[0]]}), variant="clip_0.82")


def test_not_the_reference_parquet(tmp_path):
    path = tmp_path / "x.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(path)
    with pytest.raises(IndexValidationError, match="is this the reference parquet"):
        convert_official(path, None, variant="clip_0.82")
