"""How the engine runs: :class:`EngineOptions`, and the one resolver of each option given as text.

``device`` holds one device (``cuda``, ``cuda:1``, ``mps``, ``cpu``), a comma list (``cuda:0,cuda:1``) or
``all``; :func:`resolve_devices` turns it into the device list and refuses a device this machine lacks, so a
typo fails in one line before any model is built. ``shard`` splits the (model, dataset) work over
independent processes; :func:`parse_shard` reads the ``I/N`` text of ``--shard``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..config import resolve_setting
from ..errors import ConfigError

__all__ = ["AMP_DTYPES", "EXECUTORS", "MAX_SHARDS", "PROTOCOLS", "EngineOptions", "default_device", "parse_shard", "resolve_device", "resolve_devices"]

AMP_DTYPES = ("bf16", "fp16")
#: Metric protocols: ``ours`` (the default) or ``official`` (the reference's exact rules; docs/evaluation.md).
PROTOCOLS = ("ours", "official")
#: Where the waves run: ``local`` (this machine's devices, :mod:`.waves`) or ``ray`` (a cluster, :mod:`.ray_executor`).
EXECUTORS = ("local", "ray")
#: Most parts ``--shard`` splits the work into: a (model, dataset) pair is the smallest part, and a count
#: beyond int64 overflowed the split (a 20-digit N was an OverflowError).
MAX_SHARDS = 1_000_000
_SHARD = re.compile(r"\s*([0-9]{1,18})\s*/\s*([0-9]{1,18})\s*")
_SHARD_RULE = f"--shard {{text}}: expected I/N with 1 ≤ I ≤ N ≤ {MAX_SHARDS} (1-based: 1/4 … 4/4)"


@dataclass(frozen=True)
class EngineOptions:
    """How to run inference."""

    # where
    device: str = "cpu"  # one device, a comma list (cuda:0,cuda:1) or "all": resolve_devices()
    max_memory: float | None = None  # GiB per device the waves are packed into; None: one wave per group
    shard: tuple[int, int] | None = None  # (I, N), 1-based: this process does the I-th of N parts
    executor: str = "local"  # EXECUTORS; "ray": the waves on a Ray cluster's GPUs (or CPU nodes), not `device`
    ray_address: str | None = None  # with executor "ray": the cluster (host:port, auto); None: a local Ray
    # how
    batch_size: int = 64
    workers: int = 2
    amp: str | None = None  # None (float32), "bf16" or "fp16" autocast
    channels_last: bool = False
    compile: bool = False
    chunk_rows: int | None = None  # store chunk size (default store.CHUNK_ROWS)
    # what
    protocol: str = "ours"  # PROTOCOLS; "official" also scores HF heads by the reference's lemma rule

    @property
    def dtype(self) -> str:
        return self.amp or "fp32"

    def check(self) -> None:
        """Refuse bad values in one line (devices are checked by :func:`resolve_devices`, which needs torch)."""
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.amp not in (None, *AMP_DTYPES):
            raise ConfigError(f"amp must be one of {AMP_DTYPES} (or unset for float32), got {self.amp!r}")
        if self.batch_size < 1 or self.workers < 0:
            raise ConfigError(f"batch size must be ≥ 1 and workers ≥ 0 (got {self.batch_size}, {self.workers})")
        if self.max_memory is not None and not (math.isfinite(self.max_memory) and self.max_memory > 0):
            raise ConfigError(f"--max-memory must be a positive number of GiB per device, got {self.max_memory!r}")
        if self.shard is not None:
            _check_shard(self.shard, str(self.shard))
        if self.executor not in EXECUTORS:
            raise ConfigError(f"--executor {self.executor}: use one of {', '.join(EXECUTORS)}")
        if self.ray_address is not None and self.executor != "ray":
            raise ConfigError(f"--ray-address {self.ray_address} goes with --executor ray: add it or drop the address")


def _check_shard(shard: tuple[int, int], text: str) -> tuple[int, int]:
    index, count = shard
    if not 1 <= index <= count <= MAX_SHARDS:
        raise ConfigError(_SHARD_RULE.format(text=text))
    return index, count


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` → ``(I, N)``, 1-based: ``1/2`` and ``2/2`` are the two halves of the work."""
    match = _SHARD.fullmatch(text)
    if match is None:
        raise ConfigError(_SHARD_RULE.format(text=text or "''"))
    return _check_shard((int(match[1]), int(match[2])), text)


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


def _all_devices() -> list[str]:
    import torch

    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [default_device()]


def _check_device(name: str) -> str:
    """The torch device ``name`` denotes on this machine (``cuda`` → ``cuda:<current>``), or a ConfigError."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--devices {name}: not a device; use all, cpu, mps, cuda or cuda:N (comma-separated)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--devices {name}: this machine has no CUDA device; use cpu")
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= count:
            raise ConfigError(f"--devices {name}: this machine has {count} CUDA device(s), cuda:0 … cuda:{count - 1}")
        return f"cuda:{index}"
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"--devices {name}: MPS is not available on this machine; use cpu")
    if device.type not in ("cpu", "mps"):
        raise ConfigError(f"--devices {name}: the engine runs on cpu, mps or cuda devices")
    return str(device) if device.index is None else f"{device.type}:{device.index}"


def resolve_devices(device: str | None = None) -> list[str]:
    """The devices the engine runs on: ``all`` (every CUDA device, else mps, else cpu) or a comma list.

    Each listed device must exist here (``cuda:7`` on a two-GPU machine, or ``cuda`` without one, is a
    :class:`ConfigError`) and appear once. Names are kept as given (``cuda`` stays ``cuda``); ``cpu:0`` and
    ``cpu:1`` are distinct devices that share the CPU (torch accepts them), which tests use.
    """
    text = resolve_device(device)
    if text.strip() == "all":
        return _all_devices()
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise ConfigError(f"--devices {text}: empty entry; list devices as cuda:0,cuda:1 (or all)")
    seen: dict[str, str] = {}
    for name in names:
        real = _check_device(name)
        if real in seen:
            raise ConfigError(f"--devices {text}: {name} and {seen[real]} are the same device; list each once")
        seen[real] = name
    return names
