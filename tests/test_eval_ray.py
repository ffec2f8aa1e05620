"""The Ray executor of the evaluation engine: the local executor's predictions, one actor per (fake) GPU, on one
node and on a two-node local cluster; resume; an unreachable address in one line."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

import numpy as np
import pytest

from laionet_bench.cli import main
from laionet_bench.datasets import create_dataset
from laionet_bench.errors import ConfigError
from laionet_bench.evaluation import engine, ray_cluster, ray_executor, waves
from laionet_bench.evaluation.engine import EngineOptions, plan_run, run_datasets
from laionet_bench.evaluation.store import read_predictions
from laionet_bench.models import footprints

from .fakes.eval_data import engine_files
from .local_ray import hermetic_env, hermetic_ray, join, ray_start
from .test_waves import fixed_footprint

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'laionet-bench[ray]'")

GROUP = ["test_vit.r160_in1k", "test_efficientnet.r160_in1k", "test_convnext.r160_in1k"]  # one preprocessing group
OTHER = "test_resnet.r160_in1k"  # another (bilinear)
BROKEN = "test_nfnet.r160_in1k"  # given test_vit's weights: fails to build, here and on the actors
SPECS = [*GROUP, OTHER, BROKEN]
OPTIONS = {"batch_size": 4, "workers": 0, "max_memory": 0.25}  # 100 MiB per model (fixed_footprint): 2 per wave


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    files = engine_files(tmp_path_factory.mktemp("eval_ray"), SPECS[:-1], per_class=2, val_per_class=1)
    return {**files, "weights": {**files["weights"], BROKEN: files["weights"][GROUP[0]]}}


def _datasets(files):
    laionet = create_dataset("laionet", index=files["index"], images=files["images"])
    return {"laionet": laionet, "imagenet": create_dataset("imagenet-val", root=files["imagenet"],
                                                           classes=laionet.wnids())}


@pytest.fixture
def fixed_sizes(monkeypatch):
    monkeypatch.setattr(engine, "estimate_footprint", fixed_footprint)


@pytest.fixture(scope="module")
def local_outcomes(files, tmp_path_factory):
    """The local executor's run, the reference of every Ray run (the footprints fixed as in ``fixed_sizes``)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "estimate_footprint", fixed_footprint)
        return run_datasets(SPECS, _datasets(files), store_root=tmp_path_factory.mktemp("local"),
                            weights=files["weights"], options=EngineOptions(**OPTIONS))


def _assert_identical(local, remote):
    """Same outcomes, same failure reasons, and bit-identical stored predictions."""
    assert local.keys() == remote.keys()
    for name, by_spec in local.items():
        assert by_spec.keys() == remote[name].keys()
        for spec, mine in by_spec.items():
            theirs = remote[name][spec]
            assert (theirs.status, theirs.reason) == (mine.status, mine.reason), (spec, name)
            if mine.status != "ok":
                continue
            a = read_predictions(mine.store).sort_values("key", ignore_index=True)
            b = read_predictions(theirs.store).sort_values("key", ignore_index=True)
            assert len(a) == len(b) > 0 and a["key"].tolist() == b["key"].tolist(), (spec, name)
            assert a["ok"].tolist() == b["ok"].tolist() and a["true_rank"].tolist() == b["true_rank"].tolist()
            good = a["ok"].to_numpy(dtype=bool)
            assert [list(t) for t in a["top5"][good]] == [list(t) for t in b["top5"][good]], (spec, name)
            np.testing.assert_array_equal(np.stack(a["scores"][good]), np.stack(b["scores"][good]))
            assert theirs.model_info == mine.model_info


def _spy_actors(monkeypatch):
    """Record, per actor the driver starts, its slot, the GPUs Ray gave it and the device it runs on."""
    seen = []
    real = ray_executor._Driver.actor

    def actor(self, slot):
        fresh = slot not in self.actors
        handle = real(self, slot)
        if fresh:
            gpus, device = ray.get(handle.__ray_call__.remote(lambda a: (ray.get_gpu_ids(), a.device)))
            seen.append((slot, [int(g) for g in gpus], device))
        return handle

    monkeypatch.setattr(ray_executor._Driver, "actor", actor)
    return seen


