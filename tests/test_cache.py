"""The shared prediction store: a new --out reuses it, an old <out>/.store is adopted, `cache info` / `cache prune`."""

from __future__ import annotations

import json
import os
import time

import pytest

from laionet_bench import constants
from laionet_bench.cli import main
from laionet_bench.errors import ConfigError
from laionet_bench.evaluation import evaluator
from laionet_bench.evaluation.cache import list_runs, prediction_cache, prune_runs
from laionet_bench.evaluation.engine import EngineOptions
from laionet_bench.evaluation.evaluator import evaluate

from .fakes.eval_data import row_id_folder, tiny_index, tiny_weights, wnid_folders

CPU = EngineOptions(device="cpu", workers=0, batch_size=4)
SPEC = "test_resnet.r160_in1k"
LAION, IMNET = "laionet_clip_0.82", "imagenet-val"  # the store's dataset folders


@pytest.fixture
def bench(tmp_path):
    path, frame = tiny_index(tmp_path, per_class=3)
    return {"index": path, "images": row_id_folder(tmp_path / "imgs", frame),
            "imagenet": wnid_folders(tmp_path / "val" / "val", per_class=2).parent,
            "weights": {SPEC: tiny_weights(tmp_path, "test_resnet")}}


@pytest.fixture
def computed(monkeypatch):
    """The predictions each evaluate() call computed, per call (the engine's own count)."""
    calls: list[int] = []
    original = evaluator.run_datasets

    def counting(*args, **kwargs):
        outcomes = original(*args, **kwargs)
        calls.append(sum(o.computed for by_spec in outcomes.values() for o in by_spec.values()))
        return outcomes

    monkeypatch.setattr(evaluator, "run_datasets", counting)
    return calls


def _evaluate(bench, out, **kwargs):
    return evaluate([SPEC], engine=CPU, index=bench["index"], images=bench["images"], imagenet=bench["imagenet"],
                    out=out, weights=bench["weights"], **kwargs)


def _top1(report):
    return [(r.model, r.datasets["laionet"].top1, r.datasets["imagenet"].top1) for r in report.results]


def test_a_second_results_folder_computes_no_prediction(tmp_path, bench, computed):
    first = _evaluate(bench, tmp_path / "a")
    second = _evaluate(bench, tmp_path / "b")
    assert computed[0] > 0 and computed[1] == 0
    assert _top1(second) == _top1(first) and (tmp_path / "b" / SPEC / "result.json").is_file()
    assert not (tmp_path / "a" / ".store").exists() and not (tmp_path / "b" / ".store").exists()  # --out: results only
    runs = list_runs()
    assert {(r.dataset, r.model) for r in runs} == {(LAION, SPEC), (IMNET, SPEC)}
    assert all(str(r.folder).startswith(str(constants.CACHE_DIR / "predictions")) for r in runs)


def test_the_predictions_setting_moves_the_store(tmp_path, bench, computed, monkeypatch):
    monkeypatch.setattr(constants, "ENV_SETTINGS", {"predictions": str(tmp_path / "shared")})
    assert prediction_cache() == tmp_path / "shared" and prediction_cache(tmp_path / "flag") == tmp_path / "flag"
    _evaluate(bench, tmp_path / "a")
    assert {r.folder.parents[2] for r in list_runs()} == {tmp_path / "shared"}
    _evaluate(bench, tmp_path / "b", predictions=tmp_path / "other")  # explicit beats the variable
    assert computed[1] > 0 and len(list_runs(tmp_path / "other")) == 2


def test_an_old_results_folder_store_is_adopted_without_recomputing(tmp_path, bench, computed):
    old = tmp_path / "old"
    _evaluate(bench, old, predictions=old / ".store")  # the layout before the shared cache
    kept = sorted(p.relative_to(old / ".store") for p in (old / ".store").rglob("*") if p.is_file())
    again = _evaluate(bench, old)
    assert computed == [computed[0], 0] and again.ok
    adopted = sorted(p.relative_to(prediction_cache()) for p in prediction_cache().rglob("*") if p.is_file())
    assert [p for p in kept if p.name != ".lock"] == [p for p in adopted if p.name != ".lock"]
    _evaluate(bench, old)  # the cache serves it now: nothing copied twice, nothing computed
    assert computed[2] == 0


