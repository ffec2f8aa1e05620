"""Which images of each class enter the similarity statistics (SPEC §5), recorded exactly.

Reference mode follows the paper: LAIONet uses the first 100 listed rows of each class (listed order,
not random; rows whose image fails to load are then dropped at embedding time), ImageNet-val all 50
images per class and ImageNet-V2 all 10. ``per_class=N`` changes the cap; ``sample="random"`` draws N
rows per class without replacement, seeded per (seed, dataset, class) so a class's draw does not
depend on which other classes are present. The :class:`Selection` lists every chosen key; its
fingerprint is part of the embedding cache key.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ..errors import ConfigError, DatasetError

__all__ = [
    "SAMPLE_MODES",
    "DatasetLike",
    "SampleLike",
    "Selection",
    "reference_per_class",
    "select_samples",
]

SAMPLE_MODES = ("reference", "random")
#: Reference cap for LAIONet (SPEC §5); every other dataset uses all its images per class.
LAIONET_REFERENCE_PER_CLASS = 100


@runtime_checkable
class SampleLike(Protocol):
    """One listed image: a unique key within its dataset and its wnid."""

    key: str
    wnid: str


@runtime_checkable
class DatasetLike(Protocol):
    """What the similarity step needs from a dataset (``laionet_bench.datasets`` provides it)."""

    def samples(self) -> Sequence[SampleLike]: ...

    def open(self, sample: SampleLike) -> Any: ...  # PIL.Image in RGB; raises OSError/ValueError when unreadable

    def identity(self) -> dict: ...


def reference_per_class(name: str) -> int | None:
    """The paper's per-class cap for a dataset name: 100 for LAIONet specs, ``None`` (all) otherwise."""
    return LAIONET_REFERENCE_PER_CLASS if name.split(":")[0] == "laionet" else None


@dataclass(frozen=True)
class Selection:
    """The samples chosen from one dataset, in listed order, and how they were chosen."""

    dataset: str
    mode: str  # "reference" or "random"
    per_class: int | None  # cap applied (None = every listed image)
    seed: int | None  # random mode only
    samples: tuple  # the chosen SampleLike objects

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def keys(self) -> list[str]:
        return [str(s.key) for s in self.samples]

    def fingerprint(self) -> str:
        """sha256 over the mode and the ordered (key, wnid) list: any change re-embeds."""
        payload = json.dumps(
            {"mode": self.mode, "per_class": self.per_class, "seed": self.seed,
             "rows": [[str(s.key), s.wnid] for s in self.samples]},
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"dataset": self.dataset, "key": self.keys, "wnid": [s.wnid for s in self.samples]})

    def describe(self) -> dict:
        return {"mode": self.mode, "per_class": self.per_class, "seed": self.seed, "n_selected": len(self),
                "fingerprint": self.fingerprint()}


def _class_rng(seed: int, dataset: str, wnid: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(dataset.encode()), zlib.crc32(wnid.encode())])


def _check_unique(name: str, samples: Sequence[SampleLike]) -> None:
    keys = [str(s.key) for s in samples]
    if len(set(keys)) != len(keys):
        dupes = pd.Series(keys)[pd.Series(keys).duplicated()].unique()[:5].tolist()
        raise DatasetError(f"dataset {name!r}: sample keys are not unique ({dupes}); fix the dataset listing")


def select_samples(
    dataset: DatasetLike,
    *,
    name: str,
    per_class: int | None = None,
    sample: str = "reference",
    seed: int = 0,
) -> Selection:
    """Choose the samples of ``dataset`` whose embeddings enter the statistics.

    Args:
        dataset: anything with ``samples()`` (listed order), ``open()`` and ``identity()``.
        name: the dataset's spec (``laionet``, ``imagenet-val`` ...); picks the reference cap.
        per_class: cap per class; ``None`` = the reference cap for ``name``.
        sample: ``"reference"`` (first listed rows) or ``"random"`` (seeded draw without replacement).
        seed: random mode only.
    """
    if sample not in SAMPLE_MODES:
        raise ConfigError(f"sample mode {sample!r} is not one of {SAMPLE_MODES}")
    if per_class is not None and per_class < 1:
        raise ConfigError(f"per_class={per_class} must be at least 1 (or None for the reference cap)")
    listed = list(dataset.samples())
    _check_unique(name, listed)
    cap = per_class if per_class is not None else reference_per_class(name)
    by_class: dict[str, list[int]] = {}
    for position, item in enumerate(listed):
        by_class.setdefault(item.wnid, []).append(position)
    chosen: list[int] = []
    for wnid, positions in by_class.items():
        if cap is None or len(positions) <= cap:
            chosen.extend(positions)
        elif sample == "reference":
            chosen.extend(positions[:cap])
        else:
            chosen.extend(_class_rng(seed, name, wnid).choice(positions, size=cap, replace=False).tolist())
    chosen.sort()
    return Selection(
        dataset=name,
        mode=sample,
        per_class=cap,
        seed=seed if sample == "random" else None,
        samples=tuple(listed[i] for i in chosen),
    )