@pytest.fixture(scope="module")
def fake_gpus():
    """One local Ray for the module: 2 CPUs and 2 GPUs declared on this CPU machine."""
    with hermetic_ray(num_cpus=2, num_gpus=2):
        yield


@pytest.mark.slow  # a local Ray and two actors importing torch
def test_fake_gpus_one_actor_each_give_the_local_predictions(fake_gpus, files, fixed_sizes, local_outcomes,
                                                             tmp_path, monkeypatch, caplog):
    options = EngineOptions(executor="ray", **OPTIONS)
    targets = engine.plan_targets(options)
    assert list(targets.devices) == ["ray-gpu:0", "ray-gpu:1"]
    measured = ray_executor.connect(None).budgets  # no --max-memory: one task per slot measures its default
    assert list(measured) == ["ray-gpu:0", "ray-gpu:1"] and len(set(measured.values())) == 1 > 0 < min(measured.values())
    plan = plan_run(SPECS, options=options, devices=targets.devices, budgets=targets.budgets)
    assert [len(r) for r in plan.rounds] == [2, 1]  # the 4-model group's 2 waves on both GPUs at once, then OTHER
    actors = _spy_actors(monkeypatch)
    batches = []  # (dataset, positions, lanes) of every decoded batch sent to the actors
    real_predict = ray_executor._Driver._predict

    def predict(self, lanes, actors, name, chunk, ref):
        batches.append((name, chunk.tolist(), len(lanes)))
        return real_predict(self, lanes, actors, name, chunk, ref)

    monkeypatch.setattr(ray_executor._Driver, "_predict", predict)
    with caplog.at_level(logging.INFO, logger="laionet_bench.evaluation.engine"):
        remote = run_datasets(SPECS, _datasets(files), store_root=tmp_path / "ray", weights=files["weights"],
                              options=options)
    assert "in 3 wave(s) over 2 group(s) on ray-gpu:0,ray-gpu:1; each image decoded 2 time(s)" in caplog.text
    assert sorted(actors) == [("ray-gpu:0", [0], "cpu"), ("ray-gpu:1", [1], "cpu")]  # one per GPU, cpu: no CUDA
    for name, data in _datasets(files).items():  # each image decoded once per round: 2 lanes, then 1
        decoded = sorted((p, lanes) for n, chunk, lanes in batches if n == name for p in chunk)
        assert decoded == sorted([(p, 2) for p in range(len(data))] + [(p, 1) for p in range(len(data))]), name
    assert remote["laionet"][BROKEN].status == "failed" and "does not fit" in remote["laionet"][BROKEN].reason
    _assert_identical(local_outcomes, remote)

    again = run_datasets(SPECS, _datasets(files), store_root=tmp_path / "ray", weights=files["weights"],
                         options=options)
    assert [o.computed for by in again.values() for o in by.values()] == [0] * 2 * len(SPECS)


def _kill_actors(monkeypatch, when):
    """Before a batch is sent, kill the actor of the round's first lane whenever ``when(lanes)``; the slots killed."""
    killed, dead = [], set()
    real_predict = ray_executor._Driver._predict

    def predict(self, lanes, actors, name, chunk, ref):
        if when(lanes, killed) and actors[0]._actor_id not in dead:
            killed.append(lanes[0].wave.device)
            dead.add(actors[0]._actor_id)
            ray.kill(actors[0])
            with contextlib.suppress(ray.exceptions.RayActorError):
                ray.get(actors[0].release.remote())  # wait until it is gone
        return real_predict(self, lanes, actors, name, chunk, ref)

    monkeypatch.setattr(ray_executor._Driver, "_predict", predict)
    return killed


