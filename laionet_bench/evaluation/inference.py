"""Decoding once, and one built model on one device: the compute of the engine, with no store in sight.

A preprocessing group's images are decoded, resized and cropped by :func:`decode_loader` — a torch
DataLoader over :class:`DecodedImages`, in worker processes — to uint8 tensors (timm's eval transform
without its normalisation, :func:`make_decoder`). A :class:`Predictor` is one model built on one device:
it normalises a batch with its own mean/std (exactly ``ToTensor`` + ``Normalize``), runs it, halving its
micro-batch on CUDA out-of-memory, and turns the logits into store records. :func:`predict_batch` feeds
one decoded batch to the predictors of a wave, copying it to their device once.

Nothing here writes: records go back to the caller (the local executor writes them to the store; a
remote one would send them to the driver), and a model's failure comes back as its exception.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..datasets.base import Dataset
from ..errors import ConfigError
from ..models.registry import build_model
from .allocator import trim
from .options import EngineOptions

__all__ = ["DecodedBatch", "DecodedImages", "FloorCenterCrop", "Predictor", "decode_loader", "make_decoder", "predict_batch",
           "release_memory", "unreadable_records"]

logger = logging.getLogger(__name__)


class FloorCenterCrop:
    """A center crop at floor offsets, as HF image processors crop (torchvision's rounds half to even, so
    the two differ by a pixel when the margin is 3 mod 4); larger crops fall back to torchvision's padding."""

    def __init__(self, crop):
        self.crop = crop  # torchvision CenterCrop

    def __call__(self, image):
        height, width = self.crop.size
        if height > image.height or width > image.width:
            return self.crop(image)
        top, left = (image.height - height) // 2, (image.width - width) // 2
        return image.crop((left, top, left + width, top + height))


def make_decoder(data_config: Mapping[str, Any]):
    """timm's eval transform up to the crop, ending in a uint8 CHW tensor (normalisation happens per model).

    ``crop_offset: floor`` (HF processors) replaces the center crop by :class:`FloorCenterCrop`.
    """
    from timm.data import create_transform
    from torchvision import transforms

    full = create_transform(**{k: data_config[k] for k in ("input_size", "interpolation", "crop_pct", "crop_mode")},
                            mean=data_config["mean"], std=data_config["std"], is_training=False)
    steps = list(full.transforms)
    if type(steps[-1]).__name__ != "Normalize" or "ToTensor" not in type(steps[-2]).__name__:
        raise ConfigError(f"unexpected timm eval transform {full}; cannot split off normalisation")
    if data_config.get("crop_offset", "round") == "floor":
        steps = [FloorCenterCrop(s) if isinstance(s, transforms.CenterCrop) else s for s in steps]
    return transforms.Compose([*steps[:-2], transforms.PILToTensor()])


class DecodedImages:
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


@dataclass(frozen=True)
class DecodedBatch:
    """One collated batch of :class:`DecodedImages`, with its dataset's keys and wnids looked up."""

    positions: np.ndarray  # dataset positions
    images: Any  # uint8 tensor (batch, 3, H, W), pinned when a CUDA device consumes it
    ok: np.ndarray  # bool: decoded
    errors: Sequence[str]  # why not, "" when ok
    keys: np.ndarray
    wnids: np.ndarray

    @classmethod
    def collated(cls, batch, dataset: Dataset) -> DecodedBatch:
        positions, images, ok, errors = batch
        positions = positions.numpy()
        return cls(positions, images, ok.numpy().astype(bool), errors,
                   dataset.table["key"].iloc[positions].to_numpy(),  # O(batch), not O(dataset)
                   dataset.table["wnid"].iloc[positions].to_numpy())

    def __len__(self) -> int:
        return len(self.positions)


def decode_loader(dataset: Dataset, positions: np.ndarray, data_config: Mapping[str, Any], *,
                  options: EngineOptions, pin_memory: bool):
    """The DataLoader decoding ``positions`` of ``dataset`` once for every model of a group."""
    import torch

    decoded = DecodedImages(dataset, positions, make_decoder(data_config), data_config["input_size"])
    # torch annotates a Dataset subclass; DataLoader takes any map-style sequence (__getitem__, __len__)
    return torch.utils.data.DataLoader(decoded, batch_size=options.batch_size,  # type: ignore[arg-type]
                                       num_workers=options.workers, pin_memory=pin_memory, shuffle=False)


def unreadable_records(keys: Iterable[object], wnids: Iterable[object], errors: Iterable[str]) -> list[dict]:
    """Store records of images that could not be decoded (nothing predicted)."""
    return [{"key": str(k), "wnid": str(w), "ok": False, "error": e, "top5": None, "scores": None, "true_rank": -1}
            for k, w, e in zip(keys, wnids, errors, strict=True)]


