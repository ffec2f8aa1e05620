"""Memory-planned model waves: which models run together, on which device, within which budget.

A run never holds more models than fit the device: the models of each preprocessing group (they share
decoded pixels, :func:`~laionet_bench.models.preprocess_key`) are packed into *waves* whose summed
footprint stays within the device's budget, first-fit decreasing. Each wave decodes its images once per
dataset and feeds every model of the wave. Waves of one group are dealt round-robin over the devices so
that they run at the same time, fed by one decode stream.

The planner is pure: it takes footprints (parameter and buffer counts, from a meta-device build or a
table) and budgets, and needs no weights, images or index, so ``run --plan`` works offline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = ["DTYPE_BYTES", "Footprint", "Plan", "Wave", "plan_waves"]

#: Bytes per parameter/buffer value for each engine dtype (autocast keeps fp32 weights).
DTYPE_BYTES = {"fp32": 4, "bf16": 4, "fp16": 4}
GIB = 1024**3


@dataclass(frozen=True)
class Footprint:
    """What one model needs on its device: weights plus activation headroom for one batch."""

    spec: str
    preprocess: tuple  # preprocess_key of its data config
    data_config: Mapping[str, Any]
    weights_bytes: int
    activation_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.activation_bytes


@dataclass(frozen=True)
class Wave:
    """Models that run together on one device, sharing one decode of each image."""

    models: tuple[str, ...]
    memory_bytes: int
    preprocess: tuple
    device: str
    group: int  # number of its preprocessing group in the plan (0-based)

    def to_dict(self) -> dict[str, Any]:
        size, interpolation, crop_pct, crop_mode = self.preprocess
        return {"models": list(self.models), "memory_bytes": self.memory_bytes, "device": self.device,
                "group": self.group,
                "preprocess": {"input_size": list(size), "interpolation": interpolation, "crop_pct": crop_pct,
                               "crop_mode": crop_mode}}


@dataclass(frozen=True)
class Plan:
    """The waves of a run, in execution order, and the budgets they were packed into."""

    waves: tuple[Wave, ...]
    budgets: Mapping[str, int]  # device → bytes
    groups: int
    footprints: Mapping[str, Footprint] = field(default_factory=dict)

    @property
    def decodes_per_image(self) -> int:
        """How often each image of a dataset is decoded: once per wave."""
        return len(self.waves)

    def to_dict(self) -> dict[str, Any]:
        return {"waves": [w.to_dict() for w in self.waves], "budgets": dict(self.budgets), "groups": self.groups,
                "decodes_per_image": self.decodes_per_image,
                "models": sum(len(w.models) for w in self.waves),
                "weights_bytes": sum(f.weights_bytes for f in self.footprints.values())}


def _pack(footprints: list[Footprint], budget: int) -> list[list[Footprint]]:
    """First-fit decreasing: biggest model first, each into the first wave with room."""
    waves: list[list[Footprint]] = []
    room: list[int] = []
    for item in sorted(footprints, key=lambda f: (-f.total_bytes, f.spec)):
        for i, left in enumerate(room):
            if item.total_bytes <= left:
                waves[i].append(item)
                room[i] -= item.total_bytes
                break
        else:
            waves.append([item])
            room.append(budget - item.total_bytes)
    return waves


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
        footprint: ``spec → Footprint`` (a meta-device estimate, or a table).
        devices: the devices to deal waves over (``["cpu"]``, ``["cuda:0", "cuda:1"]``).
        budgets: bytes per device; None packs each group into one wave (no memory limit).

    Raises:
        ConfigError: a model alone exceeds the smallest budget ("needs X GiB, budget Y").
    """
    if not devices:
        raise ConfigError("no device to plan for")
    footprints = {spec: footprint(spec) for spec in specs}
    budget = min(budgets[d] for d in devices) if budgets else None
    if budget is not None:
        for f in footprints.values():
            if f.total_bytes > budget:
                raise ConfigError(f"{f.spec} needs {f.total_bytes / GIB:.2f} GiB, budget {budget / GIB:.2f} GiB per "
                                  "device: raise --max-memory, lower --batch-size, or --exclude it")
    groups: dict[tuple, list[Footprint]] = {}
    for spec in specs:
        groups.setdefault(footprints[spec].preprocess, []).append(footprints[spec])
    waves: list[Wave] = []
    for number, (key, members) in enumerate(groups.items()):
        packed = _pack(members, budget) if budget is not None else [members]
        for i, wave in enumerate(packed):
            waves.append(Wave(models=tuple(f.spec for f in wave), memory_bytes=sum(f.total_bytes for f in wave),
                              preprocess=key, device=devices[i % len(devices)], group=number))
    return Plan(waves=tuple(waves), budgets=dict(budgets or {}), groups=len(groups), footprints=footprints)
