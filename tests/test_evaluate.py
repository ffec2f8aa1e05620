"""evaluate() and its report, and the ``run`` / ``models`` CLI end to end on a tiny local index, image folder and ImageNet-val."""

from __future__ import annotations

import dataclasses
import errno
import functools
import json
import os
import re
import types

import pandas as pd
import pytest

import laionet_bench
from laionet_bench._io import output_folder_writable
from laionet_bench.cli import main
from laionet_bench.cli.run import EXIT_PARTIAL, exit_status
from laionet_bench.errors import ConfigError, ModelSpecError
from laionet_bench.evaluation import evaluator
from laionet_bench.evaluation.cache import prediction_cache
from laionet_bench.evaluation.engine import EngineOptions
from laionet_bench.evaluation.evaluator import (
    SKIPPED_COLUMNS,
    EvaluationReport,
    ModelFailure,
    evaluate,
)
from laionet_bench.evaluation.results import read_results
from laionet_bench.evaluation.work import failure_reason
from laionet_bench.index.load import load_index
from laionet_bench.leaderboard.table import build_table

from .fakes.disk import full_disk_under
from .fakes.eval_data import WNIDS, row_id_folder, tiny_index, tiny_weights, wnid_folders
from .fakes.results import make_result

CPU = EngineOptions(device="cpu", workers=0, batch_size=4)
MODEL_INFO_KEYS = {"architecture", "pretrained_tag", "params", "input_size", "crop_pct", "interpolation", "mean",
                   "std", "num_classes", "weights", "weights_sha256", "label_map", "kind"}


@pytest.fixture
def bench(tmp_path):
    path, frame = tiny_index(tmp_path, per_class=5)
    images = row_id_folder(tmp_path / "imgs", frame)
    (images / f"{frame['row_id'][2]}.jpg").write_bytes(b"broken")
    wnid_folders(tmp_path / "val" / "val", wnids=[*WNIDS, "n01443537"], per_class=2)
    weights = {"test_resnet.r160_in1k": tiny_weights(tmp_path, "test_resnet"),
               "test_convnext.r160_in1k": tiny_weights(tmp_path, "test_convnext")}
    return types.SimpleNamespace(index=path, frame=frame, images=images, imagenet=tmp_path / "val", weights=weights)


def only(bench, name: str) -> dict:
    """The weights of one model: ``evaluate`` refuses weights for models it does not run."""
    return {spec: path for spec, path in bench.weights.items() if spec.startswith(name + ".")}


def test_evaluate_writes_results_with_gap_and_counts(tmp_path, bench):
    index = load_index(bench.index)
    report = evaluate(["test_resnet", "test_convnext"], engine=CPU, index=index, images=bench.images,
                      imagenet=bench.imagenet, out=tmp_path / "out", weights=bench.weights)
    results = report.results
    assert [r.model for r in results] == ["test_resnet.r160_in1k", "test_convnext.r160_in1k"]
    assert list(report) == results and report.ok and report.failures == [] and report.out == tmp_path / "out"
    result = results[0]
    laion, imnet = result.datasets["laionet"], result.datasets["imagenet"]
    n_ocr = int(bench.frame["ocr_flag"].sum())
    assert laion.n_excluded == n_ocr and laion.n_failed == 1  # the broken file
    assert laion.n_evaluated == len(bench.frame) - n_ocr - 1
    assert imnet.n_evaluated == 6 and imnet.n_classes == 3  # the 4th ImageNet class is not in LAIONet
    assert result.classes == [w for w in WNIDS if w in set(result.classes)] and len(result.classes) == 3
    assert "top1" in result.gaps and set(result.model_info) >= MODEL_INFO_KEYS
    written = read_results(tmp_path / "out")
    assert {r.model for r in written} == {r.model for r in results}
    assert (tmp_path / "out" / "skipped_images.csv").read_text().count("\n") == 2
    assert not (tmp_path / "out" / "failures.json").exists()
    per_class = written[0].per_class
    assert set(per_class["wnid"]) == set(WNIDS) and "laionet_weight" in per_class
    assert per_class["laionet_weight"].sum() == pytest.approx(1.0)  # every class of the index is evaluated here


