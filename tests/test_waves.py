"""Waves: a budgeted plan gives the unbudgeted predictions, decodes once per wave, builds each model once per
run; several devices share one decode stream; two concurrent shards fill one store as one run would."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading
import types
import weakref

import numpy as np
import pytest

from laionet_bench.cli import main
from laionet_bench.datasets import create_dataset
from laionet_bench.errors import ConfigError
from laionet_bench.evaluation import engine, inference, work
from laionet_bench.evaluation.engine import (
    EngineOptions,
    parse_shard,
    plan_run,
    resolve_devices,
    run_datasets,
)
from laionet_bench.evaluation.estimate import ThroughputTable, load_throughput
from laionet_bench.evaluation.evaluator import STORE_FOLDER, evaluate
from laionet_bench.evaluation.planner import Footprint
from laionet_bench.evaluation.store import read_predictions
from laionet_bench.evaluation.work import shard_pairs
from laionet_bench.models.footprints import model_counts
from laionet_bench.models.registry import preprocess_key, resolve_data_config

from .fakes.eval_data import engine_files

#: Twelve timm test models of one preprocessing group (160 px bicubic 0.95) and one of another (bilinear).
GROUP = ["test_byobnet.r160_in1k", "test_convnext.r160_in1k", "test_convnext2.r160_in1k", "test_convnext3.r160_in1k",
         "test_efficientnet.r160_in1k", "test_efficientnet_evos.r160_in1k", "test_efficientnet_gn.r160_in1k",
         "test_efficientnet_ln.r160_in1k", "test_nfnet.r160_in1k", "test_vit.r160_in1k", "test_vit2.r160_in1k",
         "test_vit3.r160_in1k"]
OTHER = "test_resnet.r160_in1k"
SPECS = [*GROUP, OTHER]
MODEL_BYTES = 100 * 1024**2  # the fake footprint of every model: on CPU 2 (+ one build copy) fit 0.3 GiB
BUDGET_GIB = 0.3
NO_LIMIT_GIB = 1e6
OPTIONS = {"batch_size": 4, "workers": 0}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return engine_files(tmp_path_factory.mktemp("waves"), SPECS, per_class=3, val_per_class=2)


def _datasets(files):
    laionet = create_dataset("laionet", index=files["index"], images=files["images"])
    return {"laionet": laionet, "imagenet": create_dataset("imagenet-val", root=files["imagenet"],
                                                           classes=laionet.wnids())}


def fixed_footprint(spec, *, batch_size, dtype):
    config = resolve_data_config(spec)
    return Footprint(spec=spec, preprocess=preprocess_key(config), data_config=config, weights_bytes=MODEL_BYTES,
                     activation_bytes=0)


@pytest.fixture
def fixed_sizes(monkeypatch):
    monkeypatch.setattr(engine, "estimate_footprint", fixed_footprint)


def _count_decodes(datasets):
    """Wrap each dataset's ``open``: (dataset, key) → times decoded (workers=0: all in this process)."""
    counts: dict[tuple[str, str], int] = {}
    for name, data in datasets.items():
        real = data.open

        def counting(sample, _real=real, _name=name):
            counts[_name, sample.key] = counts.get((_name, sample.key), 0) + 1
            return _real(sample)

        data.open = counting
    return counts


def _count_builds(monkeypatch):
    """Wrap ``build_model``: the specs built, the thread each was built in, and weak refs to every module."""
    real = inference.build_model
    seen = {"specs": [], "threads": set(), "modules": [], "alive_at_build": []}

    def counting(spec, **kw):
        seen["alive_at_build"].append(sum(ref() is not None for ref in seen["modules"]))
        loaded = real(spec, **kw)
        seen["specs"].append(spec)
        seen["threads"].add(threading.current_thread().name)
        seen["modules"].append(weakref.ref(loaded.module))
        return loaded

    monkeypatch.setattr(inference, "build_model", counting)
    return seen


