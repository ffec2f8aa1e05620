"""Import of the reference's parquet + pickled labels, with a restricted, memory-bounded unpickler.

Fixtures follow the reference's published files as they really are (shared/notes/reference_files.md):
the pandas index is the row id, ``name_def_wnid`` holds the synset *text*, SAMPLE_ID/HEIGHT/WIDTH are
floats, similarity columns are named after the HF encoder, and the MPNet file carries three of them;
the label pickle has 978 keys, empty classes and the husky's non-standard ``n02112837`` among them.
"""

import json
import logging
import os
import pickle

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import laionet_bench.index.official as official
from laionet_bench.catalog import load_catalog
from laionet_bench.cli import main
from laionet_bench.errors import ConfigError, IndexValidationError, UnsafePickleError
from laionet_bench.evaluation.imported import read_laionet_results
from laionet_bench.index.load import list_variants, load_index
from laionet_bench.index.official import convert_official, import_official, load_label_dict
from laionet_bench.index.schema import LABEL_KEYS_METADATA, write_index

TENCH, GOLDFISH, HUSKY, HUSKY_REFERENCE = "n01440764", "n01443537", "n02110185", "n02112837"
ROWS = [100000001, 100000005, 300000002, 300000009]
WNIDS = [TENCH, GOLDFISH, HUSKY, HUSKY]
CLIP, MPNET, BERT = "clip-vit-base-patch32", "all-mpnet-base-v2", "bert-base-uncased"
SIM = "text_to_name_def_wnid_similarity_"
ENCODERS = {MPNET: "sentence-transformers:all-mpnet-base-v2", CLIP: "openclip:ViT-B-32/openai",
            BERT: "hf:bert-base-uncased"}


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
    """As the reference saves it: 978 keys (most with no rows here), the husky under n02112837."""
    wnids = [w for w in load_catalog().wnids if w != HUSKY]
    labels = {w: [] for w in wnids[:100] + wnids[122:]}  # 22 classes are no key at all
    labels.update({TENCH: [ROWS[0]], GOLDFISH: [ROWS[1]], HUSKY_REFERENCE: ROWS[2:]})
    assert len(labels) == 978
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
    with pytest.raises(IndexValidationError, match=r"3 text_to_name_def_wnid_similarity_<encoder> columns .* "
                       r"variant 'mine' does not say .*--similarity-column"):
        convert_official(path, None, variant="custom:mine")


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


