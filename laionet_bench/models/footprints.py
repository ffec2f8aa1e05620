"""How much device memory a model needs: weights from parameter and buffer counts, plus activation headroom.

The wave planner (:mod:`laionet_bench.evaluation.planner`) packs models into waves by these numbers, so
they must come without weights, images or a device:

* **Weights** = (parameters + buffers) × the dtype's bytes. The counts come from a meta-device build
  (``with torch.device("meta"): timm.create_model(...)``: shapes only, no memory, no download).
* **Activations** = batch × fp32 input bytes (3·H·W·4) × the model's *activation ratio*, × a margin.
  The ratio is the peak of live intermediate tensors during one image's forward pass divided by that
  image's fp32 bytes, measured on the meta device by ``_PeakLive`` (every tensor an aten op
  returns counts from its creation until its last reference dies; exactly what an inference-mode
  forward holds, without the allocator's rounding; on CPU the same count matches a real forward).
  The ratio is scale-free, so tags of one architecture tested at other sizes scale by their pixel
  count. Activations grow linearly with the batch, which is why the formula multiplies by it (a
  footprint keeps the per-image share, so :meth:`Footprint.at_batch` re-prices it for a smaller
  micro-batch). :data:`ACTIVATION_MARGIN` covers what the meta count cannot see: the caching
  allocator's rounding, cuDNN workspaces and the batch's uint8 and normalised float copies.
  Under autocast the bf16/fp16 copies of the weights live during the forward pass, so half the fp32
  weights are added to the activations.
* A model whose meta forward fails (an op without a meta kernel) gets :data:`DEFAULT_ACTIVATION_RATIO`.
  Over timm's 945 architectures of ``all`` the measured ratio has median 17 (ViT-B/16: 12, ResNet-50:
  17), 95th percentile 60 and maximum 212 (MaxViT-XL); the default, 128, is above 99% of them.

Counting takes 0.1–1 s per model, so timm's registry is shipped counted: ``_data/timm_footprints.json``
(architecture → parameters, buffers, activation ratio; every tag of an architecture has the same counts;
regenerate it with ``scripts/build_footprints.py`` after a timm upgrade). Architectures missing from it (new timm models, open_clip specs) are counted on
the meta device once per process.

These are estimates. At run time the engine refines them with :func:`measure_peak_bytes` around one probe
batch on the device.
"""

from __future__ import annotations

import contextlib
import json
import logging
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from ..errors import ConfigError
from .custom import CUSTOM_PREFIX, custom_counts
from .hf import HF_PREFIX, meta_hf_model
from .registry import OPENCLIP_PREFIX, TIMM_HUB_PREFIX, preprocess_key, resolve_data_config

__all__ = [
    "ACTIVATION_MARGIN",
    "DEFAULT_ACTIVATION_RATIO",
    "DTYPE_BYTES",
    "GIB",
    "TABLE_FILE",
    "Counts",
    "Footprint",
    "estimate_footprint",
    "load_table",
    "measure_counts",
    "measure_peak_bytes",
    "model_counts",
]

#: Bytes per parameter/buffer value for each engine dtype (autocast keeps fp32 weights).
DTYPE_BYTES = {"fp32": 4, "bf16": 4, "fp16": 4}
GIB = 1024**3
#: Activation ratio of a model whose meta-device forward pass failed (above 99% of timm's measured ratios).
DEFAULT_ACTIVATION_RATIO = 128.0
#: Factor on the measured activations for what the meta count cannot see (allocator, workspaces, input copies).
ACTIVATION_MARGIN = 1.25
#: The shipped table of timm's registry, in ``laionet_bench/_data``.
TABLE_FILE = "timm_footprints.json"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Footprint:
    """What one model needs on its device: weights plus activation headroom for one batch."""

    spec: str
    preprocess: tuple  # preprocess_key of its data config
    data_config: Mapping[str, Any]
    weights_bytes: int
    activation_bytes: int
    batch_size: int | None = None  # the (micro-)batch activation_bytes is for; None: not batch-dependent
    image_bytes: int = 0  # the part of activation_bytes each image of the batch adds

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.activation_bytes

    def refined(self, activation_bytes: int) -> Footprint:
        """This footprint with the activation headroom measured on the device (:func:`measure_peak_bytes`)."""
        return replace(self, activation_bytes=int(activation_bytes))

    def at_batch(self, batch_size: int) -> Footprint:
        """This footprint for another micro-batch (activations grow linearly with the batch)."""
        if self.batch_size is None:
            return self
        return replace(self, batch_size=batch_size,
                       activation_bytes=self.activation_bytes + (batch_size - self.batch_size) * self.image_bytes)