def _predictions(outcomes):
    out = {}
    for name, by_spec in outcomes.items():
        for spec, outcome in by_spec.items():
            assert outcome.status == "ok", outcome.reason
            out[spec, name] = read_predictions(outcome.store).sort_values("key", ignore_index=True)
    return out


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for pair in a:
        x, y = a[pair], b[pair]
        assert x["key"].tolist() == y["key"].tolist() and x["ok"].tolist() == y["ok"].tolist(), pair
        assert x["true_rank"].tolist() == y["true_rank"].tolist(), pair
        good = x["ok"].to_numpy(dtype=bool)
        assert [list(t) for t in x["top5"][good]] == [list(t) for t in y["top5"][good]], pair
        np.testing.assert_allclose(np.stack(x["scores"][good]), np.stack(y["scores"][good]), atol=1e-6)


def test_budgeted_waves_equal_one_wave_per_group(tmp_path, files, fixed_sizes, monkeypatch, caplog):
    datasets = _datasets(files)
    budget = EngineOptions(max_memory=BUDGET_GIB, **OPTIONS)
    plan = plan_run(SPECS, options=budget, devices=["cpu"])
    assert len(plan.waves) == 7 and max(len(w.models) for w in plan.waves) == 2  # 12 → 6 waves, + test_resnet
    builds = _count_builds(monkeypatch)
    decodes = _count_decodes(datasets)
    with caplog.at_level(logging.INFO, logger="laionet_bench.evaluation.engine"):
        waved = run_datasets(SPECS, datasets, store_root=tmp_path / "a", weights=files["weights"], options=budget)
    assert "in 7 wave(s) over 2 group(s) on cpu; each image decoded 7 time(s) per dataset" in caplog.text
    assert sorted(builds["specs"]) == sorted(SPECS)  # each model built once for both datasets
    assert set(builds["alive_at_build"][::2]) == {0}  # every wave's first build: the last wave's models are gone
    group_keys = {(name, data.sample(i).key) for name, data in datasets.items() for i in range(len(data))}
    assert set(decodes) == group_keys and set(decodes.values()) == {7}  # once per wave per dataset

    decodes.clear()
    single = run_datasets(SPECS, datasets, store_root=tmp_path / "b", weights=files["weights"],
                          options=EngineOptions(max_memory=NO_LIMIT_GIB, **OPTIONS))
    assert set(decodes.values()) == {2}  # one wave per group
    _assert_same(_predictions(waved), _predictions(single))
    assert all(o.computed == len(datasets[name]) for name, by in waved.items() for o in by.values())


def test_waves_on_two_devices_share_one_decode_and_predict_the_same(tmp_path, files, fixed_sizes, monkeypatch):
    """``cpu:0`` and ``cpu:1`` are two torch devices on one CPU: the multi-device path without a GPU."""
    specs = GROUP[:6]
    datasets = _datasets(files)
    two = EngineOptions(device="cpu:0,cpu:1", max_memory=BUDGET_GIB, **OPTIONS)
    plan = plan_run(specs, options=two, devices=resolve_devices(two.device))
    assert [w.device for w in plan.waves] == ["cpu:0", "cpu:1", "cpu:0", "cpu:1"] and len(plan.rounds) == 2
    builds = _count_builds(monkeypatch)
    decodes = _count_decodes(datasets)
    spread = run_datasets(specs, datasets, store_root=tmp_path / "two", weights=files["weights"], options=two)
    assert builds["threads"] == {"laionet-cpu:0", "laionet-cpu:1"} and sorted(builds["specs"]) == sorted(specs)
    assert set(decodes.values()) == {2}  # one decode per round, not per wave
    one = run_datasets(specs, datasets, store_root=tmp_path / "one", weights=files["weights"],
                       options=EngineOptions(max_memory=BUDGET_GIB, **OPTIONS))
    _assert_same(_predictions(spread), _predictions(one))


