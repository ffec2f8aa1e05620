import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laionet_bench.cli import main
from laionet_bench.errors import IndexValidationError, UnknownNameError
from laionet_bench.index.load import get_variant, list_variants, load_index, parse_index_spec
from laionet_bench.index.schema import INDEX_COLUMNS, read_index_file, write_index

from .conftest import make_index_frame


def test_write_then_load_roundtrip(tmp_path, index_frame):
    path = tmp_path / "idx.parquet"
    digest = write_index(index_frame, path)
    index = load_index(path)
    assert index.sha256 == digest
    assert index.variant == "clip_0.82"
    assert index.revision is None
    assert len(index) == 30
    assert list(index.table.columns) == [c.name for c in INDEX_COLUMNS]
    assert pq.read_schema(path).field("class_index").type == pa.int32()


def test_weights_count_ocr_rows_and_evaluation_drops_them(index_frame, tmp_path):
    write_index(index_frame, tmp_path / "idx.parquet")
    index = load_index(tmp_path / "idx.parquet")
    assert index.class_counts().to_dict() == {"n01440764": 10, "n02110185": 12, "n04579432": 8}
    assert index.class_weights().sum() == pytest.approx(1.0)
    assert index.class_weights()["n02110185"] == pytest.approx(12 / 30)
    assert len(index.evaluation_rows()) == 30 - int(index_frame["ocr_flag"].sum())
    assert not index.evaluation_rows()["ocr_flag"].any()


def test_folder_of_parts_is_concatenated(tmp_path):
    folder = tmp_path / "parts"
    write_index(make_index_frame(["n01440764"] * 3), folder / "a.parquet")
    write_index(make_index_frame(["n01443537"] * 2, start_id=200_000_000), folder / "b.parquet")
    index = load_index(folder)
    assert len(index) == 5 and len(index.files) == 2


def _write_raw(frame: pd.DataFrame, path) -> str:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return str(path)


@pytest.mark.parametrize(
    "mutate, field, message",
    [
        (lambda f: f.drop(columns=["wnid"]), None, r"missing column\(s\) \['wnid'\]"),
        (lambda f: f.assign(extra=1), None, r"unknown column\(s\) \['extra'\].*'x_' prefix"),
        (lambda f: f.assign(wnid=1), "wnid", "has type int64, expected string"),
        (lambda f: f.iloc[:0], None, "no rows"),
        (lambda f: f.assign(caption=[None] + list(f["caption"][1:])), "caption", r"1 row\(s\) with an empty \(NaN\) caption \(row_id 100000000\)"),
        (lambda f: f.assign(row_id=[100000000] * 2 + list(f["row_id"][2:])), "row_id", "duplicated row_id"),
        (lambda f: f.assign(wnid=["n01440764,n01443537"] + list(f["wnid"][1:])), "wnid", "several wnids"),
        (lambda f: f.assign(wnid=["n99999999"] + list(f["wnid"][1:])), "wnid", "wnid outside ImageNet-1k"),
        (lambda f: f.assign(class_index=[5] + list(f["class_index"][1:])), "class_index", "disagrees with the wnid"),
        (lambda f: f.assign(similarity=[3.0] + list(f["similarity"][1:])), "similarity", r"outside \[-1, 1\]"),
        (lambda f: f.assign(width=pd.array([2**31] + [640] * (len(f) - 1), dtype="Int64")), "width",
         r"1 row\(s\) with a value outside the int32 range -2147483648..2147483647 \(row_id 100000000\)"),
        (lambda f: f.assign(height=pd.array([480, -2**40] + [480] * (len(f) - 2), dtype="Int64")), "height",
         r"outside the int32 range .* \(row_id 100000001\)"),
        (lambda f: f.assign(class_index=pd.array([2**40] + list(f["class_index"][1:]), dtype="int64")), "class_index",
         "outside the int32 range"),
        (lambda f: f.assign(row_id=pd.array([2**63] + list(f["row_id"][1:]), dtype="uint64")), "row_id",
         r"outside the int64 range .* \(row_id 9223372036854775808\)"),
        (lambda f: f.assign(row_id=[-1, -2] + list(f["row_id"][2:])), "row_id", r"2 row\(s\) with a negative row_id \(row_id -1, -2\)"),
        (lambda f: f.assign(caption=["", "   "] + list(f["caption"][2:])), "caption",
         r"2 row\(s\) with an empty caption \(row_id 100000000, 100000001\)"),
        (lambda f: f.assign(url=["ftp://x/a.jpg", "u0", "file:///etc/passwd", "http://"] + list(f["url"][4:])), "url",
         r"4 row\(s\) with a URL that is not http\(s\)://host/... \(row_id 100000000, 100000001, 100000002, 100000003\)"),
    ],
)
def test_validation_names_file_field_and_rows(tmp_path, index_frame, mutate, field, message):
    path = _write_raw(mutate(index_frame.copy()), tmp_path / "bad.parquet")
    with pytest.raises(IndexValidationError, match=message) as info:
        read_index_file(path)
    assert info.value.path.endswith("bad.parquet")
    assert info.value.field == field
    assert "bad.parquet" in str(info.value)


