import hashlib
import json
import socket
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from laionet_bench.errors import ConfigError
from laionet_bench.rebuild import RebuildConfig, resolve_parts, run_pipeline
from laionet_bench.rebuild.executors import _actor_device, _textsim_actors
from laionet_bench.rebuild.steps import read_step
from laionet_bench.rebuild.textsim import caption_similarities

from .fakes.laion import make_tiny_openclip, write_laion_part
from .local_ray import hermetic_ray

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'laionet-bench[ray]'")

CAPTIONS = ["a tench in a net", "a tench in a net", "goldfish bowl", "a sea lion", "lion at the zoo",
            "my Labrador retriever", None, "nothing", "king penguin colony", "tench, goldfish"]


class HashEncoder:
    """Deterministic embeddings from a text's sha256, unlike any real text tower's."""

    name = "hash"

    def encode(self, texts):
        raw = np.array([list(hashlib.sha256(t.encode()).digest()[:8]) for t in texts], np.float32).reshape(-1, 8)
        return raw / np.linalg.norm(raw, axis=1, keepdims=True)


class LockedEncoder(HashEncoder):
    """An encoder that cannot be pickled."""

    def __init__(self):
        self.lock = threading.Lock()


class RecordingFactory:
    """A factory of :class:`HashEncoder` that records, per call, the Ray actor and the GPUs Ray gave it."""

    def __init__(self, folder: Path):
        self.folder = folder

    def __call__(self):
        actor = ray.get_runtime_context().get_actor_id()
        (self.folder / f"{actor}.json").write_text(json.dumps(ray.get_gpu_ids()))
        return HashEncoder()


