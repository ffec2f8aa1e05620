"""The local executor: a plan's waves on this machine's devices, each model built once for every dataset.

A *round* is the waves of one preprocessing group that run at the same time, one per device (the planner
deals a group's waves round-robin over the devices). For each dataset a round decodes the images that any
of its models lacks once — one DataLoader, pinned memory when a CUDA device consumes it — and every device
consumes the same batches in its own worker thread, copying each batch to its device once
(``non_blocking``). With one device everything runs in the caller's thread. The models of a round are built
once, on their device, after the first dataset's decoding workers have started, serve every dataset, and
are released (``torch.cuda.empty_cache()`` on CUDA) before the next round.

:func:`run_wave` is one wave on one device, the unit another executor can schedule; :func:`run_local`
is the local scheduling of a whole plan. Both write through the :class:`~.work.PairWork` of each (model,
dataset) pair, which holds the store's lock while its wave runs. A lane's bookkeeping (open the stores,
what each model needs of a batch, record a build or a batch's records) is separate from its compute, so the
Ray executor (:mod:`.ray_executor`) keeps the bookkeeping on the driver and the compute on its actors.

Each model's first batch is the planner's probe (:func:`predict_probed`): on CUDA its peak memory is
measured and compared with the planned activations, and a far-off estimate is logged.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._progress import progress_bar
from ..datasets.base import Dataset
from ..models.footprints import GIB, Footprint, measure_peak_bytes
from ..models.registry import resolve_data_config
from .inference import DecodedBatch, Predictor, decode_loader, predict_batch, release_memory
from .options import EngineOptions
from .planner import Plan, Wave
from .work import PairWork, fail

__all__ = ["PROBE_TOLERANCE", "Progress", "RunContext", "open_lanes", "predict_probed", "run_local", "run_round", "run_wave"]

logger = logging.getLogger(__name__)

#: Decoded batches a device's thread may have queued ahead of it (bounds host memory; the DataLoader prefetches too).
QUEUED_BATCHES = 2
#: A probe batch whose measured activations differ from the planner's estimate by more than this factor is logged.
PROBE_TOLERANCE = 1.5


class Progress:
    """One overall bar (images × models done across every wave, with rate and ETA) beside each wave's bar."""

    def __init__(self, total: int):
        self._lock = threading.Lock()
        self.bar = progress_bar(total=total, desc="all waves", unit="img", position=0)

    def advance(self, n: int) -> None:
        with self._lock:
            self.bar.update(n)

    def shrink(self, n: int) -> None:
        """Work that will not be done after all (stored meanwhile by another process, or its model failed)."""
        if n:
            with self._lock:
                self.bar.total -= n
                self.bar.refresh()

    def wave_bar(self, total: int, label: str):
        return progress_bar(total=total, desc=label, unit="img", position=1, leave=False)

    def close(self) -> None:
        self.bar.close()


@dataclass
class RunContext:
    """What every wave of one run shares."""

    datasets: Mapping[str, Dataset]  # keyed like the work's pairs
    work: Mapping[tuple[str, str], PairWork]  # (spec, dataset key) → its pair
    store_root: Path
    weights: Mapping[str, Any] | None
    options: EngineOptions
    progress: Progress
    plan: Plan  # for the bars' labels and each model's planned micro-batch


def predict_probed(predictors: Mapping[str, Predictor], batch: DecodedBatch, needs: Mapping[str, np.ndarray],
                   device: str, *, probed: dict[str, int | None],
                   footprints: Mapping[str, Footprint]) -> dict[str, list[dict] | Exception]:
    """:func:`~.inference.predict_batch`, with each model's first batch run alone as the planner's probe.

    That batch is measured by :func:`~laionet_bench.models.footprints.measure_peak_bytes` (the device bytes
    its forward passes allocate: CUDA only, elsewhere it just runs), kept in ``probed[spec]`` and compared
    with the activations the plan estimated (``footprints``): an estimate off by more than
    :data:`PROBE_TOLERANCE` is logged, a warning when the model needs more than planned.
    """
    out: dict[str, list[dict] | Exception] = {}
    rest = dict(needs)
    for spec in [s for s in needs if s not in probed]:
        one = {spec: rest.pop(spec)}

        def forward(one: Mapping[str, np.ndarray] = one) -> None:
            out.update(predict_batch(predictors, batch, one, device))

        peak = probed[spec] = measure_peak_bytes(forward, device=device)
        if peak is not None and spec in footprints and not isinstance(out.get(spec), Exception):
            _compare_probe(footprints[spec], peak, rows=int((one[spec] & batch.ok).sum()), device=device)
    if rest:
        out.update(predict_batch(predictors, batch, rest, device))
    return out


