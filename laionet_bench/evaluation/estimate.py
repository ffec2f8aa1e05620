"""How long a run will take on a cluster, before it starts: ``run --plan --cluster NODESxGPUS``.

The plan (:mod:`.planner`) says which models run together on which device and how often each image is
decoded; this module prices it:

* **Forward time** of a model = images / its throughput. Throughputs come from a table in the format of timm's
  published ``benchmark-infer-*.csv`` (``model`` = architecture, ``infer_img_size``, ``infer_samples_per_sec``):
  by default the shipped snapshot for an RTX 4090 or an RTX PRO 6000 Max-Q (``_data/TIMM_THROUGHPUT.md``; AMP,
  so an fp32 run is slower), times ``gpu_scale`` for other GPUs, or the user's own file. A model is looked up
  by its architecture at the nearest benchmarked size, scaled by pixel count; one the table lacks (a new
  architecture, open_clip, ``hf:``) gets a throughput fitted on the table from parameters × pixels, a proxy
  for its FLOPs, and is listed as estimated.
* **Decode time** of a round = images × the decode cost per image and core / the decoding node's cores.
* **The schedule the engine runs today**: the rounds of the plan one after another; in a round, its waves at
  the same time on their devices, fed by one decode stream, so a round takes the longer of its slowest wave
  and its decode. On a Ray cluster (more than one node) the slots are every GPU of every node, and every
  image is decoded on the driver's node.

The result: ``wall_hours``; ``ideal_hours`` (all GPU time spread evenly over every GPU); ``gpu_busy`` (GPU time
/ (wall × GPUs)); ``decode_bound_share`` (the share of the wall spent in rounds that wait on decoding); and the
busy hours per device and node.
"""

from __future__ import annotations

import csv
import io
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .planner import Plan

__all__ = ["DEFAULT_IMAGES", "GPU_TABLES", "ClusterShape", "Estimate", "ThroughputTable", "estimate_plan",
           "load_throughput", "measure_decode_ms", "parse_cluster"]

#: ImageNet-val (50,000) plus the default LAIONet variant: the images of ``run --models all``, roughly.
DEFAULT_IMAGES = 850_000
#: GPU kinds with a shipped table (timm's benchmark on that GPU), and its file in ``laionet_bench/_data``.
GPU_TABLES = {"rtx4090": "timm_throughput_rtx4090.csv", "rtx-pro-6000-maxq": "timm_throughput_rtx_pro_6000_maxq.csv"}
_CLUSTER = re.compile(r"^(\d+)x(\d+)$")
_COLUMNS = ("model", "infer_img_size", "infer_samples_per_sec")


@dataclass(frozen=True)
class ClusterShape:
    """``nodes`` machines with ``gpus`` GPUs each."""

    nodes: int
    gpus: int

    def devices(self) -> list[str]:
        """The slots the engine would plan over: a node's ``cuda:i``, or a Ray cluster's ``ray-gpu:i``."""
        if self.nodes == 1:
            return [f"cuda:{i}" for i in range(self.gpus)]
        return [f"ray-gpu:{i}" for i in range(self.nodes * self.gpus)]

    def node_of(self, device_index: int) -> int:
        return device_index // self.gpus


def parse_cluster(text: str) -> ClusterShape:
    """``NODESxGPUS`` (``1x8``, ``8x8``) as a :class:`ClusterShape`, or a one-line ConfigError."""
    match = _CLUSTER.match(text.strip().lower())
    nodes, gpus = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if not (0 < nodes <= 10_000 and 0 < gpus <= 64):
        raise ConfigError(f"--cluster {text!r}: expected NODESxGPUS with 1-10000 nodes of 1-64 GPUs, e.g. 1x8 or 8x8")
    return ClusterShape(nodes, gpus)


@dataclass(frozen=True)
class ThroughputTable:
    """Images per second by architecture and image size, on one GPU kind."""

    name: str
    rows: Mapping[str, Mapping[int, float]]  # architecture → {image size: images/s}
    scale: float = 1.0
    _fit: tuple[float, float] = (0.0, 0.0)  # log(img/s) = a + b·log(params·pixels), for architectures it lacks

    def images_per_second(self, spec: str, size: int, parameters: int) -> tuple[float, bool]:
        """``spec``'s throughput at ``size`` px, and whether it was fitted (the table lacks its architecture)."""
        arch = spec.split(":", 1)[-1].split(".", 1)[0]
        sizes = self.rows.get(arch)
        if sizes:
            nearest = min(sizes, key=lambda s: (abs(s - size), s))
            return sizes[nearest] * (nearest / size) ** 2 * self.scale, False
        a, b = self._fit
        return math.exp(a + b * math.log(max(parameters, 1) * size * size)) * self.scale, True