def _cli(*args):
    return main(["cache", *args])


def test_cache_info_lists_each_run_key_with_its_size(tmp_path, bench, capsys):
    assert _cli("info") == 0 and "0 run(s)" in capsys.readouterr().out
    _evaluate(bench, tmp_path / "a")
    assert _cli("info", "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["store"] == str(prediction_cache()) and len(info["runs"]) == 2
    for run in info["runs"]:
        folder = prediction_cache() / run["dataset"] / SPEC / run["run_key"][:16]
        assert run["model"] == SPEC and run["records"] > 0
        assert run["bytes"] == sum(p.stat().st_size for p in folder.iterdir() if p.name != ".lock")
    assert info["total_bytes"] == sum(r["bytes"] for r in info["runs"])
    assert _cli("info") == 0
    text = capsys.readouterr().out
    assert all(run["run_key"][:16] in text for run in info["runs"]) and "2 run(s)" in text


def test_prune_by_run_key_and_by_age(tmp_path, bench, capsys, computed):
    _evaluate(bench, tmp_path / "a")
    runs = {r.dataset: r for r in list_runs()}
    assert _cli("prune", "--run-key", runs[IMNET].run_key[:8], "--dry-run") == 0
    assert "would remove 1 run(s)" in capsys.readouterr().out and len(list_runs()) == 2
    assert _cli("prune", "--run-key", runs[IMNET].run_key[:8]) == 0
    assert [r.dataset for r in list_runs()] == [LAION] and not runs[IMNET].folder.exists()
    assert not runs[IMNET].folder.parent.exists()  # its empty model folder too
    stale = time.time() - 40 * 86_400
    for path in runs[LAION].folder.iterdir():
        os.utime(path, (stale, stale))
    assert [r.dataset for r in prune_runs(older_than_days=30, dry_run=True)] == [LAION]
    assert prune_runs(older_than_days=50) == [] and len(list_runs()) == 1
    _evaluate(bench, tmp_path / "b")  # a run that uses it makes it recent again (and recomputes imagenet only)
    assert computed[1] > 0 and prune_runs(older_than_days=30) == []
    assert _cli("prune", "--all") == 0 and list_runs() == []
    assert "removed 2 run(s)" in capsys.readouterr().out


def test_prune_needs_a_criterion_and_checks_its_values(capsys):
    assert _cli("prune") == 1
    assert capsys.readouterr().err.strip() == ("error: cache prune: say what to remove: --older-than DAYS, "
                                               "--run-key KEY or --all")
    with pytest.raises(ConfigError, match="--older-than -1: days must be >= 0"):
        prune_runs(older_than_days=-1)
    with pytest.raises(ConfigError, match="--run-key 'xyz'"):
        prune_runs(run_key="xyz")


def test_prune_leaves_a_run_that_is_being_written(tmp_path, bench, caplog):
    from filelock import FileLock

    _evaluate(bench, tmp_path / "a")
    run, *others = list_runs()
    with FileLock(str(run.folder / ".lock")):
        assert [r.folder for r in prune_runs(everything=True)] == [r.folder for r in others]
    assert [r.folder for r in list_runs()] == [run.folder] and "being written" in caplog.text


def test_run_plan_shows_what_the_store_holds(tmp_path, bench, capsys):
    _evaluate(bench, tmp_path / "a")
    assert main(["run", "--models", SPEC, "--plan", "--out", str(tmp_path / "new"), "--max-memory", "1"]) == 0
    assert f"{SPEC} [stored: {IMNET} 1 run, {LAION} 1 run]" in capsys.readouterr().out