def test_a_model_failing_in_a_device_thread_fails_alone(tmp_path, files, fixed_sizes):
    specs = GROUP[:4]
    weights = {**files["weights"], GROUP[1]: files["weights"][GROUP[0]]}  # wrong architecture
    outcomes = run_datasets(specs, _datasets(files), store_root=tmp_path, weights=weights,
                            options=EngineOptions(device="cpu:0,cpu:1", max_memory=BUDGET_GIB, **OPTIONS))
    for name, by_spec in outcomes.items():
        assert by_spec[GROUP[1]].status == "failed" and "does not fit" in by_spec[GROUP[1]].reason
        assert [by_spec[s].status for s in specs if s != GROUP[1]] == ["ok"] * 3, name


SHARD_SCRIPT = """
import json, sys
from laionet_bench.datasets import create_dataset
from laionet_bench.evaluation.engine import EngineOptions, run_datasets
files = json.loads(sys.argv[1])
laionet = create_dataset("laionet", index=files["index"], images=files["images"])
datasets = {{"laionet": laionet, "imagenet": create_dataset("imagenet-val", root=files["imagenet"],
                                                            classes=laionet.wnids())}}
outcomes = run_datasets({specs!r}, datasets, store_root=sys.argv[2], weights=files["weights"],
                        options=EngineOptions(batch_size=4, workers=0, shard=(int(sys.argv[3]), 2)))
print(json.dumps({{n: {{s: [o.status, o.computed] for s, o in by.items()}} for n, by in outcomes.items()}}))
"""


