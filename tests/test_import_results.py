"""``import-results``: the reference's per-image correctness columns as ordinary ``official`` results.

Fixtures follow the reference's published files as they really are (shared/notes/reference_files.md): the
val parquet's unnamed index is the val file name, ``name_def_wnid`` is the class's synset text, the
correctness columns are object dtype holding True / False / None; the LAIONet parquet's index is the global
LAION row id, its labels come from a ``{wnid: [row ids]}`` pickle whose keys include empty classes and the
husky's non-standard ``n02112837``.
"""

import hashlib
import json
import logging
import math
import pickle

import numpy as np
import pandas as pd
import pytest

from laionet_bench.catalog import load_catalog
from laionet_bench.cli import main
from laionet_bench.errors import DatasetError, ResultsError
from laionet_bench.evaluation.imported import (
    IMPORTED_FROM,
    import_reference_results,
    write_imported,
)
from laionet_bench.evaluation.metrics import per_class_recall, wilson_se
from laionet_bench.evaluation.results import Provenance, build_model_result, read_results, write_result
from laionet_bench.index.official import official_classes

TENCH, GOLDFISH, SHARK, HUSKY, TIGER_SHARK = "n01440764", "n01443537", "n01484850", "n02110185", "n01491361"
HUSKY_REFERENCE = "n02112837"
T, F, N = True, False, None
RESNET, CLIP = "hf:microsoft/resnet-50", "openclip:ViT-B-32/openai"

#: ImageNet-val: 5 images per class; resnet-50's (top-1, top-5) correctness, None = no prediction.
VAL = {
    TENCH: ([T, T, T, F, N], [T, T, T, T, N]),  # 4 evaluated: top-1 3/4, top-5 4/4
    GOLDFISH: ([T, F, F, F, F], [T, T, F, F, F]),  # 1/5, 2/5
    SHARK: ([T, T, T, T, T], [T, T, T, T, T]),  # 5/5, 5/5 (a class with no LAIONet row)
    HUSKY: ([F, F, N, N, T], [T, F, N, N, T]),  # 1/3, 2/3 (no label-pickle key: n02112837 is not a val wnid)
}
#: LAIONet rows: (row id, wnid, OCR flag, resnet-50 top-1, top-5).
LAION = [
    (100000001, TENCH, False, T, T),
    (100000002, TENCH, False, F, T),
    (100000007, TENCH, False, N, N),
    (300000004, TENCH, True, T, T),  # OCR-flagged: excluded
    (300000010, GOLDFISH, False, F, T),
    (500000003, GOLDFISH, False, T, T),
    (500000004, TIGER_SHARK, False, T, T),  # a key the val file lacks: outside the class set
    (700000001, TIGER_SHARK, False, F, F),
]


def _objects(values) -> pd.Series:
    return pd.Series(values, dtype=object)


