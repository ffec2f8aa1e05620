"""Which images of each class enter the similarity statistics (SPEC §5), recorded exactly.

Reference mode follows the paper's script (``calc_and_store_intra_class_image_similarities.py``: the
class's index list cut to ``[:100]``, then the images downloaded, failures dropped): LAIONet uses the
first 100 *listed* rows of each class, in the index's order and counting rows whose image is missing or
failed to download, which are then left out — so a class with failures has fewer than 100 images, as in
the paper. ImageNet-val uses all 50 images per class and ImageNet-V2 all 10. ``per_class=N`` changes the
cap; ``sample="random"`` draws N listed rows per class without replacement, seeded per (seed, dataset,
class) so a class's draw does not depend on which other classes are present. The :class:`Selection`
lists every chosen key, with and without an image; its fingerprint is part of the embedding cache key.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

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

    @property
    def key(self) -> str: ...

    @property
    def wnid(self) -> str: ...


_S = TypeVar("_S", bound=SampleLike)


@runtime_checkable
class DatasetLike(Protocol[_S]):
    """What the similarity step needs from a dataset (:class:`laionet_bench.datasets.Dataset` provides it).

    ``open`` takes the samples ``sample`` returns (the type parameter; bare ``DatasetLike`` is any).
    """

    def listed_rows(self) -> pd.DataFrame: ...  # key, wnid, position (-1: listed but no image), listing order

    def sample(self, position: int) -> _S: ...

    def open(self, sample: _S) -> Any: ...  # PIL.Image in RGB; raises OSError/ValueError when unreadable

    def identity(self) -> dict: ...


def reference_per_class(name: str) -> int | None:
    """The paper's per-class cap for a dataset name: 100 for LAIONet specs, ``None`` (all) otherwise."""
    return LAIONET_REFERENCE_PER_CLASS if name.split(":")[0] == "laionet" else None


@dataclass(frozen=True)
class Selection:
    """The rows chosen from one dataset, in listing order, and how they were chosen."""

    dataset: str
    mode: str  # "reference" or "random"
    per_class: int | None  # cap applied (None = every listed image)
    seed: int | None  # random mode only
    samples: tuple  # the chosen SampleLike objects that have an image
    missing: tuple[tuple[str, str], ...] = ()  # (key, wnid) chosen but without an image (failed download)

    def __len__(self) -> int:
        return len(self.samples) + len(self.missing)

    @property
    def keys(self) -> list[str]:
        """Keys of the chosen rows that have an image (the ones embedded)."""
        return [str(s.key) for s in self.samples]

    def fingerprint(self) -> str:
        """sha256 over the mode and the ordered (key, wnid) list of embedded rows: any change re-embeds."""
        payload = json.dumps(
            {"mode": self.mode, "per_class": self.per_class, "seed": self.seed,
             "rows": [[str(s.key), s.wnid] for s in self.samples]},
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def to_frame(self) -> pd.DataFrame:
        """dataset, key, wnid, has_image: the embedded rows, then the chosen rows without an image."""
        keys = self.keys + [k for k, _ in self.missing]
        wnids = [s.wnid for s in self.samples] + [w for _, w in self.missing]
        has_image = [True] * len(self.samples) + [False] * len(self.missing)
        return pd.DataFrame({"dataset": self.dataset, "key": keys, "wnid": wnids, "has_image": has_image})

    def describe(self) -> dict:
        return {"mode": self.mode, "per_class": self.per_class, "seed": self.seed, "n_selected": len(self),
                "n_missing": len(self.missing), "fingerprint": self.fingerprint()}


def _class_rng(seed: int, dataset: str, wnid: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(dataset.encode()), zlib.crc32(wnid.encode())])


def _check_unique(name: str, keys: pd.Series) -> None:
    duplicated = keys.duplicated()
    if duplicated.any():
        dupes = keys[duplicated].unique()[:5].tolist()
        raise DatasetError(f"dataset {name!r}: sample keys are not unique ({dupes}); fix the dataset listing")


def _choose(listed: pd.DataFrame, *, cap: int | None, sample: str, seed: int, name: str) -> np.ndarray:
    """Row numbers of ``listed`` to keep, ascending (listing order)."""
    if cap is None:
        return np.arange(len(listed))
    if sample == "reference":
        return np.flatnonzero(listed.groupby("wnid", sort=False).cumcount().to_numpy() < cap)
    chosen = [
        positions if len(positions) <= cap else _class_rng(seed, name, str(wnid)).choice(positions, size=cap, replace=False)
        for wnid, positions in listed.groupby("wnid", sort=False).indices.items()
    ]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def select_samples(
    dataset: DatasetLike,
    *,
    name: str,
    per_class: int | None = None,
    sample: str = "reference",
    seed: int = 0,
) -> Selection:
    """Choose the rows of ``dataset`` whose embeddings enter the statistics.

    Args:
        dataset: a :class:`~laionet_bench.datasets.Dataset` (anything with ``listed_rows()``, ``sample()``,
            ``open()`` and ``identity()``).
        name: the dataset's name (``laionet``, ``imagenet-val`` ...); picks the reference cap.
        per_class: cap per class; ``None`` = the reference cap for ``name``.
        sample: ``"reference"`` (first listed rows) or ``"random"`` (seeded draw without replacement).
        seed: random mode only.
    """
    if sample not in SAMPLE_MODES:
        raise ConfigError(f"sample mode {sample!r} is not one of {SAMPLE_MODES}")
    if per_class is not None and per_class < 1:
        raise ConfigError(f"per_class={per_class} must be at least 1 (or None for the reference cap)")
    listed = dataset.listed_rows()
    _check_unique(name, listed["key"])
    cap = per_class if per_class is not None else reference_per_class(name)
    rows = listed.iloc[_choose(listed, cap=cap, sample=sample, seed=seed, name=name)]
    positions = rows["position"].to_numpy(dtype=np.int64)
    has_image = positions >= 0
    return Selection(
        dataset=name,
        mode=sample,
        per_class=cap,
        seed=seed if sample == "random" else None,
        samples=tuple(dataset.sample(int(p)) for p in positions[has_image]),
        missing=tuple(zip(rows["key"][~has_image].astype(str), rows["wnid"][~has_image].astype(str), strict=True)),
    )
