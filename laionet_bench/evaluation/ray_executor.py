"""The Ray executor: a plan's waves on a Ray cluster, the store kept by the driver.

The plan is made on the driver as for the local executor, over the cluster's *slots* instead of this
machine's devices (:func:`connect`): one slot per GPU of the cluster (``ray-gpu:0`` …), or one per node
when it has none (``ray-cpu:0`` …). Each slot is served by one actor for the whole run — ``num_gpus=1``
(Ray gives it its own GPU), or pinned to its node without GPUs — that builds each model of its current wave
once (:class:`~.inference.Predictor`), on ``cuda`` when torch sees one there and on ``cpu`` otherwise (GPUs
declared on a CPU machine), and releases them before its next wave.

A round (the waves of one group on distinct slots, :attr:`~.planner.Plan.rounds`) decodes the images its
models lack once per dataset, exactly as locally: one Ray task per batch runs :func:`~.inference.decode_loader`
over the same positions the local DataLoader would batch together, on the driver's node (so only the driver
needs the images; on any node when the driver's has no CPU for Ray, e.g. a head started with
``--num-cpus 0``). Each decoded batch goes from Ray's object store to every actor of the round, which
returns the records (:func:`~.waves.predict_probed`); the driver writes them through each pair's
:class:`~.work.PairWork`, which holds the store's lock, so no node but the driver sees the store. The work
(what to compute, hence resume) is the driver's :func:`~.work.collect_work`, as locally.

Predictions equal the local executor's: the same batches, float32 by default, and the actors run with the
driver's torch thread count (the summation order of a CPU kernel can depend on it). Weights given as local
files must exist at the same path on the actors' nodes.

Ray is the optional ``ray`` extra, imported only here and only when this executor runs.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .. import constants
from ..datasets.base import Dataset
from ..errors import ConfigError
from ..models.footprints import Footprint
from ..models.registry import resolve_data_config
from . import ray_cluster
from .allocator import tune_allocator
from .inference import DecodedBatch, Predictor, decode_loader, release_memory
from .options import EngineOptions
from .planner import Plan, Wave, device_budgets
from .waves import RunContext, _label, _Lane, open_lanes, predict_probed
from .work import failure_reason

__all__ = ["Cluster", "actor_device", "connect", "run_ray"]

logger = logging.getLogger(__name__)

#: Decoded batches in flight per actor of a round (bounds the object store; decoding runs ahead of the forward passes).
IN_FLIGHT_PER_ACTOR = 3


@dataclass(frozen=True)
class Cluster:
    """The slots of a Ray cluster the planner deals waves over, their budgets and their actors' Ray options."""

    devices: tuple[str, ...]
    budgets: Mapping[str, int]
    actor_options: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # slot → .options(...) of its actor


def actor_device(gpu_ids: Sequence) -> str:
    """The torch device of a Ray worker: ``cuda`` when Ray gave it a GPU (its ``CUDA_VISIBLE_DEVICES``) and torch
    sees CUDA, else ``cpu`` (a CPU actor, or a GPU declared on a machine without CUDA)."""
    import torch

    return "cuda" if gpu_ids and torch.cuda.is_available() else "cpu"


def _slot_budget() -> int:
    """A Ray task: the default budget of the device this task got (90% of its GPU's free memory, or half the RAM)."""
    import ray

    device = actor_device(ray.get_gpu_ids())
    return device_budgets([device])[device]


