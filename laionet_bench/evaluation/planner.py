"""Memory-planned model waves: which models run together, on which device, within which budget.

A run never holds more models than fit the device: the models of each preprocessing group (they share
decoded pixels, :func:`~laionet_bench.models.preprocess_key`) are packed into *waves* whose memory stays
within the device's budget, first-fit decreasing. Each wave decodes its images once per dataset and feeds
every model of the wave. Waves of one group are dealt round-robin over the devices so that they run at
the same time, fed by one decode stream: such a *round* is one decode of each image. On several devices a
group is spread over a multiple of the device count (as many rounds as first-fit decreasing needs, every
device busy in each), balanced by memory, a proxy for forward time.

A wave's memory is its models' weights plus the largest activation headroom among them: the models of a
wave are resident together but run one after another on each batch, so only one forward pass's
activations are live at a time. On CPU (and MPS, which shares the RAM) a wave also counts the build of its
largest model: building holds the freshly initialised module and its loaded checkpoint together until
``load_state_dict`` is done, beside the wave's models already built, so the wave peaks at its weights plus
one more copy of its largest model's (measured in ``benchmarks/eval_results.md`` §4). On CUDA that copy is
in host RAM, not in the device's budget. A model that does not fit the budget alone at the run's batch size is
planned at the largest halved micro-batch that fits (:attr:`Plan.micro_batches`: where the engine's
out-of-memory backoff would end up, without the failed tries); one that does not fit even at one image
fails up front.

The planner is pure: it takes footprints (:mod:`laionet_bench.models.footprints`: counts from a table or a
meta-device build) and budgets, and needs no weights, images or index, so ``run --plan`` works offline.
Only :func:`device_budgets` looks at the machine (free CUDA memory, available RAM).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import slug
from ..errors import ConfigError
from ..models.footprints import DTYPE_BYTES, GIB, Footprint

__all__ = ["CUDA_FREE_SHARE", "DTYPE_BYTES", "GIB", "RAM_SHARE", "Footprint", "Plan", "Wave", "device_budgets",
           "format_plan", "plan_waves", "stored_runs"]

#: Share of a CUDA device's free memory the default budget takes (the rest: CUDA context, fragmentation).
CUDA_FREE_SHARE = 0.9
#: Share of the available RAM the default budget takes on CPU (and MPS, which shares it).
RAM_SHARE = 0.5


@dataclass(frozen=True)
class Wave:
    """Models that run together on one device, sharing one decode of each image."""

    models: tuple[str, ...]
    memory_bytes: int  # their weights plus the largest activation headroom (on CPU: or checkpoint copy) among them
    preprocess: tuple
    device: str
    group: int  # number of its preprocessing group in the plan (0-based)

    def to_dict(self) -> dict[str, Any]:
        size, interpolation, crop_pct, crop_mode, *offset = self.preprocess  # preprocess_key; older keys lack the offset
        return {"models": list(self.models), "memory_bytes": self.memory_bytes, "device": self.device,
                "group": self.group,
                "preprocess": {"input_size": list(size), "interpolation": interpolation, "crop_pct": crop_pct,
                               "crop_mode": crop_mode, "crop_offset": offset[0] if offset else "round"}}


@dataclass(frozen=True)
class Plan:
    """The waves of a run, in execution order, and the budgets they were packed into."""

    waves: tuple[Wave, ...]
    budgets: Mapping[str, int]  # device → bytes
    groups: int
    footprints: Mapping[str, Footprint] = field(default_factory=dict)  # as planned (micro-batch applied)
    micro_batches: Mapping[str, int] = field(default_factory=dict)  # spec → micro-batch, where below the batch

    @property
    def rounds(self) -> tuple[tuple[int, ...], ...]:
        """Wave indices that run at the same time: consecutive waves of one group, each on another device."""
        rounds: list[list[int]] = []
        for i, wave in enumerate(self.waves):
            last = rounds[-1] if rounds else None
            if last and self.waves[last[0]].group == wave.group and wave.device not in {self.waves[j].device for j in last}:
                last.append(i)
            else:
                rounds.append([i])
        return tuple(tuple(r) for r in rounds)

    @property
    def decodes_per_image(self) -> int:
        """How often each image of a dataset is decoded: once per round (once per wave on one device)."""
        return len(self.rounds)

    @property
    def weights_bytes(self) -> int:
        return sum(f.weights_bytes for f in self.footprints.values())

    def to_dict(self) -> dict[str, Any]:
        return {"waves": [w.to_dict() for w in self.waves], "budgets": dict(self.budgets), "groups": self.groups,
                "decodes_per_image": self.decodes_per_image,
                "models": sum(len(w.models) for w in self.waves),
                "weights_bytes": self.weights_bytes, "micro_batches": dict(self.micro_batches)}


def _pack(footprints: list[Footprint], budget: int, build_copy: bool) -> list[list[Footprint]]:
    """First-fit decreasing: biggest model first, each into the first wave with room (:func:`_wave_bytes`)."""
    waves: list[list[Footprint]] = []
    for item in sorted(footprints, key=lambda f: (-f.total_bytes, f.spec)):
        for wave in waves:
            if _wave_bytes([*wave, item], build_copy) <= budget:
                wave.append(item)
                break
        else:
            waves.append([item])
    return waves


def _fit(item: Footprint, budget: int, build_copy: bool) -> Footprint:
    """``item`` at the largest halved micro-batch that fits ``budget`` alone, or a ConfigError."""
    while _wave_bytes([item], build_copy) > budget and item.batch_size is not None and item.batch_size > 1:
        item = item.at_batch(item.batch_size // 2)
    if (needed := _wave_bytes([item], build_copy)) > budget:
        at = f" at batch {item.batch_size}" if item.batch_size is not None else ""
        copy = ", its build holds a second copy of the weights in RAM" if build_copy else ""
        raise ConfigError(f"{item.spec} needs {needed / GIB:.2f} GiB, budget {budget / GIB:.2f} GiB per device "
                          f"(weights {item.weights_bytes / GIB:.2f} GiB, activations {item.activation_bytes / GIB:.2f} "
                          f"GiB{at}{copy}): raise --max-memory or --exclude it")
    return item


def _wave_bytes(members: Sequence[Footprint], build_copy: bool) -> int:
    """Weights ``sum`` plus the largest of: one forward pass's activations (the models run one at a time),
    and, with ``build_copy``, the largest model's checkpoint held while it is built."""
    transient = max((f.weights_bytes for f in members), default=0) if build_copy else 0
    return sum(f.weights_bytes for f in members) + max(max((f.activation_bytes for f in members), default=0), transient)


