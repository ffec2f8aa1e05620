"""Import of the reference's parquet + pickled labels, with a restricted unpickler."""

import os
import pickle

import numpy as np
import pandas as pd
import pytest

from laionet_bench.cli import main
from laionet_bench.errors import IndexValidationError, UnsafePickleError
from laionet_bench.index.load import load_index
from laionet_bench.index.official import convert_official, load_label_dict


def _reference_parquet(tmp_path):
    rows = [100000001, 100000005, 300000002, 300000009]
    frame = pd.DataFrame(
        {
            "URL": [f"http://example.invalid/{r}.jpg" for r in rows],
            "TEXT": ["a tench on ice", "goldfish bowl", "my siberian husky", "Siberian husky puppy"],
            "name_def_wnid": ["n01440764", "n01443537", "n02112837", "n02112837"],
            "wnid_is_in_recognized_text": [False, True, False, False],
            "SAMPLE_ID": np.array([11, 12, 13, 14], dtype="int64"),
            "HEIGHT": [100, 200, 300, 400],
            "WIDTH": [120, 220, 320, 420],
            "LICENSE": ["?", "?", "?", "?"],
            "NSFW": ["UNLIKELY"] * 4,
            "similarity": [0.31, 0.32, 0.33, 0.34],
            "text_to_name_def_wnid_similarity_clip": [0.83, 0.84, 0.85, 0.86],
            "recognized_text": ["", "goldfish", "", ""],
            "top_1_is_correct_resnet18": [True, False, True, False],
        },
        index=pd.Index(rows),
    )
    path = tmp_path / "ref.parquet"
    frame.to_parquet(path)
    return path, rows


def test_convert_with_label_pickle(tmp_path):
    path, rows = _reference_parquet(tmp_path)
    labels = tmp_path / "labels.pkl"
    labels.write_bytes(pickle.dumps({"n01440764": [rows[0]], "n01443537": [rows[1]], "n02112837": rows[2:]}))
    frame = convert_official(path, labels, variant="clip_0.82")
    assert frame["row_id"].tolist() == rows
    assert frame["wnid"].tolist() == ["n01440764", "n01443537", "n02110185", "n02110185"]  # husky translated
    assert frame["similarity_encoder"].iloc[0] == "openclip:ViT-B-32/openai"
    assert frame["ocr_flag"].tolist() == [False, True, False, False]
    assert "x_recognized_text" in frame and "top_1_is_correct_resnet18" not in frame


def test_cli_import_then_validate(tmp_path, capsys):
    path, _ = _reference_parquet(tmp_path)
    out = tmp_path / "ours.parquet"
    assert main(["index", "import-official", str(path), "--variant", "clip_0.82", "--out", str(out)]) == 0
    assert "wrote 4 rows over 3 classes" in capsys.readouterr().out
    index = load_index(out)
    assert index.class_counts()["n02110185"] == 2
    assert main(["index", "validate", str(out)]) == 0


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"n01440764": [Evil()]}, "references posix.system|references os.system"),
        ({"n01440764": np.array([1, 2])}, "references numpy"),
        ({"n01440764": [1.5]}, "not plain ints"),
        ([1, 2, 3], "expected a dict"),
    ],
)
def test_unsafe_or_odd_pickles_are_refused(tmp_path, payload, message):
    path = tmp_path / "labels.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UnsafePickleError, match=message):
        load_label_dict(path)


def test_truncated_pickle(tmp_path):
    path = tmp_path / "labels.pkl"
    path.write_bytes(pickle.dumps({"n01440764": [1, 2, 3]})[:-3])
    with pytest.raises(UnsafePickleError, match="not a readable pickle"):
        load_label_dict(path)


def test_unlabelled_rows_are_named(tmp_path):
    path, rows = _reference_parquet(tmp_path)
    labels = tmp_path / "labels.pkl"
    labels.write_bytes(pickle.dumps({"n01440764": [rows[0]]}))
    with pytest.raises(IndexValidationError, match=r"3 parquet row\(s\) have no label, e.g. row id 100000005"):
        convert_official(path, labels, variant="clip_0.82")


def test_not_the_reference_parquet(tmp_path):
    path = tmp_path / "x.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(path)
    with pytest.raises(IndexValidationError, match="is this the reference parquet"):
        convert_official(path, None, variant="clip_0.82")