@pytest.mark.slow  # a local Ray; an actor killed mid-round
def test_a_dead_actor_is_replaced_and_its_round_retried(fake_gpus, files, fixed_sizes, local_outcomes, tmp_path,
                                                        monkeypatch, caplog):
    actors = _spy_actors(monkeypatch)
    killed = _kill_actors(monkeypatch, lambda lanes, killed: not killed)  # once, at the first batch
    with caplog.at_level(logging.WARNING, logger="laionet_bench.evaluation.ray_executor"):
        remote = run_datasets(SPECS, _datasets(files), store_root=tmp_path, weights=files["weights"],
                              options=EngineOptions(executor="ray", **OPTIONS))
    assert len(killed) == 1 and [slot for slot, *_ in actors].count(killed[0]) == 2  # a new actor for the slot
    assert f"ray: the actor of {killed[0]} died" in caplog.text and "retried on a new actor" in caplog.text
    _assert_identical(local_outcomes, remote)  # nothing lost, nothing failed that the local run did not fail


@pytest.mark.slow  # a local Ray; an actor killed in both tries of the first round
def test_an_actor_that_dies_twice_fails_its_models_in_one_line_and_later_waves_get_a_new_one(
        fake_gpus, files, fixed_sizes, tmp_path, monkeypatch):
    killed = _kill_actors(monkeypatch, lambda lanes, killed: lanes[0].number == 1)
    remote = run_datasets(SPECS, _datasets(files), store_root=tmp_path, weights=files["weights"],
                          options=EngineOptions(executor="ray", **OPTIONS))
    assert killed == ["ray-gpu:0", "ray-gpu:0"]
    failed = {s for s, o in remote["laionet"].items() if o.status == "failed" and s != BROKEN}
    assert failed and OTHER not in failed  # the next round on the same slot ran on a new actor
    assert remote["laionet"][OTHER].status == "ok" and remote["imagenet"][OTHER].status == "ok"
    for spec in failed:
        reason = remote["laionet"][spec].reason
        assert "\n" not in reason and "died" in reason.lower(), reason