def _read_table(text: str, name: str, params: dict[str, float]) -> dict[str, dict[int, float]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ConfigError(f"{name}: not a throughput table (missing column(s) {', '.join(missing)}); expected timm's "
                          "benchmark-infer CSV: model, infer_img_size, infer_samples_per_sec[, param_count]")
    rows: dict[str, dict[int, float]] = {}
    for line, row in enumerate(reader, start=2):
        try:
            size, speed = int(row["infer_img_size"]), float(row["infer_samples_per_sec"])
            count = float(row["param_count"]) * 1e6 if row.get("param_count") else None  # millions, as timm writes it
        except (TypeError, ValueError):
            raise ConfigError(f"{name}, row {line}: infer_img_size, infer_samples_per_sec and param_count must be "
                              f"numbers, got {row['infer_img_size']!r}, {row['infer_samples_per_sec']!r}, "
                              f"{row.get('param_count')!r}") from None
        if not (size > 0 and speed > 0 and math.isfinite(speed)):
            raise ConfigError(f"{name}, row {line}: size and throughput must be positive, got {size}, {speed}")
        rows.setdefault(row["model"], {})[size] = speed
        if count:
            params.setdefault(row["model"], count)
    if not rows:
        raise ConfigError(f"{name}: the throughput table has no rows")
    return rows


def _fit(rows: Mapping[str, Mapping[int, float]], params: Mapping[str, float]) -> tuple[float, float]:
    """Least squares of log(img/s) on log(parameters × pixels) over the table's rows with a parameter count."""
    x = [math.log(params[a] * s * s) for a, sizes in rows.items() if params.get(a) for s in sizes]
    y = [math.log(v) for a, sizes in rows.items() if params.get(a) for v in sizes.values()]
    if len(x) < 2 or len(set(x)) < 2:
        return math.log(float(np.median([v for sizes in rows.values() for v in sizes.values()]))), 0.0
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b)


@cache
def _shipped(kind: str) -> ThroughputTable:
    text = resources.files("laionet_bench").joinpath("_data", GPU_TABLES[kind]).read_text("utf-8")
    params: dict[str, float] = {}
    rows = _read_table(text, GPU_TABLES[kind], params)
    return ThroughputTable(name=f"timm benchmark, {kind}", rows=rows, _fit=_fit(rows, params))


def load_throughput(*, gpu: str = "rtx4090", scale: float = 1.0, path: str | Path | None = None) -> ThroughputTable:
    """The table of ``path`` (timm's benchmark-infer CSV format), else the shipped one of ``gpu``; times ``scale``."""
    if not (scale > 0 and math.isfinite(scale)):
        raise ConfigError(f"--gpu-scale {scale}: expected a positive factor (your GPU's images/s ÷ the table's)")
    if path is None:
        if gpu not in GPU_TABLES:
            raise ConfigError(f"--gpu {gpu!r}: no shipped table for it; use one of {', '.join(GPU_TABLES)} with "
                              "--gpu-scale FACTOR, or --throughput FILE (timm's benchmark-infer CSV format)")
        table = _shipped(gpu)
    else:
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--throughput {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
        params: dict[str, float] = {}
        rows = _read_table(text, str(path), params)
        table = ThroughputTable(name=str(path), rows=rows, _fit=_fit(rows, params))
    return ThroughputTable(name=table.name, rows=table.rows, scale=scale, _fit=table._fit)


def measure_decode_ms(*, images: int = 64, size: tuple[int, int] = (500, 375)) -> float:
    """Milliseconds per image and core to decode a ``size`` JPEG to RGB and resize it to 224 px, here.

    A photo-like image (smooth gradients plus noise, quality 90) made on the spot; one thread, median of
    ``images`` decodes after one warm-up.
    """
    from PIL import Image

    from ..images.decode import decode_rgb

    rng = np.random.default_rng(0)
    h, w = size[1], size[0]
    gradient = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * np.linspace(0.3, 1, h)[:, None, None]
    pixels = np.clip(gradient + rng.normal(0, 24, (h, w, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    times = []
    for _ in range(images + 1):
        start = time.perf_counter()
        decode_rgb(data).resize((224, 224), Image.Resampling.BICUBIC)
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]) * 1000)


@dataclass(frozen=True)
class Estimate:
    """What :func:`estimate_plan` found (hours are wall-clock hours)."""

    wall_hours: float
    ideal_hours: float
    gpu_busy: float
    decode_bound_share: float
    per_device: Mapping[str, float]  # busy hours
    per_node: Sequence[Mapping[str, float]]  # busy and decode hours per node
    fitted: Sequence[str] = field(default_factory=tuple)  # specs priced from parameters × pixels
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"wall_hours": self.wall_hours, "ideal_hours": self.ideal_hours, "gpu_busy": self.gpu_busy,
                "decode_bound_share": self.decode_bound_share, "per_device": dict(self.per_device),
                "per_node": [dict(n) for n in self.per_node], "estimated_from_parameters": list(self.fitted),
                **self.inputs}

    def format(self) -> str:
        lines = [f"estimate ({self.inputs.get('cluster')}, {self.inputs.get('table')}, "
                 f"{self.inputs.get('images'):,} images, decode {self.inputs.get('decode_ms_per_image'):.1f} ms/image/core "
                 f"on {self.inputs.get('decode_cores_per_node')} cores per node):",
                 f"  wall {self.wall_hours:.1f} h; ideal {self.ideal_hours:.1f} h (all GPU time over every GPU); "
                 f"GPUs busy {self.gpu_busy:.0%}; waiting on decoding {self.decode_bound_share:.0%} of the wall"]
        if self.fitted:
            lines.append(f"  {len(self.fitted)} model(s) not in the table, priced from parameters × pixels: "
                         + ", ".join(self.fitted[:5]) + (" …" if len(self.fitted) > 5 else ""))
        return "\n".join(lines)


