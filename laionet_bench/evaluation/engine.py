"""Batched inference that decodes each image once per preprocessing group.

Models whose data configs agree on what decides the pixels (input size, interpolation, crop pct,
crop mode — :func:`models.preprocess_key`) form a group. For each group a torch DataLoader decodes,
resizes and crops every needed image once, in worker processes (started before the models are built,
so the first batches are ready when they are), to a uint8 tensor; each model of the group then
normalises the batch with its own mean/std (exactly ``ToTensor`` + ``Normalize``) and runs on it.
Only rows missing from a model's store are computed, so a re-run resumes.

A model that fails to build or run is recorded as failed with the reason and dropped; the others go
on. A CUDA out-of-memory error halves that model's micro-batch and retries. Unreadable images are
recorded (``ok = False`` with the error) once and never stop a run.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import resolve_setting
from ..datasets.base import Dataset
from ..errors import ConfigError
from ..models.registry import LoadedModel, build_model, preprocess_key, resolve_data_config, weights_identity
from .store import PredictionStore, run_key

__all__ = ["AMP_DTYPES", "EngineOptions", "ModelOutcome", "default_device", "make_decoder", "resolve_device",
           "run_models"]

logger = logging.getLogger(__name__)

AMP_DTYPES = ("bf16", "fp16")


@dataclass(frozen=True)
class EngineOptions:
    """How to run inference."""

    device: str = "cpu"
    batch_size: int = 64
    workers: int = 2
    amp: str | None = None  # None (float32), "bf16" or "fp16" autocast
    channels_last: bool = False
    compile: bool = False
    chunk_rows: int | None = None  # store chunk size (default store.CHUNK_ROWS)

    @property
    def dtype(self) -> str:
        return self.amp or "fp32"

    def check(self) -> None:
        if self.amp not in (None, *AMP_DTYPES):
            raise ConfigError(f"amp must be one of {AMP_DTYPES} (or unset for float32), got {self.amp!r}")
        if self.batch_size < 1 or self.workers < 0:
            raise ConfigError(f"batch size must be ≥ 1 and workers ≥ 0 (got {self.batch_size}, {self.workers})")


@dataclass
class ModelOutcome:
    """What happened to one model on one dataset."""

    spec: str
    dataset: str
    status: str  # "ok" or "failed"
    store: Path | None = None
    run_key: str | None = None
    computed: int = 0  # rows predicted in this call (0 when everything was stored)
    reason: str | None = None
    model_info: dict[str, Any] = field(default_factory=dict)


def default_device() -> str:
    """cuda if available, else mps, else cpu."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_device(device: str | None = None) -> str:
    """``device``, else ``[tool.laionet-bench] device``, else the best available (cuda, mps, cpu).

    ``EngineOptions.device`` defaults to ``cpu``; callers that take a device from a user (the CLI, the
    demo, the similarity embedding) resolve it here so that every surface picks the same one.
    """
    return resolve_setting("device", device) or default_device()


def make_decoder(data_config: Mapping[str, Any]):
    """timm's eval transform up to the crop, ending in a uint8 CHW tensor (normalisation happens per model)."""
    from timm.data import create_transform
    from torchvision import transforms

    full = create_transform(**{k: data_config[k] for k in ("input_size", "interpolation", "crop_pct", "crop_mode")},
                            mean=data_config["mean"], std=data_config["std"], is_training=False)
    steps = list(full.transforms)
    if type(steps[-1]).__name__ != "Normalize" or "ToTensor" not in type(steps[-2]).__name__:
        raise ConfigError(f"unexpected timm eval transform {full}; cannot split off normalisation")
    return transforms.Compose([*steps[:-2], transforms.PILToTensor()])


class _DecodedImages:
    """torch map-style dataset: position → (position, uint8 image, ok, error)."""

    def __init__(self, dataset: Dataset, positions: np.ndarray, decoder, shape: Sequence[int]):
        self.dataset, self.positions, self.decoder, self.shape = dataset, positions, decoder, tuple(shape)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int):
        import torch

        position = int(self.positions[i])
        try:
            image = self.decoder(self.dataset.open(self.dataset.sample(position)))
            return position, image, True, ""
        except Exception as exc:  # noqa: BLE001 - any decode failure is recorded, never fatal
            return position, torch.zeros(self.shape, dtype=torch.uint8), False, f"{type(exc).__name__}: {exc}"[:300]