def _compare_probe(planned: Footprint, measured: int, *, rows: int, device: str) -> None:
    """Log a measured probe against the planned activations for as many images (at most the micro-batch)."""
    if planned.batch_size is not None:
        planned = planned.at_batch(min(rows, planned.batch_size))
    estimate = max(planned.activation_bytes, 1)
    text = (f"{planned.spec}: probe batch of {rows} image(s) on {device} allocated {measured / GIB:.3f} GiB, "
            f"the plan estimated {estimate / GIB:.3f} GiB of activations")
    if measured > PROBE_TOLERANCE * estimate:
        logger.warning("%s: the wave may exceed its budget (lower --batch-size or --max-memory if it runs out of "
                       "memory)", text)
    elif measured * PROBE_TOLERANCE < estimate:
        logger.info("%s (an overestimate: a larger --max-memory would pack more models per wave)", text)
    else:
        logger.debug("%s", text)


class _Lane:
    """One wave on its device: its models, built once and fed the batches of every dataset."""

    def __init__(self, wave: Wave, number: int, ctx: RunContext):
        self.wave, self.number, self.ctx, self.device = wave, number, ctx, wave.device
        self.pairs: dict[str, dict[str, PairWork]] = {}  # dataset key → spec → pair with rows to compute
        self.left: dict[tuple[str, str], int] = {}  # rows still to compute per pair (for the overall bar)
        self.predictors: dict[str, Predictor] = {}
        self.ready: set[str] = set()  # the models built (here, or on the actor of a remote executor)
        self.probed: dict[str, int | None] = {}  # spec → its probe batch's measured bytes (predict_probed)

    def open(self, stack: contextlib.ExitStack) -> None:
        """Lock the stores of the pairs with work and read what each lacks now."""
        ctx = self.ctx
        for name, dataset in ctx.datasets.items():
            for spec in self.wave.models:
                pair = ctx.work.get((spec, name))
                if pair is None or not pair.ok or not pair.todo:
                    continue
                missing = pair.open(ctx.store_root, dataset, stack, ctx.options)
                ctx.progress.shrink(pair.todo - missing)
                if missing:
                    self.pairs.setdefault(name, {})[spec] = pair
                    self.left[spec, name] = missing

    def needed(self, name: str) -> np.ndarray | None:
        masks = [p.missing for p in self.pairs.get(name, {}).values() if p.ok and p.missing is not None]
        return np.logical_or.reduce(masks) if masks else None

    def alive(self, name: str) -> bool:
        return any(p.ok for p in self.pairs.get(name, {}).values())

    def _fail(self, spec: str, name: str, exc: BaseException) -> None:
        fail(self.pairs[name][spec].outcome, exc)
        self.ctx.progress.shrink(self.left.pop((spec, name), 0))

    def specs(self) -> list[str]:
        """The models with work in this wave, in its order."""
        return list(dict.fromkeys(spec for pairs in self.pairs.values() for spec in pairs))

    def built(self, spec: str, result: Mapping[str, Any] | BaseException) -> bool:
        """Record one model's build, here or on a remote actor: its info (into every store of the model) or its
        failure, on every dataset. Returns whether the model is ready."""
        if not isinstance(result, BaseException):
            try:
                for name in self.ctx.datasets:
                    pair = self.ctx.work.get((spec, name))
                    if pair is not None:
                        pair.outcome.model_info = dict(result)
                        if pair.store is not None:
                            pair.store.set_model_info(dict(result))
                self.ready.add(spec)
                return True
            except Exception as exc:  # noqa: BLE001 - e.g. its store cannot be written: the model fails
                result = exc
        for name, pairs in self.pairs.items():
            if spec in pairs:
                self._fail(spec, name, result)
        return False

    def build(self) -> None:
        """Build each model with work once, on this lane's device; a failure fails the model on every dataset."""
        for spec in self.specs():
            try:
                predictor = Predictor(spec, weights=self.ctx.weights, device=self.device, options=self.ctx.options,
                                      micro_batch=self.ctx.plan.micro_batches.get(spec))
            except Exception as exc:  # noqa: BLE001 - recorded as a failed model
                self.built(spec, exc)
                continue
            if self.built(spec, predictor.model_info):
                self.predictors[spec] = predictor

    def needs(self, name: str, positions: np.ndarray) -> dict[str, np.ndarray]:
        """``spec → bool per row`` of the batch at dataset ``positions``, for each ready model lacking some of them."""
        needs = {s: p.missing[positions] for s, p in self.pairs.get(name, {}).items()
                 if p.ok and s in self.ready and p.missing is not None}
        return {s: need for s, need in needs.items() if need.any()}

    def record(self, name: str, results: Mapping[str, list[dict] | BaseException]) -> None:
        """Store each model's records of one batch, or fail the model with its exception."""
        for spec, result in results.items():
            pair = self.pairs[name][spec]
            if not pair.ok:
                continue  # failed meanwhile (a remote executor's results can trail a failure)
            if isinstance(result, BaseException):
                self._fail(spec, name, result)
                continue
            try:
                pair.append(result)
            except Exception as exc:  # noqa: BLE001 - e.g. a full disk under one store: that pair fails
                self._fail(spec, name, exc)
                continue
            self.left[spec, name] -= len(result)
            self.ctx.progress.advance(len(result))

    def feed(self, name: str, batch: DecodedBatch) -> None:
        """Predict ``batch`` with every model that lacks some of its rows, and store the records."""
        needs = self.needs(name, batch.positions)
        if needs:
            self.record(name, predict_probed(self.predictors, batch, needs, self.device, probed=self.probed,
                                             footprints=self.ctx.plan.footprints))

    def release(self) -> None:
        """Drop the models; a full garbage collection only when one survives (in a reference cycle)."""
        modules = [weakref.ref(p.model.module) for p in self.predictors.values()]
        self.predictors.clear()
        release_memory(self.device, collect=any(ref() is not None for ref in modules))


