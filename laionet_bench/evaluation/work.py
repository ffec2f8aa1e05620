"""The work of a run: one :class:`PairWork` per (model, dataset), what its store lacks, and the shard split.

Before anything is built the engine lists every (model, dataset) pair with its run key and counts the
rows its store already holds (reading needs no lock), so a complete pair costs nothing and the plan only
holds models with work. The rows a wave computes are re-read under the store's lock when the wave opens it
(:meth:`PairWork.open`): another process (a shard, a second machine) may have filled some meanwhile.

:func:`shard_pairs` splits the pairs over N independent processes. The split depends only on the specs,
their preprocessing, their cost in the shipped throughput table and the datasets' sizes — never on the store,
the memory budget or the machine — so every shard of one command computes the same split.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..datasets.base import Dataset
from ..errors import DiskWriteError, StoreError
from ..models.footprints import model_counts
from ..models.registry import label_rule, preprocess_key, resolve_data_config, weights_identity
from .cache import mark_used
from .estimate import load_throughput
from .options import EngineOptions
from .store import PredictionStore, StoredKeys, read_keys, run_key, store_dir

__all__ = ["MAX_REASON", "ModelOutcome", "PairWork", "collect_work", "fail", "failure_reason", "shard_pairs"]

logger = logging.getLogger(__name__)


#: Longest failure reason kept (``failures.json``, the ``FAILED`` lines).
MAX_REASON = 500
#: Sentences of library errors that advise switching a safety check off, never repeated: torch's and timm's
#: ``weights_only`` set to False, torch's numbered ways round its check, allowlisting a pickled global "if you
#: trust" it, transformers' ``trust_remote_code=True``.
_UNSAFE_ADVICE = re.compile(r"weights_only.*False|\btrust|^\(\d\)", re.IGNORECASE)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")
_ANSI_STYLE = re.compile(r"\x1b\[[0-9;]*m")


def failure_reason(exc: BaseException) -> str:
    """``exc`` as the one line recorded for a failed model: ``ExceptionType: message``.

    Ray, transformers and torch raise multi-line messages: Ray's wrap the remote traceback around the error
    that failed (its ``cause``, reported instead), and torch's ``weights_only`` refusal advises loading with
    ``weights_only=False``, which would run whatever code the checkpoint holds. The text is folded onto one
    line and such advice is dropped, sentence by sentence; a full disk reads as the CLI says it.
    """
    cause = getattr(exc, "cause", None)
    if type(exc).__module__.startswith("ray.") and isinstance(cause, BaseException):
        exc = cause
    exc = DiskWriteError.of(exc, getattr(exc, "filename", None)) or exc
    text = " ".join(_ANSI_STYLE.sub("", str(exc)).split())
    kept = " ".join(s for s in _SENTENCE_BREAK.split(text) if not _UNSAFE_ADVICE.search(s))
    return f"{type(exc).__name__}: {kept}".rstrip(": ")[:MAX_REASON]


@dataclass
class ModelOutcome:
    """What happened to one model on one dataset."""

    spec: str
    dataset: str
    status: Literal["ok", "failed"]
    store: Path | None = None
    run_key: str | None = None
    computed: int = 0  # rows predicted in this call (0 when everything was stored)
    reason: str | None = None
    model_info: dict[str, Any] = field(default_factory=dict)


def fail(outcome: ModelOutcome, exc: BaseException) -> None:
    """Record ``exc`` as the reason ``outcome``'s model failed on its dataset (the run goes on)."""
    outcome.status = "failed"
    outcome.reason = failure_reason(exc)
    logger.warning("%s failed on %s: %s", outcome.spec, outcome.dataset, outcome.reason)
    logger.debug("%s", "".join(traceback.format_exception(exc)))


@dataclass
class PairWork:
    """One model on one dataset: its outcome, its store while a wave holds it, and the rows it lacks."""

    outcome: ModelOutcome
    payload: dict[str, Any]
    todo: int  # rows missing when the run was listed (the progress total)
    store: PredictionStore | None = None
    missing: np.ndarray | None = None  # bool per dataset position, set by open()
    stored: StoredKeys | None = None  # the keys read so far, so a re-read reads only new chunks
    _computed_before: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome.status == "ok"

    def open(self, root: Path, dataset: Dataset, stack: contextlib.ExitStack, options: EngineOptions) -> int:
        """Lock the store until ``stack`` closes and read what it lacks; returns the rows now missing.

        Only chunks written since :func:`collect_work` listed the pair are read (another process may have
        added some); the store is compacted on closing once every missing row was computed.
        """
        o = self.outcome
        try:
            if o.run_key is None:  # collect_work gives every ok pair its key
                raise StoreError(f"{o.spec} on {o.dataset} has no run key")
            self.store = stack.enter_context(PredictionStore(root, model=o.spec, dataset=o.dataset, key=o.run_key,
                                                             payload=self.payload, chunk_rows=options.chunk_rows))
            stack.callback(self.close)
        except Exception as exc:  # noqa: BLE001 - e.g. the store locked by another run: this pair fails
            fail(o, exc)
            return 0
        self.stored = self.store.done_keys(self.stored)
        self.missing = ~dataset.table["key"].isin(self.stored.keys).to_numpy(dtype=bool)
        self._computed_before = o.computed
        return int(self.missing.sum())

    def append(self, records: list[dict]) -> None:
        if self.store is None:
            raise StoreError(f"{self.outcome.spec} on {self.outcome.dataset}: append before open()")
        self.store.append(records)
        self.outcome.computed += len(records)

    def close(self) -> None:
        """Before the store's own exit (which flushes): ask it to compact if every missing row was computed."""
        if self.store is not None and self.missing is not None and self.ok:
            self.store.compact_on_exit = self.outcome.computed - self._computed_before >= int(self.missing.sum())
        self.store, self.missing = None, None


