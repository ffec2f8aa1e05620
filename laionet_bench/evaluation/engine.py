"""Batched inference over several datasets: a plan of model waves, each model built once per run.

Models whose data configs agree on what decides the pixels (input size, interpolation, crop pct, crop
mode — :func:`models.preprocess_key`) form a group. :func:`run_datasets` runs in three steps:

1. **List the work** (:func:`~.work.collect_work`): per (model, dataset) pair its run key and the rows its
   store lacks, so a re-run resumes and a complete pair costs nothing. With ``options.shard`` only this
   shard's pairs (:func:`~.work.shard_pairs`).
2. **Plan** (:func:`plan_run`): the models with work, packed per group into waves that fit
   ``options.max_memory`` GiB per device (default: :func:`~.planner.device_budgets`) by their footprints
   (:mod:`laionet_bench.models.footprints`), dealt over :func:`resolve_devices`'s devices.
3. **Execute** (:func:`run_plan`): each wave builds its models once, on its device, decodes the images
   they lack once per dataset (uint8, in DataLoader workers started before the models are built), feeds
   every model (each normalises with its own mean/std) and releases them before the next wave; the
   waves of a group on several devices run at once from one decode stream (:mod:`.waves`). With
   ``options.executor == "ray"`` the waves are planned over a Ray cluster's slots and run there, the
   store still written here (:mod:`.ray_executor`).

A model that fails to build or run is recorded as failed with the reason; the others go on. A CUDA
out-of-memory error halves that model's micro-batch and retries. Unreadable images are recorded
(``ok = False`` with the error) once and never stop a run. :func:`run_models` is the one-dataset case.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..datasets.base import Dataset
from ..models.custom import as_model_specs
from ..models.footprints import estimate_footprint
from .inference import make_decoder as make_decoder
from .options import AMP_DTYPES as AMP_DTYPES
from .options import EngineOptions as EngineOptions
from .options import default_device as default_device
from .options import parse_shard as parse_shard
from .options import resolve_device as resolve_device
from .options import resolve_devices as resolve_devices
from .planner import Plan, device_budgets, plan_waves
from .waves import Progress, RunContext, run_local
from .work import ModelOutcome as ModelOutcome
from .work import PairWork, collect_work, shard_pairs

__all__ = ["AMP_DTYPES", "EngineOptions", "ModelOutcome", "Targets", "default_device", "make_decoder",
           "parse_shard", "plan_run", "plan_targets", "resolve_device", "resolve_devices", "run_datasets", "run_models",
           "run_plan"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Targets:
    """Where a run's waves go: the devices the planner deals them over, their budgets, the executor."""

    devices: Sequence[str]
    budgets: Mapping[str, int] | None  # None: device_budgets(devices, max_memory=...)
    executor: Callable[[Plan, RunContext], None]


def plan_targets(options: EngineOptions) -> Targets:
    """This machine's devices (``options.device``) and :func:`~.waves.run_local`, or with ``executor="ray"``
    the slots of the cluster at ``options.ray_address`` (connecting to it: an unreachable address is a
    ConfigError in seconds) and :func:`~.ray_executor.run_ray`."""
    if options.executor == "ray":
        from .ray_executor import connect, run_ray

        cluster = connect(options.ray_address, max_memory=options.max_memory)
        return Targets(cluster.devices, cluster.budgets, functools.partial(run_ray, cluster=cluster))
    return Targets(resolve_devices(options.device), None, run_local)


def plan_run(specs: Sequence[str], *, options: EngineOptions, devices: Sequence[str],
             budgets: Mapping[str, int] | None = None) -> Plan:
    """The waves of ``specs``: footprints from :func:`~laionet_bench.models.footprints.estimate_footprint` at
    the run's batch size and dtype, packed within ``budgets`` (bytes per device; None: ``options.max_memory``
    GiB per device, else the default budgets of :func:`~.planner.device_budgets`, 90% of each CUDA device's
    free memory, half the RAM on CPU)."""
    footprint = functools.partial(estimate_footprint, batch_size=options.batch_size, dtype=options.dtype)
    return plan_waves(specs, footprint=footprint, devices=devices,
                      budgets=budgets if budgets is not None else device_budgets(devices, max_memory=options.max_memory))