@pytest.mark.slow  # a local Ray
def test_plan_with_the_ray_executor_is_over_the_cluster_slots(fake_gpus, capsys):
    assert main(["run", "--models", *GROUP, "--plan", "--json", "--executor", "ray", "--max-memory", "4"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["devices"] == ["ray-gpu:0", "ray-gpu:1"] and plan["budgets"] == dict.fromkeys(plan["devices"], 4 * 1024**3)
    assert {w["device"] for w in plan["waves"]} <= set(plan["devices"])


def test_cpu_probe_is_a_pass_through_and_a_measured_probe_is_compared(files, fixed_sizes, tmp_path, monkeypatch,
                                                                       caplog):
    """The first batch of each model is measured alone (here by a fake CUDA measurement); later batches are not."""
    calls = []

    def fake_measure(forward, *, device):
        forward()
        calls.append(device)
        return 10 * 1024**3  # far above the fixed footprint's 0 bytes of activations

    monkeypatch.setattr(waves, "measure_peak_bytes", fake_measure)
    specs = GROUP[:2]
    with caplog.at_level(logging.WARNING, logger="laionet_bench.evaluation.waves"):
        probed = run_datasets(specs, _datasets(files), store_root=tmp_path / "probed", weights=files["weights"],
                              options=EngineOptions(batch_size=4, workers=0))
    assert calls == ["cpu"] * len(specs)  # one probe per model, not per batch or dataset
    # the first batch: 4 images, 1 unreadable, so 3 forwarded
    assert sum("probe batch of 3 image(s) on cpu allocated 10.000 GiB" in m for m in caplog.messages) == len(specs)
    monkeypatch.setattr(waves, "measure_peak_bytes", footprints.measure_peak_bytes)
    plain = run_datasets(specs, _datasets(files), store_root=tmp_path / "plain", weights=files["weights"],
                         options=EngineOptions(batch_size=4, workers=0))
    _assert_identical(plain, probed)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_ray_address_is_one_line_before_any_work(files, tmp_path, capsys):
    address = f"127.0.0.1:{_free_port()}"
    code = main(["run", "--models", OTHER, "--index", files["index"], "--images", files["images"], "--out",
                 str(tmp_path), "--workers", "0", "--executor", "ray", "--ray-address", address])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and f"--ray-address {address}: no Ray cluster reachable" in err
    assert not list(tmp_path.rglob("*.parquet"))


@pytest.mark.parametrize(("options", "message"), [({"executor": "spark"}, "--executor spark"),
                                                  ({"ray_address": "127.0.0.1:1"}, "goes with --executor ray")])
def test_bad_executor_options_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        EngineOptions(**options).check()


def test_a_malformed_ray_address_is_a_config_error():
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        ray_executor.connect("no-port-here")


def test_a_local_ray_starts_on_loopback_without_the_dashboard(monkeypatch):
    """Ray resolves 127.0.0.1 to the internet-facing address unless its single-machine mode is on while it starts."""
    constants = ray._private.ray_constants
    before = constants.ENABLE_RAY_CLUSTER
    seen = {}

    def init(**kwargs):
        seen.update(kwargs, env=os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"), constant=constants.ENABLE_RAY_CLUSTER)

    monkeypatch.delenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    assert ray_cluster.init(None, num_cpus=1) is ray
    assert seen == {"include_dashboard": False, "_node_ip_address": "127.0.0.1", "num_cpus": 1, "env": "0",
                    "constant": False}
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ and constants.ENABLE_RAY_CLUSTER == before


# ---------------------------------------------------------------------------------- a two-node cluster
def _wait(check, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not up after {timeout:.0f} s")
        time.sleep(0.2)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def two_nodes():
    """``ray start --head`` plus a second ``ray start --address`` on this machine: the address of a 2-node cluster."""
    if ray.is_initialized():
        ray.shutdown()
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    nodes = [ray_start("--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", temp)]
    try:
        _wait(lambda: _listening(port), "the Ray head")
        nodes.append(ray_start("--address", f"127.0.0.1:{port}"))
        with hermetic_env():
            join(f"127.0.0.1:{port}")
            _wait(lambda: sum(n["Alive"] for n in ray.nodes()) == 2, "the second Ray node")
            yield f"127.0.0.1:{port}"
            ray.shutdown()
    finally:
        for node in reversed(nodes):
            node.send_signal(signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)


@pytest.mark.slow  # starts a two-node Ray cluster
def test_two_node_cluster_gives_the_local_predictions_and_resumes(two_nodes, files, fixed_sizes, local_outcomes,
                                                                  tmp_path, monkeypatch):
    actors = _spy_actors(monkeypatch)
    options = EngineOptions(executor="ray", ray_address=two_nodes, **OPTIONS)
    remote = run_datasets(SPECS, _datasets(files), store_root=tmp_path, weights=files["weights"], options=options)
    assert sorted(actors) == [("ray-cpu:0", [], "cpu"), ("ray-cpu:1", [], "cpu")]  # one CPU actor per node
    _assert_identical(local_outcomes, remote)

    actors.clear()
    again = run_datasets(SPECS, _datasets(files), store_root=tmp_path, weights=files["weights"], options=options)
    assert [o.computed for by in again.values() for o in by.values()] == [0] * 2 * len(SPECS)
    assert len(actors) == 1 and again["laionet"][BROKEN].status == "failed"  # only the failed model is retried


@pytest.mark.parametrize("reply", [b"HTTP/1.1 400 Bad Request\r\n\r\n", None], ids=["http1", "silent"])
def test_a_port_where_no_ray_gcs_listens_is_refused_in_seconds(reply, monkeypatch):
    """ray.init would wait for minutes on a port that accepts TCP but is not a GCS."""
    monkeypatch.setattr(ray_cluster, "CONNECT_TIMEOUT_S", 0.5)
    with _one_reply_server(reply) as address, pytest.raises(ConfigError, match=f"--ray-address {address}: no Ray GCS "
                                                                                "answered there within 0.5 s"):
        ray_cluster.check_reachable(address)


def test_a_grpc_server_passes_the_gcs_check():
    settings = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # what a gRPC server (Ray's GCS) sends first
    with _one_reply_server(settings) as address:
        ray_cluster.check_reachable(address)


@contextlib.contextmanager
def _one_reply_server(reply: bytes | None):
    """A loopback listener that reads the client's first bytes and answers ``reply`` (None: nothing)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        def serve():
            conn, _ = server.accept()
            with conn:
                conn.recv(64)
                if reply is not None:
                    conn.sendall(reply)
                time.sleep(1)

        thread = threading.Thread(target=serve)
        thread.start()
        yield f"127.0.0.1:{server.getsockname()[1]}"
        thread.join()