class _Inline:
    """Runs a lane's steps in the caller's thread (one device)."""

    def submit(self, step: Callable, *args) -> None:
        step(*args)

    def close(self) -> BaseException | None:
        return None


class _Worker:
    """Runs a lane's steps in order in its own thread; after an error it only drains (so no put blocks)."""

    def __init__(self, device: str):
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUED_BATCHES)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, args=(device,), name=f"laionet-{device}", daemon=True)
        self.thread.start()

    def _loop(self, device: str) -> None:
        try:
            if device.startswith("cuda"):
                import torch

                torch.cuda.set_device(device)  # this thread's default device and stream
        except BaseException as exc:  # noqa: BLE001 - re-raised in the driving thread; the loop still drains
            self.error = exc
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    item[0](*item[1:])
                except BaseException as exc:  # noqa: BLE001 - re-raised in the driving thread
                    self.error = exc

    def submit(self, step: Callable, *args) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((step, *args))

    def close(self) -> BaseException | None:
        self.queue.put(None)
        self.thread.join()
        return self.error


def _label(ctx: RunContext, dataset: Dataset, lanes: Sequence[_Lane]) -> str:
    numbers = f"{lanes[0].number}" if len(lanes) == 1 else f"{lanes[0].number}-{lanes[-1].number}"
    size = lanes[0].wave.preprocess[0][-1]
    return f"{dataset.name} wave {numbers}/{len(ctx.plan.waves)} {size}px x{sum(len(lane.wave.models) for lane in lanes)}"


def _decode_and_feed(lanes: list[_Lane], runners: list, name: str, ctx: RunContext, build: bool) -> None:
    """One decode of the images any lane lacks in dataset ``name``, each batch handed to every lane."""
    masks = [m for m in (lane.needed(name) for lane in lanes) if m is not None]
    if not masks:
        return
    dataset = ctx.datasets[name]
    needed = np.flatnonzero(np.logical_or.reduce(masks))
    pin = any(lane.device.startswith("cuda") for lane in lanes)
    loader = decode_loader(dataset, needed, resolve_data_config(lanes[0].wave.models[0]), options=ctx.options,
                           pin_memory=pin)
    batches = iter(loader)  # the workers start decoding now, hiding the first batches behind the model builds
    if build:
        for lane, runner in zip(lanes, runners, strict=True):
            runner.submit(lane.build)
    with ctx.progress.wave_bar(len(needed), _label(ctx, dataset, lanes)) as bar:
        for raw in batches:
            if not any(lane.alive(name) for lane in lanes):
                break  # (images needed only by models that failed were decoded for nothing: rare and harmless)
            batch = DecodedBatch.collated(raw, dataset)
            for lane, runner in zip(lanes, runners, strict=True):
                runner.submit(lane.feed, name, batch)
            bar.update(len(batch))


def open_lanes(waves: Sequence[Wave], numbers: Sequence[int], ctx: RunContext,
               stack: contextlib.ExitStack) -> list[_Lane]:
    """One lane per wave of a round, opened on ``stack`` (the local and the Ray executor alike); the lanes
    whose work is all stored already are dropped."""
    lanes = [_Lane(wave, number, ctx) for wave, number in zip(waves, numbers, strict=True)]
    for lane in lanes:
        lane.open(stack)
    return [lane for lane in lanes if lane.pairs]


def run_round(waves: Sequence[Wave], numbers: Sequence[int], ctx: RunContext) -> None:
    """Waves of one group on distinct devices, at the same time, fed by one decode stream per dataset."""
    with contextlib.ExitStack() as stack:
        lanes = open_lanes(waves, numbers, ctx, stack)
        if not lanes:
            return
        runners = [_Inline()] if len(lanes) == 1 else [_Worker(lane.device) for lane in lanes]
        try:
            built = False
            for name in ctx.datasets:
                if any(lane.needed(name) is not None for lane in lanes):
                    _decode_and_feed(lanes, runners, name, ctx, build=not built)
                    built = True
        finally:
            errors = [runner.close() for runner in runners]
            for lane in lanes:
                lane.release()
        for error in errors:
            if error is not None:
                raise error


def run_wave(wave: Wave, ctx: RunContext, *, number: int = 1) -> None:
    """One wave on its device: build its models once, feed them every dataset, release them."""
    run_round([wave], [number], ctx)


def run_local(plan: Plan, ctx: RunContext) -> None:
    """Every round of ``plan``, one after the other, on this machine."""
    for indices in plan.rounds:
        run_round([plan.waves[i] for i in indices], [i + 1 for i in indices], ctx)