class ThreadsFactory(RecordingFactory):
    """A factory of :class:`HashEncoder` that records, per call, torch's thread count in its Ray actor."""

    def __call__(self):
        import torch

        actor = ray.get_runtime_context().get_actor_id()
        (self.folder / f"{actor}.json").write_text(json.dumps(torch.get_num_threads()))
        return HashEncoder()


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module: 2 CPUs and 2 GPUs declared on this CPU machine."""
    with hermetic_ray(num_cpus=2, num_gpus=2):
        yield


@pytest.fixture
def laion_parts(tmp_path):
    for i in range(3):
        write_laion_part(tmp_path / "laion" / f"part-0000{i}.parquet", CAPTIONS[i:] + CAPTIONS[:i])
    return str(tmp_path / "laion" / "*.parquet")


def config_for(parts, work, **kw):
    return RebuildConfig(**{"parts": [parts], "work_dir": str(work), "threshold": -1.0, "top_per_class": 2,
                            "variant": "tiny", **kw})


def run_both(config_of, *, encoders=None) -> dict[str, dict[str, pd.DataFrame]]:
    """The index variants the local and the Ray executor write for ``config_of(executor)``."""
    outputs = {}
    for executor, encoder in (encoders or {"local": None, "ray": None}).items():
        config = config_of(executor)
        report = run_pipeline(config, executor=executor, encoder=encoder)
        outputs[executor] = {name: pd.read_parquet(config.output_dir / "data" / f"{name}.parquet")
                             for name in report.variants}
    return outputs


def assert_same(outputs):
    assert outputs["local"].keys() == outputs["ray"].keys() == {"tiny", "tiny_top2"}
    assert len(outputs["local"]["tiny"]) == 3 * 6
    for name, frame in outputs["local"].items():
        pd.testing.assert_frame_equal(frame, outputs["ray"][name])


@pytest.mark.slow  # the tiny open_clip loads in each of the two actors
def test_ray_executor_gives_the_local_executor_index(local_ray, laion_parts, tmp_path):
    encoder = make_tiny_openclip(tmp_path / "tiny")  # by name: each actor loads it, on cpu (the GPUs are fake)
    assert_same(run_both(lambda executor: config_for(laion_parts, tmp_path / executor, encoder=encoder)))


def test_one_encoder_actor_per_gpu_builds_the_encoder_from_the_given_factory(local_ray, laion_parts, tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()
    missing = f"openclip:local-dir:{tmp_path / 'missing'}"  # fails if an actor loads by name instead
    outputs = run_both(lambda executor: config_for(laion_parts, tmp_path / executor, encoder=missing),
                       encoders={"local": HashEncoder, "ray": RecordingFactory(calls)})
    assert_same(outputs)
    records = sorted(json.loads(p.read_text()) for p in calls.glob("*.json"))
    assert records == [[0], [1]]  # two actors, one per (fake) GPU, each building its encoder once


def test_an_encoder_object_is_shipped_to_the_actors(local_ray, laion_parts, tmp_path):
    config = config_for(laion_parts, tmp_path / "ray", encoder=f"openclip:local-dir:{tmp_path / 'missing'}")
    run_pipeline(config, executor="ray", encoder=HashEncoder(), steps=["match", "textsim"])
    for part in resolve_parts(config.parts):
        rows = read_step(config, "textsim", part)
        expected = caption_similarities(rows["caption"].tolist(), rows["wnid"].tolist(), HashEncoder())
        np.testing.assert_array_equal(rows["similarity"].to_numpy(), expected)


def test_an_encoder_that_cannot_be_pickled_is_a_config_error(local_ray, laion_parts, tmp_path):
    with pytest.raises(ConfigError, match="LockedEncoder.*cannot be pickled.*pass a factory"):
        run_pipeline(config_for(laion_parts, tmp_path), executor="ray", encoder=LockedEncoder())
    assert not (tmp_path / "match").exists()


def test_actor_count_and_options():
    # num_cpus=0: with 2 CPUs and 2 GPUs, actors holding a CPU each left the match tasks none (a hang)
    assert _textsim_actors(2.0, parts=3, cpu_actors=1, node_cpus=[2]) == (2, {"num_gpus": 1, "num_cpus": 0}, None)
    assert _textsim_actors(8.0, parts=3, cpu_actors=1) == (3, {"num_gpus": 1, "num_cpus": 0}, None)  # no idle actor
    spread = {"num_cpus": 0, "scheduling_strategy": "SPREAD"}  # reserving the node's cores would starve the matches
    assert _textsim_actors(0.5, parts=3, cpu_actors=2, node_cpus=[16]) == (2, spread, 8)  # two share one node
    assert _textsim_actors(0, parts=3, cpu_actors=2, node_cpus=[16, 8, 0]) == (2, spread, 8)  # one per node
    assert _textsim_actors(0, parts=3, cpu_actors=1, node_cpus=[6]) == (1, spread, 6)
    assert _textsim_actors(0, parts=9, cpu_actors=5, node_cpus=[2, 2]) == (5, spread, 1)  # at least one thread
    assert _textsim_actors(0, parts=3, cpu_actors=1) == (1, spread, None)  # no CPU node known: Ray's default


def test_a_cpu_actor_runs_torch_on_the_threads_it_is_given(tmp_path):
    """The actor's constructor, called directly (no Ray): it sets torch's threads only when given some."""
    import torch

    from laionet_bench.rebuild.executors import _TextsimActor

    before = torch.get_num_threads()
    try:
        _TextsimActor(config_for("unused", tmp_path), HashEncoder(), "default", threads=3)
        assert torch.get_num_threads() == 3
        _TextsimActor(config_for("unused", tmp_path), HashEncoder(), "default")  # a GPU actor: left as it is
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_actor_device_uses_cuda_only_with_a_gpu_torch_sees(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _actor_device([0]) == "cpu"  # a GPU declared on a CPU machine
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _actor_device([1]) == "cuda" and _actor_device([]) == "cpu"


def test_bad_cpu_actor_count_fails_before_any_work(laion_parts, tmp_path):
    with pytest.raises(ConfigError, match="--cpu-actors 0"):
        run_pipeline(config_for(laion_parts, tmp_path), executor="ray", cpu_actors=0)
    assert not tmp_path.joinpath("match").exists()


def test_an_unreachable_address_fails_in_seconds_before_any_work(laion_parts, tmp_path):
    """The rebuild joins a cluster as ``run`` does (one connection path): a closed port is one line, not minutes."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{closed.getsockname()[1]}"
    with pytest.raises(ConfigError, match=f"--ray-address {address}: no Ray cluster reachable there"):
        run_pipeline(config_for(laion_parts, tmp_path), executor="ray", address=address)
    assert not tmp_path.joinpath("match").exists()


@pytest.fixture
def cpu_only_ray():
    """A local Ray without GPUs. It replaces the module's ``local_ray``, so its tests come last in this file."""
    if ray.is_initialized():
        ray.shutdown()
    with hermetic_ray(num_cpus=2):
        yield


@pytest.mark.slow  # a Ray of its own
def test_cpu_actors_run_torch_on_the_node_cores(cpu_only_ray, tmp_path, laion_parts):
    """Without GPUs, the text-encoder actor runs torch on the node's 2 declared CPUs, not Ray's one thread."""
    calls = tmp_path / "threads"
    calls.mkdir()
    config = config_for(laion_parts, tmp_path / "ray", encoder=f"openclip:local-dir:{tmp_path / 'missing'}")
    run_pipeline(config, executor="ray", encoder=ThreadsFactory(calls), steps=["match", "textsim"])
    assert [json.loads(p.read_text()) for p in calls.glob("*.json")] == [2]  # one actor (the default), 2 threads


def test_match_tasks_declare_their_memory_and_one_polars_thread():
    from laionet_bench.rebuild.executors import match_task_options

    options = match_task_options(RebuildConfig(parts=["p"], work_dir="w", batch_rows=100_000))
    assert options["memory"] == 256 * 2**20 + 100_000 * 1024  # above the 344 MiB measured at this batch size
    assert options["runtime_env"] == {"env_vars": {"POLARS_MAX_THREADS": "1"}}