def test_cli_refuses_an_out_that_is_a_folder_before_reading_anything(tmp_path, capsys):
    path = _write(tmp_path, _reference_frame())
    folder = tmp_path / "indexes"
    folder.mkdir()
    code = main(["index", "import-official", str(path), "--variant", "clip_0.82", "--out", str(folder)])
    assert code == 1 and capsys.readouterr().err.splitlines() == [
        f"error: --out {folder} is a folder; pass the path of the file to write (a new file, or one to replace)"]
    assert list(folder.iterdir()) == []


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    "payload, message",
    [
        ({TENCH: [Evil()]}, "references posix.system|references os.system"),
        ({TENCH: np.array([1, 2])}, "references numpy"),
        ({TENCH: [1.5]}, "not plain ints"),
        ({TENCH: [10**400]}, "not plain ints in the 64-bit range"),  # was an OverflowError after the conversion
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


# --- choosing the similarity column ---------------------------------------------------------------


@pytest.mark.parametrize("encoder", [CLIP, BERT])
@pytest.mark.parametrize("full_name", [True, False])
def test_similarity_column_is_chosen_by_full_name_or_encoder_suffix(tmp_path, encoder, full_name):
    """Named, it wins over the variant's family (mpnet_top50 would take the MPNet column)."""
    path = _write(tmp_path, _reference_frame(encoders=(MPNET, encoder)))
    requested = SIM + encoder if full_name else encoder
    frame = convert_official(path, None, variant="mpnet_top50", similarity_column=requested)
    assert frame["similarity_encoder"].iloc[0] == ENCODERS[encoder]
    assert frame["similarity"].tolist() == pytest.approx([0.93, 0.94, 0.95, 0.96])


@pytest.mark.parametrize("requested", ["minilm", SIM + "minilm", "similarity", "TEXT"])
def test_an_unknown_similarity_column_names_the_file_and_lists_the_columns(tmp_path, requested):
    path = _write(tmp_path, _reference_frame(encoders=(MPNET, CLIP, BERT)))
    with pytest.raises(IndexValidationError) as info:
        convert_official(path, None, variant="mpnet_top50", similarity_column=requested)
    message = str(info.value)
    assert message.startswith(f"{path}: no similarity column {requested!r}") and "\n" not in message
    assert all(SIM + e in message for e in (MPNET, CLIP, BERT)) and "--similarity-column" in message


def test_a_parquet_without_similarity_columns_is_refused(tmp_path):
    path = _write(tmp_path, _reference_frame(encoders=()))
    with pytest.raises(IndexValidationError, match=r"no text_to_name_def_wnid_similarity_<encoder> column; is this"):
        convert_official(path, None, variant="clip_0.82")


def test_cli_similarity_column(tmp_path, capsys):
    path = _write(tmp_path, _reference_frame(encoders=(MPNET, CLIP, BERT)))
    out = tmp_path / "ours.parquet"
    args = ["index", "import-official", str(path), "--variant", "custom:mine", "--out", str(out)]
    assert main(args) == 1
    assert "--similarity-column" in capsys.readouterr().err and not out.exists()
    assert main([*args, "--similarity-column", MPNET]) == 0
    index = load_index(out)
    assert index.variant == "mine" and index.table["similarity_encoder"].iloc[0] == ENCODERS[MPNET]
    assert main([*args, "--similarity-column", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: no similarity column 'nope'") and "\n" not in err


# --- the variant recorded ---------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "recorded"), [("clip_top50", "clip_top50"), ("custom:mine", "mine"),
                                                 ("custom:clip_0.9", "clip_0.9"), ("custom:My.Index-2", "My.Index-2")])
def test_published_and_custom_variants_are_recorded(tmp_path, given, recorded):
    frame = convert_official(_write(tmp_path, _reference_frame()), None, variant=given)
    assert set(frame["variant"]) == {recorded}


@pytest.mark.parametrize(("given", "problem"), [
    ("mine", "not a published variant"),
    ("clip_0.8", "not a published variant"),
    ("custom:", "NAME must be letters"),
    ("custom:../x", "NAME must be letters"),
    ("custom:a/b", "NAME must be letters"),
    ("custom:.hidden", "NAME must be letters"),
    ("custom:clip_0.82", "clip_0.82 is a published variant's name"),
])
def test_a_bad_variant_is_refused_in_one_line_listing_the_known_ones(tmp_path, given, problem):
    with pytest.raises(ConfigError) as info:
        convert_official(_write(tmp_path, _reference_frame()), None, variant=given)
    message = str(info.value)
    assert message.startswith(f"variant {given!r}: {problem}") and "\n" not in message
    assert all(v in message for v in list_variants()) and "custom:NAME" in message


def test_cli_refuses_a_bad_variant_before_reading_anything(tmp_path, capsys):
    out = tmp_path / "o.parquet"
    code = main(["index", "import-official", str(tmp_path / "absent.parquet"), "--labels", str(tmp_path / "absent.pkl"),
                 "--variant", "mine", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("error: variant 'mine': not a published variant") and "custom:NAME" in err
    assert not out.exists()


# --- label-pickle rows the parquet lacks --------------------------------------------------------------


def test_pickle_rows_missing_from_the_parquet_warn_once_with_counts(tmp_path, caplog):
    labels = _reference_labels()
    labels[TENCH] = [ROWS[0], 100000002, 100000003]  # two rows the parquet lacks
    lost = load_catalog().wnids[5:12]
    for i, wnid in enumerate(lost):  # seven classes with every row missing
        labels[wnid] = [500000000 + 10 * i, 500000001 + 10 * i]
    path = _write(tmp_path, _reference_frame())
    pickle_path = _label_pickle(tmp_path, labels)
    with caplog.at_level(logging.WARNING, logger="laionet_bench.index.official"):
        frame = convert_official(path, pickle_path, variant="clip_0.82")
    assert frame["wnid"].tolist() == WNIDS
    rows = [r.getMessage() for r in caplog.records if "row ids are not in" in r.getMessage()]
    classes = [r.getMessage() for r in caplog.records if "lose every row" in r.getMessage()]
    assert rows == [f"{pickle_path}: 16 of its 20 row ids are not in {path}; those rows are left out"]
    assert classes == [f"{pickle_path}: 7 class(es) lose every row, being absent from {path}: "
                       f"{', '.join(lost[:5])}, ..."]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_a_pickle_that_matches_the_parquet_warns_nothing(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="laionet_bench.index.official"):
        convert_official(_write(tmp_path, _reference_frame()), _label_pickle(tmp_path, _reference_labels()),
                         variant="clip_0.82")
    assert not caplog.records


# --- the label pickle's keys: the reference's class set ----------------------------------------------------


def test_import_records_every_label_key_as_given(tmp_path, capsys):
    labels = _reference_labels()
    out = tmp_path / "ours.parquet"
    args = ["index", "import-official", str(_write(tmp_path, _reference_frame())), "--labels",
            _label_pickle(tmp_path, labels), "--variant", "clip_0.82", "--out", str(out)]
    assert main(args) == 0
    index = load_index(out)
    assert index.label_keys == tuple(labels) and len(index.label_keys) == 978
    assert HUSKY_REFERENCE in index.label_keys and HUSKY not in index.label_keys  # as given, not translated
    assert json.loads(pq.read_schema(out).metadata[LABEL_KEYS_METADATA]) == list(labels)
    capsys.readouterr()
    assert main(["index", "validate", str(out)]) == 0
    assert main(["index", "info", str(out)]) == 0
    assert any(line.split() == ["label-pickle", "keys", "978"] for line in capsys.readouterr().out.splitlines())


def test_without_labels_no_keys_are_recorded(tmp_path, capsys):
    out = tmp_path / "ours.parquet"
    import_official(_write(tmp_path, _reference_frame()), None, out, variant="clip_0.82")
    assert load_index(out).label_keys is None and LABEL_KEYS_METADATA not in pq.read_schema(out).metadata
    assert main(["index", "info", str(out)]) == 0
    assert any(line.split() == ["label-pickle", "keys", "-"] for line in capsys.readouterr().out.splitlines())


def test_label_keys_survive_a_folder_and_the_hub(tmp_path, fake_hub):
    labels = _reference_labels()
    folder = tmp_path / "index"
    frame, digest = import_official(_write(tmp_path, _reference_frame()), _label_pickle(tmp_path, labels),
                                    folder / "clip_0.82.parquet", variant="clip_0.82")
    assert load_index(folder).label_keys == tuple(labels)
    fake_hub.commit("laionet-bench/laionet", {"data/clip_0.82.parquet": (folder / "clip_0.82.parquet").read_bytes()})
    hub = load_index("laionet")
    assert hub.sha256 == digest and hub.label_keys == tuple(labels)


def test_parts_that_record_different_label_keys_are_refused(tmp_path):
    folder = tmp_path / "parts"
    reference = _write(tmp_path, _reference_frame())
    import_official(reference, _label_pickle(tmp_path, _reference_labels()), folder / "a.parquet", variant="clip_0.82")
    other = _write(tmp_path, _reference_frame().set_axis(pd.Index([r + 1000 for r in ROWS], dtype="int64")), "b.parquet")
    import_official(other, None, folder / "b.parquet", variant="clip_0.82")
    with pytest.raises(IndexValidationError, match=r"parts record different label keys \(a.parquet \(978\), "
                                                   r"b.parquet \(none\)\)"):
        load_index(folder)


@pytest.mark.parametrize("raw", [b"not json", b'{"n01440764": []}', b"[1, 2]"])
def test_unreadable_label_keys_metadata_is_named(tmp_path, raw):
    good = tmp_path / "good.parquet"
    write_index(convert_official(_write(tmp_path, _reference_frame()), None, variant="clip_0.82"), good)
    table = pq.read_table(good)
    bad = tmp_path / "bad.parquet"
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, LABEL_KEYS_METADATA: raw}), bad)
    with pytest.raises(IndexValidationError, match=f"{bad}: schema metadata laionet_bench.label_keys is not a JSON "
                                                   "list of wnids; re-run .* with --labels"):
        load_index(bad)


def test_a_row_labelled_with_two_classes_is_refused(tmp_path):
    """The one rule of a label pickle, shared by import-official and import-results (index.official.class_of_rows)."""
    path = _write(tmp_path, _reference_frame())
    twice = _label_pickle(tmp_path, {TENCH: ROWS, GOLDFISH: [ROWS[2]]})
    with pytest.raises(IndexValidationError, match=rf"row id {ROWS[2]} is labelled {TENCH} and {GOLDFISH}: each "
                       "LAIONet row has one class"):
        convert_official(path, twice, variant="clip_0.82")
    with pytest.raises(IndexValidationError, match=rf"row id {ROWS[2]} is labelled {TENCH} and {GOLDFISH}"):
        read_laionet_results(path, labels=load_label_dict(twice), labels_path=twice)