def test_report_lists_the_skipped_images_as_the_csv_does(tmp_path, bench):
    report = evaluate(["test_resnet"], engine=CPU, index=bench.index, images=bench.images, out=tmp_path / "out",
                      weights=only(bench, "test_resnet"))
    skipped = report.skipped_images
    assert list(skipped.columns) == SKIPPED_COLUMNS and len(skipped) == 1  # the broken file, once
    assert skipped["key"].tolist() == [str(bench.frame["row_id"][2])] and skipped["error"][0]
    written = pd.read_csv(tmp_path / "out" / "skipped_images.csv", dtype=str)
    assert written.to_dict("records") == skipped.astype(str).to_dict("records")


def test_failed_model_is_in_the_report_with_its_reason(tmp_path, bench):
    weights = {**bench.weights, "test_convnext.r160_in1k": bench.weights["test_resnet.r160_in1k"]}  # wrong architecture
    report = evaluate(["test_resnet", "test_convnext"], engine=CPU, index=bench.index, images=bench.images,
                      imagenet=bench.imagenet, out=tmp_path / "out", weights=weights)
    assert [r.model for r in report] == ["test_resnet.r160_in1k"] and not report.ok
    assert {(f.model, f.dataset) for f in report.failures} == {("test_convnext.r160_in1k", "laionet"),
                                                               ("test_convnext.r160_in1k", "imagenet")}
    assert all(isinstance(f, ModelFailure) and f.reason for f in report.failures)
    on_disk = json.loads((tmp_path / "out" / "failures.json").read_text())  # the file stays part of the output
    assert on_disk == report.failure_reasons() == {"test_convnext.r160_in1k": {f.dataset: f.reason
                                                                               for f in report.failures}}


def test_reports_describe_the_latest_run_only(tmp_path, bench):
    """A failure and a broken image of an earlier run are not reported again once the run succeeds."""
    wrong = {**bench.weights, "test_convnext.r160_in1k": bench.weights["test_resnet.r160_in1k"]}
    out = tmp_path / "out"
    evaluate(["test_resnet", "test_convnext"], engine=CPU, index=bench.index, images=bench.images, out=out,
             weights=wrong)
    assert (out / "failures.json").exists() and (out / "skipped_images.csv").exists()
    (bench.images / f"{bench.frame['row_id'][2]}.jpg").unlink()  # now missing: counted, not an unreadable image
    report = evaluate(["test_convnext"], engine=CPU, index=bench.index, images=bench.images, out=out,
                      weights=only(bench, "test_convnext"))
    assert report.ok and report.skipped_images.empty
    assert not (out / "failures.json").exists() and not (out / "skipped_images.csv").exists()


def test_out_that_is_a_file_fails_before_anything_is_loaded(tmp_path, bench):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ConfigError, match="taken is a file, not a folder"):
        evaluate(["test_resnet"], engine=CPU, index=tmp_path / "never-read.parquet", images=bench.images,
                 out=tmp_path / "taken" / "out")