class Predictor:
    """One model built on one device, ready for uint8 batches of its preprocessing group."""

    def __init__(self, spec: str, *, weights: Mapping[str, Any] | None, device: str, options: EngineOptions,
                 micro_batch: int | None = None):
        import torch

        loaded = build_model(spec, weights=weights, device=device, protocol=options.protocol)
        if options.channels_last:
            loaded.module = loaded.module.to(memory_format=torch.channels_last)
        if options.compile:
            loaded.module = torch.compile(loaded.module)
        self.spec, self.device, self.options, self.model = spec, device, options, loaded
        wnids = loaded.label_map.wnids
        self.column = {w: wnids.index(w) for w in wnids}  # a wnid's first column
        # a wnid on several logits (the reference's lemma rule maps both crane logits to one wnid): its rank is
        # that of its best logit, as the reference's top-k of logits counts it
        self.twins = (torch.tensor([self.column[w] for w in wnids], device=device)
                      if len(self.column) < len(wnids) else None)
        self.mean = torch.tensor(loaded.data_config["mean"], device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(loaded.data_config["std"], device=device).view(1, 3, 1, 1) * 255
        # the planned micro-batch (where the budget needs it), halved on out-of-memory and kept for later batches
        self.micro_batch = min(micro_batch or options.batch_size, options.batch_size)

    @property
    def model_info(self) -> dict[str, Any]:
        return self.model.model_info

    def _forward(self, images):
        """Logits for ``images`` (uint8 on the device), halving the micro-batch on out-of-memory."""
        import torch

        options = self.options
        while True:
            try:
                outputs = []
                for start in range(0, len(images), self.micro_batch):
                    x = (images[start:start + self.micro_batch].float() - self.mean) / self.std
                    if options.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    autocast = (torch.autocast(device_type=x.device.type,
                                               dtype=torch.bfloat16 if options.amp == "bf16" else torch.float16)
                                if options.amp else contextlib.nullcontext())
                    with torch.inference_mode(), autocast:
                        outputs.append(self.model.module(x).float())
                return torch.cat(outputs)
            except torch.OutOfMemoryError:
                if self.micro_batch == 1:
                    raise
                self.micro_batch = max(1, self.micro_batch // 2)
                logger.warning("%s: out of memory; retrying with batch size %d", self.spec, self.micro_batch)
                release_memory(self.device)

    def predict(self, images, keys: Sequence[str], wnids: Sequence[str]) -> list[dict]:
        """Store records (top-5, their probabilities, the true class's rank) for decoded ``images``."""
        import torch

        label_map = self.model.label_map
        logits = self._forward(images)
        mapped = label_map.select(logits)
        probs = mapped.softmax(dim=1)
        top_scores, top_index = probs.topk(5, dim=1)
        true_cols = torch.tensor([self.column.get(w, -1) for w in wnids], dtype=torch.long, device=mapped.device)
        true_logit = mapped.gather(1, true_cols.clamp(min=0)[:, None])
        if self.twins is not None:
            others = self.twins[None, :] != true_cols[:, None]
            true_logit = mapped.masked_fill(others, float("-inf")).amax(dim=1, keepdim=True).maximum(true_logit)
        ranks = (mapped > true_logit).sum(dim=1)
        ranks = torch.where(true_cols >= 0, ranks, torch.full_like(ranks, len(label_map.wnids)))
        names = label_map.wnids
        return [
            {"key": k, "wnid": w, "ok": True, "error": None, "top5": [names[j] for j in idx], "scores": sc,
             "true_rank": int(r)}
            for k, w, idx, sc, r in zip(keys, wnids, top_index.tolist(), top_scores.tolist(), ranks.tolist(),
                                        strict=True)
        ]


def predict_batch(predictors: Mapping[str, Predictor], batch: DecodedBatch, needs: Mapping[str, np.ndarray],
                  device: str) -> dict[str, list[dict] | Exception]:
    """Records per model for the rows of ``batch`` it needs (``needs[spec]``: bool per row), or its exception.

    The batch is copied to ``device`` once (non-blocking from pinned memory) for every model of the wave.
    """
    import torch

    images = batch.images.to(device, non_blocking=True)
    out: dict[str, list[dict] | Exception] = {}
    for spec, need in needs.items():
        bad = np.flatnonzero(need & ~batch.ok)
        good = np.flatnonzero(need & batch.ok)
        try:
            records = unreadable_records(batch.keys[bad], batch.wnids[bad], [batch.errors[int(i)] for i in bad])
            if len(good):
                rows = images if len(good) == len(images) else images.index_select(0, torch.from_numpy(good).to(images.device))
                records += predictors[spec].predict(rows, [str(k) for k in batch.keys[good]],
                                                    [str(w) for w in batch.wnids[good]])
            out[spec] = records
        except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the others
            out[spec] = exc
    return out


def release_memory(device: str, *, collect: bool = True) -> None:
    """Give freed memory back: collect garbage (``collect``), empty the CUDA cache, return freed heap pages to the OS.

    A full ``gc.collect()`` costs ~0.2 s with torch and pandas loaded; callers that can tell nothing is left in a
    reference cycle skip it. The heap is trimmed for every device: glibc keeps freed weights in it otherwise
    (measured: benchmarks/eval_results.md), and with the tuned allocator (:mod:`.allocator`) every freed block,
    the host copy a CUDA model was built from included.
    """
    import torch

    if collect:
        gc.collect()
    if device.startswith("cuda"):
        with torch.cuda.device(device):
            torch.cuda.empty_cache()
    trim()