def connect(address: str | None, *, max_memory: float | None = None) -> Cluster:
    """Connect to the cluster at ``address`` (None: start a local Ray, unless this process has one) and list its slots.

    Budgets: ``max_memory`` GiB per slot, else the smallest default budget (:func:`~.planner.device_budgets`)
    measured by one task per slot on the cluster.

    Raises:
        ConfigError: nothing reachable at ``address`` (in :data:`~.ray_cluster.CONNECT_TIMEOUT_S`), or a cluster without CPUs.
        MissingDependencyError: Ray is not installed.
    """
    ray = ray_cluster.init(address)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus:
        options: dict[str, dict[str, Any]] = {f"ray-gpu:{i}": {"num_gpus": 1, "num_cpus": 0} for i in range(gpus)}
    else:
        nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0)
        if not nodes:
            raise ConfigError(f"--ray-address {address or '(local)'}: the Ray cluster has no node with a CPU or GPU")
        options = {f"ray-cpu:{i}": {"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False)}
                   for i, node in enumerate(nodes)}
    # num_cpus=0: an actor must not hold a CPU, which the decode tasks need (by default Ray's actors hold one)
    devices = tuple(options)
    probe = ray.remote(_slot_budget)
    if max_memory is not None:
        budgets = device_budgets(devices, max_memory=max_memory)
    else:
        measured = ray.get([probe.options(**o).remote() for o in options.values()])
        budgets = dict.fromkeys(devices, min(measured))
    logger.info("ray: %d slot(s) (%s), budget %.2f GiB each", len(devices), "one GPU each" if gpus else "one per node",
                min(budgets.values()) / 1024**3)
    return Cluster(devices=devices, budgets=budgets, actor_options=options)


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (to travel back to the driver), else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any exception whose class cannot be rebuilt from its args
        return RuntimeError(f"{type(exc).__name__}: {exc}")


class _WaveActor:
    """Ray actor of one slot: builds the models of each wave it is given once, predicts decoded batches."""

    def __init__(self, options: EngineOptions, weights: Mapping[str, Any] | None, threads: int, allocator: str):
        import ray
        import torch

        tune_allocator(allocator)  # the driver's choice: a worker process is not the CLI's
        torch.set_num_threads(threads)  # the driver's: CPU kernels may sum in another order with other counts
        self.options, self.weights = options, weights
        self.device = actor_device(ray.get_gpu_ids())
        self.predictors: dict[str, Predictor] = {}
        self.probed: dict[str, int | None] = {}
        self.footprints: Mapping[str, Footprint] = {}

    def build(self, specs: Sequence[str], micro_batches: Mapping[str, int],
              footprints: Mapping[str, Footprint]) -> dict[str, dict | BaseException]:
        """Build ``specs`` on this actor's device: ``spec → model info``, or the exception it failed with."""
        self.footprints = footprints
        out: dict[str, dict | BaseException] = {}
        for spec in specs:
            try:
                predictor = Predictor(spec, weights=self.weights, device=self.device, options=self.options,
                                      micro_batch=micro_batches.get(spec))
            except Exception as exc:  # noqa: BLE001 - recorded by the driver as a failed model
                out[spec] = _portable(exc)
                continue
            self.predictors[spec] = predictor
            out[spec] = predictor.model_info
        return out

    def predict(self, batch: DecodedBatch, needs: Mapping[str, np.ndarray]) -> dict[str, list[dict] | BaseException]:
        """Records per model of ``needs`` for ``batch`` (:func:`~.waves.predict_probed`), or its exception."""
        needs = {s: n for s, n in needs.items() if s in self.predictors}
        results = predict_probed(self.predictors, batch, needs, self.device, probed=self.probed,
                                 footprints=self.footprints)
        return {s: _portable(r) if isinstance(r, BaseException) else r for s, r in results.items()}

    def release(self) -> None:
        """Drop this wave's models and give their memory back before the next wave."""
        self.predictors.clear()
        release_memory(self.device)


def _decode(dataset: Dataset, positions: np.ndarray, data_config: Mapping[str, Any],
            options: EngineOptions) -> DecodedBatch:
    """A Ray task: one batch of ``dataset`` at ``positions``, decoded by :func:`~.inference.decode_loader`."""
    loader = decode_loader(dataset, positions, data_config, options=replace(options, workers=0,
                                                                           batch_size=len(positions)),
                           pin_memory=False)
    (raw,) = list(loader)
    return DecodedBatch.collated(raw, dataset)


class _Driver:
    """The driver's side of a Ray run: a long-lived actor per slot, the rounds, the store writes."""

    def __init__(self, ray, cluster: Cluster, ctx: RunContext):
        import torch
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.ray, self.cluster, self.ctx = ray, cluster, ctx
        self.threads = torch.get_num_threads()
        self.actors: dict[str, Any] = {}
        node = ray.get_runtime_context().get_node_id()
        if any(n["NodeID"] == node and n["Resources"].get("CPU", 0) > 0 for n in ray.nodes()):
            placement = {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False)}
        else:  # a head started with --num-cpus 0: decode anywhere, where the images must then be readable too
            logger.warning("ray: the driver's node has no CPU for Ray tasks; decoding on any node, so the images "
                           "must be readable at the same path on every node")
            placement = {}
        self.decode = ray.remote(num_cpus=1, **placement)(_decode)
        self.dataset_refs: dict[str, Any] = {}
        self.died: set[str] = set()  # slots whose actor died in the current try of a round
        self.final = True  # whether a death fails the models (the retry) or only marks its slot (the first try)

    def actor(self, slot: str):
        """The slot's actor, started on first use, and started anew after one died."""
        if slot not in self.actors:
            remote = self.ray.remote(_WaveActor).options(**self.cluster.actor_options.get(slot, {}))
            self.actors[slot] = remote.remote(self.ctx.options, self.ctx.weights, self.threads, constants.ALLOCATOR)
        return self.actors[slot]

    def _get(self, ref, specs: Sequence[str], slot: str) -> dict:
        """``ray.get(ref)``; a task or actor that died (a crashed worker, a lost node) fails the models it served.

        An actor's death on a round's first try fails nothing: the slot is marked (:meth:`run_round` retries the
        round on a new actor, and the store keeps what was written) and its requests answer nothing meanwhile.
        """
        if slot in self.died:
            return {}
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayActorError as exc:
            self.actors.pop(slot, None)  # never reused: a later wave on this slot gets a new actor
            if not self.final:
                self.died.add(slot)
                logger.warning("ray: the actor of %s died (%s); its round is retried on a new actor", slot,
                               failure_reason(exc))
                return {}
            return dict.fromkeys(specs, _portable(exc))
        except self.ray.exceptions.RayError as exc:
            return dict.fromkeys(specs, _portable(exc))

    def run_round(self, waves: Sequence[Wave], numbers: Sequence[int]) -> None:
        """Waves of one group on distinct slots, at the same time, fed by one decode per dataset (as locally).

        When an actor dies, the round runs once more, on a new actor for that slot: each lane then computes only
        the rows its models still lack (the store re-read under its lock). A second death fails those models.
        """
        self.died.clear()
        self.final = False
        self._run_round(waves, numbers)
        if self.died:
            self.died.clear()
            self.final = True
            self._run_round(waves, numbers)
        self.final = True

    def _run_round(self, waves: Sequence[Wave], numbers: Sequence[int]) -> None:
        ctx = self.ctx
        with contextlib.ExitStack() as stack:
            lanes = open_lanes(waves, numbers, ctx, stack)
            if not lanes:
                return
            actors = [self.actor(lane.wave.device) for lane in lanes]
            plan = ctx.plan
            builds: list[Any] | None = [actor.build.remote(lane.specs(), dict(plan.micro_batches),
                                         {s: plan.footprints[s] for s in lane.specs() if s in plan.footprints})
                      for lane, actor in zip(lanes, actors, strict=True)]
            try:
                for name in ctx.datasets:
                    if any(lane.needed(name) is not None and lane.wave.device not in self.died for lane in lanes):
                        self._dataset(lanes, actors, name, builds)
                        builds = None
            finally:
                for actor in actors:
                    actor.release.remote()

    def _built(self, lanes: Sequence[_Lane], builds: Sequence) -> None:
        for lane, ref in zip(lanes, builds, strict=True):
            for spec, result in self._get(ref, lane.specs(), lane.wave.device).items():
                lane.built(spec, result)

    def _dataset(self, lanes: list[_Lane], actors: list, name: str, builds: Sequence | None) -> None:
        """One decode of the images any lane lacks in dataset ``name``, each batch sent to every lane's actor."""
        ctx = self.ctx
        dataset = ctx.datasets[name]
        needed = np.flatnonzero(np.logical_or.reduce([m for m in (lane.needed(name) for lane in lanes) if m is not None]))
        size = ctx.options.batch_size
        chunks = iter([needed[i:i + size] for i in range(0, len(needed), size)])  # the local DataLoader's batches
        if name not in self.dataset_refs:
            self.dataset_refs[name] = self.ray.put(dataset)
        config = resolve_data_config(lanes[0].wave.models[0])
        window = IN_FLIGHT_PER_ACTOR * len(lanes)
        pending: deque[list] = deque()  # [positions, decoded batch ref, [(lane, specs, records ref)] or None]

        def decode_more(ready: bool) -> None:
            while len(pending) < window and (chunk := next(chunks, None)) is not None:
                ref = self.decode.remote(self.dataset_refs[name], chunk, config, ctx.options)
                pending.append([chunk, ref, self._predict(lanes, actors, name, chunk, ref) if ready else None])

        decode_more(ready=builds is None)  # decoding starts before the builds end, as the local DataLoader's workers do
        if builds is not None:
            self._built(lanes, builds)
            for entry in pending:
                entry[2] = self._predict(lanes, actors, name, entry[0], entry[1])
        with ctx.progress.wave_bar(len(needed), _label(ctx, dataset, lanes)) as bar:
            while pending and any(lane.alive(name) and lane.wave.device not in self.died for lane in lanes):
                chunk, _, requests = pending.popleft()
                for lane, specs, ref in requests:
                    lane.record(name, self._get(ref, specs, lane.wave.device))
                bar.update(len(chunk))
                decode_more(ready=True)

    def _predict(self, lanes: Sequence[_Lane], actors: Sequence, name: str, chunk: np.ndarray, batch_ref) -> list:
        """Ask every lane's actor for the records its ready models lack in one batch: ``[(lane, specs, ref)]``."""
        requests = []
        for lane, actor in zip(lanes, actors, strict=True):
            needs = lane.needs(name, chunk) if lane.wave.device not in self.died else None
            if needs:
                requests.append((lane, list(needs), actor.predict.remote(batch_ref, needs)))
        return requests


def run_ray(plan: Plan, ctx: RunContext, *, cluster: Cluster | None = None) -> None:
    """Every round of ``plan`` on the Ray cluster (the executor of :func:`~.engine.run_plan`; see the module docstring).

    Args:
        plan: planned over ``cluster.devices`` (:func:`connect`); a wave's device names its slot.
        ctx: the run, as for :func:`~.waves.run_local`; ``ctx.options.ray_address`` names the cluster.
        cluster: the slots (default: :func:`connect` to ``ctx.options.ray_address``).
    """
    if not plan.waves:
        return
    cluster = cluster or connect(ctx.options.ray_address, max_memory=ctx.options.max_memory)
    ray = ray_cluster.ray_module()
    driver = _Driver(ray, cluster, ctx)
    try:
        for indices in plan.rounds:
            driver.run_round([plan.waves[i] for i in indices], [i + 1 for i in indices])
    finally:
        for actor in driver.actors.values():
            ray.kill(actor)
