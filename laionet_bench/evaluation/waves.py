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
dataset) pair, which holds the store's lock while its wave runs.
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

from ..datasets.base import Dataset
from ..models.registry import resolve_data_config
from .inference import DecodedBatch, Predictor, decode_loader, predict_batch, release_memory
from .options import EngineOptions
from .planner import Plan, Wave
from .work import PairWork, fail

__all__ = ["Progress", "RunContext", "run_local", "run_round", "run_wave"]

logger = logging.getLogger(__name__)

#: Decoded batches a device's thread may have queued ahead of it (bounds host memory; the DataLoader prefetches too).
QUEUED_BATCHES = 2


class Progress:
    """One overall bar (images × models done across every wave, with rate and ETA) beside each wave's bar."""

    def __init__(self, total: int):
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self._lock = threading.Lock()
        self.bar = tqdm(total=total, desc="all waves", unit="img", position=0, disable=None, dynamic_ncols=True)

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
        return self._tqdm(total=total, desc=label, unit="img", position=1, leave=False, disable=None,
                          dynamic_ncols=True)

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


class _Lane:
    """One wave on its device: its models, built once and fed the batches of every dataset."""

    def __init__(self, wave: Wave, number: int, ctx: RunContext):
        self.wave, self.number, self.ctx, self.device = wave, number, ctx, wave.device
        self.pairs: dict[str, dict[str, PairWork]] = {}  # dataset key → spec → pair with rows to compute
        self.left: dict[tuple[str, str], int] = {}  # rows still to compute per pair (for the overall bar)
        self.predictors: dict[str, Predictor] = {}

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
        masks = [p.missing for p in self.pairs.get(name, {}).values() if p.ok]
        return np.logical_or.reduce(masks) if masks else None

    def alive(self, name: str) -> bool:
        return any(p.ok for p in self.pairs.get(name, {}).values())

    def _fail(self, spec: str, name: str, exc: BaseException) -> None:
        fail(self.pairs[name][spec].outcome, exc)
        self.ctx.progress.shrink(self.left.pop((spec, name), 0))

    def build(self) -> None:
        """Build each model with work once, on this lane's device; a failure fails the model on every dataset."""
        specs = dict.fromkeys(spec for pairs in self.pairs.values() for spec in pairs)
        for spec in specs:
            try:
                predictor = Predictor(spec, weights=self.ctx.weights, device=self.device, options=self.ctx.options,
                                      micro_batch=self.ctx.plan.micro_batches.get(spec))
                for name in self.ctx.datasets:
                    pair = self.ctx.work.get((spec, name))
                    if pair is not None:
                        pair.outcome.model_info = predictor.model_info
                        if pair.store is not None:
                            pair.store.set_model_info(predictor.model_info)
            except Exception as exc:  # noqa: BLE001 - recorded as a failed model
                for name, pairs in self.pairs.items():
                    if spec in pairs:
                        self._fail(spec, name, exc)
                continue
            self.predictors[spec] = predictor

    def feed(self, name: str, batch: DecodedBatch) -> None:
        """Predict ``batch`` with every model that lacks some of its rows, and store the records."""
        pairs = {s: p for s, p in self.pairs.get(name, {}).items() if p.ok and s in self.predictors}
        needs = {s: p.missing[batch.positions] for s, p in pairs.items()}
        needs = {s: need for s, need in needs.items() if need.any()}
        if not needs:
            return
        for spec, result in predict_batch(self.predictors, batch, needs, self.device).items():
            if isinstance(result, Exception):
                self._fail(spec, name, result)
                continue
            try:
                pairs[spec].append(result)
            except Exception as exc:  # noqa: BLE001 - e.g. a full disk under one store: that pair fails
                self._fail(spec, name, exc)
                continue
            self.left[spec, name] -= len(result)
            self.ctx.progress.advance(len(result))

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


def run_round(waves: Sequence[Wave], numbers: Sequence[int], ctx: RunContext) -> None:
    """Waves of one group on distinct devices, at the same time, fed by one decode stream per dataset."""
    lanes = [_Lane(wave, number, ctx) for wave, number in zip(waves, numbers, strict=True)]
    with contextlib.ExitStack() as stack:
        for lane in lanes:
            lane.open(stack)
        lanes = [lane for lane in lanes if lane.pairs]
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