def _val_frame() -> pd.DataFrame:
    catalog = load_catalog()
    wnids = [w for w, (top1, _) in VAL.items() for _ in top1]
    top1 = [v for t1, _ in VAL.values() for v in t1]
    top5 = [v for _, t5 in VAL.values() for v in t5]
    names = [f"ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(len(wnids))]
    frame = pd.DataFrame({"name_def_wnid": [catalog.get(w).query for w in wnids]}, index=pd.Index(names))
    frame["top_1_is_correct_resnet-50"] = _objects(top1).to_numpy()
    frame["top_5_is_correct_resnet-50"] = _objects(top5).to_numpy()
    frame["top_1_is_correct_clip-vit-base-patch32"] = _objects([F, T] * 10).to_numpy()
    frame["top_5_is_correct_clip-vit-base-patch32"] = _objects([T, T] * 10).to_numpy()
    return frame


def _laion_frame() -> pd.DataFrame:
    catalog = load_catalog()
    rows, wnids, ocr, top1, top5 = zip(*LAION, strict=True)
    n = len(rows)
    return pd.DataFrame(
        {
            "URL": [f"http://example.invalid/{r}.jpg" for r in rows],
            "TEXT": [f"a photo of a {catalog.get(w).name}" for w in wnids],
            "name_def_wnid": [catalog.get(w).query for w in wnids],
            "text_to_name_def_wnid_similarity_clip-vit-base-patch32": np.linspace(0.83, 0.9, n),
            "wnid_is_in_recognized_text": list(ocr),
            "recognized_text": ["tench" if o else "" for o in ocr],
            "SAMPLE_ID": np.arange(n, dtype=float) + 11.0,
            "HEIGHT": np.full(n, 480.0),
            "WIDTH": np.full(n, 640.0),
            "LICENSE": ["?"] * n,
            "NSFW": ["UNLIKELY"] * n,
            "similarity": np.full(n, 0.31),
            "top_1_is_correct_resnet-50": _objects(top1).to_numpy(),
            "top_5_is_correct_resnet-50": _objects(top5).to_numpy(),
        },
        index=pd.Index(rows, dtype="int64"),
    )


def _labels() -> dict:
    """As the reference saves it: keys with no rows (the shark, the husky under n02112837) included."""
    labels: dict[str, list[int]] = {SHARK: [], HUSKY_REFERENCE: []}
    for row, wnid, *_ in LAION:
        labels.setdefault(wnid, []).append(row)
    return labels


@pytest.fixture
def files(tmp_path):
    val, laion, labels = tmp_path / "ILSVRC2012_val.parquet", tmp_path / "clip_top50.parquet", tmp_path / "labels.pkl"
    _val_frame().to_parquet(val)
    _laion_frame().to_parquet(laion)
    labels.write_bytes(pickle.dumps(_labels()))
    return {"val": val, "laion": laion, "labels": labels}


def _by_model(imported):
    return {r.model: r for r in imported.results}


def test_the_fixture_has_the_reference_dtypes(files):
    back = pd.read_parquet(files["val"])
    assert back["top_1_is_correct_resnet-50"].dtype == object and back["top_1_is_correct_resnet-50"].isna().sum() == 3
    assert back.index[0] == "ILSVRC2012_val_00000001.JPEG" and back.index.name is None


def test_numbers_by_hand_none_dropped_and_the_official_class_set(files):
    imported = import_reference_results(imagenet_val=files["val"], laionet=files["laion"], labels=files["labels"],
                                        variant="clip_top50")
    # every label key found in val: the shark (empty on LAIONet) in, n02112837 and the tiger shark (not in val) out
    assert imported.classes == [TENCH, GOLDFISH, SHARK]  # catalogue order
    assert HUSKY not in imported.classes and HUSKY_REFERENCE not in imported.classes
    result = _by_model(imported)[RESNET]
    assert result.protocol == "official" and result.model_info["pretrain_group"] == "1k"
    val, laion = result.datasets["imagenet"], result.datasets["laionet"]
    assert val.top1.value == pytest.approx((3 / 4 + 1 / 5 + 1) / 3)
    assert val.top5.value == pytest.approx((1 + 2 / 5 + 1) / 3)
    assert (val.n_listed, val.n_evaluated, val.n_failed, val.n_classes) == (15, 14, 1, 3)  # husky's Nones: not in the set
    assert laion.dataset == "laionet:clip_top50"
    assert laion.top1.value == pytest.approx((1 / 2 + 1 / 2) / 2) and laion.top5.value == pytest.approx(1.0)
    assert (laion.n_listed, laion.n_evaluated, laion.n_failed, laion.n_excluded, laion.n_classes) == (6, 4, 1, 1, 2)
    assert imported.dropped[RESNET] == {"imagenet-val": 1, "laionet:clip_top50": 1}
    # LAION weights: share of the 8 LAIONet rows before the OCR drop (tench 4, goldfish 2), renormalised
    assert val.lw_top1.value == pytest.approx((4 * 3 / 4 + 2 * 1 / 5) / 6)
    assert laion.lw_top1.value == pytest.approx((4 * 1 / 2 + 2 * 1 / 2) / 6)
    table = result.per_class.set_index("wnid")
    assert table.loc[TENCH, "laionet_weight"] == pytest.approx(4 / 8)
    assert table.loc[SHARK, "laionet_n"] == 0 and table.loc[SHARK, "imagenet_n"] == 5
    # Wilson SE divided by the literal 1.96
    assert table.loc[TENCH, "imagenet_se_top1"] == pytest.approx(float(wilson_se(3, 4, protocol="official")))
    assert table.loc[TENCH, "imagenet_se_top1"] != pytest.approx(float(wilson_se(3, 4)), rel=1e-6)
    clip = _by_model(imported)[CLIP]
    assert clip.model_info["pretrain_group"] == "zero-shot" and "laionet" not in clip.datasets  # no LAIONet column
    assert clip.datasets["imagenet"].top1.value == pytest.approx((2 / 5 + 3 / 5 + 2 / 5) / 3)  # F, T, F, T ... by row


def test_val_only_without_labels_averages_over_every_val_class(files):
    imported = import_reference_results(imagenet_val=files["val"])
    assert imported.classes == [w for w in load_catalog().wnids if w in VAL]
    val = _by_model(imported)[RESNET].datasets["imagenet"]
    assert val.top1.value == pytest.approx((3 / 4 + 1 / 5 + 1 + 1 / 3) / 4)
    assert (val.n_failed, val.n_evaluated) == (3, 17)
    assert math.isnan(val.lw_top1.value)


def test_val_with_labels_only_weights_by_the_pickle(files):
    result = _by_model(import_reference_results(imagenet_val=files["val"], labels=files["labels"]))[RESNET]
    assert list(result.datasets) == ["imagenet"] and len(result.classes) == 3
    assert result.datasets["imagenet"].lw_top1.value == pytest.approx((4 * 3 / 4 + 2 * 1 / 5) / 6)


def test_official_classes_takes_keys_literally():
    assert official_classes([HUSKY_REFERENCE, TENCH, "not-a-wnid"]) == [TENCH]
    assert official_classes([HUSKY_REFERENCE, TENCH, GOLDFISH], [TENCH, HUSKY]) == [TENCH]


def test_devkit_ground_truth_by_file_name(files, tmp_path):
    from scipy.io import savemat

    devkit = tmp_path / "ILSVRC2012_devkit_t12"
    (devkit / "data").mkdir(parents=True)
    ids = {TENCH: 1, GOLDFISH: 2, SHARK: 3, HUSKY: 4}  # devkit ids are not timm order
    synsets = np.array([(i, w, 0) for w, i in ids.items()],
                       dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
    savemat(devkit / "data" / "meta.mat", {"synsets": synsets})
    truth = devkit / "data" / "ILSVRC2012_validation_ground_truth.txt"
    truth.write_text("".join(f"{ids[w]}\n" for w, (top1, _) in VAL.items() for _ in top1))
    unlabelled = tmp_path / "no_text.parquet"
    _val_frame().drop(columns="name_def_wnid").to_parquet(unlabelled)
    imported = import_reference_results(imagenet_val=unlabelled, devkit=devkit, labels=files["labels"])
    val = _by_model(imported)[RESNET].datasets["imagenet"]
    assert val.top1.value == pytest.approx((3 / 4 + 1 / 5 + 1) / 3)
    assert val.identity["ground_truth_file"] == truth.name
    assert val.identity["ground_truth_sha256"] == hashlib.sha256(truth.read_bytes()).hexdigest()
    (devkit / "data" / "empty").mkdir()
    truth.write_text("".join(f"{ids[TENCH]}\n" for _ in range(20)))  # disagrees with name_def_wnid
    with pytest.raises(ResultsError, match=r"name_def_wnid.*name another class than the ground truth"):
        import_reference_results(imagenet_val=files["val"], devkit=devkit)
    with pytest.raises(DatasetError, match="no ILSVRC2012_validation_ground_truth.txt"):
        import_reference_results(imagenet_val=files["val"], devkit=devkit / "data" / "empty")
    with pytest.raises(DatasetError, match="no such folder"):
        import_reference_results(imagenet_val=files["val"], devkit=tmp_path / "missing")


def test_cli_writes_results_the_leaderboard_reads(files, tmp_path, capsys):
    out, board = tmp_path / "results-paper", tmp_path / "board"
    assert main(["import-results", "--imagenet-val", str(files["val"]), "--laionet", str(files["laion"]),
                 "--labels", str(files["labels"]), "--variant", "clip_top50", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "hf:microsoft/resnet-50 [resnet-50, 1k]" in printed and "1 without a prediction dropped" in printed
    assert "wrote 2 result(s) over 3 classes (protocol official)" in printed
    results = {r.model: r for r in read_results(out)}
    assert set(results) == {RESNET, CLIP}
    result = results[RESNET]
    assert result.protocol == "official" and result.datasets["imagenet"].top1.value == pytest.approx(0.65)
    assert result.model_info["imported_from"] == IMPORTED_FROM
    for key, name in (("imagenet", "val"), ("laionet", "laion")):
        identity = result.datasets[key].identity
        assert identity["source"] == IMPORTED_FROM
        role = "imagenet_val" if key == "imagenet" else "laionet"
        assert identity[f"{role}_file"] == files[name].name
        assert identity[f"{role}_sha256"] == hashlib.sha256(files[name].read_bytes()).hexdigest()
    labels_sha = hashlib.sha256(files["labels"].read_bytes()).hexdigest()
    assert result.datasets["laionet"].identity["labels_sha256"] == labels_sha
    assert {"role": "labels", "name": "labels.pkl", "sha256": labels_sha} in result.model_info["sources"]
    text = (out / "hf_microsoft_resnet-50" / "result.json").read_text()
    assert str(tmp_path) not in text and json.loads(text)["protocol"] == "official"
    assert main(["leaderboard", "--results", str(out), "--out", str(board), "--no-plots", "--formats", "csv"]) == 0
    shown = capsys.readouterr().out
    assert RESNET in shown and CLIP in shown and "zero-shot" in shown
    table = pd.read_csv(next(board.glob("*.csv")))
    row = table.set_index("model").loc[RESNET]
    assert row["group"] == "1k" and row["imagenet_top1"] == pytest.approx(65.0)


def test_unknown_predictor_is_warned_and_skipped(files, tmp_path, caplog):
    frame = _val_frame()
    frame["top_1_is_correct_my-model"] = _objects([T] * 20).to_numpy()
    frame["top_5_is_correct_my-model"] = _objects([T] * 20).to_numpy()
    path = tmp_path / "extra.parquet"
    frame.to_parquet(path)
    with caplog.at_level(logging.WARNING, logger="laionet_bench"):
        imported = import_reference_results(imagenet_val=path)
    assert imported.skipped == ["my-model"] and len(imported.results) == 2
    assert "skipping predictor 'my-model'" in caplog.text
    only = frame[["name_def_wnid", "top_1_is_correct_my-model", "top_5_is_correct_my-model"]]
    only.to_parquet(path)
    with pytest.raises(ResultsError, match=r"no predictor column names a model of the 'paper' set \(found: my-model\)"):
        import_reference_results(imagenet_val=path)


def _as_text(frame, column, rows, values):
    """``column`` written as strings (a re-export that lost the booleans), ``values`` at ``rows``."""
    frame[column] = frame[column].map(str)
    return _set(frame, column, rows, values)


def _set(frame, column, rows, values):
    column_values = frame[column].astype(object).to_numpy().copy()
    for row, value in zip(rows, values, strict=True):
        column_values[row] = value
    frame[column] = column_values
    return frame


BAD_VAL = [
    (lambda f: _as_text(f, "top_1_is_correct_resnet-50", [2, 7], ["yes", "no"]),
     r"column 'top_1_is_correct_resnet-50': 20 row\(s\) \(ILSVRC2012_val_00000001.JPEG, .*\) "
     r"hold 'False', 'None', 'True', not True / False / None"),
    (lambda f: _set(f, "name_def_wnid", [0], ["tench"]),
     r"column 'name_def_wnid': 1 row\(s\) \(ILSVRC2012_val_00000001.JPEG\) hold text that is no ImageNet-1k class's "
     r"synset text.*pass --devkit DIR"),
    (lambda f: f.drop(columns="top_5_is_correct_resnet-50"),
     r"column 'top_1_is_correct_resnet-50' has no 'top_5_is_correct_resnet-50' beside it"),
    (lambda f: _set(f, "top_5_is_correct_resnet-50", [0], [False]),
     r"1 row\(s\) \(ILSVRC2012_val_00000001.JPEG\) are top-1 correct but not top-5 correct"),
    (lambda f: _set(f, "top_5_is_correct_resnet-50", [1], [None]),
     r"are None in only one of top_1_is_correct_resnet-50 / top_5_is_correct_resnet-50"),
    (lambda f: f[["name_def_wnid"]], r"no top_1_is_correct_<predictor> / top_5_is_correct_<predictor> columns"),
    (lambda f: f.drop(columns="name_def_wnid"), r"no name_def_wnid column to label the images: pass --devkit DIR"),
    (lambda f: pd.concat([f, f.iloc[[3, 0, 0]]]),
     r"index: 2 val file names appear more than once \(ILSVRC2012_val_00000001.JPEG ×3, "
     r"ILSVRC2012_val_00000004.JPEG ×2\): each image must be one row"),
]


@pytest.mark.parametrize(("change", "message"), BAD_VAL)
def test_bad_val_file_is_one_line_naming_file_column_rows(tmp_path, change, message, capsys):
    path = tmp_path / "ILSVRC2012_val.parquet"
    change(_val_frame()).to_parquet(path)
    with pytest.raises(ResultsError, match=message) as info:
        import_reference_results(imagenet_val=path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
    out = tmp_path / "results"
    assert main(["import-results", "--imagenet-val", str(path), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and not out.exists()


def test_bad_laionet_inputs(files, tmp_path, capsys):
    assert main(["import-results", "--laionet", str(files["laion"]), "--out", str(tmp_path / "r")]) == 1
    assert "pass --labels PICKLE" in capsys.readouterr().err
    with pytest.raises(ResultsError, match="nothing to import"):
        import_reference_results(labels=files["labels"])
    saved_without_index = tmp_path / "no_index.parquet"
    _laion_frame().reset_index(drop=True).to_parquet(saved_without_index)
    with pytest.raises(ResultsError, match="is not the global LAION row ids"):
        import_reference_results(laionet=saved_without_index, labels=files["labels"])
    partial = tmp_path / "partial.pkl"
    partial.write_bytes(pickle.dumps({TENCH: [100000001]}))
    with pytest.raises(ResultsError, match=r"index: 7 row\(s\) \(100000002, 100000007, .*have no label in"):
        import_reference_results(laionet=files["laion"], labels=partial)
    repeated = tmp_path / "repeated.parquet"
    laion = _laion_frame()
    pd.concat([laion, laion.iloc[[5, 1]], laion.iloc[[5]]]).to_parquet(repeated)
    with pytest.raises(ResultsError, match=rf"{repeated}: index: 2 LAION row ids appear more than once "
                                           r"\(100000002 ×2, 500000003 ×3\)"):
        import_reference_results(laionet=repeated, labels=files["labels"])
    odd_ocr = tmp_path / "odd_ocr.parquet"
    _as_text(_laion_frame(), "wnid_is_in_recognized_text", [3], ["yes"]).to_parquet(odd_ocr)
    with pytest.raises(ResultsError, match=r"'wnid_is_in_recognized_text': 8 row\(s\) \(100000001, "):
        import_reference_results(laionet=odd_ocr, labels=files["labels"])
    assert main(["import-results", "--laionet", str(files["laion"]), "--labels", str(files["labels"]),
                 "--variant", "clip_top5", "--out", str(tmp_path / "r")]) == 1
    assert "variant 'clip_top5': not a published variant; pass one of clip_0.82" in capsys.readouterr().err
    assert main(["import-results", "--laionet", str(files["laion"]), "--labels", str(files["labels"]),
                 "--variant", "custom:mine", "--out", str(tmp_path / "r")]) == 0  # as index import-official
    assert {r.datasets["laionet"].dataset for r in read_results(tmp_path / "r")} == {"laionet:mine"}


def test_laionet_only_counts_ocr_and_none(files):
    result = _by_model(import_reference_results(laionet=files["laion"], labels=files["labels"]))[RESNET]
    assert list(result.datasets) == ["laionet"]
    assert result.classes == [w for w in load_catalog().wnids if w in {TENCH, GOLDFISH, SHARK, TIGER_SHARK}]
    laion = result.datasets["laionet"]
    assert (laion.n_listed, laion.n_failed, laion.n_excluded, laion.n_evaluated) == (8, 1, 1, 6)
    assert laion.top1.value == pytest.approx((1 / 2 + 1 / 2 + 1 / 2) / 3)


def _computed(model: str):
    table = per_class_recall([TENCH] * 4, [T, T, F, F], [T, T, T, F])
    return build_model_result(model=model, run_key="k" * 16, model_info={"architecture": "x"},
                              provenance=Provenance.collect(device="cpu", dtype="float32"),
                              laionet=(table, {"dataset": "laionet", "identity": {}, "n_listed": 4, "n_failed": 0}))


def test_nothing_already_written_is_lost(files, tmp_path, capsys):
    out = tmp_path / "results"
    folder = write_result(_computed(RESNET), out)
    before = (folder / "result.json").read_bytes()
    args = ["import-results", "--imagenet-val", str(files["val"]), "--out", str(out)]
    assert main(args) == 1
    assert "was not imported; nothing was written: pass --overwrite" in capsys.readouterr().err
    assert (folder / "result.json").read_bytes() == before and not (out / "openclip_ViT-B-32_openai").exists()
    assert main([*args, "--overwrite"]) == 0
    assert {r.model for r in read_results(out)} == {RESNET, CLIP}
    first = (folder / "result.json").read_bytes()
    imported = import_reference_results(imagenet_val=files["val"])
    write_imported(imported.results, out)  # an earlier import is replaced without --overwrite
    bad = tmp_path / "bad.parquet"
    _as_text(_val_frame(), "top_1_is_correct_resnet-50", [0], ["yes"]).to_parquet(bad)
    assert main(["import-results", "--imagenet-val", str(bad), "--out", str(out)]) == 1
    assert json.loads((folder / "result.json").read_bytes())["model"] == json.loads(first)["model"]
    assert len(read_results(out)) == 2


def test_plain_bool_columns_are_read_too(files, tmp_path):
    """A LAIONet file whose predictor had a prediction for every row stores plain bool columns."""
    frame = _laion_frame()
    for column in ("top_1_is_correct_resnet-50", "top_5_is_correct_resnet-50"):
        frame[column] = frame[column].fillna(False).astype(bool)
    path = tmp_path / "bools.parquet"
    frame.to_parquet(path)
    laion = _by_model(import_reference_results(laionet=path, labels=files["labels"]))[RESNET].datasets["laionet"]
    assert (laion.n_failed, laion.n_evaluated) == (0, 7)


def _with_predictor(frame: pd.DataFrame, name: str, like: str = "resnet-50") -> pd.DataFrame:
    """``frame`` with ``top_{1,5}_is_correct_<name>`` columns holding ``like``'s values (object dtype, as read)."""
    for k in (1, 5):
        frame[f"top_{k}_is_correct_{name}"] = frame[f"top_{k}_is_correct_{like}"].astype(object).to_numpy()
    return frame


@pytest.fixture
def extra_files(files, tmp_path):
    """The reference's files plus a predictor no paper model has (``my-net``, a copy of resnet-50's columns)."""
    _with_predictor(_val_frame(), "my-net").to_parquet(files["val"])
    _with_predictor(_laion_frame(), "my-net").to_parquet(files["laion"])
    return files


def test_a_predictor_named_with_its_spec_is_imported_under_it(extra_files, tmp_path, capsys):
    files, out, board = extra_files, tmp_path / "results-paper", tmp_path / "board"
    common = ["import-results", "--imagenet-val", str(files["val"]), "--laionet", str(files["laion"]),
              "--labels", str(files["labels"]), "--variant", "clip_top50", "--out", str(out)]
    assert main([*common, "--model", "my-net=resnet50"]) == 0
    assert "resnet50.a1_in1k [my-net, in1k]" in capsys.readouterr().out
    results = {r.model: r for r in read_results(out)}
    assert set(results) == {RESNET, CLIP, "resnet50.a1_in1k"}
    mine, paper = results["resnet50.a1_in1k"], results[RESNET]
    for key in ("imagenet", "laionet"):  # the same columns, so the same numbers as resnet-50's
        assert mine.datasets[key].top1.value == pytest.approx(paper.datasets[key].top1.value)
    assert mine.model_info["predictor"] == "my-net" and mine.model_info["spec_from"] == "given (--model)"
    assert mine.model_info["columns"]["imagenet"] == ["top_1_is_correct_my-net", "top_5_is_correct_my-net"]
    assert mine.run_key != paper.run_key and paper.model_info["spec_from"] == "paper set"
    assert main(["leaderboard", "--results", str(out), "--out", str(board), "--no-plots", "--formats", "csv"]) == 0
    table = pd.read_csv(next(board.glob("*.csv"))).set_index("model")
    assert table.loc["resnet50.a1_in1k", "group"] == "in1k"
    # either full column name works as COLUMN, and a paper predictor may be named under another spec
    imported = import_reference_results(imagenet_val=files["val"], models={"top_5_is_correct_my-net": "hf:me/my-net",
                                                                           "resnet-50": "resnet50.tv_in1k"})
    assert {r.model for r in imported.results} == {CLIP, "hf:me/my-net", "resnet50.tv_in1k"} and not imported.skipped


@pytest.mark.parametrize(("model", "message"), [
    ("my-nett=resnet50", "error: --model my-nett=resnet50: {val}, {laion} has no top_1_is_correct_my-nett / "
                         "top_5_is_correct_my-nett columns; its predictors are: clip-vit-base-patch32, my-net, "
                         "resnet-50; name one of them"),
    ("my-net", "error: --model expects COLUMN=SPEC (e.g. my-vit=hf:me/my-vit), got 'my-net'"),
    ("my-net=no_such_net_at_all", "error: --model my-net=no_such_net_at_all: unknown model 'no_such_net_at_all'"),
])
def test_a_bad_model_option_is_one_line_and_writes_nothing(extra_files, tmp_path, capsys, model, message):
    files, out = extra_files, tmp_path / "results"
    assert main(["import-results", "--imagenet-val", str(files["val"]), "--laionet", str(files["laion"]),
                 "--labels", str(files["labels"]), "--model", model, "--out", str(out)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(message.format(val=files["val"], laion=files["laion"])) and not out.exists()