def _builds_in_budget(device: str) -> bool:
    """Whether a model's build (module + loaded checkpoint) happens in ``device``'s memory: CPU and MPS."""
    return device.split(":", 1)[0] in ("cpu", "mps")


def _spread(waves: list[list[Footprint]], devices: int, budget: float, build_copy: bool) -> list[list[Footprint]]:
    """A group's waves rounded up to a multiple of the device count: the same rounds, every device busy.

    Largest model first into the lightest wave with room; the packed ``waves`` when that does not fit.
    """
    members = sorted((f for wave in waves for f in wave), key=lambda f: (-f.total_bytes, f.spec))
    target = min(len(members), -(-len(waves) // devices) * devices)
    if target <= len(waves):
        return waves
    spread: list[list[Footprint]] = [[] for _ in range(target)]
    for item in members:
        room = [i for i, wave in enumerate(spread) if _wave_bytes([*wave, item], build_copy) <= budget]
        if not room:
            return waves
        spread[min(room, key=lambda i: (_wave_bytes(spread[i], build_copy), i))].append(item)
    return spread


def plan_waves(
    specs: Sequence[str],
    *,
    footprint: Callable[[str], Footprint],
    devices: Sequence[str],
    budgets: Mapping[str, int] | None = None,
) -> Plan:
    """Pack ``specs`` into waves per preprocessing group, within each device's budget.

    Args:
        specs: canonical model specs, in the run's order (groups keep the order of their first model).
        footprint: ``spec → Footprint`` (:func:`~laionet_bench.models.footprints.estimate_footprint`).
        devices: the devices to deal waves over (``["cpu"]``, ``["cuda:0", "cuda:1"]``).
        budgets: bytes per device (:func:`device_budgets`); None: no limit (one wave per group and device).

    Raises:
        ConfigError: a model alone exceeds the smallest budget even at micro-batch 1 ("needs X GiB, budget Y").
    """
    if not devices:
        raise ConfigError("no device to plan for")
    asked = {spec: footprint(spec) for spec in specs}
    budget = min(budgets[d] for d in devices) if budgets else None
    build_copy = any(_builds_in_budget(d) for d in devices)
    footprints = {spec: _fit(f, budget, build_copy) for spec, f in asked.items()} if budget is not None else asked
    micro = {s: f.batch_size for s, f in footprints.items()
             if f.batch_size is not None and f.batch_size != asked[s].batch_size}
    groups: dict[tuple, list[Footprint]] = {}
    for spec in specs:
        groups.setdefault(footprints[spec].preprocess, []).append(footprints[spec])
    waves: list[Wave] = []
    for number, (key, members) in enumerate(groups.items()):
        packed = _spread(_pack(members, budget, build_copy) if budget is not None else [members], len(devices),
                         budget if budget is not None else math.inf, build_copy)
        for i, wave in enumerate(packed):
            waves.append(Wave(models=tuple(f.spec for f in wave), memory_bytes=_wave_bytes(wave, build_copy),
                              preprocess=key, device=devices[i % len(devices)], group=number))
    return Plan(waves=tuple(waves), budgets=dict(budgets or {}), groups=len(groups), footprints=footprints,
                micro_batches=micro)


# ------------------------------------------------------------------------------------------- budgets
def _available_ram() -> int:
    """Bytes of RAM available to new work: ``MemAvailable`` (Linux), else free pages (other POSIX)."""
    try:
        for line in Path("/proc/meminfo").read_text("ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        raise ConfigError("cannot tell this machine's available memory: pass --max-memory GIB") from None


def device_budgets(devices: Sequence[str], *, max_memory: float | None = None) -> dict[str, int]:
    """Bytes each device's waves may hold.

    Args:
        devices: resolved devices (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
        max_memory: GiB per device (``--max-memory``); None: 90% of each CUDA device's free memory
            (``torch.cuda.mem_get_info``), half of the available RAM elsewhere (shared by the non-CUDA
            devices: ``cpu:0,cpu:1`` get a quarter each).

    Raises:
        ConfigError: ``max_memory`` is not a positive number.
    """
    if max_memory is not None:
        if not (math.isfinite(max_memory) and max_memory > 0):
            raise ConfigError(f"--max-memory must be a positive number of GiB per device, got {max_memory:g}")
        return dict.fromkeys(devices, int(max_memory * GIB))
    budgets = {}
    on_ram = [d for d in devices if not str(d).startswith("cuda")]
    for device in devices:
        if device in on_ram:
            budgets[device] = int(RAM_SHARE * _available_ram() / len(on_ram))
        else:
            import torch

            budgets[device] = int(CUDA_FREE_SHARE * torch.cuda.mem_get_info(torch.device(device))[0])
    return budgets


# ------------------------------------------------------------------------------------ what is stored
def stored_runs(store_root: str | Path, specs: Sequence[str]) -> dict[str, dict[str, int]]:
    """Stored prediction runs per model and dataset: ``{spec: {dataset folder: runs}}``, stored models only.

    Reads the store's folder layout (``<root>/<dataset>/<model slug>/<run key>/run.json``) without locks
    and without opening a chunk, so it costs one directory listing per (dataset, model).
    """
    root = Path(store_root)
    datasets = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    found: dict[str, dict[str, int]] = {}
    for spec in specs:
        for dataset in datasets:
            folder = dataset / slug(spec)
            runs = sum(1 for run in folder.iterdir() if (run / "run.json").is_file()) if folder.is_dir() else 0
            if runs:
                found.setdefault(spec, {})[dataset.name] = runs
    return found


def _preprocess_text(key: tuple) -> str:
    (_, height, width), interpolation, crop_pct, crop_mode, *offset = key
    size = f"{height}px" if height == width else f"{height}x{width}px"
    return f"{size} {interpolation} crop {crop_pct:g} {crop_mode}" + (" (floor offsets)" if offset == ["floor"] else "")


def format_plan(plan: Plan, *, stored: Mapping[str, Mapping[str, int]] | None = None) -> str:
    """The plan as text: totals, then each group with its waves (device, memory, models, micro-batches, stored)."""
    n_models = sum(len(w.models) for w in plan.waves)
    budgets = ", ".join(f"{d} {b / GIB:.2f} GiB" for d, b in plan.budgets.items()) or "none (one wave per group)"
    lines = [f"{n_models} models in {plan.groups} preprocessing groups -> {len(plan.waves)} waves; budget: {budgets}",
             f"each image is decoded {plan.decodes_per_image} times per dataset; weights {plan.weights_bytes / GIB:.2f} GiB"]
    if plan.micro_batches:
        lines.append(f"{len(plan.micro_batches)} models fit only at a smaller micro-batch (shown as 'micro-batch N')")
    if stored is not None:
        lines.append(f"the store holds prediction runs of {len(stored)} of these {n_models} models")
    by_group: dict[int, list[tuple[int, Wave]]] = {}
    for number, wave in enumerate(plan.waves, start=1):
        by_group.setdefault(wave.group, []).append((number, wave))
    for group, waves in by_group.items():
        members = sum(len(w.models) for _, w in waves)
        lines.append(f"\ngroup {group + 1}/{plan.groups}: {_preprocess_text(waves[0][1].preprocess)}, "
                     f"{members} models, {len(waves)} waves")
        for number, wave in waves:
            names = [_model_note(spec, plan, stored) for spec in wave.models]
            lines.append(f"  wave {number}  {wave.device}  {wave.memory_bytes / GIB:.2f} GiB  {len(wave.models)} models: "
                         + ", ".join(names))
    return "\n".join(lines)


def _model_note(spec: str, plan: Plan, stored: Mapping[str, Mapping[str, int]] | None) -> str:
    text = f"{spec} (micro-batch {plan.micro_batches[spec]})" if spec in plan.micro_batches else spec
    if not stored or spec not in stored:
        return text
    return f"{text} [stored: " + ", ".join(f"{d} {n} run{'s' * (n > 1)}" for d, n in stored[spec].items()) + "]"