def test_read_only_out_serves_stored_results_and_refuses_new_work(tmp_path, bench, monkeypatch):
    out = tmp_path / "out"
    first = evaluate(["test_resnet"], engine=CPU, index=bench.index, images=bench.images, out=out,
                     weights=only(bench, "test_resnet"))
    written = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    monkeypatch.setattr(evaluator, "output_folder_writable", lambda path: False)  # root ignores chmod: say it
    again = evaluate(["test_resnet"], engine=CPU, index=bench.index, images=bench.images, out=out,
                     weights=only(bench, "test_resnet"))
    assert [(r.model, r.datasets["laionet"].top1, r.datasets["laionet"].n_evaluated) for r in again] == \
        [(r.model, r.datasets["laionet"].top1, r.datasets["laionet"].n_evaluated) for r in first]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == written  # nothing rewritten
    with pytest.raises(ConfigError, match="read-only and 13 prediction"):  # a model the store lacks: refused up front
        evaluate(["test_resnet", "test_convnext"], engine=CPU, index=bench.index, images=bench.images, out=out,
                 weights=bench.weights)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_permissions_are_detected(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert not output_folder_writable(folder) and output_folder_writable(tmp_path / "rw")
    finally:
        folder.chmod(0o755)


def test_weights_are_checked_before_any_model_is_built(tmp_path, bench):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a checkpoint")
    with pytest.raises(ModelSpecError, match="notes.txt is not a weights file"):
        evaluate(["test_resnet"], engine=CPU, index=bench.index, images=bench.images, out=tmp_path / "out",
                 weights={"test_resnet": notes})
    with pytest.raises(ModelSpecError, match="is a folder"):
        evaluate(["test_resnet"], engine=CPU, index=bench.index, images=bench.images, out=tmp_path / "out",
                 weights={"test_resnet": tmp_path})
    with pytest.raises(ModelSpecError, match=r"names test_convnext.r160_in1k, which is not among the models"):
        evaluate(["test_resnet"], engine=CPU, index=bench.index, images=bench.images, out=tmp_path / "out",
                 weights=bench.weights)
    assert not (tmp_path / "out").exists()


def test_report_without_failures_is_ok(tmp_path):
    report = EvaluationReport(results=[], failures=[], skipped_images=pd.DataFrame(columns=SKIPPED_COLUMNS),
                              out=tmp_path)
    assert report.ok and list(report) == [] and report.failure_reasons() == {}
    failed = EvaluationReport(results=[], failures=[ModelFailure("b", "laionet", "x"), ModelFailure("a", "laionet", "y"),
                                                    ModelFailure("a", "imagenet", "z")],
                              skipped_images=pd.DataFrame(columns=SKIPPED_COLUMNS), out=tmp_path)
    assert not failed.ok
    assert list(failed.failure_reasons().items()) == [("a", {"imagenet": "z", "laionet": "y"}), ("b", {"laionet": "x"})]


def test_evaluate_and_engine_options_are_exported_from_the_package():
    from laionet_bench import EngineOptions as exported_options
    from laionet_bench import evaluate as exported

    assert exported is evaluate and exported_options is EngineOptions
    assert {"evaluate", "EngineOptions"} <= set(laionet_bench.__all__)


def test_effective_robustness_of_a_run_is_the_leaderboards():
    zero_shot = {"kind": "openclip", "pretrained_tag": "laion2b_s34b_b79k"}
    results = [make_result("resnet18.tv_in1k", imagenet=0.6, laionet=0.5),
               make_result("resnet50.a1_in1k", imagenet=0.7, laionet=0.55),
               make_result("vit_base_patch16_224.augreg_in21k_ft_in1k", imagenet=0.8, laionet=0.75),
               make_result("ViT-B-32/laion2b_s34b_b79k", imagenet=0.6, laionet=0.625, model_info=zero_shot)]
    evaluator._fill_effective_robustness(results)  # what evaluate() writes into result.json
    residuals = {r.model: r.effective_robustness for r in results}
    assert residuals["vit_base_patch16_224.augreg_in21k_ft_in1k"] > 0 > residuals["resnet50.a1_in1k"]
    table, fit, fit_models = build_table(results)
    assert "ViT-B-32/laion2b_s34b_b79k" not in fit_models and fit.n_models == 3  # zero-shot: not in the reference
    board = table.set_index("model")["effective_robustness"]
    assert board.to_dict() == pytest.approx({model: value * 100 for model, value in residuals.items()})
    single = [make_result("resnet18.tv_in1k", imagenet=0.6, laionet=0.5)]
    evaluator._fill_effective_robustness(single)
    assert single[0].effective_robustness is None and build_table(single)[0]["effective_robustness"].isna().all()


def _cli(bench, out, *extra):
    weights = [f"{k}={v}" for k, v in bench.weights.items()]
    return main(["run", "--models", "test_*", "--exclude", "test_[!rc]*", "test_convnext[23]*", "--weights", *weights,
                 "--index", str(bench.index), "--images", str(bench.images), "--out", str(out), "--device", "cpu",
                 "--workers", "0", "--batch-size", "4", *extra])


def test_cli_run_end_to_end_and_rerun_is_free(tmp_path, bench, capsys):
    out = tmp_path / "out"
    assert _cli(bench, out, "--imagenet", str(bench.imagenet)) == 0
    text = capsys.readouterr().out
    assert "test_resnet.r160_in1k" in text and "test_convnext.r160_in1k" in text and "2 result(s) written" in text
    data = json.loads((out / "test_resnet.r160_in1k" / "result.json").read_text())
    assert data["model_info"]["weights_sha256"] and data["datasets"]["imagenet"]["n_classes"] == 3
    store = prediction_cache()  # shared by every --out
    chunks = sorted(p.stat().st_mtime_ns for p in store.rglob("chunk-*.parquet"))
    assert chunks and not (out / ".store").exists()
    assert _cli(bench, out, "--imagenet", str(bench.imagenet)) == 0
    assert sorted(p.stat().st_mtime_ns for p in store.rglob("chunk-*.parquet")) == chunks


def test_cli_prints_failed_models_from_the_report(tmp_path, bench, capsys, monkeypatch):
    """The CLI learns of failures from evaluate()'s report: with no failures.json written it still prints them."""
    monkeypatch.setattr(evaluator, "_write_reports", lambda report: None)
    bench.weights["test_convnext.r160_in1k"] = bench.weights["test_resnet.r160_in1k"]  # wrong architecture
    assert _cli(bench, tmp_path / "out", "--imagenet", str(bench.imagenet)) == EXIT_PARTIAL  # one failed, one written
    assert not (tmp_path / "out" / "failures.json").exists()
    lines = capsys.readouterr().out.splitlines()
    (failed,) = [line for line in lines if line.startswith("FAILED")]
    assert failed.startswith("FAILED test_convnext.r160_in1k: imagenet: ") and "; laionet: " in failed
    assert "1 result(s) written" in lines[-1]


def test_exit_status_is_0_all_ok_3_partial_1_none():
    ok, failure = types.SimpleNamespace(model="m"), ModelFailure("n", "laionet", "RuntimeError: boom")
    report = functools.partial(EvaluationReport, skipped_images=pd.DataFrame(columns=SKIPPED_COLUMNS), out=None)
    assert exit_status(report(results=[ok], failures=[])) == 0
    assert exit_status(report(results=[ok], failures=[failure])) == EXIT_PARTIAL == 3
    assert exit_status(report(results=[], failures=[failure])) == 1  # every model failed, or a shard's failure


def test_cli_run_demo_exits_as_run_does(tmp_path, bench, capsys, monkeypatch):
    """``run --demo`` reports failed models and exits 3 like ``run`` (it exited 0)."""
    from laionet_bench.demo import benchmark
    from laionet_bench.leaderboard import render

    bench.weights["test_convnext.r160_in1k"] = bench.weights["test_resnet.r160_in1k"]  # wrong architecture
    report = evaluate(["test_resnet", "test_convnext"], engine=CPU, index=bench.index, images=bench.images,
                      imagenet=bench.imagenet, out=tmp_path / "out", weights=bench.weights)
    demo = benchmark.DemoRun(data=None, evaluation=report, similarity=None, leaderboard=None, out=tmp_path / "out",
                             leaderboard_dir=tmp_path / "out" / "leaderboard")
    monkeypatch.setattr(benchmark, "run_demo", lambda *args, **kwargs: demo)
    monkeypatch.setattr(render, "to_markdown", lambda board, title: title)
    assert main(["run", "--demo", "--out", str(tmp_path / "out")]) == EXIT_PARTIAL
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAILED test_convnext")]
    demo.evaluation = dataclasses.replace(report, failures=[])
    assert main(["run", "--demo", "--out", str(tmp_path / "out")]) == 0


class PickledObject:
    """Not a tensor: ``torch.load(weights_only=True)`` refuses a checkpoint that holds one."""


def _pickled_checkpoint(path):
    import torch

    torch.save({"head": PickledObject()}, path)
    return path


def test_failed_models_are_recorded_without_advice_to_load_unsafely(tmp_path, bench, capsys):
    """timm refuses the checkpoint, then advises "retry with weights_only=False" (which runs the file's code)."""
    bench.weights["test_convnext.r160_in1k"] = _pickled_checkpoint(tmp_path / "pickled.pth")
    out = tmp_path / "out"
    assert _cli(bench, out) == EXIT_PARTIAL
    (failed,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAILED")]
    reasons = json.loads((out / "failures.json").read_text())["test_convnext.r160_in1k"]
    assert failed == "FAILED test_convnext.r160_in1k: " + "; ".join(f"{k}: {v}" for k, v in sorted(reasons.items()))
    for reason in reasons.values():
        assert "blocked loading this checkpoint" in reason and "PickledObject" in reason
        assert "weights_only=False" not in reason and "trust" not in reason


def test_torch_weights_only_refusal_is_one_line_without_its_unsafe_advice(tmp_path):
    import torch

    with pytest.raises(Exception) as info:  # noqa: PT011 - torch's own type (pickle.UnpicklingError)
        torch.load(_pickled_checkpoint(tmp_path / "pickled.pth"), weights_only=True)
    assert "\n" in str(info.value) and "`weights_only` set to `False`" in str(info.value)
    reason = failure_reason(info.value)
    assert reason.startswith("UnpicklingError: Weights only load failed.") and "GLOBAL tests.test_evaluate.PickledObject" in reason
    assert "\n" not in reason and "\x1b" not in reason and "False" not in reason and "trust" not in reason


def test_a_ray_task_error_is_reported_as_its_cause_in_one_line():
    ray_exceptions = pytest.importorskip("ray.exceptions")
    error = ray_exceptions.RayTaskError(
        "_WaveActor.build()", 'Traceback (most recent call last):\n  File "x.py", line 1, in build\nValueError: boom',
        ValueError("no such head:\n  fc.weight")).as_instanceof_cause()
    assert "\n" in str(error)
    assert failure_reason(error) == "ValueError: no such head: fc.weight"


def test_a_full_disk_under_a_store_reads_as_the_cli_says_it():
    chunk = "out/.store/m/laionet/k/chunk-000001.parquet"
    assert failure_reason(OSError(errno.ENOSPC, "No space left on device", chunk)) == (
        f"DiskWriteError: {chunk}: no space left on device: free space and re-run; finished work is kept")


def test_cli_run_on_a_full_disk_keeps_the_predictions_and_leaves_no_empty_model_folder(tmp_path, bench, capsys,
                                                                                         monkeypatch):
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        full_disk_under(patch, "per_class.parquet")  # the disk fills up as the first result is written
        assert _cli(bench, out, "-q") == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert re.fullmatch(f"error: {re.escape(str(out))}/test_[a-z]+.r160_in1k/per_class.parquet: no space left on "
                        "device: free space and re-run; finished work is kept", line)
    assert list(out.iterdir()) == []  # no empty model folder (the predictions live in the shared store)
    store = prediction_cache(None)
    chunks = {p: p.stat().st_mtime_ns for p in store.rglob("chunk-*.parquet")}
    assert chunks  # the predictions were kept: the re-run computes nothing
    assert _cli(bench, out, "-q") == 0
    assert {p: p.stat().st_mtime_ns for p in store.rglob("chunk-*.parquet")} == chunks
    assert (out / "test_resnet.r160_in1k" / "result.json").is_file()


@pytest.mark.parametrize(("shard", "shown"), [("", "--shard ''"), ("1/" + "9" * 20, "--shard 1/" + "9" * 20)])
def test_cli_refuses_an_empty_or_huge_shard_in_one_line(tmp_path, bench, capsys, shard, shown):
    """An empty --shard ran unsharded; a 20-digit N was an OverflowError."""
    assert _cli(bench, tmp_path / "out", "--shard", shard) == 1
    assert capsys.readouterr().err.splitlines() == [f"error: {shown}: expected I/N with 1 ≤ I ≤ N ≤ 1000000 "
                                                    "(1-based: 1/4 … 4/4)"]
    assert not (tmp_path / "out").exists()


def test_cli_run_without_imagenet_says_the_gap_needs_it(tmp_path, bench, capsys):
    assert _cli(bench, tmp_path / "out", "--limit-per-class", "2") == 0
    text = capsys.readouterr().out
    assert "gap needs ImageNet-val" in text


def test_cli_run_reports_bad_weights_pair(tmp_path, bench, capsys):
    assert main(["run", "--models", "test_resnet", "--weights", "nonsense", "--index", str(bench.index),
                 "--images", str(bench.images)]) == 1
    assert "SPEC=PATH" in capsys.readouterr().err


def test_cli_models_lists_configs_and_groups(capsys):
    assert main(["models", "test_resnet", "test_convnext", "test_vit.*"]) == 0
    text = capsys.readouterr().out
    assert "bilinear" in text and "bicubic" in text and "3 model(s) in 2 preprocessing group(s)" in text
    assert main(["models", "resnt50"]) == 1
    assert "did you mean" in capsys.readouterr().err


def test_official_protocol_scores_every_label_key_found_in_val(tmp_path, bench):
    """The reference's class set: label-pickle keys found in val, empty LAIONet classes included, the
    husky's non-standard key left untranslated (so val never lists it); SE divided by the literal 1.96."""
    keys = (*WNIDS, "n01443537", "n02112837")  # n01443537: in val, no LAIONet row
    index = dataclasses.replace(load_index(bench.index), label_keys=keys)
    runs = {protocol: evaluate(["test_resnet"], engine=dataclasses.replace(CPU, protocol=protocol), index=index,
                               images=bench.images, imagenet=bench.imagenet, out=tmp_path / protocol,
                               weights=only(bench, "test_resnet")).results[0]
            for protocol in ("ours", "official")}
    ours, official = runs["ours"], runs["official"]
    assert (ours.protocol, official.protocol) == ("ours", "official")
    assert official.classes == sorted([*WNIDS, "n01443537"]) and ours.classes == sorted(WNIDS)
    assert official.datasets["imagenet"].n_classes == 4 and official.datasets["laionet"].n_classes == 3
    assert official.datasets["imagenet"].n_evaluated == 8
    assert official.datasets["laionet"].top1.value == ours.datasets["laionet"].top1.value
    se = {name: r.per_class.set_index("wnid")["laionet_se_top1"] for name, r in runs.items()}
    finite = se["ours"].notna() & (se["ours"] > 0)
    assert finite.any()
    ratio = se["official"].reindex(se["ours"].index)[finite] / se["ours"][finite]
    assert ratio.to_numpy() == pytest.approx(1.959963984540054 / 1.96)
    assert json.loads((tmp_path / "official" / "test_resnet.r160_in1k" / "result.json").read_text())["protocol"] == "official"


def test_official_protocol_without_recorded_keys_uses_every_indexed_class(tmp_path, bench):
    index = load_index(bench.index)
    assert index.label_keys is None
    result = evaluate(["test_resnet"], engine=dataclasses.replace(CPU, protocol="official"), index=index,
                      images=bench.images, imagenet=bench.imagenet, out=tmp_path / "out",
                      weights=only(bench, "test_resnet")).results[0]
    assert result.protocol == "official" and result.classes == sorted(set(bench.frame["wnid"]))


def test_cli_run_records_the_protocol(tmp_path, bench, capsys):
    weights = [f"{k}={v}" for k, v in only(bench, "test_resnet").items()]
    command = ["run", "--models", "test_resnet", "--weights", *weights, "--index", str(bench.index), "--images",
               str(bench.images), "--out", str(tmp_path / "out"), "--device", "cpu", "--workers", "0"]
    assert main([*command, "--protocol", "official"]) == 0
    (result,) = read_results(tmp_path / "out")
    assert result.protocol == "official"
    with pytest.raises(SystemExit):
        main([*command, "--protocol", "paper"])
    assert "invalid choice: 'paper'" in capsys.readouterr().err


def test_hub_options_pin_the_index_revision(fake_hub, tmp_path, monkeypatch):
    from .conftest import make_index_frame
    from .test_hub import _publish

    pinned = make_index_frame(["n01440764"] * 4)
    first, _ = _publish(fake_hub, tmp_path, pinned)
    _publish(fake_hub, tmp_path, make_index_frame(["n01443537"] * 6))  # main moves on
    listed = {}

    def stop(specs, sets, **options):
        listed.update(sets)
        raise ConfigError("stopped before inference")

    monkeypatch.setattr(evaluator, "run_datasets", stop)
    images = row_id_folder(tmp_path / "imgs", pinned)
    with pytest.raises(ConfigError, match="stopped before inference"):
        evaluate(["test_resnet.r160_in1k"], engine=CPU, images=images, out=tmp_path / "out",
                 hub_options={"revision": first})
    assert listed["laionet"].identity()["index"]["revision"] == first and listed["laionet"].n_listed == 4