def estimate_plan(plan: Plan, cluster: ClusterShape, table: ThroughputTable, *, images: int = DEFAULT_IMAGES,
                  decode_ms: float = 7.0, decode_cores: int = 64) -> Estimate:
    """Price ``plan`` (made over ``cluster.devices()``) as the engine runs it today (module docstring)."""
    if images < 1 or decode_cores < 1 or not (decode_ms >= 0 and math.isfinite(decode_ms)):
        raise ConfigError(f"estimate: images ({images}) and decode cores ({decode_cores}) must be ≥ 1 and the "
                          f"decode cost ({decode_ms} ms) ≥ 0")
    devices = cluster.devices()
    index = {d: i for i, d in enumerate(devices)}
    seconds: dict[str, float] = {}
    fitted: list[str] = []
    for spec, footprint in plan.footprints.items():
        size = int(footprint.preprocess[0][-1])
        speed, was_fitted = table.images_per_second(spec, size, footprint.weights_bytes // 4)
        seconds[spec] = images / speed
        if was_fitted:
            fitted.append(spec)
    busy = dict.fromkeys(devices, 0.0)
    wall = decode_bound = 0.0
    decode_per_round = images * decode_ms / 1000 / decode_cores  # on one node: the driver's, on Ray
    for round_ in plan.rounds:
        longest = 0.0
        for i in round_:
            wave = plan.waves[i]
            forward = sum(seconds[m] for m in wave.models)
            busy[wave.device] += forward
            longest = max(longest, forward)
        wall += max(longest, decode_per_round)
        decode_bound += decode_per_round if decode_per_round > longest else 0.0
    gpu_seconds = sum(busy.values())
    nodes = [{"node": n, "busy_hours": sum(b for d, b in busy.items() if cluster.node_of(index[d]) == n) / 3600,
              "decode_hours": (decode_per_round * len(plan.rounds) / 3600) if n == 0 else 0.0}
             for n in range(cluster.nodes)]
    return Estimate(
        wall_hours=wall / 3600, ideal_hours=gpu_seconds / len(devices) / 3600,
        gpu_busy=gpu_seconds / (wall * len(devices)) if wall else 0.0,
        decode_bound_share=decode_bound / wall if wall else 0.0,
        per_device={d: b / 3600 for d, b in busy.items()}, per_node=nodes, fitted=tuple(sorted(fitted)),
        inputs={"cluster": f"{cluster.nodes}x{cluster.gpus}", "table": table.name, "gpu_scale": table.scale,
                "images": images, "decode_ms_per_image": decode_ms, "decode_cores_per_node": decode_cores,
                "schedule": "today's engine: rounds one after another; on Ray, decoding on the driver's node"})