def test_two_concurrent_shards_fill_the_store_of_one_run(tmp_path, files, monkeypatch):
    specs = [GROUP[0], OTHER, GROUP[9], GROUP[4]]
    script = textwrap.dedent(SHARD_SCRIPT.format(specs=specs))
    store = tmp_path / "sharded"
    shards = [subprocess.Popen([sys.executable, "-c", script, json.dumps(files), str(store), str(i)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    reports = []
    for shard in shards:
        out, err = shard.communicate(timeout=300)
        assert shard.returncode == 0, err[-2000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    done = [(name, spec) for report in reports for name, by in report.items() for spec, (status, n) in by.items()
            if status == "ok" and n > 0]
    assert len(done) == len(set(done)) == len(specs) * 2  # every pair computed, by exactly one shard
    assert all(any(n for by in report.values() for _, n in by.values()) for report in reports)  # both worked
    datasets = _datasets(files)
    builds = _count_builds(monkeypatch)
    after = run_datasets(specs, datasets, store_root=store, weights=files["weights"], options=EngineOptions(**OPTIONS))
    assert builds["specs"] == [] and all(o.computed == 0 for by in after.values() for o in by.values())
    whole = run_datasets(specs, datasets, store_root=tmp_path / "whole", weights=files["weights"],
                         options=EngineOptions(**OPTIONS))
    _assert_same(_predictions(after), _predictions(whole))


def test_shard_split_is_deterministic_balanced_and_covers_every_pair(files):
    datasets = _datasets(files)
    every = {(s, n) for s in SPECS for n in datasets}
    for count in (1, 2, 3, 5):
        parts = [shard_pairs(SPECS, datasets, (i, count)) for i in range(1, count + 1)]
        assert set().union(*parts) == every and sum(map(len, parts)) == len(every)
        assert parts == [shard_pairs(list(SPECS), dict(datasets), (i, count)) for i in range(1, count + 1)]
        work = [sum(len(datasets[n]) * _seconds_per_image(s) for s, n in part) for part in parts]
        biggest = max(len(d) * _seconds_per_image(s) for s in SPECS for d in datasets.values())
        assert max(work) - min(work) <= 2 * biggest


def _seconds_per_image(spec: str) -> float:
    size = resolve_data_config(spec)["input_size"][-1]
    return 1 / load_throughput().images_per_second(spec, size, model_counts(spec).parameters)[0]


def test_shards_balance_estimated_compute_not_images():
    """One model 100x costlier than nine others: alone in its shard, where a split by images gave it a tenth."""
    heavy, light = "heavy.x", [f"light{i}.x" for i in range(9)]
    table = ThroughputTable(name="t", rows={"heavy": {224: 1.0}, **{s.split(".")[0]: {224: 100.0} for s in light}})
    config = {"input_size": (3, 224, 224), "interpolation": "bicubic", "crop_pct": 0.875, "crop_mode": "center"}
    with pytest.MonkeyPatch.context() as env:
        env.setattr(work, "load_throughput", lambda: table)
        env.setattr(work, "resolve_data_config", lambda spec: config)
        env.setattr(work, "model_counts", lambda spec: types.SimpleNamespace(parameters=1))
        datasets = {"laionet": list(range(100))}
        parts = [shard_pairs([heavy, *light], datasets, (i, 2)) for i in (1, 2)]
    assert parts == [{(heavy, "laionet")}, {(s, "laionet") for s in light}]


def test_sharded_evaluate_fills_the_store_and_the_plain_run_writes_results(tmp_path, files, monkeypatch):
    specs = [GROUP[0], OTHER]
    common = {"index": files["index"], "images": files["images"], "imagenet": files["imagenet"],
              "out": tmp_path / "out", "weights": {s: files["weights"][s] for s in specs}}
    for i in (1, 2):
        report = evaluate(specs, engine=EngineOptions(shard=(i, 2), **OPTIONS), **common)
        assert report.results == [] and report.ok
    assert not list((tmp_path / "out").glob("*/result.json"))
    builds = _count_builds(monkeypatch)
    report = evaluate(specs, engine=EngineOptions(**OPTIONS), **common)
    assert [r.model for r in report] == specs and builds["specs"] == []


@pytest.mark.parametrize("text", ["3/2", "x", "0/2", "1/0", "1/2/3", ""])
def test_bad_shard_is_a_config_error(text):
    with pytest.raises(ConfigError, match="--shard"):
        parse_shard(text)


def test_shard_parses_one_based():
    assert parse_shard("1/4") == (1, 4) and parse_shard(" 4 / 4 ") == (4, 4)


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf")])
def test_bad_max_memory_is_a_config_error(value):
    with pytest.raises(ConfigError, match="--max-memory"):
        EngineOptions(max_memory=value).check()


def test_devices_resolve_to_a_list():
    assert resolve_devices("cpu") == ["cpu"] and resolve_devices("cpu:0, cpu:1") == ["cpu:0", "cpu:1"]
    with pytest.raises(ConfigError, match="same device"):
        resolve_devices("cpu,cpu")
    with pytest.raises(ConfigError, match="not a device"):
        resolve_devices("gpu0")
    with pytest.raises(ConfigError, match="empty entry"):
        resolve_devices("cpu,")


def test_cuda_devices_are_checked_against_this_machine(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_devices("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    with pytest.raises(ConfigError, match=r"cuda:7: this machine has 2 CUDA device\(s\), cuda:0 … cuda:1"):
        resolve_devices("cuda:7")
    assert resolve_devices("all") == ["cuda:0", "cuda:1"] and resolve_devices("cuda:1,cuda") == ["cuda:1", "cuda"]
    with pytest.raises(ConfigError, match="same device"):
        resolve_devices("cuda,cuda:0")


@pytest.mark.parametrize(("flags", "message"), [(["--shard", "3/2"], "--shard 3/2"), (["--shard", "x"], "--shard x"),
                                                (["--devices", "cuda:7"], "--devices cuda:7"),
                                                (["--max-memory", "0"], "--max-memory")])
def test_cli_refuses_bad_engine_flags_in_one_line(tmp_path, files, capsys, flags, message):
    code = main(["run", "--models", OTHER, "--index", files["index"], "--images", files["images"],
                 "--out", str(tmp_path), "--workers", "0", *flags])
    err = capsys.readouterr().err.strip()
    assert code == 1 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / STORE_FOLDER).exists()


def test_max_memory_below_one_model_fails_before_any_build(tmp_path, files, fixed_sizes, monkeypatch):
    builds = _count_builds(monkeypatch)
    with pytest.raises(ConfigError, match="needs 0.20 GiB, budget 0.05 GiB"):
        run_datasets(SPECS[:2], _datasets(files), store_root=tmp_path, weights=files["weights"],
                     options=EngineOptions(max_memory=0.05, **OPTIONS))
    assert builds["specs"] == []