@dataclass
class _Member:
    """One model's state inside a group run."""

    spec: str
    store: PredictionStore
    missing: np.ndarray  # bool per dataset position
    outcome: ModelOutcome
    model: LoadedModel | None = None
    column: dict[str, int] = field(default_factory=dict)
    micro_batch: int = 0
    mean: Any = None
    std: Any = None


def _prepare(member: _Member, *, weights, options: EngineOptions) -> None:
    import torch

    loaded = build_model(member.spec, weights=weights, device=options.device)
    if options.channels_last:
        loaded.module = loaded.module.to(memory_format=torch.channels_last)
    if options.compile:
        loaded.module = torch.compile(loaded.module)
    member.model = loaded
    member.column = {w: i for i, w in enumerate(loaded.label_map.wnids)}
    member.mean = torch.tensor(loaded.data_config["mean"], device=options.device).view(1, 3, 1, 1) * 255
    member.std = torch.tensor(loaded.data_config["std"], device=options.device).view(1, 3, 1, 1) * 255
    member.micro_batch = options.batch_size
    member.store.set_model_info(loaded.model_info)
    member.outcome.model_info = loaded.model_info


def _forward(member: _Member, images, options: EngineOptions):
    """Logits for ``images`` (uint8), halving the micro-batch on CUDA out-of-memory."""
    import torch

    while True:
        try:
            outputs = []
            for start in range(0, len(images), member.micro_batch):
                x = images[start:start + member.micro_batch].to(options.device, non_blocking=True)
                x = (x.float() - member.mean) / member.std
                if options.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                autocast = (torch.autocast(device_type=x.device.type, dtype=torch.bfloat16 if options.amp == "bf16" else torch.float16)
                            if options.amp else contextlib.nullcontext())
                with torch.inference_mode(), autocast:
                    outputs.append(member.model.module(x).float())
            return torch.cat(outputs)
        except torch.OutOfMemoryError:
            if member.micro_batch == 1:
                raise
            member.micro_batch = max(1, member.micro_batch // 2)
            logger.warning("%s: out of memory; retrying with batch size %d", member.spec, member.micro_batch)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def _records(member: _Member, logits, keys, wnids) -> list[dict]:
    import torch

    label_map = member.model.label_map
    mapped = logits[:, label_map.offset:label_map.offset + len(label_map.wnids)]
    probs = mapped.softmax(dim=1)
    top_scores, top_index = probs.topk(5, dim=1)
    true_cols = torch.tensor([member.column.get(w, -1) for w in wnids], dtype=torch.long, device=mapped.device)
    true_logit = mapped.gather(1, true_cols.clamp(min=0)[:, None])
    ranks = (mapped > true_logit).sum(dim=1)
    ranks = torch.where(true_cols >= 0, ranks, torch.full_like(ranks, len(label_map.wnids)))
    names = label_map.wnids
    return [
        {"key": k, "wnid": w, "ok": True, "error": None, "top5": [names[j] for j in idx], "scores": sc, "true_rank": int(r)}
        for k, w, idx, sc, r in zip(keys, wnids, top_index.tolist(), top_scores.tolist(), ranks.tolist(), strict=True)
    ]


def _fail(outcome: ModelOutcome, exc: BaseException) -> None:
    outcome.status = "failed"
    outcome.reason = f"{type(exc).__name__}: {exc}"[:500]
    logger.warning("%s failed on %s: %s", outcome.spec, outcome.dataset, outcome.reason)
    logger.debug("%s", "".join(traceback.format_exception(exc)))


def _run_batch(members: list[_Member], batch, dataset: Dataset, options: EngineOptions) -> None:
    positions, images, ok, errors = batch
    positions = positions.numpy()
    ok = ok.numpy().astype(bool)
    keys = dataset.table["key"].iloc[positions].to_numpy()  # O(batch), not O(dataset)
    wnids = dataset.table["wnid"].iloc[positions].to_numpy()
    for member in members:
        if member.outcome.status != "ok":
            continue
        need = member.missing[positions]
        bad = need & ~ok
        records = [{"key": str(keys[i]), "wnid": str(wnids[i]), "ok": False, "error": errors[i], "top5": None,
                    "scores": None, "true_rank": -1} for i in np.flatnonzero(bad)]
        good = np.flatnonzero(need & ok)
        try:
            if len(good):
                logits = _forward(member, images[good], options)
                records += _records(member, logits, [str(k) for k in keys[good]], [str(w) for w in wnids[good]])
            member.store.append(records)
            member.outcome.computed += int(need.sum())
        except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the others
            _fail(member.outcome, exc)


def _run_group(members: list[_Member], dataset: Dataset, data_config: Mapping[str, Any], options: EngineOptions,
               weights, label: str) -> None:
    import torch
    from tqdm.auto import tqdm

    needed = np.flatnonzero(np.logical_or.reduce([m.missing for m in members]))
    decoded = _DecodedImages(dataset, needed, make_decoder(data_config), data_config["input_size"])
    loader = torch.utils.data.DataLoader(decoded, batch_size=options.batch_size, num_workers=options.workers,
                                         pin_memory=options.device.startswith("cuda"), shuffle=False)
    batches = iter(loader)  # the workers start decoding now, hiding the first batches behind the model builds
    for member in members:
        try:
            _prepare(member, weights=weights, options=options)
        except Exception as exc:  # noqa: BLE001 - recorded as a failed model
            _fail(member.outcome, exc)
    alive = [m for m in members if m.outcome.status == "ok"]
    if not alive:
        return  # (images needed only by a model that failed to build were decoded for nothing: rare and harmless)
    with tqdm(total=len(needed), desc=label, unit="img", disable=None, dynamic_ncols=True) as progress:
        for batch in batches:
            _run_batch(alive, batch, dataset, options)
            progress.update(len(batch[0]))
            if not any(m.outcome.status == "ok" for m in alive):
                break


def run_models(specs: Sequence[str], dataset: Dataset, *, store_root: str | Path,
               weights: Mapping[str, str | Path] | None = None, options: EngineOptions | None = None) -> dict[str, ModelOutcome]:
    """Predict every listed sample of ``dataset`` with every spec, skipping what the store holds.

    Returns one :class:`ModelOutcome` per spec (input order). Never raises for one model's failure.
    """
    options = options or EngineOptions()
    options.check()
    identity = dataset.identity()
    keys = dataset.table["key"]
    outcomes: dict[str, ModelOutcome] = {}
    groups: dict[tuple, list[_Member]] = {}
    configs: dict[tuple, dict] = {}
    with contextlib.ExitStack() as stack:
        for spec in specs:
            outcome = outcomes[spec] = ModelOutcome(spec=spec, dataset=dataset.name, status="ok")
            try:
                config = resolve_data_config(spec)
                key, payload = run_key(model=spec, weights=weights_identity(spec, weights), data_config=config,
                                       dtype=options.dtype, dataset=identity)
                store = stack.enter_context(PredictionStore(store_root, model=spec, dataset=dataset.name, key=key,
                                                            payload=payload, chunk_rows=options.chunk_rows))
            except Exception as exc:  # noqa: BLE001 - e.g. a missing weights file: this model fails, others run
                _fail(outcome, exc)
                continue
            outcome.store, outcome.run_key = store.folder, key
            outcome.model_info = store.run_info().get("model_info", {})
            missing = ~keys.isin(store.done_keys()).to_numpy(dtype=bool)
            if missing.any():
                group = preprocess_key(config)
                configs.setdefault(group, config)
                groups.setdefault(group, []).append(_Member(spec, store, missing, outcome))
        for number, (group, members) in enumerate(groups.items(), start=1):
            label = f"{dataset.name} [{number}/{len(groups)}] {group[0][1]}px x{len(members)}"
            _run_group(members, dataset, configs[group], options, weights, label)
    return outcomes