def test_text_that_is_not_utf8_names_the_file_column_and_rows(tmp_path, index_frame, capsys):
    """A writer can store any bytes in a parquet string column; pandas failed on them with a bare ArrowException."""
    table = pa.Table.from_pandas(index_frame, preserve_index=False)
    values = [w.encode() for w in index_frame["wnid"]]
    values[3] = b"n0144\xff0764"
    offsets = np.cumsum([0, *map(len, values)], dtype=np.int32)
    wnids = pa.Array.from_buffers(pa.string(), len(values), [None, pa.py_buffer(offsets.tobytes()),
                                                              pa.py_buffer(b"".join(values))])
    path = tmp_path / "latin.parquet"
    pq.write_table(table.set_column(table.column_names.index("wnid"), "wnid", wnids), path)
    with pytest.raises(IndexValidationError, match=r"latin.parquet: column 'wnid': 1 row\(s\) with text that is not "
                       r"valid UTF-8 \(row_id 100000003\): fix the file's encoding or drop these rows") as info:
        read_index_file(path)
    assert info.value.row_ids == [100000003]
    assert main(["index", "validate", str(path)]) == 1
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_web_urls_of_any_case_and_spacing_pass(tmp_path, index_frame):
    frame = index_frame.assign(url=["HTTPS://Example.com/a.jpg", " http://x.org/b?c=1 "] + list(index_frame["url"][2:]))
    assert len(read_index_file(_write_raw(frame, tmp_path / "ok.parquet"))) == len(frame)


def test_same_row_with_two_wnids_is_reported_as_several_wnids(tmp_path, index_frame):
    frame = index_frame.copy()
    frame.loc[1, "row_id"] = frame.loc[0, "row_id"]
    frame.loc[1, ["wnid", "class_index"]] = ["n02110185", 250]
    with pytest.raises(IndexValidationError, match="several wnids"):
        read_index_file(_write_raw(frame, tmp_path / "two.parquet"))


def test_corrupt_and_truncated_parquet(tmp_path, index_frame):
    good = tmp_path / "good.parquet"
    write_index(index_frame, good)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(IndexValidationError, match="truncated.parquet: cannot be read as parquet"):
        read_index_file(truncated)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(IndexValidationError, match="corrupt"):
        read_index_file(garbage)


def test_extension_columns_are_kept(tmp_path, index_frame):
    frame = index_frame.assign(x_recognized_text="STOP")
    write_index(frame, tmp_path / "x.parquet")
    assert (load_index(tmp_path / "x.parquet").table["x_recognized_text"] == "STOP").all()


def test_variants_and_specs():
    assert list_variants()[0] == "clip_0.82"
    assert set(list_variants()) == {"clip_0.82", "clip_top50", "mpnet_0.58", "mpnet_top50"}
    assert get_variant("mpnet_top50").top_per_class == 50
    assert get_variant().filename == "data/clip_0.82.parquet"
    with pytest.raises(UnknownNameError, match="clip_0.82"):
        get_variant("clip_0.8")
    assert parse_index_spec("laionet") == ("hub", None)
    assert parse_index_spec("laionet:clip_top50") == ("hub", "clip_top50")
    assert parse_index_spec("file:///data/x.parquet") == ("file", "/data/x.parquet")
    assert parse_index_spec("x.parquet") == ("file", "x.parquet")
    with pytest.raises(UnknownNameError, match="did you mean"):
        parse_index_spec("laionett")