def run_plan(plan: Plan, datasets: Mapping[str, Dataset], work: Mapping[tuple[str, str], PairWork], *,
             store_root: str | Path, weights: Mapping[str, Any] | None, options: EngineOptions,
             executor: Callable[[Plan, RunContext], None] = run_local) -> None:
    """Execute ``plan``: log its totals, then let ``executor`` run every wave, writing each pair's store.

    Args:
        plan: the waves (:func:`plan_run`); each model in one wave.
        datasets: the datasets, keyed like ``work``.
        work: ``(spec, dataset key) → PairWork`` (:func:`~.work.collect_work`); pairs absent are not run.
        executor: ``(plan, context) → None``; default :func:`~.waves.run_local` (this machine's devices).
    """
    todo = sum(p.todo for p in work.values() if p.ok)
    stored = sum(len(datasets[name]) - p.todo for (_, name), p in work.items() if p.ok)
    logger.info("plan: %d model(s) in %d wave(s) over %d group(s) on %s; each image decoded %d time(s) per dataset "
                "(%d dataset(s)); %d prediction(s) to compute, %d stored", sum(len(w.models) for w in plan.waves),
                len(plan.waves), plan.groups, ",".join(dict.fromkeys(w.device for w in plan.waves)) or "-",
                plan.decodes_per_image, len(datasets), todo, stored)
    progress = Progress(todo)
    try:
        executor(plan, RunContext(datasets=datasets, work=work, store_root=Path(store_root), weights=weights,
                                   options=options, progress=progress, plan=plan))
    finally:
        progress.close()


def run_datasets(specs: Sequence[str], datasets: Mapping[str, Dataset], *, store_root: str | Path,
                 weights: Mapping[str, str | Path] | None = None,
                 options: EngineOptions | None = None) -> dict[str, dict[str, ModelOutcome]]:
    """Predict every listed sample of every dataset with every spec, skipping what the store holds.

    Each model is built once for all datasets. ``specs`` may hold a user's own module (a
    :class:`~laionet_bench.models.custom.CustomModel` or ``torch.nn.Module``), keyed by its ``custom:``
    spec in the result. Returns ``{dataset key: {spec: ModelOutcome}}`` (input
    order); with ``options.shard`` only this shard's pairs. Never raises for one model's failure; bad
    options (devices, shard, budget, a model alone over the budget) raise :class:`ConfigError` first.
    """
    options = options or EngineOptions()
    options.check()
    specs = as_model_specs(specs)
    targets = plan_targets(options)
    shard = options.shard
    pairs = shard_pairs(specs, datasets, shard) if shard else None
    if shard and pairs is not None:
        logger.info("shard %d/%d: %d of %d (model, dataset) pair(s)", *shard, len(pairs),
                    len(specs) * len(datasets))
    work = collect_work(specs, datasets, store_root=store_root, weights=weights, options=options, pairs=pairs)
    busy = [s for s in specs if any(work[s, n].ok and work[s, n].todo for n in datasets if (s, n) in work)]
    plan = plan_run(busy, options=options, devices=targets.devices, budgets=targets.budgets)
    run_plan(plan, datasets, work, store_root=store_root, weights=weights, options=options, executor=targets.executor)
    return {name: {s: work[s, name].outcome for s in specs if (s, name) in work} for name in datasets}


def run_models(specs: Sequence[str], dataset: Dataset, *, store_root: str | Path,
               weights: Mapping[str, str | Path] | None = None, options: EngineOptions | None = None) -> dict[str, ModelOutcome]:
    """:func:`run_datasets` on one dataset: ``{spec: ModelOutcome}`` (input order)."""
    return run_datasets(specs, {dataset.name: dataset}, store_root=store_root, weights=weights, options=options)[dataset.name]