def collect_work(specs: Sequence[str], datasets: Mapping[str, Dataset], *, store_root: str | Path,
                 weights: Mapping[str, Any] | None, options: EngineOptions,
                 pairs: set[tuple[str, str]] | None = None) -> dict[tuple[str, str], PairWork]:
    """``(spec, dataset name) → PairWork`` for ``pairs`` (default every pair), with what each store holds.

    A spec whose run key cannot be formed (e.g. a missing weights file) fails on every dataset here.
    """
    identities = {name: data.identity() for name, data in datasets.items()}
    work: dict[tuple[str, str], PairWork] = {}
    for spec in specs:
        try:
            config = resolve_data_config(spec)
            identity = weights_identity(spec, weights)
            rule = label_rule(spec, options.protocol)
            error = None
        except Exception as exc:  # noqa: BLE001 - this model fails, the others run
            error = exc
        for name, data in datasets.items():
            if pairs is not None and (spec, name) not in pairs:
                continue
            outcome = ModelOutcome(spec=spec, dataset=data.name, status="ok")
            if error is not None:
                fail(outcome, error)
                work[spec, name] = PairWork(outcome, {}, 0)
                continue
            key, payload = run_key(model=spec, weights=identity, data_config=config, dtype=options.dtype,
                                   dataset=identities[name], label_rule=rule)
            folder = store_dir(store_root, model=spec, dataset=data.name, key=key)
            outcome.store, outcome.run_key = folder, key
            if (folder / "run.json").is_file():  # written whole (atomically): no lock needed to read it
                outcome.model_info = json.loads((folder / "run.json").read_text("utf-8")).get("model_info", {})
                mark_used(folder)  # what `cache prune --older-than` counts from
            stored = read_keys(folder)
            todo = int((~data.table["key"].isin(stored.keys)).sum())
            work[spec, name] = PairWork(outcome, payload, todo, stored=stored)
    return work


def shard_pairs(specs: Sequence[str], datasets: Mapping[str, Dataset], shard: tuple[int, int]) -> set[tuple[str, str]]:
    """The (spec, dataset name) pairs of shard ``(I, N)`` (1-based): a deterministic, balanced split.

    The pairs are ordered by preprocessing group (in order of first appearance), spec, then dataset, and cut
    into N contiguous runs of about equal estimated compute: images × the model's seconds per image on the
    shipped RTX 4090 table (:mod:`.estimate`; only the ratios between models matter), so a shard of a few big
    models takes as long as one of many small ones. Contiguous runs keep a model's datasets and a group's
    models together, so across the shards each model is built about once and each group decoded about once.
    """
    index, count = shard
    groups: dict[tuple, int] = {}
    keyed, cost = [], {}
    table = load_throughput()
    for position, spec in enumerate(specs):
        try:
            config = resolve_data_config(spec)
            group = groups.setdefault(preprocess_key(config), len(groups))
            speed, _ = table.images_per_second(spec, int(config["input_size"][-1]), model_counts(spec).parameters)
            cost[spec] = 1 / speed
        except Exception:  # noqa: BLE001 - fails later, in collect_work, with its reason; order it last
            group = len(specs)
        keyed.append((group, position, spec))
    typical = float(np.median(list(cost.values()))) if cost else 1.0
    ordered = [(spec, name) for _, _, spec in sorted(keyed) for name in datasets]
    sizes = np.array([max(len(datasets[name]), 1) * cost.get(spec, typical) for spec, name in ordered],
                     dtype=np.float64)
    middle = np.cumsum(sizes) - sizes / 2  # each pair goes to the shard its middle falls in
    owner = np.minimum((middle * count / sizes.sum()).astype(np.int64), count - 1) if len(sizes) else []
    return {pair for pair, o in zip(ordered, owner, strict=True) if o == index - 1}