@dataclass(frozen=True)
class Counts:
    """One architecture's sizes, independent of batch and dtype."""

    parameters: int
    buffers: int
    activation_ratio: float | None  # peak live activation bytes / fp32 input bytes; None: meta forward failed

    def to_dict(self) -> dict[str, Any]:
        return {"parameters": self.parameters, "buffers": self.buffers, "activation_ratio": self.activation_ratio}


# ------------------------------------------------------------------------------------------ measuring
def _peak_live_mode():
    """A TorchDispatchMode that tracks the bytes of live op outputs and their peak (torch imported lazily)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class _PeakLive(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live = self.peak = 0
            self.refs: dict[int, list[int]] = {}  # storage id → [bytes, live tensors viewing it]

        def _release(self, key: int) -> None:
            entry = self.refs[key]
            entry[1] -= 1
            if entry[1] == 0:
                self.live -= entry[0]
                del self.refs[key]

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for tensor in tree_flatten(out)[0]:
                if not hasattr(tensor, "untyped_storage"):
                    continue
                storage = tensor.untyped_storage()
                key = storage._cdata  # the storage's identity; meta storages all have data_ptr 0
                if key in self.refs:
                    self.refs[key][1] += 1
                else:
                    self.refs[key] = [storage.nbytes(), 1]
                    self.live += storage.nbytes()
                    self.peak = max(self.peak, self.live)
                weakref.finalize(tensor, self._release, key)
            return out

    return _PeakLive()


def _activation_ratio(forward: Callable[[Any], Any], input_size: tuple[int, int, int], label: str) -> float | None:
    """Peak live activation bytes of ``forward`` on one meta image, per fp32 input byte."""
    import torch

    image = torch.empty(1, *input_size, device="meta")
    mode = _peak_live_mode()
    try:
        with torch.inference_mode(), mode:
            forward(image)
    except Exception as exc:  # noqa: BLE001 - any op without a meta kernel: fall back to the default ratio
        logger.debug("%s: meta forward failed (%s: %s); using the default activation ratio", label,
                     type(exc).__name__, exc)
        return None
    return round(mode.peak / (4 * input_size[0] * input_size[1] * input_size[2]), 2)


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """Hide open_clip's root-logger warning that a deliberately weightless build has no weights."""
    def no_weights_warning(record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(no_weights_warning)
    try:
        yield
    finally:
        root.removeFilter(no_weights_warning)


def _meta_timm(spec: str):
    import timm
    import torch
    from timm.models import get_pretrained_cfg, split_model_name_tag

    try:
        known = spec.startswith(TIMM_HUB_PREFIX) or get_pretrained_cfg(spec) is not None  # hf-hub: timm reads the repo's config
    except RuntimeError:  # a custom tag (local weights): the architecture's default config
        known = False
    with torch.device("meta"):
        return timm.create_model(spec if known else split_model_name_tag(spec)[0], pretrained=False)


def measure_counts(spec: str, input_size: tuple[int, int, int] | None = None) -> Counts:
    """Count ``spec``'s parameters and buffers and measure its activation ratio on the meta device.

    Args:
        spec: a canonical timm spec (``arch.tag``), ``openclip:ARCH/TAG``, ``hf:...`` or ``custom:...``
            (a custom module is not rebuilt on the meta device: its activations get the default ratio).
        input_size: (C, H, W) to measure the activations at (default: the spec's test data config).
    """
    size = tuple(input_size or resolve_data_config(spec)["input_size"])
    if spec.startswith(CUSTOM_PREFIX):
        parameters, buffers = custom_counts(spec)
        return Counts(parameters=parameters, buffers=buffers, activation_ratio=None)
    if spec.startswith(HF_PREFIX):
        model = meta_hf_model(spec)
        forward, extra = model, 0
    elif spec.startswith(OPENCLIP_PREFIX):
        import open_clip

        arch = spec[len(OPENCLIP_PREFIX):].partition("/")[0]
        with _quiet_open_clip():
            model = open_clip.create_model(arch, load_weights=False, device="meta").eval()
        forward = model.encode_image
        extra = 1000 * int(getattr(model.visual, "output_dim", 0) or 0)  # the zero-shot head's text features
    else:
        model = _meta_timm(spec).eval()
        forward, extra = model, 0
    return Counts(parameters=int(sum(p.numel() for p in model.parameters())),
                  buffers=int(sum(b.numel() for b in model.buffers())) + extra,
                  activation_ratio=_activation_ratio(forward, size, spec))


# ------------------------------------------------------------------------------------------- the table
@lru_cache(maxsize=1)
def load_table() -> Mapping[str, Counts]:
    """The shipped counts of timm's registry: architecture → :class:`Counts`."""
    text = resources.files("laionet_bench").joinpath("_data", TABLE_FILE).read_text("utf-8")
    return {arch: Counts(**entry) for arch, entry in json.loads(text)["architectures"].items()}


@cache
def _measured(spec: str) -> Counts:
    logger.info("%s is not in %s: counting it on the meta device", spec, TABLE_FILE)
    return measure_counts(spec)


def model_counts(spec: str) -> Counts:
    """``spec``'s counts: from the shipped table by architecture, else measured on the meta device (cached)."""
    if not spec.startswith(OPENCLIP_PREFIX):
        counts = load_table().get(spec.partition(".")[0])
        if counts is not None:
            return counts
    return _measured(spec)


def estimate_footprint(spec: str, *, batch_size: int, dtype: str = "fp32") -> Footprint:
    """The planning footprint of a canonical spec at ``batch_size`` (the module docstring has the formula)."""
    if dtype not in DTYPE_BYTES:
        raise ConfigError(f"dtype must be one of {sorted(DTYPE_BYTES)}, got {dtype!r}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be ≥ 1, got {batch_size}")
    config = resolve_data_config(spec)
    counts = model_counts(spec)
    channels, height, width = config["input_size"]
    weights = (counts.parameters + counts.buffers) * DTYPE_BYTES[dtype]
    ratio = counts.activation_ratio if counts.activation_ratio is not None else DEFAULT_ACTIVATION_RATIO
    per_image = int(4 * channels * height * width * ratio * ACTIVATION_MARGIN)
    casts = weights // 2 if dtype != "fp32" else 0  # autocast's half-precision copies of the weights
    return Footprint(spec=spec, preprocess=preprocess_key(config), data_config=config, weights_bytes=int(weights),
                     activation_bytes=batch_size * per_image + casts, batch_size=batch_size, image_bytes=per_image)


# ------------------------------------------------------------------------------------------- the probe
def measure_peak_bytes(forward: Callable[[], Any], *, device: str) -> int | None:
    """Device bytes one call of ``forward`` allocates above what was allocated before it.

    Call it around one probe batch after the model is built, and pass the result to
    :meth:`Footprint.refined`. CUDA only (``torch.cuda.max_memory_allocated``): on other devices it only
    calls ``forward`` and returns None, so callers wrap the probe batch the same way on every device.
    """
    if not str(device).startswith("cuda"):
        forward()
        return None
    import torch

    target = torch.device(device)
    torch.cuda.synchronize(target)
    before = torch.cuda.memory_allocated(target)
    torch.cuda.reset_peak_memory_stats(target)
    forward()
    torch.cuda.synchronize(target)
    return int(torch.cuda.max_memory_allocated(target) - before)
